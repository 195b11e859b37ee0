//! Parity with librosa 0.11: the fixture in tests/fixtures/librosa_mfcc holds librosa's own
//! MFCC matrices, chunk features and mel spectrogram for three WAV signals (see its README).
//! Run with `--nocapture` to see the error figures.

use fhe_shazam::features::{chunk_features, FeatureParams, Mfcc, MfccParams};
use fhe_shazam::FeatureError;
use serde_json::Value;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/librosa_mfcc")
}

fn fixture() -> Value {
    let path = fixture_dir().join("librosa_mfcc.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture JSON parses")
}

/// The WAV exactly as librosa sees it: int16 / 32768.
fn read_wav(name: &str) -> Vec<f32> {
    let mut reader = hound::WavReader::open(fixture_dir().join(name)).expect("fixture WAV opens");
    assert_eq!(reader.spec().sample_rate, 22_050);
    assert_eq!(reader.spec().channels, 1);
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("matrix")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number"))
                .collect()
        })
        .collect()
}

fn extractor() -> (Mfcc, FeatureParams) {
    let params = FeatureParams::default();
    (
        Mfcc::new(params.mfcc.clone()).expect("default params are valid"),
        params,
    )
}

/// Largest |got − want| / max(|want| of the row, 1): the error relative to the scale of each
/// feature vector (the coefficients of one vector share a dB scale; c0 is ~100× the others).
fn row_relative_error(got: &ndarray::Array2<f32>, want: &[Vec<f64>]) -> (f64, f64) {
    let (mut abs, mut rel) = (0f64, 0f64);
    for (i, row) in want.iter().enumerate() {
        let scale = row.iter().fold(1f64, |m, v| m.max(v.abs()));
        for (k, &w) in row.iter().enumerate() {
            let d = (f64::from(got[(i, k)]) - w).abs();
            abs = abs.max(d);
            rel = rel.max(d / scale);
        }
    }
    (abs, rel)
}

#[test]
fn fixture_signals_match_librosa() {
    let fx = fixture();
    let (mfcc, params) = extractor();
    let signals = fx["signals"].as_array().expect("signals");
    assert_eq!(signals.len(), 3);
    for sig in signals {
        let name = sig["name"].as_str().expect("name");
        let y = read_wav(sig["file"].as_str().expect("file"));
        assert_eq!(
            y.len() as u64,
            sig["n_samples"].as_u64().expect("n_samples"),
            "{name}: length"
        );
        for (got, want) in y
            .iter()
            .zip(sig["first_10_samples"].as_array().expect("first samples"))
        {
            assert_eq!(
                *got,
                want.as_f64().expect("number") as f32,
                "{name}: decoded samples"
            );
        }

        // Full MFCC matrix.
        let want = matrix(&sig["mfcc"]);
        let got = mfcc.compute(&y);
        assert_eq!(got.dim(), (want.len(), want[0].len()), "{name}: mfcc shape");
        let mut max_err = 0f64;
        for (k, row) in want.iter().enumerate() {
            for (t, &w) in row.iter().enumerate() {
                max_err = max_err.max((f64::from(got[(k, t)]) - w).abs());
            }
        }
        println!("{name}: mfcc max abs error {max_err:.3e}");
        assert!(max_err <= 1e-2, "{name}: mfcc max abs error {max_err}");

        // Chunk features against the seed's float32 sums and the float64 sums.
        let feats = chunk_features(&mfcc, &params, &y).expect("chunk features");
        let want32 = matrix(&sig["chunk_features"]);
        let want64 = matrix(&sig["chunk_features_float64_sum"]);
        assert_eq!(
            feats.dim(),
            (want32.len(), 20),
            "{name}: chunk feature shape"
        );
        let (abs32, rel32) = row_relative_error(&feats, &want32);
        let (abs64, rel64) = row_relative_error(&feats, &want64);
        println!(
            "{name}: chunk_features max abs error {abs32:.3e} (rel {rel32:.2e}) vs float32 sums, \
             {abs64:.3e} (rel {rel64:.2e}) vs float64 sums"
        );
        assert!(
            rel32 <= 1e-4,
            "{name}: chunk features relative error {rel32} vs float32 sums"
        );
        assert!(
            abs32 <= 1e-2,
            "{name}: chunk features absolute error {abs32} vs float32 sums"
        );
        assert!(
            rel64 <= 1e-4,
            "{name}: chunk features relative error {rel64} vs float64 sums"
        );
    }
}

