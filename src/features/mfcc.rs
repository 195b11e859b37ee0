//! librosa-compatible MFCC (librosa.feature.mfcc with its defaults).
//!
//! The chain is librosa 0.11's: periodic Hann window, centre zero padding of n_fft/2 on each
//! side, |STFT|², Slaney mel filterbank (slaney area norm), `power_to_db(ref=1, amin=1e-10,
//! top_db)` with the floor taken from the maximum of the whole matrix, orthonormal DCT-II.
//! Everything that does not depend on the signal (window, sparse filterbank, DCT matrix,
//! FFT plan) is built once in [`Mfcc::new`]; per-call buffers live in an [`MfccScratch`], so
//! one extractor can be shared by many threads and no frame allocates.

use super::FrameStat;
use crate::error::FeatureError;
use ndarray::Array2;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// librosa's MFCC parameters; `Default` is librosa 0.11's defaults at sr = 22050.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfccParams {
    pub sample_rate: u32,
    pub n_mfcc: usize,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    pub fmin: f64,
    /// None = sample_rate / 2.
    pub fmax: Option<f64>,
    /// power_to_db's dynamic range floor below the maximum (None disables it).
    pub top_db: Option<f64>,
}

impl Default for MfccParams {
    fn default() -> Self {
        Self {
            sample_rate: 22_050,
            n_mfcc: 20,
            n_fft: 2048,
            hop_length: 512,
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            top_db: Some(80.0),
        }
    }
}

impl MfccParams {
    /// The upper mel edge actually used (librosa: `fmax = sr / 2` when None).
    pub fn fmax_effective(&self) -> f64 {
        self.fmax.unwrap_or(f64::from(self.sample_rate) / 2.0)
    }

    /// Checks every parameter librosa would reject (or silently turn into NaN/empty bands).
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |param: &'static str, msg: String| {
            Err(FeatureError::InvalidParams {
                param,
                reason: format!("mfcc: {msg}"),
            })
        };
        let nyquist = f64::from(self.sample_rate) / 2.0;
        let fmax = self.fmax_effective();
        if self.sample_rate == 0 {
            return bad("mfcc.sample_rate", "sample_rate must be > 0".into());
        }
        if self.n_fft < 2 || !self.n_fft.is_multiple_of(2) {
            // Even only: the real FFT is one complex FFT of n_fft/2 (and librosa's centring
            // with an odd n_fft shifts every frame by half a sample anyway).
            return bad(
                "mfcc.n_fft",
                format!("n_fft ({}) must be even and >= 2", self.n_fft),
            );
        }
        if self.hop_length == 0 {
            return bad("mfcc.hop_length", "hop_length must be > 0".into());
        }
        if self.n_mfcc == 0 {
            return bad("mfcc.n_mfcc", "n_mfcc must be > 0".into());
        }
        if self.n_mels < self.n_mfcc {
            return bad(
                "mfcc.n_mels",
                format!(
                    "n_mels ({}) must be >= n_mfcc ({})",
                    self.n_mels, self.n_mfcc
                ),
            );
        }
        if !(self.fmin.is_finite() && self.fmin >= 0.0) {
            return bad(
                "mfcc.fmin",
                format!("fmin ({}) must be finite and >= 0", self.fmin),
            );
        }
        if !(fmax.is_finite() && fmax > self.fmin && fmax <= nyquist) {
            return bad(
                "mfcc.fmax",
                format!(
                    "fmax ({fmax}) must satisfy fmin ({}) < fmax <= sample_rate/2 ({nyquist})",
                    self.fmin
                ),
            );
        }
        if let Some(top_db) = self.top_db {
            if !(top_db.is_finite() && top_db >= 0.0) {
                return bad(
                    "mfcc.top_db",
                    format!("top_db ({top_db}) must be finite and >= 0"),
                );
            }
        }
        Ok(())
    }
}

/// power_to_db's `amin`: powers are clamped to it before the log, which keeps silence finite.
const AMIN: f32 = 1e-10;
// power_to_db's `ref` is 1.0 in the MFCC chain: 10·log10(ref) = 0, so nothing is subtracted.

/// 10 / ln 10: turns a natural log into decibels of power.
const DB_PER_NEPER: f32 = 4.342_944_8;

/// Natural log of a positive, finite, normal float: Cephes `logf` (max relative error
/// ~1e-7, as libm's), written branch-free so the dB loop vectorises instead of making one
/// libm call per value (which was ~10 % of the feature time).
fn ln_positive(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m · 2^e with m in [0.5, 1) (frexp), then m moved to [√½, √2) so ln(m) is small.
    let mut e = (bits >> 23) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= i32::from(small);
    let m = if small { m + m } else { m } - 1.0;
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    for c in [
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ] {
        y = y * m + c;
    }
    let ef = e as f32;
    // ln 2 split in a short exact part and a correction (Cephes' extra precision).
    y = y * m * z - 2.121_944_4e-4 * ef - 0.5 * z;
    m + y + 0.693_359_4 * ef
}

