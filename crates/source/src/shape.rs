//! Record shaping: Personio's JSON items → the records dlt's personio source yields
//! (shared/spec/dlt-compat.md §3). Pure functions, no I/O.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use pipeline_engine::naming::normalize_key;
use pipeline_engine::typed::{date as date_value, timestamp as ts_value};
use serde_json::{Map, Value};

/// foldhash instead of SipHash for the per-record maps (randomly seeded, as the normalizer's).
type FastState = foldhash::fast::RandomState;

/// Suffix of a field renamed because its column was taken (see [`Columns`]).
pub const RENAMED_SUFFIX: &str = "_attribute";
/// Prefix of the engine's own columns (`_dlt_id`, `_dlt_load_id`, `_dlt_parent_id`, …).
const ENGINE_PREFIX: &str = "_dlt_";

/// Entries kept in the per-thread cache of normalized keys before it is cleared (bounds memory when
/// a server sends a new label with every record).
const NAMING_CACHE_MAX: usize = 50_000;

thread_local! {
    /// Normalized keys: the same labels repeat for every record.
    static NAMING: RefCell<HashMap<String, Rc<str>, FastState>> = RefCell::new(HashMap::default());
}

/// The column dlt's naming convention gives a record key (`Titel` → `titel`, `_DLT_ID` → `_dlt_id`).
/// Shared (`Rc`): every field of every record asks, so a hit costs no allocation.
fn column_of(key: &str) -> Rc<str> {
    NAMING.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(c) = cache.get(key) {
            return Rc::clone(c);
        }
        if cache.len() >= NAMING_CACHE_MAX {
            cache.clear();
        }
        let column: Rc<str> = normalize_key(key, None).into();
        cache.insert(key.to_string(), Rc::clone(&column));
        column
    })
}

/// The columns of one record, as dlt will name them, so that a field from the data (a custom
/// attribute's label, a report's `attribute_id`, an object key) never replaces the record's key, its
/// cursor, an engine column (`_dlt_*`) or another field.
///
/// Rule (deterministic, in the order fields arrive): a field keeps its name unless its column is
/// reserved (the key/cursor of the resource), starts with `_dlt_`, or is already used in this record;
/// then it is renamed to `<column>_attribute` (leading `_` dropped, so never `_dlt_*`), or
/// `<column>_attribute_2`, `_3`, … if that is taken too. Nothing is dropped or overwritten.
struct Columns {
    reserved: &'static [&'static str],
    used: HashSet<Rc<str>, FastState>,
}

impl Columns {
    fn new(reserved: &'static [&'static str]) -> Self {
        Self { reserved, used: HashSet::default() }
    }

    /// Marks a trusted field's column (a Personio `universal_id`, a key the shaping sets) as used.
    fn claim(&mut self, key: &str) {
        self.used.insert(column_of(key));
    }

    fn free(&self, column: &str) -> bool {
        !column.starts_with(ENGINE_PREFIX) && !self.reserved.contains(&column) && !self.used.contains(column)
    }

    /// The key under which an untrusted field named `key` goes in the record.
    fn place(&mut self, key: &str) -> String {
        self.rename(key).unwrap_or_else(|| key.to_string())
    }

    /// [`Self::place`], but `None` when the field keeps its own name.
    fn rename(&mut self, key: &str) -> Option<String> {
        let column = column_of(key);
        if self.free(&column) {
            self.used.insert(column);
            return None;
        }
        let stem = column.trim_start_matches('_');
        let stem = if stem.is_empty() { "field" } else { stem };
        let mut n = 1u32;
        loop {
            let candidate = if n == 1 { format!("{stem}{RENAMED_SUFFIX}") } else { format!("{stem}{RENAMED_SUFFIX}_{n}") };
            let renamed = column_of(&candidate);
            if self.free(&renamed) {
                self.used.insert(Rc::clone(&renamed));
                return Some(renamed.to_string());
            }
            n = n.saturating_add(1);
        }
    }
}

