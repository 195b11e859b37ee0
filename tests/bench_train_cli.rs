//! End to end: `fhe-shazam bench train` on a small extracted corpus, LR and LDA into one
//! folder: the JSON contract, a model that learned its training rows, the summary listing
//! both runs, and clear errors (naming the folder or the field) that write nothing.

use assert_cmd::Command;
use fhe_shazam::dataset::synth::{write_corpus, SynthParams};
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

fn features(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    write_corpus(
        &data,
        &SynthParams {
            songs: 5,
            seconds: 4.0,
            ..SynthParams::default()
        },
        &|| {},
    )
    .unwrap();
    let out = dir.join("features");
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .arg("extract")
        .arg("--dataset")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    out
}

fn bench(features: &Path, out: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["bench", "train", "--features"])
        .arg(features)
        .arg("--out")
        .arg(out)
        .args(args)
        .assert()
}

#[test]
fn lr_and_lda_report_the_contract_and_the_summary_lists_both() {
    let dir = tempfile::tempdir().unwrap();
    let set = features(dir.path());
    let out = dir.path().join("train-bench");
    let mut runs = Vec::new();
    for backend in ["lbfgs", "lda"] {
        let done = bench(
            &set,
            &out,
            &["--backend", backend, "--threads", "1", "--json"],
        )
        .success();
        let r: serde_json::Value = serde_json::from_slice(&done.get_output().stdout).unwrap();
        for key in [
            "seconds",
            "iterations",
            "loss",
            "converged",
            "chunk_accuracy",
            "gradient_max_norm",
            "rows",
            "songs",
        ] {
            assert!(r.get(key).is_some(), "{key} missing: {r}");
        }
        assert_eq!(r["backend"], backend);
        assert_eq!(r["songs"], 5);
        assert_eq!(r["rows"], 5 * 8, "5 songs × 8 chunks of 0.5 s");
        // Five distinct synthetic songs: far above the 20 % of chance on their own rows.
        let acc = r["chunk_accuracy"].as_f64().unwrap();
        assert!(acc > 0.8 && acc <= 1.0, "{backend}: {acc}");
        // Songs of 4 s give 8-chunk queries: the vote may say unknown (below 5 votes), the
        // summed log-probabilities always name a song.
        for key in ["seed_top1", "summed_top1"] {
            let v = r[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key}: {v}");
        }
        assert!(r["summed_top1"].as_f64().unwrap() > 0.8, "{r}");
        assert!(r["loss"].as_f64().unwrap() > 0.0);
        runs.push(r);
    }
    assert_eq!(runs[0]["converged"], true);
    assert_eq!(runs[1]["iterations"], 0, "closed form");
    // The optimum of the LR objective is LR's, not LDA's.
    assert!(runs[0]["loss"].as_f64().unwrap() < runs[1]["loss"].as_f64().unwrap());
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("| lbfgs |") && summary.contains("| lda |"),
        "{summary}"
    );
    // Adding the last 2 songs by their means to an LDA of the other 3.
    let done = bench(
        &set,
        &out,
        &[
            "--backend",
            "lda",
            "--add-songs",
            "2",
            "--threads",
            "1",
            "--json",
        ],
    )
    .success();
    let r: serde_json::Value = serde_json::from_slice(&done.get_output().stdout).unwrap();
    let add = &r["add_songs"];
    assert_eq!(add["songs"], 2);
    for key in [
        "chunk_accuracy",
        "chunk_accuracy_added_songs",
        "refit_chunk_accuracy_added_songs",
    ] {
        let v = add[key].as_f64().unwrap();
        assert!(v > 0.5 && v <= 1.0, "{key}: {add}");
    }
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("Adding songs to an LDA catalogue"),
        "{summary}"
    );
    let files = fs::read_dir(&out).unwrap().count();
    assert_eq!(files, 4, "three run files and the summary");
}

#[test]
fn bad_input_is_a_clear_error_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("train-bench");
    let missing = dir.path().join("no-such-features");
    bench(&missing, &out, &[])
        .failure()
        .stderr(predicate::str::contains("no-such-features"));
    let set = features(dir.path());
    bench(&set, &out, &["--tol=-1"])
        .failure()
        .stderr(predicate::str::contains("tol"));
    bench(&set, &out, &["--threads", "0"])
        .failure()
        .stderr(predicate::str::contains("at least 1"));
    bench(&set, &out, &["--add-songs", "2"])
        .failure()
        .stderr(predicate::str::contains("--backend lda"));
    bench(&set, &out, &["--backend", "lda", "--add-songs", "5"])
        .failure()
        .stderr(predicate::str::contains("between 1 and 4"));
    assert!(!out.exists(), "a failed run writes no report");
}
