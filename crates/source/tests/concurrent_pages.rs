//! Concurrent v1 paging requests exactly the pages sequential paging requests, and yields them in the
//! same order with the same records.

use futures::TryStreamExt;
use personio_client::{ClientConfig, PacingConfig, PagingMode, PersonioClient};
use personio_sandbox::{Preset, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

fn client(base: String) -> PersonioClient {
    let mut c = ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(base);
    c.pacing = PacingConfig::disabled();
    PersonioClient::new(c).expect("client")
}

#[tokio::test]
async fn concurrent_pages_equal_sequential_pages() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Small, 3), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    let c = client(sandbox.base_url());
    c.authenticate().await.expect("auth");
    let cases = [
        ("company/employees", PagingMode::RecordOffset { limit: Some(7) }),
        ("company/time-offs", PagingMode::PageNumber { limit: Some(9) }),
        ("company/time-off-types", PagingMode::Single),
    ];
    for (path, mode) in cases {
        h.reset_request_log();
        let seq: Vec<_> = c.v1_pages(path, Vec::new(), mode).try_collect().await.expect("sequential");
        let seq_log: Vec<String> = h.request_log().iter().map(|r| format!("{}?{}", r.path, r.query)).collect();
        for concurrency in [2, 8] {
            h.reset_request_log();
            let conc: Vec<_> = c.v1_pages_concurrent(path, Vec::new(), mode, concurrency).try_collect().await.expect("concurrent");
            let mut conc_log: Vec<String> = h.request_log().iter().map(|r| format!("{}?{}", r.path, r.query)).collect();
            let mut want = seq_log.clone();
            conc_log.sort();
            want.sort();
            assert_eq!(conc_log, want, "{path} x{concurrency}: the same requests, none twice");
            assert_eq!(conc.len(), seq.len(), "{path} x{concurrency}");
            for (a, b) in seq.iter().zip(&conc) {
                assert_eq!((&a.url, a.index, &a.data), (&b.url, b.index, &b.data), "{path} x{concurrency}");
            }
        }
        assert!(seq.len() > 1 || mode == PagingMode::Single, "{path}: several pages expected");
    }
}

// ------------------------------------------------------------------ v2 listings split into windows

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use personio_client::{PartitionOptions, WindowSpec};
use personio_sandbox::{Latency, SandboxHandle};
use serde_json::Value;

const ATTENDANCE: WindowSpec =
    WindowSpec { lower: "start.date_time.gte", upper: "start.date_time.lte", strict: false, zoned: false, field: "/start/date_time" };
const ABSENCE: WindowSpec = WindowSpec {
    lower: "starts_from.date_time.gte",
    upper: "starts_from.date_time.lte",
    strict: false,
    zoned: false,
    field: "/starts_from/date_time",
};
const PERSONS: WindowSpec = WindowSpec { lower: "created_at.gt", upper: "created_at.lt", strict: true, zoned: true, field: "/created_at" };

fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| r.get("id").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn records(stream: personio_client::PageStream) -> Vec<Value> {
    let pages: Vec<_> = stream.try_collect().await.expect("listing");
    pages.into_iter().flat_map(|p| p.data).collect()
}

fn requests_to(h: &SandboxHandle, path: &str) -> usize {
    h.request_log().iter().filter(|r| r.path == path).count()
}