/// Errors while shaping a record.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// A required field is missing or unparsable.
    #[error("{resource}: field `{field}` is missing or not a date-time in a record ({detail})")]
    Field {
        /// Resource.
        resource: &'static str,
        /// Field.
        field: String,
        /// The value or what was wrong.
        detail: String,
    },
}

/// dlt's `ensure_pendulum_datetime_utc`: ISO-8601 → UTC. Date-only is midnight UTC, naive is UTC, an
/// offset (`+01:00` or `+0100`) is converted.
pub fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    // Naive `%Y-%m-%dT%H:%M:%S%.f` (v2's date-times) through chrono's fixed parser: no format string to
    // parse per value, and no offset formats tried first (a string with an offset never parses here).
    if !s.contains(char::is_whitespace) {
        if let Ok(d) = s.parse::<NaiveDateTime>() {
            return Some(d.and_utc());
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc())
}

/// to_utc_ts for a value: strings parse, anything unparsable is returned unchanged.
fn to_utc_ts(v: Value) -> Value {
    match v.as_str().and_then(parse_utc) {
        Some(dt) => ts_value(dt),
        None => v,
    }
}

fn require_ts(resource: &'static str, obj: &mut Map<String, Value>, field: &str) -> Result<(), ShapeError> {
    let parsed = obj.get(field).and_then(Value::as_str).and_then(parse_utc);
    match parsed {
        Some(dt) => {
            obj.insert(field.to_string(), ts_value(dt));
            Ok(())
        }
        None => Err(ShapeError::Field {
            resource,
            field: field.to_string(),
            detail: obj.get(field).map(|v| v.to_string()).unwrap_or_else(|| "missing".into()),
        }),
    }
}

/// The object's fields, taken out of it (anything else has none).
fn into_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Columns of `employees` a custom attribute may never take: the primary key and the cursor.
const EMPLOYEE_RESERVED: &[&str] = &["id", "last_modified_at"];

/// employees (§3.1): walk `attributes` in order; name = `universal_id` if non-empty, else the label with
/// spaces → `_`, lower-cased; `date` values converted to UTC timestamps.
///
/// Personio's own attributes (`universal_id`) keep their names, and a later duplicate overwrites as in
/// dlt. A custom attribute (named from its label) whose column would be `id`, `last_modified_at`, a
/// `_dlt_*` column, a `universal_id` column or an earlier attribute's column is renamed instead
/// (`<column>_attribute`, then `_2`, …; see [`Columns`]); so is a `universal_id` naming a `_dlt_*` column.
///
/// Every shaping function takes the parsed item and moves its values into the record (no copies).
pub fn employee(item: Value) -> Value {
    let mut out = Map::new();
    let Some(Value::Object(attrs)) = into_object(item).remove("attributes") else { return Value::Object(out) };
    let universal = |attr: &Value| attr.get("universal_id").and_then(Value::as_str).filter(|u| !u.is_empty()).map(str::to_string);
    let mut columns = Columns::new(EMPLOYEE_RESERVED);
    for u in attrs.values().filter_map(universal) {
        if !column_of(&u).starts_with(ENGINE_PREFIX) {
            columns.claim(&u);
        }
    }
    for mut attr in attrs.into_values() {
        let name = match universal(&attr) {
            Some(u) if !column_of(&u).starts_with(ENGINE_PREFIX) => u,
            Some(u) => columns.place(&u),
            None => columns.place(&attr.get("label").and_then(Value::as_str).unwrap_or_default().replace(' ', "_").to_lowercase()),
        };
        let value = attr.get_mut("value").map(Value::take).unwrap_or(Value::Null);
        let is_date = attr.get("type").and_then(Value::as_str) == Some("date");
        let truthy = !matches!(&value, Value::Null | Value::Bool(false)) && value.as_str() != Some("");
        let value = if is_date && truthy { to_utc_ts(value) } else { value };
        out.insert(name, value);
    }
    Value::Object(out)
}

/// The keys of `map` that `columns` renames: (position, new name), in order.
fn renames(map: &Map<String, Value>, columns: &mut Columns) -> Vec<(usize, String)> {
    map.keys().enumerate().filter_map(|(i, k)| columns.rename(k).map(|r| (i, r))).collect()
}

