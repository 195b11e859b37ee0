//! The report of `fhe-shazam bench extract`: per-song time of each feature stage
//! (report.json, report.md).

use super::io;
use super::markdown::Table;
use super::Provenance;
use crate::error::ReportError;
use crate::eval::metrics::quantile;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Median, mean and 95th percentile of per-song times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub median_ms: f64,
    pub mean_ms: f64,
    pub p95_ms: f64,
}

impl StageStats {
    /// The statistics of `ms` (all zero for no samples).
    pub fn of(ms: &[f64]) -> Self {
        Self {
            median_ms: quantile(ms, 0.5),
            mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
            p95_ms: quantile(ms, 0.95),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractBench {
    pub dataset: PathBuf,
    pub songs: usize,
    pub mean_song_seconds: f64,
    /// One thread, per song.
    pub decode: StageStats,
    pub resample: StageStats,
    pub features: StageStats,
    /// Whole pipeline over all songs with every core (rayon), per song.
    pub all_threads_ms_per_song: f64,
    pub threads: usize,
    pub provenance: Provenance,
}

impl ExtractBench {
    pub fn markdown(&self) -> String {
        let mut table = Table::new(["stage (1 thread)", "median ms/song", "mean", "p95"]);
        for (name, s) in [
            ("decode", &self.decode),
            ("resample to 22050 Hz", &self.resample),
            ("MFCC chunk features", &self.features),
        ] {
            table.row([
                name.to_string(),
                format!("{:.2}", s.median_ms),
                format!("{:.2}", s.mean_ms),
                format!("{:.2}", s.p95_ms),
            ]);
        }
        format!(
            "# Extraction benchmark\n\n{} songs of {} (mean {:.1} s of audio each).\n\n{table}\n\
             Whole pipeline, {} threads: {:.2} ms per song.\n\n{}",
            self.songs,
            self.dataset.display(),
            self.mean_song_seconds,
            self.threads,
            self.all_threads_ms_per_song,
            self.provenance.footer()
        )
    }

    /// Writes `dir/report.json` and `dir/report.md`; returns the Markdown.
    pub fn write(&self, dir: &Path) -> Result<String, ReportError> {
        let md = self.markdown();
        let json = dir.join("report.json");
        fsutil::write_json_atomic(&json, self).map_err(io(&json))?;
        let report = dir.join("report.md");
        fsutil::write_atomic(&report, md.as_bytes()).map_err(io(&report))?;
        Ok(md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_stats_are_nearest_rank_and_empty_is_zero() {
        let s = StageStats::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median_ms, s.mean_ms, s.p95_ms), (3.0, 2.5, 4.0));
        assert_eq!(StageStats::of(&[]).mean_ms, 0.0);
    }
}
