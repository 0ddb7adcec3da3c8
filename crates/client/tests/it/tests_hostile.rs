//! Hostile servers and numbers: redirects with credentials, oversized bodies, paging that makes no
//! progress, absurd `expires_in`, out-of-range configuration (issue 9, defects 7 and 8).

use std::time::Duration;

use futures::TryStreamExt;
use personio_client::{ClientConfig, ClientError, Page, PagingMode, PersonioClient};
use serde_json::{json, Value};

use crate::fake::*;

/// Collects a page stream, failing the test if it does not end within 10 s (a paging loop).
async fn collect_bounded(stream: personio_client::PageStream) -> Result<Vec<Page>, ClientError> {
    match tokio::time::timeout(Duration::from_secs(10), stream.try_collect()).await {
        Ok(r) => r,
        Err(_) => panic!("the page stream did not end within 10 s: it loops"),
    }
}

/// A server that records whatever it receives and answers a valid token: the "other host".
async fn catcher() -> Fake {
    Fake::start(|req, _| match req.path.as_str() {
        "/v2/auth/token" => Reply::Json(200, json!({"access_token": "stolen", "expires_in": 86400})),
        _ => auth_ok("stolen"),
    })
    .await
}

#[tokio::test]
async fn auth_redirect_is_refused_and_the_secret_is_not_resent() {
    for status in [307u16, 308, 301, 302] {
        let other = catcher().await;
        let target = format!("{}/v1/auth", other.base());
        let fake = Fake::start(move |_, _| Reply::Raw(status, "", vec![("location", target.clone())])).await;
        let err = fake.client().authenticate().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClientError::Auth { .. }), "{status}: {err:?}");
        assert!(text.contains("redirect") && text.contains(&other.base()), "{status}: {text}");
        assert!(!text.contains("super-secret"), "{text}");
        assert!(other.requests().is_empty(), "{status}: the redirect target received {:?}", other.requests());
        assert_eq!(fake.requests().len(), 1, "{status}: a redirect is not retried");
    }
}

#[tokio::test]
async fn same_origin_auth_redirect_is_refused_too() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => Reply::Raw(308, "", vec![("location", "/v1/auth-moved".into())]),
        _ => auth_ok("papi-t"),
    })
    .await;
    let err = fake.client().authenticate().await.unwrap_err();
    assert!(err.to_string().contains("/v1/auth-moved"), "{err}");
    assert!(fake.requests_to("/v1/auth-moved").is_empty(), "the body must not be re-sent anywhere");
}

#[tokio::test]
async fn v2_token_redirect_is_refused() {
    let other = catcher().await;
    let target = format!("{}/v2/auth/token", other.base());
    let fake = Fake::start(move |_, _| Reply::Raw(307, "", vec![("location", target.clone())])).await;
    let err = fake.client().authenticate_v2().await.unwrap_err();
    assert!(matches!(err, ClientError::Auth { .. }), "{err:?}");
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn data_call_redirect_is_refused_without_sending_the_token() {
    let other = catcher().await;
    let target = format!("{}/v1/company/employees", other.base());
    let fake = Fake::start(move |req, _| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-t"),
        _ => Reply::Raw(302, "", vec![("location", target.clone())]),
    })
    .await;
    let err = fake.client().get_v1_json("company/employees", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Redirect { status: 302, .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("base_url"), "{err}");
    assert!(other.requests().is_empty());
}

fn big_page(n: usize) -> Value {
    let data: Vec<Value> = (0..n).map(|i| json!({"id": i, "note": "x".repeat(100)})).collect();
    json!({"success": true, "data": data})
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-t"),
        _ => Reply::Json(200, big_page(200)),
    })
    .await;
    let mut cfg = fake.config();
    cfg.max_body_bytes = 4096;
    let err = PersonioClient::new(cfg).unwrap().get_v1_json("company/employees", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::BodyTooLarge { limit: 4096, .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("max_body_bytes"), "{err}");
    assert_eq!(fake.requests_to("/v1/company/employees").len(), 1, "not retried");
    // Under the cap, the same body is fine.
    let mut cfg = fake.config();
    cfg.max_body_bytes = 1 << 20;
    let body = PersonioClient::new(cfg).unwrap().get_v1_json("company/employees", &[]).await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 200);
}

#[tokio::test]
async fn oversized_gzip_body_is_refused_after_decompression() {
    // ~2 MB of JSON compresses to a few KB: the cap applies to the decoded size.
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-t"),
        _ => Reply::Gzip(big_page(20_000)),
    })
    .await;
    let mut cfg = fake.config();
    cfg.max_body_bytes = 1 << 20;
    let err = PersonioClient::new(cfg).unwrap().get_v1_json("company/employees", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::BodyTooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn oversized_error_and_token_bodies_are_capped_too() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => Reply::Json(200, json!({"success": true, "data": {"token": "t".repeat(10_000)}})),
        _ => ok_data(json!([])),
    })
    .await;
    let mut cfg = fake.config();
    cfg.max_body_bytes = 4096;
    let err = PersonioClient::new(cfg).unwrap().authenticate().await.unwrap_err();
    assert!(matches!(err, ClientError::Auth { .. }) && err.to_string().contains("max_body_bytes"), "{err:?}");
}

