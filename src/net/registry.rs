//! The server's registry of client public keys, for models served with model privacy
//! (`fhe::privacy`): `POST /keys` registers a key, every query to a private model names its
//! key in `X-Fhe-Key-Id`, and an optional per-key query budget bounds how many replies one
//! key buys.
//!
//! Why a budget: each private reply carries a fresh flood, so averaging many replies to the
//! same query wears it down, and d + 1 chosen queries copy the model from its rounded scores
//! (the extraction attack); capping the replies per key is the defence left to the server.
//!
//! What counts: every query accepted for scoring — its key was known and had budget left, a
//! job slot was free and the whole body arrived — counted atomically before the body is
//! parsed, so a malformed query, or one for another model, counts too. Refusals before that
//! (no or unknown key, 429, 503 busy, 413, a body cut off) do not. Counting every accepted
//! attempt is the safe choice: the count only grows and is taken before the work, so
//! concurrent requests cannot overshoot it and no crafted failure earns a refund.
//!
//! Its weakness, honestly: keys are free to register, so a client that wants more queries
//! registers another key. The budget binds a client only where registration is tied to an
//! account, which this server does not do (out of scope); `identify` itself makes a fresh
//! public key per run (`net::client`, so runs are not linkable), and a budget counts the
//! queries of one run. Key ids are SHA-256 digests of public bytes, not secrets: whoever
//! learns one can spend that key's budget, though the replies are useless to anyone without
//! its secret key.
//!
//! Memory is bounded: at most `max_keys` keys, each held prepared in the Fourier domain
//! (two polynomials of N/2 complex values: 32 KiB at N = 2048, so 10 000 keys ≈ 320 MiB).
//! Keys are never evicted (evicting one would reset its count); a full registry refuses new
//! keys until the server restarts.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use super::api::{public_key_id, KeyRegistration};
use super::server::ServedModel;
use crate::error::FheError;
use crate::fhe::privacy::PreparedPublicKey;
use crate::fhe::wire;

/// Longest key id a refusal repeats (ids are 64 hex digits; the header is client-chosen).
const MAX_ECHOED_ID: usize = 80;

/// One registered public key: prepared once for the parameter set it was made for, with the
/// number of queries scored under it.
pub(crate) struct RegisteredKey {
    pub(crate) id: String,
    params_id: u16,
    polynomial_size: usize,
    prepared: PreparedPublicKey,
    used: AtomicU64,
}

impl RegisteredKey {
    pub(crate) fn prepared(&self) -> &PreparedPublicKey {
        &self.prepared
    }
}

/// Why the registry refused a registration or a query; each maps to one HTTP status.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A private model was queried without `X-Fhe-Key-Id`.
    MissingKeyId,
    /// `X-Fhe-Key-Id` names no registered key.
    UnknownKey(String),
    /// The key has used its whole budget.
    Spent { id: String, max: u64 },
    /// The registry holds `max_keys` keys already.
    Full { max_keys: usize },
    /// No served model uses public keys.
    NotNeeded,
    /// The key was made for another parameter set than the queried model's.
    WrongParams {
        id: String,
        key_params: u16,
        model: String,
        model_params: u16,
    },
    /// The registration body is not a public key for any served parameter set.
    Invalid(FheError),
}

