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

/// A query given as an audio file and the song index it really is.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryFile {
    pub path: std::path::PathBuf,
    pub truth: usize,
}

/// Queries from audio files (any list of recordings + truth): each file is loaded like the
/// training audio, cut to its first `query_seconds`, and chunked like training. A file that
/// cannot be decoded or is shorter than one chunk is an error naming it.
pub fn queries_from_files(
    files: &[QueryFile],
    load: &crate::audio::LoadOptions,
    params: &crate::features::FeatureParams,
    query_seconds: f64,
) -> Result<Vec<Query>, crate::error::FeatureError> {
    let mfcc = crate::features::Mfcc::new(params.mfcc.clone())?;
    let opts = crate::audio::LoadOptions {
        max_seconds: Some(query_seconds),
        ..load.clone()
    };
    files
        .iter()
        .map(|f| {
            let fail = |reason: String| crate::error::FeatureError::Store {
                path: f.path.clone(),
                reason,
            };
            let audio = crate::audio::load(&f.path, &opts).map_err(|e| fail(e.to_string()))?;
            let features = crate::features::chunk_features(&mfcc, params, &audio.samples)
                .map_err(|e| fail(e.to_string()))?;
            Ok(Query {
                truth: f.truth,
                features,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{write_wav, Audio, LoadOptions};
    use crate::features::FeatureParams;

    #[test]
    fn query_files_are_cut_and_chunked_like_training() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.wav");
        let samples = (0..22_050 * 3)
            .map(|n| 0.3 * (n as f32 * 0.05).sin())
            .collect();
        write_wav(
            &path,
            &Audio {
                samples,
                sample_rate: 22_050,
            },
        )
        .unwrap();
        let files = [QueryFile {
            path: path.clone(),
            truth: 7,
        }];
        let q = queries_from_files(
            &files,
            &LoadOptions::default(),
            &FeatureParams::default(),
            2.0,
        )
        .unwrap();
        assert_eq!(q[0].truth, 7);
        assert_eq!(q[0].features.dim(), (4, 20), "2 s → four 0.5 s chunks");
        let missing = [QueryFile {
            path: dir.path().join("nope.wav"),
            truth: 0,
        }];
        let err = queries_from_files(
            &missing,
            &LoadOptions::default(),
            &FeatureParams::default(),
            2.0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope.wav"), "{err}");
    }
}
