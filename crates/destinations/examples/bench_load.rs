//! Benchmark: normalize and load N synthetic employee-like records (nested object + child list) into
//! DuckDB through the engine, reporting throughput and peak memory (VmHWM). Run by `bench/run.sh`.
//!
//! `bench_load <records> [<page size>]`

use std::process::ExitCode;
use std::time::Instant;

use pipeline_destinations::duckdb::DuckDbConfig;
use pipeline_engine::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};
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
                        "last_modified_at": format!("\u{F027}2026-01-01T00:00:{:02}+00:00", i % 60),
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let page: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let Ok(dir) = tempfile::tempdir() else { return ExitCode::from(1) };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else { return ExitCode::from(1) };
    let started = Instant::now();
    let result = rt.block_on(async {
        let mut d = DuckDbConfig::for_pipeline(dir.path(), "bench", "bench_data").build().map_err(|e| e.to_string())?;
        let p = Pipeline::open(PipelineConfig::new("bench", "bench_data", dir.path().join("pipelines"))).map_err(|e| e.to_string())?;
        p.run(&Generated { records, page }, None, &mut d).await.map_err(|e| e.to_string())
    });
    match result {
        Ok(report) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{{\"records\": {records}, \"seconds\": {secs:.2}, \"records_per_sec\": {:.0}, \"peak_rss_mib\": {:.1}, \"child_rows\": {}}}",
                records as f64 / secs,
                peak_rss_mib(),
                report.rows.get("employees__cost_centers").copied().unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
