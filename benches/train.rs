//! Training benchmark: the three logistic-regression backends on MFCC-shaped synthetic
//! clusters (docs/ARCHITECTURE.md §3). First prints one measured fit per backend (time,
//! iterations, convergence, train/test accuracy, and the quantized accuracies of the default
//! model), then times the fits with criterion.
//!
//! `cargo bench --bench train` — seed size (400 classes × 60 rows × 20) for lbfgs and linfa,
//! smartcore on 50 classes (its naive loops run up to 1000 iterations). Environment:
//! `TRAIN_BENCH_SMARTCORE_CLASSES=400` to run smartcore at full size too,
//! `TRAIN_BENCH_SUMMARY=0` to skip the summary.

use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use fhe_shazam::model::synthetic::{accuracy, ClusterSpec, SyntheticSet};
use fhe_shazam::model::{fit, Backend, LogisticParams, QuantOptions, QuantizedModel};

/// Classes of the reduced problem the slow backends are timed on.
const SMALL_CLASSES: usize = 50;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spec(n_classes: usize) -> ClusterSpec {
    ClusterSpec {
        n_classes,
        ..Default::default()
    }
}

fn summary_row(set: &SyntheticSet, n_classes: usize, params: &LogisticParams, label: &str) {
    let start = Instant::now();
    let model = match fit(set.x_train.view(), &set.y_train, n_classes, params) {
        Ok(m) => m,
        Err(e) => {
            println!("{label:<22} {n_classes:>5}  failed: {e}");
            return;
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let info = model.fit.as_ref().expect("trained model has fit info");
    let train = accuracy(&model.predict(set.x_train.view()).unwrap(), &set.y_train);
    let test = accuracy(&model.predict(set.x_test.view()).unwrap(), &set.y_test);
    let iters = info.iterations.map_or("-".into(), |i| i.to_string());
    println!(
        "{label:<22} {n_classes:>5} {:>7} {secs:>8.2} {iters:>6} {:>5} {:>9.2e} {:>9.5} {:>6.1}% {:>6.1}%",
        set.x_train.nrows(),
        info.converged,
        info.gradient_max_norm,
        info.final_loss,
        100.0 * train,
        100.0 * test
    );
    if params.backend == Backend::Lbfgs && params.standardize {
        for (name, opts) in [
            ("concrete 8", QuantOptions::concrete(8)),
            ("concrete 6", QuantOptions::concrete(6)),
            ("concrete 4", QuantOptions::concrete(4)),
            (
                "per-feature 6",
                QuantOptions {
                    standardize_inputs: true,
                    ..QuantOptions::concrete(6)
                },
            ),
            (
                "per-feature 4",
                QuantOptions {
                    standardize_inputs: true,
                    ..QuantOptions::concrete(4)
                },
            ),
        ] {
            let q = QuantizedModel::from_float(&model, set.x_train.view(), &opts).unwrap();
            let test = accuracy(&q.predict(set.x_test.view()).unwrap(), &set.y_test);
            println!(
                "    quantized {name:<14} test {:>6.1}%  accumulator {} bits",
                100.0 * test,
                q.accumulator_bits()
            );
        }
    }
}

fn summary() {
    println!(
        "{:<22} {:>5} {:>7} {:>8} {:>6} {:>5} {:>9} {:>9} {:>7} {:>7}",
        "backend", "C", "rows", "seconds", "iters", "conv", "|grad|max", "loss", "train", "test"
    );
    let full = spec(400).generate();
    let defaults = LogisticParams::default();
    summary_row(&full, 400, &defaults, "lbfgs");
    summary_row(
        &full,
        400,
        &LogisticParams {
            standardize: false,
            ..defaults.clone()
        },
        "lbfgs raw features",
    );
    summary_row(
        &full,
        400,
        &LogisticParams {
            backend: Backend::Linfa,
            ..defaults.clone()
        },
        "linfa",
    );
    let small_c = env_usize("TRAIN_BENCH_SMARTCORE_CLASSES", SMALL_CLASSES);
    let small = spec(small_c).generate();
    summary_row(&small, small_c, &defaults, "lbfgs");
    summary_row(
        &small,
        small_c,
        &LogisticParams {
            backend: Backend::Smartcore,
            ..defaults
        },
        "smartcore",
    );
}

fn bench_fit(c: &mut Criterion) {
    let mut group = c.benchmark_group("fit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let full = spec(400).generate();
    let small = spec(SMALL_CLASSES).generate();
    let cases = [
        (Backend::Lbfgs, 400, &full),
        (Backend::Lbfgs, SMALL_CLASSES, &small),
        (Backend::Linfa, SMALL_CLASSES, &small),
        (Backend::Smartcore, SMALL_CLASSES, &small),
    ];
    for (backend, n_classes, set) in cases {
        let params = LogisticParams {
            backend,
            ..Default::default()
        };
        group.bench_with_input(
            BenchmarkId::new(backend.name(), n_classes),
            set,
            |b, set| b.iter(|| fit(set.x_train.view(), &set.y_train, n_classes, &params).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_fit);

fn main() {
    if std::env::var("TRAIN_BENCH_SUMMARY").as_deref() != Ok("0") {
        summary();
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
