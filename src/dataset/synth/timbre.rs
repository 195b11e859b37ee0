//! Pitched instruments: the harmonic recipe of each timbre family, envelopes and modulation
//! drawn per role, and the band-limited wavetables the oscillators read.

use super::theory::midi_hz;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;

/// Samples per wavetable cycle: 2^TABLE_BITS.
const TABLE_BITS: u32 = 11;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
/// Oscillator phases are 32-bit fixed-point fractions of a cycle, so they wrap for free: the top
/// TABLE_BITS bits index the wavetable, the low PHASE_FRAC_BITS bits interpolate.
pub(super) const PHASE_FRAC_BITS: u32 = 32 - TABLE_BITS;
/// One cycle in phase units.
pub(super) const PHASE_CYCLE: f64 = 4_294_967_296.0;
/// Harmonics above this fraction of the sample rate are left out of a wavetable (anti-aliasing,
/// with margin for vibrato and detune).
const MAX_HARMONIC_FRACTION: f64 = 0.45;

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
pub(super) enum Role {
    Lead,
    Pad,
    Bass,
    Arp,
}

impl Timbre {
    pub(super) fn random(rng: &mut ChaCha8Rng, family: Family, role: Role) -> Timbre {
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

/// One cycle of a sine, TABLE_SIZE samples: the source of every harmonic, and the vibrato LFO.
pub(super) fn sine_table() -> Vec<f32> {
    (0..TABLE_SIZE)
        .map(|i| (TAU * i as f64 / TABLE_SIZE as f64).sin() as f32)
        .collect()
}

/// One cycle of the timbre's waveform at `midi` for `sr` Hz output, with harmonics above
/// MAX_HARMONIC_FRACTION × rate dropped, peak-normalised, plus the guard sample [`lerp`] reads.
/// Harmonic k at table index i is sine[(k·i) mod N]: exact, and no `sin` calls.
pub(super) fn wavetable(timbre: &Timbre, sine: &[f32], midi: u8, sr: f64) -> Vec<f32> {
    let f0 = midi_hz(midi as i32);
    let max_k = ((MAX_HARMONIC_FRACTION * sr / f0).floor() as usize).max(1);
    let mut table = vec![0.0f32; TABLE_SIZE];
    for (k0, &a) in timbre.harmonics.iter().enumerate().take(max_k) {
        let k = k0 + 1;
        if a == 0.0 {
            continue;
        }
        for (i, v) in table.iter_mut().enumerate() {
            *v += a * sine[(k * i) & (TABLE_SIZE - 1)];
        }
    }
    let peak = table.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        table.iter_mut().for_each(|v| *v /= peak);
    }
    table.push(table[0]);
    table
}

/// Wavetable lookup with linear interpolation at a fixed-point phase. Tables carry one guard
/// sample (a copy of the first) so the next index never wraps.
#[inline]
pub(super) fn lerp(table: &[f32], phase: u32) -> f32 {
    let i = (phase >> PHASE_FRAC_BITS) as usize;
    let frac =
        (phase & ((1 << PHASE_FRAC_BITS) - 1)) as f32 * (1.0 / (1u32 << PHASE_FRAC_BITS) as f32);
    let a = table[i];
    a + frac * (table[i + 1] - a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::synth::SongSpec;

    #[test]
    fn wavetables_drop_harmonics_above_nyquist_margin() {
        let spec = SongSpec::random(3, 0);
        // 1760 Hz at 8 kHz: only harmonics k with k·1760 < 3600, i.e. k ≤ 2, may remain.
        let table = wavetable(&spec.bass, &sine_table(), 93, 8000.0);
        let mut planner = realfft::RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(TABLE_SIZE);
        let mut input = table[..TABLE_SIZE].to_vec();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut input, &mut spectrum).unwrap();
        let high: f32 = spectrum[3..].iter().map(|c| c.norm()).sum();
        let low: f32 = spectrum[1..3].iter().map(|c| c.norm()).sum();
        assert!(high < 1e-3 * low, "high {high} low {low}");
    }
}
