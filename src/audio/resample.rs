//! High-quality resampling (close to librosa's default soxr_hq).

use crate::error::AudioError;

/// Resamples mono `samples` from `from` Hz to `to` Hz; returns a copy when the rates are equal.
/// Output length is `ceil(len * to / from)` like soxr/librosa.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    let _ = (samples, from, to);
    todo!("audio decoding helper")
}
