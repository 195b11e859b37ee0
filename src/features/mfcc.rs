//! librosa-compatible MFCC (librosa.feature.mfcc with its defaults).

use crate::error::FeatureError;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// librosa's MFCC parameters; `Default` is librosa 0.11's defaults at sr = 22050.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfccParams {
    pub sample_rate: u32,
    pub n_mfcc: usize,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    pub fmin: f64,
    /// None = sample_rate / 2.
    pub fmax: Option<f64>,
    /// power_to_db's dynamic range floor below the maximum (None disables it).
    pub top_db: Option<f64>,
}

impl Default for MfccParams {
    fn default() -> Self {
        Self {
            sample_rate: 22_050,
            n_mfcc: 20,
            n_fft: 2048,
            hop_length: 512,
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            top_db: Some(80.0),
        }
    }
}

/// A prepared MFCC extractor (window, mel filterbank, DCT matrix, FFT plan), reusable
/// across calls and threads.
pub struct Mfcc {
    params: MfccParams,
}

impl Mfcc {
    pub fn new(params: MfccParams) -> Result<Self, FeatureError> {
        Ok(Self { params })
    }
    pub fn params(&self) -> &MfccParams {
        &self.params
    }
    /// MFCC matrix, shape (n_mfcc, 1 + len / hop_length).
    pub fn compute(&self, y: &[f32]) -> Array2<f32> {
        let _ = y;
        todo!("MFCC helper")
    }
}
