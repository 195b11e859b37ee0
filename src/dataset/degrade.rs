//! Signal degradations that turn a clean excerpt into what a phone would record: speed change,
//! room reverb, additive noise at a set SNR, a telephone band-pass, 8 kHz speech coding, dynamic
//! range compression and the recording level. Each stage has more than one algorithm (the
//! first ones here, the held-out ones in [`super::families`]), so a model can be trained on
//! some and tested on others; [`Degradation::generators`] names the algorithms a query used. [`degrade`] applies one [`Degradation`] to a whole buffer (training-time
//! augmentation); [`apply`] first cuts the query excerpt it describes out of a clip.
//!
//! Every random choice comes from the `rng` the caller passes, so a query is reproducible from
//! its parameters: the query sets use [`Degradation::rng`].

use super::families::{self, ExternalCodec};
use crate::audio::resample::resample;
use crate::error::DatasetError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Colour of the added noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseColour {
    /// Flat spectrum (Gaussian samples).
    White,
    /// Equal power per octave (Voss-McCartney), closer to room and traffic noise.
    Pink,
    /// −6 dB per octave (leaky integrated white noise): rumble, traffic, wind.
    Brown,
    /// Several talkers at once (formant-synthesised speech): a café, a crowd.
    Babble,
}

impl NoiseColour {
    pub fn name(self) -> &'static str {
        match self {
            NoiseColour::White => "white",
            NoiseColour::Pink => "pink",
            NoiseColour::Brown => "brown",
            NoiseColour::Babble => "babble",
        }
    }
}

/// Noise added at a signal-to-noise ratio measured against the buffer's own RMS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AddedNoise {
    pub snr_db: f64,
    pub colour: NoiseColour,
}

/// How a band limit is made.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BandFilter {
    /// 4th-order Butterworth high-pass and low-pass (IIR biquads, minimum phase).
    #[default]
    Butterworth,
    /// Linear-phase windowed-sinc FIR (Blackman), steeper and without phase distortion.
    Fir,
}

/// A band-pass filter from `low_hz` to `high_hz`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandPass {
    pub low_hz: f64,
    pub high_hz: f64,
    #[serde(default)]
    pub filter: BandFilter,
}

/// The telephone band (ITU-T G.712).
pub const PHONE_BAND: BandPass = BandPass {
    low_hz: 300.0,
    high_hz: 3400.0,
    filter: BandFilter::Butterworth,
};

/// The telephone sample rate every codec runs at (G.711, GSM, narrowband Opus).
pub const PHONE_RATE_HZ: u32 = 8_000;

/// A speech codec at [`PHONE_RATE_HZ`]: the audio is resampled to 8 kHz, coded, decoded and
/// resampled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// G.711-style 8-bit μ-law (64 kbit/s): a memoryless companding quantizer.
    MuLaw,
    /// IMA ADPCM, 4 bits per sample (32 kbit/s): adaptive differential coding.
    ImaAdpcm,
    /// GSM 06.10 full rate (13 kbit/s, ffmpeg's libgsm): a linear-predictive vocoder.
    Gsm,
    /// Opus at 12 kbit/s in VoIP mode (ffmpeg's libopus): SILK/CELT transform coding.
    Opus,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::MuLaw => "mu_law",
            Codec::ImaAdpcm => "ima_adpcm",
            Codec::Gsm => "gsm",
            Codec::Opus => "opus",
        }
    }

    /// The external codec that runs it, for codecs that need ffmpeg.
    pub fn external(self) -> Option<ExternalCodec> {
        match self {
            Codec::MuLaw | Codec::ImaAdpcm => None,
            Codec::Gsm => Some(ExternalCodec::Gsm),
            Codec::Opus => Some(ExternalCodec::Opus),
        }
    }
}

/// The algorithm of a room's impulse response.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RoomModel {
    /// Direct path, a few random early reflections and an exponentially decaying Gaussian tail.
    #[default]
    Statistical,
    /// Image sources of a random shoebox room (Allen & Berkley 1979).
    ImageMethod,
    /// Schroeder's reverberator: four parallel combs and two all-passes.
    Schroeder,
}

/// A room: its reverberation time and how its response is made.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub rt60_s: f64,
    #[serde(default)]
    pub model: RoomModel,
}

/// Feed-forward dynamic range compression ([`super::families::compress`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Compressor {
    /// Threshold relative to the recording's own RMS.
    pub threshold_db: f64,
    pub ratio: f64,
}

/// A random colouring of the channel (a loudspeaker's, a microphone's or a phone's frequency
/// response): [`EQ_BANDS`] peaking biquads at log-uniform centres, each boosting or cutting by
/// up to `max_gain_db`. The bands are drawn from the degradation's random stream, like a
/// room's impulse response, so the query is reproducible from these parameters and its seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RandomEq {
    pub max_gain_db: f64,
}

