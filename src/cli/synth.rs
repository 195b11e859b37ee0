//! `fhe-shazam synth`: write the built-in synthetic corpus.

use anyhow::Context;
use fhe_shazam::dataset::synth::{write_corpus, SynthParams};
use std::path::PathBuf;
use std::time::Instant;

/// Write a deterministic synthetic music corpus in FMA layout (audio/000/000002.wav +
/// metadata/tracks.csv): tempo, key, chords, melody, several timbres, drums, noise.
/// An existing corpus with the same parameters is reused.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of songs.
    #[arg(long, default_value_t = 400, value_parser = super::positive)]
    songs: usize,
    /// Length of each song in seconds (FMA clips are 30 s).
    #[arg(long, default_value_t = 30.0, value_parser = super::seconds)]
    seconds: f64,
    /// Corpus seed: the same seed gives the same files, bit for bit.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Sample rate of the written WAV files.
    #[arg(long, default_value_t = 22_050)]
    sample_rate: u32,
    /// Output folder.
    #[arg(long, default_value = "data/synth")]
    out: PathBuf,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let params = SynthParams {
        songs: args.songs,
        seconds: args.seconds,
        seed: args.seed,
        sample_rate: args.sample_rate,
    };
    let bar = super::progress(args.songs, "synth", args.json);
    let start = Instant::now();
    let songs = write_corpus(&args.out, &params, &|| bar.inc(1))
        .with_context(|| format!("writing the synthetic corpus to {}", args.out.display()))?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        super::print_json(&serde_json::json!({
            "out": args.out, "songs": songs.len(), "params": params, "wall_seconds": seconds,
        }))
    } else {
        println!(
            "wrote {} songs to {} in {seconds:.1} s",
            songs.len(),
            args.out.display()
        );
        Ok(())
    }
}
