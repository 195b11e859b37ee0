//! Datasets: FMA-style trees or any folder of audio files, the song catalog, synthetic corpora.

pub mod catalog;
pub mod synth;

pub use catalog::{Catalog, Shard, ShardInfo, Song};
pub mod fma;

pub use fma::{scan, FmaSubset, ScanOptions};
pub mod degrade;
pub mod families;
pub mod queries;
pub mod query_list;
pub use query_list::{read_query_list, write_query_list, ListedQuery, QUERY_LIST_FILE};

pub use degrade::{apply, degrade, Degradation, NoiseColour};
pub use queries::{
    merge_query_sets, read_query_set, write_query_set, write_query_set_part, Condition, QueryEntry,
    QuerySet, QuerySetParams, QuerySetSummary, QueryWindow,
};
