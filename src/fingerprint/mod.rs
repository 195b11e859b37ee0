//! Audio fingerprinting baselines that identify a song without a trained model.
//!
//! [`landmark`] is Shazam's original algorithm (Wang 2003): spectrogram peaks are paired into
//! 32-bit hashes `(f1, f2, Δt)`, and a query is matched by hash look-up plus time-offset
//! consistency ([`index`]). It is the classic answer to song identification, so it is the row
//! the logistic-regression models are compared against.

pub mod index;
pub mod landmark;

pub use index::{LandmarkAnswer, LandmarkIndex, LandmarkIndexBuilder, LandmarkStats, Posting};
pub use landmark::{pack_hash, unpack_hash, Landmark, LandmarkParams, Landmarker, Peak};
