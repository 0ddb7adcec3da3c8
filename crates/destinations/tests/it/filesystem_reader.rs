//! The filesystem destination read back for `pipeline show`'s dashboard: a [`FilesystemReader`] over a
//! lake (local directory, gzipped-JSONL plain tables, and S3 on a loopback moto server) answers exactly
//! as a [`DuckDbReader`] over a DuckDB database loaded with the same data — tables and row counts,
//! columns as DuckDB types them, `_dlt_loads`, the stored state and schema, queries — and as the
//! destination itself says. A snapshot is read again only when the lake's files change, and reading
//! never writes to the lake.
//!
//! The readers block on runtimes of their own, so these tests are synchronous and run the loads on a
//! runtime they start.

use std::collections::BTreeSet;

use pipeline_destinations::duckdb::DuckDbConfig;
use pipeline_destinations::filesystem::{FileFormat, FilesystemConfig, FilesystemReader, FilesystemReaders};
use pipeline_destinations::read::{DatasetReader, DuckDbReader};
use pipeline_engine::load::Destination;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};
use serde_json::json;

use crate::filesystem::person;
use crate::support::{sel, source};

const PIPELINE: &str = "fs_reader";
const DATASET: &str = "reader_data";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// The `n`th load of the fixture data (1, 2, 3): a merge table with child rows and a column added in
/// load 2, a replace table, an append table of every type with a column added in load 2.
async fn load(n: u32, pipelines_dir: &std::path::Path, d: &mut dyn Destination) {
    let mut src = source();
    match n {
        1 => {
            src.set("people", (1..=4).map(|i| person(i, 1, &format!("v1-{i}"), &[i * 10, i * 10 + 1])).collect());
            src.set("types", vec![json!({"id": 1, "name": "x"}), json!({"id": 2, "name": "y"})]);
            src.set(
                "events",
                vec![
                    json!({"kind": "a", "n": 1, "amount": 1.5, "ok": true, "seen_at": "\u{F027}2024-05-01T10:00:00.123456+00:00", "day": "\u{F028}2024-05-01", "price": "\u{F026}12.5"}),
                    json!({"kind": "b", "n": -7, "amount": 0.25, "ok": false, "seen_at": "\u{F027}2024-05-02T00:00:00+00:00", "day": "\u{F028}2024-05-02", "price": "\u{F026}0.000000001"}),
                    json!({"kind": "c"}),
                ],
            );
        }
        2 => {
            let mut changed = vec![person(2, 2, "v2-2", &[2007])];
            changed
                .push(json!({"id": 5, "name": "v1-5", "title": "new column", "updated_at": "\u{F027}2024-01-02T00:00:00+00:00", "cost_centers": [{"id": 50}]}));
            src.set("people", changed);
            src.set("types", vec![json!({"id": 3, "name": "z"})]);
            src.set("events", vec![json!({"kind": "d", "n": 4, "extra": "later column"}), json!({"kind": "e", "ok": true})]);
        }
        _ => {
            src.set("people", vec![person(6, 3, "v1-6", &[])]);
            src.set("types", vec![json!({"id": 3, "name": "z"}), json!({"id": 4, "name": "w"})]);
            src.set("events", vec![json!({"kind": "f"})]);
        }
    }
    let pipeline = Pipeline::open(PipelineConfig::new(PIPELINE, DATASET, pipelines_dir)).expect("pipeline");
    pipeline.run(&src, Some(&sel(&["people", "types", "events"])), d).await.expect("load");
}

/// Queries whose answers must be the same on both readers.
const QUERIES: &[&str] = &[
    "SELECT * EXCLUDE (_dlt_load_id, _dlt_id) FROM reader_data.people ORDER BY id",
    "SELECT p.id, c.id, c._dlt_list_idx FROM reader_data.people p JOIN reader_data.people__cost_centers c ON c._dlt_parent_id = p._dlt_id ORDER BY 1, 2",
    "SELECT * EXCLUDE (_dlt_load_id, _dlt_id) FROM reader_data.types ORDER BY id",
    "SELECT * EXCLUDE (_dlt_load_id, _dlt_id) FROM reader_data.events ORDER BY kind",
    "SELECT count(DISTINCT _dlt_load_id), count(*) FROM reader_data.events",
    "SELECT CAST(day AS VARCHAR), max(price), sum(amount), sum(n), max(seen_at) FROM reader_data.events GROUP BY 1 ORDER BY 1",
];

