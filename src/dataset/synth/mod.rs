//! Synthetic music-like songs and the built-in default dataset written from them
//! (docs/ARCHITECTURE.md §5). One job per file:
//!
//! - `mod.rs`: the corpus writer (parameters, FMA layout, manifest, re-runs and resuming).
//! - `compose.rs`: [`SongSpec`] and its composition: form, sections, melodies, bass lines, mix.
//! - `theory.rs`: genres and their conventions, scales, keys, chords, progressions, notes.
//! - `timbre.rs`: pitched instruments (harmonic families, envelopes, vibrato) and wavetables.
//! - `drums.rs`: drum kits, grooves, one-bar patterns and the kit's one-shot samples.
//! - `render.rs`: the renderer: oscillators, envelopes, drums on the grid, echo, noise, level.
//! - `names.rs`: the title and artist name generator.
//!
//! A song is fully described by a [`SongSpec`]: every random choice (genre, tempo, key,
//! chord progressions, melodies, bass lines, timbres, drum kit and grooves, mix levels, noise)
//! is drawn once from a ChaCha stream derived from (corpus seed, song index). Rendering adds
//! no new choices except noise samples, which come from a ChaCha stream seeded by the spec,
//! so the same spec always renders to the same samples, bit for bit.
//!
//! Why this shape: song identification from MFCCs must work on timbre and harmony, so songs
//! differ in harmonic spectra, envelopes, drum sounds, register and mix, and each song moves
//! through verse/chorus/bridge sections so that its 0.5 s chunks are not all alike.
//!
//! The corpus is written in the FMA layout (`audio/000/000002.wav`, `metadata/tracks.csv`), so
//! every later stage reads it exactly as it reads real FMA data.
//!
//! `metadata/synth.json` records the parameters and generator version. It is written first
//! (marked incomplete) and last (marked complete), so a re-run with the same parameters returns
//! at once, an interrupted run resumes where it stopped, and a folder holding some other
//! dataset is never written into.

mod compose;
mod drums;
mod names;
mod render;
mod theory;
mod timbre;

pub use compose::{Mix, Section, SectionKind, SongSpec};
pub use drums::{DrumKit, DrumPattern, Groove};
pub use render::PEAK_LEVEL;
pub use theory::{Genre, Key, Note, Scale};
pub use timbre::{Adsr, Family, Timbre};

use super::catalog::Song;
use crate::audio::{write_wav, DEFAULT_SAMPLE_RATE};
use crate::error::DatasetError;
use crate::fsutil;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Version of the generator and layout. Bump it whenever rendering or naming changes, so
/// corpora written by older code are re-rendered rather than silently reused.
pub const FORMAT_VERSION: u32 = 1;

/// Upper bounds that keep one song's buffers in memory (~4 × 4 bytes per sample per thread)
/// and track ids within FMA's six digits.
const MAX_SAMPLES_PER_SONG: f64 = 20_000_000.0;
const MAX_SONGS: usize = 100_000;
const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;

/// The stream of the corpus-level RNG (track ids); song `i` uses stream `i`, so this one is
/// out of their reach.
const TRACK_ID_STREAM: u64 = u64::MAX;

/// What corpus to write. The defaults give the seed protocol's shape: 400 songs of 30 s
/// (an FMA clip) at 22050 Hz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthParams {
    pub songs: usize,
    pub seconds: f64,
    pub seed: u64,
    pub sample_rate: u32,
}

impl Default for SynthParams {
    fn default() -> Self {
        Self {
            songs: 400,
            seconds: 30.0,
            seed: 42,
            sample_rate: DEFAULT_SAMPLE_RATE,
        }
    }
}

impl SynthParams {
    /// Checks the parameters before any work starts.
    pub fn validate(&self) -> Result<(), DatasetError> {
        let bad = |reason: String| Err(DatasetError::InvalidSynthParams(reason));
        if self.songs == 0 || self.songs > MAX_SONGS {
            return bad(format!("songs = {}, expected 1..={MAX_SONGS}", self.songs));
        }
        if !SAMPLE_RATES.contains(&self.sample_rate) {
            return bad(format!(
                "sample_rate = {} Hz, expected {}..={}",
                self.sample_rate,
                SAMPLE_RATES.start(),
                SAMPLE_RATES.end()
            ));
        }
        let samples = self.seconds * self.sample_rate as f64;
        if !self.seconds.is_finite() || self.seconds <= 0.0 || samples > MAX_SAMPLES_PER_SONG {
            return bad(format!(
                "seconds = {}, expected > 0 and at most {MAX_SAMPLES_PER_SONG} samples per song",
                self.seconds
            ));
        }
        if (samples.round() as u64) < 1 {
            return bad(format!(
                "seconds = {} gives no samples at {} Hz",
                self.seconds, self.sample_rate
            ));
        }
        Ok(())
    }

    /// Whether two parameter sets describe the same files. Durations are compared in samples:
    /// serde_json's default float parsing may return a manifest's `seconds` one ulp off.
    fn same_corpus(&self, other: &SynthParams) -> bool {
        self.songs == other.songs
            && self.seed == other.seed
            && self.sample_rate == other.sample_rate
            && self.samples_per_song() == other.samples_per_song()
    }

