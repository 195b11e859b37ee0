//! The scale experiment's report (`fhe-shazam scale-report`): one `reproduce` report per
//! catalog size, read back and set against the number of songs — accuracy per condition,
//! FHE latency and bytes per query, training time and memory, the landmark index.
//!
//! Reports are grouped into families by name: `scale-c400` and `scale-c8000` are two sizes of
//! the family `scale`; every family is one line in each plot.

use super::compare::{cell, clear_row, quantized, read_results};
use super::markdown::{opt, or_dash, Table};
use super::plots::{line_plot, LinePlot, Series};
use super::schema::{ModelKind, Reproduction, ResultRow};
use super::tables::conditions;
use crate::error::ReportError;
use crate::eval::open_set::OpenSetRow;
use crate::eval::Mode;
use crate::fsutil;
use std::path::{Path, PathBuf};

/// One experiment report at one catalog size.
#[derive(Debug, Clone)]
pub struct ScalePoint {
    pub dir: PathBuf,
    /// The experiment's name (config `name`).
    pub name: String,
    pub reproduction: Reproduction,
}

impl ScalePoint {
    /// The name without its size suffix: `scale-c2000` → `scale`.
    pub fn family(&self) -> &str {
        family(&self.name)
    }

    fn songs(&self) -> f64 {
        self.reproduction.songs as f64
    }

    fn rows(&self) -> &[ResultRow] {
        &self.reproduction.rows
    }

    /// The real-FHE row that carries the costs: the quantized model's execute row of the
    /// first condition that ran one.
    fn fhe(&self) -> Option<ResultRow> {
        conditions(self.rows())
            .iter()
            .find_map(|c| quantized(self.rows(), c, Mode::Execute))
    }

    fn catalogue_songs(&self) -> Option<usize> {
        self.reproduction
            .open_set
            .as_ref()
            .map(|o| o.catalogue_songs)
    }

    /// The open-set row of the quantized model (simulate, the FHE circuit's scores) or of the
    /// landmark baseline in `condition`.
    fn open_set_row(&self, condition: &str, landmark: bool) -> Option<&OpenSetRow> {
        let open = self.reproduction.open_set.as_ref()?;
        open.rows.iter().find(|r| {
            r.condition == condition
                && if landmark {
                    r.model == "landmark"
                } else {
                    r.model.starts_with("n_bits") && r.mode == Mode::Simulate
                }
        })
    }

    fn landmark_query_ms(&self) -> Option<f64> {
        let rows: Vec<f64> = self
            .rows()
            .iter()
            .filter(|r| r.model == ModelKind::Landmark)
            .map(|r| r.latency_median_ms)
            .collect();
        (!rows.is_empty()).then(|| rows.iter().sum::<f64>() / rows.len() as f64)
    }

    fn landmark_index_mib(&self) -> Option<f64> {
        let index = self.reproduction.landmark.as_ref()?;
        Some(index.stats.bytes as f64 / (1024.0 * 1024.0))
    }

    fn train_seconds(&self) -> Option<f64> {
        self.reproduction.fit.as_ref().map(|f| f.seconds)
    }

    /// Peak resident memory up to the end of training (loading, extraction, training).
    fn train_peak_mib(&self) -> Option<f64> {
        let peaks = &self.reproduction.stage_peak_rss_mib;
        peaks
            .iter()
            .find(|(stage, _)| stage == "train")
            .or(peaks.last())
            .map(|(_, mib)| *mib)
    }
}

/// `name` without a trailing `-c<digits>`.
pub fn family(name: &str) -> &str {
    match name.rsplit_once("-c") {
        Some((head, size)) if !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    }
}

/// Reads `dir/results.json` as written by `reproduce`.
pub fn read_scale_point(dir: &Path) -> Result<ScalePoint, ReportError> {
    let (name, reproduction) = read_results(dir, "/reproduction")?;
    Ok(ScalePoint {
        dir: dir.to_path_buf(),
        name,
        reproduction,
    })
}

fn kib(bytes: Option<usize>) -> Option<f64> {
    bytes.map(|b| b as f64 / 1024.0)
}

