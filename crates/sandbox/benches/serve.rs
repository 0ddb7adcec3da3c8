//! Serving-rate benchmark: records per second of every list endpoint over loopback.
//!
//! `cargo bench -p personio-sandbox` (release; `SANDBOX_BENCH_PRESET=large` for the large company,
//! `SANDBOX_BENCH_SECS` per endpoint, default 4). v2 records are rendered first (`SandboxHandle::warm`, timed
//! separately), so the table is the steady serving rate. Plain timing, no harness.

use std::time::{Duration, Instant};

use personio_sandbox::{Preset, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::{json, Value};

const CLIENTS: usize = 4;

/// How an endpoint pages.
#[derive(Clone, Copy)]
enum Paging {
    /// v1 record offset.
    Offset,
    /// v1 1-based page number in `offset`.
    Page,
    /// v2 cursor: follow `next`.
    Cursor,
}

/// Pages through `path` with `CLIENTS` concurrent clients for `run`; returns (records/s, MB/s, first-page ms).
async fn measure(base: &str, token: &str, path: &str, paging: Paging, limit: usize, total: usize, run: Duration) -> (f64, f64) {
    let pages = total.div_ceil(limit).max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (base, token, path) = (base.to_string(), token.to_string(), path.to_string());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().expect("client");
            let sep = if path.contains('?') { '&' } else { '?' };
            let first = format!("{base}{path}{sep}limit={limit}");
            let (mut records, mut bytes, mut i) = (0usize, 0usize, c);
            let mut next: Option<String> = None;
            while start.elapsed() < run {
                let url = match paging {
                    Paging::Offset => format!("{first}&offset={}", (i % pages) * limit),
                    Paging::Page => format!("{first}&offset={}", i % pages + 1),
                    Paging::Cursor => next.take().unwrap_or_else(|| first.clone()),
                };
                let n = i % pages;
                i += 1;
                let body = http.get(&url).bearer_auth(&token).send().await.expect("send").bytes().await.expect("body");
                bytes += body.len();
                match paging {
                    // Count without parsing (the clients share the CPU with the server): a full page unless last.
                    Paging::Offset | Paging::Page => {
                        assert!(body.starts_with(b"{\"success\":true"), "unexpected body");
                        records += limit.min(total.saturating_sub(n * limit));
                    }
                    Paging::Cursor => {
                        let tail = &body[body.len().saturating_sub(600)..];
                        let pos = tail.windows(9).position(|w| w == b"\"next\":{\"");
                        if let Some(p) = pos {
                            let rest = &tail[p + 16..];
                            let end = rest.iter().position(|b| *b == b'"').unwrap_or(0);
                            next = Some(String::from_utf8_lossy(&rest[..end]).into_owned());
                            records += limit;
                        } else {
                            let v: Value = serde_json::from_slice(&body).expect("json");
                            records += v["_data"].as_array().map(Vec::len).unwrap_or(0);
                        }
                    }
                }
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

/// Time of one first request (the selection of a new filter is built then).
async fn first_ms(base: &str, token: &str, path: &str) -> f64 {
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let t = Instant::now();
    let r = http.get(format!("{base}{path}")).bearer_auth(token).send().await.expect("send");
    assert_eq!(r.status(), 200, "{path}");
    let _ = r.bytes().await;
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let preset = match std::env::var("SANDBOX_BENCH_PRESET").as_deref() {
        Ok("large") => Preset::Large,
        _ => Preset::Medium,
    };
    let run = Duration::from_secs(std::env::var("SANDBOX_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(4));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let t0 = Instant::now();
        let sb = Sandbox::start(SandboxConfig::preset(preset, 42), "127.0.0.1:0").await.expect("start");
        let truth_sizes = sb.handle().with_company(|c| (c.employees.len(), c.absences.len(), c.attendances.len()));
        println!("{preset:?}: generated {} employees, {} absences, {} attendances in {:.2?}", truth_sizes.0, truth_sizes.1, truth_sizes.2, t0.elapsed());
        let t1 = Instant::now();
        let rendered = sb.handle().warm();
        let warm = t1.elapsed();
        println!("warm: {rendered} v2 records rendered in {warm:.2?} ({:.0} records/s on first rendering)", rendered as f64 / warm.as_secs_f64());
        let t = sb.handle().truth();
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
        let att = "/v1/company/attendances?start_date=2000-01-01&end_date=2030-01-01&includePending=true";
        let cases: Vec<(&str, String, Paging, usize, usize)> = vec![
            ("v1 employees", "/v1/company/employees".into(), Paging::Offset, 100, t.employees.len()),
            ("v1 time-offs", "/v1/company/time-offs".into(), Paging::Page, 200, t.absences.len()),
            ("v1 attendances", att.into(), Paging::Offset, 200, t.attendances.len()),
            ("v2 persons", "/v2/persons".into(), Paging::Cursor, 50, t.persons.len()),
            ("v2 absence-periods", "/v2/absence-periods".into(), Paging::Cursor, 100, t.absence_periods.len()),
            ("v2 attendance-periods", "/v2/attendance-periods".into(), Paging::Cursor, 100, t.attendance_periods.len()),
            ("v2 absence-types", "/v2/absence-types".into(), Paging::Cursor, 100, t.absence_types.len()),
            ("v2 projects", "/v2/projects".into(), Paging::Cursor, 100, t.projects_v2.len()),
        ];
        println!("| endpoint | limit | first page (ms) | records/s | MB/s |");
        println!("|---|---|---|---|---|");
        for (name, path, paging, limit, total) in cases {
            let sep = if path.contains('?') { '&' } else { '?' };
            let first = first_ms(&base, &token, &format!("{path}{sep}limit={limit}")).await;
            let (r, mb) = measure(&base, &token, &path, paging, limit, total, run).await;
            println!("| {name} | {limit} | {first:.1} | {r:.0} | {mb:.1} |");
        }
        // A filtered v2 listing: the first page builds the selection, later pages reuse it.
        let filtered = "/v2/attendance-periods?limit=100&updated_at.gte=2020-01-01T00:00:00&status=CONFIRMED";
        let f1 = first_ms(&base, &token, filtered).await;
        let f2 = first_ms(&base, &token, filtered).await;
        println!("filtered attendance-periods first page: {f1:.1} ms (selection built), again: {f2:.1} ms");
        sb.shutdown().await;
    });
}
