//! One error enum per layer. Every variant that concerns a file names it, and says what
//! was wrong with it, so a failed run can be acted on without a debugger.

use std::path::PathBuf;
use thiserror::Error;

/// Errors of the `audio` layer: reading, decoding, resampling and writing audio files.
#[derive(Debug, Error)]
pub enum AudioError {
    #[error("{path}: cannot read file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file is empty (0 bytes)")]
    Empty { path: PathBuf },
    #[error("{path}: not a supported audio file ({reason})")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: decoding failed: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("{path}: decoded no audio samples")]
    NoSamples { path: PathBuf },
    #[error("resampling {from} Hz -> {to} Hz failed: {reason}")]
    Resample { from: u32, to: u32, reason: String },
    #[error("{path}: cannot write audio: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// Errors of the `features` layer: MFCC and chunk features, feature files.
#[derive(Debug, Error)]
pub enum FeatureError {
    #[error("audio too short for one window: {samples} samples, a window needs {needed}")]
    TooShort { samples: usize, needed: usize },
    #[error("invalid feature parameters: {0}")]
    InvalidParams(String),
    #[error("feature file {path}: {reason}")]
    Store { path: PathBuf, reason: String },
}

/// Errors of the `dataset` layer: finding songs, reading metadata, writing corpora.
#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("dataset folder {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("dataset path {path} is not a folder")]
    NotADirectory { path: PathBuf },
    #[error("dataset folder {path} holds no audio files (looked for mp3, wav, flac, ogg)")]
    NoAudioFiles { path: PathBuf },
    #[error("metadata file {path}: {reason}")]
    Metadata { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("invalid synthetic corpus parameters: {0}")]
    InvalidSynthParams(String),
}
