//! Finding songs: an FMA-style tree (`audio/000/000123.mp3`, `fma_small/000/000123.mp3`) or any
//! folder of audio files, in sorted path order (the seed takes "the first N files"), with optional
//! metadata from a `tracks.csv` (FMA's real three-row header, or a plain one-header CSV).

use super::catalog::{Catalog, Song};
use crate::error::DatasetError;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// File extensions the decoder handles.
pub const AUDIO_EXTENSIONS: [&str; 5] = ["mp3", "wav", "flac", "ogg", "oga"];

/// Where to look for songs and how many to take.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Take only the first `num_songs` files in sorted path order.
    pub num_songs: Option<usize>,
    /// An explicit `tracks.csv`; otherwise the usual FMA places are tried (see [`find_metadata`]).
    pub metadata: Option<PathBuf>,
    /// Keep only the tracks of this FMA subset, by `tracks.csv`'s `set.subset` column (applied
    /// before `num_songs`), so one `fma_full` tree serves all four subsets.
    pub subset: Option<FmaSubset>,
}

/// FMA's nested subsets: every small track is in medium, every medium one in large, and full
/// holds every track (`tracks.csv` lists each track with the smallest subset it belongs to;
/// full-only tracks have none).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum FmaSubset {
    Small,
    Medium,
    Large,
    Full,
}

impl FmaSubset {
    pub fn name(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
            Self::Full => "full",
        }
    }

    /// The subset a `set.subset` cell names (`None`: an empty cell, i.e. full only).
    fn parse(cell: &str) -> Option<Self> {
        match cell.trim().to_ascii_lowercase().as_str() {
            "small" => Some(Self::Small),
            "medium" => Some(Self::Medium),
            "large" => Some(Self::Large),
            "full" => Some(Self::Full),
            _ => None,
        }
    }
}

/// Title and artist of one track, keyed by normalised track id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackInfo {
    pub title: Option<String>,
    pub artist: Option<String>,
    /// The smallest FMA subset the track is in (`set.subset`; `None`: full only, or no column).
    pub subset: Option<FmaSubset>,
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// FMA writes ids as integers in tracks.csv ("2") and zero-padded in file names ("000002").
fn normalise_id(id: &str) -> String {
    let id = id.trim();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        let stripped = id.trim_start_matches('0');
        if stripped.is_empty() {
            "0".into()
        } else {
            stripped.into()
        }
    } else {
        id.to_string()
    }
}

/// Lists the audio files below `root`, relative to it, in sorted path order.
pub fn list_audio_files(root: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    if !root.exists() {
        return Err(DatasetError::NotFound {
            path: root.to_path_buf(),
        });
    }
    if !root.is_dir() {
        return Err(DatasetError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(entry) => entry,
            // A dangling link or unreadable entry that looks like a song is kept: extraction
            // reports it as one failed file (with the plain reason) and processes the rest.
            Err(e) if e.depth() > 0 && e.path().is_some_and(is_audio) => {
                let path = e.path().expect("checked above");
                files.push(path.strip_prefix(root).unwrap_or(path).to_path_buf());
                continue;
            }
            Err(e) => {
                return Err(DatasetError::Io {
                    path: e.path().unwrap_or(root).to_path_buf(),
                    source: e
                        .into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("file system loop")),
                })
            }
        };
        // Hidden files include our own temporaries (".name.pid.tmp") and macOS "._x.mp3" junk.
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type().is_file() && !hidden && is_audio(entry.path()) {
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .to_path_buf();
            files.push(rel);
        }
    }
    files.sort();
    Ok(files)
}

