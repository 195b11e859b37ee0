//! Encrypted scoring benchmarks: criterion on the seed size (J = 30, d = 20, C = 400,
//! the worst-case 8-bit model of `fhe-shazam bench fhe`), then a printed table of medians for C = 400, 1000, 8000 on 1 and 2
//! threads, and a layout comparison.
//!
//! `cargo bench --bench fhe` (release). Set FHE_BENCH_TABLE_ONLY=1 to skip criterion.

mod common;

use std::time::{Duration, Instant};

use criterion::Criterion;
use fhe_shazam::experiment::bench::{random_query, worst_case_layer};
use fhe_shazam::fhe::{simulate, wire, ClientKey, GlweParams, IntegerLinear, Layout, ServerModel};
use fhe_shazam::report::markdown::Table;
use ndarray::Array2;
use rayon::ThreadPool;
use std::hint::black_box;

const CHUNKS: usize = 30;
const FEATURES: usize = 20;

/// The worst-case 8-bit layer `bench fhe` uses (every weight ±255, inputs −128..=127).
fn layer(classes: usize, seed: u64) -> IntegerLinear {
    worst_case_layer(FEATURES, classes, 8, seed)
}

fn query(seed: u64) -> Array2<i64> {
    random_query(&layer(1, 0), CHUNKS, seed)
}

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// Wall-clock and thread-CPU time of one run of `f`.
fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration, Duration) {
    let (wall, cpu) = (Instant::now(), common::thread_cpu_time());
    let out = f();
    (out, wall.elapsed(), common::thread_cpu_time() - cpu)
}

/// Wall median, wall minimum, CPU median.
#[derive(Clone, Copy)]
struct Stat {
    median: Duration,
    min: Duration,
    cpu: Duration,
}

fn stat(mut wall: Vec<Duration>, mut cpu: Vec<Duration>) -> Stat {
    wall.sort();
    cpu.sort();
    Stat {
        median: wall[wall.len() / 2],
        min: wall[0],
        cpu: cpu[cpu.len() / 2],
    }
}

struct Row {
    label: String,
    classes: usize,
    products: usize,
    threads: usize,
    keygen: Stat,
    encrypt: Stat,
    server: Stat,
    decrypt: Stat,
    total: Stat,
    up: usize,
    down: usize,
}

fn measure(
    label: &str,
    classes: usize,
    layout: Layout,
    params: GlweParams,
    threads: usize,
    reps: usize,
) -> Row {
    let layer = layer(classes, 11);
    let server = ServerModel::new(&layer, layout, params).expect("server model");
    let spec = server.spec().clone();
    let (mut kw, mut kc) = (Vec::new(), Vec::new());
    for _ in 0..reps.min(5) {
        let (key, wall, cpu) = timed(|| ClientKey::generate(&params).expect("keygen"));
        black_box(key);
        kw.push(wall);
        kc.push(cpu);
    }
    let keygen = stat(kw, kc);
    let client = ClientKey::generate(&params).expect("keygen");
    let q = query(12);
    let expected = simulate::clear_scores(&layer, q.view()).expect("clear");
    let pool = pool(threads);
    // [wall, cpu] per stage: encrypt, server, decrypt, total.
    let mut times: [[Vec<Duration>; 2]; 4] = Default::default();
    let (mut up, mut down) = (0, 0);
    // The whole query runs on a worker of the pool, so the 1-thread figures contain no
    // hand-off between threads (which costs scheduler latency on a busy machine).
    pool.install(|| {
        for _ in 0..reps {
            let (query, ew, ec) = timed(|| client.encrypt_query(&spec, q.view()).expect("encrypt"));
            let (reply, sw, sc) = timed(|| server.score(&query).expect("score"));
            let (scores, dw, dc) = timed(|| client.decrypt_scores(&spec, &reply).expect("decrypt"));
            for (stage, (w, c)) in [(ew, ec), (sw, sc), (dw, dc), (ew + sw + dw, ec + sc + dc)]
                .into_iter()
                .enumerate()
            {
                times[stage][0].push(w);
                times[stage][1].push(c);
            }
            assert_eq!(
                scores, expected,
                "FHE scores differ from the integer circuit"
            );
            up = wire::encode_query(&query).len();
            down = wire::encode_scores(&reply).len();
        }
    });
    let [enc, srv, dec, tot] = times.map(|[w, c]| stat(w, c));
    Row {
        label: label.to_string(),
        classes,
        products: spec.product_count(),
        threads,
        keygen,
        encrypt: enc,
        server: srv,
        decrypt: dec,
        total: tot,
        up,
        down,
    }
}

