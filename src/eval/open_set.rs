//! Open-set identification: saying "not in the catalogue". A confidence is computed on the
//! client from the decrypted ranking (so it is free under FHE), and a threshold on it is
//! calibrated on queries of songs that are neither in the catalogue nor used for testing, to a
//! target false-match rate. Then identification rate, false-match rate and the DET curve
//! (false-match rate against miss rate over every threshold) of any set of answers.

use super::metrics::Outcome;
use super::runner::Mode;
use super::vote::Answer;
use serde::{Deserialize, Serialize};

pub use crate::model::{ScoreKind, Threshold};

impl Answer {
    /// The answer's confidence of `kind`; None for an answer that was never scored (silence,
    /// an empty ranking) or that its rule already called unknown.
    pub fn confidence(&self, kind: ScoreKind) -> Option<f64> {
        self.song?;
        let best = self.ranking.first()?.1;
        let per = self.chunks.max(1) as f64;
        Some(match kind {
            // An absolute log-posterior: not known from summed logits.
            ScoreKind::Best if self.summed => return None,
            ScoreKind::Best => best / per,
            // A missing runner-up scores 0: no votes or no aligned hashes for any other song.
            ScoreKind::Margin => (best - self.ranking.get(1).map_or(0.0, |r| r.1)) / per,
            // Shift and scale cancel, so per-chunk normalisers and J do not matter.
            ScoreKind::ZScore | ScoreKind::Gap => {
                let s = self.spread?;
                let above = match kind {
                    ScoreKind::ZScore => best - s.mean,
                    _ => best - self.ranking.get(1).map_or(s.mean, |r| r.1),
                };
                if s.std > 0.0 {
                    above / s.std
                } else {
                    0.0
                }
            }
        })
    }
}

impl Threshold {
    /// Whether the answer names a song at this threshold.
    pub fn accepts(&self, answer: &Answer) -> bool {
        answer.confidence(self.score).is_some_and(|c| c >= self.at)
    }

    /// The answer with its song withdrawn when it is below the threshold (the ranking stays,
    /// so "unknown — best candidate X" can still be said).
    pub fn apply(&self, mut answer: Answer) -> Answer {
        if !self.accepts(&answer) {
            answer.song = None;
        }
        answer
    }
}

/// The smallest threshold at which, in every group of calibration confidences (one group per
/// query condition), at most `false_match_rate` of the queries are accepted. `None` entries are
/// answers that were unknown anyway. With no confidence at all the threshold is −∞.
pub fn calibrate(groups: &[Vec<Option<f64>>], false_match_rate: f64) -> f64 {
    groups
        .iter()
        .map(|g| {
            let mut scores: Vec<f64> = g.iter().flatten().copied().collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            // At most `allowed` of the group's queries may be at or above the threshold: put it
            // just above the next one.
            let allowed = (false_match_rate * g.len() as f64 + 1e-9).floor() as usize;
            scores
                .get(allowed)
                .map_or(f64::NEG_INFINITY, |&s| s.next_up())
        })
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Open-set figures of one query condition at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenSetMetrics {
    /// Catalogue queries answered with their own song.
    pub identification: f64,
    /// Catalogue queries answered with another song.
    pub misidentification: f64,
    /// Impostor queries (songs outside the catalogue) answered with any song.
    pub false_match: f64,
    pub catalogue_queries: usize,
    pub impostor_queries: usize,
}

/// Figures of `catalogue` and `impostor` outcomes at `threshold`.
pub fn open_set_metrics(
    catalogue: &[Outcome],
    impostors: &[Outcome],
    threshold: &Threshold,
) -> OpenSetMetrics {
    let rate = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    let accepted: Vec<&Outcome> = catalogue
        .iter()
        .filter(|o| threshold.accepts(&o.answer))
        .collect();
    let right = accepted.iter().filter(|o| o.answer.song == o.truth).count();
    OpenSetMetrics {
        identification: rate(right, catalogue.len()),
        misidentification: rate(accepted.len() - right, catalogue.len()),
        false_match: rate(
            impostors
                .iter()
                .filter(|o| threshold.accepts(&o.answer))
                .count(),
            impostors.len(),
        ),
        catalogue_queries: catalogue.len(),
        impostor_queries: impostors.len(),
    }
}

/// One point of a DET curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetPoint {
    pub threshold: f64,
    pub false_match: f64,
    /// Catalogue queries not identified (rejected, or answered with another song).
    pub miss: f64,
}

