//! The reports of `fhe-shazam bench`: `extract` (per-song time of each feature stage;
//! report.json, report.md) and `fhe` (one circuit at one shape per run, `<run>.json`, and
//! `summary.md` rebuilt from every run in the folder).

use super::io;
use super::markdown::Table;
use super::Provenance;
use crate::error::ReportError;
use crate::eval::metrics::quantile;
use crate::fhe::Circuit;
use crate::fsutil;
use crate::model::Backend;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Median, mean and 95th percentile of per-song times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub median_ms: f64,
    pub mean_ms: f64,
    pub p95_ms: f64,
}

impl StageStats {
    /// The statistics of `ms` (all zero for no samples).
    pub fn of(ms: &[f64]) -> Self {
        Self {
            median_ms: quantile(ms, 0.5),
            mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
            p95_ms: quantile(ms, 0.95),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractBench {
    pub dataset: PathBuf,
    pub songs: usize,
    pub mean_song_seconds: f64,
    /// One thread, per song.
    pub decode: StageStats,
    pub resample: StageStats,
    pub features: StageStats,
    /// The whole `extract` (hash, decode, features, streamed store) over all songs with every
    /// core (rayon), wall time per song.
    pub all_threads_ms_per_song: f64,
    pub threads: usize,
    /// Core time of `extract` per second of audio: wall × threads / audio seconds.
    pub core_ms_per_audio_second: f64,
    /// Songs per second per core of `extract`.
    pub songs_per_core_second: f64,
    /// Wall time of the FMA subsets extracted in shards on N such machines.
    pub projections: Vec<Projection>,
    pub provenance: Provenance,
}

/// The FMA subsets a projection is made for: (name, tracks, seconds of audio loaded per track,
/// what the seconds are).
pub const FMA_SUBSETS: [(&str, usize, f64, &str); 3] = [
    ("fma_large", 106_574, 30.0, "30 s clips"),
    (
        "fma_full, load capped at 180 s",
        106_574,
        180.0,
        "the seed's --max-seconds 180; an upper bound, shorter tracks load less",
    ),
    (
        "fma_full, whole tracks",
        106_574,
        278.1,
        "mean track length: 343 days of audio over 106 574 tracks (Defferrard et al., 2017)",
    ),
];

/// Nodes a projection is made for.
pub const PROJECTION_NODES: [usize; 4] = [1, 10, 50, 200];

/// Projected wall time of extracting one FMA subset in shards on N machines like this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub subset: String,
    pub tracks: usize,
    pub seconds_per_track: f64,
    pub assumption: String,
    /// (nodes, hours): each node extracts ⌈tracks / nodes⌉ tracks on `threads` cores.
    pub hours_on_nodes: Vec<(usize, f64)>,
}

impl ExtractBench {
    /// The report of per-stage one-thread times and the all-core wall time per song, with the
    /// throughput and projections derived from them (cost linear in seconds of audio: decoding,
    /// resampling and MFCC all are).
    pub fn new(
        dataset: PathBuf,
        songs: usize,
        mean_song_seconds: f64,
        [decode, resample, features]: [StageStats; 3],
        all_threads_ms_per_song: f64,
        threads: usize,
    ) -> Self {
        let core_ms_per_audio_second = all_threads_ms_per_song * threads as f64 / mean_song_seconds;
        let projections = FMA_SUBSETS
            .iter()
            .map(|&(subset, tracks, seconds, assumption)| Projection {
                subset: subset.into(),
                tracks,
                seconds_per_track: seconds,
                assumption: assumption.into(),
                hours_on_nodes: PROJECTION_NODES
                    .iter()
                    .map(|&n| {
                        let per_node = tracks.div_ceil(n) as f64;
                        let core_ms = per_node * seconds * core_ms_per_audio_second;
                        (n, core_ms / threads as f64 / 3.6e6)
                    })
                    .collect(),
            })
            .collect();
        Self {
            dataset,
            songs,
            mean_song_seconds,
            decode,
            resample,
            features,
            all_threads_ms_per_song,
            threads,
            core_ms_per_audio_second,
            songs_per_core_second: 1e3 / (all_threads_ms_per_song * threads as f64),
            projections,
            provenance: Provenance::collect(),
        }
    }

    pub fn markdown(&self) -> String {
        let mut table = Table::new(["stage (1 thread)", "median ms/song", "mean", "p95"]);
        for (name, s) in [
            ("decode", &self.decode),
            ("resample to 22050 Hz", &self.resample),
            ("MFCC chunk features", &self.features),
        ] {
            table.row([
                name.to_string(),
                format!("{:.2}", s.median_ms),
                format!("{:.2}", s.mean_ms),
                format!("{:.2}", s.p95_ms),
            ]);
        }
        let mut header = vec!["subset".to_string(), "audio per track".to_string()];
        header.extend(
            PROJECTION_NODES
                .iter()
                .map(|n| format!("{n} node{}", if *n == 1 { "" } else { "s" })),
        );
        let mut projections = Table::new(header);
        for p in &self.projections {
            let mut row = vec![
                p.subset.clone(),
                format!("{:.0} s ({})", p.seconds_per_track, p.assumption),
            ];
            row.extend(p.hours_on_nodes.iter().map(|&(_, h)| duration(h)));
            projections.row(row);
        }
        format!(
            "# Extraction benchmark\n\n{} songs of {} (mean {:.1} s of audio each).\n\n{table}\n\
             Whole `extract` (hash, decode, resample, features, streamed store), {} threads: \
             {:.2} ms per song wall — {:.2} songs per second per core, {:.3} core-ms per second \
             of audio.\n\n## Projected extraction time on N machines like this one\n\n\
             `extract --shard i/N` on N nodes of {} cores, each with ⌈tracks/N⌉ tracks, cost \
             linear in the seconds of audio (decode, resample and MFCC all are), measured on \
             this dataset's files; reading the files and `merge` are not included (merge reads \
             and writes only the features: see reports/sharding).\n\n{projections}\n{}",
            self.songs,
            self.dataset.display(),
            self.mean_song_seconds,
            self.threads,
            self.all_threads_ms_per_song,
            self.songs_per_core_second,
            self.core_ms_per_audio_second,
            self.threads,
            self.provenance.footer()
        )
    }

    /// Writes `dir/report.json` and `dir/report.md`; returns the Markdown.
    pub fn write(&self, dir: &Path) -> Result<String, ReportError> {
        let md = self.markdown();
        let json = dir.join("report.json");
        fsutil::write_json_atomic(&json, self).map_err(io(&json))?;
        let report = dir.join("report.md");
        fsutil::write_atomic(&report, md.as_bytes()).map_err(io(&report))?;
        Ok(md)
    }
}

/// Concrete ML's measured cost of the same query (a 30-chunk query, 369 classes, on this
/// machine class: Zama's Encrypted Shazam; issue 17), quoted, not measured here.
pub const CONCRETE_ML_QUERY_MS: f64 = 1090.0;
pub const CONCRETE_ML_QUERY_BYTES: f64 = 115e6;
/// The seed's published time per encrypted query.
pub const SEED_QUERY_MS: f64 = 318.0;

/// One `bench fhe` run: medians over its queries. JSON keys are the contract of the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FheBench {
    pub circuit: Circuit,
    pub classes: usize,
    pub features: usize,
    /// J, chunks per query.
    pub chunks: usize,
    /// Server threads.
    pub threads: usize,
    pub queries: usize,
    pub n_bits: u32,
    /// K, classes per ciphertext product; ⌈C/K⌉ products.
    pub classes_per_product: usize,
    pub products: usize,
    pub message_bits: u32,
    pub reply_bits: usize,
    /// Predicted log2 of the failure probability per score.
    pub log2_failure: f64,
    pub keygen_ms: f64,
    /// Weight polynomials to the Fourier domain, once per model.
    pub server_setup_ms: f64,
    pub encrypt_ms: f64,
    pub server_ms: f64,
    pub decrypt_ms: f64,
    /// encrypt + server + decrypt.
    pub total_ms: f64,
    pub bytes_up: usize,
    pub bytes_down: usize,
    /// Downloading the model instead: C × (d + 1) values at n_bits.
    pub model_download_bytes: usize,
    pub scores_checked: usize,
    /// Decrypted scores that differ from the exact integer circuit (must be 0).
    pub wrong_scores: usize,
    /// The model-privacy option on the same queries, interleaved with the plain protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivateBench>,
    pub provenance: Provenance,
}

/// The model-privacy option's costs in a `bench fhe --model-privacy` run (bytes up are the
/// plain protocol's: the query is the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivateBench {
    pub flood_bits: u32,
    pub rounding_bits: u32,
    pub log2_failure: f64,
    /// The client's public key, sent once per server.
    pub public_key_bytes: usize,
    /// Making and encoding the public key, once.
    pub public_key_ms: f64,
    pub encrypt_ms: f64,
    pub server_ms: f64,
    pub decrypt_ms: f64,
    pub total_ms: f64,
    pub bytes_down: usize,
    /// Decrypted scores not within 2^ρ of the exact integer circuit (must be 0).
    pub wrong_scores: usize,
}

