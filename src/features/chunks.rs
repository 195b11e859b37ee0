//! The seed's chunk features: consecutive 0.5 s windows, MFCC summed over frames.

use super::{FeatureParams, MeanNorm, Mfcc, NormCoefficients};
use crate::error::FeatureError;
use ndarray::Array2;

/// One feature vector per whole chunk: row i is the MFCC of
/// `y[i*hop .. i*hop + chunk_samples]` (computed on the chunk alone, with its own centre
/// padding) summed over frames. Shape (n_chunks, n_mfcc). Errors if `y` is shorter than one chunk.
///
/// This is the seed's `compute_features` (docs/ARCHITECTURE.md §2): a trailing partial chunk
/// is dropped. The frame sum is accumulated in float64 and stored as float32 (the seed sums in
/// float32; the two agree to ~1e-6 relative). `params.mfcc` must be the parameters `mfcc` was
/// built with, so a feature file's sidecar cannot describe a different extractor.
pub fn chunk_features(
    mfcc: &Mfcc,
    params: &FeatureParams,
    y: &[f32],
) -> Result<Array2<f32>, FeatureError> {
    let (len, hop) = (params.chunk_samples, params.chunk_hop);
    if len == 0 || hop == 0 {
        return Err(FeatureError::InvalidParams {
            param: "chunk_samples",
            reason: format!("chunks: chunk_samples ({len}) and chunk_hop ({hop}) must be > 0"),
        });
    }
    if params.mfcc != *mfcc.params() {
        return Err(FeatureError::InvalidParams {
 param: "mfcc",
 reason: "chunks: FeatureParams.mfcc differs from the parameters the Mfcc extractor was built with".into(),
});
    }
    if y.len() < len {
        return Err(FeatureError::TooShort {
            samples: y.len(),
            needed: len,
        });
    }
    // A branch-free OR over all samples vectorises; only a failure pays for the search.
    if y.iter().fold(false, |bad, v| bad | !v.is_finite()) {
        if let Some((index, &value)) = y.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(FeatureError::NonFiniteAudio { index, value });
        }
    }
    params.check_frame_stats()?;
    let n_chunks = 1 + (y.len() - len) / hop;
    let d = params.dim();
    let mut out = vec![0f32; n_chunks * d];
    let mut scratch = mfcc.scratch();
    for (i, row) in out.chunks_exact_mut(d).enumerate() {
        let chunk = &y[i * hop..i * hop + len];
        mfcc.frame_stats_with(chunk, &mut scratch, &params.frame_stats, row);
    }
    let mut features =
        Array2::from_shape_vec((n_chunks, d), out).map_err(|e| FeatureError::InvalidParams {
            param: "chunk_samples",
            reason: format!("chunks: feature matrix shape: {e}"),
        })?;
    if let (Some(norm), Some(columns)) = (params.mean_norm, params.sum_columns()) {
        subtract_window_mean(&mut features, norm, columns)?;
    }
    Ok(features)
}

