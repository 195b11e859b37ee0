//! The report of one `reproduce` run: results.csv, results.json, summary.md, config.toml and
//! plots (accuracy, latency and bytes against n_bits), all in one folder.

use super::io;
use super::markdown::{pct, Table};
use super::plots::{line_plot, LinePlot, Series};
use super::schema::{ModelKind, Reproduction, ResultRow};
use super::tables::{
    conditions, full_table, held_out_table, model_label, open_set_table, refused_notes,
    robust_table, seed_table, write_csv,
};
use super::Provenance;
use crate::config::{ExperimentConfig, Protocol};
use crate::error::ReportError;
use crate::eval::extraction::{ExtractionLine, ExtractionResult};
use crate::eval::Mode;
use crate::fsutil;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct ResultsJson<'a> {
    config: &'a ExperimentConfig,
    reproduction: &'a Reproduction,
    provenance: &'a Provenance,
}

/// A series against n_bits of the rows of one mode (and, with robust conditions, one condition).
fn series(
    rows: &[ResultRow],
    mode: Mode,
    condition: &str,
    y: impl Fn(&ResultRow) -> Option<f64>,
) -> Series {
    let points = rows
        .iter()
        .filter(|r| r.mode == mode && r.condition == condition && r.refused.is_none())
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

    let conds = conditions(&rep.rows);
    let first = conds.first().cloned().unwrap_or_default();
    let quantized = rep.rows.iter().filter(|r| r.n_bits.is_some()).count() > 0;
    let float_top1 = rep
        .rows
        .iter()
        .find(|r| r.model == ModelKind::Float && r.condition == first)
        .map(|r| r.top1);
    if quantized {
        let modes = [Mode::Clear, Mode::Simulate, Mode::Execute];
        // Seed: one line per mode. Robust: one line per condition (simulate, else clear).
        let acc: Vec<Series> = if conds.len() > 1 {
            let mode = if rep.rows.iter().any(|r| r.mode == Mode::Simulate) {
                Mode::Simulate
            } else {
                Mode::Clear
            };
            conds
                .iter()
                .map(|c| Series {
                    name: c.clone(),
                    ..series(&rep.rows, mode, c, |r| Some(100.0 * r.top1))
                })
                .collect()
        } else {
            let mut acc: Vec<Series> = modes
                .iter()
                .map(|&m| series(&rep.rows, m, &first, |r| Some(100.0 * r.top1)))
                .filter(|s| !s.points.is_empty())
                .collect();
            // Execute on a subset of the queries is set against simulate on that subset, so
            // the plot never compares FHE on some queries with simulate on others.
            let full = rep.rows.iter().map(|r| r.queries).max().unwrap_or(0);
            let subset = rep
                .rows
                .iter()
                .filter(|r| r.mode == Mode::Execute && r.queries < full)
                .map(|r| r.queries)
                .max();
            if let (Some(n), Some(exe)) = (subset, acc.iter_mut().find(|s| s.name == "execute")) {
                exe.name = format!("execute (first {n} queries)");
                acc.push(Series {
                    name: format!("simulate (same {n} queries)"),
                    ..series(&rep.rows, Mode::Execute, &first, |r| {
                        r.simulate_top1_same_queries.map(|t| 100.0 * t)
                    })
                });
            }
            acc
        };
        let hl: Vec<(String, f64)> = float_top1
            .filter(|_| conds.len() == 1)
            .map(|t| ("float".to_string(), 100.0 * t))
            .into_iter()
            .collect();
        let title = if conds.len() > 1 {
            "Top-1 accuracy per condition (quantized)".to_string()
        } else {
            format!("Top-1 accuracy ({first})")
        };
        line_plot(
            &dir.join("accuracy_vs_nbits"),
            &LinePlot {
                title: &title,
                x_label: "n_bits",
                y_label: "top-1 accuracy (%)",
                series: &acc,
                log_y: false,
                log_x: false,
                y_range: Some((0.0, 100.0)),
                hlines: &hl,
                x_names: &[],
            },
        )?;
        let lat: Vec<Series> = modes
            .iter()
            .map(|&m| series(&rep.rows, m, &first, |r| Some(r.latency_median_ms)))
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
                log_x: false,
                y_range: None,
                hlines: &[],
                x_names: &[],
            },
        )?;
        let kib = |b: Option<usize>| b.map(|b| b as f64 / 1024.0);
        let bytes = vec![
            Series {
                name: "upload".into(),
                ..series(&rep.rows, Mode::Execute, &first, |r| kib(r.bytes_up))
            },
            Series {
                name: "download".into(),
                ..series(&rep.rows, Mode::Execute, &first, |r| kib(r.bytes_down))
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
                    log_x: false,
                    y_range: None,
                    hlines: &[],
                    x_names: &[],
                },
            )?;
        }
    }
    if conds.len() > 1 {
        // One line per (model, mode) across the conditions.
        let mut by_condition: Vec<Series> = Vec::new();
        for r in &rep.rows {
            let name = format!("{} {}", model_label(r), r.mode);
            let x = conds.iter().position(|c| c == &r.condition).unwrap_or(0) as f64;
            match by_condition.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push((x, 100.0 * r.top1)),
                None => by_condition.push(Series {
                    name,
                    points: vec![(x, 100.0 * r.top1)],
                }),
            }
        }
        line_plot(
            &dir.join("accuracy_by_condition"),
            &LinePlot {
                title: "Top-1 accuracy per query condition",
                x_label: "condition",
                y_label: "top-1 accuracy (%)",
                series: &by_condition,
                log_y: false,
                log_x: false,
                y_range: Some((0.0, 100.0)),
                hlines: &[],
                x_names: &conds,
            },
        )?;
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
    if let Some(l) = &rep.landmark {
        md += &format!(
            "Landmark baseline (Wang 2003, model `landmark`, mode clear, same queries): index of {} songs, {} hashes ({} distinct), {:.1} KiB, built in {:.1} s.\n\n",
            l.stats.songs,
            l.stats.hashes,
            l.stats.distinct_hashes,
            l.stats.bytes as f64 / 1024.0,
            l.build_seconds
        );
    }
    let ev = &config.evaluation;
    let decision = match ev.decision {
        crate::eval::Rule::Votes => format!("majority vote, unknown below {} votes", ev.min_votes),
        crate::eval::Rule::LogProbSum => "sum of the chunks' log-probabilities".to_string(),
    };
    let quant = format!(
        "Quantization: standardize_inputs {}, symmetric_weights {}.",
        config.quantization.standardize_inputs, config.quantization.symmetric_weights
    );
    let training = training_rows_line(config, rep.training_rows);
    let chunking = format!(
        "Training chunks: {} samples every {} samples.",
        config.features.chunk_samples, config.features.chunk_hop
    );
    md += &match ev.protocol {
        Protocol::Seed => format!(
            "Protocol `seed`: queries are the first {} s of each song, {decision}. {quant} {chunking} {training}\n\n## The seed's table\n\n{}",
            ev.query_seconds,
            seed_table(&rep.rows),
        ),
        Protocol::Robust => format!(
            "Protocol `robust`: {} s queries written by `fhe-shazam queries` (seed {}), {}; {decision}. {quant} {chunking} {training}\n\n## Conditions and what training saw\n\n{}\n## Top-1 per condition\n\n{}\n![accuracy by condition](accuracy_by_condition.png)\n",
            ev.query_seconds,
            ev.robust.seed,
            match ev.robust.held_out_from {
                Some(t) => format!("held-out split: models trained on the first {t} s of each song, queries drawn after it"),
                None => "queries drawn anywhere in the songs (training audio included)".to_string(),
            } + &ev.robust.gain_db.map_or(String::new(), |g| {
                format!(", every query recorded {g:+} dB (limited to full scale)")
            }),
            held_out_table(&ev.robust.conditions, &config.augmentation.copies),
            robust_table(&rep.rows),
        ),
    };
    if let Some(open) = &rep.open_set {
        md += &open_set_section(dir, config, open)?;
    }
    if let Some(extraction) = &rep.extraction {
        md += &extraction_section(dir, extraction)?;
    }
    md += &format!("\n## All results\n\n{}", full_table(&rep.rows));
    let refused = refused_notes(&rep.rows);
    if !refused.is_empty() {
        md += &format!("\nModels that cannot run under FHE (execute not possible):\n\n{refused}");
    }
    if let Some(r) = rep.rows.iter().find(|r| {
        r.mode == Mode::Execute && r.simulate_top1_same_queries.is_some_and(|s| s != r.top1)
    }) {
        md += &match config.evaluation.model_privacy {
            None => format!(
                "\n**FHE top-1 differs from simulate at n_bits {:?}.**\n",
                r.n_bits
            ),
            Some(p) => format!(
                "\nFHE top-1 differs from simulate at n_bits {:?}: with model privacy (λ = {}) the server draws its own flood, so the two decide on different draws of the rounding; every decrypted score was still within 2^ρ of the integer circuit's.\n",
                r.n_bits, p.flood_bits
            ),
        };
    } else if rep
        .rows
        .iter()
        .any(|r| r.mode == Mode::Execute && r.refused.is_none())
    {
        md += &match config.evaluation.model_privacy {
            None => "\nExecute mode: every decrypted score equalled the simulated integer circuit, so FHE accuracy equals simulate accuracy on the same queries.\n".to_string(),
            Some(p) => format!("\nExecute mode, with model privacy (λ = {}): every decrypted score was a multiple of 2^ρ less than 2^ρ from the integer circuit's; the flood is drawn afresh by the server, so FHE and simulate decide on different draws (their top-1 agreed on the same queries here).\n", p.flood_bits),
        };
    }
    if quantized {
        md += "\n![accuracy vs n_bits](accuracy_vs_nbits.png)\n";
    }
    let stages: Vec<String> = rep
        .stage_seconds
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect();
    if let Some((_, peak)) = rep.stage_peak_rss_mib.last() {
        md += &format!("\nPeak resident memory: {peak:.0} MiB.\n");
    }
    md += &format!(
        "\nStages: {}.\n\n{}Config: `config.toml` in this folder.\n",
        stages.join(", "),
        provenance.footer()
    );
    let summary = dir.join("summary.md");
    fsutil::write_atomic(&summary, md.as_bytes()).map_err(io(&summary))?;
    Ok(md)
}

