//! The whole experiment in one call (`fhe-shazam reproduce`): dataset (or the synthetic
//! default) → features → float + quantized models → evaluation in every mode → report rows.
//! Each stage reuses its cache when its inputs are unchanged, so a re-run is fast and an
//! interrupted run resumes.

use crate::config::{ExperimentConfig, Protocol};
use crate::dataset::queries;
use crate::dataset::{scan, synth, Catalog, ScanOptions};
use crate::error::{
    AudioError, DatasetError, EvalError, FeatureError, FingerprintError, ModelError,
};
use crate::eval::metrics::{Metrics, Outcome};
use crate::eval::runner::{evaluate_modes, ModeRun};
use crate::eval::{
    evaluate_clear, queries_from_files, seed_queries, Mode, ModeResult, Query, QueryFile,
};
use crate::features::{extract, extract_with, AudioTransform, ExtractSummary, FeatureSet};
use crate::fingerprint::{LandmarkIndexBuilder, LandmarkStats};
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
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// The landmark baseline failed on a file (parameters, or audio it cannot fingerprint).
    #[error("{path}: landmark baseline: {source}")]
    Landmark {
        path: PathBuf,
        #[source]
        source: FingerprintError,
    },
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
    /// One augmented copy of the training songs (reported once per copy).
    Augment,
    /// Writing the robust protocol's query set.
    Queries,
    Train,
    Evaluate,
    /// Indexing the songs and querying the landmark baseline.
    Landmark,
}

/// One (model, mode) result: a row of results.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub experiment: String,
    pub dataset: String,
    /// The query condition: "seed" for the seed protocol, else a robust condition.
    pub condition: String,
    /// "float", "quantized" or "landmark" (the Wang 2003 baseline).
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
    /// Training rows after augmentation.
    pub training_rows: usize,
    pub models_reused: bool,
    pub rows: Vec<ResultRow>,
    pub stage_seconds: Vec<(String, f64)>,
    /// The process's peak resident memory (MiB) at the end of each stage, cumulative: the
    /// "train" entry bounds what loading, extraction and training needed together.
    #[serde(default)]
    pub stage_peak_rss_mib: Vec<(String, f64)>,
    /// The landmark baseline's index, when `[landmark] enabled`.
    #[serde(default)]
    pub landmark: Option<LandmarkSummary>,
}

/// Size and build time of the landmark baseline's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandmarkSummary {
    pub stats: LandmarkStats,
    /// Wall time to load and fingerprint every song and build the table.
    pub build_seconds: f64,
}

