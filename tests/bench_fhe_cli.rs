//! End to end: `fhe-shazam bench fhe` on a small shape, both circuits into one folder: the JSON
//! contract, every score checked and right, the summed reply ~J times smaller, the summary
//! side by side, and a clear error for an impossible shape.

use assert_cmd::Command;
use predicates::prelude::*;
use std::fs;
use std::path::Path;

fn bench(out: &Path, circuit: &str) -> serde_json::Value {
    let run = Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args([
            "bench",
            "fhe",
            "--classes",
            "150",
            "--queries",
            "3",
            "--json",
        ])
        .args(["--circuit", circuit, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&run.stdout).unwrap()
}

#[test]
fn both_circuits_are_exact_and_the_summary_sets_them_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fhe-bench");
    let chunks = bench(&out, "chunks");
    let summed = bench(&out, "summed");
    for r in [&chunks, &summed] {
        for key in [
            "encrypt_ms",
            "server_ms",
            "decrypt_ms",
            "bytes_up",
            "bytes_down",
            "scores_checked",
            "wrong_scores",
            "circuit",
            "classes",
            "log2_failure",
        ] {
            assert!(r.get(key).is_some(), "{key} missing: {r}");
        }
        assert_eq!(r["wrong_scores"], 0);
        assert_eq!(r["classes"], 150);
        assert!(r["log2_failure"].as_f64().unwrap() <= -40.0);
    }
    assert_eq!(chunks["circuit"], "chunks");
    assert_eq!(summed["circuit"], "summed");
    assert_eq!(chunks["scores_checked"], 3 * 30 * 150);
    assert_eq!(summed["scores_checked"], 3 * 150);
    assert_eq!(
        summed["bytes_up"], chunks["bytes_up"],
        "one seeded GLWE either way"
    );
    let (down_c, down_s) = (
        chunks["bytes_down"].as_f64().unwrap(),
        summed["bytes_down"].as_f64().unwrap(),
    );
    assert!(down_c > 20.0 * down_s, "{down_c} vs {down_s}");

    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    let rows: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("| 150 |"))
        .collect();
    assert_eq!(rows.len(), 2, "{summary}");
    assert!(
        rows[1].contains("summed") && rows[1].contains("×"),
        "{summary}"
    );
    assert!(summary.contains("Downloading the model") && summary.contains("Concrete ML"));
    assert!(out.join("summed-c150-d20-j30-t1.json").is_file());
}

#[test]
fn a_shape_that_cannot_be_planned_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // J·d = 3000 > N = 2048: one query does not fit one polynomial.
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["bench", "fhe", "--features", "100", "--chunks", "30"])
        .args(["--circuit", "chunks", "--queries", "1", "--out"])
        .arg(dir.path().join("b"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not fit one polynomial"));
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["bench", "fhe", "--n-bits", "1", "--queries", "1", "--out"])
        .arg(dir.path().join("b"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("n_bits 1"));
    assert!(!dir.path().join("b").exists(), "nothing written on failure");
}
