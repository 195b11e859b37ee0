//! Evaluation of a quantized model in the three modes of docs/ARCHITECTURE.md §4:
//! `clear` (dequantized float inference), `simulate` (the exact integer circuit the FHE
//! scheme computes) and `execute` (real encryption: keygen, encrypt, packed-GLWE scoring,
//! decrypt; every decrypted score checked against the integer circuit).

use super::metrics::{quantile, Metrics, Outcome};
use super::protocol::Query;
use super::vote::Decision;
use crate::error::{EvalError, FheError};
use crate::fhe::{FhePlan, Session};
use crate::model::{argmax_rows, QuantizedModel};
use ndarray::{s, Array2};
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Clear,
    Simulate,
    Execute,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Clear => "clear",
            Mode::Simulate => "simulate",
            Mode::Execute => "execute",
        })
    }
}

/// Per-query FHE costs (execute mode only), medians over the evaluated queries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FheCosts {
    pub keygen_ms: f64,
    pub encrypt_ms: f64,
    pub server_ms: f64,
    pub decrypt_ms: f64,
    pub bytes_up: usize,
    pub bytes_down: usize,
    /// Decrypted scores compared with the integer circuit (all equal, or the run fails).
    pub scores_checked: usize,
}

/// The result of one model in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeResult {
    pub mode: Mode,
    pub metrics: Metrics,
    pub fhe: Option<FheCosts>,
}

/// Pads (or cuts) a query to exactly `rows` chunks: the FHE layout has a fixed J.
fn fit_rows(q_x: &Array2<i64>, rows: usize) -> Array2<i64> {
    let mut out = Array2::zeros((rows, q_x.ncols()));
    let n = rows.min(q_x.nrows());
    out.slice_mut(s![..n, ..]).assign(&q_x.slice(s![..n, ..]));
    out
}

/// Evaluates `model` on `queries` in `mode`, with each query's outcome; in execute mode the
/// layout has J = `chunks` rows (shorter queries are zero-padded, and the padding's scores
/// ignored).
pub fn evaluate_quantized(
    model: &QuantizedModel,
    queries: &[Query],
    mode: Mode,
    decision: &Decision,
    chunks: usize,
) -> Result<(ModeResult, Vec<Outcome>), EvalError> {
    let session = match mode {
        Mode::Execute => {
            let layer = model.integer_layer();
            let plan = FhePlan::for_layer(&layer, chunks)?;
            let t = Instant::now();
            let session = Session::new(&layer, plan.layout, plan.params)?;
            Some((session, t.elapsed().as_secs_f64() * 1e3))
        }
        _ => None,
    };
    let (mut outcomes, mut hits, mut total) = (Vec::new(), 0, 0);
    let (mut enc, mut srv, mut dec, mut up, mut down, mut checked) =
        (vec![], vec![], vec![], 0, 0, 0);
    for (index, q) in queries.iter().enumerate() {
        if q.silent {
            outcomes.push(Outcome::silent(q.truth));
            continue;
        }
        let start = Instant::now();
        let scores = match (mode, &session) {
            (Mode::Clear, _) => model.decision_function(q.features.view())?,
            (Mode::Simulate, _) => {
                let q_x = model.quantize_input(q.features.view())?;
                model.dequantize(model.integer_scores(q_x.view())?.view())?
            }
            (Mode::Execute, Some((session, _))) => {
                let q_x = model.quantize_input(q.features.view())?;
                let n = q_x.nrows().min(chunks);
                let outcome = session
                    .run(fit_rows(&q_x, chunks).view())
                    .map_err(|source| EvalError::Query {
                        query: index,
                        truth: q.truth,
                        source,
                    })?;
                enc.push(outcome.encrypt.as_secs_f64() * 1e3);
                srv.push(outcome.server.as_secs_f64() * 1e3);
                dec.push(outcome.decrypt.as_secs_f64() * 1e3);
                (up, down) = (outcome.bytes_up, outcome.bytes_down);
                checked += outcome.scores.len();
                model.dequantize(outcome.scores.slice(s![..n, ..]))?
            }
            (Mode::Execute, None) => unreachable!("execute mode always has a session"),
        };
        let latency_s = start.elapsed().as_secs_f64();
        let answer = decision.decide(scores.view());
        let predictions = argmax_rows(scores.view());
        hits += predictions.iter().filter(|&&p| Some(p) == q.truth).count();
        total += predictions.len();
        outcomes.push(Outcome {
            truth: q.truth,
            answer,
            latency_s,
        });
    }
    let fhe = session.map(|(_, keygen_ms)| FheCosts {
        keygen_ms,
        encrypt_ms: quantile(&enc, 0.5),
        server_ms: quantile(&srv, 0.5),
        decrypt_ms: quantile(&dec, 0.5),
        bytes_up: up,
        bytes_down: down,
        scores_checked: checked,
    });
    let result = ModeResult {
        mode,
        metrics: Metrics::from_outcomes(&outcomes, hits, total),
        fhe,
    };
    Ok((result, outcomes))
}

