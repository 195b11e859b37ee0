//! `fhe-shazam merge`: the feature stores of `extract --shard i/n` → the unsharded store.

use anyhow::Context;
use fhe_shazam::features::store::merge_shards;
use std::path::PathBuf;

/// Combine the feature stores written by `extract --shard i/n` (one folder per shard, i = 0 …
/// n−1, any order) into exactly the store one unsharded `extract` writes — the same bytes in
/// features.npy, labels.npy, chunks.npy and features.json. Refuses folders that are not
/// shards, shards of another catalogue or other parameters, and missing or repeated shards,
/// naming them; the output folder is left as it was then.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shard folders.
    #[arg(required = true, num_args = 1..)]
    shards: Vec<PathBuf>,
    /// Output folder of the merged feature set.
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let merged = merge_shards(&args.shards, &args.out).with_context(|| {
        format!(
            "merging {} shards into {}",
            args.shards.len(),
            args.out.display()
        )
    })?;
    let (songs, rows) = (merged.songs.len(), merged.n_rows);
    if args.json {
        return super::print_json(&serde_json::json!({
            "out": args.out, "shards": args.shards.len(), "songs": songs, "rows": rows,
            "failures": merged.failures.len(),
            "peak_rss_mib": fhe_shazam::report::provenance::memory_mib("VmHWM"),
        }));
    }
    println!(
        "{} shards → {songs} songs, {rows} rows in {}",
        args.shards.len(),
        args.out.display()
    );
    Ok(())
}
