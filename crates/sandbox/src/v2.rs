//! v2 endpoints: OAuth token, cursor-paginated persons, employments, absences, attendances, projects.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::company::{attr_str, Company};
use crate::server::{json_response, St, Q};
use crate::state::Shared;
use crate::time::{fmt_v2, parse_v2_instant};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/auth/token", post(token))
        .route("/persons", get(persons))
        .route("/persons/{id}", get(person))
        .route("/persons/{id}/employments", get(employments))
        .route("/absence-periods", get(absence_periods))
        .route("/absence-types", get(absence_types))
        .route("/attendance-periods", get(attendance_periods))
        .route("/projects", get(projects))
}

/// A v2 error body.
pub(crate) fn v2_error(status: StatusCode, title: &str, detail: &str, code: &str) -> Response {
    let trace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{title}{detail}").as_bytes());
    json_response(
        status,
        json!({"personio_trace_id": trace.to_string(), "timestamp": fmt_v2(crate::time::default_now()),
            "errors": [{"title": title, "detail": detail, "type": format!("https://developer.personio.de/reference/errors#{code}"), "_meta": {}}]})
        .to_string(),
    )
}

fn bad(detail: &str) -> Response {
    v2_error(StatusCode::BAD_REQUEST, "Bad request", detail, "common.invalid_request")
}

fn oauth_error(status: StatusCode, err: &str, desc: &str) -> Response {
    json_response(status, json!({"error": err, "error_description": desc}).to_string())
}

async fn token(State(sh): St, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if !ct.contains("application/x-www-form-urlencoded") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "The request body must be application/x-www-form-urlencoded.");
    }
    let f = Q(serde_urlencoded::from_bytes(&body).unwrap_or_default());
    match f.get("grant_type") {
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing grant_type."),
        Some("client_credentials") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Only client_credentials is supported."),
    }
    let opts = sh.options();
    let (Some(id), Some(secret)) = (f.get("client_id"), f.get("client_secret")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing client_id or client_secret.");
    };
    if id != opts.client_id || secret != opts.client_secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.");
    }
    let all = "personio:persons:read personio:absences:read personio:attendances:read personio:projects:read";
    let scope = match f.get("scope") {
        None | Some("") => all.to_string(),
        Some(s) => {
            if s.split_whitespace().any(|x| !x.starts_with("personio:")) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "Unknown scope.");
            }
            s.to_string()
        }
    };
    let (tok, left) = sh.issue_token(id);
    json_response(StatusCode::OK, json!({"access_token": tok, "token_type": "Bearer", "expires_in": left, "scope": scope}).to_string())
}

fn check(sh: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let tok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    match tok {
        None => Err(v2_error(StatusCode::UNAUTHORIZED, "Unauthorized", "Authorization header is missing.", "common.unauthorized")),
        Some(t) if sh.token_valid(&t) => Ok(()),
        Some(_) => Err(v2_error(StatusCode::UNAUTHORIZED, "Unauthorized", "The access token is invalid or expired.", "common.unauthorized")),
    }
}

fn encode_cursor(offset: usize, generation: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sbx1:{offset}:{generation}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let mut it = s.split(':');
    (it.next()? == "sbx1").then_some(())?;
    it.next()?.parse().ok()
}

/// Paging parameters: (offset, limit).
fn paging(q: &Q, default: usize, max: usize) -> Result<(usize, usize), Response> {
    let limit = match q.get("limit") {
        None | Some("") => default,
        Some(s) => match s.parse::<usize>() {
            Ok(l) if (1..=max).contains(&l) => l,
            _ => return Err(bad(&format!("limit must be between 1 and {max}."))),
        },
    };
    let offset = match q.get("cursor") {
        None | Some("") => 0,
        Some(c) => decode_cursor(c).ok_or_else(|| bad("The cursor is invalid."))?,
    };
    Ok((offset, limit))
}

fn href(base: &str, path: &str, q: &Q, cursor: Option<&str>, limit: usize) -> String {
    let mut pairs: Vec<(String, String)> = q.0.iter().filter(|(k, _)| k != "cursor" && k != "limit").cloned().collect();
    pairs.push(("limit".into(), limit.to_string()));
    if let Some(c) = cursor {
        pairs.push(("cursor".into(), c.to_string()));
    }
    format!("{base}/v2{path}?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
}

fn page(sh: &Shared, uri: &Uri, q: &Q, items: Vec<Value>, offset: usize, limit: usize, generation: u64) -> Response {
    let total = items.len();
    let start = offset.min(total);
    let end = (start + limit).min(total);
    let base = sh.base_url();
    let self_cursor = (offset > 0).then(|| encode_cursor(offset, generation));
    let mut links = serde_json::Map::new();
    links.insert("self".into(), json!({"href": href(&base, uri.path(), q, self_cursor.as_deref(), limit)}));
    if end < total {
        links.insert("next".into(), json!({"href": href(&base, uri.path(), q, Some(&encode_cursor(end, generation)), limit)}));
    }
    let data: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
    json_response(StatusCode::OK, json!({"_data": data, "_meta": {"links": links}}).to_string())
}

fn range(q: &Q, name: &str, allow_zone: bool) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), Response> {
    let mut out = (None, None);
    for (i, suf) in ["gte", "lte"].iter().enumerate() {
        let key = format!("{name}.{suf}");
        if let Some(s) = q.get(&key).filter(|s| !s.is_empty()) {
            if !allow_zone && (s.ends_with('Z') || s.ends_with('z')) {
                return Err(bad(&format!("{key} must be a local date-time without a time zone (e.g. 2023-01-01T12:00:00).")));
            }
            let t = parse_v2_instant(s, allow_zone).ok_or_else(|| bad(&format!("{key} is not a valid date-time.")))?;
            if i == 0 { out.0 = Some(t) } else { out.1 = Some(t) }
        }
    }
    Ok(out)
}

