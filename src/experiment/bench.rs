//! The benchmarks behind `fhe-shazam bench`: the feature stage (`bench extract`: per-song
//! time of decoding, resampling and MFCC chunk features on one thread, and the whole stage on
//! every core) and encrypted scoring (`bench fhe`: one circuit on a worst-case model of a
//! given shape; the criterion bench `benches/fhe.rs` uses the same model and queries) and
//! training (`bench train`: one fit of one backend on a feature set).

use crate::audio::{decode, resample, LoadOptions};
use crate::dataset::Catalog;
use crate::error::{ExperimentError, FheError, ModelError};
use crate::eval::metrics::{evaluate_clear, quantile};
use crate::eval::{seed_queries, Decision, SEED_QUERY_SECONDS};
use crate::features::FeatureSet;
use crate::features::{chunk_features, ExtractJob, FeatureParams, Mfcc};
use crate::fhe::{
    simulate, wire, Circuit, ClientKey, FhePlan, IntegerLinear, ModelPrivacy, ServerModel,
};
use crate::model::{lda, Backend, FloatModel, LogisticParams};
use crate::report::bench::{
    AddSongsBench, ExtractBench, FheBench, PrivateBench, StageStats, TrainBench,
};
use crate::report::provenance::memory_mib;
use crate::report::Provenance;
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Times every song of `catalog` (under `root`) with the seed's loading and feature
/// parameters: each stage on one thread, then the whole `extract` on every core (its store
/// written under `scratch` and removed). `on_song` ticks once per song of the one-thread pass.
pub fn bench_extract(
    root: &Path,
    catalog: &Catalog,
    scratch: &Path,
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
    // The whole `extract` on every core — hashing, decoding, features and the streamed store
    // — into a scratch store that is removed afterwards: what a shard of a cluster run costs.
    let store = scratch.join(".bench-store");
    let t = Instant::now();
    let job = ExtractJob {
        root,
        catalog,
        load: &load,
        params: &params,
        transform: None,
        shard: None,
        out: &store,
    };
    let summary = job.run(&|| ());
    let wall = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&store);
    // A song extract leaves out (e.g. silent) was decoded all the same: it counts.
    summary?;
    let n = catalog.len() as f64;
    Ok(ExtractBench::new(
        root.to_path_buf(),
        catalog.len(),
        secs / n,
        [dec, res, feat].map(|ms| StageStats::of(&ms)),
        wall * 1e3 / n,
        rayon::current_num_threads(),
    ))
}

/// The shape of an encrypted-scoring benchmark (`fhe-shazam bench fhe`).
#[derive(Debug, Clone, PartialEq)]
pub struct FheBenchSpec {
    pub classes: usize,
    pub features: usize,
    /// J, chunks per query.
    pub chunks: usize,
    pub circuit: Circuit,
    /// Server threads (the client's encrypt and decrypt run on one).
    pub threads: usize,
    pub queries: usize,
    pub n_bits: u32,
    pub seed: u64,
    /// Also time the model-privacy option at this λ on the same queries, interleaved with
    /// the plain protocol so that both see the same machine.
    pub privacy: Option<ModelPrivacy>,
}

/// A worst-case `n_bits` layer of `features` × `classes`: every weight ±(2^n_bits − 1) (the
/// largest q_W − Z_w the quantizer gives) with a random sign, inputs over the full signed
/// range, so the score bound — and the message bits and noise budget the planner needs —
/// is the largest any `n_bits` model of this shape can have.
pub fn worst_case_layer(features: usize, classes: usize, n_bits: u32, seed: u64) -> IntegerLinear {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = (1i64 << n_bits) - 1;
    let half = 1i64 << (n_bits - 1);
    IntegerLinear {
        weights: Array2::from_shape_fn((features, classes), |_| if rng.gen() { w } else { -w }),
        bias: Array1::from_shape_fn(classes, |_| rng.gen_range(-w * half..=w * half)),
        input_min: -half,
        input_max: half - 1,
    }
}

/// A random query of `chunks` × `features` inputs in the layer's range.
pub fn random_query(layer: &IntegerLinear, chunks: usize, seed: u64) -> Array2<i64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((chunks, layer.features()), |_| {
        rng.gen_range(layer.input_min..=layer.input_max)
    })
}

