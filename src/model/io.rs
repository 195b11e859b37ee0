//! Versioned, self-describing model files (JSON): the model, the feature parameters that
//! produced its inputs and the song catalog, so one file alone scores a query.
//!
//! ```json
//! { "format": "fhe-shazam-model", "version": 1, "kind": "quantized",
//!   "n_bits": { "input": 8, "weight": 8 }, "features": {…}, "catalog": {…},
//!   "training": {…LogisticParams} | null, "quantized": {…} }      // or "float": {…}
//! ```
//! Reading checks the format tag and version before anything else, then every invariant a
//! scorer relies on (shapes, catalog size, quantized integers re-derived from the float
//! weights), so a bad file fails at load time with its path, not later with a panic.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FloatModel, LogisticParams, QuantizedModel, Scorer, Threshold};
use crate::dataset::Catalog;
use crate::error::ModelError;
use crate::features::FeatureParams;
use crate::fsutil::write_json_atomic;

/// The `format` tag of every model file.
pub const MODEL_FORMAT: &str = "fhe-shazam-model";
/// The file version this build writes and reads.
pub const MODEL_VERSION: u64 = 1;

/// Which model a file stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Float,
    Quantized,
}

/// Bit widths, repeated in the header for readers that only want a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NBits {
    pub input: u32,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum StoredModel {
    Float { float: FloatModel },
    // Boxed: the quantized model is much larger than the float one.
    Quantized { quantized: Box<QuantizedModel> },
}

/// On-disk layout.
#[derive(Serialize, Deserialize)]
struct FileRepr {
    format: String,
    version: u64,
    n_bits: Option<NBits>,
    features: FeatureParams,
    catalog: Catalog,
    training: Option<LogisticParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_set: Option<Threshold>,
    #[serde(flatten)]
    model: StoredModel,
}

/// A model with everything needed to score a query: feature parameters, catalog, and the
/// float or quantized model (a quantized model carries the float model it came from).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    features: FeatureParams,
    catalog: Catalog,
    training: Option<LogisticParams>,
    /// The open-set rejection threshold calibrated for this model, if any.
    open_set: Option<Threshold>,
    model: StoredModel,
}

impl ModelFile {
    /// A float-model file; the catalog must have one song per class and the features the
    /// model's dimension.
    pub fn float(
        features: FeatureParams,
        catalog: Catalog,
        float: FloatModel,
        training: Option<LogisticParams>,
    ) -> Result<Self, ModelError> {
        let file = Self {
            features,
            catalog,
            training,
            open_set: None,
            model: StoredModel::Float { float },
        };
        file.validate().map_err(ModelError::InvalidModel)?;
        Ok(file)
    }

    /// A quantized-model file.
    pub fn quantized(
        features: FeatureParams,
        catalog: Catalog,
        quantized: QuantizedModel,
        training: Option<LogisticParams>,
    ) -> Result<Self, ModelError> {
        let file = Self {
            features,
            catalog,
            training,
            open_set: None,
            model: StoredModel::Quantized {
                quantized: Box::new(quantized),
            },
        };
        file.validate().map_err(ModelError::InvalidModel)?;
        Ok(file)
    }

