//! The incremental primitive: a cursor on a field with a closed lower bound and boundary dedup.
//!
//! Semantics follow dlt's `Incremental` with `last_value_func=max` (shared/spec/dlt-compat.md §7):
//! rows below the start value are dropped; rows exactly at the start value are dropped when their
//! primary-key hash was stored by the previous run (Personio re-sends boundary rows); the rest are kept
//! and move `last_value`.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha3::digest::{ExtendableOutput, Update, XofReader};

/// Errors raised by the incremental filter.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    /// A record has no value (or null) in the cursor field.
    #[error("cursor field `{cursor}` is missing or null in a record (primary key {key}); the run is aborted so no row is skipped silently")]
    MissingCursor {
        /// Cursor field name.
        cursor: String,
        /// The record's primary key as JSON.
        key: String,
    },
}

/// One cursor's state during a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Incremental {
    cursor: String,
    primary_key: Vec<String>,
    initial_value: Option<Value>,
    start_value: Option<Value>,
    stored_start_value: Option<Value>,
    last_value: Option<Value>,
    /// Hashes of the rows at the start value stored by the previous run.
    start_hashes: BTreeSet<String>,
    /// Hashes of kept rows at `last_value` (plus the stored ones while `last_value` has not moved).
    boundary: BTreeSet<String>,
    /// `start_value` and `last_value` read as timestamps once, not on every comparison.
    start_instant: Option<DateTime<Utc>>,
    last_instant: Option<DateTime<Utc>>,
}

