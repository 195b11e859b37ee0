//! `fhe-shazam reproduce`: the whole pipeline from one config.

use anyhow::Context;
use fhe_shazam::config::ExperimentConfig;
use fhe_shazam::experiment::{reproduce, Progress, Stage};
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Run an experiment end to end: synthesise the default corpus (unless --dataset is given),
/// extract features, train the float and quantized models, evaluate them in the clear, in
/// simulation and under real FHE, and write the report (results.csv/json, summary.md with the
/// seed's table, plots, the config). Cached corpus, features and models are reused when their
/// inputs match, so re-runs are fast and an interrupted run resumes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment config (TOML). Default: configs/reproduce.toml if present, else the seed protocol.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset folder (FMA tree or audio folder), overriding the config; default: synthetic corpus.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Report folder, overriding the config's output.report_dir.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print results.json's rows on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let default = PathBuf::from("configs/reproduce.toml");
    let mut config = match args
        .config
        .as_ref()
        .or(default.exists().then_some(&default))
    {
        Some(path) => ExperimentConfig::load(path)?,
        None => ExperimentConfig::seed("reproduce"),
    };
    if let Some(out) = &args.out {
        config.output.report_dir = out.clone();
    }
    if let Some(d) = &args.dataset {
        config.dataset.path = Some(d.clone());
    }
    let start = Instant::now();
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    let songs = config
        .dataset
        .num_songs
        .unwrap_or(config.dataset.synth.songs);
    let on_stage = |stage: Stage| {
        let mut b = bar.lock().expect("progress lock");
        if let Some(old) = b.take() {
            old.finish_and_clear();
        }
        let name = format!("{stage:?}").to_lowercase();
        *b = Some(match stage {
            Stage::Synth | Stage::Extract | Stage::Augment | Stage::Queries => {
                super::progress(songs, &name, args.json)
            }
            _ => {
                if !args.json {
                    eprintln!("{name}…");
                }
                ProgressBar::hidden()
            }
        });
    };
    let on_song = || {
        if let Some(b) = bar.lock().expect("progress lock").as_ref() {
            b.inc(1)
        }
    };
    let progress = Progress {
        on_stage: &on_stage,
        on_song: &on_song,
    };
    let done = reproduce(&config, args.dataset.as_deref(), &progress)
        .with_context(|| format!("experiment {}", config.name))?;
    if let Some(b) = bar.lock().expect("progress lock").take() {
        b.finish_and_clear();
    }
    if args.json {
        return super::print_json(&done.reproduction.rows);
    }
    print!("{}", done.summary);
    println!(
        "\nreport written to {} in {:.1} s",
        done.report_dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
