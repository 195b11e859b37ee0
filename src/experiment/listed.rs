//! `evaluate --queries LIST.csv`: trained models on any list of recordings (a user's own, or
//! the `query_list.csv` of a generated query set). Each listed track id is looked up in the
//! models' catalogue; one that is not in it is an impostor query. Per condition of the list:
//! closed-set top-1 of the catalogue queries, identification and false matches at each model's
//! stored open-set threshold, and the DET curve.
//!
//! Two steps, so a list can be split over machines: [`listed_outcomes`] answers the queries
//! (all of them, or one `--shard` of the rows) and [`listed_report`] aggregates answers into
//! the report. An unsharded run does both; `evaluate --shard` keeps the answers
//! ([`evaluate_listed_shard`]) and `merge` ([`merge_listed`]) concatenates them and runs the
//! same aggregation.

use super::evaluate::{layout_chunks, EvaluationPlan};
use super::train::{float_path, quantized_path};
use crate::audio::LoadOptions;
use crate::dataset::catalog::order_shards;
use crate::dataset::Shard;
use crate::error::{EvalError, ExperimentError};
use crate::eval::{
    det_curve, evaluate_clear, evaluate_quantized, open_set_metrics, queries_from_files, Decision,
    DetCurve, Mode, OpenSetResult, OpenSetRow, Outcome, Query, QueryFile, Rule, ScoreKind,
    Threshold,
};
use crate::fhe::{Circuit, ModelPrivacy};
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

/// Every (model, mode)'s answer to each query of a list (or of a part of it): what the report
/// is aggregated from, and what a shard of `evaluate --queries --shard` keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedOutcomes {
    pub catalogue_songs: usize,
    /// Each query's condition, in list order.
    pub conditions: Vec<String>,
    pub runs: Vec<ListedRun>,
}

/// One (model, mode)'s answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedRun {
    /// "float" or "n_bits=N".
    pub model: String,
    pub mode: Mode,
    /// The model file's open-set threshold for the decision rule, if it stores one.
    pub stored_threshold: Option<Threshold>,
    /// One per query, in list order.
    pub outcomes: Vec<Outcome>,
}

impl ListedOutcomes {
    /// The outcomes of consecutive parts of one list, in order, as one. Errors when the parts
    /// did not run the same (model, mode)s.
    pub fn concat(parts: Vec<ListedOutcomes>) -> Result<ListedOutcomes, ExperimentError> {
        let mut parts = parts.into_iter();
        let mut all = parts
            .next()
            .ok_or_else(|| ExperimentError::InvalidArgument("no outcomes to combine".into()))?;
        for part in parts {
            let same = part.runs.len() == all.runs.len()
                && part
                    .runs
                    .iter()
                    .zip(&all.runs)
                    .all(|(p, a)| (&p.model, p.mode) == (&a.model, a.mode));
            if !same || part.catalogue_songs != all.catalogue_songs {
                return Err(ExperimentError::InvalidArgument(
                    "the parts ran other models or modes".into(),
                ));
            }
            all.conditions.extend(part.conditions);
            for (a, p) in all.runs.iter_mut().zip(part.runs) {
                a.outcomes.extend(p.outcomes);
            }
        }
        Ok(all)
    }
}