/// The DET curve of `catalogue` against `impostors` under confidence `kind`: one point per
/// distinct confidence, from the most permissive threshold to the strictest.
pub fn det_curve(catalogue: &[Outcome], impostors: &[Outcome], kind: ScoreKind) -> Vec<DetPoint> {
    let mut thresholds: Vec<f64> = catalogue
        .iter()
        .chain(impostors)
        .filter_map(|o| o.answer.confidence(kind))
        .collect();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    // Genuine confidences of right answers (sorted), and every impostor confidence.
    let sorted = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        v
    };
    let right = sorted(
        catalogue
            .iter()
            .filter(|o| o.answer.song == o.truth)
            .filter_map(|o| o.answer.confidence(kind))
            .collect(),
    );
    let false_matches = sorted(
        impostors
            .iter()
            .filter_map(|o| o.answer.confidence(kind))
            .collect(),
    );
    // Count of values ≥ t in a sorted slice.
    let at_least = |v: &[f64], t: f64| v.len() - v.partition_point(|&x| x < t);
    let (n_cat, n_imp) = (catalogue.len().max(1) as f64, impostors.len().max(1) as f64);
    thresholds
        .into_iter()
        .map(|t| DetPoint {
            threshold: t,
            false_match: at_least(&false_matches, t) as f64 / n_imp,
            miss: 1.0 - at_least(&right, t) as f64 / n_cat,
        })
        .collect()
}

/// One model's open-set figures on one condition, at its calibrated threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSetRow {
    pub condition: String,
    /// "float", "n_bits=8" (simulate, which FHE equals score for score) or "landmark".
    pub model: String,
    pub mode: Mode,
    pub score: ScoreKind,
    #[serde(with = "crate::model::threshold::threshold_value")]
    pub threshold: f64,
    /// Catalogue queries answered with their own song at the threshold.
    pub identification: f64,
    /// Catalogue queries answered with another song at the threshold.
    pub misidentification: f64,
    /// Impostor queries answered with any song at the threshold.
    pub false_match: f64,
    /// Top-1 of the same catalogue queries without the threshold (closed set).
    pub closed_set_top1: f64,
    pub catalogue_queries: usize,
    pub impostor_queries: usize,
}

/// One model's DET curve on one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetCurve {
    pub condition: String,
    pub model: String,
    pub points: Vec<DetPoint>,
}