#[test]
fn sine_mel_power_matches_librosa() {
    let fx = fixture();
    let sig = &fx["signals"][0];
    assert_eq!(sig["name"], "sine440_1000_1s");
    let want = matrix(&sig["melspectrogram"]);
    let (mfcc, _) = extractor();
    let got = mfcc.mel_power(&read_wav(sig["file"].as_str().expect("file")));
    assert_eq!(got.dim(), (128, 44));
    let peak = want.iter().flatten().fold(0f64, |m, &v| m.max(v));
    // Bins more than 80 dB below the peak are clipped by top_db before the DCT; their values
    // are float32 rounding noise of the FFT (librosa's included), so only the rest is compared.
    let (mut max_rel, mut compared) = (0f64, 0usize);
    for (m, row) in want.iter().enumerate() {
        for (t, &w) in row.iter().enumerate() {
            if w > peak * 1e-8 {
                max_rel = max_rel.max((f64::from(got[(m, t)]) - w).abs() / w);
                compared += 1;
            }
        }
    }
    println!("sine mel power: max relative error {max_rel:.3e} over {compared} values within 80 dB of the peak");
    assert!(compared > 500);
    assert!(max_rel <= 1e-3, "sine mel power relative error {max_rel}");
}

#[test]
fn silence_gives_finite_features() {
    let (mfcc, params) = extractor();
    let y = vec![0f32; 22_050];
    let m = mfcc.compute(&y);
    assert!(m.iter().all(|v| v.is_finite()));
    // All powers clamp to amin = 1e-10 → −100 dB everywhere; DCT of a constant: c0 = −100·√128.
    let c0 = -100.0 * 128f32.sqrt();
    // (float32 amin is not exactly 1e-10, so the value is −99.9999 dB: 1e-2 absolute.)
    assert!(
        m.row(0).iter().all(|&v| (v - c0).abs() < 1e-2),
        "c0 {:?}",
        m.row(0)
    );
    assert!(m
        .rows()
        .into_iter()
        .skip(1)
        .flatten()
        .all(|v| v.abs() < 1e-3));
    let f = chunk_features(&mfcc, &params, &y).expect("chunk features of silence");
    assert_eq!(f.dim(), (2, 20));
    assert!(f.iter().all(|v| v.is_finite()));
    assert!((f[(0, 0)] - 22.0 * c0).abs() < 0.1, "{}", f[(0, 0)]);
}

#[test]
fn too_short_is_an_error() {
    let (mfcc, params) = extractor();
    for n in [0, 1, 11_024] {
        match chunk_features(&mfcc, &params, &vec![0.1; n]) {
            Err(FeatureError::TooShort { samples, needed }) => {
                assert_eq!((samples, needed), (n, 11_025))
            }
            other => panic!("{n} samples: expected TooShort, got {other:?}"),
        }
    }
}

#[test]
fn chunk_count_is_len_over_chunk() {
    let (mfcc, params) = extractor();
    for n in [11_025, 11_026, 22_049, 22_050, 33_075 + 11_024, 661_500] {
        let y: Vec<f32> = (0..n)
            .map(|i| ((i * 2_654_435_761) % 1000) as f32 / 5000.0 - 0.1)
            .collect();
        let f = chunk_features(&mfcc, &params, &y).expect("chunk features");
        assert_eq!(f.dim(), (n / 11_025, 20), "{n} samples");
    }
}

#[test]
fn non_default_params_work() {
    // A 16 kHz, 40-band, 13-coefficient setup: a different filterbank and DCT size.
    let p = MfccParams {
        sample_rate: 16_000,
        n_mfcc: 13,
        n_fft: 512,
        hop_length: 160,
        n_mels: 40,
        ..MfccParams::default()
    };
    let mfcc = Mfcc::new(p).expect("valid params");
    let y: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.2).sin()).collect();
    let m = mfcc.compute(&y);
    assert_eq!(m.dim(), (13, 1 + 16_000 / 160));
    assert!(m.iter().all(|v| v.is_finite()));
}
