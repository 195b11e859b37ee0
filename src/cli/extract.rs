//! `fhe-shazam extract`: dataset → feature set.

use anyhow::Context;
use fhe_shazam::audio::LoadOptions;
use fhe_shazam::dataset::{FmaSubset, ScanOptions, Shard, ShardInfo};
use fhe_shazam::features::{ExtractJob, FeatureParams};
use fhe_shazam::report::provenance::memory_mib;
use std::path::PathBuf;
use std::time::Instant;

/// Extract the seed's features (MFCC of each 0.5 s chunk, summed over frames) from every song of
/// a dataset: an FMA tree (audio/000/000123.mp3 or fma_small/000/000123.mp3, with an optional
/// tracks.csv) or any folder of mp3/wav/flac/ogg files, taken in sorted path order.
/// Writes DIR/features.npy, labels.npy, chunks.npy and the features.json sidecar; songs whose
/// file is unchanged since the last run are reused. Files that fail are listed at the end.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset folder.
    #[arg(long, default_value = "data/synth")]
    dataset: PathBuf,
    /// Output folder of the feature set.
    #[arg(long, default_value = "data/features")]
    out: PathBuf,
    /// Use only the first N songs (sorted path order), like the seed's 400.
    #[arg(long, value_parser = super::positive)]
    num_songs: Option<usize>,
    /// A tracks.csv for titles/artists (default: metadata/tracks.csv, fma_metadata/tracks.csv, …).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// Only this FMA subset (small ⊂ medium ⊂ large ⊂ full), by tracks.csv's set.subset
    /// column, before --num-songs: one fma_full tree serves all four.
    #[arg(long, value_enum)]
    subset: Option<FmaSubset>,
    /// Load at most this many seconds of each file (the seed: 180).
    #[arg(long, default_value_t = 180.0, value_parser = super::seconds)]
    max_seconds: f64,
    /// Extract only part i of n of the catalogue (0 ≤ i < n; a contiguous run in sorted
    /// order), e.g. `--shard $SLURM_ARRAY_TASK_ID/$N` in a job array; `merge` combines the n
    /// folders into exactly the unsharded store.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
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
    let params = FeatureParams::default();
    let part = match args.shard {
        Some(shard) => std::borrow::Cow::Owned(catalog.shard(shard)),
        None => std::borrow::Cow::Borrowed(&catalog),
    };
    let bar = super::progress(part.len(), "extract", args.json);
    let start = Instant::now();
    let job = ExtractJob {
        root: &root,
        catalog: &part,
        load: &load,
        params: &params,
        transform: None,
        shard: args.shard.map(|shard| ShardInfo::of(&catalog, shard)),
        out: &args.out,
    };
    let summary = job
        .run(&|| bar.inc(1))
        .with_context(|| format!("extracting features into {}", args.out.display()))?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    // Extraction streams: this stays flat in the number of songs (experiments/sharding.sh).
    let peak_rss_mib = memory_mib("VmHWM");
    if args.json {
        return super::print_json(&serde_json::json!({
            "dataset": root, "out": args.out, "songs": summary.songs, "rows": summary.rows,
            "dim": summary.dim, "reused": summary.reused, "extracted": summary.extracted,
            "failures": summary.failures, "wall_seconds": seconds, "peak_rss_mib": peak_rss_mib,
        }));
    }
    println!(
        "{} songs → {} × {} features in {} ({} extracted, {} reused) in {seconds:.1} s",
        summary.songs,
        summary.rows,
        summary.dim,
        args.out.display(),
        summary.extracted,
        summary.reused
    );
    if !summary.failures.is_empty() {
        eprintln!(
            "{} file(s) failed and were left out:",
            summary.failures.len()
        );
        for f in &summary.failures {
            eprintln!("  {}", f.error);
        }
    }
    Ok(())
}
