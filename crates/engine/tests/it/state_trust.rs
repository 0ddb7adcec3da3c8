//! Issue 9: state you can trust (the destination's state wins), atomic refresh, children refetch every
//! parent key when reset, pending packages never resurrect reset cursors, and the destination is not
//! held open while extracting. In-memory destination; the DuckDB versions are in crates/destinations.

use std::sync::atomic::Ordering;

use pipeline_engine::pipeline::{validate_name, Pipeline, PipelineConfig, PipelineError, RunOptions, RunReport};
use crate::memdest::{MemDestination, Tree};

fn sel(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn open(dir: &std::path::Path, dataset: &str) -> Pipeline {
    Pipeline::open(PipelineConfig::new("p", dataset, dir.join("pipelines"))).expect("open pipeline")
}

async fn run(p: &Pipeline, src: &Tree, d: &mut MemDestination, resources: &[&str]) -> RunReport {
    p.run(src, Some(&sel(resources)), d).await.expect("run")
}

async fn refresh(p: &Pipeline, src: &Tree, d: &mut MemDestination, resources: &[&str]) -> Result<RunReport, PipelineError> {
    p.run_with(src, Some(&sel(resources)), d, RunOptions { full_refresh: true, ..RunOptions::default() }).await
}

fn ids(n: i64) -> Vec<String> {
    let mut v: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    v.sort();
    v
}

fn parent_cursor(p: &Pipeline) -> Option<serde_json::Value> {
    p.local_state()
        .expect("local state")
        .and_then(|s| s.resource("tree", "parents").and_then(|r| r.get("incremental")).and_then(|i| i.get("updated_at")).cloned())
        .and_then(|c| c.get("last_value").cloned())
}

/// Defect 2: a new (deleted, emptied) destination with a stale local mirror reloads everything.
#[tokio::test]
async fn empty_destination_with_stale_local_state_loads_everything_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(5);
    let p = open(dir.path(), "ds");
    let mut d = MemDestination::new("mem:a");
    run(&p, &src, &mut d, &["parents", "others"]).await;
    assert_eq!(d.keys("parents"), Some(ids(5)));

    // The database file is deleted: same place, nothing in it.
    let mut d = MemDestination::new("mem:a");
    let r = run(&p, &src, &mut d, &["parents", "others"]).await;
    assert_eq!(d.keys("parents"), Some(ids(5)), "the table comes back: {r}");
    assert_eq!(d.keys("others"), Some(ids(5)));
    assert!(r.warnings.iter().any(|w| w.contains("empty state")), "loudly logged: {:?}", r.warnings);
    assert!(r.to_string().contains("WARNING"), "{r}");
}

/// Defect 2: switching the dataset is a different destination.
#[tokio::test]
async fn another_dataset_starts_from_an_empty_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(4);
    let mut a = MemDestination::new("mem:a");
    {
        let p = open(dir.path(), "first");
        run(&p, &src, &mut a, &["parents"]).await;
    }
    let p = open(dir.path(), "second");
    let mut b = MemDestination::new("mem:b");
    run(&p, &src, &mut b, &["parents"]).await;
    assert_eq!(b.keys("parents"), Some(ids(4)));
    // And back: the first dataset's own state is used, nothing is fetched again.
    drop(p);
    let p = open(dir.path(), "first");
    src.reset_counters();
    let r = run(&p, &src, &mut a, &["parents"]).await;
    assert!(r.loaded_packages.is_empty(), "{r}");
    assert_eq!(a.data().loads.len(), 1);
}

/// Defect 2: a destination newer than the local mirror (another working dir loaded or dropped) wins.
#[tokio::test]
async fn destination_state_newer_than_the_local_mirror_wins() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(3);
    let mut d = MemDestination::new("mem:shared");
    let a = open(dir_a.path(), "ds");
    run(&a, &src, &mut d, &["parents"]).await;
    let b = open(dir_b.path(), "ds");
    // B drops the table from its working directory.
    let dropped = b.drop_resources("tree", &sel(&["parents"]), &mut d).await.expect("drop");
    assert_eq!(dropped, vec!["parents".to_string()]);
    assert_eq!(d.keys("parents"), None);
    // A's mirror says everything is loaded; the destination's newer state says it is not.
    let r = run(&a, &src, &mut d, &["parents"]).await;
    assert_eq!(d.keys("parents"), Some(ids(3)), "{r}");
}

