//! Benchmark: the filesystem destination's write throughput relative to DuckDB on the same packages.
//!
//! Two packages of synthetic employee-like records (merge disposition, a nested object and a one-row
//! child list) are normalized once: a full load of N records, then an increment that changes 1% of them.
//! Each destination — DuckDB and the filesystem destination (a local directory; S3 when
//! `BENCH_S3_ENDPOINT` and `BENCH_S3_BUCKET` name a server and bucket) — loads copies of exactly those
//! two packages; the load times are compared.
//!
//! `bench_lake [<records>]` (default 200000); prints one JSON line per destination.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use pipeline_destinations::duckdb::DuckDbConfig;
use pipeline_destinations::filesystem::{FilesystemConfig, S3Credentials};
use pipeline_engine::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use pipeline_engine::load::Destination;
use pipeline_engine::package::{pending_packages, LoadPackage};
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, RunOptions};
use pipeline_engine::schema::WriteDisposition;
use serde_json::json;

/// Records `ids` (every `step`-th id below `records`), `version` changing their content.
struct Generated {
    records: u64,
    step: u64,
    version: u64,
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
        let start = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00+00:00")?;
        let ids: Vec<u64> = (0..self.records).step_by(self.step as usize).collect();
        for chunk in ids.chunks(1000) {
            let page: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&i| {
                    json!({
                        "id": i,
                        "first_name": format!("First{i}-v{}", self.version),
                        "last_name": "Bergmann",
                        "email": format!("e{i}@demo.example"),
                        "weekly_working_hours": "40",
                        "last_modified_at": format!("\u{F027}{}", (start + chrono::Duration::seconds((i + self.version * self.records) as i64)).to_rfc3339()),
                        "department": {"type": "Department", "attributes": {"id": i % 17, "name": "Customer Support"}},
                        "cost_centers": [{"type": "CostCenter", "attributes": {"id": (i + self.version) % 5, "name": "CC", "percentage": 100}}],
                        "fix_salary": 3000.5,
                    })
                })
                .collect();
            let kept = ctx.filter("employees", page)?;
            ctx.emit("employees", kept).await?;
        }
        Ok(())
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// Normalize a source into a package (stopped before its load) and keep a copy of it in `keep`.
async fn package(dir: &Path, source: &Generated, keep: &Path) -> Result<PathBuf, String> {
    let p = Pipeline::open(PipelineConfig::new("bench", "bench_data", dir.join("pipelines"))).map_err(|e| e.to_string())?;
    let mut scratch = DuckDbConfig::for_pipeline(dir, "scratch", "bench_data").build().map_err(|e| e.to_string())?;
    let options = RunOptions { fail_before_load: true, ..RunOptions::default() };
    let stopped = match p.run_with(source, None, &mut scratch, options).await {
        Ok(_) => return Err("the run did not stop before the load".into()),
        Err(e) => e.to_string(),
    };
    let pkg = pending_packages(&p.workdir().join("load")).map_err(|e| e.to_string())?.pop().ok_or(format!("no package: {stopped}"))?;
    copy_dir(pkg.dir(), keep).map_err(|e| e.to_string())?;
    Ok(keep.to_path_buf())
}

/// Load copies of the packages into `d`, one after the other; seconds per package.
async fn load_all(d: &mut dyn Destination, packages: &[PathBuf], scratch: &Path) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        let copy = scratch.join(format!("pkg{i}"));
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(p, &copy).map_err(|e| e.to_string())?;
        let pkg = LoadPackage::open(&copy).map_err(|e| e.to_string())?;
        let started = Instant::now();
        d.load_package(&pkg).await.map_err(|e| e.to_string())?;
        out.push(started.elapsed().as_secs_f64());
    }
    Ok(out)
}

fn main() -> ExitCode {
    let records: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let Ok(dir) = tempfile::tempdir() else { return ExitCode::from(1) };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else { return ExitCode::from(1) };
    let result = rt.block_on(async {
        let d = dir.path();
        let full = package(&d.join("p1"), &Generated { records, step: 1, version: 0 }, &d.join("full")).await?;
        let increment = package(&d.join("p2"), &Generated { records, step: 100, version: 1 }, &d.join("increment")).await?;
        let packages = [full, increment];
        let mut lines = Vec::new();
        let mut duck = DuckDbConfig::for_pipeline(&d.join("duck"), "bench", "bench_data").build().map_err(|e| e.to_string())?;
        let duck_secs = load_all(&mut duck, &packages, &d.join("scratch")).await?;
        let mut targets = vec![("filesystem-local", FilesystemConfig::new(d.join("bucket").display().to_string(), "bench_data"))];
        if let (Ok(endpoint), Ok(bucket)) = (std::env::var("BENCH_S3_ENDPOINT"), std::env::var("BENCH_S3_BUCKET")) {
            let mut c = FilesystemConfig::new(format!("s3://{bucket}/bench"), "bench_data");
            c.credentials = S3Credentials {
                aws_access_key_id: Some("bench".into()),
                aws_secret_access_key: Some("bench".into()),
                endpoint_url: Some(endpoint),
                ..S3Credentials::default()
            };
            targets.push(("filesystem-s3", c));
        }
        lines.push(("duckdb", duck_secs.clone()));
        for (name, config) in targets {
            let mut fs = config.build().map_err(|e| e.to_string())?;
            let secs = load_all(&mut fs, &packages, &d.join("scratch")).await?;
            let tables = fs.tables().await.map_err(|e| e.to_string())?;
            let rows = tables.iter().find(|t| t.name == "employees").map(|t| t.rows).unwrap_or(0);
            if rows != records {
                return Err(format!("{name}: {rows} employees after the merge, expected {records}"));
            }
            lines.push((name, secs));
        }
        Ok::<_, String>(lines)
    });
    match result {
        Ok(lines) => {
            let duck = lines[0].1.clone();
            for (name, secs) in &lines {
                println!(
                    "{{\"destination\": \"{name}\", \"records\": {records}, \"full_load_seconds\": {:.2}, \"full_records_per_sec\": {:.0}, \"increment_1pct_seconds\": {:.2}, \"full_vs_duckdb\": {:.2}, \"increment_vs_duckdb\": {:.2}}}",
                    secs[0],
                    records as f64 / secs[0],
                    secs[1],
                    duck[0] / secs[0],
                    duck[1] / secs[1],
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
