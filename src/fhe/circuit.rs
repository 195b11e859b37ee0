//! The two circuits a query can be scored with (docs/ARCHITECTURE.md §4).
//!
//! `chunks`: the client encrypts its J quantized chunk vectors and gets back J × C scores —
//! what the seed's vote rule needs. `summed`: the client adds its chunk vectors first and gets
//! back C scores. For the log-probability-sum rule that is all the decision uses: each chunk's
//! softmax normaliser does not depend on the class, so Σ_j log softmax(z_j)_c ranks songs
//! exactly as Σ_j z_jc, and in the integer circuit
//! Σ_j (q_X[j]·W + b) = (Σ_j q_X[j])·W + n·b holds bit for bit. The summed layer is the same
//! weights with the input range widened J times (so the planner adds ⌈log2 J⌉ message bits)
//! and no bias: the client, who knows n, adds n·b when it dequantizes, so queries shorter
//! than J chunks stay exact.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::IntegerLinear;
use crate::error::FheError;

/// Which scores an encrypted query returns.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Circuit {
    /// J × C scores, one row per chunk (the seed's vote rule needs them).
    #[default]
    Chunks,
    /// C scores of the summed chunk vectors (all the log-probability-sum rule needs).
    Summed,
}

impl Circuit {
    pub fn name(self) -> &'static str {
        match self {
            Circuit::Chunks => "chunks",
            Circuit::Summed => "summed",
        }
    }

    /// Wire code of the circuit (one header byte).
    pub fn code(self) -> u8 {
        match self {
            Circuit::Chunks => 0,
            Circuit::Summed => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Circuit::Chunks),
            1 => Some(Circuit::Summed),
            _ => None,
        }
    }

    /// Rows of the encrypted query for queries of up to `chunks` chunks.
    pub fn rows(self, chunks: usize) -> usize {
        match self {
            Circuit::Chunks => chunks,
            Circuit::Summed => 1,
        }
    }

    /// The layer this circuit evaluates for queries of up to `chunks` chunks: the layer
    /// itself, or the summed layer (same weights, input range × `chunks`, no bias).
    pub fn layer(self, layer: &IntegerLinear, chunks: usize) -> Result<IntegerLinear, FheError> {
        match self {
            Circuit::Chunks => Ok(layer.clone()),
            Circuit::Summed => {
                let widen = |v: i64| {
                    v.checked_mul(chunks as i64).ok_or_else(|| {
                        FheError::InvalidLayer(format!(
                            "a sum of {chunks} inputs in {}..={} overflows",
                            layer.input_min, layer.input_max
                        ))
                    })
                };
                let summed = IntegerLinear {
                    weights: layer.weights.clone(),
                    bias: Array1::zeros(layer.classes()),
                    input_min: widen(layer.input_min)?,
                    input_max: widen(layer.input_max)?,
                };
                summed.validate()?;
                Ok(summed)
            }
        }
    }

    /// The query rows this circuit encrypts from n ≤ J quantized chunk rows: the rows
    /// zero-padded to J (the padding's scores are dropped after decryption), or their sum.
    pub fn query_rows(self, q_x: ArrayView2<i64>, chunks: usize, pad: i64) -> Array2<i64> {
        match self {
            Circuit::Chunks => {
                let n = q_x.nrows().min(chunks);
                let mut out = Array2::from_elem((chunks, q_x.ncols()), pad);
                out.slice_mut(ndarray::s![..n, ..])
                    .assign(&q_x.slice(ndarray::s![..n, ..]));
                out
            }
            Circuit::Summed => {
                let n = q_x.nrows().min(chunks);
                q_x.slice(ndarray::s![..n, ..])
                    .sum_axis(Axis(0))
                    .insert_axis(Axis(0))
            }
        }
    }
}

impl std::fmt::Display for Circuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhe::simulate::clear_scores;
    use ndarray::array;

    fn layer() -> IntegerLinear {
        IntegerLinear {
            weights: array![[3, -1, 0], [-2, 5, 1]],
            bias: array![10, -20, 7],
            input_min: -128,
            input_max: 127,
        }
    }

    #[test]
    fn the_summed_layer_gives_the_chunk_sums_once_n_times_the_bias_is_added() {
        let l = layer();
        let q_x = array![[1, -128], [127, 5], [-7, 0]];
        let per_chunk = clear_scores(&l, q_x.view()).unwrap();
        let summed_layer = Circuit::Summed.layer(&l, 30).unwrap();
        assert_eq!(
            (summed_layer.input_min, summed_layer.input_max),
            (-3840, 3810)
        );
        let rows = Circuit::Summed.query_rows(q_x.view(), 30, 0);
        assert_eq!(rows.dim(), (1, 2));
        let summed = clear_scores(&summed_layer, rows.view()).unwrap();
        for c in 0..3 {
            let chunks: i64 = per_chunk.column(c).sum();
            assert_eq!(summed[[0, c]] + 3 * l.bias[c], chunks, "class {c}");
        }
        // Wider inputs, wider scores: the summed layer needs more message bits.
        assert!(summed_layer.score_bound().unwrap() > l.score_bound().unwrap());
    }

    #[test]
    fn chunk_rows_are_padded_or_cut_to_j() {
        let q_x = array![[1, 2], [3, 4], [5, 6]];
        let padded = Circuit::Chunks.query_rows(q_x.view(), 4, -1);
        assert_eq!(padded, array![[1, 2], [3, 4], [5, 6], [-1, -1]]);
        assert_eq!(
            Circuit::Chunks.query_rows(q_x.view(), 2, 0),
            array![[1, 2], [3, 4]]
        );
        assert_eq!(Circuit::Summed.query_rows(q_x.view(), 2, 0), array![[4, 6]]);
        for c in [Circuit::Chunks, Circuit::Summed] {
            assert_eq!(Circuit::from_code(c.code()), Some(c));
        }
        assert_eq!(Circuit::from_code(7), None);
    }
}