/// Defect 2: tables the destination no longer has are reloaded although its state lists them.
#[tokio::test]
async fn a_table_dropped_behind_the_engines_back_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(6);
    let p = open(dir.path(), "ds");
    let mut d = MemDestination::new("mem:a");
    run(&p, &src, &mut d, &["parents", "kids", "others"]).await;
    d.remove_table("kids");
    src.reset_counters();
    let r = run(&p, &src, &mut d, &["parents", "kids", "others"]).await;
    assert_eq!(d.keys("kids").map(|k| k.len()), Some(12), "{r}");
    assert_eq!(src.kid_calls(), 6, "every parent's kids are fetched again");
    assert!(r.refreshed.contains(&"kids".to_string()), "{r:?}");
    // The next run is quiet again.
    let r = run(&p, &src, &mut d, &["parents", "kids", "others"]).await;
    assert!(r.loaded_packages.is_empty(), "{r}");
}

/// Defect 2: a pending package is never loaded into another dataset, and a stale one never at all.
#[tokio::test]
async fn pending_packages_go_only_where_they_were_made_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(3);
    let mut a = MemDestination::new("mem:a");
    {
        let p = open(dir.path(), "first");
        let err = p
            .run_with(&src, Some(&sel(&["parents"])), &mut a, RunOptions { fail_before_load: true, ..RunOptions::default() })
            .await
            .expect_err("injected");
        assert!(matches!(err, PipelineError::Load(_)));
    }
    let p = open(dir.path(), "second");
    let mut b = MemDestination::new("mem:b");
    let r = run(&p, &src, &mut b, &["parents"]).await;
    assert!(r.resumed_packages.is_empty(), "{r:?}");
    assert_eq!(b.data().loads.len(), 1, "only the second dataset's own package");
    assert!(r.warnings.iter().any(|w| w.contains("stays pending")), "{:?}", r.warnings);
    drop(p);
    let p = open(dir.path(), "first");
    let r = run(&p, &src, &mut a, &["parents"]).await;
    assert_eq!(r.resumed_packages.len(), 1, "{r:?}");
    assert_eq!(a.keys("parents"), Some(ids(3)));
}

#[tokio::test]
async fn a_stale_pending_package_is_discarded_not_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(3);
    let p = open(dir.path(), "ds");
    let mut d = MemDestination::new("mem:a");
    run(&p, &src, &mut d, &["parents"]).await;
    src.set_parent(2, 5);
    p.run_with(&src, Some(&sel(&["parents"])), &mut d, RunOptions { fail_before_load: true, ..RunOptions::default() })
        .await
        .expect_err("injected");
    // The database is replaced by an empty one: the pending package (one changed row, an advanced
    // cursor) must not become the new destination's only content.
    let mut d = MemDestination::new("mem:a");
    let r = run(&p, &src, &mut d, &["parents"]).await;
    assert_eq!(r.discarded_packages.len(), 1, "{r:?}");
    assert_eq!(d.keys("parents"), Some(ids(3)), "everything fetched again: {r}");
}

/// Defect 3: a failed full refresh leaves destination, local state and packages as they were.
#[tokio::test]
async fn failed_full_refresh_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(4);
    let p = open(dir.path(), "ds");
    let mut d = MemDestination::new("mem:a");
    run(&p, &src, &mut d, &["parents", "others"]).await;
    let before = d.data();
    let local_before = p.local_state().expect("state");
    src.fail.store(true, Ordering::SeqCst);
    let err = refresh(&p, &src, &mut d, &["parents"]).await.expect_err("API fails");
    assert!(matches!(err, PipelineError::Extract(_)), "{err}");
    let after = d.data();
    assert_eq!(after.tables, before.tables, "tables untouched");
    assert_eq!(after.loads, before.loads);
    assert_eq!(after.state_rows.len(), before.state_rows.len());
    assert_eq!(p.local_state().expect("state"), local_before);
    assert!(pipeline_engine::package::pending_packages(&p.workdir().join("load")).expect("list").is_empty());

    // Once the API is back, the refresh swaps the tables in one load.
    src.fail.store(false, Ordering::SeqCst);
    src.reset_counters();
    let r = refresh(&p, &src, &mut d, &["parents"]).await.expect("refresh");
    assert_eq!(r.loaded_packages.len(), 1);
    assert_eq!(src.parents_served.load(Ordering::SeqCst), 4, "all fetched again");
    assert_eq!(d.rows_of_load("parents", &r.loaded_packages[0]), 4, "every row is the new load's");
    assert_eq!(d.keys("others"), Some(ids(4)), "other resources untouched");
}

/// Defect 10: resetting a child refetches all parents' keys; the parent's cursor is not moved.
#[tokio::test]
async fn refreshing_a_child_fetches_every_parents_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(5);
    let p = open(dir.path(), "ds");
    let mut d = MemDestination::new("mem:a");
    run(&p, &src, &mut d, &["parents", "kids"]).await;
    let cursor = parent_cursor(&p);
    src.set_parent(3, 7);
    src.reset_counters();
    let r = refresh(&p, &src, &mut d, &["kids"]).await.expect("refresh");
    assert_eq!(src.kid_calls(), 5, "every parent, not only the changed one: {r}");
    assert_eq!(d.keys("kids").map(|k| k.len()), Some(10));
    assert_eq!(d.rows_of_load("kids", &r.loaded_packages[0]), 10);
    assert_eq!(parent_cursor(&p), cursor, "the unselected parent's cursor stays");
    // So the changed parent is still loaded by the next parents run.
    let r = run(&p, &src, &mut d, &["parents"]).await;
    assert_eq!(r.rows.get("parents"), Some(&1), "{r}");
}

