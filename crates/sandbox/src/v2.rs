//! v2 endpoints: OAuth token, cursor-paginated persons, employments, absences, attendances, projects.
//!
//! Every list endpoint follows its published contract (limits, exact filter names and operators, datetime
//! format), see [`Contract`]. Next links carry only the cursor; the cursor encodes position, limit and filters.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{json, Value};

use crate::company::{absence_bounds, attr_str, cmp_nulls_last, default_period_order, period_keys, Absence, Company, Employee, PeriodRef};
use crate::http::{bearer, content_type, json_response, oauth_error, v2_bad_request, v2_error, v2_not_found, ErrCtx, Q};
use crate::state::{Shared, St};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/auth/token", post(token))
        .route("/auth/revoke", post(revoke))
        .route("/persons", get(persons))
        .route("/persons/{id}", get(person))
        .route("/persons/{id}/employments", get(employments))
        .route("/persons/{id}/employments/{employment_id}", get(employment))
        .route("/absence-periods", get(absence_periods))
        .route("/absence-types", get(absence_types))
        .route("/attendance-periods", get(attendance_periods))
        .route("/projects", get(projects))
}

/// How a v2 endpoint writes date-times in its filters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DtFormat {
    /// RFC 3339 with an offset (`2023-01-01T12:00:00Z`), as the persons/employments specs type `date-time`.
    Zoned,
    /// Local date-time without offset (`2023-01-01T12:00:00`); a `Z` is refused.
    Naive,
    /// Either.
    Any,
}

/// One v2 list endpoint's published contract.
struct Contract {
    path: &'static str,
    default_limit: usize,
    max_limit: usize,
    filters: &'static [&'static str],
    scope: &'static str,
    dt: DtFormat,
    /// `detail` of a 400 for a bad value.
    bad_value: &'static str,
}

const PERSONS: Contract = Contract {
    path: "/persons",
    default_limit: 10,
    max_limit: 50,
    filters: &[
        "id", "email", "first_name", "last_name", "preferred_name", "created_at", "created_at.gt", "created_at.lt", "updated_at",
        "updated_at.gt", "updated_at.lt", "status",
    ],
    scope: "personio:persons:read",
    dt: DtFormat::Zoned,
    bad_value: "Provided request parameters are invalid.",
};

const EMPLOYMENTS: Contract = Contract {
    path: "/persons/{id}/employments",
    default_limit: 10,
    max_limit: 50,
    filters: &["id", "updated_at", "updated_at.gt", "updated_at.lt"],
    scope: "personio:employments:read",
    dt: DtFormat::Zoned,
    bad_value: "Provided request parameters are invalid.",
};

const ABSENCE_PERIODS: Contract = Contract {
    path: "/absence-periods",
    default_limit: 100,
    max_limit: 100,
    filters: &[
        "id", "absence_type.id", "person.id", "starts_from.date_time.gte", "starts_from.date_time.lte", "ends_at.date_time.gte",
        "ends_at.date_time.lte", "updated_at.gte", "updated_at.lte",
    ],
    scope: "personio:absences:read",
    dt: DtFormat::Any,
    bad_value: "Provided request parameters are invalid.",
};

const ABSENCE_TYPES: Contract = Contract {
    path: "/absence-types",
    default_limit: 100,
    max_limit: 100,
    filters: &[],
    scope: "personio:absences:read",
    dt: DtFormat::Any,
    bad_value: "Provided request parameters are invalid.",
};

const ATTENDANCE_PERIODS: Contract = Contract {
    path: "/attendance-periods",
    default_limit: 100,
    max_limit: 100,
    filters: &[
        "id", "person.id", "start.date_time.gte", "start.date_time.lte", "end.date_time.gte", "end.date_time.lte", "updated_at.gte",
        "updated_at.lte", "date.gte", "date.lte", "project.id", "status", "sort",
    ],
    scope: "personio:attendances:read",
    dt: DtFormat::Naive,
    bad_value: "Invalid request content.",
};

const PROJECTS: Contract = Contract {
    path: "/projects",
    default_limit: 100,
    max_limit: 100,
    filters: &["id", "name", "status", "project_code", "parent_project.id", "top_level_only"],
    scope: "personio:projects:read",
    dt: DtFormat::Any,
    bad_value: "Provided request parameters are invalid.",
};

fn ctx(sh: &Shared) -> ErrCtx {
    ErrCtx { now: sh.read().now, seq: sh.counter.load(std::sync::atomic::Ordering::SeqCst) }
}

