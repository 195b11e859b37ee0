//! Evaluation of trained models on query sets: the float model in the clear, each quantized
//! model in the requested modes, and the landmark baseline; and the `evaluate` command's report.

use super::queries::{ConditionFiles, ConditionQueries};
use super::train::{load_models, Quantized, TrainedModels};
use crate::config::ExperimentConfig;
use crate::error::{EvalError, ExperimentError};
use crate::eval::landmark::{build_index, evaluate_landmark, LandmarkSummary};
use crate::eval::{
    evaluate_clear, evaluate_modes, seed_queries, Decision, FheScoring, Mode, ModeResult, ModeRun,
    Query, SEED_QUERY_SECONDS,
};
use crate::features::FeatureSet;
use crate::fhe::IntegerLinear;
use crate::fhe::{budget_lines, Circuit, ModelPrivacy};
use crate::fingerprint::LandmarkIndex;
use crate::model::{ScoreKind, Scorer};
use crate::report::evaluate::{EvaluationReport, EvaluationRow};
use crate::report::schema::{ModelKind, QuantizedBits, ResultRow, RowContext};
use crate::report::tables::noise_budget_table;
use crate::report::Provenance;
use std::path::{Path, PathBuf};

/// How the quantized models are evaluated.
#[derive(Debug, Clone)]
pub struct EvaluationPlan {
    pub modes: Vec<Mode>,
    /// Execute mode on the first N queries only (all by default).
    pub execute_limit: Option<usize>,
    pub decision: Decision,
    /// Execute mode's circuit; None: the one the decision implies ([`Rule::circuit`]).
    pub circuit: Option<Circuit>,
    /// Simulate and execute with model privacy.
    pub privacy: Option<ModelPrivacy>,
}

impl EvaluationPlan {
    /// The circuit for a model whose open-set confidence (if any) is `confidence`.
    pub fn circuit_for(&self, confidence: Option<ScoreKind>) -> Circuit {
        self.circuit
            .unwrap_or_else(|| self.decision.rule.circuit(confidence))
    }
}

/// One evaluated (model, mode): `None` for the float model.
pub struct Evaluated<'a> {
    pub quantized: Option<&'a Quantized>,
    pub run: ModeRun,
}

/// J of the FHE layout: the longest query (shorter ones are zero-padded).
pub fn layout_chunks(queries: &[Query]) -> usize {
    queries
        .iter()
        .map(|q| q.features.nrows())
        .max()
        .unwrap_or(1)
}

/// A clear-mode run of `scorer` on every query.
fn clear_run(
    scorer: &dyn Scorer,
    queries: &[Query],
    decision: &Decision,
) -> Result<ModeRun, EvalError> {
    let (metrics, _) = evaluate_clear(scorer, queries, decision)?;
    Ok(ModeRun::of(
        queries.len(),
        ModeResult {
            mode: Mode::Clear,
            metrics,
            fhe: None,
        },
        None,
    ))
}

/// The float model in the clear, then each quantized model in every mode of `plan`, on one
/// query set. `on_run` ticks once per quantized (model, mode).
pub fn evaluate_models<'a>(
    models: &'a TrainedModels,
    queries: &[Query],
    plan: &EvaluationPlan,
    on_run: &dyn Fn(),
) -> Result<Vec<Evaluated<'a>>, EvalError> {
    let chunks = layout_chunks(queries);
    let mut out = vec![Evaluated {
        quantized: None,
        run: clear_run(&models.float, queries, &plan.decision)?,
    }];
    for q in &models.quantized {
        for run in evaluate_modes(
            &q.model,
            queries,
            &plan.modes,
            plan.execute_limit,
            &plan.decision,
            chunks,
            FheScoring {
                circuit: plan.circuit_for(None),
                privacy: plan.privacy,
            },
        )? {
            out.push(Evaluated {
                quantized: Some(q),
                run,
            });
            on_run();
        }
    }
    Ok(out)
}