/// Peaking bands of a [`RandomEq`].
pub const EQ_BANDS: usize = 5;
/// Centre frequencies of the bands, drawn log-uniformly (clamped below 0.45 × the rate).
const EQ_CENTRE_HZ: std::ops::Range<f64> = 100.0..8_000.0;
/// Quality factors, drawn log-uniformly: an octave and a half down to half an octave wide.
const EQ_Q: std::ops::Range<f64> = 0.7..3.0;

/// One algorithm a degradation used: the unit that training and testing keep apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generator {
    Speed,
    Room(RoomModel),
    Noise(NoiseColour),
    Compressor,
    Eq,
    Band(BandFilter),
    Codec(Codec),
    Gain,
}

impl std::fmt::Display for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Generator::Speed => f.write_str("speed change"),
            Generator::Room(m) => write!(f, "{} room", m.name()),
            Generator::Noise(c) => write!(f, "{} noise", c.name()),
            Generator::Compressor => f.write_str("compressor"),
            Generator::Eq => f.write_str("random peaking EQ"),
            Generator::Band(b) => write!(f, "{} band-pass", b.name()),
            Generator::Codec(c) => write!(f, "{} codec", c.name()),
            Generator::Gain => f.write_str("level change"),
        }
    }
}

impl RoomModel {
    pub fn name(self) -> &'static str {
        match self {
            RoomModel::Statistical => "statistical",
            RoomModel::ImageMethod => "image-method",
            RoomModel::Schroeder => "Schroeder",
        }
    }
}

impl BandFilter {
    pub fn name(self) -> &'static str {
        match self {
            BandFilter::Butterworth => "Butterworth",
            BandFilter::Fir => "FIR",
        }
    }
}

/// The concrete parameters of one degraded query. The chain runs in a fixed order that follows
/// the acoustic path: speed (the playback) → room reverb → noise (at the microphone) →
/// compressor (the phone's gain control) → channel colouring → band-pass → speech codec at
/// 8 kHz (the phone channel) → level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Degradation {
    /// Start of the query in the source clip, in seconds.
    pub offset_s: f64,
    /// Length of the query as heard (after the speed change), in seconds.
    pub seconds: f64,
    /// Playback speed factor (1.0: unchanged; 1.02: 2 % faster and shorter).
    pub speed: f64,
    /// The room the query was played in, if any.
    pub room: Option<Room>,
    pub noise: Option<AddedNoise>,
    /// Dynamic range compression (a phone's automatic gain control), if any.
    pub compressor: Option<Compressor>,
    /// A random frequency response of the channel, if any.
    pub eq: Option<RandomEq>,
    pub band_pass: Option<BandPass>,
    /// The speech codec of the phone channel, if any.
    pub codec: Option<Codec>,
    /// Gain applied last (the recording's level: phone, distance, gain control), if any.
    pub gain_db: Option<f64>,
    /// Seed of the noise and room impulse response ([`Degradation::rng`]).
    pub seed: u64,
}

/// Limits that keep every stage well defined (the resampler refuses ratios ≥ 33).
const SPEED_RANGE: std::ops::RangeInclusive<f64> = 0.5..=2.0;
const MAX_RT60_S: f64 = 5.0;
const SNR_RANGE_DB: std::ops::RangeInclusive<f64> = -30.0..=100.0;
const GAIN_RANGE_DB: std::ops::RangeInclusive<f64> = -60.0..=40.0;

impl Degradation {
    /// No degradation: the excerpt `[offset_s, offset_s + seconds)` as it is.
    pub fn clean(offset_s: f64, seconds: f64, seed: u64) -> Self {
        Self {
            offset_s,
            seconds,
            speed: 1.0,
            room: None,
            noise: None,
            compressor: None,
            eq: None,
            band_pass: None,
            codec: None,
            gain_db: None,
            seed,
        }
    }

