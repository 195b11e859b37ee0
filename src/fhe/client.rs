//! The client: a binary GLWE secret key (it never leaves the client), query encryption as a
//! seeded GLWE ciphertext, and FFT-based decryption of the server's packed scores.

use ndarray::{Array2, ArrayView2};
use tfhe::core_crypto::commons::math::random::{RandomGenerator, Seed};
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::{
    FourierPolynomial, FourierPolynomialOwned,
};
use tfhe::core_crypto::prelude::{
    allocate_and_generate_new_binary_glwe_secret_key, new_seeder, DefaultRandomGenerator, Fft,
    GlweSecretKeyOwned, SecretRandomGenerator,
};

use super::fourier::FourierScratch;
use super::{
    check_input_range, expand_mask, EncryptedQuery, EncryptedScores, GlweParams, PublicKey,
    ScoringSpec,
};
use crate::error::FheError;

/// A client's secret key, kept both as tfhe's `GlweSecretKey` and in the Fourier domain
/// (decryption multiplies every reply mask by it, so it is transformed once).
pub struct ClientKey {
    params: GlweParams,
    secret: GlweSecretKeyOwned<u64>,
    fourier_secret: FourierPolynomialOwned,
    fft: Fft,
}

impl ClientKey {
    /// Generates a uniform binary key from tfhe's CSPRNG, seeded by the OS / CPU entropy
    /// source (`new_seeder`: RDSEED, else /dev/random).
    pub fn generate(params: &GlweParams) -> Result<Self, FheError> {
        params.validate()?;
        let mut seeder = new_seeder();
        let mut generator = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
        let secret = allocate_and_generate_new_binary_glwe_secret_key(
            params.glwe_dimension,
            params.polynomial_size,
            &mut generator,
        );
        Self::from_secret(params, secret)
    }

    /// Rebuilds a key from a stored binary secret (e.g. a client's key cache), checking its
    /// shape and that every coefficient is 0 or 1.
    pub fn from_secret(
        params: &GlweParams,
        secret: GlweSecretKeyOwned<u64>,
    ) -> Result<Self, FheError> {
        params.validate()?;
        if secret.glwe_dimension() != params.glwe_dimension
            || secret.polynomial_size() != params.polynomial_size
        {
            return Err(FheError::InvalidParams {
                param: "secret_key",
                reason: format!(
                    "secret key is k = {}, N = {} but {} needs k = {}, N = {}",
                    secret.glwe_dimension().0,
                    secret.polynomial_size().0,
                    params.name,
                    params.glwe_dimension.0,
                    params.polynomial_size.0
                ),
            });
        }
        if let Some(i) = secret.as_ref().iter().position(|&b| b > 1) {
            return Err(FheError::InvalidParams {
                param: "secret_key",
                reason: format!("secret key coefficient {i} is not binary"),
            });
        }
        let fft = Fft::new(params.polynomial_size);
        let mut fourier_secret = FourierPolynomial::new(params.polynomial_size);
        FourierScratch::new(fft.as_view()).forward_integer(
            fft.as_view(),
            &mut fourier_secret,
            secret.as_ref(),
        );
        Ok(Self {
            params: *params,
            secret,
            fourier_secret,
            fft,
        })
    }

    pub fn params(&self) -> &GlweParams {
        &self.params
    }

    /// The raw secret key, for audits and tests (e.g. decrypting server-internal products).
    /// Never send it anywhere.
    pub fn secret_key(&self) -> &GlweSecretKeyOwned<u64> {
        &self.secret
    }

    fn check_params(&self, spec: &ScoringSpec) -> Result<(), FheError> {
        spec.validate()?;
        if spec.params != self.params {
            return Err(FheError::InvalidParams {
                param: "params",
                reason: format!(
                    "key was generated for {} but the model uses {}",
                    self.params.name, spec.params.name
                ),
            });
        }
        Ok(())
    }

    /// Encrypts a J × d quantized query: coefficient i·S + j holds q_X[j][i]·Δ (mod 2^64,
    /// so negatives wrap), as a seeded GLWE ciphertext with TUniform noise — the encryption
    /// tfhe's `encrypt_seeded_glwe_ciphertext` computes, with a·s done exactly through the FFT
    /// ([`ClientKey::mask_times_key`]) instead of tfhe's Karatsuba product (~7× faster). The
    /// mask is tfhe's own expansion of the seed (`decompress_seeded_glwe_ciphertext`, what the
    /// server runs), the noise comes from tfhe's CSPRNG seeded by the OS / CPU entropy source.
    pub fn encrypt_query(
        &self,
        spec: &ScoringSpec,
        q_x: ArrayView2<i64>,
    ) -> Result<EncryptedQuery, FheError> {
        self.check_params(spec)?;
        let message = spec.layout.encode_query(q_x)?;
        check_input_range(q_x, spec.input_min, spec.input_max)?;
        let delta_log = spec.delta_log2();
        let body: Vec<u64> = message.iter().map(|&m| (m as u64) << delta_log).collect();
        let (seed, body) = self.encrypt_polynomial(body);
        Ok(EncryptedQuery {
            header: spec.header(),
            seed,
            body,
        })
    }

