//! Rendering: turns a [`SongSpec`] into samples. Wavetable oscillators through sample-domain
//! envelopes, drum one-shots on the step grid, then the mix bus (lead echo, background noise,
//! tone filter, peak normalisation).

use super::compose::{Section, SongSpec, ARP_LOW, PAD_LOW};
use super::drums::DrumSamples;
use super::theory::{chord_notes, midi_hz, Note, STEPS_PER_BEAT};
use super::timbre::{lerp, sine_table, wavetable, Adsr, Timbre, PHASE_CYCLE, PHASE_FRAC_BITS};
use crate::audio::Audio;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::{LN_2, TAU};

/// Peak level after normalisation: a little headroom, like a mastered track.
pub const PEAK_LEVEL: f32 = 0.9;

impl SongSpec {
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
        Renderer {
            spec,
            sr: sample_rate as f64,
            n,
            sine: sine_table(),
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

    /// Builds the instrument's wavetable at `midi` the first time the note is played.
    fn ensure_table(&mut self, instrument: usize, midi: u8) {
        if self.tables[instrument][midi as usize].is_some() {
            return;
        }
        let table = wavetable(self.timbre(instrument), &self.sine, midi, self.sr);
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
        let drums = DrumSamples::new(&spec.drum_kit, self.sr, &mut self.rng);
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

fn add_at(out: &mut [f32], pos: usize, sample: &[f32], gain: f32) {
    if pos >= out.len() {
        return;
    }
    for (o, s) in out[pos..].iter_mut().zip(sample) {
        *o += gain * s;
    }
}

fn rms(v: &[f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    (v.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / v.len() as f64).sqrt() as f32
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
}
