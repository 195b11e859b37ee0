//! End to end: `fhe-shazam queries` on a small synthetic corpus: files and CSV rows,
//! determinism across runs, held-out windows, and clear errors on bad input.

use assert_cmd::Command;
use fhe_shazam::dataset::synth::{write_corpus, SynthParams};
use fhe_shazam::dataset::{
    read_query_list, read_query_set, Condition, QueryWindow, QUERY_LIST_FILE,
};
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

mod common;
use common::tree;

fn corpus(dir: &Path, songs: usize, seconds: f64) -> PathBuf {
    let data = dir.join("data");
    write_corpus(
        &data,
        &SynthParams {
            songs,
            seconds,
            ..SynthParams::default()
        },
        &|| {},
    )
    .unwrap();
    data
}

fn queries(args: &[&str], dataset: &Path, out: &Path) -> assert_cmd::assert::Assert {
    Command::cargo_bin("fhe-shazam")
        .unwrap()
        .arg("queries")
        .arg("--dataset")
        .arg(dataset)
        .arg("--out")
        .arg(out)
        .args(args)
        .assert()
}

#[test]
fn writes_every_condition_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let data = corpus(tmp.path(), 3, 9.0);
    let (a, b) = (tmp.path().join("qa"), tmp.path().join("qb"));
    let out = queries(&["--json", "--seconds", "6"], &data, &a).success();
    let summary: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(summary["songs"], 3);
    assert_eq!(summary["queries"], 24);
    queries(&["--seconds", "6"], &data, &b)
        .success()
        .stdout(predicate::str::contains("24 queries"));

    let (ta, tb) = (tree(&a), tree(&b));
    assert_eq!(
        ta.len(),
        24 + 3,
        "24 WAVs, the CSV, the query list and the manifest"
    );
    assert_eq!(ta, tb, "two runs give byte-identical files");

    // The query list names every WAV once, with its song and condition.
    let listed = read_query_list(&a.join(QUERY_LIST_FILE)).unwrap();
    assert_eq!(listed.len(), 24);
    let wavs: std::collections::BTreeSet<PathBuf> = ta
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .map(|p| a.join(p))
        .collect();
    let listed_paths: std::collections::BTreeSet<PathBuf> =
        listed.iter().map(|q| q.path.clone()).collect();
    assert_eq!(
        listed_paths, wavs,
        "the list names exactly the WAVs written"
    );

    let csv = fs::read_to_string(a.join("queries.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    for column in [
        "file",
        "song",
        "track_id",
        "condition",
        "offset_s",
        "seconds",
        "snr_db",
        "noise",
        "speed",
        "rt60_s",
    ] {
        assert!(header.split(',').any(|c| c == column), "{column}: {header}");
    }
    assert_eq!(lines.count(), 24);

    let set = read_query_set(&a).unwrap();
    assert_eq!(set.catalog_size, 3);
    for &c in Condition::STANDARD {
        let songs: Vec<usize> = set.condition(c).map(|e| e.song).collect();
        assert_eq!(songs, vec![0, 1, 2], "{c}");
    }
    for e in &set.entries {
        assert_eq!(e.file, format!("{}/{}.wav", e.condition, e.track_id));
        let wav = hound::WavReader::open(&e.path).unwrap();
        assert_eq!(wav.spec().channels, 1);
        assert_eq!(wav.spec().sample_rate, 22_050);
        assert_eq!(wav.spec().bits_per_sample, 16);
        assert_eq!(wav.duration(), 6 * 22_050);
        let d = &e.degradation;
        match e.condition {
            Condition::Aligned => assert_eq!(d.offset_s, 0.0),
            Condition::Noise5 => assert_eq!(d.noise.unwrap().snr_db, 5.0),
            Condition::Reverb => assert!(d.room.is_some()),
            Condition::Speed => assert!((d.speed - 1.0).abs() > 0.019),
            Condition::Phone => {
                assert_eq!(d.codec, Some(fhe_shazam::dataset::degrade::Codec::MuLaw))
            }
            _ => {}
        }
        if e.condition != Condition::Aligned {
            let start = (d.offset_s * 22_050.0).round() as u64;
            assert_ne!(start % 11_025, 0, "{}: on the 0.5 s grid", e.file);
        }
    }
}

#[test]
fn conditions_subset_and_held_out_window() {
    let tmp = tempfile::tempdir().unwrap();
    let data = corpus(tmp.path(), 2, 30.0);
    let out = tmp.path().join("q");
    queries(
        &[
            "--conditions",
            "offset,noise10",
            "--held-out-from",
            "20",
            "--num-songs",
            "1",
        ],
        &data,
        &out,
    )
    .success();
    let set = read_query_set(&out).unwrap();
    assert_eq!(
        set.params.conditions,
        [Condition::Offset, Condition::Noise10]
    );
    assert_eq!(
        set.params.window,
        QueryWindow::HeldOut { from_seconds: 20.0 }
    );
    assert_eq!(set.entries.len(), 2);
    for e in &set.entries {
        assert!(e.degradation.offset_s >= 20.0, "{}", e.degradation.offset_s);
        assert!(e.degradation.seconds > 9.0 && e.degradation.seconds < 10.0);
    }
    assert!(!out.join("aligned").exists());

    // A rerun with other conditions replaces the previous set.
    queries(&["--conditions", "phone", "--seconds", "5"], &data, &out).success();
    let set = read_query_set(&out).unwrap();
    assert_eq!(set.entries.len(), 2);
    assert!(
        !out.join("offset").exists(),
        "stale condition folder removed"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    queries(&[], &tmp.path().join("nowhere"), &out)
        .failure()
        .stderr(
            predicate::str::contains("nowhere").and(predicate::str::contains("does not exist")),
        );

    let data = corpus(tmp.path(), 2, 8.0);
    let first_id = fs::read_dir(data.join("audio/000"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .min()
        .unwrap()
        .trim_end_matches(".wav")
        .to_string();
    // 8 s clips leave 3 s after 5 s: too short for a held-out query.
    queries(&["--held-out-from", "5"], &data, &out)
        .failure()
        .stderr(
            predicate::str::contains(first_id.as_str())
                .and(predicate::str::contains("after 5 s"))
                .and(predicate::str::contains("at least")),
        );

    queries(&["--conditions", "offset,loud"], &data, &out)
        .failure()
        .stderr(predicate::str::contains("unknown condition \"loud\""));
    queries(&["--seconds", "1"], &data, &out)
        .failure()
        .stderr(predicate::str::contains("query_seconds"));
    // The dataset folder itself is not a query set folder.
    queries(&[], &data, &data)
        .failure()
        .stderr(predicate::str::contains("refusing"));
}