/// Times `spec.queries` encrypted queries end to end on a worst-case model of the shape:
/// encrypt (one thread), server (a pool of `spec.threads`), decrypt (one thread), the
/// messages' sizes, and every decrypted score against the exact integer circuit (counted,
/// not fatal, so a wrong score shows in the report).
pub fn bench_fhe(spec: &FheBenchSpec, on_query: &dyn Fn()) -> Result<FheBench, ExperimentError> {
    if spec.classes == 0 || spec.features == 0 || spec.chunks == 0 || spec.queries == 0 {
        return Err(ExperimentError::InvalidArgument(format!(
            "classes, features, chunks and queries must all be at least 1 (got {}, {}, {}, {})",
            spec.classes, spec.features, spec.chunks, spec.queries
        )));
    }
    if !(2..=16).contains(&spec.n_bits) || spec.threads == 0 {
        return Err(ExperimentError::InvalidArgument(format!(
            "n_bits {} must be in 2..=16 and threads ({}) at least 1",
            spec.n_bits, spec.threads
        )));
    }
    let layer = worst_case_layer(spec.features, spec.classes, spec.n_bits, spec.seed);
    let plan = FhePlan::for_circuit(&layer, spec.circuit, spec.chunks)?;
    let t = Instant::now();
    let server = ServerModel::from_plan(&plan)?;
    let setup_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let key = ClientKey::generate(&plan.params)?;
    let keygen_ms = t.elapsed().as_secs_f64() * 1e3;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(spec.threads)
        .build()
        .map_err(|e| ExperimentError::InvalidArgument(format!("thread pool: {e}")))?;
    let scoring = server.spec().clone();
    // The private server on the same layer, and the client's public key: made, sent through
    // the wire and prepared once, as a server would on registration.
    let private = match spec.privacy {
        Some(privacy) => {
            let plan = plan.clone().with_privacy(privacy)?;
            let server = ServerModel::from_plan(&plan)?;
            let t = Instant::now();
            let bytes = wire::encode_public_key(&key.public_key());
            let public_key_ms = t.elapsed().as_secs_f64() * 1e3;
            let prepared =
                server.prepare_public_key(&wire::decode_public_key(&bytes, &plan.params)?)?;
            Some((server, prepared, plan, bytes.len(), public_key_ms))
        }
        None => None,
    };
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let (mut enc, mut srv, mut dec) = (vec![], vec![], vec![]);
    let (mut p_enc, mut p_srv, mut p_dec) = (vec![], vec![], vec![]);
    let (mut up, mut down, mut checked, mut wrong) = (0, 0, 0, 0);
    let (mut p_down, mut p_wrong) = (0, 0);
    for q in 0..spec.queries {
        let chunks = random_query(&layer, spec.chunks, spec.seed ^ (q as u64 + 1));
        let rows = spec.circuit.query_rows(chunks.view(), spec.chunks, 0);
        let t = Instant::now();
        let query = wire::encode_query(&key.encrypt_query(&scoring, rows.view())?);
        enc.push(ms(t));
        let t = Instant::now();
        let reply = pool.install(|| -> Result<Vec<u8>, FheError> {
            let received = wire::decode_query(&query, &scoring)?;
            Ok(wire::encode_scores(&server.score(&received)?))
        })?;
        srv.push(ms(t));
        let t = Instant::now();
        let scores = key.decrypt_scores(&scoring, &wire::decode_scores(&reply, &scoring)?)?;
        dec.push(ms(t));
        let expected = simulate::clear_scores(&plan.layer, rows.view())?;
        checked += expected.len();
        wrong += expected.iter().zip(&scores).filter(|(e, s)| e != s).count();
        (up, down) = (query.len(), reply.len());
        if let Some((server, public_key, ..)) = &private {
            let spec = server.spec();
            let t = Instant::now();
            let query = wire::encode_query(&key.encrypt_query(spec, rows.view())?);
            p_enc.push(ms(t));
            let t = Instant::now();
            let reply = pool.install(|| -> Result<Vec<u8>, FheError> {
                let received = wire::decode_query(&query, spec)?;
                Ok(wire::encode_scores(
                    &server.score_private(&received, public_key)?,
                ))
            })?;
            p_srv.push(ms(t));
            let t = Instant::now();
            let scores = key.decrypt_scores(spec, &wire::decode_scores(&reply, spec)?)?;
            p_dec.push(ms(t));
            // Within 2^ρ of the circuit: the count of the ones that are not.
            p_wrong += match simulate::compare_rounded(&expected, &scores, spec.rounding_bits) {
                Ok(()) => 0,
                Err(FheError::Mismatch { count, .. }) => count,
                Err(e) => return Err(e.into()),
            };
            p_down = reply.len();
        }
        on_query();
    }
    let privacy = private.map(|(server, _, plan, public_key_bytes, public_key_ms)| {
        let (encrypt_ms, server_ms, decrypt_ms) = (
            quantile(&p_enc, 0.5),
            quantile(&p_srv, 0.5),
            quantile(&p_dec, 0.5),
        );
        let p = plan.privacy.as_ref().expect("planned with privacy");
        PrivateBench {
            flood_bits: p.flood_bits,
            rounding_bits: server.spec().rounding_bits,
            log2_failure: p.log2_failure,
            public_key_bytes,
            public_key_ms,
            encrypt_ms,
            server_ms,
            decrypt_ms,
            total_ms: encrypt_ms + server_ms + decrypt_ms,
            bytes_down: p_down,
            wrong_scores: p_wrong,
        }
    });
    let (encrypt_ms, server_ms, decrypt_ms) = (
        quantile(&enc, 0.5),
        quantile(&srv, 0.5),
        quantile(&dec, 0.5),
    );
    Ok(FheBench {
        circuit: spec.circuit,
        classes: spec.classes,
        features: spec.features,
        chunks: spec.chunks,
        threads: spec.threads,
        queries: spec.queries,
        n_bits: spec.n_bits,
        classes_per_product: plan.layout.classes_per_product(),
        products: scoring.product_count(),
        message_bits: scoring.message_bits,
        reply_bits: plan.params.reply_modulus_log.0,
        log2_failure: plan.budget.log2_failure,
        keygen_ms,
        server_setup_ms: setup_ms,
        encrypt_ms,
        server_ms,
        decrypt_ms,
        total_ms: encrypt_ms + server_ms + decrypt_ms,
        bytes_up: up,
        bytes_down: down,
        model_download_bytes: (spec.classes * (spec.features + 1) * spec.n_bits as usize)
            .div_ceil(8),
        scores_checked: checked,
        wrong_scores: wrong,
        privacy,
        provenance: Provenance::collect(),
    })
}

