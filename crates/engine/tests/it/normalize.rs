//! Data-driven normalizer cases: `tests/data/normalize/<case>/input.json` → `expected.txt`.
//!
//! `input.json` is `{"hints": {resource, table, primary_key, disposition}, "records": [...],
//! "batch_rows"?: n, "max_identifier_len"?: n, "load_id"?: "..."}`. The rendering lists every table
//! of the schema with its columns and its rows (`NULL` for null). Random ids are replaced by
//! placeholders `<table#row>` after checking the links: `_dlt_parent_id` points to a row of the parent
//! table, `_dlt_root_id` to a row of the root table, child `_dlt_id` equals the recomputed digest.
//! `UPDATE_EXPECT=1` rewrites the expectations.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType as A, Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use pipeline_engine::naming;
use pipeline_engine::normalize::{NormalizeConfig, Normalizer, RootHints};
use pipeline_engine::schema::{Schema, WriteDisposition};
use serde_json::Value;

fn cell(arr: &dyn Array, i: usize) -> String {
    if arr.is_null(i) {
        return "NULL".into();
    }
    match arr.data_type() {
        A::Utf8 => serde_json::to_string(arr.as_string::<i32>().value(i)).unwrap(),
        A::Int64 => arr.as_primitive::<Int64Type>().value(i).to_string(),
        A::Float64 => format!("{:?}", arr.as_primitive::<Float64Type>().value(i)),
        A::Boolean => arr.as_boolean().value(i).to_string(),
        A::Timestamp(_, _) => {
            let m = arr.as_primitive::<TimestampMicrosecondType>().value(i);
            let t = chrono::DateTime::from_timestamp_micros(m).unwrap();
            format!("ts:{}", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
        }
        A::Date32 => {
            let d = arr.as_primitive::<Date32Type>().value(i);
            format!("date:{}", chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163).unwrap())
        }
        other => format!("<{other}>"),
    }
}

/// Rows of a table as (column → rendered raw value), columns per the final schema.
fn rows_of(schema: &Schema, table: &str, batches: &[RecordBatch]) -> Vec<Vec<(String, String)>> {
    let cols: Vec<String> = schema.tables[table].columns.keys().cloned().collect();
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        let v = match b.schema().index_of(c) {
                            Ok(idx) => cell(b.column(idx).as_ref(), i),
                            Err(_) => "NULL".into(),
                        };
                        (c.clone(), v)
                    })
                    .collect(),
            );
        }
    }
    out
}

fn unquote(s: &str) -> String {
    serde_json::from_str::<String>(s).unwrap_or_else(|_| s.to_string())
}

