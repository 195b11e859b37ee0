//! Deterministic synthetic music-like songs: the built-in default dataset (DESIGN.md §5).
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

use super::Audio;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::{LN_2, TAU};
use std::fmt;

/// The rhythmic grid: sixteenth notes.
const STEPS_PER_BEAT: u32 = 4;
/// Samples per wavetable cycle: 2^TABLE_BITS.
const TABLE_BITS: u32 = 11;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
/// Oscillator phases are 32-bit fixed-point fractions of a cycle, so they wrap for free: the top
/// TABLE_BITS bits index the wavetable, the low PHASE_FRAC_BITS bits interpolate.
const PHASE_FRAC_BITS: u32 = 32 - TABLE_BITS;
/// One cycle in phase units.
const PHASE_CYCLE: f64 = 4_294_967_296.0;
/// Peak level after normalisation: a little headroom, like a mastered track.
pub const PEAK_LEVEL: f32 = 0.9;
/// Harmonics above this fraction of the sample rate are left out of a wavetable (anti-aliasing,
/// with margin for vibrato and detune).
const MAX_HARMONIC_FRACTION: f64 = 0.45;
/// The longest a drum one-shot rings, in seconds.
const MAX_DRUM_SECONDS: f64 = 1.0;
/// Bars per section are drawn from these (a section is 4 chords, one per bar or two bars each).
const SECTION_BARS: [u32; 2] = [4, 8];
/// Melodies are built from two-bar motifs, repeated with variation.
const MOTIF_BARS: u32 = 2;

/// A musical style: it constrains the random draws so songs of one genre share conventions
/// (tempo range, grooves, timbre families), which keeps the corpus from being trivially separable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Genre {
    Pop,
    Rock,
    Electronic,
    HipHop,
    Ambient,
    Folk,
    Jazz,
    Chiptune,
}

impl Genre {
    pub const ALL: [Genre; 8] = [
        Genre::Pop,
        Genre::Rock,
        Genre::Electronic,
        Genre::HipHop,
        Genre::Ambient,
        Genre::Folk,
        Genre::Jazz,
        Genre::Chiptune,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Genre::Pop => "Pop",
            Genre::Rock => "Rock",
            Genre::Electronic => "Electronic",
            Genre::HipHop => "Hip-Hop",
            Genre::Ambient => "Ambient",
            Genre::Folk => "Folk",
            Genre::Jazz => "Jazz",
            Genre::Chiptune => "Chiptune",
        }
    }

    /// The conventions of the genre that the song draws are shaped by.
    fn style(self) -> Style {
        use Family::*;
        use Groove::*;
        match self {
            Genre::Pop => Style {
                tempo: (92.0, 128.0),
                grooves: &[Rock, FourOnFloor, HalfTime],
                families: &[Saw, Square, Formant, Organ, Bright],
                swing: (0.0, 0.05),
                brightness_hz: (4000.0, 9000.0),
                note_lengths: &[2, 2, 4, 4, 6, 8],
                waltz_prob: 0.05,
                drum_prob: 0.95,
            },
            Genre::Rock => Style {
                tempo: (100.0, 160.0),
                grooves: &[Rock, Rock, HalfTime, Breakbeat],
                families: &[Saw, Bright, Reed, Square],
                swing: (0.0, 0.05),
                brightness_hz: (3000.0, 8000.0),
                note_lengths: &[2, 2, 4, 4, 8],
                waltz_prob: 0.05,
                drum_prob: 1.0,
            },
            Genre::Electronic => Style {
                tempo: (118.0, 140.0),
                grooves: &[FourOnFloor, FourOnFloor, Breakbeat],
                families: &[Saw, Square, Bright, Formant],
                swing: (0.0, 0.1),
                brightness_hz: (5000.0, 10000.0),
                note_lengths: &[1, 2, 2, 3, 4],
                waltz_prob: 0.0,
                drum_prob: 1.0,
            },
            Genre::HipHop => Style {
                tempo: (78.0, 100.0),
                grooves: &[HipHop, HipHop, HalfTime],
                families: &[Pure, Triangle, Formant, Organ],
                swing: (0.1, 0.3),
                brightness_hz: (2500.0, 6000.0),
                note_lengths: &[2, 3, 4, 6],
                waltz_prob: 0.0,
                drum_prob: 1.0,
            },
            Genre::Ambient => Style {
                tempo: (60.0, 90.0),
                grooves: &[Sparse],
                families: &[Pure, Triangle, Formant, Organ],
                swing: (0.0, 0.0),
                brightness_hz: (1500.0, 5000.0),
                note_lengths: &[4, 6, 8, 12, 16],
                waltz_prob: 0.15,
                drum_prob: 0.3,
            },
            Genre::Folk => Style {
                tempo: (80.0, 120.0),
                grooves: &[Rock, Sparse, Jazz],
                families: &[Triangle, Reed, Formant, Pure],
                swing: (0.0, 0.15),
                brightness_hz: (2500.0, 7000.0),
                note_lengths: &[2, 2, 4, 4, 6, 8],
                waltz_prob: 0.3,
                drum_prob: 0.7,
            },
            Genre::Jazz => Style {
                tempo: (90.0, 170.0),
                grooves: &[Jazz, Jazz, Sparse],
                families: &[Reed, Organ, Formant, Triangle],
                swing: (0.2, 0.33),
                brightness_hz: (2000.0, 6000.0),
                note_lengths: &[1, 2, 2, 3, 4, 6],
                waltz_prob: 0.15,
                drum_prob: 0.9,
            },
            Genre::Chiptune => Style {
                tempo: (120.0, 170.0),
                grooves: &[FourOnFloor, Rock, Breakbeat],
                families: &[Square, Square, Triangle, Saw],
                swing: (0.0, 0.0),
                brightness_hz: (6000.0, 10000.0),
                note_lengths: &[1, 1, 2, 2, 4],
                waltz_prob: 0.05,
                drum_prob: 0.9,
            },
        }
    }
}

impl fmt::Display for Genre {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Genre conventions (not serialised: they are code, and the spec holds the draws they shaped).
struct Style {
    tempo: (f64, f64),
    grooves: &'static [Groove],
    families: &'static [Family],
    /// Delay of off-beat sixteenths, as a fraction of a step.
    swing: (f64, f64),
    brightness_hz: (f64, f64),
    /// Melody note lengths, in sixteenth steps.
    note_lengths: &'static [u32],
    /// Probability of 3/4 time.
    waltz_prob: f64,
    /// Probability that the song has drums at all.
    drum_prob: f64,
}

/// A seven-note mode; chords are built by stacking its thirds, so progressions stay diatonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scale {
    Major,
    Minor,
    Dorian,
    Mixolydian,
    HarmonicMinor,
}

impl Scale {
    /// Semitones of the seven degrees above the root.
    pub fn intervals(self) -> [u8; 7] {
        match self {
            Scale::Major => [0, 2, 4, 5, 7, 9, 11],
            Scale::Minor => [0, 2, 3, 5, 7, 8, 10],
            Scale::Dorian => [0, 2, 3, 5, 7, 9, 10],
            Scale::Mixolydian => [0, 2, 4, 5, 7, 9, 10],
            Scale::HarmonicMinor => [0, 2, 3, 5, 7, 8, 11],
        }
    }

    fn is_minor(self) -> bool {
        matches!(self, Scale::Minor | Scale::Dorian | Scale::HarmonicMinor)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scale::Major => "major",
            Scale::Minor => "minor",
            Scale::Dorian => "dorian",
            Scale::Mixolydian => "mixolydian",
            Scale::HarmonicMinor => "harmonic minor",
        }
    }
}

const NOTE_NAMES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

