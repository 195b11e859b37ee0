//! A whole experiment in one call (`fhe-shazam reproduce`): dataset (or the synthetic
//! default) → features → float + quantized models → evaluation in every mode → report.
//! Each stage reuses its cache when its inputs are unchanged ([`cache`]), so a re-run is fast
//! and an interrupted run resumes.
//!
//! - [`cache`]: cache keys and folder names;
//! - [`augment`]: training rows with augmented copies;
//! - [`queries`]: the query files and queries of each condition;
//! - [`train`]: training, saving and reloading models; the `train` command's grid;
//! - [`evaluate`]: models and the landmark baseline on query sets; the `evaluate` command;
//! - [`open_set`]: songs kept out of the catalogue, rejection thresholds, false matches;
//! - [`bench`]: the feature-stage benchmark.

pub mod augment;
pub mod bench;
pub mod cache;
pub mod evaluate;
pub mod extraction;
pub mod listed;
pub mod open_set;
pub mod queries;
pub mod shards;
pub mod train;

use crate::config::ExperimentConfig;
use crate::dataset::{scan, synth, ScanOptions};
use crate::error::{DatasetError, ExperimentError};
use crate::features::extract;
use crate::report::experiment::write_report;
use crate::report::provenance::memory_mib;
use crate::report::{Provenance, Reproduction};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// Calibrating the rejection thresholds and querying with songs outside the catalogue.
    OpenSet,
    /// The extraction attack against the models, plain and with model privacy.
    Extraction,
}

/// Where a run reports its progress: each stage as it starts, and each song of the stages
/// that go over songs (synthesis, extraction, augmentation, query sets).
#[derive(Clone, Copy)]
pub struct Progress<'a> {
    pub on_stage: &'a dyn Fn(Stage),
    pub on_song: &'a (dyn Fn() + Sync),
}

impl Progress<'_> {
    /// No progress output.
    pub const SILENT: Progress<'static> = Progress {
        on_stage: &|_| {},
        on_song: &|| {},
    };

    fn stage(&self, stage: Stage) {
        (self.on_stage)(stage)
    }
}

/// A finished experiment: what it measured, where the report is, its summary.
pub struct Finished {
    pub reproduction: Reproduction,
    pub report_dir: PathBuf,
    /// The report's summary.md.
    pub summary: String,
}

/// The dataset root: the given folder, or the synthetic corpus (written if missing).
fn dataset_root(
    config: &ExperimentConfig,
    dataset: Option<&Path>,
    progress: &Progress,
) -> Result<PathBuf, ExperimentError> {
    if let Some(path) = dataset.or(config.dataset.path.as_deref()) {
        return path.canonicalize().map_err(|_| {
            DatasetError::NotFound {
                path: path.to_path_buf(),
            }
            .into()
        });
    }
    let dir = cache::synth_dir(config);
    progress.stage(Stage::Synth);
    synth::write_corpus(&dir, &config.dataset.synth, progress.on_song)?;
    dir.canonicalize()
        .map_err(|source| ExperimentError::Io { path: dir, source })
}

