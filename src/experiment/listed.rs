//! `evaluate --queries LIST.csv`: trained models on any list of recordings (a user's own, or
//! the `query_list.csv` of a generated query set). Each listed track id is looked up in the
//! models' catalogue; one that is not in it is an impostor query. Per condition of the list:
//! closed-set top-1 of the catalogue queries, identification and false matches at each model's
//! stored open-set threshold, and the DET curve.

use super::evaluate::{layout_chunks, EvaluationPlan};
use super::train::{float_path, quantized_path};
use crate::audio::LoadOptions;
use crate::error::{EvalError, ExperimentError};
use crate::eval::{
    det_curve, evaluate_clear, evaluate_quantized, open_set_metrics, queries_from_files, DetCurve,
    Mode, OpenSetResult, OpenSetRow, Outcome, Query, QueryFile, ScoreKind, Threshold,
};
use crate::fsutil;
use crate::model::ModelFile;
use crate::report::experiment::open_set_files;
use crate::report::tables::open_set_table;
use crate::report::{io, Provenance};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What `evaluate --queries` evaluates.
#[derive(Debug, Clone)]
pub struct EvaluateListed {
    pub models: PathBuf,
    /// The query list (`path,track_id[,condition]`).
    pub list: PathBuf,
    pub n_bits: Vec<u32>,
    pub plan: EvaluationPlan,
    /// Each recording's first this many seconds are the query.
    pub query_seconds: f64,
    pub out: PathBuf,
}

/// The report of an evaluation on a query list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedReport {
    pub list: PathBuf,
    pub models: PathBuf,
    pub catalogue_queries: usize,
    pub impostor_queries: usize,
    /// Rows per condition and (model, mode); models without a stored threshold (or one for
    /// another decision rule) answer every query (threshold −∞).
    pub open_set: OpenSetResult,
    pub provenance: Provenance,
}

impl ListedReport {
    pub fn markdown(&self, plots: &str) -> String {
        format!(
            "# Evaluation on a query list\n\nList `{}`, models `{}`: {} catalogue queries, {} impostor queries (track ids not in the catalogue). Each model answers with its stored open-set threshold when it has one for this decision rule, and every query otherwise (threshold −∞, shown as \"none needed\"). Also in `open_set.csv` and `results.json`.\n\n{}\n{plots}\n{}",
            self.list.display(),
            self.models.display(),
            self.catalogue_queries,
            self.impostor_queries,
            open_set_table(&self.open_set.rows),
            self.provenance.footer()
        )
    }
}

/// One model under evaluation: label, threshold, and how it answers a set of queries.
type Answerer<'a> = Box<dyn Fn(&[Query]) -> Result<Vec<Outcome>, EvalError> + 'a>;