impl FheBench {
    /// The run's file name in a report folder.
    pub fn file_name(&self) -> String {
        let private = self
            .privacy
            .as_ref()
            .map_or(String::new(), |p| format!("-private-l{}", p.flood_bits));
        format!(
            "{}-c{}-d{}-j{}-t{}{private}.json",
            self.circuit, self.classes, self.features, self.chunks, self.threads
        )
    }

    pub fn markdown(&self) -> String {
        let mut table = Table::new(["", "value"]);
        for (k, v) in [
            ("circuit", self.circuit.to_string()),
            (
                "shape",
                format!(
                    "C = {}, d = {}, J = {}, n_bits = {}",
                    self.classes, self.features, self.chunks, self.n_bits
                ),
            ),
            (
                "layout",
                format!(
                    "K = {} classes per product, {} products, {} message bits, {}-bit reply",
                    self.classes_per_product, self.products, self.message_bits, self.reply_bits
                ),
            ),
            (
                "predicted log2 p_fail per score",
                format!("{:.1}", self.log2_failure),
            ),
            ("encrypt (1 thread)", format!("{:.3} ms", self.encrypt_ms)),
            (
                "server",
                format!("{:.3} ms on {} thread(s)", self.server_ms, self.threads),
            ),
            ("decrypt (1 thread)", format!("{:.3} ms", self.decrypt_ms)),
            (
                "encrypt + server + decrypt",
                format!("{:.3} ms", self.total_ms),
            ),
            (
                "bytes up / down",
                format!("{} / {}", kib(self.bytes_up), kib(self.bytes_down)),
            ),
            (
                "downloading the model instead",
                kib(self.model_download_bytes),
            ),
            (
                "scores checked / wrong",
                format!("{} / {}", self.scores_checked, self.wrong_scores),
            ),
        ] {
            table.row([k.to_string(), v]);
        }
        if let Some(p) = &self.privacy {
            for (k, v) in [
                (
                    "model privacy",
                    format!(
                        "λ = {}, scores rounded to multiples of 2^{}, log2 p_fail {:.1}",
                        p.flood_bits, p.rounding_bits, p.log2_failure
                    ),
                ),
                (
                    "  public key (once)",
                    format!("{} in {:.3} ms", kib(p.public_key_bytes), p.public_key_ms),
                ),
                (
                    "  encrypt / server / decrypt",
                    format!(
                        "{:.3} / {:.3} / {:.3} ms",
                        p.encrypt_ms, p.server_ms, p.decrypt_ms
                    ),
                ),
                (
                    "  encrypt + server + decrypt",
                    format!(
                        "{:.3} ms ({:.2}× the plain protocol's, same queries)",
                        p.total_ms,
                        p.total_ms / self.total_ms
                    ),
                ),
                ("  bytes down", kib(p.bytes_down)),
                (
                    "  scores not within 2^ρ",
                    format!("{} of {}", p.wrong_scores, self.scores_checked),
                ),
            ] {
                table.row([k.to_string(), v]);
            }
        }
        format!(
            "# Encrypted scoring benchmark\n\nMedians over {} queries on a worst-case \
             {}-bit model (every weight ±(2^n − 1)).\n\n{table}\n{}",
            self.queries,
            self.n_bits,
            self.provenance.footer()
        )
    }

