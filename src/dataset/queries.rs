//! Query sets for the `robust` protocol: per song and condition, one deterministic degraded
//! excerpt of what a phone would record (docs/ARCHITECTURE.md §6), written as WAV files with a
//! CSV of the true song and every parameter, so an evaluator (or a listener) can use them as
//! they are.
//!
//! Layout of a query set folder:
//! - `<condition>/<track_id>.wav`: 16-bit mono at the load rate (22050 Hz by default);
//! - `queries.csv`: one row per file (condition-major, then catalog order);
//! - `queryset.json`: parameters, dataset, catalog size, format version, failures, and for a
//!   `--shard` its part of the catalogue (`merge` puts the parts back together).

use super::catalog::{order_shards, Catalog, Shard, ShardInfo, Song};
use super::degrade::{
    apply, AddedNoise, BandFilter, BandPass, Codec, Compressor, Degradation, Generator,
    NoiseColour, RandomEq, Room, RoomModel, PHONE_BAND,
};
use crate::audio::{self, Audio, LoadOptions, DEFAULT_SAMPLE_RATE};
use crate::error::DatasetError;
use crate::fsutil;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// `format` field of `queryset.json`.
pub const FORMAT: &str = "fhe-shazam-queries";
/// Version of the layout and of the degradation recipes: bump it when either changes, so old
/// query sets are refused rather than silently mixed with new ones.
pub const FORMAT_VERSION: u32 = 2;
pub const CSV_FILE: &str = "queries.csv";
pub const MANIFEST_FILE: &str = "queryset.json";

/// Offsets are drawn on the sample grid of the analysis rate, so they are exact in samples.
const GRID_RATE: u32 = DEFAULT_SAMPLE_RATE;
/// The seed's chunk grid: 0.5 s. Offset queries never start on it, so no query chunk is a
/// training chunk.
pub const CHUNK_GRID_SAMPLES: u64 = 11_025;
/// Shortest query worth classifying (10 chunks of 0.5 s).
pub const MIN_QUERY_SECONDS: f64 = 5.0;
const MAX_QUERY_SECONDS: f64 = 600.0;
/// The `speed` condition plays 2 % faster or slower; every condition reserves the source audio
/// of the slowest read (2 % more) so all conditions of a song share one offset.
pub const SPEED_CHANGE: f64 = 0.02;
/// SNR of the noise in each condition.
const PHONE_SNR_DB: f64 = 10.0;
/// Largest boost or cut of the `channel` condition's random EQ bands.
const CHANNEL_EQ_DB: f64 = 9.0;
const REVERB_SNR_DB: f64 = 15.0;
const RT60_RANGE_S: std::ops::RangeInclusive<f64> = 0.3..=0.8;

/// The query conditions of the `robust` protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The seed's query: the first `query_seconds` of the window, on the chunk grid.
    Aligned,
    /// A random start off the 0.5 s grid.
    Offset,
    /// Offset + noise at 20, 10 or 5 dB SNR.
    Noise20,
    Noise10,
    Noise5,
    /// Offset + 10 dB noise + 300–3400 Hz band-pass + 8 kHz 8-bit μ-law.
    Phone,
    /// Offset + synthetic room (RT60 0.3–0.8 s) + 15 dB noise.
    Reverb,
    /// Offset + 2 % faster or slower.
    Speed,
    /// Offset, recorded 10, 20 or 30 dB quieter.
    Quiet10,
    Quiet20,
    Quiet30,
    /// Offset, recorded 10 dB louder (limited to full scale, never clipped).
    Loud10,
    /// Offset + 10 dB noise + a linear-phase FIR band-pass with drawn edges (200–400 Hz to
    /// 2.8–3.6 kHz) + IMA ADPCM at 8 kHz: a phone channel of other algorithms than `phone`.
    PhoneAdpcm,
    /// The same with GSM 06.10 (needs ffmpeg with libgsm).
    PhoneGsm,
    /// The same with Opus at 12 kbit/s (needs ffmpeg with libopus).
    PhoneOpus,
    /// Offset + image-method shoebox room (RT60 0.3–0.8 s) + 15 dB noise.
    RoomImage,
    /// Offset + Schroeder reverberator (RT60 0.3–0.8 s) + 15 dB noise.
    RoomSchroeder,
    /// Offset + multi-talker babble at 10 or 5 dB SNR.
    Babble10,
    Babble5,
    /// Offset + brown noise at 5 dB SNR.
    Brown5,
    /// Offset + dynamic range compression (4:1 from 10 dB below the RMS).
    Compressed,
    /// A varied phone channel for training copies: `phone`'s noise and codec, a Butterworth band
    /// with edges drawn wider than any held-out condition's (100–500 Hz, 2.5–3.8 kHz) and a
    /// random ±9 dB peaking EQ (the loudspeaker and microphone), so a model sees many channels
    /// instead of one.
    Channel,
}

impl Condition {
    /// The conditions of the first robust protocol: the default list of a query set.
    pub const STANDARD: &'static [Condition] = Condition::ALL.split_at(8).0;

