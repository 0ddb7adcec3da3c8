//! End-to-end: the Personio source against the sandbox, loaded into DuckDB, compared with the sandbox's
//! ground truth. One integration binary (DuckDB links once).

mod cli;
mod e2e;
mod support;
