//! Post-training quantization with Concrete ML's exact semantics (docs/ARCHITECTURE.md §3),
//! plus two options of ours (per-feature input ranges, symmetric weights).
//!
//! Concrete ML (`quantizers.py`, `SklearnLinearModelMixin._quantize_model`):
//! - inputs and weights each get one signed asymmetric `UniformQuantizer` from the global
//!   min/max: `scale = (max − min)/(2ⁿ − 1)`, `offset = 2ⁿ⁻¹`,
//!   `zp = round((−max·offset − min·(2ⁿ − 1 − offset)) / (max − min))`,
//!   `q = clip(rint(x/scale + zp), −offset, 2ⁿ − 1 − offset)`, `x ≈ scale·(q − zp)`;
//!   numpy's `round`/`rint` round half to even.
//! - the circuit computes `q_y = q_X·q_W − Z_w·Σ_j q_X[j] + q_b` exactly in integers;
//! - the bias is quantized with the matmul's output parameters `S = S_x·S_w`,
//!   `Z_c = Z_x·(Σ_j q_W[j,c] − d·Z_w)`: `q_b = rint(b/S + Z_c)` (no clipping);
//! - dequantization: `y = S·(q_y − 2·Z_c)` (the matmul and the bias each carry one `Z_c`).
//!
//! Derivation: `Σ_j x_j w_jc ≈ Σ_j S_x(q_j − Z_x)·S_w(q_jc − Z_w)
//! = S·(Σ_j q_j q_jc − Z_w Σ_j q_j − Z_x Σ_j q_jc + d·Z_x·Z_w) = S·(q_mm − Z_c)` and
//! `b ≈ S·(q_b − Z_c)`, so `y ≈ S·(q_mm + q_b − 2·Z_c)`.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::{argmax_rows, check_features, FloatModel, Scorer};
use crate::error::ModelError;
use crate::fhe::IntegerLinear;

/// Widest supported bit width: keeps every product `q_x·w_eff` below 2⁴⁸ so scores of any
/// realistic d fit i64 (the accumulator bound is checked anyway).
pub const MAX_N_BITS: u32 = 24;

/// Concrete ML's stability threshold: a tensor whose range is below it holds one value.
const STABILITY_CONST: f64 = 1e-6;

/// Largest magnitude an f64 holds as an exact integer (2⁵³).
const EXACT_F64_INT: f64 = 9_007_199_254_740_992.0;

/// Quantization settings. [`QuantOptions::concrete`] is Concrete ML's `n_bits=n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantOptions {
    pub n_bits_input: u32,
    pub n_bits_weight: u32,
    /// Ours: each feature column gets its own scale/zero-point from its own training
    /// min/max (a per-feature affine standardisation onto the full integer range), and the
    /// per-column scales are folded into the float weights before those are quantized. The
    /// circuit is unchanged; one range for all 20 unscaled MFCC sums (c0 spans thousands,
    /// the others tens) is what wastes the low bit widths.
    pub standardize_inputs: bool,
    /// Ours: symmetric weight quantizer (zero-point 0), which drops the `Z_w·Σ q_X` term.
    pub symmetric_weights: bool,
}

impl QuantOptions {
    /// Concrete ML's `LogisticRegression(n_bits=n)`: n bits for inputs and weights, one
    /// signed asymmetric range per tensor.
    pub fn concrete(n_bits: u32) -> Self {
        Self {
            n_bits_input: n_bits,
            n_bits_weight: n_bits,
            standardize_inputs: false,
            symmetric_weights: false,
        }
    }

    pub fn check(&self) -> Result<(), ModelError> {
        // The quantizers validate their own bit widths.
        UniformQuantizer::from_range(0.0, 1.0, self.n_bits_input, false)?;
        UniformQuantizer::from_range(0.0, 1.0, self.n_bits_weight, self.symmetric_weights)?;
        Ok(())
    }
}

/// Concrete ML's `UniformQuantizer` for signed values (is_signed=True, not QAT).
///
/// Every value of the calibration range comes back within half a step (`scale / 2`) after
/// quantize → dequantize; values outside it clip to the ends of the integer range.
///
/// ```rust
/// use fhe_shazam::model::UniformQuantizer;
///
/// // 8 bits on [−1, 3]: scale = 4/255, zero-point = rint((−3·128 + 1·127)/4) = −64.
/// let q = UniformQuantizer::from_range(-1.0, 3.0, 8, false)?;
/// assert_eq!((q.scale, q.zero_point), (4.0 / 255.0, -64));
/// assert_eq!(q.range(), (-128, 127));
/// for i in 0..=400 {
///     let x = -1.0 + 4.0 * f64::from(i) / 400.0;
///     let back = q.dequant(q.quant(x));
///     assert!((back - x).abs() <= q.scale / 2.0 + 1e-12, "{x} → {back}");
/// }
/// assert_eq!((q.quant(-50.0), q.quant(50.0)), (-128, 127)); // clipped
/// # Ok::<(), fhe_shazam::error::ModelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniformQuantizer {
    pub n_bits: u32,
    pub symmetric: bool,
    /// Calibration range the parameters were computed from.
    pub rmin: f64,
    pub rmax: f64,
    pub scale: f64,
    pub zero_point: i64,
    /// 2ⁿ⁻¹, or 0 for a degenerate (single-value) range, as in Concrete ML.
    pub offset: i64,
}

