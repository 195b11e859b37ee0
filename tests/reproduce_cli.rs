//! End to end: `fhe-shazam reproduce` on the tiny smoke config — synthetic corpus, features,
//! models, clear / simulate / real FHE, report — then again from the caches.

use assert_cmd::Command;
use predicates::prelude::*;
use std::fs;
use std::path::Path;

fn smoke_config(dir: &Path) -> std::path::PathBuf {
    config_in(dir, "smoke")
}

/// configs/NAME.toml with its caches under `dir`.
fn config_in(dir: &Path, name: &str) -> std::path::PathBuf {
    let text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.toml")),
    )
    .unwrap();
    let data = dir.join("data");
    let text = text.replace(
        "data_dir = \"data\"",
        &format!("data_dir = {:?}", data.to_str().unwrap()),
    );
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path
}

/// A report CSV's header and rows.
fn read_csv(path: &Path) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    (headers, reader.records().map(|r| r.unwrap()).collect())
}

fn reproduce(config: &Path, out: &Path) -> String {
    let output = Command::cargo_bin("fhe-shazam")
        .unwrap()
        .arg("reproduce")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "reproduce failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn smoke_experiment_end_to_end_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let config = smoke_config(dir.path());
    let out = dir.path().join("report");
    let stdout = reproduce(&config, &out);
    assert!(stdout.contains("Accuracy (FHE)"), "{stdout}");

    let csv = fs::read_to_string(out.join("results.csv")).unwrap();
    let (headers, rows) = read_csv(&out.join("results.csv"));
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(
        rows.len(),
        1 + 2 * 3,
        "float + n_bits {{4, 8}} × {{clear, simulate, execute}}"
    );
    for r in rows.iter().filter(|r| &r[col("mode")] == "execute") {
        assert_eq!(
            &r[col("top1")],
            &r[col("simulate_top1_same_queries")],
            "FHE accuracy must equal simulate"
        );
        assert!(r[col("bytes_up")].parse::<usize>().unwrap() > 16_000);
    }
    let float = rows.iter().find(|r| &r[col("model")] == "float").unwrap();
    assert!(
        float[col("top1")].parse::<f64>().unwrap() > 0.5,
        "6 distinct songs should mostly be identified"
    );
    for f in [
        "results.json",
        "summary.md",
        "config.toml",
        "accuracy_vs_nbits.svg",
        "accuracy_vs_nbits.png",
        "latency_vs_nbits.png",
        "bytes_vs_nbits.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("not the FMA figure"),
        "synthetic data must be labelled as such"
    );
    assert!(!summary.contains("cached models reused"));

    // Second run: corpus, features and models come from the caches; same results.
    reproduce(&config, &out);
    let again = fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(again.contains("cached models reused"), "{again}");
    let csv_again = fs::read_to_string(out.join("results.csv")).unwrap();
    let acc = |s: &str| {
        s.lines()
            .map(|l| l.split(',').take(13).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        acc(&csv),
        acc(&csv_again),
        "accuracy columns must not change on a cached re-run"
    );
}

#[test]
fn robust_smoke_experiment_reports_every_condition() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), "smoke-robust");
    let out = dir.path().join("report");
    let stdout = reproduce(&config, &out);
    assert!(stdout.contains("Top-1 per condition"), "{stdout}");
    let conditions = [
        "aligned", "offset", "noise20", "noise10", "noise5", "phone", "reverb", "speed",
    ];
    let (headers, rows) = read_csv(&out.join("results.csv"));
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(
        rows.len(),
        conditions.len() * 5,
        "float + n_bits 8 × 3 modes + landmark per condition"
    );
    let row = |c: &str, model: &str, mode: &str| {
        rows.iter()
            .find(|r| {
                &r[col("condition")] == c && &r[col("model")] == model && &r[col("mode")] == mode
            })
            .unwrap_or_else(|| panic!("no {model} {mode} row for {c}"))
    };
    for c in conditions {
        let of = |model: &str, mode: &str| row(c, model, mode);
        let exe = of("quantized", "execute");
        assert_eq!(&exe[col("queries")], "3", "execute_limit = 3");
        assert_eq!(
            &exe[col("top1")],
            &exe[col("simulate_top1_same_queries")],
            "{c}: FHE = simulate"
        );
        assert_eq!(&of("float", "clear")[col("queries")], "6");
        assert_eq!(
            &of("landmark", "clear")[col("queries")],
            "6",
            "{c}: the landmark baseline answers the same queries"
        );
    }
    let landmark_aligned = row("aligned", "landmark", "clear");
    assert!(
        landmark_aligned[col("top1")].parse::<f64>().unwrap() >= 0.5,
        "landmark baseline on clean queries of 6 songs"
    );
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("Landmark baseline (Wang 2003") && summary.contains("index of 6 songs"),
        "{summary}"
    );
    let aligned = row("aligned", "float", "clear");
    assert!(
        aligned[col("top1")].parse::<f64>().unwrap() >= 0.5,
        "clean queries of 6 songs"
    );
    assert!(out.join("accuracy_by_condition.png").is_file());
    // The query set was written once, with its CSV, and is reused by the second run.
    let queries: Vec<_> = fs::read_dir(dir.path().join("data/queries"))
        .unwrap()
        .collect();
    assert_eq!(queries.len(), 1);
    reproduce(&config, &out);
    assert_eq!(
        fs::read_dir(dir.path().join("data/queries"))
            .unwrap()
            .count(),
        1
    );

    // The report records the run's peak memory, and `scale-report` reads it back.
    assert!(summary.contains("Peak resident memory:"), "{summary}");
    let scale = dir.path().join("scale/summary.md");
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["scale-report", out.to_str().unwrap(), "--out"])
        .arg(&scale)
        .assert()
        .success();
    let md = fs::read_to_string(&scale).unwrap();
    let line = md
        .lines()
        .find(|l| l.starts_with("| smoke-robust | 6 | ") && l.contains(" %"))
        .unwrap_or_else(|| panic!("one accuracy line for the 6-song report: {md}"));
    assert_eq!(
        line.matches(" %").count(),
        8 * 3,
        "float, FHE and landmark for each of the 8 conditions: {line}"
    );
    assert!(dir
        .path()
        .join("scale/summary_accuracy_noise5.png")
        .is_file());
    assert!(dir.path().join("scale/summary_fhe_latency.svg").is_file());
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["scale-report", dir.path().join("nowhere").to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("results.json"));
}

