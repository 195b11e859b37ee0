//! Evaluation: protocols (which queries, which truth), the vote, metrics.

pub mod metrics;
pub mod protocol;
pub mod vote;

pub use vote::{majority_vote, Answer};
pub use metrics::{evaluate_clear, Metrics, Outcome};
pub use protocol::{seed_queries, Query, SEED_QUERY_SECONDS};
