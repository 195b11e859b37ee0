//! Turning per-chunk class scores into one answer per query. The seed's rule (`votes`): each
//! chunk votes for its best song, the most voted song wins, unknown if it has fewer than
//! `min_votes` votes. `log_prob_sum`: the chunks' log-softmax scores are summed per song (a
//! naive-Bayes product of the chunks' posteriors), so a chunk that is unsure but ranks the right
//! song second still counts. Both run on the client after decryption, so either works under FHE.

use crate::model::argmax_rows;
use ndarray::{ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// The answer to one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The identified song, or None for "unknown".
    pub song: Option<usize>,
    /// Songs ranked best first (ties by lower index like numpy's argmax), with the rule's score:
    /// the vote count for `votes`, the summed log-probability for `log_prob_sum`.
    pub ranking: Vec<(usize, f64)>,
    /// Chunks the ranking's scores are summed over (J; 1 for the landmark baseline), so a
    /// confidence can be put per chunk and compared across query lengths.
    #[serde(default)]
    pub chunks: usize,
    /// Mean and standard deviation of every song's score (not only the ten kept), for a
    /// confidence measured against the whole catalogue; None for the landmark baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// The ranking's scores are summed logits (the summed circuit): log-probability sums up
    /// to one constant per query, so differences (margin, z-score) are exact but the `best`
    /// confidence (an absolute log-posterior) is not defined.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub summed: bool,
}

/// Mean and (population) standard deviation of the scores of all C songs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
}

impl Spread {
    pub fn of(scores: &[f64]) -> Option<Self> {
        if scores.is_empty() {
            return None;
        }
        let n = scores.len() as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let var = scores.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Some(Self {
            mean,
            std: var.sqrt(),
        })
    }
}

impl Answer {
    /// "Unknown", with no ranking (e.g. a silent recording, never scored).
    pub fn unknown() -> Self {
        Self {
            song: None,
            ranking: Vec::new(),
            chunks: 0,
            spread: None,
            summed: false,
        }
    }

    /// Whether `truth` is among the first `k` ranked songs (top-k; unknown answers count as wrong
    /// for top-1 only through `song`).
    pub fn in_top(&self, truth: usize, k: usize) -> bool {
        self.ranking.iter().take(k).any(|&(s, _)| s == truth)
    }
}

pub use crate::model::Rule;

/// A decision rule with its unknown threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub rule: Rule,
    /// `votes` only: fewer votes than this for the winner → unknown (the seed: 5).
    pub min_votes: usize,
}

impl Decision {
    /// The seed's rule.
    pub const SEED: Decision = Decision {
        rule: Rule::Votes,
        min_votes: 5,
    };

    /// The log-probability sum: the default of `identify` and `serve` (summed circuit).
    pub const LOG_PROB_SUM: Decision = Decision {
        rule: Rule::LogProbSum,
        min_votes: 0,
    };

    /// The answer for one query from its J × C score matrix (any monotone per-chunk scores for
    /// `votes`; logits — dequantized integer scores included — for `log_prob_sum`).
    pub fn decide(&self, scores: ArrayView2<f64>) -> Answer {
        match self.rule {
            Rule::Votes => majority_vote(&argmax_rows(scores), scores.ncols(), self.min_votes),
            Rule::LogProbSum => log_prob_sum(scores),
        }
    }

    /// The answer from the summed circuit: `totals` are the per-class sums over `chunks`
    /// chunks of the logits, which rank songs exactly as the log-probability sum does (each
    /// chunk's normaliser is the same for every class). Only `log_prob_sum` can decide on
    /// them: the vote rule needs each chunk's winner.
    pub fn decide_summed(&self, totals: ArrayView1<f64>, chunks: usize) -> Option<Answer> {
        match self.rule {
            Rule::Votes => None,
            Rule::LogProbSum => {
                let mut answer = rank_totals(totals.to_vec(), chunks);
                answer.summed = true;
                Some(answer)
            }
        }
    }
}

/// Ranks songs by the sum over chunks of log-softmax(scores); never unknown.
fn log_prob_sum(scores: ArrayView2<f64>) -> Answer {
    let mut total = vec![0.0f64; scores.ncols()];
    for row in scores.axis_iter(Axis(0)) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_z = max + row.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
        for (t, &v) in total.iter_mut().zip(row) {
            *t += v - log_z;
        }
    }
    rank_totals(total, scores.nrows())
}

