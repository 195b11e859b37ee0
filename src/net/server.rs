//! The identification server: holds quantized models in the clear (no secret, no
//! evaluation key) and turns encrypted queries into encrypted scores over HTTP.
//!
//! Routes: `GET /health`, `GET /models`, `GET /models/{id}`, `POST /models/{id}/score`
//! (body and reply are the `fhe::wire` messages, `application/octet-stream`), `POST /keys`
//! (a client's public key, for models served with model privacy). Scoring is CPU-bound, so
//! it runs on tokio's blocking pool, at most `max_jobs` at once: a request that finds every
//! slot busy gets 503 with `Retry-After` at once rather than waiting in an unbounded queue,
//! and the slot is taken before the body is read, so memory stays bounded by `max_jobs`
//! bodies (key registrations take a slot the same way). Logs carry method, path, status,
//! latency and sizes, never payloads.
//!
//! Model privacy (`serve --model-privacy λ`, `fhe::privacy`): every model is planned with
//! the flood of λ bits, and its replies are re-randomised with the client's public key. The
//! client registers the key once (`POST /keys`, body `fhe::wire::encode_public_key`; answer
//! `{"key_id", "max_queries"}`) and names it in `X-Fhe-Key-Id` on every query to a private
//! model (plain models ignore the header). `--max-queries-per-key` caps the replies one key
//! buys (429 beyond; `X-Fhe-Queries-Left` on each reply) and `--max-keys` the keys held;
//! [`super::registry`] says what the budget counts and why it binds only keys, not people.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::api::{
    ErrorBody, Health, KeysHealth, ModelInfo, ModelList, KEY_ID_HEADER, QUERIES_LEFT_HEADER,
};
use super::registry::{KeyRegistry, Refusal};
use crate::error::{FheError, NetError};
use crate::fhe::privacy::PreparedPublicKey;
use crate::fhe::{wire, Circuit, FhePlan, ModelPrivacy, PublicKey, ScoringSpec, ServerModel};
use crate::model::ModelFile;

/// J: chunks per query. The seed's query is 15 s of audio on the 0.5 s chunk grid.
pub const DEFAULT_CHUNKS: usize = 30;

