//! The identification client: recording → chunk features → quantized query → encrypted
//! query → (server) → decrypted scores → dequantized → majority vote → song.
//!
//! The server is reached through [`ScoreTransport`]: [`HttpClient`] over HTTP, or
//! [`LocalServer`] in the same process (the offline `--model-file` form and tests). Both
//! run exactly the same client code, so the offline path checks the networked one.
//!
//! A model served with model privacy needs the client's public key with every query: the
//! HTTP client builds one from the client key (a fresh encryption of zero), registers it
//! once (`POST /keys`) and names it in `X-Fhe-Key-Id`. One public key per client key and
//! [`HttpClient`], so per `identify` run, not one forever: a stable key id would let the
//! server link all of a user's queries across runs and addresses, and the server's per-key
//! budget cannot bind a person anyway (keys are free to register; `net::registry`).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ndarray::{s, Array2, ArrayView2};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::api::{
    public_key_id, ClientModel, ErrorBody, Health, KeyRegistration, ModelInfo, ModelList, SongDto,
    KEY_ID_HEADER, QUERIES_LEFT_HEADER,
};
use super::server::ServedModel;
use crate::audio::LoadOptions;
use crate::error::NetError;
use crate::eval::vote::Decision;
use crate::features::{chunk_features, Mfcc};
use crate::fhe::{wire, Circuit, ClientKey};
use crate::model::{Rule, Threshold};

/// A wire-encoded reply and, when the server keeps a query budget for the client's public
/// key (model privacy), the queries that key has left.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreReply {
    pub bytes: Vec<u8>,
    pub queries_left: Option<u64>,
}

/// Sends one wire-encoded encrypted query for `model`, encrypted under `key`, and returns
/// the wire-encoded reply. For a model served with model privacy the transport gets `key`'s
/// public key to the server too.
pub trait ScoreTransport {
    fn score(
        &self,
        model: &ClientModel,
        key: &ClientKey,
        query: &[u8],
    ) -> Result<ScoreReply, NetError>;
}

/// The server in this process (no HTTP): the same [`ServedModel::score_bytes`] the HTTP
/// handler runs (for a private model, with `key`'s public key prepared per query: there is
/// no registration to keep in one process).
pub struct LocalServer {
    pub served: ServedModel,
}

impl ScoreTransport for LocalServer {
    fn score(
        &self,
        model: &ClientModel,
        key: &ClientKey,
        query: &[u8],
    ) -> Result<ScoreReply, NetError> {
        if model.id != self.served.id() {
            return Err(NetError::UnknownModel {
                requested: model.id.clone(),
                available: self.served.id().to_string(),
            });
        }
        let public_key = match self.served.spec().private {
            true => Some(self.served.prepare_public_key(&key.public_key())?),
            false => None,
        };
        Ok(ScoreReply {
            bytes: self.served.score_bytes(query, public_key.as_ref())?,
            queries_left: None,
        })
    }
}

/// A blocking HTTP client of one server.
pub struct HttpClient {
    base: String,
    agent: ureq::Agent,
    /// The public keys registered with this server (model privacy), one per client key.
    registered: Mutex<Vec<Registered>>,
}

/// A public key this client registered, and the client key it belongs to.
struct Registered {
    /// SHA-256 of the client key's parameter set id and secret: tells client keys apart
    /// without keeping a copy of the secret.
    owner: [u8; 32],
    /// The wire-encoded public key, re-sent as is if the server forgets it (same id).
    bytes: Vec<u8>,
    registration: KeyRegistration,
}

fn key_owner(key: &ClientKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key.params().id.to_le_bytes());
    for v in key.secret_key().as_ref() {
        h.update(v.to_le_bytes());
    }
    h.finalize().into()
}

/// Largest JSON document accepted from a server (a C = 8000 catalog is a few MiB).
const MAX_JSON_BYTES: u64 = 64 << 20;

