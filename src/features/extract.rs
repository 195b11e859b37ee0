//! Dataset → feature set, in parallel over songs. A file that fails is reported, not fatal;
//! songs whose file and parameters are unchanged since the last run are reused, not recomputed.

use super::store::{
    Failure, FeatureSet, ShardInfo, Sidecar, SongRecord, StoreReader, StoreWriter, FORMAT, VERSION,
};
use super::{chunk_features, FeatureParams, Mfcc};
use crate::audio::{self, LoadOptions};
use crate::dataset::{Catalog, Song};
use crate::error::FeatureError;
use ndarray::Array2;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What an extraction run did.
#[derive(Debug, Clone)]
pub struct ExtractSummary {
    pub songs: usize,
    pub rows: usize,
    pub dim: usize,
    pub reused: usize,
    pub extracted: usize,
    pub failures: Vec<Failure>,
}

/// Size and modification time: the cheap check that a file is unchanged.
fn file_stamp(path: &Path) -> std::io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok((meta.len(), modified))
}

/// Hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let (mut file, mut hasher) = (std::fs::File::open(path)?, Sha256::new());
    let mut block = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut block)? {
            0 => break,
            n => hasher.update(&block[..n]),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A change applied to each song's decoded audio before its features are computed
/// (training-time augmentation). `key` names it in the sidecar, so cached rows are reused only
/// for the same change.
pub struct AudioTransform<'a> {
    pub key: String,
    pub apply: &'a TransformFn<'a>,
}

/// The change itself: a song's samples in, its changed samples (or why not) out.
pub type TransformFn<'a> = dyn Fn(&Song, &[f32]) -> Result<Vec<f32>, String> + Sync + 'a;

/// One song's chunk features and its sidecar record.
pub type SongRows = (Array2<f32>, SongRecord);

/// Loads one song, applies `transform` if any, and computes its chunk features. Errors are
/// strings naming the file.
pub fn song_features(
    root: &Path,
    song: &Song,
    load: &LoadOptions,
    mfcc: &Mfcc,
    params: &FeatureParams,
    transform: Option<&AudioTransform>,
) -> Result<SongRows, String> {
    let path = root.join(&song.path);
    let (bytes, modified) = file_stamp(&path)
        .map_err(|e| format!("{}: {}", path.display(), crate::fsutil::explain(&path, &e)))?;
    let sha256 = sha256_file(&path)
        .map_err(|e| format!("{}: {}", path.display(), crate::fsutil::explain(&path, &e)))?;
    let mut audio = audio::load(&path, load).map_err(|e| e.to_string())?;
    if let Some(t) = transform {
        audio.samples = (t.apply)(song, &audio.samples)
            .map_err(|e| format!("{}: {}: {e}", path.display(), t.key))?;
    }
    if let Some(level) = audio::silent(&audio.samples) {
        return Err(format!(
            "{}: silent (level {level:.1} dBFS, below {} dBFS): left out of the catalogue",
            path.display(),
            audio::SILENCE_DBFS
        ));
    }
    let feats = chunk_features(mfcc, params, &audio.samples)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let record = SongRecord {
        song: song.clone(),
        sha256,
        bytes,
        modified,
        first_row: 0,
        n_chunks: feats.nrows(),
        duration_s: audio.duration_seconds(),
    };
    Ok((feats, record))
}

/// One extraction: the songs of `catalog` (paths relative to `root`) into the store at `out`.
pub struct ExtractJob<'a> {
    pub root: &'a Path,
    pub catalog: &'a Catalog,
    pub load: &'a LoadOptions,
    pub params: &'a FeatureParams,
    /// Each song's audio is changed by this before its features (training augmentation).
    pub transform: Option<&'a AudioTransform<'a>>,
    /// `catalog` is this part of a larger catalogue (`extract --shard`); recorded in the
    /// sidecar so that `merge` can check the parts belong together.
    pub shard: Option<ShardInfo>,
    pub out: &'a Path,
}

/// Extracts the features of every song of `catalog` (paths relative to `root`) into `out`,
/// reusing the rows of songs whose file (size, mtime) and parameters match the existing set,
/// and returns the set. `on_song` is called once per finished song (for progress bars).
pub fn extract(
    root: &Path,
    catalog: &Catalog,
    load: &LoadOptions,
    params: &FeatureParams,
    out: &Path,
    on_song: &(dyn Fn() + Sync),
) -> Result<(FeatureSet, ExtractSummary), FeatureError> {
    extract_with(root, catalog, load, params, None, out, on_song)
}

/// [`extract`] with each song's audio changed by `transform` before the features.
pub fn extract_with(
    root: &Path,
    catalog: &Catalog,
    load: &LoadOptions,
    params: &FeatureParams,
    transform: Option<&AudioTransform>,
    out: &Path,
    on_song: &(dyn Fn() + Sync),
) -> Result<(FeatureSet, ExtractSummary), FeatureError> {
    let job = ExtractJob {
        root,
        catalog,
        load,
        params,
        transform,
        shard: None,
        out,
    };
    let summary = job.run(on_song)?;
    Ok((FeatureSet::load(out)?, summary))
}