impl UniformQuantizer {
    /// Concrete ML's `compute_quantization_parameters` for the range `[rmin, rmax]`.
    pub fn from_range(
        rmin: f64,
        rmax: f64,
        n_bits: u32,
        symmetric: bool,
    ) -> Result<Self, ModelError> {
        // Symmetric signed quantization needs 2 bits (the scale divides by 2ⁿ⁻¹ − 1).
        let min_bits = if symmetric { 2 } else { 1 };
        if !(min_bits..=MAX_N_BITS).contains(&n_bits) {
            return Err(ModelError::InvalidParams {
                param: "n_bits",
                reason: format!(
                    "{} quantizer bits must be in {min_bits}..={MAX_N_BITS}, got {n_bits}",
                    if symmetric { "symmetric" } else { "asymmetric" }
                ),
            });
        }
        if !(rmin.is_finite() && rmax.is_finite() && rmin <= rmax) {
            return Err(ModelError::InvalidModel(format!(
                "quantizer range [{rmin}, {rmax}] is not a finite interval"
            )));
        }
        let levels = (1i64 << n_bits) - 1;
        let mut offset = 1i64 << (n_bits - 1);
        let (scale, zero_point);
        if rmax - rmin < STABILITY_CONST {
            // One value: unsigned, and (unless it is 0) scaled so that it quantizes to 1.
            offset = 0;
            if rmax.abs() < STABILITY_CONST {
                scale = 1.0;
                zero_point = (-rmin).round_ties_even() as i64;
            } else {
                scale = rmax;
                zero_point = 0;
            }
        } else if symmetric {
            zero_point = 0;
            scale = rmax.abs().max(rmin.abs()) / (levels - offset) as f64;
        } else {
            scale = (rmax - rmin) / levels as f64;
            let zp = (rmax * -(offset as f64) - rmin * (levels - offset) as f64) / (rmax - rmin);
            zero_point = zp.round_ties_even() as i64;
        }
        Ok(Self {
            n_bits,
            symmetric,
            rmin,
            rmax,
            scale,
            zero_point,
            offset,
        })
    }

    /// Quantizer calibrated on the min/max of `values` (which must be non-empty and finite).
    fn calibrate(
        values: impl Iterator<Item = f64>,
        n_bits: u32,
        symmetric: bool,
    ) -> Result<Self, ModelError> {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        Self::from_range(lo, hi, n_bits, symmetric)
    }

    /// Smallest and largest quantized value.
    pub fn range(&self) -> (i64, i64) {
        (-self.offset, (1i64 << self.n_bits) - 1 - self.offset)
    }

    /// `clip(rint(v/scale + zp))`; out-of-range values clip, like Concrete ML.
    pub fn quant(&self, v: f64) -> i64 {
        let (lo, hi) = self.range();
        let q = (v / self.scale + self.zero_point as f64).round_ties_even();
        q.clamp(lo as f64, hi as f64) as i64
    }

    pub fn dequant(&self, q: i64) -> f64 {
        self.scale * (q as f64 - self.zero_point as f64)
    }
}

/// A quantized linear classifier whose integer scores are exactly what the FHE circuit
/// computes: `integer_scores = q_X·W_eff + q_b` with `W_eff = q_W − Z_w`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "QuantizedRepr", into = "QuantizedRepr")]
pub struct QuantizedModel {
    options: QuantOptions,
    /// The float model it was quantized from (raw features).
    float: FloatModel,
    /// One quantizer per feature column (all equal unless `standardize_inputs`).
    input: Vec<UniformQuantizer>,
    weight: UniformQuantizer,
    /// d × C quantized weights (of the per-column-scaled weights with `standardize_inputs`).
    q_weights: Array2<i64>,
    /// C.
    q_bias: Array1<i64>,
    /// Dequantization: `y = output_scale·(q_y − output_zero_points[c])`.
    output_scale: f64,
    output_zero_points: Array1<i64>,
    /// Smallest and largest integer score reachable with in-range inputs.
    score_range: (i64, i64),
    accumulator_bits: u32,
}

/// The serialized form: everything, so a reader needs no code; on reading, the model is
/// rebuilt from `float`, `input` and `options` and must match the stored integers.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantizedRepr {
    options: QuantOptions,
    float: FloatModel,
    input: Vec<UniformQuantizer>,
    weight: UniformQuantizer,
    q_weights: Array2<i64>,
    q_bias: Array1<i64>,
    output_scale: f64,
    output_zero_points: Array1<i64>,
    score_range: (i64, i64),
    accumulator_bits: u32,
}

impl From<QuantizedModel> for QuantizedRepr {
    fn from(m: QuantizedModel) -> Self {
        Self {
            options: m.options,
            float: m.float,
            input: m.input,
            weight: m.weight,
            q_weights: m.q_weights,
            q_bias: m.q_bias,
            output_scale: m.output_scale,
            output_zero_points: m.output_zero_points,
            score_range: m.score_range,
            accumulator_bits: m.accumulator_bits,
        }
    }
}

