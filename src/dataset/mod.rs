//! Datasets: FMA-style trees or any folder of audio files, the song catalog, synthetic corpora.

pub mod catalog;
pub mod synth;

pub use catalog::{Catalog, Song};
pub mod fma;

pub use fma::{scan, ScanOptions};
