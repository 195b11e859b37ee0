//! The feature store: one folder per feature set, readable from numpy/pandas.
//!
//! ```text
//! DIR/features.npy   float32 (n_rows × d)   one row per chunk
//! DIR/labels.npy     uint32  (n_rows)       song index (class label) of each row
//! DIR/chunks.npy     uint32  (n_rows)       chunk number within its song (start = k · chunk_hop)
//! DIR/features.json  sidecar: format/version, dataset, load + feature parameters, per-song
//!                    records (track id, file, sha256, size, rows) and per-file failures
//! ```

use crate::audio::LoadOptions;
use crate::dataset::{Catalog, Shard, Song};
use crate::error::FeatureError;
use crate::features::FeatureParams;
use crate::fsutil;
use ndarray::{Array1, Array2};
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

/// The part of a catalogue a shard's store holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub shard: Shard,
    /// Songs of the whole catalogue and the SHA-256 of their paths ([`Catalog::paths_sha256`]).
    pub catalog_songs: usize,
    pub catalog_sha256: String,
}

/// Songs' rows gathered in catalogue order with dense labels (a failed song leaves no gap):
/// how `extract` and `merge_shards` both build a store.
#[derive(Default)]
pub(crate) struct DenseRows<'a> {
    blocks: Vec<ndarray::ArrayView2<'a, f32>>,
    labels: Vec<usize>,
    chunk_index: Vec<usize>,
    songs: Vec<SongRecord>,
}

impl<'a> DenseRows<'a> {
    /// Appends a song: its label is the next one, its rows follow the previous song's.
    pub(crate) fn push(&mut self, rows: ndarray::ArrayView2<'a, f32>, mut record: SongRecord) {
        record.song.index = self.songs.len();
        record.first_row = self.labels.len();
        self.labels
            .extend(std::iter::repeat_n(record.song.index, rows.nrows()));
        self.chunk_index.extend(0..rows.nrows());
        self.blocks.push(rows);
        self.songs.push(record);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.songs.is_empty()
    }

    /// The set, with `sidecar`'s row count and songs filled in from the rows.
    pub(crate) fn into_set(self, sidecar: Sidecar) -> Result<FeatureSet, FeatureError> {
        let features = ndarray::concatenate(ndarray::Axis(0), &self.blocks).map_err(|e| {
            FeatureError::InvalidParams {
                param: "dim",
                reason: format!("song feature blocks of different widths: {e}"),
            }
        })?;
        Ok(FeatureSet {
            sidecar: Sidecar {
                n_rows: features.nrows(),
                songs: self.songs,
                ..sidecar
            },
            features,
            labels: self.labels,
            chunk_index: self.chunk_index,
        })
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
    pub fn save(&self, dir: &Path) -> Result<(), FeatureError> {
        let store_err = |path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| FeatureError::Store {
                reason: fsutil::explain(&path, &e),
                path,
            }
        };
        // All four files are written aside and moved in together, sidecar last: a failed or
        // interrupted save leaves the previous set as it was.
        let staging = fsutil::Staging::new(dir).map_err(store_err(dir))?;
        let to_u32 = |v: &[usize]| Array1::from_iter(v.iter().map(|&x| x as u32));
        let staged = staging.path();
        write_npy(&staged.join("features.npy"), &self.features)?;
        write_npy(&staged.join("labels.npy"), &to_u32(&self.labels))?;
        write_npy(&staged.join("chunks.npy"), &to_u32(&self.chunk_index))?;
        let sidecar = staged.join("features.json");
        fsutil::write_json_atomic(&sidecar, &self.sidecar).map_err(store_err(&sidecar))?;
        staging.commit("features.json").map_err(store_err(dir))
    }

    /// Combines the stores of `extract --shard i/n` (i = 0 … n−1) into exactly what one
    /// unsharded `extract` writes, byte for byte: rows in catalogue order, labels dense
    /// again, failures in order, no shard record. Refuses parts that are not every shard of
    /// one catalogue extracted with the same parameters, naming the folder and what differs.
    pub fn merge_shards(parts: Vec<(PathBuf, FeatureSet)>) -> Result<FeatureSet, FeatureError> {
        let refuse = |path: &Path, reason: String| FeatureError::Store {
            path: path.join("features.json"),
            reason,
        };
        let Some((first_path, first)) = parts.first() else {
            return Err(FeatureError::InvalidParams {
                param: "shards",
                reason: "no shard folders to merge".into(),
            });
        };
        let info = |path: &Path, set: &FeatureSet| {
            set.sidecar
                .shard
                .clone()
                .ok_or_else(|| refuse(path, "not a shard (written without extract --shard)".into()))
        };
        let reference = info(first_path, first)?;
        let count = reference.shard.count;
        let mut slots: Vec<Option<&FeatureSet>> = vec![None; count];
        for (path, set) in &parts {
            let i = info(path, set)?;
            let c = &set.sidecar;
            let r = &first.sidecar;
            let differs = [
                ("shard count", i.shard.count != count),
                (
                    "catalogue (its songs' paths)",
                    (i.catalog_songs, &i.catalog_sha256)
                        != (reference.catalog_songs, &reference.catalog_sha256),
                ),
                ("dataset", c.dataset != r.dataset),
                ("load options", c.load != r.load),
                ("feature parameters", c.params != r.params),
                ("audio transform", c.transform != r.transform),
                ("toolkit version", c.toolkit_version != r.toolkit_version),
            ]
            .into_iter()
            .find(|(_, d)| *d);
            if let Some((what, _)) = differs {
                return Err(refuse(
                    path,
                    format!("{what}: not the same as in {}", first_path.display()),
                ));
            }
            let slot = &mut slots[i.shard.index];
            if slot.is_some() {
                return Err(refuse(path, format!("shard {} is given twice", i.shard)));
            }
            *slot = Some(set);
        }
        let missing: Vec<String> = (0..count)
            .filter(|&k| slots[k].is_none())
            .map(|k| format!("{k}/{count}"))
            .collect();
        if !missing.is_empty() {
            return Err(FeatureError::InvalidParams {
                param: "shards",
                reason: format!("shard(s) {} missing", missing.join(", ")),
            });
        }
        let (mut rows, mut failures) = (DenseRows::default(), Vec::new());
        for set in slots.into_iter().flatten() {
            for record in &set.sidecar.songs {
                rows.push(set.song_rows(record.song.index), record.clone());
            }
            failures.extend(set.sidecar.failures.iter().cloned());
        }
        rows.into_set(Sidecar {
            failures,
            shard: None,
            ..first.sidecar.clone()
        })
    }