/// Ranks songs by their totals over `chunks` chunks, best first; unknown only with no chunk.
fn rank_totals(total: Vec<f64>, chunks: usize) -> Answer {
    let spread = Spread::of(&total);
    let mut ranking: Vec<(usize, f64)> = total.into_iter().enumerate().collect();
    // Stable sort: equal totals keep the lower index first.
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1));
    // The answer keeps the ten best songs: enough for top-k metrics and a readable JSON.
    ranking.truncate(10);
    let song = (chunks > 0 && !ranking.is_empty()).then(|| ranking[0].0);
    Answer {
        song,
        ranking,
        chunks,
        spread,
        summed: false,
    }
}

/// Majority vote over per-chunk predicted song indices.
pub fn majority_vote(predictions: &[usize], n_classes: usize, min_votes: usize) -> Answer {
    let mut counts = vec![0usize; n_classes];
    for &p in predictions {
        if p < n_classes {
            counts[p] += 1;
        }
    }
    let spread = Spread::of(&counts.iter().map(|&c| c as f64).collect::<Vec<_>>());
    let mut ranking: Vec<(usize, f64)> = counts
        .into_iter()
        .enumerate()
        .filter(|&(_, c)| c > 0)
        .map(|(s, c)| (s, c as f64))
        .collect();
    // Stable sort keeps lower indices first among equal counts (numpy argmax semantics).
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1));
    let song = ranking
        .first()
        .filter(|&&(_, c)| c >= min_votes as f64)
        .map(|&(s, _)| s);
    Answer {
        song,
        ranking,
        chunks: predictions.len(),
        spread,
        summed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_voted_wins_and_ties_go_to_lower_index() {
        let a = majority_vote(&[3, 1, 3, 1, 2, 3, 1], 5, 1);
        assert_eq!(a.song, Some(1));
        assert_eq!(a.ranking, vec![(1, 3.0), (3, 3.0), (2, 1.0)]);
        assert!(a.in_top(3, 2) && !a.in_top(2, 2));
    }

    #[test]
    fn fewer_than_min_votes_is_unknown() {
        let a = majority_vote(&[0, 0, 0, 0, 1, 2, 3], 4, 5);
        assert_eq!(a.song, None);
        assert_eq!(majority_vote(&[0; 5], 4, 5).song, Some(0));
        assert_eq!(majority_vote(&[], 4, 5).song, None);
    }

    #[test]
    fn log_prob_sum_counts_runner_up_evidence() {
        // Chunks 0-1 narrowly prefer song 0, chunks 2-4 strongly prefer song 1: with 3 votes
        // the seed's rule says unknown, the summed log-probabilities pick song 1.
        let s = ndarray::array![
            [1.0, 0.9, -5.0],
            [1.0, 0.9, -5.0],
            [0.0, 3.0, -5.0],
            [0.0, 3.0, -5.0],
            [0.0, 3.0, -5.0]
        ];
        assert_eq!(Decision::SEED.decide(s.view()).song, None, "3 votes < 5");
        let sum = Decision {
            rule: Rule::LogProbSum,
            min_votes: 5,
        };
        assert_eq!(sum.decide(s.view()).song, Some(1));
        // …but when song 0 wins narrowly everywhere and song 2 is a close second everywhere
        // while song 1 alternates, the sum follows the consistent evidence.
        let s = ndarray::array![
            [2.0, 0.0, 1.9],
            [0.0, 2.1, 1.9],
            [2.0, 0.0, 1.9],
            [0.0, 2.1, 1.9]
        ];
        let votes = Decision {
            rule: Rule::Votes,
            min_votes: 1,
        };
        assert_eq!(
            votes.decide(s.view()).song,
            Some(0),
            "2–2 tie → lower index"
        );
        let a = sum.decide(s.view());
        assert_eq!(a.song, Some(2));
        assert!(a.in_top(2, 1) && a.ranking.len() == 3);
        // log-probabilities are ≤ 0 and shift-invariant per chunk.
        assert!(a.ranking.iter().all(|&(_, v)| v <= 0.0));
        let shifted = s.mapv(|v| v + 100.0);
        let (a, b) = (sum.decide(shifted.view()), sum.decide(s.view()));
        assert_eq!(a.song, b.song);
        for ((sa, va), (sb, vb)) in a.ranking.iter().zip(&b.ranking) {
            assert!(sa == sb && (va - vb).abs() < 1e-9);
        }
        assert_eq!(sum.decide(ndarray::Array2::zeros((0, 3)).view()).song, None);
    }
}
