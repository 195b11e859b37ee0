//! `fhe-shazam train`: a float model and one quantized model per n_bits, each scored on the seed
//! protocol (first 15 s of every song, majority vote) so the grid can be compared at once.

use anyhow::Context;
use fhe_shazam::eval::{evaluate_clear, seed_queries, Decision, Metrics, Rule, SEED_QUERY_SECONDS};
use fhe_shazam::features::FeatureSet;
use fhe_shazam::fsutil;
use fhe_shazam::model::{
    fit, Backend, LogisticParams, ModelFile, QuantOptions, QuantizedModel, Scorer,
};
use fhe_shazam::report::Provenance;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

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
    #[arg(long, default_value = "2..12")]
    n_bits: String,
    /// Weight bits, when they should differ from the input bits (default: the same as n_bits).
    #[arg(long)]
    weight_bits: Option<u32>,
    /// Quantize each feature with its own range (ours; Concrete ML uses one range for all).
    #[arg(long)]
    standardize_inputs: bool,
    /// Symmetric weight quantizer (ours: drops the Z_w·Σq_x term).
    #[arg(long)]
    symmetric_weights: bool,
    /// Float trainer: lbfgs (own, default), linfa, smartcore.
    #[arg(long, default_value = "lbfgs")]
    backend: Backend,
    /// sklearn's max_iter.
    #[arg(long, default_value_t = 100)]
    max_iter: usize,
    /// Songs with fewer votes than this are answered "unknown" (the seed: 5).
    #[arg(long, default_value_t = 5)]
    min_votes: usize,
    /// Print the JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// "2..12" → 2,3,…,12; "4,6,8" → 4,6,8; "8" → 8.
pub fn parse_bits(s: &str) -> Result<Vec<u32>, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{t}' is not a bit width"))
    };
    let bits = match s.split_once("..") {
        Some((a, b)) => (num(a)?..=num(b.trim_start_matches('='))?).collect(),
        None => s.split(',').map(num).collect::<Result<Vec<_>, _>>()?,
    };
    if bits.is_empty() || bits.iter().any(|&b| !(1..=24).contains(&b)) {
        return Err(format!("'{s}': bit widths must be in 1..=24"));
    }
    Ok(bits)
}

#[derive(Debug, Serialize)]
struct Row {
    model: String,
    n_bits: Option<u32>,
    weight_bits: Option<u32>,
    accumulator_bits: Option<u32>,
    file: PathBuf,
    seconds_to_build: f64,
    seed: Metrics,
}

#[derive(Debug, Serialize)]
struct Summary {
    features: PathBuf,
    songs: usize,
    rows: usize,
    training: LogisticParams,
    fit: Option<fhe_shazam::model::FitInfo>,
    quantization: QuantOptions,
    models: Vec<Row>,
    provenance: Provenance,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let grid = parse_bits(&args.n_bits).map_err(anyhow::Error::msg)?;
    let set = FeatureSet::load(&args.features)?;
    let x = set.features.view();
    let catalog = set.catalog();
    let params = LogisticParams {
        backend: args.backend,
        max_iter: args.max_iter,
        ..LogisticParams::default()
    };
    let queries = seed_queries(&set, SEED_QUERY_SECONDS);

    let start = Instant::now();
    let float = fit(x, &set.labels, set.n_songs(), &params).context("training the float model")?;
    let float_seconds = start.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    let mut score = |name: String,
                     scorer: &dyn Scorer,
                     file: PathBuf,
                     bits: Option<(u32, u32, u32)>,
                     secs: f64|
     -> anyhow::Result<()> {
        let (seed, _) = evaluate_clear(
            scorer,
            &queries,
            &Decision {
                rule: Rule::Votes,
                min_votes: args.min_votes,
            },
        )?;
        rows.push(Row {
            model: name,
            n_bits: bits.map(|b| b.0),
            weight_bits: bits.map(|b| b.1),
            accumulator_bits: bits.map(|b| b.2),
            file,
            seconds_to_build: secs,
            seed,
        });
        Ok(())
    };
    let float_path = args.out.join("float.json");
    ModelFile::float(
        set.sidecar.params.clone(),
        catalog.clone(),
        float.clone(),
        Some(params.clone()),
    )?
    .save(&float_path)?;
    score("float".into(), &float, float_path, None, float_seconds)?;

