//! Experiment configuration: one TOML file fully describes an experiment (dataset, features,
//! training, quantization grid, modes, protocol, outputs). Unknown keys are errors; every
//! section defaults to the seed protocol, so an empty file is the seed experiment.

use crate::audio::LoadOptions;
use crate::dataset::queries::Condition;
use crate::dataset::synth::SynthParams;
use crate::dataset::FmaSubset;
use crate::error::{ConfigError, InvalidConfig};
use crate::eval::{Decision, Mode, Rule, ScoreKind};
use crate::features::FeatureParams;
use crate::fhe::{Circuit, ModelPrivacy};
use crate::fingerprint::LandmarkParams;
use crate::model::{LogisticParams, QuantOptions};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the songs come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetConfig {
    /// A dataset folder (FMA tree or any audio folder); None = the synthetic default corpus.
    pub path: Option<PathBuf>,
    /// Take the first N songs in sorted path order (the seed: 400).
    pub num_songs: Option<usize>,
    /// An explicit tracks.csv.
    pub metadata: Option<PathBuf>,
    /// Only the tracks of this FMA subset (`small`, `medium`, `large`, `full`), by tracks.csv's
    /// `set.subset` column, before `num_songs`: one `fma_full` tree serves all four.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<FmaSubset>,
    /// Load at most this many seconds of each file (the seed: 180).
    pub max_seconds: f64,
    /// The synthetic corpus used when `path` is None.
    pub synth: SynthParams,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            path: None,
            num_songs: Some(400),
            metadata: None,
            subset: None,
            max_seconds: 180.0,
            synth: SynthParams::default(),
        }
    }
}

/// The quantized models: one per input bit width of `n_bits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantizationConfig {
    pub n_bits: Vec<u32>,
    /// Weight bits, when they differ from the input bits.
    pub weight_bits: Option<u32>,
    pub standardize_inputs: bool,
    pub symmetric_weights: bool,
}

impl Default for QuantizationConfig {
    fn default() -> Self {
        Self {
            n_bits: vec![8],
            weight_bits: None,
            standardize_inputs: false,
            symmetric_weights: false,
        }
    }
}

impl QuantizationConfig {
    pub fn options(&self, n_bits: u32) -> QuantOptions {
        QuantOptions {
            n_bits_input: n_bits,
            n_bits_weight: self.weight_bits.unwrap_or(n_bits),
            standardize_inputs: self.standardize_inputs,
            symmetric_weights: self.symmetric_weights,
        }
    }
}

/// The query protocols of docs/ARCHITECTURE.md §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The first `query_seconds` of each song, on the training grid (the seed's leak included).
    Seed,
    /// Degraded recordings (`[evaluation.robust]`): offsets, noise, phone, reverb, speed.
    Robust,
}

/// The robust protocol's query set (written once per dataset and reused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RobustConfig {
    pub conditions: Vec<Condition>,
    /// Seed of every random draw (offsets, noise, rooms).
    pub seed: u64,
    /// Held-out split: train on the first `held_out_from` seconds of each song only and draw the
    /// queries from the audio after it.
    pub held_out_from: Option<f64>,
    /// Level sweep: every query of every condition recorded this many dB louder (quieter if
    /// negative), limited to full scale.
    pub gain_db: Option<f64>,
}

impl Default for RobustConfig {
    fn default() -> Self {
        Self {
            conditions: Condition::STANDARD.to_vec(),
            seed: 2024,
            held_out_from: None,
            gain_db: None,
        }
    }
}

/// How models are evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    pub protocol: Protocol,
    pub query_seconds: f64,
    /// Modes for the quantized models (the float model runs in the clear).
    pub modes: Vec<Mode>,
    /// Run execute mode on the first N queries (per condition) only (None = all).
    pub execute_limit: Option<usize>,
    /// How chunk scores become an answer (the seed: `votes`).
    pub decision: Rule,
    /// `votes`: fewer votes than this → "unknown" (the seed: 5).
    pub min_votes: usize,
    /// The FHE circuit of execute mode; by default the one the decision implies
    /// ([`Rule::circuit`]: `votes` → `chunks`, `log_prob_sum` → `summed`).
    pub circuit: Option<Circuit>,
    pub robust: RobustConfig,
    /// Open-set identification ("not in the catalogue"): songs kept out of the catalogue.
    pub open_set: Option<OpenSetConfig>,
    /// Serve the quantized models with model privacy (`[evaluation.model_privacy]
    /// flood_bits = λ`): simulate and execute modes and the open-set curve then decide on
    /// re-randomised, flooded, rounded replies (docs/ARCHITECTURE.md §4). Off: the seed.
    pub model_privacy: Option<ModelPrivacy>,
}

