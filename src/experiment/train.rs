//! Training: the float model and, from it, one quantized model per n_bits; saving them as
//! model files, reloading a cached set, and the `train` command's scored grid.

use super::augment::TrainingRows;
use super::cache::ModelInputs;
use super::evaluate::layout_chunks;
use crate::config::{ExperimentConfig, QuantizationConfig};
use crate::error::{ExperimentError, FheError, ModelError};
use crate::eval::{evaluate_clear, seed_queries, Decision, Rule, SEED_QUERY_SECONDS};
use crate::features::FeatureSet;
use crate::fhe::FhePlan;
use crate::fsutil;
use crate::model::{fit, FloatModel, LogisticParams, ModelFile, QuantizedModel, Scorer, Threshold};
use crate::report::tables::NOT_POSSIBLE;
use crate::report::train::{TrainSummary, TrainedRow};
use crate::report::Provenance;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A quantized model of the grid and the seconds its quantization took.
#[derive(Debug, Clone)]
pub struct Quantized {
    pub n_bits: u32,
    pub model: QuantizedModel,
    pub seconds: f64,
}

/// The float model and one quantized model per n_bits of the grid.
#[derive(Debug, Clone)]
pub struct TrainedModels {
    pub float: FloatModel,
    pub float_seconds: f64,
    pub quantized: Vec<Quantized>,
}

/// Trains the float model on `rows` and quantizes it (post-training, calibrated on the chunk
/// rows) at every n_bits of `quantization`. A model fitted on window sums of J chunks scores a
/// sum as w·Σx + b; its bias is divided by J so that it scores chunks, and the J chunk scores
/// of a window add up to what it was fitted on.
pub fn train_models(
    rows: &TrainingRows,
    n_classes: usize,
    training: &LogisticParams,
    quantization: &QuantizationConfig,
) -> Result<TrainedModels, ModelError> {
    let t = Instant::now();
    let mut float = fit(rows.features.view(), &rows.labels, n_classes, training)?;
    float.bias /= rows.window as f64;
    let float_seconds = t.elapsed().as_secs_f64();
    let quantized = quantization
        .n_bits
        .iter()
        .map(|&n_bits| {
            let t = Instant::now();
            let model = QuantizedModel::from_float(
                &float,
                rows.chunk_rows(),
                &quantization.options(n_bits),
            )?;
            Ok(Quantized {
                n_bits,
                model,
                seconds: t.elapsed().as_secs_f64(),
            })
        })
        .collect::<Result<_, ModelError>>()?;
    Ok(TrainedModels {
        float,
        float_seconds,
        quantized,
    })
}

/// The file of the float model in a models folder.
pub fn float_path(dir: &Path) -> PathBuf {
    dir.join("float.json")
}

/// The file of the n_bits quantized model in a models folder.
pub fn quantized_path(dir: &Path, n_bits: u32) -> PathBuf {
    dir.join(format!("q{n_bits}.json"))
}

/// Saves `models` as self-describing model files (`float.json`, `q8.json`, …) in `dir`.
pub fn save_models(
    dir: &Path,
    set: &FeatureSet,
    models: &TrainedModels,
    training: &LogisticParams,
) -> Result<(), ModelError> {
    let catalog = set.catalog();
    let params = &set.sidecar.params;
    ModelFile::float(
        params.clone(),
        catalog.clone(),
        models.float.clone(),
        Some(training.clone()),
    )?
    .save(&float_path(dir))?;
    for q in &models.quantized {
        ModelFile::quantized(
            params.clone(),
            catalog.clone(),
            q.model.clone(),
            Some(training.clone()),
        )?
        .save(&quantized_path(dir, q.n_bits))?;
    }
    Ok(())
}

