//! The server: holds the clear model (no secret, no evaluation key), prepares one weight
//! polynomial per group of K classes in the Fourier domain once, and scores encrypted
//! queries with ⌈C/K⌉ ciphertext × clear-polynomial products.

use rayon::prelude::*;
use tfhe::core_crypto::fft_impl::common::modulus_switch;
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::{FourierPolynomial, FourierPolynomialOwned};
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::prelude::{
    decompress_seeded_glwe_ciphertext, DefaultRandomGenerator, Fft,
    GlweCiphertext, GlweCiphertextOwned, SeededGlweCiphertext,
};

use super::fourier::FourierScratch;
use super::{
    EncryptedQuery, EncryptedScores, GlweParams, IntegerLinear, Layout, NoiseBudget, ScoringSpec,
};
use crate::error::FheError;

/// A model ready to score encrypted queries.
pub struct ServerModel {
    spec: ScoringSpec,
    budget: NoiseBudget,
    fft: Fft,
    /// W_g in the Fourier domain, one per product.
    weights: Vec<FourierPolynomialOwned>,
    /// bias·Δ on the K·J score coefficients of each product (flat, products × K·J).
    bias: Vec<u64>,
}

/// The query's mask and body polynomials in the Fourier domain (transformed once per query).
struct FourierQuery {
    mask: FourierPolynomialOwned,
    body: FourierPolynomialOwned,
}

impl ServerModel {
    /// Checks the layer against the layout and the noise budget (refusing anything above
    /// 2^−40 per score) and transforms the weight polynomials once.
    pub fn new(
        layer: &IntegerLinear,
        layout: Layout,
        params: GlweParams,
    ) -> Result<Self, FheError> {
        let budget = NoiseBudget::compute(layer, &layout, &params)?;
        budget.check()?;
        let spec = ScoringSpec {
            params,
            layout,
            classes: layer.classes(),
            message_bits: budget.message_bits,
            input_min: layer.input_min,
            input_max: layer.input_max,
            model_id: layer.model_id(),
        };
        let fft = Fft::new(params.polynomial_size);
        let mut scratch = FourierScratch::new(fft.as_view());
        let products = spec.product_count();
        let mut weights = Vec::with_capacity(products);
        for g in 0..products {
            let w: Vec<u64> = layout
                .weight_polynomial(layer.weights.view(), g)?
                .into_iter()
                .map(|v| v as u64)
                .collect();
            let mut fourier = FourierPolynomial::new(params.polynomial_size);
            scratch.forward_integer(fft.as_view(), &mut fourier, &w);
            weights.push(fourier);
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
        Ok(Self { spec, budget, fft, weights, bias })
    }

    /// The public description a client needs.
    pub fn spec(&self) -> &ScoringSpec {
        &self.spec
    }

    pub fn noise_budget(&self) -> &NoiseBudget {
        &self.budget
    }

    /// Scores an encrypted query: per product, mask·W_g and body·W_g via the FFT, plus the
    /// bias on the score coefficients, then the modulus switch keeping the whole mask and only
    /// the K·J score coefficients of the body. Products run in parallel on the current rayon
    /// pool.
    pub fn score(&self, query: &EncryptedQuery) -> Result<EncryptedScores, FheError> {
        let fourier = self.forward_query(query)?;
        let n = self.spec.params.polynomial_size.0;
        let scores = self.spec.layout.scores_per_product();
        let per = n + scores;
        let w = self.spec.params.reply_modulus_log;
        let fft = self.fft.as_view();
        let mut values = vec![0u64; self.weights.len() * per];
        values.par_chunks_mut(per).enumerate().for_each_init(
            || (FourierScratch::new(fft), vec![0u64; 2 * n]),
            |(scratch, full), (g, out)| {
                self.product_into(g, &fourier, scratch, full);
                // Mask (N) then the first K·J body coefficients; the rest of the body, which
                // holds the cross terms, is dropped here.
                for (dst, &src) in out.iter_mut().zip(full.iter()) {
                    *dst = modulus_switch(src, w);
                }
            },
        );
        Ok(EncryptedScores {
            header: self.spec.header(),
            reply_modulus_log: w.0 as u32,
            values,
        })
    }

    /// The full, untruncated product ciphertexts (with bias), as computed before the reply
    /// is cut down. They never leave the server; exposed for audits and tests that check
    /// the reply holds nothing else than the scores.
    pub fn full_products(
        &self,
        query: &EncryptedQuery,
    ) -> Result<Vec<GlweCiphertextOwned<u64>>, FheError> {
        let fourier = self.forward_query(query)?;
        let params = &self.spec.params;
        let mut scratch = FourierScratch::new(self.fft.as_view());
        (0..self.weights.len())
            .map(|g| {
                let mut full = vec![0u64; 2 * params.polynomial_size.0];
                self.product_into(g, &fourier, &mut scratch, &mut full);
                Ok(GlweCiphertext::from_container(
                    full,
                    params.polynomial_size,
                    params.ciphertext_modulus,
                ))
            })
            .collect()
    }

    /// Checks the query against this model, regenerates its mask from the seed, and
    /// transforms mask and body once.
    fn forward_query(&self, query: &EncryptedQuery) -> Result<FourierQuery, FheError> {
        query.header.check(&self.spec, "encrypted query")?;
        let params = &self.spec.params;
        let n = params.polynomial_size.0;
        if query.body.len() != n {
            return Err(FheError::Wire {
                what: "encrypted query",
                reason: format!("body has {} coefficients, expected N = {n}", query.body.len()),
            });
        }
        let seeded = SeededGlweCiphertext::from_container(
            query.body.as_slice(),
            params.glwe_dimension.to_glwe_size(),
            CompressionSeed::from(Seed(query.seed)),
            params.ciphertext_modulus,
        );
        let mut glwe = GlweCiphertext::new(
            0u64,
            params.glwe_dimension.to_glwe_size(),
            params.polynomial_size,
            params.ciphertext_modulus,
        );
        decompress_seeded_glwe_ciphertext::<_, _, _, DefaultRandomGenerator>(&mut glwe, &seeded);
        let (mask, body) = glwe.as_ref().split_at(n);
        let fft = self.fft.as_view();
        let mut scratch = FourierScratch::new(fft);
        let mut out = FourierQuery {
            mask: FourierPolynomial::new(params.polynomial_size),
            body: FourierPolynomial::new(params.polynomial_size),
        };
        scratch.forward_torus(fft, mask);
        out.mask.data.copy_from_slice(&scratch.fourier.data);
        scratch.forward_torus(fft, body);
        out.body.data.copy_from_slice(&scratch.fourier.data);
        Ok(out)
    }

    /// Product g as a full GLWE ciphertext (mask then body, 2N coefficients) with the bias
    /// added to the body's score coefficients.
    fn product_into(
        &self,
        g: usize,
        query: &FourierQuery,
        scratch: &mut FourierScratch,
        full: &mut [u64],
    ) {
        let fft = self.fft.as_view();
        let n = self.spec.params.polynomial_size.0;
        let (mask, body) = full.split_at_mut(n);
        scratch.set_product(&query.mask.data, &self.weights[g].data);
        scratch.backward_torus(fft, mask);
        scratch.set_product(&query.body.data, &self.weights[g].data);
        scratch.backward_torus(fft, body);
        let per = self.spec.layout.scores_per_product();
        for (b, &bias) in body.iter_mut().zip(&self.bias[g * per..(g + 1) * per]) {
            *b = b.wrapping_add(bias);
        }
    }
}
