//! Model privacy (docs/ARCHITECTURE.md §4, "model privacy"): an option under which a reply
//! tells the client its rounded scores and, up to a statistical distance of 2^-λ per score,
//! nothing else about the weights.
//!
//! Without it, a reply product is (a·W_g, b·W_g + bias·Δ) switched to w bits: the mask is a
//! function of W_g and of the query's mask a, which the client knows, and the decrypted phase
//! is Δ·score + e·W_g, where the client knows its own fresh noise e, so the bits below the
//! score carry W too. With it, per product the server
//! 1. **re-randomises**: adds u_g·pk + (e1, e2), where pk = (a_pk, a_pk·s + e_pk) is the
//!    client's public key (one encryption of zero, sent once), u_g a fresh uniform binary
//!    polynomial and e1, e2 fresh TUniform noise. The mask a·W_g + u_g·a_pk + e1 is then a
//!    fresh RLWE sample: pseudorandom and independent of W_g under the assumption, and with
//!    the parameters, that keep the query secret. (A statistical version by the leftover hash
//!    lemma needs ≥ 65 zero encryptions and 65 products per reply product: 1.04 MiB of key.)
//! 2. **floods**: adds to every returned score coefficient a fresh integer F uniform on
//!    [−A, A) with A = 2^(⌈log2 L⌉ + λ), where L bounds what of W the phase carries besides
//!    the score (e·W_g, Hoeffding's bound for TUniform(b) noise, plus the server's FFT error)
//!    except with probability 2^-(λ+1). Shifting a uniform variable by t moves it by |t|/2A
//!    in statistical distance, so two models whose scores agree give replies within 2^-λ per
//!    score.
//! 3. **rounds**: the client decodes at Δ·2^ρ, ρ the fewest dropped bits that keep the
//!    failure probability per score under 2^-40 with the flood added, so every score comes
//!    back as a multiple of 2^ρ less than 2^ρ from the exact one.
//!
//! What it cannot hide is what the rounded scores say, and a fresh flood per reply means
//! repeated queries average it down: the extraction attack (`experiment::extraction`)
//! measures how many queries buy how good a copy, and a per-key query budget is the defence
//! left to the server.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::commons::math::random::{RandomGenerator, Seed};
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::{
    FourierPolynomial, FourierPolynomialOwned,
};
use tfhe::core_crypto::prelude::{DefaultRandomGenerator, FftView};

use super::fourier::FourierScratch;
use super::params::{fft_error_std, log2_failure};
use super::{expand_mask, GlweParams, NoiseBudget, MAX_LOG2_FAILURE};
use crate::error::FheError;

/// The model-privacy option as configured: the statistical parameter λ of the flooding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrivacy {
    /// λ: replies of two models whose scores agree are within 2^-λ statistical distance per
    /// score. 0 re-randomises the mask only (no flooding, no rounding).
    pub flood_bits: u32,
}

impl ModelPrivacy {
    /// Largest λ accepted; the planner refuses smaller ones a layer cannot afford.
    pub const MAX_FLOOD_BITS: u32 = 60;

    pub fn validate(&self) -> Result<(), FheError> {
        if self.flood_bits > Self::MAX_FLOOD_BITS {
            return Err(FheError::InvalidParams {
                param: "flood_bits",
                reason: format!(
                    "{} flood bits: at most {} fit a 64-bit torus",
                    self.flood_bits,
                    Self::MAX_FLOOD_BITS
                ),
            });
        }
        Ok(())
    }
}

/// What the planner derived from [`ModelPrivacy`] for one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct PrivacyPlan {
    /// λ.
    pub flood_bits: u32,
    /// log2 A: the flood is uniform on [−A, A); `None` when λ = 0.
    pub flood_log2: Option<u32>,
    /// ρ: scores are returned as multiples of 2^ρ.
    pub rounding_bits: u32,
    /// L: what of W the phase carries besides the score (e·W_g and the FFT error) stays
    /// below it except with probability 2^-(λ+1) (torus units).
    pub leak_bound: f64,
    /// Variance the re-randomisation adds to a score: u·e_pk, e1·s, e2 and the FFT error of
    /// u·pk (torus units²).
    pub rerandomise_variance: f64,
    /// log2 of the failure probability per score with everything added.
    pub log2_failure: f64,
}

