//! The Wang 2003 landmark baseline on the models' footing: an index of every catalogue song's
//! training audio, queried with the same query files the models get, cut to the same length.

use super::metrics::{Metrics, Outcome};
use super::protocol::QueryFile;
use super::vote::Answer;
use crate::audio::LoadOptions;
use crate::error::EvalError;
use crate::fingerprint::{
    Landmark, LandmarkIndex, LandmarkIndexBuilder, LandmarkParams, LandmarkStats,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Size and build time of the landmark baseline's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandmarkSummary {
    pub stats: LandmarkStats,
    /// Wall time to load and fingerprint every song and build the table.
    pub build_seconds: f64,
}

fn landmark_err(path: &Path) -> impl FnOnce(crate::error::FingerprintError) -> EvalError {
    let path = path.to_path_buf();
    move |source| EvalError::Landmark { path, source }
}

/// Indexes `songs` (label, audio file), each loaded with `load` at the landmark sample rate.
/// Songs are loaded and fingerprinted inside the parallel map, so only the landmarks (not
/// every song's audio) are held at once.
pub fn build_index(
    params: &LandmarkParams,
    songs: &[(usize, PathBuf)],
    load: &LoadOptions,
) -> Result<(LandmarkIndex, LandmarkSummary), EvalError> {
    let t = Instant::now();
    let mut builder = LandmarkIndexBuilder::new(params.clone())
        .map_err(landmark_err(Path::new("[landmark.params]")))?;
    let load = LoadOptions {
        sample_rate: params.sample_rate,
        ..load.clone()
    };
    let landmarker = builder.landmarker();
    let fingerprints: Vec<(usize, Vec<Landmark>)> = songs
        .par_iter()
        .map(|(song, path)| {
            let audio = crate::audio::load(path, &load)?;
            let landmarks = landmarker
                .landmarks(&audio.samples)
                .map_err(landmark_err(path))?;
            Ok((*song, landmarks))
        })
        .collect::<Result<_, EvalError>>()?;
    for ((song, landmarks), (_, path)) in fingerprints.iter().zip(songs) {
        builder
            .add_landmarks(*song, landmarks)
            .map_err(landmark_err(path))?;
    }
    drop(fingerprints);
    let index = builder.finish();
    let summary = LandmarkSummary {
        stats: index.stats(),
        build_seconds: t.elapsed().as_secs_f64(),
    };
    Ok((index, summary))
}

/// Queries `index` with the first `query_seconds` of each file (the cut the models' queries
/// get) and summarises, with each query's outcome (ranked by aligned-hash count). Chunk
/// accuracy does not apply: the baseline answers per query.
pub fn evaluate_landmark(
    index: &LandmarkIndex,
    files: &[QueryFile],
    query_seconds: f64,
) -> Result<(Metrics, Vec<Outcome>), EvalError> {
    let load = LoadOptions {
        sample_rate: index.params().sample_rate,
        max_seconds: Some(query_seconds),
    };
    let mut outcomes = Vec::with_capacity(files.len());
    for f in files {
        let audio = crate::audio::load(&f.path, &load)?;
        let t = Instant::now();
        let answer = index.query(&audio.samples).map_err(landmark_err(&f.path))?;
        let latency_s = t.elapsed().as_secs_f64();
        outcomes.push(Outcome {
            truth: f.truth,
            answer: Answer {
                song: answer.song,
                ranking: answer
                    .ranking
                    .iter()
                    .map(|&(song, aligned)| (song, aligned as f64))
                    .collect(),
                chunks: 1,
                spread: None,
                summed: false,
            },
            latency_s,
        });
    }
    Ok((Metrics::from_outcomes(&outcomes, 0, 0), outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{write_wav, Audio};

    /// A few seconds of a chirp-like tone per song, distinct per song.
    fn song(dir: &Path, k: usize) -> PathBuf {
        let sr = 11_025;
        let samples = (0..sr * 6)
            .map(|n| {
                let t = n as f32 / sr as f32;
                let f = 300.0 + 150.0 * k as f32 + 40.0 * (t * (1.0 + k as f32)).sin();
                0.5 * (std::f32::consts::TAU * f * t).sin()
                    + 0.3 * (std::f32::consts::TAU * 2.7 * f * t * (1.0 + 0.1 * k as f32)).sin()
            })
            .collect();
        let path = dir.join(format!("{k}.wav"));
        write_wav(
            &path,
            &Audio {
                samples,
                sample_rate: sr as u32,
            },
        )
        .unwrap();
        path
    }

    #[test]
    fn indexed_songs_are_found_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let songs: Vec<(usize, PathBuf)> = (0..3).map(|k| (k, song(dir.path(), k))).collect();
        let params = LandmarkParams {
            min_aligned: 3,
            ..LandmarkParams::default()
        };
        let (index, summary) = build_index(&params, &songs, &LoadOptions::default()).unwrap();
        assert_eq!(summary.stats.songs, 3);
        let files: Vec<QueryFile> = songs
            .iter()
            .map(|(k, p)| QueryFile {
                path: p.clone(),
                truth: Some(*k),
            })
            .collect();
        let (m, _) = evaluate_landmark(&index, &files, 4.0).unwrap();
        assert_eq!(m.queries, 3);
        assert_eq!(m.top1, 1.0, "{m:?}");
        let missing = [QueryFile {
            path: dir.path().join("nope.wav"),
            truth: Some(0),
        }];
        let err = evaluate_landmark(&index, &missing, 4.0).unwrap_err();
        assert!(err.to_string().contains("nope.wav"), "{err}");
    }
}
