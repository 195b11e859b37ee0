//! Reports: provenance, tables (CSV / Markdown / JSON) and plots.

pub mod compare;
pub mod experiment;
pub mod plots;
pub mod provenance;
pub mod scale;
pub mod tables;

pub use provenance::Provenance;