fn run_case(dir: &Path) -> String {
    let input: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("input.json")).unwrap()).unwrap();
    let h = &input["hints"];
    let hints = RootHints {
        resource: h["resource"].as_str().unwrap().to_string(),
        table: h["table"].as_str().unwrap_or(h["resource"].as_str().unwrap()).to_string(),
        primary_key: h["primary_key"].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect()).unwrap_or_default(),
        disposition: h["disposition"].as_str().unwrap_or("append").parse::<WriteDisposition>().unwrap(),
        merge: pipeline_engine::fixture::merge_hints(h).unwrap(),
    };
    let config = NormalizeConfig {
        max_identifier_len: input["max_identifier_len"].as_u64().map(|n| n as usize),
        batch_rows: input["batch_rows"].as_u64().unwrap_or(10_000) as usize,
        ..NormalizeConfig::default()
    };
    let load_id = input["load_id"].as_str().unwrap_or("1718712345.4921231").to_string();
    let mut schema = Schema::new("test");
    let mut n = Normalizer::new(config);
    n.ensure_root(&mut schema, &hints);
    let mut batches: HashMap<String, Vec<RecordBatch>> = HashMap::new();
    let mut errors = Vec::new();
    for (i, rec) in input["records"].as_array().unwrap().iter().enumerate() {
        if let Err(e) = n.push(&mut schema, &hints, rec.clone(), &load_id) {
            errors.push(format!("record {i}: {e}"));
        }
        for (t, b) in n.take_ready(&schema).unwrap() {
            batches.entry(t).or_default().push(b);
        }
    }
    for (t, b) in n.finish(&schema).unwrap() {
        batches.entry(t).or_default().push(b);
    }

    // Batches carry the schema's columns and types at flush time.
    for (t, bs) in &batches {
        for b in bs {
            for f in b.schema().fields() {
                let col = &schema.tables[t].columns[f.name().as_str()];
                assert_eq!(f.data_type(), &pipeline_engine::normalize::arrow_type(col.data_type), "{t}.{}", f.name());
                assert_eq!(f.is_nullable(), col.nullable, "{t}.{}", f.name());
            }
        }
    }

    // Map every _dlt_id to a placeholder, then verify links.
    let mut table_rows: Vec<(String, Vec<Vec<(String, String)>>)> = Vec::new();
    let mut ids: HashMap<String, (String, String)> = HashMap::new(); // id → (placeholder, table)
    for t in schema.tables.keys() {
        let rows = rows_of(&schema, t, batches.get(t).map(Vec::as_slice).unwrap_or(&[]));
        for (i, r) in rows.iter().enumerate() {
            if let Some((_, v)) = r.iter().find(|(c, _)| c == "_dlt_id") {
                let prev = ids.insert(unquote(v), (format!("<{t}#{i}>"), t.clone()));
                assert!(prev.is_none(), "duplicate _dlt_id {v}");
            }
        }
        table_rows.push((t.clone(), rows));
    }
    let mut out = String::new();
    for (t, rows) in &table_rows {
        let table = &schema.tables[t];
        let root = schema.root_of(t).to_string();
        writeln!(
            out,
            "== {t} (parent: {}, resource: {}, disposition: {}, seen_data: {}, rows: {})",
            table.parent.as_deref().unwrap_or("-"),
            table.resource.as_deref().unwrap_or("-"),
            table.write_disposition.map(|d| d.as_str()).unwrap_or("-"),
            table.seen_data,
            n.row_counts().get(t).copied().unwrap_or(0),
        )
        .unwrap();
        for c in table.columns.values() {
            let mut flags = Vec::new();
            if !c.nullable {
                flags.push("NOT NULL");
            }
            if c.primary_key {
                flags.push("primary_key");
            }
            if c.unique {
                flags.push("unique");
            }
            if c.variant {
                flags.push("variant");
            }
            writeln!(out, "  {}: {} {}", c.name, c.data_type, flags.join(" ")).unwrap();
        }
        assert_eq!(rows.len() as u64, n.row_counts().get(t).copied().unwrap_or(0), "{t}: row count");
        for r in rows {
            let get = |name: &str| r.iter().find(|(c, _)| c == name).map(|(_, v)| unquote(v));
            let id = get("_dlt_id").expect("every row has _dlt_id");
            match &table.parent {
                None => assert_eq!(id.len(), 14, "root _dlt_id {id}"),
                Some(parent) => {
                    let pid = get("_dlt_parent_id").expect("child has _dlt_parent_id");
                    let idx: usize = get("_dlt_list_idx").expect("child has _dlt_list_idx").parse().unwrap();
                    assert_eq!(ids.get(&pid).map(|p| p.1.as_str()), Some(parent.as_str()), "{t}: parent link");
                    assert_eq!(id, naming::nested_row_id(&pid, t, idx), "{t}: child _dlt_id digest");
                    match schema.disposition_of(t) {
                        WriteDisposition::Merge => {
                            let rid = get("_dlt_root_id").expect("merge child has _dlt_root_id");
                            assert_eq!(ids.get(&rid).map(|p| p.1.as_str()), Some(root.as_str()), "{t}: root link");
                        }
                        _ => assert!(!table.columns.contains_key("_dlt_root_id"), "{t}: no _dlt_root_id unless merge"),
                    }
                }
            }
            let rendered: Vec<String> = r
                .iter()
                .map(|(c, v)| {
                    let v = if matches!(c.as_str(), "_dlt_id" | "_dlt_parent_id" | "_dlt_root_id") && v != "NULL" {
                        ids.get(&unquote(v)).map(|p| p.0.clone()).unwrap_or_else(|| format!("<unknown {v}>"))
                    } else {
                        v.clone()
                    };
                    format!("{c}={v}")
                })
                .collect();
            writeln!(out, "  | {}", rendered.join(" | ")).unwrap();
        }
    }
    for e in errors {
        writeln!(out, "error: {e}").unwrap();
    }
    out
}

#[test]
fn normalize_cases() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/normalize");
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1");
    let mut dirs: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    let mut failures = Vec::new();
    for dir in dirs {
        let got = run_case(&dir);
        let path = dir.join("expected.txt");
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            failures.push(format!("--- {} ---\n{got}", dir.display()));
        }
    }
    assert!(failures.is_empty(), "mismatches (UPDATE_EXPECT=1 to accept):\n{}", failures.join("\n"));
}

/// Throughput on simple flat records; run with `cargo test --release -- --ignored throughput --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let hints = RootHints {
        resource: "absences".into(),
        table: "absences".into(),
        primary_key: vec!["id".into()],
        disposition: WriteDisposition::Merge,
        merge: Default::default(),
    };
    let records: Vec<Value> = (0..200_000)
        .map(|i| {
            serde_json::json!({"id": i, "status": "approved", "comment": "x", "start_date": "\u{F027}2024-01-01T00:00:00+00:00",
                "days_count": 1, "half_day_start": false, "employee": {"id": i % 100, "name": "Ada"}})
        })
        .collect();
    let mut schema = Schema::new("bench");
    let mut n = Normalizer::new(NormalizeConfig::default());
    let start = std::time::Instant::now();
    let mut rows = 0;
    for r in records {
        n.push(&mut schema, &hints, r, "1").unwrap();
        for (_, b) in n.take_ready(&schema).unwrap() {
            rows += b.num_rows();
        }
    }
    for (_, b) in n.finish(&schema).unwrap() {
        rows += b.num_rows();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(rows, 200_000);
    println!("{:.0} records/s", 200_000.0 / secs);
}