    /// The random stream of this query's noise and room: the same parameters, the same audio.
    pub fn rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed)
    }

    /// The algorithms this degradation runs, in chain order.
    pub fn generators(&self) -> Vec<Generator> {
        let mut g = Vec::new();
        if self.speed != 1.0 {
            g.push(Generator::Speed);
        }
        g.extend(self.room.map(|r| Generator::Room(r.model)));
        g.extend(self.noise.map(|n| Generator::Noise(n.colour)));
        g.extend(self.compressor.map(|_| Generator::Compressor));
        g.extend(self.eq.map(|_| Generator::Eq));
        g.extend(self.band_pass.map(|b| Generator::Band(b.filter)));
        g.extend(self.codec.map(Generator::Codec));
        g.extend(self.gain_db.map(|_| Generator::Gain));
        g
    }

    /// Checks the parameters against a sample rate before any work starts.
    pub fn validate(&self, sample_rate: u32) -> Result<(), DatasetError> {
        let bad = |reason: String| Err(DatasetError::InvalidDegradation(reason));
        if sample_rate == 0 {
            return bad("sample rate is 0 Hz".into());
        }
        if !(self.offset_s.is_finite() && self.offset_s >= 0.0) {
            return bad(format!("offset_s = {}, expected ≥ 0", self.offset_s));
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0) {
            return bad(format!("seconds = {}, expected > 0", self.seconds));
        }
        if !SPEED_RANGE.contains(&self.speed) {
            return bad(format!(
                "speed = {}, expected {}..={}",
                self.speed,
                SPEED_RANGE.start(),
                SPEED_RANGE.end()
            ));
        }
        if let Some(Room { rt60_s: rt60, .. }) = self.room {
            if !(rt60 > 0.0 && rt60 <= MAX_RT60_S) {
                return bad(format!("rt60_s = {rt60}, expected in (0, {MAX_RT60_S}]"));
            }
        }
        if let Some(n) = self.noise {
            if !SNR_RANGE_DB.contains(&n.snr_db) {
                return bad(format!(
                    "snr_db = {}, expected {}..={}",
                    n.snr_db,
                    SNR_RANGE_DB.start(),
                    SNR_RANGE_DB.end()
                ));
            }
        }
        if let Some(g) = self.gain_db {
            if !GAIN_RANGE_DB.contains(&g) {
                return bad(format!(
                    "gain_db = {g}, expected {}..={}",
                    GAIN_RANGE_DB.start(),
                    GAIN_RANGE_DB.end()
                ));
            }
        }
        let nyquist = sample_rate as f64 / 2.0;
        if let Some(b) = self.band_pass {
            if !(b.low_hz > 0.0 && b.low_hz < b.high_hz && b.high_hz < nyquist) {
                return bad(format!(
                    "band-pass {}–{} Hz, expected 0 < low < high < {nyquist} Hz",
                    b.low_hz, b.high_hz
                ));
            }
        }
        if let Some(c) = self.compressor {
            if !(c.ratio.is_finite() && c.ratio >= 1.0 && (-60.0..=20.0).contains(&c.threshold_db))
            {
                return bad(format!(
                    "compressor {} dB, ratio {}: expected a threshold in -60..=20 dB and a ratio ≥ 1",
                    c.threshold_db, c.ratio
                ));
            }
        }
        if let Some(eq) = self.eq {
            if !(eq.max_gain_db.is_finite() && (0.0..=24.0).contains(&eq.max_gain_db)) {
                return bad(format!(
                    "eq max_gain_db = {}, expected 0..=24",
                    eq.max_gain_db
                ));
            }
        }
        if let Some(codec) = self.codec {
            // The resampler's ratio limit; 8 kHz from 22.05 kHz is 2.8.
            let rate = PHONE_RATE_HZ;
            if sample_rate.max(rate) / sample_rate.min(rate) >= 32 {
                return bad(format!(
                    "the {} codec runs at {rate} Hz, out of reach from {sample_rate} Hz",
                    codec.name()
                ));
            }
        }
        Ok(())
    }
}

/// The resampling target that plays audio `speed` times faster when read back at
/// `sample_rate` (the true factor is `sample_rate / rate`, within 1/(2·rate) of `speed`).
fn speed_rate(sample_rate: u32, speed: f64) -> u32 {
    ((sample_rate as f64 / speed).round() as u32).max(1)
}

/// Applies the whole chain of `d` (except the cut) to `samples`. The output has
/// `len / speed` samples (the same length when `speed` is 1). Used for queries via [`apply`] and
/// directly for training-time augmentation (e.g. `Degradation::clean(0.0, len_s, seed)` with
/// `noise` set).
pub fn degrade(
    samples: &[f32],
    sample_rate: u32,
    d: &Degradation,
    rng: &mut impl Rng,
) -> Result<Vec<f32>, DatasetError> {
    d.validate(sample_rate)?;
    let mut x = if d.speed == 1.0 {
        samples.to_vec()
    } else {
        resample(samples, sample_rate, speed_rate(sample_rate, d.speed))?
    };
    if let Some(room) = d.room {
        let rir = match room.model {
            RoomModel::Statistical => room_impulse_response(room.rt60_s, sample_rate, rng),
            RoomModel::ImageMethod => {
                families::ShoeboxRoom::draw(room.rt60_s, rng).impulse_response(sample_rate)
            }
            RoomModel::Schroeder => families::schroeder_impulse_response(room.rt60_s, sample_rate),
        };
        x = convolve_keep_loudness(&x, &rir);
    }
    if let Some(n) = d.noise {
        add_noise(&mut x, sample_rate, n, rng);
    }
    if let Some(c) = d.compressor {
        families::compress(&mut x, sample_rate, c.threshold_db, c.ratio);
    }
    if let Some(eq) = d.eq {
        random_eq(&mut x, sample_rate, eq, rng);
    }
    if let Some(b) = d.band_pass {
        match b.filter {
            BandFilter::Butterworth => band_pass(&mut x, sample_rate, b),
            BandFilter::Fir => x = families::fir_band_pass(&x, sample_rate, b.low_hz, b.high_hz),
        }
    }
    if let Some(codec) = d.codec {
        x = match codec.external() {
            Some(external) => families::codec_round_trip(&x, sample_rate, external)?,
            None => {
                let (len, rate) = (x.len(), PHONE_RATE_HZ);
                let mut low = resample(&x, sample_rate, rate)?;
                match codec {
                    Codec::ImaAdpcm => low = families::ima_adpcm_round_trip(&low),
                    _ => low.iter_mut().for_each(|s| *s = mu_law_round_trip(*s)),
                }
                let mut back = resample(&low, rate, sample_rate)?;
                back.resize(len, 0.0);
                back
            }
        };
    }
    if let Some(g) = d.gain_db {
        let g = 10f64.powf(g / 20.0) as f32;
        x.iter_mut().for_each(|s| *s *= g);
    }
    Ok(x)
}