impl ExtractJob<'_> {
    /// Runs the extraction, streaming: songs are computed in parallel batches and written in
    /// catalogue order as each batch ends, so memory stays flat in the number of songs (a
    /// batch's rows, the song records and the threads' audio). Returns what it did; the store
    /// is on disk (read it with [`FeatureSet::load`]).
    pub fn run(&self, on_song: &(dyn Fn() + Sync)) -> Result<ExtractSummary, FeatureError> {
        let (root, load, params) = (self.root, self.load, self.params);
        if load.sample_rate != params.sample_rate() {
            return Err(FeatureError::InvalidParams {
                param: "sample_rate",
                reason: format!(
                    "audio is loaded at {} Hz but the MFCC expects {} Hz",
                    load.sample_rate,
                    params.sample_rate()
                ),
            });
        }
        let mfcc = Mfcc::new(params.mfcc.clone())?;
        let key = self.transform.map(|t| t.key.clone());
        let previous = reusable_store(self.out, root, load, params, &key);
        let reused_rows = |song: &Song| -> Option<SongRows> {
            let (store, by_path) = previous.as_ref()?;
            let &position = by_path.get(&song.path)?;
            let rec = &store.sidecar.songs[position];
            let stamp = file_stamp(&root.join(&song.path)).ok()?;
            if stamp != (rec.bytes, rec.modified) {
                return None;
            }
            let rows = store.song_rows(position).ok()?;
            Some((
                rows,
                SongRecord {
                    song: song.clone(),
                    ..rec.clone()
                },
            ))
        };

        // The writer is made at the first extracted song, so a run where every song fails
        // leaves no trace in `out`.
        let mut writer: Option<StoreWriter> = None;
        let mut failures = Vec::new();
        let (mut reused, mut extracted) = (0, 0);
        let batch = rayon::current_num_threads() * SONGS_PER_THREAD_AND_BATCH;
        for songs in self.catalog.songs.chunks(batch) {
            let results: Vec<(&Song, Result<SongRows, String>, bool)> = songs
                .par_iter()
                .map(|song| {
                    let out = match reused_rows(song) {
                        Some(hit) => (song, Ok(hit), true),
                        None => (
                            song,
                            song_features(root, song, load, &mfcc, params, self.transform),
                            false,
                        ),
                    };
                    on_song();
                    out
                })
                .collect();
            for (song, result, was_reused) in results {
                match result {
                    Ok((rows, record)) => {
                        let w = match &mut writer {
                            Some(w) => w,
                            None => writer.insert(StoreWriter::create(self.out, params.dim())?),
                        };
                        for f in failures.drain(..) {
                            w.fail(f);
                        }
                        w.push(rows.view(), record)?;
                        if was_reused {
                            reused += 1
                        } else {
                            extracted += 1
                        }
                    }
                    Err(error) => {
                        let failure = Failure {
                            path: song.path.clone(),
                            error,
                        };
                        match &mut writer {
                            Some(w) => w.fail(failure),
                            None => failures.push(failure),
                        }
                    }
                }
            }
        }
        let Some(writer) = writer else {
            return Err(FeatureError::NoSongs {
                dataset: root.to_path_buf(),
                out: self.out.to_path_buf(),
                failed: failures.len(),
                first_failure: failures.first().map(|f| f.error.clone()),
            });
        };
        drop(previous);
        // Rows, width, songs and failures are filled in by the writer.
        let sidecar = writer.finish(Sidecar {
            format: FORMAT.into(),
            version: VERSION,
            dataset: root.to_path_buf(),
            load: load.clone(),
            params: params.clone(),
            transform: key,
            n_rows: 0,
            dim: 0,
            songs: Vec::new(),
            failures: Vec::new(),
            toolkit_version: env!("CARGO_PKG_VERSION").into(),
            shard: self.shard.clone(),
        })?;
        Ok(ExtractSummary {
            songs: sidecar.songs.len(),
            rows: sidecar.n_rows,
            dim: sidecar.dim,
            reused,
            extracted,
            failures: sidecar.failures,
        })
    }
}

/// Songs per thread computed between two writes: enough that the wait for a batch's slowest
/// song is small, few enough that a batch's rows are a few MiB at most.
const SONGS_PER_THREAD_AND_BATCH: usize = 32;

