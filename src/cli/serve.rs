//! `fhe-shazam serve`: the encrypted identification server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use fhe_shazam::fhe::{Circuit, ModelPrivacy};
use fhe_shazam::net::{
    load_models, run_until_ctrl_c, ServerConfig, DEFAULT_CHUNKS, DEFAULT_MAX_KEYS,
};

/// Serve quantized models for encrypted identification over HTTP. The server holds the models
/// in the clear and never a secret key: it multiplies each encrypted query by the model and
/// returns encrypted scores that only the client can read. Routes: GET /health, GET /models,
/// GET /models/{id}, POST /models/{id}/score, POST /keys (a client's public key, for
/// --model-privacy). Stops on Ctrl-C after finishing requests in flight. Logs go to stderr
/// (RUST_LOG overrides --log-level).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Quantized model files, or folders whose quantized *.json models are all served (ids are
    /// the file stems, e.g. q8).
    #[arg(long, num_args = 1.., required = true)]
    models: Vec<PathBuf>,
    /// Address to listen on (loopback by default; expose it deliberately).
    #[arg(long, default_value = "127.0.0.1:8700")]
    addr: SocketAddr,
    /// J: chunks per query (0.5 s each: 30 is the seed's 15 s).
    #[arg(long, default_value_t = DEFAULT_CHUNKS, value_parser = super::positive)]
    chunks: usize,
    /// The FHE circuit: summed (one summed vector per query, C scores back: all the
    /// log-prob-sum rule needs) or chunks (J × C scores: the seed's vote rule needs them).
    /// Default: the one each model's open-set threshold implies, else summed.
    #[arg(long, value_enum)]
    circuit: Option<Circuit>,
    /// Serve every model with model privacy at statistical parameter LAMBDA (0..=60): replies
    /// are re-randomised with the client's public key (registered with POST /keys, named in
    /// the X-Fhe-Key-Id header of each query) and flooded, so a client learns its scores
    /// rounded to multiples of 2^ρ and, up to 2^-LAMBDA per score, nothing else about the
    /// weights. A larger LAMBDA costs rounding bits; the planner refuses one a model cannot
    /// afford.
    #[arg(long, value_name = "LAMBDA",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(ModelPrivacy::MAX_FLOOD_BITS)))]
    model_privacy: Option<u32>,
    /// With --model-privacy: queries each public key may score (429 beyond; each reply says
    /// how many are left in X-Fhe-Queries-Left; every query accepted for scoring counts,
    /// malformed ones too). Repeated queries average the flood down and d + 1 chosen queries
    /// copy the model from its rounded scores, so this bounds what one key can extract; keys
    /// are free to register, so it binds a person only where registration is tied to an
    /// account. Default: no budget.
    #[arg(long, value_name = "N", requires = "model_privacy", value_parser = super::positive)]
    max_queries_per_key: Option<usize>,
    /// With --model-privacy: public keys held at once (32 KiB each, never evicted; further
    /// registrations get 503) [default: 10000].
    #[arg(long, value_name = "N", requires = "model_privacy", value_parser = super::positive)]
    max_keys: Option<usize>,
    /// Scoring jobs at once; further requests get 503 + Retry-After (default: CPU cores).
    #[arg(long, value_parser = super::positive)]
    max_jobs: Option<usize>,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = ServerConfig::default().max_body_bytes, value_parser = super::positive)]
    max_body_bytes: usize,
    /// Whole-request time limit in seconds (503 beyond).
    #[arg(long, default_value_t = 30.0, value_parser = super::seconds)]
    timeout_secs: f64,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::init_logging(&args.log_level);
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        max_jobs: args.max_jobs.unwrap_or(defaults.max_jobs),
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_secs_f64(args.timeout_secs),
        max_keys: args.max_keys.unwrap_or(DEFAULT_MAX_KEYS),
        max_queries_per_key: args.max_queries_per_key.map(|n| n as u64),
        ..defaults
    };
    let privacy = args
        .model_privacy
        .map(|flood_bits| ModelPrivacy { flood_bits });
    let models = load_models(&args.models, args.chunks, args.circuit, privacy)
        .context("loading the models to serve")?;
    run_until_ctrl_c(args.addr, models, config)?;
    Ok(())
}
