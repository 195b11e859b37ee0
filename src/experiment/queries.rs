//! The query recordings of each condition and the models' queries extracted from them.

use super::cache::queries_dir;
use super::{Progress, Stage};
use crate::audio::LoadOptions;
use crate::config::{ExperimentConfig, Protocol};
use crate::dataset::queries::{read_query_set, write_query_set, QuerySetParams, QueryWindow};
use crate::dataset::Catalog;
use crate::error::ExperimentError;
use crate::eval::{queries_from_files, seed_queries, Query, QueryFile};
use crate::features::{FeatureParams, FeatureSet};
use std::path::Path;

/// The query files of one condition ("seed" under the seed protocol).
pub struct ConditionFiles {
    pub condition: String,
    pub files: Vec<QueryFile>,
}

/// The models' queries of one condition.
pub struct ConditionQueries {
    pub condition: String,
    pub queries: Vec<Query>,
}

/// The robust protocol's query-set parameters of `config`.
pub fn query_set_params(config: &ExperimentConfig) -> QuerySetParams {
    let ev = &config.evaluation;
    QuerySetParams {
        seed: ev.robust.seed,
        query_seconds: ev.query_seconds,
        conditions: ev.robust.conditions.clone(),
        window: match ev.robust.held_out_from {
            Some(from_seconds) => QueryWindow::HeldOut { from_seconds },
            None => QueryWindow::Whole,
        },
        gain_db: ev.robust.gain_db,
    }
}

/// The query recordings of each condition: the robust query set's files (written under
/// `data_dir/queries/` on first use and reused while its parameters match), or under the seed
/// protocol one "seed" condition whose files are the songs themselves (a query is their first
/// `query_seconds`). Truth is the song's label in the feature set; songs that failed
/// extraction are skipped.
pub fn condition_files(
    config: &ExperimentConfig,
    root: &Path,
    catalog: &Catalog,
    set: &FeatureSet,
    progress: &Progress,
) -> Result<Vec<ConditionFiles>, ExperimentError> {
    if config.evaluation.protocol == Protocol::Seed {
        let files = set
            .sidecar
            .songs
            .iter()
            .map(|r| QueryFile {
                path: root.join(&r.song.path),
                truth: Some(r.song.index),
            })
            .collect();
        return Ok(vec![ConditionFiles {
            condition: "seed".into(),
            files,
        }]);
    }
    let label = set.labels_by_track();
    robust_files(config, root, catalog, progress, &|track| {
        label.get(track).map(|&l| Some(l))
    })
}

/// The robust query set's files of the songs `outsiders` (track ids kept out of the
/// catalogue), per condition, with no truth: impostor or calibration queries.
pub fn outsider_files(
    config: &ExperimentConfig,
    root: &Path,
    catalog: &Catalog,
    outsiders: &std::collections::HashSet<String>,
    progress: &Progress,
) -> Result<Vec<ConditionFiles>, ExperimentError> {
    robust_files(config, root, catalog, progress, &|track| {
        outsiders.contains(track).then_some(None)
    })
}

/// The robust query set of `catalog`'s songs (written under `data_dir/queries/` on first use
/// and reused while its parameters match), per condition: the files whose track `truth` keeps
/// (`Some(truth)`).
fn robust_files(
    config: &ExperimentConfig,
    root: &Path,
    catalog: &Catalog,
    progress: &Progress,
    truth: &dyn Fn(&str) -> Option<Option<usize>>,
) -> Result<Vec<ConditionFiles>, ExperimentError> {
    let params = query_set_params(config);
    let dir = queries_dir(config, root, catalog.len());
    let query_set = match read_query_set(&dir) {
        Ok(q) if q.params == params => q,
        _ => {
            progress.stage(Stage::Queries);
            let load = LoadOptions {
                sample_rate: config.features.sample_rate(),
                max_seconds: Some(config.dataset.max_seconds),
            };
            write_query_set(root, catalog, &load, &params, &dir, progress.on_song)?;
            read_query_set(&dir)?
        }
    };
    Ok(params
        .conditions
        .iter()
        .map(|&condition| ConditionFiles {
            condition: condition.name().to_string(),
            files: query_set
                .entries
                .iter()
                .filter(|e| e.condition == condition)
                .filter_map(|e| {
                    Some(QueryFile {
                        path: e.path.clone(),
                        truth: truth(e.track_id.as_str())?,
                    })
                })
                .collect(),
        })
        .collect())
}

/// The models' queries of each condition: the seed's come from the cached features (on the
/// training grid), the robust ones are extracted from the query files.
pub fn condition_queries(
    config: &ExperimentConfig,
    set: &FeatureSet,
    conditions: &[ConditionFiles],
) -> Result<Vec<ConditionQueries>, ExperimentError> {
    let ev = &config.evaluation;
    if ev.protocol == Protocol::Seed {
        return Ok(vec![ConditionQueries {
            condition: "seed".into(),
            queries: seed_queries(set, ev.query_seconds),
        }]);
    }
    // Queries are chunked like the seed's queries: non-overlapping chunks, whatever the
    // training hop.
    let query_params = FeatureParams {
        chunk_hop: config.features.chunk_samples,
        ..config.features.clone()
    };
    let load = LoadOptions {
        sample_rate: config.features.sample_rate(),
        max_seconds: None,
    };
    conditions
        .iter()
        .map(|c| {
            Ok(ConditionQueries {
                condition: c.condition.clone(),
                queries: queries_from_files(&c.files, &load, &query_params, ev.query_seconds)?,
            })
        })
        .collect()
}
