//! GLWE parameter sets and the noise budget: how many message bits a layer needs, and the
//! probability that one decrypted score is wrong.
//!
//! Noise model of one score coefficient (all variances in units of the 2^64 torus, i.e. of
//! integers mod q = 2^64), for the worst class / worst product of a layer:
//!
//! 1. fresh encryption noise e (TUniform(b), variance (2^(2b+1)+1)/6) multiplied by the clear
//!    weights: the score coefficient is Σ_i w_ic·e_(...) → σ_e²·Σ_i w_ic² (the message lives in
//!    the body only, so nothing else of the product touches e);
//! 2. FFT rounding error of the server's mask product a·W_g, amplified by the binary key in the
//!    client's `body − mask·s` (≈ N/2 ones), plus the client's FFT error in mask·s (see
//!    [`fft_error_std`] for the per-product model); the server computes the body's score
//!    coefficients exactly, so they add none;
//! 3. the modulus switch to `reply_modulus_log` bits: rounding errors uniform on
//!    [−q'/2, q'/2) with q' = 2^(64−w), variance (q'²+2)/12, on N mask coefficients (weighted
//!    by the binary key: N/2 in expectation) and on the body coefficient.
//!
//! Every component is a sum of independent bounded, centred (strictly sub-Gaussian) terms, so a
//! Gaussian tail with the total variance is the failure model: P(|err| ≥ Δ/2) =
//! erfc(Δ/(2·σ·√2)). A configuration is refused when that exceeds 2^−40 per score.

use tfhe::core_crypto::prelude::{
    CiphertextModulus, CiphertextModulusLog, GlweDimension, PolynomialSize, TUniform,
};

use super::packing::Layout;
use super::IntegerLinear;
use crate::error::FheError;

/// Largest accepted failure probability per score, as log2 (docs/ARCHITECTURE.md §4).
pub const MAX_LOG2_FAILURE: f64 = -40.0;

/// Unit roundoff of IEEE-754 double precision (53-bit significand).
const F64_UNIT_ROUNDOFF: f64 = 1.0 / (1u64 << 53) as f64;

/// Safety factor on the FFT error model (twiddle-factor errors, non-random rounding); the
/// `measured_fft_error_is_below_model` test checks the model against real products.
const FFT_MODEL_SAFETY: f64 = 2.0;

/// A GLWE parameter set. Only the GLWE part of a tfhe-rs parameter set is used: one binary
/// secret key, fresh encryptions under it, no key-switching or bootstrapping key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlweParams {
    /// Human-readable name, for tables.
    pub name: &'static str,
    /// Identifier carried in wire headers so both sides agree on the set.
    pub id: u16,
    pub glwe_dimension: GlweDimension,
    pub polynomial_size: PolynomialSize,
    /// Fresh-encryption noise, TUniform(−2^b, 2^b).
    pub noise: TUniform<u64>,
    pub ciphertext_modulus: CiphertextModulus<u64>,
    /// Bits kept per coefficient of the reply after the modulus switch.
    pub reply_modulus_log: CiphertextModulusLog,
}

impl GlweParams {
    /// GLWE side of tfhe-rs 1.8's `PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`
    /// (= `V1_4_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`,
    /// shortint/parameters/v1_4/classic/tuniform/p_fail_2_minus_128/ks_pbs.rs): glwe_dimension 1,
    /// polynomial_size 2048, glwe_noise_distribution TUniform(17), native modulus 2^64, which
    /// Zama publishes as 128-bit secure. Copied here because the constant lives behind tfhe's
    /// `shortint` feature, which this crate does not enable. Reply switched to 32 bits.
    pub const TUNIFORM_2M128_N2048: GlweParams = GlweParams {
        name: "tuniform-2m128-n2048",
        id: 1,
        glwe_dimension: GlweDimension(1),
        polynomial_size: PolynomialSize(2048),
        noise: TUniform::new(17),
        ciphertext_modulus: CiphertextModulus::new_native(),
        reply_modulus_log: CiphertextModulusLog(32),
    };

    /// GLWE side of tfhe-rs 1.8's `PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128`
    /// (= `V1_4_PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128`, same file): glwe_dimension 1,
    /// polynomial_size 8192, TUniform(3), native modulus, published as 128-bit secure. tfhe has
    /// no 128-bit k = 1 set at N = 1024, so this is the other k = 1 layout we compare.
    pub const TUNIFORM_2M128_N8192: GlweParams = GlweParams {
        name: "tuniform-2m128-n8192",
        id: 2,
        glwe_dimension: GlweDimension(1),
        polynomial_size: PolynomialSize(8192),
        noise: TUniform::new(3),
        ciphertext_modulus: CiphertextModulus::new_native(),
        reply_modulus_log: CiphertextModulusLog(32),
    };

