//! The model layer end to end: train on MFCC-shaped synthetic clusters, quantize, score
//! through the `Scorer` trait, save and load model files, and reject bad files clearly.

use std::path::Path;

use fhe_shazam::dataset::{Catalog, Song};
use fhe_shazam::features::FeatureParams;
use fhe_shazam::model::synthetic::{accuracy, ClusterSpec, SyntheticSet};
use fhe_shazam::model::{
    fit, FileKind, LogisticParams, ModelFile, QuantOptions, QuantizedModel, Scorer, MODEL_VERSION,
};
use fhe_shazam::ModelError;

fn problem() -> SyntheticSet {
    ClusterSpec {
        n_classes: 40,
        rows_per_class: 30,
        ..Default::default()
    }
    .generate()
}

fn catalog(n: usize) -> Catalog {
    Catalog {
        songs: (0..n)
            .map(|i| Song {
                index: i,
                track_id: format!("{:06}", i + 2),
                path: format!("000/{:06}.wav", i + 2).into(),
                title: Some(format!("Song {i}")),
                artist: None,
            })
            .collect(),
    }
}

fn acc(model: &dyn Scorer, set: &SyntheticSet) -> f64 {
    accuracy(&model.predict(set.x_test.view()).unwrap(), &set.y_test)
}

#[test]
fn trains_quantizes_and_keeps_accuracy() {
    let set = problem();
    let float = fit(
        set.x_train.view(),
        &set.y_train,
        40,
        &LogisticParams::default(),
    )
    .unwrap();
    let info = float.fit.as_ref().unwrap();
    assert!(info.converged, "{info:?}");
    let float_acc = acc(&float, &set);
    assert!(float_acc > 0.8, "float accuracy {float_acc}");

    // One input range for c0 (thousands) and the rest (tens) costs Concrete ML's 8-bit model
    // most of the small features; per-feature ranges keep float accuracy at 8 bits and beat
    // the single range even at 4 bits.
    let quantized = |opts: QuantOptions| {
        let q = QuantizedModel::from_float(&float, set.x_train.view(), &opts).unwrap();
        (acc(&q, &set), q)
    };
    let (acc8, q8) = quantized(QuantOptions::concrete(8));
    let per_feature = |bits| QuantOptions {
        standardize_inputs: true,
        ..QuantOptions::concrete(bits)
    };
    let (acc8s, _) = quantized(per_feature(8));
    let (acc4s, _) = quantized(per_feature(4));
    assert!(
        acc8 < float_acc - 0.2,
        "8-bit single range {acc8} vs float {float_acc}"
    );
    assert!(
        acc8s > float_acc - 0.02,
        "8-bit per-feature {acc8s} vs float {float_acc}"
    );
    assert!(
        acc4s > acc8 + 0.2,
        "4-bit per-feature {acc4s} vs 8-bit single range {acc8}"
    );

    // The integer path is the scorer's path: quantize → circuit → dequantize.
    let q = q8.quantize_input(set.x_test.view()).unwrap();
    let ints = q8.integer_scores(q.view()).unwrap();
    assert_eq!(
        q8.dequantize(ints.view()).unwrap(),
        q8.scores(set.x_test.view()).unwrap()
    );
    let (lo, hi) = q8.score_range();
    assert!(ints.iter().all(|&v| lo <= v && v <= hi));
    let (qlo, qhi) = q8.input_range();
    assert_eq!((qlo, qhi), (-128, 127));
    assert!(q.iter().all(|&v| qlo <= v && v <= qhi));
}

#[test]
fn model_file_scores_a_query_alone() {
    let set = problem();
    let params = LogisticParams::default();
    let float = fit(set.x_train.view(), &set.y_train, 40, &params).unwrap();
    let q =
        QuantizedModel::from_float(&float, set.x_train.view(), &QuantOptions::concrete(8)).unwrap();
    let file =
        ModelFile::quantized(FeatureParams::default(), catalog(40), q, Some(params)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models/seed-8bit.json");
    file.save(&path).unwrap();

    let loaded = ModelFile::load(&path).unwrap();
    assert_eq!(loaded.kind(), FileKind::Quantized);
    assert_eq!(loaded, file);
    let query = set.x_test.slice(ndarray::s![0..30, ..]);
    let a = loaded.scorer().scores(query).unwrap();
    let b = file.scorer().scores(query).unwrap();
    assert_eq!(
        a, b,
        "a loaded model must score bit for bit like the saved one"
    );
    let q = loaded.quantized_model().unwrap();
    assert_eq!(
        q.integer_scores(q.quantize_input(query).unwrap().view())
            .unwrap(),
        file.quantized_model()
            .unwrap()
            .integer_scores(q.quantize_input(query).unwrap().view())
            .unwrap()
    );
    assert_eq!(loaded.catalog().get(3).unwrap().track_id, "000005");
}

fn saved_float_file(dir: &Path) -> (std::path::PathBuf, serde_json::Value) {
    let set = ClusterSpec {
        n_classes: 3,
        rows_per_class: 10,
        ..Default::default()
    }
    .generate();
    let float = fit(
        set.x_train.view(),
        &set.y_train,
        3,
        &LogisticParams::default(),
    )
    .unwrap();
    let file = ModelFile::float(FeatureParams::default(), catalog(3), float, None).unwrap();
    let path = dir.join("float.json");
    file.save(&path).unwrap();
    let value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (path, value)
}

fn write(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec(value).unwrap()).unwrap();
}

