//! v1 endpoints (`/v1`): auth, employees, time-offs, attendances, projects, document categories, custom reports.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::company::{attr_str, Company};
use crate::http::{bearer, content_type, json_response, ok_with_token as ok, v1_error, Q};
use crate::state::{Shared, St};
use crate::time::{berlin_date, parse_date, parse_v1_instant, DayEdge};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/auth", post(v1_auth))
        .route("/company/employees", get(employees))
        .route("/company/employees/attributes", get(employee_attributes))
        .route("/company/employees/custom-attributes", get(employee_attributes))
        .route("/company/employees/{id}", get(employee_by_id))
        .route("/company/employees/{id}/absences/balance", get(balance))
        .route("/company/time-offs", get(time_offs))
        .route("/company/time-offs/{id}", get(time_off_by_id))
        .route("/company/time-off-types", get(time_off_types))
        .route("/company/attendances", get(attendances))
        .route("/company/attendances/projects", get(projects))
        .route("/company/document-categories", get(document_categories))
        .route("/company/custom-reports/reports", get(reports))
        .route("/company/custom-reports/reports/{id}", get(report))
}

/// Checks the v1 bearer token and the credential's access to `scope`: missing → 401, unknown/expired → 403
/// (or 401 if configured), without the scope → 403.
fn v1_auth_check(sh: &Shared, headers: &HeaderMap, scope: &str) -> Result<String, Response> {
    let Some(tok) = bearer(headers) else {
        return Err(v1_error(StatusCode::UNAUTHORIZED, 401, "Authorization is not provided"));
    };
    let Some(scopes) = sh.token_scopes(&tok) else {
        return Err(if sh.options().invalid_token_401 {
            v1_error(StatusCode::UNAUTHORIZED, 401, "Provided authorization is not valid")
        } else {
            v1_error(StatusCode::FORBIDDEN, 403, "Provided authorization is not valid")
        });
    };
    if !scopes.iter().any(|s| s == scope) {
        return Err(v1_error(
            StatusCode::FORBIDDEN,
            403,
            &format!("The API credentials do not have access to this resource (missing permission {scope})."),
        ));
    }
    Ok(tok)
}

fn int_param(q: &Q, name: &str, default: i64) -> Result<i64, ()> {
    match q.get(name) {
        None | Some("") => Ok(default),
        Some(s) => s.trim().parse::<i64>().map_err(|_| ()),
    }
}

fn limit_param(q: &Q, default: i64, max: i64) -> Result<i64, Response> {
    let msg = format!("The limit must be between 1 and {max}.");
    match int_param(q, "limit", default) {
        Ok(l) if (1..=max).contains(&l) => Ok(l),
        _ => Err(v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, &msg)),
    }
}

fn offset_param(q: &Q) -> Result<i64, Response> {
    match int_param(q, "offset", 0) {
        Ok(o) if o >= 0 => Ok(o),
        _ => Err(v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, "The offset must be an integer greater than or equal to 0.")),
    }
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b.max(1))
}

/// `{"success":true,"metadata":{…},"offset":…,"limit":…,"data":[<items>]}` from pre-serialized items.
fn envelope<'a>(total: usize, current_page: usize, total_pages: usize, offset: i64, limit: i64, items: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let head = format!(
        r#"{{"success":true,"metadata":{{"total_elements":{total},"current_page":{current_page},"total_pages":{total_pages}}},"offset":{offset},"limit":{limit},"data":["#
    );
    // Sized once: a page of 100 employees is ~900 KB, and growing by doubling copied it twice over.
    let items: Vec<&str> = items.collect();
    let mut b = Vec::with_capacity(head.len() + items.iter().map(|s| s.len() + 1).sum::<usize>() + 2);
    b.extend_from_slice(head.as_bytes());
    for (i, it) in items.into_iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(it.as_bytes());
    }
    b.extend_from_slice(b"]}");
    b
}

fn data_list(items: Vec<Value>) -> String {
    json!({"success": true, "data": items}).to_string()
}

