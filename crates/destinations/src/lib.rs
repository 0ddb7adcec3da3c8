//! Destinations for the pipeline engine, one module each behind [`pipeline_engine::load::Destination`].
//!
//! * `duckdb` (feature `duckdb`, default): the embedded default, `<pipeline_name>.duckdb`.
//! * `postgres`: PostgreSQL through tokio-postgres, binary `COPY` from the package's Arrow batches.
//! * `filesystem`: dlt's file layout on a local disk or S3: Parquet files, Delta tables for merge and
//!   replace (delta-rs commits), bookkeeping as JSON files.
//!
//! SQL destinations share [`sql`]: the engine's [`pipeline_engine::plan::LoadPlan`] rendered through a
//! [`sql::Dialect`]. Adding a destination means one module implementing the trait and passing the
//! conformance suite (`tests/it/conformance.rs`); see `docs/destinations.md`.
#![deny(missing_docs)]

#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod filesystem;
pub mod postgres;
pub mod read;
pub mod sql;
pub mod text;
