//! The report of one `reproduce` run: results.csv, results.json, summary.md, config.toml and
//! plots (accuracy, latency and bytes against n_bits), all in one folder.

use super::plots::{line_plot, LinePlot, Series};
use super::tables::{full_table, seed_table, write_csv};
use super::Provenance;
use crate::config::ExperimentConfig;
use crate::error::ReportError;
use crate::eval::Mode;
use crate::fsutil;
use crate::pipeline::{Reproduction, ResultRow};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct ResultsJson<'a> {
    config: &'a ExperimentConfig,
    reproduction: &'a Reproduction,
    provenance: &'a Provenance,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn series(rows: &[ResultRow], mode: Mode, y: impl Fn(&ResultRow) -> Option<f64>) -> Series {
    let points = rows
        .iter()
        .filter(|r| r.mode == mode)
        .filter_map(|r| Some((r.n_bits? as f64, y(r)?)))
        .collect();
    Series {
        name: mode.to_string(),
        points,
    }
}

/// Writes the whole report folder; returns the summary Markdown.
pub fn write_report(
    dir: &Path,
    config: &ExperimentConfig,
    rep: &Reproduction,
    provenance: &Provenance,
) -> Result<String, ReportError> {
    write_csv(&dir.join("results.csv"), &rep.rows)?;
    let json = dir.join("results.json");
    fsutil::write_json_atomic(
        &json,
        &ResultsJson {
            config,
            reproduction: rep,
            provenance,
        },
    )
    .map_err(io(&json))?;
    let cfg = dir.join("config.toml");
    let toml = toml::to_string(config).map_err(|e| io(&cfg)(std::io::Error::other(e)))?;
    fsutil::write_atomic(&cfg, toml.as_bytes()).map_err(io(&cfg))?;

    let quantized = rep.rows.iter().filter(|r| r.n_bits.is_some()).count() > 0;
    let float_top1 = rep.rows.iter().find(|r| r.n_bits.is_none()).map(|r| r.top1);
    if quantized {
        let modes = [Mode::Clear, Mode::Simulate, Mode::Execute];
        let acc: Vec<Series> = modes
            .iter()
            .map(|&m| series(&rep.rows, m, |r| Some(100.0 * r.top1)))
            .filter(|s| !s.points.is_empty())
            .collect();
        let hl: Vec<(String, f64)> = float_top1
            .map(|t| ("float".to_string(), 100.0 * t))
            .into_iter()
            .collect();
        line_plot(
            &dir.join("accuracy_vs_nbits"),
            &LinePlot {
                title: "Seed-protocol top-1 accuracy",
                x_label: "n_bits",
                y_label: "top-1 accuracy (%)",
                series: &acc,
                log_y: false,
                y_range: Some((0.0, 100.0)),
                hlines: &hl,
            },
        )?;
        let lat: Vec<Series> = modes
            .iter()
            .map(|&m| series(&rep.rows, m, |r| Some(r.latency_median_ms)))
            .filter(|s| !s.points.is_empty())
            .collect();
        line_plot(
            &dir.join("latency_vs_nbits"),
            &LinePlot {
                title: "Latency per query (median)",
                x_label: "n_bits",
                y_label: "ms per query (log)",
                series: &lat,
                log_y: true,
                y_range: None,
                hlines: &[],
            },
        )?;
        let kib = |b: Option<usize>| b.map(|b| b as f64 / 1024.0);
        let bytes = vec![
            Series {
                name: "upload".into(),
                ..series(&rep.rows, Mode::Execute, |r| kib(r.bytes_up))
            },
            Series {
                name: "download".into(),
                ..series(&rep.rows, Mode::Execute, |r| kib(r.bytes_down))
            },
        ];
        if bytes.iter().any(|s| !s.points.is_empty()) {
            line_plot(
                &dir.join("bytes_vs_nbits"),
                &LinePlot {
                    title: "Bytes per encrypted query",
                    x_label: "n_bits",
                    y_label: "KiB (log)",
                    series: &bytes,
                    log_y: true,
                    y_range: None,
                    hlines: &[],
                },
            )?;
        }
    }

    let synthetic =
        config.dataset.path.is_none() && rep.dataset.to_string_lossy().contains("synth-");
    let mut md = format!("# Experiment `{}`\n\n", config.name);
    md += &format!(
        "Dataset `{}`: {} songs, {} chunk rows{}.{}\n\n",
        rep.dataset.display(),
        rep.songs,
        rep.feature_rows,
        if rep.extraction_failures.is_empty() {
            String::new()
        } else {
            format!(
                ", {} files failed (see results.json)",
                rep.extraction_failures.len()
            )
        },
        if synthetic {
            " **Synthetic songs: this accuracy is not the FMA figure.**"
        } else {
            ""
        }
    );
    if let Some(fit) = &rep.fit {
        md += &format!(
            "Float model: {} backend, {} iterations, converged {}, {:.2} s{}.\n\n",
            fit.backend,
            fit.iterations.map_or("?".into(), |i| i.to_string()),
            fit.converged,
            fit.seconds,
            if rep.models_reused {
                " (cached models reused)"
            } else {
                ""
            }
        );
    }
    md += &format!(
        "Protocol `{}`: queries are the first {} s of each song, majority vote, unknown below {} votes. \
         Quantization: standardize_inputs {}, symmetric_weights {}.\n\n## The seed's table\n\n{}\n## All results\n\n{}",
        config.evaluation.protocol,
        config.evaluation.query_seconds,
        config.evaluation.min_votes,
        config.quantization.standardize_inputs,
        config.quantization.symmetric_weights,
        seed_table(&rep.rows),
        full_table(&rep.rows)
    );
    if let Some(r) = rep.rows.iter().find(|r| {
        r.mode == Mode::Execute && r.simulate_top1_same_queries.is_some_and(|s| s != r.top1)
    }) {
        md += &format!(
            "\n**FHE top-1 differs from simulate at n_bits {:?}.**\n",
            r.n_bits
        );
    } else if rep.rows.iter().any(|r| r.mode == Mode::Execute) {
        md += "\nExecute mode: every decrypted score equalled the simulated integer circuit, so FHE accuracy equals simulate accuracy on the same queries.\n";
    }
    if quantized {
        md += "\n![accuracy vs n_bits](accuracy_vs_nbits.png)\n";
    }
    let stages: Vec<String> = rep
        .stage_seconds
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect();
    md += &format!(
        "\nStages: {}.\n\nMachine: {} ({} cores, {} GiB), commit {}, {}.\nCommand: `{}`; config: `config.toml` in this folder.\n",
        stages.join(", "),
        provenance.cpu,
        provenance.cores,
        provenance.memory_gib,
        provenance.commit,
        provenance.date,
        provenance.command
    );
    let summary = dir.join("summary.md");
    fsutil::write_atomic(&summary, md.as_bytes()).map_err(io(&summary))?;
    Ok(md)
}
