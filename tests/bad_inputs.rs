//! The standing bad-input suite: the real binary, driven through every kind of ordinary
//! mistake and damaged file we know of — audio, datasets, configs, feature stores, models,
//! keys, ciphertexts and HTTP requests. For each kind it asserts the exit code (or HTTP
//! status), that the message names the file or field and the problem, that nothing panicked,
//! and that the outputs that existed before are byte-identical afterwards.
//!
//! With `RELIABILITY_REPORT=path.md` set, the table of what the user sees is written there
//! (`experiments/reliability.sh` does so for `reports/reliability/`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

mod common;
use common::listening_url;

use fhe_shazam::fhe::wire;
use fhe_shazam::net::{KeyStore, ServedModel, DEFAULT_CHUNKS};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fhe-shazam"))
}

/// What every case starts from: a 4-song corpus, its features, its models (n_bits 8), a
/// query set, a cached key and a previous reproduce report. Cases copy what they damage.
struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    features: PathBuf,
    models: PathBuf,
    queries: PathBuf,
    keys: PathBuf,
    song: PathBuf,
}

fn run(args: &[OsString]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn ok(args: Vec<OsString>) {
    let out = run(&args);
    assert!(
        out.status.success(),
        "setup {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(OsString::from($a)),*] };
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        let features = root.join("features");
        let models = root.join("models");
        let queries = root.join("queries");
        let keys = root.join("keys");
        ok(args![
            "synth",
            "--songs",
            "4",
            "--seconds",
            "8",
            "--seed",
            "5",
            "--out",
            &data
        ]);
        ok(args!["extract", "--dataset", &data, "--out", &features]);
        ok(args![
            "train",
            "--features",
            &features,
            "--out",
            &models,
            "--n-bits",
            "8"
        ]);
        ok(args![
            "queries",
            "--dataset",
            &data,
            "--out",
            &queries,
            "--conditions",
            "aligned,noise10",
            "--seconds",
            "5"
        ]);
        let song = first_audio(&data);
        ok(args![
            "identify",
            &song,
            "--model-file",
            models.join("q8.json"),
            "--key-dir",
            &keys
        ]);
        World {
            _dir: dir,
            root,
            data,
            features,
            models,
            queries,
            keys,
            song,
        }
    })
}

fn first_audio(data: &Path) -> PathBuf {
    let mut files = walk(data)
        .into_keys()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect::<Vec<_>>();
    files.sort();
    data.join(&files[0])
}

/// Every file under `dir` (relative path → bytes); a missing folder is empty.
fn walk(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in walk(from) {
        let dst = to.join(rel);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::write(dst, bytes).unwrap();
    }
}

