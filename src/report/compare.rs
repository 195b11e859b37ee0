//! Several experiment reports side by side (`fhe-shazam compare`): one line per experiment,
//! one column per query condition — the ablation table of a sequence of configs.

use super::markdown::{pct, Table};
use super::plots::{line_plot, LinePlot, Series};
use super::schema::{ModelKind, ResultRow};
use super::tables::conditions;
use crate::dataset::Condition;
use crate::error::ReportError;
use crate::eval::Mode;
use crate::fsutil;
use std::path::{Path, PathBuf};

/// The rows of one report folder (its results.json).
#[derive(Debug, Clone)]
pub struct ReportRows {
    pub dir: PathBuf,
    /// The experiment's name (its config's `name`).
    pub name: String,
    pub rows: Vec<ResultRow>,
    /// The conditions of the experiment's training copies (config `augmentation.copies`).
    pub training: Vec<Condition>,
}

/// `dir/results.json` as written by `reproduce`: the experiment's name (its config's `name`)
/// and the part at JSON `pointer`, deserialised. Errors name the file.
pub(crate) fn read_results<T: serde::de::DeserializeOwned>(
    dir: &Path,
    pointer: &str,
) -> Result<(String, T), ReportError> {
    let path = dir.join("results.json");
    let bad = |reason: String| ReportError::Io {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    };
    let bytes = std::fs::read(&path).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let part = json
        .pointer(pointer)
        .ok_or_else(|| bad(format!("no {pointer}: not a reproduce report")))?;
    let part = T::deserialize(part).map_err(|e| bad(format!("{pointer}: {e}")))?;
    let name = json
        .pointer("/config/name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    Ok((name, part))
}

/// Reads the result rows of `dir/results.json` as written by `reproduce`.
pub fn read_report(dir: &Path) -> Result<ReportRows, ReportError> {
    let (name, rows) = read_results(dir, "/reproduction/rows")?;
    // Reports from before augmentation existed have no copies: nothing was seen.
    let training = read_results(dir, "/config/augmentation/copies")
        .map(|(_, t)| t)
        .unwrap_or_default();
    Ok(ReportRows {
        dir: dir.to_path_buf(),
        name,
        rows,
        training,
    })
}

/// `cell` marked with `*` when an algorithm of `condition` also made a training copy.
fn marked(rep: &ReportRows, condition: &str, cell: String) -> String {
    let seen = condition
        .parse::<Condition>()
        .is_ok_and(|c| !c.seen_in(&rep.training).is_empty());
    if seen && cell != "-" {
        format!("{cell} *")
    } else {
        cell
    }
}

/// "97.25 %" or "-" for a missing row.
pub(crate) fn cell(row: Option<&ResultRow>) -> String {
    row.map_or("-".into(), |r| pct(r.top1))
}

/// The quantized row of `mode` with the most bits (the headline model of a report).
pub(crate) fn quantized(rows: &[ResultRow], condition: &str, mode: Mode) -> Option<ResultRow> {
    rows.iter()
        .filter(|r| r.condition == condition && r.mode == mode && r.n_bits.is_some())
        .filter(|r| r.refused.is_none())
        .max_by_key(|r| r.n_bits)
        .cloned()
}

/// The clear-mode row of `model` (float, landmark) for `condition`.
pub(crate) fn clear_row<'a>(
    rows: &'a [ResultRow],
    condition: &str,
    model: ModelKind,
) -> Option<&'a ResultRow> {
    rows.iter()
        .find(|r| r.condition == condition && r.model == model && r.mode == Mode::Clear)
}

/// Markdown: top-1 per condition of the float model (clear) and of the quantized model
/// (simulate = FHE on every query), one line per report, plus whether FHE equalled simulate,
/// and the landmark baseline's line per report that ran it.
pub fn ablation_table(reports: &[ReportRows]) -> String {
    let all: Vec<ResultRow> = reports.iter().flat_map(|r| r.rows.clone()).collect();
    let conds = conditions(&all);
    // One line per report, one cell per condition.
    let table = |reports: &[&ReportRows], cell_of: &dyn Fn(&[ResultRow], &str) -> String| {
        let mut t = Table::new(std::iter::once("experiment".to_string()).chain(conds.clone()));
        for rep in reports {
            t.row(
                std::iter::once(rep.name.clone())
                    .chain(conds.iter().map(|c| marked(rep, c, cell_of(&rep.rows, c)))),
            );
        }
        t.to_string()
    };
    let every: Vec<&ReportRows> = reports.iter().collect();
    let mut md = String::from(
        "`*`: an algorithm of this condition also made the experiment's training copies, so the \
         cell is not a held-out figure (each report's summary.md lists which).\n\n\
         ### Float model, clear\n\n",
    );
    md += &table(&every, &|rows, c| {
        cell(clear_row(rows, c, ModelKind::Float))
    });
    md += "\n### Quantized model (largest n_bits), simulate = FHE on every query\n\n";
    md += &table(&every, &|rows, c| {
        cell(quantized(rows, c, Mode::Simulate).as_ref())
    });
    let fhe_checks: Vec<(String, ResultRow)> = reports
        .iter()
        .flat_map(|rep| {
            conds
                .iter()
                .filter_map(|c| quantized(&rep.rows, c, Mode::Execute))
                .map(|e| (rep.name.clone(), e))
        })
        .collect();
    let differing: Vec<String> = fhe_checks
        .iter()
        .filter(|(_, e)| e.simulate_top1_same_queries.is_some_and(|s| s != e.top1))
        .map(|(n, e)| format!("{n}/{}", e.condition))
        .collect();
    if !fhe_checks.is_empty() {
        let queries: usize = fhe_checks.iter().map(|(_, e)| e.queries).sum();
        md += &if differing.is_empty() {
            format!(
                "\nReal FHE (execute) ran on {queries} queries in all ({} experiment × condition cells): \
                 its top-1 equals simulate's on the same queries in every cell.\n",
                fhe_checks.len()
            )
        } else {
            format!(
                "\n**FHE top-1 differs from simulate in: {}.**\n",
                differing.join(", ")
            )
        };
    }
    let with_landmark: Vec<&ReportRows> = reports
        .iter()
        .filter(|r| r.rows.iter().any(|row| row.model == ModelKind::Landmark))
        .collect();
    if !with_landmark.is_empty() {
        md += "\n### Landmark (Wang 2003), clear\n\n";
        md += &table(&with_landmark, &|rows, c| {
            cell(clear_row(rows, c, ModelKind::Landmark))
        });
    }
    md
}