impl TryFrom<QuantizedRepr> for QuantizedModel {
    type Error = String;
    fn try_from(r: QuantizedRepr) -> Result<Self, String> {
        r.float.validate()?;
        r.options.check().map_err(|e| e.to_string())?;
        for q in &r.input {
            let expect = UniformQuantizer::from_range(q.rmin, q.rmax, q.n_bits, q.symmetric)
                .map_err(|e| e.to_string())?;
            if *q != expect {
                return Err(format!(
                    "input quantizer {q:?} does not follow from its range"
                ));
            }
        }
        let rebuilt = QuantizedModel::build(r.float.clone(), r.input.clone(), r.options)
            .map_err(|e| e.to_string())?;
        let stored = QuantizedModel {
            options: r.options,
            float: r.float,
            input: r.input,
            weight: r.weight,
            q_weights: r.q_weights,
            q_bias: r.q_bias,
            output_scale: r.output_scale,
            output_zero_points: r.output_zero_points,
            score_range: r.score_range,
            accumulator_bits: r.accumulator_bits,
        };
        if stored != rebuilt {
            return Err(
                "stored quantized parameters do not match the float weights and \
                        quantizers they were derived from"
                    .into(),
            );
        }
        Ok(rebuilt)
    }
}

impl QuantizedModel {
    /// Quantizes `float` with input ranges calibrated on the training matrix `x_train`
    /// (raw features, n × d): its global min/max, or each column's with `standardize_inputs`.
    ///
    /// With `n_bits` 8 every quantized input lies in −128..=127 (out-of-range features clip),
    /// and the integer scores are Concrete ML's circuit `q_X·q_W − Z_w·Σ_j q_X[j] + q_b`:
    ///
    /// ```rust
    /// use fhe_shazam::model::{FloatModel, QuantOptions, QuantizedModel};
    /// use ndarray::{array, Axis};
    ///
    /// let float = FloatModel::new(
    ///     array![[1.0, -1.0, 0.0], [0.5, 0.5, -1.0]], // d = 2 × C = 3
    ///     array![0.0, 0.0, 0.0],
    /// )?;
    /// let x_train = array![[2.0f32, 0.0], [-2.0, 0.0], [0.0, -2.0], [1.0, 1.5]];
    /// let q = QuantizedModel::from_float(&float, x_train.view(), &QuantOptions::concrete(8))?;
    /// assert_eq!(q.input_range(), (-128, 127));
    ///
    /// let x = array![[2.0f32, 0.0], [-2.0, 0.0], [0.0, -2.0], [1e6, -1e6]]; // last row clips
    /// let q_x = q.quantize_input(x.view())?;
    /// assert!(q_x.iter().all(|v| (-128..=127).contains(v)));
    /// assert_eq!(q_x.row(3).to_vec(), vec![127, -128]);
    ///
    /// let z_w = q.weight_quantizer().zero_point;
    /// let row_sums = q_x.sum_axis(Axis(1)).insert_axis(Axis(1));
    /// let circuit = q_x.dot(q.quantized_weights()) - &(row_sums * z_w) + q.bias();
    /// assert_eq!(q.integer_scores(q_x.view())?, circuit);
    /// // The dequantized scores rank the classes as the float model does.
    /// let first3 = x.slice(ndarray::s![..3, ..]);
    /// assert_eq!(q.predict(first3)?, float.predict(first3)?);
    /// assert_eq!(q.predict(first3)?, vec![0, 1, 2]);
    /// # Ok::<(), fhe_shazam::error::ModelError>(())
    /// ```
    pub fn from_float(
        float: &FloatModel,
        x_train: ArrayView2<f32>,
        options: &QuantOptions,
    ) -> Result<Self, ModelError> {
        options.check()?;
        float.validate().map_err(ModelError::InvalidModel)?;
        let d = float.n_features();
        check_features(x_train, d, "quantization calibration set")?;
        if x_train.nrows() == 0 {
            return Err(ModelError::EmptyTrainingSet);
        }
        let n_bits = options.n_bits_input;
        let input = if options.standardize_inputs {
            x_train
                .columns()
                .into_iter()
                .map(|col| {
                    UniformQuantizer::calibrate(col.iter().map(|&v| v as f64), n_bits, false)
                })
                .collect::<Result<_, _>>()?
        } else {
            let q = UniformQuantizer::calibrate(x_train.iter().map(|&v| v as f64), n_bits, false)?;
            vec![q; d]
        };
        Self::build(float.clone(), input, *options)
    }