/// What the cached models were trained from; equal → reuse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ModelInputs {
    training: crate::model::LogisticParams,
    quantization: crate::config::QuantizationConfig,
    features: crate::features::FeatureParams,
    augmentation: crate::config::AugmentationConfig,
    /// Training audio per song (seconds loaded).
    load: crate::audio::LoadOptions,
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
    train: &TrainingRows,
    dir: &Path,
) -> Result<(FloatModel, Vec<(u32, QuantizedModel)>, bool), PipelineError> {
    let inputs = ModelInputs {
        training: config.training.clone(),
        quantization: config.quantization.clone(),
        features: set.sidecar.params.clone(),
        augmentation: config.augmentation.clone(),
        load: set.sidecar.load.clone(),
        songs: set.sidecar.songs.iter().map(|r| r.sha256.clone()).collect(),
    };
    // Keyed by everything the models depend on: experiments that train the same models
    // (e.g. one config under two protocols) share them.
    let dir = &dir.join(format!(
        "{}-{}",
        set.sidecar
            .dataset
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        short_hash(&inputs)
    ));
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
        train.features.view(),
        &train.labels,
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
            train.features.view(),
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
    condition: &str,
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
        condition: condition.to_string(),
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

/// 12 hex digits of the SHA-256 of a value's JSON: a cache folder's key.
fn short_hash(value: &impl Serialize) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(value).expect("cache keys serialize");
    Sha256::digest(&json)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the features of `root` (optionally transformed) are cached: shared by every experiment
/// with the same loading and feature parameters, so an ablation extracts each variant once.
fn features_dir(config: &ExperimentConfig, root: &Path, transform: Option<&str>) -> PathBuf {
    let hash = short_hash(&(config.load_options(), &config.features, transform));
    let dataset = root.file_name().unwrap_or_default().to_string_lossy();
    let name = transform.map_or("clean".to_string(), |t| t.to_string());
    config
        .output
        .data_dir
        .join("features")
        .join(format!("{dataset}-{name}-{hash}"))
}

/// The training matrix: the song features plus any augmented copies, same labels.
struct TrainingRows {
    features: ndarray::Array2<f32>,
    labels: Vec<usize>,
}

/// Extracts one augmented copy of the training songs per `augmentation.copies` entry (cached
/// like the clean features) and stacks them under the clean rows. A song whose augmented copy
/// failed keeps its clean rows only.
fn training_rows(
    config: &ExperimentConfig,
    root: &Path,
    set: &FeatureSet,
    on_stage: &dyn Fn(Stage),
    on_song: &(dyn Fn() + Sync),
) -> Result<TrainingRows, PipelineError> {
    let mut blocks = vec![set.features.clone()];
    let mut labels = set.labels.clone();
    let catalog = set.catalog();
    let aug = &config.augmentation;
    let sr = config.features.sample_rate();
    // Labels by track id: a song that failed in a copy is simply absent from it.
    let index = set.labels_by_track();
    for (i, &condition) in aug.copies.iter().enumerate() {
        on_stage(Stage::Augment);
        // The k-th copy of a condition draws its own noise; numbering per condition keeps the
        // cache of a copy valid when other conditions are added to the list.
        let copy = aug.copies[..i].iter().filter(|&&c| c == condition).count();
        let apply = |song: &crate::dataset::Song, samples: &[f32]| {
            queries::augment(samples, sr, condition, aug.seed, copy, song.index)
                .map_err(|e| e.to_string())
        };
        let transform = AudioTransform {
            key: format!("augment-{}-seed{}-copy{copy}", condition.name(), aug.seed),
            apply: &apply,
        };
        let dir = features_dir(config, root, Some(&transform.key));
        let (aug_set, _) = extract_with(
            root,
            &catalog,
            &config.load_options(),
            &config.features,
            Some(&transform),
            &dir,
            on_song,
        )?;
        let mut keep = Vec::new();
        for r in &aug_set.sidecar.songs {
            if let Some(&label) = index.get(r.song.track_id.as_str()) {
                keep.extend(r.first_row..r.first_row + r.n_chunks);
                labels.extend(std::iter::repeat_n(label, r.n_chunks));
            }
        }
        blocks.push(aug_set.features.select(ndarray::Axis(0), &keep));
    }
    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
    let features = ndarray::concatenate(ndarray::Axis(0), &views)
        .expect("every block has the feature dimension");
    Ok(TrainingRows { features, labels })
}

/// The query recordings of each condition: the robust query set's files (written under
/// `data_dir/queries/` on first use and reused while its parameters match), or under the seed
/// protocol one "seed" condition whose files are the songs themselves (a query is their first
/// `query_seconds`). Truth is the song's label in the feature set; songs that failed
/// extraction are skipped.
fn condition_files(
    config: &ExperimentConfig,
    root: &Path,
    catalog: &Catalog,
    set: &FeatureSet,
    on_stage: &dyn Fn(Stage),
    on_song: &(dyn Fn() + Sync),
) -> Result<Vec<(String, Vec<QueryFile>)>, PipelineError> {
    let ev = &config.evaluation;
    if ev.protocol == Protocol::Seed {
        let files = set
            .sidecar
            .songs
            .iter()
            .map(|r| QueryFile {
                path: root.join(&r.song.path),
                truth: r.song.index,
            })
            .collect();
        return Ok(vec![("seed".into(), files)]);
    }
    let r = &ev.robust;
    let params = queries::QuerySetParams {
        seed: r.seed,
        query_seconds: ev.query_seconds,
        conditions: r.conditions.clone(),
        window: match r.held_out_from {
            Some(from_seconds) => queries::QueryWindow::HeldOut { from_seconds },
            None => queries::QueryWindow::Whole,
        },
    };
    let dataset_name = root.file_name().unwrap_or_default().to_string_lossy();
    let key: Vec<&str> = r.conditions.iter().map(|c| c.name()).collect();
    let dir = config.output.data_dir.join("queries").join(format!(
        "{dataset_name}-{}songs-seed{}-{}s{}-{}",
        catalog.len(),
        r.seed,
        ev.query_seconds,
        r.held_out_from
            .map_or(String::new(), |t| format!("-heldout{t}")),
        key.join("_")
    ));
    let query_set = match queries::read_query_set(&dir) {
        Ok(q) if q.params == params => q,
        _ => {
            on_stage(Stage::Queries);
            let load = crate::audio::LoadOptions {
                sample_rate: config.features.sample_rate(),
                max_seconds: Some(config.dataset.max_seconds),
            };
            queries::write_query_set(root, catalog, &load, &params, &dir, on_song)?;
            queries::read_query_set(&dir)?
        }
    };
    // Truth = the song's label in the feature set (songs that failed extraction are skipped).
    let label = set.labels_by_track();
    Ok(r.conditions
        .iter()
        .map(|&condition| {
            let files = query_set
                .entries
                .iter()
                .filter(|e| e.condition == condition)
                .filter_map(|e| {
                    Some(QueryFile {
                        path: e.path.clone(),
                        truth: *label.get(e.track_id.as_str())?,
                    })
                })
                .collect();
            (condition.name().to_string(), files)
        })
        .collect())
}

/// The models' queries of each condition: the seed's come from the cached features (on the
/// training grid), the robust ones are extracted from the query files.
fn condition_queries(
    config: &ExperimentConfig,
    set: &FeatureSet,
    condition_files: &[(String, Vec<QueryFile>)],
) -> Result<Vec<(String, Vec<Query>)>, PipelineError> {
    let ev = &config.evaluation;
    if ev.protocol == Protocol::Seed {
        return Ok(vec![("seed".into(), seed_queries(set, ev.query_seconds))]);
    }
    // Queries are chunked like the seed's queries: non-overlapping chunks, whatever the
    // training hop.
    let query_params = crate::features::FeatureParams {
        chunk_hop: config.features.chunk_samples,
        ..config.features.clone()
    };
    let load = crate::audio::LoadOptions {
        sample_rate: config.features.sample_rate(),
        max_seconds: None,
    };
    condition_files
        .iter()
        .map(|(condition, files)| {
            let qs = queries_from_files(files, &load, &query_params, ev.query_seconds)?;
            Ok((condition.clone(), qs))
        })
        .collect()
}

/// The Wang 2003 baseline on the models' footing: an index of every song's training audio
/// (the held-out split included) queried with the first `query_seconds` of each query file, the
/// cut the models' queries get. Returns one clear-mode row per condition and the index's size.
fn landmark_rows(
    config: &ExperimentConfig,
    root: &Path,
    set: &FeatureSet,
    condition_files: &[(String, Vec<QueryFile>)],
    dataset_name: &str,
) -> Result<(Vec<ResultRow>, LandmarkSummary), PipelineError> {
    use rayon::prelude::*;
    let params = config.landmark.params.clone();
    let landmark_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PipelineError::Landmark { path, source }
    };
    let t = Instant::now();
    let mut builder = LandmarkIndexBuilder::new(params.clone())
        .map_err(landmark_err(Path::new("[landmark.params]")))?;
    let training = crate::audio::LoadOptions {
        sample_rate: params.sample_rate,
        ..config.load_options()
    };
    // Each song is loaded and fingerprinted inside the parallel map, so only the landmarks
    // (not every song's audio) are held at once.
    let landmarker = builder.landmarker();
    let fingerprints: Vec<(usize, Vec<crate::fingerprint::Landmark>)> = set
        .sidecar
        .songs
        .par_iter()
        .map(|r| {
            let path = root.join(&r.song.path);
            let audio = crate::audio::load(&path, &training)?;
            let landmarks = landmarker
                .landmarks(&audio.samples)
                .map_err(landmark_err(&path))?;
            Ok((r.song.index, landmarks))
        })
        .collect::<Result<_, PipelineError>>()?;
    for (song, landmarks) in &fingerprints {
        builder
            .add_landmarks(*song, landmarks)
            .map_err(landmark_err(root))?;
    }
    drop(fingerprints);
    let index = builder.finish();
    let summary = LandmarkSummary {
        stats: index.stats(),
        build_seconds: t.elapsed().as_secs_f64(),
    };
    let query_load = crate::audio::LoadOptions {
        sample_rate: params.sample_rate,
        max_seconds: Some(config.evaluation.query_seconds),
    };
    let mut rows = Vec::new();
    for (condition, files) in condition_files {
        let mut outcomes = Vec::with_capacity(files.len());
        for f in files {
            let audio = crate::audio::load(&f.path, &query_load)?;
            let t = Instant::now();
            let answer = index.query(&audio.samples).map_err(landmark_err(&f.path))?;
            let latency_s = t.elapsed().as_secs_f64();
            outcomes.push(Outcome {
                truth: f.truth,
                answer: crate::eval::Answer {
                    song: answer.song,
                    ranking: answer
                        .ranking
                        .iter()
                        .map(|&(song, aligned)| (song, aligned as f64))
                        .collect(),
                },
                latency_s,
            });
        }
        // Chunk accuracy does not apply: the baseline answers per query, not per chunk.
        let run = ModeRun {
            queries: outcomes.len(),
            result: ModeResult {
                mode: Mode::Clear,
                metrics: Metrics::from_outcomes(&outcomes, 0, 0),
                fhe: None,
            },
            simulate_top1_same_queries: None,
        };
        rows.push(row(config, dataset_name, condition, "landmark", None, &run));
    }
    Ok((rows, summary))
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
    let mut stage_peak_rss_mib = Vec::new();
    let mut timed = |name: &str, t: Instant| {
        stage_seconds.push((name.to_string(), t.elapsed().as_secs_f64()));
        if let Some(mib) = crate::report::provenance::memory_mib("VmHWM") {
            stage_peak_rss_mib.push((name.to_string(), mib));
        }
    };

    let t = Instant::now();
    let root = dataset_root(config, dataset, on_stage, on_song)?;
    timed("dataset", t);
    let dataset_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
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
        &features_dir(config, &root, None),
        on_song,
    )?;
    if set.n_songs() == 0 {
        return Err(PipelineError::NoSongs(root));
    }
    timed("extract", t);

    let t = Instant::now();
    let train = training_rows(config, &root, &set, on_stage, on_song)?;
    timed("augment", t);

    let t = Instant::now();
    let files = condition_files(config, &root, &catalog, &set, on_stage, on_song)?;
    let condition_sets = condition_queries(config, &set, &files)?;
    timed("queries", t);

    on_stage(Stage::Train);
    let t = Instant::now();
    let (float, quantized, models_reused) =
        models(config, &set, &train, &config.output.data_dir.join("models"))?;
    timed("train", t);

    on_stage(Stage::Evaluate);
    let t = Instant::now();
    let ev = &config.evaluation;
    let decision = ev.decision();
    let mut rows = Vec::new();
    for (condition, queries) in &condition_sets {
        // The FHE layout's J = the longest query of the condition (shorter ones are padded).
        let chunks = queries
            .iter()
            .map(|q| q.features.nrows())
            .max()
            .unwrap_or(1);
        let (metrics, _) = evaluate_clear(&float, queries, &decision)?;
        let float_run = ModeRun {
            queries: queries.len(),
            result: ModeResult {
                mode: Mode::Clear,
                metrics,
                fhe: None,
            },
            simulate_top1_same_queries: None,
        };
        rows.push(row(
            config,
            &dataset_name,
            condition,
            "float",
            None,
            &float_run,
        ));
        for (n, q) in &quantized {
            for run in evaluate_modes(q, queries, &ev.modes, ev.execute_limit, &decision, chunks)? {
                rows.push(row(
                    config,
                    &dataset_name,
                    condition,
                    "quantized",
                    Some((*n, q)),
                    &run,
                ));
            }
        }
    }
    timed("evaluate", t);

    let landmark = if config.landmark.enabled {
        on_stage(Stage::Landmark);
        let t = Instant::now();
        let (baseline, summary) = landmark_rows(config, &root, &set, &files, &dataset_name)?;
        rows.extend(baseline);
        timed("landmark", t);
        Some(summary)
    } else {
        None
    };
    Ok(Reproduction {
        dataset: root,
        songs: set.n_songs(),
        feature_rows: set.features.nrows(),
        extraction_failures: summary.failures,
        fit: float.fit.clone(),
        training_rows: train.labels.len(),
        models_reused,
        rows,
        stage_seconds,
        stage_peak_rss_mib,
        landmark,
    })
}