/// Cuts the query `d` describes out of the clip `samples` and degrades it: the result has
/// exactly `round(d.seconds · sample_rate)` samples. Errors when the query does not fit in the
/// clip. A result that would clip in a 16-bit file is scaled down to a peak just below full
/// scale (a phone's gain control), never hard-clipped.
pub fn apply(
    samples: &[f32],
    sample_rate: u32,
    d: &Degradation,
    rng: &mut impl Rng,
) -> Result<Vec<f32>, DatasetError> {
    d.validate(sample_rate)?;
    let sr = sample_rate as f64;
    let start = (d.offset_s * sr).round() as usize;
    let len = (d.seconds * sr).round() as usize;
    // Source samples needed so that, after the speed change, `len` samples remain.
    let source = if d.speed == 1.0 {
        len
    } else {
        (len as f64 * sr / speed_rate(sample_rate, d.speed) as f64).ceil() as usize
    };
    if start.saturating_add(source) > samples.len() {
        return Err(DatasetError::InvalidDegradation(format!(
            "query {:.3}–{:.3} s needs {} source samples from sample {start}, the clip has {}",
            d.offset_s,
            d.offset_s + d.seconds * d.speed,
            source,
            samples.len()
        )));
    }
    let mut out = degrade(&samples[start..start + source], sample_rate, d, rng)?;
    // The resampler's output may be a sample short or long of the nominal length.
    out.resize(len, 0.0);
    limit_peak(&mut out);
    Ok(out)
}

/// Largest peak written to 16-bit files: just below full scale.
const MAX_PEAK: f32 = 0.999;

fn limit_peak(x: &mut [f32]) {
    let peak = x.iter().fold(0.0f32, |m, &s| m.max(s.abs()));
    if peak > MAX_PEAK {
        let g = MAX_PEAK / peak;
        x.iter_mut().for_each(|s| *s *= g);
    }
}

/// Root mean square (in f64: a 30 s clip has 660 k terms).
pub fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| s as f64 * s as f64).sum::<f64>() / x.len() as f64).sqrt()
}

/// Adds noise of the given colour so that rms(x) / rms(noise) is exactly `snr_db`. A silent
/// buffer has no defined SNR and gets no noise.
pub fn add_noise(x: &mut [f32], sample_rate: u32, noise: AddedNoise, rng: &mut impl Rng) {
    let signal = rms(x);
    if signal == 0.0 {
        return;
    }
    let n = coloured_noise(x.len(), sample_rate, noise.colour, rng);
    let gain = signal / 10f64.powf(noise.snr_db / 20.0) / rms(&n).max(f64::MIN_POSITIVE);
    for (s, v) in x.iter_mut().zip(&n) {
        *s += (gain * *v as f64) as f32;
    }
}

/// Rows of the Voss-McCartney generator: the slowest row changes every 2^15 samples, so the
/// 1/f slope holds down to ~1 Hz at 22050 Hz.
const PINK_ROWS: usize = 16;

/// Talkers in [`NoiseColour::Babble`]: beyond ~6 voices babble stops being intelligible.
const BABBLE_TALKERS: usize = 6;

/// Zero-mean noise of `len` samples at `sample_rate` (unscaled).
pub fn coloured_noise(
    len: usize,
    sample_rate: u32,
    colour: NoiseColour,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let mut n: Vec<f32> = match colour {
        NoiseColour::Brown => families::brown_noise(len, rng),
        NoiseColour::Babble => families::babble(len, sample_rate, BABBLE_TALKERS, rng),
        NoiseColour::White => (0..len)
            .map(|_| rng.sample::<f32, _>(StandardNormal))
            .collect(),
        NoiseColour::Pink => {
            // Voss-McCartney: row k is redrawn every 2^k samples (the row of the counter's
            // lowest set bit), so the sum has equal power per octave; a white term fills the
            // top octave.
            let mut rows = [0f32; PINK_ROWS];
            for r in rows.iter_mut() {
                *r = rng.gen_range(-1.0..1.0);
            }
            let mut sum: f32 = rows.iter().sum();
            (0..len)
                .map(|i| {
                    let k = ((i as u64 + 1).trailing_zeros() as usize).min(PINK_ROWS - 1);
                    let new = rng.gen_range(-1.0..1.0);
                    sum += new - rows[k];
                    rows[k] = new;
                    sum + rng.gen_range(-1.0f32..1.0)
                })
                .collect()
        }
    };
    let mean = n.iter().map(|&v| v as f64).sum::<f64>() / len.max(1) as f64;
    n.iter_mut().for_each(|v| *v -= mean as f32);
    n
}

