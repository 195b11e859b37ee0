//! Fitted models: float multinomial logistic regression ([`logistic`]), its Concrete-ML-exact
//! integer version ([`quant`]) and the versioned model file that carries both ([`io`]).
//!
//! Training and inference share no mutable state: `fit` returns a [`FloatModel`] value,
//! [`QuantizedModel::from_float`] derives an integer model from it, and both score feature
//! matrices through [`Scorer`].

pub mod io;
pub mod lda;
pub mod logistic;
pub mod quant;
mod softmax;
pub mod synthetic;
pub mod threshold;

use ndarray::{Array2, ArrayView2};

use crate::error::ModelError;

pub use io::{FileKind, ModelFile, MODEL_FORMAT, MODEL_VERSION};
pub use logistic::{
    fit, Backend, FitInfo, FloatModel, LogisticParams, Trainer, ValidLogisticParams,
};
pub use quant::{QuantOptions, QuantizedModel, UniformQuantizer};
pub use threshold::{Rule, ScoreKind, Threshold};

/// Anything that turns a feature matrix (n × d, raw features) into class scores (n × C).
pub trait Scorer {
    /// Class scores, one row per input row; higher is more likely.
    fn scores(&self, x: ArrayView2<f32>) -> Result<Array2<f64>, ModelError>;
    fn n_classes(&self) -> usize;
    /// The highest-scoring class of each row.
    fn predict(&self, x: ArrayView2<f32>) -> Result<Vec<usize>, ModelError> {
        Ok(argmax_rows(self.scores(x)?.view()))
    }
}

/// Index of the largest value of each row; the first one on ties (numpy's argmax).
pub fn argmax_rows(scores: ArrayView2<f64>) -> Vec<usize> {
    scores
        .rows()
        .into_iter()
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// Checks that `x` has `expected` columns and only finite values.
pub(crate) fn check_features(
    x: ArrayView2<f32>,
    expected: usize,
    what: &'static str,
) -> Result<(), ModelError> {
    if x.ncols() != expected {
        return Err(ModelError::FeatureCount {
            what,
            expected,
            found: x.ncols(),
        });
    }
    if let Some(((row, col), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(ModelError::NonFinite { what, row, col });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn argmax_takes_first_of_ties() {
        let s = array![[1.0, 3.0, 3.0], [-1.0, -2.0, -0.5], [0.0, 0.0, 0.0]];
        assert_eq!(argmax_rows(s.view()), vec![1, 2, 0]);
    }

    #[test]
    fn check_features_names_the_bad_cell() {
        let x = array![[1.0f32, 2.0], [3.0, f32::INFINITY]];
        assert!(matches!(
            check_features(x.view(), 2, "query"),
            Err(ModelError::NonFinite {
                what: "query",
                row: 1,
                col: 1
            })
        ));
        assert!(matches!(
            check_features(x.view(), 3, "query"),
            Err(ModelError::FeatureCount {
                expected: 3,
                found: 2,
                ..
            })
        ));
    }
}