impl Refusal {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::MissingKeyId | Self::NotNeeded => StatusCode::BAD_REQUEST,
            Self::UnknownKey(_) => StatusCode::NOT_FOUND,
            Self::Spent { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::WrongParams { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            // A well-formed key for another parameter set is 422, anything malformed 400.
            Self::Invalid(FheError::WireMismatch { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingKeyId => write!(
                f,
                "this model is served with model privacy: register a public key (POST /keys) \
                 and send its id in X-Fhe-Key-Id"
            ),
            Self::UnknownKey(id) => write!(
                f,
                "unknown public key {id:?} in X-Fhe-Key-Id: register it first (POST /keys; \
                 registrations last until the server restarts)"
            ),
            Self::Spent { id, max } => write!(f, "key {id} has used its {max} queries"),
            Self::Full { max_keys } => write!(
                f,
                "the server holds its limit of {max_keys} public keys (--max-keys); no new key \
                 can be registered until it restarts"
            ),
            Self::NotNeeded => write!(
                f,
                "no model on this server is served with model privacy: queries need no public \
                 key"
            ),
            Self::WrongParams {
                id,
                key_params,
                model,
                model_params,
            } => write!(
                f,
                "public key {id} was made for parameter set {key_params}, model {model} uses \
                 parameter set {model_params}"
            ),
            Self::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// The registered keys and the budget they share.
pub(crate) struct KeyRegistry {
    keys: Mutex<HashMap<String, Arc<RegisteredKey>>>,
    /// One private model per (parameter set id, N): a key is decoded and prepared against
    /// these, and then serves every private model of its parameter set.
    targets: Vec<Arc<ServedModel>>,
    max_keys: usize,
    max_queries: Option<u64>,
}

impl KeyRegistry {
    pub(crate) fn new<'a>(
        models: impl IntoIterator<Item = &'a Arc<ServedModel>>,
        max_keys: usize,
        max_queries: Option<u64>,
    ) -> Self {
        let mut targets: Vec<Arc<ServedModel>> = Vec::new();
        for m in models.into_iter().filter(|m| m.spec().private) {
            let shape = |m: &ServedModel| (m.spec().params.id, m.spec().params.polynomial_size);
            if !targets.iter().any(|t| shape(t) == shape(m)) {
                targets.push(Arc::clone(m));
            }
        }
        Self {
            keys: Mutex::new(HashMap::new()),
            targets,
            max_keys,
            max_queries,
        }
    }

    /// Whether any served model needs public keys.
    pub(crate) fn in_use(&self) -> bool {
        !self.targets.is_empty()
    }

    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }

    pub(crate) fn max_queries(&self) -> Option<u64> {
        self.max_queries
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RegisteredKey>>> {
        // A panic while holding the lock cannot leave the map half-updated (one insert).
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a wire-encoded public key (CPU work: decoding and two FFTs; run it off the
    /// async workers). The same bytes again give the same id and keep their count.
    pub(crate) fn register(&self, bytes: &[u8]) -> Result<KeyRegistration, Refusal> {
        if !self.in_use() {
            return Err(Refusal::NotNeeded);
        }
        let id = public_key_id(bytes);
        let answer = KeyRegistration {
            key_id: id.clone(),
            max_queries: self.max_queries,
        };
        {
            let keys = self.lock();
            if keys.contains_key(&id) {
                return Ok(answer);
            }
            if keys.len() >= self.max_keys {
                return Err(Refusal::Full {
                    max_keys: self.max_keys,
                });
            }
        }
        let mut first_error = None;
        for target in &self.targets {
            let params = &target.spec().params;
            match wire::decode_public_key(bytes, params)
                .and_then(|key| target.prepare_public_key(&key))
            {
                Ok(prepared) => {
                    let key = Arc::new(RegisteredKey {
                        id: id.clone(),
                        params_id: params.id,
                        polynomial_size: params.polynomial_size.0,
                        prepared,
                        used: AtomicU64::new(0),
                    });
                    let mut keys = self.lock();
                    // Checked again: other registrations may have run meanwhile.
                    if !keys.contains_key(&id) && keys.len() >= self.max_keys {
                        return Err(Refusal::Full {
                            max_keys: self.max_keys,
                        });
                    }
                    keys.entry(id).or_insert(key);
                    return Ok(answer);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(Refusal::Invalid(first_error.unwrap_or_else(|| {
            FheError::Wire {
                what: "public key",
                reason: "no served parameter set to decode it against".into(),
            }
        })))
    }

    /// The key a query to the private model `model` names in `header`, checked against the
    /// model's parameter set and (without counting) against the budget.
    pub(crate) fn key_for(
        &self,
        header: Option<&[u8]>,
        model: &ServedModel,
    ) -> Result<Arc<RegisteredKey>, Refusal> {
        let header = header.ok_or(Refusal::MissingKeyId)?;
        let id = String::from_utf8_lossy(header).trim().to_string();
        let key = self
            .lock()
            .get(&id)
            .cloned()
            .ok_or_else(|| Refusal::UnknownKey(id.chars().take(MAX_ECHOED_ID).collect()))?;
        let params = &model.spec().params;
        if (key.params_id, key.polynomial_size) != (params.id, params.polynomial_size.0) {
            return Err(Refusal::WrongParams {
                id: key.id.clone(),
                key_params: key.params_id,
                model: model.id().to_string(),
                model_params: params.id,
            });
        }
        if let Some(max) = self.max_queries {
            if key.used.load(Ordering::Relaxed) >= max {
                return Err(Refusal::Spent {
                    id: key.id.clone(),
                    max,
                });
            }
        }
        Ok(key)
    }

    /// Counts one query against `key`'s budget: the queries it has left after this one
    /// (`None` without a budget), or [`Refusal::Spent`]. Atomic, so concurrent queries never
    /// overshoot the budget.
    pub(crate) fn reserve(&self, key: &RegisteredKey) -> Result<Option<u64>, Refusal> {
        let Some(max) = self.max_queries else {
            key.used.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        key.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < max).then_some(used + 1)
            })
            .map(|before| Some(max - before - 1))
            .map_err(|_| Refusal::Spent {
                id: key.id.clone(),
                max,
            })
    }
}
