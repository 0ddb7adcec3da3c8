//! Benchmark: normalize and load N synthetic employee-like records (nested object + child list) into
//! DuckDB through the engine (merge disposition), reporting throughput and the peak memory (VmHWM) of
//! each phase: extract + normalize into a package on disk, then the load of that package (the peak is
//! reset in between through `/proc/self/clear_refs`). Run by `bench/run.sh`.
//!
//! `bench_load <records> [<page size>]`; `BENCH_MEMORY_LIMIT` (`none` = DuckDB's default) and
//! `BENCH_MERGE_CHUNK_ROWS` override the destination's defaults.

use std::process::ExitCode;
use std::time::Instant;

use pipeline_destinations::duckdb::DuckDbConfig;
use pipeline_engine::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, RunOptions};
use pipeline_engine::schema::WriteDisposition;
use serde_json::json;

struct Generated {
    records: u64,
    page: u64,
}

#[async_trait::async_trait]
impl Source for Generated {
    fn name(&self) -> &str {
        "bench"
    }

    fn resources(&self) -> Vec<ResourceSpec> {
        vec![ResourceSpec::new("employees", &["id"], WriteDisposition::Merge).with_cursor("last_modified_at")]
    }

    async fn extract(&self, ctx: ExtractContext) -> Result<(), SourceError> {
        let mut id = 0u64;
        let start = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00+00:00")?;
        while id < self.records {
            let end = (id + self.page).min(self.records);
            let page: Vec<serde_json::Value> = (id..end)
                .map(|i| {
                    json!({
                        "id": i,
                        "first_name": format!("First{i}"),
                        "last_name": "Bergmann",
                        "email": format!("e{i}@demo.example"),
                        "weekly_working_hours": "40",
                        // One record per second, as records change over time: the incremental boundary (rows at
                        // the newest cursor value, kept as hashes in the state) stays one row.
                        "last_modified_at": format!("\u{F027}{}", (start + chrono::Duration::seconds(i as i64)).to_rfc3339()),
                        "department": {"type": "Department", "attributes": {"id": i % 17, "name": "Customer Support"}},
                        "cost_centers": [{"type": "CostCenter", "attributes": {"id": i % 5, "name": "CC", "percentage": 100}}],
                        "fix_salary": 3000.5,
                    })
                })
                .collect();
            let kept = ctx.filter("employees", page)?;
            ctx.emit("employees", kept).await?;
            id = end;
        }
        Ok(())
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Reset VmHWM to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let page: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let Ok(dir) = tempfile::tempdir() else { return ExitCode::from(1) };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else { return ExitCode::from(1) };
    let mut config = DuckDbConfig::for_pipeline(dir.path(), "bench", "bench_data");
    if let Ok(limit) = std::env::var("BENCH_MEMORY_LIMIT") {
        config.memory_limit = (limit != "none").then_some(limit);
    }
    if let Some(rows) = std::env::var("BENCH_MERGE_CHUNK_ROWS").ok().and_then(|s| s.parse().ok()) {
        config.merge_chunk_rows = rows;
    }
    let started = Instant::now();
    let result = rt.block_on(async {
        let mut d = config.build().map_err(|e| e.to_string())?;
        let p = Pipeline::open(PipelineConfig::new("bench", "bench_data", dir.path().join("pipelines"))).map_err(|e| e.to_string())?;
        // Phase 1: extract + normalize into a package; the injected failure stops before the load.
        let options = RunOptions { fail_before_load: true, ..RunOptions::default() };
        if p.run_with(&Generated { records, page }, None, &mut d, options).await.is_ok() {
            return Err("the run did not stop before the load".to_string());
        }
        let normalized = started.elapsed().as_secs_f64();
        let normalize_peak = peak_rss_mib();
        let reset = reset_peak_rss();
        // Phase 2: load the package left on disk.
        let loaded = p.resume_pending(&mut d).await.map_err(|e| e.to_string())?;
        if loaded.len() != 1 {
            return Err(format!("expected one package to load, loaded {}", loaded.len()));
        }
        let load_peak = if reset { peak_rss_mib() } else { f64::NAN };
        let rows: i64 = d
            .connection()
            .map_err(|e| e.to_string())?
            .query_row("SELECT count(*) FROM bench_data.employees__cost_centers", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        Ok((normalized, normalize_peak, load_peak, rows))
    });
    match result {
        Ok((normalized, normalize_peak, load_peak, child_rows)) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{{\"records\": {records}, \"seconds\": {secs:.2}, \"records_per_sec\": {:.0}, \"normalize_seconds\": {normalized:.2}, \
                 \"load_seconds\": {:.2}, \"normalize_peak_rss_mib\": {normalize_peak:.1}, \"load_peak_rss_mib\": {load_peak:.1}, \
                 \"memory_limit\": {:?}, \"merge_chunk_rows\": {}, \"child_rows\": {child_rows}}}",
                records as f64 / secs,
                secs - normalized,
                config.memory_limit.as_deref().unwrap_or("none"),
                config.merge_chunk_rows,
            );
            if child_rows as u64 != records {
                eprintln!("error: {child_rows} child rows loaded, expected {records}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
