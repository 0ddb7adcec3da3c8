//! The router: `/v1`, `/v2` and `/_sandbox` behind one middleware (request log, rate limits, faults).

use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::config::FaultKind;
use crate::http::{oauth_error, v1_error, v1_status_error, v2_not_found, ErrCtx};
use crate::net::ConnKill;
use crate::state::{RequestRecord, Shared, St};
use crate::time::berlin_date;

/// Builds the whole router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .nest("/v1", crate::v1::router())
        .nest("/v2", crate::v2::router())
        .nest("/_sandbox", crate::admin::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

async fn not_found(State(sh): St, uri: Uri) -> Response {
    if uri.path().starts_with("/v2") {
        let now = sh.read().now;
        return v2_not_found(ErrCtx { now, seq: sh.counter.load(std::sync::atomic::Ordering::SeqCst) });
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

async fn gate(State(sh): St, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_sandbox") {
        return next.run(req).await;
    }
    let _in_flight = sh.begin_request();
    if let Some(d) = sh.draw_latency() {
        tokio::time::sleep(d).await;
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
            let mut resp = if path == "/v2/auth/token" {
                let ctx = ErrCtx { now: sh.read().now, seq };
                oauth_error(
                    ctx,
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    "Too many token requests: 150 per minute, then 1 per second for 60 seconds.",
                    "credentials.oauth2.temporarily_unavailable",
                    None,
                )
            } else {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"success":false,"error":{"code":429,"message":"Too Many Requests"}}"#,
                )
                    .into_response()
            };
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
        Some(FaultKind::Status500) => v1_status_error(500),
        Some(FaultKind::Status502) => v1_status_error(502),
        Some(FaultKind::Status503) => v1_status_error(503),
        Some(FaultKind::Status504) => v1_status_error(504),
        Some(FaultKind::TooManyRequests) => {
            let mut r = v1_status_error(429);
            r.headers_mut().insert("retry-after", HeaderValue::from_static("0"));
            r
        }
        Some(FaultKind::ConnectionReset) => {
            if let Some(k) = &kill {
                k.kill();
            }
            sh.push_log(log(0));
            return v1_status_error(500);
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