/// The answers of the models of `job` to the queries of its list, or of part `shard` of the
/// list (a contiguous run of rows). Queries are answered per condition, catalogue and impostor
/// queries apart, as the report groups them. `on_run` ticks once per (model, mode).
pub fn listed_outcomes(
    job: &EvaluateListed,
    shard: Option<Shard>,
    on_run: &dyn Fn(),
) -> Result<ListedOutcomes, ExperimentError> {
    let list = crate::dataset::read_query_list(&job.list)?;
    let list = &list[shard.map_or(0..list.len(), |s| s.range(list.len()))];
    let float_file = ModelFile::load(&float_path(&job.models))?;
    let catalog = float_file.catalog();
    let index: HashMap<&str, usize> = catalog
        .songs
        .iter()
        .map(|s| (s.track_id.as_str(), s.index))
        .collect();
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
    let conditions: Vec<String> = list.iter().map(|q| q.condition.clone()).collect();
    // The queries' positions per condition (in the order the list first names them), catalogue
    // queries first, then impostors: the batches each model answers.
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for c in first_named(&conditions) {
        for catalogue in [true, false] {
            batches.push(
                (0..queries.len())
                    .filter(|&i| &conditions[i] == c && queries[i].truth.is_some() == catalogue)
                    .collect(),
            );
        }
    }

    let decision = job.plan.decision;
    let stored = |file: &ModelFile| file.open_set().copied().filter(|t| t.rule == decision.rule);
    let mut models: Vec<(String, Mode, Option<Threshold>, Answerer)> = Vec::new();
    let float = float_file.float_model().clone();
    models.push((
        "float".into(),
        Mode::Clear,
        stored(&float_file),
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
                stored(&file),
                Box::new(move |q: &[Query]| {
                    Ok(
                        evaluate_quantized(&model, q, mode, &decision, layout_chunks(q), circuit)?
                            .1,
                    )
                }),
            ));
        }
    }

    let mut runs = Vec::with_capacity(models.len());
    for (model, mode, stored_threshold, answer) in models {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; queries.len()];
        for batch in &batches {
            let batch_queries: Vec<Query> = batch.iter().map(|&i| queries[i].clone()).collect();
            for (&i, o) in batch.iter().zip(answer(&batch_queries)?) {
                outcomes[i] = Some(o);
            }
        }
        runs.push(ListedRun {
            model,
            mode,
            stored_threshold,
            outcomes: outcomes.into_iter().flatten().collect(),
        });
        on_run();
    }
    Ok(ListedOutcomes {
        catalogue_songs: catalog.len(),
        conditions,
        runs,
    })
}

/// The distinct conditions in the order they are first named.
fn first_named(conditions: &[String]) -> Vec<&String> {
    let mut order: Vec<&String> = Vec::new();
    for c in conditions {
        if !order.contains(&c) {
            order.push(c);
        }
    }
    order
}

