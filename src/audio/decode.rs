//! Decoding with symphonia: MP3 (gapless), WAV, FLAC, Ogg Vorbis → mono f32 at the file's rate.
//!
//! Follows symphonia's decode loop: probe (the extension is a hint) → default audio track →
//! decoder → packet loop. A packet that fails to decode is skipped and counted, `ResetRequired`
//! rebuilds the decoder, and only I/O and unsupported formats abort. MP3 is gapless (the LAME
//! encoder delay + 529-sample decoder delay and the end padding are trimmed), so an MP3 decodes
//! to the same samples, at the same positions, as libsndfile/mpg123 under librosa.

use crate::error::AudioError;
use std::fs::File;
use std::path::Path;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// Upper bound on the up-front allocation from a container's frame count (10 minutes);
/// longer files still decode, the vector just grows.
const MAX_RESERVE_SECONDS: usize = 600;

/// Mono samples at the file's own sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Packets skipped because they failed to decode (corrupt frames); 0 for a clean file.
    pub skipped_packets: usize,
}

/// Decodes `path` to mono (channels averaged), reading at most `max_seconds` from the start.
///
/// `max_seconds` keeps `floor(max_seconds · rate)` samples like `librosa.load(duration=…)`,
/// and decoding stops as soon as they are there. A truncated file yields what decodes
/// before the cut; a file with no decodable audio is `NoSamples`.
pub fn decode_file(path: &Path, max_seconds: Option<f64>) -> Result<Decoded, AudioError> {
    let file = File::open(path).map_err(|source| AudioError::Io {
        path: path.into(),
        source,
    })?;
    let byte_len = file
        .metadata()
        .map_err(|source| AudioError::Io {
            path: path.into(),
            source,
        })?
        .len();
    if byte_len == 0 {
        return Err(AudioError::Empty { path: path.into() });
    }

    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| probe_error(path, e))?;

    let mut stream = open_track(path, format.as_ref())?;
    let sample_rate = stream.sample_rate;
    // `as` saturates: +∞ keeps everything, NaN or a negative duration keeps nothing.
    let max_frames = max_seconds.map_or(usize::MAX, |s| (s * f64::from(sample_rate)) as usize);

    // Reserve what the container announces, but never trust a header for more than
    // MAX_RESERVE_SECONDS (a corrupt frame count must not become a huge allocation).
    let reserve_cap = MAX_RESERVE_SECONDS * sample_rate as usize;
    let mut samples: Vec<f32> = Vec::with_capacity(
        stream
            .num_frames
            .unwrap_or(0)
            .min(max_frames)
            .min(reserve_cap),
    );
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut skipped_packets = 0usize;
    let mut last_packet_error = None;

    while samples.len() < max_frames {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::ResetRequired) => {
                // The track list changed (chained Ogg streams): pick the track again.
                stream = open_track(path, format.as_ref())?;
                if stream.sample_rate != sample_rate {
                    return Err(AudioError::Unsupported {
                        path: path.into(),
                        reason: format!(
                            "a chained stream changes the sample rate from {sample_rate} Hz to {} Hz",
                            stream.sample_rate
                        ),
                    });
                }
                continue;
            }
            // A stream cut mid-frame: keep what decoded before the cut.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => {
                return Err(AudioError::Decode {
                    path: path.into(),
                    reason: format!("reading packet after {} samples: {e}", samples.len()),
                });
            }
        };
        if packet.track_id != stream.track_id {
            continue;
        }
        match stream.decoder.decode(&packet) {
            Ok(buffer) => {
                buffer.copy_to_vecs_planar::<f32>(&mut planes);
                append_mono(&planes, &mut samples);
            }
            // Corrupt data in one packet: skip it, as every player does.
            Err(e @ (SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))) => {
                skipped_packets += 1;
                last_packet_error = Some(e.to_string());
            }
            Err(SymphoniaError::ResetRequired) => {
                stream.decoder = make_decoder(path, &stream.params)?;
            }
            Err(e) => {
                return Err(AudioError::Decode {
                    path: path.into(),
                    reason: format!("decoding packet after {} samples: {e}", samples.len()),
                });
            }
        }
    }

    samples.truncate(max_frames);
    if samples.is_empty() {
        return Err(match last_packet_error {
            Some(last) => AudioError::Decode {
                path: path.into(),
                reason: format!("all {skipped_packets} packets failed to decode (last: {last})"),
            },
            None => AudioError::NoSamples { path: path.into() },
        });
    }
    Ok(Decoded {
        samples,
        sample_rate,
        skipped_packets,
    })
}