/// `Err(410 Gone)` when the sandbox plays a tenant after the 2026-08-30 retirement.
fn v1_retired(sh: &Shared, replacement: &str) -> Result<(), Response> {
    if !sh.options().v1_retired {
        return Ok(());
    }
    Err(json_response(
        StatusCode::GONE,
        json!({"success": false, "error": {"code": 410, "message": format!("This endpoint was retired on 2026-08-30. Use {replacement} instead.")}}).to_string(),
    ))
}

// ------------------------------------------------------------------ auth

async fn v1_auth(State(sh): St, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let q = Q::parse(&uri);
    let ct = content_type(&headers);
    let mut id = None;
    let mut secret = None;
    let text = String::from_utf8_lossy(&body);
    if !text.trim().is_empty() {
        if ct.contains("json") || text.trim_start().starts_with('{') {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => {
                    id = v.get("client_id").and_then(Value::as_str).map(String::from);
                    secret = v.get("client_secret").and_then(Value::as_str).map(String::from);
                }
                Err(_) => return v1_error(StatusCode::BAD_REQUEST, 400, "The request body is not valid JSON."),
            }
        } else {
            let f = Q(serde_urlencoded::from_str(&text).unwrap_or_default());
            id = f.get("client_id").map(String::from);
            secret = f.get("client_secret").map(String::from);
        }
    }
    let mut from_query = false;
    if id.is_none() && secret.is_none() && (q.get("client_id").is_some() || q.get("client_secret").is_some()) {
        from_query = true;
        id = q.get("client_id").map(String::from);
        secret = q.get("client_secret").map(String::from);
    }
    let opts = sh.options();
    if from_query && opts.reject_query_auth {
        return v1_error(
            StatusCode::FORBIDDEN,
            403,
            "Credentials in the query string are no longer accepted. Send client_id and client_secret in the request body.",
        );
    }
    let (Some(id), Some(secret)) = (id, secret) else {
        return v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, "The client id and client secret fields are required.");
    };
    if id != opts.client_id || secret != opts.client_secret {
        return v1_error(StatusCode::UNAUTHORIZED, 0, "Wrong credentials");
    }
    let (tok, left) = sh.issue_token(&id, &opts.scopes);
    let mut r = json_response(
        StatusCode::OK,
        json!({"success": true, "data": {"token": tok, "expires_in": left, "scope": opts.scopes.join(" ")}}).to_string(),
    );
    if from_query {
        let h = r.headers_mut();
        h.insert("deprecation", HeaderValue::from_static("true"));
        h.insert(
            "warning",
            HeaderValue::from_static("299 - \"Query-string credentials on POST /v1/auth are deprecated; send them in a JSON or form body\""),
        );
    }
    r
}

// ------------------------------------------------------------------ employees

fn project_employee(e: &crate::company::Employee, keys: &[String]) -> String {
    let mut m = serde_json::Map::new();
    for (k, v) in &e.attrs {
        if k == "id" || keys.iter().any(|x| x == k) {
            m.insert(k.clone(), v.clone());
        }
    }
    json!({"type": "Employee", "attributes": m}).to_string()
}

