use personio_sandbox::{Preset, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::{json, Value};

use crate::common::{start, start_with};

#[tokio::test]
async fn json_form_and_query_credentials_give_the_same_stable_token() {
    let env = start(Preset::Tiny).await;
    let form = env
        .http
        .post(env.url("/v1/auth"))
        .form(&[("client_id", DEFAULT_CLIENT_ID), ("client_secret", DEFAULT_CLIENT_SECRET)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.headers().get("deprecation").is_none());
    let v: Value = form.json().await.unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(v["data"]["token"], env.token.as_str());
    assert!(env.token.starts_with("papi-"));
    assert_eq!(v["data"]["expires_in"], 86400);

    let q = env
        .http
        .post(env.url(&format!("/v1/auth?client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}")))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), 200);
    assert_eq!(q.headers()["deprecation"], "true");
    assert!(q.headers().get("warning").is_some());
    let v: Value = q.json().await.unwrap();
    assert_eq!(v["data"]["token"], env.token.as_str());
    // The secret is masked in the request log.
    let log = env.sb.handle().request_log();
    assert!(log.iter().all(|r| !r.query.contains(DEFAULT_CLIENT_SECRET)), "{log:?}");
}

#[tokio::test]
async fn query_credentials_rejected_when_configured() {
    let env = start_with(SandboxConfig { reject_query_auth: true, ..SandboxConfig::preset(Preset::Tiny, 1) }).await;
    let q = env
        .http
        .post(env.url(&format!("/v1/auth?client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}")))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), 403);
    let v: Value = q.json().await.unwrap();
    assert_eq!(v["success"], false);
    assert_eq!(v["error"]["code"], 403);
}

#[tokio::test]
async fn wrong_credentials_missing_and_bad_tokens() {
    let env = start(Preset::Tiny).await;
    let r = env.http.post(env.url("/v1/auth")).json(&json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": "nope"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"success": false, "error": {"code": 0, "message": "Wrong credentials"}}));

    let r = env.http.get(env.url("/v1/company/employees")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("authorization").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Authorization is not provided");

    let r = env.http.get(env.url("/v1/company/employees")).bearer_auth("papi-forged").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"success": false, "error": {"message": "Provided authorization is not valid", "code": 403}}));

    let r = env.get_raw("/v1/company/employees").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["authorization"], format!("Bearer {}", env.token).as_str());
}

#[tokio::test]
async fn token_expires_with_the_fake_clock_and_a_new_one_is_issued() {
    let env = start(Preset::Tiny).await;
    env.sb.handle().advance_clock(chrono::Duration::seconds(86_400));
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 403);
    let r = env.http.post(env.url("/v1/auth")).json(&json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET})).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    let t2 = v["data"]["token"].as_str().unwrap();
    assert_ne!(t2, env.token);
    let r = env.http.get(env.url("/v1/company/employees")).bearer_auth(t2).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn v2_oauth_errors() {
    let env = start(Preset::Tiny).await;
    let post = |body: Vec<(&'static str, &'static str)>| env.http.post(env.url("/v2/auth/token")).form(&body).send();
    let r = post(vec![("grant_type", "password"), ("client_id", DEFAULT_CLIENT_ID), ("client_secret", DEFAULT_CLIENT_SECRET)]).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");
    let r = post(vec![("grant_type", "client_credentials"), ("client_id", DEFAULT_CLIENT_ID), ("client_secret", "x")]).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized_client");
    let t = env.v2_token().await;
    assert_eq!(t, env.token, "v1 and v2 share the stable credential token");
    let r = env.http.get(env.url("/v2/persons")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["personio_trace_id"].is_string() && v["errors"][0]["title"].is_string() && v["errors"][0]["_meta"].is_object());
}