/// A model ready to serve: its public description and the prepared FHE scorer.
pub struct ServedModel {
    info: ModelInfo,
    server: ServerModel,
    source: PathBuf,
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedModel")
            .field("id", &self.info.id)
            .field("model_id", &self.spec().model_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ServedModel {
    /// Prepares `file` (which must hold a quantized model) under `id`, with exactly the
    /// circuit, parameter set and layout the evaluator uses for J = `chunks`
    /// ([`FhePlan::for_circuit`]), so served and evaluated accuracy are the same circuit.
    /// `circuit` None: the one the model's open-set threshold implies ([`crate::model::Rule::circuit`]),
    /// else `summed` (for the log-prob-sum rule, the default of `identify`). `privacy`: serve
    /// it with model privacy ([`FhePlan::with_privacy`]): its queries then need a registered
    /// public key.
    pub fn from_model_file(
        id: &str,
        file: &ModelFile,
        source: &Path,
        chunks: usize,
        circuit: Option<Circuit>,
        privacy: Option<ModelPrivacy>,
    ) -> Result<Self, NetError> {
        let fail = |reason: String| NetError::ServeModel {
            path: source.to_path_buf(),
            reason,
        };
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(fail(format!(
                "model id {id:?} must be non-empty ASCII letters, digits, '-', '_' or '.'"
            )));
        }
        let model = file.quantized_model().ok_or_else(|| {
            fail("it holds a float model; serve a quantized one (e.g. q8.json)".into())
        })?;
        let plan_err = |e| NetError::ServePlan {
            path: source.to_path_buf(),
            source: e,
        };
        let circuit = circuit.unwrap_or_else(|| {
            file.open_set()
                .map_or(Circuit::Summed, |t| t.rule.circuit(Some(t.score)))
        });
        let mut plan =
            FhePlan::for_circuit(&model.integer_layer(), circuit, chunks).map_err(plan_err)?;
        if let Some(privacy) = privacy {
            plan = plan.with_privacy(privacy).map_err(plan_err)?;
        }
        let server = ServerModel::from_plan(&plan).map_err(plan_err)?;
        // With model privacy the flood adds to the noise: its plan has the failure bound.
        let log2_failure = server
            .privacy()
            .map_or(server.noise_budget().log2_failure, |p| p.log2_failure);
        let info = ModelInfo::new(
            id,
            model,
            file.features(),
            file.catalog(),
            server.spec(),
            log2_failure,
            file.open_set().copied(),
        );
        Ok(Self {
            info,
            server,
            source: source.to_path_buf(),
        })
    }

    /// Loads a model file and serves it under its file stem.
    pub fn load(
        path: &Path,
        chunks: usize,
        circuit: Option<Circuit>,
        privacy: Option<ModelPrivacy>,
    ) -> Result<Self, NetError> {
        // Model-file errors already name the file.
        let file = ModelFile::load(path)?;
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        Self::from_model_file(id, &file, path, chunks, circuit, privacy)
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }
    pub fn spec(&self) -> &ScoringSpec {
        self.server.spec()
    }
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Checks a client's public key against this model's parameter set and prepares it for
    /// [`ServedModel::score_bytes`] (once per client: two FFTs).
    pub fn prepare_public_key(&self, key: &PublicKey) -> Result<PreparedPublicKey, FheError> {
        self.server.prepare_public_key(key)
    }

    /// The whole server side of one query: parse (checking the header against this model),
    /// score, serialize. The HTTP handler and the in-process client both call this. A model
    /// served with model privacy needs the client's prepared public key and refuses without
    /// one; a plain model refuses one.
    pub fn score_bytes(
        &self,
        query: &[u8],
        public_key: Option<&PreparedPublicKey>,
    ) -> Result<Vec<u8>, FheError> {
        let query = wire::decode_query(query, self.spec())?;
        let scores = match public_key {
            Some(key) => self.server.score_private(&query, key)?,
            None => self.server.score(&query)?,
        };
        Ok(wire::encode_scores(&scores))
    }
}

/// Loads every model named by `paths`: a file must be a servable quantized model; a folder
/// contributes each `*.json` in it that is one (others, such as float models and summaries,
/// are skipped with a warning). Ids are file stems and must be unique.
/// `privacy`: every model is served with model privacy.
pub fn load_models(
    paths: &[PathBuf],
    chunks: usize,
    circuit: Option<Circuit>,
    privacy: Option<ModelPrivacy>,
) -> Result<Vec<ServedModel>, NetError> {
    let mut models: Vec<ServedModel> = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| NetError::Io {
                what: format!("reading model folder {}", path.display()),
                source,
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for file in files {
                match ServedModel::load(&file, chunks, circuit, privacy) {
                    Ok(m) => models.push(m),
                    Err(e) => tracing::warn!("skipping a file the folder holds: {e}"),
                }
            }
        } else {
            models.push(ServedModel::load(path, chunks, circuit, privacy)?);
        }
    }
    if models.is_empty() {
        return Err(NetError::NoModels(format!(
            "no quantized model file in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for m in &models {
        if let Some(first) = seen.insert(m.id(), m.source()) {
            return Err(NetError::DuplicateModel {
                id: m.id().to_string(),
                first: first.to_path_buf(),
                second: m.source().to_path_buf(),
            });
        }
    }
    Ok(models)
}

/// Limits of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Scoring jobs running at once; more get 503.
    pub max_jobs: usize,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Whole-request limit, body upload included (503 beyond).
    pub request_timeout: Duration,
    /// `Retry-After` sent with a 503 (whole seconds, at least 1).
    pub retry_after: Duration,
    /// Public keys held at once for models served with model privacy (32 KiB each at
    /// N = 2048, never evicted; `POST /keys` gets 503 beyond).
    pub max_keys: usize,
    /// Queries each public key may score on the private models (429 beyond); `None`: no
    /// budget. Binds a key, not a person: keys are free to register (see
    /// [`super::registry`]).
    pub max_queries_per_key: Option<u64>,
}

/// Default of [`ServerConfig::max_keys`]: ≈ 320 MiB of prepared keys at N = 2048.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            // 16× the N = 2048 query (≈ 16.5 KiB) and 4× the N = 8192 one.
            max_body_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(30),
            retry_after: Duration::from_secs(1),
            max_keys: DEFAULT_MAX_KEYS,
            max_queries_per_key: None,
        }
    }
}

