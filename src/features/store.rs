//! The feature store: one folder per feature set, readable from numpy/pandas.
//!
//! ```text
//! DIR/features.npy   float32 (n_rows × d)   one row per chunk
//! DIR/labels.npy     uint32  (n_rows)       song index (class label) of each row
//! DIR/chunks.npy     uint32  (n_rows)       chunk number within its song (start = k · chunk_hop)
//! DIR/features.json  sidecar: format/version, dataset, load + feature parameters, per-song
//!                    records (track id, file, sha256, size, rows) and per-file failures
//! ```

use super::npy::{self, NpyFile, NpyWriter};
use crate::audio::LoadOptions;
use crate::dataset::catalog::order_shards;
use crate::dataset::{Catalog, Song};
use crate::error::FeatureError;
use crate::features::FeatureParams;
use crate::fsutil;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "fhe-shazam-features";
pub const VERSION: u32 = 1;

/// One extracted song: where its rows are and what file they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SongRecord {
    pub song: Song,
    pub sha256: String,
    pub bytes: u64,
    /// Modification time (seconds since the epoch), for the cheap "unchanged?" check.
    pub modified: u64,
    pub first_row: usize,
    pub n_chunks: usize,
    pub duration_s: f64,
}

/// A file that could not be turned into features, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub path: PathBuf,
    pub error: String,
}

/// The JSON sidecar describing a feature set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    pub format: String,
    pub version: u32,
    /// Dataset root the song paths are relative to.
    pub dataset: PathBuf,
    pub load: LoadOptions,
    pub params: FeatureParams,
    /// The audio transform (augmentation) applied before the features, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    pub n_rows: usize,
    pub dim: usize,
    /// Extracted songs; `songs[k].song.index == k` (failed files are left out, so labels stay dense).
    pub songs: Vec<SongRecord>,
    pub failures: Vec<Failure>,
    pub toolkit_version: String,
    /// Written by `extract --shard`: which part of which catalogue this store holds (`merge`
    /// combines the parts into exactly the unsharded store, which has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
}

/// The part of a catalogue a shard's store holds (shared with query-set shards).
pub use crate::dataset::ShardInfo;

/// A store written song by song, in catalogue order, straight to disk (memory flat in the
/// number of songs): how `extract` and `merge_shards` both build a store. Each pushed song gets
/// the next label (a failed song leaves no gap) and the rows after the previous song's. Files
/// go to a staging folder that [`StoreWriter::finish`] moves into place; dropped unfinished
/// (an error anywhere), the output folder keeps what it had.
pub struct StoreWriter {
    dir: PathBuf,
    staging: fsutil::Staging,
    features: NpyWriter<f32>,
    labels: NpyWriter<u32>,
    chunks: NpyWriter<u32>,
    dim: usize,
    rows: usize,
    songs: Vec<SongRecord>,
    failures: Vec<Failure>,
}

impl StoreWriter {
    /// Starts a store of `dim`-wide rows in `dir`.
    pub fn create(dir: &Path, dim: usize) -> Result<Self, FeatureError> {
        let staging = fsutil::Staging::new(dir).map_err(store_err(dir))?;
        let staged = |name: &str| staging.path().join(name);
        let features = NpyWriter::create(&staged(FEATURES)).map_err(store_err(dir))?;
        let labels = NpyWriter::create(&staged(LABELS)).map_err(store_err(dir))?;
        let chunks = NpyWriter::create(&staged(CHUNKS)).map_err(store_err(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            staging,
            features,
            labels,
            chunks,
            dim,
            rows: 0,
            songs: Vec::new(),
            failures: Vec::new(),
        })
    }