#[test]
fn unknown_config_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    fs::write(&path, "name = \"x\"\n[quantization]\nnbits = [8]\n").unwrap();
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["reproduce", "--config"])
        .arg(&path)
        .assert()
        .failure()
        .stderr(predicates::str::contains("bad.toml").and(predicates::str::contains("nbits")));
}

#[test]
fn open_set_experiment_calibrates_thresholds_and_measures_false_matches() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), "smoke-open-set");
    let out = dir.path().join("report");
    let stdout = reproduce(&config, &out);
    assert!(
        stdout.contains("Open set: songs not in the catalogue"),
        "{stdout}"
    );
    let (headers, rows) = read_csv(&out.join("open_set.csv"));
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(
        rows.len(),
        2 * 3,
        "2 conditions × float, n_bits=8, landmark"
    );
    let num = |r: &csv::StringRecord, c: &str| r[col(c)].parse::<f64>().unwrap();
    for r in &rows {
        // 12 songs: 3 calibration + 3 impostors kept out, 6 in the catalogue.
        assert_eq!(&r[col("catalogue_queries")], "6", "{r:?}");
        assert_eq!(&r[col("impostor_queries")], "3", "{r:?}");
        let (id, mis) = (num(r, "identification"), num(r, "misidentification"));
        assert!(id <= num(r, "closed_set_top1") + 1e-12, "{r:?}");
        assert!(id + mis <= 1.0 + 1e-12, "{r:?}");
        assert!((0.0..=1.0).contains(&num(r, "false_match")), "{r:?}");
    }
    // One threshold per model, the same in every condition.
    for model in ["float", "n_bits=8", "landmark"] {
        let t: Vec<&str> = rows
            .iter()
            .filter(|r| &r[col("model")] == model)
            .map(|r| &r[col("threshold")])
            .collect();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], t[1], "{model}");
    }
    for c in ["aligned", "noise10"] {
        assert!(out.join(format!("det_{c}.png")).exists());
    }
    // The closed-set rows cover the catalogue only: 6 songs, not 12.
    let results = fs::read_to_string(out.join("results.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(results.as_bytes());
    let q = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "queries")
        .unwrap();
    for r in reader.records() {
        assert_eq!(&r.unwrap()[q], "6");
    }

    // `evaluate --queries` on the query lists the run wrote (catalogue and outsider sets), with
    // the thresholds the run stored in the model files.
    let mut lists = Vec::new();
    let mut models = None;
    let mut stack = vec![dir.path().join("data")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() == "query_list.csv" {
                lists.push(p);
            } else if p.file_name().unwrap() == "float.json" {
                models = Some(p.parent().unwrap().to_path_buf());
            }
        }
    }
    let mut mine = String::from("path,track_id,condition\n");
    for l in &lists {
        let (_, rows) = read_csv(l);
        for r in rows {
            let path = l.parent().unwrap().join(&r[0]);
            mine += &format!("{},{},{}\n", path.display(), &r[1], &r[2]);
        }
    }
    let list = dir.path().join("mine.csv");
    fs::write(&list, &mine).unwrap();
    let eval_out = dir.path().join("listed");
    let evaluate = |list: &Path| {
        Command::cargo_bin("fhe-shazam")
            .unwrap()
            .args(["evaluate", "--queries"])
            .arg(list)
            .arg("--models")
            .arg(models.as_ref().expect("a models folder"))
            .args(["--modes", "clear,simulate", "--out"])
            .arg(&eval_out)
            .output()
            .unwrap()
    };
    let run = evaluate(&list);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (h, listed) = read_csv(&eval_out.join("open_set.csv"));
    let lc = |name: &str| h.iter().position(|x| x == name).unwrap();
    assert_eq!(
        listed.len(),
        2 * 3,
        "2 conditions × float, n_bits=8 clear, simulate"
    );
    for r in &listed {
        assert_eq!(&r[lc("catalogue_queries")], "6", "{r:?}");
        assert_eq!(
            &r[lc("impostor_queries")],
            "6",
            "3 calibration + 3 impostor songs"
        );
        // The same model, threshold and catalogue queries as the run: the same figures.
        let same = rows
            .iter()
            .find(|o| {
                o[col("condition")] == r[lc("condition")] && o[col("model")] == r[lc("model")]
            })
            .unwrap();
        assert_eq!(&r[lc("threshold")], &same[col("threshold")], "{r:?}");
        assert_eq!(
            &r[lc("closed_set_top1")],
            &same[col("closed_set_top1")],
            "{r:?}"
        );
        assert_eq!(
            &r[lc("identification")],
            &same[col("identification")],
            "{r:?}"
        );
    }
    assert!(eval_out.join("det_noise10.png").exists());
    // A listed recording that does not exist is an error naming it, and the report stays.
    let before = fs::read(eval_out.join("open_set.csv")).unwrap();
    let broken = dir.path().join("broken.csv");
    fs::write(&broken, format!("{mine}nowhere.wav,000002,aligned\n")).unwrap();
    let run = evaluate(&broken);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("broken.csv") && err.contains("nowhere.wav"),
        "{err}"
    );
    assert_eq!(fs::read(eval_out.join("open_set.csv")).unwrap(), before);
}