impl PrivacyPlan {
    /// Plans the option for a layer already within `budget`: the flood for λ, then the fewest
    /// rounding bits that keep the failure probability under 2^-40. Refused when no rounding
    /// leaves at least two message bits.
    pub fn compute(
        params: &GlweParams,
        budget: &NoiseBudget,
        privacy: ModelPrivacy,
    ) -> Result<Self, FheError> {
        privacy.validate()?;
        let n = params.polynomial_size.0 as f64;
        let key_weight = n / 2.0;
        let sigma_e2 = params.fresh_noise_variance();
        // u·e_pk (≈ N/2 ones in u), e1·s (≈ N/2 ones in s), e2.
        let fresh = sigma_e2 * (2.0 * key_weight + 1.0);
        // The FFT error of u·a_pk lands on the mask (× the key at decryption), that of u·b_pk
        // on the body once.
        let fft =
            fft_error_std(params.polynomial_size, key_weight.sqrt()).powi(2) * (key_weight + 1.0);
        let rerandomise_variance = fresh + fft;
        let sigma = (budget.total_variance() + rerandomise_variance).sqrt();

        let lambda = privacy.flood_bits;
        // e·W_g at a score coefficient sums K·d independent terms e·w with |e| ≤ 2^b, so by
        // Hoeffding P(|e·W_g| > t) ≤ 2·exp(−t²/(2·4^b·‖W_g‖²)); with the FFT error's Gaussian
        // tail added, z below puts both tails under 2^-(λ+1).
        let hoeffding = 4f64.powi(params.noise.bound_log2() as i32) * budget.worst_product_sq_norm;
        let z = (2.0 * (f64::from(lambda) + 2.0) * std::f64::consts::LN_2).sqrt();
        let leak_bound = z * (hoeffding + budget.fft_variance + fft).sqrt();
        let flood_log2 = (lambda > 0).then(|| leak_bound.log2().ceil().max(0.0) as u32 + lambda);
        let flood = flood_log2.map_or(0.0, |a| 2f64.powi(a as i32));

        let (delta_log, p) = (budget.delta_log2, budget.message_bits);
        for rho in 0..p.saturating_sub(1) {
            let half = 2f64.powi((delta_log + rho) as i32 - 1);
            if flood_log2.is_some_and(|a| a + 1 >= 64) || half <= flood {
                continue;
            }
            let failure = log2_failure(half - flood, sigma);
            if failure <= MAX_LOG2_FAILURE {
                return Ok(Self {
                    flood_bits: lambda,
                    flood_log2,
                    rounding_bits: rho,
                    leak_bound,
                    rerandomise_variance,
                    log2_failure: failure,
                });
            }
        }
        Err(FheError::NoiseBudget {
            log2_failure: 0.0,
            max_log2: MAX_LOG2_FAILURE,
            detail: format!(
                "a flood of 2^{:.1} for λ = {lambda} leaves no room for the {p}-bit scores \
                 (Δ = 2^{delta_log}); a smaller λ is needed",
                flood.log2()
            ),
        })
    }
}

/// A client's GLWE public key: one encryption of zero under its secret key, seeded like a
/// query (the mask regenerates from the seed). Public: the server uses it to re-randomise
/// replies; it serves any model of the same parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    pub params_id: u16,
    pub seed: u128,
    /// N body coefficients a_pk·s + e_pk.
    pub body: Vec<u64>,
}

/// A public key in the Fourier domain, prepared once per client by the server.
pub struct PreparedPublicKey {
    pub(crate) mask: FourierPolynomialOwned,
    pub(crate) body: FourierPolynomialOwned,
}

impl PublicKey {
    /// Checks the key against the parameter set and transforms both polynomials once.
    pub(crate) fn prepare(
        &self,
        params: &GlweParams,
        fft: FftView<'_>,
    ) -> Result<PreparedPublicKey, FheError> {
        if self.params_id != params.id {
            return Err(FheError::WireMismatch {
                what: "public key",
                field: "parameter set id",
                expected: params.id.to_string(),
                found: self.params_id.to_string(),
            });
        }
        let n = params.polynomial_size.0;
        if self.body.len() != n {
            return Err(FheError::Wire {
                what: "public key",
                reason: format!(
                    "body has {} coefficients, expected N = {n}",
                    self.body.len()
                ),
            });
        }
        let mut scratch = FourierScratch::new(fft);
        let mut transform = |poly: &[u64]| {
            scratch.forward_torus(fft, poly);
            let mut out = FourierPolynomial::new(params.polynomial_size);
            out.data.copy_from_slice(&scratch.fourier.data);
            out
        };
        Ok(PreparedPublicKey {
            mask: transform(&expand_mask(params, self.seed)),
            body: transform(&self.body),
        })
    }
}