/// One mode's result over `queries` queries; execute rows carry simulate's top-1 on exactly
/// the same queries (FHE must equal it).
#[derive(Debug, Clone, PartialEq)]
pub struct ModeRun {
    pub queries: usize,
    pub result: ModeResult,
    pub simulate_top1_same_queries: Option<f64>,
    /// Execute mode that cannot run: why (the layer exceeds the noise budget at every reply
    /// width). The run then has no queries.
    pub refused: Option<String>,
}

impl ModeRun {
    /// A run of `mode` over every query, nothing refused.
    pub fn of(queries: usize, result: ModeResult, simulate_top1_same_queries: Option<f64>) -> Self {
        Self {
            queries,
            result,
            simulate_top1_same_queries,
            refused: None,
        }
    }
}

/// Evaluates `model` in each of `modes`; execute runs on the first `execute_limit` queries only.
/// A model the FHE planner refuses (noise budget exceeded at every reply width) gets an execute
/// run marked `refused` with the reason, not an error: the other modes still stand.
pub fn evaluate_modes(
    model: &QuantizedModel,
    queries: &[Query],
    modes: &[Mode],
    execute_limit: Option<usize>,
    decision: &Decision,
    chunks: usize,
) -> Result<Vec<ModeRun>, EvalError> {
    modes
        .iter()
        .map(|&mode| {
            let subset = match (mode, execute_limit) {
                (Mode::Execute, Some(limit)) => &queries[..limit.min(queries.len())],
                _ => queries,
            };
            if mode == Mode::Execute {
                if let Err(e @ FheError::NoiseBudget { .. }) =
                    FhePlan::for_layer(&model.integer_layer(), chunks)
                {
                    return Ok(ModeRun {
                        queries: 0,
                        result: ModeResult {
                            mode,
                            metrics: Metrics::from_outcomes(&[], 0, 0),
                            fhe: None,
                        },
                        simulate_top1_same_queries: None,
                        refused: Some(e.to_string()),
                    });
                }
            }
            let (result, _) = evaluate_quantized(model, subset, mode, decision, chunks)?;
            let simulate_top1_same_queries = match mode {
                Mode::Execute => Some(
                    evaluate_quantized(model, subset, Mode::Simulate, decision, chunks)?
                        .0
                        .metrics
                        .top1,
                ),
                _ => None,
            };
            Ok(ModeRun::of(
                subset.len(),
                result,
                simulate_top1_same_queries,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FloatModel, QuantOptions};
    use ndarray::array;

    fn toy() -> (QuantizedModel, Vec<Query>) {
        // 3 classes on 2 features; class c has its mean at (c, −c).
        let float = FloatModel::new(
            array![[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]],
            array![0.0, 0.5, 0.0],
        )
        .unwrap();
        let x = array![[2.0f32, -2.0], [0.0, 0.0], [-2.0, 2.0], [1.0, -1.0]];
        let q = QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(8)).unwrap();
        let queries = vec![
            Query {
                truth: Some(0),
                features: Array2::from_shape_fn((6, 2), |(_, j)| if j == 0 { 2.0 } else { -2.0 }),
                silent: false,
            },
            Query {
                truth: Some(2),
                features: Array2::from_shape_fn((6, 2), |(_, j)| if j == 0 { -2.0 } else { 2.0 }),
                silent: false,
            },
            Query {
                truth: Some(1),
                features: Array2::zeros((5, 2)),
                silent: false,
            },
        ];
        (q, queries)
    }

    #[test]
    fn three_modes_agree_and_execute_checks_every_score() {
        let (model, queries) = toy();
        let clear = evaluate_quantized(&model, &queries, Mode::Clear, &Decision::SEED, 8)
            .unwrap()
            .0;
        let sim = evaluate_quantized(&model, &queries, Mode::Simulate, &Decision::SEED, 8)
            .unwrap()
            .0;
        let exe = evaluate_quantized(&model, &queries, Mode::Execute, &Decision::SEED, 8)
            .unwrap()
            .0;
        assert_eq!(sim.metrics.top1, 1.0);
        assert_eq!(clear.metrics.top1, sim.metrics.top1);
        assert_eq!(exe.metrics.top1, sim.metrics.top1);
        assert_eq!(exe.metrics.chunk_accuracy, sim.metrics.chunk_accuracy);
        let costs = exe.fhe.unwrap();
        assert_eq!(
            costs.scores_checked,
            3 * 8 * 3,
            "J = 8 padded rows × 3 classes per query"
        );
        assert!(costs.bytes_up > 0 && costs.bytes_down > 0);
        assert!(sim.fhe.is_none());
    }

    #[test]
    fn padding_keeps_rows_and_zero_fills() {
        let q = array![[1i64, 2], [3, 4]];
        assert_eq!(fit_rows(&q, 3), array![[1, 2], [3, 4], [0, 0]]);
        assert_eq!(fit_rows(&q, 1), array![[1, 2]]);
    }
}
