//! A bounded load generator: `clients` threads each run `per_client` identifications against
//! one server and stop; used by the service test and the service benchmark.
//!
//! A 503 (all scoring slots busy) is the server's back-pressure working, not a failure: the
//! client waits `busy_backoff` and retries, up to `max_busy_retries` times per query, and
//! the report counts those retries separately from failed queries.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ndarray::Array2;
use serde::Serialize;

use super::api::ClientModel;
use super::client::{identify_features, HttpClient};
use crate::error::NetError;
use crate::eval::metrics::quantile;
use crate::fhe::ClientKey;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub clients: usize,
    pub per_client: usize,
    pub decision: crate::eval::Decision,
    pub busy_backoff: Duration,
    pub max_busy_retries: usize,
    pub request_timeout: Duration,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub queries: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// 503 answers that were retried.
    pub busy_retries: usize,
    pub wall_s: f64,
    pub queries_per_s: f64,
    /// Per successful identification (encrypt + round trip + decrypt), ms.
    pub latency_median_ms: f64,
    pub latency_p95_ms: f64,
    /// Songs answered per query in order of completion (index into the catalog or None).
    #[serde(skip)]
    pub answers: Vec<(usize, Option<usize>)>,
    /// The first few errors, for the report.
    pub errors: Vec<String>,
}

/// Runs the load: query `i` of client `c` uses `queries[(c·per_client + i) % len]`.
pub fn run_load(
    base_url: &str,
    model: &ClientModel,
    key: &ClientKey,
    queries: &[Array2<f32>],
    spec: &LoadSpec,
) -> Result<LoadReport, NetError> {
    if queries.is_empty() || spec.clients == 0 {
        return Err(NetError::InvalidConfig(
            "load test needs at least one query and one client".into(),
        ));
    }
    struct Shared {
        latencies: Vec<f64>,
        answers: Vec<(usize, Option<usize>)>,
        errors: Vec<String>,
        failed: usize,
        busy: usize,
    }
    let shared = Mutex::new(Shared {
        latencies: Vec::new(),
        answers: Vec::new(),
        errors: Vec::new(),
        failed: 0,
        busy: 0,
    });
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<(), NetError> {
        let mut workers = Vec::new();
        for c in 0..spec.clients {
            let http = HttpClient::new(base_url, spec.request_timeout)?;
            let shared = &shared;
            workers.push(scope.spawn(move || {
                for i in 0..spec.per_client {
                    let q = (c * spec.per_client + i) % queries.len();
                    let mut retries = 0;
                    let outcome = loop {
                        match identify_features(
                            queries[q].view(),
                            model,
                            key,
                            &http,
                            &spec.decision,
                        ) {
                            Err(NetError::Server { status: 503, .. })
                                if retries < spec.max_busy_retries =>
                            {
                                retries += 1;
                                std::thread::sleep(spec.busy_backoff);
                            }
                            other => break other,
                        }
                    };
                    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    s.busy += retries;
                    match outcome {
                        Ok(id) => {
                            s.latencies.push(id.timings.total_ms);
                            s.answers.push((q, id.song.map(|song| song.index)));
                        }
                        Err(e) => {
                            s.failed += 1;
                            if s.errors.len() < 5 {
                                s.errors.push(e.to_string());
                            }
                        }
                    }
                }
            }));
        }
        for w in workers {
            // A panicking worker is a failed load test, reported as such below.
            let _ = w.join();
        }
        Ok(())
    })?;
    let wall_s = start.elapsed().as_secs_f64();
    let s = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    let queries_total = spec.clients * spec.per_client;
    let succeeded = s.latencies.len();
    Ok(LoadReport {
        clients: spec.clients,
        queries: queries_total,
        succeeded,
        failed: queries_total - succeeded,
        busy_retries: s.busy,
        wall_s,
        queries_per_s: succeeded as f64 / wall_s,
        latency_median_ms: quantile(&s.latencies, 0.5),
        latency_p95_ms: quantile(&s.latencies, 0.95),
        answers: s.answers,
        errors: s.errors,
    })
}