    /// Writes `dir/<run>.json` and rebuilds `dir/summary.md` from every run in `dir`;
    /// returns this run's Markdown.
    pub fn write(&self, dir: &Path) -> Result<String, ReportError> {
        let json = dir.join(self.file_name());
        fsutil::write_json_atomic(&json, self).map_err(io(&json))?;
        let runs = read_fhe_runs(dir)?;
        let summary = dir.join("summary.md");
        fsutil::write_atomic(&summary, fhe_summary(&runs).as_bytes()).map_err(io(&summary))?;
        Ok(self.markdown())
    }
}

fn kib(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// Every run of one kind (`T`) in `dir`: the JSON files that parse as `T` (others are skipped).
fn read_runs<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>, ReportError> {
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    Ok(paths
        .iter()
        .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
        .collect())
}

/// Every `bench fhe` run in `dir` (other JSON files are skipped), by shape then circuit.
pub fn read_fhe_runs(dir: &Path) -> Result<Vec<FheBench>, ReportError> {
    let mut runs: Vec<FheBench> = read_runs(dir)?;
    runs.sort_by_key(|r| (r.features, r.classes, r.chunks, r.threads, r.circuit.code()));
    Ok(runs)
}

/// The side-by-side table of runs: per shape, each circuit's costs, the summed circuit's
/// speed-up over the chunks circuit when both ran, and the two baselines — downloading the
/// model, and Concrete ML's quoted cost of the query.
pub fn fhe_summary(runs: &[FheBench]) -> String {
    let mut table = Table::new([
        "C",
        "d",
        "J",
        "threads",
        "circuit",
        "K",
        "encrypt ms",
        "server ms",
        "decrypt ms",
        "total ms",
        "up",
        "down",
        "× chunks (time / reply)",
        "model download",
        "wrong / checked",
        "model privacy: λ, total ms (× plain), down, public key",
    ]);
    for r in runs {
        let chunks = runs.iter().find(|o| {
            o.circuit == Circuit::Chunks
                && (o.classes, o.features, o.chunks, o.threads)
                    == (r.classes, r.features, r.chunks, r.threads)
        });
        let ratio = match (r.circuit, chunks) {
            (Circuit::Summed, Some(c)) => format!(
                "{:.1}× / {:.1}×",
                c.total_ms / r.total_ms,
                c.bytes_down as f64 / r.bytes_down as f64
            ),
            _ => "-".into(),
        };
        table.row([
            r.classes.to_string(),
            r.features.to_string(),
            r.chunks.to_string(),
            r.threads.to_string(),
            r.circuit.to_string(),
            r.classes_per_product.to_string(),
            format!("{:.3}", r.encrypt_ms),
            format!("{:.3}", r.server_ms),
            format!("{:.3}", r.decrypt_ms),
            format!("{:.3}", r.total_ms),
            kib(r.bytes_up),
            kib(r.bytes_down),
            ratio,
            kib(r.model_download_bytes),
            format!("{} / {}", r.wrong_scores, r.scores_checked),
            r.privacy.as_ref().map_or("-".into(), |p| {
                format!(
                    "λ = {}: {:.3} ({:.2}×), {}, {}",
                    p.flood_bits,
                    p.total_ms,
                    p.total_ms / r.total_ms,
                    kib(p.bytes_down),
                    kib(p.public_key_bytes)
                )
            }),
        ]);
    }
    let footer = runs
        .last()
        .map(|r| r.provenance.footer())
        .unwrap_or_default();
    format!(
        "# Encrypted scoring: summed against chunks circuit, and the baselines\n\n\
         Medians per query on worst-case 8-bit models of each shape (`fhe-shazam bench fhe`, \
         `experiments/fhe_bench.sh`); encrypt and decrypt on one thread. The × column compares \
         the summed circuit with the chunks circuit of the same shape, run by the same script \
         one after the other.\n\n{table}\n\
         Baselines. **Downloading the model** (C × (d + 1) values at n_bits, column \
         \"model download\") is the trivially private protocol when the model is public: the \
         query never leaves the phone. What the encrypted protocol buys over it today is that \
         the client need not hold (or update) the catalogue. It does not keep the model secret \
         by itself: the decrypted scores give W away to d + 1 chosen queries, with or without \
         model privacy (whose costs are the last column; see the README's threat model and \
         reports/privacy). **Concrete ML** (Zama's Encrypted \
         Shazam, quoted, not re-measured in this run): {:.0} ms and ~{:.0} MB per 30-chunk \
         query at 369 classes on this machine class; the seed published {:.0} ms.\n\n{footer}",
        CONCRETE_ML_QUERY_MS,
        CONCRETE_ML_QUERY_BYTES / 1e6,
        SEED_QUERY_MS,
    )
}

/// One `bench train` run: one fit of one backend on one feature set. JSON keys are the
/// contract of the command (`seconds`, `iterations`, `loss`, `converged`, `chunk_accuracy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainBench {
    pub features: PathBuf,
    pub backend: Backend,
    pub songs: usize,
    pub rows: usize,
    pub dim: usize,
    pub threads: usize,
    pub max_iter: usize,
    pub tol: f64,
    /// Wall time of the fit (standardisation + optimisation), not loading.
    pub seconds: f64,
    /// `None` for backends that do not report them; 0 for closed-form ones.
    pub iterations: Option<usize>,
    /// sklearn's 1/n-scaled objective at the fitted weights, on the standardised problem.
    pub loss: f64,
    pub gradient_max_norm: f64,
    pub converged: bool,
    /// Top-1 of the fitted float model over the training rows, one row at a time.
    pub chunk_accuracy: f64,
    /// Song top-1 on the seed protocol's queries (the first 15 s of every song, in the clear;
    /// training audio): the seed's majority vote (unknown below 5 votes) …
    pub seed_top1: f64,
    /// … and the log-prob-sum decision the summed circuit computes.
    pub summed_top1: f64,
    /// Peak resident memory of the process once the feature set is loaded (read in blocks:
    /// the matrix, its labels and the sidecar) …
    #[serde(default)]
    pub load_peak_memory_mib: Option<f64>,
    /// … and at the end of the fit (before the accuracy passes).
    pub peak_memory_mib: Option<f64>,
    /// `--add-songs K` (lda): the last K songs added by their means to an LDA fitted on the
    /// others, against the fit on all songs above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_songs: Option<AddSongsBench>,
    pub provenance: Provenance,
}

