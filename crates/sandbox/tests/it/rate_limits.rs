use personio_sandbox::{Preset, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::{json, Value};

use crate::common::{start, start_with};

#[tokio::test]
async fn employees_burst_limit_answers_429() {
    let env = start_with(SandboxConfig { rate_limits: true, ..SandboxConfig::preset(Preset::Tiny, 1) }).await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..20 {
        let r = env.get_raw("/v1/company/employees?limit=1").await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 && limited.is_none() {
            let ra: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(ra >= 1);
            assert!(r.headers().get("x-ratelimit-remaining").is_some());
            limited = Some(r.json::<Value>().await.unwrap());
        }
    }
    // 15 per second: a slow machine may refill one or two tokens during the 20 requests.
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((15..=17).contains(&ok), "{statuses:?}");
    assert_eq!(limited.unwrap(), json!({"success": false, "error": {"code": 429, "message": "Too Many Requests"}}));
    // Other endpoints are only under the global limit.
    let (s, _) = env.get("/v1/company/document-categories").await;
    assert_eq!(s, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, _) = env.get("/v1/company/employees?limit=1").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn auth_limit_locks_out() {
    let env = start(Preset::Tiny).await;
    env.sb.handle().set_rate_limits(true);
    let mut codes = Vec::new();
    for _ in 0..62 {
        let r = env.http.post(env.url("/v1/auth")).json(&json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET})).send().await.unwrap();
        codes.push((r.status().as_u16(), r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string())));
    }
    assert!(codes[..60].iter().all(|(s, _)| *s == 200));
    assert_eq!(codes[60].0, 429);
    assert_eq!(codes[60].1.as_deref(), Some("60"));
    assert_eq!(codes[61].0, 429);
    env.sb.handle().set_rate_limits(false);
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 200);
}
