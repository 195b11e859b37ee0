//! Linear discriminant analysis as a closed-form backend (issue 18): class means and one shared
//! within-class covariance, shrunk towards a multiple of the identity by the Ledoit–Wolf
//! formula, solved once — O(n·d² + C·d²), no iterations. Its scores
//! w_c = Σ⁻¹μ_c, b_c = −½ μ_cᵀΣ⁻¹μ_c + ln(n_c/n) form a linear layer like logistic regression's,
//! so quantization, both FHE circuits and the service take it unchanged. It works on the
//! standardised problem the trainer is given and ignores C, max_iter and tol.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::check_features;
use super::logistic::{
    check_training_set, FloatModel, LogisticParams, Problem, Standardizer, TrainOutput, Trainer,
};
use crate::error::ModelError;

/// The LDA backend (`--backend lda`).
pub struct LdaTrainer;

impl Trainer for LdaTrainer {
    fn train(
        &self,
        problem: &Problem<'_>,
        _params: &LogisticParams,
    ) -> Result<TrainOutput, ModelError> {
        let fit = Lda::fit(problem)?;
        let (weights, bias) = fit.layer(&fit.means, &fit.counts);
        Ok(TrainOutput {
            weights,
            bias,
            iterations: Some(0),
        })
    }
}

/// A fitted LDA on standardised features: class means, their row counts and the Cholesky
/// factor of the shrunk shared covariance.
struct Lda {
    /// C × d.
    means: Array2<f64>,
    counts: Vec<usize>,
    chol: Array2<f64>,
    n_rows: usize,
}

impl Lda {
    fn fit(problem: &Problem<'_>) -> Result<Self, ModelError> {
        let (n, d) = problem.x.dim();
        let k = problem.n_classes;
        let mut means = Array2::<f64>::zeros((k, d));
        let mut counts = vec![0usize; k];
        for (row, &c) in problem.x.rows().into_iter().zip(problem.y) {
            means.row_mut(c).scaled_add(1.0, &row);
            counts[c] += 1;
        }
        for (mut m, &count) in means.rows_mut().into_iter().zip(&counts) {
            m /= count.max(1) as f64;
        }
        // Within-class scatter of the centred rows, and Σ‖x‖⁴ for the Ledoit–Wolf estimate.
        let mut centred = problem.x.to_owned();
        for (mut row, &c) in centred.rows_mut().into_iter().zip(problem.y) {
            row -= &means.row(c);
        }
        let s = centred.t().dot(&centred) / n as f64;
        let fourth: f64 = centred.rows().into_iter().map(|r| r.dot(&r).powi(2)).sum();
        let cov = shrink(&s, fourth, n);
        let chol = cholesky(&cov).ok_or_else(|| ModelError::Backend {
            backend: "lda",
            reason: "the shrunk within-class covariance is not positive definite".into(),
        })?;
        Ok(Self {
            means,
            counts,
            chol,
            n_rows: n,
        })
    }

    /// The linear layer of classes with these means and counts under this covariance:
    /// w_c = Σ⁻¹μ_c, b_c = −½ μ_cᵀΣ⁻¹μ_c + ln(n_c/n).
    fn layer(&self, means: &Array2<f64>, counts: &[usize]) -> (Array2<f64>, Array1<f64>) {
        let (k, d) = means.dim();
        let mut weights = Array2::<f64>::zeros((d, k));
        let mut bias = Array1::<f64>::zeros(k);
        for c in 0..k {
            let w = solve(&self.chol, means.row(c).to_vec());
            let quad: f64 = w.iter().zip(means.row(c)).map(|(a, b)| a * b).sum();
            bias[c] = -0.5 * quad + (counts[c].max(1) as f64 / self.n_rows as f64).ln();
            weights.column_mut(c).assign(&Array1::from(w));
        }
        (weights, bias)
    }
}

/// Adding songs to an LDA catalogue without refitting it: LDA fitted (standardisation
/// included) on `x`/`y` (`n_classes` songs), then one class per entry of `added`, each
/// defined by the mean of its rows alone, under the fitted standardisation and covariance.
/// Returns the model of all `n_classes + added.len()` classes on raw features (the added
/// songs last, in order). This is what an `add-songs` command would do; refitting on all
/// rows is the comparison (`fhe-shazam bench train --backend lda --add-songs K`).
pub fn fit_then_add(
    x: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    added: &[ArrayView2<f32>],
) -> Result<FloatModel, ModelError> {
    check_training_set(x, y, n_classes)?;
    let scaler = Standardizer::fit(x, true, true);
    let xs = scaler.apply(x);
    let lda = Lda::fit(&Problem {
        x: xs.view(),
        y,
        n_classes,
    })?;
    let d = x.ncols();
    let mut means = Array2::<f64>::zeros((added.len(), d));
    let mut counts = Vec::with_capacity(added.len());
    for (i, rows) in added.iter().enumerate() {
        check_features(*rows, d, "added song features")?;
        if rows.nrows() == 0 {
            return Err(ModelError::InvalidParams {
                param: "added",
                reason: format!("added song {i} has no rows"),
            });
        }
        means
            .row_mut(i)
            .assign(&scaler.apply(*rows).mean_axis(Axis(0)).expect("≥ 1 row"));
        counts.push(rows.nrows());
    }
    let means = ndarray::concatenate(Axis(0), &[lda.means.view(), means.view()])
        .expect("same feature count");
    let counts = [lda.counts.as_slice(), &counts].concat();
    let (weights, bias) = lda.layer(&means, &counts);
    let (weights, bias) = scaler.unfold(weights, bias);
    FloatModel::new(weights, bias)
}

/// The least shrinkage applied: keeps the covariance positive definite at no visible cost.
const MIN_SHRINKAGE: f64 = 1e-6;

