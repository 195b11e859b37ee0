//! End to end: `queries --shard i/n` and `evaluate --queries --shard i/n`, each run as three
//! separate processes, and `merge` of their folders: exactly what one unsharded run writes;
//! foreign, missing, repeated and mixed shards are refused by name, leaving the output alone.

use assert_cmd::Command;
use fhe_shazam::dataset::synth::{write_corpus, SynthParams};
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

mod common;
use common::{run, tree};

/// A synthetic corpus of `songs` clips of `seconds`; returns its folder and the song files in
/// sorted (catalogue) order.
fn corpus(dir: &Path, songs: usize, seconds: f64) -> (PathBuf, Vec<PathBuf>) {
    let data = dir.join("data");
    let songs = write_corpus(
        &data,
        &SynthParams {
            songs,
            seconds,
            ..SynthParams::default()
        },
        &|| {},
    )
    .unwrap();
    let files = songs.iter().map(|s| data.join(&s.path)).collect();
    (data, files)
}

/// Runs `fhe-shazam args… --shard i/3 --out dirs[i]` for i = 0, 1, 2 as three processes at
/// once, as a job array does.
fn three_shards(args: &[&str], dirs: &[PathBuf]) {
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("fhe-shazam"))
                .args(args)
                .args(["--shard", &format!("{i}/3"), "--out"])
                .arg(out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let output = c.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `merge dirs… --out out`.
fn merge(dirs: &[&Path], out: &Path) -> assert_cmd::assert::Assert {
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .arg("merge")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .assert()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn three_query_set_shards_merge_into_the_unsharded_set() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, files) = corpus(tmp.path(), 7, 9.0);
    // An unreadable song in the middle shard: its failure must be merged in order too.
    fs::write(&files[3], b"not audio").unwrap();
    let args = ["queries", "--dataset", s(&data), "--seconds", "6"];
    let whole = tmp.path().join("whole");
    run(&[&args[..], &["--out", s(&whole)]].concat());
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("shard{i}")))
        .collect();
    three_shards(&args, &shards);

    // Each shard records its part of the catalogue, and its files are the unsharded run's.
    let whole_tree = tree(&whole);
    assert_eq!(
        whole_tree.len(),
        6 * 8 + 3,
        "6 songs × 8 conditions + 3 files"
    );
    let mut wavs = 0;
    for (i, dir) in shards.iter().enumerate() {
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("queryset.json")).unwrap()).unwrap();
        let shard = &manifest["shard"];
        assert_eq!(shard["shard"]["index"], i, "{manifest}");
        assert_eq!(shard["shard"]["count"], 3, "{manifest}");
        assert_eq!(shard["catalog_songs"], 7, "{manifest}");
        assert_eq!(shard["catalog_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(manifest["catalog_size"], 7, "{manifest}");
        for (file, bytes) in tree(dir) {
            if file.extension().is_some_and(|e| e == "wav") {
                assert_eq!(whole_tree.get(&file), Some(&bytes), "{}", file.display());
                wavs += 1;
            }
        }
    }
    assert_eq!(wavs, 6 * 8, "the shards hold every WAV once");

    let merged = tmp.path().join("merged");
    let rev: Vec<&Path> = shards.iter().rev().map(PathBuf::as_path).collect();
    merge(&rev, &merged).success();
    let merged_tree = tree(&merged);
    assert_eq!(
        merged_tree.keys().collect::<Vec<_>>(),
        whole_tree.keys().collect::<Vec<_>>()
    );
    for (file, bytes) in &whole_tree {
        assert!(merged_tree[file] == *bytes, "{} differs", file.display());
    }

    // Refusals name the folder at fault and leave the merged set as it was.
    let refused = |dirs: &[&Path], needles: &[&str]| {
        let assert = merge(dirs, &merged).code(1);
        let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        for needle in needles {
            assert!(err.contains(needle), "{needle:?} not in: {err}");
        }
        assert!(tree(&merged) == whole_tree, "the merged set changed");
    };
    let [a, b, c] = [&shards[0], &shards[1], &shards[2]].map(PathBuf::as_path);
    refused(&[a, c], &["shard(s) 1/3 missing"]);
    refused(
        &[a, b, b, c],
        &[
            "shard 1/3 is given twice",
            &b.join("queryset.json").display().to_string(),
        ],
    );
    refused(
        &[a, &whole, c],
        &[
            "not a shard",
            &whole.join("queryset.json").display().to_string(),
        ],
    );
    let other = tmp.path().join("other-seed");
    run(&[
        &args[..],
        &["--seed", "7", "--shard", "1/3", "--out", s(&other)],
    ]
    .concat());
    refused(
        &[a, &other, c],
        &[
            "query-set parameters: not the same",
            &other.join("queryset.json").display().to_string(),
        ],
    );
    let fewer = tmp.path().join("fewer");
    run(&[
        &args[..],
        &["--num-songs", "6", "--shard", "1/3", "--out", s(&fewer)],
    ]
    .concat());
    refused(&[a, &fewer, c], &["catalogue (its songs' paths)"]);
    let four = tmp.path().join("four");
    run(&[&args[..], &["--shard", "1/4", "--out", s(&four)]].concat());
    refused(&[a, &four, c], &["shard count", "1/4"]);
    // A feature-store shard among query-set shards.
    let features = tmp.path().join("features0");
    run(&[
        "extract",
        "--dataset",
        s(&data),
        "--shard",
        "0/3",
        "--out",
        s(&features),
    ]);
    refused(
        &[&features, b, c],
        &["merge one kind of shard at a time", s(b)],
    );
    refused(
        &[a, &tmp.path().join("nowhere")],
        &["nowhere", "holds none of features.json"],
    );
}