/// The model-privacy section: top-1 per flood level and condition, and what the extraction
/// attack steals with each number of queries; writes `extraction.png`.
fn extraction_section(dir: &Path, ex: &ExtractionResult) -> Result<String, ReportError> {
    let level = |l: &ExtractionLine| match l.flood_bits {
        None => "plain".to_string(),
        Some(f) => format!("λ = {f}"),
    };
    let conds: Vec<String> = ex
        .lines
        .first()
        .map(|l| l.top1.iter().map(|(c, _)| c.clone()).collect())
        .unwrap_or_default();
    let mut accuracy = Table::new(
        ["n_bits", "protocol", "ρ"]
            .into_iter()
            .map(String::from)
            .chain(conds.iter().map(|c| format!("top-1 {c}")))
            .chain(["worst change vs plain".to_string()]),
    );
    let counts: Vec<usize> = ex
        .lines
        .first()
        .map(|l| l.attack.iter().map(|p| p.queries).collect())
        .unwrap_or_default();
    let mut attack = Table::new(
        ["n_bits", "protocol"]
            .into_iter()
            .map(String::from)
            .chain(counts.iter().map(|n| format!("{n} queries"))),
    );
    let mut open_set = Table::new(
        ["n_bits", "protocol"].into_iter().map(String::from).chain(
            conds
                .iter()
                .map(|c| format!("{c}: identified / false match")),
        ),
    );
    let mut series = Vec::new();
    for l in &ex.lines {
        if !l.open_set.is_empty() {
            open_set.row(
                [l.n_bits.to_string(), level(l)].into_iter().chain(
                    l.open_set
                        .iter()
                        .map(|(_, id, fm)| format!("{} / {}", pct(*id), pct(*fm))),
                ),
            );
        }
        let plain = ex
            .lines
            .iter()
            .find(|p| p.n_bits == l.n_bits && p.flood_bits.is_none());
        let worst = plain.map(|p| {
            l.top1
                .iter()
                .zip(&p.top1)
                .map(|((_, a), (_, b))| 100.0 * (a - b))
                .fold(f64::INFINITY, f64::min)
        });
        accuracy.row(
            [l.n_bits.to_string(), level(l), l.rounding_bits.to_string()]
                .into_iter()
                .chain(l.top1.iter().map(|(_, t)| pct(*t)))
                .chain([worst.map_or("–".into(), |w| format!("{w:+.2} pp"))]),
        );
        attack.row(
            [l.n_bits.to_string(), level(l)].into_iter().chain(
                l.attack
                    .iter()
                    .map(|p| format!("{:.2e} / {}", p.weight_error, pct(p.agreement))),
            ),
        );
        series.push(Series {
            name: format!("{} (n_bits {})", level(l), l.n_bits),
            points: l
                .attack
                .iter()
                .map(|p| (p.queries as f64, 100.0 * p.agreement))
                .collect(),
        });
    }
    line_plot(
        &dir.join("extraction"),
        &LinePlot {
            title: "Extraction attack: stolen model's top-1 agreement with the real one",
            x_label: "chosen queries",
            y_label: "agreement (%)",
            series: &series,
            log_y: false,
            log_x: true,
            y_range: Some((0.0, 100.0)),
            hlines: &[],
            x_names: &[],
        },
    )?;
    let open_set = if open_set.is_empty() {
        String::new()
    } else {
        format!("Open set under each flood level (simulate; the threshold calibrated again under each level on the calibration songs, as in the open-set section):\n\n{open_set}\n")
    };
    Ok(format!(
        "\n## Model privacy and the extraction attack\n\nCircuit `{}`. Model privacy re-randomises every reply with the client's public key, floods each score so two models whose scores agree give replies within 2^-λ statistical distance per score, and rounds the scores to multiples of 2^ρ. Top-1 is simulate mode (the flood drawn as the real replies draw it, seeded); \"plain\" is the protocol without the option.\n\n{accuracy}\n{open_set}The attack: a client sends chosen queries ({} row(s) each, uniform over the input range) and fits W by least squares on the scores it decrypts (simulated replies, as above). Each cell: relative error of the stolen weights ‖Ŵ − W‖/‖W‖ / share of the {} real queries' rows on which the stolen model's top-1 is the real model's.\n\n{attack}\n![extraction attack](extraction.png)\n",
        ex.circuit, ex.rows_per_query, ex.test_queries
    ))
}

