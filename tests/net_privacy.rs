//! The encrypted service with model privacy on loopback: a real server on 127.0.0.1:0 (and
//! the real binaries) serving a small quantized model planned with `ModelPrivacy`, real keys
//! and real encryption, no mocks. Public-key registration, the key header, the per-key query
//! budget, and replies that decrypt to the exact scores rounded to multiples of 2^ρ.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::listening_url;

use fhe_shazam::audio::{write_wav, Audio};
use fhe_shazam::dataset::{Catalog, Song};
use fhe_shazam::eval::Decision;
use fhe_shazam::features::FeatureParams;
use fhe_shazam::fhe::{simulate, wire, Circuit, ClientKey, FhePlan, ModelPrivacy};
use fhe_shazam::model::{FloatModel, ModelFile, QuantOptions, QuantizedModel};
use fhe_shazam::net::{
    identify_features, public_key_id, ClientModel, HttpClient, LocalServer, ServedModel,
    ServerConfig, ServerHandle,
};
use fhe_shazam::NetError;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SONGS: usize = 6;
/// J: small, so the summed circuit's scores stay small and the test fast.
const CHUNKS: usize = 8;
/// λ: large enough that the flood costs rounding bits on this small model.
const PRIVACY: ModelPrivacy = ModelPrivacy { flood_bits: 20 };
const TIMEOUT: Duration = Duration::from_secs(30);

/// A quantized model of SONGS songs on the default 20 features: song c is the direction of
/// feature c.
fn model_file() -> ModelFile {
    let d = FeatureParams::default().dim();
    let mut w = Array2::<f64>::zeros((d, SONGS));
    for c in 0..SONGS {
        w[[c, c]] = 1.0;
    }
    let float = FloatModel::new(w, Array1::zeros(SONGS)).unwrap();
    let x = Array2::from_shape_fn(
        (2 * SONGS, d),
        |(r, c)| {
            if c == r % SONGS {
                10.0
            } else {
                -1.0
            }
        },
    );
    let q = QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(8)).unwrap();
    let catalog = Catalog {
        songs: (0..SONGS)
            .map(|i| Song {
                index: i,
                track_id: format!("{i:06}"),
                path: format!("{i}.wav").into(),
                title: Some(format!("Song {i}")),
                artist: Some("Band".into()),
            })
            .collect(),
    };
    ModelFile::quantized(FeatureParams::default(), catalog, q, None).unwrap()
}

fn served(id: &str, privacy: Option<ModelPrivacy>) -> ServedModel {
    ServedModel::from_model_file(
        id,
        &model_file(),
        Path::new("toy.json"),
        CHUNKS,
        Some(Circuit::Summed),
        privacy,
    )
    .unwrap()
}

fn start(models: Vec<ServedModel>, config: ServerConfig) -> ServerHandle {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ServerHandle::start(listener, models, config).unwrap()
}

/// Five chunks pointing at `song`.
fn features_of(song: usize) -> Array2<f32> {
    Array2::from_shape_fn((5, 20), |(_, c)| if c == song { 10.0 } else { -1.0 })
}

/// A valid encrypted query of `rows` (quantized, summed) for `model`, and those rows.
fn query(model: &ClientModel, key: &ClientKey, x: &Array2<f32>) -> (Vec<u8>, Array2<i64>) {
    let q = model.quantizer.quantize(x.view());
    let rows = model.spec.circuit.query_rows(q.view(), CHUNKS, 0);
    let bytes = wire::encode_query(&key.encrypt_query(&model.spec, rows.view()).unwrap());
    (bytes, rows)
}

/// Registers a fresh public key of `key`: its id and bytes.
fn register_bytes(http: &HttpClient, key: &ClientKey) -> (String, Vec<u8>) {
    let public = wire::encode_public_key(&key.public_key());
    let registration = http.register_key(&public).unwrap();
    assert_eq!(registration.key_id, public_key_id(&public));
    (registration.key_id, public)
}

fn register(http: &HttpClient, key: &ClientKey) -> String {
    register_bytes(http, key).0
}

fn expect_status<T: std::fmt::Debug>(result: Result<T, NetError>, status: u16, needles: &[&str]) {
    match result {
        Err(NetError::Server {
            status: s, message, ..
        }) => {
            assert_eq!(s, status, "{message}");
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "{message:?} should mention {needle:?}"
                );
            }
        }
        other => panic!("expected HTTP {status}, got {other:?}"),
    }
}