/// Common progressions as 0-based scale degrees (I–V–vi–IV is [0, 4, 5, 3]).
const MAJOR_PROGRESSIONS: [[u8; 4]; 8] = [
    [0, 4, 5, 3],
    [5, 3, 0, 4],
    [0, 5, 3, 4],
    [1, 4, 0, 0],
    [0, 3, 4, 3],
    [0, 3, 0, 4],
    [0, 2, 3, 4],
    [3, 0, 4, 5],
];
const MINOR_PROGRESSIONS: [[u8; 4]; 7] = [
    [0, 5, 2, 6],
    [0, 3, 4, 0],
    [0, 6, 5, 6],
    [0, 3, 6, 2],
    [0, 5, 3, 4],
    [0, 2, 5, 4],
    [3, 4, 0, 0],
];

/// The key: a root pitch class and a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// Pitch class of the tonic, 0 = C … 11 = B.
    pub root: u8,
    pub scale: Scale,
}

impl Key {
    /// MIDI note of scale step `step` (0 = tonic, 7 = tonic an octave up) above `base_octave_midi`,
    /// the MIDI note of the C that starts the octave.
    fn midi(&self, step: i32, base_octave_midi: i32) -> i32 {
        let iv = self.scale.intervals();
        base_octave_midi
            + self.root as i32
            + 12 * step.div_euclid(7)
            + iv[step.rem_euclid(7) as usize] as i32
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            NOTE_NAMES[self.root as usize % 12],
            self.scale.name()
        )
    }
}

/// An attack–decay–sustain–release amplitude envelope (times in seconds, sustain a level).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Adsr {
    pub attack: f64,
    pub decay: f64,
    pub sustain: f64,
    pub release: f64,
}

/// Harmonic recipe families: each gives a recognisably different spectral envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// All harmonics, 1/k.
    Saw,
    /// Odd harmonics, 1/k.
    Square,
    /// Odd harmonics, 1/k².
    Triangle,
    /// A few low harmonics (flute-like).
    Pure,
    /// Drawbar-style levels at harmonics 1, 2, 3, 4, 6, 8.
    Organ,
    /// A resonance bump at a random harmonic (voice/brass-like).
    Formant,
    /// Odd harmonics strong, even ones weaker (clarinet/reed-like).
    Reed,
    /// Slowly decaying random spectrum.
    Bright,
}

/// A pitched instrument: a harmonic spectrum played through an envelope, with vibrato and an
/// optional second, detuned oscillator (chorus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timbre {
    pub family: Family,
    /// Amplitude of harmonic k + 1.
    pub harmonics: Vec<f32>,
    pub envelope: Adsr,
    pub vibrato_hz: f64,
    pub vibrato_cents: f64,
    /// 0 = one oscillator; otherwise a second oscillator this many cents sharp.
    pub detune_cents: f64,
}

/// Which part of the arrangement a timbre plays; sets the envelope and modulation ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Lead,
    Pad,
    Bass,
    Arp,
}

impl Timbre {
    fn random(rng: &mut ChaCha8Rng, family: Family, role: Role) -> Timbre {
        let n = match role {
            Role::Bass => rng.gen_range(6..=12),
            _ => rng.gen_range(10..=24),
        };
        // Extra spectral tilt and per-harmonic jitter make two timbres of one family differ.
        let tilt: f64 = rng.gen_range(0.0..0.8);
        let mut harmonics: Vec<f32> = (1..=n)
            .map(|k| {
                let kf = k as f64;
                let base = match family {
                    Family::Saw => 1.0 / kf,
                    Family::Square => odd(k) / kf,
                    Family::Triangle => odd(k) / (kf * kf),
                    Family::Pure => {
                        if k <= 3 {
                            1.0 / (kf * kf * kf)
                        } else {
                            0.0
                        }
                    }
                    Family::Organ => {
                        if [1, 2, 3, 4, 6, 8].contains(&k) {
                            1.0
                        } else {
                            0.0
                        }
                    }
                    Family::Formant => 1.0 / kf,
                    Family::Reed => (if k % 2 == 1 { 1.0 } else { 0.25 }) / kf,
                    Family::Bright => 1.0 / kf.sqrt(),
                };
                let jitter = match family {
                    Family::Organ | Family::Bright => rng.gen_range(0.1..1.0),
                    _ => rng.gen_range(0.7..1.3),
                };
                (base * jitter * kf.powf(-tilt)) as f32
            })
            .collect();
        if family == Family::Formant {
            let centre = rng.gen_range(2.0..8.0f64);
            let width = rng.gen_range(0.8..2.5f64);
            for (i, h) in harmonics.iter_mut().enumerate() {
                let d = (i as f64 + 1.0 - centre) / width;
                *h = (*h as f64 * (0.15 + 3.0 * (-0.5 * d * d).exp())) as f32;
            }
        }
        let envelope = match role {
            Role::Lead => Adsr {
                attack: rng.gen_range(0.003..0.08),
                decay: rng.gen_range(0.05..0.4),
                sustain: rng.gen_range(0.3..0.9),
                release: rng.gen_range(0.04..0.3),
            },
            Role::Pad => Adsr {
                attack: rng.gen_range(0.08..0.6),
                decay: rng.gen_range(0.2..1.0),
                sustain: rng.gen_range(0.5..0.95),
                release: rng.gen_range(0.2..0.8),
            },
            Role::Bass => Adsr {
                attack: rng.gen_range(0.002..0.02),
                decay: rng.gen_range(0.05..0.3),
                sustain: rng.gen_range(0.2..0.9),
                release: rng.gen_range(0.03..0.12),
            },
            Role::Arp => Adsr {
                attack: rng.gen_range(0.002..0.01),
                decay: rng.gen_range(0.05..0.25),
                sustain: rng.gen_range(0.0..0.4),
                release: rng.gen_range(0.03..0.15),
            },
        };
        let (vibrato_hz, vibrato_cents) = match role {
            Role::Lead => (rng.gen_range(4.0..7.0), rng.gen_range(0.0..25.0)),
            Role::Pad => (rng.gen_range(0.2..1.5), rng.gen_range(0.0..6.0)),
            Role::Bass | Role::Arp => (5.0, 0.0),
        };
        let detune_cents = match role {
            Role::Pad => rng.gen_range(3.0..15.0),
            Role::Lead | Role::Arp if rng.gen_bool(0.4) => rng.gen_range(2.0..10.0),
            _ => 0.0,
        };
        Timbre {
            family,
            harmonics,
            envelope,
            vibrato_hz,
            vibrato_cents,
            detune_cents,
        }
    }
}

fn odd(k: usize) -> f64 {
    if k % 2 == 1 {
        1.0
    } else {
        0.0
    }
}

/// Drum-machine voices: kick = pitched sine sweep, snare = noise burst + tone,
/// hi-hat = high-passed noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DrumKit {
    pub kick_start_hz: f64,
    pub kick_end_hz: f64,
    /// Time constant of the kick's pitch fall, seconds.
    pub kick_sweep_s: f64,
    pub kick_decay_s: f64,
    /// Level of the kick's noise click (beater).
    pub kick_click: f64,
    pub snare_tone_hz: f64,
    pub snare_tone_decay_s: f64,
    pub snare_noise_decay_s: f64,
    /// Share of tone (vs noise) in the snare.
    pub snare_tone_mix: f64,
    pub hat_decay_s: f64,
    pub open_hat_decay_s: f64,
    /// Pole of the hat's one-pole high-pass, in (0, 1): higher keeps more low end.
    pub hat_highpass_pole: f64,
}