    /// Every condition, in the order that fixes their random streams (append only).
    pub const ALL: [Condition; 22] = [
        Condition::Aligned,
        Condition::Offset,
        Condition::Noise20,
        Condition::Noise10,
        Condition::Noise5,
        Condition::Phone,
        Condition::Reverb,
        Condition::Speed,
        Condition::Quiet10,
        Condition::Quiet20,
        Condition::Quiet30,
        Condition::Loud10,
        Condition::PhoneAdpcm,
        Condition::PhoneGsm,
        Condition::PhoneOpus,
        Condition::RoomImage,
        Condition::RoomSchroeder,
        Condition::Babble10,
        Condition::Babble5,
        Condition::Brown5,
        Condition::Compressed,
        Condition::Channel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Condition::Aligned => "aligned",
            Condition::Offset => "offset",
            Condition::Noise20 => "noise20",
            Condition::Noise10 => "noise10",
            Condition::Noise5 => "noise5",
            Condition::Phone => "phone",
            Condition::Reverb => "reverb",
            Condition::Speed => "speed",
            Condition::Quiet10 => "quiet10",
            Condition::Quiet20 => "quiet20",
            Condition::Quiet30 => "quiet30",
            Condition::Loud10 => "loud10",
            Condition::PhoneAdpcm => "phone_adpcm",
            Condition::PhoneGsm => "phone_gsm",
            Condition::PhoneOpus => "phone_opus",
            Condition::RoomImage => "room_image",
            Condition::RoomSchroeder => "room_schroeder",
            Condition::Babble10 => "babble10",
            Condition::Babble5 => "babble5",
            Condition::Brown5 => "brown5",
            Condition::Compressed => "compressed",
            Condition::Channel => "channel",
        }
    }

    /// Every algorithm this condition's queries use (over the songs' alternating choices, e.g.
    /// white or pink noise): what a training set must not contain for the condition to count
    /// as held out.
    pub fn generators(self) -> Vec<Generator> {
        let mut g: Vec<Generator> = (0..2)
            .flat_map(|song| {
                Degradation::draw(self, 0, song, 60.0, MIN_QUERY_SECONDS, QueryWindow::Whole)
                    .map(|d| d.generators())
                    .unwrap_or_default()
            })
            .collect();
        g.sort();
        g.dedup();
        g
    }

    /// The generators of `self` that also made some training copy in `training`: empty means
    /// the condition is held out from training.
    pub fn seen_in(self, training: &[Condition]) -> Vec<Generator> {
        let trained: HashSet<Generator> = training.iter().flat_map(|c| c.generators()).collect();
        self.generators()
            .into_iter()
            .filter(|g| trained.contains(g))
            .collect()
    }

    /// The external codec this condition needs, if any.
    pub fn external_codec(self) -> Option<super::families::ExternalCodec> {
        match self {
            Condition::PhoneGsm => Codec::Gsm.external(),
            Condition::PhoneOpus => Codec::Opus.external(),
            _ => None,
        }
    }

    /// Position in [`Condition::ALL`]: fixes the random stream of the condition.
    fn index(self) -> usize {
        Condition::ALL
            .iter()
            .position(|&c| c == self)
            .expect("ALL lists every condition")
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Condition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        Condition::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Condition::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown condition {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Which part of each clip queries may come from.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryWindow {
    /// Anywhere in the clip (the training audio itself).
    #[default]
    Whole,
    /// Only audio from `from_seconds` on: train on `[0, from)`, query from the rest.
    HeldOut { from_seconds: f64 },
}

impl QueryWindow {
    fn describe(self) -> String {
        match self {
            QueryWindow::Whole => "in the clip".into(),
            QueryWindow::HeldOut { from_seconds } => format!("after {from_seconds} s"),
        }
    }
}

/// The random stream of song `song`'s part `part` (0: the offset shared by its conditions,
/// 1 + condition index: that condition's parameters). Streams of different songs never meet.
fn stream_rng(seed: u64, song: usize, part: usize) -> ChaCha8Rng {
    // The first 16 parts keep the streams of the first query sets; later conditions get
    // streams above 2^40 (no song index reaches 2^36).
    const PARTS: u64 = 16;
    const LATER: u64 = 1 << 40;
    let part = part as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(if part < PARTS {
        song as u64 * PARTS + part
    } else {
        LATER + song as u64 * 256 + part
    });
    rng
}

impl Degradation {
    /// The degradation of song `song` under `condition`, drawn from `(seed, song, condition)`
    /// only. The query has `min(query_seconds, what the window leaves after one grid period of
    /// slack)` seconds and all degraded conditions of a song start at the same offset (drawn
    /// uniformly in samples, never a multiple of 0.5 s), so they differ only by the degradation.
    /// Errors when the window leaves less than [`MIN_QUERY_SECONDS`].
    pub fn draw(
        condition: Condition,
        seed: u64,
        song: usize,
        clip_seconds: f64,
        query_seconds: f64,
        window: QueryWindow,
    ) -> Result<Degradation, DatasetError> {
        let rate = GRID_RATE as f64;
        let to_samples = |s: f64| (s * rate).round() as u64;
        // A small epsilon so clip_seconds = len / rate maps back to len, not len − 1.
        let clip = (clip_seconds.max(0.0) * rate + 1e-6).floor() as u64;
        let lo = match window {
            QueryWindow::Whole => 0,
            QueryWindow::HeldOut { from_seconds } => to_samples(from_seconds.max(0.0)),
        };
        let available = clip.saturating_sub(lo);
        let reserve = |q: u64| (q as f64 * (1.0 + SPEED_CHANGE)).ceil() as u64;
        // Longest query whose slowest read still leaves one grid period to move in.
        let fits = (available.saturating_sub(CHUNK_GRID_SAMPLES) as f64 / (1.0 + SPEED_CHANGE))
            .floor() as u64;
        let len = to_samples(query_seconds).min(fits);
        if (len as f64) < MIN_QUERY_SECONDS * rate {
            return Err(DatasetError::ClipTooShort {
                song: format!("song {song}"),
                window: window.describe(),
                available_seconds: available as f64 / rate,
                needed_seconds: MIN_QUERY_SECONDS * (1.0 + SPEED_CHANGE)
                    + CHUNK_GRID_SAMPLES as f64 / rate,
            });
        }
        let hi = lo + available - reserve(len);
        let start = if condition == Condition::Aligned {
            lo
        } else {
            let mut rng = stream_rng(seed, song, 0);
            // [lo, hi] spans at least one grid period, so a draw is off-grid with
            // probability ≥ 1 − 1/11025.
            loop {
                let s = rng.gen_range(lo..=hi);
                if s % CHUNK_GRID_SAMPLES != 0 {
                    break s;
                }
            }
        };
        let mut rng = stream_rng(seed, song, 1 + condition.index());
        let mut d = Degradation::clean(start as f64 / rate, len as f64 / rate, rng.gen());
        // Half of each noisy condition's queries get white noise, half pink, and each song
        // alternates between them across conditions.
        let colour = if (song + condition.index()).is_multiple_of(2) {
            NoiseColour::White
        } else {
            NoiseColour::Pink
        };
        let noise = |snr_db| Some(AddedNoise { snr_db, colour });
        match condition {
            Condition::Aligned | Condition::Offset => {}
            Condition::Noise20 => d.noise = noise(20.0),
            Condition::Noise10 => d.noise = noise(10.0),
            Condition::Noise5 => d.noise = noise(5.0),
            Condition::Phone => {
                d.noise = noise(PHONE_SNR_DB);
                d.band_pass = Some(PHONE_BAND);
                d.codec = Some(Codec::MuLaw);
            }
            Condition::Reverb => {
                d.room = Some(Room {
                    rt60_s: rng.gen_range(RT60_RANGE_S),
                    model: RoomModel::Statistical,
                });
                d.noise = noise(REVERB_SNR_DB);
            }
            Condition::Speed => {
                d.speed = if rng.gen() {
                    1.0 + SPEED_CHANGE
                } else {
                    1.0 - SPEED_CHANGE
                };
            }
            Condition::Quiet10 => d.gain_db = Some(-10.0),
            Condition::Quiet20 => d.gain_db = Some(-20.0),
            Condition::Quiet30 => d.gain_db = Some(-30.0),
            Condition::Loud10 => d.gain_db = Some(10.0),
            Condition::PhoneAdpcm | Condition::PhoneGsm | Condition::PhoneOpus => {
                d.noise = noise(PHONE_SNR_DB);
                d.band_pass = Some(BandPass {
                    low_hz: rng.gen_range(200.0..400.0),
                    high_hz: rng.gen_range(2800.0..3600.0),
                    filter: BandFilter::Fir,
                });
                d.codec = Some(match condition {
                    Condition::PhoneAdpcm => Codec::ImaAdpcm,
                    Condition::PhoneGsm => Codec::Gsm,
                    _ => Codec::Opus,
                });
            }
            Condition::RoomImage | Condition::RoomSchroeder => {
                d.room = Some(Room {
                    rt60_s: rng.gen_range(RT60_RANGE_S),
                    model: if condition == Condition::RoomImage {
                        RoomModel::ImageMethod
                    } else {
                        RoomModel::Schroeder
                    },
                });
                d.noise = noise(REVERB_SNR_DB);
            }
            Condition::Babble10 | Condition::Babble5 => {
                let snr_db = if condition == Condition::Babble10 {
                    10.0
                } else {
                    5.0
                };
                d.noise = Some(AddedNoise {
                    snr_db,
                    colour: NoiseColour::Babble,
                });
            }
            Condition::Brown5 => {
                d.noise = Some(AddedNoise {
                    snr_db: 5.0,
                    colour: NoiseColour::Brown,
                })
            }
            Condition::Compressed => {
                d.compressor = Some(Compressor {
                    threshold_db: -10.0,
                    ratio: 4.0,
                })
            }
            Condition::Channel => {
                d.noise = noise(PHONE_SNR_DB);
                d.eq = Some(RandomEq {
                    max_gain_db: CHANNEL_EQ_DB,
                });
                d.band_pass = Some(BandPass {
                    low_hz: rng.gen_range(100.0..500.0),
                    high_hz: rng.gen_range(2500.0..3800.0),
                    filter: BandFilter::Butterworth,
                });
                d.codec = Some(Codec::MuLaw);
            }
        }
        Ok(d)
    }
}

/// Training-time augmentation: the whole clip `samples` degraded like `condition`'s queries
/// (same noise, band, room and speed draws, but no offset and no cut). Copy `copy` of song
/// `song` draws its own noise and room from `seed`, so repeated copies differ.
pub fn augment(
    samples: &[f32],
    sample_rate: u32,
    condition: Condition,
    seed: u64,
    copy: usize,
    song: usize,
) -> Result<Vec<f32>, DatasetError> {
    // A long nominal clip: `draw` then never refuses, and its offset/length are not used.
    const NOMINAL_CLIP_S: f64 = 3600.0;
    let copy_seed = seed.wrapping_add((copy as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut d = Degradation::draw(
        condition,
        copy_seed,
        song,
        NOMINAL_CLIP_S,
        MIN_QUERY_SECONDS,
        QueryWindow::Whole,
    )?;
    d.offset_s = 0.0;
    d.seconds = samples.len() as f64 / sample_rate as f64;
    super::degrade::degrade(samples, sample_rate, &d, &mut d.rng())
}

/// What query set to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySetParams {
    pub seed: u64,
    /// Query length (the seed: 15 s); shorter where the window leaves less.
    pub query_seconds: f64,
    pub conditions: Vec<Condition>,
    pub window: QueryWindow,
    /// A gain added to every query of every condition (the level sweep), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gain_db: Option<f64>,
}

impl Default for QuerySetParams {
    fn default() -> Self {
        Self {
            seed: 42,
            query_seconds: 15.0,
            conditions: Condition::STANDARD.to_vec(),
            window: QueryWindow::Whole,
            gain_db: None,
        }
    }
}

impl QuerySetParams {
    /// Checks the parameters before any work starts.
    pub fn validate(&self) -> Result<(), DatasetError> {
        let bad = |reason: String| Err(DatasetError::InvalidQueryParams(reason));
        if !(self.query_seconds.is_finite()
            && (MIN_QUERY_SECONDS..=MAX_QUERY_SECONDS).contains(&self.query_seconds))
        {
            return bad(format!(
                "query_seconds = {}, expected {MIN_QUERY_SECONDS}..={MAX_QUERY_SECONDS}",
                self.query_seconds
            ));
        }
        if self.conditions.is_empty() {
            return bad("no conditions".into());
        }
        let mut seen = HashSet::new();
        if let Some(c) = self.conditions.iter().find(|c| !seen.insert(**c)) {
            return bad(format!("condition {c} is listed twice"));
        }
        if let Some(g) = self.gain_db {
            if !(-40.0..=20.0).contains(&g) {
                return bad(format!("gain_db = {g}, expected -40..=20"));
            }
        }
        check_tools(&self.conditions)?;
        if let QueryWindow::HeldOut { from_seconds } = self.window {
            if !(from_seconds.is_finite() && from_seconds >= 0.0) {
                return bad(format!(
                    "held-out from_seconds = {from_seconds}, expected ≥ 0"
                ));
            }
        }
        Ok(())
    }
}

/// Fails before any work when a condition needs an external tool that is not installed.
pub fn check_tools(conditions: &[Condition]) -> Result<(), DatasetError> {
    for &c in conditions {
        if let Some(codec) = c.external_codec() {
            if !super::families::ffmpeg_has(codec) {
                return Err(DatasetError::ExternalTool {
                    tool: "ffmpeg".into(),
                    reason: format!(
                        "condition {c} needs ffmpeg with the {} encoder, which is not installed \
                         (Debian: apt-get install ffmpeg); leave {c} out or install it",
                        codec.name()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A song whose queries could not be made (unreadable file, clip too short for the window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryFailure {
    pub song: usize,
    pub track_id: String,
    pub path: PathBuf,
    pub error: String,
}

/// What [`write_query_set`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySetSummary {
    /// Songs with all their queries written.
    pub songs: usize,
    pub queries: usize,
    pub failures: Vec<QueryFailure>,
}

/// Contents of `queryset.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u32,
    params: QuerySetParams,
    dataset: PathBuf,
    catalog_size: usize,
    sample_rate: u32,
    songs: usize,
    queries: usize,
    failures: Vec<QueryFailure>,
    /// Written by `queries --shard`: which part of which catalogue this set holds (`merge`
    /// combines the parts into exactly the unsharded set, which has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<ShardInfo>,
}

/// One row of `queries.csv`: the file, its true song and the flattened degradation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    file: String,
    song: usize,
    track_id: String,
    condition: Condition,
    offset_s: f64,
    seconds: f64,
    snr_db: Option<f64>,
    noise: Option<NoiseColour>,
    speed: f64,
    rt60_s: Option<f64>,
    room: Option<RoomModel>,
    compressor_threshold_db: Option<f64>,
    compressor_ratio: Option<f64>,
    band_low_hz: Option<f64>,
    band_high_hz: Option<f64>,
    band_filter: Option<BandFilter>,
    codec: Option<Codec>,
    gain_db: Option<f64>,
    /// Added after format 2's first files (which never had an EQ): a missing column reads as none.
    #[serde(default)]
    eq_max_gain_db: Option<f64>,
    seed: u64,
}

impl Row {
    fn new(file: String, song: &Song, condition: Condition, d: &Degradation) -> Self {
        Self {
            file,
            song: song.index,
            track_id: song.track_id.clone(),
            condition,
            offset_s: d.offset_s,
            seconds: d.seconds,
            snr_db: d.noise.map(|n| n.snr_db),
            noise: d.noise.map(|n| n.colour),
            speed: d.speed,
            rt60_s: d.room.map(|r| r.rt60_s),
            room: d.room.map(|r| r.model),
            compressor_threshold_db: d.compressor.map(|c| c.threshold_db),
            compressor_ratio: d.compressor.map(|c| c.ratio),
            band_low_hz: d.band_pass.map(|b| b.low_hz),
            band_high_hz: d.band_pass.map(|b| b.high_hz),
            band_filter: d.band_pass.map(|b| b.filter),
            codec: d.codec,
            gain_db: d.gain_db,
            eq_max_gain_db: d.eq.map(|e| e.max_gain_db),
            seed: d.seed,
        }
    }

    fn degradation(&self) -> Result<Degradation, String> {
        let noise = match (self.snr_db, self.noise) {
            (Some(snr_db), Some(colour)) => Some(AddedNoise { snr_db, colour }),
            (None, None) => None,
            _ => return Err("snr_db and noise must be both set or both empty".into()),
        };
        let band_pass = match (self.band_low_hz, self.band_high_hz, self.band_filter) {
            (Some(low_hz), Some(high_hz), Some(filter)) => Some(BandPass {
                low_hz,
                high_hz,
                filter,
            }),
            (None, None, None) => None,
            _ => {
                return Err(
                    "band_low_hz, band_high_hz and band_filter must be all set or all empty".into(),
                )
            }
        };
        let room = match (self.rt60_s, self.room) {
            (Some(rt60_s), Some(model)) => Some(Room { rt60_s, model }),
            (None, None) => None,
            _ => return Err("rt60_s and room must be both set or both empty".into()),
        };
        let compressor =
            match (self.compressor_threshold_db, self.compressor_ratio) {
                (Some(threshold_db), Some(ratio)) => Some(Compressor {
                    threshold_db,
                    ratio,
                }),
                (None, None) => None,
                _ => return Err(
                    "compressor_threshold_db and compressor_ratio must be both set or both empty"
                        .into(),
                ),
            };
        Ok(Degradation {
            offset_s: self.offset_s,
            seconds: self.seconds,
            speed: self.speed,
            room,
            noise,
            compressor,
            eq: self
                .eq_max_gain_db
                .map(|max_gain_db| RandomEq { max_gain_db }),
            band_pass,
            codec: self.codec,
            gain_db: self.gain_db,
            seed: self.seed,
        })
    }
}

/// One query of a query set.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryEntry {
    /// The WAV file (the set's folder joined with `file`).
    pub path: PathBuf,
    /// The WAV file relative to the set's folder, as in the CSV.
    pub file: String,
    /// The true song: its catalog index (the class label).
    pub song: usize,
    pub track_id: String,
    pub condition: Condition,
    pub degradation: Degradation,
}

/// A query set read back by [`read_query_set`].
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySet {
    pub params: QuerySetParams,
    /// The dataset folder the queries were cut from.
    pub dataset: PathBuf,
    /// Songs in the catalog the set was made for; every entry's `song` is below it.
    pub catalog_size: usize,
    pub sample_rate: u32,
    /// Condition-major, then catalog order.
    pub entries: Vec<QueryEntry>,
    pub failures: Vec<QueryFailure>,
}

impl QuerySet {
    /// The queries of one condition, in catalog order.
    pub fn condition(&self, condition: Condition) -> impl Iterator<Item = &QueryEntry> {
        self.entries
            .iter()
            .filter(move |e| e.condition == condition)
    }
}

/// Relative path of a query file: `<condition>/<track_id>.wav`.
fn query_file(condition: Condition, track_id: &str) -> String {
    format!("{}/{track_id}.wav", condition.name())
}

/// Entries a query set folder may hold: refusing anything else keeps the clean-up of a
/// previous set from ever touching other data.
fn is_query_set_entry(name: &str) -> bool {
    name == CSV_FILE
        || name == MANIFEST_FILE
        || name == super::query_list::QUERY_LIST_FILE
        || name.starts_with('.')
        || Condition::ALL.iter().any(|c| c.name() == name)
}

/// Checks that `out` can take a query set: absent, or a folder holding nothing but a previous
/// query set (which the new one replaces once it is complete).
fn check_out(out: &Path) -> Result<(), DatasetError> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(DatasetError::QuerySet {
            path: out.to_path_buf(),
            reason: "exists and is not a folder".into(),
        });
    }
    let io = |source| DatasetError::Io {
        path: out.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(out).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        if !is_query_set_entry(&name.to_string_lossy()) {
            return Err(DatasetError::QuerySet {
                path: out.to_path_buf(),
                reason: format!(
                    "holds {name:?}, which is not part of a query set: refusing to write into it"
                ),
            });
        }
    }
    Ok(())
}

/// Track ids become file names: each must be unique and a plain relative path.
fn check_track_ids(catalog: &Catalog) -> Result<(), DatasetError> {
    let mut seen = HashSet::new();
    for song in &catalog.songs {
        let id = &song.track_id;
        let plain = !id.is_empty()
            && Path::new(id)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(DatasetError::InvalidQueryParams(format!(
                "song {}: track id {id:?} cannot be a file name",
                song.index
            )));
        }
        if !seen.insert(id) {
            return Err(DatasetError::InvalidQueryParams(format!(
                "track id {id:?} appears twice in the catalog"
            )));
        }
    }
    Ok(())
}

/// Draws and writes one song's queries; `Ok(Err(_))` is a failure of this song only (its
/// audio), `Err(_)` a failure of the run (the output folder).
fn song_queries(
    dataset: &Path,
    song: &Song,
    load: &LoadOptions,
    params: &QuerySetParams,
    out: &Path,
) -> Result<Result<Vec<Row>, QueryFailure>, DatasetError> {
    let source = dataset.join(&song.path);
    let fail = |error: String| {
        Ok(Err(QueryFailure {
            song: song.index,
            track_id: song.track_id.clone(),
            path: song.path.clone(),
            error,
        }))
    };
    let clip = match audio::load(&source, load) {
        Ok(clip) => clip,
        Err(e) => return fail(e.to_string()),
    };
    let named = |e: DatasetError| match e {
        DatasetError::ClipTooShort {
            window,
            available_seconds,
            needed_seconds,
            ..
        } => DatasetError::ClipTooShort {
            song: format!("song {} ({})", song.track_id, source.display()),
            window,
            available_seconds,
            needed_seconds,
        }
        .to_string(),
        e => format!("song {} ({}): {e}", song.track_id, source.display()),
    };
    let drawn: Result<Vec<_>, _> = params
        .conditions
        .iter()
        .map(|&c| {
            Degradation::draw(
                c,
                params.seed,
                song.index,
                clip.duration_seconds(),
                params.query_seconds,
                params.window,
            )
            .map(|mut d| {
                if let Some(g) = params.gain_db {
                    d.gain_db = Some(d.gain_db.unwrap_or(0.0) + g);
                }
                (c, d)
            })
        })
        .collect();
    let drawn = match drawn {
        Ok(d) => d,
        Err(e) => return fail(named(e)),
    };
    let mut rows = Vec::with_capacity(drawn.len());
    for (condition, d) in drawn {
        let samples = match apply(&clip.samples, clip.sample_rate, &d, &mut d.rng()) {
            Ok(s) => s,
            Err(e) => return fail(named(e)),
        };
        let file = query_file(condition, &song.track_id);
        audio::write_wav(
            &out.join(&file),
            &Audio {
                samples,
                sample_rate: clip.sample_rate,
            },
        )?;
        rows.push(Row::new(file, song, condition, &d));
    }
    Ok(Ok(rows))
}

/// Writes the query set of `catalog` (songs under `dataset`) to `out`: one WAV per song and
/// condition, `queries.csv` and `queryset.json`. Songs run in parallel; `on_song` is called
/// once per song (e.g. to advance a progress bar). A song that cannot be loaded or is too short
/// for the window is listed in the summary's failures; only output errors abort. The same
/// inputs give byte-identical files. The set is written aside and replaces a previous set in
/// `out` only once complete: a failed run (an output error, or no song giving a query) leaves
/// `out` as it was.
pub fn write_query_set(
    dataset: &Path,
    catalog: &Catalog,
    load: &LoadOptions,
    params: &QuerySetParams,
    out: &Path,
    on_song: impl Fn() + Sync,
) -> Result<QuerySetSummary, DatasetError> {
    write_query_set_part(dataset, catalog, None, load, params, out, on_song)
}

/// [`write_query_set`] for part `shard` of `catalog` (the whole sorted catalogue) only, the
/// shard recorded in `queryset.json`. A song's queries are drawn from its catalogue index
/// (kept by [`Catalog::shard`]) and its track id, never from its place in the part, so every
/// shard's files are the unsharded set's and [`merge_query_sets`] puts them back together byte
/// for byte. A shard whose songs all fail is written (empty): the set as a whole may still
/// have queries.
pub fn write_query_set_part(
    dataset: &Path,
    catalog: &Catalog,
    shard: Option<Shard>,
    load: &LoadOptions,
    params: &QuerySetParams,
    out: &Path,
    on_song: impl Fn() + Sync,
) -> Result<QuerySetSummary, DatasetError> {
    params.validate()?;
    check_track_ids(catalog)?;
    check_out(out)?;
    let part = shard.map(|s| catalog.shard(s));
    let songs = part.as_ref().unwrap_or(catalog);
    let staging = fsutil::Staging::new(out).map_err(|source| DatasetError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let staged = staging.path();
    let results: Vec<Result<Vec<Row>, QueryFailure>> = songs
        .songs
        .par_iter()
        .map(|song| {
            let r = song_queries(dataset, song, load, params, staged);
            on_song();
            r
        })
        .collect::<Result<_, _>>()?;
    let mut failures = Vec::new();
    let mut per_song = Vec::new();
    for r in results {
        match r {
            Ok(rows) => per_song.push(rows),
            Err(f) => failures.push(f),
        }
    }
    if per_song.is_empty() && shard.is_none() {
        return Err(DatasetError::NoQueries {
            dataset: dataset.to_path_buf(),
            out: out.to_path_buf(),
            failed: failures.len(),
            first_failure: failures.first().map(|f| f.error.clone()),
        });
    }
    // Condition-major: each song's rows follow `params.conditions`.
    let rows: Vec<&Row> = (0..params.conditions.len())
        .flat_map(|k| per_song.iter().map(move |rows| &rows[k]))
        .collect();
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        params: params.clone(),
        dataset: dataset.to_path_buf(),
        catalog_size: catalog.len(),
        sample_rate: load.sample_rate,
        songs: per_song.len(),
        queries: rows.len(),
        failures,
        shard: shard.map(|s| ShardInfo::of(catalog, s)),
    };
    finish_query_set(staging, out, &rows, manifest)
}

/// Writes `queries.csv`, `query_list.csv` and `queryset.json` of `rows` beside the WAVs
/// already in `staging`, moves the set into `out` (manifest last) and removes the folders of
/// conditions a previous set in `out` had and this one has not: the end of every way a query
/// set is made (one run, one shard, a merge of shards).
fn finish_query_set(
    staging: fsutil::Staging,
    out: &Path,
    rows: &[&Row],
    manifest: Manifest,
) -> Result<QuerySetSummary, DatasetError> {
    let staged = staging.path();
    let csv_path = staged.join(CSV_FILE);
    fsutil::write_atomic_with(&csv_path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        for row in rows {
            csv.serialize(row)?;
        }
        csv.flush()
    })
    .map_err(|source| DatasetError::Io {
        path: csv_path.clone(),
        source,
    })?;
    // The same queries as a plain list (path, track id, condition) for `evaluate --queries`.
    super::query_list::write_query_list(
        &staged.join(super::query_list::QUERY_LIST_FILE),
        rows.iter()
            .map(|r| (r.file.as_str(), r.track_id.as_str(), r.condition.name())),
    )?;
    let manifest_path = staged.join(MANIFEST_FILE);
    fsutil::write_json_atomic(&manifest_path, &manifest).map_err(|source| DatasetError::Io {
        path: manifest_path,
        source,
    })?;
    let io = |path: PathBuf| move |source| DatasetError::Io { path, source };
    staging
        .commit(MANIFEST_FILE)
        .map_err(io(out.to_path_buf()))?;
    // Conditions of a previous set that the new one does not have.
    for c in Condition::ALL
        .iter()
        .filter(|c| !manifest.params.conditions.contains(c))
    {
        let dir = out.join(c.name());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(dir.clone()))?;
        }
    }
    Ok(QuerySetSummary {
        songs: manifest.songs,
        queries: manifest.queries,
        failures: manifest.failures,
    })
}

/// Combines the query sets of `queries --shard i/n` (i = 0 … n−1, in `dirs` in any order) into
/// `out`, exactly what one unsharded `queries` run writes, byte for byte: the WAVs copied,
/// `queries.csv` and `query_list.csv` condition-major in catalogue order, failures in order,
/// no shard record. Refuses folders that are not every shard of one catalogue made with the
/// same parameters, naming the folder and what differs; `out` is then left as it was.
pub fn merge_query_sets(dirs: &[PathBuf], out: &Path) -> Result<QuerySetSummary, DatasetError> {
    let parts = dirs
        .iter()
        .map(|dir| {
            let manifest = read_manifest(dir)?;
            let rows = read_rows(dir, &manifest)?;
            let shard = manifest.shard.as_ref().map(|i| i.shard);
            Ok((dir.clone(), shard, (dir.clone(), manifest, rows)))
        })
        .collect::<Result<Vec<_>, DatasetError>>()?;
    let sets = order_shards(parts, |(_, m, _), (_, r, _)| {
        [
            (
                "catalogue (its songs' paths)",
                !ShardInfo::same_catalogue(m.shard.as_ref(), r.shard.as_ref()),
            ),
            ("dataset", m.dataset != r.dataset),
            ("query-set parameters", m.params != r.params),
            ("sample rate", m.sample_rate != r.sample_rate),
            ("catalogue size", m.catalog_size != r.catalog_size),
        ]
        .into_iter()
        .find_map(|(what, d)| d.then_some(what))
    })
    .map_err(|refusal| match refusal.dir {
        Some(dir) => DatasetError::QuerySet {
            path: dir.join(MANIFEST_FILE),
            reason: refusal.reason,
        },
        None => DatasetError::InvalidQueryParams(refusal.reason),
    })?;
    let (_, first, _) = &sets[0];
    let params = first.params.clone();
    let songs: usize = sets.iter().map(|(_, m, _)| m.songs).sum();
    if songs == 0 {
        let failures: Vec<&QueryFailure> = sets.iter().flat_map(|(_, m, _)| &m.failures).collect();
        return Err(DatasetError::NoQueries {
            dataset: first.dataset.clone(),
            out: out.to_path_buf(),
            failed: failures.len(),
            first_failure: failures.first().map(|f| f.error.clone()),
        });
    }
    check_out(out)?;
    let staging = fsutil::Staging::new(out).map_err(|source| DatasetError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { path, source }
    };
    for (dir, _, rows) in &sets {
        for row in rows {
            let target = staging.path().join(&row.file);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::copy(dir.join(&row.file), &target).map_err(io(&dir.join(&row.file)))?;
        }
    }
    // Each shard is condition-major over its own songs: take condition k of every shard in
    // turn, which is condition k of the whole catalogue in catalogue order.
    let rows: Vec<&Row> = params
        .conditions
        .iter()
        .flat_map(|&c| {
            sets.iter()
                .flat_map(move |(_, _, rows)| rows.iter().filter(move |r| r.condition == c))
        })
        .collect();
    let manifest = Manifest {
        songs,
        queries: rows.len(),
        failures: sets
            .iter()
            .flat_map(|(_, m, _)| m.failures.iter().cloned())
            .collect(),
        shard: None,
        ..first.clone()
    };
    finish_query_set(staging, out, &rows, manifest)
}

/// Reads and checks `dir/queryset.json` (format and version).
fn read_manifest(dir: &Path) -> Result<Manifest, DatasetError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let bad = |path: &Path, reason: String| DatasetError::QuerySet {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match std::fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(
                &manifest_path,
                "missing: not a (complete) query set; write one with `fhe-shazam queries`".into(),
            ))
        }
        Err(source) => {
            return Err(DatasetError::Io {
                path: manifest_path,
                source,
            })
        }
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| bad(&manifest_path, format!("not a query set manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(bad(
            &manifest_path,
            format!("format {:?}, expected {FORMAT:?}", manifest.format),
        ));
    }
    if manifest.format_version != FORMAT_VERSION {
        return Err(bad(
            &manifest_path,
            format!(
                "format version {}, this build reads version {FORMAT_VERSION}: write the set again",
                manifest.format_version
            ),
        ));
    }
    Ok(manifest)
}