/// The previous run's store at `out`, with its songs' positions by path, if it used the same
/// dataset and parameters (its rows are read only for songs that are reused).
fn reusable_store(
    out: &Path,
    root: &Path,
    load: &LoadOptions,
    params: &FeatureParams,
    transform: &Option<String>,
) -> Option<(StoreReader, HashMap<PathBuf, usize>)> {
    let store = StoreReader::open(out).ok()?;
    let s = &store.sidecar;
    if s.dataset != root || &s.load != load || &s.params != params || &s.transform != transform {
        return None;
    }
    let by_path = s
        .songs
        .iter()
        .enumerate()
        .map(|(position, r)| (r.song.path.clone(), position))
        .collect();
    Some((store, by_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::store::read_sidecar;

    /// `n` short WAV songs of different lengths and pitches; `silent` ones are all zeros.
    fn dataset(root: &Path, n: usize, silent: &[usize]) -> Catalog {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 22_050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let songs = (0..n)
            .map(|k| {
                let path = PathBuf::from(format!("audio/{k:06}.wav"));
                let mut w = hound::WavWriter::create(root.join(&path), spec).unwrap();
                let len = 11_025 * (1 + k % 3) + 100;
                for i in 0..len {
                    let t = i as f32 / 22_050.0;
                    let v = (0.3
                        * (std::f32::consts::TAU * (200.0 + 37.0 * k as f32) * t).sin()
                        * 32767.0) as i16;
                    w.write_sample(if silent.contains(&k) { 0 } else { v })
                        .unwrap();
                }
                w.finalize().unwrap();
                Song {
                    index: k,
                    track_id: format!("{k:06}"),
                    path,
                    title: None,
                    artist: None,
                }
            })
            .collect();
        Catalog { songs }
    }

    /// An unsharded, untransformed extraction of `catalog` into `out`.
    fn seed_job<'a>(
        root: &'a Path,
        catalog: &'a Catalog,
        load: &'a LoadOptions,
        params: &'a FeatureParams,
        out: &'a Path,
    ) -> ExtractJob<'a> {
        ExtractJob {
            root,
            catalog,
            load,
            params,
            transform: None,
            shard: None,
            out,
        }
    }

    #[test]
    fn streamed_batches_write_each_songs_rows_in_order_and_reuse_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("audio")).unwrap();
        // One thread: batches of 32, so 70 songs take three, with failures in two of them.
        let catalog = dataset(dir.path(), 70, &[0, 33, 69]);
        let (load, params) = (LoadOptions::default(), FeatureParams::default());
        let out = dir.path().join("features");
        let job = seed_job(dir.path(), &catalog, &load, &params, &out);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let summary = pool.install(|| job.run(&|| ())).unwrap();
        assert_eq!(
            (summary.songs, summary.extracted, summary.reused),
            (67, 67, 0)
        );
        let failed: Vec<_> = summary.failures.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            failed,
            ["audio/000000.wav", "audio/000033.wav", "audio/000069.wav"].map(PathBuf::from)
        );

        // Against each song computed on its own.
        let set = FeatureSet::load(&out).unwrap();
        let mfcc = Mfcc::new(params.mfcc.clone()).unwrap();
        let kept: Vec<&Song> = catalog
            .songs
            .iter()
            .filter(|s| ![0, 33, 69].contains(&s.index))
            .collect();
        for (label, song) in kept.iter().enumerate() {
            let (rows, _) = song_features(dir.path(), song, &load, &mfcc, &params, None).unwrap();
            let r = &set.sidecar.songs[label];
            assert_eq!(r.song.track_id, song.track_id);
            assert_eq!(set.song_rows(label), rows.view(), "song {}", song.track_id);
            assert!(set.labels[r.first_row..r.first_row + r.n_chunks]
                .iter()
                .all(|&l| l == label));
            assert_eq!(
                set.chunk_index[r.first_row..r.first_row + r.n_chunks],
                (0..r.n_chunks).collect::<Vec<_>>()[..]
            );
        }

        // A second run reuses every song and writes the same bytes.
        let before: Vec<Vec<u8>> = ["features.npy", "labels.npy", "chunks.npy"]
            .iter()
            .map(|f| std::fs::read(out.join(f)).unwrap())
            .collect();
        let again = job.run(&|| ()).unwrap();
        assert_eq!((again.extracted, again.reused), (0, 67));
        for (f, bytes) in ["features.npy", "labels.npy", "chunks.npy"]
            .iter()
            .zip(&before)
        {
            assert_eq!(&std::fs::read(out.join(f)).unwrap(), bytes, "{f}");
        }
        assert_eq!(read_sidecar(&out).unwrap(), set.sidecar);
        // Nothing of the staging is left behind.
        let entries = std::fs::read_dir(&out).unwrap().count();
        assert_eq!(entries, 4);
    }

    #[test]
    fn a_run_where_every_song_fails_leaves_no_output_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("audio")).unwrap();
        let catalog = dataset(dir.path(), 2, &[0, 1]);
        let (load, params) = (LoadOptions::default(), FeatureParams::default());
        let out = dir.path().join("features");
        let err = seed_job(dir.path(), &catalog, &load, &params, &out)
            .run(&|| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 failed") && err.contains("silent"), "{err}");
        assert!(!out.exists());
    }
}
