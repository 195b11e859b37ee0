//! Feature-stage speed: the seed's chunk features (60 chunks × 22 frames) of one 30 s song,
//! single-threaded. Goal (DESIGN.md §7): ≥ 15× librosa's ~107 ms, i.e. ≤ 7 ms per song.
//! Run: `cargo bench --bench features`.

use criterion::{criterion_group, criterion_main, Criterion};
use fhe_shazam::features::{chunk_features, FeatureParams, Mfcc};
use std::hint::black_box;

/// 30 s at 22050 Hz.
const SONG_SAMPLES: usize = 661_500;

/// A deterministic music-like signal: a note (3 harmonics, decaying envelope) every 0.25 s
/// over a fixed pentatonic sequence, plus low-level LCG noise. Content does not change the
/// work done, but a realistic spectrum keeps the dB stage honest (no all-floor frames).
fn song() -> Vec<f32> {
    const NOTES_HZ: [f32; 5] = [220.0, 261.63, 293.66, 329.63, 392.0];
    let sr = 22_050.0;
    let note_len = 5512;
    let mut lcg: u32 = 12_345;
    (0..SONG_SAMPLES)
        .map(|i| {
            let f0 = NOTES_HZ[(i / note_len * 3) % NOTES_HZ.len()];
            let t = (i % note_len) as f32 / sr;
            let env = (-6.0 * t).exp();
            let phase = 2.0 * std::f32::consts::PI * f0 * i as f32 / sr;
            let tone = 0.3 * phase.sin() + 0.15 * (2.0 * phase).sin() + 0.07 * (3.0 * phase).sin();
            lcg = lcg.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (lcg >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            env * tone + 0.01 * noise
        })
        .collect()
}

fn bench_features(c: &mut Criterion) {
    let params = FeatureParams::default();
    let mfcc = Mfcc::new(params.mfcc.clone()).expect("default MFCC params are valid");
    let y = song();
    c.bench_function("chunk_features_30s_song", |b| {
        b.iter(|| chunk_features(&mfcc, &params, black_box(&y)).expect("30 s is long enough"))
    });
    c.bench_function("mfcc_compute_30s_song", |b| b.iter(|| mfcc.compute(black_box(&y))));
}

criterion_group!(benches, bench_features);
criterion_main!(benches);
