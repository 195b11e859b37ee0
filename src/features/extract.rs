//! Dataset → feature set, in parallel over songs. A file that fails is reported, not fatal;
//! songs whose file and parameters are unchanged since the last run are reused, not recomputed.

use super::store::{
    read_sidecar, DenseRows, Failure, FeatureSet, Sidecar, SongRecord, FORMAT, VERSION,
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
    let bytes = std::fs::read(path)?;
    Ok(Sha256::digest(&bytes)
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

/// Extracts the features of every song of `catalog` (paths relative to `root`) into `out`,
/// reusing the rows of songs whose file (size, mtime) and parameters match the existing set.
/// `on_song` is called once per finished song (for progress bars).
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
    let key = transform.map(|t| t.key.clone());
    let previous = reusable_rows(out, root, load, params, &key);

    let results: Vec<(PathBuf, Result<SongRows, String>, bool)> = catalog
        .songs
        .par_iter()
        .map(|song| {
            let path = root.join(&song.path);
            let reused =
                previous
                    .as_ref()
                    .and_then(|p| p.get(&song.path))
                    .and_then(|(rows, rec)| {
                        let stamp = file_stamp(&path).ok()?;
                        (stamp == (rec.bytes, rec.modified)).then(|| {
                            (
                                rows.clone(),
                                SongRecord {
                                    song: song.clone(),
                                    ..rec.clone()
                                },
                            )
                        })
                    });
            let out = match reused {
                Some(hit) => (song.path.clone(), Ok(hit), true),
                None => (
                    song.path.clone(),
                    song_features(root, song, load, &mfcc, params, transform),
                    false,
                ),
            };
            on_song();
            out
        })
        .collect();

    let mut dense = DenseRows::default();
    let mut failures = Vec::new();
    let (mut reused, mut extracted) = (0, 0);
    for (path, result, was_reused) in &results {
        match result {
            Ok((rows, record)) => {
                // Labels stay dense: failed files are skipped, later songs move up.
                dense.push(rows.view(), record.clone());
                if *was_reused {
                    reused += 1
                } else {
                    extracted += 1
                }
            }
            Err(error) => failures.push(Failure {
                path: path.clone(),
                error: error.clone(),
            }),
        }
    }
    if dense.is_empty() {
        return Err(FeatureError::NoSongs {
            dataset: root.to_path_buf(),
            out: out.to_path_buf(),
            failed: failures.len(),
            first_failure: failures.first().map(|f| f.error.clone()),
        });
    }
    // n_rows and songs are filled in from the rows.
    let set = dense.into_set(Sidecar {
        format: FORMAT.into(),
        version: VERSION,
        dataset: root.to_path_buf(),
        load: load.clone(),
        params: params.clone(),
        transform: key,
        n_rows: 0,
        dim: params.dim(),
        songs: Vec::new(),
        failures: failures.clone(),
        toolkit_version: env!("CARGO_PKG_VERSION").into(),
        shard: None,
    })?;
    set.save(out)?;
    let summary = ExtractSummary {
        songs: set.n_songs(),
        rows: set.features.nrows(),
        reused,
        extracted,
        failures,
    };
    Ok((set, summary))
}

/// Rows of the previous run at `out`, by song path, if it used the same dataset and parameters.
fn reusable_rows(
    out: &Path,
    root: &Path,
    load: &LoadOptions,
    params: &FeatureParams,
    transform: &Option<String>,
) -> Option<HashMap<PathBuf, (Array2<f32>, SongRecord)>> {
    let sidecar = read_sidecar(out).ok()?;
    if sidecar.dataset != root
        || &sidecar.load != load
        || &sidecar.params != params
        || &sidecar.transform != transform
    {
        return None;
    }
    let set = FeatureSet::load(out).ok()?;
    Some(
        set.sidecar
            .songs
            .iter()
            .map(|r| {
                (
                    r.song.path.clone(),
                    (set.song_rows(r.song.index).to_owned(), r.clone()),
                )
            })
            .collect(),
    )
}