    /// The known parameter sets, looked up by wire id.
    pub const ALL: [GlweParams; 2] = [Self::TUNIFORM_2M128_N2048, Self::TUNIFORM_2M128_N8192];

    /// The same set with a different reply width (more bits: less modulus-switch noise, more
    /// bytes down).
    pub fn with_reply_modulus_log(self, bits: usize) -> Result<Self, FheError> {
        let params = Self {
            reply_modulus_log: CiphertextModulusLog(bits),
            ..self
        };
        params.validate()?;
        Ok(params)
    }

    /// Checks the invariants the client and server rely on.
    pub fn validate(&self) -> Result<(), FheError> {
        if self.glwe_dimension.0 != 1 {
            return Err(FheError::InvalidParams {
                param: "glwe_dimension",
                reason: format!(
                "{}: glwe_dimension {} unsupported (the packing uses one mask polynomial, k = 1)",
                self.name, self.glwe_dimension.0
            ),
            });
        }
        let n = self.polynomial_size.0;
        if !n.is_power_of_two() || n < 64 {
            return Err(FheError::InvalidParams {
                param: "polynomial_size",
                reason: format!(
                    "{}: polynomial_size {n} must be a power of two ≥ 64",
                    self.name
                ),
            });
        }
        if !self.ciphertext_modulus.is_native_modulus() {
            return Err(FheError::InvalidParams {
                param: "ciphertext_modulus",
                reason: format!(
                    "{}: only the native 2^64 ciphertext modulus is supported",
                    self.name
                ),
            });
        }
        let w = self.reply_modulus_log.0;
        if !(8..=64).contains(&w) {
            return Err(FheError::InvalidParams {
                param: "reply_modulus_log",
                reason: format!("{}: reply_modulus_log {w} must be within 8..=64", self.name),
            });
        }
        Ok(())
    }

    /// Variance of one fresh noise sample, (2^(2b+1) + 1)/6 for TUniform(b).
    pub fn fresh_noise_variance(&self) -> f64 {
        let b = self.noise.bound_log2() as i32;
        (2f64.powi(2 * b + 1) + 1.0) / 6.0
    }
}

/// Message bits p = ⌈log2(2B+1)⌉ + 1 padding bit for scores in [−B, B].
pub fn message_bits(bound: u64) -> u32 {
    let values = 2 * u128::from(bound) + 1;
    // ⌈log2(v)⌉ for v ≥ 1.
    let bits = 128 - (values - 1).leading_zeros();
    bits.max(1) + 1
}

/// Standard deviation (2^64 units) of the error of one output coefficient of a negacyclic
/// product computed with tfhe's f64 FFT, a uniform torus polynomial (rms 2^64/√12) times an
/// integer polynomial of 2-norm `integer_l2`.
///
/// Model: the forward and backward transforms each have a relative rms error ≈ ε·√log2(N/2)
/// (random-walk rounding, Schatzman 1996), the pointwise product scales the forward error by
/// the rms of the integer side's spectrum (= its 2-norm, Parseval), and the final f64 → torus
/// conversion adds ε·|y|. Hence σ ≈ c·ε·√(2·log2 N + 1)·‖W‖₂·rms(a), with c =
/// [`FFT_MODEL_SAFETY`].
pub fn fft_error_std(polynomial_size: PolynomialSize, integer_l2: f64) -> f64 {
    let log_n = (polynomial_size.0 as f64).log2();
    let torus_rms = 2f64.powi(64) / 12f64.sqrt();
    FFT_MODEL_SAFETY * F64_UNIT_ROUNDOFF * (2.0 * log_n + 1.0).sqrt() * integer_l2 * torus_rms
}

/// Failure probability per score, log2, for a centred Gaussian error of std `sigma` against
/// the decoding threshold `half_delta`.
pub fn log2_failure(half_delta: f64, sigma: f64) -> f64 {
    if sigma <= 0.0 {
        return f64::NEG_INFINITY;
    }
    ln_erfc(half_delta / (sigma * std::f64::consts::SQRT_2)) / std::f64::consts::LN_2
}

/// ln erfc(z) for z ≥ 0 without underflow (Numerical Recipes `erfcc`, relative error of erfc
/// < 1.2e-7 everywhere), so tails like 2^−3000 are still reported as numbers.
fn ln_erfc(z: f64) -> f64 {
    let z = z.max(0.0);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - z * z + poly
}

