//! `fhe-shazam train`: a float model and one quantized model per n_bits, each scored on the seed
//! protocol (first 15 s of every song, majority vote) so the grid can be compared at once.

use fhe_shazam::config::QuantizationConfig;
use fhe_shazam::experiment::train::{train_grid, TrainGrid};
use fhe_shazam::model::{Backend, LogisticParams};
use std::path::PathBuf;

/// Train the float logistic regression (sklearn's LogisticRegression() objective) and, from it,
/// one Concrete-ML-exact quantized model per n_bits (post-training quantization). Every model is
/// saved as a self-describing JSON file (DIR/float.json, DIR/q8.json, …) and scored on the seed
/// protocol; the table is written to DIR/summary.md and DIR/summary.json.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Feature set folder written by `extract`.
    #[arg(long, default_value = "data/features")]
    features: PathBuf,
    /// Output folder for model files and the summary.
    #[arg(long, default_value = "data/models")]
    out: PathBuf,
    /// n_bits grid: a range "2..12" (inclusive), a list "4,6,8" or one value.
    #[arg(long, default_value = "2..12", value_parser = parse_bits)]
    n_bits: BitGrid,
    /// Weight bits, when they should differ from the input bits (default: the same as n_bits).
    #[arg(long)]
    weight_bits: Option<u32>,
    /// Quantize each feature with its own range (ours; Concrete ML uses one range for all).
    #[arg(long)]
    standardize_inputs: bool,
    /// Symmetric weight quantizer (ours: drops the Z_w·Σq_x term).
    #[arg(long)]
    symmetric_weights: bool,
    /// Float trainer: lbfgs (own, default), linfa, smartcore (all sklearn's logistic
    /// regression), or lda (closed-form linear discriminant analysis: seconds, no iterations).
    #[arg(long, default_value = "lbfgs")]
    backend: Backend,
    /// sklearn's max_iter.
    #[arg(long, default_value_t = 100, value_parser = super::positive)]
    max_iter: usize,
    /// sklearn's tol: stop when the gradient's max-norm is at most this.
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Songs with fewer votes than this are answered "unknown" (the seed: 5).
    #[arg(long, default_value_t = 5)]
    min_votes: usize,
    /// Print the JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// "2..12" → 2,3,…,12; "4,6,8" → 4,6,8; "8" → 8.
/// An n_bits grid given on the command line, checked while the arguments are parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct BitGrid(pub Vec<u32>);

pub fn parse_bits(s: &str) -> Result<BitGrid, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{t}' is not a bit width"))
    };
    let bits = match s.split_once("..") {
        Some((a, b)) => {
            let (lo, hi) = (num(a)?, num(b.trim_start_matches('='))?);
            if lo > hi {
                return Err(format!("'{s}': the range is reversed; write {hi}..{lo}"));
            }
            (lo..=hi).collect()
        }
        None => s.split(',').map(num).collect::<Result<Vec<_>, _>>()?,
    };
    if bits.is_empty() || bits.iter().any(|&b| !(1..=24).contains(&b)) {
        return Err(format!("'{s}': bit widths must be in 1..=24"));
    }
    Ok(BitGrid(bits))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let grid = TrainGrid {
        features: args.features,
        out: args.out,
        training: LogisticParams {
            backend: args.backend,
            max_iter: args.max_iter,
            tol: args.tol,
            ..LogisticParams::default()
        },
        quantization: QuantizationConfig {
            n_bits: args.n_bits.0,
            weight_bits: args.weight_bits,
            standardize_inputs: args.standardize_inputs,
            symmetric_weights: args.symmetric_weights,
        },
        min_votes: args.min_votes,
    };
    let bar = super::progress(grid.quantization.n_bits.len(), "quantize", args.json);
    let summary = train_grid(&grid, &|| bar.inc(1))?;
    bar.finish_and_clear();
    for r in summary.models.iter().filter(|r| r.refused()) {
        eprintln!(
            "warning: {}: {}",
            r.model,
            r.fhe.as_deref().unwrap_or_default()
        );
    }
    if args.json {
        super::print_json(&summary)
    } else {
        print!("{}", summary.markdown());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bits;

    #[test]
    fn bit_grids() {
        assert_eq!(parse_bits("2..5").unwrap().0, vec![2, 3, 4, 5]);
        assert_eq!(parse_bits("4,6, 8").unwrap().0, vec![4, 6, 8]);
        assert_eq!(parse_bits("8").unwrap().0, vec![8]);
        assert!(parse_bits("0..3").is_err());
        assert!(parse_bits("eight").is_err());
        assert!(parse_bits("12..2")
            .unwrap_err()
            .contains("reversed; write 2..12"));
    }
}
