//! Reports: provenance, tables (CSV / Markdown / JSON) and plots.

pub mod provenance;

pub use provenance::Provenance;