#[test]
fn a_private_model_identifies_over_http_with_scores_within_its_rounding() {
    let server = start(
        vec![served("private", Some(PRIVACY))],
        ServerConfig::default(),
    );
    let http = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let model = http.model(Some("private")).unwrap();
    let rho = model.spec.rounding_bits;
    assert!(model.spec.private && rho > 0, "ρ = {rho}");

    // The whole client path: the public key is registered on first use, then reused.
    let key = ClientKey::generate(&model.spec.params).unwrap();
    for song in 0..SONGS {
        let id = identify_features(
            features_of(song).view(),
            &model,
            &key,
            &http,
            &Decision::LOG_PROB_SUM,
        )
        .unwrap();
        assert_eq!(id.answer(), format!("Song {song} — Band"));
        assert_eq!(id.queries_left, None, "no budget set");
    }
    let keys = http.health().unwrap().public_keys.unwrap();
    assert_eq!((keys.registered, keys.max_queries_per_key), (1, None));

    // The scores themselves, against the exact integer circuit of the same plan.
    let file = model_file();
    let layer = file.quantized_model().unwrap().integer_layer();
    let plan = FhePlan::for_circuit(&layer, Circuit::Summed, CHUNKS).unwrap();
    let key_id = register(&http, &key);
    let limit = wire::scores_size(&model.spec) as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut rounded = 0;
    for _ in 0..4 {
        let x = Array2::from_shape_fn((CHUNKS, 20), |_| rng.gen_range(-30.0f32..30.0));
        let (bytes, rows) = query(&model, &key, &x);
        let reply = http
            .post_score_with_key("private", &bytes, Some(&key_id), limit)
            .unwrap();
        let scores = key
            .decrypt_scores(
                &model.spec,
                &wire::decode_scores(&reply.bytes, &model.spec).unwrap(),
            )
            .unwrap();
        let exact = simulate::clear_scores(&plan.layer, rows.view()).unwrap();
        simulate::compare_rounded(&exact, &scores, rho).unwrap();
        rounded += exact.iter().zip(&scores).filter(|(e, s)| e != s).count();
        assert!(scores.iter().all(|s| s % (1 << rho) == 0), "{scores:?}");
    }
    assert!(
        rounded > 0,
        "the flood and rounding are visible in the scores"
    );

    // The server restarts on the same address and forgets its keys: the client registers
    // its key again on the 404 and is answered.
    let addr = server.addr();
    server.shutdown().unwrap();
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let restarted = ServerHandle::start(
        listener,
        vec![served("private", Some(PRIVACY))],
        ServerConfig::default(),
    )
    .unwrap();
    let id = identify_features(
        features_of(3).view(),
        &model,
        &key,
        &http,
        &Decision::LOG_PROB_SUM,
    )
    .unwrap();
    assert_eq!(id.answer(), "Song 3 — Band");
    assert_eq!(http.health().unwrap().public_keys.unwrap().registered, 1);
    restarted.shutdown().unwrap();

    // In one process (the offline form) a private model takes the public key per query.
    let local = LocalServer {
        served: served("private", Some(PRIVACY)),
    };
    let id = identify_features(
        features_of(5).view(),
        &model,
        &key,
        &local,
        &Decision::LOG_PROB_SUM,
    )
    .unwrap();
    assert_eq!(id.answer(), "Song 5 — Band");
}

