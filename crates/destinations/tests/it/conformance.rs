//! The destination conformance suite: one set of cases, run against every destination — the engine's
//! in-memory reference, DuckDB, PostgreSQL and the filesystem destination (a local directory, and S3 on
//! a loopback moto server) — and each destination's rows compared with what the records say (and so
//! with each other). Adding a destination means adding a [`Target`] here and passing.
//!
//! PostgreSQL: the server at 127.0.0.1:5432 (trust auth, database `test`, user `postgres`), or
//! `PERSONIO_TEST_POSTGRES=postgresql://…`. Every case uses its own randomly named dataset and drops it
//! (and its staging schema) afterwards. A server that is down fails the suite with a clear message;
//! `PERSONIO_SKIP_POSTGRES=1` skips the PostgreSQL target instead, and says so by name on stderr.
//!
//! S3: see [`crate::moto`] (`PERSONIO_S3_ENDPOINT`, moto from `bash lake/setup.sh`, `PERSONIO_SKIP_S3=1`).

use pipeline_destinations::duckdb::{DuckDbConfig, DuckDbDestination};
use pipeline_destinations::filesystem::{FilesystemConfig, S3Credentials};
use pipeline_destinations::postgres::{PostgresConfig, PostgresDestination};
use pipeline_engine::extract::ResourceSpec;
use pipeline_engine::fixture::FixtureSource;
use pipeline_engine::load::{Capabilities, Destination};
use pipeline_engine::memory::MemoryDestination;
use pipeline_engine::merge::{self, MergeHints};
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, PipelineError, RunOptions};
use pipeline_engine::reconcile::{DeleteMode, ReconcilePolicy, Schedule};
use pipeline_engine::schema::{MergeStrategy, SortOrder, WriteDisposition};
use serde_json::{json, Value};

/// Where a case runs: a destination plus a way to read its rows back.
enum Kind {
    Memory(MemoryDestination),
    DuckDb(DuckDbConfig),
    Postgres(PostgresConfig),
    /// The filesystem destination; the S3 server (if any) lives as long as the target.
    Filesystem(FilesystemConfig, Option<crate::moto::S3>),
}

struct Target {
    kind: Kind,
    dir: tempfile::TempDir,
    dataset: String,
}

const PIPELINE: &str = "conformance";

fn postgres_url() -> String {
    std::env::var("PERSONIO_TEST_POSTGRES").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_string())
}

/// The targets of this machine: memory, DuckDB and the filesystem always, PostgreSQL and S3 unless
/// skipped.
async fn targets() -> Vec<Target> {
    let mut out = Vec::new();
    for name in ["memory", "duckdb", "postgres", "filesystem", "filesystem-s3"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let dataset = format!("conf_{}", &uuid_like()[..12]);
        let kind = match name {
            "memory" => Kind::Memory(MemoryDestination::new(&format!("memory:{dataset}"))),
            "duckdb" => Kind::DuckDb(DuckDbConfig::for_pipeline(dir.path(), PIPELINE, &dataset)),
            "filesystem" => Kind::Filesystem(FilesystemConfig::new(dir.path().join("bucket").display().to_string(), &dataset), None),
            "filesystem-s3" => {
                let Some(s3) = crate::moto::s3("conformance on filesystem-s3") else { continue };
                Kind::Filesystem(s3_config(&s3, &dataset), Some(s3))
            }
            _ => {
                if std::env::var("PERSONIO_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                    eprintln!("SKIPPED: conformance on postgres (PERSONIO_SKIP_POSTGRES=1)");
                    continue;
                }
                let config = PostgresConfig::from_connection_string(&postgres_url(), &dataset).expect("PERSONIO_TEST_POSTGRES");
                if let Err(e) = config.build().expect("config").health_check().await {
                    panic!(
                        "PostgreSQL is not reachable for the conformance suite ({e}); start it (127.0.0.1:5432, trust auth, database `test`) or set PERSONIO_SKIP_POSTGRES=1 to skip the postgres target"
                    );
                }
                Kind::Postgres(config)
            }
        };
        out.push(Target { kind, dir, dataset });
    }
    out
}

/// The filesystem destination on a moto bucket, under a prefix.
pub fn s3_config(s3: &crate::moto::S3, dataset: &str) -> FilesystemConfig {
    let mut c = FilesystemConfig::new(format!("s3://{}/lake", s3.bucket), dataset);
    c.credentials = S3Credentials {
        aws_access_key_id: Some(crate::moto::ACCESS_KEY.into()),
        aws_secret_access_key: Some(crate::moto::SECRET_KEY.into()),
        aws_session_token: None,
        region_name: Some("us-east-1".into()),
        endpoint_url: Some(s3.endpoint.clone()),
    };
    c
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    format!("{:016x}{:016x}", h.finish(), std::process::id() as u64 ^ h.finish().rotate_left(17))
}