#[test]
fn default_body_cap_is_64_mib() {
    assert_eq!(ClientConfig::new("a", "b").max_body_bytes, 64 * 1024 * 1024);
}

fn with_auth(f: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> impl Fn(&Req, usize) -> Reply + Send + Sync + 'static {
    move |req, n| if req.path == "/v1/auth" { auth_ok("papi-t") } else { f(req, n) }
}

#[tokio::test]
async fn v1_repeated_page_is_an_error_not_a_loop() {
    // The server ignores offset/page and always answers the first page of three.
    let fake = Fake::start(with_auth(|_, _| {
        Reply::Json(200, json!({"success": true, "metadata": {"total_elements": 6, "current_page": 0, "total_pages": 3},
                                "data": [{"id": 1}, {"id": 2}]}))
    }))
    .await;
    let err = collect_bounded(fake.client().v1_pages("company/employees", vec![], PagingMode::RecordOffset { limit: Some(2) }))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::PagingStalled { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("company/employees"), "{err}");
    assert_eq!(fake.requests_to("/v1/company/employees").len(), 2);
}

#[tokio::test]
async fn v1_page_cycle_is_an_error() {
    // Pages 0, 1, then page 0 again forever (metadata keeps claiming more pages).
    let fake = Fake::start(with_auth(|_, n| {
        let p = (n % 2) as i64;
        Reply::Json(200, json!({"success": true, "metadata": {"current_page": p, "total_pages": 9},
                                "data": [{"id": p}]}))
    }))
    .await;
    let err = collect_bounded(fake.client().v1_pages("company/time-offs", vec![], PagingMode::PageNumber { limit: Some(1) }))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::PagingStalled { .. }), "{err:?}");
    assert_eq!(fake.requests_to("/v1/company/time-offs").len(), 3);
}

#[tokio::test]
async fn v1_distinct_pages_with_stuck_metadata_still_page_to_the_end() {
    // dlt keeps paging while data is non-empty; only a repeated page is an error.
    let fake = Fake::start(with_auth(|req, _| {
        let offset: i64 = param(&req.query, "offset").unwrap().parse().unwrap();
        let data = if offset < 3 { json!([{"id": offset}]) } else { json!([]) };
        Reply::Json(200, json!({"success": true, "metadata": {"current_page": 0, "total_pages": 5}, "data": data}))
    }))
    .await;
    let pages = collect_bounded(fake.client().v1_pages("company/employees", vec![], PagingMode::RecordOffset { limit: Some(1) }))
        .await
        .unwrap();
    assert_eq!(pages.len(), 4);
}

#[tokio::test]
async fn v2_cycle_of_next_links_is_an_error() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v2/auth/token" => Reply::Json(200, json!({"access_token": "papi-v2", "expires_in": 86400})),
        _ => {
            let next = match param(&req.query, "cursor").as_deref() {
                None | Some("b") => "/v2/persons?cursor=a",
                _ => "/v2/persons?cursor=b",
            };
            Reply::Json(200, json!({"_data": [{"id": "1"}], "_meta": {"links": {"next": {"href": next}}}}))
        }
    })
    .await;
    let err = collect_bounded(fake.client().v2_pages("persons", vec![])).await.unwrap_err();
    assert!(matches!(err, ClientError::BadNextLink { .. }), "{err:?}");
    assert!(err.to_string().contains("cursor=a"), "{err}");
    assert_eq!(fake.queries("/v2/persons"), ["", "cursor=a", "cursor=b"]);
}

#[tokio::test]
async fn absurd_expires_in_values_do_not_panic() {
    for expires in [json!(1e300), json!(-5), json!(1.8e19), json!(u64::MAX), json!("1e300"), json!(null), json!(0), json!({"x": 1})] {
        let e = expires.clone();
        let fake = Fake::start(move |req, _| match req.path.as_str() {
            "/v1/auth" => Reply::Json(200, json!({"success": true, "data": {"token": "papi-t", "expires_in": e}})),
            _ => ok_data(json!([])),
        })
        .await;
        let client = fake.client();
        client.authenticate().await.unwrap_or_else(|e| panic!("{expires}: {e}"));
        client.get_v1_json("company/document-categories", &[]).await.unwrap();
        assert_eq!(fake.requests_to("/v1/auth").len(), 1, "{expires}: the token is cached");
    }
}

