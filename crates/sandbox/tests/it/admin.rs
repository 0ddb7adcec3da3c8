use personio_sandbox::Preset;
use serde_json::{json, Value};

use crate::common::start;

#[tokio::test]
async fn admin_http_api() {
    let env = start(Preset::Tiny).await;
    let c = &env.http;
    let v: Value = c.post(env.url("/_sandbox/clock/advance")).json(&json!({"hours": 20})).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["now"], "2026-11-24T04:00:00+00:00");
    let v: Value = c.post(env.url("/_sandbox/employees/update")).json(&json!({"count": 2})).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["ids"].as_array().unwrap().len(), 2);
    let v: Value = c.post(env.url("/_sandbox/absences")).json(&json!({"days": 2})).send().await.unwrap().json().await.unwrap();
    let abs = v["id"].as_i64().unwrap();
    assert_eq!(c.delete(env.url(&format!("/_sandbox/absences/{abs}"))).send().await.unwrap().status(), 200);
    assert_eq!(c.delete(env.url(&format!("/_sandbox/absences/{abs}"))).send().await.unwrap().status(), 404);
    let v: Value = c.post(env.url("/_sandbox/attributes")).json(&json!({"label": "Hobby", "type": "standard"})).send().await.unwrap().json().await.unwrap();
    assert!(v["key"].as_str().unwrap().starts_with("dynamic_"));
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 200);
    let v: Value = c.get(env.url("/_sandbox/requests/counts")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["total"], 1, "admin calls are not logged");
    assert_eq!(v["by_path"]["/v1/company/employees"], 1);
    let truth: Value = c.get(env.url("/_sandbox/truth")).send().await.unwrap().json().await.unwrap();
    assert_eq!(truth["employees"].as_array().unwrap().len(), 10);
    assert!(truth["employees"][0]["attributes"].to_string().contains("Hobby"));
    c.delete(env.url("/_sandbox/requests")).send().await.unwrap();
    assert!(env.sb.handle().request_log().is_empty());
    let r = c.put(env.url("/_sandbox/faults")).json(&json!({"at_requests": [[1, "status503"]]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 503);
    c.put(env.url("/_sandbox/options")).json(&json!({"v1_retired": true})).send().await.unwrap();
    let (s, _) = env.get("/v1/company/attendances/projects").await;
    assert_eq!(s, 410);
    c.post(env.url("/_sandbox/tokens/revoke")).send().await.unwrap();
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 403);
}