impl Target {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Memory(_) => "memory",
            Kind::DuckDb(_) => "duckdb",
            Kind::Postgres(_) => "postgres",
            Kind::Filesystem(_, None) => "filesystem",
            Kind::Filesystem(_, Some(_)) => "filesystem-s3",
        }
    }

    /// A destination handle (memory: the same dataset every time).
    fn destination(&self) -> Box<dyn Destination> {
        match &self.kind {
            Kind::Memory(m) => Box::new(m.clone()),
            Kind::DuckDb(c) => Box::new(c.build().expect("duckdb")),
            Kind::Postgres(c) => Box::new(c.build().expect("postgres")),
            Kind::Filesystem(c, _) => Box::new(c.build().expect("filesystem")),
        }
    }

    fn pipeline(&self) -> Pipeline {
        Pipeline::open(PipelineConfig::new(PIPELINE, &self.dataset, self.dir.path().join("pipelines"))).expect("pipeline")
    }

    /// A new, empty working directory (a fresh worker).
    fn wipe_working_dir(&self) {
        let _ = std::fs::remove_dir_all(self.dir.path().join("pipelines"));
    }

    /// `columns` of every row of `table`, `|`-joined (NULL as `∅`), sorted; `None` if no such table.
    async fn rows(&self, table: &str, columns: &[&str]) -> Option<Vec<String>> {
        let mut out: Vec<String> = match &self.kind {
            Kind::Memory(m) if table == "_dlt_loads" => {
                let loads = m.dataset().loads;
                if loads.is_empty() {
                    return None;
                }
                loads.iter().map(|l| l.status.to_string()).collect()
            }
            Kind::Memory(m) => m
                .rows(table)?
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .map(|c| r.get(*c).cloned().flatten().map(|v| canonical(&v)).unwrap_or_else(|| "∅".into()))
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect(),
            Kind::DuckDb(c) => {
                let d: DuckDbDestination = c.build().expect("duckdb");
                let conn = d.connection().expect("connection");
                let exists: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                        duckdb::params![self.dataset, table],
                        |r| r.get(0),
                    )
                    .expect("catalog");
                if exists == 0 {
                    return None;
                }
                let sql = select(&self.dataset, table, columns);
                let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
                rows.map(|r| canonical(&r.expect("row"))).collect()
            }
            Kind::Postgres(c) => {
                let d: PostgresDestination = c.build().expect("postgres");
                let client = d.query_client().await.expect("connect");
                let exists = client
                    .query_one(
                        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
                        &[&self.dataset, &table],
                    )
                    .await
                    .expect("catalog")
                    .get::<_, i64>(0);
                if exists == 0 {
                    return None;
                }
                let sql = select(&self.dataset, table, columns);
                let rows = client.query(&sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter().map(|r| canonical(&r.get::<_, String>(0))).collect()
            }
            Kind::Filesystem(c, _) if table == "_dlt_loads" => {
                let loads = c.build().expect("filesystem").recent_loads(10_000).await.expect("loads");
                if loads.is_empty() {
                    return None;
                }
                loads.iter().map(|l| l.status.to_string()).collect()
            }
            Kind::Filesystem(c, _) => {
                let batches = c.build().expect("filesystem").read_table(table).await.expect("read table")?;
                let mut out = Vec::new();
                for b in &batches {
                    for r in 0..b.num_rows() {
                        let values: Vec<String> = columns
                            .iter()
                            .map(|c| match b.column_by_name(c) {
                                Some(a) if !arrow::array::Array::is_null(a.as_ref(), r) => canonical(&display(a, r)),
                                _ => "∅".to_string(),
                            })
                            .collect();
                        out.push(values.join("|"));
                    }
                }
                out
            }
        };
        out.sort();
        Some(out)
    }

    /// Column names of a table as the destination has them.
    async fn columns(&self, table: &str) -> Vec<String> {
        let mut cols = match &self.kind {
            Kind::Memory(m) => m.dataset().tables.get(table).map(|t| t.columns.clone()).unwrap_or_default(),
            Kind::DuckDb(c) => {
                let d = c.build().expect("duckdb");
                let conn = d.connection().expect("connection");
                let mut stmt = conn
                    .prepare("SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?")
                    .expect("prepare");
                let rows = stmt.query_map(duckdb::params![self.dataset, table], |r| r.get::<_, String>(0)).expect("query");
                rows.map(|r| r.expect("row")).collect()
            }
            Kind::Postgres(c) => {
                let client = c.build().expect("postgres").query_client().await.expect("connect");
                let rows = client
                    .query(
                        "SELECT CAST(column_name AS VARCHAR) FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                        &[&self.dataset, &table],
                    )
                    .await
                    .expect("columns");
                rows.iter().map(|r| r.get::<_, String>(0)).collect()
            }
            Kind::Filesystem(c, _) => c.build().expect("filesystem").table_columns(table).await.expect("columns"),
        };
        cols.sort();
        cols
    }

    /// Drop what the case created.
    async fn cleanup(&self) {
        if let Kind::Postgres(c) = &self.kind {
            if let Ok(client) = c.build().expect("postgres").query_client().await {
                let _ = client
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS \"{0}\" CASCADE; DROP SCHEMA IF EXISTS \"{0}_staging\" CASCADE",
                        self.dataset
                    ))
                    .await;
            }
        }
    }
}

/// Arrow's display of a value; UTC timestamps as `…Z` (Arrow names zones only with chrono-tz).
fn display(a: &arrow::array::ArrayRef, r: usize) -> String {
    use arrow::datatypes::DataType;
    match a.data_type() {
        DataType::Timestamp(unit, Some(_)) => {
            let naive = arrow::compute::cast(a, &DataType::Timestamp(*unit, None)).expect("cast");
            format!("{}Z", arrow::util::display::array_value_to_string(&naive, r).expect("display"))
        }
        _ => arrow::util::display::array_value_to_string(a, r).expect("display"),
    }
}