impl Incremental {
    /// A cursor resumed from its stored state (`{initial_value, last_value, unique_hashes, start_value}`),
    /// or fresh when `state` is `None`.
    pub fn from_state(cursor: &str, primary_key: &[String], state: Option<&Value>) -> Self {
        let get = |k: &str| state.and_then(|s| s.get(k)).filter(|v| !v.is_null()).cloned();
        let hashes: BTreeSet<String> = state
            .and_then(|s| s.get("unique_hashes"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let last = get("last_value");
        let instant = last.as_ref().and_then(as_datetime);
        Incremental {
            cursor: cursor.to_string(),
            primary_key: primary_key.to_vec(),
            initial_value: get("initial_value"),
            start_value: last.clone(),
            stored_start_value: get("start_value"),
            last_value: last,
            start_hashes: hashes.clone(),
            boundary: hashes,
            start_instant: instant,
            last_instant: instant,
        }
    }

    /// The cursor field.
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The lower bound of this run (the stored `last_value`), fixed for the run.
    pub fn start_value(&self) -> Option<&Value> {
        self.start_value.as_ref()
    }

    /// The highest cursor value seen so far.
    pub fn last_value(&self) -> Option<&Value> {
        self.last_value.as_ref()
    }

    /// The start value as a UTC timestamp, when it is one.
    pub fn start_datetime(&self) -> Option<DateTime<Utc>> {
        self.start_instant
    }

    /// Filter a page in order; returns the kept records and advances `last_value`.
    pub fn filter(&mut self, records: Vec<Value>) -> Result<Vec<Value>, IncrementalError> {
        let mut kept = Vec::with_capacity(records.len());
        let mut kept_any = false;
        for record in records {
            let cursor = match record.get(&self.cursor) {
                Some(v) if !v.is_null() => v,
                _ => {
                    return Err(IncrementalError::MissingCursor {
                        cursor: self.cursor.clone(),
                        key: key_json(&record, &self.primary_key),
                    })
                }
            };
            let instant = as_datetime(cursor);
            // The key hash (shake-128) is computed only for a record on a boundary: at the start value
            // or at/above the highest cursor value so far.
            let mut hash = None;
            if let Some(start) = &self.start_value {
                match compare_read((cursor, instant), (start, self.start_instant)) {
                    Ordering::Less => continue,
                    Ordering::Equal => {
                        let h = hash.insert(row_hash(&record, &self.primary_key));
                        if self.start_hashes.contains(h.as_str()) {
                            continue;
                        }
                    }
                    Ordering::Greater => {}
                }
            }
            match self.last_value.as_ref().map(|l| compare_read((cursor, instant), (l, self.last_instant))) {
                None | Some(Ordering::Greater) => {
                    self.last_value = Some(cursor.clone());
                    self.last_instant = instant;
                    self.boundary.clear();
                    self.boundary.insert(hash.unwrap_or_else(|| row_hash(&record, &self.primary_key)));
                }
                Some(Ordering::Equal) => {
                    self.boundary.insert(hash.unwrap_or_else(|| row_hash(&record, &self.primary_key)));
                }
                Some(Ordering::Less) => {}
            }
            kept_any = true;
            kept.push(record);
        }
        if kept_any {
            self.stored_start_value = self.start_value.clone();
        }
        Ok(kept)
    }

    /// The state to persist: `{initial_value, last_value, unique_hashes (sorted), start_value}`.
    pub fn to_state(&self) -> Value {
        json!({
            "initial_value": self.initial_value,
            "last_value": self.last_value,
            "unique_hashes": self.boundary.iter().collect::<Vec<_>>(),
            "start_value": self.stored_start_value,
        })
    }
}

/// Compare two cursor values: timestamps as instants, numbers numerically, otherwise as text.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    compare_read((a, as_datetime(a)), (b, as_datetime(b)))
}

/// [`compare`] of two values whose [`as_datetime`] readings are given.
fn compare_read((a, a_instant): (&Value, Option<DateTime<Utc>>), (b, b_instant): (&Value, Option<DateTime<Utc>>)) -> Ordering {
    if let (Some(x), Some(y)) = (a_instant, b_instant) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    match (a.as_str(), b.as_str()) {
        (Some(x), Some(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Read a cursor value as a UTC timestamp: a typed timestamp (`\u{F027}` + ISO) or an ISO string.
pub fn as_datetime(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    let s = s.strip_prefix('\u{F027}').unwrap_or(s);
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc))
}

fn key_json(record: &Value, primary_key: &[String]) -> String {
    match primary_key {
        [one] => record.get(one).cloned().unwrap_or(Value::Null).to_string(),
        keys => Value::Array(keys.iter().map(|k| record.get(k).cloned().unwrap_or(Value::Null)).collect()).to_string(),
    }
}

/// dlt's primary-key hash: shake-128 (15 bytes) over the compact JSON of the key value, standard base64
/// without padding (20 characters). Without a primary key, the whole record is hashed.
pub fn row_hash(record: &Value, primary_key: &[String]) -> String {
    let text = if primary_key.is_empty() { record.to_string() } else { key_json(record, primary_key) };
    let mut hasher = sha3::Shake128::default();
    hasher.update(text.as_bytes());
    let mut out = [0u8; 15];
    hasher.finalize_xof().read(&mut out);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Value {
        Value::String(format!("\u{F027}{s}"))
    }

    fn rec(id: i64, at: &str) -> Value {
        json!({"id": id, "updated_at": ts(at)})
    }

    #[test]
    fn first_run_keeps_all_and_tracks_boundary() {
        let mut inc = Incremental::from_state("updated_at", &["id".into()], None);
        let kept = inc
            .filter(vec![rec(1, "2024-01-01T00:00:00+00:00"), rec(2, "2024-02-01T00:00:00+00:00"), rec(3, "2024-02-01T00:00:00+00:00")])
            .unwrap();
        assert_eq!(kept.len(), 3);
        let st = inc.to_state();
        assert_eq!(st["last_value"], ts("2024-02-01T00:00:00+00:00"));
        assert_eq!(st["unique_hashes"].as_array().unwrap().len(), 2);
        assert!(st["start_value"].is_null());
    }

    #[test]
    fn rerun_drops_boundary_rows_and_keeps_state_identical() {
        let mut inc = Incremental::from_state("updated_at", &["id".into()], None);
        let page = vec![rec(1, "2024-01-01T00:00:00+00:00"), rec(2, "2024-02-01T00:00:00+00:00")];
        inc.filter(page.clone()).unwrap();
        let st1 = inc.to_state();
        let mut inc2 = Incremental::from_state("updated_at", &["id".into()], Some(&st1));
        // The API re-sends the boundary row (updated_since is inclusive).
        let kept = inc2.filter(vec![rec(2, "2024-02-01T00:00:00+00:00")]).unwrap();
        assert!(kept.is_empty());
        assert_eq!(inc2.to_state(), st1);
    }

    #[test]
    fn new_row_at_boundary_is_kept_and_old_hashes_stay() {
        let mut inc = Incremental::from_state("updated_at", &["id".into()], None);
        inc.filter(vec![rec(2, "2024-02-01T00:00:00+00:00")]).unwrap();
        let st1 = inc.to_state();
        let mut inc2 = Incremental::from_state("updated_at", &["id".into()], Some(&st1));
        let kept = inc2.filter(vec![rec(2, "2024-02-01T00:00:00+00:00"), rec(5, "2024-02-01T00:00:00+00:00")]).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["id"], 5);
        assert_eq!(inc2.to_state()["unique_hashes"].as_array().unwrap().len(), 2);
        assert_eq!(inc2.to_state()["start_value"], ts("2024-02-01T00:00:00+00:00"));
    }

    #[test]
    fn older_rows_are_dropped_and_missing_cursor_fails() {
        let mut inc = Incremental::from_state("updated_at", &["id".into()], None);
        inc.filter(vec![rec(1, "2024-02-01T00:00:00+00:00")]).unwrap();
        let st = inc.to_state();
        let mut inc2 = Incremental::from_state("updated_at", &["id".into()], Some(&st));
        assert!(inc2.filter(vec![rec(3, "2024-01-01T00:00:00+00:00")]).unwrap().is_empty());
        let err = inc2.filter(vec![json!({"id": 9})]).unwrap_err();
        assert!(err.to_string().contains("updated_at"));
    }

    #[test]
    fn offsets_compare_as_instants() {
        assert_eq!(compare(&ts("2024-01-01T01:00:00+01:00"), &ts("2024-01-01T00:00:00+00:00")), Ordering::Equal);
    }

    #[test]
    fn row_hash_has_dlt_shape() {
        let h = row_hash(&json!({"id": 123}), &["id".into()]);
        assert_eq!(h.len(), 20);
        assert_ne!(h, row_hash(&json!({"id": 124}), &["id".into()]));
    }
}