// ------------------------------------------------------------------ auth

/// Checks the bearer token and the scope: missing/bad token → 401, missing scope → 403.
fn check(sh: &Shared, headers: &HeaderMap, scope: &str) -> Result<(), Response> {
    let c = ctx(sh);
    let Some(tok) = bearer(headers) else {
        return Err(v2_error(c, StatusCode::UNAUTHORIZED, "Unauthorized", "The Authorization header is missing.", "common.unauthorized", json!({})));
    };
    let Some(scopes) = sh.token_scopes(&tok) else {
        return Err(v2_error(c, StatusCode::UNAUTHORIZED, "Unauthorized", "The access token is invalid or expired.", "common.unauthorized", json!({})));
    };
    if !scopes.iter().any(|s| s == scope) {
        return Err(v2_error(
            c,
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("The access token does not have the required scope {scope}."),
            "common.forbidden",
            json!({"required_scope": scope}),
        ));
    }
    Ok(())
}

/// OAuth grant types that exist but are not offered (→ `unsupported_grant_type`); anything else is `invalid_grant`.
const KNOWN_GRANTS: &[&str] = &["authorization_code", "password", "refresh_token", "implicit"];

async fn token(State(sh): St, headers: HeaderMap, body: Bytes) -> Response {
    let c = ctx(&sh);
    let bad = StatusCode::BAD_REQUEST;
    if !content_type(&headers).starts_with("application/x-www-form-urlencoded") {
        return oauth_error(
            c,
            bad,
            "invalid_request",
            "The content type of the request must be \"application/x-www-form-urlencoded\".",
            "credentials.oauth2.invalid_request.invalid_request_content_type",
            None,
        );
    }
    let f = Q::parse_str(&String::from_utf8_lossy(&body));
    let present = |k: &str| f.get(k).is_some_and(|v| !v.is_empty());
    let missing: Vec<&str> = ["grant_type", "client_id", "client_secret"].into_iter().filter(|k| !present(k)).collect();
    let missing_err = |m: &[&str]| {
        oauth_error(
            c,
            bad,
            "invalid_request",
            "The request has missing or invalid required parameters.",
            "credentials.oauth2.invalid_request.required_parameters_missing",
            Some(json!({"missing_parameters": m})),
        )
    };
    let Some(grant) = f.get("grant_type").filter(|g| !g.is_empty()) else { return missing_err(&missing) };
    if grant != "client_credentials" {
        if KNOWN_GRANTS.contains(&grant) || grant.starts_with("urn:ietf:params:oauth:grant-type:") {
            return oauth_error(
                c,
                bad,
                "unsupported_grant_type",
                "The requested authorization grant type is not supported by the server.",
                "credentials.oauth2.unsupported_grant_type",
                Some(json!({"grant_type": grant})),
            );
        }
        return oauth_error(
            c,
            bad,
            "invalid_grant",
            "Error in the authorization flow. The grant type is not valid.",
            "credentials.oauth2.invalid_grant",
            Some(json!({"grant_type": grant})),
        );
    }
    let opts = sh.options();
    let Some(id) = f.get("client_id").filter(|v| !v.is_empty()) else { return missing_err(&missing) };
    if id != opts.client_id {
        return oauth_error(
            c,
            bad,
            "invalid_client",
            "Client authentication failed (e.g., unknown client, wrong secret, no client authentication included, or unsupported authentication method).",
            "credentials.oauth2.invalid_client",
            None,
        );
    }
    let Some(secret) = f.get("client_secret").filter(|v| !v.is_empty()) else { return missing_err(&missing) };
    if secret != opts.client_secret {
        return oauth_error(
            c,
            bad,
            "unauthorized_client",
            "The credentials were not correct. Make sure you are providing the right client_id and client_secret.",
            "credentials.oauth2.unauthorized_client",
            None,
        );
    }
    let scopes: Vec<String> = match f.get("scope").map(str::trim) {
        None | Some("") => opts.scopes.clone(),
        Some(s) => {
            let asked: Vec<String> = s.split_whitespace().map(String::from).collect();
            if asked.iter().any(|a| !opts.scopes.contains(a)) {
                return oauth_error(c, bad, "invalid_scope", "One of the requested scopes is invalid.", "credentials.oauth2.invalid_scope", None);
            }
            asked
        }
    };
    let (tok, left) = sh.issue_token(id, &scopes);
    json_response(StatusCode::OK, json!({"access_token": tok, "token_type": "Bearer", "expires_in": left, "scope": scopes.join(" ")}).to_string())
}

