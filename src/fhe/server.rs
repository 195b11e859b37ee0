//! The server: holds the clear model (no secret, no evaluation key), prepares one weight
//! polynomial per group of K classes in the Fourier domain once, and scores encrypted
//! queries with ⌈C/K⌉ ciphertext × clear-polynomial products.
//!
//! Per product, the mask a·W_g is needed in full (N coefficients) and goes through the FFT;
//! of the body b·W_g only the K·J score coefficients are kept. Each is a sum over the K·d
//! nonzero monomials of W_g, so for the chunks layout they are computed exactly in integers
//! (K·J·K·d = 5 400 multiply-adds, cheaper than a second inverse FFT); for the summed layout
//! (K = 102, J = 1: 208 080) the body goes through the FFT like the mask, its rounding error
//! counted in the noise budget ([`Layout::body_by_fft`]).

use pulp::Arch;
use rayon::prelude::*;
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::{
    FourierPolynomial, FourierPolynomialOwned,
};
use tfhe::core_crypto::prelude::{Fft, GlweCiphertext, GlweCiphertextOwned};

use super::fourier::FourierScratch;
use super::packing::negacyclic_mul;
use super::privacy::{PreparedPublicKey, PrivacyPlan, PublicKey, ReplyNoise};
use super::{
    expand_mask, Circuit, EncryptedQuery, EncryptedScores, FhePlan, GlweParams, IntegerLinear,
    Layout, NoiseBudget, ScoringSpec,
};
use crate::error::FheError;

/// A model ready to score encrypted queries.
pub struct ServerModel {
    spec: ScoringSpec,
    budget: NoiseBudget,
    fft: Fft,
    /// W_g in the Fourier domain, one per product.
    weights: Vec<FourierPolynomialOwned>,
    /// W_g's nonzero monomials (exponent, coefficient mod 2^64), one list per product.
    monomials: Vec<Vec<(usize, u64)>>,
    /// bias·Δ on the K·J score coefficients of each product (flat, products × K·J).
    bias: Vec<u64>,
    /// The model-privacy option, when served with it.
    privacy: Option<PrivacyPlan>,
}

/// A decompressed query: the mask in the Fourier domain (transformed once per query) and
/// the body as received.
struct PreparedQuery<'a> {
    mask: FourierPolynomialOwned,
    body: &'a [u64],
    /// The body in the Fourier domain when the layout computes its scores by FFT.
    fourier_body: Option<FourierPolynomialOwned>,
}

impl ServerModel {
    /// Checks the layer against the layout and the noise budget (refusing anything above
    /// 2^−40 per score) and transforms the weight polynomials once.
    pub fn new(
        layer: &IntegerLinear,
        layout: Layout,
        params: GlweParams,
    ) -> Result<Self, FheError> {
        Self::build(
            layer,
            layout,
            params,
            Circuit::Chunks,
            layout.chunks(),
            None,
        )
    }

    /// The server for a plan: its circuit's layer, layout and parameters.
    pub fn from_plan(plan: &FhePlan) -> Result<Self, FheError> {
        Self::build(
            &plan.layer,
            plan.layout,
            plan.params,
            plan.circuit,
            plan.query_chunks,
            plan.privacy.clone(),
        )
    }

    fn build(
        layer: &IntegerLinear,
        layout: Layout,
        params: GlweParams,
        circuit: Circuit,
        query_chunks: usize,
        privacy: Option<PrivacyPlan>,
    ) -> Result<Self, FheError> {
        let budget = NoiseBudget::compute(layer, &layout, &params)?;
        budget.check()?;
        let spec = ScoringSpec {
            params,
            layout,
            circuit,
            query_chunks,
            classes: layer.classes(),
            message_bits: budget.message_bits,
            input_min: layer.input_min,
            input_max: layer.input_max,
            model_id: layer.model_id(),
            private: privacy.is_some(),
            rounding_bits: privacy.as_ref().map_or(0, |p| p.rounding_bits),
        };
        let fft = Fft::new(params.polynomial_size);
        let mut scratch = FourierScratch::new(fft.as_view());
        let products = spec.product_count();
        let mut weights = Vec::with_capacity(products);
        let mut monomials = Vec::with_capacity(products);
        for g in 0..products {
            let w: Vec<u64> = layout
                .weight_polynomial(layer.weights.view(), g)?
                .into_iter()
                .map(|v| v as u64)
                .collect();
            let mut fourier = FourierPolynomial::new(params.polynomial_size);
            scratch.forward_integer(fft.as_view(), &mut fourier, &w);
            weights.push(fourier);
            monomials.push(w.into_iter().enumerate().filter(|&(_, c)| c != 0).collect());
        }
        let per = layout.scores_per_product();
        let k_count = layout.classes_per_product();
        let delta_log = spec.delta_log2();
        let mut bias = vec![0u64; products * per];
        for (class, &b) in layer.bias.iter().enumerate() {
            let (g, k) = (class / k_count, class % k_count);
            for j in 0..layout.chunks() {
                bias[g * per + layout.score_position(j, k)] = (b as u64) << delta_log;
            }
        }
        Ok(Self {
            spec,
            budget,
            fft,
            weights,
            monomials,
            bias,
            privacy,
        })
    }