impl ServerConfig {
    /// Checks the limits against the models: a body limit below a model's query size would
    /// refuse every query to it.
    pub fn validate(&self, models: &[ServedModel]) -> Result<(), NetError> {
        if self.max_jobs == 0 {
            return Err(NetError::InvalidConfig(
                "max jobs must be at least 1".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(NetError::InvalidConfig(
                "request timeout must be positive".into(),
            ));
        }
        if self.max_keys == 0 {
            return Err(NetError::InvalidConfig(
                "max keys must be at least 1".into(),
            ));
        }
        if self.max_queries_per_key == Some(0) {
            return Err(NetError::InvalidConfig(
                "max queries per key must be at least 1 (leave it unset for no budget)".into(),
            ));
        }
        if let Some(m) = models
            .iter()
            .find(|m| m.info().wire.query_bytes > self.max_body_bytes)
        {
            return Err(NetError::InvalidConfig(format!(
                "max body {} bytes is below model {}'s query size {} bytes",
                self.max_body_bytes,
                m.id(),
                m.info().wire.query_bytes
            )));
        }
        Ok(())
    }
}

struct AppState {
    models: HashMap<String, Arc<ServedModel>>,
    /// `GET /models`, serialized once.
    list: Bytes,
    jobs: Arc<Semaphore>,
    config: ServerConfig,
    /// Public keys of clients of the models served with model privacy.
    keys: KeyRegistry,
}

impl AppState {
    /// 404 naming the served models.
    fn unknown_model(&self, id: &str) -> Response {
        let mut ids: Vec<&str> = self.models.keys().map(String::as_str).collect();
        ids.sort_unstable();
        error(
            StatusCode::NOT_FOUND,
            format!("unknown model {id:?}; served models: {}", ids.join(", ")),
        )
    }

    fn busy(&self, message: String) -> Response {
        let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
        let seconds = self.config.retry_after.as_secs().max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

/// A JSON `{"error": …}` response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

/// An early answer reads at most this many times the body limit before giving up on the
/// connection.
const DRAIN_FACTOR: usize = 4;

enum BodyRead {
    Complete(Vec<u8>),
    /// Over the limit; `drained` if it was read to its end (within the drain cap).
    TooLarge {
        drained: bool,
    },
    Failed(String),
}

/// Reads a request body, keeping at most `keep` bytes; past that, it reads on (dropping the
/// data) to the end or to `cap` bytes in all.
async fn read_body(mut body: Body, keep: usize, cap: usize) -> BodyRead {
    let mut kept = Vec::new();
    let mut total = 0usize;
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            None if total > keep => return BodyRead::TooLarge { drained: true },
            None => return BodyRead::Complete(kept),
            Some(Err(e)) => return BodyRead::Failed(e.to_string()),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                total = total.saturating_add(data.len());
                if total <= keep {
                    kept.extend_from_slice(&data);
                } else if !kept.is_empty() {
                    kept = Vec::new();
                }
                if total > cap {
                    return BodyRead::TooLarge { drained: false };
                }
            }
        }
    }
}

/// Marks a response sent without reading the whole request body: the connection cannot
/// carry another request, so the client is told not to reuse it (else its next request on
/// the pooled connection meets a closed socket).
fn close_connection(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 422 for a well-formed message addressed to another model or parameter set, 400 for
/// anything malformed.
fn fhe_status(e: &FheError) -> StatusCode {
    match e {
        FheError::WireMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let max = state.config.max_jobs;
    Json(Health {
        status: "ok".into(),
        models: state.models.len(),
        jobs_running: max.saturating_sub(state.jobs.available_permits()),
        max_jobs: max,
        public_keys: state.keys.in_use().then(|| KeysHealth {
            registered: state.keys.len(),
            max_keys: state.keys.max_keys(),
            max_queries_per_key: state.keys.max_queries(),
        }),
    })
}

async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.list.clone(),
    )
        .into_response()
}

async fn get_model(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    match state.models.get(&id) {
        Some(m) => Json(m.info().clone()).into_response(),
        None => state.unknown_model(&id),
    }
}

/// Reads (and drops) a request body up to the drain cap, then sends `response`: a client
/// that is still sending cannot read an answer to a request it has not finished writing.
async fn drain_then(state: &AppState, response: Response, body: Body) -> Response {
    let drain_cap = state.config.max_body_bytes.saturating_mul(DRAIN_FACTOR);
    match read_body(body, 0, drain_cap).await {
        BodyRead::Complete(_) | BodyRead::TooLarge { drained: true } => response,
        _ => close_connection(response),
    }
}

/// The front half of every route that does CPU work on a body: refuse one declared over the
/// limit, take a job slot (503 when none is free) before keeping any body byte, so a full
/// server costs a rejected request no memory, then read the body within the limit. `Err`
/// is the response to send.
async fn slot_and_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(OwnedSemaphorePermit, Vec<u8>), Response> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {limit}-byte limit"),
        )
    };
    if content_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(drain_then(state, too_large(), body).await);
    }
    let Ok(permit) = Arc::clone(&state.jobs).try_acquire_owned() else {
        let busy = state.busy(format!(
            "all {} scoring slots are busy; retry later",
            state.config.max_jobs
        ));
        return Err(drain_then(state, busy, body).await);
    };
    match read_body(body, limit, limit.saturating_mul(DRAIN_FACTOR)).await {
        BodyRead::Complete(bytes) => Ok((permit, bytes)),
        BodyRead::TooLarge { drained: true } => Err(too_large()),
        BodyRead::TooLarge { drained: false } => Err(close_connection(too_large())),
        BodyRead::Failed(reason) => Err(close_connection(error(
            StatusCode::BAD_REQUEST,
            format!("reading the request body: {reason}"),
        ))),
    }
}