async fn revoke(State(sh): St, headers: HeaderMap, body: Bytes) -> Response {
    let c = ctx(&sh);
    if !content_type(&headers).starts_with("application/x-www-form-urlencoded") {
        return oauth_error(
            c,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The content type of the request must be \"application/x-www-form-urlencoded\".",
            "credentials.oauth2.invalid_request.invalid_request_content_type",
            None,
        );
    }
    let f = Q::parse_str(&String::from_utf8_lossy(&body));
    let Some(tok) = f.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(
            c,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request has missing or invalid required parameters.",
            "credentials.oauth2.invalid_request.required_parameters_missing",
            Some(json!({"missing_parameters": ["token"]})),
        );
    };
    sh.revoke_token(tok);
    axum::response::IntoResponse::into_response(StatusCode::OK)
}

// ------------------------------------------------------------------ paging

/// A decoded request: filters (from the query or the cursor), position and limit.
struct Req {
    filters: Q,
    pos: usize,
    limit: usize,
    /// The request had any parameter (the `self` link then carries a cursor).
    any_param: bool,
}

fn encode_cursor(pos: usize, limit: usize, filters: &Q) -> String {
    let f = serde_urlencoded::to_string(&filters.0).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sbx2|{pos}|{limit}|{f}"))
}

fn decode_cursor(c: &str) -> Option<(usize, usize, Q)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let mut it = s.splitn(4, '|');
    (it.next()? == "sbx2").then_some(())?;
    let pos = it.next()?.parse().ok()?;
    let limit = it.next()?.parse().ok()?;
    Some((pos, limit, Q::parse_str(it.next()?)))
}

fn sorted_pairs(q: &Q) -> Vec<(String, String)> {
    let mut v = q.0.clone();
    v.sort();
    v
}

/// Validates parameter names, limit and cursor against the endpoint's contract.
fn request(sh: &Shared, uri: &Uri, k: &Contract) -> Result<Req, Response> {
    let c = ctx(sh);
    let q = Q::parse(uri);
    for (name, _) in &q.0 {
        if name != "limit" && name != "cursor" && !k.filters.contains(&name.as_str()) {
            return Err(v2_bad_request(c, "Provided filter encoding is invalid.", json!({"parameter": name})));
        }
    }
    let filters = Q(q.0.iter().filter(|(n, _)| n != "limit" && n != "cursor").cloned().collect());
    let limit_err = || v2_bad_request(c, k.bad_value, json!({"limit": format!("must be an integer between 1 and {}", k.max_limit)}));
    let limit = match q.get("limit") {
        None => None,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(l) if (1..=k.max_limit).contains(&l) => Some(l),
            _ => return Err(limit_err()),
        },
    };
    let any_param = !q.0.is_empty();
    match q.get("cursor").filter(|c| !c.is_empty()) {
        None => Ok(Req { filters, pos: 0, limit: limit.unwrap_or(k.default_limit), any_param }),
        Some(cur) => {
            let bad_cursor = || v2_bad_request(c, k.bad_value, json!({"cursor": "is not a valid cursor for this request"}));
            let (pos, cl, cf) = decode_cursor(cur).ok_or_else(bad_cursor)?;
            if !(1..=k.max_limit).contains(&cl) {
                return Err(bad_cursor());
            }
            if !filters.0.is_empty() && sorted_pairs(&filters) != sorted_pairs(&cf) {
                return Err(bad_cursor());
            }
            Ok(Req { filters: cf, pos, limit: limit.unwrap_or(cl), any_param })
        }
    }
}