#[test]
fn a_private_model_needs_a_registered_key_and_a_plain_one_ignores_it() {
    let server = start(
        vec![served("private", Some(PRIVACY)), served("plain", None)],
        ServerConfig::default(),
    );
    let http = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let private = http.model(Some("private")).unwrap();
    let plain = http.model(Some("plain")).unwrap();
    assert!(private.spec.private && !plain.spec.private);
    let key = ClientKey::generate(&private.spec.params).unwrap();
    let (good, _) = query(&private, &key, &features_of(1));
    let limit = wire::scores_size(&private.spec) as u64;

    expect_status(
        http.post_score("private", &good, limit),
        400,
        &[
            "model privacy",
            "register a public key (POST /keys)",
            "X-Fhe-Key-Id",
        ],
    );
    let unknown = "ab".repeat(32);
    expect_status(
        http.post_score_with_key("private", &good, Some(&unknown), limit),
        404,
        &["unknown public key", &unknown],
    );
    // Registered, the same query is answered.
    let key_id = register(&http, &key);
    let reply = http
        .post_score_with_key("private", &good, Some(&key_id), limit)
        .unwrap();
    wire::decode_scores(&reply.bytes, &private.spec).unwrap();
    // A malformed query with a good key is still a 400 about the query.
    expect_status(
        http.post_score_with_key("private", b"junk", Some(&key_id), limit),
        400,
        &["malformed"],
    );

    // The plain model answers with or without a key id, even an unknown one.
    let (plain_query, _) = query(&plain, &key, &features_of(1));
    let plain_limit = wire::scores_size(&plain.spec) as u64;
    for id in [None, Some(unknown.as_str()), Some(key_id.as_str())] {
        let reply = http
            .post_score_with_key("plain", &plain_query, id, plain_limit)
            .unwrap();
        assert_eq!(reply.queries_left, None);
        wire::decode_scores(&reply.bytes, &plain.spec).unwrap();
    }
    server.shutdown().unwrap();
}

#[test]
fn each_key_scores_at_most_its_budget() {
    let server = start(
        vec![served("private", Some(PRIVACY))],
        ServerConfig {
            max_queries_per_key: Some(3),
            ..ServerConfig::default()
        },
    );
    let http = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let model = http.model(Some("private")).unwrap();
    let limit = wire::scores_size(&model.spec) as u64;
    let params = model.spec.params;
    let (a, b) = (
        ClientKey::generate(&params).unwrap(),
        ClientKey::generate(&params).unwrap(),
    );
    let ((id_a, public_a), id_b) = (register_bytes(&http, &a), register(&http, &b));
    let (query_a, _) = query(&model, &a, &features_of(0));
    let (query_b, _) = query(&model, &b, &features_of(0));

    for left in [2, 1, 0] {
        let reply = http
            .post_score_with_key("private", &query_a, Some(&id_a), limit)
            .unwrap();
        assert_eq!(reply.queries_left, Some(left));
    }
    let spent = format!("key {id_a} has used its 3 queries");
    expect_status(
        http.post_score_with_key("private", &query_a, Some(&id_a), limit),
        429,
        &[&spent],
    );
    // Registering the key again gives the same id and does not reset its count.
    let again = http.register_key(&public_a).unwrap();
    assert_eq!(
        (again.key_id.as_str(), again.max_queries),
        (id_a.as_str(), Some(3))
    );
    expect_status(
        http.post_score_with_key("private", &query_a, Some(&id_a), limit),
        429,
        &[&spent],
    );
    // Another key still works.
    let reply = http
        .post_score_with_key("private", &query_b, Some(&id_b), limit)
        .unwrap();
    assert_eq!(reply.queries_left, Some(2));
    // Every query accepted for scoring counts, a malformed one too.
    expect_status(
        http.post_score_with_key("private", b"junk", Some(&id_b), limit),
        400,
        &["malformed"],
    );
    let reply = http
        .post_score_with_key("private", &query_b, Some(&id_b), limit)
        .unwrap();
    assert_eq!(reply.queries_left, Some(0));

    // Concurrent queries of one key never overshoot: of 16, exactly 3 are scored (a 503,
    // all slots busy, does not count and is retried).
    let c = ClientKey::generate(&params).unwrap();
    let id_c = register(&http, &c);
    let (query_c, _) = query(&model, &c, &features_of(2));
    let scored: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut scored = 0;
                    for _ in 0..2 {
                        loop {
                            match http.post_score_with_key("private", &query_c, Some(&id_c), limit)
                            {
                                Ok(_) => scored += 1,
                                Err(NetError::Server { status: 503, .. }) => continue,
                                Err(NetError::Server { status: 429, .. }) => {}
                                Err(e) => panic!("{e}"),
                            }
                            break;
                        }
                    }
                    scored
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(scored, 3);

    // The client path: the budget shows in each answer, and a spent one is a clear error.
    let client = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let d = ClientKey::generate(&params).unwrap();
    let identify = || {
        identify_features(
            features_of(4).view(),
            &model,
            &d,
            &client,
            &Decision::LOG_PROB_SUM,
        )
    };
    for left in [2, 1, 0] {
        let id = identify().unwrap();
        assert_eq!(id.answer(), "Song 4 — Band");
        assert_eq!(id.queries_left, Some(left));
    }
    match identify() {
        Err(e @ NetError::QueryBudgetSpent { queries: 3, .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("the server's query budget for this key is spent (3 queries)"),
                "{message}"
            );
        }
        other => panic!("expected a spent budget, got {other:?}"),
    }
    let keys = http.health().unwrap().public_keys.unwrap();
    assert_eq!((keys.registered, keys.max_queries_per_key), (4, Some(3)));
    server.shutdown().unwrap();
}

