//! Composition: [`SongSpec::random`] draws every choice of a song (genre, tempo, key, form,
//! instruments, mix) and writes its verse, chorus and bridge: chords, motif-based melodies, bass
//! lines, drum patterns and instrumentation.

use super::drums::{DrumKit, DrumPattern, Groove};
use super::names;
use super::theory::{
    nearest_chord_tone, Genre, Key, Note, Scale, MAJOR_PROGRESSIONS, MINOR_PROGRESSIONS,
    STEPS_PER_BEAT,
};
use super::timbre::{Family, Role, Timbre};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Bars per section are drawn from these (a section is 4 chords, one per bar or two bars each).
const SECTION_BARS: [u32; 2] = [4, 8];
/// Melodies are built from two-bar motifs, repeated with variation.
const MOTIF_BARS: u32 = 2;

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
pub(super) const PAD_LOW: i32 = 54;
pub(super) const ARP_LOW: i32 = 64;
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

    pub(super) fn steps_per_bar(&self) -> u32 {
        self.beats_per_bar * STEPS_PER_BEAT
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

#[cfg(test)]
mod tests {
    use super::*;

    const SR: u32 = 22_050;

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
    fn spec_round_trips_through_serde() {
        let spec = SongSpec::random(42, 11);
        // Through a JSON value, not text: serde_json's default text parser may be off by one ulp.
        let value = serde_json::to_value(&spec).unwrap();
        let back: SongSpec = serde_json::from_value(value).unwrap();
        assert_eq!(spec, back);
        assert!(serde_json::from_str::<SongSpec>(&serde_json::to_string(&spec).unwrap()).is_ok());
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