/// Runs CPU work (`what`: scoring, key registration) on the blocking pool; the permit moves
/// into the job, so the slot stays taken until the work really ends, even if the request
/// times out meanwhile.
async fn run_job<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} job failed: {e}"),
        )
    })
}

fn refused(refusal: Refusal) -> Response {
    error(refusal.status(), refusal.to_string())
}

/// `POST /models/{id}/score`. For a model served with model privacy the query must name a
/// registered key in `X-Fhe-Key-Id` (400 without, 404 unknown) that has budget left (429,
/// before any scoring work); see [`super::registry`] for what counts.
async fn score(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let model = match state.models.get(&id) {
        Some(m) => Arc::clone(m),
        None => return drain_then(&state, state.unknown_model(&id), body).await,
    };
    let key = match model.spec().private {
        true => {
            let header = parts.headers.get(KEY_ID_HEADER).map(HeaderValue::as_bytes);
            match state.keys.key_for(header, &model) {
                Ok(key) => Some(key),
                Err(refusal) => return drain_then(&state, refused(refusal), body).await,
            }
        }
        false => None,
    };
    let (permit, body) = match slot_and_body(&state, &parts.headers, body).await {
        Ok(taken) => taken,
        Err(response) => return response,
    };
    // Counted here, before the body is parsed: the query is accepted for scoring.
    let left = match key.as_deref().map(|k| state.keys.reserve(k)).transpose() {
        Ok(left) => left.flatten(),
        Err(refusal) => return refused(refusal),
    };
    let job = run_job(permit, "scoring", move || {
        model.score_bytes(&body, key.as_deref().map(|k| k.prepared()))
    });
    let mut response = match job.await {
        Ok(Ok(reply)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], reply).into_response()
        }
        Ok(Err(e)) => error(fhe_status(&e), e.to_string()),
        Err(response) => response,
    };
    if let Some(left) = left {
        response
            .headers_mut()
            .insert(QUERIES_LEFT_HEADER, HeaderValue::from(left));
    }
    response
}

/// `POST /keys`: registers a client's public key (body: `fhe::wire::encode_public_key`) for
/// the models served with model privacy; answers `{"key_id", "max_queries"}`.
async fn register_key(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !state.keys.in_use() {
        return drain_then(&state, refused(Refusal::NotNeeded), body).await;
    }
    let (permit, body) = match slot_and_body(&state, &parts.headers, body).await {
        Ok(taken) => taken,
        Err(response) => return response,
    };
    let registry = Arc::clone(&state);
    match run_job(permit, "key registration", move || {
        registry.keys.register(&body)
    })
    .await
    {
        Ok(Ok(registration)) => Json(registration).into_response(),
        Ok(Err(refusal)) => refused(refusal),
        Err(response) => response,
    }
}

async fn no_route(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {method} {}; routes: GET /health, GET /models, GET /models/{{id}}, \
             POST /models/{{id}}/score, POST /keys",
            uri.path()
        ),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Request timeout and one log line per request (sizes only: never a payload byte).
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    // Paths carry client-chosen model ids: cap what a log line repeats.
    let path: String = request.uri().path().chars().take(128).collect();
    let bytes_in = content_length(request.headers()).unwrap_or(0);
    let timeout = state.config.request_timeout;
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(r) => r,
        Err(_) => close_connection(state.busy(format!(
            "request took longer than the {:.1} s limit",
            timeout.as_secs_f64()
        ))),
    };
    let bytes_out = response.body().size_hint().exact().unwrap_or(0);
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        latency_ms = %format_args!("{:.3}", start.elapsed().as_secs_f64() * 1e3),
        bytes_in,
        bytes_out,
        "request"
    );
    response
}

