//! One full extract + normalize of the default resources from a running sandbox (or any Personio base
//! URL), with client-side pacing off, into a destination that discards the package: the CPU path of a
//! full load without the load itself and without DuckDB, so it builds in release in minutes and can be
//! profiled (`perf record`) while DuckDB compiles.
//!
//! `cargo run --release -p personio-source --example extract_profile -- <base-url> [runs]`
//! (credentials: the sandbox's, or `SOURCES__PERSONIO__CLIENT_ID` / `SOURCES__PERSONIO__CLIENT_SECRET`).
//! Prints, per run, the wall time, the rows loaded and the process's CPU time so far.

use std::time::Instant;

use personio_client::{ClientConfig, PersonioClient};
use personio_source::{PersonioSource, SourceOptions};
use pipeline_engine::load::{Destination, DestinationError, LoadInfo, LoadReport, StoredState, TableInfo};
use pipeline_engine::package::LoadPackage;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};
use pipeline_engine::schema::Schema;
use pipeline_engine::state::StateRow;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base_url = args.next().ok_or("usage: extract_profile <base-url> [runs]")?;
    let runs: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(1);
    let var = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_string());
    let dir = std::env::temp_dir().join(format!("extract-profile-{}", std::process::id()));
    for run in 1..=runs {
        let mut config = ClientConfig::new(
            var("SOURCES__PERSONIO__CLIENT_ID", "papi-sandbox-client"),
            var("SOURCES__PERSONIO__CLIENT_SECRET", "papi-sandbox-secret"),
        )
        .with_base_url(base_url.clone());
        config.pacing.enabled = false;
        let source = PersonioSource::new(PersonioClient::new(config)?, SourceOptions::default());
        let pipeline = Pipeline::open(PipelineConfig::new(&format!("profile{run}"), "personio", &dir))?;
        let mut destination = Discard;
        let started = Instant::now();
        let report = pipeline.run(&source, None, &mut destination).await?;
        let rows: u64 = report.rows.values().sum();
        println!("run {run}: {:.2} s wall, {rows} rows, {:.2} CPU-s in the process so far", started.elapsed().as_secs_f64(), cpu_seconds());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// User + system CPU of this process (Linux `/proc/self/stat`; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// A destination that holds nothing: every package is "loaded" by being dropped.
struct Discard;

#[async_trait::async_trait]
impl Destination for Discard {
    fn kind(&self) -> &'static str {
        "discard"
    }

    fn destination_type(&self) -> &'static str {
        "discard"
    }

    async fn health_check(&mut self) -> Result<(), DestinationError> {
        Ok(())
    }

    async fn stored_state(&mut self, _pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        Ok(None)
    }

    async fn stored_schema(&mut self, _schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        Ok(None)
    }

    async fn is_loaded(&mut self, _load_id: &str) -> Result<bool, DestinationError> {
        Ok(false)
    }

    async fn load_package(&mut self, _package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        Ok(LoadReport::default())
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
        Ok(Vec::new())
    }

    async fn recent_loads(&mut self, _limit: usize) -> Result<Vec<LoadInfo>, DestinationError> {
        Ok(Vec::new())
    }

    async fn drop_tables(&mut self, _tables: &[String], _schema: &Schema, _state: &StateRow, _load_id: &str) -> Result<(), DestinationError> {
        Ok(())
    }
}
