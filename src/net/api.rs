//! The JSON side of the service: what `GET /models` publishes about each served model, and
//! its checked conversion back into the types the client encrypts and decodes with.
//!
//! Everything here is public by design (docs/ARCHITECTURE.md §4: the model is not secret):
//! the scoring spec, the input quantizer and dequantization constants, the feature parameters
//! and the catalog's titles. A client never trusts it blindly: [`ModelInfo::client_model`] rebuilds
//! the [`ScoringSpec`] from a known parameter set and validates every field, so a malformed
//! description is an error, not a panic or a silently wrong encryption.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tfhe::core_crypto::prelude::PolynomialSize;

use crate::dataset::Catalog;
use crate::error::NetError;
use crate::features::FeatureParams;
use crate::fhe::{wire, Circuit, GlweParams, Layout, ModelId, ScoringSpec};
use crate::model::io::NBits;
use crate::model::{QuantizedModel, Threshold, UniformQuantizer};

/// A GLWE parameter set as published: enough to look the set up by id and check it is the
/// one the client knows (a client only encrypts under sets compiled into it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsDto {
    pub id: u16,
    pub name: String,
    pub glwe_dimension: usize,
    pub polynomial_size: usize,
    /// Fresh noise TUniform(−2^b, 2^b): b.
    pub noise_bound_log2: u32,
    pub reply_modulus_log: usize,
}

/// The packed layout as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutDto {
    /// J.
    pub chunks: usize,
    /// d.
    pub features: usize,
    /// K.
    pub classes_per_product: usize,
    /// N.
    pub polynomial_size: usize,
}

/// [`ScoringSpec`] as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecDto {
    pub params: ParamsDto,
    /// `chunks` (J × C scores per query) or `summed` (C scores of the summed chunks).
    #[serde(default)]
    pub circuit: Circuit,
    /// J, the most chunks one query may hold (absent: the layout's rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_chunks: Option<usize>,
    pub layout: LayoutDto,
    pub classes: usize,
    pub message_bits: u32,
    pub input_min: i64,
    pub input_max: i64,
    /// SHA-256 of the integer layer, 64 hex digits.
    pub model_id: String,
    /// Served with the model-privacy option: register a public key, then send its id with
    /// every query (absent: no).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// ρ: scores come back as multiples of 2^ρ (absent: 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rounding_bits: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl From<&ScoringSpec> for SpecDto {
    fn from(spec: &ScoringSpec) -> Self {
        let p = &spec.params;
        Self {
            params: ParamsDto {
                id: p.id,
                name: p.name.to_string(),
                glwe_dimension: p.glwe_dimension.0,
                polynomial_size: p.polynomial_size.0,
                noise_bound_log2: p.noise.bound_log2(),
                reply_modulus_log: p.reply_modulus_log.0,
            },
            circuit: spec.circuit,
            query_chunks: Some(spec.query_chunks),
            layout: LayoutDto {
                chunks: spec.layout.chunks(),
                features: spec.layout.features(),
                classes_per_product: spec.layout.classes_per_product(),
                polynomial_size: spec.layout.polynomial_size().0,
            },
            classes: spec.classes,
            message_bits: spec.message_bits,
            input_min: spec.input_min,
            input_max: spec.input_max,
            model_id: spec.model_id.to_string(),
            private: spec.private,
            rounding_bits: spec.rounding_bits,
        }
    }
}

