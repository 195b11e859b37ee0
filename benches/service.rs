//! The encrypted identification service on loopback (issue 7): per-identification latency
//! (median, p95) and bytes with one client, throughput with 8 concurrent clients, server
//! compute per query, and the process's resident memory before and after the load.
//!
//! Server and clients share this process (the server on its own runtime threads, as
//! `serve` runs it), so VmRSS covers both. Run through experiments/service-bench.sh, or:
//! `SERVICE_BENCH_MODEL=q8.json SERVICE_BENCH_DATASET=data/synth cargo bench --bench service`
//! (the dataset root is where the model's catalog paths point). Writes
//! `$SERVICE_BENCH_OUT` (default reports/service-bench)/report.md and results.json.

use std::path::PathBuf;
use std::time::Duration;

use fhe_shazam::eval::metrics::quantile;
use fhe_shazam::fhe::ClientKey;
use fhe_shazam::fsutil::{write_atomic, write_json_atomic};
use fhe_shazam::model::ModelFile;
use fhe_shazam::net::{
    identify_features, recording_features, run_load, HttpClient, LoadReport, LoadSpec, LocalServer,
    ServedModel, ServerConfig, ServerHandle, DEFAULT_CHUNKS,
};
use fhe_shazam::report::markdown::Table;
use fhe_shazam::report::provenance::memory_mib;
use fhe_shazam::report::Provenance;
use ndarray::Array2;
use serde::Serialize;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of this process in MiB (NaN where /proc is missing).
fn rss_mib() -> f64 {
    memory_mib("VmRSS").unwrap_or(f64::NAN)
}

#[derive(Serialize)]
struct Sequential {
    queries: usize,
    round_trip_median_ms: f64,
    round_trip_p95_ms: f64,
    identification_median_ms: f64,
    identification_p95_ms: f64,
    encrypt_median_ms: f64,
    decrypt_median_ms: f64,
    server_compute_median_ms: f64,
    bytes_up: usize,
    bytes_down: usize,
    top1: f64,
}

#[derive(Serialize)]
struct Results {
    provenance: Provenance,
    model: String,
    model_id: String,
    classes: usize,
    chunks: usize,
    params: String,
    max_jobs: usize,
    sequential: Sequential,
    load: Vec<LoadReport>,
    rss_mib: Vec<(String, f64)>,
}

fn main() -> anyhow::Result<()> {
    let model_path = PathBuf::from(env_or(
        "SERVICE_BENCH_MODEL",
        "data/service-bench/models/q8.json",
    ));
    let dataset = PathBuf::from(env_or("SERVICE_BENCH_DATASET", "data/service-bench/synth"));
    let out = PathBuf::from(env_or("SERVICE_BENCH_OUT", "reports/service-bench"));
    let n_queries = env_usize("SERVICE_BENCH_QUERIES", 100);
    let clients = env_usize("SERVICE_BENCH_CLIENTS", 8);
    let per_client = env_usize("SERVICE_BENCH_PER_CLIENT", 20);
    // Several rounds, so resident memory after each shows whether it levels off.
    let rounds = env_usize("SERVICE_BENCH_ROUNDS", 5);
    let mut rss = vec![("start".to_string(), rss_mib())];

    let file = ModelFile::load(&model_path)?;
    let served = ServedModel::from_model_file("q", &file, &model_path, DEFAULT_CHUNKS, None, None)?;
    let offline = LocalServer {
        served: ServedModel::from_model_file("q", &file, &model_path, DEFAULT_CHUNKS, None, None)?,
    };
    let config = ServerConfig::default();
    let max_jobs = config.max_jobs;
    let server = ServerHandle::start(
        std::net::TcpListener::bind("127.0.0.1:0")?,
        vec![served],
        config,
    )?;
    let http = HttpClient::new(&server.url(), Duration::from_secs(60))?;
    let model = http.model(Some("q"))?;
    let key = ClientKey::generate(&model.spec.params)?;

    // Queries: the first J chunks of each catalog song's file, truth = its index.
    let songs: Vec<(usize, PathBuf)> = file
        .catalog()
        .songs
        .iter()
        .take(n_queries)
        .map(|s| (s.index, dataset.join(&s.path)))
        .collect();
    let features: Vec<Array2<f32>> = songs
        .iter()
        .map(|(_, p)| recording_features(p, &model))
        .collect::<Result<_, _>>()?;
    eprintln!(
        "{} queries ready; C = {}",
        features.len(),
        model.spec.classes
    );
    rss.push(("server up, features loaded".into(), rss_mib()));

    // Warm-up, then one client, sequentially.
    for q in features.iter().take(5) {
        identify_features(
            q.view(),
            &model,
            &key,
            &http,
            &fhe_shazam::eval::Decision::LOG_PROB_SUM,
        )?;
    }
    let (mut rt, mut total, mut enc, mut dec, mut server_ms) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut hits, mut up, mut down) = (0, 0, 0);
    for ((truth, _), q) in songs.iter().zip(&features) {
        let id = identify_features(
            q.view(),
            &model,
            &key,
            &http,
            &fhe_shazam::eval::Decision::LOG_PROB_SUM,
        )?;
        rt.push(id.timings.round_trip_ms);
        total.push(id.timings.total_ms);
        enc.push(id.timings.encrypt_ms);
        dec.push(id.timings.decrypt_ms);
        (up, down) = (id.bytes_up, id.bytes_down);
        hits += usize::from(id.song.map(|s| s.index) == Some(*truth));
        // The server's compute alone (decode, score, encode): the same query path with the
        // server in this process, where the "round trip" is a function call.
        let local = identify_features(
            q.view(),
            &model,
            &key,
            &offline,
            &fhe_shazam::eval::Decision::LOG_PROB_SUM,
        )?;
        server_ms.push(local.timings.round_trip_ms);
    }
    let sequential = Sequential {
        queries: songs.len(),
        round_trip_median_ms: quantile(&rt, 0.5),
        round_trip_p95_ms: quantile(&rt, 0.95),
        identification_median_ms: quantile(&total, 0.5),
        identification_p95_ms: quantile(&total, 0.95),
        encrypt_median_ms: quantile(&enc, 0.5),
        decrypt_median_ms: quantile(&dec, 0.5),
        server_compute_median_ms: quantile(&server_ms, 0.5),
        bytes_up: up,
        bytes_down: down,
        top1: hits as f64 / songs.len() as f64,
    };
    rss.push(("after sequential run".into(), rss_mib()));

    let spec = LoadSpec {
        clients,
        per_client,
        decision: fhe_shazam::eval::Decision::LOG_PROB_SUM,
        busy_backoff: Duration::from_millis(5),
        max_busy_retries: 10_000,
        request_timeout: Duration::from_secs(60),
    };
    let mut load = Vec::new();
    for round in 1..=rounds {
        let report = run_load(&server.url(), &model, &key, &features, &spec)?;
        eprintln!(
            "load round {round}: {:.1} q/s, {} failed, {} busy retries",
            report.queries_per_s, report.failed, report.busy_retries
        );
        load.push(report);
        rss.push((format!("after load round {round}"), rss_mib()));
    }
    server.shutdown()?;
    rss.push(("server stopped".into(), rss_mib()));

    let results = Results {
        provenance: Provenance::collect(),
        model: model_path.display().to_string(),
        model_id: model.spec.model_id.to_string(),
        classes: model.spec.classes,
        chunks: model.spec.layout.chunks(),
        params: format!(
            "{} (reply {} bits)",
            model.spec.params.name, model.spec.params.reply_modulus_log.0
        ),
        max_jobs,
        sequential,
        load,
        rss_mib: rss,
    };
    std::fs::create_dir_all(&out)?;
    write_json_atomic(&out.join("results.json"), &results)?;
    let md = markdown(&results);
    write_atomic(&out.join("report.md"), md.as_bytes())?;
    print!("{md}");
    Ok(())
}