/// Split v2 listings return exactly the records of the one-chain listing (each once), the same ones in
/// the same order on every run, match the sandbox's truth, and cost few extra requests.
#[tokio::test]
async fn windowed_v2_listings_equal_the_single_chain() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Tiny, 5), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    let c = client(sandbox.base_url());
    let anchor: DateTime<Utc> = h.now();
    let truth = h.truth();
    let cases: [(&str, &str, WindowSpec, &Vec<Value>, Vec<(String, String)>); 4] = [
        ("attendance-periods", "/v2/attendance-periods", ATTENDANCE, &truth.attendance_periods, vec![("limit".into(), "100".into())]),
        ("absence-periods", "/v2/absence-periods", ABSENCE, &truth.absence_periods, vec![("limit".into(), "5".into())]),
        ("persons", "/v2/persons", PERSONS, &truth.persons, vec![("limit".into(), "2".into())]),
        // With the incremental filter (everything updated in the last ~year).
        (
            "absence-periods",
            "/v2/absence-periods",
            ABSENCE,
            &truth.absence_periods,
            vec![("limit".into(), "5".into()), ("updated_at.gte".into(), (anchor - chrono::Duration::days(200)).format("%Y-%m-%dT%H:%M:%S").to_string())],
        ),
    ];
    for (path, logged, spec, truth_records, params) in cases {
        h.reset_request_log();
        let single = records(c.v2_pages(path, params.clone())).await;
        let single_requests = requests_to(&h, logged);
        h.reset_request_log();
        let split = records(c.v2_pages_partitioned(path, params.clone(), spec, PartitionOptions::new(anchor))).await;
        let split_requests = requests_to(&h, logged);
        let again = records(c.v2_pages_partitioned(path, params.clone(), spec, PartitionOptions::new(anchor))).await;
        let (single_ids, split_ids) = (ids(&single), ids(&split));
        assert!(single_requests > 3, "{path}: the case must need several pages ({single_requests})");
        assert_eq!(split_ids.iter().collect::<BTreeSet<_>>().len(), split_ids.len(), "{path}: a record emitted twice");
        assert_eq!(sorted(split_ids.clone()), sorted(single_ids.clone()), "{path}: the same records as one chain");
        assert_eq!(ids(&again), split_ids, "{path}: the order depends on the data only");
        if params.len() == 1 {
            assert_eq!(sorted(split_ids.clone()), sorted(ids(truth_records)), "{path}: the sandbox's truth");
        }
        // The records themselves are untouched.
        let by_id: std::collections::HashMap<String, &Value> = single_ids.iter().cloned().zip(single.iter()).collect();
        for (id, r) in split_ids.iter().zip(&split) {
            assert_eq!(by_id.get(id), Some(&r), "{path}: record {id} differs");
        }
        // Extra requests: the windows' first and last pages, bounded.
        assert!(split_requests <= single_requests + 60, "{path}: {split_requests} requests against {single_requests}");
        eprintln!("{path}: {} records, {single_requests} requests in one chain, {split_requests} split", split.len());
    }
}

/// A listing that ends within the probe pages, and persons without `created_at`, are never split.
#[tokio::test]
async fn short_or_unplaceable_listings_are_not_split() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Tiny, 5), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    let c = client(sandbox.base_url());
    let anchor = h.now();
    h.reset_request_log();
    let persons = records(c.v2_pages_partitioned("persons", vec![("limit".into(), "50".into())], PERSONS, PartitionOptions::new(anchor))).await;
    assert_eq!(persons.len(), h.truth().persons.len());
    assert_eq!(requests_to(&h, "/v2/persons"), 1, "one page, one request");
    h.set_persons_without_attributes(true);
    h.reset_request_log();
    let bare = records(c.v2_pages_partitioned("persons", vec![("limit".into(), "2".into())], PERSONS, PartitionOptions::new(anchor))).await;
    assert_eq!(sorted(ids(&bare)), sorted(ids(&persons)));
    let log = h.request_log();
    assert!(log.iter().all(|r| !r.query.contains("created_at")), "bare persons are paged as one chain");
    assert_eq!(log.len(), persons.len().div_ceil(2));
}

/// With latency, the adaptive limit grows past its start and more requests are in flight than one
/// listing's sequential paging would have; the limit never exceeds `max_concurrency`.
#[tokio::test]
async fn concurrency_grows_while_latency_dominates() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Small, 3), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    h.set_latency(Latency { mean_ms: 20, tail_ms: 0, tail_share: 0.0, seed: 1 });
    let mut cfg = ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(sandbox.base_url());
    cfg.concurrency.max = 12;
    let c = PersonioClient::new(cfg).expect("client");
    c.authenticate().await.expect("auth");
    let pages: Vec<_> =
        c.v1_pages_concurrent("company/time-offs", Vec::new(), PagingMode::PageNumber { limit: Some(20) }, 32).try_collect().await.expect("pages");
    assert!(pages.len() > 20, "{}", pages.len());
    let stats = c.stats();
    assert!(stats.peak_in_flight > 4, "grew past the initial 4: {stats:?}");
    assert!(stats.peak_in_flight <= 12 && stats.concurrency_limit <= 12, "{stats:?}");
    assert_eq!(stats.rate_limited, 0);
}

