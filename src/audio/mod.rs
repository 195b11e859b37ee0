//! Audio in and out: decode any supported file to mono float samples at the analysis rate
//! (librosa.load semantics) and write WAV files.

pub mod decode;
pub mod resample;

use crate::error::AudioError;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The analysis sample rate of the seed protocol (librosa's default).
pub const DEFAULT_SAMPLE_RATE: u32 = 22_050;

/// Mono audio: samples in [-1, 1] at `sample_rate` Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// How a file is loaded: like `librosa.load(path, sr=sample_rate, mono=True, duration=max_seconds)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadOptions {
    /// Target sample rate in Hz (the file is resampled to it).
    pub sample_rate: u32,
    /// Read at most this many seconds from the start (the seed loads at most 180 s).
    pub max_seconds: Option<f64>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            sample_rate: DEFAULT_SAMPLE_RATE,
            max_seconds: Some(180.0),
        }
    }
}

/// Decodes `path`, averages its channels to mono, truncates to `max_seconds` and resamples
/// Recordings quieter than this (RMS, dB below full scale) are silence: they carry no song.
/// −60 dBFS is well under a quiet passage of mastered music (−30 … −20 dBFS) and above the
/// noise floor of a phone microphone in a quiet room.
pub const SILENCE_DBFS: f64 = -60.0;

/// RMS level of `samples` in dB relative to full scale (1.0); −∞ for digital silence.
pub fn level_dbfs(samples: &[f32]) -> f64 {
    let energy: f64 = samples.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    10.0 * (energy / samples.len().max(1) as f64).log10()
}

/// Whether `samples` are below [`SILENCE_DBFS`]; `Some(level)` when they are.
pub fn silent(samples: &[f32]) -> Option<f64> {
    let level = level_dbfs(samples);
    (level < SILENCE_DBFS).then_some(level)
}

/// to `opts.sample_rate`. Deterministic: the same file gives the same samples.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Audio, AudioError> {
    let max_seconds = opts.max_seconds;
    let decoded = decode::decode_file(path, max_seconds)?;
    if decoded.samples.is_empty() {
        return Err(AudioError::NoSamples {
            path: path.to_path_buf(),
        });
    }
    let samples = resample::resample(&decoded.samples, decoded.sample_rate, opts.sample_rate)?;
    Ok(Audio {
        samples,
        sample_rate: opts.sample_rate,
    })
}

/// Writes mono audio as a 16-bit PCM WAV file, atomically. Samples are clipped to [-1, 1].
pub fn write_wav(path: &Path, audio: &Audio) -> Result<(), AudioError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: audio.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    fsutil::write_atomic_with(path, |w| {
        let mut writer = hound::WavWriter::new(w, spec).map_err(std::io::Error::other)?;
        for &s in &audio.samples {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            writer.write_sample(v).map_err(std::io::Error::other)?;
        }
        writer.finalize().map_err(std::io::Error::other)
    })
    .map_err(|e| AudioError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_silence() {
        assert_eq!(level_dbfs(&[0.0; 100]), f64::NEG_INFINITY);
        assert!(level_dbfs(&[1.0, -1.0]).abs() < 1e-12);
        assert!((level_dbfs(&[0.1; 10]) + 20.0).abs() < 1e-5);
        assert_eq!(silent(&[0.5; 10]), None);
        assert!(silent(&[0.0005; 10]).is_some(), "−66 dBFS is silence");
        assert!(silent(&[]).is_some());
    }
}