    /// Appends a song's rows.
    pub fn push(
        &mut self,
        rows: ndarray::ArrayView2<'_, f32>,
        mut record: SongRecord,
    ) -> Result<(), FeatureError> {
        if rows.ncols() != self.dim {
            return Err(FeatureError::InvalidParams {
                param: "dim",
                reason: format!(
                    "{}: {} features per row, the store has {}",
                    record.song.path.display(),
                    rows.ncols(),
                    self.dim
                ),
            });
        }
        record.song.index = self.songs.len();
        record.first_row = self.rows;
        record.n_chunks = rows.nrows();
        let staged = |name: &str| self.staging.path().join(name);
        let label = record.song.index as u32;
        self.features
            .write(rows.iter().copied())
            .map_err(store_err(&staged(FEATURES)))?;
        self.labels
            .write(std::iter::repeat_n(label, rows.nrows()))
            .map_err(store_err(&staged(LABELS)))?;
        self.chunks
            .write(0..rows.nrows() as u32)
            .map_err(store_err(&staged(CHUNKS)))?;
        self.rows += rows.nrows();
        self.songs.push(record);
        Ok(())
    }

    /// Records a file that could not be turned into features.
    pub fn fail(&mut self, failure: Failure) {
        self.failures.push(failure);
    }

    pub fn n_songs(&self) -> usize {
        self.songs.len()
    }

    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Writes the shapes and `sidecar` (its rows, width, songs and failures filled in from what
    /// was pushed) and moves the store into place, sidecar last. Returns the sidecar written.
    pub fn finish(self, sidecar: Sidecar) -> Result<Sidecar, FeatureError> {
        let sidecar = Sidecar {
            n_rows: self.rows,
            dim: self.dim,
            songs: self.songs,
            failures: self.failures,
            ..sidecar
        };
        let staged = |name: &str| self.staging.path().join(name);
        self.features
            .finish(&[self.rows, self.dim])
            .map_err(store_err(&staged(FEATURES)))?;
        self.labels
            .finish(&[self.rows])
            .map_err(store_err(&staged(LABELS)))?;
        self.chunks
            .finish(&[self.rows])
            .map_err(store_err(&staged(CHUNKS)))?;
        let json = staged(SIDECAR);
        fsutil::write_json_atomic(&json, &sidecar).map_err(store_err(&json))?;
        self.staging.commit(SIDECAR).map_err(store_err(&self.dir))?;
        Ok(sidecar)
    }
}

/// A store on disk whose songs' rows are read one song at a time (memory ~ one song): the
/// previous run's rows that `extract` reuses, and the shards `merge_shards` combines.
pub struct StoreReader {
    pub sidecar: Sidecar,
    path: PathBuf,
    features: NpyFile<f32>,
}

impl StoreReader {
    /// Opens `dir`, checking the sidecar and the features' shape (labels and chunks are not
    /// read: they follow from the song records).
    pub fn open(dir: &Path) -> Result<Self, FeatureError> {
        let sidecar = read_sidecar(dir)?;
        let path = dir.join(FEATURES);
        let features = NpyFile::open(&path).map_err(|reason| FeatureError::Store {
            path: path.clone(),
            reason,
        })?;
        if features.shape != [sidecar.n_rows, sidecar.dim] {
            return Err(FeatureError::Store {
                path,
                reason: format!(
                    "shape {:?} disagrees with features.json ({} × {})",
                    features.shape, sidecar.n_rows, sidecar.dim
                ),
            });
        }
        if let Some(r) = sidecar
            .songs
            .iter()
            .find(|r| r.first_row + r.n_chunks > sidecar.n_rows)
        {
            return Err(FeatureError::Store {
                path: dir.join(SIDECAR),
                reason: format!(
                    "song {} claims rows {}..{} of {}",
                    r.song.track_id,
                    r.first_row,
                    r.first_row + r.n_chunks,
                    sidecar.n_rows
                ),
            });
        }
        Ok(Self {
            sidecar,
            path,
            features,
        })
    }

