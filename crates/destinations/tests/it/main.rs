//! Engine + destination integration tests on JSON fixtures (no Personio): DuckDB, and the conformance
//! suite on every destination (memory, DuckDB, PostgreSQL, filesystem on disk and S3). One binary: DuckDB links once.

mod conformance;
mod dispositions;
mod early_load;
mod filesystem;
mod filesystem_reader;
mod moto;
mod packages;
mod state_trust;
mod support;
