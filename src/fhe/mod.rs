//! Packed-GLWE scoring of a quantized linear layer (docs/ARCHITECTURE.md §4): the client
//! encrypts its J × d integer query into one seeded GLWE ciphertext, the server multiplies it
//! by clear weight polynomials (no bootstrapping, no evaluation key) and replies with the score
//! coefficients only, modulus-switched; the client decrypts and gets q_X·W + b exactly.
//!
//! Only `tfhe::core_crypto` is used: a binary GLWE secret key, tfhe's seeded mask expansion
//! and noise sampling (a·s computed exactly by FFT, `client`),
//! its f64 negacyclic FFT and its modulus-switch rounding.
//!
//! Threat model: the server learns nothing about the query. The model is *not* secret: the
//! client learns all J × C scores, and a reply mask a·W_g reveals W_g to a client who knows
//! its own a (as in Concrete ML). The messages carry no integrity protection (a transport
//! such as TLS does that); headers are checked so a reply is never decoded against the wrong
//! model or parameters.
//!
//! # Example: one encrypted query, end to end
//!
//! A layer of d = 3 features and C = 4 classes, a query of J = 2 chunks, the real 128-bit
//! parameter set (k = 1, N = 2048, TUniform(17)): encrypt → score → decrypt gives exactly the
//! integer circuit q_X·W + b.
//!
//! ```rust
//! use fhe_shazam::fhe::{simulate, ClientKey, GlweParams, IntegerLinear, Layout, ServerModel};
//! use ndarray::array;
//!
//! let layer = IntegerLinear {
//!     weights: array![[3, -1, 0, 7], [-2, 5, 1, -4], [6, 0, -3, 2]], // d × C
//!     bias: array![10, -20, 0, 5],
//!     input_min: -128, // 8-bit quantized inputs
//!     input_max: 127,
//! };
//! let params = GlweParams::TUNIFORM_2M128_N2048;
//! // K = ⌊N / (J·d)⌋ = ⌊2048 / 6⌋ = 341 classes fit one product, so all 4 take one.
//! let layout = Layout::densest(2, 3, params.polynomial_size)?;
//! assert_eq!(layout.classes_per_product(), 341);
//! assert_eq!(layout.product_count(layer.classes()), 1);
//!
//! // Server: the clear model (refused if over the 2^-40 noise budget), no key of any kind.
//! let server = ServerModel::new(&layer, layout, params)?;
//! // Client: a fresh binary GLWE secret key; it never leaves the client.
//! let client = ClientKey::generate(&params)?;
//!
//! let q_x = array![[1, -128, 127], [-5, 0, 42]]; // J × d
//! let query = client.encrypt_query(server.spec(), q_x.view())?;
//! let reply = server.score(&query)?;
//! // Per product the reply holds the N mask coefficients and only the K·J score
//! // coefficients of the body: the cross terms never leave the server.
//! assert_eq!(reply.mask(0).len(), 2048);
//! assert_eq!(reply.body(0).len(), layout.scores_per_product());
//!
//! let scores = client.decrypt_scores(server.spec(), &reply)?; // J × C
//! assert_eq!(scores, simulate::clear_scores(&layer, q_x.view())?);
//! assert_eq!(scores[[0, 0]], 3 * 1 + (-2) * (-128) + 6 * 127 + 10);
//! # Ok::<(), fhe_shazam::error::FheError>(())
//! ```

pub mod circuit;
pub mod client;
mod fourier;
pub mod packing;
pub mod params;
pub mod plan;
pub mod privacy;
pub mod server;
pub mod simulate;
pub mod wire;

use std::fmt;
use std::time::{Duration, Instant};

use ndarray::{Array1, Array2, ArrayView2};
use sha2::{Digest, Sha256};

pub use circuit::Circuit;
pub use client::ClientKey;
pub use packing::Layout;
pub use params::{GlweParams, NoiseBudget, MAX_LOG2_FAILURE};
pub use plan::{budget_lines, BudgetLine, FhePlan};
pub use privacy::{ModelPrivacy, PrivacyPlan, PublicKey};
pub use server::ServerModel;

use crate::error::FheError;

/// A plain integer linear layer: scores = q_X · weights + bias, exactly.
///
/// For a quantized model, `weights` are the effective integer weights (q_W − Z_w), `bias`
/// the integer bias q_b, and `input_min..=input_max` the range of quantized inputs (e.g.
/// −128..=127 for 8 bits); the range bounds the scores and so sets the message bits.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegerLinear {
    /// d × C.
    pub weights: Array2<i64>,
    /// C.
    pub bias: Array1<i64>,
    pub input_min: i64,
    pub input_max: i64,
}