/// With the sandbox enforcing Personio's limits and the client's own pacing switched off, the server's
/// 429s (with `Retry-After` and `x-ratelimit-*`) pause the scope and halve the concurrency limit: the
/// listing completes, identical to the truth, with few 429s.
#[tokio::test]
async fn server_limits_are_honoured_without_client_pacing() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Small, 3), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    h.set_rate_limits(true);
    let mut cfg = ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(sandbox.base_url());
    cfg.pacing = PacingConfig::disabled();
    cfg.concurrency.initial = 16;
    let c = PersonioClient::new(cfg).expect("client");
    c.authenticate().await.expect("auth");
    // 50 employees, 2 a page: 25 requests against a bucket of 15 refilled at 15/s.
    let pages: Vec<_> = c
        .v1_pages_concurrent("company/employees", Vec::new(), PagingMode::RecordOffset { limit: Some(2) }, 32)
        .try_collect()
        .await
        .expect("pages");
    let got: Vec<Value> = pages.into_iter().flat_map(|p| p.data).collect();
    let want: Vec<Value> = h.truth().employees;
    assert_eq!(got.len(), want.len());
    // Whether the burst exceeds the server's bucket depends on how fast it answers (a loaded machine
    // refills it in time); when it does, the 429s pause the scope and halve the limit. The deterministic
    // version of this check is the client's `tests_limits` (a scripted server).
    let stats = c.stats();
    if stats.rate_limited > 0 {
        assert!(stats.server_pauses >= 1, "{stats:?}");
        assert!(stats.concurrency_limit < 16, "a 429 halved the limit: {stats:?}");
    }
    assert!(stats.rate_limited <= 16, "one burst of 429s, then paced by Retry-After: {stats:?}");
}

/// The client's default pacing (Personio's published limits) against the sandbox's limits: 0 × 429.
#[tokio::test]
async fn default_pacing_never_sees_a_429() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Small, 3), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    h.set_rate_limits(true);
    let mut cfg = ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(sandbox.base_url());
    cfg.concurrency.initial = 32;
    let c = PersonioClient::new(cfg).expect("client");
    c.authenticate().await.expect("auth");
    // 17 employees pages (burst 15, then 5/s) and 60 time-off pages side by side.
    let employees = c.v1_pages_concurrent("company/employees", Vec::new(), PagingMode::RecordOffset { limit: Some(3) }, 32).try_collect::<Vec<_>>();
    let offs = c.v1_pages_concurrent("company/time-offs", Vec::new(), PagingMode::PageNumber { limit: Some(10) }, 32).try_collect::<Vec<_>>();
    let (e, o) = futures::future::try_join(employees, offs).await.expect("pages");
    assert_eq!(e.iter().map(|p| p.data.len()).sum::<usize>(), h.truth().employees.len());
    assert_eq!(o.iter().map(|p| p.data.len()).sum::<usize>(), h.truth().absences.len());
    let stats = c.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert!(h.request_log().iter().all(|r| r.status != 429));
}

// ------------------------------------------------------------------ the whole source

use personio_source::{PersonioSource, SourceOptions};
use pipeline_engine::memory::MemoryDestination;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};