impl DrumKit {
    fn random(rng: &mut ChaCha8Rng) -> DrumKit {
        DrumKit {
            kick_start_hz: rng.gen_range(90.0..220.0),
            kick_end_hz: rng.gen_range(38.0..62.0),
            kick_sweep_s: rng.gen_range(0.015..0.07),
            kick_decay_s: rng.gen_range(0.12..0.45),
            kick_click: rng.gen_range(0.0..0.5),
            snare_tone_hz: rng.gen_range(150.0..280.0),
            snare_tone_decay_s: rng.gen_range(0.03..0.12),
            snare_noise_decay_s: rng.gen_range(0.06..0.22),
            snare_tone_mix: rng.gen_range(0.15..0.6),
            hat_decay_s: rng.gen_range(0.015..0.07),
            open_hat_decay_s: rng.gen_range(0.15..0.45),
            hat_highpass_pole: rng.gen_range(0.2..0.9),
        }
    }
}

/// Drum grooves; a section's pattern starts from one and is mutated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Groove {
    FourOnFloor,
    Rock,
    HalfTime,
    Breakbeat,
    HipHop,
    Jazz,
    Sparse,
}

/// One bar of drums: bit `s` set = a hit on sixteenth step `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DrumPattern {
    pub kick: u32,
    pub snare: u32,
    pub hat: u32,
    pub open_hat: u32,
}

fn mask(steps: &[u32]) -> u32 {
    steps.iter().fold(0, |m, s| m | (1 << s))
}

impl DrumPattern {
    fn random(rng: &mut ChaCha8Rng, groove: Groove, steps_per_bar: u32, full: bool) -> DrumPattern {
        let eighths = mask(&[0, 2, 4, 6, 8, 10, 12, 14]);
        let sixteenths = (1u32 << 16) - 1;
        let mut p = if steps_per_bar == 12 {
            // 3/4: kick on one, snare on two and three, hats on eighths.
            DrumPattern {
                kick: mask(&[0]),
                snare: mask(&[4, 8]),
                hat: mask(&[0, 2, 4, 6, 8, 10]),
                open_hat: 0,
            }
        } else {
            match groove {
                Groove::FourOnFloor => DrumPattern {
                    kick: mask(&[0, 4, 8, 12]),
                    snare: mask(&[4, 12]),
                    hat: if full {
                        sixteenths & !mask(&[2, 6, 10, 14])
                    } else {
                        0
                    },
                    open_hat: mask(&[2, 6, 10, 14]),
                },
                Groove::Rock => DrumPattern {
                    kick: mask(&[0, 8]),
                    snare: mask(&[4, 12]),
                    hat: eighths,
                    open_hat: 0,
                },
                Groove::HalfTime => DrumPattern {
                    kick: mask(&[0, 11]),
                    snare: mask(&[8]),
                    hat: eighths,
                    open_hat: 0,
                },
                Groove::Breakbeat => DrumPattern {
                    kick: mask(&[0, 10]),
                    snare: mask(&[4, 7, 12]),
                    hat: sixteenths,
                    open_hat: 0,
                },
                Groove::HipHop => DrumPattern {
                    kick: mask(&[0, 3, 10]),
                    snare: mask(&[4, 12]),
                    hat: eighths,
                    open_hat: 0,
                },
                Groove::Jazz => DrumPattern {
                    kick: mask(&[0]),
                    snare: mask(&[14]),
                    hat: mask(&[0, 4, 6, 8, 12, 14]),
                    open_hat: 0,
                },
                Groove::Sparse => DrumPattern {
                    kick: mask(&[0]),
                    snare: 0,
                    hat: mask(&[8]),
                    open_hat: 0,
                },
            }
        };
        // Fuller sections (choruses) get more: sixteenth hats, an extra kick, an open hat.
        if full {
            match groove {
                Groove::Rock | Groove::HalfTime | Groove::HipHop => p.hat |= sixteenths,
                Groove::Jazz => p.open_hat |= mask(&[12]),
                Groove::Sparse => p.snare |= mask(&[12]),
                Groove::FourOnFloor | Groove::Breakbeat => {}
            }
            if rng.gen_bool(0.5) {
                p.kick |= 1 << (2 * rng.gen_range(1..steps_per_bar / 2));
            }
        }
        // A random mutation so two songs of one groove still differ.
        if rng.gen_bool(0.6) {
            p.kick ^= 1 << rng.gen_range(1..steps_per_bar);
        }
        if rng.gen_bool(0.4) {
            p.hat ^= 1 << rng.gen_range(0..steps_per_bar);
        }
        let bar = (1u32 << steps_per_bar) - 1;
        p.kick &= bar;
        p.snare &= bar;
        p.hat &= bar & !p.open_hat;
        p.open_hat &= bar;
        p
    }
}

/// A note: position and length in sixteenth steps from the start of its section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub step: u32,
    pub len: u32,
    pub midi: u8,
    pub velocity: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionKind {
    Verse,
    Chorus,
    Bridge,
}

/// A section of the song (verse, chorus, bridge): its own chords, melody, bass line, drum
/// pattern and instrumentation. The song's form strings sections together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub kind: SectionKind,
    /// Scale degrees (0-based) of the chords, evenly spread over the section.
    pub chords: Vec<u8>,
    /// Whether chords carry the diatonic seventh.
    pub sevenths: bool,
    pub melody: Vec<Note>,
    pub bass: Vec<Note>,
    /// None = no drums in this section.
    pub drums: Option<DrumPattern>,
    /// Index into [`SongSpec::leads`] of the instrument playing the melody; None = no melody.
    pub lead: Option<usize>,
    pub pad: bool,
    /// Arpeggio step length in sixteenths (1 or 2); None = no arpeggio.
    pub arp_steps: Option<u32>,
}

/// Per-song mix: part levels, lead echo, background noise and an overall tone filter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mix {
    pub lead: f64,
    pub pad: f64,
    pub bass: f64,
    pub arp: f64,
    pub kick: f64,
    pub snare: f64,
    pub hat: f64,
    /// Echo on the lead: delay in sixteenth steps, feedback, wet level.
    pub echo_steps: u32,
    pub echo_feedback: f64,
    pub echo_mix: f64,
    /// Background noise level relative to the music's RMS, in dB (negative).
    pub noise_db: f64,
    /// 0 = white noise, 1 = strongly low-passed (rumble/hiss colour).
    pub noise_color: f64,
    /// Cut-off of a one-pole low-pass on the whole mix (the song's "brightness").
    pub brightness_hz: f64,
}

/// Every random choice of one song. Serialisable, so a corpus can record what it contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SongSpec {
    pub index: usize,
    /// Seed of the noise stream used while rendering (derived from the corpus seed and index).
    pub render_seed: u64,
    pub title: String,
    pub artist: String,
    pub genre: Genre,
    pub tempo_bpm: f64,
    /// 4 (4/4) or 3 (3/4).
    pub beats_per_bar: u32,
    /// Delay of off-beat sixteenths as a fraction of a step.
    pub swing: f64,
    pub key: Key,
    pub bars_per_section: u32,
    /// Indices into `sections`, played in order and repeated until the song ends.
    pub form: Vec<usize>,
    pub sections: Vec<Section>,
    /// Melody instruments (a chorus may switch to the second).
    pub leads: Vec<Timbre>,
    pub pad: Timbre,
    pub bass: Timbre,
    pub arp: Timbre,
    pub drum_kit: DrumKit,
    pub mix: Mix,
}

/// MIDI of the C that starts each part's octave (C2, C4, C5): bass ~65–130 Hz, chords
/// ~200–400 Hz, melody ~400–1000 Hz.
const BASS_OCTAVE: i32 = 36;
const PAD_LOW: i32 = 54;
const ARP_LOW: i32 = 64;
const LEAD_OCTAVE: i32 = 60;

