//! The synthetic corpus: song rendering (determinism, level, spectrum, separability) and the
//! FMA-layout corpus writer (layout, CSV, WAVs, re-run skipping, resuming, parameter changes).

use fhe_shazam::dataset::synth::{
    manifest_path, track_ids, write_corpus, SongSpec, SynthParams, PEAK_LEVEL,
};
use fhe_shazam::dataset::Song;
use realfft::RealFftPlanner;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

const SR: u32 = 22_050;
/// The seed protocol's chunk: 0.5 s.
const CHUNK: usize = 11_025;
const FRAME: usize = 2048;
const BANDS: usize = 24;

/// Average power spectrum (FRAME-point Hann frames, hop FRAME/2) of `x`.
fn power_spectrum(x: &[f32]) -> Vec<f64> {
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(FRAME);
    let window: Vec<f32> = (0..FRAME)
        .map(|i| (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / FRAME as f64).cos()) as f32)
        .collect();
    let mut acc = vec![0.0f64; FRAME / 2 + 1];
    let mut frames = 0;
    for start in (0..x.len().saturating_sub(FRAME - 1)).step_by(FRAME / 2) {
        let mut buf: Vec<f32> = x[start..start + FRAME]
            .iter()
            .zip(&window)
            .map(|(s, w)| s * w)
            .collect();
        let mut out = fft.make_output_vec();
        fft.process(&mut buf, &mut out).unwrap();
        for (a, c) in acc.iter_mut().zip(&out) {
            *a += c.norm_sqr() as f64;
        }
        frames += 1;
    }
    acc.iter_mut().for_each(|a| *a /= frames.max(1) as f64);
    acc
}

fn bin_hz(bin: usize) -> f64 {
    bin as f64 * SR as f64 / FRAME as f64
}

fn band_fraction(spec: &[f64], lo: f64, hi: f64) -> f64 {
    let total: f64 = spec.iter().sum();
    let band: f64 = spec
        .iter()
        .enumerate()
        .filter(|(b, _)| (lo..hi).contains(&bin_hz(*b)))
        .map(|(_, p)| p)
        .sum();
    band / total
}