#[tokio::test]
async fn absurd_v2_expires_in_does_not_panic() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v2/auth/token" => Reply::Json(200, json!({"access_token": "papi-v2", "expires_in": 1e300})),
        _ => Reply::Json(200, json!({"_data": []})),
    })
    .await;
    fake.client().authenticate_v2().await.unwrap();
}

#[test]
fn out_of_range_config_numbers_are_clear_errors() {
    type Edit = fn(&mut ClientConfig);
    let cases: [(&str, Edit); 7] = [
        ("request_timeout", |c| c.request_timeout = Duration::MAX),
        ("request_timeout", |c| c.request_timeout = Duration::ZERO),
        ("request_backoff_factor", |c| c.backoff_factor = Duration::MAX),
        ("request_max_retry_delay", |c| c.max_retry_delay = Duration::from_secs(u64::MAX / 2)),
        ("request_max_attempts", |c| c.max_attempts = 0),
        ("request_max_attempts", |c| c.max_attempts = 1_000_000),
        ("max_body_bytes", |c| c.max_body_bytes = 0),
    ];
    for (name, edit) in cases {
        let mut cfg = ClientConfig::new("id", "papi-super-secret-value");
        edit(&mut cfg);
        let err = PersonioClient::new(cfg.clone()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClientError::Config(_)), "{name}: {err:?}");
        assert!(text.contains(name), "{name}: {text}");
        assert!(!text.contains("super-secret"), "{text}");
        assert!(cfg.validate().is_err());
    }
    assert!(ClientConfig::new("id", "s").validate().is_ok());
}

#[test]
fn seconds_from_config_are_validated() {
    let ok = ClientConfig::seconds("runtime.request_timeout", 2.5, ClientConfig::REQUEST_TIMEOUT_RANGE).unwrap();
    assert_eq!(ok, Duration::from_millis(2500));
    for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, 0.0] {
        let err = ClientConfig::seconds("runtime.request_timeout", bad, ClientConfig::REQUEST_TIMEOUT_RANGE).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("runtime.request_timeout") && text.contains("RUNTIME__REQUEST_TIMEOUT"), "{bad}: {text}");
    }
    assert_eq!(ClientConfig::seconds("runtime.request_backoff_factor", 0.0, ClientConfig::BACKOFF_RANGE).unwrap(), Duration::ZERO);
}

#[tokio::test]
async fn huge_backoff_settings_do_not_panic_when_retrying() {
    // The largest accepted settings, and a server that keeps failing: retries wait, never panic.
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-t"),
        _ => v1_error(503, "down"),
    })
    .await;
    let mut cfg = fake.config();
    cfg.backoff_factor = ClientConfig::BACKOFF_RANGE.1;
    cfg.max_retry_delay = ClientConfig::RETRY_DELAY_RANGE.1;
    cfg.max_attempts = 100;
    let client = PersonioClient::new(cfg).unwrap();
    let call = client.get_v1_json("company/employees", &[]);
    // The first retry waits backoff_factor (minutes): the call is still pending after a moment.
    assert!(tokio::time::timeout(Duration::from_millis(300), call).await.is_err());
    assert_eq!(fake.requests_to("/v1/company/employees").len(), 1);
}

#[test]
fn v1_pager_survives_extreme_metadata_numbers() {
    let url = url::Url::parse("http://127.0.0.1:1/v1/company/employees?offset=0&page=0").unwrap();
    for (current, total) in [(json!(0), json!(i64::MIN)), (json!(i64::MIN), json!(i64::MAX)), (json!(-1e300), json!(1e300)), (json!("0"), json!(u64::MAX))] {
        let mut pager = personio_client::V1Pager::new(PagingMode::RecordOffset { limit: Some(u32::MAX) }, Some(u32::MAX));
        let mut n = 0;
        while pager.next_request().is_some() && n < 5 {
            let body = json!({"success": true, "metadata": {"current_page": current, "total_pages": total}, "data": [{"id": n}]});
            if pager.on_response(body, &url).is_err() {
                break;
            }
            n += 1;
        }
    }
}

#[test]
fn v2_pager_is_usable_without_a_server() {
    let first = url::Url::parse("https://api.personio.de/v2/persons").unwrap();
    let mut pager = personio_client::V2Pager::new("https://api.personio.de", first).unwrap();
    let url = pager.next_request().unwrap();
    let body = json!({"_data": [{"id": "1"}], "_meta": {"links": {"next": {"href": "/v2/persons?cursor=x"}}}});
    pager.on_response(body, &url).unwrap();
    let url = pager.next_request().unwrap();
    assert_eq!(url.as_str(), "https://api.personio.de/v2/persons?cursor=x");
    let body = json!({"_data": [{"id": "2"}], "_meta": {"links": {"next": {"href": "https://api.personio.de/v2/persons"}}}});
    assert!(matches!(pager.on_response(body, &url), Err(ClientError::BadNextLink { .. })));
    assert!(pager.next_request().is_none());
}