async fn employees(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:persons:read"));
    let q = Q::parse(&uri);
    let limit = try_r!(limit_param(&q, 50, 100));
    let offset = try_r!(offset_param(&q));
    let keys = q.list("attributes");
    let since = match q.get("updated_since").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match parse_v1_instant(s, DayEdge::Start) {
            Some(t) => Some(t),
            None => return v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, "The updated since is not a valid date."),
        },
    };
    let email = q.get("email").filter(|s| !s.is_empty() && since.is_none());
    let w = sh.read();
    let idx = sh.selection(q.filter_key("employees"), w.generation, || {
        w.employees
            .iter()
            .enumerate()
            .filter(|(_, e)| email.is_none_or(|m| attr_str(e, "email").eq_ignore_ascii_case(m)))
            .filter(|(_, e)| match since {
                None => true,
                Some(t) if keys.is_empty() => e.last_modified >= t,
                Some(t) => keys.iter().any(|k| e.attrs.contains_key(k) && e.attr_changed_at(k) >= t),
            })
            .map(|(i, _)| i as u32)
            .collect()
    });
    let total = idx.len();
    let start = (offset as usize).min(total);
    let end = (start + limit as usize).min(total);
    let page: Vec<&crate::company::Employee> = idx[start..end].iter().filter_map(|i| w.employees.get(*i as usize)).collect();
    let body = if keys.is_empty() {
        envelope(total, offset as usize / limit as usize, ceil_div(total, limit as usize), offset, limit, page.iter().map(|e| &*e.json))
    } else {
        let items: Vec<String> = page.iter().map(|e| project_employee(e, &keys)).collect();
        envelope(total, offset as usize / limit as usize, ceil_div(total, limit as usize), offset, limit, items.iter().map(String::as_str))
    };
    ok(&tok, body)
}

fn employee_404() -> Response {
    v1_error(StatusCode::NOT_FOUND, 404, "Es ist ein Problem aufgetreten ")
}

async fn employee_by_id(State(sh): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:persons:read"));
    let w = sh.read();
    let Some(e) = id.parse::<i64>().ok().and_then(|id| w.employee(id)) else { return employee_404() };
    ok(&tok, format!(r#"{{"success":true,"data":{}}}"#, e.json))
}

async fn balance(State(sh): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:absences:read"));
    let w = sh.read();
    let Some(e) = id.parse::<i64>().ok().and_then(|id| w.employee(id)) else { return employee_404() };
    ok(&tok, data_list(w.balance_v1(e)))
}

async fn employee_attributes(State(sh): St, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:persons:read"));
    let w = sh.read();
    ok(&tok, data_list(w.attribute_list()))
}

// ------------------------------------------------------------------ time-offs

async fn time_offs(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:absences:read"));
    let q = Q::parse(&uri);
    let limit = try_r!(limit_param(&q, 200, 200));
    let page = match int_param(&q, "offset", 1) {
        Ok(p) if p >= 0 => p.max(1),
        _ => return v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, "The offset must be an integer greater than or equal to 0."),
    };
    let mut dates = [None, None, None, None];
    for (i, name) in ["start_date", "end_date", "updated_from", "updated_to"].iter().enumerate() {
        if let Some(s) = q.get(name).filter(|s| !s.is_empty()) {
            match parse_date(s) {
                Some(d) => dates[i] = Some(d),
                None => return v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, &format!("The {} is not a valid date.", name.replace('_', " "))),
            }
        }
    }
    let since = match q.get("updated_since").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match parse_v1_instant(s, DayEdge::Start) {
            Some(t) => Some(t),
            None => return v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, "The updated since is not a valid date."),
        },
    };
    let emps: Vec<i64> = q.list("employees").iter().filter_map(|s| s.parse().ok()).collect();
    let w = sh.read();
    let [sd, ed, uf, ut] = dates;
    let idx = sh.selection(q.filter_key("time-offs"), w.generation, || {
        w.absences
            .iter()
            .enumerate()
            .filter(|(_, a)| w.is_v1_time_off(a))
            .filter(|(_, a)| sd.is_none_or(|d| a.end >= d) && ed.is_none_or(|d| a.start <= d))
            .filter(|(_, a)| uf.is_none_or(|d| berlin_date(a.updated_at) >= d) && ut.is_none_or(|d| berlin_date(a.updated_at) <= d))
            .filter(|(_, a)| since.is_none_or(|t| a.updated_at >= t))
            .filter(|(_, a)| emps.is_empty() || emps.contains(&a.employee_id))
            .map(|(i, _)| i as u32)
            .collect()
    });
    let total = idx.len();
    let start = ((page - 1) as usize).saturating_mul(limit as usize).min(total);
    let end = (start + limit as usize).min(total);
    let sel: Vec<&str> = idx[start..end].iter().filter_map(|i| w.absences.get(*i as usize)).map(|a| &*a.json).collect();
    ok(&tok, envelope(total, page as usize, ceil_div(total, limit as usize), page, limit, sel.iter().copied()))
}

