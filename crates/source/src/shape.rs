//! Record shaping: Personio's JSON items → the records dlt's personio source yields
//! (shared/spec/dlt-compat.md §3). Pure functions, no I/O.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use pipeline_engine::typed::{date as date_value, timestamp as ts_value};
use serde_json::{Map, Value};

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
fn to_utc_ts(v: &Value) -> Value {
    match v.as_str().and_then(parse_utc) {
        Some(dt) => ts_value(dt),
        None => v.clone(),
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

/// employees (§3.1): walk `attributes` in order; name = `universal_id` if non-empty, else the label with
/// spaces → `_`, lower-cased; `date` values converted to UTC timestamps; later duplicates overwrite.
pub fn employee(item: &Value) -> Value {
    let mut out = Map::new();
    if let Some(attrs) = item.get("attributes").and_then(Value::as_object) {
        for attr in attrs.values() {
            let name = match attr.get("universal_id").and_then(Value::as_str) {
                Some(u) if !u.is_empty() => u.to_string(),
                _ => attr.get("label").and_then(Value::as_str).unwrap_or_default().replace(' ', "_").to_lowercase(),
            };
            let value = attr.get("value").cloned().unwrap_or(Value::Null);
            let is_date = attr.get("type").and_then(Value::as_str) == Some("date");
            let truthy = !matches!(&value, Value::Null | Value::Bool(false)) && value.as_str() != Some("");
            let value = if is_date && truthy { to_utc_ts(&value) } else { value };
            out.insert(name, value);
        }
    }
    Value::Object(out)
}

/// `item.attributes` as is (absence_types, custom_reports_list).
pub fn attributes(item: &Value) -> Value {
    item.get("attributes").cloned().unwrap_or_else(|| Value::Object(Map::new()))
}

/// absences: `item.attributes` with `created_at`/`updated_at` as UTC timestamps (required).
pub fn absence(item: &Value) -> Result<Value, ShapeError> {
    let mut obj = attributes(item).as_object().cloned().unwrap_or_default();
    require_ts("absences", &mut obj, "created_at")?;
    require_ts("absences", &mut obj, "updated_at")?;
    Ok(Value::Object(obj))
}

/// `{id: item.id} ∪ item.attributes`, the outer id winning (F6).
pub fn id_and_attributes(item: &Value) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("id".into(), item.get("id").cloned().unwrap_or(Value::Null));
    if let Some(attrs) = item.get("attributes").and_then(Value::as_object) {
        for (k, v) in attrs {
            if k != "id" {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    obj
}

/// attendances: `{id} ∪ attributes`, `date` as a date, `updated_at` as a UTC timestamp (required).
pub fn attendance(item: &Value) -> Result<Value, ShapeError> {
    let mut obj = id_and_attributes(item);
    if let Some(d) = obj.get("date").and_then(Value::as_str).and_then(parse_utc) {
        obj.insert("date".into(), date_value(d.date_naive()));
    }
    require_ts("attendances", &mut obj, "updated_at")?;
    Ok(Value::Object(obj))
}

/// projects: `{id} ∪ attributes` with `created_at`/`updated_at` as UTC timestamps (required).
pub fn project(item: &Value) -> Result<Value, ShapeError> {
    let mut obj = id_and_attributes(item);
    require_ts("projects", &mut obj, "created_at")?;
    require_ts("projects", &mut obj, "updated_at")?;
    Ok(Value::Object(obj))
}

/// document_categories: `{id} ∪ attributes`.
pub fn document_category(item: &Value) -> Value {
    Value::Object(id_and_attributes(item))
}

/// employees_absences_balance: `{employee_id} ∪ row`, the outer key winning (F6).
pub fn balance(employee_id: &Value, row: &Value) -> Value {
    let mut obj = Map::new();
    obj.insert("employee_id".into(), employee_id.clone());
    if let Some(m) = row.as_object() {
        for (k, v) in m {
            if k != "employee_id" {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(obj)
}

/// custom_reports (§3.2 with fix F4): one record per report item.
pub fn report_item(report_id: &Value, item: &Value) -> Value {
    let mut out = Map::new();
    out.insert("report_id".into(), report_id.clone());
    let item_id = item.get("employee_id").cloned().or_else(|| {
        item.as_object()
            .and_then(|m| m.iter().find(|(k, _)| *k != "attributes" && *k != "historical_attributes").map(|(_, v)| v.clone()))
    });
    out.insert("item_id".into(), item_id.unwrap_or(Value::Null));
    if let Some(attrs) = item.get("attributes").and_then(Value::as_array) {
        for a in attrs {
            let Some(name) = a.get("attribute_id").and_then(Value::as_str) else { continue };
            let is_date = a.get("data_type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("date"));
            let value = match a.get("value") {
                Some(v) if is_date && !v.is_null() && v.as_str() != Some("") => to_utc_ts(v),
                Some(v) => v.clone(),
                None => {
                    let mut rest = a.as_object().cloned().unwrap_or_default();
                    for k in ["attribute_id", "data_type", "employee_id"] {
                        rest.remove(k);
                    }
                    Value::Object(rest)
                }
            };
            out.insert(name.to_string(), value);
        }
    }
    if let Some(hist) = item.get("historical_attributes") {
        out.insert("historical_attributes".into(), hist.clone());
    }
    Value::Object(out)
}

/// v2 objects: passed through; `created_at`/`updated_at` (plain or `{date_time}`) become UTC timestamps.
pub fn v2(item: &Value) -> Value {
    let mut obj = item.as_object().cloned().unwrap_or_default();
    obj.remove("_meta");
    for field in ["created_at", "updated_at"] {
        let inner = obj.get(field).and_then(|v| v.get("date_time").or(Some(v))).and_then(Value::as_str).and_then(parse_utc);
        if let Some(dt) = inner {
            obj.insert(field.to_string(), ts_value(dt));
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
        let e = employee(&item);
        assert_eq!(e["id"], 1);
        assert_eq!(e["hire_date"], json!("\u{F027}2014-11-08T23:00:00+00:00"));
        assert_eq!(e["titel"], "Dr");
        assert_eq!(e["anniversary_date"], json!("\u{F027}2021-01-01T00:00:00+00:00"));
        assert_eq!(e["iban"], "DE98");
        assert_eq!(e["empty_date"], "");
        assert!(e.get("type").is_none());
    }

    #[test]
    fn attendance_outer_id_wins_and_dates_convert() {
        let item = json!({"id": 7, "type": "AttendancePeriod", "attributes": {"id": 99, "date": "2024-03-01", "updated_at": "2024-03-01T10:00:00+02:00"}});
        let a = attendance(&item).unwrap();
        assert_eq!(a["id"], 7);
        assert_eq!(a["date"], json!("\u{F028}2024-03-01"));
        assert_eq!(a["updated_at"], json!("\u{F027}2024-03-01T08:00:00+00:00"));
        assert!(attendance(&json!({"id": 1, "attributes": {}})).is_err());
    }

    #[test]
    fn report_items_of_every_kind() {
        let item = json!({"employee_id": 17, "attributes": [
            {"attribute_id": "first_name", "data_type": "TEXT", "value": "Robert", "employee_id": 17},
            {"attribute_id": "hire", "data_type": "DATE", "value": "2020-01-02", "employee_id": 17},
            {"attribute_id": "attendance_contractual_target_hours", "data_type": "DURATION", "duration": 10, "employee_id": 17},
            {"attribute_id": "absence_123:periods", "data_type": "ABSENCE_PERIOD", "start_date": "2022-03-01", "employee_id": 17}
        ]});
        let r = report_item(&json!("rep-1"), &item);
        assert_eq!(r["report_id"], "rep-1");
        assert_eq!(r["item_id"], 17);
        assert_eq!(r["first_name"], "Robert");
        assert_eq!(r["hire"], json!("\u{F027}2020-01-02T00:00:00+00:00"));
        assert_eq!(r["attendance_contractual_target_hours"], json!({"duration": 10}));
        assert_eq!(r["absence_123:periods"]["start_date"], "2022-03-01");
        let h = report_item(&json!("r"), &json!({"employee_id": 1, "historical_attributes": [{"effective_date": "2020-01-01"}]}));
        assert_eq!(h["historical_attributes"][0]["effective_date"], "2020-01-01");
    }

    #[test]
    fn balance_outer_key_wins() {
        let b = balance(&json!(5), &json!({"employee_id": 9, "id": 1, "balance": 10.5}));
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