/// One rendering of a value for every destination: timestamps as `YYYY-MM-DD HH:MM:SS+00`.
fn canonical(v: &str) -> String {
    v.split('|')
        .map(|part| {
            let b = part.as_bytes();
            if b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && part.ends_with('Z') {
                format!("{}+00", part.trim_end_matches('Z').replacen('T', " ", 1))
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn select(ds: &str, table: &str, columns: &[&str]) -> String {
    let parts: Vec<String> = columns.iter().map(|c| format!("COALESCE(CAST(\"{c}\" AS VARCHAR), '∅')")).collect();
    format!("SELECT {} FROM \"{ds}\".\"{table}\"", parts.join(" || '|' || "))
}

fn specs() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec::new("people", &["id"], WriteDisposition::Merge).with_cursor("updated_at"),
        ResourceSpec::new("types", &["id"], WriteDisposition::Replace),
        ResourceSpec::new("events", &[], WriteDisposition::Append),
    ]
}

fn sel(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn person(id: i64, day: u32, centers: &[i64]) -> Value {
    json!({
        "id": id,
        "name": format!("p{id}"),
        "updated_at": format!("\u{F027}2024-01-{day:02}T00:00:00+00:00"),
        "cost_centers": centers.iter().map(|c| json!({"id": c})).collect::<Vec<_>>(),
    })
}

/// Run a case on every target, naming the target on stderr; datasets are dropped even when it fails.
macro_rules! on_every_destination {
    ($case:ident) => {{
        for t in targets().await {
            eprintln!("conformance `{}` on {}", stringify!($case), t.name());
            let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe($case(&t))).await;
            t.cleanup().await;
            if let Err(panic) = outcome {
                eprintln!("conformance `{}` FAILED on {}", stringify!($case), t.name());
                std::panic::resume_unwind(panic);
            }
        }
    }};
}

async fn dispositions(t: &Target) {
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", specs());
    src.set("people", vec![person(1, 1, &[10, 11]), person(2, 1, &[20])]);
    src.set("types", vec![json!({"id": 1, "name": "a"}), json!({"id": 2, "name": "b"})]);
    src.set("events", vec![json!({"kind": "x"}), json!({"kind": "y"})]);
    p.run(&src, Some(&sel(&["people", "types", "events"])), d.as_mut()).await.expect("run 1");

    // Person 1 twice in one package (the last wins), losing its cost centers; person 3 new.
    let mut first = person(1, 2, &[12]);
    first["name"] = json!("first-version");
    src.set("people", vec![first, person(1, 3, &[]), person(3, 3, &[30, 31])]);
    src.set("types", vec![json!({"id": 3, "name": "c"})]);
    src.set("events", vec![json!({"kind": "z"})]);
    p.run(&src, Some(&sel(&["people", "types", "events"])), d.as_mut()).await.expect("run 2");

    assert_eq!(t.rows("people", &["id", "name"]).await, Some(sel(&["1|p1", "2|p2", "3|p3"])), "{}", t.name());
    let centers = t.rows("people__cost_centers", &["id"]).await;
    assert_eq!(centers, Some(sel(&["20", "30", "31"])), "merged entities replace their child rows ({})", t.name());
    assert_eq!(t.rows("types", &["id", "name"]).await, Some(sel(&["3|c"])), "replace ({})", t.name());
    assert_eq!(t.rows("events", &["kind"]).await, Some(sel(&["x", "y", "z"])), "append ({})", t.name());
    assert_eq!(t.rows("_dlt_loads", &["status"]).await, Some(sel(&["0", "0"])));

    // A replace resource that yields nothing empties its table.
    src.set("types", vec![]);
    p.run(&src, Some(&sel(&["types"])), d.as_mut()).await.expect("run 3");
    assert_eq!(t.rows("types", &["id"]).await, Some(vec![]), "empty replace ({})", t.name());
}

async fn type_drift_makes_variant_columns(t: &Target) {
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", specs());
    src.set("events", vec![json!({"kind": "a", "days": 1, "flag": true})]);
    p.run(&src, Some(&sel(&["events"])), d.as_mut()).await.expect("run 1");
    src.set("events", vec![json!({"kind": "b", "days": 0.5, "flag": "yes", "note": "new column"})]);
    p.run(&src, Some(&sel(&["events"])), d.as_mut()).await.expect("run 2");
    let cols = t.columns("events").await;
    for c in ["days", "days__v_double", "note", "flag"] {
        assert!(cols.contains(&c.to_string()), "{c} in {cols:?} ({})", t.name());
    }
    assert_eq!(t.rows("events", &["kind", "days", "days__v_double", "flag", "note"]).await, Some(sel(&["a|1|∅|true|∅", "b|∅|0.5|true|new column"])), "{}", t.name());
}

async fn state_is_restored_on_an_empty_working_dir(t: &Target) {
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", specs());
    src.set("people", vec![person(1, 1, &[]), person(2, 2, &[])]);
    t.pipeline().run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("run 1");
    t.wipe_working_dir();
    let p = t.pipeline();
    // The source re-sends everything; the restored cursor drops all of it: no package.
    let r = p.run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("run on a fresh worker");
    assert!(r.loaded_packages.is_empty(), "{} : {r:?}", t.name());
    let state = p.local_state().expect("state").expect("restored");
    let cursor = &state.resource("fixtures", "people").and_then(|r| r.get("incremental")).expect("cursor")["updated_at"]["last_value"];
    assert_eq!(cursor, &json!("\u{F027}2024-01-02T00:00:00+00:00"), "{}", t.name());
    assert_eq!(t.rows("_dlt_loads", &["status"]).await.map(|v| v.len()), Some(1), "{}", t.name());
}

async fn drop_and_full_refresh(t: &Target) {
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", specs());
    src.set("people", vec![person(1, 1, &[10]), person(2, 1, &[])]);
    src.set("events", vec![json!({"kind": "x"})]);
    p.run(&src, Some(&sel(&["people", "events"])), d.as_mut()).await.expect("run 1");
    let dropped = p.drop_resources("fixtures", &sel(&["people"]), d.as_mut()).await.expect("drop");
    assert_eq!(dropped, sel(&["people", "people__cost_centers"]), "{}", t.name());
    assert_eq!(t.rows("people", &["id"]).await, None, "dropped ({})", t.name());
    assert_eq!(t.rows("events", &["kind"]).await, Some(sel(&["x"])), "others untouched ({})", t.name());
    // The next run loads people from scratch.
    p.run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("run 2");
    assert_eq!(t.rows("people", &["id"]).await, Some(sel(&["1", "2"])), "{}", t.name());
    // A full refresh replaces the resource's tables with exactly the new extract.
    src.set("events", vec![json!({"kind": "y"})]);
    p.run_with(&src, Some(&sel(&["events"])), d.as_mut(), RunOptions { full_refresh: true, ..RunOptions::default() })
        .await
        .expect("refresh");
    assert_eq!(t.rows("events", &["kind"]).await, Some(sel(&["y"])), "refresh ({})", t.name());
    assert_eq!(t.rows("people", &["id"]).await, Some(sel(&["1", "2"])), "{}", t.name());
}

async fn a_failed_load_is_resumed(t: &Target) {
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", specs());
    src.set("people", vec![person(1, 1, &[10, 11])]);
    let err = p
        .run_with(&src, Some(&sel(&["people"])), d.as_mut(), RunOptions { fail_before_load: true, ..RunOptions::default() })
        .await
        .expect_err("injected failure");
    assert!(matches!(err, PipelineError::Load(_)), "{err}");
    assert_eq!(t.rows("people", &["id"]).await, None, "nothing loaded ({})", t.name());
    // Nothing new upstream: the pending package is loaded, without fetching rows twice.
    let r = p.resume_pending(d.as_mut()).await.expect("resume");
    assert_eq!(r.len(), 1, "{}", t.name());
    assert_eq!(t.rows("people", &["id"]).await, Some(sel(&["1"])), "{}", t.name());
    assert_eq!(t.rows("people__cost_centers", &["id"]).await, Some(sel(&["10", "11"])), "{}", t.name());
    // Loading the same package again is refused by its load id (exactly once).
    let r = p.run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("rerun");
    assert!(r.loaded_packages.is_empty(), "{}", t.name());
}

/// Resources whose records can disappear: `people` (children `people__cost_centers`) keyed by `id`, and
/// `rows` keyed by a text and a number (like custom report rows).
fn reconciled_specs() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec::new("people", &["id"], WriteDisposition::Merge).with_cursor("updated_at").with_reconcile(&["id"], Schedule::Always),
        ResourceSpec::new("rows", &["report_id", "item_id"], WriteDisposition::Merge).with_reconcile(&["report_id", "item_id"], Schedule::Always),
    ]
}

