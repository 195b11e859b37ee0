//! Float multinomial logistic regression: sklearn's `LogisticRegression()` objective, three
//! interchangeable optimisers (and the closed-form LDA of `model::lda`) behind one [`fit`]
//! function; the objective itself is computed by `model::softmax`.
//!
//! The objective is sklearn's, scaled by 1/n as sklearn does internally (same minimiser):
//! `f(W, b) = (1/n)·Σ_i CE(softmax(x_i·W + b), y_i) + ‖W‖²/(2·C·n)` — the intercept is not
//! penalised. Features are standardised inside the trainer (docs/ARCHITECTURE.md §3: linfa
//! learns nothing on the raw MFCC sums, whose first coefficient spans −25 000…6 000) and the
//! scaling is folded back, so a [`FloatModel`] always takes raw features.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::softmax::Objective;
use super::{argmax_rows, check_features, Scorer};
use crate::error::ModelError;

/// Which optimiser minimises the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Our L-BFGS (history 10, strong-Wolfe line search, scipy's stopping rules, f64) over the
    /// f32 objective kernel of `model::softmax`. The fastest: the default.
    #[default]
    Lbfgs,
    /// linfa-logistic 0.8 `MultiLogisticRegression` (argmin L-BFGS + More-Thuente).
    Linfa,
    /// smartcore 0.7 `LogisticRegression`. Its optimiser ignores `max_iter`/`tol` (it runs
    /// up to 1000 iterations to a 1e-8 gradient) and always fits an intercept.
    Smartcore,
    /// Linear discriminant analysis, closed form (class means, one Ledoit–Wolf-shrunk shared
    /// covariance; `model::lda`): not sklearn's optimum, a different linear model, in seconds.
    Lda,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Lbfgs,
        Backend::Linfa,
        Backend::Smartcore,
        Backend::Lda,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Lbfgs => "lbfgs",
            Backend::Linfa => "linfa",
            Backend::Smartcore => "smartcore",
            Backend::Lda => "lda",
        }
    }

    /// The trainer implementing this backend.
    pub fn trainer(self) -> &'static dyn Trainer {
        match self {
            Backend::Lbfgs => &LbfgsTrainer,
            Backend::Linfa => &LinfaTrainer,
            Backend::Smartcore => &SmartcoreTrainer,
            Backend::Lda => &super::lda::LdaTrainer,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| ModelError::InvalidParams {
                param: "backend",
                reason: format!("unknown backend {s:?} (expected lbfgs, linfa, smartcore or lda)"),
            })
    }
}

/// Hyper-parameters. Defaults are sklearn's `LogisticRegression()` (lbfgs, multinomial,
/// C = 1, max_iter 100, tol 1e-4, intercept) plus in-trainer standardisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// Inverse regularisation strength (sklearn's `C`): minimises C·Σ CE + ½‖W‖².
    pub c: f64,
    /// Maximum optimiser iterations (sklearn's `max_iter`).
    pub max_iter: usize,
    /// Stop when the max-norm of the gradient of the 1/n-scaled objective is ≤ tol.
    pub tol: f64,
    pub fit_intercept: bool,
    /// Standardise features (mean/std per column) for the optimiser; folded back afterwards.
    pub standardize: bool,
    pub backend: Backend,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self {
            c: 1.0,
            max_iter: 100,
            tol: 1e-4,
            fit_intercept: true,
            standardize: true,
            backend: Backend::Lbfgs,
        }
    }
}

impl LogisticParams {
    /// Validates the parameters; only the validated form can train.
    pub fn check(&self) -> Result<ValidLogisticParams, ModelError> {
        let bad =
            |param: &'static str, reason: String| Err(ModelError::InvalidParams { param, reason });
        if !(self.c.is_finite() && self.c > 0.0) {
            return bad("c", format!("C must be finite and > 0, got {}", self.c));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return bad(
                "tol",
                format!("tol must be finite and > 0, got {}", self.tol),
            );
        }
        if self.max_iter == 0 {
            return bad("max_iter", "max_iter must be at least 1".into());
        }
        if self.backend == Backend::Lda && !self.fit_intercept {
            return bad(
                "backend",
                "the lda backend always has a bias (the class log-priors)".into(),
            );
        }
        if self.backend == Backend::Smartcore && !self.fit_intercept {
            return bad(
                "backend",
                "the smartcore backend always fits an intercept".into(),
            );
        }
        Ok(ValidLogisticParams(self.clone()))
    }
}

/// Checked [`LogisticParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidLogisticParams(LogisticParams);

impl ValidLogisticParams {
    pub fn params(&self) -> &LogisticParams {
        &self.0
    }