impl SpecDto {
    /// The spec this describes, with the parameter set taken from the client's own list
    /// (by id, and checked field by field) and everything validated.
    pub fn to_spec(&self) -> Result<ScoringSpec, String> {
        let p = &self.params;
        let known = GlweParams::ALL
            .iter()
            .find(|k| k.id == p.id)
            .ok_or_else(|| format!("unknown parameter set id {} ({:?})", p.id, p.name))?;
        if known.name != p.name
            || known.glwe_dimension.0 != p.glwe_dimension
            || known.polynomial_size.0 != p.polynomial_size
            || known.noise.bound_log2() != p.noise_bound_log2
        {
            return Err(format!(
                "parameter set {} is published as {p:?}, which is not this client's {}",
                p.id, known.name
            ));
        }
        let params = known
            .with_reply_modulus_log(p.reply_modulus_log)
            .map_err(|e| e.to_string())?;
        let l = &self.layout;
        let layout = Layout::new(
            l.chunks,
            l.features,
            l.classes_per_product,
            PolynomialSize(l.polynomial_size),
        )
        .map_err(|e| e.to_string())?;
        let spec = ScoringSpec {
            params,
            layout,
            circuit: self.circuit,
            query_chunks: self.query_chunks.unwrap_or(l.chunks),
            classes: self.classes,
            message_bits: self.message_bits,
            input_min: self.input_min,
            input_max: self.input_max,
            model_id: parse_model_id(&self.model_id)?,
            private: self.private,
            rounding_bits: self.rounding_bits,
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// 64 hex digits → [`ModelId`].
pub fn parse_model_id(hex: &str) -> Result<ModelId, String> {
    let bad = || format!("model id {hex:?} is not 64 hex digits");
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut id = [0u8; 32];
    for (byte, pair) in id.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(ModelId(id))
}

/// The client's half of the quantized model: raw features → integers before encryption,
/// integer scores → float scores after decryption. Same formulas as [`QuantizedModel`]
/// (`quantize_input`, `dequantize`), which a unit test checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicQuantizer {
    /// One input quantizer per feature column.
    pub input: Vec<UniformQuantizer>,
    /// y = output_scale·(q − output_zero_points[c]).
    pub output_scale: f64,
    pub output_zero_points: Vec<i64>,
    /// The integer bias q_b per class: the summed circuit's layer has none, and the client,
    /// who knows how many chunks it summed, adds n·q_b when it dequantizes.
    #[serde(default)]
    pub bias: Vec<i64>,
}

impl PublicQuantizer {
    pub fn from_model(model: &QuantizedModel) -> Self {
        Self {
            input: model.input_quantizers().to_vec(),
            output_scale: model.output_scale(),
            output_zero_points: model.output_zero_points().to_vec(),
            bias: model.bias().to_vec(),
        }
    }

    /// Checks the quantizer against the spec it will be used with.
    pub fn validate(&self, spec: &ScoringSpec) -> Result<(), String> {
        let d = spec.layout.features();
        if self.input.len() != d {
            return Err(format!(
                "{} input quantizers for {d} features",
                self.input.len()
            ));
        }
        if self.output_zero_points.len() != spec.classes {
            return Err(format!(
                "{} output zero points for {} classes",
                self.output_zero_points.len(),
                spec.classes
            ));
        }
        if spec.circuit == Circuit::Summed && self.bias.len() != spec.classes {
            return Err(format!(
                "{} bias values for {} classes (the summed circuit needs one per class)",
                self.bias.len(),
                spec.classes
            ));
        }
        if !(self.output_scale.is_finite() && self.output_scale > 0.0) {
            return Err(format!(
                "output scale {} is not positive",
                self.output_scale
            ));
        }
        for (i, q) in self.input.iter().enumerate() {
            let (lo, hi) = q.range();
            if !(q.scale.is_finite() && q.scale > 0.0) || lo < spec.input_min || hi > spec.input_max
            {
                return Err(format!(
                    "input quantizer {i} (scale {}, range {lo}..={hi}) does not fit the \
                     model's input range {}..={}",
                    q.scale, spec.input_min, spec.input_max
                ));
            }
        }
        Ok(())
    }

    /// Raw features (n × d) → quantized integers, clipped to each column's range.
    pub fn quantize(&self, x: ArrayView2<f32>) -> Array2<i64> {
        Array2::from_shape_fn(x.dim(), |(r, c)| self.input[c].quant(f64::from(x[[r, c]])))
    }

    /// The summed circuit's C integer scores over `rows` chunks → the sum of the chunks'
    /// float scores ([`crate::model::quant::dequantize_sum`], as the model does).
    pub fn dequantize_summed(
        &self,
        q: ndarray::ArrayView1<i64>,
        rows: usize,
    ) -> ndarray::Array1<f64> {
        crate::model::quant::dequantize_sum(
            self.output_scale,
            &self.output_zero_points,
            &self.bias,
            q,
            rows,
        )
    }

    /// Integer scores (n × C) → float scores.
    pub fn dequantize(&self, q: ArrayView2<i64>) -> Array2<f64> {
        Array2::from_shape_fn(q.dim(), |(r, c)| {
            self.output_scale * (q[[r, c]] as f64 - self.output_zero_points[c] as f64)
        })
    }
}

/// One catalog entry as published: what the client prints (no file paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SongDto {
    pub index: usize,
    pub track_id: String,
    pub title: Option<String>,
    pub artist: Option<String>,
}

impl SongDto {
    /// "Title — Artist", falling back to the title or the track id.
    pub fn display_name(&self) -> String {
        match (&self.title, &self.artist) {
            (Some(t), Some(a)) => format!("{t} — {a}"),
            (Some(t), None) => t.clone(),
            _ => self.track_id.clone(),
        }
    }
}

/// Message sizes a client can expect (and the server enforces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireDto {
    pub version: u16,
    pub query_bytes: usize,
    pub reply_bytes: usize,
}

