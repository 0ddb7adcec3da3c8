//! Retries, Retry-After, errors, envelope checks, gzip, pacing.

use std::time::{Duration, Instant};

use personio_client::{ClientError, PacingConfig, PersonioClient};
use serde_json::json;

use crate::fake::*;

fn data_path(req: &Req) -> bool {
    req.path != "/v1/auth"
}

#[tokio::test]
async fn retries_500_502_503_504_then_succeeds() {
    let fake = Fake::start(|req, n| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        match n {
            0 => Reply::Raw(500, "oops", vec![]),
            1 => Reply::Raw(502, "bad gateway", vec![]),
            2 => Reply::Raw(503, "unavailable", vec![]),
            3 => v1_error(504, "gateway timeout"),
            _ => ok_data(json!([{"id": 7}])),
        }
    })
    .await;
    let client = fake.client();
    let start = Instant::now();
    let body = client.get_v1_json("company/time-offs", &[]).await.unwrap();
    assert_eq!(body["data"][0]["id"], 7);
    assert_eq!(fake.requests_to("/v1/company/time-offs").len(), 5);
    // Exponential waits from 10 ms: 10 + 20 + 40 + 80 = 150 ms at least.
    assert!(start.elapsed() >= Duration::from_millis(150), "{:?}", start.elapsed());
    let stats = client.stats();
    assert_eq!(stats.retries, 4);
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.rate_limited, 0);
}

#[tokio::test]
async fn exhausted_retries_return_typed_error_with_attempts() {
    let fake = Fake::start(|req, _| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        v1_error(503, "Service Unavailable")
    })
    .await;
    let mut cfg = fake.config();
    cfg.max_attempts = 3;
    let client = PersonioClient::new(cfg).unwrap();
    let err = client.get_v1_json("company/time-offs", &params(&[("limit", "5")])).await.unwrap_err();
    match &err {
        ClientError::Http { status: 503, attempts: 3, message, url } => {
            assert_eq!(message.as_deref(), Some("Service Unavailable"));
            assert!(url.ends_with("/v1/company/time-offs?limit=5"), "{url}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(fake.requests_to("/v1/company/time-offs").len(), 3);
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let fake = Fake::start(|req, n| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        if n == 0 {
            Reply::JsonWith(
                429,
                json!({"success": false, "error": {"code": 429, "message": "Too Many Requests"}}),
                vec![("retry-after", "1".into())],
            )
        } else {
            ok_data(json!([]))
        }
    })
    .await;
    let client = fake.client();
    let start = Instant::now();
    client.get_v1_json("company/employees", &[]).await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());
    let reqs = fake.requests_to("/v1/company/employees");
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].at - reqs[0].at >= Duration::from_secs(1));
    assert_eq!(client.stats().rate_limited, 1);
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let fake = Fake::start(|req, n| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        if n == 0 {
            let when = (chrono::Utc::now() + chrono::Duration::seconds(2)).format("%a, %d %b %Y %H:%M:%S GMT");
            Reply::Raw(503, "later", vec![("retry-after", when.to_string())])
        } else {
            ok_data(json!([]))
        }
    })
    .await;
    let start = Instant::now();
    fake.client().get_v1_json("company/time-offs", &[]).await.unwrap();
    // The date has 1 s resolution: at least ~1 s of the 2 s remain.
    assert!(start.elapsed() >= Duration::from_millis(1000), "{:?}", start.elapsed());
}

#[tokio::test]
async fn retry_after_zero_does_not_hammer() {
    let fake = Fake::start(|req, n| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        if n < 3 {
            Reply::Raw(429, "Too Many Attempts.", vec![("retry-after", "0".into())])
        } else {
            ok_data(json!([]))
        }
    })
    .await;
    let mut cfg = fake.config();
    cfg.retry_after_floor = Duration::from_millis(100);
    let client = PersonioClient::new(cfg).unwrap();
    let start = Instant::now();
    client.get_v1_json("company/employees", &[]).await.unwrap();
    // Floor doubles per retry: 100 + 200 + 400 ms.
    assert!(start.elapsed() >= Duration::from_millis(700), "{:?}", start.elapsed());
    let reqs = fake.requests_to("/v1/company/employees");
    assert_eq!(reqs.len(), 4);
    let gaps: Vec<Duration> = reqs.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(200), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(400), "{gaps:?}");
    assert_eq!(client.stats().rate_limited, 3);
}