/// `map` with `renames` (from [`renames`]) applied.
fn renamed(map: Map<String, Value>, renames: Vec<(usize, String)>) -> Map<String, Value> {
    if renames.is_empty() {
        return map;
    }
    let mut renames = renames.into_iter().peekable();
    map.into_iter()
        .enumerate()
        .map(|(i, (k, v))| match renames.next_if(|(j, _)| *j == i) {
            Some((_, renamed)) => (renamed, v),
            None => (k, v),
        })
        .collect()
}

/// Key sequences remembered per thread by [`guarded_alone`], and the longest one remembered (a server
/// sending ever-new wide records costs a bounded cache).
const CLEAN_KEY_SEQUENCES: usize = 8;
const CLEAN_KEYS_MAX: usize = 256;

thread_local! {
    /// Key sequences (in order) that [`guarded_alone`] found to need no rename, newest last.
    static CLEAN_KEYS: RefCell<Vec<Vec<String>>> = const { RefCell::new(Vec::new()) };
}

/// `map` with every key placed by a fresh [`Columns`] (nothing reserved or claimed; order kept). That
/// depends on the keys alone, so a map with the same keys, in the same order, as one that needed no
/// rename is returned as it is without checking each key again (the records of a listing share them).
fn guarded_alone(map: Map<String, Value>) -> Map<String, Value> {
    let same = |keys: &Vec<String>| keys.len() == map.len() && keys.iter().zip(map.keys()).all(|(a, b)| a == b);
    if CLEAN_KEYS.with(|clean| clean.borrow().iter().any(same)) {
        return map;
    }
    let renames = renames(&map, &mut Columns::new(&[]));
    if renames.is_empty() && map.len() <= CLEAN_KEYS_MAX {
        CLEAN_KEYS.with(|clean| {
            let mut clean = clean.borrow_mut();
            if clean.len() >= CLEAN_KEY_SEQUENCES {
                clean.remove(0);
            }
            clean.push(map.keys().cloned().collect());
        });
    }
    renamed(map, renames)
}

/// Fields of `attrs` after `obj`'s, placed by `columns`; a field named `skip` is dropped.
fn place_into(obj: &mut Map<String, Value>, columns: &mut Columns, attrs: Map<String, Value>, skip: &str) {
    for (k, v) in attrs {
        if k != skip {
            let name = columns.rename(&k).unwrap_or(k);
            obj.insert(name, v);
        }
    }
}

/// `item.attributes` as is (absence_types, custom_reports_list), except that a key naming a `_dlt_*`
/// column, or the column of an earlier key, is renamed (see [`Columns`]).
pub fn attributes(item: Value) -> Value {
    match into_object(item).remove("attributes") {
        Some(Value::Object(m)) => Value::Object(guarded_alone(m)),
        Some(other) => other,
        None => Value::Object(Map::new()),
    }
}

/// absences: `item.attributes` with `created_at`/`updated_at` as UTC timestamps (required).
pub fn absence(item: Value) -> Result<Value, ShapeError> {
    let mut obj = into_object(attributes(item));
    require_ts("absences", &mut obj, "created_at")?;
    require_ts("absences", &mut obj, "updated_at")?;
    Ok(Value::Object(obj))
}

/// `{id: item.id} ∪ item.attributes`, the outer id winning (F6); another attribute whose column would
/// be `id` or `_dlt_*` is renamed (see [`Columns`]).
pub fn id_and_attributes(item: Value) -> Map<String, Value> {
    let mut item = into_object(item);
    let mut obj = Map::new();
    obj.insert("id".into(), item.remove("id").unwrap_or(Value::Null));
    let mut columns = Columns::new(&[]);
    columns.claim("id");
    if let Some(Value::Object(attrs)) = item.remove("attributes") {
        place_into(&mut obj, &mut columns, attrs, "id");
    }
    obj
}