fn row(report: &str, item: i64) -> Value {
    json!({"report_id": report, "item_id": item, "v": format!("{report}/{item}")})
}

fn soft(resource: &str) -> RunOptions {
    let mut o = RunOptions::default();
    o.reconcile.insert(resource.to_string(), ReconcilePolicy { schedule: Schedule::Always, deletes: DeleteMode::Soft });
    o
}

/// A destination that cannot reconcile (`Capabilities::reconcile = false`): with the declared defaults
/// its runs keep deleted records (as dlt) and warn; an explicit reconciliation is refused before
/// extracting. Returns whether that is the case (the reconcile cases then stop there).
async fn cannot_reconcile(t: &Target) -> bool {
    if t.destination().capabilities().reconcile {
        return false;
    }
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", reconciled_specs());
    src.set("people", vec![person(1, 1, &[10]), person(2, 1, &[20])]);
    let r = p.run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("defaults load");
    assert!(r.warnings.iter().any(|w| w.contains("cannot reconcile")) && r.reconciliations.is_empty(), "{} {r:?}", t.name());
    src.set("people", vec![person(1, 1, &[10])]);
    p.run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("run 2");
    assert_eq!(t.rows("people", &["id"]).await, Some(sel(&["1", "2"])), "kept, as in dlt ({})", t.name());
    let calls = src.extract_calls();
    let forced = RunOptions { force_reconcile: true, ..RunOptions::default() };
    let err = p.run_with(&src, Some(&sel(&["people"])), d.as_mut(), forced).await.expect_err("refused");
    assert!(matches!(err, PipelineError::Unsupported(_)), "{err}");
    let err = p.run_with(&src, Some(&sel(&["people"])), d.as_mut(), soft("people")).await.expect_err("refused");
    assert!(matches!(err, PipelineError::Unsupported(_)), "{err}");
    assert_eq!(src.extract_calls(), calls, "refused before extracting ({})", t.name());
    eprintln!("conformance: {} cannot reconcile: defaults keep deleted records, an explicit reconciliation is refused", t.name());
    true
}

