//! Landmark extraction (Wang 2003, "An Industrial-Strength Audio Search Algorithm", ISMIR):
//! STFT → log spectrogram → sparse "constellation" of spectral peaks → pairs of peaks close in
//! time (an anchor and up to `fanout` peaks in its target zone) → one 32-bit hash per pair,
//! `f1 (10 bits) | f2 (10 bits) | Δt (12 bits)`, stored with the anchor's frame.
//!
//! Peaks are what survives noise and channel distortion: a spectral maximum that dominates its
//! time × frequency neighbourhood usually still dominates after additive noise or band
//! limiting, and a pair of them has far more entropy than a single peak (Wang §2.2–2.3).
//! Default values follow audfprint (D. Ellis, <https://github.com/dpwe/audfprint>,
//! `audfprint_analyze.py`), the reference open implementation of Wang's scheme, translated from
//! its 11025 Hz analysis rate to our 22050 Hz.

use crate::error::FingerprintError;
use crate::features::mfcc::{hann_periodic, PowerSpectrum};
use rustfft::num_complex::Complex;
use serde::{Deserialize, Serialize};

/// Bits of each field of a hash (the seed's layout: 10 + 10 + 12 = 32).
pub const F_BITS: u32 = 10;
pub const DT_BITS: u32 = 12;
/// Largest frequency bin a hash can hold (2¹⁰ − 1).
pub const MAX_HASH_BIN: u32 = (1 << F_BITS) - 1;
/// Largest Δt (frames) a hash can hold (2¹² − 1).
pub const MAX_HASH_DT: u32 = (1 << DT_BITS) - 1;

/// Power floor before the log (−100 dB): keeps silence finite.
const AMIN: f32 = 1e-10;
/// A bin quieter than this (dB of FFT power) is silence, never a peak. A full-scale sine gives
/// ~+48 dB with a 1024-point Hann window, so this is ~140 dB below full scale, below what
/// 16-bit audio can hold; only digital silence and its numerical dust fall under it.
const SILENCE_DB: f32 = -90.0;
/// 10 / ln 10: natural log of power → dB.
const DB_PER_NEPER: f32 = 4.342_944_8;