/// attendances: `{id} ∪ attributes`, `date` as a date, `updated_at` as a UTC timestamp (required).
pub fn attendance(item: Value) -> Result<Value, ShapeError> {
    let mut obj = id_and_attributes(item);
    if let Some(d) = obj.get("date").and_then(Value::as_str).and_then(parse_utc) {
        obj.insert("date".into(), date_value(d.date_naive()));
    }
    require_ts("attendances", &mut obj, "updated_at")?;
    Ok(Value::Object(obj))
}

/// projects: `{id} ∪ attributes` with `created_at`/`updated_at` as UTC timestamps (required).
pub fn project(item: Value) -> Result<Value, ShapeError> {
    let mut obj = id_and_attributes(item);
    require_ts("projects", &mut obj, "created_at")?;
    require_ts("projects", &mut obj, "updated_at")?;
    Ok(Value::Object(obj))
}

/// document_categories: `{id} ∪ attributes`.
pub fn document_category(item: Value) -> Value {
    Value::Object(id_and_attributes(item))
}

/// employees_absences_balance: `{employee_id} ∪ row`, the outer key winning (F6).
pub fn balance(employee_id: &Value, row: Value) -> Value {
    let mut obj = Map::new();
    obj.insert("employee_id".into(), employee_id.clone());
    let mut columns = Columns::new(&[]);
    columns.claim("employee_id");
    place_into(&mut obj, &mut columns, into_object(row), "employee_id");
    Value::Object(obj)
}