/// The report rows of `evaluated` under `at`.
pub fn result_rows(
    config: &ExperimentConfig,
    at: RowContext,
    evaluated: &[Evaluated],
) -> Vec<ResultRow> {
    evaluated
        .iter()
        .map(|e| match e.quantized {
            None => ResultRow::new(at, ModelKind::Float, None, &e.run),
            Some(q) => {
                let bits = QuantizedBits {
                    n_bits: q.n_bits,
                    weight_bits: config.quantization.weight_bits.unwrap_or(q.n_bits),
                    standardize_inputs: config.quantization.standardize_inputs,
                    accumulator_bits: q.model.accumulator_bits(),
                };
                ResultRow::new(at, ModelKind::Quantized, Some(bits), &e.run)
            }
        })
        .collect()
}

/// The Wang 2003 baseline's index on the models' footing: every catalogue song's training
/// audio (the held-out split included).
pub fn landmark_index(
    config: &ExperimentConfig,
    root: &Path,
    set: &FeatureSet,
) -> Result<(LandmarkIndex, LandmarkSummary), EvalError> {
    let songs: Vec<(usize, PathBuf)> = set
        .sidecar
        .songs
        .iter()
        .map(|r| (r.song.index, root.join(&r.song.path)))
        .collect();
    build_index(&config.landmark.params, &songs, &config.load_options())
}

/// The landmark baseline queried with the first `query_seconds` of each query file, the cut
/// the models' queries get: one clear-mode row per condition.
pub fn landmark_rows(
    config: &ExperimentConfig,
    index: &LandmarkIndex,
    conditions: &[ConditionFiles],
    dataset: &str,
) -> Result<Vec<ResultRow>, EvalError> {
    conditions
        .iter()
        .map(|c| {
            let (metrics, _) = evaluate_landmark(index, &c.files, config.evaluation.query_seconds)?;
            let run = ModeRun::of(
                metrics.queries,
                ModeResult {
                    mode: Mode::Clear,
                    metrics,
                    fhe: None,
                },
                None,
            );
            let at = RowContext {
                experiment: &config.name,
                dataset,
                condition: &c.condition,
            };
            Ok(ResultRow::new(at, ModelKind::Landmark, None, &run))
        })
        .collect()
}

/// Every condition's rows: the float and quantized models on that condition's queries.
pub fn condition_rows(
    config: &ExperimentConfig,
    models: &TrainedModels,
    conditions: &[ConditionQueries],
    dataset: &str,
) -> Result<Vec<ResultRow>, EvalError> {
    let ev = &config.evaluation;
    let plan = EvaluationPlan {
        modes: ev.modes.clone(),
        execute_limit: ev.execute_limit,
        decision: ev.decision(),
        circuit: Some(ev.circuit()),
        privacy: ev.model_privacy,
    };
    let mut rows = Vec::new();
    for c in conditions {
        let evaluated = evaluate_models(models, &c.queries, &plan, &|| {})?;
        let at = RowContext {
            experiment: &config.name,
            dataset,
            condition: &c.condition,
        };
        rows.extend(result_rows(config, at, &evaluated));
    }
    Ok(rows)
}

/// What `fhe-shazam evaluate` evaluates: the models written by `train` on the seed protocol.
#[derive(Debug, Clone)]
pub struct EvaluateTrained {
    pub models: PathBuf,
    pub features: PathBuf,
    /// Which quantized models (q<n>.json).
    pub n_bits: Vec<u32>,
    pub plan: EvaluationPlan,
    /// Report folder (results.json, results.md).
    pub out: PathBuf,
}