    /// The client's public key for the model-privacy option: a fresh encryption of zero
    /// (fhe::privacy). It can be sent to any server of this parameter set.
    pub fn public_key(&self) -> PublicKey {
        let (seed, body) = self.encrypt_polynomial(vec![0; self.params.polynomial_size.0]);
        PublicKey {
            params_id: self.params.id,
            seed,
            body,
        }
    }

    /// Seeded GLWE encryption of an encoded plaintext polynomial: (seed, plaintext + e + a·s).
    fn encrypt_polynomial(&self, mut body: Vec<u64>) -> (u128, Vec<u64>) {
        let p = &self.params;
        let mut seeder = new_seeder();
        let seed: Seed = seeder.seed();
        let mask = expand_mask(p, seed.0);
        let mut noise = RandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
        noise.unsigned_integer_slice_wrapping_add_random_from_distribution_custom_mod_assign(
            &mut body,
            p.noise,
            p.ciphertext_modulus,
        );
        let mut mask_times_key = vec![0u64; p.polynomial_size.0];
        self.mask_times_key(&mask, &mut mask_times_key);
        for (b, &v) in body.iter_mut().zip(&mask_times_key) {
            *b = b.wrapping_add(v);
        }
        (seed.0, body)
    }

    /// `out` ← a·s mod 2^64, exactly, with two FFT products. a = lo + hi with lo its low 32
    /// bits: lo·s has integer coefficients below N·2^32 = 2^43, which the f64 transform gets
    /// within ~2^-14 and its rounding recovers exactly; hi·s is a multiple of 2^32 and the
    /// transform's error on it (~2^18, the `fft_error_std` of a full torus product) is far below
    /// 2^31, so rounding it to the nearest multiple of 2^32 recovers it exactly too.
    fn mask_times_key(&self, mask: &[u64], out: &mut [u64]) {
        const LOW: u64 = (1 << 32) - 1;
        let fft = self.fft.as_view();
        let mut scratch = FourierScratch::new(fft);
        let mut part: Vec<u64> = mask.iter().map(|&a| a & LOW).collect();
        scratch.forward_torus(fft, &part);
        scratch.mul_assign(&self.fourier_secret.data);
        scratch.backward_torus(fft, out);
        for (h, &a) in part.iter_mut().zip(mask) {
            *h = a & !LOW;
        }
        scratch.forward_torus(fft, &part);
        scratch.mul_assign(&self.fourier_secret.data);
        scratch.backward_torus(fft, &mut part);
        for (o, &h) in out.iter_mut().zip(&part) {
            *o = o.wrapping_add(h.wrapping_add(1 << 31) & !LOW);
        }
    }

    /// Decrypts the reply into J × C scores: per product, mask·s with the FFT (the key is
    /// already in the Fourier domain), phase = body − mask·s on the score coefficients,
    /// rounded to the nearest multiple of Δ' = 2^(w−p) in the w-bit reply domain (done here
    /// as Δ after lifting the w-bit values back to 64 bits), decoded as signed p-bit values.
    /// With model privacy's ρ rounding bits, decoded at Δ·2^ρ and returned as multiples of
    /// 2^ρ (each less than 2^ρ from the exact score).
    pub fn decrypt_scores(
        &self,
        spec: &ScoringSpec,
        scores: &EncryptedScores,
    ) -> Result<Array2<i64>, FheError> {
        self.check_params(spec)?;
        scores.header.check(spec, "encrypted scores")?;
        let w = spec.params.reply_modulus_log.0 as u32;
        if scores.reply_modulus_log != w {
            return Err(FheError::WireMismatch {
                what: "encrypted scores",
                field: "reply modulus bits",
                expected: w.to_string(),
                found: scores.reply_modulus_log.to_string(),
            });
        }
        let layout = spec.layout;
        let products = spec.product_count();
        if scores.values.len() != products * scores.values_per_product() {
            return Err(FheError::Wire {
                what: "encrypted scores",
                reason: format!(
                    "{} coefficients, expected {} products × {}",
                    scores.values.len(),
                    products,
                    scores.values_per_product()
                ),
            });
        }

        let lift = 64 - w;
        let rho = spec.rounding_bits;
        let delta_log = spec.delta_log2() + rho;
        let p = spec.message_bits - rho;
        let (j_count, k_count) = (layout.chunks(), layout.classes_per_product());
        let fft = self.fft.as_view();
        let mut scratch = FourierScratch::new(fft);
        let mut lifted = vec![0u64; layout.polynomial_size().0];
        let mut mask_times_key = vec![0u64; layout.polynomial_size().0];
        let mut out = Array2::<i64>::zeros((j_count, spec.classes));
        for g in 0..products {
            for (dst, &src) in lifted.iter_mut().zip(scores.mask(g)) {
                *dst = src << lift;
            }
            scratch.forward_torus(fft, &lifted);
            scratch.mul_assign(&self.fourier_secret.data);
            scratch.backward_torus(fft, &mut mask_times_key);
            let body = scores.body(g);
            for k in 0..k_count {
                let class = g * k_count + k;
                if class >= spec.classes {
                    break;
                }
                for j in 0..j_count {
                    let t = layout.score_position(j, k);
                    let phase = (body[t] << lift).wrapping_sub(mask_times_key[t]);
                    out[[j, class]] = decode(phase, delta_log, p) << rho;
                }
            }
        }
        Ok(out)
    }
}

