//! The encrypted identification service (issue 7): `fhe-shazam serve` holds quantized
//! models in the clear and scores encrypted queries over HTTP; `fhe-shazam identify` turns a
//! recording into an encrypted query, sends it, and decrypts and votes on the reply.
//!
//! - [`api`]: the JSON the server publishes about each model (`GET /models`) and its
//!   validated conversion into what the client encrypts with.
//! - [`server`]: the HTTP server (axum on tokio), its limits, and an in-process handle.
//! - [`client`]: the identification client over HTTP or in the same process.
//! - [`keys`]: the client's key cache (one key per parameter shape, mode 0600).
//! - [`registry`]: the server's registry of client public keys and their query budget, for
//!   models served with model privacy.
//! - [`load`]: a bounded load generator for tests and the service benchmark.
//!
//! Threat model (README, "Encrypted service"): the server learns nothing about the query or
//! the answer, but sees the query count, timing, model chosen and the client's address. The
//! client learns all J × C scores, so the model is not secret unless it is served with model
//! privacy (`serve --model-privacy`: the client then learns its rounded scores and, up to
//! 2^-λ per score, nothing else; `fhe::privacy`). Replies carry no integrity protection
//! against a malicious server. The secret key never leaves the client.

pub mod api;
pub mod client;
pub mod keys;
pub mod load;
pub mod registry;
pub mod server;

pub use api::{
    public_key_id, ClientModel, KeyRegistration, ModelInfo, PublicQuantizer, SongDto, SpecDto,
    KEY_ID_HEADER, QUERIES_LEFT_HEADER,
};
pub use client::{
    identify, identify_features, recording_features, HttpClient, Identification, LocalServer,
    ScoreReply, ScoreTransport, Timings,
};
pub use keys::{KeyOrigin, KeyStore};
pub use load::{run_load, LoadReport, LoadSpec};
pub use server::{
    load_models, run_until_ctrl_c, serve, ServedModel, ServerConfig, ServerHandle, DEFAULT_CHUNKS,
    DEFAULT_MAX_KEYS,
};
