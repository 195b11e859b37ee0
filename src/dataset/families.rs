//! Held-out degradation families: generators whose *algorithms* differ from those of
//! [`super::degrade`], so a model trained with degrade.rs augmentations can be tested on
//! conditions it has never seen the exact form of (not just new parameters of the same filter).
//!
//! | family       | degrade.rs                                | here                                         |
//! |--------------|-------------------------------------------|----------------------------------------------|
//! | band-limit   | 4th-order Butterworth biquads (IIR)       | [`fir_band_pass`]: linear-phase windowed sinc |
//! | speech codec | 8-bit μ-law at 8 kHz (memoryless)         | [`ima_adpcm_round_trip`] (adaptive, 4 bit), [`codec_round_trip`] (GSM, Opus via ffmpeg) |
//! | room         | exponential-decay Gaussian noise          | [`ShoeboxRoom`] (image method), [`schroeder_impulse_response`] (comb/all-pass) |
//! | noise        | white, pink (Voss-McCartney)              | [`babble`] (formant-synthesised talkers), [`brown_noise`] |
//! | dynamics     | none                                      | [`compress`]                                  |
//!
//! Every function is pure: random choices come only from the `rng` passed in, and no input
//! (empty, silent, odd sample rates) panics.

use super::degrade::rms;
use crate::audio::resample::resample;
use crate::error::DatasetError;
use rand::Rng;
use rand_distr::StandardNormal;
use std::f64::consts::{PI, TAU};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// FIR band-pass
// ---------------------------------------------------------------------------------------------

/// Taps of the band-pass at 22050 Hz; scaled with the sample rate so the transition width in Hz
/// (≈ 5.5 · sr / taps for a Blackman window, 240 Hz here) does not depend on the rate.
const FIR_TAPS_AT_22050: f64 = 511.0;
/// Bounds on the tap count: a usable filter at tiny rates, a bounded cost at huge ones.
const FIR_TAPS_RANGE: std::ops::RangeInclusive<usize> = 31..=16_383;

/// Linear-phase band-pass `low_hz`–`high_hz`: a windowed-sinc FIR (Blackman window, odd tap
/// count, ≈ 511 taps at 22050 Hz), applied by FFT convolution with its group delay removed, so
/// the output is aligned with the input and has its length.
///
/// Unlike degrade.rs's Butterworth biquads it has no phase distortion and a much steeper,
/// ripple-free skirt (≈ 74 dB stopband) but a flat-topped passband with no −3 dB corner at the
/// edges. `low_hz ≤ 0` makes it a low-pass, `high_hz ≥ Nyquist` a high-pass; an empty band
/// (including NaN edges or a zero sample rate) gives silence.
pub fn fir_band_pass(x: &[f32], sample_rate: u32, low_hz: f64, high_hz: f64) -> Vec<f32> {
    let sr = sample_rate as f64;
    let nyquist = sr / 2.0;
    let low = low_hz.max(0.0);
    let high = high_hz.min(nyquist);
    // Not `low >= high`: NaN edges must give an empty band too.
    let band = low < high;
    if !band || x.is_empty() {
        return vec![0.0; x.len()];
    }
    let taps = fir_taps(sample_rate);
    let h = windowed_sinc_band_pass(taps, low / sr, high / sr);
    let full = fft_convolve(x, &h);
    // Linear phase: the filter delays everything by (taps − 1) / 2 samples.
    let delay = (taps - 1) / 2;
    full[delay..delay + x.len()].to_vec()
}

/// Odd tap count for `sample_rate` (see [`FIR_TAPS_AT_22050`]).
fn fir_taps(sample_rate: u32) -> usize {
    let n = (FIR_TAPS_AT_22050 * sample_rate as f64 / 22_050.0).round() as usize;
    n.clamp(*FIR_TAPS_RANGE.start(), *FIR_TAPS_RANGE.end()) | 1
}

/// Ideal band-pass impulse response (difference of two low-pass sincs), cut to `taps` (odd) and
/// shaped by a Blackman window. Edges are in cycles per sample (0..=0.5).
fn windowed_sinc_band_pass(taps: usize, f_low: f64, f_high: f64) -> Vec<f64> {
    let mid = (taps - 1) / 2;
    let span = (taps - 1) as f64;
    (0..taps)
        .map(|n| {
            let m = n as f64 - mid as f64;
            let ideal = if n == mid {
                2.0 * (f_high - f_low)
            } else {
                ((TAU * f_high * m).sin() - (TAU * f_low * m).sin()) / (PI * m)
            };
            let t = n as f64 / span;
            let window = 0.42 - 0.5 * (TAU * t).cos() + 0.08 * (2.0 * TAU * t).cos();
            ideal * window
        })
        .collect()
}

/// Full linear convolution `x * h` (length `x.len() + h.len() − 1`) by FFT, in f64 so a 74 dB
/// stopband is not lost to rounding. Unlike [`super::degrade::convolve_keep_loudness`] it keeps
/// the filter's gain and the tail.
fn fft_convolve(x: &[f32], h: &[f64]) -> Vec<f32> {
    if x.is_empty() || h.is_empty() {
        return Vec::new();
    }
    let full = x.len() + h.len() - 1;
    let n = full.next_power_of_two();
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(n);
    let inverse = planner.plan_fft_inverse(n);
    let spectrum = |v: &mut dyn Iterator<Item = f64>| {
        let mut buf = forward.make_input_vec();
        buf.iter_mut().zip(v).for_each(|(b, s)| *b = s);
        let mut out = forward.make_output_vec();
        forward
            .process(&mut buf, &mut out)
            .expect("buffers come from the plan");
        out
    };
    let mut spec = spectrum(&mut x.iter().map(|&s| s as f64));
    for (a, b) in spec.iter_mut().zip(spectrum(&mut h.iter().copied())) {
        *a *= b;
    }
    // A real signal's spectrum: DC and Nyquist bins are real up to rounding.
    spec[0].im = 0.0;
    if let Some(last) = spec.last_mut() {
        last.im = 0.0;
    }
    let mut y = inverse.make_output_vec();
    inverse
        .process(&mut spec, &mut y)
        .expect("buffers come from the plan");
    // realfft's inverse is unnormalised.
    let scale = 1.0 / n as f64;
    y[..full].iter().map(|&v| (v * scale) as f32).collect()
}

// ---------------------------------------------------------------------------------------------
// IMA ADPCM
// ---------------------------------------------------------------------------------------------

/// IMA/DVI ADPCM quantizer step sizes (the standard 89 entries).
const IMA_STEPS: [i32; 89] = [
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66,
    73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408, 449,
    494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272,
    2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493,
    10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794, 32767,
];

/// Step-index change for each 4-bit code (the sign bit does not matter).
const IMA_INDEX_ADJUST: [i32; 16] = [-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8];

/// The state both ends of an IMA ADPCM channel track: the predicted sample and the step index.
#[derive(Debug, Clone, Copy, Default)]
struct ImaState {
    predictor: i32,
    index: i32,
}

impl ImaState {
    /// Decodes one 4-bit code (sign bit 8, magnitude bits 4/2/1 in steps of 1, ½, ¼ of the
    /// step, plus ⅛ step) and advances the state; returns the reconstructed sample.
    fn decode(&mut self, code: u8) -> i16 {
        let step = IMA_STEPS[self.index as usize];
        let mut diff = step >> 3;
        if code & 4 != 0 {
            diff += step;
        }
        if code & 2 != 0 {
            diff += step >> 1;
        }
        if code & 1 != 0 {
            diff += step >> 2;
        }
        self.predictor = if code & 8 != 0 {
            self.predictor - diff
        } else {
            self.predictor + diff
        }
        .clamp(i16::MIN as i32, i16::MAX as i32);
        self.index = (self.index + IMA_INDEX_ADJUST[code as usize & 15]).clamp(0, 88);
        self.predictor as i16
    }

    /// The code whose reconstruction is closest to `sample` from this state (the standard
    /// successive-approximation encoder), then advances the state exactly as the decoder does.
    fn encode(&mut self, sample: i16) -> u8 {
        let step = IMA_STEPS[self.index as usize];
        let mut diff = sample as i32 - self.predictor;
        let mut code = 0u8;
        if diff < 0 {
            code = 8;
            diff = -diff;
        }
        let mut bit_step = step;
        for bit in [4u8, 2, 1] {
            if diff >= bit_step {
                code |= bit;
                diff -= bit_step;
            }
            bit_step >>= 1;
        }
        self.decode(code);
        code
    }
}