/// Every parameter of landmark extraction and matching. Defaults are audfprint's published
/// values (density 20 peaks/s, fan-out 3, Δt 2–63 frames, |Δf| ≤ 31 bins, match window ±2
/// frames) at twice its sample rate, i.e. the same time and frequency resolution: its
/// 512-point FFT / hop 256 at 11025 Hz is 1024 / 512 here (46 ms window, 23.2 ms hop,
/// 21.5 Hz bins). Two defaults depart from it after measurement (`onset_pole`,
/// `min_aligned`); their fields say why. Wang 2003 gives the scheme but no numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LandmarkParams {
    /// Rate of the samples given (audio::load resamples to it).
    pub sample_rate: u32,
    /// STFT window length (periodic Hann). audfprint: 512 at 11025 Hz.
    pub n_fft: usize,
    /// STFT hop; one landmark time unit. audfprint: 256 at 11025 Hz.
    pub hop_length: usize,
    /// Peaks are searched in [freq_min_hz, freq_max_hz]: below ~40 Hz is rumble and DC;
    /// audfprint's 11025 Hz analysis sees nothing above 5512.5 Hz, and the high band is the
    /// first lost to codecs and telephone channels.
    pub freq_min_hz: f64,
    pub freq_max_hz: f64,
    /// Pole of a per-bin high-pass along time applied to the log spectrogram before peak
    /// picking (audfprint's HPF_POLE = 0.98): each bin is compared with its own decaying
    /// average, so onsets stand out and stationary tones fade. Off by default: on the synthetic
    /// corpus (20 songs, 15 s queries) it cut the true song's aligned votes at 5 dB white-noise
    /// SNR from 85 to 22, because noise fluctuations become "onsets" that compete with the music's.
    pub onset_pole: Option<f32>,
    /// A peak is the maximum of its (2·r_t + 1) × (2·r_f + 1) neighbourhood (frames × bins).
    /// ±3 frames ≈ ±70 ms, ±10 bins ≈ ±215 Hz: audfprint masks with a Gaussian of SD 30 bins
    /// in frequency and a decaying threshold in time; a hard neighbourhood plus the density
    /// cap below does the same job and does not depend on where the excerpt starts.
    pub peak_time_radius: usize,
    pub peak_freq_radius: usize,
    /// Bins more than this many dB below the loudest bin of the input are never peaks.
    pub dynamic_range_db: f32,
    /// Density cap: at most this many peaks per second in total (audfprint `--density` 20),
    /// shared equally by `density_bands` log-spaced frequency bands so one loud band (bass,
    /// or the noise of a channel) cannot take every peak. Within a band a peak is kept only if
    /// fewer than its quota of stronger peaks lie within ±`density_window_s`/2 of it.
    pub peaks_per_second: f64,
    pub density_bands: usize,
    pub density_window_s: f64,
    /// Target zone: frames after the anchor (audfprint mindt 2, targetdt 63) and largest
    /// |f2 − f1| in bins (audfprint targetdf 31).
    pub target_dt_min: u32,
    pub target_dt_max: u32,
    pub target_df_max: u32,
    /// Pairs made per anchor (audfprint maxpairsperpeak 3; Wang's "fan-out").
    pub fanout: usize,
    /// A query is fingerprinted at this many sub-hop shifts and the hashes pooled (audfprint
    /// `--shifts`): an excerpt is not frame-aligned with the indexed song, and shifting by a
    /// fraction of a hop recovers peaks that fell between frames. 1 = no extra shifts.
    pub query_shifts: usize,
    /// Offsets within ±this many frames count as aligned (audfprint `--match-win` 2).
    pub offset_tolerance: u32,
    /// Fewer aligned hashes than this → unknown. audfprint's `--min-count` is 5, but synthetic
    /// songs share keys and sustained pads, and 15 s excerpts of songs *not* in a 20-song index
    /// reached up to 15 aligned votes (median 5) under noise, while true matches averaged 34–280
    /// outside speed changes; 20 keeps strangers out at the cost of most ±2 % speed queries.
    pub min_aligned: usize,
}

impl Default for LandmarkParams {
    fn default() -> Self {
        Self {
            sample_rate: 22_050,
            n_fft: 1024,
            hop_length: 512,
            freq_min_hz: 40.0,
            freq_max_hz: 5512.5,
            onset_pole: None,
            peak_time_radius: 3,
            peak_freq_radius: 10,
            dynamic_range_db: 60.0,
            peaks_per_second: 20.0,
            density_bands: 4,
            density_window_s: 1.0,
            target_dt_min: 2,
            target_dt_max: 63,
            target_df_max: 31,
            fanout: 3,
            query_shifts: 1,
            offset_tolerance: 2,
            min_aligned: 20,
        }
    }
}

impl LandmarkParams {
    /// Hz per FFT bin.
    pub fn bin_hz(&self) -> f64 {
        f64::from(self.sample_rate) / self.n_fft as f64
    }

    /// Seconds per frame (one unit of landmark time).
    pub fn frame_seconds(&self) -> f64 {
        self.hop_length as f64 / f64::from(self.sample_rate)
    }

    /// The FFT bins searched for peaks, `lo..hi` (Nyquist excluded).
    pub fn bin_range(&self) -> std::ops::Range<usize> {
        let bin_hz = self.bin_hz();
        let lo = (self.freq_min_hz / bin_hz).ceil().max(1.0) as usize;
        let hi = ((self.freq_max_hz / bin_hz).floor() as usize + 1).min(self.n_fft / 2);
        lo..hi
    }