/// Hard deletes: rows whose keys are gone are deleted with their child rows, in the package's
/// transaction; rows the package brings stay; compound keys of text and numbers match.
async fn reconcile_hard(t: &Target) {
    if cannot_reconcile(t).await {
        return;
    }
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", reconciled_specs());
    src.set("people", vec![person(1, 1, &[10, 11]), person(2, 1, &[20, 21]), person(3, 1, &[30])]);
    src.set("rows", vec![row("r-1", 1), row("r-1", 2), row("r-2", 1)]);
    p.run(&src, Some(&sel(&["people", "rows"])), d.as_mut()).await.expect("run 1");

    // Person 2 is deleted upstream; person 1 unchanged (filtered by its cursor, so not in the package);
    // person 4 is new. Report row r-1/2 disappears.
    src.set("people", vec![person(1, 1, &[10, 11]), person(3, 2, &[31]), person(4, 2, &[40])]);
    src.set("rows", vec![row("r-1", 1), row("r-2", 1)]);
    let r = p.run(&src, Some(&sel(&["people", "rows"])), d.as_mut()).await.expect("run 2");
    assert_eq!(t.rows("people", &["id"]).await, Some(sel(&["1", "3", "4"])), "{}", t.name());
    assert_eq!(t.rows("people__cost_centers", &["id"]).await, Some(sel(&["10", "11", "31", "40"])), "no orphaned child rows ({})", t.name());
    assert_eq!(t.rows("rows", &["report_id", "item_id"]).await, Some(sel(&["r-1|1", "r-2|1"])), "{}", t.name());
    let people = r.reconciliations.iter().find(|x| x.resource == "people").expect("people reconciled");
    assert_eq!((people.status.as_str(), people.keys, people.rows, people.requests), ("applied", 3, 1, 1), "{} {r:?}", t.name());
    let rows = r.reconciliations.iter().find(|x| x.resource == "rows").expect("rows reconciled");
    assert_eq!((rows.keys, rows.rows), (2, 1), "{}", t.name());
    // Everything gone upstream: the tables empty, children included.
    src.set("people", vec![]);
    p.run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("run 3");
    assert_eq!(t.rows("people", &["id"]).await, Some(vec![]), "{}", t.name());
    assert_eq!(t.rows("people__cost_centers", &["id"]).await, Some(vec![]), "{}", t.name());
}

/// Soft deletes: the rows stay with `_dlt_deleted_at` set (children untouched); the first mark is kept;
/// a row whose key comes back is unmarked.
async fn reconcile_soft(t: &Target) {
    if cannot_reconcile(t).await {
        return;
    }
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", reconciled_specs());
    src.set("people", vec![person(1, 1, &[10]), person(2, 1, &[20])]);
    p.run_with(&src, Some(&sel(&["people"])), d.as_mut(), soft("people")).await.expect("run 1");
    assert!(t.columns("people").await.contains(&"_dlt_deleted_at".to_string()), "{}", t.name());
    assert_eq!(t.rows("people", &["id", "_dlt_deleted_at"]).await, Some(sel(&["1|∅", "2|∅"])), "{}", t.name());

    src.set("people", vec![person(1, 1, &[10])]);
    let r = p.run_with(&src, Some(&sel(&["people"])), d.as_mut(), soft("people")).await.expect("run 2");
    let rows = t.rows("people", &["id", "_dlt_deleted_at"]).await.expect("people");
    assert_eq!(rows[0], "1|∅", "{}", t.name());
    assert!(rows[1].starts_with("2|") && !rows[1].ends_with('∅'), "person 2 marked: {rows:?} ({})", t.name());
    assert_eq!(t.rows("people__cost_centers", &["id"]).await, Some(sel(&["10", "20"])), "children kept ({})", t.name());
    assert_eq!(r.reconciliations[0].rows, 1, "{} {r:?}", t.name());
    let first_mark = rows[1].clone();

    // Still gone on the next reconciliation: the first mark stays.
    let r = p.run_with(&src, Some(&sel(&["people"])), d.as_mut(), soft("people")).await.expect("run 3");
    assert_eq!(t.rows("people", &["id", "_dlt_deleted_at"]).await.map(|r| r[1].clone()), Some(first_mark), "{}", t.name());
    assert_eq!(r.reconciliations[0].rows, 0, "{}", t.name());

    // Back upstream (unchanged, so not in the package): unmarked.
    src.set("people", vec![person(1, 1, &[10]), person(2, 1, &[20])]);
    p.run_with(&src, Some(&sel(&["people"])), d.as_mut(), soft("people")).await.expect("run 4");
    assert_eq!(t.rows("people", &["id", "_dlt_deleted_at"]).await, Some(sel(&["1|∅", "2|∅"])), "{}", t.name());
}

