//! Query protocols. `seed` (DESIGN.md §2): each song's query is the first 15 s of its own
//! file on the 0.5 s grid — i.e. exactly its first 30 training chunks (the seed's leak, kept
//! on purpose to reproduce its figure).

use crate::features::FeatureSet;
use ndarray::Array2;

/// One query: its chunk features and the song it really is.
#[derive(Debug, Clone)]
pub struct Query {
    pub truth: usize,
    pub features: Array2<f32>,
}

/// Seconds of audio in a seed query.
pub const SEED_QUERY_SECONDS: f64 = 15.0;

/// The seed protocol's queries: the first `query_seconds` of each song, chunked like training.
pub fn seed_queries(set: &FeatureSet, query_seconds: f64) -> Vec<Query> {
    let p = &set.sidecar.params;
    let chunks = ((query_seconds * p.sample_rate() as f64 - p.chunk_samples as f64)
        / p.chunk_hop as f64)
        .floor() as usize
        + 1;
    (0..set.n_songs())
        .map(|s| {
            let rows = set.song_rows(s);
            let n = chunks.min(rows.nrows());
            Query {
                truth: s,
                features: rows.slice(ndarray::s![..n, ..]).to_owned(),
            }
        })
        .collect()
}