    pub fn validate(&self) -> Result<(), FingerprintError> {
        let bad = |param: &'static str, reason: String| {
            Err(FingerprintError::InvalidParams { param, reason })
        };
        if self.sample_rate == 0 {
            return bad("sample_rate", "sample_rate must be > 0".into());
        }
        if self.n_fft < 4 || !self.n_fft.is_multiple_of(2) {
            // Even: the real FFT is one complex FFT of n_fft/2.
            return bad(
                "n_fft",
                format!("n_fft ({}) must be even and >= 4", self.n_fft),
            );
        }
        if self.hop_length == 0 {
            return bad("hop_length", "hop_length must be > 0".into());
        }
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if !(self.freq_min_hz.is_finite()
            && self.freq_max_hz.is_finite()
            && self.freq_min_hz >= 0.0
            && self.freq_min_hz < self.freq_max_hz)
        {
            return bad(
                "freq_min_hz",
                format!(
                    "need 0 <= freq_min_hz ({}) < freq_max_hz ({})",
                    self.freq_min_hz, self.freq_max_hz
                ),
            );
        }
        if self.freq_min_hz >= nyquist {
            return bad(
                "freq_min_hz",
                format!(
                    "freq_min_hz ({}) must be below sample_rate/2 ({nyquist})",
                    self.freq_min_hz
                ),
            );
        }
        let bins = self.bin_range();
        if bins.len() < self.density_bands.max(1) {
            return bad(
                "density_bands",
                format!(
                    "frequency range {}..{} Hz holds {} FFT bins, fewer than density_bands ({})",
                    self.freq_min_hz,
                    self.freq_max_hz,
                    bins.len(),
                    self.density_bands
                ),
            );
        }
        if bins.end - 1 > MAX_HASH_BIN as usize {
            return bad("freq_max_hz", format!(
                "highest peak bin {} does not fit the hash's {F_BITS} bits (lower freq_max_hz or n_fft)",
                bins.end - 1
            ));
        }
        if let Some(pole) = self.onset_pole {
            if !(pole.is_finite() && (0.0..1.0).contains(&pole)) {
                return bad(
                    "onset_pole",
                    format!("onset_pole ({pole}) must be in [0, 1)"),
                );
            }
        }
        if !(self.dynamic_range_db.is_finite() && self.dynamic_range_db > 0.0) {
            return bad(
                "dynamic_range_db",
                format!(
                    "dynamic_range_db ({}) must be finite and > 0",
                    self.dynamic_range_db
                ),
            );
        }
        if !(self.peaks_per_second.is_finite() && self.peaks_per_second > 0.0) {
            return bad(
                "peaks_per_second",
                format!(
                    "peaks_per_second ({}) must be finite and > 0",
                    self.peaks_per_second
                ),
            );
        }
        if self.density_bands == 0 {
            return bad("density_bands", "density_bands must be > 0".into());
        }
        if !(self.density_window_s.is_finite() && self.density_window_s > 0.0) {
            return bad(
                "density_window_s",
                format!(
                    "density_window_s ({}) must be finite and > 0",
                    self.density_window_s
                ),
            );
        }
        if self.target_dt_min == 0 || self.target_dt_min > self.target_dt_max {
            return bad(
                "target_dt_min",
                format!(
                    "need 1 <= target_dt_min ({}) <= target_dt_max ({})",
                    self.target_dt_min, self.target_dt_max
                ),
            );
        }
        if self.target_dt_max > MAX_HASH_DT {
            return bad(
                "target_dt_max",
                format!(
                    "target_dt_max ({}) does not fit the hash's {DT_BITS} bits (max {MAX_HASH_DT})",
                    self.target_dt_max
                ),
            );
        }
        if self.fanout == 0 {
            return bad("fanout", "fanout must be > 0".into());
        }
        if self.query_shifts == 0 || self.query_shifts > self.hop_length {
            return bad(
                "query_shifts",
                format!(
                    "query_shifts ({}) must be in 1..=hop_length ({})",
                    self.query_shifts, self.hop_length
                ),
            );
        }
        if self.min_aligned == 0 {
            return bad(
                "min_aligned",
                "min_aligned must be > 0 (0 would call silence a match)".into(),
            );
        }
        Ok(())
    }
}

