//! One file per subcommand; each parses its flags (clap derive: the doc comments are the
//! `--help` text) and calls library functions.

mod bench;
mod compare;
mod evaluate;
mod extract;
mod identify;
mod merge;
mod queries;
mod reproduce;
mod scale_report;
mod serve;
mod synth;
mod train;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// Privacy-preserving song identification: MFCC features → (quantized) logistic regression →
/// encrypted scoring with packed GLWE (tfhe-rs), reproducing and extending Zama's "Encrypted Shazam".
#[derive(Debug, Parser)]
#[command(name = "fhe-shazam", version, propagate_version = true)]
pub struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true, value_parser = positive)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Synth(synth::Args),
    Extract(extract::Args),
    Merge(merge::Args),
    Queries(queries::Args),
    Train(train::Args),
    Evaluate(evaluate::Args),
    Reproduce(reproduce::Args),
    Compare(compare::Args),
    ScaleReport(scale_report::Args),
    /// Time pipeline stages and write a benchmark report.
    Bench(bench::Args),
    Serve(serve::Args),
    Identify(identify::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    match cli.command {
        Command::Synth(args) => synth::run(args),
        Command::Extract(args) => extract::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Queries(args) => queries::run(args),
        Command::Train(args) => train::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Reproduce(args) => reproduce::run(args),
        Command::Compare(args) => compare::run(args),
        Command::ScaleReport(args) => scale_report::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Identify(args) => identify::run(args),
    }
}

/// Parses a count that must be at least 1 (songs, chunks, jobs, iterations, queries, threads).
pub(crate) fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

/// Parses a duration or length in seconds that must be finite and > 0.
pub(crate) fn seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("must be a positive number of seconds".into()),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

/// Logs to stderr at `default_level` (RUST_LOG overrides it); idempotent.
pub(crate) fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The dataset folder (canonical) and its catalog; a missing folder is an error naming it.
pub(crate) fn open_dataset(
    path: &std::path::Path,
    scan_options: &fhe_shazam::dataset::ScanOptions,
) -> anyhow::Result<(std::path::PathBuf, fhe_shazam::dataset::Catalog)> {
    use anyhow::Context;
    let root = path.canonicalize().with_context(|| {
        format!(
            "dataset folder {} does not exist or cannot be read",
            path.display()
        )
    })?;
    let catalog = fhe_shazam::dataset::scan(&root, scan_options)?;
    Ok((root, catalog))
}

/// A progress bar on stderr (hidden when stderr is not a terminal or `quiet`).
pub(crate) fn progress(len: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Prints `value` as pretty JSON on stdout (the `--json` output of every command).
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
