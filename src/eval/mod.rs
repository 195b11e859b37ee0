//! Evaluation: protocols (which queries, which truth), the vote, metrics.

pub mod protocol;
pub mod vote;

pub use vote::{majority_vote, Answer};