    let mut quantization = QuantOptions::concrete(8);
    let bar = super::progress(grid.len(), "quantize", args.json);
    for &n in &grid {
        let opts = QuantOptions {
            n_bits_input: n,
            n_bits_weight: args.weight_bits.unwrap_or(n),
            standardize_inputs: args.standardize_inputs,
            symmetric_weights: args.symmetric_weights,
        };
        quantization = opts;
        let t = Instant::now();
        let q = QuantizedModel::from_float(&float, x, &opts)
            .with_context(|| format!("quantizing to {n} bits"))?;
        let secs = t.elapsed().as_secs_f64();
        let path = args.out.join(format!("q{n}.json"));
        let bits = (opts.n_bits_input, opts.n_bits_weight, q.accumulator_bits());
        ModelFile::quantized(
            set.sidecar.params.clone(),
            catalog.clone(),
            q.clone(),
            Some(params.clone()),
        )?
        .save(&path)?;
        score(format!("quantized n_bits={n}"), &q, path, Some(bits), secs)?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    let summary = Summary {
        features: args.features.clone(),
        songs: set.n_songs(),
        rows: set.features.nrows(),
        training: params,
        fit: float.fit.clone(),
        quantization,
        models: rows,
        provenance: Provenance::collect(),
    };
    let md = summary_markdown(&summary);
    fsutil::write_json_atomic(&args.out.join("summary.json"), &summary)?;
    fsutil::write_atomic(&args.out.join("summary.md"), md.as_bytes())?;
    if args.json {
        super::print_json(&summary)
    } else {
        print!("{md}");
        Ok(())
    }
}

fn summary_markdown(s: &Summary) -> String {
    let mut md = format!(
        "# Training summary\n\n{} songs, {} chunk rows, from `{}`.\n\n",
        s.songs,
        s.rows,
        s.features.display()
    );
    if let Some(fit) = &s.fit {
        md += &format!(
            "Float model: backend {}, {} iterations, converged {}, final loss {:.5}, {:.2} s.\n\n",
            fit.backend,
            fit.iterations.map_or("?".into(), |i| i.to_string()),
            fit.converged,
            fit.final_loss,
            fit.seconds
        );
    }
    md += &format!(
        "Quantization: standardize_inputs {}, symmetric_weights {}. Seed protocol: first {} s of each song, \
         unknown below the vote threshold.\n\n",
        s.quantization.standardize_inputs, s.quantization.symmetric_weights, SEED_QUERY_SECONDS
    );
    md += "| model | n_bits (in/w) | acc. bits | seed top-1 | top-3 | unknown | chunk acc. | predict ms/query | build s |\n";
    md += "|---|---|---|---|---|---|---|---|---|\n";
    for r in &s.models {
        md += &format!(
            "| {} | {} | {} | {:.2} % | {:.2} % | {:.2} % | {:.2} % | {:.3} | {:.3} |\n",
            r.model,
            r.n_bits.map_or("-".into(), |n| format!(
                "{n}/{}",
                r.weight_bits.unwrap_or(n)
            )),
            r.accumulator_bits.map_or("-".into(), |b| b.to_string()),
            100.0 * r.seed.top1,
            100.0 * r.seed.top3,
            100.0 * r.seed.unknown_rate,
            100.0 * r.seed.chunk_accuracy,
            r.seed.latency_median_ms,
            r.seconds_to_build
        );
    }
    md += &format!(
        "\nMachine: {} ({} cores), commit {}, {}.\nCommand: `{}`\n",
        s.provenance.cpu,
        s.provenance.cores,
        s.provenance.commit,
        s.provenance.date,
        s.provenance.command
    );
    md
}

#[cfg(test)]
mod tests {
    use super::parse_bits;

    #[test]
    fn bit_grids() {
        assert_eq!(parse_bits("2..5").unwrap(), vec![2, 3, 4, 5]);
        assert_eq!(parse_bits("4,6, 8").unwrap(), vec![4, 6, 8]);
        assert_eq!(parse_bits("8").unwrap(), vec![8]);
        assert!(parse_bits("0..3").is_err());
        assert!(parse_bits("eight").is_err());
    }
}