/// The selected audio track and its decoder.
struct Stream {
    track_id: u32,
    params: AudioCodecParameters,
    sample_rate: u32,
    /// Playable frames if the container says (excludes gapless delay and padding).
    num_frames: Option<usize>,
    decoder: Box<dyn AudioDecoder>,
}

fn open_track(path: &Path, format: &dyn FormatReader) -> Result<Stream, AudioError> {
    let unsupported = |reason: &str| AudioError::Unsupported {
        path: path.into(),
        reason: reason.into(),
    };
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| unsupported("no audio track"))?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| unsupported("the audio track has no codec parameters"))?
        .clone();
    let sample_rate = params
        .sample_rate
        .filter(|&r| r > 0)
        .ok_or_else(|| unsupported("the audio track has no sample rate"))?;
    let decoder = make_decoder(path, &params)?;
    Ok(Stream {
        track_id: track.id,
        params,
        sample_rate,
        num_frames: track.num_frames.and_then(|n| usize::try_from(n).ok()),
        decoder,
    })
}

fn make_decoder(
    path: &Path,
    params: &AudioCodecParameters,
) -> Result<Box<dyn AudioDecoder>, AudioError> {
    // Gapless is symphonia's default; spelled out because the MP3 sample positions depend on it.
    let opts = AudioDecoderOptions::default().gapless(true);
    symphonia::default::get_codecs()
        .make_audio_decoder(params, &opts)
        .map_err(|e| AudioError::Unsupported {
            path: path.into(),
            reason: format!("codec {}: {e}", params.codec),
        })
}

/// Maps a probe failure: unreadable files are I/O errors, everything else is "not audio".
fn probe_error(path: &Path, error: SymphoniaError) -> AudioError {
    match error {
        SymphoniaError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Unsupported {
                path: path.into(),
                reason:
                    "no complete audio frame or container header found (truncated or not audio)"
                        .into(),
            }
        }
        SymphoniaError::IoError(source) => AudioError::Io {
            path: path.into(),
            source,
        },
        other => AudioError::Unsupported {
            path: path.into(),
            reason: other.to_string(),
        },
    }
}

/// Appends the average of the channel planes (librosa's `to_mono`: `mean` over channels).
fn append_mono(planes: &[Vec<f32>], out: &mut Vec<f32>) {
    match planes {
        [] => {}
        [mono] => out.extend_from_slice(mono),
        [left, right] => out.extend(left.iter().zip(right).map(|(l, r)| (l + r) / 2.0)),
        _ => {
            let frames = planes[0].len();
            let channels = planes.len() as f32;
            out.extend((0..frames).map(|i| planes.iter().map(|p| p[i]).sum::<f32>() / channels));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_average_of_planes() {
        let mut out = vec![9.0];
        append_mono(&[vec![1.0, -1.0], vec![0.0, 0.5]], &mut out);
        assert_eq!(out, vec![9.0, 0.5, -0.25]);
        let mut out = Vec::new();
        append_mono(&[vec![0.25], vec![0.5], vec![0.75]], &mut out);
        assert_eq!(out, vec![0.5]);
        let mut out = Vec::new();
        append_mono(&[vec![0.1, 0.2]], &mut out);
        assert_eq!(out, vec![0.1, 0.2]);
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let path = Path::new("/nonexistent/dir/song.mp3");
        let err = decode_file(path, None).unwrap_err();
        assert!(matches!(err, AudioError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/dir/song.mp3"));
    }
}