/// Round trip through IMA/DVI ADPCM (4 bits per sample, standard step and index tables): the
/// input is clipped to [-1, 1], scaled to 16 bits, encoded to 4-bit codes, and the codes are
/// decoded by a separate decoder state. Works at the caller's sample rate (resample first for
/// an 8 kHz channel). Non-finite samples are coded as 0.
///
/// Unlike μ-law (memoryless, a fixed logarithmic quantizer per sample) ADPCM codes the
/// *prediction error* with a step size that adapts to the signal, so its noise follows the
/// signal's recent level and it smears transients (slope overload) over a few samples.
pub fn ima_adpcm_round_trip(x: &[f32]) -> Vec<f32> {
    let mut encoder = ImaState::default();
    let codes: Vec<u8> = x
        .iter()
        .map(|&s| {
            let s = if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            };
            encoder.encode((s * i16::MAX as f32).round() as i16)
        })
        .collect();
    let mut decoder = ImaState::default();
    codes
        .into_iter()
        .map(|c| decoder.decode(c) as f32 / i16::MAX as f32)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Image-method room
// ---------------------------------------------------------------------------------------------

/// Speed of sound in air at ~20 °C, m/s.
const SPEED_OF_SOUND: f64 = 343.0;
/// Longest image-method response, seconds: bounds the image count (≈ 4/3·π·(c·t)³ / V, some
/// 10⁵–10⁶ images for a living room) whatever `rt60_s` is.
pub const MAX_RIR_S: f64 = 0.6;
/// Largest image order per axis: only rooms far smaller than [`ShoeboxRoom::draw`]'s (whose
/// orders stay below 90 at [`MAX_RIR_S`]) reach it; it keeps their cost bounded.
const MAX_IMAGE_ORDER: i64 = 100;
/// Corner of the high-pass that removes the image method's DC build-up, Hz.
const IR_HIGH_PASS_HZ: f64 = 100.0;

/// A rectangular ("shoebox") room with a point source and a microphone, for the image method
/// of Allen & Berkley (1979): every wall reflection is an image source mirrored through the
/// walls, so the response has the room's real geometry — a direct path at the true distance,
/// early reflections at the delays the walls give, and a tail whose echo density grows with
/// time — where degrade.rs's synthetic room is Gaussian noise under an exponential envelope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShoeboxRoom {
    /// Length, width, height in metres.
    pub size_m: [f64; 3],
    /// Source position in metres, from the room's corner at the origin.
    pub source_m: [f64; 3],
    /// Microphone position in metres.
    pub mic_m: [f64; 3],
    /// Reverberation time (T20 of the response) the wall absorption is chosen for, seconds.
    pub rt60_s: f64,
}

/// Ranges of [`ShoeboxRoom::draw`]: a living room, the loudspeaker and the phone inside it.
const ROOM_SIZE_M: [std::ops::Range<f64>; 3] = [3.0..8.0, 3.0..6.0, 2.4..3.5];
const WALL_CLEARANCE_M: f64 = 0.5;
const MIC_DISTANCE_M: std::ops::RangeInclusive<f64> = 1.0..=4.0;

impl ShoeboxRoom {
    /// A random living-room-sized room (3–8 × 3–6 × 2.4–3.5 m), source and mic inside, ≥ 0.5 m
    /// from the walls and 1–4 m apart, with walls absorbing enough for `rt60_s`.
    pub fn draw(rt60_s: f64, rng: &mut impl Rng) -> Self {
        let size_m = ROOM_SIZE_M.map(|r| rng.gen_range(r));
        let source_m = inner_point(size_m, rng);
        // Rejection sampling nearly always succeeds at once (the smallest room's inner box has
        // a 3.1 m diagonal); the bounded fallback keeps the draw finite whatever happens.
        let mut mic_m = inner_point(size_m, rng);
        for _ in 0..1000 {
            if MIC_DISTANCE_M.contains(&distance(source_m, mic_m)) {
                break;
            }
            mic_m = inner_point(size_m, rng);
        }
        if !MIC_DISTANCE_M.contains(&distance(source_m, mic_m)) {
            mic_m = fallback_mic(size_m, source_m);
        }
        Self {
            size_m,
            source_m,
            mic_m,
            rt60_s,
        }
    }

    fn is_valid(&self) -> bool {
        (0..3).all(|i| {
            let l = self.size_m[i];
            l.is_finite()
                && l > 0.0
                && (0.0..=l).contains(&self.source_m[i])
                && (0.0..=l).contains(&self.mic_m[i])
        })
    }

    /// Calls `f(distance, reflections)` for every image source within `max_dist` of the mic.
    /// Image n along an axis of length l sits at n·l + s for even n and (n + 1)·l − s for odd
    /// n, after |n| reflections (Allen & Berkley's p, m indices folded into one integer).
    fn for_each_image(&self, max_dist: f64, mut f: impl FnMut(f64, i32)) {
        let images = |axis: usize| {
            let (l, s, m) = (self.size_m[axis], self.source_m[axis], self.mic_m[axis]);
            let order = ((max_dist / l).ceil() as i64 + 1).min(MAX_IMAGE_ORDER);
            (-order..=order).map(move |n| {
                let pos = if n % 2 == 0 {
                    n as f64 * l + s
                } else {
                    (n + 1) as f64 * l - s
                };
                (pos - m, n.unsigned_abs() as i32)
            })
        };
        let max_sq = max_dist * max_dist;
        // Pruned axis by axis, so the work is the images in the sphere, not its bounding cube.
        for (dx, rx) in images(0) {
            if dx * dx > max_sq {
                continue;
            }
            for (dy, ry) in images(1) {
                let dxy = dx * dx + dy * dy;
                if dxy > max_sq {
                    continue;
                }
                for (dz, rz) in images(2) {
                    let d2 = dxy + dz * dz;
                    if d2 <= max_sq {
                        f(d2.sqrt().max(1e-3), rx + ry + rz);
                    }
                }
            }
        }
    }