/// Loads the float model and the quantized models of `n_bits` from `dir`; every file's
/// catalog must have `songs` songs (the feature set the models are used with).
pub fn load_models(
    dir: &Path,
    n_bits: &[u32],
    songs: usize,
) -> Result<TrainedModels, ExperimentError> {
    let load = |path: PathBuf| -> Result<ModelFile, ExperimentError> {
        let file = ModelFile::load(&path)?;
        if file.catalog().len() != songs {
            return Err(ExperimentError::CatalogMismatch {
                path,
                found: file.catalog().len(),
                expected: songs,
            });
        }
        Ok(file)
    };
    let float = load(float_path(dir))?.float_model().clone();
    let quantized = n_bits
        .iter()
        .map(|&n| {
            let path = quantized_path(dir, n);
            let model = load(path.clone())?
                .quantized_model()
                .cloned()
                .ok_or(ExperimentError::NotQuantized { path })?;
            Ok(Quantized {
                n_bits: n,
                model,
                seconds: 0.0,
            })
        })
        .collect::<Result<_, ExperimentError>>()?;
    Ok(TrainedModels {
        float,
        float_seconds: 0.0,
        quantized,
    })
}

/// The experiment's models: reloaded from `data_dir/models/<key>/` when they were trained from
/// exactly these inputs, else trained and saved there. Returns whether they were reused.
pub fn cached_models(
    config: &ExperimentConfig,
    set: &FeatureSet,
    rows: &TrainingRows,
) -> Result<(TrainedModels, bool), ExperimentError> {
    let inputs = ModelInputs::of(config, set);
    let dir = inputs.dir(config, set);
    let inputs_path = dir.join("inputs.json");
    let cached = std::fs::read(&inputs_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ModelInputs>(&b).ok());
    if cached.as_ref() == Some(&inputs) {
        if let Ok(models) = load_models(&dir, &config.quantization.n_bits, set.n_songs()) {
            return Ok((models, true));
        }
    }
    // Invalidate first: an interrupted save must not leave inputs.json beside stale models.
    let _ = std::fs::remove_file(&inputs_path);
    let models = train_models(rows, set.n_songs(), &config.training, &config.quantization)?;
    save_models(&dir, set, &models, &config.training)?;
    fsutil::write_json_atomic(&inputs_path, &inputs).map_err(|source| ExperimentError::Io {
        path: inputs_path.clone(),
        source,
    })?;
    Ok((models, false))
}

/// Writes each model's calibrated open-set threshold into its file in the experiment's models
/// folder (`float.json`, `q<n>.json`), so `serve` publishes it and `identify` applies it.
/// `threshold_of` gives the threshold of the float model (None) or of the n_bits model.
/// Returns the folder.
pub fn save_open_set(
    config: &ExperimentConfig,
    set: &FeatureSet,
    threshold_of: &dyn Fn(Option<u32>) -> Option<Threshold>,
) -> Result<PathBuf, ExperimentError> {
    let dir = ModelInputs::of(config, set).dir(config, set);
    let files = std::iter::once((None, float_path(&dir))).chain(
        config
            .quantization
            .n_bits
            .iter()
            .map(|&n| (Some(n), quantized_path(&dir, n))),
    );
    for (n_bits, path) in files {
        if let Some(t) = threshold_of(n_bits) {
            ModelFile::load(&path)?.with_open_set(t).save(&path)?;
        }
    }
    Ok(dir)
}

/// What `fhe-shazam train` trains.
#[derive(Debug, Clone)]
pub struct TrainGrid {
    /// Feature set folder written by `extract`.
    pub features: PathBuf,
    /// Output folder for the model files and the summary.
    pub out: PathBuf,
    pub training: LogisticParams,
    /// The n_bits grid and its options (must not be empty).
    pub quantization: QuantizationConfig,
    /// Seed-protocol vote threshold for the scores.
    pub min_votes: usize,
}