/// Evaluates the models of `job` on its query list and writes `results.json`, `summary.md`,
/// `open_set.csv` and the DET plots into `job.out`. `on_run` ticks once per (model, mode).
pub fn evaluate_listed(
    job: &EvaluateListed,
    on_run: &dyn Fn(),
) -> Result<ListedReport, ExperimentError> {
    let list = crate::dataset::read_query_list(&job.list)?;
    let float_file = ModelFile::load(&float_path(&job.models))?;
    let catalog = float_file.catalog();
    let index: HashMap<&str, usize> = catalog
        .songs
        .iter()
        .map(|s| (s.track_id.as_str(), s.index))
        .collect();
    // Conditions in the order the list first names them.
    let mut conditions: Vec<String> = Vec::new();
    for q in &list {
        if !conditions.contains(&q.condition) {
            conditions.push(q.condition.clone());
        }
    }
    let files: Vec<QueryFile> = list
        .iter()
        .map(|q| QueryFile {
            path: q.path.clone(),
            truth: index.get(q.track_id.as_str()).copied(),
        })
        .collect();
    let queries = queries_from_files(
        &files,
        &LoadOptions::default(),
        float_file.features(),
        job.query_seconds,
    )?;
    let by_condition: Vec<(Vec<Query>, Vec<Query>)> = conditions
        .iter()
        .map(|c| {
            let of: Vec<Query> = list
                .iter()
                .zip(&queries)
                .filter(|(l, _)| &l.condition == c)
                .map(|(_, q)| q.clone())
                .collect();
            of.into_iter().partition(|q| q.truth.is_some())
        })
        .collect();

    let decision = job.plan.decision;
    let threshold_of = |file: &ModelFile| {
        file.open_set()
            .copied()
            .filter(|t| t.rule == decision.rule)
            .unwrap_or(Threshold {
                rule: decision.rule,
                score: ScoreKind::Margin,
                at: f64::NEG_INFINITY,
                false_match_rate: f64::NAN,
                calibration_queries: 0,
            })
    };
    let mut models: Vec<(String, Mode, Threshold, Answerer)> = Vec::new();
    let float = float_file.float_model().clone();
    models.push((
        "float".into(),
        Mode::Clear,
        threshold_of(&float_file),
        Box::new(move |q: &[Query]| Ok(evaluate_clear(&float, q, &decision)?.1)),
    ));
    for &n in &job.n_bits {
        let path = quantized_path(&job.models, n);
        let file = ModelFile::load(&path)?;
        if file.catalog().len() != catalog.len() {
            return Err(ExperimentError::CatalogMismatch {
                path,
                found: file.catalog().len(),
                expected: catalog.len(),
            });
        }
        let model = file
            .quantized_model()
            .cloned()
            .ok_or(ExperimentError::NotQuantized { path })?;
        let circuit = job.plan.circuit_for(file.open_set().map(|t| t.score));
        for &mode in &job.plan.modes {
            let model = model.clone();
            models.push((
                format!("n_bits={n}"),
                mode,
                threshold_of(&file),
                Box::new(move |q: &[Query]| {
                    Ok(
                        evaluate_quantized(&model, q, mode, &decision, layout_chunks(q), circuit)?
                            .1,
                    )
                }),
            ));
        }
    }

    let mut open = OpenSetResult {
        catalogue_songs: catalog.len(),
        calibration_songs: 0,
        impostor_songs: 0,
        thresholds: Vec::new(),
        models: Some(job.models.clone()),
        rows: Vec::new(),
        det: Vec::new(),
    };
    for (label, mode, threshold, answer) in &models {
        open.thresholds
            .push((format!("{label} {mode}"), *threshold));
        for (condition, (catalogue, impostors)) in conditions.iter().zip(&by_condition) {
            let (catalogue, impostors) = (answer(catalogue)?, answer(impostors)?);
            let m = open_set_metrics(&catalogue, &impostors, threshold);
            let closed = catalogue
                .iter()
                .filter(|o| o.answer.song == o.truth)
                .count() as f64
                / catalogue.len().max(1) as f64;
            open.rows.push(OpenSetRow {
                condition: condition.clone(),
                model: label.clone(),
                mode: *mode,
                score: threshold.score,
                threshold: threshold.at,
                identification: m.identification,
                misidentification: m.misidentification,
                false_match: m.false_match,
                closed_set_top1: closed,
                catalogue_queries: m.catalogue_queries,
                impostor_queries: m.impostor_queries,
            });
            open.det.push(DetCurve {
                condition: condition.clone(),
                model: format!("{label} ({mode})"),
                points: det_curve(&catalogue, &impostors, threshold.score),
            });
        }
        on_run();
    }
    let report = ListedReport {
        list: job.list.clone(),
        models: job.models.clone(),
        catalogue_queries: files.iter().filter(|f| f.truth.is_some()).count(),
        impostor_queries: files.iter().filter(|f| f.truth.is_none()).count(),
        open_set: open,
        provenance: Provenance::collect(),
    };
    write(&report, &job.out)?;
    Ok(report)
}

/// Writes the report's files into `dir`, each atomically.
fn write(report: &ListedReport, dir: &Path) -> Result<(), ExperimentError> {
    std::fs::create_dir_all(dir)
        .map_err(io(dir))
        .map_err(ExperimentError::from)?;
    let plots = open_set_files(dir, &report.open_set)?;
    let json = dir.join("results.json");
    fsutil::write_json_atomic(&json, report)
        .map_err(io(&json))
        .map_err(ExperimentError::from)?;
    let md = dir.join("summary.md");
    fsutil::write_atomic(&md, report.markdown(&plots).as_bytes())
        .map_err(io(&md))
        .map_err(ExperimentError::from)?;
    Ok(())
}