impl SongSpec {
    /// The song at `index` of the corpus with seed `corpus_seed`. Each song has its own ChaCha
    /// stream (seed = corpus seed, stream = index), so songs do not depend on each other.
    pub fn random(corpus_seed: u64, index: usize) -> SongSpec {
        let mut rng = ChaCha8Rng::seed_from_u64(corpus_seed);
        rng.set_stream(index as u64);
        let render_seed = rng.gen();
        let title = names::title(&mut rng);
        let artist = names::artist(&mut rng);
        let genre = *Genre::ALL.choose(&mut rng).expect("non-empty");
        let style = genre.style();
        let tempo_bpm = (rng.gen_range(style.tempo.0..=style.tempo.1) * 10.0).round() / 10.0;
        let beats_per_bar = if rng.gen_bool(style.waltz_prob) { 3 } else { 4 };
        let steps_per_bar = beats_per_bar * STEPS_PER_BEAT;
        let swing = rng.gen_range(style.swing.0..=style.swing.1);
        let scales: &[Scale] = match genre {
            Genre::Jazz => &[Scale::Dorian, Scale::Mixolydian, Scale::Major, Scale::Minor],
            Genre::Folk => &[Scale::Major, Scale::Mixolydian, Scale::Dorian],
            _ => &[
                Scale::Major,
                Scale::Major,
                Scale::Minor,
                Scale::Minor,
                Scale::HarmonicMinor,
                Scale::Dorian,
            ],
        };
        let key = Key {
            root: rng.gen_range(0..12),
            scale: *scales.choose(&mut rng).expect("non-empty"),
        };
        let bars_per_section = *SECTION_BARS.choose(&mut rng).expect("non-empty");

        let pick_family = |rng: &mut ChaCha8Rng| *style.families.choose(rng).expect("non-empty");
        let lead_family = pick_family(&mut rng);
        let mut leads = vec![Timbre::random(&mut rng, lead_family, Role::Lead)];
        if rng.gen_bool(0.5) {
            let f = pick_family(&mut rng);
            leads.push(Timbre::random(&mut rng, f, Role::Lead));
        }
        let f = pick_family(&mut rng);
        let pad = Timbre::random(&mut rng, f, Role::Pad);
        let bass_family = *[
            Family::Saw,
            Family::Square,
            Family::Triangle,
            Family::Pure,
            Family::Formant,
        ]
        .choose(&mut rng)
        .expect("non-empty");
        let bass = Timbre::random(&mut rng, bass_family, Role::Bass);
        let f = pick_family(&mut rng);
        let arp = Timbre::random(&mut rng, f, Role::Arp);
        let drum_kit = DrumKit::random(&mut rng);
        let has_drums = rng.gen_bool(style.drum_prob);
        let groove = *style.grooves.choose(&mut rng).expect("non-empty");

        let ctx = SectionContext {
            key,
            steps_per_bar,
            bars: bars_per_section,
            note_lengths: style.note_lengths,
            groove,
            has_drums,
            n_leads: leads.len(),
        };
        let sections = vec![
            ctx.section(&mut rng, SectionKind::Verse),
            ctx.section(&mut rng, SectionKind::Chorus),
            ctx.section(&mut rng, SectionKind::Bridge),
        ];
        const FORMS: [&[usize]; 4] = [
            &[0, 1, 0, 1, 2, 1],
            &[0, 0, 1, 1, 2, 1],
            &[1, 0, 1, 0, 2, 1],
            &[0, 1, 2, 1],
        ];
        let form = FORMS.choose(&mut rng).expect("non-empty").to_vec();

        let mix = Mix {
            lead: rng.gen_range(0.25..0.6),
            pad: rng.gen_range(0.1..0.35),
            bass: rng.gen_range(0.2..0.5),
            arp: rng.gen_range(0.08..0.25),
            kick: rng.gen_range(0.3..0.8),
            snare: rng.gen_range(0.2..0.6),
            hat: rng.gen_range(0.05..0.25),
            echo_steps: *[3u32, 4, 6].choose(&mut rng).expect("non-empty"),
            echo_feedback: rng.gen_range(0.0..0.5),
            echo_mix: if rng.gen_bool(0.6) {
                rng.gen_range(0.1..0.4)
            } else {
                0.0
            },
            noise_db: rng.gen_range(-50.0..-25.0),
            noise_color: rng.gen_range(0.0..1.0),
            brightness_hz: rng.gen_range(style.brightness_hz.0..style.brightness_hz.1),
        };
        SongSpec {
            index,
            render_seed,
            title,
            artist,
            genre,
            tempo_bpm,
            beats_per_bar,
            swing,
            key,
            bars_per_section,
            form,
            sections,
            leads,
            pad,
            bass,
            arp,
            drum_kit,
            mix,
        }
    }

    fn steps_per_bar(&self) -> u32 {
        self.beats_per_bar * STEPS_PER_BEAT
    }

    /// Renders the first `seconds` of the song at `sample_rate`: mono, exactly
    /// `round(seconds × sample_rate)` samples, peak normalised to [`PEAK_LEVEL`].
    /// A non-positive or non-finite duration, or a zero rate, gives no samples.
    pub fn render(&self, seconds: f64, sample_rate: u32) -> Audio {
        let n = if seconds.is_finite() && seconds > 0.0 {
            (seconds * sample_rate as f64).round() as usize
        } else {
            0
        };
        if n == 0 || self.sections.is_empty() || self.form.is_empty() {
            return Audio {
                samples: vec![0.0; n],
                sample_rate,
            };
        }
        Renderer::new(self, sample_rate, n).run()
    }
}

/// Song-wide choices that every section draw needs.
struct SectionContext {
    key: Key,
    steps_per_bar: u32,
    bars: u32,
    note_lengths: &'static [u32],
    groove: Groove,
    has_drums: bool,
    n_leads: usize,
}

impl SectionContext {
    fn section(&self, rng: &mut ChaCha8Rng, kind: SectionKind) -> Section {
        let progressions: &[[u8; 4]] = if self.key.scale.is_minor() {
            &MINOR_PROGRESSIONS
        } else {
            &MAJOR_PROGRESSIONS
        };
        let mut chords = progressions.choose(rng).expect("non-empty").to_vec();
        if kind == SectionKind::Bridge {
            // Bridges move away from the tonic: start on IV or vi.
            chords[0] = *[3u8, 5].choose(rng).expect("non-empty");
        }
        let sevenths = rng.gen_bool(0.3);
        let section_steps = self.bars * self.steps_per_bar;
        let chord_steps = section_steps / chords.len() as u32;
        let register = match kind {
            SectionKind::Chorus => rng.gen_range(2..5),
            _ => rng.gen_range(0..3),
        };
        let melody = self.melody(rng, &chords, chord_steps, register);
        let bass = self.bass_line(rng, &chords, chord_steps);
        let (drums, lead, pad, arp_steps) = match kind {
            SectionKind::Verse => (
                self.has_drums
                    .then(|| DrumPattern::random(rng, self.groove, self.steps_per_bar, false)),
                Some(0),
                rng.gen_bool(0.7),
                None,
            ),
            SectionKind::Chorus => (
                self.has_drums
                    .then(|| DrumPattern::random(rng, self.groove, self.steps_per_bar, true)),
                Some(self.n_leads - 1),
                true,
                rng.gen_bool(0.6).then(|| rng.gen_range(1..=2)),
            ),
            SectionKind::Bridge => (
                (self.has_drums && rng.gen_bool(0.5))
                    .then(|| DrumPattern::random(rng, Groove::Sparse, self.steps_per_bar, false)),
                rng.gen_bool(0.5).then_some(0),
                true,
                rng.gen_bool(0.5).then(|| rng.gen_range(1..=2)),
            ),
        };
        Section {
            kind,
            chords,
            sevenths,
            melody,
            bass,
            drums,
            lead,
            pad,
            arp_steps,
        }
    }