/// Everything a reader shows, with load ids (which differ between two loads of the same data) left out.
fn compare(fs: &mut dyn DatasetReader, duck: &mut dyn DatasetReader, what: &str) {
    assert_eq!(fs.tables().expect("tables"), duck.tables().expect("tables"), "{what}: tables and row counts");
    let cols = |r: &mut dyn DatasetReader| r.columns().expect("columns").into_iter().map(|c| (c.table, c.name, c.data_type, c.nullable)).collect::<Vec<_>>();
    assert_eq!(cols(fs), cols(duck), "{what}: columns, types and nullability");
    let loads =
        |r: &mut dyn DatasetReader| r.loads(10).expect("loads").into_iter().map(|l| (l.schema_name, l.status, l.schema_version_hash)).collect::<Vec<_>>();
    assert_eq!(loads(fs), loads(duck), "{what}: _dlt_loads");
    let (s, d) = (fs.stored_state(PIPELINE).expect("state").expect("a state"), duck.stored_state(PIPELINE).expect("state").expect("a state"));
    assert_eq!((s.row.version, &s.row.pipeline_name), (d.row.version, &d.row.pipeline_name), "{what}: stored state");
    let names = |r: &mut dyn DatasetReader| r.stored_schema("fixtures").expect("schema").expect("a schema").tables.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(names(fs), names(duck), "{what}: stored schema");
    for q in QUERIES {
        let (a, b) = (fs.query(q, 100).unwrap_or_else(|e| panic!("{what}: {q}: {e}")), duck.query(q, 100).expect(q));
        assert!(!a.rows.is_empty(), "{what}: {q} has rows");
        assert_eq!(a, b, "{what}: {q}");
    }
    let page = fs.browse("people", 1, 2).expect("browse");
    assert_eq!(page.rows.len(), 2, "{what}: a page of the data browser");
}

/// Loads 1 and 2 into DuckDB and into the lake of `config`; the readers agree after each load, the
/// snapshot is kept while the lake does not change and rebuilt after a load, and reading leaves every
/// file of the lake as it was.
fn reader_equals_duckdb(config: FilesystemConfig, what: &str) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let duck_config = DuckDbConfig::for_pipeline(dir.path(), PIPELINE, DATASET);
    let mut duck = duck_config.build().expect("duckdb");
    let mut lake = config.build().expect("filesystem");
    let readers = FilesystemReaders::new(&config).expect("readers");
    for n in 1..=2 {
        rt.block_on(async {
            load(n, &dir.path().join("duck"), &mut duck).await;
            duck.disconnect().await;
            load(n, &dir.path().join("lake"), &mut lake).await;
        });
        let mut fs = readers.open().expect("open the lake");
        let mut db = DuckDbReader::open(&duck_config).expect("open DuckDB");
        compare(&mut fs, &mut db, &format!("{what}, load {n}"));
        assert_eq!(readers.snapshots_built(), u64::from(n), "{what}: one snapshot per change of the lake");
        assert_eq!((fs.kind(), fs.dataset_name()), ("filesystem", DATASET));
        assert_eq!(fs.location(), config.display_url());
        // The destination's own view of the lake.
        let (tables, loads, state) = rt.block_on(async {
            (lake.tables().await.expect("tables"), lake.recent_loads(10).await.expect("loads"), lake.stored_state(PIPELINE).await.expect("state"))
        });
        assert_eq!(fs.tables().expect("tables"), tables, "{what}: the destination's row counts");
        assert_eq!(
            fs.loads(10).expect("loads").into_iter().map(|l| (l.load_id, l.status)).collect::<Vec<_>>(),
            loads.into_iter().map(|l| (l.load_id, l.status)).collect::<Vec<_>>()
        );
        let state = state.map(|s| (s.row, s.load_id));
        assert_eq!(fs.stored_state(PIPELINE).expect("state").map(|s| (s.row, s.load_id)), state, "{what}: the destination's stored state");
    }
    // Unchanged lake: the kept snapshot, as many readers as asked for.
    for _ in 0..3 {
        let mut fs = readers.open().expect("open");
        assert_eq!(fs.query("SELECT count(*) FROM reader_data.people", 10).expect("count").rows, [[Some("5".to_string())]]);
    }
    assert_eq!(readers.snapshots_built(), 2, "{what}: no new snapshot without a change");

    // Read-only: statements other than queries are refused, other files cannot be read, and no file of the
    // lake changed.
    let before = rt.block_on(listing(&config));
    let mut fs = readers.open().expect("open");
    for bad in ["DROP TABLE reader_data.people", "INSERT INTO reader_data.types VALUES (9, 'q')", "ATTACH 'x.duckdb'", "COPY reader_data.people TO 'out.csv'"] {
        assert!(fs.query(bad, 10).is_err(), "{what}: {bad} must be refused");
    }
    assert!(fs.query("SELECT * FROM read_text('/etc/hostname')", 10).is_err(), "{what}: no access to other files");
    assert!(fs.query("SELECT * FROM read_parquet('/etc/hostname')", 10).is_err(), "{what}: no access to other files");
    assert_eq!(rt.block_on(listing(&config)), before, "{what}: reading wrote nothing");

    // Load 3 (a row of each kind): a new snapshot with it.
    let mut before_load_3 = readers.open().expect("open");
    rt.block_on(async {
        load(3, &dir.path().join("duck"), &mut duck).await;
        duck.disconnect().await;
        load(3, &dir.path().join("lake"), &mut lake).await;
    });
    let mut fs = readers.open().expect("open");
    let mut db = DuckDbReader::open(&duck_config).expect("open DuckDB");
    compare(&mut fs, &mut db, &format!("{what}, load 3"));
    assert_eq!(readers.snapshots_built(), 3);
    assert_eq!(fs.rows_per_load("events").expect("rows per load").len(), 3, "{what}: rows of each load");
    assert_eq!(fs.query("SELECT count(*) FROM reader_data.types", 10).expect("types").rows, [[Some("2".to_string())]]);
    // A reader opened before the change still reads its own snapshot.
    assert_eq!(before_load_3.query("SELECT count(*) FROM reader_data.types", 10).expect("types").rows, [[Some("1".to_string())]]);
}