/// Largest score bound accepted: keeps every score and every intermediate sum in i64 and
/// leaves room for the sign and padding bits on the 64-bit torus.
const MAX_SCORE_BOUND: u64 = 1 << 61;

impl IntegerLinear {
    /// d, the input features.
    pub fn features(&self) -> usize {
        self.weights.nrows()
    }
    /// C, the classes.
    pub fn classes(&self) -> usize {
        self.weights.ncols()
    }

    /// Checks shapes and ranges (and that the score bound is representable).
    pub fn validate(&self) -> Result<(), FheError> {
        let (d, c) = self.weights.dim();
        if d == 0 || c == 0 {
            return Err(FheError::InvalidLayer(format!(
                "weights are {d} × {c}: empty"
            )));
        }
        if self.bias.len() != c {
            return Err(FheError::Shape {
                what: "bias",
                expected: (1, c),
                found: (1, self.bias.len()),
            });
        }
        if self.input_min > self.input_max {
            return Err(FheError::InvalidLayer(format!(
                "input range {}..={} is empty",
                self.input_min, self.input_max
            )));
        }
        self.score_bound().map(|_| ())
    }

    /// B = max_c Σ_i |w_ic|·max(|input_min|, |input_max|) + |b_c|: no score exceeds it.
    pub fn score_bound(&self) -> Result<u64, FheError> {
        let x = u128::from(
            self.input_min
                .unsigned_abs()
                .max(self.input_max.unsigned_abs()),
        );
        let mut bound = 0u128;
        for (col, b) in self.weights.columns().into_iter().zip(self.bias.iter()) {
            let sum: u128 = col
                .iter()
                .map(|w| u128::from(w.unsigned_abs()) * x)
                .sum::<u128>()
                + u128::from(b.unsigned_abs());
            bound = bound.max(sum);
        }
        if bound > u128::from(MAX_SCORE_BOUND) {
            return Err(FheError::InvalidLayer(format!(
                "scores can reach {bound}, more than the supported 2^61"
            )));
        }
        Ok(bound as u64)
    }

    /// SHA-256 of a canonical encoding of the layer: the model id in every ciphertext header,
    /// so a reply can never be decoded against the wrong model.
    pub fn model_id(&self) -> ModelId {
        let mut h = Sha256::new();
        h.update(b"fhe_shazam.IntegerLinear.v1");
        for v in [self.features() as u64, self.classes() as u64] {
            h.update(v.to_le_bytes());
        }
        for v in [self.input_min, self.input_max] {
            h.update(v.to_le_bytes());
        }
        for row in self.weights.rows() {
            for v in row {
                h.update(v.to_le_bytes());
            }
        }
        for v in &self.bias {
            h.update(v.to_le_bytes());
        }
        ModelId(h.finalize().into())
    }
}

/// The mask polynomial tfhe's AES-CTR generator expands from a query's 128-bit seed
/// (`decompress_seeded_glwe_ciphertext`, k = 1): what the client encrypts with and the server
/// multiplies, so both sides use this one expansion.
pub(crate) fn expand_mask(params: &GlweParams, seed: u128) -> Vec<u64> {
    use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
    use tfhe::core_crypto::prelude::{
        decompress_seeded_glwe_ciphertext, DefaultRandomGenerator, GlweCiphertext,
        SeededGlweCiphertext,
    };
    let size = params.glwe_dimension.to_glwe_size();
    let seeded = SeededGlweCiphertext::new(
        0u64,
        size,
        params.polynomial_size,
        CompressionSeed::from(Seed(seed)),
        params.ciphertext_modulus,
    );
    let mut glwe = GlweCiphertext::new(
        0u64,
        size,
        params.polynomial_size,
        params.ciphertext_modulus,
    );
    decompress_seeded_glwe_ciphertext::<_, _, _, DefaultRandomGenerator>(&mut glwe, &seeded);
    let mut mask = glwe.into_container();
    mask.truncate(params.polynomial_size.0);
    mask
}

/// The whole GLWE ciphertext of a query (mask expanded from its seed, then its body), for
/// audits and tests that decrypt it with tfhe's own decryption.
#[cfg(test)]
pub(crate) fn query_ciphertext(
    params: &GlweParams,
    query: &EncryptedQuery,
) -> tfhe::core_crypto::prelude::GlweCiphertextOwned<u64> {
    let mut container = expand_mask(params, query.seed);
    container.extend_from_slice(&query.body);
    tfhe::core_crypto::prelude::GlweCiphertext::from_container(
        container,
        params.polynomial_size,
        params.ciphertext_modulus,
    )
}

