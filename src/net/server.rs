//! The identification server: holds quantized models in the clear (no secret, no
//! evaluation key) and turns encrypted queries into encrypted scores over HTTP.
//!
//! Routes: `GET /health`, `GET /models`, `GET /models/{id}`, `POST /models/{id}/score`
//! (body and reply are the `fhe::wire` messages, `application/octet-stream`). Scoring is
//! CPU-bound, so it runs on tokio's blocking pool, at most `max_jobs` at once: a request
//! that finds every slot busy gets 503 with `Retry-After` at once rather than waiting in an
//! unbounded queue, and the slot is taken before the body is read, so memory stays bounded
//! by `max_jobs` bodies. Logs carry method, path, status, latency and sizes, never payloads.

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
use tokio::sync::{oneshot, Semaphore};

use super::api::{ErrorBody, Health, ModelInfo, ModelList};
use crate::error::{FheError, NetError};
use crate::fhe::{wire, Circuit, FhePlan, ScoringSpec, ServerModel};
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
    /// else `summed` (for the log-prob-sum rule, the default of `identify`).
    pub fn from_model_file(
        id: &str,
        file: &ModelFile,
        source: &Path,
        chunks: usize,
        circuit: Option<Circuit>,
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
        let plan =
            FhePlan::for_circuit(&model.integer_layer(), circuit, chunks).map_err(plan_err)?;
        let server = ServerModel::from_plan(&plan).map_err(plan_err)?;
        let info = ModelInfo::new(
            id,
            model,
            file.features(),
            file.catalog(),
            server.spec(),
            server.noise_budget().log2_failure,
            file.open_set().copied(),
        );
        Ok(Self {
            info,
            server,
            source: source.to_path_buf(),
        })
    }

    /// Loads a model file and serves it under its file stem.
    pub fn load(path: &Path, chunks: usize, circuit: Option<Circuit>) -> Result<Self, NetError> {
        // Model-file errors already name the file.
        let file = ModelFile::load(path)?;
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        Self::from_model_file(id, &file, path, chunks, circuit)
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

    /// The whole server side of one query: parse (checking the header against this model),
    /// score, serialize. The HTTP handler and the in-process client both call this.
    pub fn score_bytes(&self, query: &[u8]) -> Result<Vec<u8>, FheError> {
        let query = wire::decode_query(query, self.spec())?;
        let scores = self.server.score(&query)?;
        Ok(wire::encode_scores(&scores))
    }
}

/// Loads every model named by `paths`: a file must be a servable quantized model; a folder
/// contributes each `*.json` in it that is one (others, such as float models and summaries,
/// are skipped with a warning). Ids are file stems and must be unique.
pub fn load_models(
    paths: &[PathBuf],
    chunks: usize,
    circuit: Option<Circuit>,
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
                match ServedModel::load(&file, chunks, circuit) {
                    Ok(m) => models.push(m),
                    Err(e) => tracing::warn!("skipping a file the folder holds: {e}"),
                }
            }
        } else {
            models.push(ServedModel::load(path, chunks, circuit)?);
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            // 16× the N = 2048 query (≈ 16.5 KiB) and 4× the N = 8192 one.
            max_body_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(30),
            retry_after: Duration::from_secs(1),
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

async fn score(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    request: Request,
) -> Response {
    let limit = state.config.max_body_bytes;
    let drain_cap = limit.saturating_mul(DRAIN_FACTOR);
    let (parts, body) = request.into_parts();
    // Early answers still read (and drop) the body, up to a cap: a client that is still
    // sending cannot read an answer to a request it has not finished writing.
    let reject = |response: Response, body: Body| async move {
        match read_body(body, 0, drain_cap).await {
            BodyRead::Complete(_) | BodyRead::TooLarge { drained: true } => response,
            _ => close_connection(response),
        }
    };
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {limit}-byte limit"),
        )
    };
    let model = match state.models.get(&id) {
        Some(m) => Arc::clone(m),
        None => return reject(state.unknown_model(&id), body).await,
    };
    if content_length(&parts.headers).is_some_and(|n| n > limit as u64) {
        return reject(too_large(), body).await;
    }
    // Take a slot before keeping any body byte: a full server costs a rejected request
    // no memory.
    let Ok(permit) = Arc::clone(&state.jobs).try_acquire_owned() else {
        let busy = state.busy(format!(
            "all {} scoring slots are busy; retry later",
            state.config.max_jobs
        ));
        return reject(busy, body).await;
    };
    let body = match read_body(body, limit, drain_cap).await {
        BodyRead::Complete(bytes) => bytes,
        BodyRead::TooLarge { drained } => {
            return if drained {
                too_large()
            } else {
                close_connection(too_large())
            }
        }
        BodyRead::Failed(reason) => {
            return close_connection(error(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {reason}"),
            ))
        }
    };
    // The permit moves into the job: the slot stays taken until scoring really ends, even
    // if this request times out meanwhile.
    let job = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        model.score_bytes(&body)
    });
    match job.await {
        Ok(Ok(reply)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], reply).into_response()
        }
        Ok(Err(e)) => error(fhe_status(&e), e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scoring job failed: {e}"),
        ),
    }
}

async fn no_route(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {method} {}; routes: GET /health, GET /models, GET /models/{{id}}, \
             POST /models/{{id}}/score",
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
    let state = Arc::new(AppState {
        models: models
            .into_iter()
            .map(|m| (m.id().to_string(), Arc::new(m)))
            .collect(),
        list: Bytes::from(list),
        jobs: Arc::new(Semaphore::new(config.max_jobs)),
        config: config.clone(),
    });
    Ok(Router::new()
        .route("/health", get(health))
        .route("/models", get(list_models))
        .route("/models/{id}", get(get_model))
        .route("/models/{id}/score", post(score))
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
    }
}