/// Adding songs to an LDA catalogue without refitting, against refitting on all songs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddSongsBench {
    /// K, the songs added.
    pub songs: usize,
    /// Fit on the others and add the K.
    pub seconds: f64,
    /// Top-1 over all training rows (all songs) of the model with the songs added.
    pub chunk_accuracy: f64,
    /// Top-1 over the added songs' rows: added, and refitted (the run's own model).
    pub chunk_accuracy_added_songs: f64,
    pub refit_chunk_accuracy_added_songs: f64,
}

impl TrainBench {
    /// The feature set's folder name.
    pub fn set_name(&self) -> String {
        self.features
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The run's file name in a report folder.
    pub fn file_name(&self) -> String {
        let set = self.set_name();
        let add = self
            .add_songs
            .as_ref()
            .map(|a| format!("-add{}", a.songs))
            .unwrap_or_default();
        format!("train-{set}-{}{add}-t{}.json", self.backend, self.threads)
    }

    pub fn markdown(&self) -> String {
        format!(
            "# Training benchmark\n\n{}\n{}",
            train_table(std::slice::from_ref(self)),
            self.provenance.footer()
        )
    }

    /// Writes `dir/<run>.json` and rebuilds `dir/summary.md` from every training run in
    /// `dir`; returns this run's Markdown.
    pub fn write(&self, dir: &Path) -> Result<String, ReportError> {
        let json = dir.join(self.file_name());
        fsutil::write_json_atomic(&json, self).map_err(io(&json))?;
        let mut runs: Vec<TrainBench> = read_runs(dir)?;
        runs.sort_by_key(|r| (r.songs, r.dim, r.backend.name(), r.threads));
        let footer = runs
            .last()
            .map(|r| r.provenance.footer())
            .unwrap_or_default();
        let summary = format!(
            "# Training time by trainer and catalogue size\n\nOne fit per row \
             (`fhe-shazam bench train`); seconds are the fit's wall time on the given threads \
             (standardisation + optimisation, not loading). Loss is sklearn's 1/n-scaled \
             objective on the standardised problem; chunk accuracy is the float model's top-1 \
             over the training rows; seed top-1 is song top-1 on the seed protocol's queries \
             (the first 15 s of every song, in the clear) by majority vote and by the summed \
             log-probabilities. Both are measured on training audio, not held-out audio.\n\n{}\n{footer}",
            train_table(&runs)
        );
        let path = dir.join("summary.md");
        fsutil::write_atomic(&path, summary.as_bytes()).map_err(io(&path))?;
        Ok(self.markdown())
    }
}

fn train_table(runs: &[TrainBench]) -> String {
    let mut table = Table::new([
        "features",
        "songs",
        "rows",
        "d",
        "backend",
        "threads",
        "seconds",
        "iterations",
        "loss",
        "max |grad|",
        "converged",
        "chunk accuracy",
        "seed top-1 (votes / log-prob sum)",
        "peak MiB",
    ]);
    // A run with `--add-songs` fits the same model as the plain run: it is listed below.
    for r in runs.iter().filter(|r| r.add_songs.is_none()) {
        table.row([
            r.set_name(),
            r.songs.to_string(),
            r.rows.to_string(),
            r.dim.to_string(),
            r.backend.to_string(),
            r.threads.to_string(),
            format!("{:.2}", r.seconds),
            r.iterations.map_or("-".into(), |i| i.to_string()),
            format!("{:.6}", r.loss),
            format!("{:.1e}", r.gradient_max_norm),
            if r.converged { "yes" } else { "no" }.into(),
            format!("{:.2} %", 100.0 * r.chunk_accuracy),
            format!(
                "{:.2} % / {:.2} %",
                100.0 * r.seed_top1,
                100.0 * r.summed_top1
            ),
            r.peak_memory_mib.map_or("-".into(), |m| format!("{m:.0}")),
        ]);
    }
    let added: Vec<&TrainBench> = runs.iter().filter(|r| r.add_songs.is_some()).collect();
    if added.is_empty() {
        return table.to_string();
    }
    let mut adds = Table::new([
        "features",
        "songs",
        "added",
        "seconds (fit others + add)",
        "chunk accuracy, all songs: added / refit",
        "chunk accuracy, added songs: added / refit",
    ]);
    for r in added {
        let a = r.add_songs.as_ref().expect("filtered");
        adds.row([
            r.set_name(),
            r.songs.to_string(),
            a.songs.to_string(),
            format!("{:.2} (refit {:.2})", a.seconds, r.seconds),
            format!(
                "{:.2} % / {:.2} %",
                100.0 * a.chunk_accuracy,
                100.0 * r.chunk_accuracy
            ),
            format!(
                "{:.2} % / {:.2} %",
                100.0 * a.chunk_accuracy_added_songs,
                100.0 * a.refit_chunk_accuracy_added_songs
            ),
        ]);
    }
    format!(
        "{table}\nAdding songs to an LDA catalogue by their means (covariance and \
         standardisation of the other songs kept), against refitting on all songs:\n\n{adds}"
    )
}

/// Hours as "2.3 h", "14 min" or "< 1 min".
fn duration(hours: f64) -> String {
    match hours * 60.0 {
        m if m >= 60.0 => format!("{hours:.1} h"),
        m if m >= 1.0 => format!("{m:.0} min"),
        _ => "< 1 min".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_stats_are_nearest_rank_and_empty_is_zero() {
        let s = StageStats::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median_ms, s.mean_ms, s.p95_ms), (3.0, 2.5, 4.0));
        assert_eq!(StageStats::of(&[]).mean_ms, 0.0);
    }