/// Trains the grid on the clean features, saves every model in `grid.out`, scores each on the
/// seed protocol (first 15 s of every song, majority vote) and writes the summary
/// (summary.md, summary.json). `on_model` ticks once per quantized model.
pub fn train_grid(grid: &TrainGrid, on_model: &dyn Fn()) -> Result<TrainSummary, ExperimentError> {
    let Some(&last) = grid.quantization.n_bits.last() else {
        return Err(ExperimentError::InvalidArgument(
            "the n_bits grid is empty".into(),
        ));
    };
    let set = FeatureSet::load(&grid.features)?;
    let models = train_models(
        &TrainingRows::clean(&set),
        set.n_songs(),
        &grid.training,
        &grid.quantization,
    )?;
    save_models(&grid.out, &set, &models, &grid.training)?;
    let queries = seed_queries(&set, SEED_QUERY_SECONDS);
    let decision = Decision {
        rule: Rule::Votes,
        min_votes: grid.min_votes,
    };
    let score = |scorer: &dyn Scorer| evaluate_clear(scorer, &queries, &decision).map(|r| r.0);
    let mut rows = vec![TrainedRow {
        model: "float".into(),
        n_bits: None,
        weight_bits: None,
        accumulator_bits: None,
        file: float_path(&grid.out),
        seconds_to_build: models.float_seconds,
        seed: score(&models.float)?,
        fhe: None,
    }];
    let chunks = layout_chunks(&queries);
    for q in &models.quantized {
        let opts = q.model.options();
        rows.push(TrainedRow {
            model: format!("quantized n_bits={}", q.n_bits),
            n_bits: Some(opts.n_bits_input),
            weight_bits: Some(opts.n_bits_weight),
            accumulator_bits: Some(q.model.accumulator_bits()),
            file: quantized_path(&grid.out, q.n_bits),
            seconds_to_build: q.seconds,
            seed: score(&q.model)?,
            fhe: Some(fhe_feasibility(&q.model, chunks)?),
        });
        on_model();
    }
    let summary = TrainSummary {
        features: grid.features.clone(),
        songs: set.n_songs(),
        rows: set.features.nrows(),
        training: grid.training.clone(),
        fit: models.float.fit.clone(),
        quantization: grid.quantization.options(last),
        models: rows,
        provenance: Provenance::collect(),
    };
    summary.write(&grid.out)?;
    Ok(summary)
}

