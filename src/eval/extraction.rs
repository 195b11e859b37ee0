//! The model-extraction attack: a client that spends its queries on chosen vectors and fits
//! the weights by least squares from the scores it decrypts (docs/ARCHITECTURE.md §4, model
//! privacy). Against the plain protocol the scores are exact, so d + 1 queries of the summed
//! circuit give W exactly; model privacy returns them rounded to 2^ρ with a fresh dither, so
//! the fit's error falls like 2^ρ/√n and the copy only improves with the number of queries.

use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::FheError;
use crate::fhe::{Circuit, IntegerLinear};
use crate::model::lda::{cholesky, solve};

/// What the attacker holds after a number of queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractionPoint {
    /// Oracle calls spent.
    pub queries: usize,
    /// ‖Ŵ − W‖_F / ‖W‖_F over the weights (not the bias).
    pub weight_error: f64,
    /// Share of the test rows on which the stolen model's top-1 is the real model's.
    pub agreement: f64,
}

/// One (model, flood level) line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractionLine {
    pub n_bits: u32,
    /// λ; `None` is the plain protocol.
    pub flood_bits: Option<u32>,
    /// ρ: the returned scores are multiples of 2^ρ (0 for the plain protocol).
    pub rounding_bits: u32,
    /// Top-1 (simulate) per condition, in the run's condition order.
    pub top1: Vec<(String, f64)>,
    /// With the open-set protocol: per condition, the identification and false-match rates
    /// at the threshold calibrated under this flood level (simulate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_set: Vec<(String, f64, f64)>,
    pub attack: Vec<ExtractionPoint>,
}

/// The stage's result (results.json's `extraction`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractionResult {
    pub circuit: Circuit,
    /// Rows of one chosen query (J for `chunks`, 1 for `summed`).
    pub rows_per_query: usize,
    /// Real queries the agreement is measured on (every condition's).
    pub test_queries: usize,
    pub lines: Vec<ExtractionLine>,
}

/// The stolen layer: real-valued weights (d × C) and bias (C).
#[derive(Debug, Clone, PartialEq)]
pub struct StolenLayer {
    pub weights: Array2<f64>,
    pub bias: Array1<f64>,
}

impl StolenLayer {
    /// Least squares of `scores` (n × C) on `inputs` (n × d) and a constant, with a ridge of
    /// 1e-9 of the mean diagonal so that fewer than d + 1 queries give the smallest-norm fit
    /// rather than no fit.
    pub fn fit(inputs: ArrayView2<i64>, scores: ArrayView2<i64>) -> Result<Self, FheError> {
        let (n, d) = inputs.dim();
        if scores.nrows() != n || n == 0 {
            return Err(FheError::Shape {
                what: "extraction scores",
                expected: (n, scores.ncols()),
                found: scores.dim(),
            });
        }
        // Inputs scaled to about ±1 so the normal equations stay well conditioned.
        let scale = inputs
            .iter()
            .map(|v| v.unsigned_abs())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let mut x = Array2::<f64>::ones((n, d + 1));
        x.slice_mut(s![.., ..d])
            .assign(&inputs.mapv(|v| v as f64 / scale));
        let y = scores.mapv(|v| v as f64);
        let mut gram = x.t().dot(&x);
        let ridge = 1e-9 * gram.diag().sum() / (d + 1) as f64;
        gram.diag_mut().mapv_inplace(|v| v + ridge);
        let l = cholesky(&gram).ok_or_else(|| {
            FheError::InvalidLayer("extraction: the chosen queries give a singular system".into())
        })?;
        let xty = x.t().dot(&y);
        let mut theta = Array2::<f64>::zeros((d + 1, y.ncols()));
        for (c, col) in xty.columns().into_iter().enumerate() {
            let sol = solve(&l, col.to_vec());
            theta.column_mut(c).assign(&Array1::from(sol));
        }
        Ok(Self {
            weights: theta.slice(s![..d, ..]).mapv(|v| v / scale),
            bias: theta.row(d).to_owned(),
        })
    }

    /// Scores of `rows` (n × d).
    pub fn scores(&self, rows: ArrayView2<i64>) -> Array2<f64> {
        rows.mapv(|v| v as f64).dot(&self.weights) + &self.bias
    }
}

/// What the attacker queries: chosen rows in, decrypted scores out.
pub type Oracle<'a> = dyn FnMut(ArrayView2<i64>) -> Result<Array2<i64>, FheError> + 'a;

