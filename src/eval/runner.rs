//! Evaluation of a quantized model in the three modes of docs/ARCHITECTURE.md §4:
//! `clear` (dequantized float inference), `simulate` (the exact integer circuit the FHE
//! scheme computes) and `execute` (real encryption: keygen, encrypt, packed-GLWE scoring,
//! decrypt; every decrypted score checked against the integer circuit).

use super::metrics::{quantile, Metrics, Outcome};
use super::protocol::Query;
use super::vote::{Decision, Rule};
use crate::error::{EvalError, FheError};
use crate::fhe::{simulate, Circuit, FhePlan, ModelPrivacy, Session};
use crate::model::{argmax_rows, QuantizedModel};
use ndarray::s;
use rand::SeedableRng;
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

/// Seed of the flood sampled by simulate mode under model privacy.
const PRIVATE_SIMULATION_SEED: u64 = 0x000F_100D;

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
    /// The circuit the queries were scored with (older reports: `chunks`).
    #[serde(default)]
    pub circuit: Circuit,
    /// Model privacy's λ, when the model was served with it (scores then checked to within
    /// 2^ρ, `rounding_bits`, of the circuit's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood_bits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounding_bits: Option<u32>,
    /// The client's public key, sent once (model privacy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_bytes: Option<usize>,
}

/// How execute and simulate modes score a query: the circuit, and the model-privacy option
/// (fhe::privacy) if the model is served with it. A bare [`Circuit`] means no privacy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FheScoring {
    pub circuit: Circuit,
    pub privacy: Option<ModelPrivacy>,
}

impl From<Circuit> for FheScoring {
    fn from(circuit: Circuit) -> Self {
        Self {
            circuit,
            privacy: None,
        }
    }
}

/// The FHE plan of `model` under `scoring`.
pub fn fhe_plan(
    model: &QuantizedModel,
    scoring: FheScoring,
    chunks: usize,
) -> Result<FhePlan, FheError> {
    let plan = FhePlan::for_circuit(&model.integer_layer(), scoring.circuit, chunks)?;
    match scoring.privacy {
        Some(privacy) => plan.with_privacy(privacy),
        None => Ok(plan),
    }
}

/// The result of one model in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeResult {
    pub mode: Mode,
    pub metrics: Metrics,
    pub fhe: Option<FheCosts>,
}