/// Refuses query values outside the model's input range: the score bound, and so the
/// message bits, assume it.
pub(crate) fn check_input_range(q_x: ArrayView2<i64>, min: i64, max: i64) -> Result<(), FheError> {
    match q_x.indexed_iter().find(|(_, &v)| v < min || v > max) {
        Some(((chunk, feature), &value)) => Err(FheError::InputOutOfRange {
            chunk,
            feature,
            value,
            min,
            max,
        }),
        None => Ok(()),
    }
}

/// Identifies a model (SHA-256 of its integer layer).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelId(pub [u8; 32]);

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelId({self})")
    }
}

/// What a client needs to know about a served model to query it (all public).
#[derive(Clone, Debug, PartialEq)]
pub struct ScoringSpec {
    pub params: GlweParams,
    pub layout: Layout,
    /// Which scores a query returns: J × C (`chunks`) or C of the summed chunks (`summed`).
    pub circuit: Circuit,
    /// J, the most chunks one query may hold: the layout's rows for `chunks`; for `summed`
    /// the number of chunk vectors a client may add (the input range is J times a chunk's).
    pub query_chunks: usize,
    /// C.
    pub classes: usize,
    /// p: scores are encoded as m·Δ with Δ = 2^(64−p).
    pub message_bits: u32,
    pub input_min: i64,
    pub input_max: i64,
    pub model_id: ModelId,
    /// Served with the model-privacy option: every query needs the client's public key.
    pub private: bool,
    /// ρ: scores come back as multiples of 2^ρ (0 without flooding).
    pub rounding_bits: u32,
}

impl ScoringSpec {
    /// Checks what the client relies on; a server-built spec always passes.
    pub fn validate(&self) -> Result<(), FheError> {
        self.params.validate()?;
        if self.layout.polynomial_size() != self.params.polynomial_size {
            return Err(FheError::InvalidLayout(format!(
                "layout N = {} but parameter set {} has N = {}",
                self.layout.polynomial_size().0,
                self.params.name,
                self.params.polynomial_size.0
            )));
        }
        let w = self.params.reply_modulus_log.0 as u32;
        if !(2..=62).contains(&self.message_bits) || self.message_bits >= w {
            return Err(FheError::InvalidParams {
                param: "message_bits",
                reason: format!(
                    "{} message bits: need 2..=62 and fewer than the {w} reply bits",
                    self.message_bits
                ),
            });
        }
        let rows = self.circuit.rows(self.query_chunks);
        if self.query_chunks == 0 || self.layout.chunks() != rows {
            return Err(FheError::InvalidLayout(format!(
                "the {} circuit for queries of {} chunks encrypts {rows} rows, the layout has {}",
                self.circuit,
                self.query_chunks,
                self.layout.chunks()
            )));
        }
        if self.rounding_bits + 2 > self.message_bits || (self.rounding_bits > 0 && !self.private) {
            return Err(FheError::InvalidParams {
                param: "rounding_bits",
                reason: format!(
                    "{} rounding bits of {} message bits{}",
                    self.rounding_bits,
                    self.message_bits,
                    if self.private {
                        ""
                    } else {
                        " without model privacy"
                    }
                ),
            });
        }
        if self.classes == 0 || self.input_min > self.input_max {
            return Err(FheError::InvalidParams {
                param: "classes",
                reason: format!(
                    "{} classes, input range {}..={}",
                    self.classes, self.input_min, self.input_max
                ),
            });
        }
        Ok(())
    }

    /// log2 Δ.
    pub fn delta_log2(&self) -> u32 {
        64 - self.message_bits
    }
    /// ⌈C/K⌉.
    pub fn product_count(&self) -> usize {
        self.layout.product_count(self.classes)
    }
    pub(crate) fn header(&self) -> CiphertextHeader {
        CiphertextHeader {
            params_id: self.params.id,
            circuit: self.circuit,
            layout: self.layout,
            classes: self.classes,
            message_bits: self.message_bits,
            model_id: self.model_id,
            private: self.private,
            rounding_bits: self.rounding_bits,
        }
    }
}

/// The public context every ciphertext carries, checked against the receiver's spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CiphertextHeader {
    pub params_id: u16,
    pub circuit: Circuit,
    pub layout: Layout,
    pub classes: usize,
    pub message_bits: u32,
    pub model_id: ModelId,
    pub private: bool,
    pub rounding_bits: u32,
}