    /// A melody built from two-bar motifs: the rhythm and contour of motif A repeat, the last
    /// repetition is varied, and notes that start a chord snap to the nearest chord tone.
    fn melody(
        &self,
        rng: &mut ChaCha8Rng,
        chords: &[u8],
        chord_steps: u32,
        register: i32,
    ) -> Vec<Note> {
        let motif_steps = MOTIF_BARS * self.steps_per_bar;
        let motif = |rng: &mut ChaCha8Rng| -> Vec<(u32, u32, i32, bool)> {
            let mut out = Vec::new();
            let mut t = 0;
            while t < motif_steps {
                let len = (*self.note_lengths.choose(rng).expect("non-empty")).min(motif_steps - t);
                let rest = rng.gen_bool(0.15);
                let moves = [-3, -2, -1, -1, 0, 1, 1, 2, 3, 4];
                let mv = *moves.choose(rng).expect("non-empty");
                out.push((t, len, mv, rest));
                t += len;
            }
            out
        };
        let a = motif(rng);
        let b = motif(rng);
        let reps = (self.bars / MOTIF_BARS).max(1);
        let mut notes = Vec::new();
        for r in 0..reps {
            let m = if r + 1 == reps && reps > 1 { &b } else { &a };
            let mut step = register;
            for &(t, len, mv, rest) in m {
                let at = r * motif_steps + t;
                step = (step + mv).clamp(register - 4, register + 9);
                if at.is_multiple_of(chord_steps) {
                    let chord = chords[(at / chord_steps) as usize % chords.len()] as i32;
                    step = nearest_chord_tone(step, chord);
                }
                if rest {
                    continue;
                }
                let accent = if t % STEPS_PER_BEAT == 0 { 1.0 } else { 0.8 };
                notes.push(Note {
                    step: at,
                    len,
                    midi: self.key.midi(step, LEAD_OCTAVE).clamp(0, 127) as u8,
                    velocity: accent * rng.gen_range(0.85..1.0f32),
                });
            }
        }
        notes
    }

    /// A one-bar bass rhythm (always on the downbeat) repeated under the chords; hits play the
    /// chord root, or its fifth/octave at positions chosen once for the pattern.
    fn bass_line(&self, rng: &mut ChaCha8Rng, chords: &[u8], chord_steps: u32) -> Vec<Note> {
        let spb = self.steps_per_bar;
        let density = rng.gen_range(0.1..0.45);
        let mut hits: Vec<(u32, i32)> = vec![(0, 0)];
        for s in 1..spb {
            // Eighth positions are likelier than off-sixteenths.
            let p = if s % 2 == 0 { density } else { density / 4.0 };
            if rng.gen_bool(p) {
                hits.push((s, *[0, 0, 4, 7].choose(rng).expect("non-empty")));
            }
        }
        let staccato = rng.gen_range(0.5..1.0);
        let mut notes = Vec::new();
        for bar in 0..self.bars {
            for (i, &(s, interval)) in hits.iter().enumerate() {
                let at = bar * spb + s;
                let next = hits.get(i + 1).map_or(spb, |h| h.0);
                let len = (((next - s) as f64 * staccato).round() as u32).max(1);
                let chord = chords[(at / chord_steps) as usize % chords.len()] as i32;
                notes.push(Note {
                    step: at,
                    len,
                    midi: self.key.midi(chord + interval, BASS_OCTAVE).clamp(0, 127) as u8,
                    velocity: if s == 0 { 1.0 } else { 0.8 },
                });
            }
        }
        notes
    }
}

/// The scale step nearest to `step` that is the root, third or fifth of the chord on `degree`
/// (ties go down, so the choice is deterministic).
fn nearest_chord_tone(step: i32, degree: i32) -> i32 {
    (0..=3)
        .flat_map(|d| [step - d, step + d])
        .find(|s| matches!((s - degree).rem_euclid(7), 0 | 2 | 4))
        .unwrap_or(step)
}

/// MIDI notes of the chord on `degree`, folded into the octave starting at `low`, sorted.
fn chord_notes(key: &Key, degree: u8, seventh: bool, low: i32) -> Vec<i32> {
    let tones: &[i32] = if seventh { &[0, 2, 4, 6] } else { &[0, 2, 4] };
    let mut out: Vec<i32> = tones
        .iter()
        .map(|t| {
            let m = key.midi(degree as i32 + t, 0);
            low + (m - low).rem_euclid(12)
        })
        .collect();
    out.sort_unstable();
    out
}

fn midi_hz(midi: i32) -> f64 {
    440.0 * ((midi as f64 - 69.0) / 12.0).exp2()
}

/// Turns a spec into samples. Holds the per-song state: wavetables (built on demand, one per
/// instrument and pitch), drum one-shots, the noise stream and the output buses.
struct Renderer<'a> {
    spec: &'a SongSpec,
    sr: f64,
    n: usize,
    sine: Vec<f32>,
    rng: ChaCha8Rng,
    /// Wavetables indexed by [instrument][midi note].
    tables: Vec<Vec<Option<Vec<f32>>>>,
    main: Vec<f32>,
    lead_bus: Vec<f32>,
}

/// Indices of the non-lead instruments in `Renderer::tables` (leads come after).
const PAD: usize = 0;
const BASS: usize = 1;
const ARP: usize = 2;
const FIRST_LEAD: usize = 3;

impl<'a> Renderer<'a> {
    fn new(spec: &'a SongSpec, sample_rate: u32, n: usize) -> Self {
        let sine = (0..TABLE_SIZE)
            .map(|i| (TAU * i as f64 / TABLE_SIZE as f64).sin() as f32)
            .collect();
        Renderer {
            spec,
            sr: sample_rate as f64,
            n,
            sine,
            rng: ChaCha8Rng::seed_from_u64(spec.render_seed),
            tables: vec![vec![None; 128]; FIRST_LEAD + spec.leads.len()],
            main: vec![0.0; n],
            lead_bus: vec![0.0; n],
        }
    }