fn write_wav(path: &Path, seconds: f32, amplitude: f32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22_050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..(seconds * 22_050.0) as usize {
        let t = n as f32 / 22_050.0;
        let v = amplitude * (std::f32::consts::TAU * 440.0 * t).sin();
        w.write_sample((v * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// What the user saw for one kind of bad input.
struct Seen {
    area: &'static str,
    kind: &'static str,
    /// The command, with the temporary folder shown as `$T`.
    command: String,
    /// Exit code, or HTTP status for requests.
    code: i32,
    /// The message: the error line(s) of stderr, or the HTTP body.
    message: String,
    /// The line of the message that says what was wrong (for the report).
    shown: String,
    /// Pre-existing outputs byte-identical afterwards.
    unchanged: bool,
    /// What was wrong with the outcome ("" = as expected).
    problems: Vec<String>,
}

/// What a case expects.
struct Expect {
    code: i32,
    /// Every needle must occur in the message (the file or field, and the problem).
    needles: Vec<String>,
}

fn expect(code: i32, needles: &[&dyn AsRef<str>]) -> Expect {
    Expect {
        code,
        needles: needles.iter().map(|n| (*n).as_ref().to_string()).collect(),
    }
}

/// Runs the binary with `args`, checking `expect` and that every folder of `guard` is
/// byte-identical afterwards.
fn cli_case(
    area: &'static str,
    kind: &'static str,
    args: Vec<OsString>,
    guard: &[&Path],
    expect: Expect,
) -> Seen {
    let before: Vec<_> = guard.iter().map(|g| walk(g)).collect();
    let out = run(&args);
    let after: Vec<_> = guard.iter().map(|g| walk(g)).collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    let message = if expect.code == 0 {
        format!("{}{}", stdout.trim_end(), stderr)
    } else {
        stderr.clone()
    };
    judge(
        area,
        kind,
        command_line(&args),
        code,
        message,
        before == after,
        &expect,
    )
}

fn judge(
    area: &'static str,
    kind: &'static str,
    command: String,
    code: i32,
    message: String,
    unchanged: bool,
    expect: &Expect,
) -> Seen {
    let mut problems = Vec::new();
    if code != expect.code {
        problems.push(format!("exit/status {code}, expected {}", expect.code));
    }
    for n in &expect.needles {
        if !message.contains(n.as_str()) {
            problems.push(format!("message does not mention {n:?}"));
        }
    }
    if message.contains("panicked at") || code == 101 {
        problems.push("panicked".into());
    }
    if !unchanged {
        problems.push("a pre-existing output changed".into());
    }
    let lines = || message.lines().map(str::trim).filter(|l| !l.is_empty());
    let shown = expect
        .needles
        .iter()
        .find_map(|n| lines().find(|l| l.contains(n.as_str())))
        .or_else(|| lines().next())
        .unwrap_or("")
        .to_string();
    Seen {
        shown,
        area,
        kind,
        command,
        code,
        message,
        unchanged,
        problems,
    }
}

fn command_line(args: &[OsString]) -> String {
    let root = world().root.to_string_lossy().into_owned();
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().replace(&root, "$T"))
        .collect();
    format!("fhe-shazam {}", words.join(" "))
}

fn case_dir(name: &str) -> PathBuf {
    let dir = world().root.join("cases").join(name);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn dataset_cases() -> Vec<Seen> {
    let w = world();
    let mut seen = Vec::new();
    let missing = w.root.join("no-such-dataset");
    seen.push(cli_case(
        "dataset",
        "dataset folder missing",
        args!["extract", "--dataset", &missing, "--out", &w.features],
        &[&w.features],
        expect(1, &[&"no-such-dataset", &"does not exist"]),
    ));
    let file = case_dir("file-dataset").join("songs.txt");
    fs::write(&file, "not a folder").unwrap();
    seen.push(cli_case(
        "dataset",
        "dataset path is a file",
        args!["extract", "--dataset", &file, "--out", &w.features],
        &[&w.features],
        expect(1, &[&"songs.txt", &"not a folder"]),
    ));
    let empty = case_dir("empty-dataset");
    fs::write(empty.join("README"), "no audio here").unwrap();
    seen.push(cli_case(
        "dataset",
        "dataset without audio files",
        args!["extract", "--dataset", &empty, "--out", &w.features],
        &[&w.features],
        expect(1, &[&"empty-dataset", &"no audio files"]),
    ));
    // Every file fails: the existing feature set must survive (it used to be replaced by an
    // empty one).
    let broken = case_dir("all-broken");
    fs::create_dir_all(broken.join("audio/000")).unwrap();
    fs::write(broken.join("audio/000/000001.mp3"), b"").unwrap();
    fs::write(broken.join("audio/000/000002.wav"), b"RIFF\x10\0\0\0WAVE").unwrap();
    seen.push(cli_case(
        "dataset",
        "every song fails, over an existing feature set",
        args!["extract", "--dataset", &broken, "--out", &w.features],
        &[&w.features],
        expect(
            1,
            &[&"no song of", &"could be extracted", &"left as it was"],
        ),
    ));
    seen.push(cli_case(
        "arguments",
        "extract --num-songs 0",
        args![
            "extract",
            "--dataset",
            &w.data,
            "--out",
            &w.features,
            "--num-songs",
            "0"
        ],
        &[&w.features],
        expect(2, &[&"--num-songs", &"at least 1"]),
    ));
    seen.push(cli_case(
        "arguments",
        "extract --max-seconds 0",
        args![
            "extract",
            "--dataset",
            &w.data,
            "--out",
            &w.features,
            "--max-seconds",
            "0"
        ],
        &[&w.features],
        expect(2, &[&"--max-seconds", &"positive"]),
    ));
    // A dangling link, a truncated WAV and a silent song among good songs: each is one
    // failed file with a plain reason, the rest is extracted.
    let mixed = case_dir("mixed");
    copy_dir(&w.data, &mixed);
    let audio = mixed.join("audio/000");
    std::os::unix::fs::symlink(mixed.join("gone.wav"), audio.join("000901.wav")).unwrap();
    let good = fs::read(first_audio(&w.data)).unwrap();
    fs::write(audio.join("000902.wav"), &good[..good.len() / 40]).unwrap();
    write_wav(&audio.join("000903.wav"), 3.0, 0.0);
    let out = case_dir("mixed-features");
    seen.push(cli_case(
        "audio",
        "dangling symlink among the songs",
        args!["extract", "--dataset", &mixed, "--out", &out],
        &[],
        expect(0, &[&"000901.wav", &"broken symbolic link", &"4 songs"]),
    ));
    seen.push(cli_case(
        "audio",
        "truncated WAV among the songs",
        args!["extract", "--dataset", &mixed, "--out", &out],
        &[],
        expect(0, &[&"000902.wav", &"too short"]),
    ));
    seen.push(cli_case(
        "audio",
        "silent song (all zero)",
        args!["extract", "--dataset", &mixed, "--out", &out],
        &[],
        expect(0, &[&"000903.wav", &"silent", &"left out of the catalogue"]),
    ));
    let garbage_csv = case_dir("bad-metadata").join("tracks.csv");
    fs::write(&garbage_csv, "\u{0}\u{1}binary,,\n\"unterminated\n").unwrap();
    seen.push(cli_case(
        "dataset",
        "unreadable tracks.csv",
        args![
            "extract",
            "--dataset",
            &w.data,
            "--out",
            &w.features,
            "--metadata",
            &garbage_csv
        ],
        &[&w.features],
        expect(1, &[&"tracks.csv"]),
    ));
    seen
}

fn query_set_cases() -> Vec<Seen> {
    let w = world();
    let mut seen = Vec::new();
    let broken = w.root.join("cases/all-broken");
    seen.push(cli_case(
        "dataset",
        "queries: every song fails, over an existing query set",
        args!["queries", "--dataset", &broken, "--out", &w.queries],
        &[&w.queries],
        expect(1, &[&"no song of", &"gave queries", &"left as it was"]),
    ));
    let foreign = case_dir("foreign-out");
    fs::write(foreign.join("thesis.tex"), "precious").unwrap();
    seen.push(cli_case(
        "dataset",
        "queries --out holding other files",
        args!["queries", "--dataset", &w.data, "--out", &foreign],
        &[&foreign],
        expect(1, &[&"thesis.tex", &"not part of a query set"]),
    ));
    seen
}

fn config_cases() -> Vec<Seen> {
    let w = world();
    let mut seen = Vec::new();
    let dir = case_dir("configs");
    let report = dir.join("report");
    fs::create_dir_all(&report).unwrap();
    fs::write(report.join("summary.md"), "an earlier report").unwrap();
    let config = |kind: &'static str, file: &str, toml: &str, needles: &[&dyn AsRef<str>]| {
        let path = dir.join(file);
        fs::write(&path, toml).unwrap();
        cli_case(
            "config",
            kind,
            args!["reproduce", "--config", &path, "--out", &report],
            &[&report],
            expect(1, needles),
        )
    };
    seen.push(config(
        "TOML syntax error",
        "syntax.toml",
        "name = \"x\"\n[dataset\nnum_songs = 4\n",
        &[&"syntax.toml", &"line 2"],
    ));
    seen.push(config(
        "unknown key",
        "unknown.toml",
        "name = \"x\"\n[dataset]\nnum_sngs = 4\n",
        &[&"unknown.toml", &"num_sngs"],
    ));
    seen.push(config(
        "num_songs = 0",
        "zero.toml",
        "name = \"x\"\n[dataset]\nnum_songs = 0\n",
        &[&"zero.toml", &"dataset.num_songs", &"is 0"],
    ));
    seen.push(config(
        "negative max_seconds",
        "negative.toml",
        "name = \"x\"\n[dataset]\nmax_seconds = -1.0\n",
        &[&"negative.toml", &"dataset.max_seconds", &"positive"],
    ));
    seen.push(config(
        "empty n_bits grid with FHE modes",
        "nobits.toml",
        "name = \"x\"\n[quantization]\nn_bits = []\n",
        &[&"nobits.toml", &"quantization.n_bits", &"empty"],
    ));
    seen.push(config(
        "synthetic corpus of 0 songs",
        "synth0.toml",
        "name = \"x\"\n[dataset.synth]\nsongs = 0\n",
        &[&"synth0.toml", &"dataset.synth", &"songs = 0"],
    ));
    let missing = dir.join("absent.toml");
    seen.push(cli_case(
        "config",
        "config file missing",
        args!["reproduce", "--config", &missing, "--out", &report],
        &[&report],
        expect(1, &[&"absent.toml", &"No such file"]),
    ));
    // A run that fails after the config is read (every song broken): the previous report and
    // the caches stay.
    let failing = dir.join("failing.toml");
    fs::write(
        &failing,
        format!(
            "name = \"failing\"\n[dataset]\npath = {:?}\n[output]\ndata_dir = {:?}\n",
            w.root.join("cases/all-broken"),
            dir.join("cache")
        ),
    )
    .unwrap();
    seen.push(cli_case(
        "config",
        "reproduce on a dataset where every song fails",
        args!["reproduce", "--config", &failing, "--out", &report],
        &[&report],
        expect(1, &[&"no song of", &"could be extracted"]),
    ));
    seen
}

fn feature_cases() -> Vec<Seen> {
    let w = world();
    let mut seen = Vec::new();
    let out = case_dir("feature-models");
    let damaged =
        |kind: &'static str, name: &str, damage: &dyn Fn(&Path), needles: &[&dyn AsRef<str>]| {
            let dir = case_dir(name);
            copy_dir(&w.features, &dir);
            damage(&dir);
            cli_case(
                "features",
                kind,
                args![
                    "train",
                    "--features",
                    &dir,
                    "--out",
                    &w.models,
                    "--n-bits",
                    "8"
                ],
                &[&w.models, &out],
                expect(1, needles),
            )
        };
    seen.push(damaged(
        "feature folder without sidecar",
        "no-sidecar",
        &|d| fs::remove_file(d.join("features.json")).unwrap(),
        &[&"features.json"],
    ));
    seen.push(damaged(
        "sidecar of another version",
        "sidecar-version",
        &|d| {
            fs::write(
                d.join("features.json"),
                "{\"format\":\"fhe-shazam-features\",\"version\":99}",
            )
            .unwrap()
        },
        &[&"features.json", &"version"],
    ));
    seen.push(damaged(
        "truncated features.npy",
        "npy-truncated",
        &|d| {
            let bytes = fs::read(d.join("features.npy")).unwrap();
            fs::write(d.join("features.npy"), &bytes[..bytes.len() / 2]).unwrap()
        },
        &[&"features.npy"],
    ));
    seen.push(damaged(
        "labels of another length",
        "labels-short",
        &|d| {
            let bytes = fs::read(d.join("labels.npy")).unwrap();
            // Drop the last label: a valid .npy header would still claim the old length, so
            // rewrite the array with ndarray-npy.
            let labels: ndarray::Array1<u32> = ndarray_npy::read_npy(d.join("labels.npy")).unwrap();
            let shorter = labels.slice(ndarray::s![..labels.len() - 1]).to_owned();
            ndarray_npy::write_npy(d.join("labels.npy"), &shorter).unwrap();
            assert_ne!(fs::read(d.join("labels.npy")).unwrap(), bytes);
        },
        &[&"features.npy", &"disagree"],
    ));
    seen
}

fn train_cases() -> Vec<Seen> {
    let w = world();
    let out = case_dir("train-out");
    let train = |kind: &'static str, bits: &str, code: i32, needles: &[&dyn AsRef<str>]| {
        cli_case(
            "arguments",
            kind,
            args![
                "train",
                "--features",
                &w.features,
                "--out",
                &out,
                "--n-bits",
                bits
            ],
            &[&w.models],
            expect(code, needles),
        )
    };
    vec![
        train(
            "train --n-bits 12..2 (reversed)",
            "12..2",
            2,
            &[&"12..2", &"reversed"],
        ),
        train("train --n-bits 30", "30", 2, &[&"'30'", &"1..=24"]),
        train(
            "train --n-bits 16 (over the FHE noise budget)",
            "16",
            0,
            &[&"n_bits=16", &"not possible under FHE", &"noise budget"],
        ),
        cli_case(
            "arguments",
            "bench extract --songs 0",
            args![
                "bench",
                "extract",
                "--dataset",
                &w.data,
                "--songs",
                "0",
                "--out",
                case_dir("bench")
            ],
            &[],
            expect(2, &[&"--songs", &"at least 1"]),
        ),
    ]
}

fn model_cases() -> Vec<Seen> {
    let w = world();
    let mut seen = Vec::new();
    let report = case_dir("evaluate-report");
    fs::write(report.join("results.md"), "an earlier evaluation").unwrap();
    let damaged = |kind: &'static str,
                   name: &str,
                   content: &dyn Fn(&[u8]) -> Vec<u8>,
                   needles: &[&dyn AsRef<str>]| {
        let dir = case_dir(name);
        copy_dir(&w.models, &dir);
        let q8 = fs::read(dir.join("q8.json")).unwrap();
        fs::write(dir.join("q8.json"), content(&q8)).unwrap();
        cli_case(
            "models",
            kind,
            args![
                "evaluate",
                "--models",
                &dir,
                "--features",
                &w.features,
                "--n-bits",
                "8",
                "--modes",
                "clear",
                "--out",
                &report
            ],
            &[&report],
            expect(1, needles),
        )
    };
    seen.push(damaged(
        "truncated model file",
        "model-truncated",
        &|b| b[..b.len() / 2].to_vec(),
        &[&"q8.json"],
    ));
    seen.push(damaged(
        "model file of another format version",
        "model-version",
        &|b| {
            let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
            v["version"] = 99.into();
            serde_json::to_vec(&v).unwrap()
        },
        &[&"q8.json", &"version"],
    ));
    seen.push(damaged(
        "model file that is not JSON",
        "model-binary",
        &|_| vec![0xff, 0x00, 0x13, 0x37],
        &[&"q8.json"],
    ));
    let other = case_dir("other-features");
    let three = case_dir("three-songs");
    copy_dir(&w.data, &three);
    ok(args![
        "extract",
        "--dataset",
        &three,
        "--out",
        &other,
        "--num-songs",
        "3"
    ]);
    seen.push(cli_case(
        "models",
        "models of another catalogue",
        args![
            "evaluate",
            "--models",
            &w.models,
            "--features",
            &other,
            "--n-bits",
            "8",
            "--modes",
            "clear",
            "--out",
            &report
        ],
        &[&report, &w.models],
        expect(1, &[&"4 songs", &"3"]),
    ));
    seen.push(cli_case(
        "models",
        "serving a float model",
        args![
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--models",
            w.models.join("float.json")
        ],
        &[&w.models],
        expect(1, &[&"float.json", &"float"]),
    ));
    seen
}

fn key_cases() -> Vec<Seen> {
    let w = world();
    let mut seen = Vec::new();
    let model = w.models.join("q8.json");
    let identify = |kind: &'static str, keys: &Path, needles: &[&dyn AsRef<str>]| {
        cli_case(
            "keys",
            kind,
            args![
                "identify",
                &w.song,
                "--model-file",
                &model,
                "--key-dir",
                keys
            ],
            &[keys, &w.keys],
            expect(1, needles),
        )
    };
    let open = case_dir("keys-open");
    copy_dir(&w.keys, &open);
    let key_file = walk(&open).into_keys().next().expect("a cached key");
    let key_path = open.join(&key_file);
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o700)).unwrap();
    seen.push(identify(
        "secret key readable by others (0644)",
        &open,
        &[&key_file.to_string_lossy(), &"chmod 600"],
    ));
    let shared = case_dir("keys-shared");
    copy_dir(&w.keys, &shared);
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    seen.push(identify(
        "key folder writable by others (0777)",
        &shared,
        &[&"keys-shared", &"chmod"],
    ));
    let damaged = case_dir("keys-damaged");
    copy_dir(&w.keys, &damaged);
    fs::set_permissions(&damaged, fs::Permissions::from_mode(0o700)).unwrap();
    let path = damaged.join(&key_file);
    fs::write(&path, b"definitely not a key").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    seen.push(identify(
        "damaged key file",
        &damaged,
        &[&key_file.to_string_lossy(), &"--new-key"],
    ));
    let file = case_dir("keys-file").join("keys");
    fs::write(&file, "a file, not a folder").unwrap();
    seen.push(identify(
        "--key-dir is a regular file",
        &file,
        &[&"keys", &"not a folder"],
    ));
    seen
}

