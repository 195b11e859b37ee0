//! End to end: `fhe-shazam extract` on a small dataset with good and bad files.

use assert_cmd::Command;
use predicates::prelude::*;
use std::f32::consts::TAU;
use std::fs;
use std::path::Path;

mod common;
use common::run_json;

fn write_wav(path: &Path, sample_rate: u32, channels: u16, seconds: f32, f: impl Fn(f32) -> f32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..(seconds * sample_rate as f32) as usize {
        let v = (f(n as f32 / sample_rate as f32) * 32767.0) as i16;
        for _ in 0..channels {
            w.write_sample(v).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn extract_json(dataset: &Path, out: &Path) -> serde_json::Value {
    run_json(&[
        "extract".as_ref(),
        "--json".as_ref(),
        "--dataset".as_ref(),
        dataset.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
}

#[test]
fn bad_files_are_reported_and_the_rest_is_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let audio = data.join("audio/000");
    write_wav(&audio.join("000001.wav"), 22_050, 1, 2.0, |t| {
        0.5 * (TAU * 440.0 * t).sin()
    });
    fs::write(audio.join("000002.mp3"), b"").unwrap(); // empty
    fs::write(
        audio.join("000003.mp3"),
        b"this is not an mp3 file\n".repeat(50),
    )
    .unwrap(); // text
    write_wav(&audio.join("000004.wav"), 22_050, 1, 0.3, |t| {
        (TAU * 220.0 * t).sin()
    }); // < one window
    write_wav(&audio.join("000005.wav"), 22_050, 1, 1.0, |_| 0.0); // silence
    write_wav(&audio.join("000006.wav"), 48_000, 2, 1.5, |t| {
        0.3 * (TAU * 1000.0 * t).sin()
    }); // stereo 48 kHz
    let out = dir.path().join("features");

    let summary = extract_json(&data, &out);
    assert_eq!(summary["songs"], 2, "{summary}");
    assert_eq!(summary["rows"], 4 + 3, "{summary}");
    let failures = summary["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 4, "{summary}");
    let errors: Vec<&str> = failures
        .iter()
        .map(|f| f["error"].as_str().unwrap())
        .collect();
    for (name, what) in [
        ("000002.mp3", "empty"),
        ("000003.mp3", "not a supported audio file"),
        ("000004.wav", "too short"),
        ("000005.wav", "silent"),
    ] {
        let e = errors
            .iter()
            .find(|e| e.contains(name))
            .unwrap_or_else(|| panic!("no error names {name}: {errors:?}"));
        assert!(e.contains(what), "{e}");
    }

    let set = fhe_shazam::features::FeatureSet::load(&out).unwrap();
    assert!(set.features.iter().all(|v| v.is_finite()));
    // Silence is left out of the catalogue, not catalogued with constant features.
    assert_eq!(set.labels, vec![0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(set.catalog().songs[1].track_id, "000006");

    // Second run: nothing changed, everything reused.
    let again = extract_json(&data, &out);
    assert_eq!(again["reused"], 2, "{again}");
    assert_eq!(again["extracted"], 0, "{again}");
    assert_eq!(fhe_shazam::features::FeatureSet::load(&out).unwrap(), set);
}

#[test]
fn missing_dataset_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("fma_small");
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["extract", "--dataset"])
        .arg(&missing)
        .assert()
        .failure()
        .stderr(
            predicates::str::contains("fma_small").and(predicates::str::contains("does not exist")),
        );
}

#[test]
fn corrupt_sidecar_is_rejected_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("features.json"),
        b"{\"format\":\"fhe-shazam-features\",\"version\":99}",
    )
    .unwrap();
    let err = fhe_shazam::features::FeatureSet::load(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("features.json") && err.contains("version"),
        "{err}"
    );
}

/// `extract --subset`: one fma_full-style tree, FMA's real three-row tracks.csv; the subsets
/// nest and a file the metadata does not list is only in full. Without a tracks.csv the
/// command fails with a message that says what is missing.
#[test]
fn subsets_are_read_from_fma_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fma_full");
    for (k, id) in ["000002", "000005", "000010"].iter().enumerate() {
        write_wav(&root.join(format!("000/{id}.wav")), 22_050, 1, 1.5, |t| {
            0.4 * (TAU * (300.0 + 200.0 * k as f32) * t).sin()
        });
    }
    let meta = dir.path().join("fma_metadata");
    fs::create_dir_all(&meta).unwrap();
    fs::write(
        meta.join("tracks.csv"),
        ",set,set,track\n,split,subset,title\ntrack_id,,,\n2,training,small,A\n5,training,medium,B\n",
    )
    .unwrap();
    let songs = |subset: &str| {
        let out = dir.path().join(format!("features-{subset}"));
        let mut args: Vec<&std::ffi::OsStr> = ["extract", "--json", "--subset", subset]
            .map(AsRef::as_ref)
            .to_vec();
        args.extend([
            "--dataset".as_ref(),
            root.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        run_json(&args)["songs"].as_u64().unwrap()
    };
    assert_eq!(songs("small"), 1);
    assert_eq!(songs("medium"), 2);
    assert_eq!(songs("large"), 2);
    assert_eq!(songs("full"), 3);

    fs::remove_dir_all(&meta).unwrap();
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["extract", "--subset", "small", "--dataset"])
        .arg(&root)
        .arg("--out")
        .arg(dir.path().join("features-none"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--subset small needs FMA's tracks.csv",
        ));
}

/// Three `extract --shard i/3` processes and `merge` give exactly the unsharded store, byte for
/// byte (a bad file included, so failures and dense labels are merged too); missing,
/// repeated and foreign shards are refused with their names, leaving the output alone.
#[test]
fn three_shards_merge_into_the_unsharded_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for k in 0..7 {
        write_wav(
            &data.join(format!("audio/000/00000{k}.wav")),
            22_050,
            1,
            1.0 + 0.25 * k as f32,
            |t| 0.3 * (TAU * (200.0 + 90.0 * k as f32) * t).sin(),
        );
    }
    fs::write(data.join("audio/000/000003.wav"), b"not audio").unwrap();
    let run = |args: &[&str], out: &Path| {
        let output = Command::cargo_bin("fhe-shazam")
            .unwrap()
            .args(args)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let whole = dir.path().join("whole");
    let dataset = data.to_str().unwrap();
    run(&["extract", "--dataset", dataset], &whole);
    let shards: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("shard{i}")))
        .collect();
    // Three separate processes, as a job array runs them.
    let children: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, out)| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("fhe-shazam"))
                .args([
                    "extract",
                    "--dataset",
                    dataset,
                    "--shard",
                    &format!("{i}/3"),
                    "--out",
                ])
                .arg(out)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let merged = dir.path().join("merged");
    let mut args = vec!["merge".to_string()];
    // Any order.
    args.extend(
        shards
            .iter()
            .rev()
            .map(|s| s.to_string_lossy().into_owned()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, &merged);
    for f in ["features.npy", "labels.npy", "chunks.npy", "features.json"] {
        assert_eq!(
            fs::read(whole.join(f)).unwrap(),
            fs::read(merged.join(f)).unwrap(),
            "{f} differs"
        );
    }

    let refused = |shard_dirs: &[&Path], needle: &str| {
        let mut cmd = Command::cargo_bin("fhe-shazam").unwrap();
        cmd.arg("merge").args(shard_dirs).arg("--out").arg(&merged);
        cmd.assert()
            .code(1)
            .stderr(predicate::str::contains(needle));
        assert_eq!(
            fs::read(whole.join("features.npy")).unwrap(),
            fs::read(merged.join("features.npy")).unwrap()
        );
    };
    refused(&[&shards[0], &shards[2]], "shard(s) 1/3 missing");
    refused(
        &[&shards[0], &shards[1], &shards[1], &shards[2]],
        "shard 1/3 is given twice",
    );
    refused(&[&shards[0], &whole], "not a shard");
    // A shard of other parameters (less audio per song).
    let other = dir.path().join("other");
    run(
        &[
            "extract",
            "--dataset",
            dataset,
            "--shard",
            "1/3",
            "--max-seconds",
            "1",
        ],
        &other,
    );
    refused(
        &[&shards[0], &other, &shards[2]],
        "load options: not the same",
    );
    // A shard of another catalogue (two songs fewer).
    let fewer = dir.path().join("fewer");
    run(
        &[
            "extract",
            "--dataset",
            dataset,
            "--shard",
            "1/3",
            "--num-songs",
            "5",
        ],
        &fewer,
    );
    refused(&[&shards[0], &fewer, &shards[2]], "catalogue");
}

