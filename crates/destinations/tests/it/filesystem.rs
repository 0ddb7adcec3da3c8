//! The filesystem destination beyond the conformance suite: dlt's file layout, a retried package that
//! lands exactly once, merges on a Delta table that leave one row per key, and what an S3 server does
//! with two writers of one Delta log version (put-if-absent).

use std::collections::BTreeSet;

use object_store::{ObjectStore as _, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use pipeline_destinations::filesystem::{FilesystemConfig, FilesystemDestination};
use pipeline_engine::load::Destination;
use pipeline_engine::package::pending_packages;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, RunOptions};
use pipeline_engine::schema::WriteDisposition;
use serde_json::json;

use crate::support::{sel, source};

/// A `people` record with its cost centers (a child table).
pub fn person(id: i64, day: u32, name: &str, centers: &[i64]) -> serde_json::Value {
    json!({
        "id": id,
        "name": name,
        "updated_at": format!("\u{F027}2024-01-{day:02}T00:00:00+00:00"),
        "cost_centers": centers.iter().map(|c| json!({"id": c})).collect::<Vec<_>>(),
    })
}

/// Every file under a directory, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `column` of every row of a table, sorted.
async fn values(d: &mut FilesystemDestination, table: &str, column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in d.read_table(table).await.expect("read").unwrap_or_default() {
        let a = b.column_by_name(column).unwrap_or_else(|| panic!("{table}.{column}"));
        for r in 0..b.num_rows() {
            out.push(arrow::util::display::array_value_to_string(a, r).expect("display"));
        }
    }
    out.sort();
    out
}

struct Lake {
    dir: tempfile::TempDir,
    config: FilesystemConfig,
}

impl Lake {
    fn new() -> Lake {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = FilesystemConfig::new(dir.path().join("bucket").display().to_string(), "lake_data");
        Lake { dir, config }
    }

    fn pipeline(&self) -> Pipeline {
        Pipeline::open(PipelineConfig::new("lake_pipeline", "lake_data", self.dir.path().join("pipelines"))).expect("pipeline")
    }

    fn destination(&self) -> FilesystemDestination {
        self.config.build().expect("filesystem")
    }

    fn dataset_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("bucket").join("lake_data")
    }
}

#[tokio::test]
async fn the_layout_is_dlts() {
    let lake = Lake::new();
    let mut d = lake.destination();
    let mut src = source();
    src.set("people", vec![person(1, 1, "a", &[10]), person(2, 1, "b", &[])]);
    src.set("types", vec![json!({"id": 1, "name": "x"})]);
    src.set("events", vec![json!({"kind": "k"})]);
    let r = lake.pipeline().run(&src, Some(&sel(&["people", "types", "events"])), &mut d).await.expect("run");
    let load_id = r.loaded_packages[0].clone();
    let files = files_under(&lake.dataset_dir());
    let has = |pattern: &dyn Fn(&str) -> bool| files.iter().any(|f| pattern(f));
    assert!(files.contains(&"init".to_string()), "{files:?}");
    assert_eq!(std::fs::read_to_string(lake.dataset_dir().join("init")).expect("init"), r#"{"initial_version":2,"current_version":2}"#);
    assert!(files.contains(&format!("_dlt_loads/fixtures__{load_id}.jsonl")), "{files:?}");
    assert!(has(&|f| f.starts_with(&format!("_dlt_pipeline_state/lake_pipeline__{load_id}__")) && f.ends_with(".jsonl")), "{files:?}");
    assert!(has(&|f| f.starts_with(&format!("_dlt_version/fixtures__{load_id}__")) && f.ends_with(".jsonl")), "{files:?}");
    // Append: plain Parquet files named <load_id>.<file_id>.parquet; merge and replace: Delta tables.
    let events: Vec<&String> = files.iter().filter(|f| f.starts_with("events/")).collect();
    assert_eq!(events.len(), 1, "{files:?}");
    let name = events[0].trim_start_matches("events/");
    let parts: Vec<&str> = name.split('.').collect();
    assert_eq!(parts.len(), 4, "{name}");
    assert_eq!(format!("{}.{}", parts[0], parts[1]), load_id);
    assert!(parts[2].len() == 10 && parts[2].chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    assert_eq!(parts[3], "parquet");
    for t in ["people", "people__cost_centers", "types"] {
        assert!(files.contains(&format!("{t}/_delta_log/00000000000000000000.json")), "{t}: {files:?}");
        assert!(has(&|f| f.starts_with(&format!("{t}/{load_id}.")) && f.ends_with(".parquet")), "{t}: {files:?}");
    }
    // The bookkeeping rows are dlt's.
    let loads: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lake.dataset_dir().join(format!("_dlt_loads/fixtures__{load_id}.jsonl"))).expect("loads")).expect("json");
    assert_eq!(loads["load_id"], json!(load_id));
    assert_eq!(loads["status"], json!(0));
    assert_eq!(loads["schema_name"], json!("fixtures"));
    // `pipeline show` sees every table with its rows.
    let tables = d.tables().await.expect("tables");
    let rows = |t: &str| tables.iter().find(|i| i.name == t).map(|i| i.rows);
    assert_eq!((rows("people"), rows("people__cost_centers"), rows("types"), rows("events"), rows("_dlt_loads")), (Some(2), Some(1), Some(1), Some(1), Some(1)));
    let recent = d.recent_loads(5).await.expect("loads");
    assert_eq!(recent.iter().map(|l| l.load_id.clone()).collect::<Vec<_>>(), vec![load_id]);
}