/// Markdown: accuracy per condition (float clear, quantized simulate = FHE, landmark), then
/// costs (training, memory, FHE per query, landmark index), one line per report.
pub fn scale_tables(points: &[ScalePoint]) -> String {
    let all: Vec<ResultRow> = points.iter().flat_map(|p| p.rows().to_vec()).collect();
    let conds = conditions(&all);
    let models = [
        "float (clear)",
        "n_bits max (simulate = FHE)",
        "landmark (clear)",
    ];
    let mut accuracy = per_condition_table("songs", &conds, &models);
    for p in points {
        let mut cells = vec![p.name.clone(), p.reproduction.songs.to_string()];
        for c in &conds {
            cells.extend([
                cell(clear_row(p.rows(), c, ModelKind::Float)),
                cell(quantized(p.rows(), c, Mode::Simulate).as_ref()),
                cell(clear_row(p.rows(), c, ModelKind::Landmark)),
            ]);
        }
        accuracy.row(cells);
    }
    let mut md = format!("### Top-1 accuracy\n\n{accuracy}");
    md += &open_set_table(points, &conds);

    let mut training = Table::new([
        "experiment",
        "songs",
        "feature rows",
        "training rows (with augmented copies)",
        "training (s)",
        "L-BFGS iterations",
        "converged",
        "peak memory to end of training (MiB)",
        "peak memory (MiB)",
    ]);
    for p in points {
        let fit = p.reproduction.fit.as_ref();
        training.row([
            p.name.clone(),
            p.reproduction.songs.to_string(),
            p.reproduction.feature_rows.to_string(),
            p.reproduction.training_rows.to_string(),
            opt(p.train_seconds(), 1),
            or_dash(fit.and_then(|f| f.iterations)),
            or_dash(fit.map(|f| f.converged)),
            opt(p.train_peak_mib(), 0),
            opt(p.reproduction.stage_peak_rss_mib.last().map(|s| s.1), 0),
        ]);
    }
    md += &format!("\n### Training and memory\n\n{training}");

    let mut per_query = Table::new([
        "experiment",
        "songs",
        "FHE queries",
        "encrypt (ms)",
        "server (ms)",
        "decrypt (ms)",
        "client + server (ms)",
        "upload (KiB)",
        "reply (KiB)",
        "landmark index (MiB)",
        "landmark query (ms)",
    ]);
    for p in points {
        let fhe = p.fhe();
        let f = fhe.as_ref();
        let total = f.and_then(|r| Some(r.encrypt_ms? + r.server_ms? + r.decrypt_ms?));
        per_query.row([
            p.name.clone(),
            p.reproduction.songs.to_string(),
            or_dash(f.map(|r| r.queries)),
            opt(f.and_then(|r| r.encrypt_ms), 2),
            opt(f.and_then(|r| r.server_ms), 2),
            opt(f.and_then(|r| r.decrypt_ms), 2),
            opt(total, 2),
            opt(kib(f.and_then(|r| r.bytes_up)), 1),
            opt(kib(f.and_then(|r| r.bytes_down)), 1),
            opt(p.landmark_index_mib(), 1),
            opt(p.landmark_query_ms(), 2),
        ]);
    }
    md += &format!(
        "\n### Per query: real FHE (medians over the executed queries) and the landmark index\n\n{per_query}"
    );
    let executed: Vec<ResultRow> = points
        .iter()
        .flat_map(|p| p.rows().iter().filter(|r| r.mode == Mode::Execute).cloned())
        .collect();
    if !executed.is_empty() {
        let differing = executed
            .iter()
            .filter(|r| r.simulate_top1_same_queries.is_some_and(|s| s != r.top1))
            .count();
        let queries: usize = executed.iter().map(|r| r.queries).sum();
        md += &if differing == 0 {
            format!(
                "\nReal FHE ran on {queries} queries in all: its top-1 equals simulate's on the same queries in every report and condition.\n"
            )
        } else {
            format!(
                "\n**FHE top-1 differs from simulate in {differing} report × condition cells.**\n"
            )
        };
    }
    md
}

/// A table with columns experiment, `size`, then one per condition and model.
fn per_condition_table(size: &str, conds: &[String], models: &[&str]) -> Table {
    Table::new(
        ["experiment".to_string(), size.to_string()]
            .into_iter()
            .chain(
                conds
                    .iter()
                    .flat_map(|c| models.iter().map(move |m| format!("{c}: {m}"))),
            ),
    )
}

