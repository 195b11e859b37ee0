//! `fhe-shazam evaluate`: seed-protocol accuracy and latency of trained models in the clear,
//! in simulation (the exact integer circuit) and under real FHE execution.

use fhe_shazam::eval::{Decision, Mode, Rule};
use fhe_shazam::experiment::evaluate::{evaluate_trained, EvaluateTrained, EvaluationPlan};
use std::path::PathBuf;

/// Evaluate the models written by `train` on the seed protocol (the first 15 s of every song,
/// majority vote, unknown below 5 votes). The float model runs in the clear; each quantized
/// model in the chosen modes: clear (dequantized), simulate (exact integer circuit) and
/// execute (real encryption with tfhe-rs: keygen, encrypt, packed-GLWE scoring, decrypt —
/// every decrypted score is checked against the simulation; a mismatch fails the run).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model folder written by `train` (float.json, q8.json, …).
    #[arg(long, default_value = "data/models")]
    models: PathBuf,
    /// Feature set the queries come from.
    #[arg(long, default_value = "data/features")]
    features: PathBuf,
    /// Which quantized models: a range "2..12", a list "4,8" or one value.
    #[arg(long, default_value = "8", value_parser = super::train::parse_bits)]
    n_bits: super::train::BitGrid,
    /// Modes to run for the quantized models.
    #[arg(long, value_delimiter = ',', default_value = "clear,simulate,execute")]
    modes: Vec<Mode>,
    /// Run execute mode on the first N queries only (all by default).
    #[arg(long, value_parser = super::positive)]
    execute_limit: Option<usize>,
    /// How chunk scores become an answer: votes (the seed) or log-prob-sum.
    #[arg(long, value_enum, default_value = "votes")]
    decision: Rule,
    /// With --decision votes: songs with fewer votes than this are answered "unknown" (the seed: 5).
    #[arg(long, default_value_t = 5)]
    min_votes: usize,
    /// Report folder (results.json, results.md).
    #[arg(long, default_value = "reports/evaluate")]
    out: PathBuf,
    /// Print the JSON report on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let job = EvaluateTrained {
        models: args.models,
        features: args.features,
        n_bits: args.n_bits.0,
        plan: EvaluationPlan {
            modes: args.modes,
            execute_limit: args.execute_limit,
            decision: Decision {
                rule: args.decision,
                min_votes: args.min_votes,
            },
        },
        out: args.out,
    };
    let bar = super::progress(
        job.n_bits.len() * job.plan.modes.len(),
        "evaluate",
        args.json,
    );
    let report = evaluate_trained(&job, &|| bar.inc(1))?;
    bar.finish_and_clear();
    if args.json {
        super::print_json(&report)
    } else {
        print!("{}", report.markdown());
        Ok(())
    }
}