/// "Training rows: N (…)": which copies they come from and what one row is.
fn training_rows_line(config: &ExperimentConfig, rows: usize) -> String {
    let aug = &config.augmentation;
    let mut parts = vec!["clean".to_string()];
    if !aug.copies.is_empty() {
        let copies: Vec<&str> = aug.copies.iter().map(|c| c.name()).collect();
        parts.push(format!("augmented copies: {}", copies.join(", ")));
    }
    if !aug.shifts.is_empty() {
        let shifts: Vec<String> = aug.shifts.iter().map(|s| s.to_string()).collect();
        parts.push(format!("copies shifted by {} chunk", shifts.join(", ")));
    }
    let kind = match (config.window_chunks(), &aug.windows) {
        (Some(j), Some(w)) => format!(
            "; each row the sum of {j} consecutive chunks, one every {} chunk(s)",
            w.stride
        ),
        _ => "; one row per chunk".to_string(),
    };
    format!("Training rows: {rows} ({}{kind}).", parts.join(" + "))
}

/// The open-set section of summary.md; writes open_set.csv and one DET plot per condition
/// (every model on the same catalogue and impostor queries).
fn open_set_section(
    dir: &Path,
    config: &ExperimentConfig,
    open: &crate::eval::OpenSetResult,
) -> Result<String, ReportError> {
    let target = config
        .evaluation
        .open_set
        .as_ref()
        .map_or(0.01, |o| o.false_match_rate);
    let plots = open_set_files(dir, open)?;
    Ok(format!(
        "\n## Open set: songs not in the catalogue\n\n{} catalogue songs; {} calibration songs and {} impostor songs kept out of training (drawn with seed {}). Each model's threshold is set on the calibration songs' queries so that at most {:.1} % of them are accepted in every condition; the false-match rate is measured on the impostor songs' queries. Quantized models are measured in simulate (FHE returns the same scores). Also in `open_set.csv`.\n\n{}\n{plots}",
        open.catalogue_songs,
        open.calibration_songs,
        open.impostor_songs,
        config.evaluation.open_set.as_ref().map_or(0, |o| o.seed),
        100.0 * target,
        open_set_table(&open.rows),
    ))
}