/// The open-set figures of the reports that ran the protocol: per condition, identification
/// and false-match rate at each model's calibrated threshold, for the quantized model
/// (simulate = FHE) and the landmark baseline. Empty when no report ran it.
fn open_set_table(points: &[ScalePoint], conds: &[String]) -> String {
    let open: Vec<&ScalePoint> = points
        .iter()
        .filter(|p| p.reproduction.open_set.is_some())
        .collect();
    if open.is_empty() {
        return String::new();
    }
    let models = ["n_bits max (FHE)", "landmark"];
    let mut table = per_condition_table("catalogue songs", conds, &models);
    for p in open {
        let mut cells = vec![p.name.clone(), or_dash(p.catalogue_songs())];
        for c in conds {
            for landmark in [false, true] {
                cells.push(match p.open_set_row(c, landmark) {
                    Some(r) => format!(
                        "{:.2} % / {:.2} %",
                        100.0 * r.identification,
                        100.0 * r.false_match
                    ),
                    None => "-".into(),
                });
            }
        }
        table.row(cells);
    }
    format!(
        "\n### Open set: identified / false matches at the calibrated threshold\n\nEach cell: catalogue queries answered with their own song / impostor queries (songs outside the catalogue) answered with any song, at the threshold calibrated on other songs kept out (`[evaluation.open_set]`).\n\n{table}"
    )
}

