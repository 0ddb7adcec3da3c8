//! The server's rate-limit signals (429 + `Retry-After`, `x-ratelimit-*`) against a scripted server:
//! pauses per scope, the adaptive concurrency limit.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::fake::*;

fn data_path(req: &Req) -> bool {
    req.path != "/v1/auth"
}

fn limited(retry_after: &str) -> Reply {
    Reply::JsonWith(
        429,
        json!({"success": false, "error": {"code": 429, "message": "Too Many Requests"}}),
        vec![
            ("retry-after", retry_after.to_string()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-replenish-rate", "5".into()),
            ("x-ratelimit-burst-capacity", "15".into()),
            ("x-ratelimit-requested-tokens", "1".into()),
        ],
    )
}

/// Eight requests at once; the server refuses the first three with `Retry-After: 0.4`. Every request
/// of the scope waits out the pause (not only the refused ones), the limit is halved once for the
/// burst, and all eight succeed.
#[tokio::test]
async fn a_429_pauses_the_scope_and_halves_the_limit_once() {
    let fake = Fake::start(|req, n| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        if req.path == "/v1/company/time-offs" && n < 3 {
            return limited("0.4");
        }
        Reply::Delay(Duration::from_millis(50), Box::new(ok_data(json!([{"id": n}]))))
    })
    .await;
    let mut cfg = fake.config();
    cfg.concurrency.initial = 8;
    let client = personio_client::PersonioClient::new(cfg).unwrap();
    client.authenticate().await.unwrap();
    let calls = (0..8).map(|_| client.get_v1_json("company/time-offs", &[]));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = client.stats();
    assert_eq!(stats.rate_limited, 3, "{stats:?}");
    assert!(stats.server_pauses >= 1, "{stats:?}");
    assert_eq!(stats.concurrency_limit, 4, "halved once for one burst: {stats:?}");
    // After the first 429, nothing more reached the server until the pause was over.
    let reqs = fake.requests_to("/v1/company/time-offs");
    assert_eq!(reqs.len(), 11);
    let first = reqs[0].at;
    let in_flight_then = reqs.iter().filter(|r| r.at - first < Duration::from_millis(100)).count();
    let later: Vec<_> = reqs.iter().filter(|r| r.at - first >= Duration::from_millis(100)).collect();
    assert_eq!(in_flight_then + later.len(), 11);
    assert!(later.iter().all(|r| r.at - first >= Duration::from_millis(380)), "requests during the pause");
}

/// `x-ratelimit-remaining: 0` on a success pauses the scope for one token at the replenish rate
/// (5/s: 200 ms); other scopes go on.
#[tokio::test]
async fn remaining_zero_on_a_success_pauses_until_one_token_refilled() {
    let fake = Fake::start(|req, n| {
        if req.path == "/v2/auth/token" {
            return Reply::Json(200, json!({"access_token": "papi-v2", "token_type": "Bearer", "expires_in": 86400}));
        }
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        if req.path.starts_with("/v1/company/employees") && n == 0 {
            return Reply::JsonWith(
                200,
                json!({"success": true, "data": []}),
                vec![("x-ratelimit-remaining", "0".into()), ("x-ratelimit-replenish-rate", "5".into())],
            );
        }
        ok_data(json!([]))
    })
    .await;
    let client = fake.client();
    client.authenticate().await.unwrap();
    client.authenticate_v2().await.unwrap();
    client.get_v1_json("company/employees", &[]).await.unwrap();
    let paused_at = Instant::now();
    // Another scope is not held back …
    client.get_v2_json("persons", &[]).await.unwrap();
    client.get_v1_json("company/time-offs", &[]).await.unwrap();
    assert!(paused_at.elapsed() < Duration::from_millis(150), "{:?}", paused_at.elapsed());
    // … the employees scope is.
    client.get_v1_json("company/employees", &[]).await.unwrap();
    let e = fake.requests_to("/v1/company/employees");
    assert_eq!(e.len(), 2);
    assert!(e[1].at - e[0].at >= Duration::from_millis(180), "{:?}", e[1].at - e[0].at);
    assert_eq!(client.stats().server_pauses, 1);
}

/// Without any limit in the way, the concurrency limit grows past its start while requests queue for
/// permits (latency-bound), and never past `max`.
#[tokio::test]
async fn the_limit_grows_while_latency_bound_up_to_max() {
    let fake = Fake::start(|req, _| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        Reply::Delay(Duration::from_millis(30), Box::new(ok_data(json!([]))))
    })
    .await;
    let mut cfg = fake.config();
    cfg.concurrency.max = 10;
    let client = personio_client::PersonioClient::new(cfg).unwrap();
    client.authenticate().await.unwrap();
    let calls = (0..80).map(|_| client.get_v1_json("company/time-offs", &[]));
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    let stats = client.stats();
    assert_eq!(stats.concurrency_limit, 10, "{stats:?}");
    assert!(stats.peak_in_flight > 4 && stats.peak_in_flight <= 10, "{stats:?}");
}

/// At the client's own rate limit the limit does not grow: requests wait for tokens, not permits.
#[tokio::test]
async fn the_limit_stays_when_the_rate_limit_binds() {
    let fake = Fake::start(|req, _| if data_path(req) { ok_data(json!([])) } else { auth_ok("papi-t") }).await;
    let mut cfg = fake.config();
    // Employees: 20 a second, burst 1; answers are instant, so the bucket, not latency, sets the pace.
    cfg.pacing = personio_client::PacingConfig {
        employees_per_min: 1200,
        employees_burst_per_sec: 1,
        global_per_min: 0,
        ..personio_client::PacingConfig::default()
    };
    let client = personio_client::PersonioClient::new(cfg).unwrap();
    client.authenticate().await.unwrap();
    let calls = (0..20).map(|_| client.get_v1_json("company/employees", &[]));
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    let stats = client.stats();
    assert!(stats.rate_waits > 0, "{stats:?}");
    assert_eq!(stats.concurrency_limit, 4, "no growth at the allowance: {stats:?}");
}