/// One fit of `bench train`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBenchSpec {
    /// Feature set folder written by `extract`.
    pub features: PathBuf,
    pub training: LogisticParams,
    /// Worker threads of the fit.
    pub threads: usize,
    /// lda only: also fit on all but the last K songs and add those by their means.
    pub add_songs: Option<usize>,
}

/// The share of rows of `x` whose top-1 under `model` is their label, counted in row blocks
/// (all n × C scores at once would be 31 GB at C = 8 000).
fn chunk_accuracy(model: &FloatModel, x: ArrayView2<f32>, y: &[usize]) -> Result<f64, ModelError> {
    const BLOCK: usize = 4096;
    let correct: usize = (0..y.len().div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(y.len()));
            let predicted = model.predict(x.slice(s![lo..hi, ..]))?;
            Ok::<_, ModelError>(
                predicted
                    .iter()
                    .zip(&y[lo..hi])
                    .filter(|(p, t)| p == t)
                    .count(),
            )
        })
        .sum::<Result<_, _>>()?;
    Ok(correct as f64 / y.len().max(1) as f64)
}

/// Fits the float model on the clean rows of `spec.features` in a pool of `spec.threads`
/// and reports the fit (time, iterations, loss, convergence) and the model's top-1 over its
/// training rows.
pub fn bench_train(spec: &TrainBenchSpec) -> Result<TrainBench, ExperimentError> {
    if spec.threads == 0 {
        return Err(ExperimentError::InvalidArgument(
            "threads must be at least 1".into(),
        ));
    }
    let params = spec.training.check()?;
    if spec.add_songs.is_some() && params.params().backend != Backend::Lda {
        return Err(ExperimentError::InvalidArgument(
            "--add-songs needs --backend lda (songs are added by their class means)".into(),
        ));
    }
    let set = FeatureSet::load(&spec.features)?;
    let load_peak_memory_mib = memory_mib("VmHWM");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(spec.threads)
        .build()
        .map_err(|e| ExperimentError::InvalidArgument(format!("thread pool: {e}")))?;
    let songs = set.n_songs();
    if let Some(k) = spec.add_songs {
        if k == 0 || k >= songs {
            return Err(ExperimentError::InvalidArgument(format!(
                "--add-songs {k}: must be between 1 and {} ({songs} songs in {})",
                songs - 1,
                spec.features.display()
            )));
        }
    }
    let (x, y) = (set.features.view(), set.labels.as_slice());
    let queries = seed_queries(&set, SEED_QUERY_SECONDS);
    let (model, peak_memory_mib, accuracy, top1, add_songs) =
        pool.install(|| -> Result<_, ExperimentError> {
            let model = params.fit(x, y, songs)?;
            // Loading and fitting, before the accuracy passes' score blocks (C scores per row).
            let peak_memory_mib = memory_mib("VmHWM");
            let accuracy = chunk_accuracy(&model, x, y)?;
            let top1 = |decision: Decision| -> Result<f64, ModelError> {
                Ok(evaluate_clear(&model, &queries, &decision)?.0.top1)
            };
            let top1 = (top1(Decision::SEED)?, top1(Decision::LOG_PROB_SUM)?);
            let add_songs = spec
                .add_songs
                .map(|k| add_songs_bench(&model, &set, k))
                .transpose()?;
            Ok((model, peak_memory_mib, accuracy, top1, add_songs))
        })?;
    let fit = model.fit.as_ref().ok_or_else(|| {
        ExperimentError::InvalidArgument("the trainer returned no fit record".into())
    })?;
    let (n, d) = x.dim();
    Ok(TrainBench {
        features: spec.features.clone(),
        backend: fit.backend,
        songs,
        rows: n,
        dim: d,
        threads: spec.threads,
        max_iter: params.params().max_iter,
        tol: params.params().tol,
        seconds: fit.seconds,
        iterations: fit.iterations,
        loss: fit.final_loss,
        gradient_max_norm: fit.gradient_max_norm,
        converged: fit.converged,
        chunk_accuracy: accuracy,
        seed_top1: top1.0,
        summed_top1: top1.1,
        load_peak_memory_mib,
        peak_memory_mib,
        add_songs,
        provenance: Provenance::collect(),
    })
}

