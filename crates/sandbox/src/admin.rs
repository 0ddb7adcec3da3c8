//! Admin API under `/_sandbox/`: clock, mutations, truth, request log, faults, limits.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{Duration, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{FaultConfig, Latency, ALL_SCOPES};
use crate::http::json_response;
use crate::state::{SandboxHandle, Shared, St};
use crate::time::{berlin_date, fmt_v1};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/health", get(|| async { json_response(StatusCode::OK, r#"{"ok":true}"#) }))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/employees/update", post(update_employees))
        .route("/employees/add", post(add_employees))
        .route("/employees/{id}", delete(erase_employee))
        .route("/mutate", post(mutate))
        .route("/warm", post(warm))
        .route("/absences", post(add_absence))
        .route("/absences/{id}/update", post(update_absence))
        .route("/absences/{id}", delete(delete_absence))
        .route("/attendances", post(add_attendance))
        .route("/attendances/{id}/update", post(update_attendance))
        .route("/attendances/{id}", delete(delete_attendance))
        .route("/attributes", post(add_attribute))
        .route("/attributes/{key}/type", post(change_type))
        .route("/time-off-types", delete(delete_types))
        .route("/truth", get(truth))
        .route("/requests", get(requests).delete(reset_requests))
        .route("/requests/counts", get(counts))
        .route("/faults", get(get_faults).put(set_faults))
        .route("/rate-limits", put(rate_limits))
        .route("/latency", get(get_latency).put(set_latency))
        .route("/options", put(options))
        .route("/tokens/revoke", post(revoke))
}

fn h(sh: &Arc<Shared>) -> SandboxHandle {
    SandboxHandle { shared: sh.clone() }
}

fn ok(v: Value) -> Response {
    json_response(StatusCode::OK, v.to_string())
}

fn not_found(what: &str) -> Response {
    json_response(StatusCode::NOT_FOUND, json!({"error": format!("{what} not found")}).to_string())
}

fn bad(msg: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, json!({"error": msg}).to_string())
}

/// Parses an optional JSON body, defaulting when empty.
fn body<T: for<'de> Deserialize<'de> + Default>(b: &axum::body::Bytes) -> Result<T, Response> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(|e| bad(&format!("invalid JSON body: {e}")))
}

