//! The training rows: degraded and shifted copies of every training song, extracted (and
//! cached) like the clean features and stacked under them with the same labels, as chunk rows or
//! as window sums of them.

use super::cache::features_dir;
use super::Progress;
use crate::config::ExperimentConfig;
use crate::dataset::{queries, Catalog, Song};
use crate::error::ExperimentError;
use crate::features::{extract_with, AudioTransform, FeatureSet, TransformFn};
use ndarray::{s, Array2, ArrayView2, Axis};
use std::ops::Range;
use std::path::Path;

/// The training matrix: the song features plus any extra copies, same labels.
pub struct TrainingRows {
    /// What the trainer fits: chunk vectors, or sums of `window` consecutive ones.
    pub features: Array2<f32>,
    pub labels: Vec<usize>,
    /// Chunks summed in each row (1: the seed's chunk rows).
    pub window: usize,
    /// The chunk rows behind window sums (`None`: `features` are the chunk rows).
    chunks: Option<Array2<f32>>,
}

impl TrainingRows {
    /// The clean rows only.
    pub fn clean(set: &FeatureSet) -> Self {
        Self {
            features: set.features.clone(),
            labels: set.labels.clone(),
            window: 1,
            chunks: None,
        }
    }

    /// The chunk rows (clean and copies): what the quantizer calibrates its input range on,
    /// since the circuit quantizes chunk vectors before it sums them.
    pub fn chunk_rows(&self) -> ArrayView2<'_, f32> {
        self.chunks.as_ref().unwrap_or(&self.features).view()
    }
}

/// One song's consecutive chunk rows in one copy's matrix.
struct Run {
    copy: usize,
    rows: Range<usize>,
    label: usize,
}

