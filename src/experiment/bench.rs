//! The feature-stage benchmark (`fhe-shazam bench extract`): per-song time of decoding,
//! resampling and MFCC chunk features on one thread, and the whole stage on every core.

use crate::audio::{decode, resample, LoadOptions};
use crate::dataset::Catalog;
use crate::error::ExperimentError;
use crate::features::{chunk_features, FeatureParams, Mfcc};
use crate::report::bench::{ExtractBench, StageStats};
use crate::report::Provenance;
use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;

/// Times every song of `catalog` (under `root`) with the seed's loading and feature
/// parameters; `on_song` ticks once per song of the one-thread pass.
pub fn bench_extract(
    root: &Path,
    catalog: &Catalog,
    on_song: &dyn Fn(),
) -> Result<ExtractBench, ExperimentError> {
    if catalog.is_empty() {
        return Err(ExperimentError::InvalidArgument(
            "no songs to time: the benchmark needs at least one".into(),
        ));
    }
    let load = LoadOptions::default();
    let params = FeatureParams::default();
    let mfcc = Mfcc::new(params.mfcc.clone())?;
    let features = |path: &Path, samples: &[f32]| {
        chunk_features(&mfcc, &params, samples).map_err(|source| ExperimentError::SongFeatures {
            path: path.to_path_buf(),
            source,
        })
    };
    let (mut dec, mut res, mut feat, mut secs) = (vec![], vec![], vec![], 0.0);
    for song in &catalog.songs {
        let path = root.join(&song.path);
        let t0 = Instant::now();
        let d = decode::decode_file(&path, load.max_seconds)?;
        let t1 = Instant::now();
        let y = resample::resample(&d.samples, d.sample_rate, load.sample_rate)?;
        let t2 = Instant::now();
        std::hint::black_box(features(&path, &y)?);
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        dec.push(ms(t0, t1));
        res.push(ms(t1, t2));
        feat.push(ms(t2, t3));
        secs += y.len() as f64 / load.sample_rate as f64;
        on_song();
    }
    let t = Instant::now();
    catalog
        .songs
        .par_iter()
        .try_for_each(|song| -> Result<(), ExperimentError> {
            let path = root.join(&song.path);
            let y = crate::audio::load(&path, &load)?;
            std::hint::black_box(features(&path, &y.samples)?);
            Ok(())
        })?;
    let n = catalog.len() as f64;
    Ok(ExtractBench {
        dataset: root.to_path_buf(),
        songs: catalog.len(),
        mean_song_seconds: secs / n,
        decode: StageStats::of(&dec),
        resample: StageStats::of(&res),
        features: StageStats::of(&feat),
        all_threads_ms_per_song: t.elapsed().as_secs_f64() * 1e3 / n,
        threads: rayon::current_num_threads(),
        provenance: Provenance::collect(),
    })
}