    /// The wall reflection coefficient β (all six walls alike) whose image-method response
    /// decays with a T20 of `rt60_s`, found by bisection on the response's energy decay.
    ///
    /// Why not Sabine's β (RT60 = 0.161·V/(S·α), α = 1 − β²): measured on this image method, it
    /// gives T20s 1.2–1.6 times the target for living rooms, because an image model with uniform
    /// walls is not diffuse — paths along the longest axis hit few walls and dominate the late
    /// decay (Lehmann & Johansson 2008 report the same). Sabine's formula is still the model of
    /// the absorption; only its number is corrected so `rt60_s` means what it says.
    fn reflection_coefficient(&self, max_dist: f64) -> f64 {
        let valid = self.rt60_s > 0.0 && self.rt60_s.is_finite();
        if !valid {
            return 0.0;
        }
        // Energy per (reflection count, 5 ms bin): the response's energy decay for any β is a
        // weighted sum of this table, so bisection costs no further pass over the images.
        const BIN_S: f64 = 0.005;
        let bins = (max_dist / SPEED_OF_SOUND / BIN_S) as usize + 1;
        let max_k = 3 * MAX_IMAGE_ORDER as usize + 3;
        let mut table = vec![0f64; (max_k + 1) * bins];
        let mut used_k = 0;
        self.for_each_image(max_dist, |d, k| {
            let k = k as usize;
            let bin = ((d / SPEED_OF_SOUND / BIN_S) as usize).min(bins - 1);
            table[k * bins + bin] += 1.0 / (d * d);
            used_k = used_k.max(k);
        });
        let t20 = |beta: f64| {
            let mut energy = vec![0f64; bins];
            let b2 = beta * beta;
            let mut w = 1.0;
            for k in 0..=used_k {
                for (e, t) in energy.iter_mut().zip(&table[k * bins..(k + 1) * bins]) {
                    *e += w * t;
                }
                w *= b2;
            }
            edc_t20(&energy, BIN_S)
        };
        let (mut lo, mut hi) = (0.0, 1.0);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            // A decay that never reaches −25 dB in the window is too long.
            if t20(mid).is_some_and(|t| t < self.rt60_s) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Impulse response at `sample_rate`: every image source whose delay is at most
    /// `min(rt60_s, MAX_RIR_S)` (and never less than the direct path's), with amplitude
    /// β^(reflections) / distance, the fractional delay split linearly between the two nearest
    /// samples, scaled so the direct path's two taps sum to 1. β is calibrated so the response
    /// decays with a T20 of `rt60_s` (Sabine's β would decay 1.2–1.6 times too slowly in this
    /// model: see `reflection_coefficient`), and the response is high-passed at 100 Hz as Allen
    /// & Berkley do, removing the DC build-up of in-phase images. The direct path arrives at
    /// `distance / 343 · sample_rate` samples: the response carries the propagation delay.
    ///
    /// A room whose positions are outside it or not finite, or a zero sample rate, gives `[1.0]`
    /// (no room); a non-positive or NaN `rt60_s` gives the direct path alone.
    pub fn impulse_response(&self, sample_rate: u32) -> Vec<f32> {
        if !self.is_valid() || sample_rate == 0 {
            return vec![1.0];
        }
        let sr = sample_rate as f64;
        let direct = distance(self.source_m, self.mic_m).max(1e-3);
        let t_max = if self.rt60_s.is_finite() {
            self.rt60_s.clamp(0.0, MAX_RIR_S)
        } else {
            0.0
        };
        let t_len = t_max.max(direct / SPEED_OF_SOUND);
        let max_dist = t_len * SPEED_OF_SOUND;
        let beta = self.reflection_coefficient(max_dist);
        let len = (t_len * sr).floor() as usize + 2;
        let mut h = vec![0f64; len];
        self.for_each_image(max_dist, |d, reflections| {
            let amplitude = if reflections == 0 {
                direct / d
            } else {
                beta.powi(reflections) * direct / d
            };
            let delay = d / SPEED_OF_SOUND * sr;
            let i = delay.floor() as usize;
            let frac = delay - i as f64;
            if amplitude > 0.0 && i + 1 < len {
                h[i] += amplitude * (1.0 - frac);
                h[i + 1] += amplitude * frac;
            }
        });
        // All images add in phase at low frequencies, a DC build-up that lengthens the decay;
        // Allen & Berkley remove it with a high-pass, so do we (two DC blockers).
        let r = (-TAU * IR_HIGH_PASS_HZ / sr).exp();
        for _ in 0..2 {
            let (mut x1, mut y1) = (0.0, 0.0);
            for v in h.iter_mut() {
                let y = *v - x1 + r * y1;
                x1 = *v;
                y1 = y;
                *v = y;
            }
        }
        h.into_iter().map(|v| v as f32).collect()
    }
}

/// T20 of an energy envelope sampled every `step` seconds: Schroeder backward integration, the
/// time from −5 to −25 dB (linearly interpolated between samples) times 3. `None` when the
/// decay does not reach −25 dB or there is no energy.
fn edc_t20(energy: &[f64], step: f64) -> Option<f64> {
    let mut acc = 0.0;
    let mut edc: Vec<f64> = energy
        .iter()
        .rev()
        .map(|e| {
            acc += e;
            acc
        })
        .collect();
    edc.reverse();
    let total = *edc.first()?;
    if total <= 0.0 {
        return None;
    }
    let level = |i: usize| 10.0 * (edc[i] / total).log10();
    let crossing = |target: f64| {
        let i = (1..edc.len()).find(|&i| level(i) < target)?;
        let (a, b) = (level(i - 1), level(i));
        let frac = if b.is_finite() && a > b {
            (a - target) / (a - b)
        } else {
            0.0
        };
        Some((i as f64 - 1.0 + frac) * step)
    };
    Some(3.0 * (crossing(-25.0)? - crossing(-5.0)?))
}

/// A uniform point of the room at least [`WALL_CLEARANCE_M`] from every wall.
fn inner_point(size: [f64; 3], rng: &mut impl Rng) -> [f64; 3] {
    size.map(|l| {
        let (lo, hi) = (WALL_CLEARANCE_M, l - WALL_CLEARANCE_M);
        // An empty range only for rooms narrower than 1 m, which `draw` never makes.
        if lo < hi {
            rng.gen_range(lo..hi)
        } else {
            l / 2.0
        }
    })
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt()
}

/// A mic 2.5 m (or as far as possible) from the source towards the farthest inner corner: that
/// corner is ≥ 1.5 m away in any room [`ShoeboxRoom::draw`] makes, and the segment stays inside.
fn fallback_mic(size: [f64; 3], source: [f64; 3]) -> [f64; 3] {
    let corner: [f64; 3] = std::array::from_fn(|i| {
        if source[i] < size[i] / 2.0 {
            size[i] - WALL_CLEARANCE_M
        } else {
            WALL_CLEARANCE_M
        }
    });
    let d = distance(source, corner);
    let t = if d > 0.0 { (2.5 / d).min(1.0) } else { 0.0 };
    std::array::from_fn(|i| source[i] + t * (corner[i] - source[i]))
}

// ---------------------------------------------------------------------------------------------
// Schroeder reverberator
// ---------------------------------------------------------------------------------------------

/// Delays of Schroeder's four parallel comb filters, ms: mutually prime-ish so their echoes
/// do not pile up on common multiples.
const COMB_DELAYS_MS: [f64; 4] = [29.7, 37.1, 41.1, 43.7];
/// Delays of the two series all-pass filters, ms, and their gain.
const ALLPASS_DELAYS_MS: [f64; 2] = [5.0, 1.7];
const ALLPASS_GAIN: f64 = 0.7;
/// Longest reverberator response, seconds (the response is `rt60_s` long).
const MAX_SCHROEDER_RT60_S: f64 = 10.0;

/// Impulse response of Schroeder's reverberator (1962): four parallel feedback combs (delays
/// 29.7/37.1/41.1/43.7 ms, gains g = 10^(−3·delay/rt60) so each decays 60 dB in `rt60_s`) into
/// two series all-passes (5.0 and 1.7 ms, g = 0.7), driven by a unit impulse for `rt60_s`
/// seconds. The wet part is scaled to unit energy and a unit direct path is put at sample 0
/// (direct-to-reverberant ratio 0 dB, as in degrade.rs).
///
/// Its tail is a deterministic, periodic-ish echo pattern with audible flutter, not
/// degrade.rs's Gaussian noise. `rt60_s` is clamped to 10 s; a non-positive or NaN `rt60_s`
/// or a zero sample rate gives `[1.0]` (no reverb).
pub fn schroeder_impulse_response(rt60_s: f64, sample_rate: u32) -> Vec<f32> {
    // Not `rt60_s <= 0.0`: NaN must land here too.
    let reverberant = rt60_s > 0.0;
    if !reverberant || sample_rate == 0 {
        return vec![1.0];
    }
    let rt60 = rt60_s.min(MAX_SCHROEDER_RT60_S);
    let sr = sample_rate as f64;
    let len = ((rt60 * sr).ceil() as usize).max(1);
    let delay = |ms: f64| ((ms / 1000.0 * sr).round() as usize).max(1);
    let mut impulse = vec![0f64; len];
    impulse[0] = 1.0;
    let mut wet = vec![0f64; len];
    for ms in COMB_DELAYS_MS {
        let d = delay(ms);
        // The gain of the delay actually used (rounded to samples).
        let g = 10f64.powf(-3.0 * d as f64 / sr / rt60);
        for (o, v) in comb(&impulse, d, g).into_iter().enumerate() {
            wet[o] += v;
        }
    }
    for ms in ALLPASS_DELAYS_MS {
        wet = all_pass(&wet, delay(ms), ALLPASS_GAIN);
    }
    let energy: f64 = wet.iter().map(|v| v * v).sum();
    let g = if energy > 0.0 {
        energy.sqrt().recip()
    } else {
        0.0
    };
    let mut h: Vec<f32> = wet.into_iter().map(|v| (v * g) as f32).collect();
    h[0] += 1.0;
    h
}

/// Feedback comb with the delay in the loop: y[n] = x[n − d] + g·y[n − d].
fn comb(x: &[f64], d: usize, g: f64) -> Vec<f64> {
    let mut y = vec![0f64; x.len()];
    for n in d..x.len() {
        y[n] = x[n - d] + g * y[n - d];
    }
    y
}

/// Schroeder all-pass: y[n] = −g·x[n] + x[n − d] + g·y[n − d] (flat magnitude, smeared phase).
fn all_pass(x: &[f64], d: usize, g: f64) -> Vec<f64> {
    let mut y = vec![0f64; x.len()];
    for n in 0..x.len() {
        y[n] = -g * x[n];
        if n >= d {
            y[n] += x[n - d] + g * y[n - d];
        }
    }
    y
}

// ---------------------------------------------------------------------------------------------
// Babble
// ---------------------------------------------------------------------------------------------

/// Vowel formants F1/F2/F3 in Hz (Peterson & Barney averages, male): /a/ /i/ /u/ /e/ /o/.
const VOWELS_HZ: [[f64; 3]; 5] = [
    [730.0, 1090.0, 2440.0],
    [270.0, 2290.0, 3010.0],
    [300.0, 870.0, 2240.0],
    [530.0, 1840.0, 2480.0],
    [570.0, 840.0, 2410.0],
];
/// Formant bandwidths, Hz (typical values of Klatt's synthesiser).
const FORMANT_BW_HZ: [f64; 3] = [80.0, 100.0, 150.0];
/// Syllable length (≈ 4 syllables per second) and pauses between phrases.
const SYLLABLE_S: std::ops::Range<f64> = 0.15..0.30;
const PAUSE_S: std::ops::Range<f64> = 0.15..0.5;
const PAUSE_PROBABILITY: f64 = 0.15;
/// Formants glide to the next vowel's with this time constant (coarticulation), seconds.
const FORMANT_GLIDE_S: f64 = 0.03;
/// Fundamental frequency range of the talkers (men to children), Hz, and the intonation drift.
const F0_HZ: std::ops::Range<f64> = 90.0..250.0;
const F0_DRIFT: f64 = 0.08;
const F0_DRIFT_RATE_HZ: std::ops::Range<f64> = 0.15..0.5;

/// Multi-talker babble by formant synthesis: each of `talkers` voices is a Rosenberg glottal
/// pulse train (f0 drawn in 90–250 Hz, ±8 % slow intonation drift) differentiated for lip
/// radiation, through a cascade of three two-pole resonators at F1/F2/F3 whose targets switch
/// vowel (/a/ /i/ /u/ /e/ /o/) every 150–300 ms syllable and glide there with a 30 ms time
/// constant, under a sin² syllable envelope (≈ 4 Hz) with random stress and occasional pauses.
/// Talkers are normalised to the same RMS, summed, and made zero mean; the result is unscaled
/// (the caller sets the SNR).
///
/// degrade.rs's noises are stationary with a smooth spectrum; babble is speech-shaped,
/// harmonic and strongly modulated, the classic hard case for recognisers. `talkers = 0` or a
/// zero sample rate gives silence.
pub fn babble(len: usize, sample_rate: u32, talkers: usize, rng: &mut impl Rng) -> Vec<f32> {
    let mut sum = vec![0f64; len];
    if sample_rate == 0 {
        return vec![0.0; len];
    }
    for _ in 0..talkers {
        let voice = talker(len, sample_rate as f64, rng);
        let level = (voice.iter().map(|v| v * v).sum::<f64>() / len.max(1) as f64).sqrt();
        if level > 0.0 {
            sum.iter_mut()
                .zip(&voice)
                .for_each(|(s, v)| *s += v / level);
        }
    }
    let mean = sum.iter().sum::<f64>() / len.max(1) as f64;
    sum.into_iter().map(|v| (v - mean) as f32).collect()
}

/// One stretch of a talker's timeline: a voiced syllable or a pause.
struct Segment {
    start: f64,
    len: f64,
    /// Peak amplitude (0 for a pause) and vowel.
    gain: f64,
    vowel: usize,
}

/// One synthetic talker, `len` samples (see [`babble`]).
fn talker(len: usize, sr: f64, rng: &mut impl Rng) -> Vec<f64> {
    let f0 = rng.gen_range(F0_HZ);
    let drift_rate = rng.gen_range(F0_DRIFT_RATE_HZ);
    let drift_phase = rng.gen_range(0.0..TAU);
    // The timeline: starts mid-syllable so talkers are not in step.
    let mut segments = Vec::new();
    let mut t = -rng.gen_range(0.0..SYLLABLE_S.end) * sr;
    let mut vowel = rng.gen_range(0..VOWELS_HZ.len());
    while t < len as f64 {
        let (seconds, gain) = if rng.gen_bool(PAUSE_PROBABILITY) {
            (rng.gen_range(PAUSE_S), 0.0)
        } else {
            // A new vowel each syllable (never the same twice, so formants always move).
            vowel = (vowel + rng.gen_range(1..VOWELS_HZ.len())) % VOWELS_HZ.len();
            (rng.gen_range(SYLLABLE_S), rng.gen_range(0.5..1.0))
        };
        let seg_len = (seconds * sr).max(1.0);
        segments.push(Segment {
            start: t,
            len: seg_len,
            gain,
            vowel,
        });
        t += seg_len;
    }
    let glide = 1.0 - (-1.0 / (FORMANT_GLIDE_S * sr)).exp();
    let mut formants = VOWELS_HZ[segments.first().map_or(0, |s| s.vowel)];
    let mut resonators = [Resonator::default(); 3];
    let (mut phase, mut prev_flow) = (rng.gen_range(0.0..1.0), 0.0);
    let mut seg = 0;
    (0..len)
        .map(|n| {
            let n = n as f64;
            while seg + 1 < segments.len() && n >= segments[seg].start + segments[seg].len {
                seg += 1;
            }
            let s = &segments[seg];
            let envelope = s.gain * (PI * ((n - s.start) / s.len).clamp(0.0, 1.0)).sin().powi(2);
            for (f, target) in formants.iter_mut().zip(VOWELS_HZ[s.vowel]) {
                *f += (target - *f) * glide;
            }
            let pitch = f0 * (1.0 + F0_DRIFT * (TAU * drift_rate * n / sr + drift_phase).sin());
            phase = (phase + pitch / sr).fract();
            let flow = rosenberg_pulse(phase);
            // Lip radiation: a first difference of the glottal flow.
            let mut v = envelope * (flow - prev_flow);
            prev_flow = flow;
            for ((r, &f), bw) in resonators.iter_mut().zip(&formants).zip(FORMANT_BW_HZ) {
                v = r.run(v, f, bw, sr);
            }
            v
        })
        .collect()
}

/// Rosenberg's glottal flow pulse over one period (`phase` in [0, 1)): a raised-cosine opening
/// over 40 % of the period, a quarter-cosine closing over 16 %, then closed.
fn rosenberg_pulse(phase: f64) -> f64 {
    const OPEN: f64 = 0.40;
    const CLOSE: f64 = 0.16;
    if phase < OPEN {
        0.5 * (1.0 - (PI * phase / OPEN).cos())
    } else if phase < OPEN + CLOSE {
        (PI / 2.0 * (phase - OPEN) / CLOSE).cos()
    } else {
        0.0
    }
}

/// Klatt's two-pole resonator y[n] = a·x[n] + b·y[n−1] + c·y[n−2] with unity gain at DC; its
/// coefficients follow the gliding formant every sample.
#[derive(Debug, Clone, Copy, Default)]
struct Resonator {
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn run(&mut self, x: f64, freq: f64, bandwidth: f64, sr: f64) -> f64 {
        let r = (-PI * bandwidth / sr).exp();
        let b = 2.0 * r * (TAU * freq / sr).cos();
        let c = -r * r;
        let a = 1.0 - b - c;
        let y = a * x + b * self.y1 + c * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

// ---------------------------------------------------------------------------------------------
// Brown noise
// ---------------------------------------------------------------------------------------------

/// Pole of the leaky integrator: −3 dB corner at (1 − p)·sr/2π ≈ 17 Hz at 22050 Hz, so the
/// −6 dB/octave slope covers the audible band while the output stays bounded.
const BROWN_POLE: f64 = 0.995;

/// Brown (red) noise: white Gaussian noise through a leaky integrator y[n] = p·y[n−1] + w[n]
/// (p = 0.995), started from its stationary distribution so there is no start-up transient,
/// then made zero mean. Unscaled. Its −6 dB/octave spectrum (rumble, traffic, wind) is steeper
/// than degrade.rs's pink (−3 dB/octave) and white noise.
pub fn brown_noise(len: usize, rng: &mut impl Rng) -> Vec<f32> {
    let stationary_sd = (1.0 - BROWN_POLE * BROWN_POLE).sqrt().recip();
    let mut y = rng.sample::<f64, _>(StandardNormal) * stationary_sd;
    let n: Vec<f64> = (0..len)
        .map(|_| {
            y = BROWN_POLE * y + rng.sample::<f64, _>(StandardNormal);
            y
        })
        .collect();
    let mean = n.iter().sum::<f64>() / len.max(1) as f64;
    n.into_iter().map(|v| (v - mean) as f32).collect()
}

// ---------------------------------------------------------------------------------------------
// Dynamic range compression
// ---------------------------------------------------------------------------------------------

/// Time constants of the compressor's level detector, seconds.
const ATTACK_S: f64 = 0.005;
const RELEASE_S: f64 = 0.100;

/// Feed-forward dynamic range compressor, in place: an RMS level detector (power smoothed
/// with a 5 ms attack and 100 ms release), a gain computer that reduces every dB above
/// `threshold_db` to 1/`ratio` dB, and make-up gain so the output RMS equals the input RMS.
/// The threshold is relative to the buffer's own RMS, so quiet and loud recordings are
/// compressed alike. A phone's automatic gain control or a broadcast chain does this; nothing
/// in degrade.rs changes the dynamics.
///
/// `ratio ≤ 1` or NaN, a NaN threshold, and a silent buffer leave `x` as it is.
pub fn compress(x: &mut [f32], sample_rate: u32, threshold_db: f64, ratio: f64) {
    let input_rms = rms(x);
    let compresses = ratio > 1.0 && !threshold_db.is_nan();
    let audible = input_rms > 0.0 && input_rms.is_finite();
    if !compresses || !audible {
        return;
    }
    let sr = sample_rate as f64;
    // One-pole smoothing coefficients; a zero sample rate makes them 1 (no smoothing).
    let coeff = |tau: f64| 1.0 - (-1.0 / (tau * sr)).exp();
    let (attack, release) = (coeff(ATTACK_S), coeff(RELEASE_S));
    let threshold = 20.0 * input_rms.log10() + threshold_db;
    let slope = 1.0 - 1.0 / ratio;
    let mut power = input_rms * input_rms;
    for s in x.iter_mut() {
        let p = *s as f64 * *s as f64;
        power += (p - power) * if p > power { attack } else { release };
        let level = 10.0 * power.max(1e-30).log10();
        let gain_db = -(level - threshold).max(0.0) * slope;
        *s = (*s as f64 * 10f64.powf(gain_db / 20.0)) as f32;
    }
    let output_rms = rms(x);
    if output_rms > 0.0 {
        let makeup = input_rms / output_rms;
        x.iter_mut().for_each(|s| *s = (*s as f64 * makeup) as f32);
    }
}

// ---------------------------------------------------------------------------------------------
// External codecs (ffmpeg)
// ---------------------------------------------------------------------------------------------

/// A speech codec run through ffmpeg: real, standardised codecs with their own (model-based)
/// artefacts, which no hand-written quantizer here imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExternalCodec {
    /// GSM 06.10 full rate (13 kbit/s, RPE-LTP), via libgsm.
    Gsm,
    /// Opus at 12 kbit/s in VoIP mode (SILK at 8 kHz), via libopus.
    Opus,
}

impl ExternalCodec {
    /// Short lowercase name: "gsm" or "opus".
    pub fn name(self) -> &'static str {
        match self {
            ExternalCodec::Gsm => "gsm",
            ExternalCodec::Opus => "opus",
        }
    }

