//! HTTP layer: router, middleware (log, rate limits, faults) and the v1 endpoints.

use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::company::{attr_str, Company};
use crate::config::FaultKind;
use crate::net::ConnKill;
use crate::state::{RequestRecord, Shared, Truth};
use crate::time::{berlin_date, parse_date, parse_v1_instant, DayEdge};

pub(crate) type St = State<Arc<Shared>>;

/// Builds the whole router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let v1 = Router::new()
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
        .route("/company/custom-reports/reports/{id}", get(report));
    Router::new()
        .nest("/v1", v1)
        .nest("/v2", crate::v2::router())
        .nest("/_sandbox", crate::admin::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/v2") {
        return crate::v2::v2_error(StatusCode::NOT_FOUND, "Not found", "The requested resource was not found.", "common.requested_resource_not_found");
    }
    v1_error(StatusCode::NOT_FOUND, 404, "Not Found")
}

// ------------------------------------------------------------------ middleware

fn mask_query(path: &str, q: &str) -> String {
    if path != "/v1/auth" || q.is_empty() {
        return q.to_string();
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap_or_default();
    let masked: Vec<(String, String)> =
        pairs.into_iter().map(|(k, v)| if k == "client_secret" { (k, "***".into()) } else { (k, v) }).collect();
    serde_urlencoded::to_string(masked).unwrap_or_default()
}

fn status_response(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let msg = status.canonical_reason().unwrap_or("Error");
    v1_error(status, code as i64, msg)
}

async fn gate(State(sh): St, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_sandbox") {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let query = mask_query(&path, req.uri().query().unwrap_or(""));
    let seq = sh.next_seq();
    let is_auth = path == "/v1/auth" || path == "/v2/auth/token";
    let fault = sh.decide_fault(seq, !is_auth);
    let kill = req.extensions().get::<ConnectInfo<ConnKill>>().map(|c| c.0.clone());
    let log = |status: u16| RequestRecord { seq, method: method.clone(), path: path.clone(), query: query.clone(), status, fault };

    if sh.options().rate_limits {
        let r = sh.limiter().check(&path);
        if let Err(l) = r {
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"success":false,"error":{"code":429,"message":"Too Many Requests"}}"#,
            )
                .into_response();
            let h = resp.headers_mut();
            for (k, v) in [
                ("retry-after", l.retry_after.to_string()),
                ("x-ratelimit-remaining", l.remaining.to_string()),
                ("x-ratelimit-replenish-rate", format!("{}", l.replenish)),
                ("x-ratelimit-burst-capacity", format!("{}", l.burst)),
                ("x-ratelimit-requested-tokens", "1".to_string()),
            ] {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            sh.push_log(log(429));
            return resp;
        }
    }

    let (slow_ms, insert_n) = sh.fault_params();
    let resp = match fault {
        None => next.run(req).await,
        Some(FaultKind::Status500) => status_response(500),
        Some(FaultKind::Status502) => status_response(502),
        Some(FaultKind::Status503) => status_response(503),
        Some(FaultKind::Status504) => status_response(504),
        Some(FaultKind::TooManyRequests) => {
            let mut r = status_response(429);
            r.headers_mut().insert("retry-after", HeaderValue::from_static("0"));
            r
        }
        Some(FaultKind::ConnectionReset) => {
            if let Some(k) = &kill {
                k.kill();
            }
            sh.push_log(log(0));
            return status_response(500);
        }
        Some(FaultKind::Slow) => {
            tokio::time::sleep(std::time::Duration::from_millis(slow_ms)).await;
            next.run(req).await
        }
        Some(FaultKind::TruncatedBody) => {
            let r = next.run(req).await;
            let (mut parts, body) = r.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
            let cut = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(cut))
        }
        Some(FaultKind::RevokeToken) => {
            sh.revoke_tokens();
            next.run(req).await
        }
        Some(FaultKind::InsertRecords) => {
            insert_records(&sh, &path, insert_n);
            next.run(req).await
        }
    };
    sh.push_log(log(resp.status().as_u16()));
    resp
}

fn insert_records(sh: &Shared, path: &str, n: usize) {
    let mut w = sh.write();
    if path.contains("time-offs") || path.contains("absence-periods") {
        let today = berlin_date(w.now);
        let ids: Vec<i64> = w.employees.iter().take(n).map(|e| e.id).collect();
        for id in ids {
            w.add_absence(id, today, 1, None);
        }
    } else if path.contains("attendance") {
        let today = berlin_date(w.now);
        let ids: Vec<i64> = w.employees.iter().take(n).map(|e| e.id).collect();
        for id in ids {
            w.add_attendance(id, today);
        }
    } else {
        w.add_employees(n);
    }
}