    pub fn kind(&self) -> FileKind {
        match self.model {
            StoredModel::Float { .. } => FileKind::Float,
            StoredModel::Quantized { .. } => FileKind::Quantized,
        }
    }
    pub fn features(&self) -> &FeatureParams {
        &self.features
    }
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    pub fn training(&self) -> Option<&LogisticParams> {
        self.training.as_ref()
    }
    /// The calibrated open-set threshold ("unknown" below it), if the model has one.
    pub fn open_set(&self) -> Option<&Threshold> {
        self.open_set.as_ref()
    }
    /// The file with `threshold` as its open-set threshold.
    pub fn with_open_set(self, threshold: Threshold) -> Self {
        Self {
            open_set: Some(threshold),
            ..self
        }
    }
    /// The float model (for a quantized file, the one it was quantized from).
    pub fn float_model(&self) -> &FloatModel {
        match &self.model {
            StoredModel::Float { float } => float,
            StoredModel::Quantized { quantized } => quantized.float_model(),
        }
    }
    pub fn quantized_model(&self) -> Option<&QuantizedModel> {
        match &self.model {
            StoredModel::Float { .. } => None,
            StoredModel::Quantized { quantized } => Some(quantized),
        }
    }
    /// The model this file is for: quantized if it is a quantized file.
    pub fn scorer(&self) -> &dyn Scorer {
        match &self.model {
            StoredModel::Float { float } => float,
            StoredModel::Quantized { quantized } => quantized.as_ref(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        let float = self.float_model();
        float.validate()?;
        if self.catalog.len() != float.n_classes() {
            return Err(format!(
                "catalog has {} songs but the model has {} classes",
                self.catalog.len(),
                float.n_classes()
            ));
        }
        if let Some((i, song)) = self
            .catalog
            .songs
            .iter()
            .enumerate()
            .find(|(i, s)| s.index != *i)
        {
            return Err(format!("catalog entry {i} has index {}", song.index));
        }
        if self.features.dim() != float.n_features() {
            return Err(format!(
                "feature parameters give {} features but the model takes {}",
                self.features.dim(),
                float.n_features()
            ));
        }
        Ok(())
    }

    /// Writes the file atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let n_bits = self.quantized_model().map(|q| NBits {
            input: q.options().n_bits_input,
            weight: q.options().n_bits_weight,
        });
        let repr = FileRepr {
            format: MODEL_FORMAT.to_string(),
            version: MODEL_VERSION,
            n_bits,
            features: self.features.clone(),
            catalog: self.catalog.clone(),
            training: self.training.clone(),
            open_set: self.open_set,
            model: self.model.clone(),
        };
        write_json_atomic(path, &repr).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |reason: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not valid JSON ({e})")))?;
        // Identify the file before interpreting it, so another format or version gets its
        // own error rather than a confusing field-level one.
        let format = value.get("format").and_then(|v| v.as_str());
        if format != Some(MODEL_FORMAT) {
            let found = format.map_or_else(|| "missing".to_string(), str::to_string);
            return Err(ModelError::WrongFormat {
                path: path.to_path_buf(),
                found,
            });
        }
        let version = value
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| corrupt("missing or non-integer \"version\"".into()))?;
        if version != MODEL_VERSION {
            return Err(ModelError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: MODEL_VERSION,
            });
        }
        let repr: FileRepr = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        let header = match &repr.model {
            StoredModel::Float { .. } => None,
            StoredModel::Quantized { quantized } => Some(NBits {
                input: quantized.options().n_bits_input,
                weight: quantized.options().n_bits_weight,
            }),
        };
        if repr.n_bits != header {
            return Err(corrupt(format!(
                "header n_bits {:?} disagrees with the model's {:?}",
                repr.n_bits, header
            )));
        }
        let file = Self {
            features: repr.features,
            catalog: repr.catalog,
            training: repr.training,
            open_set: repr.open_set,
            model: repr.model,
        };
        file.validate().map_err(corrupt)?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Song;
    use crate::model::QuantOptions;
    use ndarray::array;

    fn catalog(n: usize) -> Catalog {
        Catalog {
            songs: (0..n)
                .map(|i| Song {
                    index: i,
                    track_id: format!("{i:06}"),
                    path: format!("000/{i:06}.wav").into(),
                    title: None,
                    artist: None,
                })
                .collect(),
        }
    }

    fn features(d: usize) -> FeatureParams {
        let mut f = FeatureParams::default();
        f.mfcc.n_mfcc = d;
        f
    }

    fn files() -> (ModelFile, ModelFile) {
        let float = FloatModel::new(
            array![[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]],
            array![0.1, 0.2, -0.3],
        )
        .unwrap();
        let x = array![[-100.0f32, 2.0], [50.0, -3.0], [0.0, 1.0]];
        let q = QuantizedModel::from_float(&float, x.view(), &QuantOptions::concrete(8)).unwrap();
        let f = ModelFile::float(features(2), catalog(3), float, None).unwrap();
        let qf =
            ModelFile::quantized(features(2), catalog(3), q, Some(Default::default())).unwrap();
        (f, qf)
    }

    #[test]
    fn float_and_quantized_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for file in [files().0, files().1] {
            let path = dir.path().join("m.json");
            file.save(&path).unwrap();
            let back = ModelFile::load(&path).unwrap();
            assert_eq!(back, file);
            let x = array![[3.0f32, -7.5]];
            assert_eq!(
                back.scorer().scores(x.view()).unwrap(),
                file.scorer().scores(x.view()).unwrap()
            );
        }
    }

    #[test]
    fn header_is_self_describing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.json");
        files().1.save(&path).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["format"], MODEL_FORMAT);
        assert_eq!(v["version"], MODEL_VERSION);
        assert_eq!(v["kind"], "quantized");
        assert_eq!(v["n_bits"]["input"], 8);
        assert!(v["quantized"]["accumulator_bits"].as_u64().unwrap() > 8);
        assert!(v["quantized"]["float"]["weights"].is_object());
        assert_eq!(v["catalog"]["songs"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn constructors_reject_mismatched_catalog_and_features() {
        let (f, _) = files();
        let float = f.float_model().clone();
        assert!(ModelFile::float(features(2), catalog(4), float.clone(), None).is_err());
        assert!(ModelFile::float(features(3), catalog(3), float, None).is_err());
    }
}
