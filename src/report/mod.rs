//! Reports: provenance, tables (CSV / Markdown / JSON) and plots.

pub mod compare;
pub mod experiment;
pub mod plots;
pub mod provenance;
pub mod scale;
pub mod tables;

pub use provenance::Provenance;

use crate::error::ReportError;
use std::path::Path;

/// Maps an I/O error on `path` to the report error that names the file.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}