/// Rounds a phase to the nearest multiple of Δ = 2^delta_log and reads the p-bit result as
/// a signed integer.
pub(crate) fn decode(phase: u64, delta_log: u32, message_bits: u32) -> i64 {
    let rounded = phase.wrapping_add(1u64 << (delta_log - 1)) >> delta_log;
    let unused = 64 - message_bits;
    ((rounded << unused) as i64) >> unused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rounds_and_sign_extends() {
        let (delta_log, p) = (42, 22);
        let delta = 1u64 << delta_log;
        for m in [-652_800i64, -1, 0, 1, 652_800] {
            let clean = (m as u64).wrapping_mul(delta);
            assert_eq!(decode(clean, delta_log, p), m);
            // Errors just inside ±Δ/2 still decode to m.
            assert_eq!(decode(clean.wrapping_add(delta / 2 - 1), delta_log, p), m);
            assert_eq!(decode(clean.wrapping_sub(delta / 2), delta_log, p), m);
            // Just past +Δ/2 rounds up.
            assert_eq!(decode(clean.wrapping_add(delta / 2), delta_log, p), m + 1);
        }
    }

    #[test]
    fn mask_times_key_is_exact_and_the_query_decrypts_within_the_fresh_noise() {
        use crate::fhe::packing::negacyclic_mul;
        use crate::fhe::{IntegerLinear, Layout, ServerModel};
        use tfhe::core_crypto::prelude::{decrypt_glwe_ciphertext, PlaintextCount, PlaintextList};

        let params = GlweParams::TUNIFORM_2M128_N2048;
        let key = ClientKey::generate(&params).unwrap();
        let n = params.polynomial_size.0;
        // Uniform 64-bit masks, the worst case for the FFT.
        let mut generator = RandomGenerator::<DefaultRandomGenerator>::new(Seed(7));
        let mut mask = vec![0u64; n];
        generator.fill_slice_with_random_uniform(&mut mask);
        let key_ints: Vec<i64> = key
            .secret_key()
            .as_ref()
            .iter()
            .map(|&b| b as i64)
            .collect();
        let mut fast = vec![0u64; n];
        key.mask_times_key(&mask, &mut fast);
        assert_eq!(fast, negacyclic_mul(&mask, &key_ints).unwrap());

        // A real query: tfhe's own decryption gives m·Δ plus noise inside TUniform(17).
        let layer = IntegerLinear {
            weights: ndarray::Array2::from_elem((4, 3), 1),
            bias: ndarray::Array1::zeros(3),
            input_min: -128,
            input_max: 127,
        };
        let layout = Layout::densest(2, 4, params.polynomial_size).unwrap();
        let server = ServerModel::new(&layer, layout, params).unwrap();
        let spec = server.spec();
        let q_x = ndarray::array![[1, -128, 127, 0], [-5, 3, 42, 7]];
        let query = key.encrypt_query(spec, q_x.view()).unwrap();
        let glwe = crate::fhe::query_ciphertext(&params, &query);
        let mut plain = PlaintextList::new(0u64, PlaintextCount(n));
        decrypt_glwe_ciphertext(key.secret_key(), &glwe, &mut plain);
        let message = layout.encode_query(q_x.view()).unwrap();
        let delta_log = spec.delta_log2();
        let mut nonzero_noise = 0;
        for (&phase, &m) in plain.as_ref().iter().zip(&message) {
            let e = phase.wrapping_sub((m as u64) << delta_log) as i64;
            assert!(
                e.unsigned_abs() <= 1 << 17,
                "noise {e} outside TUniform(17)"
            );
            nonzero_noise += usize::from(e != 0);
        }
        assert!(nonzero_noise > n / 2, "the body carries fresh noise");
    }

    #[test]
    fn fourier_key_matches_the_binary_key() {
        let key = ClientKey::generate(&GlweParams::TUNIFORM_2M128_N2048).unwrap();
        let s = key.secret_key().as_ref();
        assert!(s.iter().all(|&b| b <= 1));
        let ones = s.iter().filter(|&&b| b == 1).count();
        // Binomial(2048, 1/2): ±10σ.
        assert!((1024 - 230..=1024 + 230).contains(&ones), "{ones}");
    }
}