/// A key listing that did not see every page deletes nothing, says so, and leaves the schedule due.
async fn reconcile_incomplete_deletes_nothing(t: &Target) {
    if cannot_reconcile(t).await {
        return;
    }
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", reconciled_specs());
    src.set("people", vec![person(1, 1, &[10]), person(2, 1, &[20])]);
    p.run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("run 1");
    src.set("people", vec![person(1, 1, &[10]), person(3, 2, &[])]);
    src.fail_keys("people");
    let r = p.run(&src, Some(&sel(&["people"])), d.as_mut()).await.expect("run 2 loads its rows");
    assert_eq!(t.rows("people", &["id"]).await, Some(sel(&["1", "2", "3"])), "nothing deleted ({})", t.name());
    assert_eq!(t.rows("people__cost_centers", &["id"]).await, Some(sel(&["10", "20"])), "{}", t.name());
    let rec = &r.reconciliations[0];
    assert_eq!((rec.status.as_str(), rec.rows), ("skipped", 0), "{}", t.name());
    assert!(r.warnings.iter().any(|w| w.contains("nothing deleted")), "{:?}", r.warnings);
    assert!(r.to_string().contains("Reconciliation of people skipped, nothing deleted"), "{r}");
}

#[tokio::test]
async fn conformance_reconcile_hard() {
    on_every_destination!(reconcile_hard);
}

#[tokio::test]
async fn conformance_reconcile_soft() {
    on_every_destination!(reconcile_soft);
}

#[tokio::test]
async fn conformance_reconcile_incomplete() {
    on_every_destination!(reconcile_incomplete_deletes_nothing);
}

/// A destination that cannot reconcile refuses, before extracting, a run that asks for a
/// reconciliation (configured or forced); with the declared defaults it loads, keeps deleted records (as
/// dlt) and warns; `reconcile = never` loads without a word.
#[tokio::test]
async fn a_destination_without_reconcile_refuses_an_explicit_reconciliation_up_front() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::open(PipelineConfig::new(PIPELINE, "norec", dir.path().join("pipelines"))).expect("pipeline");
    let mut d = MemoryDestination::new("memory:norec").with_capabilities(Capabilities { reconcile: false, ..Capabilities::full() });
    let mut src = FixtureSource::new("fixtures", reconciled_specs());
    src.set("people", vec![person(1, 1, &[])]);
    let forced = RunOptions { force_reconcile: true, ..RunOptions::default() };
    let err = p.run_with(&src, Some(&sel(&["people"])), &mut d, forced).await.expect_err("cannot reconcile");
    assert!(matches!(err, PipelineError::Unsupported(_)) && err.to_string().contains("never"), "{err}");
    assert_eq!(src.extract_calls(), 0, "refused before extracting");
    let r = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("defaults: loads");
    assert!(r.warnings.iter().any(|w| w.contains("cannot reconcile deletions") && w.contains("people")), "{:?}", r.warnings);
    let mut never = RunOptions::default();
    never.reconcile.insert("people".into(), ReconcilePolicy { schedule: Schedule::Never, deletes: DeleteMode::Hard });
    let r = p.run_with(&src, Some(&sel(&["people"])), &mut d, never).await.expect("never: loads");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[tokio::test]
async fn conformance_dispositions() {
    on_every_destination!(dispositions);
}

#[tokio::test]
async fn conformance_type_drift() {
    on_every_destination!(type_drift_makes_variant_columns);
}

#[tokio::test]
async fn conformance_state_restore() {
    on_every_destination!(state_is_restored_on_an_empty_working_dir);
}

#[tokio::test]
async fn conformance_drop_and_refresh() {
    on_every_destination!(drop_and_full_refresh);
}

#[tokio::test]
async fn conformance_resume_after_failed_load() {
    on_every_destination!(a_failed_load_is_resumed);
}

/// The pipeline refuses, before extracting, what a destination declares it cannot load.
#[tokio::test]
async fn capabilities_are_checked_before_extracting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::open(PipelineConfig::new(PIPELINE, "caps", dir.path().join("pipelines"))).expect("pipeline");
    let caps = Capabilities { write_dispositions: vec![WriteDisposition::Append, WriteDisposition::Replace], ..Capabilities::full() };
    let mut d = MemoryDestination::new("memory:caps").with_capabilities(caps);
    let mut src = FixtureSource::new("fixtures", specs());
    src.set("people", vec![person(1, 1, &[])]);
    let err = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect_err("merge unsupported");
    assert!(matches!(err, PipelineError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("`people` with write disposition `merge`"), "{err}");
    assert_eq!(src.extract_calls(), 0, "refused before extracting");
    // Resources it can load still run.
    src.set("events", vec![json!({"kind": "x"})]);
    p.run(&src, Some(&sel(&["events"])), &mut d).await.expect("append is fine");
}

// ---------------------------------------------------------------------------------------------------
// Merge strategies: upsert and scd2, hard_delete and dedup_sort (docs/history.md)

fn merge_specs() -> Vec<ResourceSpec> {
    let scd2 = MergeHints::strategy(MergeStrategy::Scd2);
    let upsert = MergeHints { hard_delete: Some("deleted".into()), ..MergeHints::strategy(MergeStrategy::Upsert) };
    let tickets = MergeHints { hard_delete: Some("deleted".into()), dedup_sort: Some(("lsn".into(), SortOrder::Desc)), ..MergeHints::default() };
    vec![
        // A cursor that scd2 must not apply: unchanged records would be filtered out and retired.
        ResourceSpec::new("staff", &["id"], WriteDisposition::Merge).with_cursor("updated_at").with_merge(scd2),
        ResourceSpec::new("members", &["id"], WriteDisposition::Merge).with_merge(upsert),
        ResourceSpec::new("tickets", &["id"], WriteDisposition::Merge).with_merge(tickets),
    ]
}

