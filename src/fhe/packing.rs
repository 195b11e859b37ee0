//! Polynomial layouts: where each query value and each weight goes so that one negacyclic
//! product of the query polynomial with a clear weight polynomial yields K·J scores on its
//! first K·J coefficients, and everything else (the cross terms) lands above them.
//!
//! Query (feature-major, stride S = K·J): coefficient i·S + j holds q_X[j][i].
//! Weights of product g (classes c_k = g·K + k, k < K):
//! W_g(X) = Σ_k Σ_i w[i][c_k]·X^(k·J − i·S), with X^(−m) = −X^(N−m) (negacyclic).
//! Term (i, j) × (i', k) lands on (i − i')·S + j + k·J: for i = i' that is k·J + j < K·J (the
//! score); for i > i' it is in [S, d·S) ⊂ [K·J, N); for i < i' it is negative and wraps to
//! [N − (d−1)·S, N), which is ≥ S because d·S ≤ N. So the scores never mix with cross terms.

use ndarray::ArrayView2;
use tfhe::core_crypto::prelude::PolynomialSize;

use super::IntegerLinear;
use crate::error::FheError;

/// A packing layout: J chunks × d features per query, K classes per product, N coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    chunks: usize,
    features: usize,
    classes_per_product: usize,
    polynomial_size: PolynomialSize,
}

impl Layout {
    /// Validates a layout: all sizes ≥ 1 and d·K·J ≤ N.
    pub fn new(
        chunks: usize,
        features: usize,
        classes_per_product: usize,
        polynomial_size: PolynomialSize,
    ) -> Result<Self, FheError> {
        let n = polynomial_size.0;
        if chunks == 0 || features == 0 || classes_per_product == 0 {
            return Err(FheError::InvalidLayout(format!(
                "J = {chunks}, d = {features}, K = {classes_per_product}: all must be ≥ 1"
            )));
        }
        if !n.is_power_of_two() {
            return Err(FheError::InvalidLayout(format!(
                "N = {n} is not a power of two"
            )));
        }
        let query = chunks.saturating_mul(features);
        if query > n {
            return Err(FheError::InvalidLayout(format!(
                "a query of J·d = {chunks}·{features} = {query} values does not fit one \
                 polynomial of N = {n} coefficients (splitting a query over several \
                 ciphertexts is not supported: use fewer chunks per query or a larger N)"
            )));
        }
        let used = query.saturating_mul(classes_per_product);
        if used > n {
            return Err(FheError::InvalidLayout(format!(
                "K = {classes_per_product} classes per product need d·K·J = {used} > N = {n} \
                 coefficients; at most K = {} fits",
                n / query
            )));
        }
        Ok(Self {
            chunks,
            features,
            classes_per_product,
            polynomial_size,
        })
    }

    /// The densest layout: K = ⌊N / (J·d)⌋ classes per product.
    pub fn densest(
        chunks: usize,
        features: usize,
        polynomial_size: PolynomialSize,
    ) -> Result<Self, FheError> {
        let query = chunks.saturating_mul(features).max(1);
        Self::new(
            chunks,
            features,
            (polynomial_size.0 / query).max(1),
            polynomial_size,
        )
    }

    /// J, the chunks (rows) of a query.
    pub fn chunks(&self) -> usize {
        self.chunks
    }
    /// d, the features of a chunk.
    pub fn features(&self) -> usize {
        self.features
    }
    /// K, the classes scored by one product.
    pub fn classes_per_product(&self) -> usize {
        self.classes_per_product
    }
    pub fn polynomial_size(&self) -> PolynomialSize {
        self.polynomial_size
    }
    /// S = K·J, the distance between consecutive features in the query polynomial; also the
    /// number of score coefficients per product.
    pub fn stride(&self) -> usize {
        self.classes_per_product * self.chunks
    }
    /// Score coefficients per product (= S), the only body coefficients that leave the server.
    pub fn scores_per_product(&self) -> usize {
        self.stride()
    }
    /// ⌈C/K⌉ products for C classes.
    pub fn product_count(&self, classes: usize) -> usize {
        classes.div_ceil(self.classes_per_product)
    }
    /// Coefficient of score (chunk j, class k of its product).
    pub fn score_position(&self, chunk: usize, class_in_product: usize) -> usize {
        class_in_product * self.chunks + chunk
    }
    /// Coefficient of query value (chunk j, feature i).
    pub fn query_position(&self, chunk: usize, feature: usize) -> usize {
        feature * self.stride() + chunk
    }

    /// Whether the server computes the body's score coefficients with the FFT (one more
    /// forward transform per query, one more backward per product, and its rounding error in
    /// the noise budget) rather than exactly in integers. Exactly costs K·d multiply-adds per
    /// score coefficient, K·J·K·d per product: 5 400 for the chunks layout (J = 30, K = 3,
    /// d = 20), cheaper than a transform; 208 080 for the summed one (J = 1, K = 102), ~10× one.
    pub fn body_by_fft(&self) -> bool {
        let exact = self.stride() * self.classes_per_product * self.features;
        exact > 16 * self.polynomial_size.0
    }

    /// Checks that a layer has this layout's feature count.
    pub fn check_layer(&self, layer: &IntegerLinear) -> Result<(), FheError> {
        if layer.weights.nrows() != self.features {
            return Err(FheError::InvalidLayout(format!(
                "layout has d = {} features, the layer's weights have {} rows",
                self.features,
                layer.weights.nrows()
            )));
        }
        Ok(())
    }

