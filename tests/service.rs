//! The encrypted identification service on loopback: a real server on 127.0.0.1:0 in this
//! process (and the real binaries), a tiny synthetic catalog, end-to-end identification,
//! every kind of bad request, back-pressure, the request timeout and a bounded load test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::listening_url;

use fhe_shazam::audio::{write_wav, Audio, LoadOptions};
use fhe_shazam::dataset::synth::{write_corpus, SynthParams};
use fhe_shazam::dataset::{scan, ScanOptions};
use fhe_shazam::features::{extract, FeatureParams};
use fhe_shazam::fhe::wire;
use fhe_shazam::model::{fit, LogisticParams, ModelFile, QuantOptions, QuantizedModel};
use fhe_shazam::net::{
    identify, identify_features, load_models, recording_features, run_load, ClientModel,
    HttpClient, KeyStore, LoadSpec, LocalServer, ServedModel, ServerConfig, ServerHandle,
    DEFAULT_CHUNKS,
};
use fhe_shazam::NetError;
use ndarray::Array2;

const SONGS: usize = 6;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Two quantized models of the same 6-song corpus (per-feature and single-range 8-bit
/// inputs: different integer layers, so different model ids) and the songs' files.
struct Fixture {
    _dir: tempfile::TempDir,
    models: Vec<PathBuf>,
    audio: Vec<PathBuf>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("synth");
        let params = SynthParams {
            songs: SONGS,
            seconds: 8.0,
            seed: 7,
            ..SynthParams::default()
        };
        write_corpus(&root, &params, &|| {}).unwrap();
        let catalog = scan(&root, &ScanOptions::default()).unwrap();
        let features = FeatureParams::default();
        let (set, _) = extract(
            &root,
            &catalog,
            &LoadOptions::default(),
            &features,
            &dir.path().join("features"),
            &|| {},
        )
        .unwrap();
        let x = set.features.view();
        let float = fit(x, &set.labels, set.n_songs(), &LogisticParams::default()).unwrap();
        let models = [
            (
                "qa",
                QuantOptions {
                    standardize_inputs: true,
                    ..QuantOptions::concrete(8)
                },
            ),
            ("qb", QuantOptions::concrete(8)),
        ]
        .iter()
        .map(|(name, opts)| {
            let q = QuantizedModel::from_float(&float, x, opts).unwrap();
            let path = dir.path().join(format!("{name}.json"));
            ModelFile::quantized(features.clone(), set.catalog(), q, None)
                .unwrap()
                .save(&path)
                .unwrap();
            path
        })
        .collect();
        let audio = set
            .catalog()
            .songs
            .iter()
            .map(|s| root.join(&s.path))
            .collect();
        Fixture {
            _dir: dir,
            models,
            audio,
        }
    })
}

fn start(config: ServerConfig) -> ServerHandle {
    let models = load_models(&fixture().models, DEFAULT_CHUNKS, None, None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ServerHandle::start(listener, models, config).unwrap()
}

fn key_for(model: &ClientModel) -> fhe_shazam::fhe::ClientKey {
    let dir = tempfile::tempdir().unwrap();
    KeyStore::new(dir.path())
        .load_or_generate(&model.spec.params, false)
        .unwrap()
        .0
}

/// A valid encrypted query for `model`, wire-encoded.
fn good_query(model: &ClientModel, key: &fhe_shazam::fhe::ClientKey) -> Vec<u8> {
    let (j, d) = (model.spec.layout.chunks(), model.spec.layout.features());
    let q = Array2::<i64>::zeros((j, d));
    wire::encode_query(&key.encrypt_query(&model.spec, q.view()).unwrap())
}

fn expect_status(result: Result<Vec<u8>, NetError>, status: u16, needle: &str) {
    match result {
        Err(NetError::Server {
            status: s, message, ..
        }) => {
            assert_eq!(s, status, "{message}");
            assert!(
                message.contains(needle),
                "{message:?} should mention {needle:?}"
            );
        }
        other => panic!("expected HTTP {status}, got {other:?}"),
    }
}

#[test]
fn identifies_a_song_end_to_end_over_http() {
    let server = start(ServerConfig::default());
    let http = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let health = http.health().unwrap();
    assert_eq!((health.status.as_str(), health.models), ("ok", 2));
    let ids: Vec<String> = http.models().unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["qa", "qb"]);
    // Two models: the client must pick one.
    assert!(matches!(
        http.model(None),
        Err(NetError::UnknownModel { .. })
    ));

    let model = http.model(Some("qa")).unwrap();
    assert_eq!(model.catalog.len(), SONGS);
    let key = key_for(&model);
    let song = 2;
    let id = identify(
        &fixture().audio[song],
        &model,
        &key,
        &http,
        &fhe_shazam::eval::Decision::LOG_PROB_SUM,
    )
    .unwrap();
    assert_eq!(id.song.as_ref().map(|s| s.index), Some(song), "{id:?}");
    assert_eq!(id.answer(), model.catalog[song].display_name());
    assert_eq!(id.chunks_used, 16, "an 8 s song has 16 of the 30 chunks");
    assert_eq!(id.bytes_up, wire::query_size(&model.spec));
    assert_eq!(id.bytes_down, wire::scores_size(&model.spec));
    assert!(id.timings.round_trip_ms > 0.0 && id.timings.features_ms > 0.0);

    // The offline form runs the same client code on the same model: same answer.
    let local = LocalServer {
        served: ServedModel::load(&fixture().models[0], DEFAULT_CHUNKS, None, None).unwrap(),
    };
    let offline = identify(
        &fixture().audio[song],
        &model,
        &key,
        &local,
        &fhe_shazam::eval::Decision::LOG_PROB_SUM,
    )
    .unwrap();
    assert_eq!(offline.song, id.song);
    assert_eq!(offline.ranking, id.ranking);
    server.shutdown().unwrap();
}