fn staff(id: i64, dept: &str, centers: &[i64]) -> Value {
    json!({
        "id": id,
        "department": dept,
        "updated_at": "2024-01-01T00:00:00+00:00",
        "cost_centers": centers.iter().map(|c| json!({"id": c})).collect::<Vec<_>>(),
    })
}

/// A timestamp as the destinations render it: `2024-01-01 10:00:00.5+00` (SQL) or RFC 3339 (memory).
fn instant(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(&format!("{text}:00"), "%Y-%m-%d %H:%M:%S%.f%:z"))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&chrono::Utc)
}

/// Whether the target declares what a case needs; if not, the pipeline must refuse the resources
/// before extracting (checked here), and the case ends.
async fn refused_unless_supported(t: &Target, resources: &[&str], supported: impl Fn(&Capabilities) -> bool) -> bool {
    let mut d = t.destination();
    if supported(&d.capabilities()) {
        return false;
    }
    let src = FixtureSource::new("fixtures", merge_specs());
    let err = t.pipeline().run(&src, Some(&sel(resources)), d.as_mut()).await.expect_err("refused");
    assert!(matches!(err, PipelineError::Unsupported(_)), "{} : {err}", t.name());
    assert_eq!(src.extract_calls(), 0, "refused before extracting ({})", t.name());
    eprintln!("conformance: {} does not declare this merge strategy/hint: refused before extracting, as it must", t.name());
    true
}

async fn scd2_keeps_every_version(t: &Target) {
    if refused_unless_supported(t, &["staff"], |c| c.merge_strategies.contains(&MergeStrategy::Scd2)).await {
        return;
    }
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", merge_specs());
    let mut loads = Vec::new();
    let mut run = |records: Vec<Value>| {
        src.set("staff", records);
        src.clone()
    };
    let s = run(vec![staff(1, "A", &[10]), staff(2, "B", &[])]);
    loads.extend(p.run(&s, Some(&sel(&["staff"])), d.as_mut()).await.expect("run 1").loaded_packages);
    let s = run(vec![staff(1, "C", &[11]), staff(2, "B", &[])]);
    loads.extend(p.run(&s, Some(&sel(&["staff"])), d.as_mut()).await.expect("run 2").loaded_packages);
    let s = run(vec![staff(1, "C", &[11])]);
    loads.extend(p.run(&s, Some(&sel(&["staff"])), d.as_mut()).await.expect("run 3").loaded_packages);
    let s = run(vec![staff(1, "C", &[11]), staff(2, "B", &[])]);
    loads.extend(p.run(&s, Some(&sel(&["staff"])), d.as_mut()).await.expect("run 4").loaded_packages);
    assert_eq!(loads.len(), 4, "every full extract is a load ({})", t.name());
    let boundary: Vec<chrono::DateTime<chrono::Utc>> = loads.iter().map(|l| merge::boundary_of(l, None)).collect();

    let rows = t.rows("staff", &["id", "department", "_dlt_id", "_dlt_valid_from", "_dlt_valid_to"]).await.expect("staff");
    let versions: Vec<(String, String, String, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)> = rows
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split('|').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string(), instant(f[3]), (f[4] != "∅").then(|| instant(f[4])))
        })
        .collect();
    let of = |id: &str| {
        let mut v: Vec<_> = versions.iter().filter(|x| x.0 == id).cloned().collect();
        v.sort_by_key(|x| x.3);
        v
    };
    let one = of("1");
    assert_eq!(one.len(), 2, "{} : {rows:?}", t.name());
    assert_eq!((one[0].1.as_str(), one[0].3, one[0].4), ("A", boundary[0], Some(boundary[1])), "{}", t.name());
    assert_eq!((one[1].1.as_str(), one[1].3, one[1].4), ("C", boundary[1], None), "contiguous, the last open ({})", t.name());
    let two = of("2");
    assert_eq!(two.len(), 2, "{} : {rows:?}", t.name());
    assert_eq!((two[0].3, two[0].4), (boundary[0], Some(boundary[2])), "retired when missing from the extract ({})", t.name());
    assert_eq!((two[1].3, two[1].4), (boundary[3], None), "reinserted when back ({})", t.name());
    assert_eq!(two[0].2, two[1].2, "the same content has the same row hash ({})", t.name());
    assert_eq!(two[0].2, merge::row_hash(&staff(2, "B", &[])), "{}", t.name());
    // Child rows are insert-only and keyed by the root's row hash; no root key.
    assert_eq!(t.rows("staff__cost_centers", &["id"]).await, Some(sel(&["10", "11"])), "{}", t.name());
    assert!(!t.columns("staff__cost_centers").await.contains(&"_dlt_root_id".to_string()), "{}", t.name());
}