/// Whether `model` runs under FHE with `chunks` chunk vectors per query: "32-bit reply" (the
/// reply width the planner picks) or "not possible under FHE: <the planner's reason>".
pub fn fhe_feasibility(model: &QuantizedModel, chunks: usize) -> Result<String, ExperimentError> {
    match FhePlan::for_layer(&model.integer_layer(), chunks) {
        Ok(plan) => Ok(format!("{}-bit reply", plan.params.reply_modulus_log.0)),
        Err(e @ FheError::NoiseBudget { .. }) => Ok(format!("{NOT_POSSIBLE}: {e}")),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::synthetic::{ClusterSpec, SyntheticSet};

    /// A 5-song feature set of separable clusters, sorted by label.
    pub(crate) fn small_set() -> FeatureSet {
        let s: SyntheticSet = ClusterSpec {
            n_classes: 5,
            rows_per_class: 40,
            dim: 20,
            noise: 0.3,
            seed: 3,
        }
        .generate();
        let mut order: Vec<usize> = (0..s.y_train.len()).collect();
        order.sort_by_key(|&i| s.y_train[i]);
        let features = s.x_train.select(ndarray::Axis(0), &order);
        let labels = order.iter().map(|&i| s.y_train[i]).collect();
        FeatureSet::for_tests(features, labels, "/data/small")
    }

    fn config(dir: &Path) -> ExperimentConfig {
        let mut c = ExperimentConfig::seed("t");
        c.output.data_dir = dir.to_path_buf();
        c.quantization.n_bits = vec![6, 8];
        c
    }

    #[test]
    fn cached_models_are_reused_only_for_the_same_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let set = small_set();
        let rows = TrainingRows::clean(&set);
        let mut c = config(dir.path());
        let (first, reused) = cached_models(&c, &set, &rows).unwrap();
        assert!(!reused);
        assert_eq!(first.quantized.len(), 2);
        let (again, reused) = cached_models(&c, &set, &rows).unwrap();
        assert!(reused, "same inputs: the saved models come back");
        assert_eq!(again.float, first.float);
        assert_eq!(again.quantized[1].model, first.quantized[1].model);
        c.quantization.standardize_inputs = true;
        let (_, reused) = cached_models(&c, &set, &rows).unwrap();
        assert!(!reused, "another quantization: new models");
    }

    #[test]
    fn loading_refuses_a_different_catalog_and_a_float_file_as_quantized() {
        let dir = tempfile::tempdir().unwrap();
        let set = small_set();
        let c = config(dir.path());
        let models =
            train_models(&TrainingRows::clean(&set), 5, &c.training, &c.quantization).unwrap();
        save_models(dir.path(), &set, &models, &c.training).unwrap();
        let err = load_models(dir.path(), &[8], 6).unwrap_err();
        assert!(
            matches!(
                err,
                ExperimentError::CatalogMismatch {
                    found: 5,
                    expected: 6,
                    ..
                }
            ),
            "{err}"
        );
        std::fs::copy(float_path(dir.path()), quantized_path(dir.path(), 4)).unwrap();
        let err = load_models(dir.path(), &[4], 5).unwrap_err();
        assert!(err.to_string().contains("q4.json"), "{err}");
    }

    /// A grid over the small set saved under `dir`, writing models to `dir/models`.
    fn small_grid(dir: &Path, n_bits: Vec<u32>) -> TrainGrid {
        small_set().save(&dir.join("features")).unwrap();
        TrainGrid {
            features: dir.join("features"),
            out: dir.join("models"),
            training: LogisticParams::default(),
            quantization: QuantizationConfig {
                n_bits,
                ..QuantizationConfig::default()
            },
            min_votes: 5,
        }
    }

    #[test]
    fn the_train_grid_scores_every_model_and_refuses_an_empty_grid() {
        let dir = tempfile::tempdir().unwrap();
        let mut grid = small_grid(dir.path(), vec![4, 8]);
        let ticks = std::sync::atomic::AtomicUsize::new(0);
        let summary = train_grid(&grid, &|| {
            ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(ticks.into_inner(), 2);
        assert_eq!(summary.models.len(), 3);
        assert_eq!(summary.models[2].n_bits, Some(8));
        assert!(
            summary.models[0].seed.top1 > 0.9,
            "{:?}",
            summary.models[0].seed
        );
        assert!(grid.out.join("summary.md").exists() && quantized_path(&grid.out, 4).exists());
        grid.quantization.n_bits.clear();
        assert!(matches!(
            train_grid(&grid, &|| {}),
            Err(ExperimentError::InvalidArgument(_))
        ));
    }

    #[test]
    fn the_train_grid_says_which_models_cannot_run_under_fhe() {
        let dir = tempfile::tempdir().unwrap();
        let grid = small_grid(dir.path(), vec![8, 13]);
        let summary = train_grid(&grid, &|| {}).unwrap();
        let fhe: Vec<Option<&str>> = summary.models.iter().map(|m| m.fhe.as_deref()).collect();
        assert_eq!(fhe[0], None, "float");
        assert_eq!(fhe[1], Some("32-bit reply"));
        assert!(summary.models[2].refused(), "{:?}", fhe[2]);
        assert!(fhe[2].unwrap().contains("noise budget"), "{:?}", fhe[2]);
        let md = std::fs::read_to_string(grid.out.join("summary.md")).unwrap();
        assert!(
            md.contains("**quantized n_bits=13: not possible under FHE"),
            "{md}"
        );
    }
}
