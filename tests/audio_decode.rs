//! Decoding and resampling against librosa 0.11 (libsndfile/mpg123 + soxr_hq), on the committed
//! fixture files and on files generated here (hound WAVs, a hand-written FLAC, corrupted MP3s).

use fhe_shazam::audio::decode::decode_file;
use fhe_shazam::audio::resample::resample;
use fhe_shazam::audio::{load, LoadOptions};
use fhe_shazam::AudioError;
use serde_json::Value;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/librosa_mfcc")
}

fn fixture_json() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("librosa_mfcc.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The `mp3` entry of the fixture for `file`.
fn mp3_entry(file: &str) -> Value {
    fixture_json()["mp3"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .unwrap()
        .clone()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Largest |a - b| over the spot values librosa recorded (first 10, samples 1000..1010), and the
/// absolute differences of mean, RMS and max |x|.
struct Comparison {
    spot: f32,
    mean: f64,
    rms: f64,
    max_abs: f64,
}

fn compare(samples: &[f32], expected: &Value) -> Comparison {
    let first = floats(&expected["first_10_samples"]);
    let mid = floats(&expected["samples_1000_to_1009"]);
    let spot = first
        .iter()
        .zip(&samples[..10])
        .chain(mid.iter().zip(&samples[1000..1010]))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let rms = (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n).sqrt();
    let max_abs = samples
        .iter()
        .map(|x| f64::from(x.abs()))
        .fold(0.0, f64::max);
    Comparison {
        spot,
        mean: (mean - expected["mean"].as_f64().unwrap()).abs(),
        rms: (rms - expected["rms"].as_f64().unwrap()).abs(),
        max_abs: (max_abs - expected["max_abs"].as_f64().unwrap()).abs(),
    }
}

fn assert_close(label: &str, c: &Comparison, spot_tol: f32, stat_tol: f64) {
    eprintln!(
        "{label}: max |spot error| {:.3e}, |mean error| {:.3e}, |rms error| {:.3e}, |max_abs error| {:.3e}",
        c.spot, c.mean, c.rms, c.max_abs
    );
    assert!(c.spot < spot_tol, "{label}: spot error {}", c.spot);
    assert!(
        c.mean < stat_tol && c.rms < stat_tol && c.max_abs < stat_tol,
        "{label}: stats"
    );
}

#[test]
fn fixture_mp3s_decode_gapless_like_mpg123() {
    for (file, rate) in [
        ("sine440_1000_1s_22050.mp3", 22_050u32),
        ("sine440_1000_1s_44100.mp3", 44_100),
    ] {
        let entry = mp3_entry(file);
        let native = &entry["native"];
        let decoded = decode_file(&fixture_dir().join(file), None).unwrap();
        assert_eq!(decoded.sample_rate, rate, "{file}");
        // Gapless: encoder delay + decoder delay and the end padding are gone.
        assert_eq!(
            decoded.samples.len() as u64,
            native["length"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(decoded.samples.len(), rate as usize, "{file}");
        assert_eq!(decoded.skipped_packets, 0);
        assert_close(file, &compare(&decoded.samples, native), 2e-6, 1e-6);
    }
}

#[test]
fn mp3_44100_loaded_at_22050_matches_librosa_soxr_hq() {
    let file = "sine440_1000_1s_44100.mp3";
    let expected = &mp3_entry(file)["sr22050"];
    let audio = load(&fixture_dir().join(file), &LoadOptions::default()).unwrap();
    assert_eq!(audio.sample_rate, 22_050);
    assert_eq!(
        audio.samples.len() as u64,
        expected["length"].as_u64().unwrap()
    );
    assert_close(
        "44100 mp3 -> 22050",
        &compare(&audio.samples, expected),
        1e-5,
        1e-6,
    );
}

#[test]
fn wav_int16_decodes_exactly() {
    let path = fixture_dir().join("sine440_1000_1s.wav");
    let ints: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap())
        .collect();
    let decoded = decode_file(&path, None).unwrap();
    assert_eq!(decoded.sample_rate, 22_050);
    assert_eq!(decoded.samples.len(), ints.len());
    for (i, (&s, &q)) in decoded.samples.iter().zip(&ints).enumerate() {
        assert_eq!(s, f32::from(q) / 32_768.0, "sample {i}");
    }
    // And what librosa saw (the fixture's first 10 samples).
    let signal = fixture_json()["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["file"] == "sine440_1000_1s.wav")
        .unwrap()
        .clone();
    assert_eq!(
        floats(&signal["first_10_samples"]),
        decoded.samples[..10].to_vec()
    );
    // Equal rates: load() is decode + copy.
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.samples, decoded.samples);
}

/// Writes a 16-bit stereo WAV and returns the integer samples of each channel.
fn write_stereo_wav(path: &Path, rate: u32, len: usize) -> (Vec<i16>, Vec<i16>) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for n in 0..len {
        let t = n as f64 / f64::from(rate);
        // 1 kHz in both channels with different amplitudes, plus 3 kHz on the left only.
        let l =
            (0.5 * (2.0 * PI * 1000.0 * t).sin() + 0.2 * (2.0 * PI * 3000.0 * t).sin()) * 32767.0;
        let r = 0.3 * (2.0 * PI * 1000.0 * t).sin() * 32767.0;
        left.push(l.round() as i16);
        right.push(r.round() as i16);
        w.write_sample(left[n]).unwrap();
        w.write_sample(right[n]).unwrap();
    }
    w.finalize().unwrap();
    (left, right)
}

/// Amplitude of the `freq` component of `x` (a single DFT bin, Hann-free: whole periods).
fn amplitude_at(x: &[f32], rate: u32, freq: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let phase = 2.0 * PI * freq * n as f64 / f64::from(rate);
        re += f64::from(v) * phase.cos();
        im += f64::from(v) * phase.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

#[test]
fn stereo_48k_wav_is_averaged_and_resampled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo48k.wav");
    let len = 48_000;
    let (left, right) = write_stereo_wav(&path, 48_000, len);

    let decoded = decode_file(&path, None).unwrap();
    assert_eq!(decoded.sample_rate, 48_000);
    assert_eq!(decoded.samples.len(), len);
    for i in 0..len {
        let expected = (f32::from(left[i]) / 32_768.0 + f32::from(right[i]) / 32_768.0) / 2.0;
        assert_eq!(decoded.samples[i], expected, "sample {i}");
    }

    let audio = load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(audio.sample_rate, 22_050);
    assert_eq!(audio.samples.len(), (len * 147).div_ceil(320)); // 22050
                                                                // Mono = 0.4 sin(1 kHz) + 0.1 sin(3 kHz); whole periods of both in 22050 samples.
    let a1 = amplitude_at(&audio.samples, 22_050, 1000.0);
    let a3 = amplitude_at(&audio.samples, 22_050, 3000.0);
    let a2 = amplitude_at(&audio.samples, 22_050, 2000.0);
    eprintln!("48k stereo -> 22050: 1 kHz {a1:.5}, 3 kHz {a3:.5}, 2 kHz {a2:.2e}");
    assert!((a1 - 0.4).abs() < 2e-3, "1 kHz amplitude {a1}");
    assert!((a3 - 0.1).abs() < 2e-3, "3 kHz amplitude {a3}");
    assert!(a2 < 1e-3, "2 kHz amplitude {a2}");
    // Direct resample of the decoded signal is the same as load().
    assert_eq!(
        resample(&decoded.samples, 48_000, 22_050).unwrap(),
        audio.samples
    );
}

/// Minimal FLAC writer (VERBATIM subframes, 16-bit, fixed 4096-sample blocks): enough to
/// test the FLAC path without an external encoder.
mod flac {
    pub const BLOCK: usize = 4096;

    struct Bits {
        bytes: Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl Bits {
        fn new() -> Self {
            Self {
                bytes: Vec::new(),
                acc: 0,
                n: 0,
            }
        }
        fn put(&mut self, value: u64, bits: u32) {
            for i in (0..bits).rev() {
                self.acc = (self.acc << 1) | ((value >> i) & 1);
                self.n += 1;
                if self.n == 8 {
                    self.bytes.push(self.acc as u8);
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }
    }

    fn crc8(data: &[u8]) -> u8 {
        let mut crc = 0u8;
        for &b in data {
            crc ^= b;
            for _ in 0..8 {
                crc = if crc & 0x80 != 0 {
                    (crc << 1) ^ 0x07
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    fn crc16(data: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in data {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x8005
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    /// `channels[c][n]`: 16-bit samples of channel c.
    pub fn encode(rate: u32, channels: &[Vec<i16>]) -> Vec<u8> {
        let len = channels[0].len();
        let mut out = b"fLaC".to_vec();
        let mut info = Bits::new();
        info.put(1, 1); // last metadata block
        info.put(0, 7); // STREAMINFO
        info.put(34, 24);
        info.put(BLOCK as u64, 16);
        info.put(BLOCK as u64, 16);
        info.put(0, 24); // min frame size unknown
        info.put(0, 24); // max frame size unknown
        info.put(u64::from(rate), 20);
        info.put(channels.len() as u64 - 1, 3);
        info.put(15, 5); // 16 bits per sample
        info.put(len as u64, 36);
        info.put(0, 64); // MD5 unknown
        info.put(0, 64);
        out.extend(info.bytes);
        for (frame, start) in (0..len).step_by(BLOCK).enumerate() {
            let n = BLOCK.min(len - start);
            assert!(frame < 128, "one-byte frame numbers only");
            let mut f = Bits::new();
            f.put(0b11_1111_1111_1110, 14); // sync
            f.put(0, 1);
            f.put(0, 1); // fixed block size
            f.put(0b0111, 4); // block size - 1 in 16 bits after the header
            f.put(0, 4); // sample rate from STREAMINFO
            f.put(channels.len() as u64 - 1, 4); // independent channels
            f.put(0b100, 3); // 16 bits per sample
            f.put(0, 1);
            f.put(frame as u64, 8);
            f.put(n as u64 - 1, 16);
            let crc = crc8(&f.bytes);
            f.put(u64::from(crc), 8);
            for ch in channels {
                f.put(0, 1);
                f.put(0b000001, 6); // VERBATIM
                f.put(0, 1);
                for &s in &ch[start..start + n] {
                    f.put(u64::from(s as u16), 16);
                }
            }
            let crc = crc16(&f.bytes);
            f.put(u64::from(crc), 16);
            out.extend(f.bytes);
        }
        out
    }
}

#[test]
fn flac_decodes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.flac");
    let len = 10_000; // 2 full blocks + a short last one
    let left: Vec<i16> = (0..len)
        .map(|n| ((n as f64 * 0.05).sin() * 20_000.0) as i16)
        .collect();
    let right: Vec<i16> = (0..len)
        .map(|n| ((n as f64 * 0.011).cos() * 9_000.0) as i16)
        .collect();
    std::fs::write(&path, flac::encode(44_100, &[left.clone(), right.clone()])).unwrap();
    let decoded = decode_file(&path, None).unwrap();
    assert_eq!(decoded.sample_rate, 44_100);
    assert_eq!(decoded.samples.len(), len);
    for i in 0..len {
        let expected = (f32::from(left[i]) / 32_768.0 + f32::from(right[i]) / 32_768.0) / 2.0;
        assert_eq!(decoded.samples[i], expected, "sample {i}");
    }
    // Ogg Vorbis is decoded by the same loop; there is no encoder here to make a test file.
}

/// Asserts `err` is the expected kind and its message names the file.
fn assert_names(err: &AudioError, path: &Path) {
    let message = err.to_string();
    eprintln!("{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mp3 = std::fs::read(fixture_dir().join("sine440_1000_1s_44100.mp3")).unwrap();

    let empty = dir.path().join("empty.mp3");
    std::fs::write(&empty, b"").unwrap();
    let err = decode_file(&empty, None).unwrap_err();
    assert!(matches!(err, AudioError::Empty { .. }), "{err:?}");
    assert_names(&err, &empty);

    let text = dir.path().join("notes.mp3");
    std::fs::write(
        &text,
        "these are not the droids you are looking for\n".repeat(40),
    )
    .unwrap();
    let err = decode_file(&text, None).unwrap_err();
    assert!(matches!(err, AudioError::Unsupported { .. }), "{err:?}");
    assert_names(&err, &text);

    let missing = dir.path().join("missing.mp3");
    let err = decode_file(&missing, None).unwrap_err();
    assert!(matches!(err, AudioError::Io { .. }), "{err:?}");
    assert_names(&err, &missing);
    let err = load(&missing, &LoadOptions::default()).unwrap_err();
    assert_names(&err, &missing);

    // The first 300 bytes: the ID3 tag and part of the Info frame, no audio.
    let head = dir.path().join("head.mp3");
    std::fs::write(&head, &mp3[..300]).unwrap();
    let err = decode_file(&head, None).unwrap_err();
    assert!(
        matches!(
            err,
            AudioError::Unsupported { .. } | AudioError::NoSamples { .. }
        ),
        "{err:?}"
    );
    assert_names(&err, &head);
}

#[test]
fn truncated_and_corrupted_mp3_decode_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let mp3 = std::fs::read(fixture_dir().join("sine440_1000_1s_44100.mp3")).unwrap();
    let full = decode_file(&fixture_dir().join("sine440_1000_1s_44100.mp3"), None).unwrap();

    // Cut in the middle of a frame: the frames before the cut decode, unchanged.
    let half = dir.path().join("half.mp3");
    std::fs::write(&half, &mp3[..mp3.len() / 2 + 77]).unwrap();
    let decoded = decode_file(&half, None).unwrap();
    eprintln!(
        "half file: {} of {} samples",
        decoded.samples.len(),
        full.samples.len()
    );
    assert!(decoded.samples.len() > 15_000 && decoded.samples.len() < 30_000);
    // A frame depends only on earlier frames (bit reservoir, overlap-add), so all match.
    assert_eq!(decoded.samples[..], full.samples[..decoded.samples.len()]);

    // Garbage over a stretch in the middle: no panic, roughly the full length comes out.
    let mut bad = mp3.clone();
    let mid = bad.len() / 2;
    for (i, b) in bad[mid..mid + 600].iter_mut().enumerate() {
        *b = (i * 37 % 251) as u8;
    }
    let garbled = dir.path().join("garbled.mp3");
    std::fs::write(&garbled, &bad).unwrap();
    let decoded = decode_file(&garbled, None).unwrap();
    eprintln!(
        "garbled file: {} samples, {} packets skipped",
        decoded.samples.len(),
        decoded.skipped_packets
    );
    assert!(decoded.samples.len() > 30_000 && decoded.samples.len() <= 44_100 + 1152);
}

#[test]
fn max_seconds_truncates() {
    let path = fixture_dir().join("sine440_1000_1s_44100.mp3");
    let full = decode_file(&path, None).unwrap();
    let part = decode_file(&path, Some(0.25)).unwrap();
    assert_eq!(part.samples.len(), 11_025);
    assert_eq!(part.samples[..], full.samples[..11_025]);
    // Longer than the file: everything.
    assert_eq!(
        decode_file(&path, Some(180.0)).unwrap().samples.len(),
        44_100
    );
    // load() truncates before resampling, like librosa.load(duration=…).
    let opts = LoadOptions {
        sample_rate: 22_050,
        max_seconds: Some(0.5),
    };
    assert_eq!(load(&path, &opts).unwrap().samples.len(), 11_025);
    // Nothing requested: nothing decoded is an error, not an empty clip.
    let err = decode_file(&path, Some(0.0)).unwrap_err();
    assert!(matches!(err, AudioError::NoSamples { .. }), "{err:?}");
}