/// The results of an unsharded `evaluate --queries` run and of three merged shards.
#[test]
fn three_evaluation_shards_merge_into_the_unsharded_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = corpus(tmp.path(), 6, 9.0);
    let (features, models, queries) = (
        tmp.path().join("features"),
        tmp.path().join("models"),
        tmp.path().join("queries"),
    );
    // The last song stays out of the catalogue: its queries are impostors.
    run(&[
        "extract",
        "--dataset",
        s(&data),
        "--num-songs",
        "5",
        "--out",
        s(&features),
    ]);
    run(&[
        "train",
        "--features",
        s(&features),
        "--n-bits",
        "6,8",
        "--out",
        s(&models),
    ]);
    run(&[
        "queries",
        "--dataset",
        s(&data),
        "--seconds",
        "6",
        "--conditions",
        "aligned,noise10,phone",
        "--out",
        s(&queries),
    ]);
    let list = queries.join("query_list.csv");
    let args = [
        "evaluate",
        "--queries",
        s(&list),
        "--models",
        s(&models),
        "--n-bits",
        "6,8",
        "--modes",
        "clear,simulate",
    ];
    let whole = tmp.path().join("whole");
    run(&[&args[..], &["--out", s(&whole)]].concat());
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("eval{i}")))
        .collect();
    three_shards(&args, &shards);
    let sidecar: serde_json::Value =
        serde_json::from_slice(&fs::read(shards[2].join("evaluation-shard.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["shard"]["index"], 2, "{sidecar}");
    assert_eq!(sidecar["list_queries"], 18, "{sidecar}");
    assert_eq!(sidecar["list_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        sidecar["model_files"].as_array().unwrap().len(),
        3,
        "{sidecar}"
    );
    assert!(
        !shards[2].join("results.json").exists(),
        "a shard is not a report"
    );

    let merged = tmp.path().join("merged");
    let rev: Vec<&Path> = shards.iter().rev().map(PathBuf::as_path).collect();
    merge(&rev, &merged).success();
    let whole_tree = tree(&whole);
    let merged_tree = tree(&merged);
    assert_eq!(
        merged_tree.keys().collect::<Vec<_>>(),
        whole_tree.keys().collect::<Vec<_>>()
    );
    assert!(whole_tree.contains_key(Path::new("det_phone.png")));
    // open_set.csv and the plots: the same bytes.
    for (file, bytes) in &whole_tree {
        let name = file.to_string_lossy();
        if name != "results.json" && name != "summary.md" {
            assert!(merged_tree[file] == *bytes, "{name} differs");
        }
    }
    let mut reader = csv::Reader::from_path(whole.join("open_set.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(
        rows.len(),
        3 * 5,
        "3 conditions × float + n_bits 6, 8 × clear, simulate"
    );
    for r in &rows {
        // 5 catalogue songs and 1 impostor per condition, all in one report.
        assert_eq!(
            (&r[col("catalogue_queries")], &r[col("impostor_queries")]),
            ("5", "1")
        );
    }
    // results.json: the same but for the provenance (date, command, machine).
    let json = |dir: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("results.json")).unwrap()).unwrap();
        assert!(v["provenance"]["date"].is_string());
        v.as_object_mut().unwrap().remove("provenance");
        v
    };
    assert_eq!(json(&merged), json(&whole));
    // summary.md: the same tables; only the provenance footer differs.
    let body = |dir: &Path| {
        let md = fs::read_to_string(dir.join("summary.md")).unwrap();
        md.lines()
            .filter(|l| !l.starts_with("Machine: ") && !l.starts_with("Command: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(body(&whole).contains("| phone"), "{}", body(&whole));
    assert_eq!(body(&merged), body(&whole));

    // Refusals name the folder at fault and leave the merged report as it was.
    let before = fs::read(merged.join("open_set.csv")).unwrap();
    let refused = |dirs: &[&Path], needles: &[&str]| {
        let assert = merge(dirs, &merged).code(1);
        let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        for needle in needles {
            assert!(err.contains(needle), "{needle:?} not in: {err}");
        }
        assert_eq!(fs::read(merged.join("open_set.csv")).unwrap(), before);
    };
    let [a, b, c] = [&shards[0], &shards[1], &shards[2]].map(PathBuf::as_path);
    refused(&[a, b], &["shard(s) 2/3 missing"]);
    refused(&[a, b, b, c], &["shard 1/3 is given twice"]);
    let other = tmp.path().join("eval-other");
    run(&[
        &args[..],
        &["--seconds", "5", "--shard", "1/3", "--out", s(&other)],
    ]
    .concat());
    refused(
        &[a, &other, c],
        &[
            "query seconds: not the same",
            &other.join("evaluation-shard.json").display().to_string(),
        ],
    );
    let fewer_bits = tmp.path().join("eval-bits");
    let mut eight = args.to_vec();
    eight[6] = "8";
    run(&[&eight[..], &["--shard", "1/3", "--out", s(&fewer_bits)]].concat());
    refused(&[a, &fewer_bits, c], &["model files", s(&fewer_bits)]);
    refused(
        &[a, b, &queries],
        &["merge one kind of shard at a time", s(&queries)],
    );
    // A damaged shard: an error naming its file, not a panic.
    let broken = tmp.path().join("eval-broken");
    fs::create_dir(&broken).unwrap();
    for f in ["evaluation-shard.json", "outcomes.json"] {
        fs::copy(b.join(f), broken.join(f)).unwrap();
    }
    let outcomes = fs::read_to_string(broken.join("outcomes.json")).unwrap();
    fs::write(
        broken.join("outcomes.json"),
        &outcomes[..outcomes.len() / 2],
    )
    .unwrap();
    refused(
        &[a, &broken, c],
        &[
            &broken.join("outcomes.json").display().to_string(),
            "not valid JSON",
        ],
    );
    // Model privacy draws one flood stream per batch: refused with --shard, before any work.
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(args)
        .args(["--model-privacy", "12", "--shard", "0/3", "--out"])
        .arg(tmp.path().join("private"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--model-privacy"));
    assert!(!tmp.path().join("private").exists());
}

/// deploy/run-local.sh runs deploy/slurm/queries.sbatch and then evaluate.sbatch as three array
/// tasks each (separate processes) and merge.sbatch after each: the merged query set is the
/// unsharded one, and the merged evaluation's table is the unsharded one.
#[test]
fn the_slurm_query_and_evaluation_scripts_run_through_the_local_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = corpus(tmp.path(), 5, 9.0);
    let (features, models) = (tmp.path().join("features"), tmp.path().join("models"));
    run(&[
        "extract",
        "--dataset",
        s(&data),
        "--num-songs",
        "4",
        "--out",
        s(&features),
    ]);
    run(&[
        "train",
        "--features",
        s(&features),
        "--n-bits",
        "8",
        "--out",
        s(&models),
    ]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let driver = |envs: &[(&str, &str)]| {
        let status = std::process::Command::new("bash")
            .arg(root.join("deploy/run-local.sh"))
            .envs(envs.iter().copied())
            .env("N", "3")
            .env("FHE_SHAZAM", assert_cmd::cargo::cargo_bin("fhe-shazam"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{envs:?}");
    };
    let query_args = "--seconds 6 --conditions aligned,noise10";
    let cluster = tmp.path().join("cluster-queries");
    driver(&[
        ("TASK", "queries"),
        ("DATASET", s(&data)),
        ("OUT", s(&cluster)),
        ("QUERY_ARGS", query_args),
    ]);
    let whole = tmp.path().join("whole-queries");
    let mut args = vec!["queries", "--dataset", s(&data), "--out", s(&whole)];
    args.extend(query_args.split(' '));
    run(&args);
    let merged_tree = tree(&cluster.join("merged"));
    assert_eq!(merged_tree.len(), 5 * 2 + 3);
    assert!(merged_tree == tree(&whole), "the merged query set differs");

    let list = cluster.join("merged/query_list.csv");
    let eval_args = "--n-bits 8 --modes clear,simulate";
    let evaluation = tmp.path().join("cluster-evaluation");
    driver(&[
        ("TASK", "evaluate"),
        ("LIST", s(&list)),
        ("MODELS", s(&models)),
        ("OUT", s(&evaluation)),
        ("EVAL_ARGS", eval_args),
    ]);
    let whole = tmp.path().join("whole-evaluation");
    let mut args = vec!["evaluate", "--queries", s(&list), "--models", s(&models)];
    args.extend(eval_args.split(' '));
    args.extend(["--out", s(&whole)]);
    run(&args);
    let table = fs::read_to_string(whole.join("open_set.csv")).unwrap();
    assert_eq!(table.lines().count(), 1 + 2 * 3, "{table}");
    assert_eq!(
        fs::read_to_string(evaluation.join("merged/open_set.csv")).unwrap(),
        table
    );
}