/// Builds `{"_data":[…],"_meta":{"links":{"self","next"}}}` from a selection and a renderer.
fn page<T: Copy, S: AsRef<str>>(sh: &Shared, path: &str, r: &Req, sel: &[T], render: impl Fn(T) -> S) -> Response {
    let total = sel.len();
    let start = r.pos.min(total);
    let end = (start + r.limit).min(total);
    let base = format!("{}/v2{path}", sh.base_url());
    let self_href = if r.any_param { format!("{base}?cursor={}", encode_cursor(start, r.limit, &r.filters)) } else { base.clone() };
    let mut b = String::with_capacity(2048 + (end - start) * 512);
    b.push_str(r#"{"_data":["#);
    for (i, x) in sel[start..end].iter().enumerate() {
        if i > 0 {
            b.push(',');
        }
        b.push_str(render(*x).as_ref());
    }
    b.push_str(r#"],"_meta":{"links":{"self":{"href":"#);
    b.push_str(&Value::String(self_href).to_string());
    b.push('}');
    if end < total {
        b.push_str(r#","next":{"href":"#);
        b.push_str(&Value::String(format!("{base}?cursor={}", encode_cursor(end, r.limit, &r.filters))).to_string());
        b.push('}');
    }
    b.push_str("}}}");
    json_response(StatusCode::OK, b)
}

// ------------------------------------------------------------------ filter values

fn parse_dt(s: &str, f: DtFormat) -> Option<NaiveDateTime> {
    let s = s.trim();
    let zoned = || DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc).naive_utc());
    let naive = || {
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"].iter().find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
    };
    match f {
        DtFormat::Zoned => zoned(),
        DtFormat::Naive => naive(),
        DtFormat::Any => zoned().or_else(naive),
    }
}

/// Parses a date-time filter value in the endpoint's format (400 with the endpoint's detail otherwise).
fn dt_param(sh: &Shared, q: &Q, name: &str, k: &Contract) -> Result<Option<NaiveDateTime>, Response> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => parse_dt(v, k.dt).map(Some).ok_or_else(|| v2_bad_request(ctx(sh), k.bad_value, json!({name: "is not a valid date-time for this endpoint"}))),
    }
}

fn date_param(sh: &Shared, q: &Q, name: &str, k: &Contract) -> Result<Option<NaiveDate>, Response> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
            .map(Some)
            .map_err(|_| v2_bad_request(ctx(sh), k.bad_value, json!({name: "is not a valid date (YYYY-MM-DD)"}))),
    }
}

/// Optional bounds `(>= lo, <= hi)` or `(> lo, < hi)`.
#[derive(Clone, Copy)]
struct Range<T> {
    lo: Option<T>,
    hi: Option<T>,
    eq: Option<T>,
}

impl<T: PartialOrd + Copy> Range<T> {
    fn incl(&self, t: T) -> bool {
        self.lo.is_none_or(|a| t >= a) && self.hi.is_none_or(|b| t <= b) && self.eq.is_none_or(|e| t == e)
    }
    fn excl(&self, t: T) -> bool {
        self.lo.is_none_or(|a| t > a) && self.hi.is_none_or(|b| t < b) && self.eq.is_none_or(|e| t == e)
    }
}

fn utc(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

// ------------------------------------------------------------------ persons and employments

fn person_status(e: &Employee) -> &'static str {
    if attr_str(e, "status") == "inactive" { "INACTIVE" } else { "ACTIVE" }
}

async fn persons(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers, PERSONS.scope));
    let r = try_r!(request(&sh, &uri, &PERSONS));
    let q = &r.filters;
    let upd = Range {
        eq: try_r!(dt_param(&sh, q, "updated_at", &PERSONS)),
        lo: try_r!(dt_param(&sh, q, "updated_at.gt", &PERSONS)),
        hi: try_r!(dt_param(&sh, q, "updated_at.lt", &PERSONS)),
    };
    let cre = Range {
        eq: try_r!(dt_param(&sh, q, "created_at", &PERSONS)),
        lo: try_r!(dt_param(&sh, q, "created_at.gt", &PERSONS)),
        hi: try_r!(dt_param(&sh, q, "created_at.lt", &PERSONS)),
    };
    let status = q.get("status").map(str::to_string);
    if status.as_deref().is_some_and(|s| s != "ACTIVE" && s != "INACTIVE") {
        return v2_bad_request(ctx(&sh), PERSONS.bad_value, json!({"status": "must be ACTIVE or INACTIVE"}));
    }
    let ids = q.list("id");
    let emails: Vec<String> = q.list("email").iter().map(|e| e.to_lowercase()).collect();
    let names: Vec<(&str, String)> =
        ["first_name", "last_name", "preferred_name"].iter().filter_map(|k| q.get(k).map(|v| (*k, v.to_string()))).collect();
    let w = sh.read();
    let sel = sh.selection(q.filter_key("v2persons"), w.generation, || {
        w.employees
            .iter()
            .enumerate()
            .filter(|(_, e)| ids.is_empty() || ids.contains(&e.id.to_string()))
            .filter(|(_, e)| emails.is_empty() || emails.contains(&attr_str(e, "email").to_lowercase()))
            .filter(|(_, e)| names.iter().all(|(k, v)| attr_str(e, k) == *v))
            .filter(|(_, e)| upd.excl(utc(e.last_modified)) && cre.excl(utc(e.created_at)))
            .filter(|(_, e)| status.as_deref().is_none_or(|s| person_status(e) == s))
            .map(|(i, _)| i as u32)
            .collect()
    });
    let base = sh.base_url();
    let bare = sh.options().persons_without_attributes;
    let cache = sh.rendered(if bare { "persons-bare" } else { "persons" }, w.generation, w.employees.len());
    page(&sh, PERSONS.path, &r, &sel, |i| {
        cache.get_or(i as usize, || w.employees.get(i as usize).map(|e| w.person_v2(e, &base, bare).to_string()).unwrap_or_default())
    })
}

