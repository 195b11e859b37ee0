//! The seed's chunk features: consecutive 0.5 s windows, MFCC summed over frames.

use super::{FeatureParams, Mfcc};
use crate::error::FeatureError;
use ndarray::Array2;

/// One feature vector per whole chunk: row i is the MFCC of
/// `y[i*hop .. i*hop + chunk_samples]` (computed on the chunk alone, with its own centre
/// padding) summed over frames. Shape (n_chunks, n_mfcc). Errors if `y` is shorter than one chunk.
pub fn chunk_features(
    mfcc: &Mfcc,
    params: &FeatureParams,
    y: &[f32],
) -> Result<Array2<f32>, FeatureError> {
    let _ = (mfcc, params, y);
    todo!("MFCC helper")
}
