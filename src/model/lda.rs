//! Linear discriminant analysis as a closed-form backend (issue 18): class means and one shared
//! within-class covariance, shrunk towards a multiple of the identity by the Ledoit–Wolf
//! formula, solved once — O(n·d² + C·d²), no iterations. Its scores
//! w_c = Σ⁻¹μ_c, b_c = −½ μ_cᵀΣ⁻¹μ_c + ln(n_c/n) form a linear layer like logistic regression's,
//! so quantization, both FHE circuits and the service take it unchanged. It works on the
//! standardised problem the trainer is given and ignores C, max_iter and tol.

use ndarray::{Array1, Array2};

use super::logistic::{LogisticParams, Problem, TrainOutput, Trainer};
use crate::error::ModelError;

/// The LDA backend (`--backend lda`).
pub struct LdaTrainer;

impl Trainer for LdaTrainer {
    fn train(
        &self,
        problem: &Problem<'_>,
        _params: &LogisticParams,
    ) -> Result<TrainOutput, ModelError> {
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
        let mut weights = Array2::<f64>::zeros((d, k));
        let mut bias = Array1::<f64>::zeros(k);
        for c in 0..k {
            let w = solve(&chol, means.row(c).to_vec());
            let quad: f64 = w.iter().zip(means.row(c)).map(|(a, b)| a * b).sum();
            bias[c] = -0.5 * quad + (counts[c].max(1) as f64 / n as f64).ln();
            weights.column_mut(c).assign(&Array1::from(w));
        }
        Ok(TrainOutput {
            weights,
            bias,
            iterations: Some(0),
        })
    }
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
fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
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
fn solve(l: &Array2<f64>, mut b: Vec<f64>) -> Vec<f64> {
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
