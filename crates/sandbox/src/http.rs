//! HTTP helpers shared by the v1, v2 and admin handlers: query parsing, bodies and error envelopes.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::time::fmt_v2;

/// Query parameters in request order; `name[]` and `name` are the same list.
pub(crate) struct Q(pub Vec<(String, String)>);

impl Q {
    /// Parses the query string of a URI (an unparsable query is empty).
    pub(crate) fn parse(uri: &Uri) -> Q {
        Q::parse_str(uri.query().unwrap_or(""))
    }

    /// Parses a form-encoded string.
    pub(crate) fn parse_str(s: &str) -> Q {
        Q(serde_urlencoded::from_str(s).unwrap_or_default())
    }

    /// A cache key of the filter parameters (paging parameters left out).
    pub(crate) fn filter_key(&self, endpoint: &str) -> String {
        let mut k = String::from(endpoint);
        for (a, b) in &self.0 {
            if !matches!(a.as_str(), "offset" | "page" | "limit" | "cursor") {
                k.push('&');
                k.push_str(a);
                k.push('=');
                k.push_str(b);
            }
        }
        k
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Values of `name[]`, `name` (comma-separated allowed, repeatable) and `name[N]`.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        let arr = format!("{name}[");
        self.0
            .iter()
            .filter(|(k, _)| k == name || k.starts_with(&arr))
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>())
            .collect()
    }
}

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// A response with an `application/problem+json` body (v2 errors).
pub(crate) fn problem_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.into()).into_response()
}

/// A v1 error body `{"success":false,"error":{"code","message"}}`.
pub(crate) fn v1_error(status: StatusCode, code: i64, msg: &str) -> Response {
    json_response(status, json!({"success": false, "error": {"code": code, "message": msg}}).to_string())
}

/// A v1 error for an HTTP status, with its reason phrase as message.
pub(crate) fn v1_status_error(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    v1_error(status, i64::from(code), status.canonical_reason().unwrap_or("Error"))
}

/// Context of a v2 error: the fake clock and a request number for the trace id.
#[derive(Clone, Copy)]
pub(crate) struct ErrCtx {
    /// Fake clock.
    pub now: DateTime<Utc>,
    /// Request number.
    pub seq: u64,
}

impl ErrCtx {
    fn trace_id(&self, what: &str) -> String {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("personio-sandbox:{}:{what}", self.seq).as_bytes()).to_string()
    }
}

/// A v2 data-endpoint error (`application/problem+json`, common ErrorResponse of common-components-v2.json).
pub(crate) fn v2_error(ctx: ErrCtx, status: StatusCode, title: &str, detail: &str, code: &str, meta: Value) -> Response {
    let meta = if meta.is_object() { meta } else { json!({}) };
    problem_response(
        status,
        json!({"personio_trace_id": ctx.trace_id(detail), "timestamp": fmt_v2(ctx.now),
            "errors": [{"title": title, "detail": detail, "type": format!("https://developer.personio.de/reference/errors#{code}"), "_meta": meta}]})
        .to_string(),
    )
}

/// `400 Bad request` in the v2 shape.
pub(crate) fn v2_bad_request(ctx: ErrCtx, detail: &str, meta: Value) -> Response {
    v2_error(ctx, StatusCode::BAD_REQUEST, "Bad request", detail, "common.bad_request", meta)
}

/// `404 Resource not found` in the v2 shape (persons spec `ResourceNotFound`).
pub(crate) fn v2_not_found(ctx: ErrCtx) -> Response {
    v2_error(ctx, StatusCode::NOT_FOUND, "Resource not found", "There is no resource for the specified id.", "common.resource_not_found", json!({}))
}

/// An OAuth 2.0 token-endpoint error (credentials-service-api-v2.json `OAuth2TokenErrorResponse`).
pub(crate) fn oauth_error(ctx: ErrCtx, status: StatusCode, error: &str, desc: &str, uri_code: &str, meta: Option<Value>) -> Response {
    let mut body = json!({"timestamp": fmt_v2(ctx.now), "trace_id": ctx.trace_id(error), "error": error, "error_description": desc,
        "error_uri": format!("https://developer.personio.de/reference/errors#{uri_code}")});
    if let (Some(m), Some(obj)) = (meta, body.as_object_mut()) {
        obj.insert("meta".into(), m);
    }
    problem_response(status, body.to_string())
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, tok) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| tok.trim().to_string())
}

/// The lower-cased `Content-Type` of a request.
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase()
}

/// A 200 JSON response that echoes the token in `authorization` (v1, spec §3.3).
pub(crate) fn ok_with_token(token: &str, body: impl Into<Body>) -> Response {
    let mut r = json_response(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        r.headers_mut().insert(header::AUTHORIZATION, v);
    }
    r
}