    /// Trains on raw features `x` (n × d) with labels `y` in `0..n_classes`.
    pub fn fit(
        &self,
        x: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
    ) -> Result<FloatModel, ModelError> {
        let p = &self.0;
        let (n, d) = x.dim();
        check_training_set(x, y, n_classes)?;
        let start = Instant::now();
        let scaler = Standardizer::fit(x, p.standardize, p.fit_intercept);
        let xs = scaler.apply(x);
        let problem = Problem {
            x: xs.view(),
            y,
            n_classes,
        };
        let out = p.backend.trainer().train(&problem, p)?;
        if out.weights.dim() != (d, n_classes) || out.bias.len() != n_classes {
            return Err(ModelError::Backend {
                backend: p.backend.name(),
                reason: format!(
                    "returned weights {:?} and bias {} for {d} features, {n_classes} classes",
                    out.weights.dim(),
                    out.bias.len()
                ),
            });
        }
        let seconds = start.elapsed().as_secs_f64();
        // Convergence is judged the same way for every backend: sklearn's criterion evaluated
        // by our own objective at the returned point.
        let objective = Objective::new(problem.x, y, n_classes, p.c, p.fit_intercept);
        let theta = pack(&out.weights, &out.bias);
        let mut grad = vec![0.0; theta.len()];
        let final_loss = objective.eval(&theta, &mut grad);
        let gradient_max_norm = max_norm(&grad);
        let (weights, bias) = scaler.unfold(out.weights, out.bias);
        let model = FloatModel::new(weights, bias)?;
        Ok(FloatModel {
            fit: Some(FitInfo {
                backend: p.backend,
                iterations: out.iterations,
                // A closed-form backend is solved, not iterated: it has converged to its own
                // optimum (the loss and gradient still report sklearn's objective there).
                converged: p.backend == Backend::Lda || gradient_max_norm <= p.tol,
                final_loss,
                gradient_max_norm,
                seconds,
                n_rows: n,
            }),
            ..model
        })
    }
}

/// Trains a multinomial logistic regression: `params.check()?.fit(x, y, n_classes)`.
pub fn fit(
    x: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    params: &LogisticParams,
) -> Result<FloatModel, ModelError> {
    params.check()?.fit(x, y, n_classes)
}

/// How a fit went. Non-convergence is information, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitInfo {
    pub backend: Backend,
    /// Optimiser iterations; `None` when the backend does not report them (linfa, smartcore).
    pub iterations: Option<usize>,
    /// `gradient_max_norm <= tol` at the returned weights.
    pub converged: bool,
    /// The 1/n-scaled objective at the returned weights (on the standardised problem).
    pub final_loss: f64,
    /// Max-norm of the scaled objective's gradient at the returned weights.
    pub gradient_max_norm: f64,
    /// Wall time of standardisation + optimisation.
    pub seconds: f64,
    pub n_rows: usize,
}

/// A fitted float model on raw features: `scores = x·weights + bias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatModel {
    /// d × C.
    pub weights: Array2<f64>,
    /// C.
    pub bias: Array1<f64>,
    /// `None` for a model built from given weights (e.g. imported from sklearn).
    pub fit: Option<FitInfo>,
}

impl FloatModel {
    /// A model from given weights (d × C) and bias (C); checks shapes and finiteness.
    pub fn new(weights: Array2<f64>, bias: Array1<f64>) -> Result<Self, ModelError> {
        let model = Self {
            weights,
            bias,
            fit: None,
        };
        model.validate().map_err(ModelError::InvalidModel)?;
        Ok(model)
    }

    /// Shape and finiteness invariants; the message says what is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let (d, c) = self.weights.dim();
        if d == 0 || c < 2 {
            return Err(format!(
                "weights must be d × C with d ≥ 1, C ≥ 2, got {d} × {c}"
            ));
        }
        if self.bias.len() != c {
            return Err(format!(
                "bias has {} entries for {c} classes",
                self.bias.len()
            ));
        }
        if self
            .weights
            .iter()
            .chain(self.bias.iter())
            .any(|v| !v.is_finite())
        {
            return Err("weights or bias contain non-finite values".into());
        }
        Ok(())
    }

    pub fn n_features(&self) -> usize {
        self.weights.nrows()
    }

    pub fn n_classes(&self) -> usize {
        self.weights.ncols()
    }

    /// Class scores (logits) for raw features `x` (n × d): n × C.
    pub fn decision_function(&self, x: ArrayView2<f32>) -> Result<Array2<f64>, ModelError> {
        check_features(x, self.n_features(), "float model input")?;
        Ok(x.mapv(f64::from).dot(&self.weights) + &self.bias)
    }

    /// The highest-scoring class of every row.
    pub fn predict(&self, x: ArrayView2<f32>) -> Result<Vec<usize>, ModelError> {
        Ok(argmax_rows(self.decision_function(x)?.view()))
    }
}