/// Everything `GET /models` says about one served model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// The id used in URLs (the model file's stem).
    pub id: String,
    pub n_bits: NBits,
    pub spec: SpecDto,
    pub wire: WireDto,
    /// Predicted failure probability per decrypted score (log2).
    pub log2_failure: f64,
    pub quantizer: PublicQuantizer,
    pub features: FeatureParams,
    pub catalog: Vec<SongDto>,
    /// The "not in the catalogue" threshold calibrated for this model, if its model file has
    /// one (written by `reproduce` with `[evaluation.open_set]`); `identify` applies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_set: Option<Threshold>,
}

impl ModelInfo {
    /// The description of `model` served under `id` with `spec`.
    pub fn new(
        id: &str,
        model: &QuantizedModel,
        features: &FeatureParams,
        catalog: &Catalog,
        spec: &ScoringSpec,
        log2_failure: f64,
        open_set: Option<Threshold>,
    ) -> Self {
        Self {
            id: id.to_string(),
            n_bits: NBits {
                input: model.options().n_bits_input,
                weight: model.options().n_bits_weight,
            },
            spec: SpecDto::from(spec),
            wire: WireDto {
                version: wire::WIRE_VERSION,
                query_bytes: wire::query_size(spec),
                reply_bytes: wire::scores_size(spec),
            },
            log2_failure,
            quantizer: PublicQuantizer::from_model(model),
            features: features.clone(),
            catalog: catalog
                .songs
                .iter()
                .map(|s| SongDto {
                    index: s.index,
                    track_id: s.track_id.clone(),
                    title: s.title.clone(),
                    artist: s.artist.clone(),
                })
                .collect(),
            open_set,
        }
    }

    /// The checked client view of this description.
    pub fn client_model(&self) -> Result<ClientModel, NetError> {
        let invalid = |reason: String| NetError::InvalidModelInfo {
            model: self.id.clone(),
            reason,
        };
        let spec = self.spec.to_spec().map_err(invalid)?;
        self.quantizer.validate(&spec).map_err(invalid)?;
        if self.features.dim() != spec.layout.features() {
            return Err(invalid(format!(
                "feature parameters give {} features, the layout takes {}",
                self.features.dim(),
                spec.layout.features()
            )));
        }
        if self.catalog.len() != spec.classes
            || self.catalog.iter().enumerate().any(|(i, s)| s.index != i)
        {
            return Err(invalid(format!(
                "catalog of {} songs (indices 0..) for {} classes",
                self.catalog.len(),
                spec.classes
            )));
        }
        if self.wire.version != wire::WIRE_VERSION {
            return Err(invalid(format!(
                "wire version {} (this client speaks {})",
                self.wire.version,
                wire::WIRE_VERSION
            )));
        }
        Ok(ClientModel {
            id: self.id.clone(),
            spec,
            quantizer: self.quantizer.clone(),
            features: self.features.clone(),
            catalog: self.catalog.clone(),
            open_set: self.open_set,
        })
    }
}

/// A served model as the client uses it: validated spec, quantizer, features, catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientModel {
    pub id: String,
    pub spec: ScoringSpec,
    pub quantizer: PublicQuantizer,
    pub features: FeatureParams,
    pub catalog: Vec<SongDto>,
    pub open_set: Option<Threshold>,
}

/// `GET /models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub models: Vec<ModelInfo>,
}

/// `GET /health`. New fields are optional, so clients of either age read either answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub models: usize,
    pub jobs_running: usize,
    pub max_jobs: usize,
    /// The public-key registry, when a model is served with model privacy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_keys: Option<KeysHealth>,
}

/// The public-key registry's state (model privacy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeysHealth {
    pub registered: usize,
    pub max_keys: usize,
    /// Queries each key may score (absent: no budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queries_per_key: Option<u64>,
}

/// Header naming the registered public key a query to a private model is answered with
/// (`X-Fhe-Key-Id`; lower case, as `http` needs static header names).
pub const KEY_ID_HEADER: &str = "x-fhe-key-id";
/// Header of a score reply: the queries its key has left, when a budget is set
/// (`X-Fhe-Queries-Left`).
pub const QUERIES_LEFT_HEADER: &str = "x-fhe-queries-left";