fn within(t: DateTime<Utc>, r: (Option<DateTime<Utc>>, Option<DateTime<Utc>>)) -> bool {
    r.0.is_none_or(|a| t >= a) && r.1.is_none_or(|b| t <= b)
}

fn naive_dt(s: &str) -> Option<DateTime<Utc>> {
    parse_v2_instant(s, false)
}

async fn persons(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers));
    let q = Q::parse(&uri);
    let (offset, limit) = try_r!(paging(&q, 10, 50));
    let upd = try_r!(range(&q, "updated_at", true));
    let cre = try_r!(range(&q, "created_at", true));
    let ids = q.list("id");
    let w = sh.read();
    let items: Vec<Value> = w
        .employees
        .iter()
        .filter(|e| ids.is_empty() || ids.contains(&e.id.to_string()))
        .filter(|e| ["first_name", "last_name", "email"].iter().all(|k| q.get(k).is_none_or(|v| attr_str(e, k) == v)))
        .filter(|e| within(e.last_modified, upd) && within(e.created_at, cre))
        .map(|e| w.person_v2(e))
        .collect();
    page(&sh, &uri, &q, items, offset, limit, w.generation)
}

async fn person(State(sh): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers));
    let w = sh.read();
    match id.parse::<i64>().ok().and_then(|i| w.employee(i)) {
        Some(e) => json_response(StatusCode::OK, w.person_v2(e).to_string()),
        None => v2_error(StatusCode::NOT_FOUND, "Not found", "The person was not found.", "common.requested_resource_not_found"),
    }
}

async fn employments(State(sh): St, Path(id): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers));
    let q = Q::parse(&uri);
    let (offset, limit) = try_r!(paging(&q, 10, 50));
    let w = sh.read();
    match id.parse::<i64>().ok().and_then(|i| w.employee(i)) {
        Some(e) => page(&sh, &uri, &q, vec![w.employment_v2(e)], offset, limit, w.generation),
        None => v2_error(StatusCode::NOT_FOUND, "Not found", "The person was not found.", "common.requested_resource_not_found"),
    }
}

async fn absence_periods(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers));
    let q = Q::parse(&uri);
    let (offset, limit) = try_r!(paging(&q, 100, 100));
    let upd = try_r!(range(&q, "updated_at", true));
    let starts = try_r!(range(&q, "starts_from.date_time", true));
    let ends = try_r!(range(&q, "ends_at.date_time", true));
    let ids = q.list("id");
    let types = q.list("absence_type.id");
    let people = q.list("person.id");
    let w = sh.read();
    let items: Vec<Value> = w
        .absences
        .iter()
        .filter(|a| ids.is_empty() || ids.contains(&a.id_v2.to_string()))
        .filter(|a| people.is_empty() || people.contains(&a.employee_id.to_string()))
        .filter(|a| within(a.updated_at, upd))
        .map(|a| w.absence_v2(a))
        .filter(|v| types.is_empty() || v.pointer("/absence_type/id").and_then(Value::as_str).is_some_and(|t| types.iter().any(|x| x == t)))
        .filter(|v| v.pointer("/starts_from/date_time").and_then(Value::as_str).and_then(naive_dt).is_some_and(|t| within(t, starts)))
        .filter(|v| v.pointer("/ends_at/date_time").and_then(Value::as_str).and_then(naive_dt).is_some_and(|t| within(t, ends)))
        .collect();
    page(&sh, &uri, &q, items, offset, limit, w.generation)
}

async fn absence_types(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers));
    let q = Q::parse(&uri);
    let (offset, limit) = try_r!(paging(&q, 100, 200));
    let w = sh.read();
    let items = w.time_off_types.iter().map(Company::absence_type_v2).collect();
    page(&sh, &uri, &q, items, offset, limit, w.generation)
}

async fn attendance_periods(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers));
    let q = Q::parse(&uri);
    let (offset, limit) = try_r!(paging(&q, 100, 200));
    let upd = try_r!(range(&q, "updated_at", false));
    let start = try_r!(range(&q, "start.date_time", false));
    let end = try_r!(range(&q, "end.date_time", false));
    let people = q.list("person.id");
    let ids = q.list("id");
    let status: Vec<String> = q.list("status").iter().map(|s| s.to_uppercase()).collect();
    let w = sh.read();
    let items: Vec<Value> = w
        .attendances
        .iter()
        .filter(|a| people.is_empty() || people.contains(&a.employee_id.to_string()))
        .filter(|a| status.is_empty() || status.contains(&a.status.to_uppercase()))
        .filter(|a| within(a.updated_at, upd))
        .flat_map(|a| w.attendance_v2(a))
        .filter(|v| ids.is_empty() || v.get("id").and_then(Value::as_str).is_some_and(|i| ids.iter().any(|x| x == i)))
        .filter(|v| v.pointer("/start/date_time").and_then(Value::as_str).and_then(naive_dt).is_some_and(|t| within(t, start)))
        .filter(|v| match v.pointer("/end/date_time").and_then(Value::as_str).and_then(naive_dt) {
            Some(t) => within(t, end),
            None => end.0.is_none() && end.1.is_none(),
        })
        .collect();
    page(&sh, &uri, &q, items, offset, limit, w.generation)
}

async fn projects(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers));
    let q = Q::parse(&uri);
    let (offset, limit) = try_r!(paging(&q, 100, 200));
    let w = sh.read();
    let items = w.projects.iter().map(Company::project_v2).collect();
    page(&sh, &uri, &q, items, offset, limit, w.generation)
}
