//! Text a SQL destination cannot store as it is: the NUL character (`U+0000`, `\u0000` in JSON).
//!
//! PostgreSQL's `text`/`varchar` cannot hold NUL at all (the load fails with "invalid byte sequence for
//! encoding UTF8: 0x00"), and `jsonb` refuses the escape `\u0000` ("unsupported Unicode escape sequence").
//! dlt removes NUL from text silently when it writes its `insert_values` files for PostgreSQL and DuckDB
//! (`escape_postgres_literal`, `escape_duckdb_literal`), and its PostgreSQL load fails on a JSON value that
//! holds one. We remove NUL from text the same way on both destinations, from JSON values too on
//! PostgreSQL (so the load goes through), and — unlike dlt — say so: [`NulReport::warning`] names every
//! column and how many values lost characters, and the run summary and `trace.json` carry it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;
use pipeline_engine::schema::DataType;

/// Values changed per `table.column`, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NulReport {
    changed: IndexMap<(String, String), u64>,
}

impl NulReport {
    /// Whether nothing was changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }

    /// Values changed in `table.column`.
    pub fn count(&self, table: &str, column: &str) -> u64 {
        self.changed.get(&(table.to_string(), column.to_string())).copied().unwrap_or(0)
    }

    /// Values changed in all columns.
    pub fn total(&self) -> u64 {
        self.changed.values().sum()
    }

    /// Add the counts of another report.
    pub fn merge(&mut self, other: NulReport) {
        for (k, n) in other.changed {
            *self.changed.entry(k).or_default() += n;
        }
    }

    /// The message for the run summary, or `None` when nothing was changed.
    pub fn warning(&self, destination: &str) -> Option<String> {
        if self.changed.is_empty() {
            return None;
        }
        let list: Vec<String> = self.changed.iter().map(|((t, c), n)| format!("{t}.{c} ({n})")).collect();
        Some(format!(
            "{} value(s) had NUL characters (U+0000) removed on the way into {destination}, as dlt does (PostgreSQL cannot store them in text): {}",
            self.total(),
            list.join(", ")
        ))
    }
}

/// How NUL is removed from a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Text: remove the character.
    Text,
    /// JSON text: remove `\u0000` escapes from strings and keys (the text has no raw NUL).
    Json,
}

/// `batch` with NUL removed from its text columns (and from its JSON columns when `json` is set),
/// counting changed values per column of `table` in `report`. `types` gives each column's dlt type in
/// batch order (a missing entry counts as text). Returns the batch itself when nothing needs changing
/// (the usual case: a column is only scanned, never copied).
pub fn strip_nul(batch: RecordBatch, types: &[DataType], json: bool, table: &str, report: &mut NulReport) -> RecordBatch {
    let mut columns: Option<Vec<ArrayRef>> = None;
    for (i, array) in batch.columns().iter().enumerate() {
        let Some(strings) = array.as_any().downcast_ref::<StringArray>() else { continue };
        let mode = match types.get(i) {
            Some(DataType::Json) if json => Mode::Json,
            Some(DataType::Json) => continue,
            _ => Mode::Text,
        };
        if !may_hold_nul(strings, mode) {
            continue;
        }
        let mut changed = 0u64;
        let cleaned: StringArray = strings
            .iter()
            .map(|v| {
                v.map(|s| match clean(s, mode) {
                    Some(c) => {
                        changed += 1;
                        c
                    }
                    None => s.to_string(),
                })
            })
            .collect();
        if changed == 0 {
            continue;
        }
        let name = batch.schema().field(i).name().clone();
        *report.changed.entry((table.to_string(), name)).or_default() += changed;
        columns.get_or_insert_with(|| batch.columns().to_vec())[i] = Arc::new(cleaned);
    }
    match columns {
        // Same schema and same lengths: this cannot fail; keep the original batch if it ever did.
        Some(cols) => RecordBatch::try_new(batch.schema(), cols).unwrap_or(batch),
        None => batch,
    }
}