impl Scorer for FloatModel {
    fn scores(&self, x: ArrayView2<f32>) -> Result<Array2<f64>, ModelError> {
        self.decision_function(x)
    }
    fn n_classes(&self) -> usize {
        FloatModel::n_classes(self)
    }
}

/// A training problem on already standardised features.
pub struct Problem<'a> {
    pub x: ArrayView2<'a, f64>,
    pub y: &'a [usize],
    pub n_classes: usize,
}

/// Weights on the standardised problem, as a backend returns them.
pub struct TrainOutput {
    /// d × C.
    pub weights: Array2<f64>,
    /// C (zeros without intercept).
    pub bias: Array1<f64>,
    pub iterations: Option<usize>,
}

/// One optimiser. Implementations minimise [`LogisticParams`]' objective on `problem`.
pub trait Trainer: Sync {
    fn train(
        &self,
        problem: &Problem<'_>,
        params: &LogisticParams,
    ) -> Result<TrainOutput, ModelError>;
}

/// Rejects empty sets, label/row mismatches, out-of-range labels, empty classes and
/// non-finite features before any work starts.
pub(crate) fn check_training_set(
    x: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
) -> Result<(), ModelError> {
    let (n, d) = x.dim();
    if n == 0 || d == 0 {
        return Err(ModelError::EmptyTrainingSet);
    }
    if y.len() != n {
        return Err(ModelError::LabelCount {
            rows: n,
            labels: y.len(),
        });
    }
    if n_classes < 2 {
        return Err(ModelError::TooFewClasses { n_classes });
    }
    let mut counts = vec![0usize; n_classes];
    for (row, &label) in y.iter().enumerate() {
        match counts.get_mut(label) {
            Some(c) => *c += 1,
            None => {
                return Err(ModelError::LabelOutOfRange {
                    row,
                    label,
                    n_classes,
                })
            }
        }
    }
    if let Some(class) = counts.iter().position(|&c| c == 0) {
        return Err(ModelError::EmptyClass { class });
    }
    check_features(x, d, "training features")
}

/// Per-column affine map used during training: `x_std = (x − mean) / scale`.
pub(crate) struct Standardizer {
    mean: Array1<f64>,
    scale: Array1<f64>,
}

impl Standardizer {
    /// Population mean/std like sklearn's StandardScaler (zero-variance columns keep scale
    /// 1). Without an intercept only scaling is applied: centring would need a bias term.
    pub(crate) fn fit(x: ArrayView2<f32>, standardize: bool, center: bool) -> Self {
        let d = x.ncols();
        if !standardize {
            return Self {
                mean: Array1::zeros(d),
                scale: Array1::ones(d),
            };
        }
        let xf = x.mapv(f64::from);
        let n = xf.nrows() as f64;
        let mean = xf.sum_axis(Axis(0)) / n;
        let var = xf.map_axis(Axis(0), |col| {
            let m = col.sum() / n;
            col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n
        });
        let scale = var.mapv(|v| if v > 0.0 { v.sqrt() } else { 1.0 });
        let mean = if center { mean } else { Array1::zeros(d) };
        Self { mean, scale }
    }

    pub(crate) fn apply(&self, x: ArrayView2<f32>) -> Array2<f64> {
        (x.mapv(f64::from) - &self.mean) / &self.scale
    }

    /// Weights for raw features: `x_std·W + b = x·(W / scale) + (b − (mean / scale)·W)`.
    pub(crate) fn unfold(
        &self,
        weights: Array2<f64>,
        bias: Array1<f64>,
    ) -> (Array2<f64>, Array1<f64>) {
        let w_raw = weights / self.scale.view().insert_axis(Axis(1));
        let b_raw = bias - self.mean.dot(&w_raw);
        (w_raw, b_raw)
    }
}

fn pack(weights: &Array2<f64>, bias: &Array1<f64>) -> Vec<f64> {
    weights.iter().chain(bias.iter()).copied().collect()
}

fn max_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, g| m.max(g.abs()))
}

/// Our L-BFGS backend.
pub struct LbfgsTrainer;