/// Evaluates `model` on `queries` in `mode`, with each query's outcome. Execute mode scores
/// queries of up to J = `chunks` chunks with `circuit`: `chunks` pads shorter queries with
/// zeros and ignores the padding's scores; `summed` adds the query's chunks and decides on
/// the summed scores ([`Decision::decide_summed`]; the vote rule cannot). Clear and simulate
/// modes score every chunk, which gives the same decisions. With model privacy, simulate
/// mode decides on the circuit's scores rounded and flooded as a client decrypts them
/// ([`simulate::sample_private_scores`], seeded, so a run is reproducible), and execute mode
/// on the real private replies.
pub fn evaluate_quantized(
    model: &QuantizedModel,
    queries: &[Query],
    mode: Mode,
    decision: &Decision,
    chunks: usize,
    scoring: impl Into<FheScoring>,
) -> Result<(ModeResult, Vec<Outcome>), EvalError> {
    let scoring = scoring.into();
    let circuit = scoring.circuit;
    if mode == Mode::Execute && circuit == Circuit::Summed && decision.rule == Rule::Votes {
        return Err(EvalError::Circuit(
            "the votes rule needs every chunk's scores: use the chunks circuit".into(),
        ));
    }
    let private_plan = match (mode, scoring.privacy) {
        (Mode::Simulate, Some(_)) => Some(fhe_plan(model, scoring, chunks)?),
        _ => None,
    };
    let mut flood_rng = rand_chacha::ChaCha8Rng::seed_from_u64(PRIVATE_SIMULATION_SEED);
    let session = match mode {
        Mode::Execute => {
            let plan = fhe_plan(model, scoring, chunks)?;
            let t = Instant::now();
            let session = Session::from_plan(&plan)?;
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
        // Per-chunk scores, and for a summed query the answer decided on its summed scores.
        let (scores, summed_answer) = match (mode, &session) {
            (Mode::Clear, _) => (model.decision_function(q.features.view())?, None),
            (Mode::Simulate, _) => {
                let q_x = model.quantize_input(q.features.view())?;
                let scores = model.dequantize(model.integer_scores(q_x.view())?.view())?;
                match &private_plan {
                    Some(plan) => {
                        let privacy = plan.privacy.as_ref().expect("planned with privacy");
                        let rows = circuit.query_rows(q_x.view(), chunks, 0);
                        let exact = simulate::clear_scores(&plan.layer, rows.view())?;
                        let rounded = simulate::sample_private_scores(
                            &exact,
                            plan.budget.delta_log2,
                            privacy,
                            &mut flood_rng,
                        );
                        let n = q_x.nrows().min(chunks);
                        match circuit {
                            Circuit::Chunks => {
                                (model.dequantize(rounded.slice(s![..n, ..]))?, None)
                            }
                            Circuit::Summed => {
                                let totals = model.dequantize_summed(rounded.row(0), n)?;
                                (scores, decision.decide_summed(totals.view(), n))
                            }
                        }
                    }
                    None => (scores, None),
                }
            }
            (Mode::Execute, Some((session, _))) => {
                let q_x = model.quantize_input(q.features.view())?;
                let n = q_x.nrows().min(chunks);
                let outcome = session
                    .run(circuit.query_rows(q_x.view(), chunks, 0).view())
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
                match circuit {
                    Circuit::Chunks => (model.dequantize(outcome.scores.slice(s![..n, ..]))?, None),
                    Circuit::Summed => {
                        let totals = model.dequantize_summed(outcome.scores.row(0), n)?;
                        let answer = decision.decide_summed(totals.view(), n);
                        // The reply has no per-chunk scores: the chunk top-1 of this row is the
                        // integer circuit's on the same chunks (as in simulate).
                        let q_x = q_x.slice(s![..n, ..]);
                        (model.dequantize(model.integer_scores(q_x)?.view())?, answer)
                    }
                }
            }
            (Mode::Execute, None) => unreachable!("execute mode always has a session"),
        };
        let latency_s = start.elapsed().as_secs_f64();
        let answer = summed_answer.unwrap_or_else(|| decision.decide(scores.view()));
        let predictions = argmax_rows(scores.view());
        hits += predictions.iter().filter(|&&p| Some(p) == q.truth).count();
        total += predictions.len();
        outcomes.push(Outcome {
            truth: q.truth,
            answer,
            latency_s,
        });
    }
    let fhe = session.map(|(session, keygen_ms)| FheCosts {
        keygen_ms,
        encrypt_ms: quantile(&enc, 0.5),
        server_ms: quantile(&srv, 0.5),
        decrypt_ms: quantile(&dec, 0.5),
        bytes_up: up,
        bytes_down: down,
        scores_checked: checked,
        circuit,
        flood_bits: scoring.privacy.map(|p| p.flood_bits),
        rounding_bits: scoring.privacy.map(|_| session.server.spec().rounding_bits),
        public_key_bytes: scoring.privacy.map(|_| session.public_key_bytes),
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
    scoring: impl Into<FheScoring>,
) -> Result<Vec<ModeRun>, EvalError> {
    let scoring = scoring.into();
    modes
        .iter()
        .map(|&mode| {
            let subset = match (mode, execute_limit) {
                (Mode::Execute, Some(limit)) => &queries[..limit.min(queries.len())],
                _ => queries,
            };
            if mode == Mode::Execute {
                if let Err(e @ FheError::NoiseBudget { .. }) = fhe_plan(model, scoring, chunks) {
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
            let (result, _) = evaluate_quantized(model, subset, mode, decision, chunks, scoring)?;
            let simulate_top1_same_queries = match mode {
                Mode::Execute => Some(
                    evaluate_quantized(model, subset, Mode::Simulate, decision, chunks, scoring)?
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
    use crate::eval::vote::Answer;
    use crate::model::{FloatModel, QuantOptions};
    use ndarray::{array, Array2};

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
        let run = |mode| {
            evaluate_quantized(&model, &queries, mode, &Decision::SEED, 8, Circuit::Chunks)
                .unwrap()
                .0
        };
        let (clear, sim, exe) = (run(Mode::Clear), run(Mode::Simulate), run(Mode::Execute));
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
        assert_eq!(costs.circuit, Circuit::Chunks);
        assert!(sim.fhe.is_none());
    }

    #[test]
    fn the_summed_circuit_ranks_as_the_chunks_log_prob_sum_with_one_row_of_scores() {
        let (model, queries) = toy();
        let decision = Decision {
            rule: Rule::LogProbSum,
            min_votes: 0,
        };
        let run = |mode, circuit| {
            evaluate_quantized(&model, &queries, mode, &decision, 8, circuit).unwrap()
        };
        let (sim, sim_out) = run(Mode::Simulate, Circuit::Chunks);
        let (exe, exe_out) = run(Mode::Execute, Circuit::Summed);
        for (s, e) in sim_out.iter().zip(&exe_out) {
            assert_eq!(e.answer.song, s.answer.song);
            assert!(e.answer.summed && !s.answer.summed);
            let order = |a: &Answer| a.ranking.iter().map(|r| r.0).collect::<Vec<_>>();
            assert_eq!(order(&e.answer), order(&s.answer));
            // The same totals up to the per-query constant Σ_j log Z_j.
            let shift = e.answer.ranking[0].1 - s.answer.ranking[0].1;
            for (er, sr) in e.answer.ranking.iter().zip(&s.answer.ranking) {
                assert!((er.1 - sr.1 - shift).abs() < 1e-9, "{er:?} vs {sr:?}");
            }
        }
        assert_eq!(exe.metrics.top1, sim.metrics.top1);
        let costs = exe.fhe.unwrap();
        assert_eq!(costs.circuit, Circuit::Summed);
        assert_eq!(costs.scores_checked, 3 * 3, "one row of 3 scores per query");
        // The vote rule cannot decide on summed scores.
        let err = evaluate_quantized(
            &model,
            &queries,
            Mode::Execute,
            &Decision::SEED,
            8,
            Circuit::Summed,
        )
        .unwrap_err();
        assert!(err.to_string().contains("chunks circuit"), "{err}");
    }
}