    /// Reads a folder written by [`FeatureSet::save`], checking format, version and shapes.
    pub fn load(dir: &Path) -> Result<Self, FeatureError> {
        let sidecar = read_sidecar(dir)?;
        let npy_err = |name: &str, e: &dyn std::fmt::Display| FeatureError::Store {
            path: dir.join(name),
            reason: e.to_string(),
        };
        let read_u32 = |name: &str| -> Result<Vec<usize>, FeatureError> {
            let a: Array1<u32> = read_npy(&dir.join(name)).map_err(|e| npy_err(name, &e))?;
            Ok(a.iter().map(|&x| x as usize).collect())
        };
        let features: Array2<f32> =
            read_npy(&dir.join("features.npy")).map_err(|e| npy_err("features.npy", &e))?;
        let labels = read_u32("labels.npy")?;
        let chunk_index = read_u32("chunks.npy")?;
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

fn write_npy<T: ndarray_npy::WritableElement, D: ndarray::Dimension>(
    path: &Path,
    array: &ndarray::Array<T, D>,
) -> Result<(), FeatureError> {
    use ndarray_npy::WriteNpyExt;
    fsutil::write_atomic_with(path, |w| array.write_npy(w).map_err(std::io::Error::other)).map_err(
        |e| FeatureError::Store {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    )
}

/// Reads a .npy file of 4-byte elements (f32, u32), first checking that the shape its header
/// claims matches the bytes that follow it: a damaged header must not make the reader
/// allocate what it claims (2^31 rows would be hundreds of GiB).
fn read_npy<A: ndarray_npy::ReadableElement, D: ndarray::Dimension>(
    path: &Path,
) -> Result<ndarray::Array<A, D>, String> {
    use ndarray_npy::ReadNpyExt;
    let bytes = std::fs::read(path).map_err(|e| fsutil::explain(path, &e))?;
    let (header_len, text) = match bytes.get(..10) {
        Some([0x93, b'N', b'U', b'M', b'P', b'Y', 1, _, a, b]) => {
            (10 + u16::from_le_bytes([*a, *b]) as usize, 10)
        }
        Some([0x93, b'N', b'U', b'M', b'P', b'Y', 2 | 3, ..]) => {
            let len = bytes.get(8..12).ok_or("truncated .npy header")?;
            (
                12 + u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize,
                12,
            )
        }
        _ => return Err("not a .npy file (bad magic or version)".into()),
    };
    let header = bytes
        .get(text..header_len)
        .ok_or_else(|| format!("truncated .npy header ({} bytes)", bytes.len()))?;
    let header = String::from_utf8_lossy(header);
    let shape = header
        .split_once("'shape':")
        .and_then(|(_, rest)| rest.split_once('('))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(dims, _)| dims)
        .ok_or("no shape in the .npy header")?;
    let elements = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .try_fold(1u64, |n, d| {
            let d: u64 = d
                .parse()
                .map_err(|_| format!("bad dimension {d:?} in the .npy shape"))?;
            n.checked_mul(d)
                .ok_or_else(|| "the .npy shape overflows".to_string())
        })?;
    let data = (bytes.len() - header_len.min(bytes.len())) as u64;
    if elements.checked_mul(4) != Some(data) {
        return Err(format!(
            "the header's shape ({shape}) needs {elements} × 4 bytes but {data} follow it"
        ));
    }
    ndarray::Array::<A, D>::read_npy(bytes.as_slice()).map_err(|e| e.to_string())
}

/// Reads and checks `DIR/features.json`.
pub fn read_sidecar(dir: &Path) -> Result<Sidecar, FeatureError> {
    let path = dir.join("features.json");
    let err = |reason: String| FeatureError::Store {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(err(format!(
            "not a feature set (format is not \"{FORMAT}\")"
        )));
    }
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(VERSION as u64) {
        return Err(err(format!(
            "feature set version {version:?}, this toolkit reads version {VERSION}; re-run extract"
        )));
    }
    serde_json::from_value(value).map_err(|e| err(format!("malformed sidecar: {e}")))
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
