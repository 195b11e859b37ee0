//! `fhe-shazam compare`: experiment reports side by side.

use fhe_shazam::report::compare::{read_report, write_comparison};
use std::path::PathBuf;

/// Put several `reproduce` reports side by side: top-1 per query condition of the float and the
/// quantized model, one line per report (e.g. the steps of an ablation), plus a plot.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Report folders written by `reproduce` (each holds results.json), in table order.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// The Markdown table to write; the plot goes beside it (.png, .svg).
    #[arg(long, default_value = "reports/ablation.md")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let reports = args
        .reports
        .iter()
        .map(|d| read_report(d))
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", write_comparison(&reports, &args.out)?);
    Ok(())
}