/// The usual places of FMA-style metadata relative to a dataset root.
pub fn find_metadata(root: &Path) -> Option<PathBuf> {
    let candidates = [
        root.join("metadata/tracks.csv"),
        root.join("fma_metadata/tracks.csv"),
        root.join("tracks.csv"),
        root.join("../fma_metadata/tracks.csv"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

/// Reads `tracks.csv`: FMA's real file (three header rows: column group, column name, "track_id")
/// or a one-header CSV with `track_id` and optional `title`/`artist` columns. The dev corpus'
/// CSV (`source_package`, `source_file`) gives file name as title and package as artist.
pub fn read_tracks_csv(path: &Path) -> Result<HashMap<String, TrackInfo>, DatasetError> {
    let bad = |reason: String| DatasetError::Metadata {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| bad(e.to_string()))?;
    let mut rows = reader.records();
    let first = rows
        .next()
        .ok_or_else(|| bad("file is empty".into()))?
        .map_err(|e| bad(e.to_string()))?;

    // FMA: row 0 = groups ("", album, …, artist, …, track, …), row 1 = names, row 2 = "track_id".
    let fma =
        first.get(0).is_some_and(|c| c.trim().is_empty()) && first.iter().any(|c| c == "track");
    let mut title_is_path = false;
    let (id_col, title_col, artist_col, subset_col) = if fma {
        let names = rows
            .next()
            .ok_or_else(|| bad("FMA header: missing second row".into()))?
            .map_err(|e| bad(e.to_string()))?;
        let _track_id_row = rows.next();
        let find = |group: &str, name: &str| {
            first
                .iter()
                .zip(names.iter())
                .position(|(g, n)| g == group && n == name)
        };
        (
            0,
            find("track", "title"),
            find("artist", "name"),
            find("set", "subset"),
        )
    } else {
        let col = |names: &[&str]| {
            first
                .iter()
                .position(|c| names.contains(&c.trim().to_ascii_lowercase().as_str()))
        };
        let id = col(&["track_id", "id"])
            .ok_or_else(|| bad("no track_id column in the header".into()))?;
        let title = col(&["title"]);
        title_is_path = title.is_none() && col(&["source_file"]).is_some();
        (
            id,
            title.or(col(&["source_file"])),
            col(&["artist", "source_package"]),
            col(&["subset"]),
        )
    };

    let mut tracks = HashMap::new();
    for (line, row) in rows.enumerate() {
        let row = row.map_err(|e| bad(format!("row {}: {e}", line + 2)))?;
        let Some(id) = row.get(id_col).filter(|s| !s.trim().is_empty()) else {
            continue;
        };
        let field = |c: Option<usize>| {
            c.and_then(|c| row.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let mut title = field(title_col).map(str::to_string);
        if title_is_path {
            // The dev corpus stores source paths; the title is the file name.
            title = title.map(|t| {
                Path::new(&t)
                    .file_stem()
                    .map_or(t.clone(), |f| f.to_string_lossy().into_owned())
            });
        }
        tracks.insert(
            normalise_id(id),
            TrackInfo {
                title,
                artist: field(artist_col).map(str::to_string),
                subset: field(subset_col).and_then(FmaSubset::parse),
            },
        );
    }
    Ok(tracks)
}

/// Scans a dataset folder into a catalog: the first `num_songs` audio files in sorted path order,
/// song ids = file stems (the relative path without extension where stems repeat), with titles
/// and artists from `tracks.csv` where one is found.
pub fn scan(root: &Path, opts: &ScanOptions) -> Result<Catalog, DatasetError> {
    let mut files = list_audio_files(root)?;
    if files.is_empty() {
        return Err(DatasetError::NoAudioFiles {
            path: root.to_path_buf(),
        });
    }
    let metadata_path = opts.metadata.clone().or_else(|| find_metadata(root));
    let metadata = metadata_path
        .as_deref()
        .map(read_tracks_csv)
        .transpose()?
        .unwrap_or_default();
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if let Some(subset) = opts.subset.filter(|&s| s != FmaSubset::Full) {
        let Some(path) = metadata_path else {
            return Err(DatasetError::Metadata {
                path: root.join("tracks.csv"),
                reason: format!(
                    "--subset {} needs FMA's tracks.csv (its set.subset column); none \
                     found under {} (metadata/, fma_metadata/, ../fma_metadata/) — pass \
                     --metadata",
                    subset.name(),
                    root.display()
                ),
            });
        };
        if !metadata.values().any(|t| t.subset.is_some()) {
            return Err(DatasetError::Metadata {
                path,
                reason: "no track has a subset (FMA's set.subset column, or a subset column)"
                    .into(),
            });
        }
        // A file tracks.csv does not list is in no FMA subset but full.
        files.retain(|f| {
            metadata
                .get(&normalise_id(&stem(f)))
                .and_then(|t| t.subset)
                .is_some_and(|s| s <= subset)
        });
        if files.is_empty() {
            return Err(DatasetError::NoAudioFiles {
                path: root.to_path_buf(),
            });
        }
    }
    if let Some(n) = opts.num_songs {
        files.truncate(n);
    }

    let mut stem_count: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        *stem_count.entry(stem(f)).or_default() += 1;
    }
    let songs = files
        .into_iter()
        .enumerate()
        .map(|(index, path)| {
            let s = stem(&path);
            let track_id = if stem_count[&s] > 1 {
                path.with_extension("").to_string_lossy().replace('\\', "/")
            } else {
                s
            };
            let info = metadata
                .get(&normalise_id(&track_id))
                .cloned()
                .unwrap_or_default();
            Song {
                index,
                track_id,
                path,
                title: info.title,
                artist: info.artist,
            }
        })
        .collect();
    Ok(Catalog { songs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }

    #[test]
    fn scans_fma_layout_sorted_with_limit() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "audio/001/001002.mp3",
            "audio/000/000010.mp3",
            "audio/000/000002.mp3",
            "audio/000/notes.txt",
            "audio/000/.000003.mp3.1.tmp",
        ] {
            touch(dir.path(), f);
        }
        let cat = scan(
            dir.path(),
            &ScanOptions {
                num_songs: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let ids: Vec<_> = cat.songs.iter().map(|s| s.track_id.as_str()).collect();
        assert_eq!(ids, ["000002", "000010"]);
        assert_eq!(cat.songs[1].index, 1);
        assert_eq!(cat.songs[1].path, PathBuf::from("audio/000/000010.mp3"));
    }

    #[test]
    fn reads_fma_three_row_header() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("tracks.csv");
        fs::write(
            &csv,
            ",album,artist,track,track\n,title,name,genre_top,title\ntrack_id,,,,\n2,AWOL - A Way Of Life,AWOL,Hip-Hop,Food\n5,\"Comma, Album\",Kurt Vile,Rock,\"Title, with comma\"\n",
        )
        .unwrap();
        let t = read_tracks_csv(&csv).unwrap();
        assert_eq!(
            t["2"],
            TrackInfo {
                title: Some("Food".into()),
                artist: Some("AWOL".into()),
                subset: None,
            }
        );
        assert_eq!(t["5"].title.as_deref(), Some("Title, with comma"));
    }

    #[test]
    fn reads_simple_csv_and_matches_padded_ids() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "audio/000/000002.wav");
        fs::create_dir_all(dir.path().join("metadata")).unwrap();
        fs::write(
            dir.path().join("metadata/tracks.csv"),
            "track_id,title,artist\n000002,Velvet Harbor,The Lumen Trio\n",
        )
        .unwrap();
        let cat = scan(dir.path(), &ScanOptions::default()).unwrap();
        assert_eq!(
            cat.songs[0].display_name(),
            "Velvet Harbor — The Lumen Trio"
        );
    }

    #[test]
    fn dev_corpus_csv_uses_source_file_and_package() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("tracks.csv");
        fs::write(&csv, "track_id,source_package,source_file,source_duration_s,clip_start_s,split\n000002,wesnoth-1.16-music,/usr/share/games/wesnoth/music/battle.ogg,180,75,dev\n").unwrap();
        let t = read_tracks_csv(&csv).unwrap();
        assert_eq!(
            t["2"],
            TrackInfo {
                title: Some("battle".into()),
                artist: Some("wesnoth-1.16-music".into()),
                subset: None,
            }
        );
    }

    #[test]
    fn errors_name_the_folder() {
        let missing = Path::new("/nonexistent/fma_small");
        let err = scan(missing, &ScanOptions::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/fma_small"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = scan(empty.path(), &ScanOptions::default()).unwrap_err();
        assert!(matches!(err, DatasetError::NoAudioFiles { .. }));
    }

    #[test]
    fn repeated_stems_get_path_ids() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a/song.mp3");
        touch(dir.path(), "b/song.wav");
        let cat = scan(dir.path(), &ScanOptions::default()).unwrap();
        assert_eq!(cat.songs[0].track_id, "a/song");
        assert_eq!(cat.songs[1].track_id, "b/song");
    }

    /// FMA's real header with its `set` group: the subsets nest, unlisted files are only in
    /// full, and a subset without the column is an error naming the file.
    #[test]
    fn subsets_come_from_the_set_subset_column() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["000002", "000005", "000010", "000020", "000099"] {
            touch(dir.path(), &format!("fma_full/000/{id}.mp3"));
        }
        let meta = dir.path().join("fma_metadata");
        fs::create_dir_all(&meta).unwrap();
        fs::write(
            meta.join("tracks.csv"),
            ",set,set,track\n,split,subset,title\ntrack_id,,,\n2,training,small,A\n5,training,medium,B\n10,test,large,C\n20,training,,D\n",
        )
        .unwrap();
        let root = dir.path().join("fma_full");
        let ids = |subset| {
            let opts = ScanOptions {
                subset: Some(subset),
                ..Default::default()
            };
            scan(&root, &opts)
                .unwrap()
                .songs
                .into_iter()
                .map(|s| s.track_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(FmaSubset::Small), ["000002"]);
        assert_eq!(ids(FmaSubset::Medium), ["000002", "000005"]);
        assert_eq!(ids(FmaSubset::Large), ["000002", "000005", "000010"]);
        assert_eq!(ids(FmaSubset::Full).len(), 5);
        // Labels stay dense, titles still come from the same file.
        let small = scan(
            &root,
            &ScanOptions {
                subset: Some(FmaSubset::Medium),
                num_songs: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (small.songs[0].index, small.songs[0].title.as_deref()),
            (0, Some("A"))
        );

        // No tracks.csv: an error that says what is needed.
        let bare = tempfile::tempdir().unwrap();
        touch(bare.path(), "000/000002.mp3");
        let opts = ScanOptions {
            subset: Some(FmaSubset::Small),
            ..Default::default()
        };
        let err = scan(bare.path(), &opts).unwrap_err().to_string();
        assert!(
            err.contains("tracks.csv") && err.contains("subset"),
            "{err}"
        );
        // A tracks.csv without subsets: the error names it.
        fs::write(bare.path().join("tracks.csv"), "track_id,title\n2,A\n").unwrap();
        let err = scan(bare.path(), &opts).unwrap_err().to_string();
        assert!(
            err.contains("tracks.csv") && err.contains("no track has a subset"),
            "{err}"
        );
    }
}