#[test]
fn malformed_keys_and_a_full_registry_are_refused() {
    let server = start(
        vec![served("private", Some(PRIVACY))],
        ServerConfig {
            max_keys: 1,
            ..ServerConfig::default()
        },
    );
    let http = HttpClient::new(&server.url(), TIMEOUT).unwrap();
    let model = http.model(Some("private")).unwrap();
    let key = ClientKey::generate(&model.spec.params).unwrap();
    let public = wire::encode_public_key(&key.public_key());

    let mut other_params = public.clone();
    other_params[6..8].copy_from_slice(&2u16.to_le_bytes()); // parameter set id
    let cases: Vec<(Vec<u8>, u16, &[&str])> = vec![
        (
            public[..public.len() / 2].to_vec(),
            400,
            &["public key", "truncated"],
        ),
        (Vec::new(), 400, &["public key", "truncated"]),
        (b"hello, not a key".to_vec(), 400, &["public key", "magic"]),
        (
            [public.clone(), vec![0]].concat(),
            400,
            &["public key", "trailing"],
        ),
        (other_params, 422, &["public key", "parameter set id"]),
    ];
    for (body, status, needles) in cases {
        expect_status(http.register_key(&body), status, needles);
    }
    // None of them took the one place.
    let first = http.register_key(&public).unwrap().key_id;
    assert_eq!(http.register_key(&public).unwrap().key_id, first);
    let other = wire::encode_public_key(&key.public_key());
    expect_status(
        http.register_key(&other),
        503,
        &["limit of 1 public keys", "--max-keys"],
    );
    server.shutdown().unwrap();

    // A server without private models needs no keys.
    let plain = start(vec![served("plain", None)], ServerConfig::default());
    let http = HttpClient::new(&plain.url(), TIMEOUT).unwrap();
    expect_status(
        http.register_key(&public),
        400,
        &["no model on this server is served with model privacy"],
    );
    assert!(http.health().unwrap().public_keys.is_none());
    plain.shutdown().unwrap();
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fhe-shazam"))
}

/// The real binaries: `serve --model-privacy` and `identify` over HTTP. Each `identify` run
/// registers a fresh public key, so a budget of one query per key answers both runs.
#[test]
fn cli_serves_with_model_privacy_and_identify_registers_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("toy.json");
    model_file().save(&model_path).unwrap();
    let song = dir.path().join("tone.wav");
    write_wav(
        &song,
        &Audio {
            samples: (0..44_100)
                .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 22_050.0).sin())
                .collect(),
            sample_rate: 22_050,
        },
    )
    .unwrap();

    // The budget needs model privacy.
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--max-queries-per-key",
            "2",
        ])
        .arg("--models")
        .arg(&model_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model-privacy"));

    let mut server = std::process::Command::new(bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--chunks", "8"])
        .args(["--circuit", "summed", "--model-privacy", "20"])
        .args(["--max-queries-per-key", "1", "--models"])
        .arg(&model_path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = listening_url(&mut server);
    let http = HttpClient::new(&url, TIMEOUT).unwrap();
    assert!(http.model(None).unwrap().spec.private);
    for _ in 0..2 {
        let out = std::process::Command::new(bin())
            .arg("identify")
            .arg(&song)
            .args(["--server", &url, "--json", "--key-dir"])
            .arg(dir.path().join("keys"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["result"]["queries_left"], 0, "{v}");
    }
    assert_eq!(http.health().unwrap().public_keys.unwrap().registered, 2);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGINT) };
    assert!(server.wait().unwrap().success());
}
