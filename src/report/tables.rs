//! Result tables: results.csv (one row per model × mode), results.json, and summary.md in the
//! seed's table layout next to its published figures.

use super::io;
use super::markdown::{opt, or_dash, pct, Table};
use super::schema::ResultRow;
use crate::dataset::degrade::Generator;
use crate::dataset::Condition;
use crate::error::ReportError;
use crate::eval::Mode;
use crate::fhe::{BudgetLine, FhePlan};
use crate::fsutil;
use std::path::Path;

/// Zama's published seed figures (400 FMA songs, Concrete ML n_bits 8; docs/ARCHITECTURE.md §2).
pub const SEED_ACCURACY_CLEAR: f64 = 0.9725;
pub const SEED_ACCURACY_FHE: f64 = 0.9725;
pub const SEED_ACCURACY_SKLEARN: f64 = 0.9775;
pub const SEED_MS_CLEAR: f64 = 0.586;
pub const SEED_MS_FHE: f64 = 318.6;
pub const SEED_MS_SKLEARN: f64 = 0.174;

/// Writes `rows` as CSV (empty cells for absent values), atomically.
pub fn write_csv<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<(), ReportError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    for r in rows {
        out.serialize(r)
            .map_err(|e| io(path)(std::io::Error::other(e)))?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| io(path)(std::io::Error::other(e.into_error())))?;
    fsutil::write_atomic(path, &bytes).map_err(io(path))
}

/// What a table shows for an execute row the FHE planner refused (the reason is listed below
/// the table, see [`refused_notes`]).
pub const NOT_POSSIBLE: &str = "not possible under FHE";

/// One line per refused execute row: which model and why it cannot run under FHE.
pub fn refused_notes(rows: &[ResultRow]) -> String {
    rows.iter()
        .filter_map(|r| {
            let why = r.refused.as_ref()?;
            Some(format!("- {} {}: {why}\n", r.condition, model_label(r)))
        })
        .collect()
}

fn find(rows: &[ResultRow], n_bits: Option<u32>, mode: Mode) -> Option<&ResultRow> {
    rows.iter().find(|r| r.n_bits == n_bits && r.mode == mode)
}

/// The seed's table (rows Accuracy, Accuracy (FHE), Inference Time, Inference Time (FHE),
/// n_bits; one column per model), with the seed's published column first.
pub fn seed_table(rows: &[ResultRow]) -> String {
    let mut bits: Vec<u32> = rows.iter().filter_map(|r| r.n_bits).collect();
    bits.dedup();
    let mut header = vec![
        String::new(),
        "seed: Concrete ML (published)".into(),
        "seed: sklearn (published)".into(),
        "ours: float".into(),
    ];
    header.extend(bits.iter().map(|n| format!("ours: n_bits {n}")));
    let mut table = Table::new(header);
    let float = find(rows, None, Mode::Clear);
    let cell =
        |r: Option<&ResultRow>, f: &dyn Fn(&ResultRow) -> String| r.map_or("-".to_string(), f);
    let full = rows.iter().map(|x| x.queries).max().unwrap_or(0);
    let acc = |r: &ResultRow| {
        if r.refused.is_some() {
            NOT_POSSIBLE.to_string()
        } else if r.queries == full {
            pct(r.top1)
        } else {
            format!("{} ({} queries)", pct(r.top1), r.queries)
        }
    };
    let ms = |r: &ResultRow| match r.refused {
        Some(_) => NOT_POSSIBLE.to_string(),
        None => format!("{:.3} ms", r.latency_median_ms),
    };
    let mut line =
        |label: &str, seed: String, sk: String, fl: String, per: &dyn Fn(u32) -> String| {
            let mut cells = vec![label.to_string(), seed, sk, fl];
            cells.extend(bits.iter().map(|&n| per(n)));
            table.row(cells);
        };
    let clear_of =
        |n: u32| find(rows, Some(n), Mode::Simulate).or(find(rows, Some(n), Mode::Clear));
    line(
        "Accuracy",
        pct(SEED_ACCURACY_CLEAR),
        pct(SEED_ACCURACY_SKLEARN),
        cell(float, &acc),
        &|n| cell(clear_of(n), &acc),
    );
    line(
        "Accuracy (FHE)",
        pct(SEED_ACCURACY_FHE),
        "-".into(),
        "-".into(),
        &|n| cell(find(rows, Some(n), Mode::Execute), &acc),
    );
    line(
        "Inference Time",
        format!("{SEED_MS_CLEAR} ms"),
        format!("{SEED_MS_SKLEARN} ms"),
        cell(float, &ms),
        &|n| cell(clear_of(n), &ms),
    );
    line(
        "Inference Time (FHE)",
        format!("{SEED_MS_FHE} ms"),
        "-".into(),
        "-".into(),
        &|n| cell(find(rows, Some(n), Mode::Execute), &ms),
    );
    line("n_bits", "8".into(), "-".into(), "-".into(), &|n| {
        n.to_string()
    });
    table.to_string()
}