    fn samples_per_song(&self) -> usize {
        (self.seconds * self.sample_rate as f64).round() as usize
    }
}

/// Contents of `metadata/synth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    params: SynthParams,
    /// False while the corpus is being written.
    complete: bool,
}

/// One row of `metadata/tracks.csv`.
#[derive(Debug, Serialize)]
struct TrackRow<'a> {
    track_id: u32,
    title: &'a str,
    artist: &'a str,
    genre: &'a str,
    tempo_bpm: f64,
    key: String,
    seconds: f64,
}

/// FMA-like track ids: increasing but not contiguous (FMA's start 2, 3, 5, 10, …), drawn from a
/// corpus-level ChaCha stream so they depend only on the seed and the count.
pub fn track_ids(seed: u64, songs: usize) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(TRACK_ID_STREAM);
    let mut id = 0u32;
    (0..songs)
        .map(|_| {
            // Gaps of 1..=9 (mean 5): 400 songs span ids up to ~2000, folders 000–002.
            id += rng.gen_range(1..=9u32);
            id
        })
        .collect()
}

/// FMA layout: `audio/<id / 1000, 3 digits>/<id, 6 digits>.wav`, relative to the corpus root.
pub fn track_path(track_id: u32) -> PathBuf {
    PathBuf::from("audio")
        .join(format!("{:03}", track_id / 1000))
        .join(format!("{track_id:06}.wav"))
}

/// Path of the manifest below the corpus root.
pub fn manifest_path(out: &Path) -> PathBuf {
    out.join("metadata").join("synth.json")
}

/// Writes (or reuses) the synthetic corpus at `out` and returns its songs in track-id order.
/// Songs render in parallel; `on_song_done` is called once per song (also for songs reused
/// from an earlier run), e.g. to advance a progress bar.
pub fn write_corpus(
    out: &Path,
    params: &SynthParams,
    on_song_done: &(dyn Fn() + Sync),
) -> Result<Vec<Song>, DatasetError> {
    params.validate()?;
    if out.exists() && !out.is_dir() {
        return Err(DatasetError::NotADirectory {
            path: out.to_path_buf(),
        });
    }
    let manifest_file = manifest_path(out);
    let previous = read_manifest(&manifest_file)?;
    if previous.is_none() && dir_has_entries(&out.join("audio"))? {
        return Err(DatasetError::Metadata {
            path: manifest_file,
            reason: format!(
                "missing, but {} already holds files: refusing to write a synthetic corpus into another dataset",
                out.join("audio").display()
            ),
        });
    }
    let same = previous
        .as_ref()
        .is_some_and(|m| m.format_version == FORMAT_VERSION && m.params.same_corpus(params));

    let ids = track_ids(params.seed, params.songs);
    let specs: Vec<SongSpec> = (0..params.songs)
        .into_par_iter()
        .map(|i| SongSpec::random(params.seed, i))
        .collect();
    let songs: Vec<Song> = specs
        .iter()
        .zip(&ids)
        .map(|(spec, &id)| Song {
            index: spec.index,
            track_id: format!("{id:06}"),
            path: track_path(id),
            title: Some(spec.title.clone()),
            artist: Some(spec.artist.clone()),
        })
        .collect();
    let tracks_csv = out.join("metadata").join("tracks.csv");

    if same && previous.as_ref().is_some_and(|m| m.complete) && tracks_csv.is_file() {
        let all_valid = songs
            .par_iter()
            .all(|s| wav_is_valid(&out.join(&s.path), params));
        if all_valid {
            songs.iter().for_each(|_| on_song_done());
            return Ok(songs);
        }
    }

    let manifest = |complete| Manifest {
        format_version: FORMAT_VERSION,
        params: params.clone(),
        complete,
    };
    write_json(&manifest_file, &manifest(false))?;
    if previous.is_some() && !same {
        remove_stale_wavs(out, &songs)?;
    }

    specs.par_iter().zip(&songs).try_for_each(|(spec, song)| {
        let path = out.join(&song.path);
        // Files are written atomically, so one that reads back right is complete.
        if !(same && wav_is_valid(&path, params)) {
            write_wav(&path, &spec.render(params.seconds, params.sample_rate))?;
        }
        on_song_done();
        Ok::<(), DatasetError>(())
    })?;

    write_tracks_csv(&tracks_csv, &specs, &ids, params)?;
    write_json(&manifest_file, &manifest(true))?;
    Ok(songs)
}

