//! Authentication: body shape, caching, refresh, single flight, re-auth, header adoption, v2 token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use personio_client::{ClientError, PersonioClient};
use serde_json::{json, Value};

use crate::fake::*;

#[tokio::test]
async fn auth_sends_json_body_and_data_calls_send_bearer_and_app_headers() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-token-1"),
        _ => ok_data(json!([])),
    })
    .await;
    let mut cfg = fake.config();
    cfg.app_id = Some("MY_APP".into());
    cfg.partner_id = Some("MY_PARTNER".into());
    let client = PersonioClient::new(cfg).unwrap();
    client.authenticate().await.unwrap();
    client.get_v1_json("company/document-categories", &[]).await.unwrap();
    client.get_v1_json("company/document-categories", &[]).await.unwrap();

    let auth = fake.requests_to("/v1/auth");
    assert_eq!(auth.len(), 1, "the token is reused");
    assert_eq!(auth[0].method, "POST");
    assert_eq!(auth[0].query, "", "no credentials in the query string");
    assert!(auth[0].header("content-type").unwrap().starts_with("application/json"));
    assert!(auth[0].header("authorization").is_none());
    let body: Value = serde_json::from_str(&auth[0].body).unwrap();
    assert_eq!(body, json!({"client_id": "papi-client-id", "client_secret": "papi-super-secret-value"}));

    let data = fake.requests_to("/v1/company/document-categories");
    assert_eq!(data.len(), 2);
    for r in &data {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("authorization").unwrap(), "Bearer papi-token-1");
        assert_eq!(r.header("accept").unwrap(), "application/json");
        assert_eq!(r.header("x-personio-app-id").unwrap(), "MY_APP");
        assert_eq!(r.header("x-personio-partner-id").unwrap(), "MY_PARTNER");
        assert!(r.header("user-agent").unwrap().starts_with("personio-pipeline/"));
        assert!(r.header("accept-encoding").unwrap().contains("gzip"));
    }
    let stats = client.stats();
    assert_eq!(stats.auth_requests, 1);
    assert_eq!(stats.requests, 3);
}

#[tokio::test]
async fn bad_credentials_fail_fast_with_actionable_error_and_no_secret() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => Reply::Json(401, json!({"success": false, "error": {"code": 0, "message": "Wrong credentials"}})),
        _ => ok_data(json!([])),
    })
    .await;
    let client = fake.client();
    let err = client.authenticate().await.unwrap_err();
    assert!(matches!(err, ClientError::Auth { status: Some(401), .. }), "{err:?}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("Wrong credentials"), "{text}");
    assert!(text.contains(".dlt/secrets.toml (sources.personio)"), "{text}");
    assert!(!text.contains("super-secret") && !format!("{err:?}").contains("super-secret"));
    assert_eq!(fake.requests().len(), 1, "401 on auth is not retried");
    // A data call fails the same way, without reaching the data endpoint.
    assert!(matches!(client.get_v1_json("company/time-off-types", &[]).await, Err(ClientError::Auth { .. })));
    assert!(fake.requests_to("/v1/company/time-off-types").is_empty());
}

#[tokio::test]
async fn success_false_on_auth_is_an_auth_error() {
    let fake = Fake::start(|_, _| Reply::Json(200, json!({"success": false, "error": {"message": "nope"}}))).await;
    let err = fake.client().authenticate().await.unwrap_err();
    assert!(matches!(&err, ClientError::Auth { message, .. } if message == "nope"), "{err:?}");
}

