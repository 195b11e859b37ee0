//! The result schema every report reads and writes: one [`ResultRow`] per (condition, model,
//! mode) — a line of results.csv — and the [`Reproduction`] of a whole run (results.json).
//! The experiment layer fills them; the report layer only reads them.

use crate::eval::landmark::LandmarkSummary;
use crate::eval::OpenSetResult;
use crate::eval::{Mode, ModeRun};
use crate::features::store::Failure;
use crate::model::FitInfo;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Which scorer a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The float logistic regression (clear mode only).
    Float,
    /// A quantized model at some n_bits (clear, simulate or execute).
    Quantized,
    /// The Wang 2003 landmark baseline (clear mode only).
    Landmark,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Float => "float",
            ModelKind::Quantized => "quantized",
            ModelKind::Landmark => "landmark",
        })
    }
}

/// One (model, mode) result: a row of results.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub experiment: String,
    pub dataset: String,
    /// The query condition: "seed" for the seed protocol, else a robust condition.
    pub condition: String,
    pub model: ModelKind,
    pub n_bits: Option<u32>,
    pub weight_bits: Option<u32>,
    pub standardize_inputs: bool,
    pub accumulator_bits: Option<u32>,
    pub mode: Mode,
    pub queries: usize,
    pub top1: f64,
    pub top3: f64,
    pub unknown_rate: f64,
    pub chunk_accuracy: f64,
    pub latency_median_ms: f64,
    pub latency_p95_ms: f64,
    pub encrypt_ms: Option<f64>,
    pub server_ms: Option<f64>,
    pub decrypt_ms: Option<f64>,
    pub bytes_up: Option<usize>,
    pub bytes_down: Option<usize>,
    /// Execute rows with a query limit: simulate's top-1 on exactly the same queries.
    pub simulate_top1_same_queries: Option<f64>,
    /// Execute rows that could not run (the model exceeds the FHE noise budget): why.
    #[serde(default)]
    pub refused: Option<String>,
}

/// What a row's model was, beyond its kind: the quantized model's bit widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuantizedBits {
    pub n_bits: u32,
    pub weight_bits: u32,
    pub standardize_inputs: bool,
    pub accumulator_bits: u32,
}

/// Where a row was measured: experiment, dataset and query condition.
#[derive(Debug, Clone, Copy)]
pub struct RowContext<'a> {
    pub experiment: &'a str,
    pub dataset: &'a str,
    pub condition: &'a str,
}

impl ResultRow {
    /// The row of one evaluation run.
    pub fn new(
        at: RowContext,
        model: ModelKind,
        bits: Option<QuantizedBits>,
        run: &ModeRun,
    ) -> Self {
        let m = &run.result.metrics;
        let f = run.result.fhe.as_ref();
        Self {
            experiment: at.experiment.to_string(),
            dataset: at.dataset.to_string(),
            condition: at.condition.to_string(),
            model,
            n_bits: bits.map(|b| b.n_bits),
            weight_bits: bits.map(|b| b.weight_bits),
            standardize_inputs: bits.is_some_and(|b| b.standardize_inputs),
            accumulator_bits: bits.map(|b| b.accumulator_bits),
            mode: run.result.mode,
            queries: run.queries,
            top1: m.top1,
            top3: m.top3,
            unknown_rate: m.unknown_rate,
            chunk_accuracy: m.chunk_accuracy,
            latency_median_ms: m.latency_median_ms,
            latency_p95_ms: m.latency_p95_ms,
            encrypt_ms: f.map(|c| c.encrypt_ms),
            server_ms: f.map(|c| c.server_ms),
            decrypt_ms: f.map(|c| c.decrypt_ms),
            bytes_up: f.map(|c| c.bytes_up),
            bytes_down: f.map(|c| c.bytes_down),
            simulate_top1_same_queries: run.simulate_top1_same_queries,
            refused: run.refused.clone(),
        }
    }
}

/// Everything a report of one `reproduce` run needs (results.json's `reproduction`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reproduction {
    pub dataset: PathBuf,
    pub songs: usize,
    pub feature_rows: usize,
    pub extraction_failures: Vec<Failure>,
    pub fit: Option<FitInfo>,
    /// Training rows after augmentation.
    pub training_rows: usize,
    pub models_reused: bool,
    pub rows: Vec<ResultRow>,
    pub stage_seconds: Vec<(String, f64)>,
    /// The process's peak resident memory (MiB) at the end of each stage, cumulative: the
    /// "train" entry bounds what loading, extraction and training needed together.
    #[serde(default)]
    pub stage_peak_rss_mib: Vec<(String, f64)>,
    /// The landmark baseline's index, when `[landmark] enabled`.
    #[serde(default)]
    pub landmark: Option<LandmarkSummary>,
    /// The open-set protocol's figures, when `[evaluation.open_set]` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_set: Option<OpenSetResult>,
    /// The extraction attack and model privacy's accuracy, when `[extraction]` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extraction: Option<crate::eval::extraction::ExtractionResult>,
}

/// A [`ResultRow`] with made-up figures, for the report layer's unit tests.
#[cfg(test)]
pub(crate) fn test_row(
    condition: &str,
    model: ModelKind,
    n_bits: Option<u32>,
    mode: Mode,
    top1: f64,
) -> ResultRow {
    ResultRow {
        experiment: "e".into(),
        dataset: "d".into(),
        condition: condition.into(),
        model,
        n_bits,
        weight_bits: n_bits,
        standardize_inputs: false,
        accumulator_bits: None,
        mode,
        queries: 10,
        top1,
        top3: top1,
        unknown_rate: 0.0,
        chunk_accuracy: 0.0,
        latency_median_ms: 1.0,
        latency_p95_ms: 1.0,
        encrypt_ms: None,
        server_ms: None,
        decrypt_ms: None,
        bytes_up: None,
        bytes_down: None,
        simulate_top1_same_queries: None,
        refused: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_kinds_serialise_as_the_csv_strings() {
        for (kind, name) in [
            (ModelKind::Float, "float"),
            (ModelKind::Quantized, "quantized"),
            (ModelKind::Landmark, "landmark"),
        ] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
            assert_eq!(kind.to_string(), name);
        }
    }

    #[test]
    fn committed_results_still_parse() {
        // A report written before the schema moved here.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("reports/robust/04-perfeature/results.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let rep: Reproduction = serde_json::from_value(json["reproduction"].clone()).unwrap();
        assert!(rep.rows.iter().any(|r| r.model == ModelKind::Float));
        assert!(rep.rows.iter().any(|r| r.model == ModelKind::Quantized));
        assert!(rep.rows.iter().any(|r| r.model == ModelKind::Landmark));
    }
}
