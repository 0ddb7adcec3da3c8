//! Engine + DuckDB integration tests on JSON fixtures (no Personio). One binary: DuckDB links once.

mod dispositions;
mod packages;
mod state_trust;
mod support;
