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
}

impl ScoreKind {
    pub const ALL: [ScoreKind; 3] = [ScoreKind::Margin, ScoreKind::Best, ScoreKind::ZScore];

    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Margin => "margin",
            ScoreKind::Best => "best",
            ScoreKind::ZScore => "zscore",
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
    pub at: f64,
    /// The false-match rate it was calibrated to.
    pub false_match_rate: f64,
    /// How many calibration queries (of songs outside the catalogue) set it.
    pub calibration_queries: usize,
}
