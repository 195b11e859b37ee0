//! Evaluation: protocols (which queries, which truth), the vote, metrics.

pub mod metrics;
pub mod protocol;
pub mod runner;
pub mod vote;

pub use metrics::{evaluate_clear, Metrics, Outcome};
pub use protocol::{queries_from_files, seed_queries, Query, QueryFile, SEED_QUERY_SECONDS};
pub use runner::{evaluate_quantized, integer_layer, Mode, ModeResult};
pub use vote::{majority_vote, Answer, Decision, Rule};
