//! Deterministic synthetic classification problems shaped like the seed's features: one
//! Gaussian cluster per song, 20 dimensions, the first on the scale of MFCC c0 sums
//! (thousands, negative) and the others tens. For benches and tests of the model layer.

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Shape of a synthetic problem.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub n_classes: usize,
    /// Rows per class in each of the train and the test set.
    pub rows_per_class: usize,
    pub dim: usize,
    /// Within-class standard deviation relative to the spread of the class centres (1).
    pub noise: f64,
    pub seed: u64,
}

impl Default for ClusterSpec {
    /// The seed experiment's size: 400 songs × ~60 chunks × 20 MFCC sums.
    fn default() -> Self {
        Self {
            n_classes: 400,
            rows_per_class: 60,
            dim: 20,
            noise: 0.8,
            seed: 7,
        }
    }
}

/// Train and test rows drawn from the same clusters.
#[derive(Debug, Clone)]
pub struct SyntheticSet {
    pub x_train: Array2<f32>,
    pub y_train: Vec<usize>,
    pub x_test: Array2<f32>,
    pub y_test: Vec<usize>,
}

/// Column j of a standard-normal draw becomes `v·SCALE[j] + SHIFT[j]`: c0 like an MFCC c0
/// sum over 22 frames (around −10 000, spread thousands), the others tens.
const C0_SCALE: f64 = 1000.0;
const C0_SHIFT: f64 = -10_000.0;
const CK_SCALE: f64 = 10.0;

impl ClusterSpec {
    pub fn generate(&self) -> SyntheticSet {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let unit = Normal::new(0.0, 1.0).expect("unit normal");
        let centers: Vec<f64> = (0..self.n_classes * self.dim)
            .map(|_| unit.sample(&mut rng))
            .collect();
        let n = self.n_classes * self.rows_per_class;
        let y: Vec<usize> = (0..n).map(|i| i / self.rows_per_class).collect();
        let draw = |rng: &mut ChaCha8Rng| {
            Array2::from_shape_fn((n, self.dim), |(i, j)| {
                let class = y[i];
                let v = centers[class * self.dim + j] + self.noise * unit.sample(rng);
                let (scale, shift) = if j == 0 {
                    (C0_SCALE, C0_SHIFT)
                } else {
                    (CK_SCALE, 0.0)
                };
                (v * scale + shift) as f32
            })
        };
        let x_train = draw(&mut rng);
        let x_test = draw(&mut rng);
        SyntheticSet {
            x_train,
            y_train: y.clone(),
            x_test,
            y_test: y,
        }
    }
}

/// Fraction of `predicted` equal to `truth`.
pub fn accuracy(predicted: &[usize], truth: &[usize]) -> f64 {
    let hits = predicted.iter().zip(truth).filter(|(a, b)| a == b).count();
    hits as f64 / truth.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped_like_mfcc_sums() {
        let spec = ClusterSpec {
            n_classes: 5,
            rows_per_class: 4,
            ..Default::default()
        };
        let a = spec.generate();
        let b = spec.generate();
        assert_eq!(a.x_train, b.x_train);
        assert_eq!(a.x_train.dim(), (20, 20));
        assert_eq!(a.y_train, (0..20).map(|i| i / 4).collect::<Vec<_>>());
        assert_ne!(a.x_train, a.x_test);
        assert!(a.x_train.column(0).iter().all(|&v| v < -3000.0));
        assert!(a.x_train.column(1).iter().all(|&v| v.abs() < 100.0));
    }
}
