//! Reports: the result schema, provenance, tables (CSV / Markdown / JSON) and plots. The
//! report layer reads results and writes files; it runs nothing.

pub mod bench;
pub mod compare;
pub mod evaluate;
pub mod experiment;
pub mod markdown;
pub mod plots;
pub mod provenance;
pub mod scale;
pub mod schema;
pub mod tables;
pub mod train;

pub use provenance::Provenance;
pub use schema::{ModelKind, Reproduction, ResultRow};

use crate::error::ReportError;
use std::path::Path;

/// Maps an I/O error on `path` to the report error that names the file.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}