// ------------------------------------------------------------------ helpers

/// Query parameters in order; `name[]` and `name` are the same list.
pub(crate) struct Q(pub Vec<(String, String)>);

impl Q {
    /// A cache key of the filter parameters (paging parameters left out).
    pub(crate) fn filter_key(&self, endpoint: &str) -> String {
        let mut k = String::from(endpoint);
        for (a, b) in &self.0 {
            if a != "offset" && a != "page" && a != "limit" {
                k.push('&');
                k.push_str(a);
                k.push('=');
                k.push_str(b);
            }
        }
        k
    }

    pub(crate) fn parse(uri: &Uri) -> Q {
        Q(serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default())
    }
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    /// Values of `name[]`, `name` (comma-separated allowed) and `name[N]`.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        let arr = format!("{name}[");
        self.0
            .iter()
            .filter(|(k, _)| k == name || k.starts_with(&arr))
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>())
            .collect()
    }
}

pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// A v1 error body.
pub(crate) fn v1_error(status: StatusCode, code: i64, msg: &str) -> Response {
    json_response(status, json!({"success": false, "error": {"code": code, "message": msg}}).to_string())
}

fn ok(token: &str, body: impl Into<Body>) -> Response {
    let mut r = json_response(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        r.headers_mut().insert(header::AUTHORIZATION, v);
    }
    r
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, tok) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| tok.trim().to_string())
}

/// Checks the v1 bearer token: missing → 401, unknown/expired → 403 (or 401 if configured).
fn v1_auth_check(sh: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let Some(tok) = bearer(headers) else {
        return Err(v1_error(StatusCode::UNAUTHORIZED, 401, "Authorization is not provided"));
    };
    if sh.token_valid(&tok) {
        return Ok(tok);
    }
    if sh.options().invalid_token_401 {
        Err(v1_error(StatusCode::UNAUTHORIZED, 401, "Provided authorization is not valid"))
    } else {
        Err(v1_error(StatusCode::FORBIDDEN, 403, "Provided authorization is not valid"))
    }
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
    let mut b = Vec::with_capacity(4096);
    b.extend_from_slice(
        format!(
            r#"{{"success":true,"metadata":{{"total_elements":{total},"current_page":{current_page},"total_pages":{total_pages}}},"offset":{offset},"limit":{limit},"data":["#
        )
        .as_bytes(),
    );
    for (i, it) in items.enumerate() {
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
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
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
    let (tok, left) = sh.issue_token(&id);
    let mut r = json_response(
        StatusCode::OK,
        json!({"success": true, "data": {"token": tok, "expires_in": left, "scope": "employees:read absences:read attendances:read reports:read"}}).to_string(),
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
    let tok = try_r!(v1_auth_check(&sh, &headers));
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
    let sel: Vec<&crate::company::Employee> = idx.iter().filter_map(|i| w.employees.get(*i as usize)).collect();
    let total = sel.len();
    let start = (offset as usize).min(total);
    let end = (start + limit as usize).min(total);
    let page = &sel[start..end];
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
    let tok = try_r!(v1_auth_check(&sh, &headers));
    let w = sh.read();
    let Some(e) = id.parse::<i64>().ok().and_then(|id| w.employee(id)) else { return employee_404() };
    ok(&tok, format!(r#"{{"success":true,"data":{}}}"#, e.json))
}

async fn balance(State(sh): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers));
    let w = sh.read();
    let Some(e) = id.parse::<i64>().ok().and_then(|id| w.employee(id)) else { return employee_404() };
    ok(&tok, data_list(w.balance_v1(e)))
}

/// `company/employees/attributes` entries.
pub(crate) fn attribute_list(w: &Company) -> Vec<Value> {
    let Some(first) = w.employees.first() else { return Vec::new() };
    first
        .attrs
        .iter()
        .map(|(k, a)| {
            let options: Vec<String> = w.attr_defs.iter().find(|d| &d.key == k).map(|d| d.options.clone()).unwrap_or_default();
            json!({"key": k, "label": a.get("label"), "type": a.get("type"), "universal_id": a.get("universal_id"), "options": options})
        })
        .collect()
}

async fn employee_attributes(State(sh): St, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers));
    let w = sh.read();
    ok(&tok, data_list(attribute_list(&w)))
}