/// Packs a landmark into the seed's 32-bit hash: `f1 << 22 | f2 << 12 | Δt`.
/// Fields wider than their bits are masked; [`LandmarkParams::validate`] guarantees they fit.
pub fn pack_hash(f1: u32, f2: u32, dt: u32) -> u32 {
    ((f1 & MAX_HASH_BIN) << (F_BITS + DT_BITS))
        | ((f2 & MAX_HASH_BIN) << DT_BITS)
        | (dt & MAX_HASH_DT)
}

/// Inverse of [`pack_hash`]: `(f1, f2, Δt)`.
pub fn unpack_hash(hash: u32) -> (u32, u32, u32) {
    (
        hash >> (F_BITS + DT_BITS),
        (hash >> DT_BITS) & MAX_HASH_BIN,
        hash & MAX_HASH_DT,
    )
}

/// A spectral peak: STFT frame and FFT bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peak {
    pub frame: u32,
    pub bin: u32,
}

/// One hash and the frame of its anchor peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Landmark {
    pub time: u32,
    pub hash: u32,
}

/// Log spectrogram of the searched bins, frame-major (`[frame * bins + bin]`).
struct Spectrogram {
    frames: usize,
    bins: usize,
    /// Level in dB of FFT power (decides silence and dynamic range).
    level: Vec<f32>,
    /// What peaks are picked on: `level`, onset-emphasised if `onset_pole` is set.
    salience: Vec<f32>,
}

/// A prepared landmark extractor (window, FFT plan, band edges); shareable across threads.
pub struct Landmarker {
    params: LandmarkParams,
    window: Vec<f32>,
    spectrum: PowerSpectrum,
    bins: std::ops::Range<usize>,
    /// Density bands as offsets into `bins`: band b is `band_edges[b]..band_edges[b + 1]`.
    band_edges: Vec<usize>,
}