/// The cluster scripts' command lines, run without a cluster: deploy/run-local.sh runs
/// deploy/slurm/extract.sbatch as three array tasks (separate processes) and then
/// deploy/slurm/merge.sbatch; the merged store must be the unsharded one. The Kubernetes
/// Indexed Job must run the same extract command with its completion index.
#[test]
fn the_slurm_scripts_run_through_a_local_driver() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for k in 0..5 {
        write_wav(
            &data.join(format!("audio/000/00001{k}.wav")),
            22_050,
            1,
            1.5,
            |t| 0.3 * (TAU * (250.0 + 70.0 * k as f32) * t).sin(),
        );
    }
    let bin = assert_cmd::cargo::cargo_bin("fhe-shazam");
    let out = dir.path().join("features");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("bash")
        .arg(root.join("deploy/run-local.sh"))
        .env("DATASET", &data)
        .env("OUT", &out)
        .env("N", "3")
        .env("FHE_SHAZAM", &bin)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let whole = dir.path().join("whole");
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(["extract", "--dataset"])
        .arg(&data)
        .arg("--out")
        .arg(&whole)
        .assert()
        .success();
    for f in ["features.npy", "labels.npy", "chunks.npy", "features.json"] {
        assert_eq!(
            fs::read(whole.join(f)).unwrap(),
            fs::read(out.join("merged").join(f)).unwrap(),
            "{f} differs"
        );
    }
    let job = fs::read_to_string(root.join("deploy/k8s/extract-job.yaml")).unwrap();
    for needle in [
        "completionMode: Indexed",
        "extract --dataset",
        "--shard \"$JOB_COMPLETION_INDEX/$SHARDS\"",
        "--out \"/shared/features/shard-$JOB_COMPLETION_INDEX\"",
    ] {
        assert!(job.contains(needle), "extract-job.yaml lacks {needle}");
    }
    let merge = fs::read_to_string(root.join("deploy/k8s/merge-job.yaml")).unwrap();
    assert!(
        merge.contains("fhe-shazam merge /shared/features/shard-* --out /shared/features/merged")
    );
}

