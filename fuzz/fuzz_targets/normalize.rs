//! Fuzz target: the relational normalizer (JSON records → root and child tables), driven exactly as
//! the pipeline's normalize loop drives it (`ensure_root`, `push` per record, `take_ready` between
//! batches, `finish`).
//!
//! Input: structured JSON (`arbitrary`), keys drawn mostly from a small pool so that columns collide,
//! change type and nest. Invariants checked on every successful run:
//! * no panic, whatever the records;
//! * every child row's `_dlt_parent_id` is the `_dlt_id` of a row of its parent table;
//! * the rows written per table equal the normalizer's `row_counts`;
//! * `_dlt_id`s are unique per table unless the input itself supplies `_dlt_id` values (dlt keeps them).
#![no_main]

use std::collections::{HashMap, HashSet};

use arbitrary::{Arbitrary, Result, Unstructured};
use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use libfuzzer_sys::fuzz_target;
use pipeline_engine::normalize::{NormalizeConfig, Normalizer, RootHints};
use pipeline_engine::schema::{Schema, WriteDisposition};
use serde_json::{Map, Number, Value};

/// Keys that collide after normalization, look like system columns, or nest.
const KEYS: &[&str] = &[
    "id", "ID", "Id ", "value", "list", "name", "a", "A", "a__b", "a_b", "aB", "_dlt_id", "_dlt_parent_id",
    "_dlt_load_id", "_dlt_list_idx", "_dlt_root_id", "last_modified_at", "Last Modified At", "", " ", "__",
    "x__v_text", "x__v_bigint", "x", "E-Mail (privat)", "1. Hilfe", "Größe", "cost_center_%", "a\u{1c}b",
];

/// Strings that type-infer as timestamps, dates, numbers or tagged values.
const STRINGS: &[&str] = &[
    "2024-03-01T10:00:00+02:00", "2024-03-01", "2024-03-01T10:00:00Z", "10:00:00", "\u{F027}2024-03-01T08:00:00+00:00",
    "\u{F028}2024-03-01", "12.5", "1e400", "NaN", "true", "", "\u{0}", "x",
];

#[derive(Debug)]
struct Input {
    merge: bool,
    primary_key: bool,
    max_len: Option<usize>,
    batch_rows: usize,
    records: Vec<Value>,
}

fn key(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(if u.ratio(7, 8)? { (*u.choose(KEYS)?).to_string() } else { String::arbitrary(u)? })
}

fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let kinds = if depth >= 5 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=kinds)? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => Value::from(i64::arbitrary(u)?),
        3 => match u.int_in_range(0..=2)? {
            0 => Value::from(u64::arbitrary(u)?),
            _ => Number::from_f64(f64::arbitrary(u)?).map_or(Value::Null, Value::Number),
        },
        4 => Value::String((*u.choose(STRINGS)?).to_string()),
        5 => Value::String(String::arbitrary(u)?),
        6 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| value(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => {
            let n = u.int_in_range(0..=5)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(key(u)?, value(u, depth + 1)?);
            }
            Value::Object(m)
        }
    })
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let merge = bool::arbitrary(u)?;
        let primary_key = bool::arbitrary(u)?;
        let max_len = if u.ratio(1, 4)? { Some(u.int_in_range(1..=40)?) } else { None };
        let batch_rows = u.int_in_range(1..=8)?;
        let n = u.int_in_range(0..=12)?;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            // Mostly objects (records), sometimes a scalar or a list, as a resource could yield.
            records.push(if u.ratio(9, 10)? { value_object(u)? } else { value(u, 0)? });
        }
        Ok(Input { merge, primary_key, max_len, batch_rows, records })
    }
}

fn value_object(u: &mut Unstructured<'_>) -> Result<Value> {
    let n = u.int_in_range(0..=8)?;
    let mut m = Map::new();
    for _ in 0..n {
        m.insert(key(u)?, value(u, 1)?);
    }
    Ok(Value::Object(m))
}

/// The values of a text column; `None` if the column is absent or not text (input-supplied ids).
fn strings(batch: &RecordBatch, column: &str) -> Option<Vec<Option<String>>> {
    let arr = batch.column_by_name(column)?.as_string_opt::<i32>()?;
    Some((0..arr.len()).map(|i| arr.is_valid(i).then(|| arr.value(i).to_string())).collect())
}

fn supplies_dlt_id(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| k.to_ascii_lowercase().contains("dlt") || supplies_dlt_id(x)),
        Value::Array(a) => a.iter().any(supplies_dlt_id),
        _ => false,
    }
}

fuzz_target!(|input: Input| {
    let mut schema = Schema::new("fuzz");
    let hints = RootHints {
        resource: "things".into(),
        table: "things".into(),
        primary_key: if input.primary_key { vec!["id".into()] } else { vec![] },
        disposition: if input.merge { WriteDisposition::Merge } else { WriteDisposition::Append },
        merge: Default::default(),
    };
    let mut normalizer = Normalizer::new(NormalizeConfig { max_identifier_len: input.max_len, batch_rows: input.batch_rows });
    let custom_ids = input.records.iter().any(supplies_dlt_id);
    let mut batches: Vec<(String, RecordBatch)> = Vec::new();
    normalizer.ensure_root(&mut schema, &hints);
    for record in input.records {
        if normalizer.push(&mut schema, &hints, record, "1700000000.123").is_err() {
            return; // A clear error (coercion, null key, overflow) ends the run, as in the pipeline.
        }
        match normalizer.take_ready(&schema) {
            Ok(ready) => batches.extend(ready),
            Err(_) => return,
        }
    }
    match normalizer.finish(&schema) {
        Ok(rest) => batches.extend(rest),
        Err(_) => return,
    }

    let mut rows: HashMap<&str, u64> = HashMap::new();
    let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
    for (table, batch) in &batches {
        *rows.entry(table).or_default() += batch.num_rows() as u64;
        match strings(batch, "_dlt_id") {
            Some(v) => ids.entry(table).or_default().extend(v.into_iter().flatten()),
            None => assert!(custom_ids, "{table}: _dlt_id is missing or not text"),
        }
        let t = schema.tables.get(table).unwrap_or_else(|| panic!("batch for table {table} not in the schema"));
        assert_eq!(batch.num_columns(), batch.schema().fields().len());
        if t.parent.is_none() {
            assert!(batch.column_by_name("_dlt_load_id").is_some(), "root {table} has no _dlt_load_id");
        }
    }
    for (table, n) in normalizer.row_counts() {
        assert_eq!(rows.get(table.as_str()).copied().unwrap_or(0), *n, "row count of {table}");
    }
    for (table, batch) in &batches {
        let Some(parent) = schema.tables.get(table).and_then(|t| t.parent.as_deref()) else { continue };
        let parent_ids: HashSet<&String> = ids.get(parent).map(|v| v.iter().collect()).unwrap_or_default();
        let parent_ids_known = !custom_ids || ids.contains_key(parent);
        let Some(pids) = strings(batch, "_dlt_parent_id") else {
            panic!("child {table}: _dlt_parent_id is missing or not text");
        };
        for pid in pids.into_iter().filter(|_| parent_ids_known) {
            let pid = pid.unwrap_or_else(|| panic!("child {table} has a null _dlt_parent_id"));
            assert!(parent_ids.contains(&pid), "child {table}: _dlt_parent_id {pid} is not a _dlt_id of {parent}");
        }
    }
    if !custom_ids {
        for (table, list) in &ids {
            let unique: HashSet<&String> = list.iter().collect();
            assert_eq!(unique.len(), list.len(), "duplicate _dlt_id in {table}");
        }
    }
});