/// One biquad section (RBJ audio-EQ cookbook), run in transposed direct form II in f64.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    /// RBJ low-pass (`high_pass = false`) or high-pass at `f0` with quality `q`.
    fn new(high_pass: bool, f0: f64, q: f64, sample_rate: f64) -> Self {
        let w0 = std::f64::consts::TAU * f0 / sample_rate;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha;
        let (b0, b1) = if high_pass {
            ((1.0 + cos) / 2.0, -(1.0 + cos))
        } else {
            ((1.0 - cos) / 2.0, 1.0 - cos)
        };
        Self {
            b: [b0 / a0, b1 / a0, b0 / a0],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
        }
    }

    /// RBJ peaking EQ at `f0`: `gain_db` at the centre, 0 dB far from it.
    fn peaking(f0: f64, gain_db: f64, q: f64, sample_rate: f64) -> Self {
        let a = 10f64.powf(gain_db / 40.0);
        let w0 = std::f64::consts::TAU * f0 / sample_rate;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha / a;
        Self {
            b: [
                (1.0 + alpha * a) / a0,
                -2.0 * cos / a0,
                (1.0 - alpha * a) / a0,
            ],
            a: [-2.0 * cos / a0, (1.0 - alpha / a) / a0],
        }
    }

    fn run(&self, x: &mut [f32]) {
        let (mut z1, mut z2) = (0.0f64, 0.0f64);
        for s in x.iter_mut() {
            let v = *s as f64;
            let y = self.b[0] * v + z1;
            z1 = self.b[1] * v - self.a[0] * y + z2;
            z2 = self.b[2] * v - self.a[1] * y;
            *s = y as f32;
        }
    }
}

/// Colours `x` with [`EQ_BANDS`] peaking biquads drawn from `rng` ([`RandomEq`]).
pub fn random_eq(x: &mut [f32], sample_rate: u32, eq: RandomEq, rng: &mut impl Rng) {
    let sr = sample_rate as f64;
    fn log_uniform(rng: &mut impl Rng, r: std::ops::Range<f64>) -> f64 {
        rng.gen_range(r.start.ln()..r.end.ln()).exp()
    }
    for _ in 0..EQ_BANDS {
        let f0 = log_uniform(rng, EQ_CENTRE_HZ).min(0.45 * sr);
        let q = log_uniform(rng, EQ_Q);
        let gain_db = rng.gen_range(-eq.max_gain_db..=eq.max_gain_db);
        Biquad::peaking(f0, gain_db, q, sr).run(x);
    }
}

/// Q of the two sections of a 4th-order Butterworth filter: 1 / (2 cos θ) for the pole angles
/// θ = π/8 and 3π/8.
fn butterworth4_q() -> [f64; 2] {
    [1, 3].map(|k| 1.0 / (2.0 * (k as f64 * std::f64::consts::PI / 8.0).cos()))
}

/// 4th-order Butterworth high-pass at `low_hz` then low-pass at `high_hz`, as four biquads.
pub fn band_pass(x: &mut [f32], sample_rate: u32, band: BandPass) {
    let sr = sample_rate as f64;
    for q in butterworth4_q() {
        Biquad::new(true, band.low_hz, q, sr).run(x);
        Biquad::new(false, band.high_hz, q, sr).run(x);
    }
}

/// G.711 μ-law constant.
const MU: f64 = 255.0;
/// 8-bit sign-magnitude codes: magnitudes 0..=127.
const MU_LAW_LEVELS: f64 = 127.0;

/// 8-bit μ-law: compress, quantize to a sign and 7-bit magnitude, expand. The continuous
/// μ = 255 law that G.711's segments approximate; inputs are clipped to [-1, 1].
pub fn mu_law_round_trip(x: f32) -> f32 {
    let x = (x as f64).clamp(-1.0, 1.0);
    let y = x.signum() * (1.0 + MU * x.abs()).ln() / (1.0 + MU).ln();
    let q = (y * MU_LAW_LEVELS).round() / MU_LAW_LEVELS;
    (q.signum() * ((1.0 + MU).powf(q.abs()) - 1.0) / MU) as f32
}

/// Number and span of early reflections: first-order wall reflections of a living room arrive
/// within ~40 ms of the direct sound.
const EARLY_REFLECTIONS: usize = 6;
const EARLY_MS: std::ops::Range<f64> = 2.0..40.0;
/// The diffuse tail starts after the first reflections.
const TAIL_START_MS: f64 = 5.0;
/// Tail energy relative to the direct path: a direct-to-reverberant ratio of 0 dB, a phone a
/// couple of metres from the loudspeaker.
const TAIL_ENERGY: f64 = 1.0;