async fn upsert_hard_delete_and_dedup_sort(t: &Target) {
    if refused_unless_supported(t, &["members", "tickets"], |c| c.merge_strategies.contains(&MergeStrategy::Upsert) && c.merge_hints).await {
        return;
    }
    let p = t.pipeline();
    let mut d = t.destination();
    let mut src = FixtureSource::new("fixtures", merge_specs());
    src.set("members", vec![
        json!({"id": 1, "name": "a", "roles": ["x", "y"]}),
        json!({"id": 2, "name": "b", "deleted": false, "roles": ["z"]}),
    ]);
    src.set("tickets", vec![
        json!({"id": 1, "v": "b", "lsn": 2}),
        json!({"id": 1, "v": "c", "lsn": 3}),
        json!({"id": 1, "v": "a", "lsn": 1}),
        json!({"id": 2, "v": "x", "lsn": 1, "deleted": false, "parts": [1]}),
    ]);
    p.run(&src, Some(&sel(&["members", "tickets"])), d.as_mut()).await.expect("run 1");
    assert_eq!(t.rows("tickets", &["id", "v"]).await, Some(sel(&["1|c", "2|x"])), "dedup_sort desc ({})", t.name());

    src.set("members", vec![
        json!({"id": 1, "name": "a2", "roles": ["q"]}),
        json!({"id": 2, "deleted": true}),
        // dlt's upsert inserts a flagged row whose key it does not have (without its children).
        json!({"id": 3, "name": "c", "deleted": true, "roles": ["r"]}),
    ]);
    src.set("tickets", vec![
        json!({"id": 2, "v": "y", "lsn": 4}),
        json!({"id": 2, "lsn": 5, "deleted": true}),
        json!({"id": 4, "v": "new-but-deleted", "lsn": 1, "deleted": true}),
    ]);
    p.run(&src, Some(&sel(&["members", "tickets"])), d.as_mut()).await.expect("run 2");
    let id_of = |id: i64| merge::key_hash(&[("id", &json!(id))]);
    assert_eq!(
        t.rows("members", &["id", "name", "deleted", "_dlt_id"]).await,
        Some(vec![format!("1|a2|∅|{}", id_of(1)), format!("3|c|true|{}", id_of(3))]),
        "upsert: updated in place with the key hash as _dlt_id, deleted, flagged-new inserted ({})",
        t.name()
    );
    assert_eq!(t.rows("members__roles", &["value", "_dlt_root_id"]).await, Some(vec![format!("q|{}", id_of(1))]), "{}", t.name());
    assert_eq!(t.rows("tickets", &["id", "v"]).await, Some(sel(&["1|c"])), "the winner is a delete ({})", t.name());
    assert_eq!(t.rows("tickets__parts", &["value"]).await, Some(vec![]), "with its children ({})", t.name());
}

#[tokio::test]
async fn conformance_scd2() {
    on_every_destination!(scd2_keeps_every_version);
}

#[tokio::test]
async fn conformance_upsert_hard_delete_dedup_sort() {
    on_every_destination!(upsert_hard_delete_and_dedup_sort);
}

/// Switching a loaded resource to another merge strategy is refused until it is reloaded; a destination
/// without scd2 refuses it before extracting.
#[tokio::test]
async fn merge_strategy_changes_and_capabilities() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = MemoryDestination::new("memory:switch");
    let plain = vec![ResourceSpec::new("staff", &["id"], WriteDisposition::Merge)];
    let mut src = FixtureSource::new("fixtures", plain);
    src.set("staff", vec![staff(1, "A", &[])]);
    let p = Pipeline::open(PipelineConfig::new(PIPELINE, "switch", dir.path().join("pipelines"))).expect("pipeline");
    p.run(&src, Some(&sel(&["staff"])), &mut d).await.expect("delete-insert");
    drop(p);

    let mut config = PipelineConfig::new(PIPELINE, "switch", dir.path().join("pipelines"));
    config.merge.insert("staff".into(), MergeHints::strategy(MergeStrategy::Scd2));
    let p = Pipeline::open(config.clone()).expect("pipeline");
    let err = p.run(&src, Some(&sel(&["staff"])), &mut d).await.expect_err("switch refused");
    assert!(matches!(err, PipelineError::MergeStrategyChanged { .. }), "{err}");
    assert!(err.to_string().contains("--full-refresh"), "{err}");
    p.run_with(&src, Some(&sel(&["staff"])), &mut d, RunOptions { full_refresh: true, ..RunOptions::default() }).await.expect("reloaded as scd2");
    drop(p);
    let rows = d.rows("staff").expect("staff");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].get("_dlt_valid_from").cloned().flatten().is_some() && rows[0].get("_dlt_valid_to").cloned().flatten().is_none());

    // Settings for a resource the source lacks, or that do not fit it, are refused.
    let mut bad = PipelineConfig::new(PIPELINE, "switch", dir.path().join("pipelines"));
    bad.merge.insert("nope".into(), MergeHints::strategy(MergeStrategy::Scd2));
    let err = Pipeline::open(bad).expect("pipeline").run(&src, Some(&sel(&["staff"])), &mut d).await.expect_err("unknown");
    assert!(matches!(err, PipelineError::MergeConfig(_)) && err.to_string().contains("`nope`"), "{err}");

    let caps = Capabilities { merge_strategies: vec![MergeStrategy::DeleteInsert], ..Capabilities::full() };
    let config = PipelineConfig { pipelines_dir: dir.path().join("limited"), ..config };
    let mut limited = MemoryDestination::new("memory:limited").with_capabilities(caps);
    let p = Pipeline::open(config.clone()).expect("pipeline");
    let err = p.run(&src, Some(&sel(&["staff"])), &mut limited).await.expect_err("scd2 unsupported");
    assert!(matches!(err, PipelineError::Unsupported(_)) && err.to_string().contains("merge strategy `scd2`"), "{err}");
    assert_eq!(src.extract_calls(), 2, "refused before extracting");
}