#[test]
fn bad_requests_get_clear_4xx_and_the_server_keeps_serving() {
    let config = ServerConfig::default();
    let limit = config.max_body_bytes;
    let server = start(config);
    let http = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let qa = http.model(Some("qa")).unwrap();
    let qb = http.model(Some("qb")).unwrap();
    assert_ne!(qa.spec.model_id, qb.spec.model_id);
    let key = key_for(&qa);
    let good = good_query(&qa, &key);
    let reply_limit = wire::scores_size(&qa.spec) as u64;
    let still_serving = || {
        let reply = http.post_score("qa", &good, reply_limit).unwrap();
        wire::decode_scores(&reply, &qa.spec).unwrap();
    };
    still_serving();

    let mut other_params = good.clone();
    other_params[6..8].copy_from_slice(&2u16.to_le_bytes()); // parameter set id
    let mut wrong_version = good.clone();
    wrong_version[4..6].copy_from_slice(&9u16.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("qa", b"hello, not a ciphertext".to_vec(), 400, "malformed"),
        ("qa", Vec::new(), 400, "truncated"),
        ("qa", good[..good.len() / 2].to_vec(), 400, "truncated"),
        ("qa", [good.clone(), vec![0]].concat(), 400, "trailing"),
        ("qa", wrong_version, 400, "version 9"),
        ("qa", other_params, 422, "parameter set id"),
        ("qb", good.clone(), 422, "does not match"),
        ("nope", good.clone(), 404, "unknown model \"nope\""),
        ("qa", vec![0u8; limit + 1], 413, "limit"),
    ];
    for (model, body, status, needle) in cases {
        expect_status(http.post_score(model, &body, 1 << 20), status, needle);
        still_serving();
    }
    // Unknown routes and methods are JSON errors too.
    let raw = raw_request(
        server.addr(),
        "GET /models/qa/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert!(raw.contains("\"error\""), "{raw}");
    let raw = raw_request(
        server.addr(),
        "GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        raw.starts_with("HTTP/1.1 404") && raw.contains("routes"),
        "{raw}"
    );
    still_serving();
}

fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    read_available(&mut s)
}

/// What the server sends until it closes the connection (or goes quiet for 10 s).
fn read_available(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
    while let Ok(n @ 1..) = s.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn back_pressure_and_timeout_never_hang() {
    // One slot, a 2 s request limit. A client that sends headers and stalls holds the slot
    // (it is taken before the body is read), so the next request must get 503 at once.
    let server = start(ServerConfig {
        max_jobs: 1,
        request_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    });
    let http = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let qa = http.model(Some("qa")).unwrap();
    let good = good_query(&qa, &key_for(&qa));
    let limit = wire::scores_size(&qa.spec) as u64;

    let mut stalled = TcpStream::connect(server.addr()).unwrap();
    write!(
        stalled,
        "POST /models/qa/score HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        good.len()
    )
    .unwrap();
    stalled.write_all(&good[..100]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    expect_status(http.post_score("qa", &good, limit), 503, "retry after 1");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "503 must be immediate"
    );

    // The stalled request is cut at the time limit, which frees the slot.
    let answer = read_available(&mut stalled);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("longer than the 2.0 s limit"), "{answer}");
    http.post_score("qa", &good, limit).unwrap();

    // Many concurrent clients on one slot: each request succeeds or gets 503, none hangs.
    let t = Instant::now();
    let results: Vec<Result<Vec<u8>, NetError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..5)
                        .map(|_| http.post_score("qa", &good, limit))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(t.elapsed() < TIMEOUT);
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!(ok >= 1);
    for r in results {
        if let Err(e) = r {
            assert!(matches!(e, NetError::Server { status: 503, .. }), "{e}");
        }
    }
    server.shutdown().unwrap();
}