fn recording_cases() -> Vec<Seen> {
    let w = world();
    let model = w.models.join("q8.json");
    let dir = case_dir("recordings");
    let silent = dir.join("silence.wav");
    write_wav(&silent, 10.0, 0.0);
    let quiet = dir.join("hum.wav");
    write_wav(&quiet, 10.0, 0.0001); // −80 dBFS
    let corrupt = dir.join("noise.mp3");
    fs::write(&corrupt, b"ID3\x04\0\0\0\0\0\0 not really an mp3").unwrap();
    let id = |kind: &'static str, rec: &Path, code: i32, needles: &[&dyn AsRef<str>]| {
        cli_case(
            "audio",
            kind,
            args![
                "identify",
                rec,
                "--model-file",
                &model,
                "--key-dir",
                &w.keys
            ],
            &[&w.keys],
            expect(code, needles),
        )
    };
    vec![
        id(
            "silent recording",
            &silent,
            0,
            &[&"unknown", &"silent recording"],
        ),
        id(
            "near-silent recording (−80 dBFS)",
            &quiet,
            0,
            &[&"unknown", &"silent recording", &"dBFS"],
        ),
        id("corrupt recording", &corrupt, 1, &[&"noise.mp3"]),
        id(
            "recording file missing",
            &dir.join("absent.wav"),
            1,
            &[&"absent.wav"],
        ),
    ]
}