    /// The rows of the song at `position` in the sidecar's list.
    pub fn song_rows(&self, position: usize) -> Result<Array2<f32>, FeatureError> {
        let r = &self.sidecar.songs[position];
        let dim = self.sidecar.dim;
        let values = self
            .features
            .read_at(r.first_row * dim, r.n_chunks * dim)
            .map_err(|e| FeatureError::Store {
                path: self.path.clone(),
                reason: format!("reading the rows of {}: {e}", r.song.path.display()),
            })?;
        Array2::from_shape_vec((r.n_chunks, dim), values).map_err(|e| FeatureError::InvalidParams {
            param: "dim",
            reason: e.to_string(),
        })
    }
}

const FEATURES: &str = "features.npy";
const LABELS: &str = "labels.npy";
const CHUNKS: &str = "chunks.npy";
const SIDECAR: &str = "features.json";

/// The store error of an I/O failure on `path`, in plain words.
fn store_err(path: &Path) -> impl Fn(std::io::Error) -> FeatureError {
    let path = path.to_path_buf();
    move |e: std::io::Error| FeatureError::Store {
        reason: fsutil::explain(&path, &e),
        path: path.clone(),
    }
}

/// Features of a dataset: the matrix, its labels and its description.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    pub features: Array2<f32>,
    pub labels: Vec<usize>,
    pub chunk_index: Vec<usize>,
    pub sidecar: Sidecar,
}

impl FeatureSet {
    /// A feature set of `features` with contiguous rows per label (labels sorted, every song
    /// with at least one row), as if extracted from `dataset`: for tests of the layers above.
    #[cfg(test)]
    pub(crate) fn for_tests(features: Array2<f32>, labels: Vec<usize>, dataset: &str) -> Self {
        let n_songs = labels.iter().max().map_or(0, |&m| m + 1);
        let songs = (0..n_songs)
            .map(|k| {
                let first_row = labels.iter().position(|&l| l == k).expect("rows per song");
                let n_chunks = labels.iter().filter(|&&l| l == k).count();
                SongRecord {
                    song: Song {
                        index: k,
                        track_id: format!("{k:06}"),
                        path: format!("audio/{k:06}.wav").into(),
                        title: None,
                        artist: None,
                    },
                    sha256: format!("{k:064x}"),
                    bytes: 0,
                    modified: 0,
                    first_row,
                    n_chunks,
                    duration_s: n_chunks as f64 * 0.5,
                }
            })
            .collect();
        let chunk_index = labels
            .iter()
            .enumerate()
            .map(|(i, &l)| i - labels.iter().position(|&m| m == l).expect("label"))
            .collect();
        Self {
            sidecar: Sidecar {
                format: FORMAT.into(),
                version: VERSION,
                dataset: dataset.into(),
                load: LoadOptions::default(),
                params: FeatureParams::default(),
                transform: None,
                n_rows: features.nrows(),
                dim: features.ncols(),
                songs,
                failures: vec![],
                toolkit_version: String::new(),
                shard: None,
            },
            features,
            labels,
            chunk_index,
        }
    }

    /// The songs the rows are labelled with.
    pub fn catalog(&self) -> Catalog {
        Catalog {
            songs: self.sidecar.songs.iter().map(|r| r.song.clone()).collect(),
        }
    }

    /// Each extracted song's label by track id (how other song lists — augmented copies, query
    /// sets — are matched to this set's labels).
    pub fn labels_by_track(&self) -> std::collections::HashMap<&str, usize> {
        self.sidecar
            .songs
            .iter()
            .map(|r| (r.song.track_id.as_str(), r.song.index))
            .collect()
    }

    /// The songs `keep` (indices, ascending) as a feature set of their own, relabelled
    /// 0..keep.len() in that order: a catalogue drawn from a larger extracted set.
    pub fn subset(&self, keep: &[usize]) -> Self {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        let mut songs = Vec::with_capacity(keep.len());
        for (label, &k) in keep.iter().enumerate() {
            let r = &self.sidecar.songs[k];
            let mut record = r.clone();
            record.song.index = label;
            record.first_row = rows.len();
            rows.extend(r.first_row..r.first_row + r.n_chunks);
            labels.extend(std::iter::repeat_n(label, r.n_chunks));
            songs.push(record);
        }
        let chunk_index = rows.iter().map(|&i| self.chunk_index[i]).collect();
        let features = self.features.select(ndarray::Axis(0), &rows);
        Self {
            sidecar: Sidecar {
                n_rows: features.nrows(),
                songs,
                ..self.sidecar.clone()
            },
            features,
            labels,
            chunk_index,
        }
    }

    pub fn n_songs(&self) -> usize {
        self.sidecar.songs.len()
    }