    /// The query message polynomial (unscaled integers): q_X (J × d) placed feature-major.
    pub fn encode_query(&self, q_x: ArrayView2<i64>) -> Result<Vec<i64>, FheError> {
        let expected = (self.chunks, self.features);
        if q_x.dim() != expected {
            return Err(FheError::Shape {
                what: "query q_X",
                expected,
                found: q_x.dim(),
            });
        }
        let mut coefficients = vec![0i64; self.polynomial_size.0];
        for ((j, i), &v) in q_x.indexed_iter() {
            coefficients[self.query_position(j, i)] = v;
        }
        Ok(coefficients)
    }

    /// The weight polynomial W_g of product `product` for weights d × C (classes past C are
    /// zero), negacyclic signs folded in. Coefficients are exact integers.
    pub fn weight_polynomial(
        &self,
        weights: ArrayView2<i64>,
        product: usize,
    ) -> Result<Vec<i64>, FheError> {
        if weights.nrows() != self.features {
            return Err(FheError::Shape {
                what: "weights",
                expected: (self.features, weights.ncols()),
                found: weights.dim(),
            });
        }
        let n = self.polynomial_size.0 as isize;
        let mut coefficients = vec![0i64; self.polynomial_size.0];
        for k in 0..self.classes_per_product {
            let class = product * self.classes_per_product + k;
            if class >= weights.ncols() {
                break;
            }
            for i in 0..self.features {
                let w = weights[[i, class]];
                let exponent = (k * self.chunks) as isize - (i * self.stride()) as isize;
                // |exponent| < N because (d−1)·S < N.
                if exponent >= 0 {
                    coefficients[exponent as usize] += w;
                } else {
                    coefficients[(n + exponent) as usize] -= w;
                }
            }
        }
        Ok(coefficients)
    }
}

/// Exact negacyclic product a·b mod (X^N + 1) with wrapping (mod 2^64) coefficients; `b` is
/// read as signed integers and its zero coefficients are skipped, so this costs N·nnz(b).
/// It is the reference the FFT products are measured against.
pub fn negacyclic_mul(a: &[u64], b: &[i64]) -> Result<Vec<u64>, FheError> {
    let n = a.len();
    if n != b.len() {
        return Err(FheError::Shape {
            what: "negacyclic product operand",
            expected: (1, n),
            found: (1, b.len()),
        });
    }
    let mut out = vec![0u64; n];
    for (m, &bm) in b.iter().enumerate().filter(|(_, &bm)| bm != 0) {
        let bm = bm as u64;
        // X^m · a: coefficients t ≥ m come from a[t − m]; t < m wrap with a minus sign.
        for t in 0..n {
            let term = a[(t + n - m) % n].wrapping_mul(bm);
            out[t] = if t >= m {
                out[t].wrapping_add(term)
            } else {
                out[t].wrapping_sub(term)
            };
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn default_layout_is_k3_s90() {
        let layout = Layout::densest(30, 20, PolynomialSize(2048)).unwrap();
        assert_eq!(layout.classes_per_product(), 3);
        assert_eq!(layout.stride(), 90);
        assert_eq!(layout.product_count(400), 134);
    }

    #[test]
    fn oversized_layouts_are_refused() {
        assert!(Layout::new(30, 20, 4, PolynomialSize(2048)).is_err());
        let err = Layout::new(30, 20, 1, PolynomialSize(512)).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert!(Layout::new(0, 20, 1, PolynomialSize(2048)).is_err());
        assert!(Layout::new(30, 20, 1, PolynomialSize(2000)).is_err());
    }

    #[test]
    fn negacyclic_mul_wraps_with_sign() {
        // (1 + X)·X^3 in N = 4: X^3 + X^4 = X^3 − 1.
        let out = negacyclic_mul(&[1, 1, 0, 0], &[0, 0, 0, 1]).unwrap();
        assert_eq!(out, vec![u64::MAX, 0, 0, 1]);
    }

    /// Every (layout, weights, query) product carries exactly the scores on 0..K·J; computed
    /// with exact integer arithmetic, so this checks the layout itself.
    #[test]
    fn scores_land_on_the_first_coefficients_only() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for &(j, d, k, n) in &[
            (30, 20, 3, 2048),
            (30, 20, 1, 2048),
            (5, 3, 4, 64),
            (2, 2, 1, 8),
        ] {
            let layout = Layout::new(j, d, k, PolynomialSize(n)).unwrap();
            let classes = 2 * k + 1; // last product partially filled
            let weights = Array2::from_shape_fn((d, classes), |_| rng.gen_range(-255..=255i64));
            let q_x = Array2::from_shape_fn((j, d), |_| rng.gen_range(-128..=127i64));
            let exact = q_x.dot(&weights);
            let query: Vec<u64> = layout
                .encode_query(q_x.view())
                .unwrap()
                .iter()
                .map(|&v| v as u64)
                .collect();
            for g in 0..layout.product_count(classes) {
                let w = layout.weight_polynomial(weights.view(), g).unwrap();
                let product = negacyclic_mul(&query, &w).unwrap();
                for kk in 0..k {
                    for jj in 0..j {
                        let c = g * k + kk;
                        let expected = if c < classes { exact[[jj, c]] } else { 0 };
                        assert_eq!(product[layout.score_position(jj, kk)] as i64, expected);
                    }
                }
                // Cross terms exist (random data) and all sit at ≥ K·J.
                if d > 1 {
                    assert!(product[layout.scores_per_product()..]
                        .iter()
                        .any(|&v| v != 0));
                }
            }
        }
    }
}
