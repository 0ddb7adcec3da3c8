//! When reconciliations run: schedules, the time of the last one in the pipeline state (restored by a
//! fresh worker), forcing, `never` (deleted records stay, as in dlt), and the package that carries them.

use pipeline_engine::extract::ResourceSpec;
use pipeline_engine::fixture::FixtureSource;
use pipeline_engine::memory::MemoryDestination;
use pipeline_engine::package::pending_packages;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, RunOptions};
use pipeline_engine::reconcile::{DeleteMode, ReconcilePolicy, Schedule, STATE_KEY};
use pipeline_engine::schema::WriteDisposition;
use serde_json::{json, Value};

fn week() -> Schedule {
    Schedule::Every(chrono::Duration::days(7))
}

fn source(schedule: Schedule) -> FixtureSource {
    FixtureSource::new("fx", vec![ResourceSpec::new("items", &["id"], WriteDisposition::Merge).with_cursor("updated_at").with_reconcile(&["id"], schedule)])
}

fn item(id: i64, day: u32) -> Value {
    json!({"id": id, "updated_at": format!("2024-01-{day:02}T00:00:00+00:00"), "tags": [{"t": id}]})
}

fn sel() -> Vec<String> {
    vec!["items".to_string()]
}

fn force() -> RunOptions {
    RunOptions { force_reconcile: true, ..RunOptions::default() }
}

fn with_policy(schedule: Schedule) -> RunOptions {
    let mut o = RunOptions::default();
    o.reconcile.insert("items".into(), ReconcilePolicy { schedule, deletes: DeleteMode::Hard });
    o
}

fn reconciled_at(p: &Pipeline) -> Option<String> {
    let state = p.local_state().expect("state")?;
    state.resource("fx", "items").and_then(|r| r.get(STATE_KEY)).and_then(Value::as_str).map(str::to_string)
}

#[tokio::test]
async fn a_weekly_schedule_waits_a_week_and_survives_a_fresh_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Pipeline::open(PipelineConfig::new("p", "ds", dir.path().join("pipelines"))).expect("pipeline");
    let mut d = MemoryDestination::new("memory:a");
    let mut src = source(week());
    src.set("items", vec![item(1, 1), item(2, 1), item(3, 1)]);
    let r = open().run(&src, Some(&sel()), &mut d).await.expect("run 1");
    // The first run read everything: its reconciliation cost nothing and starts the schedule.
    assert_eq!(r.reconciliations.len(), 1, "{r:?}");
    assert_eq!(r.reconciliations[0].requests, 0);
    let first = reconciled_at(&open()).expect("time of the last reconciliation in the state");

    // Item 2 deleted upstream; not due for a week: it stays, and no package is made for nothing.
    src.set("items", vec![item(1, 1), item(3, 1)]);
    let r = open().run(&src, Some(&sel()), &mut d).await.expect("run 2");
    assert!(r.reconciliations.is_empty() && r.loaded_packages.is_empty(), "{r:?}");
    assert_eq!(d.keys("items"), Some(vec!["1".into(), "2".into(), "3".into()]));

    // A fresh worker restores the time from the destination's state: still not due.
    std::fs::remove_dir_all(dir.path().join("pipelines")).expect("wipe");
    let r = open().run(&src, Some(&sel()), &mut d).await.expect("run 3");
    assert!(r.reconciliations.is_empty(), "{r:?}");
    assert_eq!(reconciled_at(&open()), Some(first.clone()));

    // --reconcile forces it.
    let r = open().run_with(&src, Some(&sel()), &mut d, force()).await.expect("forced");
    assert_eq!((r.reconciliations[0].status.as_str(), r.reconciliations[0].rows), ("applied", 1), "{r:?}");
    assert_eq!(d.keys("items"), Some(vec!["1".into(), "3".into()]));
    assert_eq!(d.keys("items__tags").map(|k| k.len()), Some(2), "the deleted item's child rows went with it");
    assert_ne!(reconciled_at(&open()), Some(first), "the forced run moved the time");
}

#[tokio::test]
async fn never_keeps_deleted_records_as_dlt_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::open(PipelineConfig::new("p", "ds", dir.path().join("pipelines"))).expect("pipeline");
    let mut d = MemoryDestination::new("memory:b");
    let mut src = source(Schedule::Always);
    src.set("items", vec![item(1, 1), item(2, 1)]);
    p.run_with(&src, Some(&sel()), &mut d, with_policy(Schedule::Never)).await.expect("run 1");
    src.set("items", vec![item(1, 1)]);
    let r = p.run_with(&src, Some(&sel()), &mut d, with_policy(Schedule::Never)).await.expect("run 2");
    assert!(r.reconciliations.is_empty(), "{r:?}");
    assert_eq!(d.keys("items"), Some(vec!["1".into(), "2".into()]));
    assert_eq!(reconciled_at(&p), None, "never reconciled, nothing in the state");
}

#[tokio::test]
async fn the_key_set_travels_in_the_package_and_a_resumed_package_applies_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::open(PipelineConfig::new("p", "ds", dir.path().join("pipelines"))).expect("pipeline");
    let mut d = MemoryDestination::new("memory:c");
    let mut src = source(Schedule::Always);
    src.set("items", vec![item(1, 1), item(2, 1), item(3, 1)]);
    p.run(&src, Some(&sel()), &mut d).await.expect("run 1");
    src.set("items", vec![item(1, 1), item(3, 2)]);
    let failing = RunOptions { fail_before_load: true, ..RunOptions::default() };
    p.run_with(&src, Some(&sel()), &mut d, failing).await.expect_err("injected failure before load");
    let pending = pending_packages(&p.workdir().join("load")).expect("pending");
    let entry = &pending[0].manifest().reconcile[0];
    assert_eq!((entry.resource.as_str(), entry.table.as_str(), entry.keys, entry.columns.clone()), ("items", "items", 2, vec!["id".to_string()]));
    assert!(pending[0].dir().join(&entry.files[0]).exists(), "the key file is in the package");
    assert_eq!(d.keys("items").map(|k| k.len()), Some(3), "nothing applied yet");
    let loaded = p.resume_pending(&mut d).await.expect("resume");
    assert_eq!(loaded.len(), 1);
    assert_eq!(d.keys("items"), Some(vec!["1".into(), "3".into()]));
}