/// The report of `outcomes` (answers to the list `list` by the models in `models` under the
/// decision rule `rule`): per condition and (model, mode), closed-set top-1, identification and
/// false matches at the model's stored threshold (−∞ when it has none for `rule`), and the DET
/// curve. The one aggregation of an unsharded run and of merged shards.
pub fn listed_report(
    list: &Path,
    models: &Path,
    rule: Rule,
    outcomes: &ListedOutcomes,
) -> ListedReport {
    let mut open = OpenSetResult {
        catalogue_songs: outcomes.catalogue_songs,
        calibration_songs: 0,
        impostor_songs: 0,
        thresholds: Vec::new(),
        models: Some(models.to_path_buf()),
        rows: Vec::new(),
        det: Vec::new(),
    };
    let conditions = first_named(&outcomes.conditions);
    for run in &outcomes.runs {
        let threshold = run.stored_threshold.unwrap_or(Threshold {
            rule,
            score: ScoreKind::Margin,
            at: f64::NEG_INFINITY,
            false_match_rate: f64::NAN,
            calibration_queries: 0,
        });
        let (label, mode) = (&run.model, run.mode);
        open.thresholds.push((format!("{label} {mode}"), threshold));
        for &condition in &conditions {
            let of = |catalogue: bool| -> Vec<Outcome> {
                run.outcomes
                    .iter()
                    .zip(&outcomes.conditions)
                    .filter(|(o, c)| *c == condition && o.truth.is_some() == catalogue)
                    .map(|(o, _)| o.clone())
                    .collect()
            };
            let (catalogue, impostors) = (of(true), of(false));
            let m = open_set_metrics(&catalogue, &impostors, &threshold);
            let closed = catalogue
                .iter()
                .filter(|o| o.answer.song == o.truth)
                .count() as f64
                / catalogue.len().max(1) as f64;
            open.rows.push(OpenSetRow {
                condition: condition.clone(),
                model: label.clone(),
                mode,
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
    }
    let truths: Vec<bool> = outcomes
        .runs
        .first()
        .map(|r| r.outcomes.iter().map(|o| o.truth.is_some()).collect())
        .unwrap_or_default();
    ListedReport {
        list: list.to_path_buf(),
        models: models.to_path_buf(),
        catalogue_queries: truths.iter().filter(|&&t| t).count(),
        impostor_queries: truths.iter().filter(|&&t| !t).count(),
        open_set: open,
        provenance: Provenance::collect(),
    }
}

/// Evaluates the models of `job` on its query list and writes `results.json`, `summary.md`,
/// `open_set.csv` and the DET plots into `job.out`. `on_run` ticks once per (model, mode).
pub fn evaluate_listed(
    job: &EvaluateListed,
    on_run: &dyn Fn(),
) -> Result<ListedReport, ExperimentError> {
    let outcomes = listed_outcomes(job, None, on_run)?;
    let report = listed_report(&job.list, &job.models, job.plan.decision.rule, &outcomes);
    write(&report, &job.out)?;
    Ok(report)
}

/// The marker file of an evaluation shard's folder (its sidecar, written last).
pub const SHARD_SIDECAR: &str = "evaluation-shard.json";
/// The shard's answers ([`ListedOutcomes`]) beside the sidecar.
pub const SHARD_OUTCOMES: &str = "outcomes.json";
const SHARD_FORMAT: &str = "fhe-shazam-evaluation-shard";
const SHARD_VERSION: u32 = 1;

/// The sidecar of a shard of `evaluate --queries --shard i/n`: the part and everything that
/// must be the same in every shard for their merge to be the unsharded report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedShard {
    pub format: String,
    pub version: u32,
    pub shard: Shard,
    /// The query list, its rows and the SHA-256 of its bytes.
    pub list: PathBuf,
    pub list_queries: usize,
    pub list_sha256: String,
    pub models: PathBuf,
    /// (file name, SHA-256) of each model file evaluated.
    pub model_files: Vec<(String, String)>,
    pub n_bits: Vec<u32>,
    pub modes: Vec<Mode>,
    pub decision: Decision,
    pub circuit: Option<Circuit>,
    pub privacy: Option<ModelPrivacy>,
    pub query_seconds: f64,
    pub toolkit_version: String,
}

/// Evaluates part `shard` of `job`'s query list (a contiguous run of rows) and writes its
/// answers and a sidecar recording the part, the list, the model files and every parameter
/// into `job.out` (all or nothing): `merge` of every shard writes the unsharded report.
/// Refused with model privacy, whose simulated flood noise is one random stream per batch of
/// queries, so a shard's answers would not be the unsharded run's.
pub fn evaluate_listed_shard(
    job: &EvaluateListed,
    shard: Shard,
    on_run: &dyn Fn(),
) -> Result<ListedShard, ExperimentError> {
    if job.plan.privacy.is_some() {
        return Err(ExperimentError::InvalidArgument(
            "--shard with --model-privacy: the simulated flood noise is one random stream per \
             batch of queries, so a shard's answers would differ from the unsharded run's; \
             evaluate without --shard"
                .into(),
        ));
    }
    let sha = |path: &Path| {
        crate::features::extract::sha256_file(path).map_err(|source| ExperimentError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let list_queries = crate::dataset::read_query_list(&job.list)?.len();
    let mut model_files = Vec::new();
    for path in std::iter::once(float_path(&job.models))
        .chain(job.n_bits.iter().map(|&n| quantized_path(&job.models, n)))
    {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        model_files.push((name.into_owned(), sha(&path)?));
    }
    let sidecar = ListedShard {
        format: SHARD_FORMAT.into(),
        version: SHARD_VERSION,
        shard,
        list: job.list.clone(),
        list_queries,
        list_sha256: sha(&job.list)?,
        models: job.models.clone(),
        model_files,
        n_bits: job.n_bits.clone(),
        modes: job.plan.modes.clone(),
        decision: job.plan.decision,
        circuit: job.plan.circuit,
        privacy: job.plan.privacy,
        query_seconds: job.query_seconds,
        toolkit_version: env!("CARGO_PKG_VERSION").into(),
    };
    let outcomes = listed_outcomes(job, Some(shard), on_run)?;
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExperimentError::Io { path, source }
    };
    let staging = fsutil::Staging::new(&job.out).map_err(io_err(&job.out))?;
    let data = staging.path().join(SHARD_OUTCOMES);
    fsutil::write_json_atomic(&data, &outcomes).map_err(io_err(&data))?;
    let json = staging.path().join(SHARD_SIDECAR);
    fsutil::write_json_atomic(&json, &sidecar).map_err(io_err(&json))?;
    staging.commit(SHARD_SIDECAR).map_err(io_err(&job.out))?;
    Ok(sidecar)
}

/// Reads an evaluation shard's sidecar and answers, checking the format.
fn read_shard(dir: &Path) -> Result<(ListedShard, ListedOutcomes), ExperimentError> {
    let read = |name: &str| -> Result<serde_json::Value, ExperimentError> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| ExperimentError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ExperimentError::Shard {
            path,
            reason: format!("not valid JSON: {e}"),
        })
    };
    let sidecar_path = dir.join(SHARD_SIDECAR);
    let bad = |path: &Path, reason: String| ExperimentError::Shard {
        path: path.to_path_buf(),
        reason,
    };
    let value = read(SHARD_SIDECAR)?;
    if value.get("format").and_then(|f| f.as_str()) != Some(SHARD_FORMAT) {
        return Err(bad(
            &sidecar_path,
            format!("not an evaluation shard (format is not \"{SHARD_FORMAT}\")"),
        ));
    }
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(SHARD_VERSION as u64) {
        return Err(bad(
            &sidecar_path,
            format!("evaluation shard version {version:?}, this toolkit reads version {SHARD_VERSION}; evaluate again"),
        ));
    }
    let sidecar: ListedShard = serde_json::from_value(value)
        .map_err(|e| bad(&sidecar_path, format!("malformed sidecar: {e}")))?;
    let outcomes: ListedOutcomes = serde_json::from_value(read(SHARD_OUTCOMES)?).map_err(|e| {
        bad(
            &dir.join(SHARD_OUTCOMES),
            format!("malformed outcomes: {e}"),
        )
    })?;
    let expected = sidecar.shard.range(sidecar.list_queries).len();
    let lengths_ok = outcomes.conditions.len() == expected
        && outcomes.runs.iter().all(|r| r.outcomes.len() == expected);
    if !lengths_ok {
        return Err(bad(
            &dir.join(SHARD_OUTCOMES),
            format!(
                "does not hold one answer per query of shard {} ({expected} queries)",
                sidecar.shard
            ),
        ));
    }
    Ok((sidecar, outcomes))
}

/// Combines the folders of `evaluate --queries --shard i/n` (i = 0 … n−1, any order) into the
/// report one unsharded run writes into `out` (the same tables, by the same aggregation;
/// only the provenance differs). Refuses folders that are not every shard of one list
/// evaluated with the same model files and parameters, naming the folder and what differs;
/// `out` is then left as it was.
pub fn merge_listed(dirs: &[PathBuf], out: &Path) -> Result<ListedReport, ExperimentError> {
    let parts = dirs
        .iter()
        .map(|dir| {
            let (sidecar, outcomes) = read_shard(dir)?;
            Ok((dir.clone(), Some(sidecar.shard), (sidecar, outcomes)))
        })
        .collect::<Result<Vec<_>, ExperimentError>>()?;
    let shards = order_shards(parts, |(s, _), (r, _)| {
        [
            ("query list (its path)", s.list != r.list),
            (
                "query list (its SHA-256)",
                (s.list_queries, &s.list_sha256) != (r.list_queries, &r.list_sha256),
            ),
            ("models folder", s.models != r.models),
            (
                "model files (their SHA-256)",
                s.model_files != r.model_files,
            ),
            ("n_bits", s.n_bits != r.n_bits),
            ("modes", s.modes != r.modes),
            ("decision", s.decision != r.decision),
            ("circuit", s.circuit != r.circuit),
            ("model privacy", s.privacy != r.privacy),
            ("query seconds", s.query_seconds != r.query_seconds),
            ("toolkit version", s.toolkit_version != r.toolkit_version),
        ]
        .into_iter()
        .find_map(|(what, d)| d.then_some(what))
    })
    .map_err(|refusal| match refusal.dir {
        Some(dir) => ExperimentError::Shard {
            path: dir.join(SHARD_SIDECAR),
            reason: refusal.reason,
        },
        None => ExperimentError::InvalidArgument(refusal.reason),
    })?;
    let first = shards[0].0.clone();
    let outcomes = ListedOutcomes::concat(shards.into_iter().map(|(_, o)| o).collect())?;
    let report = listed_report(&first.list, &first.models, first.decision.rule, &outcomes);
    write(&report, out)?;
    Ok(report)
}

/// Writes the report's files into `dir`, all or none (a failure leaves what `dir` held).
fn write(report: &ListedReport, dir: &Path) -> Result<(), ExperimentError> {
    let staging = fsutil::Staging::new(dir)
        .map_err(io(dir))
        .map_err(ExperimentError::from)?;
    let staged = staging.path();
    let plots = open_set_files(staged, &report.open_set)?;
    let json = staged.join("results.json");
    fsutil::write_json_atomic(&json, report)
        .map_err(io(&json))
        .map_err(ExperimentError::from)?;
    let md = staged.join("summary.md");
    fsutil::write_atomic(&md, report.markdown(&plots).as_bytes())
        .map_err(io(&md))
        .map_err(ExperimentError::from)?;
    staging
        .commit("results.json")
        .map_err(io(dir))
        .map_err(ExperimentError::from)
}