/// The server's fresh randomness for one reply product: u (binary), then e1, e2 (TUniform)
/// and the flood, all from tfhe's AES-CTR generator under a per-product seed.
pub(crate) struct ReplyNoise(RandomGenerator<DefaultRandomGenerator>);

impl ReplyNoise {
    pub(crate) fn new(seed: u128) -> Self {
        Self(RandomGenerator::new(Seed(seed)))
    }

    pub(crate) fn binary(&mut self, out: &mut [u64]) {
        self.0.fill_slice_with_random_uniform_binary(out);
    }

    pub(crate) fn add_fresh_noise(&mut self, params: &GlweParams, values: &mut [u64]) {
        self.0
            .unsigned_integer_slice_wrapping_add_random_from_distribution_custom_mod_assign(
                values,
                params.noise,
                params.ciphertext_modulus,
            );
    }

    /// Adds a uniform integer of [−2^a, 2^a) to every value.
    pub(crate) fn add_flood(&mut self, flood_log2: u32, values: &mut [u64]) {
        let half = 1u64 << flood_log2;
        for v in values {
            let r: u64 = self.0.random_uniform();
            *v = v.wrapping_add((r >> (63 - flood_log2)).wrapping_sub(half));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhe::{FhePlan, IntegerLinear};
    use ndarray::{Array1, Array2};

    fn worst_case(c: usize) -> IntegerLinear {
        IntegerLinear {
            weights: Array2::from_elem((20, c), 255),
            bias: Array1::zeros(c),
            input_min: -128,
            input_max: 127,
        }
    }

    #[test]
    fn more_flood_bits_cost_one_rounding_bit_each() {
        let plan = FhePlan::for_circuit(&worst_case(400), crate::fhe::Circuit::Summed, 30).unwrap();
        let at = |lambda| {
            PrivacyPlan::compute(
                &plan.params,
                &plan.budget,
                ModelPrivacy { flood_bits: lambda },
            )
            .unwrap()
        };
        let none = at(0);
        assert_eq!((none.flood_log2, none.rounding_bits), (None, 0));
        let (a, b) = (at(16), at(17));
        assert_eq!(b.flood_log2.unwrap(), a.flood_log2.unwrap() + 1);
        assert_eq!(b.rounding_bits, a.rounding_bits + 1);
        assert!(a.log2_failure <= MAX_LOG2_FAILURE && b.log2_failure <= MAX_LOG2_FAILURE);
        // The flood covers the leak 2^λ times over.
        assert!(2f64.powi(a.flood_log2.unwrap() as i32) >= a.leak_bound * 2f64.powi(16));
        // A flood beyond the torus is refused, not wrapped.
        assert!(
            PrivacyPlan::compute(&plan.params, &plan.budget, ModelPrivacy { flood_bits: 60 })
                .is_err()
        );
        assert!(ModelPrivacy { flood_bits: 61 }.validate().is_err());
    }

    #[test]
    fn the_flood_is_uniform_on_its_interval() {
        let mut noise = ReplyNoise::new(5);
        let mut values = vec![0u64; 40_000];
        noise.add_flood(3, &mut values);
        let mut counts = [0usize; 16];
        for &v in &values {
            let f = v as i64;
            assert!((-8..8).contains(&f), "{f}");
            counts[(f + 8) as usize] += 1;
        }
        // 2 500 expected per value; ±300 is > 6σ.
        assert!(counts.iter().all(|&c| c.abs_diff(2500) < 300), "{counts:?}");
    }

    /// The reply mask against a·W_g, the value that gives W_g away: in the plain reply they
    /// agree to the rounding, so one reply is a fingerprint (and, unrounded, a copy) of the
    /// weights; in the private reply the two are statistically independent (χ² test of
    /// independence between their top two bits over every mask coefficient).
    #[test]
    fn the_private_reply_mask_is_independent_of_the_weights() {
        use crate::fhe::packing::negacyclic_mul;
        use crate::fhe::{ClientKey, ServerModel};
        use rand::{Rng, SeedableRng};

        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (d, c) = (20, 400);
        let layer = IntegerLinear {
            weights: Array2::from_shape_fn((d, c), |_| rng.gen_range(-255..=255)),
            bias: Array1::zeros(c),
            input_min: -128,
            input_max: 127,
        };
        let plain = FhePlan::for_circuit(&layer, crate::fhe::Circuit::Summed, 30).unwrap();
        let private = plain
            .clone()
            .with_privacy(ModelPrivacy { flood_bits: 24 })
            .unwrap();
        let (plain, private) = (
            ServerModel::from_plan(&plain).unwrap(),
            ServerModel::from_plan(&private).unwrap(),
        );
        let params = plain.spec().params;
        let key = ClientKey::generate(&params).unwrap();
        let public = private.prepare_public_key(&key.public_key()).unwrap();
        let q_x = ndarray::Array2::from_shape_fn((1, d), |_| rng.gen_range(-3840..3810));
        let query = key.encrypt_query(plain.spec(), q_x.view()).unwrap();
        let mut private_query = query.clone();
        private_query.header = private.spec().header();

        let w = params.reply_modulus_log.0 as u32;
        let a = expand_mask(&params, query.seed);
        let layout = plain.spec().layout;
        let switched_a_w: Vec<Vec<u64>> = (0..plain.spec().product_count())
            .map(|g| {
                let w_g = layout.weight_polynomial(layer.weights.view(), g).unwrap();
                negacyclic_mul(&a, &w_g)
                    .unwrap()
                    .iter()
                    .map(|&v| v.wrapping_add(1 << (63 - w)) >> (64 - w))
                    .collect()
            })
            .collect();
        let statistics = |reply: &crate::fhe::EncryptedScores| {
            let mut table = [[0f64; 4]; 4];
            let mut close = 0usize;
            for (g, reference) in switched_a_w.iter().enumerate() {
                for (&m, &r) in reply.mask(g).iter().zip(reference) {
                    let diff = m.wrapping_sub(r) & ((1 << w) - 1);
                    close += usize::from(diff <= 1 || diff == (1 << w) - 1);
                    table[(m >> (w - 2)) as usize][(r >> (w - 2)) as usize] += 1.0;
                }
            }
            let total: f64 = table.iter().flatten().sum();
            let chi2: f64 = (0..4)
                .flat_map(|i| (0..4).map(move |j| (i, j)))
                .map(|(i, j)| {
                    let row: f64 = table[i].iter().sum();
                    let col: f64 = table.iter().map(|r| r[j]).sum();
                    let expected = row * col / total;
                    (table[i][j] - expected).powi(2) / expected
                })
                .sum();
            (close as f64 / total, chi2)
        };
        let (plain_close, plain_chi2) = statistics(&plain.score(&query).unwrap());
        assert!(plain_close > 0.99, "plain mask = a·W_g: {plain_close}");
        assert!(plain_chi2 > 1000.0, "{plain_chi2}");
        let reply = private.score_private(&private_query, &public).unwrap();
        let (private_close, private_chi2) = statistics(&reply);
        // The figures the README quotes (`cargo test --release --lib the_private_reply_mask --
        // --nocapture`).
        eprintln!(
            "mask within ±1 of a·W_g: plain {plain_close}, private {private_close}; χ² plain \
             {plain_chi2:.2}, private {private_chi2:.2}"
        );
        assert!(private_close < 0.001, "{private_close}");
        // 9 degrees of freedom: P(χ² > 40) ≈ 7e-6 under independence.
        assert!(private_chi2 < 40.0, "χ² = {private_chi2}");
        // Fresh per reply: the same query twice gives two different masks.
        let again = private.score_private(&private_query, &public).unwrap();
        assert_ne!(reply.mask(0), again.mask(0));
        // And both decrypt to the scores, rounded.
        let summed = crate::fhe::Circuit::Summed.layer(&layer, 30).unwrap();
        let exact = crate::fhe::simulate::clear_scores(&summed, q_x.view()).unwrap();
        let rho = private.spec().rounding_bits;
        assert!(rho > 0);
        for r in [&reply, &again] {
            let scores = key.decrypt_scores(private.spec(), r).unwrap();
            crate::fhe::simulate::compare_rounded(&exact, &scores, rho).unwrap();
        }
    }
}