/// custom_reports (§3.2 with fix F4): one record per report item. An `attribute_id` whose column would
/// be `report_id`, `item_id`, `historical_attributes`, `_dlt_*` or an earlier attribute's is renamed
/// (see [`Columns`]).
pub fn report_item(report_id: &Value, item: Value) -> Value {
    let mut columns = Columns::new(&["report_id", "item_id", "historical_attributes"]);
    let mut out = Map::new();
    out.insert("report_id".into(), report_id.clone());
    let mut item = into_object(item);
    let item_id = item
        .get("employee_id")
        .cloned()
        .or_else(|| item.iter().find(|(k, _)| *k != "attributes" && *k != "historical_attributes").map(|(_, v)| v.clone()));
    out.insert("item_id".into(), item_id.unwrap_or(Value::Null));
    if let Some(Value::Array(attrs)) = item.get_mut("attributes").map(Value::take) {
        for a in attrs {
            let Value::Object(mut a) = a else { continue };
            let Some(name) = a.get("attribute_id").and_then(Value::as_str).map(str::to_string) else { continue };
            let is_date = a.get("data_type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("date"));
            let value = match a.remove("value") {
                Some(v) if is_date && !v.is_null() && v.as_str() != Some("") => to_utc_ts(v),
                Some(v) => v,
                None => {
                    for k in ["attribute_id", "data_type", "employee_id"] {
                        a.remove(k);
                    }
                    Value::Object(a)
                }
            };
            out.insert(columns.place(&name), value);
        }
    }
    if let Some(hist) = item.remove("historical_attributes") {
        out.insert("historical_attributes".into(), hist);
    }
    Value::Object(out)
}

/// v2 objects: passed through; `created_at`/`updated_at` (plain or `{date_time}`) become UTC timestamps.
pub fn v2(item: Value) -> Value {
    let mut obj = guarded_alone(into_object(item));
    obj.remove("_meta");
    for field in ["created_at", "updated_at"] {
        if let Some(v) = obj.get_mut(field) {
            if let Some(dt) = v.get("date_time").or(Some(v)).and_then(Value::as_str).and_then(parse_utc) {
                *v = ts_value(dt);
            }
        }
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn employee_attribute_rule() {
        let item = json!({"type": "Employee", "attributes": {
            "id": {"label": "ID", "value": 1, "type": "integer", "universal_id": "id"},
            "hire_date": {"label": "Hire date", "value": "2014-11-09T00:00:00+01:00", "type": "date", "universal_id": "hire_date"},
            "dynamic_1": {"label": "Titel", "value": "Dr", "type": "standard", "universal_id": null},
            "dynamic_2": {"label": "Anniversary Date", "value": "2021-01-01", "type": "date", "universal_id": null},
            "dynamic_3": {"label": "IBAN", "value": "DE98", "type": "standard", "universal_id": "iban"},
            "dynamic_4": {"label": "Empty Date", "value": "", "type": "date", "universal_id": ""}
        }});
        let e = employee(item.clone());
        assert_eq!(e["id"], 1);
        assert_eq!(e["hire_date"], json!("\u{F027}2014-11-08T23:00:00+00:00"));
        assert_eq!(e["titel"], "Dr");
        assert_eq!(e["anniversary_date"], json!("\u{F027}2021-01-01T00:00:00+00:00"));
        assert_eq!(e["iban"], "DE98");
        assert_eq!(e["empty_date"], "");
        assert!(e.get("type").is_none());
    }

    /// Issue 9, defect 9: hostile labels never replace the key, the cursor or a `_dlt_*` column, and
    /// every attribute lands in its own valid column.
    #[test]
    fn hostile_labels_never_replace_engine_columns() {
        use pipeline_engine::naming::normalize_key;
        let long = "L".repeat(300);
        let labels: Vec<&str> = vec![
            "ID", "Last Modified At", "last-modified_at", "_dlt_id", "_DLT_LOAD_ID", " _dlt_parent_id", "_dlt_root_id",
            "'; DROP TABLE employees; --", "\"quoted\" name", "it's", &long, "", "", "Titel", "titel", "ID Attribute",
            "id_attribute", "1. Hilfe", "a__b", "_dlt_", "*",
        ];
        let mut attrs = serde_json::Map::new();
        attrs.insert("id".into(), json!({"label": "ID", "value": 1, "type": "integer", "universal_id": "id"}));
        for (i, label) in labels.iter().enumerate() {
            attrs.insert(format!("dynamic_{i}"), json!({"label": label, "value": format!("v{i}"), "type": "standard", "universal_id": null}));
        }
        attrs.insert("last_modified_at".into(), json!({"label": "Last modified", "value": "2024-01-02T03:04:05+00:00", "type": "date", "universal_id": "last_modified_at"}));
        attrs.insert("evil".into(), json!({"label": "x", "value": "u", "type": "standard", "universal_id": "_dlt_id"}));
        let e = employee(json!({"type": "Employee", "attributes": attrs}));
        let out = e.as_object().unwrap();
        assert_eq!(out["id"], 1);
        assert_eq!(out["last_modified_at"], json!("\u{F027}2024-01-02T03:04:05+00:00"));
        // Nothing lost: one column per attribute, all distinct once normalized, none a `_dlt_*` column.
        assert_eq!(out.len(), labels.len() + 3, "{out:#?}");
        let columns: std::collections::HashSet<String> = out.keys().map(|k| normalize_key(k, None)).collect();
        assert_eq!(columns.len(), out.len(), "{columns:?}");
        for c in &columns {
            assert!(!c.starts_with("_dlt_"), "{c}");
            assert!(c.chars().all(|ch| ch == '_' || ch.is_ascii_lowercase() || ch.is_ascii_digit()), "{c}");
        }
        // Every value is still there, under a deterministic name.
        for i in 0..labels.len() {
            assert!(out.values().any(|v| v == &json!(format!("v{i}"))), "v{i} lost");
        }
        assert_eq!(out["id_attribute"], "v0");
        assert_eq!(out["last_modified_at_attribute"], "v1");
        assert_eq!(out["last_modified_at_attribute_2"], "v2");
        assert_eq!(out["dlt_id_attribute"], "v3");
        assert_eq!(out["titel"], "v13");
        assert_eq!(out["titel_attribute"], "v14");
        assert_eq!(out["dlt_id_attribute_2"], "u");
        // The same input gives the same names.
        assert_eq!(employee(json!({"type": "Employee", "attributes": attrs})), e);
    }

    /// The shaped record through the engine's normalizer: the key, the cursor and the engine's row id
    /// come from Personio and the engine, not from a label.
    #[test]
    fn hostile_labels_through_the_normalizer() {
        use pipeline_engine::normalize::{NormalizeConfig, Normalizer, RootHints};
        use pipeline_engine::schema::{Schema, WriteDisposition};
        let item = json!({"type": "Employee", "attributes": {
            "id": {"label": "ID", "value": 7, "type": "integer", "universal_id": "id"},
            "d1": {"label": "_dlt_id", "value": "same-for-everyone", "type": "standard", "universal_id": null},
            "d2": {"label": "ID", "value": 99, "type": "integer", "universal_id": null},
            "d3": {"label": "Last Modified At", "value": "1999-01-01", "type": "date", "universal_id": null},
            "d4": {"label": "_dlt_load_id", "value": "forged", "type": "standard", "universal_id": null},
            "last_modified_at": {"label": "Last modified", "value": "2024-01-02T03:04:05+00:00", "type": "date", "universal_id": "last_modified_at"}
        }});
        let mut schema = Schema::new("personio");
        let hints = RootHints { resource: "employees".into(), table: "employees".into(), primary_key: vec!["id".into()], disposition: WriteDisposition::Merge, merge: Default::default() };
        let mut n = Normalizer::new(NormalizeConfig::default());
        n.push(&mut schema, &hints, employee(item.clone()), "load-1").unwrap();
        n.push(&mut schema, &hints, employee(item.clone()), "load-1").unwrap();
        let batches = n.finish(&schema).unwrap();
        let (_, batch) = batches.iter().find(|(t, _)| t == "employees").unwrap();
        // The Debug form of a column lists its values, one per line (no arrow import needed here).
        let values = |col: &str| -> Vec<String> {
            let a = batch.column_by_name(col).unwrap_or_else(|| panic!("no column {col}"));
            let text = format!("{a:?}");
            text.lines().filter(|l| l.starts_with("  ")).map(|l| l.trim().trim_end_matches(',').trim_matches('"').to_string()).collect()
        };
        assert_eq!(values("id"), ["7", "7"]);
        assert!(values("last_modified_at")[0].starts_with("2024-01-02"), "{:?}", values("last_modified_at"));
        assert_eq!(values("_dlt_load_id"), ["load-1", "load-1"]);
        let ids = values("_dlt_id");
        assert!(!ids.iter().any(|i| i == "same-for-everyone"), "{ids:?}");
        assert_ne!(ids[0], ids[1], "two rows share a _dlt_id");
        assert_eq!(values("dlt_id_attribute"), ["same-for-everyone", "same-for-everyone"]);
        assert_eq!(values("id_attribute"), ["99", "99"]);
        assert_eq!(values("dlt_load_id_attribute"), ["forged", "forged"]);
        assert!(values("last_modified_at_attribute")[0].starts_with("1999-01-01"));
    }

    #[test]
    fn reserved_keys_of_other_resources_are_renamed_not_replaced() {
        let r = report_item(&json!("rep"), json!({"employee_id": 3, "attributes": [
            {"attribute_id": "report_id", "data_type": "TEXT", "value": "forged"},
            {"attribute_id": "item_id", "data_type": "TEXT", "value": "forged2"},
            {"attribute_id": "_dlt_id", "data_type": "TEXT", "value": "x"},
            {"attribute_id": "first_name", "data_type": "TEXT", "value": "A"}
        ]}));
        assert_eq!((r["report_id"].clone(), r["item_id"].clone()), (json!("rep"), json!(3)));
        assert_eq!((r["report_id_attribute"].clone(), r["item_id_attribute"].clone()), (json!("forged"), json!("forged2")));
        assert_eq!(r["dlt_id_attribute"], "x");
        assert_eq!(r["first_name"], "A");
        let a = document_category(json!({"id": 1, "attributes": {"id": 2, "ID": 3, "_dlt_id": "x", "name": "n"}}));
        assert_eq!(a, json!({"id": 1, "id_attribute": 3, "dlt_id_attribute": "x", "name": "n"}));
        let b = balance(&json!(5), json!({"employee_id": 9, "Employee ID": 8, "id": 1}));
        assert_eq!(b, json!({"employee_id": 5, "employee_id_attribute": 8, "id": 1}));
        let v = v2(json!({"id": "p1", "_dlt_load_id": "x", "_meta": {}}));
        assert_eq!(v, json!({"id": "p1", "dlt_load_id_attribute": "x"}));
    }

    #[test]
    fn attendance_outer_id_wins_and_dates_convert() {
        let item = json!({"id": 7, "type": "AttendancePeriod", "attributes": {"id": 99, "date": "2024-03-01", "updated_at": "2024-03-01T10:00:00+02:00"}});
        let a = attendance(item.clone()).unwrap();
        assert_eq!(a["id"], 7);
        assert_eq!(a["date"], json!("\u{F028}2024-03-01"));
        assert_eq!(a["updated_at"], json!("\u{F027}2024-03-01T08:00:00+00:00"));
        assert!(attendance(json!({"id": 1, "attributes": {}})).is_err());
    }

    #[test]
    fn report_items_of_every_kind() {
        let item = json!({"employee_id": 17, "attributes": [
            {"attribute_id": "first_name", "data_type": "TEXT", "value": "Robert", "employee_id": 17},
            {"attribute_id": "hire", "data_type": "DATE", "value": "2020-01-02", "employee_id": 17},
            {"attribute_id": "attendance_contractual_target_hours", "data_type": "DURATION", "duration": 10, "employee_id": 17},
            {"attribute_id": "absence_123:periods", "data_type": "ABSENCE_PERIOD", "start_date": "2022-03-01", "employee_id": 17}
        ]});
        let r = report_item(&json!("rep-1"), item.clone());
        assert_eq!(r["report_id"], "rep-1");
        assert_eq!(r["item_id"], 17);
        assert_eq!(r["first_name"], "Robert");
        assert_eq!(r["hire"], json!("\u{F027}2020-01-02T00:00:00+00:00"));
        assert_eq!(r["attendance_contractual_target_hours"], json!({"duration": 10}));
        assert_eq!(r["absence_123:periods"]["start_date"], "2022-03-01");
        let h = report_item(&json!("r"), json!({"employee_id": 1, "historical_attributes": [{"effective_date": "2020-01-01"}]}));
        assert_eq!(h["historical_attributes"][0]["effective_date"], "2020-01-01");
    }

    #[test]
    fn renaming_is_decided_per_key_sequence() {
        // A clean sequence remembered must not let a record with other keys (or the same keys in
        // another order) through unchecked; a sequence that needed renames is renamed every time.
        for _ in 0..2 {
            let clean = v2(json!({"id": 1, "type": "WORK", "x": 2}));
            assert_eq!(clean.as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "type", "x"]);
            let taken = v2(json!({"id": 1, "type": "WORK", "_DLT_ID": 3}));
            assert_eq!(taken.as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "type", "dlt_id_attribute"]);
            let twice = v2(json!({"Type": 1, "type": 2}));
            assert_eq!(twice.as_object().unwrap().keys().collect::<Vec<_>>(), ["Type", "type_attribute"]);
            let swapped = v2(json!({"type": 2, "Type": 1}));
            assert_eq!(swapped.as_object().unwrap().keys().collect::<Vec<_>>(), ["type", "type_attribute"]);
            let attrs = attributes(json!({"attributes": {"name": "a", "NAME": "b"}}));
            assert_eq!(attrs.as_object().unwrap().keys().collect::<Vec<_>>(), ["name", "name_attribute"]);
        }
    }

    #[test]
    fn balance_outer_key_wins() {
        let b = balance(&json!(5), json!({"employee_id": 9, "id": 1, "balance": 10.5}));
        assert_eq!(b["employee_id"], 5);
        assert_eq!(b["balance"], 10.5);
    }

    #[test]
    fn parse_utc_accepts_personio_forms() {
        for s in ["2017-12-27T00:00:00+0100", "2017-12-26T23:00:00Z", "2017-12-26T23:00:00", "2017-12-26 23:00:00+00:00"] {
            assert_eq!(parse_utc(s).unwrap().to_rfc3339(), "2017-12-26T23:00:00+00:00", "{s}");
        }
        assert_eq!(parse_utc("2017-12-26").unwrap().to_rfc3339(), "2017-12-26T00:00:00+00:00");
        assert!(parse_utc("09:00").is_none());
    }
}
