//! Audio → feature matrices: librosa-compatible MFCC, the seed's 0.5 s chunk sums, and the
//! on-disk feature store.

pub mod chunks;
pub mod extract;
pub mod mfcc;
pub mod store;

use serde::{Deserialize, Serialize};

pub use chunks::chunk_features;
pub use extract::{extract, extract_with, AudioTransform, ExtractSummary, TransformFn};
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
    /// Cepstral mean normalisation of the chunk features (none in the seed). Client-side, so it
    /// costs nothing under FHE; it makes the features independent of the recording level (c0)
    /// or of a fixed channel colouring (every coefficient).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_norm: Option<MeanNorm>,
}

/// Which coefficients [`MeanNorm`] normalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormCoefficients {
    /// c0 only: a gain g adds 20·log10 g dB to every mel band, which the orthonormal DCT puts
    /// in c0 alone, so this makes the features exactly level-invariant (up to the dB floor).
    C0,
    /// Every coefficient (CMN): a fixed filter (band limit, microphone, room colouring)
    /// multiplies each mel band by a constant, an offset in every coefficient.
    All,
}

/// Subtracts from each chunk's coefficients their mean over a window of `window_chunks` chunks
/// centred on it (shifted inwards at the edges; the whole recording when it is shorter). The
/// same code runs on training songs and on queries, so a query as long as the window is
/// normalised by its own mean, and a training chunk by the audio around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanNorm {
    pub coefficients: NormCoefficients,
    /// Window length in chunks (30 chunks of 0.5 s: the seed's 15 s query).
    #[serde(default = "MeanNorm::default_window")]
    pub window_chunks: usize,
}

impl MeanNorm {
    fn default_window() -> usize {
        30
    }
}

impl Default for FeatureParams {
    fn default() -> Self {
        Self {
            chunk_samples: 11_025,
            chunk_hop: 11_025,
            mfcc: MfccParams::default(),
            mean_norm: None,
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
