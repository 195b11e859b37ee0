//! `fhe-shazam bench`: measured speed of the pipeline stages, written as a report.

use fhe_shazam::dataset::ScanOptions;
use fhe_shazam::experiment::bench::{
    bench_extract, bench_fhe, bench_train, FheBenchSpec, TrainBenchSpec,
};
use fhe_shazam::fhe::Circuit;
use fhe_shazam::model::{Backend, LogisticParams};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Feature extraction per song: decode, resample, MFCC chunk features; one thread and all threads.
    Extract(ExtractArgs),
    /// Encrypted scoring of one query: encrypt, server, decrypt (ms medians), bytes up and
    /// down, predicted failure probability, and every decrypted score checked against the
    /// exact integer circuit — on a worst-case n_bits model of the given shape. Each run
    /// writes <circuit>-c<C>-d<d>-j<J>-t<T>.json and rebuilds summary.md (all runs in the
    /// folder side by side, with the model-download and Concrete ML baselines).
    Fhe(FheArgs),
    /// One fit of the float model on a feature set's clean rows: fit seconds (standardisation
    /// and optimisation, not loading), iterations, sklearn's loss, convergence, top-1 over the
    /// training rows, peak memory. Each run writes train-<features>-<backend>-…json and
    /// rebuilds summary.md (every training run in the folder). The sklearn side by side on
    /// the same features is experiments/sklearn_baseline.py.
    Train(TrainArgs),
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// Feature set folder written by `extract`.
    #[arg(long, default_value = "data/features")]
    features: PathBuf,
    /// lbfgs (ours, sklearn's optimum), linfa, smartcore, or lda (closed form).
    #[arg(long, default_value = "lbfgs")]
    backend: Backend,
    /// Worker threads of the fit.
    #[arg(long, default_value_t = 2, value_parser = super::positive)]
    threads: usize,
    /// sklearn's max_iter.
    #[arg(long, default_value_t = 100, value_parser = super::positive)]
    max_iter: usize,
    /// sklearn's tol: stop when the gradient's max-norm is at most this.
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// lda only: also fit on all but the last K songs, add those K by their means alone (no
    /// refit), and report the accuracy of adding against refitting.
    #[arg(long, value_parser = super::positive)]
    add_songs: Option<usize>,
    /// Report folder.
    #[arg(long, default_value = "reports/train-bench")]
    out: PathBuf,
    /// Print the run as JSON (keys: seconds, iterations, loss, converged, chunk_accuracy, …).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct FheArgs {
    /// C, classes (songs) of the model.
    #[arg(long, default_value_t = 400, value_parser = super::positive)]
    classes: usize,
    /// d, features per chunk (20: the seed's MFCCs; 40: the robust model).
    #[arg(long, default_value_t = 20, value_parser = super::positive)]
    features: usize,
    /// J, chunks per query (30: the seed's 15 s).
    #[arg(long, default_value_t = 30, value_parser = super::positive)]
    chunks: usize,
    /// summed (one summed vector, C scores back) or chunks (J × C scores back).
    #[arg(long, value_enum, default_value = "summed")]
    circuit: Circuit,
    /// Server threads (encrypt and decrypt always run on one).
    #[arg(long, default_value_t = 1, value_parser = super::positive)]
    threads: usize,
    /// Queries to time (medians are reported).
    #[arg(long, default_value_t = 50, value_parser = super::positive)]
    queries: usize,
    /// Quantization bits of the worst-case model.
    #[arg(long, default_value_t = 8)]
    n_bits: u32,
    /// Seed of the random model and queries.
    #[arg(long, default_value_t = 17)]
    seed: u64,
    /// Also time the model-privacy option at this λ (flood bits) on the same queries,
    /// interleaved with the plain protocol: public key, ms, bytes, side by side.
    #[arg(long, value_name = "LAMBDA")]
    model_privacy: Option<u32>,
    /// Report folder.
    #[arg(long, default_value = "reports/fhe-bench")]
    out: PathBuf,
    /// Print the run as JSON (keys: encrypt_ms, server_ms, decrypt_ms, bytes_up, bytes_down,
    /// scores_checked, wrong_scores, circuit, classes, …).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ExtractArgs {
    /// Dataset folder (e.g. the real-music dev corpus of 30 s 44.1 kHz stereo MP3s).
    #[arg(long, default_value = "data/synth")]
    dataset: PathBuf,
    /// Number of songs to time (the first N in sorted order).
    #[arg(long, default_value_t = 50, value_parser = super::positive)]
    songs: usize,
    /// Report folder (report.json and report.md).
    #[arg(long, default_value = "reports/bench-extract")]
    out: PathBuf,
    /// Print the JSON report on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Extract(a) => extract(a),
        What::Fhe(a) => fhe(a),
        What::Train(a) => train(a),
    }
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let spec = TrainBenchSpec {
        features: args.features,
        training: LogisticParams {
            backend: args.backend,
            max_iter: args.max_iter,
            tol: args.tol,
            ..LogisticParams::default()
        },
        threads: args.threads,
        add_songs: args.add_songs,
    };
    let bench = bench_train(&spec)?;
    let md = bench.write(&args.out)?;
    print_report(&bench, &md, &args.out, args.json)
}

fn fhe(args: FheArgs) -> anyhow::Result<()> {
    let spec = FheBenchSpec {
        classes: args.classes,
        features: args.features,
        chunks: args.chunks,
        circuit: args.circuit,
        threads: args.threads,
        queries: args.queries,
        n_bits: args.n_bits,
        seed: args.seed,
        privacy: args
            .model_privacy
            .map(|flood_bits| fhe_shazam::fhe::ModelPrivacy { flood_bits }),
    };
    let bar = super::progress(args.queries, "encrypted queries", args.json);
    let bench = bench_fhe(&spec, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let md = bench.write(&args.out)?;
    if bench.wrong_scores > 0 {
        anyhow::bail!(
            "{} of {} decrypted scores differ from the integer circuit (report written to {})",
            bench.wrong_scores,
            bench.scores_checked,
            args.out.display()
        );
    }
    if let Some(p) = bench.privacy.as_ref().filter(|p| p.wrong_scores > 0) {
        anyhow::bail!(
            "{} of {} private replies' scores are not within 2^{} of the integer circuit \
             (report written to {})",
            p.wrong_scores,
            bench.scores_checked,
            p.rounding_bits,
            args.out.display()
        );
    }
    print_report(&bench, &md, &args.out, args.json)
}

fn extract(args: ExtractArgs) -> anyhow::Result<()> {
    let (root, catalog) = super::open_dataset(
        &args.dataset,
        &ScanOptions {
            num_songs: Some(args.songs),
            ..ScanOptions::default()
        },
    )?;
    let bar = super::progress(catalog.len(), "1 thread", args.json);
    let bench = bench_extract(&root, &catalog, &args.out, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let md = bench.write(&args.out)?;
    print_report(&bench, &md, &args.out, args.json)
}

/// A benchmark's JSON (`--json`) or its Markdown and where it was written.
fn print_report<T: serde::Serialize>(
    report: &T,
    markdown: &str,
    out: &std::path::Path,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return super::print_json(report);
    }
    print!("{markdown}");
    println!("\nwritten to {}", out.display());
    Ok(())
}
