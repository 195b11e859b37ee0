//! Cache keys and folder names under `output.data_dir`. Every cache is keyed by the inputs it
//! was made from, not by the experiment's name, so experiments that need the same corpus,
//! features, query set or models share them, and a change of any input makes a new folder.

use crate::config::{AugmentationConfig, ExperimentConfig, QuantizationConfig};
use crate::features::{FeatureParams, FeatureSet};
use crate::model::LogisticParams;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// 12 hex digits of the SHA-256 of a value's JSON: a cache folder's key.
pub fn short_hash(value: &impl Serialize) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(value).expect("cache keys serialize");
    Sha256::digest(&json)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A folder's last component, for readable cache names.
fn name_of(root: &Path) -> String {
    root.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Where the synthetic default corpus of `config` is written.
pub fn synth_dir(config: &ExperimentConfig) -> PathBuf {
    let s = &config.dataset.synth;
    config
        .output
        .data_dir
        .join(format!("synth-{}x{}s-seed{}", s.songs, s.seconds, s.seed))
}

/// Where the features of `root` (optionally transformed) are cached: shared by every experiment
/// with the same loading and feature parameters, so an ablation extracts each variant once.
pub fn features_dir(config: &ExperimentConfig, root: &Path, transform: Option<&str>) -> PathBuf {
    let hash = short_hash(&(config.load_options(), &config.features, transform));
    let name = transform.unwrap_or("clean");
    config
        .output
        .data_dir
        .join("features")
        .join(format!("{}-{name}-{hash}", name_of(root)))
}

/// Where the robust protocol's query set of `root` (its first `songs` songs) is written.
pub fn queries_dir(config: &ExperimentConfig, root: &Path, songs: usize) -> PathBuf {
    let ev = &config.evaluation;
    let r = &ev.robust;
    let conditions: Vec<&str> = r.conditions.iter().map(|c| c.name()).collect();
    // The subset picks other songs for the same count: it is part of the name.
    let subset = config
        .dataset
        .subset
        .map_or(String::new(), |s| format!("-{}", s.name()));
    config.output.data_dir.join("queries").join(format!(
        "{}{subset}-{songs}songs-seed{}-{}s{}{}-{}",
        name_of(root),
        r.seed,
        ev.query_seconds,
        r.held_out_from
            .map_or(String::new(), |t| format!("-heldout{t}")),
        r.gain_db.map_or(String::new(), |g| format!("-gain{g}dB")),
        conditions.join("_")
    ))
}

/// What cached models were trained from; equal → reuse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInputs {
    pub training: LogisticParams,
    pub quantization: QuantizationConfig,
    pub features: FeatureParams,
    pub augmentation: AugmentationConfig,
    /// Training audio per song (seconds loaded).
    pub load: crate::audio::LoadOptions,
    /// sha256 of every song file, in label order.
    pub songs: Vec<String>,
}

impl ModelInputs {
    pub fn of(config: &ExperimentConfig, set: &FeatureSet) -> Self {
        Self {
            training: config.training.clone(),
            quantization: config.quantization.clone(),
            features: set.sidecar.params.clone(),
            augmentation: config.augmentation.clone(),
            load: set.sidecar.load.clone(),
            songs: set.sidecar.songs.iter().map(|r| r.sha256.clone()).collect(),
        }
    }

    /// The models' folder: keyed by everything they depend on, so experiments that train the
    /// same models (e.g. one config under two protocols) share them.
    pub fn dir(&self, config: &ExperimentConfig, set: &FeatureSet) -> PathBuf {
        config.output.data_dir.join("models").join(format!(
            "{}-{}",
            name_of(&set.sidecar.dataset),
            short_hash(self)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Condition;

    #[test]
    fn short_hash_is_stable_and_input_sensitive() {
        let a = short_hash(&("features", 20));
        assert_eq!(a.len(), 12);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, short_hash(&("features", 20)));
        assert_ne!(a, short_hash(&("features", 40)));
    }

    #[test]
    fn folder_names_carry_the_dataset_and_change_with_their_inputs() {
        let mut config = ExperimentConfig::seed("t");
        let root = Path::new("/data/dev-corpus");
        let clean = features_dir(&config, root, None);
        let name = clean.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("dev-corpus-clean-"), "{name}");
        assert!(clean.starts_with("data/features"));
        let aug = features_dir(&config, root, Some("augment-noise10-seed99-copy0"));
        assert_ne!(clean, aug);
        config.features.chunk_hop = 2205;
        assert_ne!(
            features_dir(&config, root, None),
            clean,
            "params are in the key"
        );
        assert_eq!(synth_dir(&config), Path::new("data/synth-400x30s-seed42"));

        config.evaluation.robust.conditions = vec![Condition::Aligned, Condition::Noise10];
        config.evaluation.robust.held_out_from = Some(20.0);
        let q = queries_dir(&config, root, 301);
        assert_eq!(
            q,
            Path::new("data/queries/dev-corpus-301songs-seed2024-15s-heldout20-aligned_noise10")
        );
    }
}