impl CiphertextHeader {
    /// Errors with the first field that differs from `spec`.
    pub fn check(&self, spec: &ScoringSpec, what: &'static str) -> Result<(), FheError> {
        let expected = spec.header();
        let mismatch = |field: &'static str, e: String, f: String| {
            Err(FheError::WireMismatch {
                what,
                field,
                expected: e,
                found: f,
            })
        };
        if self.params_id != expected.params_id {
            return mismatch(
                "parameter set id",
                expected.params_id.to_string(),
                self.params_id.to_string(),
            );
        }
        if self.circuit != expected.circuit {
            return mismatch(
                "circuit",
                expected.circuit.to_string(),
                self.circuit.to_string(),
            );
        }
        if self.layout != expected.layout {
            return mismatch(
                "layout",
                format!("{:?}", expected.layout),
                format!("{:?}", self.layout),
            );
        }
        if self.classes != expected.classes {
            return mismatch(
                "class count",
                expected.classes.to_string(),
                self.classes.to_string(),
            );
        }
        if self.message_bits != expected.message_bits {
            return mismatch(
                "message bits",
                expected.message_bits.to_string(),
                self.message_bits.to_string(),
            );
        }
        if (self.private, self.rounding_bits) != (expected.private, expected.rounding_bits) {
            let show = |h: &CiphertextHeader| match h.private {
                true => format!("model privacy, {} rounding bits", h.rounding_bits),
                false => "no model privacy".to_string(),
            };
            return mismatch("model privacy", show(&expected), show(self));
        }
        if self.model_id != expected.model_id {
            return mismatch(
                "model id",
                expected.model_id.to_string(),
                self.model_id.to_string(),
            );
        }
        Ok(())
    }
}

/// A query encrypted as one seeded GLWE ciphertext: the body polynomial and the 128-bit seed
/// that regenerates its mask (≈ 16 KiB instead of 32 KiB).
#[derive(Clone, Debug, PartialEq)]
pub struct EncryptedQuery {
    pub header: CiphertextHeader,
    /// Seed of tfhe's AES-CTR mask generator (`CompressionSeed`).
    pub seed: u128,
    /// N body coefficients.
    pub body: Vec<u64>,
}

/// The server's reply: per product, the full mask polynomial and only the K·J score
/// coefficients of the body, all modulus-switched to `reply_modulus_log` bits.
#[derive(Clone, Debug, PartialEq)]
pub struct EncryptedScores {
    pub header: CiphertextHeader,
    pub reply_modulus_log: u32,
    /// Per product: N mask coefficients then K·J body coefficients, each < 2^reply_modulus_log.
    pub values: Vec<u64>,
}

impl EncryptedScores {
    /// Coefficients per product: N + K·J.
    pub fn values_per_product(&self) -> usize {
        self.header.layout.polynomial_size().0 + self.header.layout.scores_per_product()
    }
    pub fn product_count(&self) -> usize {
        self.values.len() / self.values_per_product()
    }
    /// Mask polynomial of product `g` (panics if `g ≥ product_count()`, like slice indexing).
    pub fn mask(&self, g: usize) -> &[u64] {
        let per = self.values_per_product();
        &self.values[g * per..g * per + self.header.layout.polynomial_size().0]
    }
    /// The body coefficients of product `g` that were sent (the K·J scores only); panics if
    /// `g ≥ product_count()`.
    pub fn body(&self, g: usize) -> &[u64] {
        let per = self.values_per_product();
        &self.values[g * per + self.header.layout.polynomial_size().0..(g + 1) * per]
    }
}

/// A client key and a server model for one layer, for running real encrypted queries (with
/// the client's public key registered when the model is served with model privacy).
pub struct Session {
    pub client: ClientKey,
    pub server: ServerModel,
    layer: IntegerLinear,
    public_key: Option<privacy::PreparedPublicKey>,
    /// Bytes of the public key sent once (0 without model privacy).
    pub public_key_bytes: usize,
}

/// One encrypted query, end to end.
#[derive(Clone, Debug)]
pub struct QueryOutcome {
    /// J × C decrypted scores (checked equal to the exact integer circuit).
    pub scores: Array2<i64>,
    pub encrypt: Duration,
    pub server: Duration,
    pub decrypt: Duration,
    /// Serialization and parsing of both messages.
    pub wire: Duration,
    pub bytes_up: usize,
    pub bytes_down: usize,
}

/// All queries of an [`execute`] run.
#[derive(Clone, Debug)]
pub struct ExecuteReport {
    pub keygen: Duration,
    /// Weight polynomials to the Fourier domain.
    pub server_setup: Duration,
    pub queries: Vec<QueryOutcome>,
}

