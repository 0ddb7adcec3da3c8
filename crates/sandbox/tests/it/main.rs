//! Integration tests of the sandbox's HTTP contract.

mod admin;
mod auth;
mod bench_support;
mod common;
mod determinism;
mod faults;
mod latency;
mod rate_limits;
mod records;
mod strict;
mod v1;
mod v2;