/// The answer to `POST /keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRegistration {
    /// [`public_key_id`] of the registered bytes.
    pub key_id: String,
    /// Queries the key may score in all (null: no budget).
    #[serde(default)]
    pub max_queries: Option<u64>,
}

/// A public key's id: SHA-256 of its wire bytes, 64 hex digits. The server names keys by it
/// and the client can compute it too, so registering the same bytes twice is one key.
pub fn public_key_id(bytes: &[u8]) -> String {
    // Written as model ids are: the digest's hex.
    ModelId(Sha256::digest(bytes).into()).to_string()
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhe::IntegerLinear;
    use crate::model::{FloatModel, QuantOptions};
    use ndarray::array;

    fn spec() -> ScoringSpec {
        let layer = IntegerLinear {
            weights: array![[1, -2, 3], [4, 5, -6]],
            bias: array![7, -8, 9],
            input_min: -128,
            input_max: 127,
        };
        let params = GlweParams::TUNIFORM_2M128_N2048;
        let layout = Layout::densest(4, 2, params.polynomial_size).unwrap();
        crate::fhe::ServerModel::new(&layer, layout, params)
            .unwrap()
            .spec()
            .clone()
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = spec();
        let json = serde_json::to_string(&SpecDto::from(&spec)).unwrap();
        let back: SpecDto = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_spec().unwrap(), spec);
    }

    #[test]
    fn tampered_specs_are_rejected() {
        let good = SpecDto::from(&spec());
        type Tamper = fn(&mut SpecDto);
        let cases: Vec<(Tamper, &str)> = vec![
            (|d| d.params.id = 99, "unknown parameter set"),
            (|d| d.params.noise_bound_log2 = 3, "not this client's"),
            (|d| d.layout.polynomial_size = 1024, "layout"),
            (|d| d.model_id = "zz".repeat(32), "hex"),
            (|d| d.message_bits = 70, "message bits"),
            (|d| d.params.reply_modulus_log = 4, "reply_modulus_log"),
        ];
        for (tamper, needle) in cases {
            let mut d = good.clone();
            tamper(&mut d);
            let err = d.to_spec().unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn public_quantizer_matches_the_model() {
        let float = FloatModel::new(
            array![[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]],
            array![0.1, 0.2, -0.3],
        )
        .unwrap();
        let x = array![[-100.0f32, 2.0], [50.0, -3.0], [0.0, 1.0]];
        for opts in [
            QuantOptions::concrete(8),
            QuantOptions {
                standardize_inputs: true,
                ..QuantOptions::concrete(5)
            },
        ] {
            let model = QuantizedModel::from_float(&float, x.view(), &opts).unwrap();
            let public = PublicQuantizer::from_model(&model);
            let probe = array![[-120.0f32, 7.0], [3.5, -0.25], [1e6, -1e6]];
            let q = public.quantize(probe.view());
            assert_eq!(q, model.quantize_input(probe.view()).unwrap());
            let scores = model.integer_scores(q.view()).unwrap();
            assert_eq!(
                public.dequantize(scores.view()),
                model.dequantize(scores.view()).unwrap()
            );
        }
    }

    #[test]
    fn health_and_registration_json_stay_compatible() {
        // A server without model privacy answers what older clients read, and its answer
        // reads back; an older server's answer reads too.
        let old = r#"{"status":"ok","models":1,"jobs_running":0,"max_jobs":2}"#;
        let health: Health = serde_json::from_str(old).unwrap();
        assert_eq!(health.public_keys, None);
        assert_eq!(serde_json::to_string(&health).unwrap(), old);
        let registration: KeyRegistration =
            serde_json::from_str(r#"{"key_id":"ab","max_queries":null}"#).unwrap();
        assert_eq!(registration.max_queries, None);
        assert!(serde_json::to_string(&registration)
            .unwrap()
            .contains(r#""max_queries":null"#));
        assert_eq!(public_key_id(b"").len(), 64);
        assert_eq!(
            public_key_id(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn model_ids_parse_and_reject_garbage() {
        let id = spec().model_id;
        assert_eq!(parse_model_id(&id.to_string()).unwrap(), id);
        assert!(parse_model_id("abc").is_err());
        assert!(parse_model_id(&"é".repeat(32)).is_err());
    }
}
