//! The `[extraction]` stage: for the plain protocol and each flood level λ of model privacy,
//! every quantized model's top-1 on the run's query sets and what the extraction attack
//! (eval::extraction) steals with 1 … 10 000 chosen queries. Both use simulation — the
//! rounded, flooded scores a private reply decrypts to, drawn as fhe::simulate does (the
//! `model_privacy` tests check real replies against it); the run's execute mode measures the
//! configured λ under real FHE.

use super::evaluate::layout_chunks;
use super::queries::ConditionQueries;
use super::train::TrainedModels;
use crate::config::{ExperimentConfig, ExtractionConfig};
use crate::error::{EvalError, ExperimentError};
use crate::eval::extraction::{extraction_curve, ExtractionLine, ExtractionResult};
use crate::eval::{evaluate_quantized, fhe_plan, FheScoring, Mode, OpenSetRow};
use crate::fhe::{simulate, Circuit, ModelPrivacy};
use ndarray::{concatenate, Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The open-set rows of a run re-calibrated under a flood level (`None`: plain).
pub type OpenSetAt<'a> = dyn Fn(Option<ModelPrivacy>) -> Result<Vec<OpenSetRow>, EvalError> + 'a;

/// Runs the stage on the run's models and query sets; `open_set_at`, when the run has the
/// open-set protocol, adds its identification and false-match rates at every flood level.
pub fn extraction(
    config: &ExperimentConfig,
    extraction: &ExtractionConfig,
    models: &TrainedModels,
    conditions: &[ConditionQueries],
    open_set_at: Option<&OpenSetAt>,
    on_line: &dyn Fn(),
) -> Result<ExtractionResult, ExperimentError> {
    let decision = config.evaluation.decision();
    let circuit = config.evaluation.circuit();
    let all: Vec<_> = conditions.iter().flat_map(|c| c.queries.iter()).collect();
    let chunks = conditions
        .iter()
        .map(|c| layout_chunks(&c.queries))
        .max()
        .unwrap_or(1);
    let levels: Vec<Option<u32>> = std::iter::once(None)
        .chain(extraction.flood_bits.iter().map(|&l| Some(l)))
        .collect();
    let mut lines = Vec::new();
    let mut test_queries = 0;
    for q in &models.quantized {
        // The attack's test set: every real query's circuit rows, with what the client adds
        // before deciding: −z_c per chunk row, n·(q_b − z_c) to a summed row (its layer has no
        // bias), z_c the per-class output zero points of the dequantization.
        let layer = q.model.integer_layer();
        let zero = q.model.output_zero_points();
        let (mut rows, mut offsets) = (Vec::new(), Vec::new());
        for query in all.iter().filter(|q| !q.silent) {
            let q_x = q.model.quantize_input(query.features.view())?;
            let n = q_x.nrows().min(chunks) as i64;
            let (r, offset) = match circuit {
                // The chunks the query has, not the padding.
                Circuit::Chunks => (
                    q_x.slice(ndarray::s![..n as usize, ..]).to_owned(),
                    (-zero)
                        .insert_axis(Axis(0))
                        .broadcast((n as usize, layer.classes()))
                        .map(|v| v.to_owned())
                        .ok_or_else(|| {
                            ExperimentError::InvalidArgument("output zero points".into())
                        })?,
                ),
                Circuit::Summed => (
                    circuit.query_rows(q_x.view(), chunks, 0),
                    ((&layer.bias - zero) * n).insert_axis(Axis(0)),
                ),
            };
            rows.push(r);
            offsets.push(offset);
        }
        let stack = |parts: &[Array2<i64>]| {
            concatenate(Axis(0), &parts.iter().map(|p| p.view()).collect::<Vec<_>>())
                .map_err(|e| ExperimentError::InvalidArgument(format!("extraction test rows: {e}")))
        };
        let (test_rows, test_offsets) = (stack(&rows)?, stack(&offsets)?);
        test_queries = rows.len();
        for &level in &levels {
            let scoring = FheScoring {
                circuit,
                privacy: level.map(|flood_bits| ModelPrivacy { flood_bits }),
            };
            let plan = fhe_plan(&q.model, scoring, chunks)?;
            let mut top1 = Vec::new();
            for c in conditions {
                let (result, _) = evaluate_quantized(
                    &q.model,
                    &c.queries,
                    Mode::Simulate,
                    &decision,
                    chunks,
                    scoring,
                )?;
                top1.push((c.condition.clone(), result.metrics.top1));
            }
            let mut noise = ChaCha8Rng::seed_from_u64(extraction.seed ^ 0x0F10_0D00);
            let mut oracle = |chosen: ndarray::ArrayView2<i64>| {
                let exact = simulate::clear_scores(&plan.layer, chosen)?;
                Ok(match &plan.privacy {
                    Some(p) => simulate::sample_private_scores(
                        &exact,
                        plan.budget.delta_log2,
                        p,
                        &mut noise,
                    ),
                    None => exact,
                })
            };
            let open_set = match open_set_at {
                Some(at) => {
                    let label = format!("n_bits={}", q.n_bits);
                    at(scoring.privacy)?
                        .into_iter()
                        .filter(|r| r.model == label)
                        .map(|r| (r.condition, r.identification, r.false_match))
                        .collect()
                }
                None => Vec::new(),
            };
            let attack = extraction_curve(
                &plan.layer,
                &mut oracle,
                circuit.rows(chunks),
                &extraction.queries,
                test_rows.view(),
                test_offsets.view(),
                extraction.seed,
            )?;
            lines.push(ExtractionLine {
                n_bits: q.n_bits,
                flood_bits: level,
                rounding_bits: plan.privacy.as_ref().map_or(0, |p| p.rounding_bits),
                top1,
                open_set,
                attack,
            });
            on_line();
        }
    }
    Ok(ExtractionResult {
        circuit,
        rows_per_query: circuit.rows(chunks),
        test_queries,
        lines,
    })
}