/// Runs the experiment and measures it. `dataset` overrides the config's dataset path.
pub fn run(
    config: &ExperimentConfig,
    dataset: Option<&Path>,
    progress: &Progress,
) -> Result<Reproduction, ExperimentError> {
    let mut stage_seconds = Vec::new();
    let mut stage_peak_rss_mib = Vec::new();
    let mut timed = |name: &str, t: Instant| {
        stage_seconds.push((name.to_string(), t.elapsed().as_secs_f64()));
        if let Some(mib) = memory_mib("VmHWM") {
            stage_peak_rss_mib.push((name.to_string(), mib));
        }
    };

    let t = Instant::now();
    let root = dataset_root(config, dataset, progress)?;
    timed("dataset", t);
    let dataset_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    progress.stage(Stage::Extract);
    let t = Instant::now();
    let scan_opts = ScanOptions {
        num_songs: config.dataset.num_songs,
        metadata: config.dataset.metadata.clone(),
        subset: config.dataset.subset,
    };
    let catalog = scan(&root, &scan_opts)?;
    let (set, summary) = extract(
        &root,
        &catalog,
        &config.load_options(),
        &config.features,
        &cache::features_dir(config, &root, None),
        progress.on_song,
    )?;
    timed("extract", t);

    // Open set: songs kept out of the catalogue (every song is extracted either way, so the
    // feature, augmentation and query-set caches are shared with closed-set configs).
    let split = match &config.evaluation.open_set {
        Some(open) => Some(open_set::split(&set, open)?),
        None => None,
    };
    let extracted = set.catalog();
    let set = split.as_ref().map_or(set.clone(), |s| s.catalogue.clone());

    let t = Instant::now();
    let rows = augment::training_rows(config, &root, &extracted, &set, progress)?;
    timed("augment", t);

    let t = Instant::now();
    let files = queries::condition_files(config, &root, &catalog, &set, progress)?;
    let condition_queries = queries::condition_queries(config, &set, &files)?;
    let outsiders = match &split {
        Some(s) => {
            let calibration =
                queries::outsider_files(config, &root, &catalog, &s.calibration, progress)?;
            let impostors =
                queries::outsider_files(config, &root, &catalog, &s.impostors, progress)?;
            let cq = queries::condition_queries(config, &set, &calibration)?;
            let iq = queries::condition_queries(config, &set, &impostors)?;
            Some((calibration, impostors, cq, iq))
        }
        None => None,
    };
    timed("queries", t);

    progress.stage(Stage::Train);
    let t = Instant::now();
    let (models, models_reused) = train::cached_models(config, &set, &rows)?;
    timed("train", t);

    progress.stage(Stage::Evaluate);
    let t = Instant::now();
    let mut result_rows =
        evaluate::condition_rows(config, &models, &condition_queries, &dataset_name)?;
    timed("evaluate", t);

    let landmark = if config.landmark.enabled {
        progress.stage(Stage::Landmark);
        let t = Instant::now();
        let (index, summary) = evaluate::landmark_index(config, &root, &set)?;
        result_rows.extend(evaluate::landmark_rows(
            config,
            &index,
            &files,
            &dataset_name,
        )?);
        timed("landmark", t);
        Some((index, summary))
    } else {
        None
    };

    let open_set = match (&split, &outsiders) {
        (Some(split), Some((calibration, impostors, cq, iq))) => {
            progress.stage(Stage::OpenSet);
            let t = Instant::now();
            let queries = open_set::OpenSetQueries {
                catalogue: &condition_queries,
                calibration: cq,
                impostors: iq,
            };
            let files = open_set::OpenSetFiles {
                catalogue: &files,
                calibration,
                impostors,
            };
            let baseline = landmark.as_ref().map(|(index, _)| (index, &files));
            let mut result =
                open_set::evaluate_open_set(config, &models, split, &queries, baseline)?;
            let threshold_of = |n_bits: Option<u32>| {
                let label = n_bits.map_or("float".to_string(), |n| format!("n_bits={n}"));
                result
                    .thresholds
                    .iter()
                    .find(|(l, _)| *l == label)
                    .map(|(_, t)| *t)
            };
            result.models = Some(train::save_open_set(config, &set, &threshold_of)?);
            timed("open_set", t);
            Some(result)
        }
        _ => None,
    };
    let extraction = match &config.extraction {
        Some(e) => {
            progress.stage(Stage::Extraction);
            let t = Instant::now();
            // The open-set protocol again under each flood level (thresholds re-calibrated).
            let open_set_at = |privacy| {
                let (split, (_, _, cq, iq)) = (split.as_ref()?, outsiders.as_ref()?);
                let mut at = config.clone();
                at.evaluation.model_privacy = privacy;
                let queries = open_set::OpenSetQueries {
                    catalogue: &condition_queries,
                    calibration: cq,
                    impostors: iq,
                };
                Some(
                    open_set::evaluate_open_set(&at, &models, split, &queries, None)
                        .map(|r| r.rows),
                )
            };
            let open_set_at = |privacy| open_set_at(privacy).unwrap_or(Ok(Vec::new()));
            let with_open_set = split
                .is_some()
                .then_some(&open_set_at as &extraction::OpenSetAt);
            let result = extraction::extraction(
                config,
                e,
                &models,
                &condition_queries,
                with_open_set,
                &|| {},
            )?;
            timed("extraction", t);
            Some(result)
        }
        None => None,
    };
    let landmark = landmark.map(|(_, summary)| summary);
    Ok(Reproduction {
        dataset: root,
        songs: set.n_songs(),
        feature_rows: set.features.nrows(),
        extraction_failures: summary.failures,
        fit: models.float.fit.clone(),
        training_rows: rows.labels.len(),
        models_reused,
        rows: result_rows,
        stage_seconds,
        stage_peak_rss_mib,
        landmark,
        open_set,
        extraction,
    })
}

/// Runs the experiment and writes its report to `config.output.report_dir` (results.csv/json,
/// summary.md with the seed's table, plots, the config).
pub fn reproduce(
    config: &ExperimentConfig,
    dataset: Option<&Path>,
    progress: &Progress,
) -> Result<Finished, ExperimentError> {
    let reproduction = run(config, dataset, progress)?;
    let report_dir = config.output.report_dir.clone();
    let summary = write_report(&report_dir, config, &reproduction, &Provenance::collect())?;
    Ok(Finished {
        reproduction,
        report_dir,
        summary,
    })
}