/// A fast check on the array's bytes: false means no value can need cleaning.
fn may_hold_nul(a: &StringArray, mode: Mode) -> bool {
    let bytes = a.value_data();
    match mode {
        Mode::Text => bytes.contains(&0),
        Mode::Json => bytes.windows(6).any(|w| w == b"\\u0000"),
    }
}

/// The cleaned value, or `None` when `s` needs no change.
fn clean(s: &str, mode: Mode) -> Option<String> {
    match mode {
        Mode::Text => s.contains('\0').then(|| s.replace('\0', "")),
        Mode::Json => {
            if !s.contains("\\u0000") {
                return None;
            }
            // Parse, so that an escaped backslash before `u0000` (`\\u0000`, literal text) is left alone.
            let mut value: serde_json::Value = serde_json::from_str(s).ok()?;
            if !strip_value(&mut value) {
                return None;
            }
            serde_json::to_string(&value).ok()
        }
    }
}

/// Remove NUL from every string and key of `v`; whether anything changed.
fn strip_value(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "");
            true
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |acc, x| strip_value(x) | acc),
        serde_json::Value::Object(map) => {
            let mut changed = false;
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (k, x) in old {
                    map.insert(k.replace('\0', ""), x);
                }
                changed = true;
            }
            map.values_mut().fold(changed, |acc, x| strip_value(x) | acc)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    fn batch(ids: Vec<i64>, text: Vec<Option<&str>>, json: Vec<Option<&str>>) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", arrow::datatypes::DataType::Int64, false),
            Field::new("name", arrow::datatypes::DataType::Utf8, true),
            Field::new("doc", arrow::datatypes::DataType::Utf8, true),
        ]);
        let cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(text)), Arc::new(StringArray::from(json))];
        RecordBatch::try_new(Arc::new(schema), cols).expect("batch")
    }

    fn strings(b: &RecordBatch, i: usize) -> Vec<Option<String>> {
        let a = b.column(i).as_any().downcast_ref::<StringArray>().expect("strings");
        a.iter().map(|v| v.map(String::from)).collect()
    }

    const TYPES: [DataType; 3] = [DataType::Bigint, DataType::Text, DataType::Json];

    #[test]
    fn nul_leaves_text_and_json_and_is_counted() {
        let b = batch(
            vec![1, 2, 3],
            vec![Some("a\0b\0"), None, Some("plain")],
            vec![Some(r#"{"k":"x\u0000y","\u0000key":["\u0000"]}"#), Some(r#"{"lit":"\\u0000"}"#), None],
        );
        let mut report = NulReport::default();
        let out = strip_nul(b, &TYPES, true, "things", &mut report);
        assert_eq!(strings(&out, 1), [Some("ab".to_string()), None, Some("plain".to_string())]);
        assert_eq!(strings(&out, 2), [Some(r#"{"k":"xy","key":[""]}"#.to_string()), Some(r#"{"lit":"\\u0000"}"#.to_string()), None]);
        assert_eq!((report.count("things", "name"), report.count("things", "doc"), report.total()), (1, 1, 2));
        let w = report.warning("PostgreSQL").expect("a warning");
        assert!(w.contains("things.name (1)") && w.contains("things.doc (1)") && w.starts_with("2 value(s)"), "{w}");
    }

    #[test]
    fn json_is_left_alone_unless_asked_and_clean_batches_are_not_copied() {
        let b = batch(vec![1], vec![Some("ok")], vec![Some(r#"{"k":"\u0000"}"#)]);
        let before = b.column(2).clone();
        let mut report = NulReport::default();
        let out = strip_nul(b, &TYPES, false, "t", &mut report);
        assert!(report.is_empty() && report.warning("DuckDB").is_none());
        assert!(Arc::ptr_eq(out.column(2), &before), "an untouched column is the same array");
    }
}