/// One run of the source into the in-memory destination: table → row keys.
async fn load(base: &str, page_concurrency: usize, transformer_concurrency: usize, end: chrono::NaiveDate, tag: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let options = SourceOptions { end_date: Some(end), transformer_concurrency, items_per_page: 25, ..SourceOptions::default() };
    let source = PersonioSource::new(client(base.to_string()), options).with_page_concurrency(page_concurrency);
    let dir = std::env::temp_dir().join(format!("pp-source-concurrency-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pipeline = Pipeline::open(PipelineConfig::new("p", "d", &dir)).expect("pipeline");
    let mut dest = MemoryDestination::new(&format!("memory:{tag}"));
    let selected: Vec<String> = ["employees", "employees_absences_balance", "absences", "attendance_periods", "absence_periods", "persons", "employments"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    pipeline.run(&source, Some(&selected), &mut dest).await.expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    // Root tables only (child tables are keyed by their generated `_dlt_id`).
    dest.data().tables.into_iter().filter(|(t, _)| selected.contains(t)).map(|(t, rows)| (t, rows.into_keys().collect())).collect()
}

/// The source loads the same rows one page at a time (as dlt) and at full concurrency (v1 pages, v2
/// windows, transformer calls across pages), and they match the sandbox's truth; a balance call per
/// employee, no more.
#[tokio::test]
async fn the_source_loads_the_same_rows_at_any_concurrency() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Tiny, 9), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    let end = h.now().date_naive();
    let base = sandbox.base_url();
    let one = load(&base, 1, 1, end, "one").await;
    h.reset_request_log();
    let many = load(&base, 32, 32, end, "many").await;
    let log = h.request_log();
    let balance_calls = log.iter().filter(|r| r.path.ends_with("/absences/balance")).count();
    assert!(log.iter().any(|r| r.query.contains("start.date_time.gte")), "attendance periods were fetched in windows");
    assert_eq!(one, many, "the same rows at any concurrency");
    let truth = h.truth();
    let count = |t: &str| many.get(t).map_or(0, Vec::len);
    assert_eq!(count("employees"), truth.employees.len());
    assert_eq!(count("absences"), truth.absences.len());
    assert_eq!(count("attendance_periods"), truth.attendance_periods.len());
    assert_eq!(count("absence_periods"), truth.absence_periods.len());
    assert_eq!(count("persons"), truth.persons.len());
    assert_eq!(count("employments"), truth.employments.values().map(Vec::len).sum::<usize>());
    assert_eq!(count("employees_absences_balance"), truth.balances.values().map(Vec::len).sum::<usize>());
    assert_eq!(balance_calls, truth.employees.len());
}

/// An incremental run's v2 listing costs exactly its pages: the changed records are read in one chain
/// before any window is split (windows cost a request each, mostly for nothing on a short listing).
#[tokio::test]
async fn an_incremental_v2_listing_costs_only_its_pages() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Small, 11), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    let end = h.now().date_naive() + chrono::Duration::days(1);
    let dir = std::env::temp_dir().join(format!("pp-source-incremental-pages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let selected = vec!["attendance_periods".to_string()];
    let mut dest = MemoryDestination::new("memory:incremental-pages");
    let base = sandbox.base_url();
    run_into(&base, end, &dir, &selected, &mut dest).await;
    let full_requests = requests_to(&h, "/v2/attendance-periods");
    h.advance_clock(chrono::Duration::hours(1));
    h.mutate_share(0.02);
    h.reset_request_log();
    let report = run_into(&base, end, &dir, &selected, &mut dest).await;
    let changed = report.rows.get("attendance_periods").copied().unwrap_or(0) as usize;
    let requests = requests_to(&h, "/v2/attendance-periods");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(changed > 3 * 25 && changed <= 25 * 25, "a listing of 4 to 25 pages is the case under test: {changed} records");
    assert!(requests <= changed.div_ceil(25) + 1, "{requests} requests for {changed} changed records (pages of 25)");
    assert!(full_requests > 3 * requests, "the full load ({full_requests} requests) was the bigger listing");
    let truth = h.truth();
    assert_eq!(dest.data().tables["attendance_periods"].len(), truth.attendance_periods.len(), "the dataset has every period once");
}

async fn run_into(base: &str, end: chrono::NaiveDate, dir: &std::path::Path, selected: &[String], dest: &mut MemoryDestination) -> pipeline_engine::pipeline::RunReport {
    let options = SourceOptions { end_date: Some(end), items_per_page: 25, ..SourceOptions::default() };
    let source = PersonioSource::new(client(base.to_string()), options).with_page_concurrency(32);
    let pipeline = Pipeline::open(PipelineConfig::new("p", "d", dir)).expect("pipeline");
    pipeline.run(&source, Some(selected), dest).await.expect("run")
}
