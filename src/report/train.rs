//! The report of `fhe-shazam train`: every model of the n_bits grid, scored on the seed
//! protocol (DIR/summary.md and DIR/summary.json).

use super::io;
use super::markdown::{or_dash, pct, Table};
use super::tables::NOT_POSSIBLE;
use super::Provenance;
use crate::error::ReportError;
use crate::eval::{Metrics, SEED_QUERY_SECONDS};
use crate::fsutil;
use crate::model::{FitInfo, LogisticParams, QuantOptions};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One trained model: its file and its seed-protocol score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedRow {
    /// "float" or "quantized n_bits=8".
    pub model: String,
    pub n_bits: Option<u32>,
    pub weight_bits: Option<u32>,
    pub accumulator_bits: Option<u32>,
    pub file: PathBuf,
    pub seconds_to_build: f64,
    pub seed: Metrics,
    /// Quantized models: whether the FHE planner can run it ("32-bit reply", …) or why not
    /// ("not possible under FHE: …"). Float models: none.
    #[serde(default)]
    pub fhe: Option<String>,
}

impl TrainedRow {
    /// A quantized model the FHE planner refuses.
    pub fn refused(&self) -> bool {
        self.fhe
            .as_deref()
            .is_some_and(|f| f.starts_with(NOT_POSSIBLE))
    }
}

/// The whole grid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub features: PathBuf,
    pub songs: usize,
    pub rows: usize,
    pub training: LogisticParams,
    pub fit: Option<FitInfo>,
    /// The quantization options of the grid (at its last n_bits).
    pub quantization: QuantOptions,
    pub models: Vec<TrainedRow>,
    pub provenance: Provenance,
}

impl TrainSummary {
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# Training summary\n\n{} songs, {} chunk rows, from `{}`.\n\n",
            self.songs,
            self.rows,
            self.features.display()
        );
        if let Some(fit) = &self.fit {
            md += &format!(
                "Float model: backend {}, {} iterations, converged {}, final loss {:.5}, {:.2} s.\n\n",
                fit.backend,
                or_dash(fit.iterations),
                fit.converged,
                fit.final_loss,
                fit.seconds
            );
        }
        md += &format!(
            "Quantization: standardize_inputs {}, symmetric_weights {}. Seed protocol: first {} s of each song, \
             unknown below the vote threshold.\n\n",
            self.quantization.standardize_inputs,
            self.quantization.symmetric_weights,
            SEED_QUERY_SECONDS
        );
        let mut table = Table::new([
            "model",
            "n_bits (in/w)",
            "acc. bits",
            "seed top-1",
            "top-3",
            "unknown",
            "chunk acc.",
            "predict ms/query",
            "build s",
            "under FHE",
        ]);
        for r in &self.models {
            table.row([
                r.model.clone(),
                r.n_bits.map_or("-".into(), |n| {
                    format!("{n}/{}", r.weight_bits.unwrap_or(n))
                }),
                or_dash(r.accumulator_bits),
                pct(r.seed.top1),
                pct(r.seed.top3),
                pct(r.seed.unknown_rate),
                pct(r.seed.chunk_accuracy),
                format!("{:.3}", r.seed.latency_median_ms),
                format!("{:.3}", r.seconds_to_build),
                match &r.fhe {
                    Some(f) if r.refused() => NOT_POSSIBLE.to_string() + " (below)",
                    Some(f) => f.clone(),
                    None => "-".into(),
                },
            ]);
        }
        md += &table.to_string();
        for r in self.models.iter().filter(|r| r.refused()) {
            md += &format!(
                "\n**{}: {}.** It is saved and scores in the clear and in simulation, but \
                 `evaluate` cannot execute it and `serve` refuses it.\n",
                r.model,
                r.fhe.as_deref().unwrap_or_default()
            );
        }
        md += "\n";
        md += &self.provenance.footer();
        md
    }

    /// Writes `dir/summary.json` and `dir/summary.md`; returns the Markdown.
    pub fn write(&self, dir: &Path) -> Result<String, ReportError> {
        let md = self.markdown();
        let json = dir.join("summary.json");
        fsutil::write_json_atomic(&json, self).map_err(io(&json))?;
        let summary = dir.join("summary.md");
        fsutil::write_atomic(&summary, md.as_bytes()).map_err(io(&summary))?;
        Ok(md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_model_with_bits() {
        let metrics = Metrics {
            queries: 4,
            top1: 0.75,
            top3: 1.0,
            unknown_rate: 0.0,
            chunk_accuracy: 0.5,
            latency_median_ms: 0.25,
            latency_p95_ms: 0.5,
        };
        let summary = TrainSummary {
            features: "f".into(),
            songs: 4,
            rows: 240,
            training: LogisticParams::default(),
            fit: None,
            quantization: QuantOptions::concrete(8),
            models: vec![
                TrainedRow {
                    model: "float".into(),
                    n_bits: None,
                    weight_bits: None,
                    accumulator_bits: None,
                    file: "float.json".into(),
                    seconds_to_build: 1.0,
                    seed: metrics.clone(),
                    fhe: None,
                },
                TrainedRow {
                    model: "quantized n_bits=8".into(),
                    n_bits: Some(8),
                    weight_bits: Some(6),
                    accumulator_bits: Some(22),
                    file: "q8.json".into(),
                    seconds_to_build: 0.01,
                    seed: metrics.clone(),
                    fhe: Some("32-bit reply".into()),
                },
                TrainedRow {
                    model: "quantized n_bits=13".into(),
                    n_bits: Some(13),
                    weight_bits: Some(13),
                    accumulator_bits: Some(32),
                    file: "q13.json".into(),
                    seconds_to_build: 0.01,
                    seed: metrics,
                    fhe: Some(format!("{NOT_POSSIBLE}: noise budget exceeded")),
                },
            ],
            provenance: Provenance::collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let md = summary.write(dir.path()).unwrap();
        assert!(md.contains("| float | - | - | 75.00 % |"), "{md}");
        assert!(
            md.contains("| quantized n_bits=8 | 8/6 | 22 | 75.00 % |"),
            "{md}"
        );
        assert!(md.contains("| 32-bit reply |"), "{md}");
        assert!(
            md.contains("**quantized n_bits=13: not possible under FHE: noise budget exceeded.**"),
            "{md}"
        );
        assert!(md.contains("first 15 s"), "{md}");
        assert!(dir.path().join("summary.json").exists());
    }
}
