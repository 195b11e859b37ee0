//! FHE simulation: the exact integer circuit every encrypted result must equal, and the
//! predicted noise sampled onto it to estimate an error rate without encrypting.

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, Normal};

use super::{check_input_range, IntegerLinear, NoiseBudget, PrivacyPlan};
use crate::error::FheError;

/// Exact scores q_X · W + b (J × C) in i64; the layer's score bound (≤ 2^61) rules out
/// overflow.
pub fn clear_scores(layer: &IntegerLinear, q_x: ArrayView2<i64>) -> Result<Array2<i64>, FheError> {
    layer.validate()?;
    if q_x.ncols() != layer.features() {
        return Err(FheError::Shape {
            what: "query q_X",
            expected: (q_x.nrows(), layer.features()),
            found: q_x.dim(),
        });
    }
    check_input_range(q_x, layer.input_min, layer.input_max)?;
    Ok(q_x.dot(&layer.weights) + &layer.bias)
}

/// Checks decrypted scores against the exact ones: [`FheError::Mismatch`] with the count and
/// the first differing position.
pub fn compare(expected: &Array2<i64>, found: &Array2<i64>) -> Result<(), FheError> {
    compare_rounded(expected, found, 0)
}

/// Checks scores returned with `rounding_bits` = ρ of model privacy: each a multiple of 2^ρ
/// less than 2^ρ from the exact score (ρ = 0: equal).
pub fn compare_rounded(
    expected: &Array2<i64>,
    found: &Array2<i64>,
    rounding_bits: u32,
) -> Result<(), FheError> {
    if expected.dim() != found.dim() {
        return Err(FheError::Shape {
            what: "decrypted scores",
            expected: expected.dim(),
            found: found.dim(),
        });
    }
    let mut wrong = expected
        .indexed_iter()
        .zip(found.iter())
        .filter(|((_, &e), &f)| !rounded_from(e, f, rounding_bits));
    if let Some((((chunk, class), &e), &f)) = wrong.next() {
        return Err(FheError::Mismatch {
            count: 1 + wrong.count(),
            total: expected.len(),
            chunk,
            class,
            expected: e,
            found: f,
        });
    }
    Ok(())
}

/// Whether `found` is a multiple of 2^ρ less than 2^ρ from `exact`.
fn rounded_from(exact: i64, found: i64, rounding_bits: u32) -> bool {
    found % (1i64 << rounding_bits) == 0 && (found - exact).unsigned_abs() < 1u64 << rounding_bits
}

/// The scores a client of the model-privacy option decrypts, sampled: each exact score s
/// becomes 2^ρ·round((s·Δ + F) / (Δ·2^ρ)) with a fresh flood F uniform on [−A, A) — what
/// the server's reply decodes to whenever the rest of the noise stays within budget (it
/// does with probability 1 − 2^-40 per score). λ = 0 returns the exact scores.
pub fn sample_private_scores<R: Rng + ?Sized>(
    exact: &Array2<i64>,
    delta_log2: u32,
    privacy: &PrivacyPlan,
    rng: &mut R,
) -> Array2<i64> {
    let rho = privacy.rounding_bits;
    let shift = delta_log2 + rho;
    exact.mapv(|s| {
        let flood = privacy.flood_log2.map_or(0i128, |a| {
            i128::from(rng.gen_range(-(1i64 << a)..(1i64 << a)))
        });
        let phase = (i128::from(s) << delta_log2) + flood;
        let rounded = (phase + (1i128 << shift >> 1)) >> shift;
        (rounded as i64) << rho
    })
}

/// Exact scores plus noise drawn from the predicted error distribution of each score
/// (Gaussian with [`NoiseBudget::score_variance`]), rounded in the Δ domain as the client's
/// decoder does: a score comes out wrong exactly when its sampled error reaches ±Δ/2.
pub fn sample_noisy_scores<R: Rng + ?Sized>(
    layer: &IntegerLinear,
    budget: &NoiseBudget,
    q_x: ArrayView2<i64>,
    rng: &mut R,
) -> Result<Array2<i64>, FheError> {
    let mut scores = clear_scores(layer, q_x)?;
    let delta = 2f64.powi(budget.delta_log2 as i32);
    let class_sq: Vec<f64> = layer
        .weights
        .columns()
        .into_iter()
        .map(|col| col.iter().map(|&w| (w as f64).powi(2)).sum())
        .collect();
    let k = budget.classes_per_product.max(1);
    for (class, mut column) in scores.columns_mut().into_iter().enumerate() {
        // The fresh noise of a score depends on its whole product, W_g's K classes.
        let g = class / k;
        let product_sq_norm: f64 = class_sq[g * k..((g + 1) * k).min(class_sq.len())]
            .iter()
            .sum();
        let std = budget.score_variance(product_sq_norm).sqrt();
        let normal = Normal::new(0.0, std).map_err(|e| FheError::InvalidParams {
            param: "noise_std",
            reason: format!("noise std {std}: {e}"),
        })?;
        for s in column.iter_mut() {
            *s += (normal.sample(rng) / delta).round() as i64;
        }
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhe::{GlweParams, Layout};
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn layer() -> IntegerLinear {
        IntegerLinear {
            weights: array![[1, -2], [3, 4]],
            bias: array![10, -10],
            input_min: -8,
            input_max: 7,
        }
    }

    #[test]
    fn clear_scores_are_the_integer_product() {
        let s = clear_scores(&layer(), array![[1, 2], [-8, 7]].view()).unwrap();
        assert_eq!(
            s,
            array![[1 + 6 + 10, -2 + 8 - 10], [-8 + 21 + 10, 16 + 28 - 10]]
        );
        assert!(matches!(
            clear_scores(&layer(), array![[1, 8]].view()),
            Err(FheError::InputOutOfRange { value: 8, .. })
        ));
        assert!(clear_scores(&layer(), array![[1, 2, 3]].view()).is_err());
    }

    #[test]
    fn compare_reports_count_and_first_position() {
        let a = array![[1, 2], [3, 4]];
        let b = array![[1, 0], [3, 5]];
        match compare(&a, &b) {
            Err(FheError::Mismatch {
                count: 2,
                total: 4,
                chunk: 0,
                class: 1,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        compare(&a, &a).unwrap();
    }

    #[test]
    fn sampled_noise_follows_the_budget() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let params = GlweParams::TUNIFORM_2M128_N2048;
        let layout = Layout::densest(2, 2, params.polynomial_size).unwrap();
        let l = layer();
        let budget = NoiseBudget::compute(&l, &layout, &params).unwrap();
        let q = array![[1, 2], [3, 4]];
        // Within budget: no sampled error.
        assert_eq!(
            sample_noisy_scores(&l, &budget, q.view(), &mut rng).unwrap(),
            clear_scores(&l, q.view()).unwrap()
        );
        // A budget with σ = Δ makes most scores wrong.
        let noisy = NoiseBudget {
            fft_variance: 2f64.powi(2 * budget.delta_log2 as i32),
            ..budget
        };
        let wrong = (0..50)
            .map(|_| sample_noisy_scores(&l, &noisy, q.view(), &mut rng).unwrap())
            .filter(|s| *s != clear_scores(&l, q.view()).unwrap())
            .count();
        assert!(wrong > 25, "{wrong}");
    }
}
