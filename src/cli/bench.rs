//! `fhe-shazam bench`: measured speed of the pipeline stages, written as a report.

use fhe_shazam::dataset::ScanOptions;
use fhe_shazam::experiment::bench::bench_extract;
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
    let bar = super::progress(catalog.len(), "1 thread", args.json);
    let bench = bench_extract(&root, &catalog, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let md = bench.write(&args.out)?;
    if args.json {
        super::print_json(&bench)
    } else {
        print!("{md}");
        println!("\nwritten to {}", args.out.display());
        Ok(())
    }
}