#[tokio::test]
async fn retry_after_is_clamped_to_max_retry_delay() {
    let fake = Fake::start(|req, n| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        if n == 0 {
            Reply::Raw(429, "", vec![("retry-after", "3600".into())])
        } else {
            ok_data(json!([]))
        }
    })
    .await;
    let mut cfg = fake.config();
    cfg.max_retry_delay = Duration::from_millis(300);
    let client = PersonioClient::new(cfg).unwrap();
    let start = Instant::now();
    client.get_v1_json("company/employees", &[]).await.unwrap();
    let el = start.elapsed();
    assert!(el >= Duration::from_millis(300) && el < Duration::from_secs(3), "{el:?}");
}

#[tokio::test]
async fn non_retryable_statuses_fail_immediately() {
    for (status, msg) in [(400, "The limit must be between 1 and 100."), (404, "Es ist ein Problem aufgetreten"), (422, "bad")] {
        let fake = Fake::start(move |req, _| {
            if !data_path(req) {
                return auth_ok("papi-t");
            }
            v1_error(status, msg)
        })
        .await;
        let client = fake.client();
        let err = client.get_v1_json("company/employees/99/absences/balance", &[]).await.unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.attempts(), Some(1));
        assert_eq!(err.personio_message(), Some(msg));
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(msg));
        assert_eq!(fake.requests_to("/v1/company/employees/99/absences/balance").len(), 1);
        assert_eq!(client.stats().retries, 0);
    }
}

#[tokio::test]
async fn custom_report_error_shape_is_parsed() {
    let fake = Fake::start(|req, _| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        Reply::Json(404, json!([{"status": 404, "errors": [{"title": "Not Found", "details": "Report not found"}]}]))
    })
    .await;
    let err = fake.client().get_v1_json("company/custom-reports/reports/abc", &[]).await.unwrap_err();
    assert_eq!(err.personio_message(), Some("Not Found: Report not found"));
}

#[tokio::test]
async fn truncated_and_invalid_json_bodies_are_retried() {
    let fake = Fake::start(|req, n| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        match n {
            0 => Reply::Raw(200, r#"{"success":true,"data":[{"id":1},"#, vec![]),
            1 => Reply::Raw(200, "<html>maintenance</html>", vec![]),
            2 => Reply::BrokenBody,
            _ => ok_data(json!([{"id": 1}, {"id": 2}])),
        }
    })
    .await;
    let client = fake.client();
    let body = client.get_v1_json("company/time-offs", &[]).await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(fake.requests_to("/v1/company/time-offs").len(), 4);
    assert_eq!(client.stats().retries, 3);
}

#[tokio::test]
async fn invalid_json_after_all_attempts_is_typed() {
    let fake = Fake::start(|req, _| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        Reply::Raw(200, r#"{"success":tr"#, vec![])
    })
    .await;
    let mut cfg = fake.config();
    cfg.max_attempts = 2;
    let err = PersonioClient::new(cfg).unwrap().get_v1_json("company/time-offs", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidJson { attempts: 2, .. }), "{err:?}");
    assert_eq!(fake.requests_to("/v1/company/time-offs").len(), 2);
}

#[tokio::test]
async fn connection_resets_are_retried() {
    let (addr, connections) = raw_server(vec![
        Some(r#"{"success":true,"data":{"token":"papi-raw"}}"#),
        None,
        None,
        Some(r#"{"success":true,"data":[{"id":3}]}"#),
    ])
    .await;
    let mut cfg = Fake::config_for(&format!("http://{addr}"));
    cfg.max_attempts = 5;
    let client = PersonioClient::new(cfg).unwrap();
    let body = client.get_v1_json("company/document-categories", &[]).await.unwrap();
    assert_eq!(body["data"][0]["id"], 3);
    assert_eq!(*connections.lock().unwrap(), 4);
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut cfg = Fake::config_for(&format!("http://{addr}"));
    cfg.max_attempts = 2;
    let client = PersonioClient::new(cfg).unwrap();
    let err = client.authenticate().await.unwrap_err();
    assert!(matches!(&err, ClientError::Auth { status: None, attempts: 2, .. }), "{err:?}");
    assert_eq!(client.stats().requests, 2);
}

#[tokio::test]
async fn timeouts_are_retried() {
    let fake = Fake::start(|req, n| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        if n == 0 {
            Reply::Delay(Duration::from_millis(1500), Box::new(ok_data(json!([{"late": true}]))))
        } else {
            ok_data(json!([{"id": 1}]))
        }
    })
    .await;
    let mut cfg = fake.config();
    cfg.request_timeout = Duration::from_millis(300);
    let client = PersonioClient::new(cfg).unwrap();
    let body = client.get_v1_json("company/time-offs", &[]).await.unwrap();
    assert_eq!(body["data"][0]["id"], 1);
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn envelope_success_false_and_missing_data_are_errors() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-t"),
        "/v1/company/a" => Reply::Json(200, json!({"success": false, "error": {"code": 0, "message": "Something went wrong"}})),
        "/v1/company/b" => Reply::Json(200, json!({"success": true})),
        _ => Reply::Json(200, json!({"success": true, "data": []})),
    })
    .await;
    let client = fake.client();
    let a = client.get_v1_json("company/a", &[]).await.unwrap_err();
    assert!(matches!(&a, ClientError::Envelope { message, .. } if message == "Something went wrong"), "{a:?}");
    let b = client.get_v1_json("company/b", &[]).await.unwrap_err();
    assert!(matches!(&b, ClientError::Envelope { message, .. } if message.contains("no `data`")), "{b:?}");
    assert!(client.get_v1_json("company/c", &[]).await.is_ok());
    // Not retried.
    assert_eq!(fake.requests_to("/v1/company/a").len(), 1);
}

