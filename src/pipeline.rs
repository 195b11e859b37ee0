//! The whole experiment in one call (`fhe-shazam reproduce`): dataset (or the synthetic
//! default) → features → float + quantized models → evaluation in every mode → report rows.
//! Each stage reuses its cache when its inputs are unchanged, so a re-run is fast and an
//! interrupted run resumes.

use crate::config::ExperimentConfig;
use crate::dataset::{scan, synth, ScanOptions};
use crate::error::{DatasetError, EvalError, FeatureError, ModelError};
use crate::eval::runner::{evaluate_modes, ModeRun};
use crate::eval::{evaluate_clear, seed_queries, Mode, ModeResult};
use crate::features::{extract, ExtractSummary, FeatureSet};
use crate::fsutil;
use crate::model::{fit, FitInfo, FloatModel, ModelFile, QuantizedModel};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no song of {0} could be extracted")]
    NoSongs(PathBuf),
}

/// The stages, reported as they start (for progress output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Synth,
    Extract,
    Train,
    Evaluate,
}

/// One (model, mode) result: a row of results.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub experiment: String,
    pub dataset: String,
    /// "float" or "quantized".
    pub model: String,
    pub n_bits: Option<u32>,
    pub weight_bits: Option<u32>,
    pub standardize_inputs: bool,
    pub accumulator_bits: Option<u32>,
    pub mode: Mode,
    pub queries: usize,
    pub top1: f64,
    pub top3: f64,
    pub unknown_rate: f64,
    pub chunk_accuracy: f64,
    pub latency_median_ms: f64,
    pub latency_p95_ms: f64,
    pub encrypt_ms: Option<f64>,
    pub server_ms: Option<f64>,
    pub decrypt_ms: Option<f64>,
    pub bytes_up: Option<usize>,
    pub bytes_down: Option<usize>,
    /// Execute rows with a query limit: simulate's top-1 on exactly the same queries.
    pub simulate_top1_same_queries: Option<f64>,
}

/// Everything a report needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reproduction {
    pub dataset: PathBuf,
    pub songs: usize,
    pub feature_rows: usize,
    pub extraction_failures: Vec<crate::features::store::Failure>,
    pub fit: Option<FitInfo>,
    pub models_reused: bool,
    pub rows: Vec<ResultRow>,
    pub stage_seconds: Vec<(String, f64)>,
}

/// What the cached models were trained from; equal → reuse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ModelInputs {
    training: crate::model::LogisticParams,
    quantization: crate::config::QuantizationConfig,
    features: crate::features::FeatureParams,
    /// sha256 of every song file, in label order.
    songs: Vec<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The dataset root: the given folder, or the synthetic corpus (written if missing).
fn dataset_root(
    config: &ExperimentConfig,
    dataset: Option<&Path>,
    on_stage: &dyn Fn(Stage),
    on_song: &(dyn Fn() + Sync),
) -> Result<PathBuf, PipelineError> {
    if let Some(path) = dataset.or(config.dataset.path.as_deref()) {
        return path.canonicalize().map_err(|_| {
            DatasetError::NotFound {
                path: path.to_path_buf(),
            }
            .into()
        });
    }
    let s = &config.dataset.synth;
    let dir = config
        .output
        .data_dir
        .join(format!("synth-{}x{}s-seed{}", s.songs, s.seconds, s.seed));
    on_stage(Stage::Synth);
    synth::write_corpus(&dir, s, on_song)?;
    dir.canonicalize().map_err(io_err(&dir))
}

/// Trains (or reloads) the float model and one quantized model per n_bits.
fn models(
    config: &ExperimentConfig,
    set: &FeatureSet,
    dir: &Path,
) -> Result<(FloatModel, Vec<(u32, QuantizedModel)>, bool), PipelineError> {
    let inputs = ModelInputs {
        training: config.training.clone(),
        quantization: config.quantization.clone(),
        features: set.sidecar.params.clone(),
        songs: set.sidecar.songs.iter().map(|r| r.sha256.clone()).collect(),
    };
    let inputs_path = dir.join("inputs.json");
    let cached = std::fs::read(&inputs_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ModelInputs>(&b).ok());
    if cached.as_ref() == Some(&inputs) {
        let load = || -> Result<_, ModelError> {
            let float = ModelFile::load(&dir.join("float.json"))?
                .float_model()
                .clone();
            let mut q = Vec::new();
            for &n in &config.quantization.n_bits {
                let file = ModelFile::load(&dir.join(format!("q{n}.json")))?;
                q.push((
                    n,
                    file.quantized_model()
                        .cloned()
                        .ok_or_else(|| ModelError::InvalidParams("not quantized".into()))?,
                ));
            }
            Ok((float, q))
        };
        if let Ok((float, q)) = load() {
            return Ok((float, q, true));
        }
    }
    let _ = std::fs::remove_file(&inputs_path);
    let catalog = set.catalog();
    let float = fit(
        set.features.view(),
        &set.labels,
        set.n_songs(),
        &config.training,
    )?;
    ModelFile::float(
        set.sidecar.params.clone(),
        catalog.clone(),
        float.clone(),
        Some(config.training.clone()),
    )?
    .save(&dir.join("float.json"))?;
    let mut quantized = Vec::new();
    for &n in &config.quantization.n_bits {
        let q = QuantizedModel::from_float(
            &float,
            set.features.view(),
            &config.quantization.options(n),
        )?;
        ModelFile::quantized(
            set.sidecar.params.clone(),
            catalog.clone(),
            q.clone(),
            Some(config.training.clone()),
        )?
        .save(&dir.join(format!("q{n}.json")))?;
        quantized.push((n, q));
    }
    fsutil::write_json_atomic(&inputs_path, &inputs).map_err(io_err(&inputs_path))?;
    Ok((float, quantized, false))
}