async fn time_off_by_id(State(sh): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:absences:read"));
    let w = sh.read();
    let found = id.parse::<i64>().ok().and_then(|id| w.absences.iter().find(|a| a.id == id && w.is_v1_time_off(a)));
    match found {
        Some(a) => ok(&tok, format!(r#"{{"success":true,"data":{}}}"#, a.json)),
        None => v1_error(StatusCode::NOT_FOUND, 404, "The absence period was not found."),
    }
}

async fn time_off_types(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:absences:read"));
    let q = Q::parse(&uri);
    let limit = try_r!(limit_param(&q, 200, 200));
    let offset = try_r!(offset_param(&q));
    let w = sh.read();
    let items: Vec<Value> = w.time_off_types.iter().skip(offset as usize).take(limit as usize).map(Company::time_off_type_v1).collect();
    ok(&tok, data_list(items))
}

// ------------------------------------------------------------------ attendances & projects

async fn attendances(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:attendances:read"));
    try_r!(v1_retired(&sh, "GET /v2/attendance-periods"));
    let q = Q::parse(&uri);
    let limit = try_r!(limit_param(&q, 200, 200));
    let offset = try_r!(offset_param(&q));
    let mut range = [None, None];
    for (i, name) in ["start_date", "end_date"].iter().enumerate() {
        match q.get(name).filter(|s| !s.is_empty()) {
            None => return v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, &format!("The {} field is required.", name.replace('_', " "))),
            Some(s) => match parse_date(s) {
                Some(d) => range[i] = Some(d),
                None => return v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, &format!("The {} is not a valid date.", name.replace('_', " "))),
            },
        }
    }
    let mut upd = [None, None];
    for (i, (name, edge)) in [("updated_from", DayEdge::Start), ("updated_to", DayEdge::End)].iter().enumerate() {
        if let Some(s) = q.get(name).filter(|s| !s.is_empty()) {
            match parse_v1_instant(s, *edge) {
                Some(t) => upd[i] = Some(t),
                None => return v1_error(StatusCode::UNPROCESSABLE_ENTITY, 422, &format!("The {} is not a valid date.", name.replace('_', " "))),
            }
        }
    }
    let pending = q.get("includePending").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
    let emps: Vec<i64> = q.list("employees").iter().filter_map(|s| s.parse().ok()).collect();
    let w = sh.read();
    let (sd, ed) = (range[0], range[1]);
    let idx = sh.selection(q.filter_key("attendances"), w.generation, || {
        w.attendances
            .iter()
            .enumerate()
            .filter(|(_, a)| sd.is_none_or(|d| a.date >= d) && ed.is_none_or(|d| a.date <= d))
            .filter(|(_, a)| pending || a.status == "confirmed")
            .filter(|(_, a)| upd[0].is_none_or(|t| a.updated_at >= t) && upd[1].is_none_or(|t| a.updated_at <= t))
            .filter(|(_, a)| emps.is_empty() || emps.contains(&a.employee_id))
            .map(|(i, _)| i as u32)
            .collect()
    });
    let total = idx.len();
    let start = (offset as usize).min(total);
    let end = (start + limit as usize).min(total);
    let sel = idx[start..end].iter().filter_map(|i| w.attendances.get(*i as usize)).map(|a| &*a.json);
    ok(&tok, envelope(total, offset as usize / limit as usize, ceil_div(total, limit as usize), offset, limit, sel))
}

async fn projects(State(sh): St, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:projects:read"));
    try_r!(v1_retired(&sh, "GET /v2/projects"));
    let w = sh.read();
    ok(&tok, data_list(w.projects.iter().map(Company::project_v1).collect()))
}