#[test]
fn bench_extract_times_the_whole_extract_and_projects_fma() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for k in 1..=3 {
        write_wav(
            &data.join(format!("audio/000/00000{k}.wav")),
            22_050,
            1,
            2.0,
            |t| 0.4 * (TAU * (300.0 + 100.0 * k as f32) * t).sin(),
        );
    }
    let out = dir.path().join("bench");
    let mut args: Vec<&std::ffi::OsStr> = ["bench", "extract", "--songs", "3", "--json"]
        .map(AsRef::as_ref)
        .to_vec();
    args.extend([
        "--dataset".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let report = run_json(&args);
    assert_eq!(report["songs"], 3);
    assert!(report["songs_per_core_second"].as_f64().unwrap() > 0.0);
    let projections = report["projections"].as_array().unwrap();
    assert_eq!(projections.len(), 3, "{report}");
    for p in projections {
        let hours: Vec<f64> = p["hours_on_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[1].as_f64().unwrap())
            .collect();
        assert!(
            hours.windows(2).all(|w| w[1] < w[0]),
            "more nodes, less time: {p}"
        );
    }
    // The scratch store of the all-core pass is gone; the report is there.
    assert!(!out.join(".bench-store").exists());
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("fma_large") && md.contains("200 nodes"), "{md}");
}