#[tokio::test]
async fn token_is_refreshed_before_expiry() {
    // expires_in = 2 s → refreshed after half its life (margin = min(5 min, lifetime / 2)).
    let fake = Fake::start(|req, n| match req.path.as_str() {
        "/v1/auth" => auth_ok_expiring(&format!("papi-t{n}"), 2),
        _ => ok_data(json!([])),
    })
    .await;
    let client = fake.client();
    client.get_v1_json("company/document-categories", &[]).await.unwrap();
    client.get_v1_json("company/document-categories", &[]).await.unwrap();
    assert_eq!(fake.requests_to("/v1/auth").len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.get_v1_json("company/document-categories", &[]).await.unwrap();
    assert_eq!(fake.requests_to("/v1/auth").len(), 2, "refreshed before expiry");
    let tokens: Vec<String> = fake
        .requests_to("/v1/company/document-categories")
        .iter()
        .map(|r| r.header("authorization").unwrap())
        .collect();
    assert_eq!(tokens, ["Bearer papi-t0", "Bearer papi-t0", "Bearer papi-t1"]);
}

#[tokio::test]
async fn concurrent_callers_share_one_auth_request() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => Reply::Delay(Duration::from_millis(200), Box::new(auth_ok("papi-shared"))),
        _ => ok_data(json!([])),
    })
    .await;
    let client = fake.client();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get_v1_json("company/time-off-types", &[]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.requests_to("/v1/auth").len(), 1);
    assert_eq!(fake.requests_to("/v1/company/time-off-types").len(), 12);
    assert_eq!(client.stats().auth_requests, 1);
}

#[tokio::test]
async fn reauthenticates_once_on_401_then_succeeds() {
    let fake = Fake::start(|req, n| match req.path.as_str() {
        "/v1/auth" => auth_ok(&format!("papi-t{n}")),
        _ if n == 0 => v1_error(401, "Authorization is not provided"),
        _ => ok_data(json!([{"id": 1}])),
    })
    .await;
    let client = fake.client();
    let body = client.get_v1_json("company/document-categories", &[]).await.unwrap();
    assert_eq!(body["data"][0]["id"], 1);
    let data = fake.requests_to("/v1/company/document-categories");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0].header("authorization").unwrap(), "Bearer papi-t0");
    assert_eq!(data[1].header("authorization").unwrap(), "Bearer papi-t1");
    assert_eq!(fake.requests_to("/v1/auth").len(), 2);
    assert_eq!(client.stats().reauths, 1);
}