/// A synthetic room impulse response of `rt60` seconds: unit direct path, a few early
/// reflections, and Gaussian noise under an exponential envelope that falls 60 dB in `rt60`.
pub fn room_impulse_response(rt60: f64, sample_rate: u32, rng: &mut impl Rng) -> Vec<f32> {
    let sr = sample_rate as f64;
    let len = ((rt60 * sr).ceil() as usize).max(2);
    // Amplitude envelope e^{-decay·t}: 20·log10(e^{-decay·rt60}) = -60 dB.
    let decay = 3.0 * 10f64.ln() / rt60;
    let envelope = |n: usize| (-decay * n as f64 / sr).exp();
    let mut h = vec![0f64; len];
    let tail_start = ((TAIL_START_MS / 1000.0 * sr) as usize).min(len - 1);
    let tail: Vec<f64> = (tail_start..len)
        .map(|n| rng.sample::<f64, _>(StandardNormal) * envelope(n))
        .collect();
    let energy: f64 = tail.iter().map(|v| v * v).sum();
    let g = (TAIL_ENERGY / energy.max(f64::MIN_POSITIVE)).sqrt();
    for (slot, v) in h[tail_start..].iter_mut().zip(&tail) {
        *slot = g * v;
    }
    for _ in 0..EARLY_REFLECTIONS {
        let n = ((rng.gen_range(EARLY_MS) / 1000.0 * sr) as usize).min(len - 1);
        let sign = if rng.gen::<bool>() { 1.0 } else { -1.0 };
        h[n] += sign * rng.gen_range(0.2..0.6) * envelope(n);
    }
    h[0] = 1.0;
    h.into_iter().map(|v| v as f32).collect()
}

