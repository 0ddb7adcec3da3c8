//! Normalizer throughput for `bench/run.sh`: records per second through `Normalizer::push` and the Arrow
//! batches it builds (`take_ready`/`finish`), on records prepared in memory beforehand (no JSON parsing, no
//! I/O). Two shapes:
//!
//! * `simple`: a flat record of eight scalars (ids, strings, a timestamp string, a float, a bool);
//! * `nested`: an employee-like record with a nested object and a one-element child list (two tables).
//!
//! `bench_normalize [records] [shape]` (default 1,000,000, both shapes) prints one JSON object per shape.

// The allocator of the `personio-pipeline` binary, so the figure is the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::time::Instant;

use pipeline_engine::normalize::{NormalizeConfig, Normalizer, RootHints};
use pipeline_engine::schema::{Schema, WriteDisposition};
use serde_json::{json, Value};

fn simple(i: u64) -> Value {
    json!({
        "id": i,
        "employee_id": i % 997,
        "status": if i % 3 == 0 { "approved" } else { "pending" },
        "comment": format!("comment {i}"),
        "start_date": "2026-01-05",
        "updated_at": "2026-11-23T08:00:00+01:00",
        "days_count": (i % 5) as f64 + 0.5,
        "half_day_start": i % 2 == 0,
    })
}

fn nested(i: u64) -> Value {
    json!({
        "id": i,
        "first_name": format!("First{i}"),
        "last_name": "Bergmann",
        "email": format!("e{i}@demo.example"),
        "weekly_working_hours": "40",
        "last_modified_at": "2026-11-23T08:00:00+01:00",
        "department": {"type": "Department", "attributes": {"id": i % 17, "name": "Customer Support"}},
        "cost_centers": [{"type": "CostCenter", "attributes": {"id": i % 5, "name": "CC", "percentage": 100}}],
        "fix_salary": 3000.5,
    })
}

/// Normalizes `records` (moved in) and returns (seconds, rows in all tables).
fn run(records: Vec<Value>, disposition: WriteDisposition) -> Result<(f64, u64), String> {
    let hints = RootHints { resource: "things".into(), table: "things".into(), primary_key: vec!["id".into()], disposition, merge: Default::default() };
    let mut schema = Schema::new("bench");
    let mut n = Normalizer::new(NormalizeConfig::default());
    n.ensure_root(&mut schema, &hints);
    let load_id = "1764489600.123456";
    let started = Instant::now();
    let mut rows = 0u64;
    for record in records {
        n.push(&mut schema, &hints, record, load_id).map_err(|e| e.to_string())?;
        if n.buffered_rows() >= 10_000 {
            for (_, batch) in n.take_ready(&schema).map_err(|e| e.to_string())? {
                rows += batch.num_rows() as u64;
            }
        }
    }
    for (_, batch) in n.finish(&schema).map_err(|e| e.to_string())? {
        rows += batch.num_rows() as u64;
    }
    Ok((started.elapsed().as_secs_f64(), rows))
}

fn main() -> ExitCode {
    let count: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    type Shape = (&'static str, fn(u64) -> Value, WriteDisposition);
    let shapes: [Shape; 2] = [("simple", simple, WriteDisposition::Append), ("nested", nested, WriteDisposition::Merge)];
    let only = std::env::args().nth(2);
    for (name, make, disposition) in shapes {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let records: Vec<Value> = (0..count).map(make).collect();
        match run(records, disposition) {
            Ok((secs, rows)) => println!(
                "{{\"shape\": \"{name}\", \"records\": {count}, \"rows\": {rows}, \"seconds\": {secs:.3}, \"records_per_sec\": {:.0}}}",
                count as f64 / secs
            ),
            Err(e) => {
                eprintln!("error: {name}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