/// Personio hands out the same token for the same credentials for 24 h: a 403 that survives a
/// re-authentication yielding the same token is about the credential (a missing scope). It fails
/// after one auth request, without re-sending the refused token.
#[tokio::test]
async fn persistent_403_with_the_same_token_fails_after_one_reauth() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-same"),
        _ => v1_error(403, "Provided authorization is not valid"),
    })
    .await;
    let client = fake.client();
    let err = client.get_v1_json("company/employees", &[]).await.unwrap_err();
    match &err {
        ClientError::Http { status: 403, message, attempts: 1, url } => {
            assert_eq!(message.as_deref(), Some("Provided authorization is not valid"));
            assert!(url.ends_with("/v1/company/employees"), "{url}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.to_string().contains("papi-"), "no token in errors: {err}");
    assert_eq!(fake.requests_to("/v1/company/employees").len(), 1);
    assert_eq!(fake.requests_to("/v1/auth").len(), 2);
    assert_eq!(client.stats().reauths, 1);
}

/// A server that refuses every token it issues (new ones included) costs at most the request's
/// attempt budget (`max_attempts`, 5), never a loop.
#[tokio::test]
async fn a_403_for_every_new_token_stops_at_the_attempt_budget() {
    let fake = Fake::start(|req, n| match req.path.as_str() {
        "/v1/auth" => auth_ok(&format!("papi-t{n}")),
        _ => v1_error(403, "Provided authorization is not valid"),
    })
    .await;
    let client = fake.client();
    let err = client.get_v1_json("company/employees", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Http { status: 403, .. }), "{err:?}");
    let budget = fake.config().max_attempts as usize;
    assert_eq!(fake.requests_to("/v1/company/employees").len(), budget);
    assert_eq!(fake.requests_to("/v1/auth").len(), budget);
}

/// Found by the slow fault profile: the token is revoked again right after the client re-authenticated
/// (two revocations hit the same request). Each new token is tried; the request succeeds.
#[tokio::test]
async fn a_token_revoked_twice_in_a_row_is_replaced_twice() {
    let fake = Fake::start(|req, n| match req.path.as_str() {
        "/v1/auth" => auth_ok(&format!("papi-t{n}")),
        _ if n < 2 => v1_error(403, "Provided authorization is not valid"),
        _ => ok_data(json!([{"id": 7}])),
    })
    .await;
    let client = fake.client();
    let body = client.get_v1_json("company/document-categories", &[]).await.unwrap();
    assert_eq!(body["data"][0]["id"], 7);
    let data = fake.requests_to("/v1/company/document-categories");
    let sent: Vec<String> = data.iter().filter_map(|r| r.header("authorization")).collect();
    assert_eq!(sent, ["Bearer papi-t0", "Bearer papi-t1", "Bearer papi-t2"]);
    assert_eq!(client.stats().reauths, 2);
}

#[tokio::test]
async fn adopts_token_from_authorization_response_header() {
    let fake = Fake::start(|req, n| match req.path.as_str() {
        "/v1/auth" => auth_ok("papi-initial"),
        _ => Reply::JsonWith(
            200,
            json!({"success": true, "data": []}),
            vec![("authorization", format!("Bearer papi-rotated-{n}"))],
        ),
    })
    .await;
    let client = fake.client();
    for _ in 0..3 {
        client.get_v1_json("company/time-offs", &[]).await.unwrap();
    }
    let sent: Vec<String> =
        fake.requests_to("/v1/company/time-offs").iter().map(|r| r.header("authorization").unwrap()).collect();
    assert_eq!(sent, ["Bearer papi-initial", "Bearer papi-rotated-0", "Bearer papi-rotated-1"]);
    assert_eq!(fake.requests_to("/v1/auth").len(), 1);
    assert_eq!(client.stats().tokens_adopted, 3);
}

#[tokio::test]
async fn v2_token_is_form_encoded_client_credentials_and_cached() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/v2/auth/token" => Reply::Json(
            200,
            json!({"access_token": "papi-v2", "token_type": "Bearer", "expires_in": 86400, "scope": "x"}),
        ),
        _ => Reply::Json(200, json!({"_data": [{"id": "1"}], "_meta": {"links": {}}})),
    })
    .await;
    let mut cfg = fake.config();
    cfg.app_id = Some("MY_APP".into());
    let client = PersonioClient::new(cfg).unwrap();
    client.authenticate_v2().await.unwrap();
    let body = client.get_v2_json("persons", &params(&[("limit", "1")])).await.unwrap();
    assert_eq!(body["_data"][0]["id"], "1");
    client.get_v2_json("persons", &[]).await.unwrap();

    let auth = fake.requests_to("/v2/auth/token");
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].header("content-type").unwrap(), "application/x-www-form-urlencoded");
    let form = query_pairs(&auth[0].body);
    assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
    assert!(form.contains(&("client_id".into(), "papi-client-id".into())));
    assert!(form.contains(&("client_secret".into(), "papi-super-secret-value".into())));
    let persons = fake.requests_to("/v2/persons");
    assert_eq!(persons[0].query, "limit=1");
    assert_eq!(persons[0].header("authorization").unwrap(), "Bearer papi-v2");
    assert_eq!(persons[0].header("personio-app-id").unwrap(), "MY_APP");
    assert!(fake.requests_to("/v1/auth").is_empty(), "v2 does not use the v1 token");
}

#[tokio::test]
async fn v2_oauth_error_is_reported() {
    let fake = Fake::start(|_, _| {
        Reply::Json(401, json!({"error": "invalid_client", "error_description": "Client authentication failed"}))
    })
    .await;
    let err = fake.client().authenticate_v2().await.unwrap_err();
    assert!(err.to_string().contains("invalid_client: Client authentication failed"), "{err}");
}

#[tokio::test]
async fn auth_is_retried_on_server_errors() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let fake = Fake::start(move |req, n| match req.path.as_str() {
        "/v1/auth" if n < 2 => {
            c.fetch_add(1, Ordering::SeqCst);
            Reply::Raw(502, "bad gateway", vec![])
        }
        "/v1/auth" => auth_ok("papi-late"),
        _ => ok_data(json!([])),
    })
    .await;
    fake.client().authenticate().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(fake.requests_to("/v1/auth").len(), 3);
}