impl std::fmt::Debug for Landmarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Landmarker")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Landmarker {
    pub fn new(params: LandmarkParams) -> Result<Self, FingerprintError> {
        params.validate()?;
        let bins = params.bin_range();
        let band_edges = log_band_edges(bins.start, bins.end, params.density_bands);
        Ok(Self {
            window: hann_periodic(params.n_fft),
            spectrum: PowerSpectrum::new(params.n_fft),
            bins,
            band_edges,
            params,
        })
    }

    pub fn params(&self) -> &LandmarkParams {
        &self.params
    }

    /// Peaks of the constellation, sorted by (frame, bin). Silence gives none.
    pub fn peaks(&self, samples: &[f32]) -> Result<Vec<Peak>, FingerprintError> {
        let spec = self.spectrogram(samples)?;
        Ok(self.pick_peaks(&spec))
    }

    /// The hashes of `samples`, sorted by (time, hash), without duplicates.
    pub fn landmarks(&self, samples: &[f32]) -> Result<Vec<Landmark>, FingerprintError> {
        Ok(self.pair_peaks(&self.peaks(samples)?))
    }

    /// The hashes of a query: `query_shifts` fingerprints of `samples` started 0, hop/s, 2·hop/s…
    /// samples later, pooled (each shifted frame is credited to the unshifted frame it starts
    /// in; the offset tolerance absorbs the fraction). Sorted, without duplicates.
    pub fn query_landmarks(&self, samples: &[f32]) -> Result<Vec<Landmark>, FingerprintError> {
        let mut all = self.landmarks(samples)?;
        let shifts = self.params.query_shifts;
        for s in 1..shifts {
            let start = s * self.params.hop_length / shifts;
            if samples.len() - start >= self.params.n_fft {
                all.extend(self.landmarks(&samples[start..])?);
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    fn spectrogram(&self, samples: &[f32]) -> Result<Spectrogram, FingerprintError> {
        let p = &self.params;
        if let Some(index) = samples.iter().position(|x| !x.is_finite()) {
            return Err(FingerprintError::NonFiniteAudio {
                index,
                value: samples[index],
            });
        }
        if samples.len() < p.n_fft {
            return Err(FingerprintError::TooShort {
                samples: samples.len(),
                needed: p.n_fft,
            });
        }
        let frames = 1 + (samples.len() - p.n_fft) / p.hop_length;
        if i32::try_from(frames).is_err() {
            return Err(FingerprintError::Capacity(format!(
                "{frames} frames exceed the 2^31 landmark times an index holds"
            )));
        }
        let n_bins = self.bins.len();
        let mut level = vec![0f32; frames * n_bins];
        let mut packed = vec![Complex::default(); p.n_fft / 2];
        let mut scratch = self.spectrum.scratch();
        let mut power = vec![0f32; p.n_fft / 2 + 1];
        for (t, row) in level.chunks_exact_mut(n_bins).enumerate() {
            let frame = &samples[t * p.hop_length..t * p.hop_length + p.n_fft];
            for ((c, x), w) in packed
                .iter_mut()
                .zip(frame.chunks_exact(2))
                .zip(self.window.chunks_exact(2))
            {
                *c = Complex::new(x[0] * w[0], x[1] * w[1]);
            }
            self.spectrum.compute(&mut packed, &mut scratch, &mut power);
            for (l, &pw) in row.iter_mut().zip(&power[self.bins.clone()]) {
                *l = DB_PER_NEPER * pw.max(AMIN).ln();
            }
        }
        let salience = match p.onset_pole {
            None => level.clone(),
            Some(pole) => {
                // y[t] = x[t] − x[t−1] + pole · y[t−1] per bin, starting from rest (x[−1] = x[0]).
                let mut out = vec![0f32; level.len()];
                for t in 1..frames {
                    let (prev_out, cur_out) = out.split_at_mut(t * n_bins);
                    let prev_out = &prev_out[(t - 1) * n_bins..];
                    let prev_in = &level[(t - 1) * n_bins..t * n_bins];
                    let cur_in = &level[t * n_bins..(t + 1) * n_bins];
                    for (((y, &yp), &x), &xp) in cur_out[..n_bins]
                        .iter_mut()
                        .zip(prev_out)
                        .zip(cur_in)
                        .zip(prev_in)
                    {
                        *y = x - xp + pole * yp;
                    }
                }
                out
            }
        };
        Ok(Spectrogram {
            frames,
            bins: n_bins,
            level,
            salience,
        })
    }

    /// Local maxima of the salience over the time × frequency neighbourhood, above the silence
    /// floor and within the dynamic range, then thinned to the density cap band by band.
    fn pick_peaks(&self, spec: &Spectrogram) -> Vec<Peak> {
        let p = &self.params;
        let (frames, bins) = (spec.frames, spec.bins);
        let loudest = spec.level.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = (loudest - p.dynamic_range_db).max(SILENCE_DB);
        let local_max = max_filter(
            &spec.salience,
            frames,
            bins,
            p.peak_time_radius,
            p.peak_freq_radius,
        );
        let n_bands = self.band_edges.len() - 1;
        // Candidates per band, in frame order: (frame, bin offset, salience).
        let mut candidates: Vec<Vec<(u32, u32, f32)>> = vec![Vec::new(); n_bands];
        for t in 0..frames {
            let row = t * bins;
            for (band, edges) in candidates.iter_mut().zip(self.band_edges.windows(2)) {
                for k in edges[0]..edges[1] {
                    let s = spec.salience[row + k];
                    if s >= local_max[row + k] && spec.level[row + k] > floor {
                        band.push((t as u32, k as u32, s));
                    }
                }
            }
        }
        let frames_per_s = 1.0 / p.frame_seconds();
        let half_window = (p.density_window_s * frames_per_s / 2.0).round() as u32;
        let quota =
            ((p.peaks_per_second * p.density_window_s / n_bands as f64).round() as usize).max(1);
        let mut peaks = Vec::new();
        for band in &candidates {
            let mut lo = 0;
            let mut hi = 0;
            for (i, &(t, k, s)) in band.iter().enumerate() {
                while band[lo].0 + half_window < t {
                    lo += 1;
                }
                while hi < band.len() && band[hi].0 <= t + half_window {
                    hi += 1;
                }
                // Stronger neighbours (ties go to the earlier candidate, so equal peaks
                // cannot all evict each other).
                let stronger = band[lo..hi]
                    .iter()
                    .enumerate()
                    .filter(|&(j, c)| c.2 > s || (c.2 == s && lo + j < i))
                    .count();
                if stronger < quota {
                    peaks.push(Peak {
                        frame: t,
                        bin: (self.bins.start + k as usize) as u32,
                    });
                }
            }
        }
        peaks.sort_unstable();
        peaks
    }

    /// Pairs each anchor with the first `fanout` peaks of its target zone (time order).
    fn pair_peaks(&self, peaks: &[Peak]) -> Vec<Landmark> {
        let p = &self.params;
        let mut out = Vec::with_capacity(peaks.len() * p.fanout);
        let mut zone_start = 0;
        for (i, a) in peaks.iter().enumerate() {
            while zone_start < peaks.len() && peaks[zone_start].frame < a.frame + p.target_dt_min {
                zone_start += 1;
            }
            let mut paired = 0;
            for b in &peaks[zone_start.max(i + 1)..] {
                let dt = b.frame - a.frame;
                if dt > p.target_dt_max || paired == p.fanout {
                    break;
                }
                if a.bin.abs_diff(b.bin) <= p.target_df_max {
                    out.push(Landmark {
                        time: a.frame,
                        hash: pack_hash(a.bin, b.bin, dt),
                    });
                    paired += 1;
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// `n + 1` edges (offsets from `lo`) splitting bins `lo..hi` into `n` bands equally spaced in
/// log frequency, each at least one bin wide (musical content is spread evenly in pitch, not
/// in Hz).
fn log_band_edges(lo: usize, hi: usize, n: usize) -> Vec<usize> {
    let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
    let mut edges = vec![0];
    for b in 1..n {
        let e = (l + (h - l) * b as f64 / n as f64).exp().round() as usize - lo;
        let prev = *edges.last().unwrap_or(&0);
        // Every band keeps at least one bin, and leaves one for each band after it.
        edges.push(e.clamp(prev + 1, hi - lo - (n - b)));
    }
    edges.push(hi - lo);
    edges
}

/// Maximum over the (2·rt + 1) × (2·rf + 1) neighbourhood of every cell (clamped at the
/// edges), as two separable sliding-maximum passes.
fn max_filter(data: &[f32], frames: usize, bins: usize, rt: usize, rf: usize) -> Vec<f32> {
    let mut along_f = vec![f32::NEG_INFINITY; data.len()];
    for (src, dst) in data.chunks_exact(bins).zip(along_f.chunks_exact_mut(bins)) {
        for (k, d) in dst.iter_mut().enumerate() {
            let window = &src[k.saturating_sub(rf)..(k + rf + 1).min(bins)];
            *d = window.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        }
    }
    let mut out = vec![f32::NEG_INFINITY; data.len()];
    for t in 0..frames {
        let dst = &mut out[t * bins..(t + 1) * bins];
        for u in t.saturating_sub(rt)..(t + rt + 1).min(frames) {
            for (d, &s) in dst.iter_mut().zip(&along_f[u * bins..(u + 1) * bins]) {
                *d = d.max(s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sines(freqs_hz: &[f64], seconds: f64, sr: u32) -> Vec<f32> {
        let n = (seconds * f64::from(sr)) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(sr);
                freqs_hz
                    .iter()
                    .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
                    .sum::<f64>() as f32
                    * 0.2
            })
            .collect()
    }

    #[test]
    fn hash_packing_round_trips_at_the_field_limits() {
        for &(f1, f2, dt) in &[
            (0, 0, 0),
            (MAX_HASH_BIN, MAX_HASH_BIN, MAX_HASH_DT),
            (1, 2, 3),
            (513, 7, 4000),
            (MAX_HASH_BIN, 0, 1),
        ] {
            let h = pack_hash(f1, f2, dt);
            assert_eq!(unpack_hash(h), (f1, f2, dt));
        }
        // The layout is the seed's: f1 in the top 10 bits, Δt in the low 12.
        assert_eq!(pack_hash(1, 0, 0), 1 << 22);
        assert_eq!(pack_hash(0, 1, 0), 1 << 12);
        assert_eq!(pack_hash(0, 0, 1), 1);
        assert_eq!(pack_hash(MAX_HASH_BIN, MAX_HASH_BIN, MAX_HASH_DT), u32::MAX);
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        LandmarkParams::default().validate().unwrap();
        let cases: Vec<(LandmarkParams, &str)> = vec![
            (
                LandmarkParams {
                    n_fft: 1023,
                    ..Default::default()
                },
                "n_fft",
            ),
            (
                LandmarkParams {
                    target_dt_max: 5000,
                    ..Default::default()
                },
                "target_dt_max",
            ),
            (
                LandmarkParams {
                    n_fft: 4096,
                    freq_max_hz: 11_000.0,
                    ..Default::default()
                },
                "bits",
            ),
            (
                LandmarkParams {
                    onset_pole: Some(1.0),
                    ..Default::default()
                },
                "onset_pole",
            ),
            (
                LandmarkParams {
                    fanout: 0,
                    ..Default::default()
                },
                "fanout",
            ),
        ];
        for (p, word) in cases {
            let err = p.validate().unwrap_err().to_string();
            assert!(err.contains(word), "{err} should mention {word}");
        }
    }

    #[test]
    fn params_reject_unknown_fields() {
        let err = toml::from_str::<LandmarkParams>("fan_out = 3").unwrap_err();
        assert!(err.to_string().contains("fan_out"));
        let p: LandmarkParams = toml::from_str("fanout = 5").unwrap();
        assert_eq!(p.fanout, 5);
        assert_eq!(p.n_fft, 1024);
    }

    #[test]
    fn peaks_of_a_sum_of_sinusoids_sit_at_their_bins() {
        let params = LandmarkParams {
            onset_pole: None,
            ..Default::default()
        };
        let bin_hz = params.bin_hz();
        // Exactly on bins 12, 40 and 150 (258, 861, 3230 Hz), one in each of the upper three
        // density bands (edges 7, 23, 76), so the density cap does not make them compete.
        let bins = [12u32, 40, 150];
        let freqs: Vec<f64> = bins.iter().map(|&b| f64::from(b) * bin_hz).collect();
        let lm = Landmarker::new(params).unwrap();
        let peaks = lm.peaks(&sines(&freqs, 3.0, 22_050)).unwrap();
        assert!(!peaks.is_empty());
        for p in &peaks {
            assert!(bins.contains(&p.bin), "peak at bin {} is not a tone", p.bin);
        }
        for b in bins {
            assert!(
                peaks.iter().any(|p| p.bin == b),
                "tone at bin {b} not found"
            );
        }
    }

    #[test]
    fn density_cap_bounds_peaks_per_second() {
        // White-ish noise has local maxima everywhere; the cap must bound what is kept.
        let mut state = 1u64;
        let noise: Vec<f32> = (0..22_050 * 5)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        let params = LandmarkParams::default();
        let lm = Landmarker::new(params.clone()).unwrap();
        let peaks = lm.peaks(&noise).unwrap();
        let per_second = peaks.len() as f64 / 5.0;
        // Each band keeps ≤ quota per sliding window, so a band holds ≤ 2·quota per window
        // length in the worst case; in practice close to the target.
        assert!(per_second > 5.0, "{per_second} peaks/s");
        assert!(
            per_second <= 2.0 * params.peaks_per_second,
            "{per_second} peaks/s"
        );
    }

    #[test]
    fn pairs_respect_target_zone_and_fanout() {
        let params = LandmarkParams::default();
        let lm = Landmarker::new(params.clone()).unwrap();
        let peaks: Vec<Peak> = [
            (0, 100),
            (1, 100),
            (2, 105),
            (3, 140),
            (4, 90),
            (5, 95),
            (6, 99),
            (100, 100),
        ]
        .iter()
        .map(|&(frame, bin)| Peak { frame, bin })
        .collect();
        let lms = lm.pair_peaks(&peaks);
        let mut from_first: Vec<(u32, u32, u32)> = lms
            .iter()
            .filter(|l| l.time == 0)
            .map(|l| unpack_hash(l.hash))
            .collect();
        // Frame 1 is too close (dt_min 2), bin 140 is too far (|Δf| 40 > 31); fan-out 3 stops
        // after frames 2, 4, 5.
        from_first.sort_unstable_by_key(|h| h.2);
        assert_eq!(from_first, vec![(100, 105, 2), (100, 90, 4), (100, 95, 5)]);
        // The peak at frame 100 is beyond dt_max 63 from everything: it anchors nothing and
        // is nobody's target.
        assert!(lms
            .iter()
            .all(|l| l.time != 100 && unpack_hash(l.hash).2 <= 63));
    }

    #[test]
    fn silence_short_and_non_finite_input_do_not_panic() {
        let lm = Landmarker::new(LandmarkParams::default()).unwrap();
        assert!(lm.landmarks(&vec![0.0; 22_050]).unwrap().is_empty());
        assert!(matches!(
            lm.landmarks(&[0.1; 100]),
            Err(FingerprintError::TooShort {
                samples: 100,
                needed: 1024
            })
        ));
        assert!(matches!(
            lm.landmarks(&[]),
            Err(FingerprintError::TooShort { samples: 0, .. })
        ));
        let mut y = vec![0.1f32; 5000];
        y[77] = f32::NAN;
        assert!(matches!(
            lm.landmarks(&y),
            Err(FingerprintError::NonFiniteAudio { index: 77, .. })
        ));
    }

    #[test]
    fn band_edges_cover_the_range_in_increasing_order() {
        let e = log_band_edges(2, 257, 4);
        assert_eq!(e.first(), Some(&0));
        assert_eq!(e.last(), Some(&255));
        assert!(e.windows(2).all(|w| w[0] < w[1]), "{e:?}");
        // Log spacing: the lowest band is the narrowest.
        assert!(e[1] - e[0] < e[4] - e[3], "{e:?}");
        // Degenerate: as many bands as bins.
        assert_eq!(log_band_edges(10, 13, 3), vec![0, 1, 2, 3]);
    }

    #[test]
    fn max_filter_matches_brute_force() {
        let (frames, bins) = (7, 9);
        let data: Vec<f32> = (0..frames * bins)
            .map(|i| ((i * 37 + 11) % 23) as f32)
            .collect();
        let got = max_filter(&data, frames, bins, 1, 2);
        for t in 0..frames {
            for k in 0..bins {
                let mut m = f32::NEG_INFINITY;
                for u in t.saturating_sub(1)..(t + 2).min(frames) {
                    for j in k.saturating_sub(2)..(k + 3).min(bins) {
                        m = m.max(data[u * bins + j]);
                    }
                }
                assert_eq!(got[t * bins + k], m, "t={t} k={k}");
            }
        }
    }
}