async fn document_categories(State(sh): St, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:document_categories:read"));
    let w = sh.read();
    ok(&tok, data_list(w.document_categories.iter().map(Company::document_category_v1).collect()))
}

// ------------------------------------------------------------------ custom reports

fn report_error(status: StatusCode, title: &str, details: &str, field: &str, desc: &str, sh: &Shared) -> Response {
    let now = sh.read().now;
    json_response(
        status,
        json!([{"status": status.as_u16(), "trace_id": format!("SBX{:08X}", sh.counter.load(std::sync::atomic::Ordering::SeqCst)),
            "timestamp": crate::time::fmt_v2(now),
            "errors": [{"title": title, "details": details, "type": "search", "_meta": [{"field": field, "description": desc}]}]}])
        .to_string(),
    )
}

fn page_params(q: &Q, sh: &Shared, default_limit: i64, max: i64) -> Result<(i64, i64), Response> {
    let page = match int_param(q, "page", 1) {
        Ok(p) if p >= 0 => p.max(1),
        _ => return Err(report_error(StatusCode::BAD_REQUEST, "Bad Request", "Invalid page", "page", "page must be an integer >= 1", sh)),
    };
    let limit = match int_param(q, "limit", default_limit) {
        Ok(l) if (1..=max).contains(&l) => l,
        _ => return Err(report_error(StatusCode::BAD_REQUEST, "Bad Request", "Invalid limit", "limit", &format!("limit must be between 1 and {max}"), sh)),
    };
    Ok((page, limit))
}

async fn reports(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:reports:read"));
    let q = Q::parse(&uri);
    let (page, limit) = try_r!(page_params(&q, &sh, 100, 1000));
    let ids = q.list("report_ids");
    let status = q.get("status").filter(|s| !s.is_empty());
    let w = sh.read();
    let sel: Vec<Value> = w
        .reports
        .iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
        .filter(|r| status.is_none_or(|s| r.status == s))
        .map(|r| json!({"type": "Report", "attributes": w.report_v1_meta(r)}))
        .collect();
    let total = sel.len();
    let start = ((page - 1) as usize).saturating_mul(limit as usize).min(total);
    let end = (start + limit as usize).min(total);
    let body = json!({"success": true, "metadata": {"total_elements": total, "current_page": page, "total_pages": ceil_div(total, limit as usize)},
        "offset": start, "limit": limit, "data": &sel[start..end]});
    ok(&tok, body.to_string())
}

async fn report(State(sh): St, Path(id): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers, "personio:reports:read"));
    let q = Q::parse(&uri);
    let (page, limit) = try_r!(page_params(&q, &sh, 200, 1000));
    let w = sh.read();
    let Some(ri) = w.reports.iter().position(|r| r.id == id) else {
        drop(w);
        return report_error(StatusCode::NOT_FOUND, "Not Found", "Report not found", "ID", "Report ID not found", &sh);
    };
    let r = &w.reports[ri];
    // The report's employees, selected once per data generation (a page then costs only its items).
    let idx = sh.selection(format!("report:{id}"), w.generation, || {
        let ids: std::collections::HashSet<i64> = w.report_employees(r).iter().map(|e| e.id).collect();
        w.employees.iter().enumerate().filter(|(_, e)| ids.contains(&e.id)).map(|(i, _)| i as u32).collect()
    });
    let total = idx.len();
    let start = ((page - 1) as usize).saturating_mul(limit as usize).min(total);
    let end = (start + limit as usize).min(total);
    let items = w.report_items(ri, idx[start..end].iter().filter_map(|i| w.employees.get(*i as usize)));
    let mut meta = w.report_v1_meta(r);
    meta.insert("items".into(), Value::Array(items));
    let body = json!({"success": true, "metadata": {"total_elements": total, "current_page": page, "total_pages": ceil_div(total, limit as usize)},
        "offset": start, "limit": limit, "data": [{"type": "Report", "attributes": meta}]});
    ok(&tok, body.to_string())
}


