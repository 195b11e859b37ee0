//! `fhe-shazam queries`: dataset → degraded query set for the `robust` protocol.

use anyhow::Context;
use fhe_shazam::audio::LoadOptions;
use fhe_shazam::dataset::{
    write_query_set_part, Condition, FmaSubset, QuerySetParams, QueryWindow, ScanOptions, Shard,
};
use std::path::PathBuf;
use std::time::Instant;

/// Write deterministic degraded queries, one per song and condition. The standard eight (the
/// default): aligned (the seed's first 15 s), offset (a random start off the 0.5 s grid),
/// noise20/noise10/noise5 (white or pink noise at that SNR), phone (300–3400 Hz, 10 dB noise,
/// 8 kHz μ-law), reverb (synthetic room + 15 dB noise), speed (±2 %). Level: quiet10, quiet20,
/// quiet30, loud10. Other algorithms than the training copies' (held-out families):
/// phone_adpcm/phone_gsm/phone_opus (FIR band + IMA ADPCM, GSM or Opus; GSM and Opus need
/// ffmpeg), room_image/room_schroeder, babble10/babble5, brown5, compressed. For training copies:
/// channel (phone with a random EQ and band edges). Writes
/// OUT/<condition>/<track_id>.wav, OUT/queries.csv (file, true song, condition, parameters) and
/// OUT/queryset.json. Songs that fail are listed at the end.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset folder (FMA tree or any folder of audio files, taken in sorted path order).
    #[arg(long, default_value = "data/synth")]
    dataset: PathBuf,
    /// Output folder of the query set (a previous query set in it is replaced).
    #[arg(long, default_value = "data/queries")]
    out: PathBuf,
    /// Use only the first N songs (sorted path order), as `extract --num-songs` does.
    #[arg(long, value_parser = super::positive)]
    num_songs: Option<usize>,
    /// A tracks.csv for titles/artists (default: metadata/tracks.csv, fma_metadata/tracks.csv, …).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// Only this FMA subset (small ⊂ medium ⊂ large ⊂ full), by tracks.csv's set.subset
    /// column, before --num-songs: one fma_full tree serves all four.
    #[arg(long, value_enum)]
    subset: Option<FmaSubset>,
    /// Conditions, comma-separated (default: the standard eight).
    #[arg(long, value_delimiter = ',')]
    conditions: Vec<Condition>,
    /// Seed of offsets, noise and rooms: the same seed gives the same files, bit for bit.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Query length in seconds (shorter where the clip or held-out window leaves less).
    #[arg(long, default_value_t = 15.0, value_parser = super::seconds)]
    seconds: f64,
    /// Held-out split: take queries only from audio after this many seconds of each clip
    /// (train on the part before it).
    #[arg(long, value_parser = super::seconds)]
    held_out_from: Option<f64>,
    /// Record every query this many dB louder (negative: quieter), limited to full scale: the
    /// level sweep (e.g. --gain-db -30).
    #[arg(long, allow_hyphen_values = true)]
    gain_db: Option<f64>,
    /// Load at most this many seconds of each file (the seed: 180).
    #[arg(long, default_value_t = 180.0, value_parser = super::seconds)]
    max_seconds: f64,
    /// Write only the queries of part i of n of the catalogue (0 ≤ i < n; a contiguous run in
    /// sorted order, as `extract --shard`), e.g. `--shard $SLURM_ARRAY_TASK_ID/$N` in a job
    /// array; each song's queries depend on the song alone, and `merge` combines the n folders
    /// into exactly the unsharded query set.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let params = QuerySetParams {
        seed: args.seed,
        query_seconds: args.seconds,
        conditions: if args.conditions.is_empty() {
            Condition::STANDARD.to_vec()
        } else {
            args.conditions.clone()
        },
        window: match args.held_out_from {
            Some(from_seconds) => QueryWindow::HeldOut { from_seconds },
            None => QueryWindow::Whole,
        },
        gain_db: args.gain_db,
    };
    params.validate()?;
    let (root, catalog) = super::open_dataset(
        &args.dataset,
        &ScanOptions {
            num_songs: args.num_songs,
            metadata: args.metadata.clone(),
            subset: args.subset,
        },
    )?;
    let load = LoadOptions {
        max_seconds: Some(args.max_seconds),
        ..LoadOptions::default()
    };
    let songs = args
        .shard
        .map_or(catalog.len(), |s| s.range(catalog.len()).len());
    let bar = super::progress(songs, "queries", args.json);
    let start = Instant::now();
    let summary = write_query_set_part(
        &root,
        &catalog,
        args.shard,
        &load,
        &params,
        &args.out,
        || bar.inc(1),
    )
    .with_context(|| format!("writing the query set to {}", args.out.display()))?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        return super::print_json(&serde_json::json!({
            "dataset": root, "out": args.out, "songs": summary.songs, "queries": summary.queries,
            "conditions": params.conditions, "params": params, "failures": summary.failures,
            "wall_seconds": seconds,
        }));
    }
    println!(
        "{} songs × {} conditions → {} queries in {} in {seconds:.1} s",
        summary.songs,
        params.conditions.len(),
        summary.queries,
        args.out.display()
    );
    if !summary.failures.is_empty() {
        eprintln!(
            "{} song(s) failed and were left out:",
            summary.failures.len()
        );
        for f in &summary.failures {
            eprintln!("  {}", f.error);
        }
    }
    Ok(())
}