fn serve_argument_cases() -> Vec<Seen> {
    let w = world();
    let model = w.models.join("q8.json");
    let serve = |kind: &'static str, extra: &[&str], code: i32, needles: &[&dyn AsRef<str>]| {
        let mut a = args!["serve", "--addr", "127.0.0.1:0", "--models", &model];
        a.extend(extra.iter().map(OsString::from));
        let seen = cli_case("arguments", kind, a, &[&w.models], expect(code, needles));
        let listened = seen.message.contains("listening");
        let mut seen = seen;
        if listened {
            seen.problems
                .push("said \"listening\" before failing".into());
        }
        seen
    };
    vec![
        serve(
            "serve --chunks 0",
            &["--chunks", "0"],
            2,
            &[&"--chunks", &"at least 1"],
        ),
        serve(
            "serve --max-jobs 0",
            &["--max-jobs", "0"],
            2,
            &[&"--max-jobs", &"at least 1"],
        ),
        serve(
            "serve --models of a missing file",
            &["--models", "/nonexistent/q9.json"],
            1,
            &[&"q9.json"],
        ),
        serve(
            "serve --model-privacy above 60 bits",
            &["--model-privacy", "61"],
            2,
            &[&"--model-privacy", &"61"],
        ),
        serve(
            "serve --model-privacy the model cannot afford",
            &["--model-privacy", "60"],
            1,
            &[&"q8.json", &"smaller λ"],
        ),
        serve(
            "serve --max-queries-per-key without --model-privacy",
            &["--max-queries-per-key", "5"],
            2,
            &[&"--max-queries-per-key", &"--model-privacy"],
        ),
        serve(
            "serve --max-queries-per-key 0",
            &["--model-privacy", "12", "--max-queries-per-key", "0"],
            2,
            &[&"--max-queries-per-key", &"at least 1"],
        ),
    ]
}