/// Writes the ablation table to `out` (Markdown) and a plot beside it (`out` with the
/// extension replaced by .png/.svg): top-1 of the quantized model per condition, one line per
/// report. Returns the Markdown.
pub fn write_comparison(reports: &[ReportRows], out: &Path) -> Result<String, ReportError> {
    let mut md = String::from("# Ablation\n\n");
    md += &ablation_table(reports);
    md += "\nReports:\n\n";
    for r in reports {
        md += &format!("- `{}`: {}\n", r.name, r.dir.display());
    }
    let all: Vec<ResultRow> = reports.iter().flat_map(|r| r.rows.clone()).collect();
    let conds = conditions(&all);
    let series: Vec<Series> = reports
        .iter()
        .map(|rep| Series {
            name: rep.name.clone(),
            points: conds
                .iter()
                .enumerate()
                .filter_map(|(x, c)| {
                    let r = quantized(&rep.rows, c, Mode::Simulate)
                        .or_else(|| rep.rows.iter().find(|r| &r.condition == c).cloned())?;
                    Some((x as f64, 100.0 * r.top1))
                })
                .collect(),
        })
        .collect();
    let stem = out.with_extension("");
    line_plot(
        &stem,
        &LinePlot {
            title: "Top-1 per condition (quantized model, simulate = FHE)",
            x_label: "condition",
            y_label: "top-1 accuracy (%)",
            series: &series,
            log_y: false,
            log_x: false,
            y_range: Some((0.0, 100.0)),
            hlines: &[],
            x_names: &conds,
        },
    )?;
    let name = stem.file_name().unwrap_or_default().to_string_lossy();
    md += &format!("\n![ablation]({name}.png)\n");
    fsutil::write_atomic(out, md.as_bytes()).map_err(super::io(out))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        condition: &str,
        model: ModelKind,
        n_bits: Option<u32>,
        mode: Mode,
        top1: f64,
    ) -> ResultRow {
        crate::report::schema::test_row(condition, model, n_bits, mode, top1)
    }

    #[test]
    fn float_and_landmark_tables_pick_their_own_model() {
        // The landmark row comes first: the float table must still show the float model.
        let with = ReportRows {
            dir: "a".into(),
            name: "with".into(),
            rows: vec![
                row("aligned", ModelKind::Landmark, None, Mode::Clear, 0.25),
                row("aligned", ModelKind::Float, None, Mode::Clear, 0.5),
                row(
                    "aligned",
                    ModelKind::Quantized,
                    Some(8),
                    Mode::Simulate,
                    0.75,
                ),
                row("noise10", ModelKind::Float, None, Mode::Clear, 0.5),
                row("babble10", ModelKind::Float, None, Mode::Clear, 0.5),
            ],
            training: vec![Condition::Noise10],
        };
        let without = ReportRows {
            dir: "b".into(),
            name: "without".into(),
            rows: vec![row("aligned", ModelKind::Float, None, Mode::Clear, 1.0)],
            training: vec![],
        };
        let md = ablation_table(&[with.clone(), without.clone()]);
        let float = md.split("### Quantized").next().unwrap();
        assert!(float.contains("| with | 50.00 % |"), "{md}");
        // noise10 was a training copy: not a held-out cell; babble10's noise never was.
        assert!(float.contains("| 50.00 % * | 50.00 % |"), "{md}");
        let landmark = md.split("### Landmark (Wang 2003), clear").nth(1).unwrap();
        assert!(landmark.contains("| with | 25.00 % |"), "{md}");
        assert!(!landmark.contains("without"), "{md}");
        assert!(!ablation_table(&[without]).contains("Landmark"));
    }

    #[test]
    fn missing_or_foreign_reports_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_report(dir.path()).unwrap_err().to_string();
        assert!(err.contains("results.json"), "{err}");
        std::fs::write(dir.path().join("results.json"), b"{\"rows\": []}").unwrap();
        let err = read_report(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("not a reproduce report") && err.contains("results.json"),
            "{err}"
        );
    }
}