impl Trainer for LbfgsTrainer {
    fn train(
        &self,
        problem: &Problem<'_>,
        params: &LogisticParams,
    ) -> Result<TrainOutput, ModelError> {
        let objective = Objective::new(
            problem.x,
            problem.y,
            problem.n_classes,
            params.c,
            params.fit_intercept,
        );
        let theta0 = vec![0.0; objective.n_params()];
        let result = lbfgs::minimize(
            |t, g| objective.eval(t, g),
            theta0,
            &lbfgs::Settings {
                max_iter: params.max_iter,
                gtol: params.tol,
                ..Default::default()
            },
        );
        let (d, k) = (problem.x.ncols(), problem.n_classes);
        let bias = Array1::from(result.theta[d * k..].to_vec());
        let mut theta = result.theta;
        theta.truncate(d * k);
        let weights = Array2::from_shape_vec((d, k), theta).map_err(|e| ModelError::Backend {
            backend: "lbfgs",
            reason: e.to_string(),
        })?;
        Ok(TrainOutput {
            weights,
            bias,
            iterations: Some(result.iterations),
        })
    }
}

/// linfa-logistic backend. linfa minimises Σ CE + (α/2)‖W‖² (intercept unpenalised), so
/// sklearn's C maps to α = 1/C; its gradient tolerance is on the L2 norm of that unscaled
/// gradient, i.e. n times ours (and stricter, L2 ≥ max-norm).
pub struct LinfaTrainer;

impl Trainer for LinfaTrainer {
    fn train(
        &self,
        problem: &Problem<'_>,
        params: &LogisticParams,
    ) -> Result<TrainOutput, ModelError> {
        use linfa::traits::Fit;
        let err = |e: linfa_logistic::error::Error| ModelError::Backend {
            backend: "linfa",
            reason: e.to_string(),
        };
        let n = problem.x.nrows() as f64;
        let dataset = linfa::Dataset::new(problem.x.to_owned(), Array1::from(problem.y.to_vec()));
        let model = linfa_logistic::MultiLogisticRegression::<f64>::default()
            .alpha(1.0 / params.c)
            .max_iterations(params.max_iter as u64)
            .gradient_tolerance(params.tol * n)
            .with_intercept(params.fit_intercept)
            .fit(&dataset)
            .map_err(err)?;
        let (d, k) = (problem.x.ncols(), problem.n_classes);
        let mut weights = Array2::zeros((d, k));
        let mut bias = Array1::zeros(k);
        // linfa orders columns by its sorted class list; map them back to our labels.
        for (col, &class) in model.classes().iter().enumerate() {
            weights
                .column_mut(class)
                .assign(&model.params().column(col));
            if params.fit_intercept {
                bias[class] = model.intercept()[col];
            }
        }
        Ok(TrainOutput {
            weights,
            bias,
            iterations: None,
        })
    }
}

/// smartcore backend. smartcore minimises Σ CE + (α/2)‖W‖², so α = 1/C. Built from its own
/// `DenseMatrix` (smartcore uses ndarray 0.17, we use 0.16).
pub struct SmartcoreTrainer;

impl Trainer for SmartcoreTrainer {
    fn train(
        &self,
        problem: &Problem<'_>,
        params: &LogisticParams,
    ) -> Result<TrainOutput, ModelError> {
        use smartcore::linalg::basic::arrays::Array;
        use smartcore::linalg::basic::matrix::DenseMatrix;
        use smartcore::linear::logistic_regression::{
            LogisticRegression, LogisticRegressionParameters,
        };
        let err = |e: smartcore::error::Failed| ModelError::Backend {
            backend: "smartcore",
            reason: e.to_string(),
        };
        let (n, d) = problem.x.dim();
        let k = problem.n_classes;
        let values: Vec<f64> = problem.x.iter().copied().collect();
        let x = DenseMatrix::new(n, d, values, false).map_err(err)?;
        let labels = problem
            .y
            .iter()
            .map(|&c| u32::try_from(c))
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|e| ModelError::Backend {
                backend: "smartcore",
                reason: e.to_string(),
            })?;
        let fitted: LogisticRegression<f64, u32, DenseMatrix<f64>, Vec<u32>> =
            LogisticRegression::fit(
                &x,
                &labels,
                LogisticRegressionParameters::default().with_alpha(1.0 / params.c),
            )
            .map_err(err)?;
        let classes = fitted.classes();
        let coef = fitted.coefficients();
        let intercept = fitted.intercept();
        let mut weights = Array2::zeros((d, k));
        let mut bias = Array1::zeros(k);
        if k == 2 {
            // Binary problems get one sigmoid row: logit(class 1) − logit(class 0).
            for j in 0..d {
                weights[[j, classes[1] as usize]] = *coef.get((0, j));
            }
            bias[classes[1] as usize] = *intercept.get((0, 0));
        } else {
            for (row, &class) in classes.iter().enumerate() {
                for j in 0..d {
                    weights[[j, class as usize]] = *coef.get((row, j));
                }
                bias[class as usize] = *intercept.get((row, 0));
            }
        }
        Ok(TrainOutput {
            weights,
            bias,
            iterations: None,
        })
    }
}