/// The real `serve` binary on an ephemeral port.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(model: &Path) -> Self {
        let mut child = Command::new(bin())
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--max-body-bytes",
                "200000",
                "--models",
            ])
            .arg(model)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let url = listening_url(&mut child);
        let addr = url.trim_start_matches("http://").to_string();
        Self { child, addr }
    }

    /// Sends one request; returns (status, body).
    fn request(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (i32, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        let _ = s.write_all(body);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(-1);
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kind, method, path, body, expected status, needles of the reply.
type RequestCase = (
    &'static str,
    &'static str,
    String,
    Vec<u8>,
    i32,
    Vec<&'static str>,
);

fn http_cases() -> Vec<Seen> {
    let w = world();
    let model_path = w.models.join("q8.json");
    let server = Server::start(&model_path);
    let served = ServedModel::load(&model_path, DEFAULT_CHUNKS, None, None).unwrap();
    let id = served.info().id.clone();
    let spec = served.spec().clone();
    let dir = case_dir("http-key");
    let key = KeyStore::new(&dir)
        .load_or_generate(&spec.params, false)
        .unwrap()
        .0;
    let (j, d) = (spec.layout.chunks(), spec.layout.features());
    let zeros = ndarray::Array2::<i64>::zeros((j, d));
    let good = wire::encode_query(&key.encrypt_query(&spec, zeros.view()).unwrap());
    let score = format!("/models/{id}/score");
    let bin_type = "application/octet-stream";

    let mut other_params = good.clone();
    other_params[6..8].copy_from_slice(&2u16.to_le_bytes());
    let mut wrong_version = good.clone();
    wrong_version[4..6].copy_from_slice(&9u16.to_le_bytes());
    let mut other_model = good.clone();
    // The model id follows magic, version, parameter set id, five u32 sizes and p.
    for b in &mut other_model[29..37] {
        *b ^= 0x5a;
    }
    let cases: Vec<RequestCase> = vec![
        (
            "garbage body",
            "POST",
            score.clone(),
            b"hello".to_vec(),
            400,
            vec!["malformed"],
        ),
        (
            "empty body",
            "POST",
            score.clone(),
            Vec::new(),
            400,
            vec!["truncated"],
        ),
        (
            "truncated ciphertext",
            "POST",
            score.clone(),
            good[..good.len() / 2].to_vec(),
            400,
            vec!["truncated"],
        ),
        (
            "ciphertext with trailing bytes",
            "POST",
            score.clone(),
            [good.clone(), vec![0]].concat(),
            400,
            vec!["trailing"],
        ),
        (
            "ciphertext of another wire version",
            "POST",
            score.clone(),
            wrong_version,
            400,
            vec!["version 9"],
        ),
        (
            "ciphertext for another parameter set",
            "POST",
            score.clone(),
            other_params,
            422,
            vec!["parameter set id"],
        ),
        (
            "ciphertext for another model",
            "POST",
            score.clone(),
            other_model,
            422,
            vec!["does not match"],
        ),
        (
            "unknown model id",
            "POST",
            "/models/nope/score".into(),
            good.clone(),
            404,
            vec!["unknown model", "nope", "served models"],
        ),
        (
            "body over the size limit",
            "POST",
            score.clone(),
            vec![0u8; 200_001],
            413,
            vec!["limit"],
        ),
        (
            "wrong method on the score route",
            "GET",
            score.clone(),
            Vec::new(),
            405,
            vec!["error"],
        ),
        (
            "unknown route",
            "GET",
            "/nothing".into(),
            Vec::new(),
            404,
            vec!["routes", "POST /keys"],
        ),
        (
            "public key for a server without model privacy",
            "POST",
            "/keys".into(),
            b"not a key".to_vec(),
            400,
            vec!["no model on this server is served with model privacy"],
        ),
    ];
    let mut seen = Vec::new();
    for (kind, method, path, body, status, needles) in cases {
        let (got, message) = server.request(method, &path, bin_type, &body);
        let mut s = judge(
            "http",
            kind,
            format!("{method} {path} ({} bytes)", body.len()),
            got,
            message,
            true,
            &Expect {
                code: status,
                needles: needles.iter().map(|n| n.to_string()).collect(),
            },
        );
        // The server must keep answering honest queries after each bad request.
        let (after, _) = server.request("POST", &score, bin_type, &good);
        if after != 200 {
            s.problems
                .push(format!("an honest query after it got {after}"));
        }
        seen.push(s);
    }
    // A silent recording through the real server answers "unknown".
    let silent = w.root.join("cases/recordings/silence.wav");
    seen.push(cli_case(
        "http",
        "silent recording through the service",
        args![
            "identify",
            &silent,
            "--server",
            format!("http://{}", server.addr),
            "--key-dir",
            &w.keys
        ],
        &[&w.keys],
        expect(0, &[&"unknown", &"silent recording"]),
    ));
    seen
}

fn report_table(seen: &[Seen]) -> String {
    let mut md = String::from(
        "| # | area | bad input | command / request | exit / HTTP | what the user sees | earlier outputs |\n|---|---|---|---|---|---|---|\n",
    );
    for (i, s) in seen.iter().enumerate() {
        let first = s
            .shown
            .replace(&*world().root.to_string_lossy(), "$T")
            .replace('|', "\\|");
        let first: String = first.chars().take(220).collect();
        md += &format!(
            "| {} | {} | {} | `{}` | {} | {} | {} |\n",
            i + 1,
            s.area,
            s.kind,
            s.command.replace('|', "\\|"),
            s.code,
            first,
            if s.unchanged { "unchanged" } else { "CHANGED" }
        );
    }
    md
}

#[test]
fn every_kind_of_bad_input_gets_a_clear_answer_and_loses_nothing() {
    let mut seen = Vec::new();
    seen.extend(dataset_cases());
    seen.extend(query_set_cases());
    seen.extend(config_cases());
    seen.extend(feature_cases());
    seen.extend(train_cases());
    seen.extend(model_cases());
    seen.extend(key_cases());
    seen.extend(recording_cases());
    seen.extend(serve_argument_cases());
    seen.extend(http_cases());

    if let Some(path) = std::env::var_os("RELIABILITY_REPORT") {
        let path = PathBuf::from(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, report_table(&seen)).unwrap();
    }
    let failed: Vec<String> = seen
        .iter()
        .filter(|s| !s.problems.is_empty())
        .map(|s| {
            format!(
                "[{}] {}: {}\n    command: {}\n    message: {}",
                s.area,
                s.kind,
                s.problems.join("; "),
                s.command,
                s.message.trim()
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} kinds failed:\n{}",
        failed.len(),
        seen.len(),
        failed.join("\n")
    );
    assert!(seen.len() >= 25, "only {} kinds", seen.len());
}