/// Runs the attack against `oracle` (chosen rows in, decrypted scores out: what one query of
/// the served circuit returns) and reports the stolen layer after each of `counts` queries.
/// Each query is `rows` chosen rows, uniform over the layer's input range. `test_rows` (the
/// circuit's rows of real queries) and `test_offsets` (what the client adds to both models'
/// scores before deciding, e.g. n·b for the summed circuit) measure top-1 agreement.
pub fn extraction_curve(
    layer: &IntegerLinear,
    oracle: &mut Oracle<'_>,
    rows: usize,
    counts: &[usize],
    test_rows: ArrayView2<i64>,
    test_offsets: ArrayView2<i64>,
    seed: u64,
) -> Result<Vec<ExtractionPoint>, FheError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let max = counts.iter().copied().max().unwrap_or(0);
    let d = layer.features();
    let mut inputs = Array2::<i64>::zeros((0, d));
    let mut scores = Array2::<i64>::zeros((0, layer.classes()));
    let real = crate::fhe::simulate::clear_scores(layer, test_rows)? + test_offsets;
    let truth = argmax(real.mapv(|v| v as f64).view());
    let w_norm = layer.weights.mapv(|v| (v as f64).powi(2)).sum().sqrt();
    let mut points = Vec::new();
    for q in 1..=max {
        let chosen = Array2::from_shape_fn((rows, d), |_| {
            rng.gen_range(layer.input_min..=layer.input_max)
        });
        let answer = oracle(chosen.view())?;
        inputs.append(Axis(0), chosen.view()).map_err(shape)?;
        scores.append(Axis(0), answer.view()).map_err(shape)?;
        if counts.contains(&q) {
            let stolen = StolenLayer::fit(inputs.view(), scores.view())?;
            let err = (&stolen.weights - &layer.weights.mapv(|v| v as f64))
                .mapv(|v| v * v)
                .sum()
                .sqrt();
            let guess =
                argmax((stolen.scores(test_rows) + &test_offsets.mapv(|v| v as f64)).view());
            let agree = guess.iter().zip(&truth).filter(|(a, b)| a == b).count();
            points.push(ExtractionPoint {
                queries: q,
                weight_error: err / w_norm.max(f64::MIN_POSITIVE),
                agreement: agree as f64 / truth.len().max(1) as f64,
            });
        }
    }
    Ok(points)
}

fn shape(e: ndarray::ShapeError) -> FheError {
    FheError::InvalidLayer(format!("extraction: {e}"))
}

fn argmax(scores: ArrayView2<f64>) -> Vec<usize> {
    scores
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhe::simulate::clear_scores;

    fn layer(rng: &mut ChaCha8Rng) -> IntegerLinear {
        IntegerLinear {
            weights: Array2::from_shape_fn((6, 9), |_| rng.gen_range(-255..=255)),
            bias: Array1::from_shape_fn(9, |_| rng.gen_range(-500..=500)),
            input_min: -128,
            input_max: 127,
        }
    }

    #[test]
    fn exact_scores_give_the_layer_after_d_plus_one_queries() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let l = layer(&mut rng);
        let test = Array2::from_shape_fn((50, 6), |_| rng.gen_range(-128..=127));
        let offsets = Array2::zeros((50, 9));
        let mut oracle = |rows: ArrayView2<i64>| clear_scores(&l, rows);
        let points = extraction_curve(
            &l,
            &mut oracle,
            1,
            &[1, 7, 30],
            test.view(),
            offsets.view(),
            3,
        )
        .unwrap();
        assert!(points[0].weight_error > 0.3, "{:?}", points[0]);
        for p in &points[1..] {
            assert!(p.weight_error < 1e-6, "{p:?}");
            assert_eq!(p.agreement, 1.0);
        }
    }

    #[test]
    fn rounded_scores_give_a_copy_that_improves_with_queries() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let l = layer(&mut rng);
        let test = Array2::from_shape_fn((200, 6), |_| rng.gen_range(-128..=127));
        let offsets = Array2::zeros((200, 9));
        let mut noise = ChaCha8Rng::seed_from_u64(4);
        // Scores rounded to multiples of 2^14 with a uniform dither, like model privacy's.
        let mut oracle = |rows: ArrayView2<i64>| {
            Ok(clear_scores(&l, rows)?.mapv(|s| {
                let dither: i64 = noise.gen_range(-(1 << 13)..(1 << 13));
                ((s + dither + (1 << 13)) >> 14) << 14
            }))
        };
        let points = extraction_curve(
            &l,
            &mut oracle,
            1,
            &[7, 100, 3000],
            test.view(),
            offsets.view(),
            5,
        )
        .unwrap();
        assert!(points[0].weight_error > 0.05, "{points:?}");
        assert!(
            points[2].weight_error < points[1].weight_error / 3.0,
            "{points:?}"
        );
        assert!(points[2].agreement > points[0].agreement, "{points:?}");
    }
}