    fn timbre(&self, instrument: usize) -> &'a Timbre {
        match instrument {
            PAD => &self.spec.pad,
            BASS => &self.spec.bass,
            ARP => &self.spec.arp,
            i => &self.spec.leads[i - FIRST_LEAD],
        }
    }

    /// One cycle of the instrument's waveform at `midi`, with harmonics above
    /// MAX_HARMONIC_FRACTION × rate dropped. Harmonic k at table index i is sine[(k·i) mod N]:
    /// exact, and no `sin` calls.
    fn ensure_table(&mut self, instrument: usize, midi: u8) {
        if self.tables[instrument][midi as usize].is_some() {
            return;
        }
        let timbre = self.timbre(instrument);
        let f0 = midi_hz(midi as i32);
        let max_k = ((MAX_HARMONIC_FRACTION * self.sr / f0).floor() as usize).max(1);
        let mut table = vec![0.0f32; TABLE_SIZE];
        for (k0, &a) in timbre.harmonics.iter().enumerate().take(max_k) {
            let k = k0 + 1;
            if a == 0.0 {
                continue;
            }
            for (i, v) in table.iter_mut().enumerate() {
                *v += a * self.sine[(k * i) & (TABLE_SIZE - 1)];
            }
        }
        let peak = table.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if peak > 0.0 {
            table.iter_mut().for_each(|v| *v /= peak);
        }
        table.push(table[0]);
        self.tables[instrument][midi as usize] = Some(table);
    }

    /// Sample position of global sixteenth step `step` (swing delays the off-beat sixteenths).
    fn step_pos(&self, step: u64) -> usize {
        let step_s = 60.0 / (self.spec.tempo_bpm * STEPS_PER_BEAT as f64);
        let swung = step as f64 + if step % 2 == 1 { self.spec.swing } else { 0.0 };
        (swung * step_s * self.sr).round() as usize
    }

    fn run(mut self) -> Audio {
        let spec = self.spec;
        let spb = spec.steps_per_bar() as u64;
        let section_steps = spec.bars_per_section as u64 * spb;
        let mut start_step = 0u64;
        let drums = self.drum_samples();
        for &si in spec.form.iter().cycle() {
            if self.step_pos(start_step) >= self.n {
                break;
            }
            let Some(section) = spec.sections.get(si) else {
                break;
            };
            self.render_section(section, start_step, &drums);
            start_step += section_steps;
        }
        self.finish()
    }

    fn render_section(&mut self, sec: &Section, start: u64, drums: &DrumSamples) {
        let spec = self.spec;
        let mix = spec.mix;
        if let Some(lead) = sec.lead.filter(|&l| l < spec.leads.len()) {
            for note in &sec.melody {
                self.note(FIRST_LEAD + lead, note, start, mix.lead, true);
            }
        }
        for note in &sec.bass {
            self.note(BASS, note, start, mix.bass, false);
        }
        let section_steps = spec.bars_per_section * spec.steps_per_bar();
        let chord_steps = section_steps / sec.chords.len().max(1) as u32;
        for (ci, &degree) in sec.chords.iter().enumerate() {
            let at = ci as u32 * chord_steps;
            if sec.pad {
                for m in chord_notes(&spec.key, degree, sec.sevenths, PAD_LOW) {
                    let note = Note {
                        step: at,
                        len: chord_steps,
                        midi: m as u8,
                        velocity: 1.0,
                    };
                    self.note(PAD, &note, start, mix.pad, false);
                }
            }
            if let Some(rate) = sec.arp_steps.filter(|&r| r > 0) {
                let tones = chord_notes(&spec.key, degree, sec.sevenths, ARP_LOW);
                for (j, t) in (at..at + chord_steps).step_by(rate as usize).enumerate() {
                    let note = Note {
                        step: t,
                        len: rate,
                        midi: tones[j % tones.len()] as u8,
                        velocity: 1.0,
                    };
                    self.note(ARP, &note, start, mix.arp, false);
                }
            }
        }
        if let Some(p) = sec.drums {
            let spb = spec.steps_per_bar();
            for s in 0..section_steps {
                let bit = 1u32 << (s % spb);
                let accent = if s % STEPS_PER_BEAT == 0 { 1.0 } else { 0.75 };
                let pos = self.step_pos(start + s as u64);
                for (mask, sample, gain) in [
                    (p.kick, &drums.kick, mix.kick),
                    (p.snare, &drums.snare, mix.snare),
                    (p.hat, &drums.hat, mix.hat),
                    (p.open_hat, &drums.open_hat, mix.hat),
                ] {
                    if mask & bit != 0 {
                        let velocity = accent * self.rng.gen_range(0.85..1.0f32);
                        add_at(&mut self.main, pos, sample, gain as f32 * velocity);
                    }
                }
            }
        }
    }

    /// Plays one note on an instrument: wavetable oscillator(s) with vibrato, through the ADSR.
    fn note(
        &mut self,
        instrument: usize,
        note: &Note,
        section_start: u64,
        gain: f64,
        lead_bus: bool,
    ) {
        let start = self.step_pos(section_start + note.step as u64);
        if start >= self.n || note.midi > 127 {
            return;
        }
        let held = self
            .step_pos(section_start + (note.step + note.len) as u64)
            .saturating_sub(start);
        self.ensure_table(instrument, note.midi);
        let timbre = self.timbre(instrument);
        let Some(table) = self.tables[instrument][note.midi as usize].as_deref() else {
            return;
        };
        let out = if lead_bus {
            &mut self.lead_bus
        } else {
            &mut self.main
        };
        let env = Envelope::new(&timbre.envelope, held, self.sr);
        let end = (start + held + env.release).min(self.n);
        let inc = (midi_hz(note.midi as i32) / self.sr * PHASE_CYCLE) as f32;
        let detuned = timbre.detune_cents != 0.0;
        let inc2 = inc * (timbre.detune_cents / 1200.0).exp2() as f32;
        let (gain1, gain2) = if detuned {
            (0.5f32, 0.5f32)
        } else {
            (1.0, 0.0)
        };
        // Vibrato as a relative frequency swing: 2^(cents/1200) − 1 ≈ cents·ln2/1200.
        let depth = (timbre.vibrato_cents * LN_2 / 1200.0) as f32;
        let lfo_inc = (timbre.vibrato_hz / self.sr * PHASE_CYCLE) as u32;
        let amp = (gain * note.velocity as f64) as f32;
        let sine = &self.sine;
        let mut phase = 0u32;
        // The second oscillator starts a third of a cycle later so the two do not start in unison.
        let mut phase2 = u32::MAX / 3;
        let mut lfo = 0u32;
        let mut i = start;
        for seg in env.segments() {
            let len = seg.len.min(end - i);
            let mut level = seg.start;
            for o in &mut out[i..i + len] {
                let vib = 1.0 + depth * sine[(lfo >> PHASE_FRAC_BITS) as usize];
                lfo = lfo.wrapping_add(lfo_inc);
                let mut v = gain1 * lerp(table, phase);
                phase = phase.wrapping_add((inc * vib) as u32);
                if detuned {
                    v += gain2 * lerp(table, phase2);
                    phase2 = phase2.wrapping_add((inc2 * vib) as u32);
                }
                *o += amp * level * v;
                level += seg.slope;
            }
            i += len;
        }
    }

    /// The drum one-shots of this song's kit, each peak-normalised to 1.
    fn drum_samples(&mut self) -> DrumSamples {
        let k = self.spec.drum_kit;
        let sr = self.sr;
        let len = |decay: f64| ((decay * 6.0).min(MAX_DRUM_SECONDS) * sr).round() as usize;

        let mut phase = 0.0f64;
        let kick: Vec<f32> = (0..len(k.kick_decay_s))
            .map(|i| {
                let t = i as f64 / sr;
                let f =
                    k.kick_end_hz + (k.kick_start_hz - k.kick_end_hz) * (-t / k.kick_sweep_s).exp();
                phase += TAU * f / sr;
                let click = k.kick_click * self.rng.gen_range(-1.0..1.0) * (-t / 0.003).exp();
                ((phase.sin() + click) * (-t / k.kick_decay_s).exp()) as f32
            })
            .collect();

        let mut hp = OnePoleHighpass::default();
        let snare: Vec<f32> = (0..len(k.snare_noise_decay_s.max(k.snare_tone_decay_s)))
            .map(|i| {
                let t = i as f64 / sr;
                let w = TAU * k.snare_tone_hz * t;
                // Fundamental plus an inharmonic overtone, as on a drum membrane.
                let tone = (w.sin() + 0.5 * (1.6 * w).sin()) * (-t / k.snare_tone_decay_s).exp();
                let noise = hp.process(self.rng.gen_range(-1.0..1.0), 0.5)
                    * (-t / k.snare_noise_decay_s).exp();
                (k.snare_tone_mix * tone + (1.0 - k.snare_tone_mix) * noise) as f32
            })
            .collect();

        let hat_for = |decay: f64, rng: &mut ChaCha8Rng| -> Vec<f32> {
            let mut hp = OnePoleHighpass::default();
            (0..len(decay))
                .map(|i| {
                    let t = i as f64 / sr;
                    (hp.process(rng.gen_range(-1.0..1.0), k.hat_highpass_pole) * (-t / decay).exp())
                        as f32
                })
                .collect()
        };
        let hat = hat_for(k.hat_decay_s, &mut self.rng);
        let open_hat = hat_for(k.open_hat_decay_s, &mut self.rng);
        DrumSamples {
            kick: normalised(kick),
            snare: normalised(snare),
            hat: normalised(hat),
            open_hat: normalised(open_hat),
        }
    }

    /// Lead echo, background noise, the tone filter and peak normalisation.
    fn finish(mut self) -> Audio {
        let mix = self.spec.mix;
        // Echo: a feedback delay line on the lead bus.
        let delay = self.step_pos(mix.echo_steps as u64).max(1);
        let mut echo = std::mem::take(&mut self.lead_bus);
        let dry = echo.clone();
        for i in delay..echo.len() {
            echo[i] += mix.echo_feedback as f32 * echo[i - delay];
        }
        for i in 0..self.n {
            let wet = if i >= delay { echo[i - delay] } else { 0.0 };
            self.main[i] += dry[i] + mix.echo_mix as f32 * wet;
        }
        // Background noise at a level relative to the music, coloured by a one-pole low-pass
        // (scaled back to unit variance so colour does not change the level).
        let music_rms = rms(&self.main);
        let level = (music_rms as f64 * 10f64.powf(mix.noise_db / 20.0) * 3f64.sqrt()) as f32;
        let pole = 0.999 * mix.noise_color;
        let colour_gain = ((1.0 + pole) / (1.0 - pole)).sqrt() as f32;
        let mut state = 0.0f32;
        for o in self.main.iter_mut() {
            let w: f32 = self.rng.gen_range(-1.0..1.0);
            state = pole as f32 * state + (1.0 - pole as f32) * w;
            *o += level * colour_gain * state;
        }
        // The song's overall brightness.
        let a = (1.0 - (-TAU * mix.brightness_hz / self.sr).exp()) as f32;
        let mut y = 0.0f32;
        for o in self.main.iter_mut() {
            y += a * (*o - y);
            *o = y;
        }
        let peak = self.main.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if peak > 0.0 && peak.is_finite() {
            let g = PEAK_LEVEL / peak;
            self.main.iter_mut().for_each(|v| *v *= g);
        }
        Audio {
            samples: self.main,
            sample_rate: self.sr as u32,
        }
    }
}