/// `x` convolved with `h` (FFT, zero-padded to a power of two), cut to `x`'s length and scaled
/// back to `x`'s RMS so reverb changes colour, not loudness.
pub fn convolve_keep_loudness(x: &[f32], h: &[f32]) -> Vec<f32> {
    if x.is_empty() || h.is_empty() {
        return x.to_vec();
    }
    let n = (x.len() + h.len() - 1).next_power_of_two();
    let mut planner = realfft::RealFftPlanner::<f32>::new();
    let forward = planner.plan_fft_forward(n);
    let inverse = planner.plan_fft_inverse(n);
    let spectrum = |v: &[f32]| {
        let mut buf = forward.make_input_vec();
        buf[..v.len()].copy_from_slice(v);
        let mut out = forward.make_output_vec();
        forward
            .process(&mut buf, &mut out)
            .expect("buffers come from the plan");
        out
    };
    let mut spec = spectrum(x);
    for (a, b) in spec.iter_mut().zip(spectrum(h)) {
        *a *= b;
    }
    // The inverse of a real signal's spectrum: DC and Nyquist bins are real up to rounding.
    spec[0].im = 0.0;
    if let Some(last) = spec.last_mut() {
        last.im = 0.0;
    }
    let mut y = inverse.make_output_vec();
    inverse
        .process(&mut spec, &mut y)
        .expect("buffers come from the plan");
    y.truncate(x.len());
    let (rx, ry) = (rms(x), rms(&y));
    let g = if ry > 0.0 { rx / ry } else { 0.0 };
    y.iter_mut().for_each(|v| *v = (*v as f64 * g) as f32);
    y
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::f32::consts::TAU;

    const SR: u32 = 22_050;

    fn sine(freq: f32, seconds: f32) -> Vec<f32> {
        (0..(seconds * SR as f32) as usize)
            .map(|n| 0.5 * (TAU * freq * n as f32 / SR as f32).sin())
            .collect()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    #[test]
    fn added_noise_has_the_requested_snr() {
        let clean = sine(440.0, 3.0);
        for (snr, colour) in [
            (20.0, NoiseColour::White),
            (10.0, NoiseColour::Pink),
            (5.0, NoiseColour::White),
            (-3.0, NoiseColour::Pink),
        ] {
            let mut x = clean.clone();
            add_noise(
                &mut x,
                SR,
                AddedNoise {
                    snr_db: snr,
                    colour,
                },
                &mut ChaCha8Rng::seed_from_u64(1),
            );
            let noise: Vec<f32> = x.iter().zip(&clean).map(|(a, b)| a - b).collect();
            let measured = db(rms(&clean) / rms(&noise));
            assert!((measured - snr).abs() < 0.2, "{colour:?} {snr}: {measured}");
        }
    }

    /// Power of `x` between `lo` and `hi` Hz (periodogram).
    fn band_power(x: &[f32], lo: f64, hi: f64) -> f64 {
        let n = x.len();
        let mut planner = realfft::RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(n);
        let mut buf = x.to_vec();
        let mut spec = fft.make_output_vec();
        fft.process(&mut buf, &mut spec).unwrap();
        let hz = SR as f64 / n as f64;
        spec.iter()
            .enumerate()
            .filter(|(k, _)| (lo..hi).contains(&(*k as f64 * hz)))
            .map(|(_, c)| c.norm_sqr() as f64)
            .sum()
    }

    #[test]
    fn pink_noise_has_equal_power_per_octave_and_white_does_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let pink = coloured_noise(1 << 18, SR, NoiseColour::Pink, &mut rng);
        let white = coloured_noise(1 << 18, SR, NoiseColour::White, &mut rng);
        // Octave 100–200 Hz against 3.2–6.4 kHz: 0 dB for pink, −15 dB (per-Hz flat) for white.
        let ratio = |x: &[f32]| {
            10.0 * (band_power(x, 100.0, 200.0) / band_power(x, 3200.0, 6400.0)).log10()
        };
        let (p, w) = (ratio(&pink), ratio(&white));
        assert!(p.abs() < 4.0, "pink octave ratio {p} dB");
        assert!((w + 15.05).abs() < 1.5, "white octave ratio {w} dB");
    }

    #[test]
    fn band_pass_keeps_the_phone_band_only() {
        let gain_db = |f: f32| {
            let clean = sine(f, 2.0);
            let mut x = clean.clone();
            band_pass(&mut x, SR, PHONE_BAND);
            // Skip the first second: the filters' transient.
            let half = x.len() / 2;
            db(rms(&x[half..]) / rms(&clean[half..]))
        };
        assert!(gain_db(100.0) < -20.0, "100 Hz: {} dB", gain_db(100.0));
        assert!(gain_db(6000.0) < -20.0, "6 kHz: {} dB", gain_db(6000.0));
        assert!(gain_db(1000.0).abs() < 1.0, "1 kHz: {} dB", gain_db(1000.0));
        // Butterworth: −3 dB at the corners.
        assert!((gain_db(3400.0) + 3.0).abs() < 0.5, "{}", gain_db(3400.0));
    }

    #[test]
    fn peaking_band_has_its_gain_at_the_centre_and_none_far_away() {
        let gain_db = |f: f32, band_db: f64| {
            let clean = sine(f, 2.0);
            let mut x = clean.clone();
            Biquad::peaking(1000.0, band_db, 1.0, SR as f64).run(&mut x);
            let half = x.len() / 2;
            db(rms(&x[half..]) / rms(&clean[half..]))
        };
        for band_db in [-9.0, 6.0] {
            assert!((gain_db(1000.0, band_db) - band_db).abs() < 0.1);
            assert!(gain_db(60.0, band_db).abs() < 0.3);
            assert!(gain_db(9000.0, band_db).abs() < 0.3);
        }
    }

    #[test]
    fn random_eq_is_reproducible_and_bounded_by_its_gain() {
        let clean = sine(700.0, 1.0);
        let run = |max_gain_db, seed| {
            let mut x = clean.clone();
            random_eq(
                &mut x,
                SR,
                RandomEq { max_gain_db },
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            x
        };
        assert_eq!(run(9.0, 1), run(9.0, 1));
        assert_ne!(run(9.0, 1), run(9.0, 2));
        // A flat EQ is the identity (up to f32 rounding).
        let flat = run(0.0, 1);
        assert!(flat.iter().zip(&clean).all(|(a, b)| (a - b).abs() < 1e-5));
        // Five bands of at most ±9 dB change a tone's level by at most 45 dB, and some by more
        // than a fraction of a dB.
        let half = clean.len() / 2;
        let change = |x: &[f32]| db(rms(&x[half..]) / rms(&clean[half..])).abs();
        let changes: Vec<f64> = (0..8).map(|seed| change(&run(9.0, seed))).collect();
        assert!(changes.iter().all(|&c| c <= 45.0), "{changes:?}");
        assert!(changes.iter().any(|&c| c > 0.5), "{changes:?}");
    }

    #[test]
    fn mu_law_round_trip_error_is_half_a_step() {
        let mut levels = std::collections::BTreeSet::new();
        for i in -20_000..=20_000 {
            let x = i as f32 / 20_000.0;
            let y = mu_law_round_trip(x);
            // Half a code step times the slope of the expander: 0.5/127 · ln256/255 · (1+255|x|).
            let bound = 0.5 / 127.0 * (256f64).ln() / 255.0 * (1.0 + 255.0 * x.abs() as f64);
            assert!(
                ((y - x).abs() as f64) <= bound * 1.03 + 1e-7,
                "{x}: {y} (bound {bound})"
            );
            levels.insert(y.to_bits());
        }
        assert!(levels.len() <= 256, "{} levels", levels.len());
        assert!(levels.len() > 250, "{} levels", levels.len());
        assert_eq!(mu_law_round_trip(0.0), 0.0);
        assert_eq!(mu_law_round_trip(1.0), 1.0);
        assert_eq!(mu_law_round_trip(3.0), 1.0, "clipped to full scale");
    }

    /// Schroeder backward integration: remaining energy in dB at each sample.
    pub(crate) fn energy_decay_db(h: &[f32]) -> Vec<f64> {
        let mut acc = 0.0;
        let mut edc: Vec<f64> = h
            .iter()
            .rev()
            .map(|&v| {
                acc += v as f64 * v as f64;
                acc
            })
            .collect();
        edc.reverse();
        let total = edc[0];
        edc.iter().map(|e| 10.0 * (e / total).log10()).collect()
    }

    #[test]
    fn room_response_decays_60_db_in_rt60() {
        for rt60 in [0.3, 0.5, 0.8] {
            let h = room_impulse_response(rt60, SR, &mut ChaCha8Rng::seed_from_u64(3));
            assert_eq!(h.len(), (rt60 * SR as f64).ceil() as usize);
            assert_eq!(h[0], 1.0, "direct path");
            let edc = energy_decay_db(&h);
            let time = |level: f64| edc.iter().position(|&e| e < level).unwrap() as f64 / SR as f64;
            // T20 extrapolated to 60 dB, as ISO 3382 measures it.
            let t20 = 3.0 * (time(-25.0) - time(-5.0));
            assert!((t20 - rt60).abs() < 0.1 * rt60, "rt60 {rt60}: T20 {t20}");
        }
    }

    #[test]
    fn reverb_keeps_loudness_and_length() {
        let x = sine(500.0, 2.0);
        let h = room_impulse_response(0.5, SR, &mut ChaCha8Rng::seed_from_u64(4));
        let y = convolve_keep_loudness(&x, &h);
        assert_eq!(y.len(), x.len());
        assert!((rms(&y) - rms(&x)).abs() < 1e-4);
        assert!(y.iter().zip(&x).any(|(a, b)| (a - b).abs() > 0.05));
        // Convolution with a unit impulse is the identity.
        let same = convolve_keep_loudness(&x, &[1.0]);
        assert!(same.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn speed_changes_length_by_the_factor() {
        let x = sine(440.0, 4.0);
        for speed in [0.98, 1.02] {
            let d = Degradation {
                speed,
                ..Degradation::clean(0.0, 4.0, 0)
            };
            let y = degrade(&x, SR, &d, &mut d.rng()).unwrap();
            let expected = x.len() as f64 / speed;
            assert!(
                (y.len() as f64 - expected).abs() <= 3.0,
                "{speed}: {} vs {expected}",
                y.len()
            );
        }
    }

    #[test]
    fn apply_cuts_exactly_and_rejects_queries_past_the_end() {
        let x: Vec<f32> = (0..SR as usize * 3).map(|n| n as f32 / 1e6).collect();
        let d = Degradation::clean(0.5, 1.0, 0);
        let y = apply(&x, SR, &d, &mut d.rng()).unwrap();
        assert_eq!(y.len(), SR as usize);
        assert_eq!(y[0], x[SR as usize / 2]);
        let fast = Degradation {
            speed: 1.02,
            ..Degradation::clean(1.0, 1.99, 0)
        };
        assert!(matches!(
            apply(&x, SR, &fast, &mut fast.rng()),
            Err(DatasetError::InvalidDegradation(_))
        ));
        let phone = Degradation {
            noise: Some(AddedNoise {
                snr_db: 10.0,
                colour: NoiseColour::Pink,
            }),
            band_pass: Some(PHONE_BAND),
            codec: Some(Codec::MuLaw),
            room: Some(Room {
                rt60_s: 0.4,
                model: RoomModel::Statistical,
            }),
            speed: 0.98,
            ..Degradation::clean(0.3, 2.0, 9)
        };
        let a = apply(&sine(700.0, 3.0), SR, &phone, &mut phone.rng()).unwrap();
        let b = apply(&sine(700.0, 3.0), SR, &phone, &mut phone.rng()).unwrap();
        assert_eq!(a.len(), 2 * SR as usize);
        assert_eq!(a, b, "deterministic");
        assert!(a.iter().all(|v| v.abs() <= MAX_PEAK));
    }

    #[test]
    fn invalid_degradations_are_errors_not_panics() {
        let ok = Degradation::clean(0.0, 1.0, 0);
        for bad in [
            Degradation {
                speed: 0.0,
                ..ok.clone()
            },
            Degradation {
                seconds: f64::NAN,
                ..ok.clone()
            },
            Degradation {
                room: Some(Room {
                    rt60_s: -1.0,
                    model: RoomModel::ImageMethod,
                }),
                ..ok.clone()
            },
            Degradation {
                band_pass: Some(BandPass {
                    low_hz: 300.0,
                    high_hz: 20_000.0,
                    filter: BandFilter::Fir,
                }),
                ..ok.clone()
            },
            Degradation {
                compressor: Some(Compressor {
                    threshold_db: -10.0,
                    ratio: 0.5,
                }),
                ..ok.clone()
            },
            Degradation {
                gain_db: Some(f64::NAN),
                ..ok.clone()
            },
            Degradation {
                eq: Some(RandomEq { max_gain_db: 40.0 }),
                ..ok.clone()
            },
        ] {
            let err = degrade(&[0.0; 100], SR, &bad, &mut bad.rng()).unwrap_err();
            assert!(matches!(err, DatasetError::InvalidDegradation(_)), "{err}");
        }
        assert!(degrade(&[0.0; 100], 0, &ok, &mut ok.rng()).is_err());
    }
}