/// Extracts one augmented copy of the songs of `catalog` per `augmentation.copies` entry and
/// one shifted clean copy per `augmentation.shifts` entry, stacks the copies of `set`'s songs
/// under its clean rows and, with `augmentation.windows`, sums them into windows. `catalog` is
/// every extracted song (a superset of `set` when songs are kept out of the catalogue), so the
/// copies' cache is the same whichever songs a config trains on. A song whose copy failed
/// keeps its other rows.
pub fn training_rows(
    config: &ExperimentConfig,
    root: &Path,
    catalog: &Catalog,
    set: &FeatureSet,
    progress: &Progress,
) -> Result<TrainingRows, ExperimentError> {
    let aug = &config.augmentation;
    let window = config.window_chunks();
    if aug.copies.is_empty() && aug.shifts.is_empty() && window.is_none() {
        return Ok(TrainingRows::clean(set));
    }
    let sr = config.features.sample_rate();
    let mut transforms: Vec<(String, Box<TransformFn<'_>>)> = Vec::new();
    for (i, &condition) in aug.copies.iter().enumerate() {
        // The k-th copy of a condition draws its own noise; numbering per condition keeps the
        // cache of a copy valid when other conditions are added to the list.
        let copy = aug.copies[..i].iter().filter(|&&c| c == condition).count();
        transforms.push((
            format!("augment-{}-seed{}-copy{copy}", condition.name(), aug.seed),
            Box::new(move |song: &Song, samples: &[f32]| {
                queries::augment(samples, sr, condition, aug.seed, copy, song.index)
                    .map_err(|e| e.to_string())
            }),
        ));
    }
    for &shift in &aug.shifts {
        let skip = (shift * config.features.chunk_samples as f64).round() as usize;
        transforms.push((
            format!("shift-{shift}"),
            Box::new(move |_: &Song, samples: &[f32]| {
                Ok(samples[skip.min(samples.len())..].to_vec())
            }),
        ));
    }

    let mut copies = vec![set.features.view()];
    let mut runs: Vec<Run> = set
        .sidecar
        .songs
        .iter()
        .map(|r| Run {
            copy: 0,
            rows: r.first_row..r.first_row + r.n_chunks,
            label: r.song.index,
        })
        .collect();
    // Labels by track id: a song that failed in a copy is simply absent from it.
    let index = set.labels_by_track();
    let mut extracted = Vec::new();
    for (key, apply) in &transforms {
        progress.stage(super::Stage::Augment);
        let transform = AudioTransform {
            key: key.clone(),
            apply: apply.as_ref(),
        };
        let dir = features_dir(config, root, Some(&transform.key));
        let (copy_set, _) = extract_with(
            root,
            catalog,
            &config.load_options(),
            &config.features,
            Some(&transform),
            &dir,
            progress.on_song,
        )?;
        for r in &copy_set.sidecar.songs {
            if let Some(&label) = index.get(r.song.track_id.as_str()) {
                runs.push(Run {
                    copy: extracted.len() + 1,
                    rows: r.first_row..r.first_row + r.n_chunks,
                    label,
                });
            }
        }
        extracted.push(copy_set.features);
    }
    copies.extend(extracted.iter().map(|f| f.view()));

    let chunk_blocks: Vec<_> = runs
        .iter()
        .map(|r| copies[r.copy].slice(s![r.rows.clone(), ..]))
        .collect();
    let chunks = ndarray::concatenate(Axis(0), &chunk_blocks)
        .expect("every block has the feature dimension");
    let chunk_labels = runs
        .iter()
        .flat_map(|r| std::iter::repeat_n(r.label, r.rows.len()))
        .collect();
    let Some(window) = window else {
        return Ok(TrainingRows {
            features: chunks,
            labels: chunk_labels,
            window: 1,
            chunks: None,
        });
    };
    let stride = aug.windows.as_ref().map_or(1, |w| w.stride);
    let (features, labels) = window_sums(&copies, &runs, window, stride);
    Ok(TrainingRows {
        features,
        labels,
        window,
        chunks: Some(chunks),
    })
}

/// The sums of `window` consecutive rows of every run, starting every `stride` rows; a run
/// shorter than the window gives one row, its whole sum. Sums are taken in f64.
fn window_sums(
    copies: &[ArrayView2<f32>],
    runs: &[Run],
    window: usize,
    stride: usize,
) -> (Array2<f32>, Vec<usize>) {
    let d = copies[0].ncols();
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for run in runs.iter().filter(|r| !r.rows.is_empty()) {
        let rows = copies[run.copy].slice(s![run.rows.clone(), ..]);
        let n = rows.nrows();
        let starts = if n <= window {
            vec![0]
        } else {
            (0..=n - window).step_by(stride).collect()
        };
        for start in starts {
            let mut sum = vec![0.0f64; d];
            for row in rows.slice(s![start..(start + window).min(n), ..]).rows() {
                sum.iter_mut()
                    .zip(row)
                    .for_each(|(s, &x)| *s += f64::from(x));
            }
            data.extend(sum.iter().map(|&v| v as f32));
            labels.push(run.label);
        }
    }
    let features = Array2::from_shape_vec((labels.len(), d), data).expect("rows of d values");
    (features, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn windows_sum_within_each_run_and_never_across_runs() {
        // Copy 0: song 0 has rows 0..4, song 1 rows 4..6; copy 1: song 0 again (rows 0..3).
        let clean = array![
            [1.0f32, 10.0],
            [2.0, 20.0],
            [3.0, 30.0],
            [4.0, 40.0],
            [5.0, 50.0],
            [6.0, 60.0]
        ];
        let shifted = array![[0.5f32, 5.0], [1.5, 15.0], [2.5, 25.0]];
        let copies = [clean.view(), shifted.view()];
        let runs = [
            Run {
                copy: 0,
                rows: 0..4,
                label: 0,
            },
            Run {
                copy: 0,
                rows: 4..6,
                label: 1,
            },
            Run {
                copy: 1,
                rows: 0..3,
                label: 0,
            },
        ];
        let (x, y) = window_sums(&copies, &runs, 3, 1);
        // Song 0: windows at 0 and 1; song 1 is shorter than the window: one whole sum;
        // the shifted copy has exactly one window.
        assert_eq!(y, vec![0, 0, 1, 0]);
        assert_eq!(
            x,
            array![[6.0f32, 60.0], [9.0, 90.0], [11.0, 110.0], [4.5, 45.0]]
        );
        let (x, y) = window_sums(&copies, &runs, 2, 2);
        assert_eq!(y, vec![0, 0, 1, 0]);
        assert_eq!(x.row(1).to_vec(), vec![7.0, 70.0]);
    }

    /// A model fitted on 3-chunk sums scores chunks: its bias is the fitted one over 3, so the
    /// three chunk scores of a window add up to the fitted score of the window's sum, and its
    /// quantizer's input range is the chunks' (what the circuit quantizes), not the sums'.
    #[test]
    fn a_window_model_scores_chunks_and_sums_as_fitted() {
        use crate::config::QuantizationConfig;
        use crate::experiment::train::train_models;
        use crate::model::{fit, LogisticParams};
        let chunks = Array2::from_shape_fn((24, 2), |(i, f)| {
            let class = (i / 12) as f32;
            (i as f32 * 0.7 + f as f32).sin() + 3.0 * class * (f as f32 - 0.5)
        });
        let copies = [chunks.view()];
        let runs = [
            Run {
                copy: 0,
                rows: 0..12,
                label: 0,
            },
            Run {
                copy: 0,
                rows: 12..24,
                label: 1,
            },
        ];
        let (sums, labels) = window_sums(&copies, &runs, 3, 1);
        assert_eq!(sums.nrows(), 20);
        let params = LogisticParams::default();
        let fitted = fit(sums.view(), &labels, 2, &params).unwrap();
        let rows = TrainingRows {
            features: sums.clone(),
            labels,
            window: 3,
            chunks: Some(chunks.clone()),
        };
        let quantization = QuantizationConfig {
            n_bits: vec![8],
            standardize_inputs: true,
            ..Default::default()
        };
        let models = train_models(&rows, 2, &params, &quantization).unwrap();
        let window = chunks.slice(s![4..7, ..]);
        let chunk_scores = models
            .float
            .decision_function(window)
            .unwrap()
            .sum_axis(Axis(0));
        let sum = window.sum_axis(Axis(0)).insert_axis(Axis(0));
        let window_score = fitted.decision_function(sum.view()).unwrap();
        for (a, b) in chunk_scores.iter().zip(window_score.row(0)) {
            assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
        let q = &models.quantized[0].model.input_quantizers()[0];
        let column = chunks.column(0);
        let (lo, hi) = column.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| {
            (lo.min(f64::from(v)), hi.max(f64::from(v)))
        });
        assert!(
            (q.rmin - lo).abs() < 1e-6 && (q.rmax - hi).abs() < 1e-6,
            "{q:?}"
        );
    }

    #[test]
    fn chunk_rows_are_the_calibration_set_of_window_rows() {
        let rows = TrainingRows {
            features: array![[3.0f32]],
            labels: vec![0],
            window: 2,
            chunks: Some(array![[1.0f32], [2.0]]),
        };
        assert_eq!(rows.chunk_rows().nrows(), 2);
        let set = FeatureSet::for_tests(array![[1.0f32], [2.0]], vec![0, 0], "t");
        let clean = TrainingRows::clean(&set);
        assert_eq!(clean.window, 1);
        assert_eq!(clean.chunk_rows(), clean.features.view());
    }
}
