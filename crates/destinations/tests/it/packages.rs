//! Load packages, state round-trip, resume, no-op reruns and locking.

use serde_json::json;

use pipeline_engine::pipeline::{PipelineError, RunOptions};

use crate::support::{sel, source, Env};

fn people(n: i64, at: &str) -> Vec<serde_json::Value> {
    (1..=n).map(|i| json!({"id": i, "updated_at": format!("\u{F027}{at}")})).collect()
}

#[tokio::test]
async fn unchanged_rerun_creates_no_package_and_no_rows() {
    let env = Env::new();
    let mut d = env.destination();
    let p = env.pipeline();
    let mut src = source();
    src.set("people", people(5, "2024-01-01T00:00:00+00:00"));
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
    let counts = |d: &pipeline_destinations::duckdb::DuckDbDestination| {
        ["_dlt_loads", "_dlt_pipeline_state", "_dlt_version", "people"]
            .map(|t| env.query_i64(d, &format!("SELECT count(*) FROM test_data.{t}")))
    };
    let before = counts(&d);
    assert_eq!(before, [1, 1, 1, 5]);
    // The source re-sends the boundary rows, as Personio does.
    let r2 = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 2");
    assert!(r2.loaded_packages.is_empty());
    assert!(!r2.state_changed);
    assert_eq!(counts(&d), before);
}

#[tokio::test]
async fn state_is_restored_from_the_destination_on_an_empty_workdir() {
    let env = Env::new();
    let mut d = env.destination();
    let mut src = source();
    src.set("people", people(3, "2024-01-01T00:00:00+00:00"));
    {
        let p = env.pipeline();
        p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
        p.reset_local().expect("wipe local state");
    }
    std::fs::remove_dir_all(env.pipelines_dir()).expect("wipe working dir");
    let p = env.pipeline();
    let r = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run on a fresh worker");
    assert!(r.loaded_packages.is_empty(), "restored cursor drops every boundary row: {r:?}");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people"), 3);
    let local = p.local_state().expect("read").expect("state mirrored locally");
    let inc = local.resource("fixtures", "people").and_then(|r| r.get("incremental")).cloned().expect("cursor");
    assert_eq!(inc["updated_at"]["last_value"], json!("\u{F027}2024-01-01T00:00:00+00:00"));
    // A newer row moves on from the restored cursor.
    src.set("people", vec![json!({"id": 9, "updated_at": "\u{F027}2024-02-01T00:00:00+00:00"})]);
    let r = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 3");
    assert_eq!(r.rows.get("people"), Some(&1));
}

#[tokio::test]
async fn failed_load_is_completed_by_the_next_run_without_fetching() {
    let env = Env::new();
    let mut d = env.destination();
    let p = env.pipeline();
    let mut src = source();
    src.set("people", people(4, "2024-01-01T00:00:00+00:00"));
    let err = p
        .run_with(&src, Some(&sel(&["people"])), &mut d, RunOptions { fail_before_load: true, ..RunOptions::default() })
        .await
        .expect_err("injected failure");
    assert!(matches!(err, PipelineError::Load(_)));
    assert_eq!(src.extract_calls(), 1);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'people'"), 0);
    // The next run loads the pending package first; the source then re-sends boundary rows only.
    let r = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("resume");
    assert_eq!(r.resumed_packages.len(), 1);
    assert_eq!(r.loaded_packages, r.resumed_packages);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people"), 4);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data._dlt_loads"), 1);
    // The loaded package's load id tags every row and the state row.
    assert_eq!(env.query_i64(&d, "SELECT count(DISTINCT _dlt_load_id) FROM test_data.people"), 1);
    assert_eq!(
        env.query_i64(&d, "SELECT count(*) FROM test_data._dlt_pipeline_state s JOIN test_data._dlt_loads l ON s._dlt_load_id = l.load_id"),
        1
    );
}

#[tokio::test]
async fn a_second_process_gets_a_locked_error() {
    let env = Env::new();
    let _first = env.pipeline();
    let err = pipeline_engine::pipeline::Pipeline::open(pipeline_engine::pipeline::PipelineConfig::new(
        "test_pipeline",
        "test_data",
        env.pipelines_dir(),
    ))
    .expect_err("locked");
    let text = err.to_string();
    assert!(text.contains(&format!("locked by PID {}", std::process::id())), "{text}");
}
