//! What `bench/` relies on: the 1 % mutation and the traffic figures (concurrency, timing).

use std::time::Duration;

use personio_sandbox::{Latency, Preset, SandboxConfig};
use serde_json::json;

use crate::common::{start, start_with};

#[tokio::test]
async fn mutate_changes_the_share_of_each_kind_and_incremental_filters_see_exactly_them() {
    let env = start(Preset::Small).await;
    let h = env.sb.handle();
    let before = h.truth();
    let sizes = h.with_company(|c| (c.employees.len(), c.absences.len(), c.attendances.len()));
    h.advance_clock(chrono::Duration::hours(1));
    let now_v1 = personio_sandbox::time::fmt_v1(h.now());
    let r = env.http.post(env.url("/_sandbox/mutate")).json(&json!({"share": 0.01})).send().await.expect("mutate");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    let expect = |n: usize| (n as f64 * 0.01).ceil() as u64;
    assert_eq!(v["employees"], expect(sizes.0));
    assert_eq!(v["absences"], expect(sizes.1));
    assert_eq!(v["attendances"], expect(sizes.2));
    let after = h.truth();
    let changed = after.employees.iter().zip(&before.employees).filter(|(a, b)| a != b).count() as u64;
    assert_eq!(changed, expect(before.employees.len()));
    let changed = after.attendances.iter().zip(&before.attendances).filter(|(a, b)| a != b).count() as u64;
    assert_eq!(changed, expect(before.attendances.len()));
    // The employees' incremental filter selects exactly the changed ones.
    let (s, body) = env.get(&format!("/v1/company/employees?limit=100&updated_since={}", &now_v1[..19])).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(expect(before.employees.len()) as usize));
    // Out of range: 400.
    let r = env.http.post(env.url("/_sandbox/mutate")).json(&json!({"share": 2})).send().await.expect("mutate");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn traffic_counts_concurrent_requests_and_resets_with_the_log() {
    let latency = Latency { mean_ms: 200, tail_ms: 0, tail_share: 0.0, seed: 1 };
    let env = start_with(SandboxConfig { latency, ..SandboxConfig::preset(Preset::Tiny, 1) }).await;
    let gets = (0..4).map(|_| env.get("/v1/company/document-categories"));
    let results = futures::future::join_all(gets).await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    let t = env.sb.handle().traffic();
    assert_eq!(t.in_flight, 0);
    assert!(t.max_in_flight >= 2, "{t:?}");
    assert!(t.last_unix_ms >= t.first_unix_ms + 50 && t.first_unix_ms > 0, "{t:?}");
    let (s, counts) = env.get("/_sandbox/requests/counts").await;
    assert_eq!(s, 200);
    assert_eq!(counts["by_status"]["200"], 4);
    assert_eq!(counts["traffic"]["max_in_flight"], t.max_in_flight);
    env.sb.handle().reset_request_log();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(env.sb.handle().traffic().max_in_flight, 0);
}