    /// Everything else follows from the float model, the input quantizers and the options.
    fn build(
        float: FloatModel,
        input: Vec<UniformQuantizer>,
        options: QuantOptions,
    ) -> Result<Self, ModelError> {
        options.check()?;
        let (d, n_classes) = float.weights.dim();
        if input.len() != d
            || input
                .iter()
                .any(|q| q.n_bits != options.n_bits_input || q.symmetric)
        {
            return Err(ModelError::InvalidModel(format!(
                "need {d} asymmetric {}-bit input quantizers, got {}",
                options.n_bits_input,
                input.len()
            )));
        }
        // Per-column inputs are x_j = S_j·(q_j − Z_j): fold S_j into row j of the weights so
        // the integer part (q_j − Z_j) meets a single weight quantizer.
        let folded = if options.standardize_inputs {
            let s = Array1::from_iter(input.iter().map(|q| q.scale));
            &float.weights * &s.insert_axis(Axis(1))
        } else {
            float.weights.clone()
        };
        let weight = UniformQuantizer::calibrate(
            folded.iter().copied(),
            options.n_bits_weight,
            options.symmetric_weights,
        )?;
        let q_weights = folded.mapv(|w| weight.quant(w));
        let output_scale = if options.standardize_inputs {
            weight.scale
        } else {
            input[0].scale * weight.scale
        };
        if !(output_scale.is_finite() && output_scale != 0.0) {
            return Err(ModelError::InvalidModel(format!(
                "degenerate output scale {output_scale} (input or weight range is empty)"
            )));
        }
        // Z_c = Σ_j Z_j·(q_W[j,c] − Z_w); with one input quantizer Concrete's Z_x·(Σ q_W − d·Z_w).
        let mut matmul_zero = Array1::<i64>::zeros(n_classes);
        for (c, z) in matmul_zero.iter_mut().enumerate() {
            let sum: i128 = input
                .iter()
                .zip(q_weights.column(c))
                .map(|(q, &w)| q.zero_point as i128 * (w - weight.zero_point) as i128)
                .sum();
            *z = i64::try_from(sum).map_err(|_| overflow("zero-point term"))?;
        }
        let mut q_bias = Array1::<i64>::zeros(n_classes);
        for ((qb, &b), &z) in q_bias.iter_mut().zip(&float.bias).zip(&matmul_zero) {
            let v = (b / output_scale + z as f64).round_ties_even();
            if v.is_nan() || v.abs() >= EXACT_F64_INT {
                return Err(overflow("quantized bias"));
            }
            *qb = v as i64;
        }
        let output_zero_points = matmul_zero.mapv(|z| 2 * z);
        let mut model = Self {
            options,
            float,
            input,
            weight,
            q_weights,
            q_bias,
            output_scale,
            output_zero_points,
            score_range: (0, 0),
            accumulator_bits: 0,
        };
        model.score_range = model.reachable_scores()?;
        model.accumulator_bits = signed_bits(model.score_range.0, model.score_range.1);
        Ok(model)
    }

    /// Exact min and max integer score over all in-range inputs and classes: per class, each
    /// term q_j·W_eff[j,c] is extremal at an end of column j's input range.
    fn reachable_scores(&self) -> Result<(i64, i64), ModelError> {
        let w_eff = self.effective_weights();
        let (mut lo, mut hi) = (i128::MAX, i128::MIN);
        for c in 0..self.n_classes() {
            let b = self.q_bias[c] as i128;
            let (mut c_lo, mut c_hi, mut c_abs) = (b, b, b.abs());
            for (q, &w) in self.input.iter().zip(w_eff.column(c)) {
                let (r0, r1) = q.range();
                let (a, z) = (r0 as i128 * w as i128, r1 as i128 * w as i128);
                c_lo += a.min(z);
                c_hi += a.max(z);
                c_abs += a.abs().max(z.abs());
            }
            // Every partial sum is bounded by c_abs: keep it well inside i64.
            if c_abs > i64::MAX as i128 / 2 {
                return Err(overflow("accumulator"));
            }
            lo = lo.min(c_lo);
            hi = hi.max(c_hi);
        }
        Ok((lo as i64, hi as i64))
    }

    pub fn options(&self) -> &QuantOptions {
        &self.options
    }
    pub fn float_model(&self) -> &FloatModel {
        &self.float
    }
    pub fn n_features(&self) -> usize {
        self.q_weights.nrows()
    }
    pub fn n_classes(&self) -> usize {
        self.q_weights.ncols()
    }
    pub fn input_quantizers(&self) -> &[UniformQuantizer] {
        &self.input
    }
    pub fn weight_quantizer(&self) -> &UniformQuantizer {
        &self.weight
    }
    /// Raw quantized weights q_W (d × C).
    pub fn quantized_weights(&self) -> &Array2<i64> {
        &self.q_weights
    }
    /// `W_eff = q_W − Z_w` (d × C), so that `integer_scores = q_X·W_eff + q_b`.
    pub fn effective_weights(&self) -> Array2<i64> {
        self.q_weights.mapv(|w| w - self.weight.zero_point)
    }
    /// Quantized bias q_b (C), added in the circuit.
    pub fn bias(&self) -> &Array1<i64> {
        &self.q_bias
    }
    /// The integer layer the FHE scheme evaluates: q_X·(q_W − Z_w) + q_b over the input range.
    pub fn integer_layer(&self) -> IntegerLinear {
        let (input_min, input_max) = self.input_range();
        IntegerLinear {
            weights: self.effective_weights(),
            bias: self.q_bias.clone(),
            input_min,
            input_max,
        }
    }
    /// The range quantized inputs take (the union over columns).
    pub fn input_range(&self) -> (i64, i64) {
        self.input
            .iter()
            .map(UniformQuantizer::range)
            .fold((i64::MAX, i64::MIN), |acc, r| {
                (acc.0.min(r.0), acc.1.max(r.1))
            })
    }
    /// Smallest and largest integer score any in-range input can produce.
    pub fn score_range(&self) -> (i64, i64) {
        self.score_range
    }
    /// Signed bits (sign included) that hold every reachable integer score.
    pub fn accumulator_bits(&self) -> u32 {
        self.accumulator_bits
    }
    pub fn output_scale(&self) -> f64 {
        self.output_scale
    }
    /// Per-class `2·Z_c` of the dequantization.
    pub fn output_zero_points(&self) -> &Array1<i64> {
        &self.output_zero_points
    }

