//! How a model's scores become an answer, stored with the model: the decision rule, and the
//! open-set rejection threshold calibrated for it (computed and applied in `eval`).

use serde::{Deserialize, Serialize};

use crate::fhe::Circuit;

/// How chunk scores become an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The seed: majority vote of the chunks' argmax.
    Votes,
    /// Sum of the chunks' log-softmax scores; the best total wins.
    LogProbSum,
}

impl Rule {
    /// The FHE circuit a decision needs. The vote rule counts per-chunk winners, so it needs
    /// every chunk's scores; the log-probability sum ranks songs exactly as the summed
    /// scores do, so one summed vector suffices — unless its confidence is `best`, the
    /// winner's mean log-posterior, which needs each chunk's softmax normaliser.
    pub fn circuit(self, confidence: Option<ScoreKind>) -> Circuit {
        match (self, confidence) {
            (Rule::Votes, _) | (Rule::LogProbSum, Some(ScoreKind::Best)) => Circuit::Chunks,
            (Rule::LogProbSum, _) => Circuit::Summed,
        }
    }
}

/// Which confidence of an answer the threshold applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// (best − second best) / J: for `log_prob_sum`, the mean per-chunk log-likelihood ratio of
    /// the winner against the runner-up. The per-chunk normalisers cancel, so it is the same on
    /// summed logits.
    Margin,
    /// best / J: the winner's mean per-chunk log-posterior (`log_prob_sum`), vote share
    /// (`votes`) or aligned-hash count (landmark, J = 1).
    Best,
    /// (best − mean) / standard deviation of all C songs' scores: how far the winner stands
    /// out of the whole catalogue (for `log_prob_sum`, the same on summed logits). Not defined
    /// for the landmark baseline.
    #[serde(rename = "zscore")]
    #[value(name = "zscore")]
    ZScore,
    /// (best − second best) / standard deviation of all C songs' scores: the margin in units
    /// of the catalogue's spread. Among C unrelated songs the top two are close in those
    /// units; noise shrinks every score difference alike, which the plain margin takes for
    /// doubt and this does not. Not defined for the landmark baseline.
    Gap,
}

impl ScoreKind {
    pub const ALL: [ScoreKind; 4] = [
        ScoreKind::Margin,
        ScoreKind::Best,
        ScoreKind::ZScore,
        ScoreKind::Gap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Margin => "margin",
            ScoreKind::Best => "best",
            ScoreKind::ZScore => "zscore",
            ScoreKind::Gap => "gap",
        }
    }
}

/// A calibrated rejection threshold: answers whose confidence is below `at` are "unknown"
/// (applied by `eval::open_set`; stored in the model file it was calibrated for).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// The decision rule whose answers it was calibrated on.
    pub rule: Rule,
    pub score: ScoreKind,
    /// −∞ when no calibration query got an answer at all (every answer passes).
    #[serde(with = "threshold_value")]
    pub at: f64,
    /// The false-match rate it was calibrated to.
    pub false_match_rate: f64,
    /// How many calibration queries (of songs outside the catalogue) set it.
    pub calibration_queries: usize,
}

/// Serde for a threshold value, which may be −∞: JSON has no infinities (serde_json writes
/// them as `null`, which it cannot read back as a number), so −∞ is written as the string
/// "-inf"; `null`, as reports written before this were, reads as −∞ too (the only
/// non-finite value a threshold takes).
pub mod threshold_value {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if *v == f64::NEG_INFINITY {
            s.serialize_str("-inf")
        } else {
            Err(serde::ser::Error::custom(format!(
                "threshold {v} is neither finite nor −∞"
            )))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Value {
            Number(f64),
            Text(String),
            Null(()),
        }
        match Value::deserialize(d)? {
            Value::Number(v) => Ok(v),
            Value::Text(t) if t == "-inf" => Ok(f64::NEG_INFINITY),
            Value::Text(t) => Err(serde::de::Error::custom(format!(
                "threshold \"{t}\": expected a number or \"-inf\""
            ))),
            Value::Null(()) => Ok(f64::NEG_INFINITY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_infinite_threshold_survives_json() {
        let t = |at| Threshold {
            rule: Rule::LogProbSum,
            score: ScoreKind::Best,
            at,
            false_match_rate: 0.01,
            calibration_queries: 200,
        };
        for at in [f64::NEG_INFINITY, 8.25, -3.0] {
            let json = serde_json::to_string(&t(at)).unwrap();
            let back: Threshold = serde_json::from_str(&json).unwrap();
            assert_eq!(back.at, at, "{json}");
        }
        let written = serde_json::to_string(&t(f64::NEG_INFINITY)).unwrap();
        assert!(written.contains(r#""at":"-inf""#), "{written}");
        // Reports written before the fix hold null there.
        let old = written.replace(r#""-inf""#, "null");
        let back: Threshold = serde_json::from_str(&old).unwrap();
        assert_eq!(back.at, f64::NEG_INFINITY);
        let err = serde_json::from_str::<Threshold>(&written.replace("-inf", "lots"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lots"), "{err}");
        assert!(serde_json::to_string(&t(f64::NAN)).is_err());
    }
}