#[tokio::test]
async fn gzip_bodies_are_decoded_and_bytes_counted() {
    let fake = Fake::start(|req, _| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        Reply::Gzip(json!({"success": true, "data": [{"id": 42, "name": "x".repeat(1000)}]}))
    })
    .await;
    let client = fake.client();
    let before = client.stats().bytes_received;
    let body = client.get_v1_json("company/document-categories", &[]).await.unwrap();
    assert_eq!(body["data"][0]["id"], 42);
    assert!(client.stats().bytes_received - before > 1000);
}

#[tokio::test]
async fn employees_pacing_limits_rate_and_is_shared_by_clones() {
    let fake = Fake::start(|req, _| {
        if !data_path(req) {
            return auth_ok("papi-t");
        }
        ok_data(json!([]))
    })
    .await;
    let mut cfg = fake.config();
    // 600/min = one every 100 ms, burst 2.
    cfg.pacing = PacingConfig { enabled: true, employees_per_min: 600, employees_burst_per_sec: 2, global_per_min: 60_000, auth_per_min: 600, ..PacingConfig::default() };
    let client = PersonioClient::new(cfg).unwrap();
    client.authenticate().await.unwrap();

    // Other paths are not held back by the employees bucket.
    let start = Instant::now();
    // (20 calls through the employees bucket would take at least 1.8 s.)
    for _ in 0..20 {
        client.get_v1_json("company/time-offs", &[]).await.unwrap();
    }
    assert!(start.elapsed() < Duration::from_millis(1500), "{:?}", start.elapsed());

    // 8 employees calls from two clones concurrently: 2 at once, then 6 × 100 ms.
    let start = Instant::now();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for i in 0..4 {
                    let path = if i % 2 == 0 { "company/employees".to_string() } else { format!("company/employees/{i}/absences/balance") };
                    c.get_v1_json(&path, &[]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(start.elapsed() >= Duration::from_millis(580), "{:?}", start.elapsed());
    let times: Vec<Instant> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/company/employees"))
        .map(|r| r.at)
        .collect();
    assert_eq!(times.len(), 8);
    // No more than 2 + 1 requests inside any 100 ms window.
    for (i, t) in times.iter().enumerate() {
        let within = times[i..].iter().filter(|u| **u - *t < Duration::from_millis(95)).count();
        assert!(within <= 3, "burst too large at {i}: {within}");
    }
}

#[tokio::test]
async fn auth_pacing_spaces_token_requests() {
    // Personio hands out the same token for the same credentials: one re-authentication per refusal.
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-same"),
        _ => v1_error(401, "Authorization is not provided"),
    })
    .await;
    let mut cfg = fake.config();
    // 300/min = one token request per 200 ms.
    cfg.pacing = PacingConfig { enabled: true, employees_per_min: 6000, employees_burst_per_sec: 100, global_per_min: 60_000, auth_per_min: 300, ..PacingConfig::default() };
    let client = PersonioClient::new(cfg).unwrap();
    let start = Instant::now();
    // Each call: auth (or cached), 401, re-auth while the token server hands out new tokens (up to
    // max_attempts − 1 times, see tests_auth), 401 → error. Every token request is ≥ 200 ms after the last.
    for _ in 0..2 {
        assert_eq!(client.get_v1_json("company/time-offs", &[]).await.unwrap_err().status(), Some(401));
    }
    let auths = fake.requests_to("/v1/auth");
    assert!(auths.len() >= 3, "{}", auths.len());
    // (Arrival times jitter on a loaded machine: each gap loosely, the whole span strictly.)
    for pair in auths.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(120), "{:?}", pair[1].at - pair[0].at);
    }
    let span = auths[auths.len() - 1].at - auths[0].at;
    assert!(span >= Duration::from_millis(190) * (auths.len() as u32 - 1), "{span:?} for {}", auths.len());
    assert!(start.elapsed() >= Duration::from_millis(380));
}