#[tokio::test]
async fn merges_leave_one_row_per_key_and_children_follow_their_root() {
    let lake = Lake::new();
    let mut d = lake.destination();
    let p = lake.pipeline();
    let mut src = source();
    src.set("people", (1..=50).map(|i| person(i, 1, &format!("v1-{i}"), &[i * 10, i * 10 + 1])).collect());
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
    // 5 people change (one of them twice in the package), one new person; cost centers follow.
    let mut changed: Vec<serde_json::Value> = (1..=5).map(|i| person(i, 2, &format!("v2-{i}"), &[i * 1000 + 7])).collect();
    changed.push(person(3, 3, "v3-3", &[])); // the last extracted row of a key wins, with its (no) children
    changed.push(person(51, 3, "v1-51", &[510]));
    src.set("people", changed);
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 2");

    let ids = values(&mut d, "people", "id").await;
    assert_eq!(ids.len(), 51, "one row per key");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 51);
    let names = values(&mut d, "people", "name").await;
    for expected in ["v2-1", "v2-2", "v3-3", "v2-4", "v2-5", "v1-6", "v1-50", "v1-51"] {
        assert!(names.contains(&expected.to_string()), "{expected} in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "v1-1" || n == "v2-3"), "replaced rows are gone: {names:?}");
    let centers = values(&mut d, "people__cost_centers", "id").await;
    // 45 unchanged people x 2 + 4 changed x 1 + person 3 none + person 51 one.
    assert_eq!(centers.len(), 45 * 2 + 4 + 1, "{centers:?}");
    for gone in ["10", "11", "30", "31", "3007"] {
        assert!(!centers.contains(&gone.to_string()), "{gone} must be gone: {centers:?}");
    }
    for kept in ["1007", "2007", "60", "61", "510"] {
        assert!(centers.contains(&kept.to_string()), "{kept} kept: {centers:?}");
    }
    // Each merge is one Delta commit per table; the log records the load id.
    let log = lake.dataset_dir().join("people/_delta_log");
    let commits = files_under(&log).into_iter().filter(|f| f.ends_with(".json")).count();
    assert_eq!(commits, 2, "create + one merge commit");
    let v1 = std::fs::read_to_string(log.join("00000000000000000001.json")).expect("commit 1");
    assert!(v1.contains("\"remove\"") && v1.contains("\"add\"") && v1.contains("\"txn\""), "{v1}");
    assert!(v1.contains("dlt_load_id"), "{v1}");
}

/// A package whose load died after its data landed but before `_dlt_loads` is loaded again: every table
/// ends up as after one load (no duplicate appends, no second merge commit, state written once more).
#[tokio::test]
async fn a_retried_package_lands_exactly_once() {
    let lake = Lake::new();
    let p = lake.pipeline();
    let mut src = source();
    src.set("people", vec![person(1, 1, "a", &[10, 11]), person(2, 1, "b", &[20])]);
    src.set("types", vec![json!({"id": 1, "name": "x"}), json!({"id": 2, "name": "y"})]);
    src.set("events", vec![json!({"kind": "k1"}), json!({"kind": "k2"})]);
    let mut d = lake.destination();
    p.run(&src, Some(&sel(&["people", "types", "events"])), &mut d).await.expect("run 1");
    src.set("people", vec![person(1, 2, "a2", &[12])]);
    src.set("types", vec![json!({"id": 3, "name": "z"})]);
    src.set("events", vec![json!({"kind": "k3"})]);
    let err = p
        .run_with(&src, Some(&sel(&["people", "types", "events"])), &mut d, RunOptions { fail_before_load: true, ..RunOptions::default() })
        .await;
    assert!(err.is_err(), "injected failure");
    let package = pending_packages(&p.workdir().join("load")).expect("pending").pop().expect("one pending package");
    // The first attempt lands everything, then "dies" before the engine records it: its _dlt_loads file
    // is removed, as if the process had stopped right before writing it.
    d.load_package(&package).await.expect("attempt 1");
    let loads_file = lake.dataset_dir().join(format!("_dlt_loads/fixtures__{}.jsonl", package.load_id()));
    std::fs::remove_file(&loads_file).expect("remove _dlt_loads file");
    assert!(!d.is_loaded(package.load_id()).await.expect("is_loaded"));
    let before = files_under(&lake.dataset_dir());
    d.load_package(&package).await.expect("attempt 2");
    assert!(d.is_loaded(package.load_id()).await.expect("is_loaded"));
    let after = files_under(&lake.dataset_dir());
    let new: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(new, vec![&format!("_dlt_loads/fixtures__{}.jsonl", package.load_id())], "the retry only completes the load");
    assert_eq!(values(&mut d, "events", "kind").await, sel(&["k1", "k2", "k3"]));
    assert_eq!(values(&mut d, "types", "name").await, sel(&["z"]));
    assert_eq!(values(&mut d, "people", "name").await, sel(&["a2", "b"]));
    assert_eq!(values(&mut d, "people__cost_centers", "id").await, sel(&["12", "20"]));
}

#[tokio::test]
async fn capabilities_are_honest() {
    let caps = Lake::new().destination().capabilities();
    assert!(!caps.transactional, "tables switch one after another");
    assert!(!caps.native_merge);
    for wd in [WriteDisposition::Append, WriteDisposition::Replace, WriteDisposition::Merge] {
        assert!(caps.write_dispositions.contains(&wd));
    }
}

#[tokio::test]
async fn jsonl_tables_are_dlts_gzipped_jsonl() {
    let mut lake = Lake::new();
    lake.config.loader_file_format = pipeline_destinations::filesystem::FileFormat::Jsonl;
    let mut d = lake.destination();
    let mut src = source();
    src.set("events", vec![json!({"kind": "a", "n": 1}), json!({"kind": "b"})]);
    lake.pipeline().run(&src, Some(&sel(&["events"])), &mut d).await.expect("run");
    let files = files_under(&lake.dataset_dir().join("events"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".jsonl.gz"), "{files:?}");
    let tables = d.tables().await.expect("tables");
    assert_eq!(tables.iter().find(|t| t.name == "events").map(|t| t.rows), Some(2));
}

/// What the S3 server does when two writers put the same Delta log version with `If-None-Match: *`
/// (delta-rs' `DefaultLogStore` commits that way): the second must not replace the first.
#[tokio::test]
async fn s3_refuses_a_second_put_if_absent() {
    let Some(s3) = crate::moto::s3("s3_refuses_a_second_put_if_absent") else { return };
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_region("us-east-1")
        .with_access_key_id(crate::moto::ACCESS_KEY)
        .with_secret_access_key(crate::moto::SECRET_KEY)
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .build()
        .expect("s3 client");
    let path = object_store::path::Path::from("t/_delta_log/00000000000000000001.json");
    let create = || PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    store.put_opts(&path, PutPayload::from_static(b"first"), create()).await.expect("first writer");
    let second = store.put_opts(&path, PutPayload::from_static(b"second"), create()).await;
    let kept = store.get(&path).await.expect("get").bytes().await.expect("bytes");
    assert_eq!(&kept[..], b"first", "the first commit survives");
    // S3 (and moto 5.2) answer 412, which object_store reports as AlreadyExists: delta-rs then retries
    // the commit at the next version instead of replacing the other writer's.
    assert!(matches!(second, Err(object_store::Error::AlreadyExists { .. })), "{second:?}");
}

/// Columns that appear later extend a Delta table's schema in the commit that brings them; rows written
/// before read as NULL there.
#[tokio::test]
async fn delta_tables_gain_columns() {
    let lake = Lake::new();
    let mut d = lake.destination();
    let p = lake.pipeline();
    let mut src = source();
    src.set("people", vec![person(1, 1, "a", &[]), person(2, 1, "b", &[])]);
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
    let mut changed = person(2, 2, "b2", &[]);
    changed["note"] = json!("new column");
    src.set("people", vec![changed, person(3, 2, "c", &[])]);
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 2");
    let cols = d.table_columns("people").await.expect("columns");
    for c in ["id", "name", "note"] {
        assert!(cols.contains(&c.to_string()), "{c} in {cols:?}");
    }
    assert_eq!(values(&mut d, "people", "id").await, sel(&["1", "2", "3"]));
    let mut notes = Vec::new();
    for b in d.read_table("people").await.expect("read").unwrap_or_default() {
        let ids = b.column_by_name("id").expect("id");
        let note = b.column_by_name("note").expect("note: every file of a Delta table is read with the table's columns");
        for r in 0..b.num_rows() {
            let text = if arrow::array::Array::is_null(note.as_ref(), r) { "∅".to_string() } else { arrow::util::display::array_value_to_string(note, r).expect("display") };
            notes.push(format!("{}:{text}", arrow::util::display::array_value_to_string(ids, r).expect("display")));
        }
    }
    notes.sort();
    assert_eq!(notes, sel(&["1:∅", "2:new column", "3:∅"]));
}

/// Deletion detection on Delta tables: hard deletes take child rows with them, in commits of their own
/// (the load's merge into the same table still commits), and a retried package applies them once.
#[tokio::test]
async fn reconciliation_deletes_on_delta_tables_once() {
    use pipeline_engine::extract::ResourceSpec;
    use pipeline_engine::fixture::FixtureSource;
    use pipeline_engine::reconcile::Schedule;
    let lake = Lake::new();
    let mut d = lake.destination();
    let p = lake.pipeline();
    let specs = vec![ResourceSpec::new("people", &["id"], WriteDisposition::Merge).with_cursor("updated_at").with_reconcile(&["id"], Schedule::Always)];
    let mut src = FixtureSource::new("fixtures", specs);
    src.set("people", vec![person(1, 1, "a", &[10, 11]), person(2, 1, "b", &[20]), person(3, 1, "c", &[30])]);
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
    src.set("people", vec![person(1, 1, "a", &[10, 11]), person(3, 2, "c2", &[31]), person(4, 2, "d", &[40])]);
    let err = p
        .run_with(&src, Some(&sel(&["people"])), &mut d, RunOptions { fail_before_load: true, ..RunOptions::default() })
        .await;
    assert!(err.is_err(), "injected failure");
    let package = pending_packages(&p.workdir().join("load")).expect("pending").pop().expect("one pending package");
    let report = d.load_package(&package).await.expect("attempt 1");
    assert_eq!(values(&mut d, "people", "id").await, sel(&["1", "3", "4"]));
    assert_eq!(values(&mut d, "people__cost_centers", "id").await, sel(&["10", "11", "31", "40"]));
    assert!(report.deleted.contains(&("people".to_string(), 1)), "{report:?}");
    std::fs::remove_file(lake.dataset_dir().join(format!("_dlt_loads/fixtures__{}.jsonl", package.load_id()))).expect("remove");
    let before = files_under(&lake.dataset_dir());
    d.load_package(&package).await.expect("attempt 2");
    let new: Vec<String> = files_under(&lake.dataset_dir()).into_iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(new, vec![format!("_dlt_loads/fixtures__{}.jsonl", package.load_id())], "the retry only completes the load");
    assert_eq!(values(&mut d, "people", "id").await, sel(&["1", "3", "4"]));
}