/// The noise budget of one layer under one layout and parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseBudget {
    /// Largest |score| the layer can produce, B.
    pub bound: u64,
    /// p = ⌈log2(2B+1)⌉ + 1.
    pub message_bits: u32,
    /// log2 Δ = 64 − p.
    pub delta_log2: u32,
    pub reply_modulus_log: u32,
    /// σ_e², variance of one fresh noise coefficient.
    pub fresh_unit_variance: f64,
    /// K, the classes one product (one weight polynomial W_g) carries.
    pub classes_per_product: usize,
    /// max_g ‖W_g‖² = max over products of Σ of w_ic² over the product's K classes.
    pub worst_product_sq_norm: f64,
    /// σ_e² · worst_product_sq_norm.
    pub fresh_variance: f64,
    /// All FFT contributions (server mask × key, client decryption).
    pub fft_variance: f64,
    /// Modulus-switch rounding (mask ×key, body).
    pub modswitch_variance: f64,
    /// log2 of the failure probability per score, worst class.
    pub log2_failure: f64,
}

impl NoiseBudget {
    /// Computes the budget (it does not refuse; see [`NoiseBudget::check`]).
    pub fn compute(
        layer: &IntegerLinear,
        layout: &Layout,
        params: &GlweParams,
    ) -> Result<Self, FheError> {
        params.validate()?;
        layer.validate()?;
        layout.check_layer(layer)?;
        if layout.polynomial_size() != params.polynomial_size {
            return Err(FheError::InvalidLayout(format!(
                "layout polynomial size {} differs from parameter set {} (N = {})",
                layout.polynomial_size().0,
                params.name,
                params.polynomial_size.0
            )));
        }
        let bound = layer.score_bound()?;
        let p = message_bits(bound);
        if p >= 63 {
            return Err(FheError::InvalidLayer(format!(
                "score bound {bound} needs {p} message bits; at most 62 fit a 64-bit torus"
            )));
        }
        let n = params.polynomial_size.0 as f64;
        let w = params.reply_modulus_log.0 as i32;

        let class_sq: Vec<f64> = layer
            .weights
            .columns()
            .into_iter()
            .map(|col| col.iter().map(|&v| (v as f64) * (v as f64)).sum())
            .collect();
        let worst_product_sq_norm = class_sq
            .chunks(layout.classes_per_product())
            .map(|group| group.iter().sum::<f64>())
            .fold(0.0, f64::max);

        let fresh_unit_variance = params.fresh_noise_variance();
        // Every score coefficient of e·W_g sums all K·d monomials of W_g against independent
        // noise coefficients, so the fresh term scales with the whole product's ‖W_g‖², not
        // with one class's (measured in fhe::server's tests).
        let fresh_variance = fresh_unit_variance * worst_product_sq_norm;

        // Expected Hamming weight of a uniform binary key: N/2.
        let key_weight = n / 2.0;
        let product_fft = fft_error_std(params.polynomial_size, worst_product_sq_norm.sqrt());
        // Client: mask·s with ‖s‖₂ ≤ √N.
        let client_fft = fft_error_std(params.polynomial_size, n.sqrt());
        // A body computed with the FFT adds the product's rounding error once (no key).
        let body_fft = if layout.body_by_fft() {
            product_fft.powi(2)
        } else {
            0.0
        };
        let fft_variance = product_fft.powi(2) * key_weight + client_fft.powi(2) + body_fft;

        let step = 2f64.powi(64 - w);
        let rounding_variance = if w >= 64 {
            0.0
        } else {
            (step * step + 2.0) / 12.0
        };
        let modswitch_variance = rounding_variance * (key_weight + 1.0);

        let delta_log2 = 64 - p;
        let sigma = (fresh_variance + fft_variance + modswitch_variance).sqrt();
        let half_delta = 2f64.powi(delta_log2 as i32 - 1);
        Ok(Self {
            bound,
            message_bits: p,
            delta_log2,
            reply_modulus_log: w as u32,
            fresh_unit_variance,
            classes_per_product: layout.classes_per_product(),
            worst_product_sq_norm,
            fresh_variance,
            fft_variance,
            modswitch_variance,
            log2_failure: log2_failure(half_delta, sigma),
        })
    }

    /// Variance of the error of a score of a product with ‖W_g‖² = `product_sq_norm`.
    pub fn score_variance(&self, product_sq_norm: f64) -> f64 {
        self.fresh_unit_variance * product_sq_norm + self.fft_variance + self.modswitch_variance
    }

    /// Total error variance of a score of the worst product.
    pub fn total_variance(&self) -> f64 {
        self.score_variance(self.worst_product_sq_norm)
    }