/// A small L-BFGS for smooth unconstrained problems, with scipy L-BFGS-B's stopping rules
/// (projected-gradient max-norm ≤ gtol, or relative decrease ≤ ftol, or max_iter).
mod lbfgs {
    /// Optimiser settings; the defaults are the ones sklearn passes to scipy.
    pub struct Settings {
        pub max_iter: usize,
        pub gtol: f64,
        /// sklearn: `ftol = 64·ε`.
        pub ftol: f64,
        /// Correction pairs kept (scipy's `maxcor`).
        pub history: usize,
        /// Function evaluations per line search (sklearn's `maxls`).
        pub max_ls: usize,
    }

    impl Default for Settings {
        fn default() -> Self {
            Self {
                max_iter: 100,
                gtol: 1e-4,
                ftol: 64.0 * f64::EPSILON,
                history: 10,
                max_ls: 50,
            }
        }
    }

    pub struct Output {
        pub theta: Vec<f64>,
        pub iterations: usize,
    }

    /// Sufficient-decrease and curvature constants of the strong Wolfe conditions, as in
    /// scipy's line search (dcsrch ftol = 1e-3, gtol = 0.9).
    const C1: f64 = 1e-3;
    const C2: f64 = 0.9;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    struct Point {
        alpha: f64,
        f: f64,
        /// Directional derivative at `alpha`.
        dphi: f64,
        theta: Vec<f64>,
        grad: Vec<f64>,
    }

