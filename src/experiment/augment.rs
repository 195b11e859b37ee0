//! Training-time augmentation: degraded copies of every training song, extracted (and cached)
//! like the clean features and stacked under them with the same labels.

use super::cache::features_dir;
use super::Progress;
use crate::config::ExperimentConfig;
use crate::dataset::{queries, Catalog, Song};
use crate::error::ExperimentError;
use crate::features::{extract_with, AudioTransform, FeatureSet};
use ndarray::{Array2, Axis};
use std::path::Path;

/// The training matrix: the song features plus any augmented copies, same labels.
pub struct TrainingRows {
    pub features: Array2<f32>,
    pub labels: Vec<usize>,
}

impl TrainingRows {
    /// The clean rows only.
    pub fn clean(set: &FeatureSet) -> Self {
        Self {
            features: set.features.clone(),
            labels: set.labels.clone(),
        }
    }
}

/// Extracts one augmented copy of the songs of `catalog` per `augmentation.copies` entry and
/// stacks the copies of `set`'s songs under its clean rows. `catalog` is every extracted song
/// (a superset of `set` when songs are kept out of the catalogue), so the copies' cache is the
/// same whichever songs a config trains on. A song whose augmented copy failed keeps its clean
/// rows only.
pub fn training_rows(
    config: &ExperimentConfig,
    root: &Path,
    catalog: &Catalog,
    set: &FeatureSet,
    progress: &Progress,
) -> Result<TrainingRows, ExperimentError> {
    let aug = &config.augmentation;
    if aug.copies.is_empty() {
        return Ok(TrainingRows::clean(set));
    }
    let mut blocks = vec![set.features.clone()];
    let mut labels = set.labels.clone();
    let sr = config.features.sample_rate();
    // Labels by track id: a song that failed in a copy is simply absent from it.
    let index = set.labels_by_track();
    for (i, &condition) in aug.copies.iter().enumerate() {
        progress.stage(super::Stage::Augment);
        // The k-th copy of a condition draws its own noise; numbering per condition keeps the
        // cache of a copy valid when other conditions are added to the list.
        let copy = aug.copies[..i].iter().filter(|&&c| c == condition).count();
        let apply = |song: &Song, samples: &[f32]| {
            queries::augment(samples, sr, condition, aug.seed, copy, song.index)
                .map_err(|e| e.to_string())
        };
        let transform = AudioTransform {
            key: format!("augment-{}-seed{}-copy{copy}", condition.name(), aug.seed),
            apply: &apply,
        };
        let dir = features_dir(config, root, Some(&transform.key));
        let (aug_set, _) = extract_with(
            root,
            catalog,
            &config.load_options(),
            &config.features,
            Some(&transform),
            &dir,
            progress.on_song,
        )?;
        let mut keep = Vec::new();
        for r in &aug_set.sidecar.songs {
            if let Some(&label) = index.get(r.song.track_id.as_str()) {
                keep.extend(r.first_row..r.first_row + r.n_chunks);
                labels.extend(std::iter::repeat_n(label, r.n_chunks));
            }
        }
        blocks.push(aug_set.features.select(Axis(0), &keep));
    }
    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
    let features =
        ndarray::concatenate(Axis(0), &views).expect("every block has the feature dimension");
    Ok(TrainingRows { features, labels })
}
