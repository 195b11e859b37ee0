//! Query protocols. `seed` (docs/ARCHITECTURE.md §2): each song's query is the first 15 s of
//! its own file on the 0.5 s grid — i.e. exactly its first 30 training chunks (the seed's leak,
//! kept on purpose to reproduce its figure).

use crate::error::EvalError;
use crate::features::FeatureSet;
use ndarray::Array2;

/// One query: its chunk features and the song it really is.
#[derive(Debug, Clone)]
pub struct Query {
    /// The song it really is; None for a song outside the catalogue (an impostor query).
    pub truth: Option<usize>,
    pub features: Array2<f32>,
    /// The recording is silence (below `audio::SILENCE_DBFS`): answered "unknown" unscored.
    pub silent: bool,
}

/// Seconds of audio in a seed query.
pub const SEED_QUERY_SECONDS: f64 = 15.0;

/// The seed protocol's queries: the first `query_seconds` of each song on the seed's grid of
/// non-overlapping chunks. When training used overlapping chunks (`chunk_hop` < `chunk_samples`),
/// only the rows on that grid are taken, so the query is still the seed's 30 chunks.
pub fn seed_queries(set: &FeatureSet, query_seconds: f64) -> Vec<Query> {
    let p = &set.sidecar.params;
    let query_samples = (query_seconds * p.sample_rate() as f64).round() as usize;
    (0..set.n_songs())
        .map(|s| {
            let first = set.sidecar.songs[s].first_row;
            let rows: Vec<usize> = (0..set.sidecar.songs[s].n_chunks)
                .filter(|&k| {
                    let start = set.chunk_index[first + k] * p.chunk_hop;
                    start.is_multiple_of(p.chunk_samples)
                        && start + p.chunk_samples <= query_samples
                })
                .collect();
            Query {
                truth: Some(s),
                features: set.song_rows(s).select(ndarray::Axis(0), &rows),
                // Silent songs never enter a feature set.
                silent: false,
            }
        })
        .collect()
}

/// A query given as an audio file and the song index it really is (None: not in the catalogue).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryFile {
    pub path: std::path::PathBuf,
    pub truth: Option<usize>,
}

/// Queries from audio files (any list of recordings + truth): each file is loaded like the
/// training audio, cut to its first `query_seconds`, and chunked like training. A file that
/// cannot be decoded or is shorter than one chunk is an error naming it.
pub fn queries_from_files(
    files: &[QueryFile],
    load: &crate::audio::LoadOptions,
    params: &crate::features::FeatureParams,
    query_seconds: f64,
) -> Result<Vec<Query>, EvalError> {
    let mfcc = crate::features::Mfcc::new(params.mfcc.clone()).map_err(|source| {
        EvalError::QueryFeatures {
            path: "[features.mfcc]".into(),
            source,
        }
    })?;
    let opts = crate::audio::LoadOptions {
        max_seconds: Some(query_seconds),
        ..load.clone()
    };
    files
        .iter()
        .map(|f| {
            let audio = crate::audio::load(&f.path, &opts)?;
            let features = crate::features::chunk_features(&mfcc, params, &audio.samples).map_err(
                |source| EvalError::QueryFeatures {
                    path: f.path.clone(),
                    source,
                },
            )?;
            Ok(Query {
                truth: f.truth,
                features,
                silent: crate::audio::silent(&audio.samples).is_some(),
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
            truth: Some(7),
        }];
        let q = queries_from_files(
            &files,
            &LoadOptions::default(),
            &FeatureParams::default(),
            2.0,
        )
        .unwrap();
        assert_eq!(q[0].truth, Some(7));
        assert_eq!(q[0].features.dim(), (4, 20), "2 s → four 0.5 s chunks");
        let missing = [QueryFile {
            path: dir.path().join("nope.wav"),
            truth: Some(0),
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

    /// A feature set of one song with `n` chunks at `hop`; row k's features are all k.
    fn set_with_hop(n: usize, hop: usize) -> FeatureSet {
        use crate::dataset::Song;
        use crate::features::store::{Sidecar, SongRecord, FORMAT, VERSION};
        let params = FeatureParams {
            chunk_hop: hop,
            ..FeatureParams::default()
        };
        let song = Song {
            index: 0,
            track_id: "1".into(),
            path: "a.wav".into(),
            title: None,
            artist: None,
        };
        FeatureSet {
            features: ndarray::Array2::from_shape_fn((n, 20), |(k, _)| k as f32),
            labels: vec![0; n],
            chunk_index: (0..n).collect(),
            sidecar: Sidecar {
                format: FORMAT.into(),
                version: VERSION,
                dataset: "/d".into(),
                load: LoadOptions::default(),
                params,
                transform: None,
                n_rows: n,
                dim: 20,
                songs: vec![SongRecord {
                    song,
                    sha256: String::new(),
                    bytes: 0,
                    modified: 0,
                    first_row: 0,
                    n_chunks: n,
                    duration_s: 30.0,
                }],
                failures: vec![],
                toolkit_version: String::new(),
                shard: None,
            },
        }
    }

    #[test]
    fn seed_queries_take_the_seed_grid_even_from_overlapping_chunks() {
        let q = seed_queries(&set_with_hop(59, 11_025), 15.0);
        assert_eq!(q[0].features.nrows(), 30);
        assert_eq!(q[0].features[[29, 0]], 29.0);
        // hop 0.1 s: every fifth row starts on the 0.5 s grid.
        let q = seed_queries(&set_with_hop(291, 2_205), 15.0);
        assert_eq!(q[0].features.nrows(), 30);
        assert_eq!(q[0].features[[1, 0]], 5.0);
        assert_eq!(q[0].features[[29, 0]], 145.0);
    }
}
