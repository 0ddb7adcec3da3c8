//! Engine + destination integration tests on JSON fixtures (no Personio): DuckDB, and the conformance
//! suite on every destination (memory, DuckDB, PostgreSQL). One binary: DuckDB links once.

mod conformance;
mod dispositions;
mod packages;
mod state_trust;
mod support;