/// Writes `open_set.csv` and one DET plot per condition (`det_<condition>.png`, every model on
/// it) into `dir`; returns the plots' Markdown.
pub fn open_set_files(
    dir: &Path,
    open: &crate::eval::OpenSetResult,
) -> Result<String, ReportError> {
    write_csv(&dir.join("open_set.csv"), &open.rows)?;
    let mut conditions: Vec<&str> = Vec::new();
    for c in &open.det {
        if !conditions.contains(&c.condition.as_str()) {
            conditions.push(&c.condition);
        }
    }
    let mut plots = String::new();
    for condition in &conditions {
        // Rates of 0 cannot sit on a log axis: they are drawn at 0.1 %, the floor of the plot.
        let floor = 1e-3;
        let series: Vec<Series> = open
            .det
            .iter()
            .filter(|c| c.condition == *condition)
            .map(|c| Series {
                name: c.model.clone(),
                points: c
                    .points
                    .iter()
                    .map(|p| (100.0 * p.false_match.max(floor), 100.0 * p.miss.max(floor)))
                    .collect(),
            })
            .collect();
        let title = format!("DET: {condition} (catalogue vs impostor queries)");
        let stem = format!("det_{condition}");
        line_plot(
            &dir.join(&stem),
            &LinePlot {
                title: &title,
                x_label: "false-match rate (%, log)",
                y_label: "miss rate (%, log)",
                series: &series,
                log_y: true,
                log_x: true,
                y_range: Some((100.0 * floor, 100.0)),
                hlines: &[],
                x_names: &[],
            },
        )?;
        plots += &format!("![DET {condition}]({stem}.png)\n");
    }
    Ok(plots)
}
