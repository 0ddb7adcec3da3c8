use std::time::Instant;

use personio_sandbox::{FaultConfig, FaultKind, Preset};
use serde_json::Value;

use crate::common::start;

#[tokio::test]
async fn status_faults_at_exact_request_numbers() {
    let env = start(Preset::Tiny).await;
    let h = env.sb.handle();
    h.set_faults(FaultConfig {
        at_requests: vec![
            (1, FaultKind::Status500),
            (2, FaultKind::Status502),
            (3, FaultKind::Status503),
            (4, FaultKind::Status504),
            (5, FaultKind::TooManyRequests),
        ],
        ..Default::default()
    });
    for want in [500u16, 502, 503, 504] {
        let (s, v) = env.get("/v1/company/employees").await;
        assert_eq!(s, want);
        assert_eq!(v["success"], false);
    }
    let r = env.get_raw("/v1/company/employees").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "0");
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 200);
    let log = h.request_log();
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), vec![500, 502, 503, 504, 429, 200]);
    assert_eq!(log[0].fault, Some(FaultKind::Status500));
}

#[tokio::test]
async fn connection_reset_truncated_and_slow() {
    let env = start(Preset::Tiny).await;
    let h = env.sb.handle();
    h.set_faults(FaultConfig {
        at_requests: vec![(1, FaultKind::ConnectionReset), (2, FaultKind::TruncatedBody), (3, FaultKind::Slow)],
        slow_ms: Some(400),
        ..Default::default()
    });
    let r = env.get_raw("/v1/company/employees").await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the connection must be dropped");
    let r = env.get_raw("/v1/company/employees").await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "truncated JSON must not parse");
    let t0 = Instant::now();
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 200);
    assert!(t0.elapsed().as_millis() >= 400);
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn token_revoked_mid_run() {
    let env = start(Preset::Tiny).await;
    env.sb.handle().set_faults(FaultConfig { at_requests: vec![(2, FaultKind::RevokeToken)], ..Default::default() });
    let (s, _) = env.get("/v1/company/employees?limit=5").await;
    assert_eq!(s, 200);
    let (s, _) = env.get("/v1/company/employees?limit=5&offset=5").await;
    assert_eq!(s, 403);
    let (s, _) = env.get("/v1/company/employees?limit=5&offset=5").await;
    assert_eq!(s, 403, "the old token stays revoked");
}

#[tokio::test]
async fn records_inserted_between_pages() {
    let env = start(Preset::Tiny).await;
    let before = env.sb.handle().truth().employees.len();
    env.sb.handle().set_faults(FaultConfig { at_requests: vec![(2, FaultKind::InsertRecords)], insert_count: Some(2), ..Default::default() });
    let (_, p1) = env.get("/v1/company/employees?limit=5").await;
    let (_, p2) = env.get("/v1/company/employees?limit=5&offset=5").await;
    assert_eq!(p1["metadata"]["total_elements"], before);
    assert_eq!(p2["metadata"]["total_elements"], before + 2);
}

#[tokio::test]
async fn probabilistic_faults_are_seeded() {
    async fn run() -> Vec<u16> {
        let env = start(Preset::Tiny).await;
        env.sb.handle().set_faults(FaultConfig { seed: 9, probability: 0.5, ..Default::default() });
        let mut out = Vec::new();
        for _ in 0..30 {
            out.push(env.get("/v1/company/employees").await.0);
        }
        out
    }
    let a = run().await;
    assert_eq!(a, run().await);
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500));
}