fn row(
    config: &ExperimentConfig,
    dataset: &str,
    model: &str,
    q: Option<(u32, &QuantizedModel)>,
    run: &ModeRun,
) -> ResultRow {
    let (r, queries, same) = (&run.result, run.queries, run.simulate_top1_same_queries);
    let m = &r.metrics;
    let f = r.fhe.as_ref();
    ResultRow {
        experiment: config.name.clone(),
        dataset: dataset.to_string(),
        model: model.to_string(),
        n_bits: q.map(|(n, _)| n),
        weight_bits: q.map(|(n, _)| config.quantization.weight_bits.unwrap_or(n)),
        standardize_inputs: q.is_some() && config.quantization.standardize_inputs,
        accumulator_bits: q.map(|(_, m)| m.accumulator_bits()),
        mode: r.mode,
        queries,
        top1: m.top1,
        top3: m.top3,
        unknown_rate: m.unknown_rate,
        chunk_accuracy: m.chunk_accuracy,
        latency_median_ms: m.latency_median_ms,
        latency_p95_ms: m.latency_p95_ms,
        encrypt_ms: f.map(|c| c.encrypt_ms),
        server_ms: f.map(|c| c.server_ms),
        decrypt_ms: f.map(|c| c.decrypt_ms),
        bytes_up: f.map(|c| c.bytes_up),
        bytes_down: f.map(|c| c.bytes_down),
        simulate_top1_same_queries: same,
    }
}

/// Runs the experiment. `dataset` overrides the config's dataset path; `on_song` ticks once per
/// song during synthesis and extraction.
pub fn reproduce(
    config: &ExperimentConfig,
    dataset: Option<&Path>,
    on_stage: &dyn Fn(Stage),
    on_song: &(dyn Fn() + Sync),
) -> Result<Reproduction, PipelineError> {
    let mut stage_seconds = Vec::new();
    let mut timed =
        |name: &str, t: Instant| stage_seconds.push((name.to_string(), t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let root = dataset_root(config, dataset, on_stage, on_song)?;
    timed("dataset", t);
    let dataset_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let work = config
        .output
        .data_dir
        .join(&config.name)
        .join(&dataset_name);

    on_stage(Stage::Extract);
    let t = Instant::now();
    let scan_opts = ScanOptions {
        num_songs: config.dataset.num_songs,
        metadata: config.dataset.metadata.clone(),
    };
    let catalog = scan(&root, &scan_opts)?;
    let (set, summary): (FeatureSet, ExtractSummary) = extract(
        &root,
        &catalog,
        &config.load_options(),
        &config.features,
        &work.join("features"),
        on_song,
    )?;
    if set.n_songs() == 0 {
        return Err(PipelineError::NoSongs(root));
    }
    timed("extract", t);

    on_stage(Stage::Train);
    let t = Instant::now();
    let (float, quantized, models_reused) = models(config, &set, &work.join("models"))?;
    timed("train", t);

    on_stage(Stage::Evaluate);
    let t = Instant::now();
    let ev = &config.evaluation;
    let queries = seed_queries(&set, ev.query_seconds);
    let chunks = queries
        .iter()
        .map(|q| q.features.nrows())
        .max()
        .unwrap_or(1);
    let (metrics, _) = evaluate_clear(&float, &queries, ev.min_votes)?;
    let float_run = ModeRun {
        queries: queries.len(),
        result: ModeResult {
            mode: Mode::Clear,
            metrics,
            fhe: None,
        },
        simulate_top1_same_queries: None,
    };
    let mut rows = vec![row(config, &dataset_name, "float", None, &float_run)];
    for (n, q) in &quantized {
        for run in evaluate_modes(
            q,
            &queries,
            &ev.modes,
            ev.execute_limit,
            ev.min_votes,
            chunks,
        )? {
            rows.push(row(config, &dataset_name, "quantized", Some((*n, q)), &run));
        }
    }
    timed("evaluate", t);
    Ok(Reproduction {
        dataset: root,
        songs: set.n_songs(),
        feature_rows: set.features.nrows(),
        extraction_failures: summary.failures,
        fit: float.fit.clone(),
        models_reused,
        rows,
        stage_seconds,
    })
}
