//! The open-set protocol (`[evaluation.open_set]`): songs of the dataset kept out of the
//! catalogue; each model's rejection threshold is calibrated on the queries of some of them
//! (to the target false-match rate in every condition), and its false-match rate measured on
//! the queries of the others, next to its identification rate on catalogue songs.

use super::evaluate::layout_chunks;
use super::queries::{ConditionFiles, ConditionQueries};
use super::train::TrainedModels;
use crate::config::{ExperimentConfig, OpenSetConfig};
use crate::error::{EvalError, ExperimentError};
use crate::eval::landmark::evaluate_landmark;
use crate::eval::{
    calibrate, det_curve, evaluate_clear, evaluate_quantized, open_set_metrics, DetCurve,
    FheScoring, Mode, OpenSetResult, OpenSetRow, Outcome, Query, Rule, ScoreKind, Threshold,
};
use crate::features::FeatureSet;
use crate::fingerprint::LandmarkIndex;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// The extracted songs split by song: the catalogue, and the track ids kept out of it.
pub struct Split {
    pub catalogue: FeatureSet,
    pub calibration: HashSet<String>,
    pub impostors: HashSet<String>,
}

/// Draws the calibration and impostor songs from `set` with the config's seed (the same
/// songs on every run of the same extracted set); the catalogue is the rest, in order.
pub fn split(set: &FeatureSet, open: &OpenSetConfig) -> Result<Split, ExperimentError> {
    let n = set.n_songs();
    let outside = open.calibration_songs + open.impostor_songs;
    if outside >= n {
        return Err(ExperimentError::InvalidArgument(format!(
            "evaluation.open_set keeps {outside} songs out of the catalogue \
             ({} calibration + {} impostor) but the dataset has only {n} extracted songs",
            open.calibration_songs, open.impostor_songs
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(open.seed));
    let track = |k: &usize| set.sidecar.songs[*k].song.track_id.clone();
    let calibration = order[..open.calibration_songs].iter().map(track).collect();
    let impostors = order[open.calibration_songs..outside]
        .iter()
        .map(track)
        .collect();
    let mut catalogue = order[outside..].to_vec();
    catalogue.sort_unstable();
    Ok(Split {
        catalogue: set.subset(&catalogue),
        calibration,
        impostors,
    })
}

/// Per condition (in the same order): the catalogue, calibration and impostor queries.
pub struct OpenSetQueries<'a> {
    pub catalogue: &'a [ConditionQueries],
    pub calibration: &'a [ConditionQueries],
    pub impostors: &'a [ConditionQueries],
}

/// The same split as query files, for the landmark baseline.
pub struct OpenSetFiles<'a> {
    pub catalogue: &'a [ConditionFiles],
    pub calibration: &'a [ConditionFiles],
    pub impostors: &'a [ConditionFiles],
}

/// A model that answers queries of one condition (by position in the condition lists).
type Answerer<'a> = dyn Fn(usize, Set) -> Result<Vec<Outcome>, EvalError> + 'a;

#[derive(Clone, Copy)]
enum Set {
    Catalogue,
    Calibration,
    Impostors,
}

/// Calibrates one model on every condition's calibration queries, then measures it.
#[allow(clippy::too_many_arguments)] // one model's run: each argument is a different input
fn measure(
    label: &str,
    mode: Mode,
    conditions: &[String],
    score: ScoreKind,
    open: &OpenSetConfig,
    config_rule: Rule,
    answer: &Answerer,
    out: &mut OpenSetResult,
) -> Result<(), EvalError> {
    let mut calibration = Vec::new();
    for c in 0..conditions.len() {
        calibration.push(answer(c, Set::Calibration)?);
    }
    let groups: Vec<Vec<Option<f64>>> = calibration
        .iter()
        .map(|o| o.iter().map(|o| o.answer.confidence(score)).collect())
        .collect();
    let threshold = Threshold {
        rule: config_rule,
        score,
        at: calibrate(&groups, open.false_match_rate),
        false_match_rate: open.false_match_rate,
        calibration_queries: groups.iter().map(Vec::len).sum(),
    };
    out.thresholds.push((label.to_string(), threshold));
    for (c, condition) in conditions.iter().enumerate() {
        let catalogue = answer(c, Set::Catalogue)?;
        let impostors = answer(c, Set::Impostors)?;
        let m = open_set_metrics(&catalogue, &impostors, &threshold);
        let closed = catalogue
            .iter()
            .filter(|o| o.answer.song == o.truth)
            .count() as f64
            / catalogue.len().max(1) as f64;
        out.rows.push(OpenSetRow {
            condition: condition.clone(),
            model: label.to_string(),
            mode,
            score,
            threshold: threshold.at,
            identification: m.identification,
            misidentification: m.misidentification,
            false_match: m.false_match,
            closed_set_top1: closed,
            catalogue_queries: m.catalogue_queries,
            impostor_queries: m.impostor_queries,
        });
        out.det.push(DetCurve {
            condition: condition.clone(),
            model: label.to_string(),
            points: det_curve(&catalogue, &impostors, score),
        });
    }
    Ok(())
}

/// The open-set figures of the float model (clear), every quantized model (simulate: the
/// exact integer circuit, which the execute rows check FHE against score for score) and,
/// given its index and the query files, the landmark baseline (aligned-hash count).
pub fn evaluate_open_set(
    config: &ExperimentConfig,
    models: &TrainedModels,
    split: &Split,
    queries: &OpenSetQueries,
    landmark: Option<(&LandmarkIndex, &OpenSetFiles)>,
) -> Result<OpenSetResult, EvalError> {
    let open = config.evaluation.open_set.clone().unwrap_or_default();
    let decision = config.evaluation.decision();
    let conditions: Vec<String> = queries
        .catalogue
        .iter()
        .map(|c| c.condition.clone())
        .collect();
    let pick = |set: Set, c: usize| -> &[Query] {
        match set {
            Set::Catalogue => &queries.catalogue[c].queries,
            Set::Calibration => &queries.calibration[c].queries,
            Set::Impostors => &queries.impostors[c].queries,
        }
    };
    let mut out = OpenSetResult {
        catalogue_songs: split.catalogue.n_songs(),
        calibration_songs: split.calibration.len(),
        impostor_songs: split.impostors.len(),
        thresholds: Vec::new(),
        models: None,
        rows: Vec::new(),
        det: Vec::new(),
    };
    let float = |c: usize, set: Set| Ok(evaluate_clear(&models.float, pick(set, c), &decision)?.1);
    measure(
        "float",
        Mode::Clear,
        &conditions,
        open.score,
        &open,
        decision.rule,
        &float,
        &mut out,
    )?;
    for q in &models.quantized {
        let quantized = |c: usize, set: Set| {
            let queries = pick(set, c);
            let chunks = layout_chunks(queries);
            // Simulate scores every chunk; the circuit only matters for execute and for the
            // rounding and flood of model privacy.
            let scoring = FheScoring {
                circuit: decision.rule.circuit(Some(open.score)),
                privacy: config.evaluation.model_privacy,
            };
            Ok(evaluate_quantized(
                &q.model,
                queries,
                Mode::Simulate,
                &decision,
                chunks,
                scoring,
            )?
            .1)
        };
        let label = format!("n_bits={}", q.n_bits);
        measure(
            &label,
            Mode::Simulate,
            &conditions,
            open.score,
            &open,
            decision.rule,
            &quantized,
            &mut out,
        )?;
    }
    if let Some((index, files)) = landmark {
        let seconds = config.evaluation.query_seconds;
        let baseline = |c: usize, set: Set| {
            let f = match set {
                Set::Catalogue => &files.catalogue[c].files,
                Set::Calibration => &files.calibration[c].files,
                Set::Impostors => &files.impostors[c].files,
            };
            Ok(evaluate_landmark(index, f, seconds)?.1)
        };
        measure(
            "landmark",
            Mode::Clear,
            &conditions,
            ScoreKind::Best,
            &open,
            decision.rule,
            &baseline,
            &mut out,
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn the_split_is_seeded_disjoint_and_too_many_outsiders_is_an_error() {
        let labels: Vec<usize> = (0..10).flat_map(|k| [k, k]).collect();
        let set = FeatureSet::for_tests(Array2::zeros((20, 2)), labels, "d");
        let open = OpenSetConfig {
            calibration_songs: 3,
            impostor_songs: 2,
            ..OpenSetConfig::default()
        };
        let a = split(&set, &open).unwrap();
        assert_eq!(a.catalogue.n_songs(), 5);
        assert_eq!((a.calibration.len(), a.impostors.len()), (3, 2));
        assert!(a.calibration.is_disjoint(&a.impostors));
        for r in &a.catalogue.sidecar.songs {
            assert!(!a.calibration.contains(&r.song.track_id));
            assert!(!a.impostors.contains(&r.song.track_id));
        }
        let b = split(&set, &open).unwrap();
        assert_eq!(a.calibration, b.calibration, "same seed, same songs");
        let other = split(
            &set,
            &OpenSetConfig {
                seed: 7,
                ..open.clone()
            },
        )
        .unwrap();
        assert_ne!(a.calibration, other.calibration);
        let too_many = OpenSetConfig {
            calibration_songs: 5,
            impostor_songs: 5,
            ..open
        };
        let err = split(&set, &too_many).err().unwrap().to_string();
        assert!(err.contains("only 10 extracted songs"), "{err}");
    }
}