impl Session {
    /// Prepares the server model (refusing layers over the noise budget) and generates a key.
    pub fn new(
        layer: &IntegerLinear,
        layout: Layout,
        params: GlweParams,
    ) -> Result<Self, FheError> {
        let server = ServerModel::new(layer, layout, params)?;
        Self::with_server(server, layer.clone())
    }

    /// Prepares the server for a plan (its circuit's layer) and generates a key; with model
    /// privacy, the client's public key goes through the wire to the server once.
    pub fn from_plan(plan: &FhePlan) -> Result<Self, FheError> {
        Self::with_server(ServerModel::from_plan(plan)?, plan.layer.clone())
    }

    fn with_server(server: ServerModel, layer: IntegerLinear) -> Result<Self, FheError> {
        let params = server.spec().params;
        let client = ClientKey::generate(&params)?;
        let (public_key, public_key_bytes) = match server.privacy() {
            Some(_) => {
                let bytes = wire::encode_public_key(&client.public_key());
                let key = wire::decode_public_key(&bytes, &params)?;
                (Some(server.prepare_public_key(&key)?), bytes.len())
            }
            None => (None, 0),
        };
        Ok(Self {
            client,
            server,
            layer,
            public_key,
            public_key_bytes,
        })
    }

    /// encrypt → serialize → score → serialize → decrypt, checked against the exact circuit
    /// (with model privacy: each score less than 2^ρ from it).
    pub fn run(&self, q_x: ArrayView2<i64>) -> Result<QueryOutcome, FheError> {
        let spec = self.server.spec();
        let t = Instant::now();
        let query = self.client.encrypt_query(spec, q_x)?;
        let encrypt = t.elapsed();

        let t = Instant::now();
        let up = wire::encode_query(&query);
        let received = wire::decode_query(&up, spec)?;
        let mut wire_time = t.elapsed();

        let t = Instant::now();
        let reply = match &self.public_key {
            Some(key) => self.server.score_private(&received, key)?,
            None => self.server.score(&received)?,
        };
        let server = t.elapsed();

        let t = Instant::now();
        let down = wire::encode_scores(&reply);
        let reply = wire::decode_scores(&down, spec)?;
        wire_time += t.elapsed();

        let t = Instant::now();
        let scores = self.client.decrypt_scores(spec, &reply)?;
        let decrypt = t.elapsed();

        let expected = simulate::clear_scores(&self.layer, q_x)?;
        simulate::compare_rounded(&expected, &scores, spec.rounding_bits)?;
        Ok(QueryOutcome {
            scores,
            encrypt,
            server,
            decrypt,
            wire: wire_time,
            bytes_up: up.len(),
            bytes_down: down.len(),
        })
    }
}

/// Keygen once, then every query through the real scheme, each checked against the exact
/// integer circuit ([`FheError::Mismatch`] on any difference).
pub fn execute(
    layer: &IntegerLinear,
    layout: Layout,
    params: GlweParams,
    queries: &[ArrayView2<i64>],
) -> Result<ExecuteReport, FheError> {
    let t = Instant::now();
    let server = ServerModel::new(layer, layout, params)?;
    let server_setup = t.elapsed();
    let t = Instant::now();
    let session = Session::with_server(server, layer.clone())?;
    let keygen = t.elapsed();
    let queries = queries
        .iter()
        .map(|q| session.run(*q))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ExecuteReport {
        keygen,
        server_setup,
        queries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn small() -> IntegerLinear {
        IntegerLinear {
            weights: array![[1, -2, 3], [4, 5, -6]],
            bias: array![7, -8, 9],
            input_min: -4,
            input_max: 3,
        }
    }

    #[test]
    fn score_bound_is_the_worst_class() {
        // class 2: (3 + 6)·4 + 9 = 45; class 1: (2 + 5)·4 + 8 = 36.
        assert_eq!(small().score_bound().unwrap(), 45);
    }

    #[test]
    fn invalid_layers_are_rejected() {
        let mut l = small();
        l.bias = array![1, 2];
        assert!(matches!(l.validate(), Err(FheError::Shape { .. })));
        let mut l = small();
        l.input_min = 5;
        assert!(l.validate().is_err());
        let mut l = small();
        l.weights[[0, 0]] = i64::MAX;
        assert!(l.validate().is_err());
    }

    #[test]
    fn model_id_depends_on_every_part() {
        let a = small();
        let mut b = small();
        b.bias[2] = 10;
        let mut c = small();
        c.input_max = 4;
        assert_ne!(a.model_id(), b.model_id());
        assert_ne!(a.model_id(), c.model_id());
        assert_eq!(a.model_id(), small().model_id());
        assert_eq!(a.model_id().to_string().len(), 64);
    }
}
