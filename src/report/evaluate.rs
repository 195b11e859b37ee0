//! The report of `fhe-shazam evaluate`: trained models on the seed protocol in every mode,
//! with the FHE noise budget of each quantized model (results.json, results.md).

use super::io;
use super::markdown::{opt, pct, Table};
use super::tables::NOT_POSSIBLE;
use super::Provenance;
use crate::error::ReportError;
use crate::eval::{ModeResult, SEED_QUERY_SECONDS};
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One model in one mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluationRow {
    /// "float" or "quantized n_bits=8".
    pub model: String,
    pub n_bits: Option<u32>,
    pub accumulator_bits: Option<u32>,
    pub queries: usize,
    pub result: ModeResult,
    /// Execute rows: simulate top-1 on exactly the same queries (FHE must equal it).
    pub simulate_top1_same_queries: Option<f64>,
    /// Execute rows that could not run: why.
    #[serde(default)]
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluationReport {
    pub features: PathBuf,
    pub models: PathBuf,
    pub songs: usize,
    pub rows: Vec<EvaluationRow>,
    /// Markdown table of the FHE noise budget of each evaluated quantized model.
    pub noise_budget: String,
    pub provenance: Provenance,
}

impl EvaluationReport {
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# Seed-protocol evaluation\n\n{} songs; queries = first {} s of each song; features `{}`, models `{}`.\n\n",
            self.songs,
            SEED_QUERY_SECONDS,
            self.features.display(),
            self.models.display()
        );
        let mut table = Table::new([
            "model",
            "mode",
            "queries",
            "top-1",
            "simulate top-1 (same queries)",
            "top-3",
            "unknown",
            "predict ms/query (median)",
            "encrypt ms",
            "server ms",
            "decrypt ms",
            "up KiB",
            "down KiB",
        ]);
        for row in &self.rows {
            let m = &row.result.metrics;
            let fhe = row.result.fhe.as_ref();
            let kib = |b: Option<usize>| opt(b.map(|b| b as f64 / 1024.0), 2);
            if row.refused.is_some() {
                let mut cells = vec![
                    row.model.clone(),
                    row.result.mode.to_string(),
                    "0".into(),
                    NOT_POSSIBLE.into(),
                ];
                cells.resize(13, "-".into());
                table.row(cells);
                continue;
            }
            table.row([
                row.model.clone(),
                row.result.mode.to_string(),
                row.queries.to_string(),
                pct(m.top1),
                row.simulate_top1_same_queries.map_or("-".into(), pct),
                pct(m.top3),
                pct(m.unknown_rate),
                format!("{:.3}", m.latency_median_ms),
                opt(fhe.map(|c| c.encrypt_ms), 2),
                opt(fhe.map(|c| c.server_ms), 2),
                opt(fhe.map(|c| c.decrypt_ms), 2),
                kib(fhe.map(|c| c.bytes_up)),
                kib(fhe.map(|c| c.bytes_down)),
            ]);
        }
        md += &table.to_string();
        for row in &self.rows {
            if let Some(why) = &row.refused {
                md += &format!("\n{}: execute {NOT_POSSIBLE}: {why}\n", row.model);
            }
        }
        let checked: usize = self
            .rows
            .iter()
            .filter_map(|row| row.result.fhe.as_ref())
            .map(|c| c.scores_checked)
            .sum();
        md += &format!(
            "\nFHE noise budget of these models (tfhe-rs GLWE k = 1, N = 2048, TUniform(17), 32-bit reply; \
             a model over 2^-40 runs with the smallest reply width that passes):\n\n{}",
            self.noise_budget
        );
        if checked > 0 {
            md += &format!("\nExecute mode: {checked} decrypted scores, every one equal to the simulated integer circuit.\n");
        }
        md += "\n";
        md += &self.provenance.footer();
        md
    }

    /// Writes `dir/results.json` and `dir/results.md`; returns the Markdown.
    pub fn write(&self, dir: &Path) -> Result<String, ReportError> {
        let md = self.markdown();
        let json = dir.join("results.json");
        fsutil::write_json_atomic(&json, self).map_err(io(&json))?;
        let results = dir.join("results.md");
        fsutil::write_atomic(&results, md.as_bytes()).map_err(io(&results))?;
        Ok(md)
    }
}
