//! `fhe-shazam scale-report`: the scale experiment's reports against the catalog size.

use fhe_shazam::report::scale::{read_scale_point, write_scale_report};
use std::path::PathBuf;

/// Set `reproduce` reports of several catalog sizes against the number of songs: top-1 per
/// condition (float, quantized = FHE, landmark), training time and peak memory, FHE latency and
/// bytes per query, the landmark index; one plot per quantity on a log size axis. Reports named
/// `<family>-c<size>` (e.g. scale-c400, scale-c8000) form one line per family.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Report folders written by `reproduce` (each holds results.json), any order.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// The Markdown report to write; the plots go beside it (<stem>_*.png, .svg).
    #[arg(long, default_value = "reports/scale/summary.md")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let points = args
        .reports
        .iter()
        .map(|d| read_scale_point(d))
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", write_scale_report(&points, &args.out)?);
    Ok(())
}