    /// ffmpeg's encoder for this codec.
    fn encoder(self) -> &'static str {
        match self {
            ExternalCodec::Gsm => "libgsm",
            ExternalCodec::Opus => "libopus",
        }
    }

    /// Encoder options and the container the encoded bytes travel in.
    fn encode_args(self) -> &'static [&'static str] {
        match self {
            ExternalCodec::Gsm => &["-c:a", "libgsm", "-f", "gsm"],
            ExternalCodec::Opus => &[
                "-c:a",
                "libopus",
                "-b:a",
                "12k",
                "-application",
                "voip",
                "-f",
                "ogg",
            ],
        }
    }

    fn container(self) -> &'static str {
        match self {
            ExternalCodec::Gsm => "gsm",
            ExternalCodec::Opus => "ogg",
        }
    }
}

/// The rate both codecs run at (GSM only supports 8 kHz).
const CODEC_RATE_HZ: u32 = 8_000;

const FFMPEG: &str = "ffmpeg";
const FFMPEG_MISSING: &str =
    "ffmpeg is not on PATH; install it (Debian: apt-get install ffmpeg) or leave out the conditions that need it";

/// What a probe found out about an ffmpeg binary: its encoder list.
#[derive(Debug)]
struct FfmpegProbe {
    encoders: String,
}