/// Reads `dir/queries.csv`, checking every row against `manifest`: song index inside the
/// catalogue, a condition of the set, a consistent degradation, an existing WAV, and as many
/// rows as the manifest lists.
fn read_rows(dir: &Path, manifest: &Manifest) -> Result<Vec<Row>, DatasetError> {
    let bad = |path: &Path, reason: String| DatasetError::QuerySet {
        path: path.to_path_buf(),
        reason,
    };
    let csv_path = dir.join(CSV_FILE);
    let mut reader =
        csv::Reader::from_path(&csv_path).map_err(|e| bad(&csv_path, e.to_string()))?;
    let mut rows = Vec::new();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let row: Row = row.map_err(|e| bad(&csv_path, format!("line {line}: {e}")))?;
        if row.song >= manifest.catalog_size {
            return Err(bad(
                &csv_path,
                format!(
                    "line {line}: song index {} is out of range for a catalog of {} songs",
                    row.song, manifest.catalog_size
                ),
            ));
        }
        if !manifest.params.conditions.contains(&row.condition) {
            return Err(bad(
                &csv_path,
                format!(
                    "line {line}: condition {} is not among the set's conditions",
                    row.condition
                ),
            ));
        }
        row.degradation()
            .map_err(|reason| bad(&csv_path, format!("line {line}: {reason}")))?;
        let path = dir.join(&row.file);
        if !path.is_file() {
            return Err(bad(
                &csv_path,
                format!("line {line}: query file {} is missing", path.display()),
            ));
        }
        rows.push(row);
    }
    if rows.len() != manifest.queries {
        return Err(bad(
            &csv_path,
            format!(
                "{} rows, the manifest lists {} queries",
                rows.len(),
                manifest.queries
            ),
        ));
    }
    Ok(rows)
}

