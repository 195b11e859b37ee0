//! Drums: the kit's synthesis parameters, grooves and the one-bar patterns drawn from them, and
//! the kit's one-shot samples (kick sweep, snare tone + noise, high-passed hats).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;

/// The longest a drum one-shot rings, in seconds.
const MAX_DRUM_SECONDS: f64 = 1.0;

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
    pub(super) fn random(rng: &mut ChaCha8Rng) -> DrumKit {
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
    pub(super) fn random(
        rng: &mut ChaCha8Rng,
        groove: Groove,
        steps_per_bar: u32,
        full: bool,
    ) -> DrumPattern {
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

/// The one-shots of a song's kit, each peak-normalised to 1.
pub(super) struct DrumSamples {
    pub(super) kick: Vec<f32>,
    pub(super) snare: Vec<f32>,
    pub(super) hat: Vec<f32>,
    pub(super) open_hat: Vec<f32>,
}

impl DrumSamples {
    /// Synthesises `kit` at `sr` Hz; the noise (kick click, snare, hats) is drawn from `rng`.
    pub(super) fn new(kit: &DrumKit, sr: f64, rng: &mut ChaCha8Rng) -> DrumSamples {
        let k = *kit;
        let len = |decay: f64| ((decay * 6.0).min(MAX_DRUM_SECONDS) * sr).round() as usize;

        let mut phase = 0.0f64;
        let kick: Vec<f32> = (0..len(k.kick_decay_s))
            .map(|i| {
                let t = i as f64 / sr;
                let f =
                    k.kick_end_hz + (k.kick_start_hz - k.kick_end_hz) * (-t / k.kick_sweep_s).exp();
                phase += TAU * f / sr;
                let click = k.kick_click * rng.gen_range(-1.0..1.0) * (-t / 0.003).exp();
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
                let noise =
                    hp.process(rng.gen_range(-1.0..1.0), 0.5) * (-t / k.snare_noise_decay_s).exp();
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
        let hat = hat_for(k.hat_decay_s, rng);
        let open_hat = hat_for(k.open_hat_decay_s, rng);
        DrumSamples {
            kick: normalised(kick),
            snare: normalised(snare),
            hat: normalised(hat),
            open_hat: normalised(open_hat),
        }
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

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let peak = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak > 0.0 {
        v.iter_mut().for_each(|x| *x /= peak);
    }
    v
}