/// Everything the open-set protocol measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSetResult {
    pub catalogue_songs: usize,
    pub calibration_songs: usize,
    pub impostor_songs: usize,
    /// Each model's calibrated threshold.
    pub thresholds: Vec<(String, Threshold)>,
    /// The models folder whose files now carry their thresholds (`serve --models` it).
    #[serde(default)]
    pub models: Option<std::path::PathBuf>,
    pub rows: Vec<OpenSetRow>,
    pub det: Vec<DetCurve>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(truth: Option<usize>, ranking: &[(usize, f64)], chunks: usize) -> Outcome {
        Outcome {
            truth,
            answer: Answer {
                song: ranking.first().map(|r| r.0),
                ranking: ranking.to_vec(),
                chunks,
                spread: None,
                summed: false,
            },
            latency_s: 0.0,
        }
    }

    #[test]
    fn confidences_are_per_chunk_and_missing_for_unknown_answers() {
        let o = outcome(Some(0), &[(0, -3.0), (1, -9.0)], 3);
        assert_eq!(o.answer.confidence(ScoreKind::Margin), Some(2.0));
        assert_eq!(o.answer.confidence(ScoreKind::Best), Some(-1.0));
        let lone = outcome(Some(0), &[(0, 12.0)], 1);
        assert_eq!(lone.answer.confidence(ScoreKind::Margin), Some(12.0));
        assert_eq!(Answer::unknown().confidence(ScoreKind::Best), None);
        let mut withdrawn = o.answer.clone();
        withdrawn.song = None;
        assert_eq!(withdrawn.confidence(ScoreKind::Margin), None);
        // The z-score and the gap need every song's score: none kept by the landmark baseline.
        assert_eq!(o.answer.confidence(ScoreKind::ZScore), None);
        assert_eq!(o.answer.confidence(ScoreKind::Gap), None);
    }

    #[test]
    fn the_zscore_is_the_winner_against_the_whole_catalogue_and_scale_free() {
        let decide = |s: ndarray::Array2<f64>| {
            crate::eval::Decision {
                rule: crate::eval::Rule::LogProbSum,
                min_votes: 0,
            }
            .decide(s.view())
        };
        // One song far above four equal ones: totals (up to a shift) 4, 0, 0, 0, 0.
        let s = ndarray::array![[2.0, 0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0, 0.0]];
        let z = decide(s.clone()).confidence(ScoreKind::ZScore).unwrap();
        assert!((z - 2.0).abs() < 1e-9, "(4 − 0.8) / 1.6 = 2, got {z}");
        // Shifting a chunk's logits changes nothing.
        let shifted = &s + ndarray::array![[5.0], [-3.0]];
        let z2 = decide(shifted).confidence(ScoreKind::ZScore).unwrap();
        assert!((z - z2).abs() < 1e-9);
        // The gap: (4 − 0) / 1.6, with the same invariances.
        let g = decide(s.clone()).confidence(ScoreKind::Gap).unwrap();
        assert!((g - 2.5).abs() < 1e-9, "{g}");
        let scaled = decide(&s * 3.0).confidence(ScoreKind::Gap).unwrap();
        assert!((g - scaled).abs() < 1e-9);
        // All songs equal: nothing stands out.
        let flat = decide(ndarray::Array2::zeros((3, 4)));
        assert_eq!(flat.confidence(ScoreKind::ZScore), Some(0.0));
        assert_eq!(flat.confidence(ScoreKind::Gap), Some(0.0));
    }

    #[test]
    fn calibration_accepts_at_most_the_target_in_every_group() {
        // 100 impostor scores 0..99 in one group, 10 in another: at 1 % the first allows one
        // (99 is accepted, 98 is not), the second none (its best, 50, must be rejected).
        let a: Vec<Option<f64>> = (0..100).map(|v| Some(v as f64)).collect();
        let b: Vec<Option<f64>> = (41..51).map(|v| Some(v as f64)).collect();
        let t = calibrate(std::slice::from_ref(&a), 0.01);
        assert!(t > 98.0 && t <= 99.0, "{t}");
        assert!(calibrate(&[a, b.clone()], 0.01) > 98.0);
        let t = calibrate(&[b], 0.01);
        assert!(t > 50.0 && t < 50.001, "{t}");
        // Unknown answers count in the group's size but can never be accepted.
        let mostly_unknown: Vec<Option<f64>> =
            std::iter::once(Some(5.0)).chain([None; 99]).collect();
        assert_eq!(calibrate(&[mostly_unknown], 0.01), f64::NEG_INFINITY);
        assert_eq!(calibrate(&[], 0.01), f64::NEG_INFINITY);
    }

    #[test]
    fn metrics_and_det_curve_count_rejections_and_wrong_songs_as_misses() {
        let catalogue = [
            outcome(Some(0), &[(0, 10.0), (1, 2.0)], 1), // margin 8, right
            outcome(Some(1), &[(1, 5.0), (0, 4.0)], 1),  // margin 1, right
            outcome(Some(2), &[(0, 9.0), (2, 1.0)], 1),  // margin 8, wrong song
            outcome(Some(3), &[], 0),                    // silent: never scored
        ];
        let impostors = [
            outcome(None, &[(0, 3.0), (1, 0.0)], 1), // margin 3
            outcome(None, &[(1, 1.5), (0, 1.0)], 1), // margin 0.5
        ];
        let t = Threshold {
            rule: crate::eval::Rule::LogProbSum,
            score: ScoreKind::Margin,
            at: 2.0,
            false_match_rate: 0.5,
            calibration_queries: 2,
        };
        let m = open_set_metrics(&catalogue, &impostors, &t);
        assert_eq!(m.identification, 0.25);
        assert_eq!(m.misidentification, 0.25);
        assert_eq!(m.false_match, 0.5);
        assert!(!t.accepts(&catalogue[1].answer));
        // A silent query (never scored) is unknown at any threshold.
        assert!(!t.accepts(&catalogue[3].answer));
        assert_eq!(
            t.apply(catalogue[3].answer.clone()).song,
            None,
            "silence is never a match"
        );
        assert_eq!(t.apply(catalogue[1].answer.clone()).song, None);
        let det = det_curve(&catalogue, &impostors, ScoreKind::Margin);
        let thresholds: Vec<f64> = det.iter().map(|p| p.threshold).collect();
        assert_eq!(thresholds, vec![0.5, 1.0, 3.0, 8.0]);
        assert_eq!((det[0].false_match, det[0].miss), (1.0, 0.5));
        assert_eq!((det[2].false_match, det[2].miss), (0.5, 0.75));
        assert_eq!((det[3].false_match, det[3].miss), (0.0, 0.75));
    }
}