    /// Refuses configurations whose failure probability per score exceeds 2^−40.
    pub fn check(&self) -> Result<(), FheError> {
        if self.log2_failure > MAX_LOG2_FAILURE {
            return Err(FheError::NoiseBudget {
                log2_failure: self.log2_failure,
                max_log2: MAX_LOG2_FAILURE,
                detail: format!(
                    "p = {} message bits, Δ = 2^{}, σ = 2^{:.1} (fresh 2^{:.1}, FFT 2^{:.1}, \
                     {}-bit switch 2^{:.1}); more reply bits or smaller weights needed",
                    self.message_bits,
                    self.delta_log2,
                    self.total_variance().log2() / 2.0,
                    self.fresh_variance.log2() / 2.0,
                    self.fft_variance.log2() / 2.0,
                    self.reply_modulus_log,
                    self.modswitch_variance.log2() / 2.0,
                ),
            });
        }
        Ok(())
    }
}

/// Smallest reply width (bits) that keeps the layer within budget, if any.
pub fn min_reply_modulus_log(
    layer: &IntegerLinear,
    layout: &Layout,
    params: &GlweParams,
) -> Result<Option<usize>, FheError> {
    for bits in 8..=64 {
        let candidate = params.with_reply_modulus_log(bits)?;
        if NoiseBudget::compute(layer, layout, &candidate)?
            .check()
            .is_ok()
        {
            return Ok(Some(bits));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    fn layer(weight: i64, input: i64, d: usize, c: usize) -> IntegerLinear {
        IntegerLinear {
            weights: Array2::from_elem((d, c), weight),
            bias: Array1::zeros(c),
            input_min: -input,
            input_max: input - 1,
        }
    }

    #[test]
    fn message_bits_covers_the_signed_range() {
        // [−1, 1] needs 2 bits + padding; [−2, 2] needs 3 (5 values) + padding.
        assert_eq!(message_bits(0), 2);
        assert_eq!(message_bits(1), 3);
        assert_eq!(message_bits(2), 4);
        // 8-bit worst case: 20·255·128 = 652 800 → 2B+1 < 2^21.
        assert_eq!(message_bits(652_800), 22);
    }

    #[test]
    fn ln_erfc_matches_known_values() {
        // erfc(1) = 0.157299207..., erfc(5) = 1.5374597944e-12.
        assert!((ln_erfc(1.0).exp() - 0.157_299_207).abs() < 1e-7);
        assert!((ln_erfc(5.0).exp() / 1.537_459_794_4e-12 - 1.0).abs() < 1e-6);
        // Far tail stays finite: ln erfc(40) ≈ −1600 − ln(40√π).
        let far = ln_erfc(40.0);
        assert!((far - (-1600.0 - (40.0 * std::f64::consts::PI.sqrt()).ln())).abs() < 0.01);
    }

    #[test]
    fn tuniform_variance_matches_tfhe_formula() {
        let v = GlweParams::TUNIFORM_2M128_N2048.fresh_noise_variance();
        assert_eq!(v, (2f64.powi(35) + 1.0) / 6.0);
    }

    #[test]
    fn eight_bit_layer_passes_and_twelve_bit_is_refused() {
        let params = GlweParams::TUNIFORM_2M128_N2048;
        let layout = Layout::densest(30, 20, params.polynomial_size).unwrap();
        let b8 = NoiseBudget::compute(&layer(255, 128, 20, 400), &layout, &params).unwrap();
        assert_eq!(b8.message_bits, 22);
        assert!(b8.log2_failure < -100.0, "{b8:?}");
        b8.check().unwrap();
        let b12 = NoiseBudget::compute(&layer(4095, 2048, 20, 400), &layout, &params).unwrap();
        assert!(b12.log2_failure > MAX_LOG2_FAILURE);
        assert!(matches!(b12.check(), Err(FheError::NoiseBudget { .. })));
    }

    #[test]
    fn more_reply_bits_reduce_switch_noise() {
        let params = GlweParams::TUNIFORM_2M128_N2048;
        let layout = Layout::densest(30, 20, params.polynomial_size).unwrap();
        let l10 = layer(1023, 512, 20, 400);
        let at32 = NoiseBudget::compute(&l10, &layout, &params).unwrap();
        assert!(at32.check().is_err(), "{at32:?}");
        let min = min_reply_modulus_log(&l10, &layout, &params)
            .unwrap()
            .unwrap();
        assert!(min > 32 && min < 64, "{min}");
        let wide = params.with_reply_modulus_log(min).unwrap();
        NoiseBudget::compute(&l10, &layout, &wide)
            .unwrap()
            .check()
            .unwrap();
    }

    #[test]
    fn invalid_params_are_rejected() {
        let p = GlweParams::TUNIFORM_2M128_N2048;
        assert!(p.with_reply_modulus_log(65).is_err());
        let k2 = GlweParams {
            glwe_dimension: GlweDimension(2),
            ..p
        };
        assert!(k2.validate().is_err());
        let odd = GlweParams {
            polynomial_size: PolynomialSize(1000),
            ..p
        };
        assert!(odd.validate().is_err());
    }
}