    #[test]
    fn projections_scale_with_audio_and_divide_by_nodes() {
        let zero = StageStats::of(&[]);
        // 22 ms per 30 s song on 2 threads: 44 core-ms per song, 1.467 core-ms per audio second.
        let b = ExtractBench::new(
            "d".into(),
            10,
            30.0,
            [zero.clone(), zero.clone(), zero],
            22.0,
            2,
        );
        assert!((b.core_ms_per_audio_second - 44.0 / 30.0).abs() < 1e-12);
        assert!((b.songs_per_core_second - 1000.0 / 44.0).abs() < 1e-9);
        let large = &b.projections[0];
        assert_eq!(
            (large.subset.as_str(), large.tracks),
            ("fma_large", 106_574)
        );
        // One node: 106 574 songs × 44 core-ms / 2 cores = 39 min.
        let (n, h) = large.hours_on_nodes[0];
        assert_eq!(n, 1);
        assert!((h - 106_574.0 * 44.0 / 2.0 / 3.6e6).abs() < 1e-9, "{h}");
        // Ten nodes: ⌈106 574 / 10⌉ = 10 658 songs each.
        assert!((large.hours_on_nodes[1].1 - 10_658.0 * 44.0 / 2.0 / 3.6e6).abs() < 1e-9);
        // Capped fma_full: six times the audio of a 30 s clip per track.
        assert!((b.projections[1].hours_on_nodes[0].1 / h - 6.0).abs() < 1e-9);
        let md = b.markdown();
        assert!(
            md.contains("| fma_large | 30 s (30 s clips) | 39 min |"),
            "{md}"
        );
    }
}