#[test]
fn bounded_load_test_has_no_failed_request() {
    let server = start(ServerConfig::default());
    let http = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let model = http.model(Some("qa")).unwrap();
    let key = key_for(&model);
    let queries: Vec<Array2<f32>> = fixture()
        .audio
        .iter()
        .map(|p| recording_features(p, &model).unwrap())
        .collect();
    // Expected answers from the in-process path (decryption is exact, so they must agree).
    let local = LocalServer {
        served: ServedModel::load(&fixture().models[0], DEFAULT_CHUNKS, None, None).unwrap(),
    };
    let expected: Vec<Option<usize>> = queries
        .iter()
        .map(|q| {
            identify_features(
                q.view(),
                &model,
                &key,
                &local,
                &fhe_shazam::eval::Decision::LOG_PROB_SUM,
            )
            .unwrap()
            .song
            .map(|s| s.index)
        })
        .collect();
    assert_eq!(expected, (0..SONGS).map(Some).collect::<Vec<_>>());

    let spec = LoadSpec {
        clients: 8,
        per_client: 20,
        decision: fhe_shazam::eval::Decision::LOG_PROB_SUM,
        busy_backoff: Duration::from_millis(5),
        max_busy_retries: 10_000,
        request_timeout: TIMEOUT,
    };
    let report = run_load(&server.url(), &model, &key, &queries, &spec).unwrap();
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    assert_eq!(report.succeeded, 160);
    for (q, answer) in &report.answers {
        assert_eq!(*answer, expected[*q]);
    }
    assert!(report.queries_per_s > 0.0 && report.latency_p95_ms >= report.latency_median_ms);
    assert_eq!(http.health().unwrap().jobs_running, 0);
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fhe-shazam"))
}

#[test]
fn cli_serve_identify_and_offline_mode() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let song = 4;
    // Offline: client and server in one process.
    let out = std::process::Command::new(bin())
        .arg("identify")
        .arg(&fixture().audio[song])
        .arg("--model-file")
        .arg(&fixture().models[0])
        .arg("--key-dir")
        .arg(&keys)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"]["song"]["index"], song);
    assert_eq!(v["key"], "generated");

    // A recording shorter than one chunk is a clear error.
    let short = dir.path().join("short.wav");
    write_wav(
        &short,
        &Audio {
            samples: vec![0.1; 2205],
            sample_rate: 22_050,
        },
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .arg("identify")
        .arg(&short)
        .arg("--model-file")
        .arg(&fixture().models[0])
        .arg("--key-dir")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short.wav") && err.contains("shorter than one"),
        "{err}"
    );

    // The real server binary on an ephemeral port, then Ctrl-C.
    let mut server = std::process::Command::new(bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--models"])
        .arg(&fixture().models[0])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = listening_url(&mut server);
    let out = std::process::Command::new(bin())
        .arg("identify")
        .arg(&fixture().audio[song])
        .args(["--server", &url, "--key-dir"])
        .arg(&keys)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = ServedModel::load(&fixture().models[0], DEFAULT_CHUNKS, None, None).unwrap();
    assert_eq!(
        stdout.trim(),
        model.info().catalog[song].display_name(),
        "cached key reused, same answer over HTTP"
    );
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGINT) };
    let status = server.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}

#[test]
fn serving_refuses_float_models_and_duplicate_ids() {
    let dir = tempfile::tempdir().unwrap();
    let float = dir.path().join("float.json");
    let file = ModelFile::load(&fixture().models[0]).unwrap();
    ModelFile::float(
        file.features().clone(),
        file.catalog().clone(),
        file.float_model().clone(),
        None,
    )
    .unwrap()
    .save(&float)
    .unwrap();
    let err = load_models(std::slice::from_ref(&float), DEFAULT_CHUNKS, None, None).unwrap_err();
    assert!(err.to_string().contains("float model"), "{err}");
    // A folder skips what it cannot serve; with nothing left it is an error.
    let err = load_models(&[dir.path().to_path_buf()], DEFAULT_CHUNKS, None, None).unwrap_err();
    assert!(matches!(err, NetError::NoModels(_)), "{err}");
    let twice = [fixture().models[0].clone(), fixture().models[0].clone()];
    assert!(matches!(
        load_models(&twice, DEFAULT_CHUNKS, None, None),
        Err(NetError::DuplicateModel { .. })
    ));
}