impl HttpClient {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8700`); `timeout`
    /// bounds every whole request.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, NetError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(NetError::InvalidConfig(format!(
                "server URL {base_url:?} must start with http:// (run the server behind a TLS \
                 proxy and this client on its side of it for other transports)"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(Self {
            base,
            agent,
            registered: Mutex::new(Vec::new()),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn transport(&self, url: &str, e: ureq::Error) -> NetError {
        NetError::Transport {
            url: url.to_string(),
            source: Box::new(e),
        }
    }

    /// Reads a response: the body (up to `limit` bytes) on 2xx, the server's `{error}` as
    /// [`NetError::Server`] otherwise.
    fn finish(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        limit: u64,
    ) -> Result<Vec<u8>, NetError> {
        let mut response = result.map_err(|e| self.transport(url, e))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| self.transport(url, e))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(500).collect());
        let retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(" (retry after {v} s)"))
            .unwrap_or_default();
        Err(NetError::Server {
            url: url.to_string(),
            status: status.as_u16(),
            message: message + &retry,
        })
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, NetError> {
        let url = format!("{}{path}", self.base);
        let body = self.finish(&url, self.agent.get(&url).call(), MAX_JSON_BYTES)?;
        serde_json::from_slice(&body).map_err(|e| NetError::Protocol {
            url,
            reason: format!("not the expected JSON: {e}"),
        })
    }

    pub fn health(&self) -> Result<Health, NetError> {
        self.get_json("/health")
    }

    pub fn models(&self) -> Result<Vec<ModelInfo>, NetError> {
        Ok(self.get_json::<ModelList>("/models")?.models)
    }

    /// The served model `id`, or the only one if `id` is None; validated for this client.
    pub fn model(&self, id: Option<&str>) -> Result<ClientModel, NetError> {
        let models = self.models()?;
        let available = || {
            models
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let info = match id {
            Some(id) => {
                models
                    .iter()
                    .find(|m| m.id == id)
                    .ok_or_else(|| NetError::UnknownModel {
                        requested: id.to_string(),
                        available: available(),
                    })?
            }
            None if models.len() == 1 => &models[0],
            None => {
                return Err(NetError::UnknownModel {
                    requested: "(none given)".into(),
                    available: format!("{}; choose one with --model", available()),
                })
            }
        };
        info.client_model()
    }

    /// `POST /models/{id}/score` with a raw body (tests use it to send malformed bodies).
    pub fn post_score(&self, model_id: &str, body: &[u8], limit: u64) -> Result<Vec<u8>, NetError> {
        Ok(self.post_score_with_key(model_id, body, None, limit)?.bytes)
    }

    /// `POST /models/{id}/score` with a raw body, naming the registered public key `key_id`
    /// in `X-Fhe-Key-Id` (models served with model privacy need it).
    pub fn post_score_with_key(
        &self,
        model_id: &str,
        body: &[u8],
        key_id: Option<&str>,
        limit: u64,
    ) -> Result<ScoreReply, NetError> {
        let url = format!("{}/models/{model_id}/score", self.base);
        let mut request = self
            .agent
            .post(&url)
            .header("content-type", "application/octet-stream");
        if let Some(id) = key_id {
            request = request.header(KEY_ID_HEADER, id);
        }
        let result = request.send(body);
        let queries_left = result.as_ref().ok().and_then(|r| {
            r.headers()
                .get(QUERIES_LEFT_HEADER)?
                .to_str()
                .ok()?
                .parse()
                .ok()
        });
        Ok(ScoreReply {
            bytes: self.finish(&url, result, limit)?,
            queries_left,
        })
    }

    /// `POST /keys` with a raw body (a wire-encoded public key); the answer's id is checked
    /// to be the key's [`public_key_id`].
    pub fn register_key(&self, public_key: &[u8]) -> Result<KeyRegistration, NetError> {
        let url = format!("{}/keys", self.base);
        let result = self
            .agent
            .post(&url)
            .header("content-type", "application/octet-stream")
            .send(public_key);
        let body = self.finish(&url, result, MAX_JSON_BYTES)?;
        let registration: KeyRegistration =
            serde_json::from_slice(&body).map_err(|e| NetError::Protocol {
                url: url.clone(),
                reason: format!("not the expected key registration JSON: {e}"),
            })?;
        let expected = public_key_id(public_key);
        if registration.key_id != expected {
            return Err(NetError::Protocol {
                url,
                reason: format!(
                    "registered the public key as {:?}, its id is {expected}",
                    registration.key_id
                ),
            });
        }
        Ok(registration)
    }

    /// The registration of `key`'s public key with this server: made on first use (a fresh
    /// public key), or again with the same bytes when `again` (the server forgot it).
    fn registration(&self, key: &ClientKey, again: bool) -> Result<KeyRegistration, NetError> {
        let owner = key_owner(key);
        // Held while registering, so threads sharing this client register one key.
        let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        let known = registered.iter().position(|r| r.owner == owner);
        if let (Some(i), false) = (known, again) {
            return Ok(registered[i].registration.clone());
        }
        let bytes = match known {
            Some(i) => registered[i].bytes.clone(),
            None => wire::encode_public_key(&key.public_key()),
        };
        let registration = self.register_key(&bytes)?;
        match known {
            Some(i) => registered[i].registration = registration.clone(),
            None => registered.push(Registered {
                owner,
                bytes,
                registration: registration.clone(),
            }),
        }
        Ok(registration)
    }

    /// Scores a query to a model served with model privacy under `key`'s registered public
    /// key: registered on first use, and once more if the server answers 404 (it restarted
    /// and forgot it; a model that is really gone gets 404 again). A spent budget (429) is
    /// [`NetError::QueryBudgetSpent`].
    fn score_private(
        &self,
        model: &ClientModel,
        key: &ClientKey,
        query: &[u8],
        limit: u64,
    ) -> Result<ScoreReply, NetError> {
        let mut registration = self.registration(key, false)?;
        let mut result =
            self.post_score_with_key(&model.id, query, Some(&registration.key_id), limit);
        if let Err(NetError::Server { status: 404, .. }) = result {
            registration = self.registration(key, true)?;
            result = self.post_score_with_key(&model.id, query, Some(&registration.key_id), limit);
        }
        match (result, registration.max_queries) {
            (
                Err(NetError::Server {
                    url, status: 429, ..
                }),
                Some(queries),
            ) => Err(NetError::QueryBudgetSpent {
                url,
                key_id: registration.key_id,
                queries,
            }),
            (result, _) => result,
        }
    }
}

impl ScoreTransport for HttpClient {
    fn score(
        &self,
        model: &ClientModel,
        key: &ClientKey,
        query: &[u8],
    ) -> Result<ScoreReply, NetError> {
        let limit = wire::scores_size(&model.spec) as u64;
        match model.spec.private {
            true => self.score_private(model, key, query, limit),
            false => self.post_score_with_key(&model.id, query, None, limit),
        }
    }
}

/// The first J chunk features of a recording (fewer if it is shorter), loaded and chunked
/// exactly like the training audio. Shorter than one chunk is an error naming the file; a
/// silent recording is [`NetError::SilentRecording`] (it has no song to find).
pub fn recording_features(path: &Path, model: &ClientModel) -> Result<Array2<f32>, NetError> {
    let fail = |reason: String| NetError::Recording {
        path: path.to_path_buf(),
        reason,
    };
    let params = &model.features;
    let chunks = model.spec.query_chunks;
    // Only the audio the J chunks cover is decoded.
    let samples = params.chunk_samples + (chunks - 1) * params.chunk_hop;
    let load = LoadOptions {
        sample_rate: params.sample_rate(),
        max_seconds: Some(samples as f64 / params.sample_rate() as f64),
    };
    // Audio errors already name the file.
    let audio = crate::audio::load(path, &load)?;
    if audio.samples.len() < params.chunk_samples {
        return Err(fail(format!(
            "recording is {:.2} s long, shorter than one {:.2} s chunk",
            audio.duration_seconds(),
            params.chunk_samples as f64 / params.sample_rate() as f64
        )));
    }
    if let Some(level_dbfs) = crate::audio::silent(&audio.samples) {
        return Err(NetError::SilentRecording {
            path: path.to_path_buf(),
            level_dbfs,
        });
    }
    let features_err = |source| NetError::RecordingFeatures {
        path: path.to_path_buf(),
        source,
    };
    let mfcc = Mfcc::new(params.mfcc.clone()).map_err(features_err)?;
    let features = chunk_features(&mfcc, params, &audio.samples).map_err(features_err)?;
    let n = features.nrows().min(chunks);
    Ok(features.slice(s![..n, ..]).to_owned())
}

/// Milliseconds per client step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    pub features_ms: f64,
    pub encrypt_ms: f64,
    /// Upload, server work and download.
    pub round_trip_ms: f64,
    pub decrypt_ms: f64,
    pub total_ms: f64,
}

/// The answer to one recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identification {
    pub model: String,
    pub model_id: String,
    /// The identified song, or None for "unknown".
    pub song: Option<SongDto>,
    /// The leading songs (at most five), best first, with the decision rule's score (votes,
    /// or summed log-probability).
    pub ranking: Vec<(usize, f64)>,
    /// Chunks of the recording that were scored (≤ J).
    pub chunks_used: usize,
    pub chunks_layout: usize,
    pub decision: Decision,
    pub timings: Timings,
    pub bytes_up: usize,
    pub bytes_down: usize,
    /// The queries the client's public key has left on the server, when the model is served
    /// with model privacy under a per-key budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queries_left: Option<u64>,
    /// Why the answer is "unknown": nothing was scored (e.g. a silent recording), or the best
    /// candidate's confidence is below the model's open-set threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// The answer's confidence under the model's published threshold and that threshold
    /// (None when the model has none, or it was calibrated for another decision rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
}

impl Identification {
    /// "Title — Artist", "unknown", or "unknown — <reason>".
    pub fn answer(&self) -> String {
        match (&self.song, &self.unknown_reason) {
            (Some(song), _) => song.display_name(),
            (None, Some(reason)) => format!("unknown — {reason}"),
            (None, None) => "unknown".to_string(),
        }
    }
}

/// Identifies a recording: features, then [`identify_features`].
pub fn identify(
    recording: &Path,
    model: &ClientModel,
    key: &ClientKey,
    transport: &dyn ScoreTransport,
    decision: &Decision,
) -> Result<Identification, NetError> {
    let t = Instant::now();
    let features = match recording_features(recording, model) {
        Err(NetError::SilentRecording { level_dbfs, .. }) => {
            // Nothing to identify: answered here, nothing is encrypted or sent.
            return Ok(Identification {
                model: model.id.clone(),
                model_id: model.spec.model_id.to_string(),
                song: None,
                ranking: Vec::new(),
                chunks_used: 0,
                chunks_layout: model.spec.query_chunks,
                decision: *decision,
                timings: Timings {
                    features_ms: ms(t.elapsed()),
                    total_ms: ms(t.elapsed()),
                    ..Timings::default()
                },
                bytes_up: 0,
                bytes_down: 0,
                queries_left: None,
                unknown_reason: Some(format!(
                    "silent recording (level {level_dbfs:.1} dBFS, below {} dBFS)",
                    crate::audio::SILENCE_DBFS
                )),
                confidence: None,
                threshold: None,
            });
        }
        other => other?,
    };
    let features_ms = ms(t.elapsed());
    let mut id = identify_features(features.view(), model, key, transport, decision)?;
    id.timings.features_ms = features_ms;
    id.timings.total_ms += features_ms;
    Ok(id)
}

/// Identifies already-extracted chunk features (n × d, n ≤ J; rows past J are ignored):
/// quantize, pad to J rows (chunks circuit) or add them up (summed circuit), encrypt, score
/// remotely, decrypt, dequantize the n real rows (or their sum), decide.
pub fn identify_features(
    features: ArrayView2<f32>,
    model: &ClientModel,
    key: &ClientKey,
    transport: &dyn ScoreTransport,
    decision: &Decision,
) -> Result<Identification, NetError> {
    let spec = &model.spec;
    let (j, d) = (spec.query_chunks, spec.layout.features());
    if features.ncols() != d || features.nrows() == 0 {
        return Err(NetError::InvalidConfig(format!(
            "query features are {} × {}, the model takes 1..={j} × {d}",
            features.nrows(),
            features.ncols()
        )));
    }
    let n = features.nrows().min(j);
    if spec.circuit == Circuit::Summed && decision.rule == Rule::Votes {
        return Err(NetError::InvalidConfig(format!(
            "model {} is served with the summed circuit, which returns only the summed \
             scores; the votes rule needs every chunk's (serve it with --circuit chunks, or \
             use --decision log-prob-sum)",
            model.id
        )));
    }
    let start = Instant::now();
    let q_x = model.quantizer.quantize(features.slice(s![..n, ..]));
    // Padding rows hold a valid input (0 clamped into the range); their scores are dropped.
    let pad = 0i64.clamp(spec.input_min, spec.input_max);
    let rows = spec.circuit.query_rows(q_x.view(), j, pad);
    let query = wire::encode_query(&key.encrypt_query(spec, rows.view())?);
    let encrypt_ms = ms(start.elapsed());

    let t = Instant::now();
    let ScoreReply {
        bytes: reply,
        queries_left,
    } = transport.score(model, key, &query)?;
    let round_trip_ms = ms(t.elapsed());

    let t = Instant::now();
    // With model privacy the scores come back rounded to multiples of 2^ρ (fhe::privacy).
    let scores = key.decrypt_scores(spec, &wire::decode_scores(&reply, spec)?)?;
    let decrypt_ms = ms(t.elapsed());

    let answer = match spec.circuit {
        Circuit::Chunks => {
            let scores = model.quantizer.dequantize(scores.slice(s![..n, ..]));
            decision.decide(scores.view())
        }
        Circuit::Summed => {
            let totals = model.quantizer.dequantize_summed(scores.row(0), n);
            decision.decide_summed(totals.view(), n).ok_or_else(|| {
                NetError::InvalidConfig("the votes rule cannot decide on summed scores".into())
            })?
        }
    };
    // The threshold holds only for the rule it was calibrated on.
    let threshold = model.open_set.filter(|t| t.rule == decision.rule);
    let confidence = threshold.and_then(|t| answer.confidence(t.score));
    let mut unknown_reason = None;
    let song = match threshold {
        Some(t) if answer.song.is_some() && !t.accepts(&answer) => {
            let best = answer.song.and_then(|s| model.catalog.get(s));
            unknown_reason = Some(format!(
                "not in the catalogue: best candidate {}, {} {:.3} below the threshold {:.3}",
                best.map_or("?".into(), |s| s.display_name()),
                t.score.name(),
                confidence.unwrap_or(f64::NAN),
                t.at
            ));
            None
        }
        _ => answer.song.and_then(|s| model.catalog.get(s).cloned()),
    };
    Ok(Identification {
        model: model.id.clone(),
        model_id: spec.model_id.to_string(),
        song,
        ranking: answer.ranking.into_iter().take(5).collect(),
        chunks_used: n,
        chunks_layout: j,
        decision: *decision,
        timings: Timings {
            features_ms: 0.0,
            encrypt_ms,
            round_trip_ms,
            decrypt_ms,
            total_ms: ms(start.elapsed()),
        },
        bytes_up: query.len(),
        bytes_down: reply.len(),
        queries_left,
        unknown_reason,
        confidence,
        threshold,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Catalog, Song};
    use crate::eval::Rule;
    use crate::features::FeatureParams;
    use crate::model::{FloatModel, ModelFile, QuantOptions, QuantizedModel};
    use ndarray::Array1;

    /// The toy model served with the chunks circuit (the vote rule's).
    fn served(chunks: usize) -> ServedModel {
        served_with(chunks, None, Some(Circuit::Chunks))
    }

    /// 3 songs on 20 features; song c is the direction of feature c.
    fn served_with(
        chunks: usize,
        open_set: Option<Threshold>,
        circuit: Option<Circuit>,
    ) -> ServedModel {
        let d = FeatureParams::default().dim();
        let mut w = Array2::<f64>::zeros((d, 3));
        for c in 0..3 {
            w[[c, c]] = 1.0;
        }
        let float = FloatModel::new(w, Array1::zeros(3)).unwrap();
        let x = Array2::from_shape_fn((6, d), |(r, c)| if c == r % 3 { 10.0 } else { -1.0 });
        let q = QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(8)).unwrap();
        let catalog = Catalog {
            songs: (0..3)
                .map(|i| Song {
                    index: i,
                    track_id: format!("{i:06}"),
                    path: format!("{i}.wav").into(),
                    title: Some(format!("Song {i}")),
                    artist: Some("Band".into()),
                })
                .collect(),
        };
        let mut file = ModelFile::quantized(FeatureParams::default(), catalog, q, None).unwrap();
        if let Some(t) = open_set {
            file = file.with_open_set(t);
        }
        ServedModel::from_model_file("toy", &file, Path::new("toy.json"), chunks, circuit, None)
            .unwrap()
    }

    #[test]
    fn offline_identification_votes_over_the_real_rows_only() {
        let local = LocalServer { served: served(8) };
        let model = local.served.info().client_model().unwrap();
        let key = ClientKey::generate(&model.spec.params).unwrap();
        // 5 real rows pointing at song 2; the 3 padding rows must not vote.
        let x = Array2::from_shape_fn((5, 20), |(_, c)| if c == 2 { 10.0 } else { -1.0 });
        let id = identify_features(
            x.view(),
            &model,
            &key,
            &local,
            &Decision {
                rule: Rule::Votes,
                min_votes: 3,
            },
        )
        .unwrap();
        assert_eq!(id.answer(), "Song 2 — Band");
        assert_eq!(id.ranking, vec![(2, 5.0)]);
        assert_eq!((id.chunks_used, id.chunks_layout), (5, 8));
        assert_eq!(id.bytes_up, model_info_sizes(&local).0);
        assert_eq!(id.bytes_down, model_info_sizes(&local).1);
        // Too few votes for min_votes = 6: unknown.
        let id = identify_features(
            x.view(),
            &model,
            &key,
            &local,
            &Decision {
                rule: Rule::Votes,
                min_votes: 6,
            },
        )
        .unwrap();
        assert_eq!(id.answer(), "unknown");
    }

    #[test]
    fn the_published_threshold_turns_a_weak_best_candidate_into_unknown() {
        let threshold = |at: f64, rule: Rule| Threshold {
            rule,
            score: crate::model::ScoreKind::Margin,
            at,
            false_match_rate: 0.01,
            calibration_queries: 100,
        };
        let sum = Decision {
            rule: Rule::LogProbSum,
            min_votes: 0,
        };
        let x = Array2::from_shape_fn((5, 20), |(_, c)| if c == 2 { 10.0 } else { -1.0 });
        let run = |t: Threshold, decision: &Decision| {
            let local = LocalServer {
                served: served_with(8, Some(t), None),
            };
            // The threshold travels in the published description, JSON and back.
            let json = serde_json::to_string(local.served.info()).unwrap();
            let info: ModelInfo = serde_json::from_str(&json).unwrap();
            let model = info.client_model().unwrap();
            assert_eq!(model.open_set, Some(t));
            let key = ClientKey::generate(&model.spec.params).unwrap();
            identify_features(x.view(), &model, &key, &local, decision).unwrap()
        };
        let open = run(threshold(0.5, Rule::LogProbSum), &sum);
        assert_eq!(open.answer(), "Song 2 — Band");
        let margin = open.confidence.unwrap();
        assert!(margin > 0.5, "{margin}");
        let strict = run(threshold(margin + 1.0, Rule::LogProbSum), &sum);
        assert_eq!(strict.song, None);
        let reason = strict.unknown_reason.as_deref().unwrap();
        assert!(
            reason.contains("best candidate Song 2 — Band") && reason.contains("below"),
            "{reason}"
        );
        assert_eq!(strict.ranking[0].0, 2, "the ranking is still reported");
        // Calibrated for the other rule: not applied.
        let other = run(threshold(margin + 1.0, Rule::Votes), &sum);
        assert_eq!(other.answer(), "Song 2 — Band");
        assert!(other.threshold.is_none() && other.confidence.is_none());
    }

    #[test]
    fn the_summed_circuit_identifies_as_the_chunks_circuit_with_one_row_of_scores() {
        let sum = Decision {
            rule: Rule::LogProbSum,
            min_votes: 0,
        };
        // 5 rows for song 2, 2 for song 0: the real rows only, whatever J is.
        let x = Array2::from_shape_fn((7, 20), |(r, c)| {
            let song = if r < 5 { 2 } else { 0 };
            if c == song {
                10.0
            } else {
                -1.0
            }
        });
        let identify_with = |circuit| {
            let local = LocalServer {
                served: served_with(12, None, Some(circuit)),
            };
            let model = local.served.info().client_model().unwrap();
            assert_eq!((model.spec.circuit, model.spec.query_chunks), (circuit, 12));
            let key = ClientKey::generate(&model.spec.params).unwrap();
            let id = identify_features(x.view(), &model, &key, &local, &sum).unwrap();
            (id, model_info_sizes(&local))
        };
        let (chunks, chunk_sizes) = identify_with(Circuit::Chunks);
        let (summed, summed_sizes) = identify_with(Circuit::Summed);
        assert_eq!(summed.answer(), "Song 2 — Band");
        assert_eq!(summed.chunks_used, 7);
        let order = |id: &Identification| id.ranking.iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(order(&summed), order(&chunks));
        let shift = summed.ranking[0].1 - chunks.ranking[0].1;
        for (s, c) in summed.ranking.iter().zip(&chunks.ranking) {
            assert!((s.1 - c.1 - shift).abs() < 1e-9, "{s:?} vs {c:?}");
        }
        assert_eq!(summed.bytes_down, summed_sizes.1);
        assert_eq!(
            summed.bytes_up, chunk_sizes.0,
            "the upload stays one seeded GLWE"
        );

        // The vote rule needs every chunk's scores: a clear error, nothing sent.
        let local = LocalServer {
            served: served_with(12, None, Some(Circuit::Summed)),
        };
        let model = local.served.info().client_model().unwrap();
        let key = ClientKey::generate(&model.spec.params).unwrap();
        let votes = Decision {
            rule: Rule::Votes,
            min_votes: 1,
        };
        let err = identify_features(x.view(), &model, &key, &local, &votes).unwrap_err();
        assert!(err.to_string().contains("--circuit chunks"), "{err}");
    }

    fn model_info_sizes(local: &LocalServer) -> (usize, usize) {
        let w = local.served.info().wire;
        (w.query_bytes, w.reply_bytes)
    }

    #[test]
    fn wrong_shapes_and_models_are_errors() {
        let local = LocalServer { served: served(4) };
        let model = local.served.info().client_model().unwrap();
        let key = ClientKey::generate(&model.spec.params).unwrap();
        let bad = Array2::<f32>::zeros((3, 7));
        assert!(identify_features(
            bad.view(),
            &model,
            &key,
            &local,
            &Decision {
                rule: Rule::Votes,
                min_votes: 1
            }
        )
        .is_err());
        let mut other = model.clone();
        other.id = "other".into();
        let x = Array2::<f32>::zeros((2, 20));
        let err = identify_features(
            x.view(),
            &other,
            &key,
            &local,
            &Decision {
                rule: Rule::Votes,
                min_votes: 1,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("other"), "{err}");
    }

    #[test]
    fn urls_must_be_http() {
        assert!(HttpClient::new("https://x", Duration::from_secs(1)).is_err());
        let c = HttpClient::new("http://127.0.0.1:1/", Duration::from_secs(1)).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:1");
    }
}