/// One line per family: `value(point)` against the number of songs.
fn by_family(
    points: &[ScalePoint],
    label: &str,
    value: impl Fn(&ScalePoint) -> Option<f64>,
) -> Vec<Series> {
    let mut families: Vec<&str> = Vec::new();
    for p in points {
        if !families.contains(&p.family()) {
            families.push(p.family());
        }
    }
    families
        .into_iter()
        .map(|fam| Series {
            name: if label.is_empty() {
                fam.to_string()
            } else {
                format!("{fam}: {label}")
            },
            points: points
                .iter()
                .filter(|p| p.family() == fam)
                .filter_map(|p| Some((p.songs(), value(p)?)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// Writes the tables to `out` (Markdown) and the plots beside it: `<stem>_accuracy_<condition>`,
/// `<stem>_fhe_latency`, `<stem>_bytes`, `<stem>_training`, `<stem>_memory` (.png, .svg), all
/// against the catalog size on a log axis. Points are sorted by family, then size.
pub fn write_scale_report(points: &[ScalePoint], out: &Path) -> Result<String, ReportError> {
    let mut points = points.to_vec();
    points.sort_by(|a, b| {
        (a.family(), a.reproduction.songs).cmp(&(b.family(), b.reproduction.songs))
    });
    let points = &points[..];
    let stem = out.with_extension("");
    let base = stem.file_name().unwrap_or_default().to_string_lossy();
    // Every plot: the catalog size on a log x axis, y fitted to the data (not 0–100 for the
    // accuracy: the aligned curves differ by a few points only).
    let plot = |suffix: &str, title: &str, y_label: &str, series: &[Series], log_y: bool| {
        let name = format!("{base}_{suffix}");
        let lp = LinePlot {
            title,
            x_label: "catalog size (songs, log scale)",
            y_label,
            series,
            log_y,
            log_x: true,
            y_range: None,
            hlines: &[],
            x_names: &[],
        };
        line_plot(&stem.with_file_name(&name), &lp)?;
        Ok::<_, ReportError>(format!("![{suffix}]({name}.png)\n"))
    };

    let mut md = String::from("# Scale: catalog size\n\n");
    md += &scale_tables(points);
    md += "\n## Plots\n\n";
    let all: Vec<ResultRow> = points.iter().flat_map(|p| p.rows().to_vec()).collect();
    for c in conditions(&all) {
        let mut series = by_family(points, "float", |p| {
            clear_row(p.rows(), &c, ModelKind::Float).map(|r| 100.0 * r.top1)
        });
        series.extend(by_family(points, "n_bits max, FHE", |p| {
            quantized(p.rows(), &c, Mode::Simulate).map(|r| 100.0 * r.top1)
        }));
        series.extend(by_family(points, "landmark", |p| {
            clear_row(p.rows(), &c, ModelKind::Landmark).map(|r| 100.0 * r.top1)
        }));
        series.extend(by_family(
            points,
            "n_bits max, FHE, open-set threshold",
            |p| p.open_set_row(&c, false).map(|r| 100.0 * r.identification),
        ));
        series.extend(by_family(points, "landmark, open-set threshold", |p| {
            p.open_set_row(&c, true).map(|r| 100.0 * r.identification)
        }));
        let title = format!("Top-1 accuracy vs catalog size: {c} queries");
        md += &plot(
            &format!("accuracy_{c}"),
            &title,
            "top-1 accuracy (%)",
            &series,
            false,
        )?;
    }

    let fhe_ms =
        |f: fn(&ResultRow) -> Option<f64>| move |p: &ScalePoint| p.fhe().and_then(|r| f(&r));
    let mut series = by_family(
        points,
        "FHE client + server",
        fhe_ms(|r| Some(r.encrypt_ms? + r.server_ms? + r.decrypt_ms?)),
    );
    series.extend(by_family(points, "FHE server", fhe_ms(|r| r.server_ms)));
    series.extend(by_family(points, "landmark query (clear)", |p| {
        p.landmark_query_ms()
    }));
    md += &plot(
        "fhe_latency",
        "Latency per query vs catalog size",
        "ms (median)",
        &series,
        true,
    )?;

    let mut series = by_family(points, "FHE reply", |p| {
        kib(p.fhe().and_then(|r| r.bytes_down))
    });
    series.extend(by_family(points, "FHE upload", |p| {
        kib(p.fhe().and_then(|r| r.bytes_up))
    }));
    md += &plot(
        "bytes",
        "Bytes per query vs catalog size",
        "KiB",
        &series,
        true,
    )?;

    let series = by_family(points, "", ScalePoint::train_seconds);
    md += &plot(
        "training",
        "Training time (L-BFGS) vs catalog size",
        "seconds",
        &series,
        true,
    )?;

    let mut series = by_family(
        points,
        "peak to end of training",
        ScalePoint::train_peak_mib,
    );
    series.extend(by_family(
        points,
        "landmark index",
        ScalePoint::landmark_index_mib,
    ));
    md += &plot("memory", "Memory vs catalog size", "MiB", &series, true)?;

    md += "\nReports:\n\n";
    for p in points {
        md += &format!("- `{}`: {}\n", p.name, p.dir.display());
    }
    fsutil::write_atomic(out, md.as_bytes()).map_err(super::io(out))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Backend, FitInfo};

    fn row(condition: &str, model: ModelKind, mode: Mode, top1: f64, fhe: bool) -> ResultRow {
        ResultRow {
            experiment: "e".into(),
            dataset: "d".into(),
            condition: condition.into(),
            model,
            n_bits: (model == ModelKind::Quantized).then_some(8),
            weight_bits: None,
            standardize_inputs: true,
            accumulator_bits: None,
            mode,
            queries: 10,
            top1,
            top3: top1,
            unknown_rate: 0.0,
            chunk_accuracy: 0.0,
            latency_median_ms: 2.0,
            latency_p95_ms: 3.0,
            encrypt_ms: fhe.then_some(1.0),
            server_ms: fhe.then_some(4.0),
            decrypt_ms: fhe.then_some(0.5),
            bytes_up: fhe.then_some(2048),
            bytes_down: fhe.then_some(4096),
            simulate_top1_same_queries: fhe.then_some(top1),
            refused: None,
        }
    }

    fn point(name: &str, songs: usize, top1: f64) -> ScalePoint {
        ScalePoint {
            dir: name.into(),
            name: name.into(),
            reproduction: Reproduction {
                dataset: "d".into(),
                songs,
                feature_rows: 60 * songs,
                extraction_failures: vec![],
                extraction: None,
                fit: Some(FitInfo {
                    backend: Backend::Lbfgs,
                    iterations: Some(50),
                    converged: true,
                    final_loss: 0.1,
                    gradient_max_norm: 1e-5,
                    seconds: songs as f64 / 100.0,
                    n_rows: 60 * songs,
                }),
                training_rows: 5 * 60 * songs,
                models_reused: false,
                rows: vec![
                    row("aligned", ModelKind::Float, Mode::Clear, top1, false),
                    row(
                        "aligned",
                        ModelKind::Quantized,
                        Mode::Simulate,
                        top1 - 0.01,
                        false,
                    ),
                    row(
                        "aligned",
                        ModelKind::Quantized,
                        Mode::Execute,
                        top1 - 0.01,
                        true,
                    ),
                    row("noise10", ModelKind::Float, Mode::Clear, 0.5, false),
                ],
                stage_seconds: vec![],
                stage_peak_rss_mib: vec![("train".into(), 100.0), ("evaluate".into(), 150.0)],
                landmark: None,
                open_set: None,
            },
        }
    }

    #[test]
    fn families_strip_the_size_suffix_only() {
        assert_eq!(family("scale-c8000"), "scale");
        assert_eq!(family("scale-improved-c100"), "scale-improved");
        assert_eq!(family("scale-real"), "scale-real");
        assert_eq!(family("scale-c"), "scale-c");
        assert_eq!(family("music-cx1"), "music-cx1");
    }

    #[test]
    fn tables_have_one_line_per_report_with_its_figures() {
        let md = scale_tables(&[
            point("scale-c100", 100, 0.99),
            point("scale-c8000", 8000, 0.9),
        ]);
        assert!(
            md.contains("| scale-c100 | 100 | 99.00 % | 98.00 % | - | 50.00 % | - | - |"),
            "{md}"
        );
        assert!(
            md.contains("| scale-c8000 | 8000 | 480000 | 2400000 | 80.0 | 50 | true | 100 | 150 |"),
            "{md}"
        );
        // Costs: 1 + 4 + 0.5 ms, 2 KiB up, 4 KiB down, no landmark index.
        assert!(
            md.contains(
                "| scale-c100 | 100 | 10 | 1.00 | 4.00 | 0.50 | 5.50 | 2.0 | 4.0 | - | - |"
            ),
            "{md}"
        );
        assert!(md.contains("equals simulate's"), "{md}");
    }

    #[test]
    fn open_set_figures_get_their_own_table() {
        use crate::eval::open_set::OpenSetResult;
        use crate::model::threshold::ScoreKind;
        let open_row = |model: &str, mode: Mode, identification: f64| OpenSetRow {
            condition: "aligned".into(),
            model: model.into(),
            mode,
            score: ScoreKind::Margin,
            threshold: 1.0,
            identification,
            misidentification: 0.0,
            false_match: 0.02,
            closed_set_top1: 0.99,
            catalogue_queries: 100,
            impostor_queries: 50,
        };
        let mut p = point("robust-c100", 200, 0.99);
        p.reproduction.open_set = Some(OpenSetResult {
            catalogue_songs: 100,
            calibration_songs: 50,
            impostor_songs: 50,
            thresholds: vec![],
            models: None,
            rows: vec![
                open_row("float", Mode::Clear, 0.5),
                open_row("n_bits=8", Mode::Simulate, 0.4),
                open_row("landmark", Mode::Clear, 0.9),
            ],
            det: vec![],
        });
        let md = scale_tables(&[p, point("scale-c100", 100, 0.99)]);
        assert!(
            md.contains("| robust-c100 | 100 | 40.00 % / 2.00 % | 90.00 % / 2.00 % | - | - |"),
            "{md}"
        );
        assert!(
            !md.contains("| scale-c100 | - |"),
            "only reports that ran it: {md}"
        );
        // Without any open-set report there is no such table.
        assert!(!scale_tables(&[point("scale-c100", 100, 0.99)]).contains("Open set"));
    }

    #[test]
    fn report_writes_tables_and_plots_sorted_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("summary.md");
        let md = write_scale_report(
            &[
                point("scale-c8000", 8000, 0.9),
                point("scale-c100", 100, 0.99),
                point("real", 301, 0.95),
            ],
            &out,
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), md);
        let (a, b) = (
            md.find("| scale-c100 |").unwrap(),
            md.find("| scale-c8000 |").unwrap(),
        );
        assert!(a < b, "sorted by size within a family");
        for plot in [
            "accuracy_aligned",
            "accuracy_noise10",
            "fhe_latency",
            "bytes",
            "training",
            "memory",
        ] {
            assert!(
                dir.path().join(format!("summary_{plot}.png")).exists(),
                "{plot}"
            );
            assert!(md.contains(&format!("(summary_{plot}.png)")), "{plot}");
        }
        let svg = std::fs::read_to_string(dir.path().join("summary_accuracy_aligned.svg")).unwrap();
        assert!(
            svg.contains("scale: float") && svg.contains("real: n_bits max, FHE"),
            "one line per family"
        );
    }

    #[test]
    fn a_folder_without_results_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_scale_point(dir.path()).unwrap_err().to_string();
        assert!(err.contains("results.json"), "{err}");
    }
}