/// Ledoit–Wolf shrinkage of the sample covariance `s` (d × d, of n centred rows with
/// Σ‖x_i‖⁴ = `fourth`): (1 − α)·S + α·μI with μ = tr S / d and α = min(b̄², δ²)/δ², where
/// δ² = ‖S − μI‖²/d and b̄² = (Σ‖x_i‖⁴ − n‖S‖²)/(n²·d) (Frobenius norms); α is at least
/// [`MIN_SHRINKAGE`] so a rank-deficient S (fewer rows than features) is still invertible.
fn shrink(s: &Array2<f64>, fourth: f64, n: usize) -> Array2<f64> {
    let d = s.nrows();
    let mu = s.diag().sum() / d as f64;
    let frob = s.iter().map(|v| v * v).sum::<f64>();
    let mut off = s.clone();
    off.diag_mut().mapv_inplace(|v| v - mu);
    let delta = off.iter().map(|v| v * v).sum::<f64>() / d as f64;
    let n = n as f64;
    let b_bar = ((fourth - n * frob) / (n * n * d as f64)).max(0.0);
    let alpha = if delta > 0.0 {
        (b_bar.min(delta) / delta).clamp(MIN_SHRINKAGE, 1.0)
    } else {
        1.0
    };
    let mut out = s * (1.0 - alpha);
    out.diag_mut()
        .mapv_inplace(|v| v + alpha * mu.max(f64::MIN_POSITIVE));
    out
}

/// Lower-triangular L with L·Lᵀ = a, or None if a is not positive definite.
pub(crate) fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let d = a.nrows();
    let mut l = Array2::<f64>::zeros((d, d));
    for i in 0..d {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum();
            if i == j {
                let v = a[[i, i]] - sum;
                if !(v > 0.0 && v.is_finite()) {
                    return None;
                }
                l[[i, i]] = v.sqrt();
            } else {
                l[[i, j]] = (a[[i, j]] - sum) / l[[j, j]];
            }
        }
    }
    Some(l)
}

/// x with L·Lᵀ·x = b.
pub(crate) fn solve(l: &Array2<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let d = b.len();
    for i in 0..d {
        let sum: f64 = (0..i).map(|k| l[[i, k]] * b[k]).sum();
        b[i] = (b[i] - sum) / l[[i, i]];
    }
    for i in (0..d).rev() {
        let sum: f64 = (i + 1..d).map(|k| l[[k, i]] * b[k]).sum();
        b[i] = (b[i] - sum) / l[[i, i]];
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Adding a song by its mean gives the class a refit would give when the covariance is
    /// the same: here every class has the same spread, so the added model and the refit
    /// agree on every row, and the added song's own rows are recognised.
    #[test]
    fn a_song_added_by_its_mean_is_recognised_like_a_refit() {
        let centers = [[0.0f32, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]];
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for (c, center) in centers.iter().enumerate() {
            for i in 0..40 {
                let t = i as f32 * 0.7;
                rows.push([center[0] + t.sin(), center[1] + (1.3 * t).cos()]);
                y.push(c);
            }
        }
        let x = Array2::from_shape_vec((rows.len(), 2), rows.concat()).unwrap();
        let base = 120; // the first three songs
        let added = fit_then_add(
            x.slice(ndarray::s![..base, ..]),
            &y[..base],
            3,
            &[x.slice(ndarray::s![base.., ..])],
        )
        .unwrap();
        assert_eq!(added.n_classes(), 4);
        assert_eq!(added.predict(x.view()).unwrap(), y);
        let params = LogisticParams {
            backend: crate::model::Backend::Lda,
            ..LogisticParams::default()
        };
        let refit = crate::model::fit(x.view(), &y, 4, &params).unwrap();
        assert_eq!(refit.predict(x.view()).unwrap(), y);
        let wrong = Array2::<f32>::zeros((0, 2));
        assert!(fit_then_add(x.view(), &y, 4, &[wrong.view()]).is_err());
    }

    #[test]
    fn cholesky_solves_a_positive_definite_system() {
        let a = array![[4.0, 2.0, 0.6], [2.0, 3.0, 0.4], [0.6, 0.4, 2.0]];
        let l = cholesky(&a).unwrap();
        assert!((l.dot(&l.t()) - &a).iter().all(|v| v.abs() < 1e-12));
        let x = solve(&l, vec![1.0, -2.0, 0.5]);
        let back = a.dot(&Array1::from(x));
        for (b, e) in back.iter().zip([1.0, -2.0, 0.5]) {
            assert!((b - e).abs() < 1e-12);
        }
        assert!(cholesky(&array![[1.0, 2.0], [2.0, 1.0]]).is_none());
    }

    #[test]
    fn shrinkage_keeps_a_well_estimated_covariance_and_fixes_a_singular_one() {
        // Many rows of independent unit features: S ≈ I already, little to shrink.
        let x = Array2::from_shape_fn((4000, 3), |(i, j)| {
            (((i * 7 + j * 13) % 17) as f64 - 8.0) / 4.9
        });
        let s = x.t().dot(&x) / 4000.0;
        let fourth: f64 = x.rows().into_iter().map(|r| r.dot(&r).powi(2)).sum();
        let shrunk = shrink(&s, fourth, 4000);
        assert!((shrunk - &s).iter().all(|v| v.abs() < 0.05));
        // Two rows in three dimensions: singular, shrinkage makes it invertible.
        let x: Array2<f64> = array![[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]];
        let s = x.t().dot(&x) / 2.0;
        let fourth: f64 = x.rows().into_iter().map(|r| r.dot(&r).powi(2)).sum();
        assert!(cholesky(&s).is_none());
        assert!(cholesky(&shrink(&s, fourth, 2)).is_some());
    }
}
