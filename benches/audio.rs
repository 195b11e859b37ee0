//! Decode + resample cost of one FMA-like song: 30 s, 44.1 kHz stereo, 192 kbit/s MP3.
//! librosa.load(sr=22050) takes ~47 ms for this (mpg123 + soxr_hq); the goal is ≤ 1.2×.
//!
//! The MP3 is made once by encoding a generated WAV with `lame` or `ffmpeg`; without either
//! tool the bench prints why and does nothing. Run with:
//! `cargo bench --bench audio` (add `-- --quick` for a short run).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use fhe_shazam::audio::decode::decode_file;
use fhe_shazam::audio::resample::resample;
use fhe_shazam::audio::{load, LoadOptions};
use std::f64::consts::PI;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

const RATE: u32 = 44_100;
const SECONDS: usize = 30;

/// A deterministic music-like stereo signal: chords of harmonic tones changing every half
/// second plus noise bursts on the beat, so the MP3 encoder has real work (not a pure sine).
fn song() -> (Vec<f32>, Vec<f32>) {
    let len = RATE as usize * SECONDS;
    let mut noise_state = 0x2545_f491_4f6c_dd1du64;
    let mut left = Vec::with_capacity(len);
    let mut right = Vec::with_capacity(len);
    let roots = [220.0, 246.94, 196.0, 261.63, 174.61, 293.66];
    for n in 0..len {
        let t = n as f64 / f64::from(RATE);
        let root = roots[(t * 2.0) as usize % roots.len()];
        let mut chord = 0.0;
        for ratio in [1.0, 1.25, 1.5] {
            for h in 1..=6 {
                chord += (2.0 * PI * root * ratio * h as f64 * t).sin() / (h * h) as f64;
            }
        }
        // xorshift noise with a decaying envelope every quarter second (a hi-hat).
        noise_state ^= noise_state << 13;
        noise_state ^= noise_state >> 7;
        noise_state ^= noise_state << 17;
        let white = (noise_state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let beat = (-(t * 4.0).fract() * 30.0).exp();
        left.push((0.15 * chord + 0.3 * beat * white) as f32);
        right.push((0.12 * chord - 0.25 * beat * white) as f32);
    }
    (left, right)
}

/// Encodes the song to a 192 kbit/s MP3 once (cached under the temp dir); `None` if no encoder.
fn song_mp3() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join("fhe_shazam_bench");
    let mp3 = dir.join("song30s_44100_stereo_192k.mp3");
    if mp3.exists() {
        return Some(mp3);
    }
    std::fs::create_dir_all(&dir).ok()?;
    let (left, right) = song();
    // audio::write_wav is mono; the bench needs a stereo file like FMA's.
    let wav = dir.join("song30s.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).ok()?;
    for (l, r) in left.iter().zip(&right) {
        w.write_sample((l.clamp(-1.0, 1.0) * 32767.0) as i16).ok()?;
        w.write_sample((r.clamp(-1.0, 1.0) * 32767.0) as i16).ok()?;
    }
    w.finalize().ok()?;
    let encoders: [(&str, Vec<&str>); 2] = [
        (
            "lame",
            vec!["--quiet", "-b", "192", wav.to_str()?, mp3.to_str()?],
        ),
        (
            "ffmpeg",
            vec![
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-i",
                wav.to_str()?,
                "-codec:a",
                "libmp3lame",
                "-b:a",
                "192k",
                mp3.to_str()?,
            ],
        ),
    ];
    for (tool, args) in encoders {
        if Command::new(tool)
            .args(&args)
            .status()
            .is_ok_and(|s| s.success())
            && mp3.exists()
        {
            eprintln!("bench input: {} (encoded with {tool})", mp3.display());
            return Some(mp3.clone());
        }
    }
    None
}

fn bench_audio(c: &mut Criterion) {
    let Some(mp3) = song_mp3() else {
        eprintln!(
            "skipping the audio bench: neither `lame` nor `ffmpeg` is installed to make the MP3"
        );
        return;
    };
    let decoded = decode_file(&mp3, None).expect("decode the bench MP3");
    assert_eq!(decoded.sample_rate, RATE);
    eprintln!(
        "decoded {} samples ({:.2} s)",
        decoded.samples.len(),
        decoded.samples.len() as f64 / 44_100.0
    );

    report_cpu_time(&mp3, &decoded.samples);

    let mut group = c.benchmark_group("audio_30s_song");
    group.sample_size(20);
    group.bench_function("decode_mp3_192k_stereo", |b| {
        b.iter(|| decode_file(black_box(&mp3), None).unwrap())
    });
    group.bench_function("resample_44100_to_22050", |b| {
        b.iter(|| resample(black_box(&decoded.samples), RATE, 22_050).unwrap())
    });
    group.bench_function("resample_48000_to_22050", |b| {
        b.iter(|| resample(black_box(&decoded.samples), 48_000, 22_050).unwrap())
    });
    group.bench_function("load_decode_and_resample", |b| {
        b.iter(|| load(black_box(&mp3), &LoadOptions::default()).unwrap())
    });
    group.finish();
}

/// Prints the minimum on-CPU time over 20 runs of each stage (everything is single-threaded).
fn report_cpu_time(mp3: &std::path::Path, samples: &[f32]) {
    let min_ms = |f: &mut dyn FnMut()| {
        (0..20)
            .map(|_| {
                let start = common::thread_cpu_time();
                f();
                (common::thread_cpu_time() - start).as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    let decode = min_ms(&mut || drop(black_box(decode_file(mp3, None))));
    let resample_2_1 = min_ms(&mut || drop(black_box(resample(samples, RATE, 22_050))));
    let resample_48k = min_ms(&mut || drop(black_box(resample(samples, 48_000, 22_050))));
    let load_all = min_ms(&mut || drop(black_box(load(mp3, &LoadOptions::default()))));
    eprintln!(
        "min thread CPU time per 30 s song: decode {decode:.1} ms, resample 44100->22050 \
         {resample_2_1:.1} ms, resample 48000->22050 {resample_48k:.1} ms, load (decode + mono + \
         resample) {load_all:.1} ms"
    );
}

criterion_group!(benches, bench_audio);
criterion_main!(benches);