#[test]
fn other_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = saved_float_file(dir.path());
    v["version"] = serde_json::json!(MODEL_VERSION + 1);
    write(&path, &v);
    let err = ModelFile::load(&path).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("float.json"), "{err}");
}

#[test]
fn other_format_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = saved_float_file(dir.path());
    v["format"] = serde_json::json!("concrete-ml-model");
    write(&path, &v);
    let err = ModelFile::load(&path).unwrap_err();
    assert!(matches!(&err, ModelError::WrongFormat { found, .. } if found == "concrete-ml-model"));
    let other = dir.path().join("features.json");
    std::fs::write(&other, br#"{"song_ids": [1, 2]}"#).unwrap();
    let err = ModelFile::load(&other).unwrap_err();
    assert!(
        matches!(&err, ModelError::WrongFormat { found, .. } if found == "missing"),
        "{err}"
    );
}

#[test]
fn truncated_and_corrupt_files_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = saved_float_file(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = ModelFile::load(&path).unwrap_err();
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("float.json") && err.to_string().contains("JSON"),
        "{err}"
    );

    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        ModelFile::load(&path),
        Err(ModelError::Corrupt { .. })
    ));

    // Valid JSON, right header, inconsistent body: 4 bias entries for 3 classes.
    let mut bad = v.clone();
    bad["float"]["bias"] = serde_json::json!({"v": 1, "dim": [4], "data": [0.0, 0.0, 0.0, 0.0]});
    write(&path, &bad);
    let err = ModelFile::load(&path).unwrap_err();
    assert!(
        matches!(&err, ModelError::Corrupt { reason, .. } if reason.contains("bias")),
        "{err}"
    );

    // Catalog that does not match the model's classes.
    let mut bad = v.clone();
    bad["catalog"]["songs"].as_array_mut().unwrap().pop();
    write(&path, &bad);
    let err = ModelFile::load(&path).unwrap_err();
    assert!(
        matches!(&err, ModelError::Corrupt { reason, .. } if reason.contains("catalog")),
        "{err}"
    );

    // Unknown kind.
    let mut bad = v;
    bad["kind"] = serde_json::json!("forest");
    write(&path, &bad);
    assert!(matches!(
        ModelFile::load(&path),
        Err(ModelError::Corrupt { .. })
    ));

    let missing = dir.path().join("nope.json");
    let err = ModelFile::load(&missing).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }) && err.to_string().contains("nope.json"));
}

#[test]
fn tampered_quantized_weights_are_detected() {
    let set = ClusterSpec {
        n_classes: 3,
        rows_per_class: 10,
        ..Default::default()
    }
    .generate();
    let float = fit(
        set.x_train.view(),
        &set.y_train,
        3,
        &LogisticParams::default(),
    )
    .unwrap();
    let q =
        QuantizedModel::from_float(&float, set.x_train.view(), &QuantOptions::concrete(6)).unwrap();
    let file = ModelFile::quantized(FeatureParams::default(), catalog(3), q, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.json");
    file.save(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let w = &mut v["quantized"]["q_weights"]["data"][0];
    *w = serde_json::json!(w.as_i64().unwrap() + 1);
    write(&path, &v);
    let err = ModelFile::load(&path).unwrap_err();
    assert!(
        matches!(&err, ModelError::Corrupt { reason, .. } if reason.contains("do not match")),
        "{err}"
    );

    // The header's n_bits must agree with the model.
    file.save(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["n_bits"]["input"] = serde_json::json!(7);
    write(&path, &v);
    assert!(matches!(
        ModelFile::load(&path),
        Err(ModelError::Corrupt { .. })
    ));
}
