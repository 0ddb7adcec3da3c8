//! Issue 9 on DuckDB: a full refresh is one transaction with the load, a deleted database file or
//! another dataset is a new destination, and the file is open only while the engine uses it.

use serde_json::json;

use pipeline_engine::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use pipeline_engine::fixture::FixtureSource;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, PipelineError, RunOptions};

use crate::support::{sel, source, Env};

fn people(ids: std::ops::RangeInclusive<i64>, at: &str) -> Vec<serde_json::Value> {
    ids.map(|i| json!({"id": i, "name": format!("p{i}"), "updated_at": format!("\u{F027}{at}")})).collect()
}

/// A fixture source whose extract fails after sending its pages, like an API answering 500 mid-run.
struct Failing(FixtureSource);

#[async_trait::async_trait]
impl Source for Failing {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn resources(&self) -> Vec<ResourceSpec> {
        self.0.resources()
    }
    async fn extract(&self, ctx: ExtractContext) -> Result<(), SourceError> {
        self.0.extract(ctx).await?;
        Err("the API answered 500 Internal Server Error".into())
    }
}

fn refresh() -> RunOptions {
    RunOptions { full_refresh: true, ..RunOptions::default() }
}

#[tokio::test]
async fn full_refresh_swaps_tables_in_the_load_transaction_and_a_failed_one_changes_nothing() {
    let env = Env::new();
    let mut d = env.destination();
    let p = env.pipeline();
    let mut src = source();
    src.set("people", people(1..=5, "2024-01-01T00:00:00+00:00"));
    src.set("types", vec![json!({"id": 1})]);
    p.run(&src, Some(&sel(&["people", "types"])), &mut d).await.expect("run 1");
    let snapshot = |d: &pipeline_destinations::duckdb::DuckDbDestination| {
        (
            env.query_strings(d, "SELECT CAST(id AS VARCHAR) || '/' || _dlt_load_id FROM test_data.people ORDER BY id"),
            env.query_i64(d, "SELECT count(*) FROM test_data._dlt_loads"),
            env.query_i64(d, "SELECT count(*) FROM test_data._dlt_pipeline_state"),
            env.query_i64(d, "SELECT count(*) FROM test_data.types"),
        )
    };
    let before = snapshot(&d);
    assert_eq!(before.0.len(), 5);

    // The refresh's extract fails: the old table, state and loads are all still there.
    let mut failing = source();
    failing.set("people", people(1..=2, "2024-03-01T00:00:00+00:00"));
    let err = p.run_with(&Failing(failing), Some(&sel(&["people"])), &mut d, refresh()).await.expect_err("fails");
    assert!(matches!(err, PipelineError::Extract(_)), "{err}");
    assert_eq!(snapshot(&d), before);

    // A successful refresh: the new extract only (row 10; 1..5 are gone), typed afresh.
    src.set("people", vec![json!({"id": 10, "name": 7, "updated_at": "\u{F027}2023-01-01T00:00:00+00:00"})]);
    let r = p.run_with(&src, Some(&sel(&["people"])), &mut d, refresh()).await.expect("refresh");
    assert_eq!(r.refreshed, vec!["people".to_string()]);
    assert_eq!(env.query_strings(&d, "SELECT CAST(id AS VARCHAR) FROM test_data.people"), vec!["10"]);
    let name_type = env.query_strings(
        &d,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'test_data' AND table_name = 'people' AND column_name = 'name'",
    );
    assert_eq!(name_type, vec!["BIGINT"], "the table was created again from the new rows");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.types"), 1, "other resources untouched");
    // The cursor restarted: an older row than the dropped cursor's is part of the refresh.
    let local = p.local_state().expect("read").expect("state");
    let cursor = &local.resource("fixtures", "people").expect("people")["incremental"]["updated_at"]["last_value"];
    assert_eq!(cursor, &json!("\u{F027}2023-01-01T00:00:00+00:00"));
}

#[tokio::test]
async fn a_deleted_database_file_is_a_new_destination() {
    let env = Env::new();
    let p = env.pipeline();
    let mut src = source();
    src.set("people", people(1..=4, "2024-01-01T00:00:00+00:00"));
    {
        let mut d = env.destination();
        p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
        assert!(!d.is_connected(), "closed after the run");
    }
    std::fs::remove_file(env.dir.path().join("test_pipeline.duckdb")).expect("delete the database");
    let mut d = env.destination();
    let r = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 2");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people"), 4, "{r}");
    assert!(r.warnings.iter().any(|w| w.contains("empty state")), "{:?}", r.warnings);
}

#[tokio::test]
async fn another_dataset_in_the_same_file_is_loaded_in_full() {
    let env = Env::new();
    let mut src = source();
    src.set("people", people(1..=3, "2024-01-01T00:00:00+00:00"));
    {
        let p = env.pipeline();
        let mut d = env.destination();
        p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
    }
    let p = Pipeline::open(PipelineConfig::new("test_pipeline", "other_data", env.pipelines_dir())).expect("open");
    let mut other = pipeline_destinations::duckdb::DuckDbConfig::for_pipeline(env.dir.path(), "test_pipeline", "other_data").build().expect("config");
    p.run(&src, Some(&sel(&["people"])), &mut other).await.expect("run into other_data");
    assert_eq!(env.query_i64(&other, "SELECT count(*) FROM other_data.people"), 3);
}

#[tokio::test]
async fn the_database_file_is_closed_between_uses() {
    let env = Env::new();
    let mut d = env.destination();
    assert!(!d.is_connected(), "building does not open the file");
    let p = env.pipeline();
    let mut src = source();
    src.set("people", people(1..=2, "2024-01-01T00:00:00+00:00"));
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run");
    assert!(!d.is_connected());
    // Another connection (as another process would) can open the file now and write.
    let other = pipeline_destinations::duckdb::DuckDbConfig::for_pipeline(env.dir.path(), "test_pipeline", "test_data").build().expect("config");
    other.connection().expect("open").execute_batch("CREATE TABLE test_data.note AS SELECT 1 AS x").expect("write");
    drop(other);
    p.drop_resources("fixtures", &sel(&["people"]), &mut d).await.expect("drop");
    assert!(!d.is_connected(), "closed after a drop");
}
