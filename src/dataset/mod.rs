//! Datasets: FMA-style trees or any folder of audio files, the song catalog, synthetic corpora.

pub mod catalog;
pub mod synth;

pub use catalog::{Catalog, Song};
pub mod fma;

pub use fma::{scan, ScanOptions};
pub mod degrade;
pub mod families;
pub mod queries;

pub use degrade::{apply, degrade, Degradation, NoiseColour};
pub use queries::{
    read_query_set, write_query_set, Condition, QueryEntry, QuerySet, QuerySetParams,
    QuerySetSummary, QueryWindow,
};
