//! `fhe-shazam evaluate`: seed-protocol accuracy and latency of trained models in the clear,
//! in simulation (the exact integer circuit) and under real FHE execution.

use anyhow::Context;
use fhe_shazam::eval::runner::evaluate_modes;
use fhe_shazam::eval::{
    evaluate_clear, integer_layer, seed_queries, Decision, Mode, ModeResult, Rule,
    SEED_QUERY_SECONDS,
};
use fhe_shazam::features::FeatureSet;
use fhe_shazam::fhe::{noise_budget_table, GlweParams, IntegerLinear, Layout};
use fhe_shazam::fsutil;
use fhe_shazam::model::ModelFile;
use fhe_shazam::report::Provenance;
use serde::Serialize;
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
    #[arg(long, default_value = "8")]
    n_bits: String,
    /// Modes to run for the quantized models.
    #[arg(long, value_delimiter = ',', default_value = "clear,simulate,execute")]
    modes: Vec<Mode>,
    /// Run execute mode on the first N queries only (all by default).
    #[arg(long)]
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

#[derive(Debug, Serialize)]
struct Row {
    model: String,
    n_bits: Option<u32>,
    accumulator_bits: Option<u32>,
    queries: usize,
    result: ModeResult,
    /// Execute rows: simulate top-1 on exactly the same queries (FHE must equal it).
    simulate_top1_same_queries: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    features: PathBuf,
    models: PathBuf,
    songs: usize,
    rows: Vec<Row>,
    /// Markdown table of the FHE noise budget of each evaluated quantized model.
    noise_budget: String,
    provenance: Provenance,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let grid = super::train::parse_bits(&args.n_bits).map_err(anyhow::Error::msg)?;
    let set = FeatureSet::load(&args.features)?;
    let queries = seed_queries(&set, SEED_QUERY_SECONDS);
    let chunks = queries
        .iter()
        .map(|q| q.features.nrows())
        .max()
        .unwrap_or(1);
    let mut rows = Vec::new();

    let decision = Decision {
        rule: args.decision,
        min_votes: args.min_votes,
    };
    let float = ModelFile::load(&args.models.join("float.json"))?;
    let (metrics, _) = evaluate_clear(float.float_model(), &queries, &decision)?;
    let clear = ModeResult {
        mode: Mode::Clear,
        metrics,
        fhe: None,
    };
    rows.push(Row {
        model: "float".into(),
        n_bits: None,
        accumulator_bits: None,
        queries: queries.len(),
        result: clear,
        simulate_top1_same_queries: None,
    });

    let mut layers = Vec::new();
    let bar = super::progress(grid.len() * args.modes.len(), "evaluate", args.json);
    for &n in &grid {
        let path = args.models.join(format!("q{n}.json"));
        let file = ModelFile::load(&path)?;
        let q = file
            .quantized_model()
            .with_context(|| format!("{} is not a quantized model", path.display()))?;
        if file.catalog().len() != set.n_songs() {
            anyhow::bail!(
                "{} has {} songs but the feature set has {}",
                path.display(),
                file.catalog().len(),
                set.n_songs()
            );
        }
        layers.push((format!("n_bits={n}"), integer_layer(q)));
        for run in evaluate_modes(
            q,
            &queries,
            &args.modes,
            args.execute_limit,
            &decision,
            chunks,
        )
        .with_context(|| format!("evaluating {}", path.display()))?
        {
            rows.push(Row {
                model: format!("quantized n_bits={n}"),
                n_bits: Some(n),
                accumulator_bits: Some(q.accumulator_bits()),
                queries: run.queries,
                result: run.result,
                simulate_top1_same_queries: run.simulate_top1_same_queries,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let params = GlweParams::TUNIFORM_2M128_N2048;
    let layout = Layout::densest(chunks, set.sidecar.dim, params.polynomial_size)?;
    let labelled: Vec<(&str, &IntegerLinear)> = layers
        .iter()
        .map(|(l, layer)| (l.as_str(), layer))
        .collect();
    let noise_budget = noise_budget_table(&labelled, &layout, &params)?;
    let report = Report {
        features: args.features,
        models: args.models,
        songs: set.n_songs(),
        rows,
        noise_budget,
        provenance: Provenance::collect(),
    };
    let md = markdown(&report);
    fsutil::write_json_atomic(&args.out.join("results.json"), &report)?;
    fsutil::write_atomic(&args.out.join("results.md"), md.as_bytes())?;
    if args.json {
        super::print_json(&report)
    } else {
        print!("{md}");
        Ok(())
    }
}

fn markdown(r: &Report) -> String {
    let mut md = format!(
        "# Seed-protocol evaluation\n\n{} songs; queries = first {} s of each song; features `{}`, models `{}`.\n\n\
         | model | mode | queries | top-1 | simulate top-1 (same queries) | top-3 | unknown | predict ms/query (median) | encrypt ms | server ms | decrypt ms | up KiB | down KiB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        r.songs,
        SEED_QUERY_SECONDS,
        r.features.display(),
        r.models.display()
    );
    for row in &r.rows {
        let m = &row.result.metrics;
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let fhe = row.result.fhe.as_ref();
        md += &format!(
            "| {} | {} | {} | {:.2} % | {} | {:.2} % | {:.2} % | {:.3} | {} | {} | {} | {} | {} |\n",
            row.model,
            row.result.mode,
            row.queries,
            100.0 * m.top1,
            row.simulate_top1_same_queries.map_or("-".into(), |t| format!("{:.2} %", 100.0 * t)),
            100.0 * m.top3,
            100.0 * m.unknown_rate,
            m.latency_median_ms,
            f(fhe.map(|c| c.encrypt_ms)),
            f(fhe.map(|c| c.server_ms)),
            f(fhe.map(|c| c.decrypt_ms)),
            f(fhe.map(|c| c.bytes_up as f64 / 1024.0)),
            f(fhe.map(|c| c.bytes_down as f64 / 1024.0)),
        );
    }
    let checked: usize = r
        .rows
        .iter()
        .filter_map(|row| row.result.fhe.as_ref())
        .map(|c| c.scores_checked)
        .sum();
    md += &format!(
        "\nFHE noise budget of these models (tfhe-rs GLWE k = 1, N = 2048, TUniform(17), 32-bit reply; \
         a model over 2^-40 runs with the smallest reply width that passes):\n\n{}",
        r.noise_budget
    );
    if checked > 0 {
        md += &format!("\nExecute mode: {checked} decrypted scores, every one equal to the simulated integer circuit.\n");
    }
    md += &format!(
        "\nMachine: {} ({} cores), commit {}, {}.\nCommand: `{}`\n",
        r.provenance.cpu,
        r.provenance.cores,
        r.provenance.commit,
        r.provenance.date,
        r.provenance.command
    );
    md
}