/// The open-set protocol: `calibration_songs` + `impostor_songs` songs of the dataset, drawn
/// with `seed`, are kept out of training. The calibration songs' queries set each model's
/// rejection threshold to `false_match_rate` (in every condition); the impostor songs' queries
/// measure the false-match rate at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenSetConfig {
    pub calibration_songs: usize,
    pub impostor_songs: usize,
    pub false_match_rate: f64,
    /// The linear models' confidence (the landmark baseline uses its aligned-hash count).
    pub score: ScoreKind,
    pub seed: u64,
}

impl Default for OpenSetConfig {
    fn default() -> Self {
        Self {
            calibration_songs: 50,
            impostor_songs: 50,
            false_match_rate: 0.01,
            score: ScoreKind::Margin,
            seed: 16,
        }
    }
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::Seed,
            query_seconds: 15.0,
            modes: vec![Mode::Clear, Mode::Simulate, Mode::Execute],
            execute_limit: None,
            decision: Rule::Votes,
            min_votes: 5,
            circuit: None,
            robust: RobustConfig::default(),
            open_set: None,
            model_privacy: None,
        }
    }
}

impl EvaluationConfig {
    pub fn decision(&self) -> Decision {
        Decision {
            rule: self.decision,
            min_votes: self.min_votes,
        }
    }

    /// The circuit of execute mode: as configured, else the one the decision and the open-set
    /// confidence imply.
    pub fn circuit(&self) -> Circuit {
        self.circuit.unwrap_or_else(|| {
            self.decision
                .circuit(self.open_set.as_ref().map(|o| o.score))
        })
    }
}

/// The training rows: which copies of every training song are extracted and what one row is.
/// Extra copies are degraded like a query condition (without the query's cut: the whole
/// training window) or started off the chunk grid, and added with the song's label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentationConfig {
    /// One degraded copy per entry (a condition may repeat: each copy draws its own noise).
    pub copies: Vec<Condition>,
    pub seed: u64,
    /// One clean copy per entry, its audio started this fraction of a chunk later (each in
    /// (0, 1)): rows off the 0.5 s grid, as an unaligned query sees the song.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shifts: Vec<f64>,
    /// Present: each row is the sum of consecutive chunk vectors (what the summed decision
    /// scores) instead of one chunk vector (the seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowRows>,
}

impl Default for AugmentationConfig {
    fn default() -> Self {
        Self {
            copies: Vec::new(),
            seed: 99,
            shifts: Vec::new(),
            windows: None,
        }
    }
}

/// Window-sum training rows: every run of `chunks` consecutive chunks of one song in one copy
/// (never across songs or copies), starting every `stride` chunks; a song shorter than the
/// window gives one row, the sum of all its chunks. The fitted bias is divided by the window
/// length, so the model still scores chunks and a window's summed scores are what it was
/// trained on; the quantizer calibrates on the chunk rows, which is what the circuit quantizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowRows {
    /// Chunks per window; 0 = the query length (`evaluation.query_seconds`, 30 for the seed's 15 s).
    pub chunks: usize,
    /// Chunks between the starts of consecutive windows.
    pub stride: usize,
}

impl Default for WindowRows {
    fn default() -> Self {
        Self {
            chunks: 0,
            stride: 1,
        }
    }
}

/// Where caches and the report go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Caches (synthetic corpus, features, models) live under this folder.
    pub data_dir: PathBuf,
    /// The report folder (results.csv/json, summary.md, plots, config.toml).
    pub report_dir: PathBuf,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            report_dir: PathBuf::from("reports/reproduce"),
        }
    }
}

/// The Wang 2003 landmark baseline, evaluated on the same queries as the models (a row with
/// model "landmark", mode clear). Off by default: it fingerprints every training song again.
/// Parameters go in a `[landmark.params]` sub-table (a sub-table rather than flattened fields,
/// because serde cannot reject unknown keys through `flatten`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LandmarkConfig {
    pub enabled: bool,
    pub params: LandmarkParams,
}

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Experiment name (reports and logs; caches are keyed by their inputs, not by name).
    pub name: String,
    pub dataset: DatasetConfig,
    pub features: FeatureParams,
    pub training: LogisticParams,
    pub augmentation: AugmentationConfig,
    pub quantization: QuantizationConfig,
    pub evaluation: EvaluationConfig,
    pub landmark: LandmarkConfig,
    /// The extraction attack against the served models, with and without model privacy
    /// (`[extraction]`; off by default).
    pub extraction: Option<ExtractionConfig>,
    pub output: OutputConfig,
}

