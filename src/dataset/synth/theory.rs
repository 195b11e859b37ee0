//! Music theory: genres and their conventions, scales, keys, diatonic chords and progressions,
//! and the note event that melodies and bass lines are made of.

use super::drums::Groove;
use super::timbre::Family;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The rhythmic grid: sixteenth notes.
pub(super) const STEPS_PER_BEAT: u32 = 4;

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
    pub(super) fn style(self) -> Style {
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
pub(super) struct Style {
    pub(super) tempo: (f64, f64),
    pub(super) grooves: &'static [Groove],
    pub(super) families: &'static [Family],
    /// Delay of off-beat sixteenths, as a fraction of a step.
    pub(super) swing: (f64, f64),
    pub(super) brightness_hz: (f64, f64),
    /// Melody note lengths, in sixteenth steps.
    pub(super) note_lengths: &'static [u32],
    /// Probability of 3/4 time.
    pub(super) waltz_prob: f64,
    /// Probability that the song has drums at all.
    pub(super) drum_prob: f64,
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

    pub(super) fn is_minor(self) -> bool {
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
pub(super) const MAJOR_PROGRESSIONS: [[u8; 4]; 8] = [
    [0, 4, 5, 3],
    [5, 3, 0, 4],
    [0, 5, 3, 4],
    [1, 4, 0, 0],
    [0, 3, 4, 3],
    [0, 3, 0, 4],
    [0, 2, 3, 4],
    [3, 0, 4, 5],
];
pub(super) const MINOR_PROGRESSIONS: [[u8; 4]; 7] = [
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
    pub(super) fn midi(&self, step: i32, base_octave_midi: i32) -> i32 {
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

/// A note: position and length in sixteenth steps from the start of its section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub step: u32,
    pub len: u32,
    pub midi: u8,
    pub velocity: f32,
}

/// The scale step nearest to `step` that is the root, third or fifth of the chord on `degree`
/// (ties go down, so the choice is deterministic).
pub(super) fn nearest_chord_tone(step: i32, degree: i32) -> i32 {
    (0..=3)
        .flat_map(|d| [step - d, step + d])
        .find(|s| matches!((s - degree).rem_euclid(7), 0 | 2 | 4))
        .unwrap_or(step)
}

/// MIDI notes of the chord on `degree`, folded into the octave starting at `low`, sorted.
pub(super) fn chord_notes(key: &Key, degree: u8, seventh: bool, low: i32) -> Vec<i32> {
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

pub(super) fn midi_hz(midi: i32) -> f64 {
    440.0 * ((midi as f64 - 69.0) / 12.0).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
