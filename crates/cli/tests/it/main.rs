//! End-to-end: the Personio source against the sandbox, loaded into DuckDB, compared with the sandbox's
//! ground truth. One integration binary (DuckDB links once).

mod bad_inputs;
mod api_contract;
mod cli;
mod crash;
mod deletions;
mod e2e;
mod faults;
mod filesystem;
mod history;
mod postgres;
mod secrets;
mod state_trust;
mod support;