    /// Client side: raw features (n × d) → quantized inputs, clipped to the input range.
    pub fn quantize_input(&self, x: ArrayView2<f32>) -> Result<Array2<i64>, ModelError> {
        check_features(x, self.n_features(), "quantized model input")?;
        let mut q = Array2::zeros(x.dim());
        for (mut q_row, x_row) in q.rows_mut().into_iter().zip(x.rows()) {
            for ((qv, &xv), quant) in q_row.iter_mut().zip(x_row).zip(&self.input) {
                *qv = quant.quant(xv as f64);
            }
        }
        Ok(q)
    }

    /// The circuit: `q_X·q_W − Z_w·Σ_j q_X[j] + q_b`, exact. Inputs must be in range (as
    /// [`Self::quantize_input`] makes them): that is what bounds the accumulator.
    pub fn integer_scores(&self, q_x: ArrayView2<i64>) -> Result<Array2<i64>, ModelError> {
        if q_x.ncols() != self.n_features() {
            return Err(ModelError::FeatureCount {
                what: "quantized scores input",
                expected: self.n_features(),
                found: q_x.ncols(),
            });
        }
        for ((row, col), &value) in q_x.indexed_iter() {
            let (min, max) = self.input[col].range();
            if !(min..=max).contains(&value) {
                return Err(ModelError::InputOutOfRange {
                    row,
                    col,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(q_x.dot(&self.effective_weights()) + &self.q_bias)
    }

    /// Client side: `y = S·(q_y − 2·Z_c)` per class.
    pub fn dequantize(&self, q_scores: ArrayView2<i64>) -> Result<Array2<f64>, ModelError> {
        if q_scores.ncols() != self.n_classes() {
            return Err(ModelError::ClassCount {
                what: "integer scores",
                expected: self.n_classes(),
                found: q_scores.ncols(),
            });
        }
        let mut y = q_scores.mapv(|q| q as f64);
        for (mut col, &z) in y.columns_mut().into_iter().zip(&self.output_zero_points) {
            col.mapv_inplace(|q| self.output_scale * (q - z as f64));
        }
        Ok(y)
    }

    /// Client side, summed circuit: the summed layer's scores (Σ_j q_X[j]·W, no bias) of `rows`
    /// chunks → the sum of the chunks' dequantized scores, S·(q + n·(q_b − 2·Z_c)) per class.
    pub fn dequantize_summed(
        &self,
        q_scores: ArrayView1<i64>,
        rows: usize,
    ) -> Result<Array1<f64>, ModelError> {
        if q_scores.len() != self.n_classes() {
            return Err(ModelError::ClassCount {
                what: "summed integer scores",
                expected: self.n_classes(),
                found: q_scores.len(),
            });
        }
        Ok(dequantize_sum(
            self.output_scale,
            self.output_zero_points.as_slice().unwrap_or_default(),
            self.q_bias.as_slice().unwrap_or_default(),
            q_scores,
            rows,
        ))
    }

    /// Dequantized scores of raw features: quantize → circuit → dequantize.
    pub fn decision_function(&self, x: ArrayView2<f32>) -> Result<Array2<f64>, ModelError> {
        let q = self.integer_scores(self.quantize_input(x)?.view())?;
        self.dequantize(q.view())
    }

    /// argmax of the dequantized scores (Concrete ML's predict).
    pub fn predict(&self, x: ArrayView2<f32>) -> Result<Vec<usize>, ModelError> {
        Ok(argmax_rows(self.decision_function(x)?.view()))
    }
}

impl Scorer for QuantizedModel {
    fn scores(&self, x: ArrayView2<f32>) -> Result<Array2<f64>, ModelError> {
        self.decision_function(x)
    }
    fn n_classes(&self) -> usize {
        QuantizedModel::n_classes(self)
    }
}

/// The sum over `rows` chunks of dequantized scores, from the summed circuit's scores `q`
/// (no bias): S·(q_c + n·(b_c − z_c)), z_c the per-class output zero point (2·Z_c). Exact in
/// integers up to the one final scaling. Shared by the model and the service's client.
pub fn dequantize_sum(
    scale: f64,
    zero_points: &[i64],
    bias: &[i64],
    q: ArrayView1<i64>,
    rows: usize,
) -> Array1<f64> {
    let n = rows as i128;
    Array1::from_iter(
        q.iter().zip(bias).zip(zero_points).map(|((&q, &b), &z)| {
            scale * (i128::from(q) + n * (i128::from(b) - i128::from(z))) as f64
        }),
    )
}

fn overflow(what: &str) -> ModelError {
    ModelError::Overflow {
        what: what.to_string(),
    }
}

/// Smallest b ≥ 1 with −2^(b−1) ≤ lo and hi ≤ 2^(b−1) − 1.
fn signed_bits(lo: i64, hi: i64) -> u32 {
    // Bits of the magnitude: hi needs bits(hi) + sign, lo needs bits(−lo − 1) + sign.
    let mag = |v: i64| 64 - (v.max(0) as u64).leading_zeros();
    1 + mag(hi).max(mag(-(lo.min(0)) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array1};
    use proptest::prelude::*;

    #[test]
    fn quantizer_matches_concrete_hand_computed() {
        // 8 bits on [-1, 3]: scale 4/255, zp = round((-3·128 + 1·127)/4) = round(-64.25) = -64.
        let q = UniformQuantizer::from_range(-1.0, 3.0, 8, false).unwrap();
        assert_eq!(q.scale, 4.0 / 255.0);
        assert_eq!(q.zero_point, -64);
        assert_eq!(q.offset, 128);
        assert_eq!(q.range(), (-128, 127));
        assert_eq!(q.quant(-1.0), -128); // -63.75 - 64 = -127.75 → -128
        assert_eq!(q.quant(3.0), 127); // 191.25 - 64 = 127.25 → 127
        assert_eq!(q.quant(0.0), -64);
        assert_eq!(q.quant(100.0), 127); // clipped
        assert_eq!(q.quant(-100.0), -128);
        // 2 bits on [0, 3]: scale 1, zp = round((-3·2 - 0)/3) = -2; range [-2, 1].
        let q = UniformQuantizer::from_range(0.0, 3.0, 2, false).unwrap();
        assert_eq!((q.scale, q.zero_point, q.range()), (1.0, -2, (-2, 1)));
        // Ties round half to even, like numpy.rint: 0.5 → 0, 1.5 → 2 (then clip to 1).
        assert_eq!(q.quant(2.5), 0); // 2.5 − 2 = 0.5 → 0
        assert_eq!(q.quant(1.5), 0); // −0.5 → −0
        assert_eq!(q.quant(0.5), -2); // −1.5 → −2
        assert_eq!(q.dequant(-2), 0.0);
    }

    #[test]
    fn symmetric_and_degenerate_quantizers_follow_concrete() {
        let q = UniformQuantizer::from_range(-2.0, 1.0, 4, true).unwrap();
        assert_eq!((q.zero_point, q.scale), (0, 2.0 / 7.0));
        assert_eq!(q.quant(-2.0), -7);
        assert_eq!(q.quant(0.3), 1); // 1.05 → 1
        assert_eq!(q.quant(5.0), 7); // clipped to 2^(n-1) - 1
                                     // One non-zero value: unsigned, scale = value, quantizes to 1.
        let q = UniformQuantizer::from_range(0.25, 0.25, 8, false).unwrap();
        assert_eq!(
            (q.offset, q.scale, q.zero_point, q.quant(0.25)),
            (0, 0.25, 0, 1)
        );
        assert_eq!(q.range(), (0, 255));
        // One zero value: scale 1, zero-point rint(-rmin).
        let q = UniformQuantizer::from_range(0.0, 0.0, 8, false).unwrap();
        assert_eq!((q.scale, q.zero_point, q.quant(0.0)), (1.0, 0, 0));
        assert!(UniformQuantizer::from_range(0.0, 1.0, 1, true).is_err());
        assert!(UniformQuantizer::from_range(0.0, 1.0, 0, false).is_err());
        assert!(UniformQuantizer::from_range(1.0, 0.0, 8, false).is_err());
        assert!(UniformQuantizer::from_range(0.0, f64::INFINITY, 8, false).is_err());
    }

    /// d = 2, C = 2, 2-bit, worked by hand.
    fn tiny() -> (FloatModel, Array2<f32>) {
        let w = array![[1.0, -1.0], [0.5, 2.0]];
        let float = FloatModel::new(w, array![0.25, -0.5]).unwrap();
        let x = array![[0.0f32, 1.0], [3.0, 2.0], [1.0, 0.0]];
        (float, x)
    }

    #[test]
    fn tiny_model_by_hand() {
        let (float, x) = tiny();
        let m = QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(2)).unwrap();
        // Inputs: [0, 3] → S_x = 1, Z_x = -2, range [-2, 1].
        assert_eq!((m.input[0].scale, m.input[0].zero_point), (1.0, -2));
        // Weights: [-1, 2] → S_w = 1, Z_w = round((-2·2 − (−1)·1)/3) = round(-1) = -1.
        assert_eq!((m.weight.scale, m.weight.zero_point), (1.0, -1));
        // q_W = rint(w + Z_w): [[0, -2], [-0.5→-0, 1]].
        assert_eq!(m.q_weights, array![[0, -2], [0, 1]]);
        // Z_c = Z_x·(Σ_j q_W[j,c] − d·Z_w) = -2·(0 + 2) = -4 and -2·(-1 + 2) = -2.
        // q_b = rint(b/1 + Z_c) = rint(-3.75) = -4, rint(-2.5) = -2 (half to even).
        assert_eq!(m.q_bias, array![-4, -2]);
        assert_eq!(m.output_zero_points, array![-8, -4]);
        assert_eq!(m.effective_weights(), array![[1, -1], [1, 2]]);
        let q_x = m.quantize_input(x.view()).unwrap();
        assert_eq!(q_x, array![[-2, -1], [1, 0], [-1, -2]]);
        // Row 0: [-2·1 + -1·1 − 4, -2·-1 + -1·2 − 2] = [-7, -2].
        let s = m.integer_scores(q_x.view()).unwrap();
        assert_eq!(s.row(0), array![-7, -2]);
        // Dequantized: S·(q − 2Z) = [-7 + 8, -2 + 4] = [1, 2]; float: [0.75, 1.5].
        let y = m.dequantize(s.view()).unwrap();
        assert_eq!(y.row(0), array![1.0, 2.0]);
        // Score range: class 0 = q_b + Σ over r ∈ [-2, 1] of r·1 → [-4-4, -4+2] = [-8, -2];
        // class 1: -2 + [-2..1]·(-1) + [-2..1]·2 → [-2-1-4, -2+2+2] = [-7, 2]. Overall [-8, 2].
        assert_eq!(m.score_range(), (-8, 2));
        assert_eq!(m.accumulator_bits(), 4); // −8 ∈ [−8, 7]
        assert_eq!(m.input_range(), (-2, 1));
    }

    #[test]
    fn concrete_circuit_form_equals_effective_weights() {
        let (float, x) = tiny();
        let m = QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(4)).unwrap();
        let q_x = m.quantize_input(x.view()).unwrap();
        let row_sums = q_x.sum_axis(Axis(1)).insert_axis(Axis(1));
        let concrete = q_x.dot(&m.q_weights) - &(row_sums * m.weight.zero_point) + &m.q_bias;
        assert_eq!(m.integer_scores(q_x.view()).unwrap(), concrete);
    }

    #[test]
    fn integer_scores_reject_out_of_range_and_bad_shapes() {
        let (float, x) = tiny();
        let m = QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(2)).unwrap();
        assert!(matches!(
            m.integer_scores(array![[0, 2]].view()),
            Err(ModelError::InputOutOfRange {
                row: 0,
                col: 1,
                value: 2,
                min: -2,
                max: 1
            })
        ));
        assert!(matches!(
            m.integer_scores(array![[0, 0, 0]].view()),
            Err(ModelError::FeatureCount {
                expected: 2,
                found: 3,
                ..
            })
        ));
        assert!(m.dequantize(array![[0]].view()).is_err());
        assert!(matches!(
            QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(0)),
            Err(ModelError::InvalidParams { .. })
        ));
        assert!(QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(25)).is_err());
    }