/// Evaluates the float model and each quantized model of `job.n_bits` on the seed protocol
/// (the first 15 s of every song), writes the report with the noise budget of each quantized
/// model under the plan the evaluator used, and returns it. `on_run` ticks once per
/// quantized (model, mode).
pub fn evaluate_trained(
    job: &EvaluateTrained,
    on_run: &dyn Fn(),
) -> Result<EvaluationReport, ExperimentError> {
    let set = FeatureSet::load(&job.features)?;
    let queries = seed_queries(&set, SEED_QUERY_SECONDS);
    let models = load_models(&job.models, &job.n_bits, set.n_songs())?;
    let evaluated = evaluate_models(&models, &queries, &job.plan, on_run)?;
    let rows = evaluated
        .into_iter()
        .map(|e| EvaluationRow {
            model: e
                .quantized
                .map_or("float".into(), |q| format!("quantized n_bits={}", q.n_bits)),
            n_bits: e.quantized.map(|q| q.n_bits),
            accumulator_bits: e.quantized.map(|q| q.model.accumulator_bits()),
            queries: e.run.queries,
            result: e.run.result,
            simulate_top1_same_queries: e.run.simulate_top1_same_queries,
            refused: e.run.refused,
        })
        .collect();
    let layers: Vec<(String, IntegerLinear)> = models
        .quantized
        .iter()
        .map(|q| (format!("n_bits={}", q.n_bits), q.model.integer_layer()))
        .collect();
    let labelled: Vec<(&str, &IntegerLinear)> = layers
        .iter()
        .map(|(l, layer)| (l.as_str(), layer))
        .collect();
    let noise_budget = noise_budget_table(&budget_lines(
        &labelled,
        layout_chunks(&queries),
        job.plan.circuit_for(None),
    )?);
    let report = EvaluationReport {
        features: job.features.clone(),
        models: job.models.clone(),
        songs: set.n_songs(),
        rows,
        noise_budget,
        provenance: Provenance::collect(),
    };
    report.write(&job.out)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::augment::TrainingRows;
    use crate::experiment::train::{tests::small_set, train_models, TrainedModels};

    /// The quantized models of `config` trained on the small set, and its seed-protocol rows.
    fn seed_rows(config: &ExperimentConfig) -> (TrainedModels, Vec<ResultRow>) {
        let set = small_set();
        let models = train_models(
            &TrainingRows::clean(&set),
            set.n_songs(),
            &config.training,
            &config.quantization,
        )
        .unwrap();
        let conditions = [crate::experiment::queries::ConditionQueries {
            condition: "seed".into(),
            queries: seed_queries(&set, SEED_QUERY_SECONDS),
        }];
        let rows = condition_rows(config, &models, &conditions, "small").unwrap();
        (models, rows)
    }

    #[test]
    fn one_float_row_then_every_mode_of_every_quantized_model() {
        let mut config = ExperimentConfig::seed("t");
        config.quantization.n_bits = vec![6, 8];
        // Per-feature ranges: one range over c0 (thousands) and the rest (tens) loses them.
        config.quantization.standardize_inputs = true;
        config.evaluation.execute_limit = Some(2);
        let (models, rows) = seed_rows(&config);
        assert_eq!(rows.len(), 1 + 2 * 3);
        assert_eq!(rows[0].model, ModelKind::Float);
        assert_eq!(rows[0].n_bits, None);
        let exe: Vec<&ResultRow> = rows.iter().filter(|r| r.mode == Mode::Execute).collect();
        assert_eq!(exe.len(), 2);
        for r in exe {
            assert_eq!(r.queries, 2, "execute_limit");
            assert_eq!(r.simulate_top1_same_queries, Some(r.top1), "FHE = simulate");
            assert!(r.bytes_down.is_some());
        }
        let sim8 = rows
            .iter()
            .find(|r| r.n_bits == Some(8) && r.mode == Mode::Simulate)
            .unwrap();
        assert_eq!(sim8.queries, 5);
        assert_eq!(
            sim8.accumulator_bits,
            Some(models.quantized[1].model.accumulator_bits())
        );
        assert!(sim8.top1 > 0.9, "{sim8:?}");
    }

    #[test]
    fn a_model_over_the_noise_budget_gets_a_refused_execute_row_not_an_error() {
        let mut config = ExperimentConfig::seed("t");
        config.quantization.n_bits = vec![13];
        let (_, rows) = seed_rows(&config);
        let exe = rows.iter().find(|r| r.mode == Mode::Execute).unwrap();
        assert_eq!(exe.queries, 0);
        assert!(
            exe.refused.as_deref().unwrap().contains("noise budget"),
            "{exe:?}"
        );
        let sim = rows.iter().find(|r| r.mode == Mode::Simulate).unwrap();
        assert!(sim.refused.is_none() && sim.queries == 5, "{sim:?}");
    }
}
