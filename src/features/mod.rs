//! Audio → feature matrices: librosa-compatible MFCC, the seed's 0.5 s chunk sums, and the
//! on-disk feature store.

pub mod chunks;
pub mod extract;
pub mod mfcc;
pub mod store;

use serde::{Deserialize, Serialize};

pub use chunks::chunk_features;
pub use extract::{extract, extract_with, AudioTransform, ExtractSummary};
pub use mfcc::{Mfcc, MfccParams};
pub use store::FeatureSet;

/// Everything that determines a feature vector. Defaults are the seed protocol
/// (docs/ARCHITECTURE.md §2): 22050 Hz, 0.5 s chunks (11025 samples), librosa's MFCC defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureParams {
    /// Samples per chunk; each chunk gives one feature vector (the MFCC summed over its frames).
    pub chunk_samples: usize,
    /// Samples between the starts of consecutive chunks (= `chunk_samples`: no overlap, as the seed).
    pub chunk_hop: usize,
    pub mfcc: MfccParams,
}

impl Default for FeatureParams {
    fn default() -> Self {
        Self {
            chunk_samples: 11_025,
            chunk_hop: 11_025,
            mfcc: MfccParams::default(),
        }
    }
}

impl FeatureParams {
    /// Feature dimension d.
    pub fn dim(&self) -> usize {
        self.mfcc.n_mfcc
    }
    pub fn sample_rate(&self) -> u32 {
        self.mfcc.sample_rate
    }
}
