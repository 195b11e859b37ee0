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
    /// `param` names the parameter (e.g. `mfcc.n_fft`); `reason` says what was wrong.
    #[error("invalid feature parameters: {reason}")]
    InvalidParams { param: &'static str, reason: String },
    #[error("feature file {path}: {reason}")]
    Store { path: PathBuf, reason: String },
    /// Every song failed (or there were none): nothing is written, the folder keeps what it had.
    #[error("no song of {dataset} could be extracted ({failed} failed{}); {out} was left as it was", first_failure.as_deref().map(|f| format!("; first: {f}")).unwrap_or_default())]
    NoSongs {
        dataset: PathBuf,
        out: PathBuf,
        failed: usize,
        first_failure: Option<String>,
    },
    #[error("audio sample {index} is not finite ({value}); librosa rejects such buffers too")]
    NonFiniteAudio { index: usize, value: f32 },
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
    #[error("invalid degradation: {0}")]
    InvalidDegradation(String),
    /// An external program (ffmpeg) is missing or failed; `reason` says what to do or quotes
    /// its stderr.
    #[error("{tool}: {reason}")]
    ExternalTool { tool: String, reason: String },
    #[error("invalid query set parameters: {0}")]
    InvalidQueryParams(String),
    #[error(
        "{song}: {available_seconds:.2} s of audio {window}, a query needs at least {needed_seconds:.2} s"
    )]
    ClipTooShort {
        song: String,
        window: String,
        available_seconds: f64,
        needed_seconds: f64,
    },
    #[error("query set {path}: {reason}")]
    QuerySet { path: PathBuf, reason: String },
    #[error("query list {path}: {reason}")]
    QueryList { path: PathBuf, reason: String },
    /// Every song failed: nothing is written, the folder keeps what it had.
    #[error("no song of {dataset} gave queries ({failed} failed{}); {out} was left as it was", first_failure.as_deref().map(|f| format!("; first: {f}")).unwrap_or_default())]
    NoQueries {
        dataset: PathBuf,
        out: PathBuf,
        failed: usize,
        first_failure: Option<String>,
    },
}

/// Errors of the `model` layer: training, quantizing, scoring and model files.
/// Non-convergence of the optimizer is not an error: it is reported in `FitInfo`.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A hyperparameter of training or quantization (`param` names it).
    #[error("invalid model parameters: {reason}")]
    InvalidParams { param: &'static str, reason: String },
    /// A model whose parts do not fit together (shapes, ranges, catalog).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    #[error("training needs at least 2 classes, got {n_classes}")]
    TooFewClasses { n_classes: usize },
    #[error("{what}: expected {expected} classes (columns), got {found}")]
    ClassCount {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{what} does not fit 62-bit integers: reduce n_bits or check the weights")]
    Overflow { what: String },
    #[error("training set is empty (0 rows or 0 features)")]
    EmptyTrainingSet,
    #[error("feature matrix has {rows} rows but {labels} labels were given")]
    LabelCount { rows: usize, labels: usize },
    #[error("label {label} at row {row} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        row: usize,
        label: usize,
        n_classes: usize,
    },
    #[error("class {class} has no training rows (every class needs at least one)")]
    EmptyClass { class: usize },
    #[error("{what}: expected {expected} features (columns), got {found}")]
    FeatureCount {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{what}: non-finite value at row {row}, column {col}")]
    NonFinite {
        what: &'static str,
        row: usize,
        col: usize,
    },
    #[error(
        "quantized input value {value} at row {row}, column {col} is outside the model's \
         input range [{min}, {max}]"
    )]
    InputOutOfRange {
        row: usize,
        col: usize,
        value: i64,
        min: i64,
        max: i64,
    },
    #[error("{backend} backend failed: {reason}")]
    Backend {
        backend: &'static str,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a fhe-shazam model file (format {found:?})")]
    WrongFormat { path: PathBuf, found: String },
    #[error("{path}: model file version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("{path}: corrupt model file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Errors of the `fhe` layer: parameters, layouts, noise budget, encryption, wire format.
#[derive(Debug, Error)]
pub enum FheError {
    /// `param` names the parameter or key part; `reason` says what was wrong.
    #[error("invalid FHE parameters: {reason}")]
    InvalidParams { param: &'static str, reason: String },
    #[error("invalid polynomial layout: {0}")]
    InvalidLayout(String),
    #[error("invalid integer linear layer: {0}")]
    InvalidLayer(String),
    #[error("{what}: expected shape {expected:?}, found {found:?}")]
    Shape {
        what: &'static str,
        expected: (usize, usize),
        found: (usize, usize),
    },
    #[error(
        "query value {value} at chunk {chunk}, feature {feature} is outside the model's input range {min}..={max}"
    )]
    InputOutOfRange {
        chunk: usize,
        feature: usize,
        value: i64,
        min: i64,
        max: i64,
    },
    #[error(
        "noise budget exceeded: failure probability per score 2^{log2_failure:.1} > 2^{max_log2:.0} ({detail})"
    )]
    NoiseBudget {
        log2_failure: f64,
        max_log2: f64,
        detail: String,
    },
    #[error("malformed {what}: {reason}")]
    Wire { what: &'static str, reason: String },
    #[error("{what}: unsupported wire version {found} (this build reads version {supported})")]
    WireVersion {
        what: &'static str,
        found: u16,
        supported: u16,
    },
    #[error("{what}: {field} does not match (expected {expected}, found {found})")]
    WireMismatch {
        what: &'static str,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error(
        "FHE result differs from the exact integer circuit in {count} of {total} scores; first at chunk {chunk}, class {class}: expected {expected}, decrypted {found}"
    )]
    Mismatch {
        count: usize,
        total: usize,
        chunk: usize,
        class: usize,
        expected: i64,
        found: i64,
    },
}

