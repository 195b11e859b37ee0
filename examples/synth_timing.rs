//! Times the synthetic corpus: rendering alone, then writing it (WAVs + metadata) and the
//! skip-on-rerun path, and reports the disk size per song.
//!
//! `cargo run --release -j 1 --example synth_timing [songs] [seconds] [out_dir]`
//! (defaults: 400 songs × 30 s into a fresh folder under the system temp dir, removed after).

use fhe_shazam::dataset::synth::{write_corpus, SongSpec, SynthParams};
use rayon::prelude::*;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let defaults = SynthParams::default();
    let params = SynthParams {
        songs: args
            .get(1)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(defaults.songs),
        seconds: args
            .get(2)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(defaults.seconds),
        ..defaults
    };
    let (out, temporary) = match args.get(3) {
        Some(dir) => (std::path::PathBuf::from(dir), false),
        None => (
            std::env::temp_dir().join(format!("fhe-shazam-synth-timing-{}", std::process::id())),
            true,
        ),
    };
    println!(
        "{} songs x {} s at {} Hz, {} rayon threads",
        params.songs,
        params.seconds,
        params.sample_rate,
        rayon::current_num_threads()
    );

    let t = Instant::now();
    let one = SongSpec::random(params.seed, 0).render(params.seconds, params.sample_rate);
    println!(
        "one song, one thread: {:.1} ms ({} samples)",
        t.elapsed().as_secs_f64() * 1e3,
        one.samples.len()
    );

    let t = Instant::now();
    let total: usize = (0..params.songs)
        .into_par_iter()
        .map(|i| {
            SongSpec::random(params.seed, i)
                .render(params.seconds, params.sample_rate)
                .samples
                .len()
        })
        .sum();
    println!(
        "render only (parallel): {:.2} s for {total} samples",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let songs = write_corpus(&out, &params, &|| {})?;
    println!(
        "write_corpus: {:.2} s -> {}",
        t.elapsed().as_secs_f64(),
        out.display()
    );

    let t = Instant::now();
    write_corpus(&out, &params, &|| {})?;
    println!(
        "write_corpus re-run (skip): {:.3} s",
        t.elapsed().as_secs_f64()
    );

    let bytes: u64 = walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    println!(
        "disk: {:.1} MiB total, {:.3} MiB per song ({} songs)",
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / songs.len() as f64,
        songs.len()
    );
    if temporary {
        std::fs::remove_dir_all(&out)?;
    }
    Ok(())
}