    /// The rows of one song (by index).
    pub fn song_rows(&self, index: usize) -> ndarray::ArrayView2<'_, f32> {
        let r = &self.sidecar.songs[index];
        self.features
            .slice(ndarray::s![r.first_row..r.first_row + r.n_chunks, ..])
    }

    /// Writes the folder: all files or none, the sidecar last (it marks the set complete).
    /// The files are those a [`StoreWriter`] streams, byte for byte.
    pub fn save(&self, dir: &Path) -> Result<(), FeatureError> {
        // All four files are written aside and moved in together, sidecar last: a failed or
        // interrupted save leaves the previous set as it was.
        let staging = fsutil::Staging::new(dir).map_err(store_err(dir))?;
        let staged = |name: &str| staging.path().join(name);
        let u32s = |v: &[usize]| v.iter().map(|&x| x as u32).collect::<Vec<_>>();
        let (rows, dim) = self.features.dim();
        npy::write(
            &staged(FEATURES),
            &[rows, dim],
            self.features.iter().copied(),
        )
        .map_err(store_err(&staged(FEATURES)))?;
        npy::write(&staged(LABELS), &[rows], u32s(&self.labels))
            .map_err(store_err(&staged(LABELS)))?;
        npy::write(&staged(CHUNKS), &[rows], u32s(&self.chunk_index))
            .map_err(store_err(&staged(CHUNKS)))?;
        let sidecar = staged(SIDECAR);
        fsutil::write_json_atomic(&sidecar, &self.sidecar).map_err(store_err(&sidecar))?;
        staging.commit(SIDECAR).map_err(store_err(dir))
    }

    /// Reads a folder written by [`FeatureSet::save`] or a [`StoreWriter`], checking format,
    /// version and shapes. Memory ~ the matrix (read in blocks, never twice).
    pub fn load(dir: &Path) -> Result<Self, FeatureError> {
        let sidecar = read_sidecar(dir)?;
        let npy_err = |name: &str, e: &dyn std::fmt::Display| FeatureError::Store {
            path: dir.join(name),
            reason: e.to_string(),
        };
        let read = |name: &str| -> Result<(Vec<usize>, Vec<u32>), FeatureError> {
            let file = NpyFile::<u32>::open(&dir.join(name)).map_err(|e| npy_err(name, &e))?;
            let shape = file.shape.clone();
            Ok((shape, file.read_all().map_err(|e| npy_err(name, &e))?))
        };
        let file = NpyFile::<f32>::open(&dir.join(FEATURES)).map_err(|e| npy_err(FEATURES, &e))?;
        let shape = file.shape.clone();
        let [n_rows, dim] = shape[..] else {
            return Err(npy_err(
                FEATURES,
                &format!("{}-dimensional, not a matrix", shape.len()),
            ));
        };
        let values = file.read_all().map_err(|e| npy_err(FEATURES, &e))?;
        let features =
            Array2::from_shape_vec((n_rows, dim), values).map_err(|e| npy_err(FEATURES, &e))?;
        let (label_shape, labels) = read(LABELS)?;
        let (chunk_shape, chunks) = read(CHUNKS)?;
        if label_shape.len() != 1 || chunk_shape.len() != 1 {
            return Err(npy_err(LABELS, &"labels and chunks must be 1-dimensional"));
        }
        let labels: Vec<usize> = labels.into_iter().map(|x| x as usize).collect();
        let chunk_index: Vec<usize> = chunks.into_iter().map(|x| x as usize).collect();
        let rows = features.nrows();
        if rows != sidecar.n_rows
            || labels.len() != rows
            || chunk_index.len() != rows
            || features.ncols() != sidecar.dim
        {
            return Err(npy_err(
                "features.npy",
                &format!(
                    "shapes disagree with features.json: features {:?}, labels {}, chunks {}, sidecar {} × {}",
                    features.shape(), labels.len(), chunk_index.len(), sidecar.n_rows, sidecar.dim
                ),
            ));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= sidecar.songs.len()) {
            return Err(npy_err(
                "labels.npy",
                &format!("label {bad} but only {} songs", sidecar.songs.len()),
            ));
        }
        Ok(Self {
            features,
            labels,
            chunk_index,
            sidecar,
        })
    }
}