async fn person(State(sh): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers, PERSONS.scope));
    let w = sh.read();
    let bare = sh.options().persons_without_attributes;
    match id.parse::<i64>().ok().and_then(|i| w.employee(i)) {
        Some(e) => json_response(StatusCode::OK, w.person_v2(e, &sh.base_url(), bare).to_string()),
        None => {
            drop(w);
            v2_not_found(ctx(&sh))
        }
    }
}

async fn employments(State(sh): St, Path(id): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers, EMPLOYMENTS.scope));
    let r = try_r!(request(&sh, &uri, &EMPLOYMENTS));
    let q = &r.filters;
    let upd = Range {
        eq: try_r!(dt_param(&sh, q, "updated_at", &EMPLOYMENTS)),
        lo: try_r!(dt_param(&sh, q, "updated_at.gt", &EMPLOYMENTS)),
        hi: try_r!(dt_param(&sh, q, "updated_at.lt", &EMPLOYMENTS)),
    };
    let ids = q.list("id");
    let w = sh.read();
    let Some(e) = id.parse::<i64>().ok().and_then(|i| w.employee(i)) else {
        drop(w);
        return v2_not_found(ctx(&sh));
    };
    let emp_id = w.employment_id(e).to_string();
    let keep = (ids.is_empty() || ids.contains(&emp_id)) && upd.excl(utc(e.last_modified));
    let sel: Vec<u8> = if keep { vec![0] } else { Vec::new() };
    let base = sh.base_url();
    let path = format!("/persons/{}/employments", e.id);
    page(&sh, &path, &r, &sel, |_| w.employment_v2(e, &base).to_string())
}

async fn employment(State(sh): St, Path((id, employment_id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers, EMPLOYMENTS.scope));
    let w = sh.read();
    match id.parse::<i64>().ok().and_then(|i| w.employee(i)).filter(|e| w.employment_id(e).to_string() == employment_id) {
        Some(e) => json_response(StatusCode::OK, w.employment_v2(e, &sh.base_url()).to_string()),
        None => {
            drop(w);
            v2_not_found(ctx(&sh))
        }
    }
}

// ------------------------------------------------------------------ absences

async fn absence_periods(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let k = &ABSENCE_PERIODS;
    try_r!(check(&sh, &headers, k.scope));
    let r = try_r!(request(&sh, &uri, k));
    let q = &r.filters;
    let upd = Range { lo: try_r!(dt_param(&sh, q, "updated_at.gte", k)), hi: try_r!(dt_param(&sh, q, "updated_at.lte", k)), eq: None };
    // The date-range filters select periods overlapping [lo, hi] (hub: "match absences overlapping the period").
    let mut lo = try_r!(dt_param(&sh, q, "starts_from.date_time.gte", k));
    let lo2 = try_r!(dt_param(&sh, q, "ends_at.date_time.gte", k));
    let mut hi = try_r!(dt_param(&sh, q, "ends_at.date_time.lte", k));
    let hi2 = try_r!(dt_param(&sh, q, "starts_from.date_time.lte", k));
    lo = lo.max(lo2);
    hi = match (hi, hi2) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let ids = q.list("id");
    let types = q.list("absence_type.id");
    let people = q.list("person.id");
    let w = sh.read();
    let sel = sh.selection(q.filter_key("v2absences"), w.generation, || {
        let type_ok = |a: &Absence| {
            types.is_empty() || w.time_off_type(a.type_id).is_some_and(|t| types.contains(&t.id_v2.to_string()))
        };
        w.absences
            .iter()
            .enumerate()
            .filter(|(_, a)| ids.is_empty() || ids.contains(&a.id_v2.to_string()))
            .filter(|(_, a)| people.is_empty() || people.contains(&a.employee_id.to_string()))
            .filter(|(_, a)| upd.incl(utc(a.updated_at)) && type_ok(a))
            .filter(|(_, a)| {
                let (s, e) = absence_bounds(a);
                lo.is_none_or(|l| e >= l) && hi.is_none_or(|h| s <= h)
            })
            .map(|(i, _)| i as u32)
            .collect()
    });
    let cache = sh.rendered("absence-periods", w.generation, w.absences.len());
    page(&sh, k.path, &r, &sel, |i| cache.get_or(i as usize, || w.absences.get(i as usize).map(|a| w.absence_v2(a).to_string()).unwrap_or_default()))
}