/// Runs `program -version` and, if that works, `program -hide_banner -encoders`.
fn probe(program: &str) -> Option<FfmpegProbe> {
    let works = Command::new(program)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        return None;
    }
    let encoders = Command::new(program)
        .args(["-hide_banner", "-encoders"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    Some(FfmpegProbe { encoders })
}

/// The probe of the `ffmpeg` on PATH, run once per process.
fn ffmpeg_probe() -> Option<&'static FfmpegProbe> {
    static PROBE: OnceLock<Option<FfmpegProbe>> = OnceLock::new();
    PROBE.get_or_init(|| probe(FFMPEG)).as_ref()
}

/// Whether an `-encoders` listing (lines like ` A....D libgsm  libgsm GSM (codec gsm)`) has
/// the encoder `name`.
fn lists_encoder(encoders: &str, name: &str) -> bool {
    encoders
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(name))
}

/// Whether ffmpeg is on PATH (it runs `ffmpeg -version` once per process, cached) and has this
/// codec's encoder (libgsm, libopus) in `ffmpeg -hide_banner -encoders`.
pub fn ffmpeg_has(codec: ExternalCodec) -> bool {
    ffmpeg_probe().is_some_and(|p| lists_encoder(&p.encoders, codec.encoder()))
}

fn tool_error(reason: String) -> DatasetError {
    DatasetError::ExternalTool {
        tool: FFMPEG.to_string(),
        reason,
    }
}