fn print_table(rows: &[Row]) {
    let ms = |s: Stat| {
        let f = |d: Duration| d.as_secs_f64() * 1e3;
        format!("{:.3} / {:.3} / {:.3}", f(s.median), f(s.min), f(s.cpu))
    };
    let mut table = Table::new([
        "layout",
        "C",
        "products",
        "threads",
        "keygen ms",
        "encrypt ms",
        "server ms",
        "decrypt ms",
        "total ms",
        "up KiB",
        "down MiB",
    ]);
    for r in rows {
        table.row([
            r.label.clone(),
            r.classes.to_string(),
            r.products.to_string(),
            r.threads.to_string(),
            ms(r.keygen),
            ms(r.encrypt),
            ms(r.server),
            ms(r.decrypt),
            ms(r.total),
            format!("{:.2}", r.up as f64 / 1024.0),
            format!("{:.3}", r.down as f64 / (1024.0 * 1024.0)),
        ]);
    }
    print!("\n{table}");
}

fn criterion_benches(c: &mut Criterion) {
    let params = GlweParams::TUNIFORM_2M128_N2048;
    let layout = Layout::densest(CHUNKS, FEATURES, params.polynomial_size).expect("layout");
    let layer = layer(400, 11);
    let server = ServerModel::new(&layer, layout, params).expect("server model");
    let spec = server.spec().clone();
    let client = ClientKey::generate(&params).expect("keygen");
    let q = query(12);
    let encrypted = client.encrypt_query(&spec, q.view()).expect("encrypt");
    let reply = server.score(&encrypted).expect("score");

    let mut group = c.benchmark_group("fhe_c400");
    group.bench_function("keygen", |b| b.iter(|| ClientKey::generate(&params)));
    group.bench_function("encrypt", |b| {
        b.iter(|| client.encrypt_query(&spec, q.view()))
    });
    for threads in [1, 2] {
        let pool = pool(threads);
        group.bench_function(format!("server_score_{threads}t"), |b| {
            pool.install(|| b.iter(|| server.score(&encrypted)))
        });
    }
    group.bench_function("decrypt", |b| {
        b.iter(|| client.decrypt_scores(&spec, &reply))
    });
    group.finish();
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    if !test_mode && std::env::var_os("FHE_BENCH_TABLE_ONLY").is_none() {
        let mut criterion = Criterion::default()
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        criterion_benches(&mut criterion);
        criterion.final_summary();
    }

    let n2048 = GlweParams::TUNIFORM_2M128_N2048;
    let n8192 = GlweParams::TUNIFORM_2M128_N8192;
    let k3 = Layout::densest(CHUNKS, FEATURES, n2048.polynomial_size).expect("layout");
    let k1 = Layout::new(CHUNKS, FEATURES, 1, n2048.polynomial_size).expect("layout");
    let k13 = Layout::densest(CHUNKS, FEATURES, n8192.polynomial_size).expect("layout");
    let reps = |r: usize| if test_mode { 1 } else { r };
    let mut rows = Vec::new();
    for (classes, r) in [(400, 41), (1000, 21), (8000, 5)] {
        if test_mode && classes > 400 {
            continue;
        }
        for threads in [1, 2] {
            rows.push(measure("N=2048 K=3", classes, k3, n2048, threads, reps(r)));
        }
    }
    println!(
        "\nJ = 30, d = 20, 8-bit-like weights; times in ms: wall median / wall min / CPU median \
         (CPU of the calling thread: the full cost for 1 thread, not for 2); exactness checked \
         every run."
    );
    print_table(&rows);

    let layouts = vec![
        measure("N=2048 K=3", 400, k3, n2048, 1, reps(41)),
        measure("N=2048 K=1", 400, k1, n2048, 1, reps(21)),
        measure("N=8192 K=13", 400, k13, n8192, 1, reps(21)),
    ];
    println!("\nLayout comparison (C = 400, one thread):");
    print_table(&layouts);
}