async fn absence_types(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    try_r!(check(&sh, &headers, ABSENCE_TYPES.scope));
    let r = try_r!(request(&sh, &uri, &ABSENCE_TYPES));
    let w = sh.read();
    let sel: Vec<u32> = (0..w.time_off_types.len() as u32).collect();
    page(&sh, ABSENCE_TYPES.path, &r, &sel, |i| w.time_off_types.get(i as usize).map(|t| Company::absence_type_v2(t).to_string()).unwrap_or_default())
}

// ------------------------------------------------------------------ attendances

const SORT_FIELDS: &[&str] = &["person.id", "start.date_time", "end.date_time", "updated_at", "status"];

async fn attendance_periods(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let k = &ATTENDANCE_PERIODS;
    try_r!(check(&sh, &headers, k.scope));
    let r = try_r!(request(&sh, &uri, k));
    let q = &r.filters;
    let c = ctx(&sh);
    let bad = |name: &str, why: &str| v2_bad_request(c, k.bad_value, json!({name: why}));
    let start = Range { lo: try_r!(dt_param(&sh, q, "start.date_time.gte", k)), hi: try_r!(dt_param(&sh, q, "start.date_time.lte", k)), eq: None };
    let end = Range { lo: try_r!(dt_param(&sh, q, "end.date_time.gte", k)), hi: try_r!(dt_param(&sh, q, "end.date_time.lte", k)), eq: None };
    let upd = Range { lo: try_r!(dt_param(&sh, q, "updated_at.gte", k)), hi: try_r!(dt_param(&sh, q, "updated_at.lte", k)), eq: None };
    let date = Range { lo: try_r!(date_param(&sh, q, "date.gte", k)), hi: try_r!(date_param(&sh, q, "date.lte", k)), eq: None };
    let status = q.get("status").map(str::to_string);
    if status.as_deref().is_some_and(|s| !["PENDING", "CONFIRMED", "REJECTED", "EXPIRED"].contains(&s)) {
        return bad("status", "must be one of PENDING, CONFIRMED, REJECTED, EXPIRED");
    }
    let mut sort: Vec<(String, bool)> = Vec::new();
    if let Some(s) = q.get("sort") {
        for f in s.split(',').map(str::trim) {
            let (desc, name) = match f.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, f),
            };
            if !SORT_FIELDS.contains(&name) {
                return bad("sort", "allowed fields: person.id, start.date_time, end.date_time, updated_at, status");
            }
            sort.push((name.to_string(), desc));
        }
    }
    let ids = q.list("id");
    let people = q.list("person.id");
    let projects = q.list("project.id");
    let w = sh.read();
    let base = sh.selection("v2periods:base".into(), w.generation, || default_period_order(&w));
    let sel = sh.selection(q.filter_key("v2periods"), w.generation, || {
        let mut v: Vec<PeriodRef> = base
            .iter()
            .copied()
            .filter(|p| {
                let Some(a) = w.attendances.get((p >> 1) as usize) else { return false };
                let brk = p & 1 == 1;
                let (person, s, e) = period_keys(a, brk);
                (people.is_empty() || people.contains(&person.to_string()))
                    && status.as_deref().is_none_or(|st| a.status.eq_ignore_ascii_case(st))
                    && upd.incl(utc(a.updated_at))
                    && date.incl(a.date)
                    && start.incl(s)
                    && (end.lo.is_none() && end.hi.is_none() || e.is_some_and(|e| end.incl(e)))
                    && (projects.is_empty() || (!brk && a.project_id.is_some_and(|pid| projects.contains(&pid.to_string()))))
                    && (ids.is_empty() || ids.contains(&w.period_id(a, brk).to_string()))
            })
            .collect();
        if !sort.is_empty() {
            v.sort_by(|x, y| {
                let (Some(ax), Some(ay)) = (w.attendances.get((x >> 1) as usize), w.attendances.get((y >> 1) as usize)) else {
                    return Ordering::Equal;
                };
                let (kx, ky) = (period_keys(ax, x & 1 == 1), period_keys(ay, y & 1 == 1));
                for (f, desc) in &sort {
                    let o = match f.as_str() {
                        "person.id" => kx.0.cmp(&ky.0),
                        "start.date_time" => kx.1.cmp(&ky.1),
                        "end.date_time" => cmp_nulls_last(kx.2, ky.2),
                        "updated_at" => ax.updated_at.cmp(&ay.updated_at),
                        _ => ax.status.cmp(&ay.status),
                    };
                    let o = if *desc { o.reverse() } else { o };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                x.cmp(y)
            });
        }
        v
    });
    let cache = sh.rendered("attendance-periods", w.generation, w.attendances.len() * 2);
    page(&sh, k.path, &r, &sel, |p| {
        cache.get_or(p as usize, || w.attendances.get((p >> 1) as usize).map(|a| w.attendance_period_v2(a, p & 1 == 1).to_string()).unwrap_or_default())
    })
}