fn read_manifest(path: &Path) -> Result<Option<Manifest>, DatasetError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DatasetError::Metadata {
                path: path.to_path_buf(),
                reason: format!("not a synth manifest: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DatasetError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DatasetError> {
    fsutil::write_json_atomic(path, value).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn dir_has_entries(dir: &Path) -> Result<bool, DatasetError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(DatasetError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// True when `path` is a WAV with exactly the format and length this corpus writes.
fn wav_is_valid(path: &Path, params: &SynthParams) -> bool {
    hound::WavReader::open(path).is_ok_and(|r| {
        let s = r.spec();
        s.channels == 1
            && s.sample_rate == params.sample_rate
            && s.bits_per_sample == 16
            && s.sample_format == hound::SampleFormat::Int
            && r.duration() as usize == params.samples_per_song()
    })
}

/// After a parameter change, removes the WAVs of the previous corpus that the new one does
/// not contain, so a folder scan sees exactly the new corpus. Only files named like ours
/// (`audio/NNN/NNNNNN.wav`) are touched.
fn remove_stale_wavs(out: &Path, songs: &[Song]) -> Result<(), DatasetError> {
    let keep: BTreeSet<&Path> = songs.iter().map(|s| s.path.as_path()).collect();
    let audio = out.join("audio");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { path, source }
    };
    let Ok(dirs) = std::fs::read_dir(&audio) else {
        return Ok(());
    };
    for dir in dirs {
        let dir = dir.map_err(io(&audio))?.path();
        if !dir.is_dir() || !is_digits(dir.file_name(), 3) {
            continue;
        }
        for file in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let file = file.map_err(io(&dir))?.path();
            let ours =
                file.extension().is_some_and(|e| e == "wav") && is_digits(file.file_stem(), 6);
            let relative = file.strip_prefix(out).unwrap_or(&file);
            if ours && !keep.contains(relative) {
                std::fs::remove_file(&file).map_err(io(&file))?;
            }
        }
    }
    Ok(())
}

fn is_digits(name: Option<&std::ffi::OsStr>, len: usize) -> bool {
    name.and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == len && n.bytes().all(|b| b.is_ascii_digit()))
}

fn write_tracks_csv(
    path: &Path,
    specs: &[SongSpec],
    ids: &[u32],
    params: &SynthParams,
) -> Result<(), DatasetError> {
    fsutil::write_atomic_with(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        for (spec, &track_id) in specs.iter().zip(ids) {
            csv.serialize(TrackRow {
                track_id,
                title: &spec.title,
                artist: &spec.artist,
                genre: spec.genre.name(),
                tempo_bpm: spec.tempo_bpm,
                key: spec.key.to_string(),
                seconds: params.seconds,
            })?;
        }
        csv.flush()
    })
    .map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_ids_increase_with_gaps_and_are_deterministic() {
        let ids = track_ids(42, 400);
        assert_eq!(ids, track_ids(42, 400));
        assert_eq!(
            &ids[..10],
            &track_ids(42, 10)[..],
            "a smaller corpus is a prefix"
        );
        assert!(ids.windows(2).all(|w| w[1] > w[0]));
        assert!(
            ids.windows(2).any(|w| w[1] - w[0] > 1),
            "ids should not be contiguous"
        );
        assert!(*ids.last().unwrap() < 10_000);
        assert_ne!(track_ids(43, 10), track_ids(42, 10));
    }

    #[test]
    fn track_path_is_fma_layout() {
        assert_eq!(track_path(2), PathBuf::from("audio/000/000002.wav"));
        assert_eq!(track_path(123_456), PathBuf::from("audio/123/123456.wav"));
    }

    #[test]
    fn invalid_params_are_rejected() {
        let ok = SynthParams::default();
        assert!(ok.validate().is_ok());
        for bad in [
            SynthParams {
                songs: 0,
                ..ok.clone()
            },
            SynthParams {
                seconds: 0.0,
                ..ok.clone()
            },
            SynthParams {
                seconds: f64::NAN,
                ..ok.clone()
            },
            SynthParams {
                seconds: 1e9,
                ..ok.clone()
            },
            SynthParams {
                sample_rate: 100,
                ..ok.clone()
            },
            SynthParams {
                seconds: 1e-6,
                ..ok.clone()
            },
        ] {
            let err = bad.validate().unwrap_err();
            assert!(
                matches!(err, DatasetError::InvalidSynthParams(_)),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn params_deserialise_with_defaults() {
        let p: SynthParams = serde_json::from_str(r#"{"songs": 3}"#).unwrap();
        assert_eq!(
            p,
            SynthParams {
                songs: 3,
                ..SynthParams::default()
            }
        );
        assert!(serde_json::from_str::<SynthParams>(r#"{"song": 3}"#).is_err());
    }

    #[test]
    fn refuses_to_write_into_another_dataset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("audio/000")).unwrap();
        std::fs::write(dir.path().join("audio/000/000002.mp3"), b"not ours").unwrap();
        let params = SynthParams {
            songs: 1,
            seconds: 0.1,
            ..SynthParams::default()
        };
        let err = write_corpus(dir.path(), &params, &|| {}).unwrap_err();
        assert!(err.to_string().contains("synth.json"), "{err}");
        assert!(dir.path().join("audio/000/000002.mp3").exists());
    }

    #[test]
    fn corrupt_manifest_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
        std::fs::write(manifest_path(dir.path()), b"{ nope").unwrap();
        let err = write_corpus(
            dir.path(),
            &SynthParams {
                songs: 1,
                ..SynthParams::default()
            },
            &|| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("synth.json"), "{err}");
    }
}
