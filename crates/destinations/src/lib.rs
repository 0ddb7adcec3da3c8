//! Destinations for the pipeline engine, one module each behind [`pipeline_engine::load::Destination`].
//!
//! * `duckdb` (feature `duckdb`, default): the embedded default, `<pipeline_name>.duckdb`.
//!
//! Adding a destination means one module implementing the trait, plus a feature; see `docs/destinations.md`.
#![deny(missing_docs)]

#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod read;
pub mod sql;