struct DrumSamples {
    kick: Vec<f32>,
    snare: Vec<f32>,
    hat: Vec<f32>,
    open_hat: Vec<f32>,
}

/// Sample-domain ADSR for a note held `held` samples.
struct Envelope {
    attack: usize,
    decay: usize,
    sustain: f32,
    held: usize,
    release: usize,
}

/// A linear piece of an envelope: `len` samples from level `start`, changing by `slope` each.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    len: usize,
    start: f32,
    slope: f32,
}

impl Envelope {
    fn new(adsr: &Adsr, held: usize, sr: f64) -> Envelope {
        let samples = |s: f64| (s * sr).round().max(1.0) as usize;
        Envelope {
            attack: samples(adsr.attack),
            decay: samples(adsr.decay),
            sustain: adsr.sustain as f32,
            held,
            release: samples(adsr.release),
        }
    }

    /// Level while the note is held, `i` samples after its start.
    fn held_level(&self, i: usize) -> f32 {
        if i < self.attack {
            i as f32 / self.attack as f32
        } else if i < self.attack + self.decay {
            1.0 - (1.0 - self.sustain) * (i - self.attack) as f32 / self.decay as f32
        } else {
            self.sustain
        }
    }

    /// Attack, decay, sustain and release as linear pieces (cut short when the note is), so the
    /// inner loop adds a slope instead of evaluating the envelope per sample. Each piece starts
    /// from the exact level, so rounding does not accumulate across pieces.
    fn segments(&self) -> [Segment; 4] {
        let attack = self.attack.min(self.held);
        let decay = self.decay.min(self.held - attack);
        let sustain = self.held - attack - decay;
        let off = self.held_level(self.held);
        [
            Segment {
                len: attack,
                start: 0.0,
                slope: 1.0 / self.attack as f32,
            },
            Segment {
                len: decay,
                start: self.held_level(attack),
                slope: -(1.0 - self.sustain) / self.decay as f32,
            },
            Segment {
                len: sustain,
                start: self.sustain,
                slope: 0.0,
            },
            Segment {
                len: self.release,
                start: off,
                slope: -off / self.release as f32,
            },
        ]
    }
}

#[derive(Default)]
struct OnePoleHighpass {
    prev_x: f64,
    y: f64,
}

impl OnePoleHighpass {
    /// y[n] = pole·(y[n−1] + x[n] − x[n−1]): a first difference (kills lows) with a pole that
    /// lets some back in.
    fn process(&mut self, x: f64, pole: f64) -> f64 {
        self.y = pole * (self.y + x - self.prev_x);
        self.prev_x = x;
        self.y
    }
}

/// Wavetable lookup with linear interpolation at a fixed-point phase. Tables carry one guard
/// sample (a copy of the first) so the next index never wraps.
#[inline]
fn lerp(table: &[f32], phase: u32) -> f32 {
    let i = (phase >> PHASE_FRAC_BITS) as usize;
    let frac =
        (phase & ((1 << PHASE_FRAC_BITS) - 1)) as f32 * (1.0 / (1u32 << PHASE_FRAC_BITS) as f32);
    let a = table[i];
    a + frac * (table[i + 1] - a)
}