    /// The public description a client needs.
    pub fn spec(&self) -> &ScoringSpec {
        &self.spec
    }

    pub fn noise_budget(&self) -> &NoiseBudget {
        &self.budget
    }

    /// The model-privacy plan, if the model is served with it.
    pub fn privacy(&self) -> Option<&PrivacyPlan> {
        self.privacy.as_ref()
    }

    /// Scores an encrypted query: per product, mask·W_g via the FFT and the K·J score
    /// coefficients of body·W_g exactly, plus the bias, then the modulus switch. The rest of
    /// the body, which would hold the cross terms, is never even computed. Products run in
    /// parallel on the current rayon pool. A model served with model privacy refuses: its
    /// replies need the client's public key ([`ServerModel::score_private`]).
    pub fn score(&self, query: &EncryptedQuery) -> Result<EncryptedScores, FheError> {
        if self.privacy.is_some() {
            return Err(FheError::InvalidParams {
                param: "public_key",
                reason: "the model is served with model privacy: a reply needs the client's \
                         public key"
                    .into(),
            });
        }
        self.score_with(query, None)
    }

    /// Checks a client's public key against the parameter set and prepares it (once per
    /// client) for [`ServerModel::score_private`].
    pub fn prepare_public_key(&self, key: &PublicKey) -> Result<PreparedPublicKey, FheError> {
        key.prepare(&self.spec.params, self.fft.as_view())
    }

    /// Scores a query with the model-privacy option (fhe::privacy): as [`ServerModel::score`],
    /// then per product a fresh u_g·pk + (e1, e2) and the flood on the score coefficients.
    pub fn score_private(
        &self,
        query: &EncryptedQuery,
        key: &PreparedPublicKey,
    ) -> Result<EncryptedScores, FheError> {
        let Some(privacy) = &self.privacy else {
            return Err(FheError::InvalidParams {
                param: "public_key",
                reason: "the model is served without model privacy: score the query with \
                         `score`"
                    .into(),
            });
        };
        self.score_with(query, Some((key, privacy)))
    }

    fn score_with(
        &self,
        query: &EncryptedQuery,
        private: Option<(&PreparedPublicKey, &PrivacyPlan)>,
    ) -> Result<EncryptedScores, FheError> {
        let query = self.prepare(query)?;
        let params = &self.spec.params;
        let n = params.polynomial_size.0;
        let per = n + self.spec.layout.scores_per_product();
        let w = params.reply_modulus_log.0 as u32;
        let fft = self.fft.as_view();
        // One fresh generator per product, seeded from the OS / CPU entropy source, so the
        // products stay parallel and no two share randomness.
        let seeds: Vec<u128> = match private {
            Some(_) => {
                let mut seeder = tfhe::core_crypto::prelude::new_seeder();
                (0..self.weights.len()).map(|_| seeder.seed().0).collect()
            }
            None => Vec::new(),
        };
        let mut values = vec![0u64; self.weights.len() * per];
        values.par_chunks_mut(per).enumerate().for_each_init(
            || {
                let u = private.map(|_| {
                    (
                        vec![0u64; n],
                        FourierPolynomial::new(params.polynomial_size),
                    )
                });
                (FourierScratch::new(fft), vec![0u64; n], u)
            },
            |(scratch, full, u), (g, out)| {
                let (mask, body) = out.split_at_mut(n);
                let mut noise = None;
                if let (Some((key, _)), Some((u, u_fourier))) = (private, u.as_mut()) {
                    let mut fresh = ReplyNoise::new(seeds[g]);
                    fresh.binary(u);
                    scratch.forward_integer(fft, u_fourier, u);
                    noise = Some((fresh, &*u_fourier, key));
                }
                scratch.set_product(&query.mask.data, &self.weights[g].data);
                if let Some((_, u_fourier, key)) = &noise {
                    scratch.add_product(&u_fourier.data, &key.mask.data);
                }
                scratch.backward_torus(fft, mask);
                match &query.fourier_body {
                    Some(fourier_body) => {
                        scratch.set_product(&fourier_body.data, &self.weights[g].data);
                        if let Some((_, u_fourier, key)) = &noise {
                            scratch.add_product(&u_fourier.data, &key.body.data);
                        }
                        scratch.backward_torus(fft, full);
                        let bias = &self.bias[g * body.len()..(g + 1) * body.len()];
                        for ((o, &v), &b) in body.iter_mut().zip(full.iter()).zip(bias) {
                            *o = v.wrapping_add(b);
                        }
                    }
                    None => {
                        self.body_scores(g, query.body, body, scratch.arch);
                        if let Some((_, u_fourier, key)) = &noise {
                            scratch.set_product(&u_fourier.data, &key.body.data);
                            scratch.backward_torus(fft, full);
                            for (o, &v) in body.iter_mut().zip(full.iter()) {
                                *o = o.wrapping_add(v);
                            }
                        }
                    }
                }
                if let (Some((mut fresh, _, _)), Some((_, plan))) = (noise, private) {
                    fresh.add_fresh_noise(params, mask);
                    fresh.add_fresh_noise(params, body);
                    if let Some(a) = plan.flood_log2 {
                        fresh.add_flood(a, body);
                    }
                }
                switch_modulus(out, w, scratch.arch);
            },
        );
        Ok(EncryptedScores {
            header: self.spec.header(),
            reply_modulus_log: w,
            values,
        })
    }