fn router(models: Vec<ServedModel>, config: ServerConfig) -> Result<Router, NetError> {
    config.validate(&models)?;
    let list = serde_json::to_vec(&ModelList {
        models: models.iter().map(|m| m.info().clone()).collect(),
    })
    .map_err(|e| NetError::InvalidConfig(format!("serializing the model list: {e}")))?;
    let models: Vec<Arc<ServedModel>> = models.into_iter().map(Arc::new).collect();
    let keys = KeyRegistry::new(&models, config.max_keys, config.max_queries_per_key);
    let state = Arc::new(AppState {
        models: models
            .into_iter()
            .map(|m| (m.id().to_string(), m))
            .collect(),
        list: Bytes::from(list),
        jobs: Arc::new(Semaphore::new(config.max_jobs)),
        config: config.clone(),
        keys,
    });
    Ok(Router::new()
        .route("/health", get(health))
        .route("/models", get(list_models))
        .route("/models/{id}", get(get_model))
        .route("/models/{id}/score", post(score))
        .route("/keys", post(register_key))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state))
}

/// Serves `models` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (graceful shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    models: Vec<ServedModel>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NetError> {
    let app = router(models, config)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| NetError::Io {
            what: "serving HTTP".into(),
            source,
        })
}

/// `fhe-shazam serve`: binds `addr`, serves until Ctrl-C.
pub fn run_until_ctrl_c(
    addr: SocketAddr,
    models: Vec<ServedModel>,
    config: ServerConfig,
) -> Result<(), NetError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| NetError::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::Io {
                what: format!("binding {addr}"),
                source,
            })?;
        let bound = listener.local_addr().unwrap_or(addr);
        for m in &models {
            tracing::info!(
                id = m.id(),
                model_id = %m.spec().model_id,
                classes = m.spec().classes,
                params = m.spec().params.name,
                "serving {}",
                m.source().display()
            );
        }
        tracing::info!("listening on http://{bound} (Ctrl-C to stop)");
        serve(listener, models, config, async {
            // If the signal handler cannot be installed, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await
    })
}

/// A server running on its own thread (tests, benches, in-process use). Dropping the handle
/// stops it.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), NetError>>>,
}

impl ServerHandle {
    /// Starts serving on `listener` (e.g. bound to 127.0.0.1:0) with two async worker
    /// threads; scoring runs on the blocking pool as in `serve`.
    pub fn start(
        listener: std::net::TcpListener,
        models: Vec<ServedModel>,
        config: ServerConfig,
    ) -> Result<Self, NetError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| NetError::Io { what, source }
        };
        let addr = listener
            .local_addr()
            .map_err(io("reading the bound address"))?;
        listener
            .set_nonblocking(true)
            .map_err(io("configuring the listener"))?;
        config.validate(&models)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(io("starting the async runtime"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fhe-shazam-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(io("registering the listener"))?;
                    serve(listener, models, config, async {
                        let _ = stopped.await;
                    })
                    .await
                })
            })
            .map_err(io("spawning the server thread"))?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes requests in flight, and returns the server's result.
    pub fn shutdown(mut self) -> Result<(), NetError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), NetError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(NetError::InvalidConfig("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_limits_that_refuse_every_query() {
        let bad = ServerConfig {
            max_jobs: 0,
            ..ServerConfig::default()
        };
        assert!(bad
            .validate(&[])
            .unwrap_err()
            .to_string()
            .contains("max jobs"));
        let bad = ServerConfig {
            request_timeout: Duration::ZERO,
            ..ServerConfig::default()
        };
        assert!(bad.validate(&[]).is_err());
        let bad = ServerConfig {
            max_keys: 0,
            ..ServerConfig::default()
        };
        assert!(bad
            .validate(&[])
            .unwrap_err()
            .to_string()
            .contains("max keys"));
        let bad = ServerConfig {
            max_queries_per_key: Some(0),
            ..ServerConfig::default()
        };
        assert!(bad
            .validate(&[])
            .unwrap_err()
            .to_string()
            .contains("max queries per key"));
        assert!(ServerConfig::default().validate(&[]).is_ok());
    }

    #[test]
    fn content_length_parses_only_numbers() {
        let mut h = HeaderMap::new();
        assert_eq!(content_length(&h), None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("123"));
        assert_eq!(content_length(&h), Some(123));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("x"));
        assert_eq!(content_length(&h), None);
    }

    #[test]
    fn mismatches_are_422_and_malformed_messages_400() {
        let mismatch = FheError::WireMismatch {
            what: "q",
            field: "model id",
            expected: "a".into(),
            found: "b".into(),
        };
        assert_eq!(fhe_status(&mismatch), StatusCode::UNPROCESSABLE_ENTITY);
        let wire = FheError::Wire {
            what: "q",
            reason: "truncated".into(),
        };
        assert_eq!(fhe_status(&wire), StatusCode::BAD_REQUEST);
        // Public keys follow the same rule.
        assert_eq!(
            Refusal::Invalid(mismatch).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(Refusal::Invalid(wire).status(), StatusCode::BAD_REQUEST);
    }
}