/// Errors of the `eval` layer: a query file, a model, the FHE scheme or the landmark
/// baseline failed.
#[derive(Debug, Error)]
pub enum EvalError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Fhe(#[from] FheError),
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// A decision rule asked of a circuit that cannot give it what it needs.
    #[error("circuit: {0}")]
    Circuit(String),
    /// Execute mode: the scheme failed on one query — [`FheError::Mismatch`] is the signal that
    /// a decrypted score differs from the exact integer circuit.
    #[error("query {query} ({}): {source}",
        truth.map_or("not in the catalogue".to_string(), |t| format!("song {t}")))]
    Query {
        query: usize,
        truth: Option<usize>,
        #[source]
        source: FheError,
    },
    #[error("query file {path}: {source}")]
    QueryFeatures {
        path: PathBuf,
        #[source]
        source: FeatureError,
    },
    /// The landmark baseline failed on a file (parameters, or audio it cannot fingerprint).
    #[error("{path}: landmark baseline: {source}")]
    Landmark {
        path: PathBuf,
        #[source]
        source: FingerprintError,
    },
}

/// Errors of the experiment config (`config.rs`): reading, parsing, validating a TOML file.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("config {path}: invalid: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: InvalidConfig,
    },
}

/// What is wrong with a parsed config: a field, or a section its own layer rejects.
#[derive(Debug, Error)]
pub enum InvalidConfig {
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("quantization (n_bits {n_bits}): {source}")]
    Quantization {
        n_bits: u32,
        #[source]
        source: ModelError,
    },
    #[error("training: {0}")]
    Training(#[source] ModelError),
    #[error("features: {0}")]
    Features(#[source] FeatureError),
    #[error("landmark.params: {0}")]
    Landmark(#[source] FingerprintError),
}

/// Errors of the `experiment` layer: a whole run, from the dataset to the report.
#[derive(Debug, Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Fhe(#[from] FheError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    SongFeatures {
        path: PathBuf,
        #[source]
        source: FeatureError,
    },
    #[error("{path} has {found} songs but the feature set has {expected}")]
    CatalogMismatch {
        path: PathBuf,
        found: usize,
        expected: usize,
    },
    #[error("{path} is not a quantized model (it holds a float model)")]
    NotQuantized { path: PathBuf },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A folder `merge` cannot take as a shard (what differs, what is missing or malformed).
    #[error("{path}: {reason}")]
    Shard { path: PathBuf, reason: String },
}

/// Errors of the `report` layer: writing plots and report files.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{path}: cannot write plot: {reason}")]
    Plot { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Errors of the `fingerprint` layer: landmark parameters, audio too short or not finite,
/// and landmark index files.
#[derive(Debug, Error)]
pub enum FingerprintError {
    /// `param` names the field of `LandmarkParams`.
    #[error("invalid landmark parameters: {reason}")]
    InvalidParams { param: &'static str, reason: String },
    #[error("audio too short for one STFT frame: {samples} samples, a frame needs {needed}")]
    TooShort { samples: usize, needed: usize },
    #[error("audio sample {index} is not finite ({value})")]
    NonFiniteAudio { index: usize, value: f32 },
    #[error("song {song} is already in the landmark index")]
    DuplicateSong { song: usize },
    #[error("landmark index capacity exceeded: {0}")]
    Capacity(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a fhe-shazam landmark index (magic {found:?})")]
    WrongFormat { path: PathBuf, found: String },
    #[error("{path}: landmark index version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: corrupt landmark index: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Errors of the `net` layer: the encrypted identification service (`serve`) and its client
/// (`identify`). Messages name the file, URL or model involved.
#[derive(Debug, Error)]
pub enum NetError {
    #[error("{path}: cannot serve this model: {reason}")]
    ServeModel { path: PathBuf, reason: String },
    #[error("{path}: cannot serve this model: {source}")]
    ServePlan {
        path: PathBuf,
        #[source]
        source: FheError,
    },
    #[error("no model to serve: {0}")]
    NoModels(String),
    #[error("model id {id:?} would be served twice ({first} and {second}); rename one file")]
    DuplicateModel {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("invalid server settings: {0}")]
    InvalidConfig(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{url}: server answered {status}: {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: invalid response: {reason}")]
    Protocol { url: String, reason: String },
    #[error(
        "{url}: the server's query budget for this key is spent ({queries} queries); public key {key_id}"
    )]
    QueryBudgetSpent {
        url: String,
        key_id: String,
        queries: u64,
    },
    #[error("invalid model description for {model:?}: {reason}")]
    InvalidModelInfo { model: String, reason: String },
    #[error("unknown model {requested:?}; available: {available}")]
    UnknownModel {
        requested: String,
        available: String,
    },
    #[error("{path}: {reason}")]
    Recording { path: PathBuf, reason: String },
    #[error("{path}: silent recording (level {level_dbfs:.1} dBFS): nothing to identify")]
    SilentRecording { path: PathBuf, level_dbfs: f64 },
    #[error("{path}: {source}")]
    RecordingFeatures {
        path: PathBuf,
        #[source]
        source: FeatureError,
    },
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("key folder {path}: {reason}")]
    KeyFolder { path: PathBuf, reason: String },
    #[error(transparent)]
    Fhe(#[from] FheError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Audio(#[from] AudioError),
}