    /// The full, untruncated product ciphertexts (with bias), i.e. what the reply would be
    /// without the truncation: mask as in [`ServerModel::score`], body computed on all N
    /// coefficients (exactly). They never leave the server; exposed for audits and tests that
    /// check the reply holds nothing but the scores.
    pub fn full_products(
        &self,
        query: &EncryptedQuery,
    ) -> Result<Vec<GlweCiphertextOwned<u64>>, FheError> {
        let query = self.prepare(query)?;
        let params = &self.spec.params;
        let n = params.polynomial_size.0;
        let per = self.spec.layout.scores_per_product();
        let fft = self.fft.as_view();
        let mut scratch = FourierScratch::new(fft);
        (0..self.weights.len())
            .map(|g| {
                let mut full = vec![0u64; 2 * n];
                let (mask, body) = full.split_at_mut(n);
                scratch.set_product(&query.mask.data, &self.weights[g].data);
                scratch.backward_torus(fft, mask);
                let mut w = vec![0i64; n];
                for &(m, c) in &self.monomials[g] {
                    w[m] = c as i64;
                }
                body.copy_from_slice(&negacyclic_mul(query.body, &w)?);
                for (b, &bias) in body.iter_mut().zip(&self.bias[g * per..(g + 1) * per]) {
                    *b = b.wrapping_add(bias);
                }
                Ok(GlweCiphertext::from_container(
                    full,
                    params.polynomial_size,
                    params.ciphertext_modulus,
                ))
            })
            .collect()
    }

    /// Checks the query against this model, regenerates its mask from the seed, and
    /// transforms the mask once.
    fn prepare<'a>(&self, query: &'a EncryptedQuery) -> Result<PreparedQuery<'a>, FheError> {
        query.header.check(&self.spec, "encrypted query")?;
        let params = &self.spec.params;
        let n = params.polynomial_size.0;
        if query.body.len() != n {
            return Err(FheError::Wire {
                what: "encrypted query",
                reason: format!(
                    "body has {} coefficients, expected N = {n}",
                    query.body.len()
                ),
            });
        }
        let fft = self.fft.as_view();
        let mut scratch = FourierScratch::new(fft);
        scratch.forward_torus(fft, &expand_mask(params, query.seed));
        let mut mask = FourierPolynomial::new(params.polynomial_size);
        mask.data.copy_from_slice(&scratch.fourier.data);
        let fourier_body = self.spec.layout.body_by_fft().then(|| {
            scratch.forward_torus(fft, &query.body);
            let mut body = FourierPolynomial::new(params.polynomial_size);
            body.data.copy_from_slice(&scratch.fourier.data);
            body
        });
        Ok(PreparedQuery {
            mask,
            body: &query.body,
            fourier_body,
        })
    }

    /// `out` (K·J) ← bias·Δ + the first K·J coefficients of body·W_g (mod 2^64), from W_g's
    /// nonzero monomials c·X^m: coefficient t gets c·b[t−m] if t ≥ m, else −c·b[N+t−m].
    fn body_scores(&self, g: usize, body: &[u64], out: &mut [u64], arch: Arch) {
        let per = out.len();
        out.copy_from_slice(&self.bias[g * per..(g + 1) * per]);
        let n = body.len();
        arch.dispatch(|| {
            for &(m, c) in &self.monomials[g] {
                let split = m.min(per);
                let (wrapped, direct) = out.split_at_mut(split);
                for (o, &b) in wrapped.iter_mut().zip(&body[n - m..]) {
                    *o = o.wrapping_sub(b.wrapping_mul(c));
                }
                for (o, &b) in direct.iter_mut().zip(body) {
                    *o = o.wrapping_add(b.wrapping_mul(c));
                }
            }
        });
    }
}