/// LDA fitted on the clean rows of all but the last `k` songs of `set`, those added by their
/// means (`model::lda::fit_then_add`), scored against `refit` (LDA on all songs).
fn add_songs_bench(
    refit: &FloatModel,
    set: &FeatureSet,
    k: usize,
) -> Result<AddSongsBench, ModelError> {
    let (x, y) = (set.features.view(), set.labels.as_slice());
    let base = set.n_songs() - k;
    let (keep, added_rows): (Vec<usize>, Vec<usize>) = (0..y.len()).partition(|&i| y[i] < base);
    let t = Instant::now();
    let x_base = x.select(Axis(0), &keep);
    let y_base: Vec<usize> = keep.iter().map(|&i| y[i]).collect();
    let per_song: Vec<ArrayView2<f32>> = (base..set.n_songs()).map(|s| set.song_rows(s)).collect();
    let added = lda::fit_then_add(x_base.view(), &y_base, base, &per_song)?;
    let seconds = t.elapsed().as_secs_f64();
    let x_added = x.select(Axis(0), &added_rows);
    let y_added: Vec<usize> = added_rows.iter().map(|&i| y[i]).collect();
    Ok(AddSongsBench {
        songs: k,
        seconds,
        chunk_accuracy: chunk_accuracy(&added, x, y)?,
        chunk_accuracy_added_songs: chunk_accuracy(&added, x_added.view(), &y_added)?,
        refit_chunk_accuracy_added_songs: chunk_accuracy(refit, x_added.view(), &y_added)?,
    })
}