fn markdown(r: &Results) -> String {
    let s = &r.sequential;
    let mut sequential = Table::new(["measure", "median", "p95"]);
    let ms = |v: f64| format!("{v:.2}");
    sequential
        .row([
            "round trip (upload + server + download), ms".to_string(),
            ms(s.round_trip_median_ms),
            ms(s.round_trip_p95_ms),
        ])
        .row([
            "identification (encrypt + round trip + decrypt), ms".to_string(),
            ms(s.identification_median_ms),
            ms(s.identification_p95_ms),
        ])
        .row(["encrypt, ms".to_string(), ms(s.encrypt_median_ms)])
        .row(["decrypt, ms".to_string(), ms(s.decrypt_median_ms)])
        .row([
            "server compute alone (decode + score + encode), ms".to_string(),
            ms(s.server_compute_median_ms),
        ]);
    let mut load = Table::new([
        "round",
        "queries/s",
        "succeeded",
        "failed",
        "503 retries",
        "median ms",
        "p95 ms",
        "wall s",
    ]);
    for (i, l) in r.load.iter().enumerate() {
        load.row([
            (i + 1).to_string(),
            format!("{:.1}", l.queries_per_s),
            l.succeeded.to_string(),
            l.failed.to_string(),
            l.busy_retries.to_string(),
            format!("{:.1}", l.latency_median_ms),
            format!("{:.1}", l.latency_p95_ms),
            format!("{:.2}", l.wall_s),
        ]);
    }
    let mut memory = Table::new(["point", "MiB"]);
    for (what, mib) in &r.rss_mib {
        memory.row([what.clone(), format!("{mib:.1}")]);
    }
    format!(
        "# Encrypted identification service on loopback\n\n\
         Model `{}`: C = {}, J = {}, {}, model id {}…; server `max_jobs` = {} \
         (default: the core count). Server and clients in one process on 127.0.0.1, \
         synthetic corpus (not FMA).\n\n\
         ## One client, sequential ({} identifications)\n\n{sequential}\n\
         Bytes per identification: {} up ({:.1} KiB), {} down ({:.2} MiB). \
         Top-1 on these queries: {:.3}.\n\n\
         ## {} concurrent clients × {} queries ({} rounds)\n\n{load}\n\
         Under load, latency includes waiting: a client that gets 503 (all scoring slots \
         busy) retries after 5 ms.\n\n## Resident memory (VmRSS, MiB)\n\n{memory}\n{}\
         Run by experiments/service-bench.sh.\n",
        r.model,
        r.classes,
        r.chunks,
        r.params,
        &r.model_id[..16],
        r.max_jobs,
        s.queries,
        s.bytes_up,
        s.bytes_up as f64 / 1024.0,
        s.bytes_down,
        s.bytes_down as f64 / 1048576.0,
        s.top1,
        r.load.first().map_or(0, |l| l.clients),
        r.load.first().map_or(0, |l| l.queries / l.clients.max(1)),
        r.load.len(),
        r.provenance.footer(),
    )
}