/// [`MeanNorm`] in place on the sum block `sum` (c0 is its first column): prefix sums in f64
/// per normalised column, so the cost is linear in the number of chunks whatever the window.
fn subtract_window_mean(
    x: &mut Array2<f32>,
    norm: MeanNorm,
    sum: std::ops::Range<usize>,
) -> Result<(), FeatureError> {
    if norm.window_chunks == 0 {
        return Err(FeatureError::InvalidParams {
            param: "mean_norm.window_chunks",
            reason: "mean_norm.window_chunks must be ≥ 1".into(),
        });
    }
    let n = x.nrows();
    let w = norm.window_chunks.min(n);
    let columns = match norm.coefficients {
        NormCoefficients::C0 => sum.start..(sum.start + 1).min(sum.end),
        NormCoefficients::All => sum,
    };
    let mut prefix = vec![0f64; n + 1];
    for c in columns {
        let mut column = x.column_mut(c);
        for (i, &v) in column.iter().enumerate() {
            prefix[i + 1] = prefix[i] + f64::from(v);
        }
        for (i, v) in column.iter_mut().enumerate() {
            let start = i.saturating_sub(w / 2).min(n - w);
            let mean = (prefix[start + w] - prefix[start]) / w as f64;
            *v = (f64::from(*v) - mean) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{FrameStat, MfccParams};

    fn setup() -> (Mfcc, FeatureParams) {
        let params = FeatureParams::default();
        (Mfcc::new(params.mfcc.clone()).unwrap(), params)
    }

    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (i as f32 * 0.031).sin() + 0.1 * (i as f32 * 0.47).cos())
            .collect()
    }

    #[test]
    fn drops_the_partial_chunk_and_matches_per_chunk_sums() {
        let (mfcc, params) = setup();
        let y = signal(3 * 11_025 + 5000);
        let f = chunk_features(&mfcc, &params, &y).unwrap();
        assert_eq!(f.dim(), (3, 20));
        for i in 0..3 {
            let m = mfcc.compute(&y[i * 11_025..(i + 1) * 11_025]);
            assert_eq!(m.ncols(), 22);
            for k in 0..20 {
                let want: f64 = m.row(k).iter().map(|&v| f64::from(v)).sum();
                let got = f64::from(f[(i, k)]);
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(100.0),
                    "chunk {i} coef {k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn overlapping_hop_gives_more_chunks() {
        let (mfcc, mut params) = setup();
        params.chunk_hop = 5000;
        let y = signal(30_000);
        let f = chunk_features(&mfcc, &params, &y).unwrap();
        assert_eq!(f.nrows(), 1 + (30_000 - 11_025) / 5000);
        // Chunk 1 starts at sample 5000, whatever the hop of the others.
        let mut one = vec![0f32; 20];
        mfcc.frame_sum_with(&y[5000..16_025], &mut mfcc.scratch(), &mut one);
        assert_eq!(f.row(1).to_vec(), one);
    }

    #[test]
    fn c0_mean_norm_makes_features_independent_of_the_level() {
        let (mfcc, plain) = setup();
        let norm = FeatureParams {
            mean_norm: Some(MeanNorm {
                coefficients: NormCoefficients::C0,
                window_chunks: 4,
            }),
            ..plain.clone()
        };
        let y = signal(6 * 11_025);
        let quiet: Vec<f32> = y.iter().map(|v| v * 10f32.powf(-30.0 / 20.0)).collect();
        let diff = |p: &FeatureParams, col: usize| {
            let (a, b) = (
                chunk_features(&mfcc, p, &y).unwrap(),
                chunk_features(&mfcc, p, &quiet).unwrap(),
            );
            (0..a.nrows())
                .map(|i| (a[(i, col)] - b[(i, col)]).abs())
                .fold(0f32, f32::max)
        };
        // −30 dB moves every frame's c0 by 30·√128 dB, summed over 22 frames: thousands.
        assert!(diff(&plain, 0) > 1000.0, "{}", diff(&plain, 0));
        assert!(diff(&norm, 0) < 0.5, "{}", diff(&norm, 0));
        // The other coefficients never moved, and c0-only normalisation leaves them alone.
        assert!(diff(&plain, 5) < 0.5 && diff(&norm, 5) < 0.5);
    }

    #[test]
    fn window_mean_is_centred_and_shifted_inwards_at_the_edges() {
        let mut x = Array2::from_shape_fn((6, 2), |(i, c)| (i * (c + 1)) as f32);
        let norm = MeanNorm {
            coefficients: NormCoefficients::All,
            window_chunks: 3,
        };
        subtract_window_mean(&mut x, norm, 0..2).unwrap();
        // Row 0: window rows 0..3 (mean 1); row 3: rows 2..5 (mean 3); row 5: rows 3..6 (mean 4).
        assert_eq!(x.column(0).to_vec(), vec![-1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(x.column(1).to_vec(), vec![-2.0, 0.0, 0.0, 0.0, 0.0, 2.0]);
        // A window longer than the recording is the recording's own mean.
        let mut y = Array2::from_shape_fn((3, 1), |(i, _)| i as f32);
        subtract_window_mean(
            &mut y,
            MeanNorm {
                window_chunks: 30,
                ..norm
            },
            0..1,
        )
        .unwrap();
        assert_eq!(y.column(0).to_vec(), vec![-1.0, 0.0, 1.0]);
        let zero = MeanNorm {
            window_chunks: 0,
            ..norm
        };
        assert!(subtract_window_mean(&mut y, zero, 0..1).is_err());
    }

    #[test]
    fn errors_on_short_nonfinite_or_mismatched_input() {
        let (mfcc, params) = setup();
        assert!(matches!(
            chunk_features(&mfcc, &params, &[0.0; 11_024]),
            Err(FeatureError::TooShort {
                samples: 11_024,
                needed: 11_025
            })
        ));
        let mut y = signal(11_025);
        y[77] = f32::NAN;
        assert!(matches!(
            chunk_features(&mfcc, &params, &y),
            Err(FeatureError::NonFiniteAudio { index: 77, .. })
        ));
        let other = FeatureParams {
            mfcc: MfccParams {
                n_mfcc: 13,
                ..MfccParams::default()
            },
            ..params.clone()
        };
        assert!(matches!(
            chunk_features(&mfcc, &other, &signal(11_025)),
            Err(FeatureError::InvalidParams { .. })
        ));
        let zero_hop = FeatureParams {
            chunk_hop: 0,
            ..params
        };
        assert!(matches!(
            chunk_features(&mfcc, &zero_hop, &signal(11_025)),
            Err(FeatureError::InvalidParams { .. })
        ));
    }

    #[test]
    fn frame_stats_blocks_match_the_per_frame_mfcc() {
        let (mfcc, seed) = setup();
        let params = FeatureParams {
            frame_stats: vec![FrameStat::Std, FrameStat::Sum, FrameStat::Delta],
            ..seed.clone()
        };
        assert_eq!(params.dim(), 60);
        assert_eq!(params.sum_columns(), Some(20..40));
        let y = signal(2 * 11_025);
        let f = chunk_features(&mfcc, &params, &y).unwrap();
        let plain = chunk_features(&mfcc, &seed, &y).unwrap();
        assert_eq!(f.dim(), (2, 60));
        for i in 0..2 {
            let m = mfcc.compute(&y[i * 11_025..(i + 1) * 11_025]);
            let t = m.ncols() as f64;
            for k in 0..20 {
                let row: Vec<f64> = m.row(k).iter().map(|&v| f64::from(v)).collect();
                let mean = row.iter().sum::<f64>() / t;
                let std = (row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t).sqrt();
                let delta = row.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (t - 1.0);
                let close = |got: f32, want: f64| {
                    (f64::from(got) - want).abs() <= 1e-3 * want.abs().max(1.0)
                };
                assert!(
                    close(f[(i, k)], std),
                    "chunk {i} std {k}: {} vs {std}",
                    f[(i, k)]
                );
                assert!(close(f[(i, 40 + k)], delta), "chunk {i} delta {k}");
                // The sum block is the seed's feature exactly.
                assert_eq!(f[(i, 20 + k)], plain[(i, k)]);
            }
        }
        // The spread of a frame's envelope does not move with the level.
        let quiet: Vec<f32> = y.iter().map(|v| v * 0.01).collect();
        let g = chunk_features(&mfcc, &params, &quiet).unwrap();
        for k in (0..20).chain(40..60) {
            assert!(
                (f[(0, k)] - g[(0, k)]).abs() < 1e-2 * f[(0, k)].abs().max(1.0),
                "{k}"
            );
        }
    }

    #[test]
    fn frame_stats_must_be_a_list_without_repeats_with_a_sum_to_normalise() {
        let (mfcc, seed) = setup();
        let y = signal(11_025);
        for stats in [vec![], vec![FrameStat::Std, FrameStat::Std]] {
            let p = FeatureParams {
                frame_stats: stats,
                ..seed.clone()
            };
            assert!(matches!(
                chunk_features(&mfcc, &p, &y),
                Err(FeatureError::InvalidParams {
                    param: "frame_stats",
                    ..
                })
            ));
        }
        let no_sum = FeatureParams {
            frame_stats: vec![FrameStat::Std],
            mean_norm: Some(MeanNorm {
                coefficients: NormCoefficients::C0,
                window_chunks: 30,
            }),
            ..seed
        };
        let err = no_sum.check_frame_stats().unwrap_err().to_string();
        assert!(err.contains("sum"), "{err}");
    }
}