// ------------------------------------------------------------------ time-offs

async fn time_offs(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers));
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
    let tok = try_r!(v1_auth_check(&sh, &headers));
    let w = sh.read();
    let found = id.parse::<i64>().ok().and_then(|id| w.absences.iter().find(|a| a.id == id && w.is_v1_time_off(a)));
    match found {
        Some(a) => ok(&tok, format!(r#"{{"success":true,"data":{}}}"#, a.json)),
        None => v1_error(StatusCode::NOT_FOUND, 404, "The absence period was not found."),
    }
}

async fn time_off_types(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers));
    let q = Q::parse(&uri);
    let limit = try_r!(limit_param(&q, 200, 200));
    let offset = try_r!(offset_param(&q));
    let w = sh.read();
    let items: Vec<Value> = w.time_off_types.iter().skip(offset as usize).take(limit as usize).map(Company::time_off_type_v1).collect();
    ok(&tok, data_list(items))
}

// ------------------------------------------------------------------ attendances & projects

async fn attendances(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers));
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
    let tok = try_r!(v1_auth_check(&sh, &headers));
    try_r!(v1_retired(&sh, "GET /v2/projects"));
    let w = sh.read();
    ok(&tok, data_list(w.projects.iter().map(Company::project_v1).collect()))
}

async fn document_categories(State(sh): St, headers: HeaderMap) -> Response {
    let tok = try_r!(v1_auth_check(&sh, &headers));
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
    let tok = try_r!(v1_auth_check(&sh, &headers));
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
    let tok = try_r!(v1_auth_check(&sh, &headers));
    let q = Q::parse(&uri);
    let (page, limit) = try_r!(page_params(&q, &sh, 200, 1000));
    let w = sh.read();
    let Some(ri) = w.reports.iter().position(|r| r.id == id) else {
        drop(w);
        return report_error(StatusCode::NOT_FOUND, "Not Found", "Report not found", "ID", "Report ID not found", &sh);
    };
    let r = &w.reports[ri];
    let emps = w.report_employees(r);
    let total = emps.len();
    let start = ((page - 1) as usize).saturating_mul(limit as usize).min(total);
    let end = (start + limit as usize).min(total);
    let items: Vec<Value> = emps[start..end].iter().map(|e| w.report_item(ri, e)).collect();
    let mut meta = w.report_v1_meta(r);
    meta.insert("items".into(), Value::Array(items));
    let body = json!({"success": true, "metadata": {"total_elements": total, "current_page": page, "total_pages": ceil_div(total, limit as usize)},
        "offset": start, "limit": limit, "data": [{"type": "Report", "attributes": meta}]});
    ok(&tok, body.to_string())
}

// ------------------------------------------------------------------ truth

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

/// Builds the ground truth from the company.
pub(crate) fn truth(w: &Company) -> Truth {
    let mut t = Truth {
        employees: w.employees.iter().map(|e| parse(&e.json)).collect(),
        employee_attributes: attribute_list(w),
        absences: w.absences.iter().filter(|a| w.is_v1_time_off(a)).map(|a| parse(&a.json)).collect(),
        attendances: w.attendances.iter().map(|a| parse(&a.json)).collect(),
        time_off_types: w.time_off_types.iter().map(Company::time_off_type_v1).collect(),
        projects: w.projects.iter().map(Company::project_v1).collect(),
        document_categories: w.document_categories.iter().map(Company::document_category_v1).collect(),
        custom_reports: w.reports.iter().map(|r| json!({"type": "Report", "attributes": w.report_v1_meta(r)})).collect(),
        persons: w.employees.iter().map(|e| w.person_v2(e)).collect(),
        absence_periods: w.absences.iter().map(|a| w.absence_v2(a)).collect(),
        absence_types: w.time_off_types.iter().map(Company::absence_type_v2).collect(),
        attendance_periods: w.attendances.iter().flat_map(|a| w.attendance_v2(a)).collect(),
        projects_v2: w.projects.iter().map(Company::project_v2).collect(),
        ..Default::default()
    };
    for e in &w.employees {
        t.balances.insert(e.id, w.balance_v1(e));
        t.employments.insert(e.id.to_string(), vec![w.employment_v2(e)]);
    }
    for (ri, r) in w.reports.iter().enumerate() {
        let items = w.report_employees(r).iter().map(|e| w.report_item(ri, e)).collect();
        t.custom_report_items.insert(r.id.clone(), items);
    }
    t
}