/// Combines the stores of `extract --shard i/n` (i = 0 … n−1, in `dirs` in any order) into
/// `out`, exactly what one unsharded `extract` writes, byte for byte: rows in catalogue order,
/// labels dense again, failures in order, no shard record. Reads one song at a time (memory ~
/// the sidecars). Refuses folders that are not every shard of one catalogue extracted with the
/// same parameters, naming the folder and what differs; `out` is then left as it was.
pub fn merge_shards(dirs: &[PathBuf], out: &Path) -> Result<Sidecar, FeatureError> {
    let parts = dirs
        .iter()
        .map(|dir| {
            let store = StoreReader::open(dir)?;
            let shard = store.sidecar.shard.as_ref().map(|i| i.shard);
            Ok((dir.clone(), shard, store))
        })
        .collect::<Result<Vec<_>, FeatureError>>()?;
    let stores = order_shards(parts, |part, first| {
        let (c, r) = (&part.sidecar, &first.sidecar);
        [
            (
                "catalogue (its songs' paths)",
                !ShardInfo::same_catalogue(c.shard.as_ref(), r.shard.as_ref()),
            ),
            ("dataset", c.dataset != r.dataset),
            ("load options", c.load != r.load),
            ("feature parameters", c.params != r.params),
            ("audio transform", c.transform != r.transform),
            ("toolkit version", c.toolkit_version != r.toolkit_version),
        ]
        .into_iter()
        .find_map(|(what, d)| d.then_some(what))
    })
    .map_err(|refusal| match refusal.dir {
        Some(dir) => FeatureError::Store {
            path: dir.join(SIDECAR),
            reason: refusal.reason,
        },
        None => FeatureError::InvalidParams {
            param: "shards",
            reason: refusal.reason,
        },
    })?;
    let first = &stores[0];
    let mut writer = StoreWriter::create(out, first.sidecar.dim)?;
    for store in &stores {
        for (position, record) in store.sidecar.songs.iter().enumerate() {
            writer.push(store.song_rows(position)?.view(), record.clone())?;
        }
        for failure in &store.sidecar.failures {
            writer.fail(failure.clone());
        }
    }
    writer.finish(Sidecar {
        shard: None,
        ..first.sidecar.clone()
    })
}

/// Reads and checks `DIR/features.json`.
pub fn read_sidecar(dir: &Path) -> Result<Sidecar, FeatureError> {
    let path = dir.join("features.json");
    let err = |reason: String| FeatureError::Store {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    // Format and version first, so an old or foreign file gets that message rather than a
    // field error; then the sidecar straight from the text (a JSON value tree of a large
    // catalogue would take many times the matrix's memory).
    #[derive(Deserialize)]
    struct Header {
        format: Option<serde_json::Value>,
        version: Option<serde_json::Value>,
    }
    let header: Header =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    if header.format.as_ref().and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(err(format!(
            "not a feature set (format is not \"{FORMAT}\")"
        )));
    }
    let version = header.version.as_ref().and_then(|v| v.as_u64());
    if version != Some(VERSION as u64) {
        return Err(err(format!(
            "feature set version {version:?}, this toolkit reads version {VERSION}; re-run extract"
        )));
    }
    serde_json::from_str(&text).map_err(|e| err(format!("malformed sidecar: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subset_relabels_its_songs_and_keeps_their_rows() {
        let features = Array2::from_shape_fn((6, 2), |(i, j)| (10 * i + j) as f32);
        let set = FeatureSet::for_tests(features, vec![0, 0, 1, 2, 2, 2], "d");
        let sub = set.subset(&[0, 2]);
        assert_eq!(sub.labels, vec![0, 0, 1, 1, 1]);
        assert_eq!(sub.n_songs(), 2);
        assert_eq!(sub.sidecar.songs[1].song.track_id, "000002");
        assert_eq!(sub.sidecar.songs[1].song.index, 1);
        assert_eq!(sub.sidecar.songs[1].first_row, 2);
        assert_eq!(sub.song_rows(1), set.song_rows(2));
        assert_eq!(sub.chunk_index, vec![0, 1, 0, 1, 2]);
        assert_eq!(sub.sidecar.n_rows, 5);
    }
}