/// The model-extraction experiment: a client queries chosen vectors and fits W by least
/// squares from the scores it decrypts. For each flood level (0 = no model privacy) the
/// report gives each model's top-1 under that level and, for each query count, the error of
/// the stolen weights and the stolen model's top-1 agreement with the real one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractionConfig {
    /// λ of model privacy per line, after the plain protocol's line (always first).
    pub flood_bits: Vec<u32>,
    /// Chosen queries the attacker spends.
    pub queries: Vec<usize>,
    pub seed: u64,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        Self {
            flood_bits: vec![0, 8, 16, 24, 32],
            queries: vec![1, 21, 100, 1000, 10000],
            seed: 20,
        }
    }
}

impl ExperimentConfig {
    /// Reads and validates a TOML config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        config.validate().map_err(|source| ConfigError::Invalid {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(config)
    }

    /// The seed experiment with a name.
    pub fn seed(name: &str) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Checks what serde cannot: ranges and consistency.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let bad = |field: &'static str, reason: String| Err(InvalidConfig::Field { field, reason });
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return bad(
                "name",
                format!("{:?} must be a non-empty folder name", self.name),
            );
        }
        let robust = &self.evaluation.robust;
        if self.evaluation.circuit == Some(Circuit::Summed)
            && self.evaluation.decision == Rule::Votes
        {
            return bad(
                "evaluation.circuit",
                "\"summed\" returns only the summed scores, and decision = \"votes\" needs every \
                 chunk's: use \"chunks\" (or decision = \"log_prob_sum\")"
                    .into(),
            );
        }
        let floods = self.evaluation.model_privacy.iter().map(|p| p.flood_bits);
        let sweep = self
            .extraction
            .iter()
            .flat_map(|e| e.flood_bits.iter().copied());
        if let Some(l) = floods
            .chain(sweep)
            .find(|&l| l > ModelPrivacy::MAX_FLOOD_BITS)
        {
            return bad(
                "flood_bits",
                format!(
                    "{l} is more than the {} a 64-bit torus allows",
                    ModelPrivacy::MAX_FLOOD_BITS
                ),
            );
        }
        if let Some(e) = &self.extraction {
            if e.queries.is_empty() || e.queries.contains(&0) {
                return bad(
                    "extraction.queries",
                    format!("{:?}: give at least one count, each at least 1", e.queries),
                );
            }
        }
        if self.evaluation.protocol == Protocol::Robust && robust.conditions.is_empty() {
            return bad("evaluation.robust.conditions", "is empty".into());
        }
        if let Some(open) = &self.evaluation.open_set {
            if self.evaluation.protocol != Protocol::Robust {
                return bad(
                    "evaluation.open_set",
                    "needs protocol = \"robust\" (impostor queries come from its query set)".into(),
                );
            }
            if open.calibration_songs == 0 || open.impostor_songs == 0 {
                return bad(
                    "evaluation.open_set",
                    "calibration_songs and impostor_songs must both be at least 1".into(),
                );
            }
            if !(open.false_match_rate > 0.0 && open.false_match_rate < 1.0) {
                return bad(
                    "evaluation.open_set.false_match_rate",
                    format!("{} must lie inside (0, 1)", open.false_match_rate),
                );
            }
        }
        if let Some(t) = robust.held_out_from {
            if !(t > 0.0 && t < self.dataset.max_seconds) {
                return bad(
                    "evaluation.robust.held_out_from",
                    format!("{t} must lie inside (0, dataset.max_seconds)"),
                );
            }
        }
        if let Some(g) = robust.gain_db {
            if !(-40.0..=20.0).contains(&g) {
                return bad(
                    "evaluation.robust.gain_db",
                    format!("{g} dB is outside -40..=20"),
                );
            }
        }
        let aug = &self.augmentation;
        if let Some(s) = aug.shifts.iter().find(|s| !(**s > 0.0 && **s < 1.0)) {
            return bad(
                "augmentation.shifts",
                format!("{s} is not a fraction of a chunk inside (0, 1)"),
            );
        }
        if aug.windows.as_ref().is_some_and(|w| w.stride == 0) {
            return bad(
                "augmentation.windows.stride",
                "is 0: give at least 1 chunk".into(),
            );
        }
        if let Some(norm) = self.features.mean_norm {
            if norm.window_chunks == 0 {
                return bad(
                    "features.mean_norm.window_chunks",
                    "is 0: give at least 1 chunk".into(),
                );
            }
        }
        if self.quantization.n_bits.is_empty()
            && self.evaluation.modes.iter().any(|m| *m != Mode::Clear)
        {
            return bad(
                "quantization.n_bits",
                "is empty but simulate/execute modes are requested".into(),
            );
        }
        for &n_bits in &self.quantization.n_bits {
            self.quantization
                .options(n_bits)
                .check()
                .map_err(|source| InvalidConfig::Quantization { n_bits, source })?;
        }
        self.training.check().map_err(InvalidConfig::Training)?;
        crate::features::Mfcc::new(self.features.mfcc.clone()).map_err(InvalidConfig::Features)?;
        self.features
            .check_frame_stats()
            .map_err(InvalidConfig::Features)?;
        let query_samples = self.evaluation.query_seconds * (self.features.sample_rate() as f64);
        if query_samples.is_nan() || query_samples < self.features.chunk_samples as f64 {
            return bad(
                "evaluation.query_seconds",
                format!(
                    "{} is shorter than one chunk",
                    self.evaluation.query_seconds
                ),
            );
        }
        if self.dataset.max_seconds.is_nan() || self.dataset.max_seconds <= 0.0 {
            return bad(
                "dataset.max_seconds",
                format!("{} must be positive", self.dataset.max_seconds),
            );
        }
        if self.dataset.subset.is_some() && self.dataset.path.is_none() {
            return bad(
                "dataset.subset",
                "picks FMA tracks by tracks.csv: it needs dataset.path (an FMA tree), not the \
                 synthetic corpus"
                    .into(),
            );
        }
        if self.dataset.num_songs == Some(0) {
            return bad(
                "dataset.num_songs",
                "is 0: give at least 1, or leave it out to take every song".into(),
            );
        }
        if self.dataset.path.is_none() {
            self.dataset
                .synth
                .validate()
                .map_err(|e| InvalidConfig::Field {
                    field: "dataset.synth",
                    reason: e.to_string(),
                })?;
        }
        if self.evaluation.execute_limit == Some(0) {
            return bad(
                "evaluation.execute_limit",
                "is 0: give at least 1, or leave it out to execute every query".into(),
            );
        }
        if self.landmark.enabled {
            self.landmark
                .params
                .validate()
                .map_err(InvalidConfig::Landmark)?;
        }
        Ok(())
    }

    /// How training audio is loaded: at most `dataset.max_seconds`, and only the part before
    /// the held-out split under the robust protocol.
    /// Chunks per window-sum training row (`augmentation.windows`), its 0 resolved to the
    /// chunks of one query; `None` for the seed's chunk rows.
    pub fn window_chunks(&self) -> Option<usize> {
        let w = self.augmentation.windows.as_ref()?;
        Some(if w.chunks > 0 {
            w.chunks
        } else {
            let query = self.evaluation.query_seconds * self.features.sample_rate() as f64;
            ((query / self.features.chunk_samples as f64) as usize).max(1)
        })
    }

    pub fn load_options(&self) -> LoadOptions {
        let held_out = match self.evaluation.protocol {
            Protocol::Robust => self.evaluation.robust.held_out_from,
            Protocol::Seed => None,
        };
        LoadOptions {
            sample_rate: self.features.sample_rate(),
            max_seconds: Some(held_out.unwrap_or(self.dataset.max_seconds)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_seed_protocol() {
        let c: ExperimentConfig = toml::from_str("name = \"x\"").unwrap();
        assert_eq!(c.quantization.n_bits, vec![8]);
        assert_eq!(c.features.chunk_samples, 11_025);
        assert_eq!(c.evaluation.min_votes, 5);
        assert_eq!(c.dataset.num_songs, Some(400));
        assert_eq!(c.evaluation.protocol, Protocol::Seed);
        assert_eq!(c.evaluation.decision(), Decision::SEED);
        assert!(c.augmentation.copies.is_empty());
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(
            toml::from_str::<ExperimentConfig>("name = \"x\"\n[quantization]\nnbits = [8]")
                .is_err()
        );
        let mut c = ExperimentConfig::seed("x");
        c.quantization.n_bits = vec![0];
        assert!(c.validate().is_err());
        let mut c = ExperimentConfig::seed("x");
        c.evaluation.protocol = Protocol::Robust;
        c.evaluation.robust.conditions.clear();
        assert!(c.validate().unwrap_err().to_string().contains("conditions"));
        let mut c = ExperimentConfig::seed("x");
        c.evaluation.robust.held_out_from = Some(200.0);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("held_out_from"));
        assert!(toml::from_str::<ExperimentConfig>(
            "name = \"x\"\n[evaluation.robust]\nconditions = [\"noise11\"]"
        )
        .is_err());
    }

    #[test]
    fn window_rows_and_shifts_parse_check_and_keep_old_cache_keys() {
        let c: ExperimentConfig =
            toml::from_str("name = \"x\"\n[augmentation]\nshifts = [0.5]\n[augmentation.windows]")
                .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.window_chunks(),
            Some(30),
            "0 chunks = the 15 s query's 30"
        );
        assert_eq!(ExperimentConfig::seed("x").window_chunks(), None);
        let mut c = c;
        c.augmentation.windows = Some(WindowRows {
            chunks: 20,
            stride: 0,
        });
        assert!(c.validate().unwrap_err().to_string().contains("stride"));
        c.augmentation.windows.as_mut().unwrap().stride = 2;
        assert_eq!(c.window_chunks(), Some(20));
        for shift in [0.0, 1.0, -0.5, f64::NAN] {
            c.augmentation.shifts = vec![shift];
            assert!(c.validate().unwrap_err().to_string().contains("shifts"));
        }
        // The new keys are left out when unused, so existing model caches keep their keys.
        let json = serde_json::to_string(&AugmentationConfig::default()).unwrap();
        assert_eq!(json, r#"{"copies":[],"seed":99}"#);
    }

    #[test]
    fn subset_and_model_privacy_parse_and_are_checked() {
        let c: ExperimentConfig = toml::from_str(
            "name = \"x\"\n[dataset]\npath = \"fma_full\"\nsubset = \"medium\"\n\
             [evaluation.model_privacy]\nflood_bits = 12\n[extraction]",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.dataset.subset, Some(FmaSubset::Medium));
        assert_eq!(c.extraction.as_ref().unwrap().queries.len(), 5);
        let mut bad = c.clone();
        bad.dataset.path = None;
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dataset.subset"));
        let mut bad = c.clone();
        bad.evaluation.model_privacy = Some(ModelPrivacy { flood_bits: 61 });
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("flood_bits"));
        let mut bad = c;
        bad.extraction.as_mut().unwrap().queries = vec![0];
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("extraction.queries"));
        assert!(
            toml::from_str::<ExperimentConfig>("name = \"x\"\n[dataset]\nsubset = \"tiny\"")
                .is_err()
        );
        // Unset, the new keys stay out of serialised configs.
        let json = serde_json::to_string(&DatasetConfig::default()).unwrap();
        assert!(!json.contains("subset"), "{json}");
    }

    #[test]
    fn landmark_section_parses_and_rejects_unknown_keys() {
        let c: ExperimentConfig = toml::from_str("name = \"x\"").unwrap();
        assert!(!c.landmark.enabled, "off unless asked for");
        let c: ExperimentConfig = toml::from_str(
            "name = \"x\"\n[landmark]\nenabled = true\n[landmark.params]\nfanout = 5",
        )
        .unwrap();
        assert!(c.landmark.enabled);
        assert_eq!(c.landmark.params.fanout, 5);
        assert_eq!(
            c.landmark.params.min_aligned,
            LandmarkParams::default().min_aligned,
            "other parameters keep their defaults"
        );
        c.validate().unwrap();
        for bad in [
            "[landmark]\nenabled = true\nfanout = 5",
            "[landmark.params]\nfan_out = 5",
        ] {
            let text = format!("name = \"x\"\n{bad}");
            assert!(toml::from_str::<ExperimentConfig>(&text).is_err(), "{bad}");
        }
        let mut c = ExperimentConfig::seed("x");
        c.landmark.enabled = true;
        c.landmark.params.fanout = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("landmark.params"));
    }

    #[test]
    fn shipped_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        // The top folder and every config family under it (robust, families, windows, …).
        let mut dirs = vec![root.clone()];
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            }
        }
        for dir in dirs {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    ExperimentConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                    n += 1;
                }
            }
        }
        assert!(
            n >= 40,
            "expected the reproduce, sweep, smoke and every family's configs"
        );
    }
}