/// Defect 10: `pipeline drop` of a child, then a run of the child alone: every parent's children.
#[tokio::test]
async fn a_dropped_child_is_reloaded_for_every_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(4);
    let p = open(dir.path(), "ds");
    let mut d = MemDestination::new("mem:a");
    run(&p, &src, &mut d, &["parents", "kids"]).await;
    p.drop_resources("tree", &sel(&["kids"]), &mut d).await.expect("drop");
    assert_eq!(d.keys("kids"), None);
    src.reset_counters();
    run(&p, &src, &mut d, &["kids"]).await;
    assert_eq!(src.kid_calls(), 4);
    assert_eq!(d.keys("kids").map(|k| k.len()), Some(8));
    // The reset marker is gone once reloaded: the next run fetches changed parents only.
    src.reset_counters();
    let r = run(&p, &src, &mut d, &["kids"]).await;
    assert_eq!(src.kid_calls(), 0, "{r}");
}

/// Defect 10: a pending package of a reset resource is removed by refresh and by drop.
#[tokio::test]
async fn refresh_and_drop_remove_pending_packages_of_reset_resources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(3);
    let p = open(dir.path(), "ds");
    let mut d = MemDestination::new("mem:a");
    run(&p, &src, &mut d, &["parents"]).await;
    src.set_parent(9, 9);
    p.run_with(&src, Some(&sel(&["parents"])), &mut d, RunOptions { fail_before_load: true, ..RunOptions::default() })
        .await
        .expect_err("injected");
    let pending = || pipeline_engine::package::pending_packages(&p.workdir().join("load")).expect("list").len();
    assert_eq!(pending(), 1);
    p.drop_resources("tree", &sel(&["parents"]), &mut d).await.expect("drop");
    assert_eq!(pending(), 0, "drop removed the package that would bring the cursor back");
    assert_eq!(parent_cursor(&p), None);
    let r = run(&p, &src, &mut d, &["parents"]).await;
    assert!(r.resumed_packages.is_empty());
    assert_eq!(d.keys("parents").map(|k| k.len()), Some(4));

    // Same through a full refresh.
    src.set_parent(10, 10);
    p.run_with(&src, Some(&sel(&["parents"])), &mut d, RunOptions { fail_before_load: true, ..RunOptions::default() })
        .await
        .expect_err("injected");
    assert_eq!(pending(), 1);
    src.reset_counters();
    let r = refresh(&p, &src, &mut d, &["parents"]).await.expect("refresh");
    assert!(r.resumed_packages.is_empty(), "{r:?}");
    assert_eq!(src.parents_served.load(Ordering::SeqCst), 5);
    assert_eq!(d.keys("parents").map(|k| k.len()), Some(5));
    assert_eq!(pending(), 0);
}

/// Defect 11: the destination is disconnected while the source extracts, and after the run.
#[tokio::test]
async fn destination_is_disconnected_while_extracting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Tree::new(3);
    let p = open(dir.path(), "ds");
    let mut d = MemDestination::new("mem:a");
    *src.probe.lock().expect("probe") = Some(d.clone());
    run(&p, &src, &mut d, &["parents", "kids"]).await;
    assert!(!src.probe_saw_connected.load(Ordering::SeqCst), "connected during extract");
    assert!(!d.is_connected(), "connected after the run");
    src.fail.store(true, Ordering::SeqCst);
    p.run(&src, Some(&sel(&["parents"])), &mut d).await.expect_err("fails");
    assert!(!d.is_connected(), "connected after a failed run");
    assert!(d.keys("parents").is_some());
}

/// Defect 6 (engine side): names that would become paths are refused.
#[test]
fn unsafe_names_are_refused() {
    for ok in ["personio", "personio_data", "a-b_C9", &"x".repeat(64)] {
        assert!(validate_name("pipeline", ok).is_ok(), "{ok}");
    }
    for bad in ["", "../../escape", "a/b", "a\\b", "..", "a.b", "-rf", "name with space", "ü", &"x".repeat(65)] {
        let err = validate_name("dataset", bad).expect_err(bad);
        let text = err.to_string();
        assert!(text.contains("invalid dataset name") && text.contains("A-Z"), "{text}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Pipeline::open(PipelineConfig::new("../../escape", "ds", dir.path())).expect_err("refused");
    assert!(matches!(err, PipelineError::InvalidName { .. }), "{err}");
    assert!(!dir.path().join("../../escape").exists());
}