/// Rounds every value from 64 to `bits` bits in place: round(x / 2^(64−bits)) mod 2^bits,
/// the same rounding as tfhe's `fft_impl::common::modulus_switch` (checked in a test), in a
/// loop the compiler can vectorize.
fn switch_modulus(values: &mut [u64], bits: u32, arch: Arch) {
    if bits >= 64 {
        return;
    }
    let half = 1u64 << (63 - bits);
    let shift = 64 - bits;
    arch.dispatch(|| {
        for v in values.iter_mut() {
            *v = v.wrapping_add(half) >> shift;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfhe::core_crypto::fft_impl::common::modulus_switch;
    use tfhe::core_crypto::prelude::CiphertextModulusLog;

    #[test]
    fn switch_modulus_matches_tfhe() {
        let values: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 60))
            .chain([0, u64::MAX, 1 << 63, (1 << 31) - 1, 1 << 31])
            .collect();
        for bits in [8u32, 31, 32, 40, 63, 64] {
            let mut ours = values.clone();
            switch_modulus(&mut ours, bits, Arch::new());
            for (&v, &o) in values.iter().zip(&ours) {
                assert_eq!(
                    o,
                    modulus_switch(v, CiphertextModulusLog(bits as usize)),
                    "{bits} {v}"
                );
            }
        }
    }

    /// The fresh-noise term of the budget, measured: decrypt a real query to get its noise
    /// polynomial e, form e·W_g exactly, and compare the variance of its score coefficients
    /// with the budget's. Every class has the same norm, so a budget that counted one class
    /// instead of the whole product would be K = 3 times too small.
    #[test]
    fn fresh_noise_of_a_score_spans_the_whole_product() {
        use crate::fhe::client::ClientKey;
        use rand::{Rng, SeedableRng};
        use tfhe::core_crypto::prelude::{decrypt_glwe_ciphertext, PlaintextList};

        let params = GlweParams::TUNIFORM_2M128_N2048;
        let (d, c, j) = (20, 12, 30);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let weights =
            ndarray::Array2::from_shape_fn((d, c), |_| if rng.gen::<bool>() { 100 } else { -100 });
        let layer = IntegerLinear {
            weights: weights.clone(),
            bias: ndarray::Array1::zeros(c),
            input_min: -128,
            input_max: 127,
        };
        let layout = Layout::densest(j, d, params.polynomial_size).unwrap();
        let k = layout.classes_per_product();
        assert_eq!(k, 3);
        let server = ServerModel::new(&layer, layout, params).unwrap();
        let spec = server.spec().clone();
        let key = ClientKey::generate(&params).unwrap();
        let n = params.polynomial_size.0;
        let delta_log = spec.delta_log2();

        let mut fresh = Vec::new();
        for _ in 0..4 {
            let q_x = ndarray::Array2::from_shape_fn((j, d), |_| rng.gen_range(-128..128));
            let query = key.encrypt_query(&spec, q_x.view()).unwrap();
            let glwe = crate::fhe::query_ciphertext(&params, &query);
            let mut phase = PlaintextList::new(0u64, tfhe::core_crypto::prelude::PlaintextCount(n));
            decrypt_glwe_ciphertext(key.secret_key(), &glwe, &mut phase);
            let message = layout.encode_query(q_x.view()).unwrap();
            let noise: Vec<u64> = phase
                .as_ref()
                .iter()
                .zip(&message)
                .map(|(&p, &m)| p.wrapping_sub((m as u64) << delta_log))
                .collect();
            for g in 0..layout.product_count(c) {
                let w_g = layout.weight_polynomial(weights.view(), g).unwrap();
                let e_w = negacyclic_mul(&noise, &w_g).unwrap();
                for kk in 0..k {
                    for jj in 0..j {
                        fresh.push(e_w[layout.score_position(jj, kk)] as i64 as f64);
                    }
                }
            }
        }
        let measured = fresh.iter().map(|v| v * v).sum::<f64>() / fresh.len() as f64;
        let ratio = measured / server.noise_budget().fresh_variance;
        // 1 440 samples: the variance estimate is within ±15 % with overwhelming probability.
        assert!((0.85..1.15).contains(&ratio), "measured / budget = {ratio}");
    }
}
