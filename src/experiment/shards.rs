//! `merge`: the folders of a sharded run (`extract`, `queries` or `evaluate --queries` with
//! `--shard i/n`) → exactly what one unsharded run writes. The kind of run is told by the
//! marker file each folder holds, so one command merges all three.

use super::listed::{merge_listed, ListedReport, SHARD_SIDECAR};
use crate::dataset::queries::{merge_query_sets, QuerySetSummary, MANIFEST_FILE};
use crate::error::ExperimentError;
use crate::features::store::{merge_shards, Sidecar};
use std::path::{Path, PathBuf};

/// What a shard folder holds, by its marker file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardKind {
    /// `extract --shard`: features.json.
    Features,
    /// `queries --shard`: queryset.json.
    Queries,
    /// `evaluate --queries --shard`: evaluation-shard.json.
    Evaluation,
}

impl ShardKind {
    const ALL: [ShardKind; 3] = [
        ShardKind::Features,
        ShardKind::Queries,
        ShardKind::Evaluation,
    ];

    /// The file that marks a complete folder of this kind.
    pub fn marker(self) -> &'static str {
        match self {
            ShardKind::Features => "features.json",
            ShardKind::Queries => MANIFEST_FILE,
            ShardKind::Evaluation => SHARD_SIDECAR,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ShardKind::Features => "a feature store",
            ShardKind::Queries => "a query set",
            ShardKind::Evaluation => "an evaluation shard",
        }
    }

    /// The kind of the folder `dir`, by the marker it holds.
    pub fn of(dir: &Path) -> Option<ShardKind> {
        Self::ALL
            .into_iter()
            .find(|k| dir.join(k.marker()).is_file())
    }
}

/// What `merge` wrote.
#[derive(Debug)]
pub enum Merged {
    Features(Box<Sidecar>),
    Queries(QuerySetSummary),
    Evaluation(Box<ListedReport>),
}

/// Merges the shard folders `dirs` (any order) into `out`, after checking they are all of one
/// kind; each kind's merge then checks that they are every shard of one input with the same
/// parameters. On any refusal `out` is left as it was.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, ExperimentError> {
    let Some(first) = dirs.first() else {
        return Err(ExperimentError::InvalidArgument(
            "no shard folders to merge".into(),
        ));
    };
    let kind_of = |dir: &PathBuf| {
        ShardKind::of(dir).ok_or_else(|| ExperimentError::Shard {
            path: dir.clone(),
            reason: format!(
                "holds none of {}: not the output of extract, queries or evaluate --queries",
                ShardKind::ALL.map(|k| k.marker()).join(", ")
            ),
        })
    };
    let kind = kind_of(first)?;
    for dir in dirs {
        let k = kind_of(dir)?;
        if k != kind {
            return Err(ExperimentError::Shard {
                path: dir.clone(),
                reason: format!(
                    "{} ({}), but {} is {} ({}): merge one kind of shard at a time",
                    k.name(),
                    k.marker(),
                    first.display(),
                    kind.name(),
                    kind.marker()
                ),
            });
        }
    }
    Ok(match kind {
        ShardKind::Features => Merged::Features(Box::new(merge_shards(dirs, out)?)),
        ShardKind::Queries => Merged::Queries(merge_query_sets(dirs, out)?),
        ShardKind::Evaluation => Merged::Evaluation(Box::new(merge_listed(dirs, out)?)),
    })
}