/// An MFCC-like chunk feature: log energies in BANDS log-spaced bands (50 Hz – 11 kHz) plus the
/// spectral centroid in kHz. Crude on purpose: the real MFCC module is tested elsewhere.
fn chunk_feature(chunk: &[f32]) -> Vec<f64> {
    let spec = power_spectrum(chunk);
    let edge = |i: usize| 50.0 * (11_000.0f64 / 50.0).powf(i as f64 / BANDS as f64);
    let mut f: Vec<f64> = (0..BANDS)
        .map(|i| {
            let e: f64 = spec
                .iter()
                .enumerate()
                .filter(|(b, _)| (edge(i)..edge(i + 1)).contains(&bin_hz(*b)))
                .map(|(_, p)| p)
                .sum();
            (e + 1e-10).log10()
        })
        .collect();
    let total: f64 = spec.iter().sum();
    let centroid = spec
        .iter()
        .enumerate()
        .map(|(b, p)| bin_hz(b) * p)
        .sum::<f64>()
        / total.max(1e-20);
    f.push(centroid / 1000.0);
    f
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

fn mean(rows: &[Vec<f64>]) -> Vec<f64> {
    let mut m = vec![0.0; rows[0].len()];
    for r in rows {
        m.iter_mut()
            .zip(r)
            .for_each(|(a, b)| *a += b / rows.len() as f64);
    }
    m
}

/// Chunk features of `songs` songs of `seconds` each: per song, one row per 0.5 s chunk.
fn corpus_features(songs: usize, seconds: f64) -> Vec<Vec<Vec<f64>>> {
    (0..songs)
        .map(|i| {
            SongSpec::random(42, i)
                .render(seconds, SR)
                .samples
                .chunks_exact(CHUNK)
                .map(chunk_feature)
                .collect()
        })
        .collect()
}

/// Nearest-centroid identification (centroids from all chunks, queries = the chunks, as in the
/// seed protocol): (chunk accuracy, song accuracy by majority vote, within/between distance).
fn nearest_centroid(features: &[Vec<Vec<f64>>]) -> (f64, f64, f64) {
    let centroids: Vec<Vec<f64>> = features.iter().map(|c| mean(c)).collect();
    let (mut right, mut total, mut songs_right) = (0, 0, 0);
    let mut within = 0.0;
    for (song, chunks) in features.iter().enumerate() {
        let mut votes = vec![0usize; centroids.len()];
        for c in chunks {
            let best = (0..centroids.len())
                .min_by(|&a, &b| dist(c, &centroids[a]).total_cmp(&dist(c, &centroids[b])))
                .unwrap();
            votes[best] += 1;
            right += usize::from(best == song);
            total += 1;
            within += dist(c, &centroids[song]);
        }
        let winner = (0..votes.len())
            .max_by_key(|&s| (votes[s], std::cmp::Reverse(s)))
            .unwrap();
        songs_right += usize::from(winner == song);
    }
    let mut between = 0.0;
    let mut pairs = 0;
    for a in 0..centroids.len() {
        for b in a + 1..centroids.len() {
            between += dist(&centroids[a], &centroids[b]);
            pairs += 1;
        }
    }
    let ratio = (within / total as f64) / (between / pairs as f64);
    (
        right as f64 / total as f64,
        songs_right as f64 / features.len() as f64,
        ratio,
    )
}

#[test]
fn rendering_is_deterministic_per_seed_and_index() {
    let a = SongSpec::random(42, 5).render(5.0, SR);
    let b = SongSpec::random(42, 5).render(5.0, SR);
    assert!(a
        .samples
        .iter()
        .zip(&b.samples)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    let c = SongSpec::random(42, 6).render(5.0, SR);
    let differing = a
        .samples
        .iter()
        .zip(&c.samples)
        .filter(|(x, y)| x != y)
        .count();
    assert!(
        differing > a.samples.len() / 2,
        "songs 5 and 6 share {differing} samples"
    );
}

#[test]
fn full_length_song_is_exact_finite_normalised_and_loud() {
    let a = SongSpec::random(42, 0).render(30.0, SR);
    assert_eq!(a.samples.len(), 661_500);
    assert!(a.samples.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    let peak = a.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!((peak - PEAK_LEVEL).abs() < 1e-4, "peak {peak}");
    // Every 0.5 s chunk has signal (no silent gaps between sections).
    for (i, chunk) in a.samples.chunks_exact(CHUNK).enumerate() {
        let rms = (chunk.iter().map(|v| v * v).sum::<f32>() / CHUNK as f32).sqrt();
        assert!(rms > 0.01, "chunk {i} rms {rms}");
    }
}

#[test]
fn songs_are_loud_with_energy_in_bass_and_treble() {
    for i in 0..16 {
        let a = SongSpec::random(42, i).render(4.0, SR);
        let rms = (a.samples.iter().map(|v| v * v).sum::<f32>() / a.samples.len() as f32).sqrt();
        assert!(rms > 0.05, "song {i}: rms {rms}");
        let spec = power_spectrum(&a.samples);
        let bass = band_fraction(&spec, 30.0, 250.0);
        let treble = band_fraction(&spec, 2000.0, 11_025.0);
        assert!(bass > 0.01, "song {i}: bass fraction {bass}");
        assert!(treble > 5e-4, "song {i}: treble fraction {treble}");
    }
}

#[test]
fn songs_are_separable_by_spectral_features_but_vary_over_time() {
    let features = corpus_features(24, 12.0);
    let (chunk_acc, song_acc, ratio) = nearest_centroid(&features);
    eprintln!("24 songs: chunk accuracy {chunk_acc:.3}, song accuracy {song_acc:.3}, within/between {ratio:.3}");
    assert_eq!(song_acc, 1.0, "every song should be identified by voting");
    assert!(chunk_acc > 0.5, "chunk accuracy {chunk_acc}");
    // Not a constant tone: chunks of one song spread out by a real fraction of the song-to-song gap.
    assert!(ratio > 0.1, "within/between distance ratio {ratio}");
    // Two songs differ in spectral centroid statistics.
    let centroid = |s: usize| mean(&features[s])[BANDS];
    assert!((0..24).any(|s| (centroid(s) - centroid(0)).abs() > 0.2));
}

/// Run with `cargo test --release --test synth -- --ignored --nocapture`: the same check on
/// the default corpus size (400 songs × 30 s).
#[test]
#[ignore]
fn default_corpus_separability() {
    let features = corpus_features(400, 30.0);
    let (chunk_acc, song_acc, ratio) = nearest_centroid(&features);
    eprintln!("400 songs: chunk accuracy {chunk_acc:.3}, song accuracy {song_acc:.3}, within/between {ratio:.3}");
    assert!(song_acc > 0.9);
}

fn count_calls() -> (AtomicUsize, impl Fn(&AtomicUsize)) {
    (AtomicUsize::new(0), |c: &AtomicUsize| {
        c.fetch_add(1, Ordering::Relaxed);
    })
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn small() -> SynthParams {
    SynthParams {
        songs: 3,
        seconds: 2.0,
        seed: 42,
        sample_rate: SR,
    }
}

#[test]
fn write_corpus_writes_fma_layout_csv_and_wavs() {
    let dir = tempfile::tempdir().unwrap();
    let (calls, inc) = count_calls();
    let songs = write_corpus(dir.path(), &small(), &|| inc(&calls)).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(songs.len(), 3);

    let ids = track_ids(42, 3);
    for (i, (song, id)) in songs.iter().zip(&ids).enumerate() {
        assert_eq!(song.index, i);
        assert_eq!(song.track_id, format!("{id:06}"));
        assert_eq!(
            song.path,
            Path::new(&format!("audio/{:03}/{id:06}.wav", id / 1000))
        );
        assert!(song.title.as_deref().is_some_and(|t| !t.is_empty()));
        assert!(song.artist.as_deref().is_some_and(|a| !a.is_empty()));

        let mut reader = hound::WavReader::open(dir.path().join(&song.path)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, SR, 16)
        );
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(samples.len(), 44_100);
        let rendered = SongSpec::random(42, i).render(2.0, SR);
        for (q, s) in samples.iter().zip(&rendered.samples).step_by(997) {
            assert_eq!(*q, (s * 32767.0).round() as i16);
        }
    }
    assert!(songs.windows(2).all(|w| w[0].track_id < w[1].track_id));

    let mut csv = csv::Reader::from_path(dir.path().join("metadata/tracks.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "track_id",
            "title",
            "artist",
            "genre",
            "tempo_bpm",
            "key",
            "seconds"
        ]
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    for (row, (song, id)) in rows.iter().zip(songs.iter().zip(&ids)) {
        assert_eq!(row[0].parse::<u32>().unwrap(), *id);
        assert_eq!(Some(&row[1]), song.title.as_deref());
        assert_eq!(Some(&row[2]), song.artist.as_deref());
        assert!(row[4].parse::<f64>().unwrap() >= 60.0);
        assert_eq!(row[6].parse::<f64>().unwrap(), 2.0);
    }

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_path(dir.path())).unwrap()).unwrap();
    assert_eq!(manifest["params"]["songs"], 3);
    assert_eq!(manifest["complete"], true);
}

#[test]
fn rerun_with_same_params_skips_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let songs = write_corpus(dir.path(), &small(), &|| {}).unwrap();
    let paths: Vec<_> = songs.iter().map(|s| dir.path().join(&s.path)).collect();
    let before: Vec<_> = paths.iter().map(|p| mtime(p)).collect();
    let csv_before = mtime(&dir.path().join("metadata/tracks.csv"));

    let (calls, inc) = count_calls();
    let again = write_corpus(dir.path(), &small(), &|| inc(&calls)).unwrap();
    assert_eq!(again, songs);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "progress reported for reused songs too"
    );
    assert_eq!(
        paths.iter().map(|p| mtime(p)).collect::<Vec<_>>(),
        before,
        "nothing re-rendered"
    );
    assert_eq!(mtime(&dir.path().join("metadata/tracks.csv")), csv_before);

    // A missing file is re-rendered; the others are kept.
    std::fs::remove_file(&paths[1]).unwrap();
    let resumed = write_corpus(dir.path(), &small(), &|| {}).unwrap();
    assert_eq!(resumed, songs);
    assert!(paths[1].exists());
    assert_eq!(mtime(&paths[0]), before[0]);
    assert_eq!(mtime(&paths[2]), before[2]);
}

#[test]
fn changed_params_rerender_and_drop_stale_files() {
    let dir = tempfile::tempdir().unwrap();
    let three = write_corpus(dir.path(), &small(), &|| {}).unwrap();
    let two = write_corpus(
        dir.path(),
        &SynthParams {
            songs: 2,
            seconds: 1.0,
            ..small()
        },
        &|| {},
    )
    .unwrap();
    assert_eq!(two[..], three[..2], "same seed: same ids and names");
    assert!(
        !dir.path().join(&three[2].path).exists(),
        "stale song left behind"
    );
    for Song { path, .. } in &two {
        assert_eq!(
            hound::WavReader::open(dir.path().join(path))
                .unwrap()
                .duration(),
            22_050
        );
    }
    let rows = csv::Reader::from_path(dir.path().join("metadata/tracks.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(rows, 2);
}

#[test]
fn invalid_params_fail_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corpus");
    let err = write_corpus(
        &out,
        &SynthParams {
            seconds: -1.0,
            ..small()
        },
        &|| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("seconds"), "{err}");
    assert!(!out.exists());
}
