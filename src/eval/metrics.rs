//! Song-level metrics of a model on a list of queries, in the clear.

use super::protocol::Query;
use super::vote::{Answer, Decision};
use crate::error::ModelError;
use crate::model::{argmax_rows, Scorer};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One query's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The song it really is; None for a song outside the catalogue (an impostor query).
    pub truth: Option<usize>,
    pub answer: Answer,
    /// Seconds spent in the model's predict call for the whole query (the seed's latency).
    pub latency_s: f64,
}

impl Outcome {
    /// A silent recording: "unknown" without scoring.
    pub fn silent(truth: Option<usize>) -> Self {
        Self {
            truth,
            answer: Answer::unknown(),
            latency_s: 0.0,
        }
    }
}

/// Accuracy and latency over a query set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub queries: usize,
    /// Fraction of queries whose answer is the true song (unknown counts as wrong; for
    /// impostor queries, unknown is the true answer).
    pub top1: f64,
    /// Fraction whose true song is among the 3 most voted.
    pub top3: f64,
    pub unknown_rate: f64,
    /// Fraction of all query chunks predicted as their true song.
    pub chunk_accuracy: f64,
    pub latency_median_ms: f64,
    pub latency_p95_ms: f64,
}

/// The `q`-quantile (nearest rank) of `values`; 0 for an empty slice.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

impl Metrics {
    /// Summarises outcomes; `chunk_hits` is the number of chunks predicted right out of `chunks`.
    pub fn from_outcomes(outcomes: &[Outcome], chunk_hits: usize, chunks: usize) -> Self {
        let n = outcomes.len().max(1) as f64;
        let count =
            |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count() as f64 / n;
        let latencies: Vec<f64> = outcomes.iter().map(|o| o.latency_s * 1e3).collect();
        Self {
            queries: outcomes.len(),
            top1: count(&|o| o.answer.song == o.truth),
            top3: count(&|o| o.truth.is_some_and(|t| o.answer.in_top(t, 3))),
            unknown_rate: count(&|o| o.answer.song.is_none()),
            chunk_accuracy: chunk_hits as f64 / chunks.max(1) as f64,
            latency_median_ms: quantile(&latencies, 0.5),
            latency_p95_ms: quantile(&latencies, 0.95),
        }
    }
}

/// Scores every query with `scorer` (one call per query, timed: the seed's latency), decides
/// each answer with `decision`, and summarises.
pub fn evaluate_clear(
    scorer: &dyn Scorer,
    queries: &[Query],
    decision: &Decision,
) -> Result<(Metrics, Vec<Outcome>), ModelError> {
    let (mut hits, mut chunks) = (0, 0);
    let mut outcomes = Vec::with_capacity(queries.len());
    for q in queries {
        if q.silent {
            outcomes.push(Outcome::silent(q.truth));
            continue;
        }
        let start = Instant::now();
        let scores = scorer.scores(q.features.view())?;
        let latency_s = start.elapsed().as_secs_f64();
        let predictions = argmax_rows(scores.view());
        hits += predictions.iter().filter(|&&p| Some(p) == q.truth).count();
        chunks += predictions.len();
        let answer = decision.decide(scores.view());
        outcomes.push(Outcome {
            truth: q.truth,
            answer,
            latency_s,
        });
    }
    Ok((Metrics::from_outcomes(&outcomes, hits, chunks), outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FloatModel;
    use ndarray::{array, Array2};

    #[test]
    fn perfect_and_confused_queries() {
        // Two classes: class 0 if x > 0 else class 1.
        let model = FloatModel::new(array![[1.0, -1.0]], array![0.0, 0.0]).unwrap();
        let q = |truth, v: f32, n| Query {
            truth: Some(truth),
            features: Array2::from_elem((n, 1), v),
            silent: false,
        };
        let queries = [q(0, 1.0, 6), q(1, -1.0, 6), q(1, 1.0, 6), q(0, 1.0, 3)];
        let (m, out) = evaluate_clear(&model, &queries, &Decision::SEED).unwrap();
        assert_eq!(out[2].answer.song, Some(0));
        assert_eq!(out[3].answer.song, None, "3 votes < 5 is unknown");
        assert_eq!(m.top1, 0.5);
        assert_eq!(m.unknown_rate, 0.25);
        assert_eq!(
            m.top3, 0.75,
            "the confused query has its truth nowhere in the ranking"
        );
        assert!((m.chunk_accuracy - 15.0 / 21.0).abs() < 1e-12);
    }

    #[test]
    fn a_silent_query_is_unknown_and_unscored() {
        let model = FloatModel::new(array![[1.0, -1.0]], array![0.0, 0.0]).unwrap();
        let queries = [Query {
            truth: Some(0),
            // Would be answered song 0 with 6 votes if it were scored.
            features: Array2::from_elem((6, 1), 1.0),
            silent: true,
        }];
        let (m, out) = evaluate_clear(&model, &queries, &Decision::SEED).unwrap();
        assert_eq!(out[0].answer, Answer::unknown());
        assert_eq!((m.top1, m.unknown_rate, m.chunk_accuracy), (0.0, 1.0, 0.0));
    }

    #[test]
    fn quantile_nearest_rank() {
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(
            quantile(&(0..100).map(f64::from).collect::<Vec<_>>(), 0.95),
            94.0
        );
    }
}
