//! Serving-rate benchmark: employee and attendance records per second over loopback.
//!
//! `cargo bench -p personio-sandbox` (release). Plain timing, no harness.

use std::time::{Duration, Instant};

use personio_sandbox::{Preset, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::{json, Value};

const CLIENTS: usize = 4;
const RUN: Duration = Duration::from_secs(5);

async fn measure(base: &str, token: &str, path: &str, limit: usize, total: usize) -> (f64, f64) {
    let pages = total.div_ceil(limit).max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let base = base.to_string();
        let token = token.to_string();
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().expect("client");
            let (mut records, mut bytes, mut i) = (0usize, 0usize, c);
            while start.elapsed() < RUN {
                let offset = (i % pages) * limit;
                i += 1;
                let url = format!("{base}{path}limit={limit}&offset={offset}");
                let body = http.get(&url).bearer_auth(&token).send().await.expect("send").bytes().await.expect("body");
                bytes += body.len();
                // Count without parsing (the clients share the CPU with the server): a full page unless last.
                assert!(body.starts_with(b"{\"success\":true"), "unexpected body");
                records += limit.min(total.saturating_sub(offset));
            }
            (records, bytes)
        }));
    }
    let (mut records, mut bytes) = (0, 0);
    for t in tasks {
        let (r, b) = t.await.expect("task");
        records += r;
        bytes += b;
    }
    let secs = start.elapsed().as_secs_f64();
    (records as f64 / secs, bytes as f64 / secs / 1e6)
}

fn main() {
    let preset = match std::env::var("SANDBOX_BENCH_PRESET").as_deref() {
        Ok("large") => Preset::Large,
        _ => Preset::Medium,
    };
    // One server worker thread plus client threads: the server side is what we measure.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let t0 = Instant::now();
        let sb = Sandbox::start(SandboxConfig::preset(preset, 42), "127.0.0.1:0").await.expect("start");
        let (emps, atts) = sb.handle().with_company(|c| (c.employees.len(), c.attendances.len()));
        println!("{preset:?}: generated {emps} employees, {atts} attendances in {:.2?}", t0.elapsed());
        let base = sb.base_url();
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let v: Value = http
            .post(format!("{base}/v1/auth"))
            .json(&json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}))
            .send()
            .await
            .expect("auth")
            .json()
            .await
            .expect("json");
        let token = v["data"]["token"].as_str().expect("token").to_string();
        let (r, mb) = measure(&base, &token, "/v1/company/employees?", 100, emps).await;
        println!("employees   (limit 100, {CLIENTS} clients): {r:>10.0} records/s, {mb:.1} MB/s");
        let att_path = "/v1/company/attendances?start_date=2000-01-01&end_date=2030-01-01&includePending=true&";
        let (r, mb) = measure(&base, &token, att_path, 200, atts).await;
        println!("attendances (limit 200, {CLIENTS} clients): {r:>10.0} records/s, {mb:.1} MB/s");
        sb.shutdown().await;
    });
}