/// Every object of the lake with its size and modification time.
async fn listing(config: &FilesystemConfig) -> Vec<(String, u64, String)> {
    use futures::TryStreamExt as _;
    use object_store::ObjectStore as _;
    let (store, prefix): (Box<dyn object_store::ObjectStore>, object_store::path::Path) = match config.location().expect("location") {
        pipeline_destinations::filesystem::Location::Local(dir) => {
            (Box::new(object_store::local::LocalFileSystem::new()), object_store::path::Path::from_absolute_path(dir).expect("path"))
        }
        pipeline_destinations::filesystem::Location::S3 { bucket, prefix } => {
            let c = &config.credentials;
            let s3 = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region("us-east-1")
                .with_access_key_id(c.aws_access_key_id.clone().unwrap_or_default())
                .with_secret_access_key(c.aws_secret_access_key.clone().unwrap_or_default())
                .with_endpoint(c.endpoint_url.clone().unwrap_or_default())
                .with_allow_http(true)
                .build()
                .expect("s3");
            (Box::new(s3), object_store::path::Path::from(prefix))
        }
    };
    let mut out: Vec<(String, u64, String)> =
        store.list(Some(&prefix)).map_ok(|m| (m.location.to_string(), m.size, m.last_modified.to_rfc3339())).try_collect().await.expect("list");
    out.sort();
    out
}

fn local_lake(dir: &tempfile::TempDir) -> FilesystemConfig {
    FilesystemConfig::new(dir.path().join("bucket").display().to_string(), DATASET)
}

#[test]
fn the_reader_of_a_local_lake_equals_duckdb() {
    let dir = tempfile::tempdir().expect("tempdir");
    reader_equals_duckdb(local_lake(&dir), "local lake");
}

/// Plain tables as dlt's gzipped JSONL, every table a Delta table: the same answers.
#[test]
fn the_reader_of_jsonl_and_all_delta_lakes_equals_duckdb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = local_lake(&dir);
    config.loader_file_format = FileFormat::Jsonl;
    reader_equals_duckdb(config, "jsonl lake");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = local_lake(&dir);
    config.table_format = pipeline_destinations::filesystem::TableFormat::Delta;
    reader_equals_duckdb(config, "all-delta lake");
}

#[test]
fn the_reader_of_an_s3_lake_equals_duckdb() {
    let Some(s3) = crate::moto::s3("the_reader_of_an_s3_lake_equals_duckdb") else {
        return;
    };
    reader_equals_duckdb(crate::conformance::s3_config(&s3, DATASET), "S3 lake");
}

/// No dataset yet: a clear error naming what to run, and a local bucket that does not exist is not
/// created by looking at it.
#[test]
fn a_bucket_without_the_dataset_says_what_to_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = local_lake(&dir);
    let readers = FilesystemReaders::new(&config).expect("readers");
    assert!(!readers.dataset_exists().expect("check"));
    let err = readers.open().expect_err("no dataset");
    assert!(err.message.contains("no dataset reader_data") && err.message.contains("personio-pipeline run --destination filesystem"), "{err}");
    assert!(!dir.path().join("bucket").exists(), "looking created the bucket directory");
    // Another dataset in the same bucket is not this one.
    let rt = runtime();
    let mut other = FilesystemConfig::new(dir.path().join("bucket").display().to_string(), "other_data").build().expect("filesystem");
    let mut src = source();
    src.set("types", vec![json!({"id": 1, "name": "x"})]);
    rt.block_on(async {
        let p = Pipeline::open(PipelineConfig::new(PIPELINE, "other_data", dir.path().join("pipelines"))).expect("pipeline");
        p.run(&src, Some(&sel(&["types"])), &mut other).await.expect("load");
    });
    assert!(!readers.dataset_exists().expect("check"));
    assert!(FilesystemReader::open(&config).is_err());
    let mut r = FilesystemReader::open(&FilesystemConfig::new(dir.path().join("bucket").display().to_string(), "other_data")).expect("the other dataset");
    assert_eq!(r.tables().expect("tables").iter().find(|t| t.name == "types").map(|t| t.rows), Some(1));
}