/// Reads the query set in `dir`, checking its format version, that every song index is inside
/// the catalog it was made for and that every listed WAV exists.
pub fn read_query_set(dir: &Path) -> Result<QuerySet, DatasetError> {
    let manifest = read_manifest(dir)?;
    let entries = read_rows(dir, &manifest)?
        .into_iter()
        .map(|row| {
            // Checked by read_rows.
            let degradation = row
                .degradation()
                .map_err(DatasetError::InvalidDegradation)?;
            Ok(QueryEntry {
                path: dir.join(&row.file),
                file: row.file,
                song: row.song,
                track_id: row.track_id,
                condition: row.condition,
                degradation,
            })
        })
        .collect::<Result<Vec<_>, DatasetError>>()?;
    Ok(QuerySet {
        params: manifest.params,
        dataset: manifest.dataset,
        catalog_size: manifest.catalog_size,
        sample_rate: manifest.sample_rate,
        entries,
        failures: manifest.failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::synth::{write_corpus, SynthParams};

    const GRID_S: f64 = CHUNK_GRID_SAMPLES as f64 / GRID_RATE as f64;

    fn start_sample(d: &Degradation) -> u64 {
        (d.offset_s * GRID_RATE as f64).round() as u64
    }

    #[test]
    fn condition_names_round_trip() {
        for c in Condition::ALL {
            assert_eq!(c.name().parse::<Condition>().unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
        assert_eq!(" Noise10".parse::<Condition>().unwrap(), Condition::Noise10);
        let err = "noise15".parse::<Condition>().unwrap_err();
        assert!(err.contains("noise15") && err.contains("phone"), "{err}");
    }

    #[test]
    fn offsets_are_off_grid_inside_the_clip_and_shared_by_conditions() {
        for song in 0..300 {
            let draw = |c| Degradation::draw(c, 7, song, 30.0, 15.0, QueryWindow::Whole).unwrap();
            let offset = draw(Condition::Offset);
            let start = start_sample(&offset);
            assert_ne!(start % CHUNK_GRID_SAMPLES, 0, "song {song} on the grid");
            assert_eq!(offset.seconds, 15.0);
            assert!(offset.offset_s + 15.0 * (1.0 + SPEED_CHANGE) <= 30.0);
            for c in &Condition::ALL[2..] {
                assert_eq!(draw(*c).offset_s, offset.offset_s, "{c}");
            }
            assert_eq!(draw(Condition::Aligned).offset_s, 0.0);
        }
        // Uniform over the range: the 300 offsets spread over most of [0, 14.2] s.
        let offsets: Vec<f64> = (0..300)
            .map(|s| {
                Degradation::draw(Condition::Offset, 7, s, 30.0, 15.0, QueryWindow::Whole)
                    .unwrap()
                    .offset_s
            })
            .collect();
        let max = offsets.iter().cloned().fold(0.0, f64::max);
        let min = offsets.iter().cloned().fold(f64::MAX, f64::min);
        assert!(min < 0.5 && max > 13.5, "{min}..{max}");
    }

    #[test]
    fn draws_are_deterministic_and_depend_on_seed_song_and_condition() {
        let d = |c, seed, song| {
            Degradation::draw(c, seed, song, 30.0, 15.0, QueryWindow::Whole).unwrap()
        };
        assert_eq!(d(Condition::Reverb, 1, 5), d(Condition::Reverb, 1, 5));
        assert_ne!(d(Condition::Reverb, 1, 5), d(Condition::Reverb, 2, 5));
        assert_ne!(d(Condition::Reverb, 1, 5), d(Condition::Reverb, 1, 6));
        assert_ne!(
            d(Condition::Noise10, 1, 5).seed,
            d(Condition::Noise20, 1, 5).seed
        );
        let reverb = d(Condition::Reverb, 1, 5);
        assert!(RT60_RANGE_S.contains(&reverb.room.unwrap().rt60_s));
        assert_eq!(reverb.noise.unwrap().snr_db, REVERB_SNR_DB);
        let phone = d(Condition::Phone, 1, 5);
        assert_eq!(phone.band_pass, Some(PHONE_BAND));
        assert_eq!(phone.codec, Some(Codec::MuLaw));
        let speeds: HashSet<u64> = (0..20)
            .map(|s| d(Condition::Speed, 1, s).speed.to_bits())
            .collect();
        assert_eq!(speeds.len(), 2, "both 0.98 and 1.02 occur");
        let colours: HashSet<_> = (0..4)
            .map(|s| d(Condition::Noise5, 1, s).noise.unwrap().colour)
            .collect();
        assert_eq!(colours.len(), 2, "white and pink alternate");
    }

    #[test]
    fn held_out_windows_never_reach_before_from() {
        let window = QueryWindow::HeldOut { from_seconds: 20.0 };
        for song in 0..200 {
            for c in Condition::ALL {
                let d = Degradation::draw(c, 3, song, 30.0, 15.0, window).unwrap();
                assert!(d.offset_s >= 20.0, "{c} song {song}: {}", d.offset_s);
                // 10 s remain; one grid period of slack and the 2 % speed reserve.
                assert!((d.seconds - (9.5 / 1.02)).abs() < 1e-3, "{}", d.seconds);
                assert!(d.offset_s + d.seconds * d.speed <= 30.0 + 1e-9);
                if c != Condition::Aligned {
                    assert_ne!(start_sample(&d) % CHUNK_GRID_SAMPLES, 0);
                }
            }
        }
        let err = Degradation::draw(
            Condition::Offset,
            3,
            4,
            30.0,
            15.0,
            QueryWindow::HeldOut { from_seconds: 26.0 },
        )
        .unwrap_err();
        assert!(
            matches!(err, DatasetError::ClipTooShort { .. }) && err.to_string().contains("song 4"),
            "{err}"
        );
        // Too short in the whole clip as well.
        assert!(
            Degradation::draw(Condition::Aligned, 3, 4, 5.0, 15.0, QueryWindow::Whole).is_err()
        );
        // The shortest clip that works.
        let need = MIN_QUERY_SECONDS * (1.0 + SPEED_CHANGE) + GRID_S + 0.001;
        assert!(Degradation::draw(Condition::Offset, 3, 4, need, 15.0, QueryWindow::Whole).is_ok());
    }

    #[test]
    fn params_validate_and_deserialise() {
        assert!(QuerySetParams::default().validate().is_ok());
        let p: QuerySetParams = serde_json::from_str(
            r#"{"conditions": ["offset", "phone"], "window": {"kind": "held_out", "from_seconds": 20}}"#,
        )
        .unwrap();
        assert_eq!(p.conditions, vec![Condition::Offset, Condition::Phone]);
        assert_eq!(p.window, QueryWindow::HeldOut { from_seconds: 20.0 });
        assert_eq!(p.query_seconds, 15.0);
        for bad in [
            QuerySetParams {
                query_seconds: 2.0,
                ..QuerySetParams::default()
            },
            QuerySetParams {
                conditions: vec![],
                ..QuerySetParams::default()
            },
            QuerySetParams {
                conditions: vec![Condition::Offset, Condition::Offset],
                ..QuerySetParams::default()
            },
            QuerySetParams {
                window: QueryWindow::HeldOut {
                    from_seconds: f64::NAN,
                },
                ..QuerySetParams::default()
            },
        ] {
            assert!(matches!(
                bad.validate(),
                Err(DatasetError::InvalidQueryParams(_))
            ));
        }
    }

    fn corpus(dir: &Path, songs: usize, seconds: f64) -> Catalog {
        let songs = write_corpus(
            dir,
            &SynthParams {
                songs,
                seconds,
                ..SynthParams::default()
            },
            &|| {},
        )
        .unwrap();
        Catalog { songs }
    }

    #[test]
    fn query_set_is_deterministic_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let catalog = corpus(&data, 3, 8.0);
        let params = QuerySetParams {
            query_seconds: 6.0,
            ..QuerySetParams::default()
        };
        let load = LoadOptions::default();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let count = std::sync::atomic::AtomicUsize::new(0);
        let summary = write_query_set(&data, &catalog, &load, &params, &a, || {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(count.into_inner(), 3);
        assert_eq!((summary.songs, summary.queries), (3, 24));
        assert!(summary.failures.is_empty());
        write_query_set(&data, &catalog, &load, &params, &b, || {}).unwrap();
        let set = read_query_set(&a).unwrap();
        assert_eq!(set.entries.len(), 24);
        assert_eq!(set.catalog_size, 3);
        // The plain list beside it names the same files, songs and conditions.
        let list =
            crate::dataset::read_query_list(&a.join(crate::dataset::QUERY_LIST_FILE)).unwrap();
        assert_eq!(list.len(), set.entries.len());
        for (l, e) in list.iter().zip(&set.entries) {
            assert_eq!(
                (&l.path, &l.track_id, l.condition.as_str()),
                (&e.path, &e.track_id, e.condition.name())
            );
        }
        assert_eq!(set.params, params);
        for e in &set.entries {
            let other = b.join(&e.file);
            assert_eq!(
                std::fs::read(&e.path).unwrap(),
                std::fs::read(&other).unwrap(),
                "{}",
                e.file
            );
            let wav = hound::WavReader::open(&e.path).unwrap();
            assert_eq!(wav.spec().sample_rate, 22_050);
            assert_eq!(
                wav.duration() as f64,
                (e.degradation.seconds * 22_050.0).round()
            );
            assert_eq!(
                e.degradation,
                Degradation::draw(e.condition, 42, e.song, 8.0, 6.0, QueryWindow::Whole).unwrap()
            );
        }
        for f in [CSV_FILE, MANIFEST_FILE] {
            assert_eq!(
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap()
            );
        }
        assert_eq!(set.condition(Condition::Phone).count(), 3);
        // The degraded audio differs from the clean excerpt at the same offset.
        let offset = set.condition(Condition::Offset).next().unwrap();
        let noisy = set.condition(Condition::Noise5).next().unwrap();
        assert_ne!(
            std::fs::read(&offset.path).unwrap(),
            std::fs::read(&noisy.path).unwrap()
        );
    }

    #[test]
    fn unreadable_songs_are_failures_and_bad_sets_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let catalog = corpus(&data, 2, 7.0);
        std::fs::write(data.join(&catalog.songs[1].path), b"not audio").unwrap();
        let out = tmp.path().join("q");
        let params = QuerySetParams {
            conditions: vec![Condition::Offset, Condition::Noise10],
            ..QuerySetParams::default()
        };
        let summary = write_query_set(
            &data,
            &catalog,
            &LoadOptions::default(),
            &params,
            &out,
            || {},
        )
        .unwrap();
        assert_eq!((summary.songs, summary.queries), (1, 2));
        assert_eq!(summary.failures.len(), 1);
        assert_eq!(summary.failures[0].song, 1);
        let set = read_query_set(&out).unwrap();
        assert_eq!(set.failures, summary.failures);
        // 7 s clip: a 15 s query shrinks to what fits.
        assert!(set.entries[0].degradation.seconds < 6.5);

        // Song index out of range.
        let csv = std::fs::read_to_string(out.join(CSV_FILE)).unwrap();
        std::fs::write(out.join(CSV_FILE), csv.replacen(",0,", ",9,", 1)).unwrap();
        let err = read_query_set(&out).unwrap_err().to_string();
        assert!(
            err.contains("out of range") && err.contains("queries.csv"),
            "{err}"
        );
        // Wrong version.
        let json = std::fs::read_to_string(out.join(MANIFEST_FILE)).unwrap();
        std::fs::write(
            out.join(MANIFEST_FILE),
            json.replace(
                &format!("\"format_version\": {FORMAT_VERSION}"),
                "\"format_version\": 99",
            ),
        )
        .unwrap();
        let err = read_query_set(&out).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
        // Missing set.
        let err = read_query_set(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("queryset.json") && err.contains("missing"),
            "{err}"
        );
        // A folder holding other data is not written into.
        let err = write_query_set(
            &data,
            &catalog,
            &LoadOptions::default(),
            &params,
            &data,
            || {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("refusing"), "{err}");
    }
}