    #[test]
    fn signed_bits_edges() {
        assert_eq!(signed_bits(0, 0), 1);
        assert_eq!(signed_bits(-1, 0), 1);
        assert_eq!(signed_bits(0, 1), 2);
        assert_eq!(signed_bits(-128, 127), 8);
        assert_eq!(signed_bits(-129, 0), 9);
        assert_eq!(signed_bits(0, 128), 9);
    }

    #[test]
    fn per_feature_ranges_beat_one_range_at_low_bits() {
        // Column 0 spans thousands, column 1 tens, and only column 1 separates the classes.
        let x = Array2::from_shape_fn((40, 2), |(i, j)| {
            if j == 0 {
                -20_000.0 + 600.0 * (i as f32 * 0.7).sin()
            } else {
                (i % 2) as f32 * 20.0 - 10.0 + (i as f32 * 1.3).cos()
            }
        });
        let y: Vec<usize> = (0..40).map(|i| i % 2).collect();
        let float = FloatModel::new(array![[0.0, 0.0], [-1.0, 1.0]], array![0.0, 0.0]).unwrap();
        assert_eq!(float.predict(x.view()).unwrap(), y);
        let plain =
            QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(4)).unwrap();
        let opts = QuantOptions {
            standardize_inputs: true,
            ..QuantOptions::concrete(4)
        };
        let per_col = QuantizedModel::from_float(&float, x.view(), &opts).unwrap();
        let acc = |m: &QuantizedModel| {
            m.predict(x.view())
                .unwrap()
                .iter()
                .zip(&y)
                .filter(|(a, b)| a == b)
                .count()
        };
        assert_eq!(acc(&per_col), 40);
        assert!(
            acc(&plain) < 30,
            "one range should wash out column 1: {}",
            acc(&plain)
        );
    }

    #[test]
    fn serde_round_trip_and_tamper_detection() {
        let (float, x) = tiny();
        let opts = QuantOptions {
            standardize_inputs: true,
            ..QuantOptions::concrete(6)
        };
        let m = QuantizedModel::from_float(&float, x.view(), &opts).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        let back: QuantizedModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["q_bias"]["data"][0] = serde_json::json!(12345);
        let err = serde_json::from_value::<QuantizedModel>(v).unwrap_err();
        assert!(err.to_string().contains("do not match"), "{err}");
    }

    /// The error bound of the dequantized scores, derived for in-range inputs x (inside the
    /// calibration range). Write x̂ = S_in(q − Z_in) and ŵ = S_w(q_w − Z_w) (units of the
    /// folded weights); rounding gives |x̂_j − x_j| ≤ S_in_j/2, |ŵ − w| ≤ S_w/2 (a value in
    /// the calibration range never clips by more than half a step, since the rounded
    /// zero-point shifts the grid by at most half a step), and |b̂ − b| ≤ S/2. The dequantized
    /// score is exactly Σ_j x̂_j ŵ_jc + b̂_c, hence
    ///   |ŷ_c − y_c| ≤ Σ_j (S_in_j/2·|ŵ_jc| + |x_j|·S_w/2) + S/2,
    /// which halves with each extra bit (in the global mode S_in = S_x, the folded weights are
    /// the float weights and S = S_x·S_w; per column, weights are in units of S_in_j, so the
    /// formula reads with u_j = x_j/S_in_j: Σ_j (|ŵ'_jc|/2 + |u_j|·S_w/2) + S_w/2).
    fn bound(m: &QuantizedModel, x: &[f32], c: usize) -> f64 {
        let s_w = m.weight.scale;
        let mut e = m.output_scale / 2.0;
        for (j, &xj) in x.iter().enumerate() {
            let w_hat = m.weight.dequant(m.q_weights[[j, c]]).abs();
            if m.options.standardize_inputs {
                e += w_hat / 2.0 + (xj as f64 / m.input[j].scale).abs() * s_w / 2.0;
            } else {
                e += m.input[j].scale / 2.0 * w_hat + (xj as f64).abs() * s_w / 2.0;
            }
        }
        e
    }

    fn model_and_data() -> impl Strategy<Value = (FloatModel, Array2<f32>)> {
        (1usize..6, 2usize..5, 2usize..12).prop_flat_map(|(d, c, n)| {
            (
                prop::collection::vec(-5.0f64..5.0, d * c),
                prop::collection::vec(-5.0f64..5.0, c),
                prop::collection::vec(-1.0f32..1.0, n * d),
                prop::collection::vec(0.01f32..1000.0, d),
            )
                .prop_map(move |(w, b, x, col_scale)| {
                    let w = Array2::from_shape_vec((d, c), w).unwrap();
                    let float = FloatModel::new(w, Array1::from(b)).unwrap();
                    let x = Array2::from_shape_fn((n, d), |(i, j)| x[i * d + j] * col_scale[j]);
                    (float, x)
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn dequantized_scores_stay_within_the_derived_bound(
            (float, x) in model_and_data(),
            n_bits in 2u32..17,
            per_col in any::<bool>(),
            sym in any::<bool>(),
        ) {
            let opts = QuantOptions {
                n_bits_input: n_bits,
                n_bits_weight: n_bits,
                standardize_inputs: per_col,
                symmetric_weights: sym,
            };
            let m = QuantizedModel::from_float(&float, x.view(), &opts).unwrap();
            let y_float = float.decision_function(x.view()).unwrap();
            let y_q = m.decision_function(x.view()).unwrap();
            for i in 0..x.nrows() {
                let row: Vec<f32> = x.row(i).to_vec();
                for c in 0..m.n_classes() {
                    let err = (y_q[[i, c]] - y_float[[i, c]]).abs();
                    // Float rounding of the dequantization itself, far below the bound.
                    let slack = 1e-9 * (1.0 + y_float[[i, c]].abs() + bound(&m, &row, c));
                    prop_assert!(err <= bound(&m, &row, c) + slack,
                        "row {} class {}: error {} > bound {}", i, c, err, bound(&m, &row, c));
                }
            }
        }

        #[test]
        fn the_bound_shrinks_with_bits((float, x) in model_and_data()) {
            let worst = |bits| {
                let m = QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(bits))
                    .unwrap();
                let mut b = 0.0f64;
                for row in x.rows() {
                    for c in 0..m.n_classes() {
                        b = b.max(bound(&m, row.as_slice().unwrap(), c));
                    }
                }
                b
            };
            // Scales shrink by (2^16 − 1)/(2^4 − 1) ≈ 4369 from 4 to 16 bits.
            prop_assert!(worst(16) * 1000.0 <= worst(4), "{} vs {}", worst(16), worst(4));
        }

        #[test]
        fn integer_scores_never_exceed_the_accumulator(
            (float, x) in model_and_data(),
            n_bits in 1u32..13,
            per_col in any::<bool>(),
            far in prop::collection::vec(-1e6f32..1e6, 1..6),
        ) {
            let opts = QuantOptions { standardize_inputs: per_col, ..QuantOptions::concrete(n_bits) };
            let m = QuantizedModel::from_float(&float, x.view(), &opts).unwrap();
            let d = m.n_features();
            // Training rows, far-out (clipped) queries, and every corner of the input box
            // for the extreme classes.
            let far = Array2::from_shape_fn((far.len(), d), |(i, j)| far[(i + j) % far.len()]);
            let mut q = m.quantize_input(x.view()).unwrap();
            q.append(Axis(0), m.quantize_input(far.view()).unwrap().view()).unwrap();
            let w_eff = m.effective_weights();
            for c in 0..m.n_classes() {
                for sign in [1i64, -1] {
                    let corner = Array1::from_iter((0..d).map(|j| {
                        let (lo, hi) = m.input[j].range();
                        if w_eff[[j, c]] * sign >= 0 { hi } else { lo }
                    }));
                    q.push_row(corner.view()).unwrap();
                }
            }
            let s = m.integer_scores(q.view()).unwrap();
            let (lo, hi) = m.score_range();
            let half = 1i128 << (m.accumulator_bits() - 1);
            prop_assert!(s.iter().all(|&v| lo <= v && v <= hi));
            prop_assert!(s.iter().all(|&v| -half <= v as i128 && (v as i128) < half));
            // The range is attained (the corners reach it), so the bit count is minimal.
            prop_assert_eq!(s.iter().copied().min(), Some(lo));
            prop_assert_eq!(s.iter().copied().max(), Some(hi));
            prop_assert_eq!(signed_bits(lo, hi), m.accumulator_bits());
        }
    }
}
