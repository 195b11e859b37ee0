//! `fhe-shazam identify`: identify a recording with encrypted scoring.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use fhe_shazam::eval::{Decision, Rule};
use fhe_shazam::fhe::Circuit;
use fhe_shazam::net::{
    identify, ClientModel, HttpClient, Identification, KeyOrigin, KeyStore, LocalServer,
    ServedModel, DEFAULT_CHUNKS,
};

/// Identify a recording without revealing it: its chunk features are quantized with the
/// model's published quantizer, encrypted under your secret key (generated once and cached,
/// mode 0600, under your data folder), scored by the server, and decrypted and voted on
/// here. Prints "title — artist" or "unknown", with timings and bytes. A model served with
/// model privacy gets a public key made from your key for this run (registered with the
/// server, never the secret key), and answers with rounded scores.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The recording (mp3, wav, flac, ogg); its first J chunks are used.
    audio: PathBuf,
    /// Server URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8700",
        conflicts_with = "model_file"
    )]
    server: String,
    /// Model id on the server (needed when it serves more than one).
    #[arg(long)]
    model: Option<String>,
    /// Offline: run the server side in this process on this model file (no network).
    #[arg(long)]
    model_file: Option<PathBuf>,
    /// J for --model-file (a server publishes its own).
    #[arg(long, default_value_t = DEFAULT_CHUNKS, value_parser = super::positive)]
    chunks: usize,
    /// How the decrypted chunk scores become an answer: log-prob-sum (the sum of the chunks'
    /// log-probabilities: best on degraded recordings, never "unknown") or votes (the seed's
    /// majority vote, "unknown" below --min-votes).
    #[arg(long, value_enum, default_value = "log-prob-sum")]
    decision: Rule,
    /// With --decision votes: songs with fewer votes than this are answered "unknown" (the seed: 5).
    #[arg(long, default_value_t = 5)]
    min_votes: usize,
    /// Answer the best candidate even when it is below the model's "not in the catalogue"
    /// threshold (which the model file carries when `reproduce` calibrated one).
    #[arg(long)]
    ignore_threshold: bool,
    /// Key cache folder (default: <data dir>/fhe-shazam/keys).
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// Generate a fresh key and replace the cached one (also the fix for a damaged key file).
    #[arg(long)]
    new_key: bool,
    /// Request time limit in seconds.
    #[arg(long, default_value_t = 60.0, value_parser = super::seconds)]
    timeout_secs: f64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn client_view(&self, mut model: ClientModel) -> ClientModel {
        if self.ignore_threshold {
            model.open_set = None;
        }
        model
    }

    fn decision(&self) -> Decision {
        Decision {
            rule: self.decision,
            min_votes: self.min_votes,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::init_logging("warn");
    let store = KeyStore::new(match &args.key_dir {
        Some(dir) => dir.clone(),
        None => KeyStore::default_dir()?,
    });
    let (result, origin) = match &args.model_file {
        Some(path) => {
            // The circuit the decision needs (a server publishes its own).
            let circuit = (args.decision == Rule::Votes).then_some(Circuit::Chunks);
            let served = ServedModel::load(path, args.chunks, circuit, None)?;
            let model = args.client_view(served.info().client_model()?);
            let (key, origin) = store.load_or_generate(&model.spec.params, args.new_key)?;
            let local = LocalServer { served };
            (
                identify(&args.audio, &model, &key, &local, &args.decision())?,
                origin,
            )
        }
        None => {
            let http = HttpClient::new(&args.server, Duration::from_secs_f64(args.timeout_secs))?;
            let model = args.client_view(
                http.model(args.model.as_deref())
                    .with_context(|| format!("asking {} for its models", args.server))?,
            );
            let (key, origin) = store.load_or_generate(&model.spec.params, args.new_key)?;
            (
                identify(&args.audio, &model, &key, &http, &args.decision())?,
                origin,
            )
        }
    };
    if args.json {
        return super::print_json(&serde_json::json!({ "result": result, "key": origin }));
    }
    print_human(&result, origin, &store, &args);
    Ok(())
}

fn print_human(r: &Identification, origin: KeyOrigin, store: &KeyStore, args: &Args) {
    println!("{}", r.answer());
    let t = &r.timings;
    eprintln!(
        "model {} ({} chunks of {} scored; {:?}: best {:?})",
        r.model, r.chunks_used, r.chunks_layout, r.decision.rule, r.ranking
    );
    if let (Some(c), Some(t)) = (r.confidence, &r.threshold) {
        eprintln!(
            "confidence ({}) {c:.3}, threshold {:.3} (calibrated to {} % false matches on {} queries of songs outside the catalogue)",
            t.score.name(),
            t.at,
            t.false_match_rate * 100.0,
            t.calibration_queries
        );
    }
    eprintln!(
        "features {:.1} ms, encrypt {:.1} ms, round trip {:.1} ms, decrypt {:.1} ms; \
         {} B up, {} B down",
        t.features_ms, t.encrypt_ms, t.round_trip_ms, t.decrypt_ms, r.bytes_up, r.bytes_down
    );
    if let Some(left) = r.queries_left {
        eprintln!("model privacy: this run's public key has {left} queries left on the server");
    }
    if origin == KeyOrigin::Generated {
        eprintln!(
            "generated a new secret key in {}{}",
            store.dir().display(),
            if args.new_key { " (--new-key)" } else { "" }
        );
    }
}