    /// Minimises `f` from `theta`; `f(θ, g)` returns the value and writes the gradient.
    pub fn minimize<F>(mut f: F, mut theta: Vec<f64>, set: &Settings) -> Output
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        let m = theta.len();
        let mut grad = vec![0.0; m];
        let mut fx = f(&theta, &mut grad);
        let mut s_hist: Vec<Vec<f64>> = Vec::new();
        let mut y_hist: Vec<Vec<f64>> = Vec::new();
        let mut iterations = 0;
        while iterations < set.max_iter && super::max_norm(&grad) > set.gtol {
            let mut dir = two_loop(&grad, &s_hist, &y_hist);
            let mut dphi0 = dot(&grad, &dir);
            if dphi0 >= 0.0 || !dphi0.is_finite() {
                // Not a descent direction (numerical breakdown): restart from steepest descent.
                s_hist.clear();
                y_hist.clear();
                dir = grad.iter().map(|g| -g).collect();
                dphi0 = dot(&grad, &dir);
            }
            // scipy: the first step is 1/‖d‖, later ones the quasi-Newton step 1.
            let step0 = if s_hist.is_empty() {
                1.0 / dot(&dir, &dir).sqrt()
            } else {
                1.0
            };
            let Some(next) = line_search(&mut f, &theta, fx, dphi0, &dir, step0, set.max_ls) else {
                if s_hist.is_empty() {
                    break; // even steepest descent found no decrease: at numerical optimum
                }
                s_hist.clear();
                y_hist.clear();
                continue;
            };
            iterations += 1;
            let s: Vec<f64> = next.theta.iter().zip(&theta).map(|(a, b)| a - b).collect();
            let y: Vec<f64> = next.grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
            // Keep only pairs with positive curvature so the inverse Hessian stays definite.
            if dot(&s, &y) > f64::EPSILON * dot(&y, &y) {
                if s_hist.len() == set.history {
                    s_hist.remove(0);
                    y_hist.remove(0);
                }
                s_hist.push(s);
                y_hist.push(y);
            }
            let decrease = (fx - next.f) / fx.abs().max(next.f.abs()).max(1.0);
            theta = next.theta;
            grad = next.grad;
            fx = next.f;
            if decrease <= set.ftol {
                break;
            }
        }
        Output { theta, iterations }
    }

    /// −H·g by the two-loop recursion, H₀ = (sᵀy / yᵀy)·I.
    fn two_loop(grad: &[f64], s_hist: &[Vec<f64>], y_hist: &[Vec<f64>]) -> Vec<f64> {
        let mut q: Vec<f64> = grad.to_vec();
        let mut alphas = vec![0.0; s_hist.len()];
        for (i, (s, y)) in s_hist.iter().zip(y_hist).enumerate().rev() {
            let a = dot(s, &q) / dot(y, s);
            alphas[i] = a;
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
        }
        if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|qi| *qi *= gamma);
        }
        for (i, (s, y)) in s_hist.iter().zip(y_hist).enumerate() {
            let beta = dot(y, &q) / dot(y, s);
            q.iter_mut()
                .zip(s)
                .for_each(|(qi, si)| *qi += (alphas[i] - beta) * si);
        }
        q.iter_mut().for_each(|qi| *qi = -*qi);
        q
    }

    /// Strong-Wolfe line search (Nocedal & Wright, algorithms 3.5–3.6) with safeguarded
    /// cubic interpolation. `None` if no acceptable step is found within `max_ls` evaluations.
    fn line_search<F>(
        f: &mut F,
        theta: &[f64],
        f0: f64,
        dphi0: f64,
        dir: &[f64],
        step0: f64,
        max_ls: usize,
    ) -> Option<Point>
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        let mut evals = 0;
        let mut eval = |alpha: f64| {
            let t: Vec<f64> = theta.iter().zip(dir).map(|(x, d)| x + alpha * d).collect();
            let mut g = vec![0.0; t.len()];
            let fv = f(&t, &mut g);
            Point {
                alpha,
                f: fv,
                dphi: dot(&g, dir),
                theta: t,
                grad: g,
            }
        };
        let armijo = |p: &Point| p.f <= f0 + C1 * p.alpha * dphi0;
        let curvature = |p: &Point| p.dphi.abs() <= -C2 * dphi0;
        let mut prev = Point {
            alpha: 0.0,
            f: f0,
            dphi: dphi0,
            theta: vec![],
            grad: vec![],
        };
        let mut alpha = step0;
        let (mut lo, mut hi) = loop {
            if evals == max_ls {
                return None;
            }
            evals += 1;
            let p = eval(alpha);
            if !p.f.is_finite() {
                // Overflowed: shrink towards the last good point.
                alpha = 0.5 * (prev.alpha + alpha);
                continue;
            }
            if !armijo(&p) || (evals > 1 && p.f >= prev.f) {
                break (prev, p);
            }
            if curvature(&p) {
                return Some(p);
            }
            if p.dphi >= 0.0 {
                break (p, prev);
            }
            alpha = 4.0 * p.alpha; // expand: the minimiser lies further along
            prev = p;
        };
        // Zoom: `lo` satisfies Armijo with the lowest f seen; the minimiser lies between.
        while evals < max_ls {
            evals += 1;
            let a = interpolate(&lo, &hi);
            let p = eval(a);
            if !p.f.is_finite() || !armijo(&p) || p.f >= lo.f {
                hi = p;
            } else {
                if curvature(&p) {
                    return Some(p);
                }
                if p.dphi * (hi.alpha - lo.alpha) >= 0.0 {
                    hi = std::mem::replace(&mut lo, p);
                } else {
                    lo = p;
                }
            }
            if (hi.alpha - lo.alpha).abs() <= f64::EPSILON * lo.alpha.abs().max(1.0) {
                break;
            }
        }
        // Out of evaluations: accept the best Armijo point if it moved at all (scipy
        // likewise returns its best step with a warning).
        (lo.alpha > 0.0 && !lo.theta.is_empty()).then_some(lo)
    }

    /// Minimiser of the cubic through (a, f_a, f'_a), (b, f_b, f'_b), kept at least 10 % of
    /// the interval away from both ends; bisection when the cubic has no real minimiser.
    fn interpolate(a: &Point, b: &Point) -> f64 {
        let (lo, hi) = (a.alpha.min(b.alpha), a.alpha.max(b.alpha));
        let width = hi - lo;
        let d1 = a.dphi + b.dphi - 3.0 * (a.f - b.f) / (a.alpha - b.alpha);
        let disc = d1 * d1 - a.dphi * b.dphi;
        let mid = 0.5 * (lo + hi);
        if disc.is_nan() || disc < 0.0 || !b.f.is_finite() {
            return mid;
        }
        let d2 = (b.alpha - a.alpha).signum() * disc.sqrt();
        let t = b.alpha - (b.alpha - a.alpha) * (b.dphi + d2 - d1) / (b.dphi - a.dphi + 2.0 * d2);
        if t.is_finite() {
            t.clamp(lo + 0.1 * width, hi - 0.1 * width)
        } else {
            mid
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn two_loop_satisfies_the_secant_equation() {
            // On a quadratic y = H·s; the inverse-Hessian estimate must map the newest y to s.
            let h = [1.0, 10.0, 100.0, 1000.0];
            let pairs: Vec<Vec<f64>> = vec![
                vec![1.0, 0.5, -0.2, 0.1],
                vec![-0.3, 1.0, 0.4, 0.0],
                vec![0.2, -0.1, 1.0, 0.3],
            ];
            let ys: Vec<Vec<f64>> = pairs
                .iter()
                .map(|s| s.iter().zip(&h).map(|(a, b)| a * b).collect())
                .collect();
            let d = two_loop(ys.last().unwrap(), &pairs, &ys);
            for (di, si) in d.iter().zip(pairs.last().unwrap()) {
                assert!((di + si).abs() < 1e-12, "{d:?}");
            }
        }

        #[test]
        fn minimizes_rosenbrock() {
            let rosen = |t: &[f64], g: &mut [f64]| {
                let (x, y) = (t[0], t[1]);
                g[0] = -2.0 * (1.0 - x) - 400.0 * x * (y - x * x);
                g[1] = 200.0 * (y - x * x);
                (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2)
            };
            let set = Settings {
                max_iter: 200,
                gtol: 1e-8,
                ..Default::default()
            };
            let out = minimize(rosen, vec![-1.2, 1.0], &set);
            assert!((out.theta[0] - 1.0).abs() < 1e-5, "{:?}", out.theta);
            assert!((out.theta[1] - 1.0).abs() < 1e-5, "{:?}", out.theta);
            assert!(out.iterations < 100, "took {} iterations", out.iterations);
        }

        #[test]
        fn ill_conditioned_quadratic_converges() {
            // Curvatures 1 … 1e4: steepest descent would need ~6e4 iterations for this accuracy.
            let h: Vec<f64> = (0..20).map(|i| 10f64.powf(i as f64 * 4.0 / 19.0)).collect();
            let quad = |t: &[f64], g: &mut [f64]| {
                let mut f = 0.0;
                for i in 0..t.len() {
                    g[i] = h[i] * (t[i] - 1.0);
                    f += 0.5 * h[i] * (t[i] - 1.0).powi(2);
                }
                f
            };
            let set = Settings {
                max_iter: 2000,
                gtol: 1e-6,
                ftol: 0.0,
                ..Default::default()
            };
            let out = minimize(quad, vec![0.0; 20], &set);
            assert!(
                out.theta.iter().all(|v| (v - 1.0).abs() < 1e-5),
                "{:?}",
                out.theta
            );
            assert!(out.iterations < 1000, "took {} iterations", out.iterations);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated 2-D clusters, first feature on a ×1000 scale like MFCC c0.
    fn clusters() -> (Array2<f32>, Vec<usize>) {
        let centers = [[-3.0f32, 0.0], [3.0, 1.0], [0.0, -4.0]];
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for (c, center) in centers.iter().enumerate() {
            for i in 0..20 {
                let t = i as f32 / 20.0;
                let jitter = [(t * 7.3).sin(), (t * 5.1).cos()];
                rows.push([
                    (center[0] + jitter[0]) * 1000.0 - 10_000.0,
                    center[1] + jitter[1],
                ]);
                y.push(c);
            }
        }
        let x = Array2::from_shape_vec((rows.len(), 2), rows.concat()).unwrap();
        (x, y)
    }

    #[test]
    fn lbfgs_separates_clusters_and_folds_standardisation() {
        let (x, y) = clusters();
        let model = fit(x.view(), &y, 3, &LogisticParams::default()).unwrap();
        let info = model.fit.as_ref().unwrap();
        assert!(info.converged, "{info:?}");
        assert_eq!(model.predict(x.view()).unwrap(), y);
        // The folded raw-feature model must reproduce the standardised problem's scores:
        // the loss recomputed on raw inputs with raw weights equals the reported one.
        let scaler = Standardizer::fit(x.view(), true, true);
        let xs = scaler.apply(x.view());
        let raw = model.decision_function(x.view()).unwrap();
        let w_std = &model.weights * &scaler.scale.view().insert_axis(Axis(1));
        let b_std = &model.bias + &scaler.mean.dot(&model.weights);
        let std_scores = xs.dot(&w_std) + &b_std;
        assert!(raw
            .iter()
            .zip(std_scores.iter())
            .all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn larger_c_fits_tighter() {
        let (x, y) = clusters();
        let loose = LogisticParams {
            c: 0.01,
            max_iter: 500,
            ..Default::default()
        };
        let tight = LogisticParams {
            c: 100.0,
            max_iter: 500,
            ..Default::default()
        };
        let norm = |m: &FloatModel| m.weights.iter().map(|v| v * v).sum::<f64>();
        let ml = fit(x.view(), &y, 3, &loose).unwrap();
        let mt = fit(x.view(), &y, 3, &tight).unwrap();
        assert!(
            norm(&mt) > 10.0 * norm(&ml),
            "{} vs {}",
            norm(&mt),
            norm(&ml)
        );
    }

    #[test]
    fn backends_agree_on_an_easy_problem() {
        let (x, y) = clusters();
        let base = LogisticParams {
            max_iter: 1000,
            tol: 1e-6,
            ..Default::default()
        };
        let reference = fit(x.view(), &y, 3, &base).unwrap();
        for backend in [Backend::Linfa, Backend::Smartcore] {
            let model = fit(
                x.view(),
                &y,
                3,
                &LogisticParams {
                    backend,
                    ..base.clone()
                },
            )
            .unwrap();
            assert_eq!(model.predict(x.view()).unwrap(), y, "{backend}");
            let info = model.fit.as_ref().unwrap();
            let ref_loss = reference.fit.as_ref().unwrap().final_loss;
            // Same objective (α = 1/C mapping): the minima agree.
            assert!(
                (info.final_loss - ref_loss).abs() < 1e-4,
                "{backend}: {info:?} vs {ref_loss}"
            );
        }
    }

    #[test]
    fn lda_separates_clusters_in_closed_form_and_needs_a_bias() {
        let (x, y) = clusters();
        let params = LogisticParams {
            backend: Backend::Lda,
            ..Default::default()
        };
        let model = fit(x.view(), &y, 3, &params).unwrap();
        // Raw features (×1000 scale on the first): the standardisation is folded back.
        assert_eq!(model.predict(x.view()).unwrap(), y);
        let info = model.fit.as_ref().unwrap();
        assert_eq!((info.iterations, info.converged), (Some(0), true));
        // A different linear model: not sklearn's optimum, so its LR loss is higher.
        let lr = fit(x.view(), &y, 3, &LogisticParams::default()).unwrap();
        assert!(
            info.final_loss > lr.fit.as_ref().unwrap().final_loss,
            "{info:?}"
        );
        let err = LogisticParams {
            fit_intercept: false,
            ..params
        }
        .check()
        .unwrap_err();
        assert!(err.to_string().contains("lda"), "{err}");
        assert_eq!("lda".parse::<Backend>().unwrap(), Backend::Lda);
    }

    #[test]
    fn without_intercept_the_bias_stays_zero() {
        let (x, y) = clusters();
        let p = LogisticParams {
            fit_intercept: false,
            ..Default::default()
        };
        let model = fit(x.view(), &y, 3, &p).unwrap();
        assert!(model.bias.iter().all(|&b| b == 0.0), "{:?}", model.bias);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (x, y) = clusters();
        let p = LogisticParams::default();
        assert!(matches!(
            fit(x.view(), &y[1..], 3, &p),
            Err(ModelError::LabelCount {
                rows: 60,
                labels: 59
            })
        ));
        assert!(matches!(
            fit(x.view(), &y, 2, &p),
            Err(ModelError::LabelOutOfRange {
                label: 2,
                n_classes: 2,
                ..
            })
        ));
        assert!(matches!(
            fit(x.view(), &y, 4, &p),
            Err(ModelError::EmptyClass { class: 3 })
        ));
        let mut bad = x.clone();
        bad[[5, 1]] = f32::NAN;
        assert!(matches!(
            fit(bad.view(), &y, 3, &p),
            Err(ModelError::NonFinite { row: 5, col: 1, .. })
        ));
        let empty = Array2::<f32>::zeros((0, 2));
        assert!(matches!(
            fit(empty.view(), &[], 3, &p),
            Err(ModelError::EmptyTrainingSet)
        ));
        let model = fit(x.view(), &y, 3, &p).unwrap();
        let wrong = Array2::<f32>::zeros((2, 3));
        assert!(matches!(
            model.predict(wrong.view()),
            Err(ModelError::FeatureCount {
                expected: 2,
                found: 3,
                ..
            })
        ));
    }

    #[test]
    fn params_check_rejects_invalid_settings() {
        for p in [
            LogisticParams {
                c: 0.0,
                ..Default::default()
            },
            LogisticParams {
                c: f64::NAN,
                ..Default::default()
            },
            LogisticParams {
                tol: -1.0,
                ..Default::default()
            },
            LogisticParams {
                max_iter: 0,
                ..Default::default()
            },
            LogisticParams {
                backend: Backend::Smartcore,
                fit_intercept: false,
                ..Default::default()
            },
        ] {
            assert!(
                matches!(p.check(), Err(ModelError::InvalidParams { .. })),
                "{p:?}"
            );
        }
        assert!(LogisticParams::default().check().is_ok());
    }

    #[test]
    fn params_serde_defaults_and_unknown_fields() {
        let p: LogisticParams = serde_json::from_str(r#"{"c": 2.0, "backend": "linfa"}"#).unwrap();
        assert_eq!(p.c, 2.0);
        assert_eq!(p.backend, Backend::Linfa);
        assert_eq!(p.max_iter, 100);
        assert!(serde_json::from_str::<LogisticParams>(r#"{"C": 2.0}"#).is_err());
        assert_eq!("smartcore".parse::<Backend>().unwrap(), Backend::Smartcore);
        assert!("sgd".parse::<Backend>().is_err());
    }
}
