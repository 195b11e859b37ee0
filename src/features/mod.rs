//! Audio → feature matrices: librosa-compatible MFCC, the seed's 0.5 s chunk sums, and the
//! on-disk feature store.

pub mod chunks;
pub mod extract;
pub mod mfcc;
pub mod npy;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::error::FeatureError;

pub use chunks::chunk_features;
pub use extract::{extract, extract_with, AudioTransform, ExtractJob, ExtractSummary, TransformFn};
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
    /// What each chunk vector holds of its frames' MFCCs, one block of n_mfcc values per entry,
    /// in this order (the seed: `["sum"]`). Computed on the client, so a non-linear statistic
    /// costs nothing under FHE; the summed circuit then scores the query's sum of each block.
    #[serde(
        default = "FrameStat::seed",
        skip_serializing_if = "FrameStat::is_seed"
    )]
    pub frame_stats: Vec<FrameStat>,
}

/// A statistic of one chunk's MFCC frames (m_t, t = 1..T), per coefficient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameStat {
    /// Σ_t m_t: the seed's feature (the chunk's mean spectral envelope, times T).
    Sum,
    /// The standard deviation of m_t over the frames: how much the envelope moves inside the
    /// chunk (notes, onsets). A dB gain or a fixed filter shifts every m_t alike, so it
    /// cancels here.
    Std,
    /// The mean |m_{t+1} − m_t|: how fast the envelope moves (rhythm, articulation); also
    /// unchanged by a gain or a fixed filter.
    Delta,
}

impl FrameStat {
    fn seed() -> Vec<Self> {
        vec![Self::Sum]
    }
    fn is_seed(stats: &[Self]) -> bool {
        stats == [Self::Sum]
    }
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
            frame_stats: FrameStat::seed(),
        }
    }
}

impl FeatureParams {
    /// Feature dimension d: one block of n_mfcc values per frame statistic.
    pub fn dim(&self) -> usize {
        self.mfcc.n_mfcc * self.frame_stats.len()
    }

    /// The columns of the frame-sum block (the only one [`MeanNorm`] applies to), if any.
    pub fn sum_columns(&self) -> Option<std::ops::Range<usize>> {
        let n = self.mfcc.n_mfcc;
        let block = self.frame_stats.iter().position(|s| *s == FrameStat::Sum)?;
        Some(block * n..(block + 1) * n)
    }

    /// The frame statistics are a non-empty list without repeats, and mean normalisation has
    /// a sum block to normalise.
    pub fn check_frame_stats(&self) -> Result<(), FeatureError> {
        let bad = |reason: String| {
            Err(FeatureError::InvalidParams {
                param: "frame_stats",
                reason,
            })
        };
        if self.frame_stats.is_empty() {
            return bad("frame_stats is empty: give at least one of sum, std, delta".into());
        }
        for (i, s) in self.frame_stats.iter().enumerate() {
            if self.frame_stats[..i].contains(s) {
                return bad(format!("frame_stats lists {s:?} twice"));
            }
        }
        if self.mean_norm.is_some() && self.sum_columns().is_none() {
            return bad(
                "mean_norm normalises the sum block, but frame_stats has no \"sum\" (std and delta are already level-invariant)".into(),
            );
        }
        Ok(())
    }
    pub fn sample_rate(&self) -> u32 {
        self.mfcc.sample_rate
    }
}
