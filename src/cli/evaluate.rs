//! `fhe-shazam evaluate`: seed-protocol accuracy and latency of trained models in the clear,
//! in simulation (the exact integer circuit) and under real FHE execution.

use fhe_shazam::dataset::Shard;
use fhe_shazam::eval::{Decision, Mode, Rule};
use fhe_shazam::experiment::evaluate::{evaluate_trained, EvaluateTrained, EvaluationPlan};
use fhe_shazam::experiment::listed::{evaluate_listed, evaluate_listed_shard, EvaluateListed};
use fhe_shazam::fhe::Circuit;
use fhe_shazam::report::tables::open_set_table;
use std::path::PathBuf;

/// Evaluate the models written by `train` on the seed protocol (the first 15 s of every song,
/// majority vote, unknown below 5 votes). The float model runs in the clear; each quantized
/// model in the chosen modes: clear (dequantized), simulate (exact integer circuit) and
/// execute (real encryption with tfhe-rs: keygen, encrypt, packed-GLWE scoring, decrypt —
/// every decrypted score is checked against the simulation; a mismatch fails the run).
///
/// With `--queries LIST.csv` (columns `path,track_id[,condition]`: recordings of your own, or
/// the `query_list.csv` that `queries` writes) the models answer those recordings instead,
/// each with its stored "not in the catalogue" threshold; a track id outside the catalogue is
/// an impostor query. Per condition: closed-set top-1, identification and false matches at the
/// threshold, DET plots → summary.md, open_set.csv, results.json.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model folder written by `train` (float.json, q8.json, …).
    #[arg(long, default_value = "data/models")]
    models: PathBuf,
    /// Feature set the queries come from (seed protocol).
    #[arg(long, default_value = "data/features")]
    features: PathBuf,
    /// A query list (path,track_id[,condition]) to evaluate instead of the seed protocol.
    #[arg(long, value_name = "LIST.csv")]
    queries: Option<PathBuf>,
    /// With --queries: each recording's first this many seconds are the query.
    #[arg(long, default_value_t = 15.0, value_parser = super::seconds)]
    seconds: f64,
    /// Which quantized models: a range "2..12", a list "4,8" or one value.
    #[arg(long, default_value = "8", value_parser = super::train::parse_bits)]
    n_bits: super::train::BitGrid,
    /// Modes to run for the quantized models.
    #[arg(long, value_delimiter = ',', default_value = "clear,simulate,execute")]
    modes: Vec<Mode>,
    /// Run execute mode on the first N queries only (all by default).
    #[arg(long, value_parser = super::positive)]
    execute_limit: Option<usize>,
    /// How chunk scores become an answer: votes or log-prob-sum (default: votes, the seed's,
    /// for the seed protocol; log-prob-sum, the rule open-set thresholds are calibrated for,
    /// with --queries).
    #[arg(long, value_enum)]
    decision: Option<Rule>,
    /// With --decision votes: songs with fewer votes than this are answered "unknown" (the seed: 5).
    #[arg(long, default_value_t = 5)]
    min_votes: usize,
    /// Execute mode's FHE circuit: chunks (J × C scores per query) or summed (C scores of the
    /// summed chunks, ~30× less work and reply). Default: the one the decision implies —
    /// votes → chunks, log-prob-sum → summed (chunks for a model whose threshold is `best`).
    #[arg(long, value_enum)]
    circuit: Option<Circuit>,
    /// Serve the models with model privacy at this λ (flood bits): the replies are
    /// re-randomised with the client's public key, flooded so two models with the same scores
    /// are within 2^-λ per score, and rounded to the bits that keep the noise budget.
    #[arg(long, value_name = "LAMBDA")]
    model_privacy: Option<u32>,
    /// With --queries: evaluate only part i of n of the list (0 ≤ i < n; a contiguous run of
    /// rows), e.g. `--shard $SLURM_ARRAY_TASK_ID/$N` in a job array. --out then receives the
    /// part's answers (outcomes.json) and evaluation-shard.json (the part, the list's and the
    /// model files' SHA-256, every parameter); `merge` of the n folders writes the unsharded
    /// report. Not with --model-privacy.
    #[arg(long, value_name = "I/N", requires = "queries")]
    shard: Option<Shard>,
    /// Report folder (default reports/evaluate, or reports/evaluate-queries with --queries).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the JSON report on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let plan = EvaluationPlan {
        modes: args.modes,
        execute_limit: args.execute_limit,
        decision: Decision {
            rule: args.decision.unwrap_or(if args.queries.is_some() {
                Rule::LogProbSum
            } else {
                Rule::Votes
            }),
            min_votes: args.min_votes,
        },
        circuit: args.circuit,
        privacy: args
            .model_privacy
            .map(|flood_bits| fhe_shazam::fhe::ModelPrivacy { flood_bits }),
    };
    if plan.circuit == Some(Circuit::Summed) && plan.decision.rule == Rule::Votes {
        anyhow::bail!(
            "--circuit summed returns only the summed scores, and --decision votes needs every \
             chunk's: use --circuit chunks or --decision log-prob-sum"
        );
    }
    if let Some(list) = args.queries {
        let job = EvaluateListed {
            models: args.models,
            list,
            n_bits: args.n_bits.0,
            query_seconds: args.seconds,
            out: args.out.unwrap_or("reports/evaluate-queries".into()),
            plan,
        };
        let bar = super::progress(
            1 + job.n_bits.len() * job.plan.modes.len(),
            "evaluate",
            args.json,
        );
        if let Some(shard) = args.shard {
            let sidecar = evaluate_listed_shard(&job, shard, &|| bar.inc(1))?;
            bar.finish_and_clear();
            return if args.json {
                super::print_json(&sidecar)
            } else {
                println!(
                    "shard {shard}: queries {:?} of {} answered, written to {}",
                    shard.range(sidecar.list_queries),
                    sidecar.list_queries,
                    job.out.display()
                );
                Ok(())
            };
        }
        let report = evaluate_listed(&job, &|| bar.inc(1))?;
        bar.finish_and_clear();
        return if args.json {
            super::print_json(&report)
        } else {
            println!("{}", open_set_table(&report.open_set.rows));
            println!("report written to {}", job.out.display());
            Ok(())
        };
    }
    let job = EvaluateTrained {
        models: args.models,
        features: args.features,
        n_bits: args.n_bits.0,
        plan,
        out: args.out.unwrap_or("reports/evaluate".into()),
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
