//! Configured per-request latency (benchmarks on loopback).

use std::time::{Duration, Instant};

use personio_sandbox::{Latency, Preset, SandboxConfig};

use crate::common::start_with;

#[tokio::test]
async fn every_request_waits_the_configured_latency_and_the_tail_appears() {
    let latency = Latency { mean_ms: 60, tail_ms: 400, tail_share: 0.25, seed: 3 };
    let env = start_with(SandboxConfig { latency, ..SandboxConfig::preset(Preset::Tiny, 1) }).await;
    let mut times = Vec::new();
    for _ in 0..16 {
        let t = Instant::now();
        let (s, _) = env.get("/v1/company/document-categories").await;
        assert_eq!(s, 200);
        times.push(t.elapsed());
    }
    assert!(times.iter().all(|d| *d >= Duration::from_millis(30)), "{times:?}");
    let tail = times.iter().filter(|d| **d >= Duration::from_millis(400)).count();
    assert!((1..=10).contains(&tail), "some requests in the tail: {times:?}");
    // The admin side switches it off.
    env.sb.handle().set_latency(Latency::default());
    let t = Instant::now();
    let (s, _) = env.get("/v1/company/document-categories").await;
    assert_eq!(s, 200);
    assert!(t.elapsed() < Duration::from_millis(400));
}
