//! Landmark baseline costs on synthetic songs: fingerprinting one 30 s song, the index of 400
//! songs (size, build time), and the latency of a 15 s query against it; plus the sorted-table
//! index against a `HashMap<u32, Vec<Posting>>` holding the same postings (memory, look-up).
//!
//! Per-song and per-query times are the benchmark thread's CPU time (benches/common), which
//! stays meaningful on a shared machine; the parallel index build is wall time.
//! Run: `cargo bench --bench landmark` (env LANDMARK_BENCH_SONGS overrides 400).

mod common;

use common::thread_cpu_time;
use fhe_shazam::dataset::synth::SongSpec;
use fhe_shazam::fingerprint::{LandmarkIndex, LandmarkParams, Landmarker, Posting};
use rayon::prelude::*;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

const SR: u32 = 22_050;
const SONG_SECONDS: f64 = 30.0;
const QUERY_SECONDS: f64 = 15.0;
const QUERIES: usize = 50;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median CPU time of `runs` calls of `f` on this thread.
fn median_cpu<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t0 = thread_cpu_time();
            black_box(f());
            thread_cpu_time() - t0
        })
        .collect();
    times.sort_unstable();
    times[runs / 2]
}

fn main() {
    let n_songs: usize = std::env::var("LANDMARK_BENCH_SONGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let params = LandmarkParams::default();
    let t0 = Instant::now();
    let songs: Vec<(usize, Vec<f32>)> = (0..n_songs)
        .into_par_iter()
        .map(|i| (i, SongSpec::random(1, i).render(SONG_SECONDS, SR).samples))
        .collect();
    println!(
        "rendered {n_songs} songs of {SONG_SECONDS} s in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let landmarker = Landmarker::new(params.clone()).expect("default params are valid");
    let per_song = median_cpu(21, || landmarker.landmarks(&songs[0].1).unwrap());
    println!(
        "fingerprint one {SONG_SECONDS} s song: {:.2} ms thread CPU (median of 21)",
        ms(per_song)
    );

    let t0 = Instant::now();
    let index = LandmarkIndex::build(params.clone(), &songs).expect("index builds");
    let build = t0.elapsed();
    let stats = index.stats();
    println!(
        "index of {n_songs} songs: built in {:.2} s wall ({} threads), {} postings \
         ({:.1} per song-second), {} distinct hashes, {:.2} MB ({:.1} bytes per posting)",
        build.as_secs_f64(),
        rayon::current_num_threads(),
        stats.hashes,
        stats.hashes as f64 / (n_songs as f64 * SONG_SECONDS),
        stats.distinct_hashes,
        stats.bytes as f64 / 1e6,
        stats.bytes as f64 / stats.hashes as f64
    );

    // Queries: 15 s excerpts at offsets that are not multiples of the hop.
    let q_len = (QUERY_SECONDS * f64::from(SR)) as usize;
    let queries: Vec<(usize, &[f32])> = (0..QUERIES)
        .map(|q| {
            let song = (q * 7919) % n_songs;
            let samples = &songs[song].1;
            let start = (q * 104_729 + 333) % (samples.len() - q_len);
            (song, &samples[start..start + q_len])
        })
        .collect();
    let mut correct = 0;
    let mut cpu = Vec::new();
    for (song, clip) in &queries {
        let t0 = thread_cpu_time();
        let answer = index.query(clip).unwrap();
        cpu.push(thread_cpu_time() - t0);
        correct += usize::from(answer.song == Some(*song));
    }
    cpu.sort_unstable();
    let extract = median_cpu(QUERIES, || {
        landmarker.query_landmarks(queries[0].1).unwrap()
    });
    println!(
        "query {QUERY_SECONDS} s against {n_songs} songs: median {:.2} ms, p90 {:.2} ms thread CPU \
         (of which fingerprinting {:.2} ms); {correct}/{QUERIES} identified (clean)",
        ms(cpu[QUERIES / 2]),
        ms(cpu[QUERIES * 9 / 10]),
        ms(extract)
    );

    // Same postings in a HashMap: memory (keys, Vec headers, heap blocks; the table's own
    // overhead is estimated as one control byte per bucket) and look-up time.
    let map: HashMap<u32, Vec<Posting>> = index.iter().map(|(h, p)| (h, p.to_vec())).collect();
    let map_bytes = map.capacity() * (4 + 4 + std::mem::size_of::<Vec<Posting>>() + 1)
        + map
            .values()
            .map(|v| v.capacity() * std::mem::size_of::<Posting>())
            .sum::<usize>();
    let lookups: Vec<u32> = queries
        .iter()
        .flat_map(|(_, clip)| landmarker.query_landmarks(clip).unwrap())
        .map(|l| l.hash)
        .collect();
    let sorted_cpu = median_cpu(11, || {
        lookups
            .iter()
            .map(|&h| index.postings(h).len())
            .sum::<usize>()
    });
    let map_cpu = median_cpu(11, || {
        lookups
            .iter()
            .map(|&h| map.get(&h).map_or(0, Vec::len))
            .sum::<usize>()
    });
    println!(
        "look-up of {} query hashes: sorted table {:.3} ms, {:.2} MB; HashMap {:.3} ms, ~{:.2} MB",
        lookups.len(),
        ms(sorted_cpu),
        stats.bytes as f64 / 1e6,
        ms(map_cpu),
        map_bytes as f64 / 1e6
    );
}
