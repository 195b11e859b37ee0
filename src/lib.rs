//! fhe-shazam: privacy-preserving song identification.
//!
//! The pipeline is a chain of layers, each a module with one job (see docs/ARCHITECTURE.md §1):
//! `dataset` → `audio` → `features` → `model` → `fhe` → `eval` → `report`.
//! The `fhe-shazam` binary is a thin CLI over these functions; tests, benches and
//! notebooks call the same code.

pub mod audio;
pub mod config;
pub mod dataset;
pub mod error;
pub mod eval;
pub mod features;
pub mod fhe;
pub mod fingerprint;
pub mod fsutil;
pub mod model;
pub mod net;
pub mod pipeline;
pub mod report;

pub use error::{
    AudioError, DatasetError, EvalError, FeatureError, FheError, ModelError, NetError,
};
