//! End to end, issue 17: on every query of the smoke-robust configuration (its trained 8-bit
//! model, its query lists), the summed circuit ranks songs exactly as the per-chunk
//! log-probability sum — in simulate (the integer circuit) and in execute (real encryption) —
//! and every decrypted score equals the integer circuit's.

use assert_cmd::Command;
use fhe_shazam::audio::LoadOptions;
use fhe_shazam::dataset::{read_query_list, QUERY_LIST_FILE};
use fhe_shazam::eval::vote::Answer;
use fhe_shazam::eval::{queries_from_files, Decision, QueryFile, Rule};
use fhe_shazam::fhe::{simulate, Circuit, FhePlan, Session};
use fhe_shazam::model::ModelFile;
use std::fs;
use std::path::{Path, PathBuf};

fn files_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() == name {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// The ten best songs, and their scores less the best one's (the summed scores equal the
/// log-probability sums up to one constant per query).
fn relative(a: &Answer) -> Vec<(usize, f64)> {
    let top = a.ranking[0].1;
    a.ranking.iter().map(|&(s, v)| (s, v - top)).collect()
}

#[test]
fn summed_scores_rank_every_smoke_robust_query_as_the_chunk_log_prob_sum() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke-robust.toml"))
            .unwrap()
            .replace(
                "data_dir = \"data\"",
                &format!("data_dir = {:?}", dir.path().join("data").to_str().unwrap()),
            );
    let config = dir.path().join("smoke-robust.toml");
    fs::write(&config, text).unwrap();
    let out = dir.path().join("report");
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["reproduce", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();

    let model_path = files_named(dir.path(), "q8.json").remove(0);
    let file = ModelFile::load(&model_path).unwrap();
    let model = file.quantized_model().unwrap();
    let lists = files_named(dir.path(), QUERY_LIST_FILE);
    assert!(!lists.is_empty(), "the run wrote its query lists");
    let files: Vec<QueryFile> = lists
        .iter()
        .flat_map(|l| read_query_list(l).unwrap())
        .map(|q| QueryFile {
            path: q.path,
            truth: None,
        })
        .collect();
    let queries =
        queries_from_files(&files, &LoadOptions::default(), file.features(), 5.0).unwrap();
    let queries: Vec<_> = queries.into_iter().filter(|q| !q.silent).collect();
    assert!(queries.len() >= 40, "{} queries", queries.len());

    let decision = Decision {
        rule: Rule::LogProbSum,
        min_votes: 0,
    };
    let chunks = queries.iter().map(|q| q.features.nrows()).max().unwrap();
    let plan = FhePlan::for_circuit(&model.integer_layer(), Circuit::Summed, chunks).unwrap();
    assert_eq!(plan.layout.chunks(), 1);
    plan.budget.check().unwrap();
    let session = Session::from_plan(&plan).unwrap();
    let mut checked = 0;
    for (i, q) in queries.iter().enumerate() {
        let q_x = model.quantize_input(q.features.view()).unwrap();
        let n = q_x.nrows();
        // Today's decision: every chunk's scores, log-softmax, summed.
        let per_chunk = decision.decide(
            model
                .dequantize(model.integer_scores(q_x.view()).unwrap().view())
                .unwrap()
                .view(),
        );
        let rows = Circuit::Summed.query_rows(q_x.view(), chunks, 0);
        // Simulate: the summed integer circuit in the clear.
        let clear = simulate::clear_scores(&plan.layer, rows.view()).unwrap();
        // Execute: real encryption (Session::run also fails on any score ≠ the circuit's).
        let fhe = session.run(rows.view()).unwrap().scores;
        assert_eq!(fhe, clear, "query {i}: FHE = simulate for every score");
        checked += fhe.len();
        let answer = |scores: &ndarray::Array2<i64>| {
            let totals = model.dequantize_summed(scores.row(0), n).unwrap();
            decision.decide_summed(totals.view(), n).unwrap()
        };
        for (mode, summed) in [("simulate", answer(&clear)), ("execute", answer(&fhe))] {
            let (s, c) = (relative(&summed), relative(&per_chunk));
            assert_eq!(summed.song, per_chunk.song, "query {i} {mode}");
            assert_eq!(
                s.iter().map(|r| r.0).collect::<Vec<_>>(),
                c.iter().map(|r| r.0).collect::<Vec<_>>(),
                "query {i} {mode}: top-10"
            );
            for (a, b) in s.iter().zip(&c) {
                assert!((a.1 - b.1).abs() < 1e-6, "query {i} {mode}: {a:?} vs {b:?}");
            }
        }
    }
    assert_eq!(checked, queries.len() * model.n_classes());
}

#[test]
fn the_vote_rule_on_the_summed_circuit_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args([
            "evaluate",
            "--circuit",
            "summed",
            "--decision",
            "votes",
            "--models",
        ])
        .arg(dir.path().join("no-models"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("--circuit chunks"));
    let config = dir.path().join("c.toml");
    fs::write(
        &config,
        "name = \"x\"\n[evaluation]\ndecision = \"votes\"\ncircuit = \"summed\"\n",
    )
    .unwrap();
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["reproduce", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("r"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("evaluation.circuit"));
    assert!(!dir.path().join("r").exists(), "nothing written");
}
