//! Evaluation: protocols (which queries, which truth), the decision rules, metrics, the
//! three modes of a quantized model, and the landmark baseline on the same queries.

pub mod extraction;
pub mod landmark;
pub mod metrics;
pub mod open_set;
pub mod protocol;
pub mod runner;
pub mod vote;

pub use metrics::{evaluate_clear, Metrics, Outcome};
pub use open_set::{
    calibrate, det_curve, open_set_metrics, DetCurve, DetPoint, OpenSetMetrics, OpenSetResult,
    OpenSetRow, ScoreKind, Threshold,
};
pub use protocol::{queries_from_files, seed_queries, Query, QueryFile, SEED_QUERY_SECONDS};
pub use runner::{
    evaluate_modes, evaluate_quantized, fhe_plan, FheCosts, FheScoring, Mode, ModeResult, ModeRun,
};
pub use vote::{majority_vote, Answer, Decision, Rule};
