//! `fhe-shazam bench`: measured speed of the pipeline stages, written as a report.

use anyhow::Context;
use fhe_shazam::audio::{decode, resample, LoadOptions};
use fhe_shazam::dataset::ScanOptions;
use fhe_shazam::features::{chunk_features, FeatureParams, Mfcc};
use fhe_shazam::fsutil;
use fhe_shazam::report::Provenance;
use rayon::prelude::*;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Feature extraction per song: decode, resample, MFCC chunk features; one thread and all threads.
    Extract(ExtractArgs),
}

#[derive(Debug, clap::Args)]
struct ExtractArgs {
    /// Dataset folder (e.g. the real-music dev corpus of 30 s 44.1 kHz stereo MP3s).
    #[arg(long, default_value = "data/synth")]
    dataset: PathBuf,
    /// Number of songs to time (the first N in sorted order).
    #[arg(long, default_value_t = 50)]
    songs: usize,
    /// Report folder (report.json and report.md).
    #[arg(long, default_value = "reports/bench-extract")]
    out: PathBuf,
    /// Print the JSON report on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct StageStats {
    median_ms: f64,
    mean_ms: f64,
    p95_ms: f64,
}

impl StageStats {
    fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let q = |f: f64| ms[((ms.len() - 1) as f64 * f).round() as usize];
        Self {
            median_ms: q(0.5),
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            p95_ms: q(0.95),
        }
    }
}

#[derive(Debug, Serialize)]
struct ExtractReport {
    dataset: PathBuf,
    songs: usize,
    mean_song_seconds: f64,
    /// One thread, per song.
    decode: StageStats,
    resample: StageStats,
    features: StageStats,
    /// Whole pipeline over all songs with every core (rayon), per song.
    all_threads_ms_per_song: f64,
    threads: usize,
    provenance: Provenance,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Extract(a) => extract(a),
    }
}

fn extract(args: ExtractArgs) -> anyhow::Result<()> {
    let (root, catalog) = super::open_dataset(
        &args.dataset,
        &ScanOptions {
            num_songs: Some(args.songs),
            metadata: None,
        },
    )?;
    let load = LoadOptions::default();
    let params = FeatureParams::default();
    let mfcc = Mfcc::new(params.mfcc.clone())?;
    let (mut dec, mut res, mut feat, mut secs) = (vec![], vec![], vec![], 0.0);
    let bar = super::progress(catalog.len(), "1 thread", args.json);
    for song in &catalog.songs {
        let path = root.join(&song.path);
        let t0 = Instant::now();
        let d = decode::decode_file(&path, load.max_seconds)?;
        let t1 = Instant::now();
        let y = resample::resample(&d.samples, d.sample_rate, load.sample_rate)?;
        let t2 = Instant::now();
        let f = chunk_features(&mfcc, &params, &y).with_context(|| path.display().to_string())?;
        let t3 = Instant::now();
        std::hint::black_box(f);
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        dec.push(ms(t0, t1));
        res.push(ms(t1, t2));
        feat.push(ms(t2, t3));
        secs += y.len() as f64 / load.sample_rate as f64;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let t = Instant::now();
    catalog
        .songs
        .par_iter()
        .try_for_each(|song| -> anyhow::Result<()> {
            let y = fhe_shazam::audio::load(&root.join(&song.path), &load)?;
            std::hint::black_box(chunk_features(&mfcc, &params, &y.samples)?);
            Ok(())
        })?;
    let all_threads_ms_per_song = t.elapsed().as_secs_f64() * 1e3 / catalog.len() as f64;
    let report = ExtractReport {
        dataset: root,
        songs: catalog.len(),
        mean_song_seconds: secs / catalog.len() as f64,
        decode: StageStats::of(dec),
        resample: StageStats::of(res),
        features: StageStats::of(feat),
        all_threads_ms_per_song,
        threads: rayon::current_num_threads(),
        provenance: Provenance::collect(),
    };
    let md = format!(
        "# Extraction benchmark\n\n{} songs of {} (mean {:.1} s of audio each).\n\n\
         | stage (1 thread) | median ms/song | mean | p95 |\n|---|---|---|---|\n\
         | decode | {:.2} | {:.2} | {:.2} |\n| resample to 22050 Hz | {:.2} | {:.2} | {:.2} |\n\
         | MFCC chunk features | {:.2} | {:.2} | {:.2} |\n\n\
         Whole pipeline, {} threads: {:.2} ms per song.\n\n\
         Machine: {} ({} cores), commit {}, {}.\nCommand: `{}`\n",
        report.songs,
        report.dataset.display(),
        report.mean_song_seconds,
        report.decode.median_ms,
        report.decode.mean_ms,
        report.decode.p95_ms,
        report.resample.median_ms,
        report.resample.mean_ms,
        report.resample.p95_ms,
        report.features.median_ms,
        report.features.mean_ms,
        report.features.p95_ms,
        report.threads,
        report.all_threads_ms_per_song,
        report.provenance.cpu,
        report.provenance.cores,
        report.provenance.commit,
        report.provenance.date,
        report.provenance.command,
    );
    fsutil::write_json_atomic(&args.out.join("report.json"), &report)?;
    fsutil::write_atomic(&args.out.join("report.md"), md.as_bytes())?;
    if args.json {
        super::print_json(&report)
    } else {
        print!("{md}");
        println!("\nwritten to {}", args.out.display());
        Ok(())
    }
}
