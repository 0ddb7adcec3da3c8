//! The run trace (`trace.json`): written for completed and failed runs, with the steps and their times.

use std::sync::atomic::Ordering;

use pipeline_engine::pipeline::{Pipeline, PipelineConfig};
use serde_json::Value;

use crate::memdest::{MemDestination, Tree};

fn sel(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn steps(trace: &Value) -> Vec<(String, bool, Option<String>)> {
    trace["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            let finished = s.get("finished_at").is_some();
            let error = s.get("error").and_then(Value::as_str).map(str::to_string);
            (s["step"].as_str().unwrap_or_default().to_string(), finished, error)
        })
        .collect()
}

#[tokio::test]
async fn a_completed_run_traces_every_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::open(PipelineConfig::new("p", "ds", dir.path().join("pipelines"))).expect("open");
    let src = Tree::new(3);
    let mut d = MemDestination::new("mem:a");
    let report = p.run(&src, Some(&sel(&["parents"])), &mut d).await.expect("run");
    let trace = p.last_trace().expect("trace.json");
    let got = steps(&trace);
    let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["sync", "extract", "normalize", "load"]);
    assert!(got.iter().all(|(_, finished, error)| *finished && error.is_none()), "{got:?}");
    assert!(trace.get("error").is_none(), "{trace}");
    assert_eq!(trace["rows"]["parents"], 3);
    assert!(trace["started_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{trace}");
    assert_eq!(report.steps.len(), 4);
}

#[tokio::test]
async fn a_failed_run_traces_its_error_and_the_step_it_ended_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::open(PipelineConfig::new("p", "ds", dir.path().join("pipelines"))).expect("open");
    let src = Tree::new(3);
    src.fail.store(true, Ordering::SeqCst);
    let mut d = MemDestination::new("mem:a");
    let err = p.run(&src, Some(&sel(&["parents", "others"])), &mut d).await.expect_err("extract fails");
    let trace = p.last_trace().expect("trace.json written for a failed run");
    assert_eq!(trace["error"].as_str(), Some(err.to_string().as_str()));
    assert_eq!(trace["resources"], serde_json::json!(["parents", "others"]));
    let got = steps(&trace);
    let extract = got.iter().find(|(n, _, _)| n == "extract").expect("extract step");
    assert!(!extract.1 && extract.2.as_deref() == Some(err.to_string().as_str()), "{got:?}");
    assert!(got.iter().any(|(n, finished, _)| n == "sync" && *finished), "{got:?}");
    assert!(!got.iter().any(|(n, _, _)| n == "load"), "nothing was loaded: {got:?}");
}