async fn projects(State(sh): St, uri: Uri, headers: HeaderMap) -> Response {
    let k = &PROJECTS;
    try_r!(check(&sh, &headers, k.scope));
    let r = try_r!(request(&sh, &uri, k));
    let q = &r.filters;
    let ids = q.list("id");
    let name = q.get("name").map(str::to_string);
    let status = q.get("status").map(str::to_string);
    if status.as_deref().is_some_and(|s| s != "ACTIVE" && s != "ARCHIVED") {
        return v2_bad_request(ctx(&sh), k.bad_value, json!({"status": "must be ACTIVE or ARCHIVED"}));
    }
    if let Some(t) = q.get("top_level_only") {
        if t != "true" && t != "false" {
            return v2_bad_request(ctx(&sh), k.bad_value, json!({"top_level_only": "must be true or false"}));
        }
    }
    // No sandbox project has a code or a parent.
    let none = q.get("project_code").is_some() || q.get("parent_project.id").is_some();
    let w = sh.read();
    let sel: Vec<u32> = w
        .projects
        .iter()
        .enumerate()
        .filter(|(_, p)| !none && (ids.is_empty() || ids.contains(&p.id.to_string())))
        .filter(|(_, p)| name.as_deref().is_none_or(|n| p.name == n))
        .filter(|(_, p)| status.as_deref().is_none_or(|s| Company::project_status_v2(p) == s))
        .map(|(i, _)| i as u32)
        .collect();
    page(&sh, k.path, &r, &sel, |i| w.projects.get(i as usize).map(|p| Company::project_v2(p).to_string()).unwrap_or_default())
}

// ------------------------------------------------------------------ warm-up

/// Renders every v2 list record now (persons, absence periods, attendance periods), so that a benchmark's
/// pages cost the same from its first request on. Returns the number of records rendered.
pub(crate) fn warm(sh: &Shared) -> usize {
    let w = sh.read();
    let base = sh.base_url();
    let bare = sh.options().persons_without_attributes;
    let persons = sh.rendered(if bare { "persons-bare" } else { "persons" }, w.generation, w.employees.len());
    for (i, e) in w.employees.iter().enumerate() {
        persons.get_or(i, || w.person_v2(e, &base, bare).to_string());
    }
    let absences = sh.rendered("absence-periods", w.generation, w.absences.len());
    for (i, a) in w.absences.iter().enumerate() {
        absences.get_or(i, || w.absence_v2(a).to_string());
    }
    let periods = sh.rendered("attendance-periods", w.generation, w.attendances.len() * 2);
    let mut n = w.employees.len() + w.absences.len();
    for (i, a) in w.attendances.iter().enumerate() {
        for brk in [false, true] {
            if !brk || a.break_min > 0 {
                periods.get_or(crate::company::period_ref(i, brk) as usize, || w.attendance_period_v2(a, brk).to_string());
                n += 1;
            }
        }
    }
    sh.selection("v2periods:base".into(), w.generation, || default_period_order(&w));
    n
}