/// "float", "n_bits 8", … : the model part of a row's label.
pub fn model_label(r: &ResultRow) -> String {
    match r.n_bits {
        Some(n) => format!("n_bits {n}"),
        None => r.model.to_string(),
    }
}

/// The conditions of `rows`, in first-seen order.
pub fn conditions(rows: &[ResultRow]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        if !out.contains(&r.condition) {
            out.push(r.condition.clone());
        }
    }
    out
}

/// Which algorithms made each query condition and whether the model's training copies used
/// any of them: a condition is **held out** only when none of its algorithms made a training
/// copy, and only held-out columns measure robustness to degradations nobody tuned to.
pub fn held_out_table(conditions: &[Condition], training: &[Condition]) -> String {
    let mut t = Table::new(["condition", "algorithms", "in training"].map(String::from));
    for &c in conditions {
        let seen = c.seen_in(training);
        let names = |g: &[Generator]| {
            g.iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.row([
            c.name().to_string(),
            names(&c.generators()),
            if c.generators().is_empty() {
                "- (clean)".to_string()
            } else if seen.is_empty() {
                "**held out**".to_string()
            } else {
                format!("seen: {}", names(&seen))
            },
        ]);
    }
    t.to_string()
}

/// Top-1 per condition: one line per (model, mode), one column per condition. Execute cells
/// on a subset say how many queries they ran and simulate's top-1 on the same queries.
pub fn robust_table(rows: &[ResultRow]) -> String {
    let conds = conditions(rows);
    let mut table = Table::new(
        ["model".to_string(), "mode".to_string()]
            .into_iter()
            .chain(conds.clone()),
    );
    let mut keys: Vec<(String, Mode)> = Vec::new();
    for r in rows {
        let k = (model_label(r), r.mode);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let full = rows.iter().map(|r| r.queries).max().unwrap_or(0);
    for (label, mode) in keys {
        let mut cells = vec![label.clone(), mode.to_string()];
        for c in &conds {
            cells.push(
                rows.iter()
                    .find(|r| &r.condition == c && model_label(r) == label && r.mode == mode)
                    .map_or("-".to_string(), |r| match r.simulate_top1_same_queries {
                        Some(sim) if r.queries < full => format!(
                            "{} (simulate {} on these {})",
                            pct(r.top1),
                            pct(sim),
                            r.queries
                        ),
                        _ => pct(r.top1),
                    }),
            );
        }
        table.row(cells);
    }
    table.to_string()
}

/// Every row: model, mode, accuracy, latency and FHE costs.
pub fn full_table(rows: &[ResultRow]) -> String {
    let kib = |b: Option<usize>| opt(b.map(|b| b as f64 / 1024.0), 2);
    let mut table = Table::new([
        "condition",
        "model",
        "n_bits",
        "acc. bits",
        "mode",
        "queries",
        "top-1",
        "top-3",
        "unknown",
        "chunk acc.",
        "ms/query (median)",
        "p95",
        "encrypt ms",
        "server ms",
        "decrypt ms",
        "up KiB",
        "down KiB",
    ]);
    for r in rows {
        if r.refused.is_some() {
            let mut cells = vec![
                r.condition.clone(),
                r.model.to_string(),
                or_dash(r.n_bits),
                or_dash(r.accumulator_bits),
                r.mode.to_string(),
                "0".into(),
                NOT_POSSIBLE.into(),
            ];
            cells.resize(17, "-".into());
            table.row(cells);
            continue;
        }
        table.row([
            r.condition.clone(),
            r.model.to_string(),
            or_dash(r.n_bits),
            or_dash(r.accumulator_bits),
            r.mode.to_string(),
            r.queries.to_string(),
            pct(r.top1),
            pct(r.top3),
            pct(r.unknown_rate),
            pct(r.chunk_accuracy),
            format!("{:.3}", r.latency_median_ms),
            format!("{:.3}", r.latency_p95_ms),
            opt(r.encrypt_ms, 2),
            opt(r.server_ms, 2),
            opt(r.decrypt_ms, 2),
            kib(r.bytes_up),
            kib(r.bytes_down),
        ]);
    }
    table.to_string()
}

/// The noise budget of each planned layer: bound, message bits, noise components (log2 σ)
/// under the base parameter set, failure probability, verdict, and the smallest reply width
/// the planner widens to.
pub fn noise_budget_table(lines: &[BudgetLine]) -> String {
    let mut table = Table::new([
        "layer".to_string(),
        "B".into(),
        "p".into(),
        "log2 Δ".into(),
        "log2 σ fresh".into(),
        "log2 σ FFT".into(),
        format!("log2 σ switch ({} b)", FhePlan::BASE.reply_modulus_log.0),
        "log2 σ total".into(),
        "log2 P(fail)".into(),
        "verdict".into(),
        "min reply bits".into(),
    ]);
    for l in lines {
        let b = &l.base;
        let log2_sigma = |variance: f64| format!("{:.1}", variance.log2() / 2.0);
        table.row([
            l.label.clone(),
            b.bound.to_string(),
            b.message_bits.to_string(),
            b.delta_log2.to_string(),
            log2_sigma(b.fresh_variance),
            log2_sigma(b.fft_variance),
            log2_sigma(b.modswitch_variance),
            log2_sigma(b.total_variance()),
            format!("{:.1}", b.log2_failure),
            if b.check().is_ok() { "ok" } else { "REFUSED" }.into(),
            l.min_reply_bits
                .map_or_else(|| "none".to_string(), |w| w.to_string()),
        ]);
    }
    table.to_string()
}

/// The open-set table: per condition, each model's identification rate, misidentification and
/// false-match rate at its calibrated threshold, next to its closed-set top-1.
pub fn open_set_table(rows: &[crate::eval::OpenSetRow]) -> String {
    let pct = |v: f64| format!("{:.2} %", 100.0 * v);
    let mut md = String::from(
        "| condition | model | threshold (score) | identification | misidentified | false match | closed-set top-1 | queries (catalogue / impostor) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        md += &format!(
            "| {} | {} ({}) | {} ({}) | {} | {} | {} | {} | {} / {} |\n",
            r.condition,
            r.model,
            r.mode,
            // −∞: the rule's own "unknown" already keeps the calibration false matches in bounds.
            if r.threshold.is_finite() {
                format!("{:.4}", r.threshold)
            } else {
                "none needed".to_string()
            },
            r.score.name(),
            pct(r.identification),
            pct(r.misidentification),
            pct(r.false_match),
            pct(r.closed_set_top1),
            r.catalogue_queries,
            r.impostor_queries
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::schema::ModelKind;

    fn r(n_bits: Option<u32>, mode: Mode, top1: f64, queries: usize) -> ResultRow {
        ResultRow {
            experiment: "t".into(),
            dataset: "d".into(),
            condition: "seed".into(),
            model: if n_bits.is_some() {
                ModelKind::Quantized
            } else {
                ModelKind::Float
            },
            n_bits,
            weight_bits: n_bits,
            standardize_inputs: false,
            accumulator_bits: n_bits.map(|n| 2 * n + 2),
            mode,
            queries,
            top1,
            top3: top1,
            unknown_rate: 0.0,
            chunk_accuracy: 0.5,
            latency_median_ms: 1.0,
            latency_p95_ms: 2.0,
            encrypt_ms: (mode == Mode::Execute).then_some(0.7),
            server_ms: None,
            decrypt_ms: None,
            bytes_up: (mode == Mode::Execute).then_some(16_467),
            bytes_down: None,
            simulate_top1_same_queries: None,
            refused: None,
        }
    }

    #[test]
    fn seed_table_has_the_seed_rows_and_our_columns() {
        let rows = [
            r(None, Mode::Clear, 0.97, 400),
            r(Some(8), Mode::Simulate, 0.965, 400),
            r(Some(8), Mode::Execute, 0.96, 100),
        ];
        let t = seed_table(&rows);
        for needle in [
            "| Accuracy |",
            "| Accuracy (FHE) |",
            "| Inference Time (FHE) |",
            "| n_bits | 8 |",
            "ours: n_bits 8",
            "97.25 %",
            "96.50 %",
            "96.00 % (100 queries)",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
    }

    #[test]
    fn csv_has_a_header_and_empty_cells_for_absent_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        write_csv(
            &path,
            &[
                r(None, Mode::Clear, 0.9, 4),
                r(Some(8), Mode::Execute, 0.8, 4),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("experiment,dataset,condition,model,n_bits,"));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("t,d,seed,float,,,false,,clear,4,0.9,"));
        assert!(lines.next().unwrap().contains(",execute,4,0.8,"));
    }

    #[test]
    fn robust_table_has_a_column_per_condition_and_marks_subsets() {
        let mut rows = Vec::new();
        for (c, t) in [("offset", 0.9), ("noise10", 0.5)] {
            for mut row in [
                r(None, Mode::Clear, t, 400),
                r(Some(8), Mode::Simulate, t - 0.01, 400),
                r(Some(8), Mode::Execute, t - 0.02, 50),
            ] {
                row.condition = c.into();
                row.simulate_top1_same_queries = (row.mode == Mode::Execute).then_some(t - 0.02);
                rows.push(row);
            }
        }
        let t = robust_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| model | mode | offset | noise10 |");
        assert_eq!(lines.len(), 5, "{t}");
        assert_eq!(lines[2], "| float | clear | 90.00 % | 50.00 % |");
        assert!(
            lines[4].starts_with("| n_bits 8 | execute | 88.00 % (simulate 88.00 % on these 50) |"),
            "{t}"
        );
    }

    #[test]
    fn noise_budget_table_has_one_row_per_layer() {
        use crate::fhe::{budget_lines, IntegerLinear};
        use ndarray::{Array1, Array2};
        let layer = |w: i64, x: i64| IntegerLinear {
            weights: Array2::from_elem((20, 10), w),
            bias: Array1::zeros(10),
            input_min: -x,
            input_max: x - 1,
        };
        let (a, b) = (layer(3, 4), layer(4095, 2048));
        let lines = budget_lines(&[("a", &a), ("b", &b)], 30, crate::fhe::Circuit::Chunks).unwrap();
        let table = noise_budget_table(&lines);
        assert_eq!(table.lines().count(), 4);
        assert!(
            table.contains("| a |") && table.contains("| ok |"),
            "{table}"
        );
        assert!(
            table.contains("REFUSED") && table.contains("log2 σ switch (32 b)"),
            "{table}"
        );
    }
}