/// Slaney mel scale (librosa `hz_to_mel(htk=False)`): linear below 1 kHz, logarithmic above.
/// The constants and the order of operations are librosa's, so the band edges match bit for bit.
fn hz_to_mel(hz: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / slaney_logstep()
    } else {
        hz / f_sp
    }
}

/// Inverse of [`hz_to_mel`] (librosa `mel_to_hz(htk=False)`).
fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    if mel >= min_log_mel {
        min_log_hz * (slaney_logstep() * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// Step of the log part of the Slaney scale: 27 mels per factor 6.4 in frequency.
fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// `n` band edges equally spaced in mel from fmin to fmax (librosa `mel_frequencies`, which
/// uses numpy's `linspace`: `i * step + start`, last point set to `stop`).
fn mel_frequencies(n: usize, fmin: f64, fmax: f64) -> Vec<f64> {
    let (min_mel, max_mel) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let step = (max_mel - min_mel) / (n.max(2) - 1) as f64;
    let mut mels: Vec<f64> = (0..n).map(|i| i as f64 * step + min_mel).collect();
    if let Some(last) = mels.last_mut() {
        *last = max_mel;
    }
    mels.into_iter().map(mel_to_hz).collect()
}

/// The dense Slaney filterbank exactly as `librosa.filters.mel(htk=False, norm='slaney')`
/// builds it: triangles in float64, stored as float32, then scaled by 2/(f_hi − f_lo) in
/// float64 and stored as float32 again. Row-major, n_mels × (1 + n_fft/2).
fn mel_filterbank_dense(p: &MfccParams) -> Vec<f32> {
    let n_bins = 1 + p.n_fft / 2;
    let sr = f64::from(p.sample_rate);
    // numpy.fft.rfftfreq(n_fft, d=1/sr): j * (1 / (n * d)).
    let bin_hz = 1.0 / (p.n_fft as f64 * (1.0 / sr));
    let fftfreqs: Vec<f64> = (0..n_bins).map(|j| j as f64 * bin_hz).collect();
    let mel_f = mel_frequencies(p.n_mels + 2, p.fmin, p.fmax_effective());
    let mut weights = vec![0f32; p.n_mels * n_bins];
    for (i, row) in weights.chunks_exact_mut(n_bins).enumerate() {
        let (fdiff_lo, fdiff_hi) = (mel_f[i + 1] - mel_f[i], mel_f[i + 2] - mel_f[i + 1]);
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (w, &f) in row.iter_mut().zip(&fftfreqs) {
            let lower = -(mel_f[i] - f) / fdiff_lo;
            let upper = (mel_f[i + 2] - f) / fdiff_hi;
            let tri = 0f64.max(lower.min(upper)) as f32;
            *w = (f64::from(tri) * enorm) as f32;
        }
    }
    weights
}

/// Lanes of the mel dot products: each band's weights are zero-padded to a multiple of this,
/// so the inner loop is fixed-width and vectorises (8 × f32 = one AVX or two SSE registers).
const MEL_LANES: usize = 8;

/// The mel filterbank with only each band's non-zero range stored (a Slaney triangle covers a
/// few to a few dozen of the 1025 FFT bins; the dense product would be ~60× more work).
#[derive(Debug, Clone)]
struct SparseMel {
    /// Per band: first FFT bin, and the range of its (padded) weights in `weights`.
    bands: Vec<(usize, std::ops::Range<usize>)>,
    weights: Vec<f32>,
}

impl SparseMel {
    fn from_dense(dense: &[f32], n_bins: usize) -> Self {
        let mut bands = Vec::new();
        let mut weights = Vec::new();
        for row in dense.chunks_exact(n_bins) {
            let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
            let end = row.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
            let start = weights.len();
            weights.extend_from_slice(&row[first..end]);
            weights.resize(start + (end - first).div_ceil(MEL_LANES) * MEL_LANES, 0.0);
            bands.push((first, start..weights.len()));
        }
        Self { bands, weights }
    }

    /// Length the power buffer must have so every padded band can be read (the tail is zero).
    fn padded_bins(n_bins: usize) -> usize {
        n_bins + MEL_LANES
    }

    /// `out[m] = Σ_j W[m, j] · power[j]` over band m's non-zero bins.
    fn apply(&self, power: &[f32], out: &mut [f32]) {
        for ((first, range), o) in self.bands.iter().zip(out.iter_mut()) {
            let w = &self.weights[range.clone()];
            let p = &power[*first..*first + w.len()];
            let mut acc = [0f32; MEL_LANES];
            for (wc, pc) in w.chunks_exact(MEL_LANES).zip(p.chunks_exact(MEL_LANES)) {
                for ((a, &wv), &pv) in acc.iter_mut().zip(wc).zip(pc) {
                    *a += wv * pv;
                }
            }
            *o = acc.iter().sum();
        }
    }
}

/// Power spectrum |X[k]|², k = 0..=N/2, of a real frame of even length N, through one complex
/// FFT of length N/2 (the even/odd packing trick). This is what realfft does too, but its
/// post-processing loop does not vectorise and cost as much as the FFT itself; here the
/// split is a forward loop over separate arrays that writes the power directly.
pub(crate) struct PowerSpectrum {
    fft: Arc<dyn Fft<f32>>,
    /// 0.5 · exp(−2πik/N), k = 0..N/2 (the ½ of the even/odd split folded in).
    half_twiddles: Vec<Complex<f32>>,
}

impl PowerSpectrum {
    pub(crate) fn new(n_fft: usize) -> Self {
        let half = n_fft / 2;
        let half_twiddles = (0..half)
            .map(|k| {
                let angle = -2.0 * std::f64::consts::PI * k as f64 / n_fft as f64;
                Complex::new((0.5 * angle.cos()) as f32, (0.5 * angle.sin()) as f32)
            })
            .collect();
        Self {
            fft: FftPlanner::<f32>::new().plan_fft_forward(half),
            half_twiddles,
        }
    }

    /// `packed[n] = x[2n] + i·x[2n+1]` on entry (overwritten); fills `power[..=N/2]`.
    pub(crate) fn compute(
        &self,
        packed: &mut [Complex<f32>],
        s: &mut SpectrumScratch,
        power: &mut [f32],
    ) {
        let m = packed.len();
        self.fft
            .process_outofplace_with_scratch(packed, &mut s.z, &mut s.fft_scratch);
        let z = &s.z;
        // X[0] and X[N/2] are the sum and difference of the DC term's two halves.
        power[0] = (z[0].re + z[0].im) * (z[0].re + z[0].im);
        power[m] = (z[0].re - z[0].im) * (z[0].re - z[0].im);
        // conj(Z[M−k]) in forward order, so the main loop reads only forward streams.
        for (r, zz) in s.mirrored[1..].iter_mut().zip(z[1..].iter().rev()) {
            *r = zz.conj();
        }
        // X[k] = ½(a + b) + W^k · (a − b)/(2i), a = Z[k], b = conj(Z[M−k]).
        for (((p, a), b), tw) in power[1..m]
            .iter_mut()
            .zip(&z[1..])
            .zip(&s.mirrored[1..])
            .zip(&self.half_twiddles[1..])
        {
            let (sum, diff) = (a + b, a - b);
            let re = 0.5 * sum.re + tw.re * diff.im + tw.im * diff.re;
            let im = 0.5 * sum.im - tw.re * diff.re + tw.im * diff.im;
            *p = re * re + im * im;
        }
    }

    pub(crate) fn scratch(&self) -> SpectrumScratch {
        let m = self.half_twiddles.len();
        SpectrumScratch {
            z: vec![Complex::default(); m],
            mirrored: vec![Complex::default(); m],
            fft_scratch: vec![Complex::default(); self.fft.get_outofplace_scratch_len()],
        }
    }
}

/// Buffers of [`PowerSpectrum::compute`].
pub(crate) struct SpectrumScratch {
    z: Vec<Complex<f32>>,
    mirrored: Vec<Complex<f32>>,
    fft_scratch: Vec<Complex<f32>>,
}

/// `scipy.fft.dct(type=2, norm='ortho')` as a matrix, first `n_out` rows of the n × n basis,
/// row-major: `D[k, n] = s_k · cos(π k (2n + 1) / (2N))`, s_0 = √(1/N), s_k = √(2/N).
fn dct_ortho_matrix(n_out: usize, n: usize) -> Vec<f64> {
    let nf = n as f64;
    let mut d = Vec::with_capacity(n_out * n);
    for k in 0..n_out {
        let scale = if k == 0 {
            (1.0 / nf).sqrt()
        } else {
            (2.0 / nf).sqrt()
        };
        for i in 0..n {
            d.push(
                scale * (std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2.0 * nf)).cos(),
            );
        }
    }
    d
}

/// scipy's periodic Hann (`get_window('hann', n, fftbins=True)`): 0.5 + 0.5·cos(−π + 2πi/n),
/// evaluated in float64 like scipy, stored as float32.
pub(crate) fn hann_periodic(n: usize) -> Vec<f32> {
    let step = 2.0 * std::f64::consts::PI / n as f64;
    (0..n)
        .map(|i| (0.5 + 0.5 * (i as f64 * step - std::f64::consts::PI).cos()) as f32)
        .collect()
}

/// Per-call working memory for an [`Mfcc`]: FFT buffers and the frame-major mel matrix.
/// Reusing one across calls (e.g. over the chunks of a song) avoids all allocation.
pub struct MfccScratch {
    /// The signal with its centre padding.
    padded: Vec<f32>,
    /// The windowed frame, packed in sample pairs for the half-length FFT.
    packed: Vec<Complex<f32>>,
    spectrum: SpectrumScratch,
    /// |X[k]|², k = 0..=n_fft/2, plus a zero tail for the padded mel bands.
    power: Vec<f32>,
    /// Mel (then dB) values, frame-major: `mel[t * n_mels + m]`.
    mel: Vec<f32>,
    /// Per-band dB sums over frames (float64).
    db_sum: Vec<f64>,
    /// Per-frame cepstra (float64), frame-major, for the statistics beyond the sum.
    cepstra: Vec<f64>,
    /// The frame-sum block of [`Mfcc::frame_stats_with`].
    sum: Vec<f32>,
}

/// A prepared MFCC extractor (window, mel filterbank, DCT matrix, FFT plan), reusable
/// across calls and threads.
pub struct Mfcc {
    params: MfccParams,
    window: Vec<f32>,
    mel: SparseMel,
    /// Orthonormal DCT-II, n_mfcc × n_mels row-major, for per-frame coefficients (float32 as librosa).
    dct: Vec<f32>,
    /// The same matrix in float64, for frame sums accumulated in float64.
    dct64: Vec<f64>,
    spectrum: PowerSpectrum,
}

impl std::fmt::Debug for Mfcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mfcc")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Mfcc {
    pub fn new(params: MfccParams) -> Result<Self, FeatureError> {
        params.validate()?;
        let n_bins = 1 + params.n_fft / 2;
        let mel = SparseMel::from_dense(&mel_filterbank_dense(&params), n_bins);
        let dct64 = dct_ortho_matrix(params.n_mfcc, params.n_mels);
        let dct = dct64.iter().map(|&v| v as f32).collect();
        let spectrum = PowerSpectrum::new(params.n_fft);
        Ok(Self {
            window: hann_periodic(params.n_fft),
            mel,
            dct,
            dct64,
            spectrum,
            params,
        })
    }

    pub fn params(&self) -> &MfccParams {
        &self.params
    }

    /// Number of STFT frames librosa gives for `len` samples with centre padding:
    /// `1 + (len + 2·(n_fft/2) − n_fft) / hop`, i.e. `1 + len / hop` for even n_fft.
    pub fn n_frames(&self, len: usize) -> usize {
        let pad = self.params.n_fft / 2;
        1 + (len + 2 * pad).saturating_sub(self.params.n_fft) / self.params.hop_length
    }

    /// Fresh working memory for [`Mfcc::frame_sum_with`] (and the other calls, which make their own).
    pub fn scratch(&self) -> MfccScratch {
        MfccScratch {
            padded: Vec::new(),
            packed: vec![Complex::default(); self.params.n_fft / 2],
            spectrum: self.spectrum.scratch(),
            power: vec![0.0; SparseMel::padded_bins(1 + self.params.n_fft / 2)],
            mel: Vec::new(),
            db_sum: vec![0.0; self.params.n_mels],
            cepstra: Vec::new(),
            sum: Vec::new(),
        }
    }

    /// The dense mel filterbank (n_mels × (1 + n_fft/2)), identical to `librosa.filters.mel`.
    pub fn mel_basis(&self) -> Array2<f32> {
        let n_bins = 1 + self.params.n_fft / 2;
        let mut dense = Array2::zeros((self.params.n_mels, n_bins));
        for (mut row, (first, range)) in dense.rows_mut().into_iter().zip(&self.mel.bands) {
            // Skip the zero padding, which may run past the last bin.
            for (cell, &w) in row
                .iter_mut()
                .skip(*first)
                .zip(&self.mel.weights[range.clone()])
            {
                *cell = w;
            }
        }
        dense
    }

    /// Power mel spectrogram before dB (`librosa.feature.melspectrogram`), n_mels × frames.
    pub fn mel_power(&self, y: &[f32]) -> Array2<f32> {
        let mut s = self.scratch();
        let frames = self.mel_power_into(y, &mut s);
        let n_mels = self.params.n_mels;
        Array2::from_shape_fn((n_mels, frames), |(m, t)| s.mel[t * n_mels + m])
    }

    /// MFCC matrix, shape (n_mfcc, 1 + len / hop_length).
    ///
    /// One seed chunk (0.5 s = 11025 samples at 22050 Hz) with librosa's defaults gives
    /// 20 coefficients × 22 frames:
    ///
    /// ```rust
    /// use fhe_shazam::features::{Mfcc, MfccParams};
    ///
    /// let mfcc = Mfcc::new(MfccParams::default())?;
    /// let sine = |amplitude: f32| -> Vec<f32> {
    ///     let w = 2.0 * std::f32::consts::PI * 440.0 / 22_050.0; // 440 Hz
    ///     (0..11_025).map(|n| amplitude * (w * n as f32).sin()).collect()
    /// };
    /// let (loud, quiet) = (mfcc.compute(&sine(0.5)), mfcc.compute(&sine(0.05)));
    /// assert_eq!(loud.dim(), (20, 22));
    /// assert_eq!(mfcc.n_frames(11_025), 22);
    /// assert!(loud.iter().chain(quiet.iter()).all(|v| v.is_finite()));
    /// // c0 is the mean log energy (scaled): 20 dB more signal raises it in every frame.
    /// for t in 0..22 {
    ///     assert!(loud[[0, t]] > quiet[[0, t]] + 100.0, "frame {t}");
    /// }
    /// # Ok::<(), fhe_shazam::error::FeatureError>(())
    /// ```
    pub fn compute(&self, y: &[f32]) -> Array2<f32> {
        let mut s = self.scratch();
        let frames = self.mel_power_into(y, &mut s);
        self.power_to_db_in_place(&mut s.mel);
        let n_mels = self.params.n_mels;
        Array2::from_shape_fn((self.params.n_mfcc, frames), |(k, t)| {
            let basis = &self.dct[k * n_mels..(k + 1) * n_mels];
            basis
                .iter()
                .zip(&s.mel[t * n_mels..(t + 1) * n_mels])
                .map(|(a, b)| a * b)
                .sum()
        })
    }

    /// The MFCC of `y` summed over its frames, written to `out` (length n_mfcc): the seed's
    /// chunk feature; `out.len()` must be n_mfcc. The DCT is linear, so the dB frames are summed first (in float64) and
    /// transformed once; this equals summing `compute(y)` over columns, up to rounding.
    pub fn frame_sum_with(&self, y: &[f32], scratch: &mut MfccScratch, out: &mut [f32]) {
        self.mel_power_into(y, scratch);
        self.power_to_db_in_place(&mut scratch.mel);
        let n_mels = self.params.n_mels;
        let db_sum = &mut scratch.db_sum;
        db_sum.fill(0.0);
        for frame in scratch.mel.chunks_exact(n_mels) {
            for (acc, &v) in db_sum.iter_mut().zip(frame) {
                *acc += f64::from(v);
            }
        }
        for (o, basis) in out.iter_mut().zip(self.dct64.chunks_exact(n_mels)) {
            *o = basis
                .iter()
                .zip(db_sum.iter())
                .map(|(a, b)| a * b)
                .sum::<f64>() as f32;
        }
    }

    /// The chunk feature with the frame statistics `stats`: one block of n_mfcc values per
    /// entry, in order (`out.len()` must be n_mfcc × `stats.len()`). The sum block is
    /// [`Mfcc::frame_sum_with`]'s; std and delta are taken over the per-frame cepstra in
    /// float64, which are computed only when asked for.
    pub fn frame_stats_with(
        &self,
        y: &[f32],
        scratch: &mut MfccScratch,
        stats: &[FrameStat],
        out: &mut [f32],
    ) {
        let (n, n_mels) = (self.params.n_mfcc, self.params.n_mels);
        // Also leaves the dB frames in scratch.mel.
        let mut sum = std::mem::take(&mut scratch.sum);
        sum.resize(n, 0.0);
        self.frame_sum_with(y, scratch, &mut sum);
        let frames = scratch.mel.len() / n_mels;
        let c = &mut scratch.cepstra;
        c.clear();
        if stats.iter().any(|s| *s != FrameStat::Sum) {
            for frame in scratch.mel.chunks_exact(n_mels) {
                c.extend(self.dct64.chunks_exact(n_mels).map(|basis| {
                    basis
                        .iter()
                        .zip(frame)
                        .map(|(a, &b)| a * f64::from(b))
                        .sum::<f64>()
                }));
            }
        }
        let at = |t: usize, k: usize| c[t * n + k];
        for (stat, block) in stats.iter().zip(out.chunks_exact_mut(n)) {
            match stat {
                FrameStat::Sum => block.copy_from_slice(&sum),
                FrameStat::Std => {
                    for (k, o) in block.iter_mut().enumerate() {
                        let mean = (0..frames).map(|t| at(t, k)).sum::<f64>() / frames as f64;
                        let var = (0..frames).map(|t| (at(t, k) - mean).powi(2)).sum::<f64>()
                            / frames as f64;
                        *o = var.sqrt() as f32;
                    }
                }
                FrameStat::Delta => {
                    for (k, o) in block.iter_mut().enumerate() {
                        let moves = (1..frames).map(|t| (at(t, k) - at(t - 1, k)).abs());
                        *o = (moves.sum::<f64>() / frames.saturating_sub(1).max(1) as f64) as f32;
                    }
                }
            }
        }
        scratch.sum = sum;
    }

    /// Fills `s.mel` (frame-major) with the power mel spectrogram of `y`; returns the frame count.
    fn mel_power_into(&self, y: &[f32], s: &mut MfccScratch) -> usize {
        let (n_fft, hop, n_mels) = (
            self.params.n_fft,
            self.params.hop_length,
            self.params.n_mels,
        );
        let frames = self.n_frames(y.len());
        let pad = n_fft / 2;
        // librosa's centre=True with pad_mode 'constant': n_fft/2 zeros on each side. One copy
        // of the signal keeps every frame a plain slice (no edge cases in the frame loop).
        s.padded.clear();
        s.padded.resize(pad, 0.0);
        s.padded.extend_from_slice(y);
        s.padded.resize(y.len() + 2 * pad, 0.0);
        s.mel.clear();
        s.mel.resize(frames * n_mels, 0.0);
        for (t, mel_out) in s.mel.chunks_exact_mut(n_mels).enumerate() {
            let frame = &s.padded[t * hop..t * hop + n_fft];
            // Window, and pack sample pairs as complex values for the half-length FFT.
            for ((c, x), w) in s
                .packed
                .iter_mut()
                .zip(frame.chunks_exact(2))
                .zip(self.window.chunks_exact(2))
            {
                *c = Complex::new(x[0] * w[0], x[1] * w[1]);
            }
            self.spectrum
                .compute(&mut s.packed, &mut s.spectrum, &mut s.power);
            self.mel.apply(&s.power, mel_out);
        }
        frames
    }

    /// librosa `power_to_db(S, ref=1, amin=1e-10, top_db)` over the whole matrix, in place.
    /// Powers are also capped at f32::MAX so an overflowed (infinite) power stays finite.
    fn power_to_db_in_place(&self, m: &mut [f32]) {
        for v in m.iter_mut() {
            *v = DB_PER_NEPER * ln_positive(v.clamp(AMIN, f32::MAX));
        }
        // Separate loops with a lane-wise maximum: fused, the running max kept it scalar.
        let mut lanes = [f32::NEG_INFINITY; MEL_LANES];
        let chunks = m.chunks_exact(MEL_LANES);
        let tail = chunks.remainder();
        for chunk in chunks {
            for (l, &v) in lanes.iter_mut().zip(chunk) {
                *l = l.max(v);
            }
        }
        let max = lanes
            .iter()
            .chain(tail)
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        if let Some(top_db) = self.params.top_db {
            // numpy 1.x computes `S_db.max() - top_db` in float64, then compares in float32.
            let floor = (f64::from(max) - top_db) as f32;
            for v in m.iter_mut() {
                *v = v.max(floor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_mfcc() -> Mfcc {
        Mfcc::new(MfccParams::default()).unwrap()
    }

    #[test]
    fn mfcc_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Mfcc>();
    }

    #[test]
    fn slaney_scale_known_points_and_round_trip() {
        assert!((hz_to_mel(0.0)).abs() < 1e-12);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        // 27 mels per factor 6.4 above 1 kHz.
        assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
        for hz in [
            0.0, 10.0, 440.0, 999.9, 1000.0, 1000.1, 4000.0, 11025.0, 22050.0,
        ] {
            let back = mel_to_hz(hz_to_mel(hz));
            assert!((back - hz).abs() <= 1e-9 * hz.max(1.0), "{hz} -> {back}");
        }
    }

    #[test]
    fn mel_filterbank_matches_librosa_values() {
        // Reference values from a pure-Python transcription of librosa 0.11's filters.mel
        // (sr 22050, n_fft 2048, 128 bands, slaney), as float32.
        let basis = default_mfcc().mel_basis();
        assert_eq!(basis.dim(), (128, 1025));
        for &(m, j, want) in REFERENCE_MEL_WEIGHTS {
            let got = basis[(m, j)];
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "W[{m},{j}] = {got}, librosa {want}"
            );
        }
    }

    #[test]
    fn mel_filterbank_shape_properties() {
        let mfcc = default_mfcc();
        let basis = mfcc.mel_basis();
        assert!(basis.iter().all(|&w| w >= 0.0 && w.is_finite()));
        // Slaney triangles overlap pairwise only: no FFT bin feeds more than two bands.
        for col in basis.columns() {
            assert!(col.iter().filter(|&&w| w > 0.0).count() <= 2);
        }
        // Area normalisation: each triangle integrates to ~1 over Hz (exact for wide bands).
        let bin_hz = 22050.0 / 2048.0;
        for m in 100..128 {
            let area: f32 = basis.row(m).sum() * bin_hz;
            assert!((area - 1.0).abs() < 0.02, "band {m} area {area}");
        }
        // The sparse form keeps every non-zero weight and nothing else.
        let nnz = basis.iter().filter(|&&w| w != 0.0).count();
        assert_eq!(nnz, mfcc.mel.weights.iter().filter(|&&w| w != 0.0).count());
        assert!(mfcc.mel.weights.len() < 2 * 1025 + MEL_LANES * 128);
    }

    #[test]
    fn dct_is_orthonormal_and_matches_scipy_scaling() {
        let n = 128;
        let d = dct_ortho_matrix(n, n);
        for a in 0..n {
            for b in 0..n {
                let dot: f64 = (0..n).map(|i| d[a * n + i] * d[b * n + i]).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-12, "row {a}·row {b} = {dot}");
            }
        }
        // scipy.fft.dct(np.ones(N), norm='ortho') = [√N, 0, 0, …].
        let c0: f64 = d[..n].iter().sum();
        assert!((c0 - (n as f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn power_spectrum_matches_a_direct_dft() {
        for n in [2usize, 16, 2048] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7 + 3) % 11) as f32 / 11.0 - 0.4 + (i as f32 * 0.3).sin())
                .collect();
            let ps = PowerSpectrum::new(n);
            let mut packed: Vec<Complex<f32>> = x
                .chunks_exact(2)
                .map(|p| Complex::new(p[0], p[1]))
                .collect();
            let mut power = vec![0f32; n / 2 + 1];
            ps.compute(&mut packed, &mut ps.scratch(), &mut power);
            let energy: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            for (k, &p) in power.iter().enumerate() {
                let (mut re, mut im) = (0f64, 0f64);
                for (i, &v) in x.iter().enumerate() {
                    let a = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                    re += f64::from(v) * a.cos();
                    im += f64::from(v) * a.sin();
                }
                let want = re * re + im * im;
                // float32 FFT: error relative to the frame's total energy (Parseval scale).
                assert!(
                    (f64::from(p) - want).abs() <= 1e-5 * energy * n as f64,
                    "n {n} bin {k}: {p} vs {want}"
                );
            }
        }
    }

    #[test]
    fn fast_ln_matches_f64_ln() {
        let mut x = 1e-10f32;
        let mut worst = 0f64;
        while x < 1e30 {
            for v in [
                x,
                x * 1.000_001,
                x * 1.41,
                x * std::f32::consts::FRAC_1_SQRT_2,
            ] {
                let want = f64::from(v).ln();
                let err = (f64::from(ln_positive(v)) - want).abs() / want.abs().max(1.0);
                worst = worst.max(err);
            }
            x *= 1.013;
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert!((ln_positive(1.0)).abs() < 1e-7);
        assert!((ln_positive(f32::MAX) - 88.722_84).abs() < 1e-4);
    }

    #[test]
    fn hann_window_is_periodic() {
        let w = hann_periodic(2048);
        assert_eq!(w[0], 0.0);
        assert_eq!(w[1024], 1.0);
        for i in 1..1024 {
            assert!((w[i] - w[2048 - i]).abs() < 1e-7);
        }
    }

    #[test]
    fn invalid_params_are_rejected() {
        let base = MfccParams::default();
        let cases = [
            MfccParams {
                n_fft: 0,
                ..base.clone()
            },
            MfccParams {
                n_fft: 2047,
                ..base.clone()
            },
            MfccParams {
                hop_length: 0,
                ..base.clone()
            },
            MfccParams {
                n_mfcc: 0,
                ..base.clone()
            },
            MfccParams {
                n_mels: 10,
                ..base.clone()
            },
            MfccParams {
                sample_rate: 0,
                ..base.clone()
            },
            MfccParams {
                fmax: Some(12_000.0),
                ..base.clone()
            },
            MfccParams {
                fmin: 5000.0,
                fmax: Some(4000.0),
                ..base.clone()
            },
            MfccParams {
                fmin: f64::NAN,
                ..base.clone()
            },
            MfccParams {
                top_db: Some(-1.0),
                ..base.clone()
            },
        ];
        for p in cases {
            assert!(
                matches!(
                    Mfcc::new(p.clone()),
                    Err(FeatureError::InvalidParams { .. })
                ),
                "{p:?} accepted"
            );
        }
    }

    #[test]
    fn frame_count_and_shapes() {
        let mfcc = default_mfcc();
        assert_eq!(mfcc.n_frames(11_025), 22);
        assert_eq!(mfcc.n_frames(22_050), 44);
        assert_eq!(mfcc.n_frames(0), 1);
        assert_eq!(mfcc.compute(&[0.1; 700]).dim(), (20, 2));
        assert_eq!(mfcc.mel_power(&[0.1; 700]).dim(), (128, 2));
    }

    #[test]
    fn power_to_db_floors_at_top_db_below_max() {
        let mfcc = default_mfcc();
        let close =
            |got: &[f32], want: &[f32]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-4);
        let mut m = vec![1.0, 1e-20, 0.0, 1e-3, f32::INFINITY];
        mfcc.power_to_db_in_place(&mut m);
        // max = 10·log10(f32::MAX) ≈ 385.32 dB; everything else floors 80 dB below it.
        assert!(
            close(&m, &[305.3184, 305.3184, 305.3184, 305.3184, 385.3184]),
            "{m:?}"
        );
        let mut m = vec![1.0, 1e-20, 0.0, 1e-3];
        mfcc.power_to_db_in_place(&mut m);
        assert!(close(&m, &[0.0, -80.0, -80.0, -30.0]), "{m:?}");
        let loose = Mfcc::new(MfccParams {
            top_db: None,
            ..MfccParams::default()
        })
        .unwrap();
        let mut m = vec![1.0, 0.0];
        loose.power_to_db_in_place(&mut m);
        assert!(close(&m, &[0.0, -100.0]), "{m:?}");
    }

    #[test]
    fn frame_sum_equals_column_sum_of_compute() {
        let mfcc = default_mfcc();
        let y: Vec<f32> = (0..11_025)
            .map(|i| (i as f32 * 0.05).sin() * 0.3 + ((i * 7919) % 13) as f32 * 0.01)
            .collect();
        let full = mfcc.compute(&y);
        let mut out = vec![0f32; 20];
        mfcc.frame_sum_with(&y, &mut mfcc.scratch(), &mut out);
        for (k, &o) in out.iter().enumerate() {
            let want: f64 = full.row(k).iter().map(|&v| f64::from(v)).sum();
            assert!(
                (f64::from(o) - want).abs() < 1e-3 * want.abs().max(1.0),
                "coef {k}: {o} vs {want}"
            );
        }
    }

    #[test]
    fn single_sine_peaks_in_the_right_band() {
        // A 1 kHz tone must put its energy in the band whose centre is nearest 1 kHz.
        let mfcc = default_mfcc();
        let y: Vec<f32> = (0..4096)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 22050.0).sin())
            .collect();
        let mel = mfcc.mel_power(&y);
        let col = mel.column(4);
        let best = (0..128).max_by(|&a, &b| col[a].total_cmp(&col[b])).unwrap();
        let centres = mel_frequencies(130, 0.0, 11025.0);
        let nearest = (0..128)
            .min_by(|&a, &b| {
                (centres[a + 1] - 1000.0)
                    .abs()
                    .total_cmp(&(centres[b + 1] - 1000.0).abs())
            })
            .unwrap();
        assert_eq!(best, nearest);
    }

    /// (band, bin, weight) from librosa's algorithm transcribed to pure Python.
    const REFERENCE_MEL_WEIGHTS: &[(usize, usize, f32)] = &[
        (0, 1, 0.016182853),
        (0, 3, 0.028990088),
        (0, 4, 0.012807235),
        (1, 3, 0.009779235),
        (1, 5, 0.035393704),
        (1, 7, 0.003027999),
        (5, 12, 0.00034761932),
        (5, 14, 0.032713324),
        (5, 16, 0.012459615),
        (39, 94, 0.007920806),
        (39, 96, 0.035966262),
        (39, 98, 0.007843365),
        (40, 96, 0.000401402),
        (40, 99, 0.029527638),
        (40, 101, 0.0028617969),
        (64, 182, 0.0010807638),
        (64, 187, 0.017278831),
        (64, 191, 0.0024033422),
        (100, 474, 0.00030515395),
        (100, 487, 0.006753509),
        (100, 499, 0.00017963212),
        (127, 971, 7.1848153e-06),
        (127, 997, 0.0034852505),
        (127, 1023, 0.0001302603),
    ];
}