async fn clock(State(sh): St) -> Response {
    let now = h(&sh).now();
    ok(json!({"now": now.to_rfc3339(), "now_v1": fmt_v1(now)}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Advance {
    seconds: i64,
    minutes: i64,
    hours: i64,
    days: i64,
}

async fn advance(State(sh): St, b: axum::body::Bytes) -> Response {
    let a: Advance = try_r!(body(&b));
    let by = Duration::seconds(a.seconds) + Duration::minutes(a.minutes) + Duration::hours(a.hours) + Duration::days(a.days);
    let now = h(&sh).advance_clock(by);
    ok(json!({"now": now.to_rfc3339(), "now_v1": fmt_v1(now)}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Count {
    count: Option<usize>,
}

async fn update_employees(State(sh): St, b: axum::body::Bytes) -> Response {
    let c: Count = try_r!(body(&b));
    ok(json!({"ids": h(&sh).update_employees(c.count.unwrap_or(1))}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Share {
    share: Option<f64>,
}

async fn mutate(State(sh): St, b: axum::body::Bytes) -> Response {
    let s: Share = try_r!(body(&b));
    let share = s.share.unwrap_or(0.01);
    if !(0.0..=1.0).contains(&share) {
        return bad("share must be a number from 0 to 1");
    }
    let (employees, absences, attendances) = h(&sh).mutate_share(share);
    ok(json!({"employees": employees, "absences": absences, "attendances": attendances}))
}

async fn warm(State(sh): St) -> Response {
    let handle = h(&sh);
    let rendered = tokio::task::spawn_blocking(move || handle.warm()).await.unwrap_or(0);
    ok(json!({"rendered": rendered}))
}

async fn add_employees(State(sh): St, b: axum::body::Bytes) -> Response {
    let c: Count = try_r!(body(&b));
    ok(json!({"ids": h(&sh).add_employees(c.count.unwrap_or(1))}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewRecord {
    employee_id: Option<i64>,
    start_date: Option<NaiveDate>,
    date: Option<NaiveDate>,
    days: Option<u32>,
    time_off_type_id: Option<i64>,
}

async fn add_absence(State(sh): St, b: axum::body::Bytes) -> Response {
    let r: NewRecord = try_r!(body(&b));
    let hd = h(&sh);
    let (emp, today) = hd.with_company(|c| (c.employees.first().map(|e| e.id), berlin_date(c.now)));
    let Some(emp) = r.employee_id.or(emp) else { return bad("no employee") };
    match hd.add_absence(emp, r.start_date.or(r.date).unwrap_or(today), r.days.unwrap_or(1), r.time_off_type_id) {
        Some(id) => ok(json!({"id": id})),
        None => not_found("employee or time-off type"),
    }
}

async fn erase_employee(State(sh): St, Path(id): Path<i64>) -> Response {
    if h(&sh).erase_employee(id) { ok(json!({"erased": id})) } else { not_found("employee") }
}

async fn update_absence(State(sh): St, Path(id): Path<i64>) -> Response {
    if h(&sh).update_absence(id) { ok(json!({"id": id})) } else { not_found("absence") }
}

async fn delete_absence(State(sh): St, Path(id): Path<i64>) -> Response {
    if h(&sh).delete_absence(id) { ok(json!({"deleted": id})) } else { not_found("absence") }
}

async fn add_attendance(State(sh): St, b: axum::body::Bytes) -> Response {
    let r: NewRecord = try_r!(body(&b));
    let hd = h(&sh);
    let (emp, today) = hd.with_company(|c| (c.employees.first().map(|e| e.id), berlin_date(c.now)));
    let Some(emp) = r.employee_id.or(emp) else { return bad("no employee") };
    match hd.add_attendance(emp, r.date.or(r.start_date).unwrap_or(today)) {
        Some(id) => ok(json!({"id": id})),
        None => not_found("employee"),
    }
}

async fn update_attendance(State(sh): St, Path(id): Path<i64>) -> Response {
    if h(&sh).update_attendance(id) { ok(json!({"id": id})) } else { not_found("attendance") }
}

async fn delete_attendance(State(sh): St, Path(id): Path<i64>) -> Response {
    if h(&sh).delete_attendance(id) { ok(json!({"deleted": id})) } else { not_found("attendance") }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewAttr {
    label: String,
    #[serde(rename = "type")]
    ty: Option<String>,
}

async fn add_attribute(State(sh): St, b: axum::body::Bytes) -> Response {
    let a: NewAttr = try_r!(body(&b));
    if a.label.is_empty() {
        return bad("label is required");
    }
    ok(json!({"key": h(&sh).add_custom_attribute(&a.label, a.ty.as_deref().unwrap_or("standard"))}))
}

async fn change_type(State(sh): St, Path(key): Path<String>, b: axum::body::Bytes) -> Response {
    let a: NewAttr = try_r!(body(&b));
    let Some(ty) = a.ty else { return bad("type is required") };
    if h(&sh).change_attribute_type(&key, &ty) { ok(json!({"key": key, "type": ty})) } else { not_found("attribute") }
}

async fn delete_types(State(sh): St) -> Response {
    h(&sh).delete_all_time_off_types();
    ok(json!({"deleted": true}))
}

async fn truth(State(sh): St) -> Response {
    ok(serde_json::to_value(h(&sh).truth()).unwrap_or(Value::Null))
}

async fn requests(State(sh): St) -> Response {
    ok(json!({"requests": h(&sh).request_log()}))
}

async fn reset_requests(State(sh): St) -> Response {
    h(&sh).reset_request_log();
    ok(json!({"reset": true}))
}

async fn counts(State(sh): St) -> Response {
    let hd = h(&sh);
    let log = hd.request_log();
    let mut by_status: std::collections::BTreeMap<u16, u64> = std::collections::BTreeMap::new();
    for r in &log {
        *by_status.entry(r.status).or_insert(0) += 1;
    }
    ok(json!({"total": log.len(), "by_path": hd.request_counts(), "by_status": by_status, "traffic": hd.traffic()}))
}

async fn get_faults(State(sh): St) -> Response {
    ok(serde_json::to_value(h(&sh).faults()).unwrap_or(Value::Null))
}

async fn set_faults(State(sh): St, Json(f): Json<FaultConfig>) -> Response {
    h(&sh).set_faults(f.clone());
    ok(serde_json::to_value(f).unwrap_or(Value::Null))
}

#[derive(Deserialize)]
struct Enabled {
    enabled: bool,
}

async fn rate_limits(State(sh): St, Json(e): Json<Enabled>) -> Response {
    h(&sh).set_rate_limits(e.enabled);
    ok(json!({"rate_limits": e.enabled}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Opts {
    v1_retired: Option<bool>,
    reject_query_auth: Option<bool>,
    rate_limits: Option<bool>,
    scopes: Option<Vec<String>>,
    persons_without_attributes: Option<bool>,
}

async fn options(State(sh): St, b: axum::body::Bytes) -> Response {
    let o: Opts = try_r!(body(&b));
    let hd = h(&sh);
    if let Some(v) = o.v1_retired {
        hd.set_v1_retired(v);
    }
    if let Some(v) = o.reject_query_auth {
        hd.set_reject_query_auth(v);
    }
    if let Some(v) = o.rate_limits {
        hd.set_rate_limits(v);
    }
    if let Some(v) = o.scopes {
        if let Some(unknown) = v.iter().find(|s| !ALL_SCOPES.contains(&s.as_str())) {
            return bad(&format!("unknown scope {unknown:?}"));
        }
        hd.set_scopes(v);
    }
    if let Some(v) = o.persons_without_attributes {
        hd.set_persons_without_attributes(v);
    }
    ok(serde_json::to_value(sh.options()).unwrap_or(Value::Null))
}

async fn get_latency(State(sh): St) -> Response {
    ok(serde_json::to_value(h(&sh).latency()).unwrap_or(Value::Null))
}

async fn set_latency(State(sh): St, Json(l): Json<Latency>) -> Response {
    h(&sh).set_latency(l);
    ok(serde_json::to_value(l).unwrap_or(Value::Null))
}

async fn revoke(State(sh): St) -> Response {
    h(&sh).revoke_tokens();
    ok(json!({"revoked": true}))
}