/// Runs ffmpeg with `args`, `input` on its stdin, and returns its stdout. stdin is written from
/// a thread while `wait_with_output` drains stdout and stderr, so neither pipe can fill up and
/// deadlock the two processes.
fn run_ffmpeg(what: &str, args: &[&str], input: Vec<u8>) -> Result<Vec<u8>, DatasetError> {
    let mut child = Command::new(FFMPEG)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error(format!("{what}: cannot start ffmpeg: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| tool_error(format!("{what}: no stdin pipe to ffmpeg")))?;
    // A write error means ffmpeg exited early; its exit status and stderr say why.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child
        .wait_with_output()
        .map_err(|e| tool_error(format!("{what}: waiting for ffmpeg: {e}")))?;
    let _ = writer.join();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        return Err(tool_error(format!(
            "{what} failed ({}): {}",
            output.status,
            if stderr.is_empty() {
                "no message"
            } else {
                stderr
            }
        )));
    }
    Ok(output.stdout)
}

/// Round trip through a real speech codec at 8 kHz: `x` (at `sample_rate`) is resampled to
/// 8000 Hz, piped as raw f32le mono into one ffmpeg (single-threaded) that encodes it with
/// libgsm (raw GSM 06.10 frames) or libopus (12 kbit/s, VoIP, in Ogg), the bytes are decoded by
/// a second ffmpeg back to f32le at 8000 Hz (ffmpeg's Opus decoder drops the pre-skip, and GSM
/// has no look-ahead, so the output is aligned within a millisecond or so), resampled back to
/// `sample_rate` and cut or zero-padded to `x.len()`.
///
/// Errors: [`DatasetError::ExternalTool`] when ffmpeg is missing or lacks the encoder (the
/// message says how to install it) or when ffmpeg fails (with its stderr); a resampling error
/// for sample rates the resampler cannot reach from 8 kHz. An empty `x` gives an empty result
/// without running ffmpeg.
pub fn codec_round_trip(
    x: &[f32],
    sample_rate: u32,
    codec: ExternalCodec,
) -> Result<Vec<f32>, DatasetError> {
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let Some(probe) = ffmpeg_probe() else {
        return Err(tool_error(FFMPEG_MISSING.to_string()));
    };
    if !lists_encoder(&probe.encoders, codec.encoder()) {
        return Err(tool_error(format!(
            "this ffmpeg has no {} encoder (needed for {}); install an ffmpeg built with it \
             (Debian's ffmpeg package has libgsm and libopus) or leave out the conditions that \
             need it",
            codec.encoder(),
            codec.name()
        )));
    }
    let low = resample(x, sample_rate, CODEC_RATE_HZ)?;
    let raw: Vec<u8> = low.iter().flat_map(|s| s.to_le_bytes()).collect();
    let rate = CODEC_RATE_HZ.to_string();
    let mut encode = vec![
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        "1",
        "-f",
        "f32le",
        "-ar",
        &rate,
        "-ac",
        "1",
        "-i",
        "pipe:0",
        "-threads",
        "1",
    ];
    encode.extend_from_slice(codec.encode_args());
    encode.push("pipe:1");
    let encoded = run_ffmpeg(&format!("{} encoding", codec.name()), &encode, raw)?;
    let decode = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        "1",
        "-f",
        codec.container(),
        "-i",
        "pipe:0",
        "-threads",
        "1",
        "-f",
        "f32le",
        "-ar",
        &rate,
        "-ac",
        "1",
        "pipe:1",
    ];
    let decoded = run_ffmpeg(&format!("{} decoding", codec.name()), &decode, encoded)?;
    let low: Vec<f32> = decoded
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if low.is_empty() {
        return Err(tool_error(format!(
            "{} round trip decoded no samples",
            codec.name()
        )));
    }
    let mut y = resample(&low, CODEC_RATE_HZ, sample_rate)?;
    y.resize(x.len(), 0.0);
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SR: u32 = 22_050;

    fn sine_at(freq: f64, seconds: f64, sr: u32, amplitude: f64) -> Vec<f32> {
        (0..(seconds * sr as f64) as usize)
            .map(|n| (amplitude * (TAU * freq * n as f64 / sr as f64).sin()) as f32)
            .collect()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    /// Power of `x` between `lo` and `hi` Hz (periodogram), and the number of bins summed.
    fn band_power(x: &[f32], sr: u32, lo: f64, hi: f64) -> (f64, usize) {
        let n = x.len();
        let mut planner = realfft::RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(n);
        let mut buf = x.to_vec();
        let mut spec = fft.make_output_vec();
        fft.process(&mut buf, &mut spec).unwrap();
        let hz = sr as f64 / n as f64;
        let bins: Vec<f64> = spec
            .iter()
            .enumerate()
            .filter(|(k, _)| (lo..hi).contains(&(*k as f64 * hz)))
            .map(|(_, c)| c.norm_sqr() as f64)
            .collect();
        (bins.iter().sum(), bins.len())
    }

    /// T20 of an impulse response: Schroeder backward integration, the time from −5 to −25 dB,
    /// extrapolated to 60 dB (ISO 3382).
    fn t20(h: &[f32], sr: u32) -> f64 {
        let edc = crate::dataset::degrade::tests::energy_decay_db(h);
        let time = |level: f64| {
            edc.iter()
                .position(|&e| e < level)
                .expect("the decay reaches the level") as f64
                / sr as f64
        };
        3.0 * (time(-25.0) - time(-5.0))
    }

    #[test]
    fn fir_band_pass_keeps_the_band_and_rejects_40_db_outside() {
        let gain_db = |f: f64| {
            let x = sine_at(f, 2.0, SR, 0.5);
            let y = fir_band_pass(&x, SR, 300.0, 3400.0);
            assert_eq!(y.len(), x.len());
            // Away from the ends, where the zero padding outside the clip shows.
            let mid = 2000..x.len() - 2000;
            db(rms(&y[mid.clone()]) / rms(&x[mid]))
        };
        let (pass, low, high) = (gain_db(1000.0), gain_db(60.0), gain_db(6000.0));
        assert!(pass.abs() < 1.0, "1 kHz: {pass:.2} dB");
        assert!(low < -40.0, "60 Hz: {low:.1} dB");
        assert!(high < -40.0, "6 kHz: {high:.1} dB");
    }

    #[test]
    fn fir_band_pass_is_aligned_with_its_input() {
        // Linear phase with the delay removed: an in-band sine comes out in phase, sample for
        // sample (a Butterworth would shift it).
        let x = sine_at(1000.0, 1.0, SR, 0.5);
        let y = fir_band_pass(&x, SR, 300.0, 3400.0);
        let mid = 2000..x.len() - 2000;
        let err: Vec<f32> = mid.clone().map(|i| y[i] - x[i]).collect();
        assert!(db(rms(&err) / rms(&x[mid])) < -30.0);
        // An impulse becomes the (symmetric) filter centred on the impulse.
        let mut imp = vec![0f32; 2001];
        imp[1000] = 1.0;
        let h = fir_band_pass(&imp, SR, 300.0, 3400.0);
        let peak = (0..h.len())
            .max_by(|&a, &b| h[a].abs().total_cmp(&h[b].abs()))
            .unwrap();
        assert_eq!(peak, 1000);
        for k in 1..300 {
            assert!((h[1000 - k] - h[1000 + k]).abs() < 1e-6, "symmetric at {k}");
        }
    }

    #[test]
    fn fir_band_pass_scales_taps_with_rate_and_survives_odd_inputs() {
        assert_eq!(fir_taps(22_050), 511);
        assert_eq!(fir_taps(44_100) % 2, 1);
        assert!(fir_taps(44_100) > 1000);
        assert_eq!(fir_taps(1), 31);
        assert!(fir_band_pass(&[], SR, 300.0, 3400.0).is_empty());
        assert_eq!(fir_band_pass(&[0.0; 10], SR, 300.0, 3400.0), vec![0.0; 10]);
        assert_eq!(fir_band_pass(&[1.0; 10], SR, 3400.0, 300.0), vec![0.0; 10]);
        assert_eq!(fir_band_pass(&[1.0; 10], 0, 300.0, 3400.0), vec![0.0; 10]);
        assert_eq!(fir_band_pass(&[1.0; 10], SR, f64::NAN, 3400.0).len(), 10);
        let tiny = fir_band_pass(&[1.0, -1.0, 0.5], 8, 1.0, 3.0);
        assert!(tiny.len() == 3 && tiny.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn ima_adpcm_is_lossy_but_works_and_keeps_silence() {
        let x = sine_at(440.0, 1.0, 8000, 0.5);
        let y = ima_adpcm_round_trip(&x);
        assert_eq!(y.len(), x.len());
        let err: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
        let snr = db(rms(&x) / rms(&err));
        eprintln!("IMA ADPCM SNR (440 Hz, 8 kHz, amplitude 0.5): {snr:.1} dB");
        assert!((15.0..40.0).contains(&snr), "SNR {snr:.1} dB");
        assert!(ima_adpcm_round_trip(&[0.0; 1000])
            .iter()
            .all(|v| v.abs() < 1e-3));
        assert!(ima_adpcm_round_trip(&[]).is_empty());
        let odd = ima_adpcm_round_trip(&[f32::NAN, 5.0, -5.0, f32::INFINITY]);
        assert!(odd.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    }

    #[test]
    fn ima_adpcm_decoder_follows_the_standard_tables() {
        // Code 7 (+1⅞ step) from the initial state: step 7 gives 0 + 7>>3 + 7 + 3 + 1 = 11, then
        // the index moves by +8 to step 16.
        let mut s = ImaState::default();
        assert_eq!(s.decode(7), 11);
        assert_eq!(s.index, 8);
        assert_eq!(IMA_STEPS[s.index as usize], 16);
        // Code 8 | 0 (negative, smallest): −16>>3 = −2, index back by 1.
        assert_eq!(s.decode(8), 9);
        assert_eq!(s.index, 7);
        // The encoder picks the code the decoder reconstructs closest.
        let mut e = ImaState::default();
        assert_eq!(e.encode(11), 7);
    }

    #[test]
    fn shoebox_direct_path_arrives_at_the_propagation_delay() {
        let room = ShoeboxRoom {
            size_m: [6.0, 4.0, 3.0],
            source_m: [2.0, 1.3, 1.1],
            // 129.06 samples away at 343 m/s: the direct path's nearer tap holds 94 % of it, more
            // than the strongest reflection (the floor's, 0.6); off-centre so no two first
            // reflections arrive together.
            mic_m: [2.0 + 129.06 * SPEED_OF_SOUND / SR as f64, 1.3, 1.1],
            rt60_s: 0.5,
        };
        let h = room.impulse_response(SR);
        let d = distance(room.source_m, room.mic_m);
        let expected = (d / SPEED_OF_SOUND * SR as f64).round() as usize;
        assert_eq!(expected, 129);
        let first = (d / SPEED_OF_SOUND * SR as f64).floor() as usize;
        let peak = (0..h.len())
            .max_by(|&a, &b| h[a].abs().total_cmp(&h[b].abs()))
            .unwrap();
        assert_eq!(peak, expected);
        assert!(h[..first].iter().all(|&v| v == 0.0), "nothing before");
        let direct = h[first] + h[first + 1];
        // 1, less what the 100 Hz high-pass takes from the second tap (≈ 2 · 2.8 %).
        assert!((direct - 1.0).abs() < 0.06, "direct path {direct}");
        // Random rooms: nothing before the direct path, and its nearer tap holds most of it.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..5 {
            let room = ShoeboxRoom::draw(0.4, &mut rng);
            let h = room.impulse_response(SR);
            let delay = distance(room.source_m, room.mic_m) / SPEED_OF_SOUND * SR as f64;
            assert!(h[..delay.floor() as usize].iter().all(|&v| v == 0.0));
            assert!(h[delay.round() as usize] >= 0.5, "{room:?}");
        }
    }

    #[test]
    fn shoebox_draw_stays_in_a_living_room() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..200 {
            let r = ShoeboxRoom::draw(0.5, &mut rng);
            for (i, range) in ROOM_SIZE_M.iter().enumerate() {
                assert!(range.contains(&r.size_m[i]));
                for p in [r.source_m[i], r.mic_m[i]] {
                    assert!(p >= 0.5 && p <= r.size_m[i] - 0.5, "{r:?}");
                }
            }
            let d = distance(r.source_m, r.mic_m);
            assert!((1.0..=4.0).contains(&d), "{d}");
        }
        let a = ShoeboxRoom::draw(0.5, &mut ChaCha8Rng::seed_from_u64(9));
        let b = ShoeboxRoom::draw(0.5, &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a, b, "deterministic");
        // The fallback placement also satisfies the constraints in the extreme rooms.
        for size in [[3.0, 3.0, 2.4], [8.0, 6.0, 3.5]] {
            for source in [[0.5f64, 0.5, 0.5], [1.5, 1.5, 1.2], [7.5, 5.5, 3.0]] {
                let source: [f64; 3] = std::array::from_fn(|i| source[i].min(size[i] - 0.5));
                let mic = fallback_mic(size, source);
                let d = distance(source, mic);
                assert!((1.0..=4.0).contains(&d), "{size:?} {source:?}: {d}");
                assert!((0..3).all(|i| mic[i] >= 0.5 && mic[i] <= size[i] - 0.5));
            }
        }
    }

    #[test]
    fn shoebox_decays_near_its_rt60() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..3 {
            let room = ShoeboxRoom::draw(0.5, &mut rng);
            let h = room.impulse_response(SR);
            assert_eq!(h.len(), (0.5 * SR as f64) as usize + 2);
            let t = t20(&h, SR);
            eprintln!("shoebox {room:?}: T20 {t:.3} s for rt60 0.5 s");
            assert!((t - 0.5).abs() < 0.4 * 0.5, "T20 {t}");
        }
        // Long rt60: the response is bounded by MAX_RIR_S.
        let h = ShoeboxRoom::draw(0.8, &mut rng).impulse_response(SR);
        assert_eq!(h.len(), (MAX_RIR_S * SR as f64) as usize + 2);
        assert!(h.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn shoebox_degenerate_rooms_do_not_panic() {
        let ok = ShoeboxRoom::draw(0.5, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(ok.impulse_response(0), vec![1.0]);
        assert_eq!(
            ShoeboxRoom {
                mic_m: [100.0, 1.0, 1.0],
                ..ok
            }
            .impulse_response(SR),
            vec![1.0]
        );
        for rt60 in [0.0, -1.0, f64::NAN, 1e-4, f64::INFINITY] {
            let h = ShoeboxRoom { rt60_s: rt60, ..ok }.impulse_response(SR);
            assert!(h.iter().all(|v| v.is_finite()) && h.iter().any(|&v| v > 0.0));
        }
        // A 5 cm room: image orders are capped.
        let tiny = ShoeboxRoom {
            size_m: [0.05; 3],
            source_m: [0.01; 3],
            mic_m: [0.04; 3],
            rt60_s: 0.3,
        };
        assert!(tiny.impulse_response(SR).iter().all(|v| v.is_finite()));
        assert!(ok.impulse_response(1).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn schroeder_reverb_decays_near_its_rt60() {
        for rt60 in [0.3, 0.5, 1.0] {
            let h = schroeder_impulse_response(rt60, SR);
            assert_eq!(h.len(), (rt60 * SR as f64).ceil() as usize);
            assert_eq!(h[0], 1.0, "direct path");
            let wet: f64 = h[1..].iter().map(|&v| v as f64 * v as f64).sum();
            assert!((wet - 1.0).abs() < 1e-3, "wet energy {wet}");
            let t = t20(&h, SR);
            eprintln!("Schroeder rt60 {rt60}: T20 {t:.3} s");
            assert!((t - rt60).abs() < 0.4 * rt60, "rt60 {rt60}: T20 {t}");
        }
        assert_eq!(schroeder_impulse_response(0.0, SR), vec![1.0]);
        assert_eq!(schroeder_impulse_response(f64::NAN, SR), vec![1.0]);
        assert_eq!(schroeder_impulse_response(0.5, 0), vec![1.0]);
        let tiny = schroeder_impulse_response(0.5, 3);
        assert!(!tiny.is_empty() && tiny.iter().all(|v| v.is_finite()));
    }

    /// Coefficient of variation of the RMS over 50 ms frames.
    fn frame_rms_cv(x: &[f32], sr: u32) -> f64 {
        let frame = sr as usize / 20;
        let levels: Vec<f64> = x.chunks_exact(frame).map(rms).collect();
        let mean = levels.iter().sum::<f64>() / levels.len() as f64;
        let var = levels.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / levels.len() as f64;
        var.sqrt() / mean
    }

    #[test]
    fn babble_is_speech_band_and_modulated() {
        let len = 8 * SR as usize;
        let b = babble(len, SR, 4, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(b.len(), len);
        assert!(b.iter().all(|v| v.is_finite()));
        assert!(rms(&b) > 0.0);
        let mean = b.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
        assert!(mean.abs() < 1e-6 * rms(&b).max(1.0), "mean {mean}");
        let (total, _) = band_power(&b, SR, 0.0, SR as f64);
        let (speech, _) = band_power(&b, SR, 80.0, 4000.0);
        let fraction = speech / total;
        let white = crate::dataset::degrade::coloured_noise(
            len,
            SR,
            crate::dataset::NoiseColour::White,
            &mut ChaCha8Rng::seed_from_u64(3),
        );
        let (cv, cv_white) = (frame_rms_cv(&b, SR), frame_rms_cv(&white, SR));
        eprintln!("babble: {fraction:.3} of the energy in 80–4000 Hz, frame-RMS CV {cv:.3} (white {cv_white:.3})");
        assert!(fraction >= 0.8, "{fraction}");
        assert!(cv > 0.2 && cv > 5.0 * cv_white, "{cv} vs white {cv_white}");
    }

    #[test]
    fn babble_is_deterministic_and_handles_edge_cases() {
        let a = babble(5000, SR, 3, &mut ChaCha8Rng::seed_from_u64(8));
        let b = babble(5000, SR, 3, &mut ChaCha8Rng::seed_from_u64(8));
        let c = babble(5000, SR, 3, &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(babble(0, SR, 4, &mut ChaCha8Rng::seed_from_u64(1)).is_empty());
        assert_eq!(
            babble(10, SR, 0, &mut ChaCha8Rng::seed_from_u64(1)),
            vec![0.0; 10]
        );
        assert_eq!(
            babble(10, 0, 2, &mut ChaCha8Rng::seed_from_u64(1)),
            vec![0.0; 10]
        );
        let tiny = babble(100, 50, 2, &mut ChaCha8Rng::seed_from_u64(1));
        assert!(tiny.len() == 100 && tiny.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn brown_noise_falls_6_db_per_octave() {
        let n = brown_noise(1 << 18, &mut ChaCha8Rng::seed_from_u64(4));
        assert!(n.iter().all(|v| v.is_finite()));
        let mean = n.iter().map(|&v| v as f64).sum::<f64>() / n.len() as f64;
        assert!(mean.abs() < 1e-4 * rms(&n), "mean {mean}");
        // Power per Hz (the bands have different widths).
        let density = |lo, hi| {
            let (p, bins) = band_power(&n, SR, lo, hi);
            p / bins as f64
        };
        let (low, high) = (density(50.0, 200.0), density(2000.0, 8000.0));
        let ratio = 10.0 * (low / high).log10();
        let (band_low, _) = band_power(&n, SR, 50.0, 200.0);
        let (band_high, _) = band_power(&n, SR, 2000.0, 8000.0);
        eprintln!(
            "brown: power density 50–200 Hz / 2–8 kHz {ratio:.1} dB, band power ratio {:.1} dB",
            10.0 * (band_low / band_high).log10()
        );
        assert!(ratio > 20.0, "{ratio} dB");
        // −6 dB/octave: three octaves from 250–500 Hz to 2–4 kHz are ≈ 18 dB per Hz.
        let slope = 10.0 * (density(250.0, 500.0) / density(2000.0, 4000.0)).log10();
        assert!((slope - 18.0).abs() < 3.0, "{slope} dB over 3 octaves");
        assert!(brown_noise(0, &mut ChaCha8Rng::seed_from_u64(4)).is_empty());
    }

    #[test]
    fn compressor_narrows_the_dynamics_and_keeps_loudness() {
        // 1 s loud / 1 s quiet, 20 dB apart, four times.
        let sr = SR as usize;
        let loud = sine_at(440.0, 1.0, SR, 0.5);
        let x: Vec<f32> = (0..8)
            .flat_map(|k| {
                let g = if k % 2 == 0 { 1.0 } else { 0.1 };
                loud.iter().map(move |&s| s * g)
            })
            .collect();
        let spread = |y: &[f32]| {
            let (mut l, mut q) = (Vec::new(), Vec::new());
            for (k, seg) in y.chunks_exact(sr).enumerate() {
                if k % 2 == 0 { &mut l } else { &mut q }.extend_from_slice(seg);
            }
            db(rms(&l) / rms(&q))
        };
        let mut y = x.clone();
        compress(&mut y, SR, -10.0, 4.0);
        let (before, after) = (spread(&x), spread(&y));
        eprintln!("compressor: loud/quiet {before:.2} dB -> {after:.2} dB");
        assert!((before - 20.0).abs() < 0.01);
        assert!(before - after >= 8.0, "{before:.2} -> {after:.2} dB");
        assert!(db(rms(&y) / rms(&x)).abs() < 0.1);
        // The threshold is relative: a 20 dB quieter copy is compressed the same way.
        let mut quiet: Vec<f32> = x.iter().map(|s| s * 0.1).collect();
        compress(&mut quiet, SR, -10.0, 4.0);
        assert!((spread(&quiet) - after).abs() < 0.05);
    }

    #[test]
    fn compressor_leaves_what_it_cannot_compress() {
        let x = sine_at(440.0, 0.5, SR, 0.5);
        for (ratio, threshold) in [
            (1.0, -10.0),
            (0.5, -10.0),
            (f64::NAN, -10.0),
            (4.0, f64::NAN),
        ] {
            let mut y = x.clone();
            compress(&mut y, SR, threshold, ratio);
            assert_eq!(y, x, "ratio {ratio}, threshold {threshold}");
        }
        let mut silent = vec![0f32; 100];
        compress(&mut silent, SR, -10.0, 4.0);
        assert_eq!(silent, vec![0.0; 100]);
        let mut empty: Vec<f32> = Vec::new();
        compress(&mut empty, SR, -10.0, 4.0);
        let mut odd = x.clone();
        compress(&mut odd, 0, -10.0, f64::INFINITY);
        assert!(odd.iter().all(|v| v.is_finite()));
    }

    /// Highest normalised correlation of `y` with `x` over lags of ±`max_lag` samples.
    fn best_correlation(x: &[f32], y: &[f32], max_lag: usize) -> (f64, i64) {
        let n = x.len();
        (-(max_lag as i64)..=max_lag as i64)
            .map(|lag| {
                let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
                for i in max_lag..n - max_lag {
                    let (a, b) = (x[i] as f64, y[(i as i64 + lag) as usize] as f64);
                    xy += a * b;
                    xx += a * a;
                    yy += b * b;
                }
                (xy / (xx * yy).sqrt().max(f64::MIN_POSITIVE), lag)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
    }

    fn codec_round_trip_works(codec: ExternalCodec) {
        assert!(
            ffmpeg_has(codec),
            "this test needs ffmpeg with the {} encoder on PATH (Debian: apt-get install ffmpeg)",
            codec.encoder()
        );
        let x = sine_at(1000.0, 1.0, SR, 0.5);
        let y = codec_round_trip(&x, SR, codec).unwrap();
        assert_eq!(y.len(), x.len());
        assert!(y.iter().all(|v| v.is_finite()));
        let (corr, lag) = best_correlation(&x, &y, SR as usize / 50);
        eprintln!(
            "{}: correlation {corr:.3} at lag {lag} samples",
            codec.name()
        );
        assert!(
            corr > 0.5,
            "{}: correlation {corr} at lag {lag}",
            codec.name()
        );
        assert!(
            rms(&y) > 0.1 * rms(&x),
            "{}: level {}",
            codec.name(),
            rms(&y)
        );
        assert!(codec_round_trip(&[], SR, codec).unwrap().is_empty());
    }

    #[test]
    fn codecs_keep_speech_aligned() {
        // A sine is periodic (any lag a multiple of its period correlates), so the alignment is
        // checked on babble, which has a single correlation peak.
        let x: Vec<f32> = {
            let b = babble(SR as usize, SR, 1, &mut ChaCha8Rng::seed_from_u64(6));
            let g = 0.3 / b.iter().fold(0f32, |m, v| m.max(v.abs()));
            b.iter().map(|v| v * g).collect()
        };
        for codec in [ExternalCodec::Gsm, ExternalCodec::Opus] {
            assert!(
                ffmpeg_has(codec),
                "this test needs ffmpeg with {}",
                codec.encoder()
            );
            let y = codec_round_trip(&x, SR, codec).unwrap();
            let (corr, lag) = best_correlation(&x, &y, SR as usize / 50);
            eprintln!(
                "{} on speech: correlation {corr:.3} at lag {lag} samples",
                codec.name()
            );
            assert!(corr > 0.5, "{}: {corr} at lag {lag}", codec.name());
            assert!(
                lag.abs() <= SR as i64 / 500,
                "{}: lag {lag} samples",
                codec.name()
            );
        }
    }

    #[test]
    fn gsm_round_trip_keeps_a_sine() {
        codec_round_trip_works(ExternalCodec::Gsm);
    }

    #[test]
    fn opus_round_trip_keeps_a_sine() {
        codec_round_trip_works(ExternalCodec::Opus);
    }

    #[test]
    fn missing_ffmpeg_is_reported_plainly() {
        assert!(probe("ffmpeg-that-does-not-exist-fhe-shazam").is_none());
        let msg = tool_error(FFMPEG_MISSING.to_string()).to_string();
        assert!(msg.starts_with("ffmpeg: ffmpeg is not on PATH"), "{msg}");
        assert!(msg.contains("apt-get install ffmpeg"), "{msg}");
        let listing = " A....D libgsm               libgsm GSM (codec gsm)\n \
                       A....D libgsm_ms            libgsm GSM Microsoft variant (codec gsm_ms)\n";
        assert!(lists_encoder(listing, "libgsm"));
        assert!(!lists_encoder(listing, "libopus"));
        assert_eq!(ExternalCodec::Gsm.name(), "gsm");
        assert_eq!(ExternalCodec::Opus.name(), "opus");
    }

    #[test]
    fn ffmpeg_failure_carries_its_stderr() {
        assert!(ffmpeg_probe().is_some(), "this test needs ffmpeg on PATH");
        // Bytes that are not a GSM stream.
        let err = run_ffmpeg(
            "gsm decoding",
            &[
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "nonexistent-format",
                "-i",
                "pipe:0",
                "-f",
                "f32le",
                "pipe:1",
            ],
            vec![1, 2, 3],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("ffmpeg: gsm decoding failed"), "{msg}");
        assert!(msg.to_lowercase().contains("nonexistent-format"), "{msg}");
    }
}
