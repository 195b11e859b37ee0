//! `fhe-shazam merge`: the folders of a sharded run → what the unsharded run writes.

use anyhow::Context;
use fhe_shazam::experiment::shards::{merge, Merged};
use fhe_shazam::report::tables::open_set_table;
use std::path::PathBuf;

/// Combine the folders written with `--shard i/n` (one folder per shard, i = 0 … n−1, any
/// order) into what one unsharded run writes. The kind is told by the file each folder holds:
/// features.json (`extract --shard`) → the same bytes in features.npy, labels.npy, chunks.npy
/// and features.json; queryset.json (`queries --shard`) → the same WAVs, queries.csv,
/// query_list.csv and queryset.json; evaluation-shard.json (`evaluate --queries --shard`) →
/// the same results.json, summary.md, open_set.csv and DET plots (only the provenance — date,
/// command, machine — differs). Refuses a mix of kinds, folders that are not shards, shards of
/// another input or other parameters, and missing or repeated shards, naming them; the output
/// folder is left as it was then.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shard folders.
    #[arg(required = true, num_args = 1..)]
    shards: Vec<PathBuf>,
    /// Output folder of the merged feature set, query set or evaluation report.
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let merged = merge(&args.shards, &args.out).with_context(|| {
        format!(
            "merging {} shards into {}",
            args.shards.len(),
            args.out.display()
        )
    })?;
    let n = args.shards.len();
    let out = args.out.display();
    match merged {
        Merged::Features(sidecar) => {
            let (songs, rows) = (sidecar.songs.len(), sidecar.n_rows);
            if args.json {
                return super::print_json(&serde_json::json!({
                    "kind": "features", "out": args.out, "shards": n, "songs": songs,
                    "rows": rows, "failures": sidecar.failures.len(),
                    // Merge reads one song at a time: flat in the store's size.
                    "peak_rss_mib": fhe_shazam::report::provenance::memory_mib("VmHWM"),
                }));
            }
            println!("{n} shards → {songs} songs, {rows} rows in {out}");
        }
        Merged::Queries(summary) => {
            if args.json {
                return super::print_json(&serde_json::json!({
                    "kind": "queries", "out": args.out, "shards": n, "songs": summary.songs,
                    "queries": summary.queries, "failures": summary.failures.len(),
                }));
            }
            println!(
                "{n} shards → {} songs, {} queries in {out}",
                summary.songs, summary.queries
            );
        }
        Merged::Evaluation(report) => {
            if args.json {
                return super::print_json(&report);
            }
            println!("{}", open_set_table(&report.open_set.rows));
            println!("{n} shards → report written to {out}");
        }
    }
    Ok(())
}