fn add_at(out: &mut [f32], pos: usize, sample: &[f32], gain: f32) {
    if pos >= out.len() {
        return;
    }
    for (o, s) in out[pos..].iter_mut().zip(sample) {
        *o += gain * s;
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let peak = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak > 0.0 {
        v.iter_mut().for_each(|x| *x /= peak);
    }
    v
}

fn rms(v: &[f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    (v.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / v.len() as f64).sqrt() as f32
}

/// Deterministic pseudo-word titles and artist names ("Velvet Harbor", "The Lumen Trio").
mod names {
    use rand::seq::SliceRandom;
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;

    const ONSETS: [&str; 27] = [
        "b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "k", "l", "m", "n", "p", "pr",
        "r", "s", "st", "sh", "t", "tr", "v", "w", "z", "",
    ];
    const VOWELS: [&str; 10] = ["a", "e", "i", "o", "u", "a", "ai", "ea", "ou", "io"];
    const CODAS: [&str; 12] = ["", "", "n", "r", "l", "m", "s", "th", "nd", "rk", "x", "t"];
    const WORDS: [&str; 40] = [
        "Harbor",
        "Velvet",
        "Echo",
        "River",
        "Signal",
        "Lantern",
        "Meadow",
        "Circuit",
        "Ember",
        "Glass",
        "Neon",
        "Paper",
        "Winter",
        "Orbit",
        "Hollow",
        "Silver",
        "Cinder",
        "Tide",
        "Static",
        "Juniper",
        "Atlas",
        "Comet",
        "Marble",
        "Willow",
        "Copper",
        "Midnight",
        "Garden",
        "Drift",
        "Mirror",
        "Canyon",
        "Lumen",
        "Harvest",
        "Falcon",
        "Summer",
        "Ivory",
        "Thunder",
        "Saffron",
        "Coral",
        "Engine",
        "Satellite",
    ];
    const ENSEMBLES: [&str; 10] = [
        "Trio",
        "Quartet",
        "Collective",
        "Band",
        "Ensemble",
        "Orchestra",
        "Club",
        "Sound System",
        "Brothers",
        "Sisters",
    ];

    /// A pronounceable invented word of two or three syllables, capitalised.
    fn pseudo_word(rng: &mut ChaCha8Rng) -> String {
        let syllables = rng.gen_range(2..=3);
        let mut w = String::new();
        for i in 0..syllables {
            w.push_str(ONSETS.choose(rng).expect("non-empty"));
            w.push_str(VOWELS.choose(rng).expect("non-empty"));
            if i + 1 == syllables || rng.gen_bool(0.3) {
                w.push_str(CODAS.choose(rng).expect("non-empty"));
            }
        }
        capitalise(&w)
    }

    fn capitalise(w: &str) -> String {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    }

    fn word(rng: &mut ChaCha8Rng) -> String {
        if rng.gen_bool(0.5) {
            WORDS.choose(rng).expect("non-empty").to_string()
        } else {
            pseudo_word(rng)
        }
    }

    pub fn title(rng: &mut ChaCha8Rng) -> String {
        let n = rng.gen_range(1..=3);
        (0..n).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
    }

    pub fn artist(rng: &mut ChaCha8Rng) -> String {
        match rng.gen_range(0..5) {
            0 => format!(
                "The {} {}",
                word(rng),
                ENSEMBLES.choose(rng).expect("non-empty")
            ),
            1 => format!("DJ {}", pseudo_word(rng)),
            2 => format!(
                "{} & the {}s",
                pseudo_word(rng),
                WORDS.choose(rng).expect("non-empty")
            ),
            _ => format!("{} {}", pseudo_word(rng), pseudo_word(rng)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: u32 = 22_050;

    #[test]
    fn same_seed_and_index_render_identically() {
        let a = SongSpec::random(7, 3).render(3.0, SR);
        let b = SongSpec::random(7, 3).render(3.0, SR);
        assert_eq!(a.samples.len(), b.samples.len());
        assert!(a
            .samples
            .iter()
            .zip(&b.samples)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn songs_differ_by_index_and_seed() {
        assert_ne!(SongSpec::random(7, 3), SongSpec::random(7, 4));
        assert_ne!(SongSpec::random(7, 3), SongSpec::random(8, 3));
        assert_ne!(
            SongSpec::random(7, 3).render(1.0, SR),
            SongSpec::random(7, 4).render(1.0, SR)
        );
    }

    #[test]
    fn length_is_exact_and_peak_is_normalised() {
        for (i, secs) in [(0, 1.0), (1, 2.5), (2, 0.123_456)] {
            let a = SongSpec::random(1, i).render(secs, SR);
            assert_eq!(a.samples.len(), (secs * SR as f64).round() as usize);
            assert_eq!(a.sample_rate, SR);
            let peak = a.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((peak - PEAK_LEVEL).abs() < 1e-4, "peak {peak}");
            assert!(a.samples.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn bad_durations_give_no_samples() {
        let spec = SongSpec::random(1, 0);
        for secs in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(spec.render(secs, SR).samples.is_empty(), "{secs}");
        }
        assert!(spec.render(1.0, 0).samples.is_empty());
    }

    #[test]
    fn spec_round_trips_through_serde() {
        let spec = SongSpec::random(42, 11);
        // Through a JSON value, not text: serde_json's default text parser may be off by one ulp.
        let value = serde_json::to_value(&spec).unwrap();
        let back: SongSpec = serde_json::from_value(value).unwrap();
        assert_eq!(spec, back);
        assert!(serde_json::from_str::<SongSpec>(&serde_json::to_string(&spec).unwrap()).is_ok());
    }

    #[test]
    fn chords_are_diatonic_triads() {
        let key = Key {
            root: 0,
            scale: Scale::Major,
        };
        assert_eq!(chord_notes(&key, 0, false, 60), vec![60, 64, 67]); // C E G
        assert_eq!(chord_notes(&key, 4, true, 60), vec![62, 65, 67, 71]); // G7 = G B D F
        let minor = Key {
            root: 9,
            scale: Scale::Minor,
        };
        assert_eq!(chord_notes(&minor, 0, false, 57), vec![57, 60, 64]); // A C E
    }

    #[test]
    fn nearest_chord_tone_snaps_to_triad() {
        // Chord on degree 0 has steps 0, 2, 4 (mod 7).
        assert_eq!(nearest_chord_tone(1, 0), 0);
        assert_eq!(nearest_chord_tone(3, 0), 2);
        assert_eq!(nearest_chord_tone(4, 0), 4);
        assert_eq!(nearest_chord_tone(6, 0), 7);
        assert_eq!(nearest_chord_tone(-1, 0), 0);
        assert_eq!(nearest_chord_tone(-2, 0), -3); // tie between -3 and -1 goes down
    }

    #[test]
    fn key_midi_follows_the_scale() {
        let key = Key {
            root: 2,
            scale: Scale::Dorian,
        }; // D dorian = white keys from D
        let notes: Vec<i32> = (0..8).map(|s| key.midi(s, 60)).collect();
        assert_eq!(notes, vec![62, 64, 65, 67, 69, 71, 72, 74]);
        assert_eq!(key.midi(-1, 60), 60);
        assert_eq!(key.to_string(), "D dorian");
    }

    #[test]
    fn wavetables_drop_harmonics_above_nyquist_margin() {
        let spec = SongSpec::random(3, 0);
        let mut r = Renderer::new(&spec, 8000, 10);
        // 1760 Hz at 8 kHz: only harmonics k with k·1760 < 3600, i.e. k ≤ 2, may remain.
        r.ensure_table(BASS, 93);
        let table = r.tables[BASS][93].as_ref().unwrap();
        let mut planner = realfft::RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(TABLE_SIZE);
        let mut input = table[..TABLE_SIZE].to_vec();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut input, &mut spectrum).unwrap();
        let high: f32 = spectrum[3..].iter().map(|c| c.norm()).sum();
        let low: f32 = spectrum[1..3].iter().map(|c| c.norm()).sum();
        assert!(high < 1e-3 * low, "high {high} low {low}");
    }

    #[test]
    fn envelope_attacks_sustains_and_releases() {
        let expand = |e: &Envelope| -> Vec<f32> {
            e.segments()
                .iter()
                .flat_map(|s| (0..s.len).map(move |i| s.start + s.slope * i as f32))
                .collect()
        };
        let adsr = Adsr {
            attack: 0.01,
            decay: 0.01,
            sustain: 0.5,
            release: 0.01,
        };
        // 100-sample stages, held 1000 samples.
        let level = expand(&Envelope::new(&adsr, 1000, 10_000.0));
        assert_eq!(level.len(), 1100);
        assert_eq!(level[0], 0.0);
        assert!((level[100] - 1.0).abs() < 1e-6);
        assert!((level[150] - 0.75).abs() < 1e-6);
        assert!((level[500] - 0.5).abs() < 1e-6);
        assert!((level[1050] - 0.25).abs() < 1e-6);
        assert!(level[1099] > 0.0 && level[1099] < 0.01);
        // A note released during its attack releases from the level it reached.
        let short = expand(&Envelope::new(&adsr, 40, 10_000.0));
        assert_eq!(short.len(), 140);
        assert!((short[40] - 0.4).abs() < 1e-6);
        assert!(short.iter().all(|&l| (0.0..=1.0).contains(&l)));
    }

    #[test]
    fn names_are_varied_and_non_empty() {
        let specs: Vec<SongSpec> = (0..50).map(|i| SongSpec::random(42, i)).collect();
        assert!(specs
            .iter()
            .all(|s| !s.title.is_empty() && !s.artist.is_empty()));
        let mut titles: Vec<&str> = specs.iter().map(|s| s.title.as_str()).collect();
        titles.sort_unstable();
        titles.dedup();
        assert!(titles.len() >= 45, "only {} distinct titles", titles.len());
        let mut genres: Vec<Genre> = specs.iter().map(|s| s.genre).collect();
        genres.sort_unstable();
        genres.dedup();
        assert!(genres.len() >= 6);
    }
}
