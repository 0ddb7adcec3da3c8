//! The client obeys every endpoint's published contract (limits, filter operators, date-time formats,
//! scopes): against the strict sandbox, no request of any resource gets a 4xx, and the rows equal the
//! ground truth — one resource at a time, as the default set, and incrementally after mutations.

use std::collections::BTreeSet;
use std::time::Duration;

use personio_sandbox::{Preset, RequestRecord, SandboxConfig, SandboxHandle, Truth, ALL_SCOPES};
use serde_json::Value;

use crate::support::cli_run::{table_counts, BgSandbox, Project, Snapshot, DATASET};
use crate::support::{attr, text, World};

fn tiny() -> SandboxConfig {
    SandboxConfig::preset(Preset::Tiny, 11)
}

fn small() -> SandboxConfig {
    SandboxConfig::preset(Preset::Small, 5)
}

/// Every request that got a 4xx, as `status path?query` lines.
fn client_errors(log: &[RequestRecord]) -> Vec<String> {
    log.iter().filter(|r| (400..500).contains(&r.status)).map(|r| format!("{} {}?{}", r.status, r.path, r.query)).collect()
}

/// A v1 record's id: top-level (`{id} ∪ attributes` resources) or inside `attributes`.
fn v1_id(v: &Value) -> String {
    match v.get("id") {
        Some(id) if !id.is_null() => text(id),
        _ => text(&v["attributes"]["id"]),
    }
}

/// The primary keys of a resource's rows in the ground truth, and the SQL that reads them back.
fn truth_keys(truth: &Truth, resource: &str) -> (String, BTreeSet<String>) {
    let id = "CAST(id AS VARCHAR)".to_string();
    let ids = |items: &[Value], f: fn(&Value) -> String| items.iter().map(f).collect::<BTreeSet<String>>();
    match resource {
        "employees" => (id, truth.employees.iter().map(|e| text(attr(e, "id"))).collect()),
        "absence_types" => (id, ids(&truth.time_off_types, v1_id)),
        "absences" => (id, ids(&truth.absences, v1_id)),
        "attendances" => (id, ids(&truth.attendances, v1_id)),
        "projects" => (id, ids(&truth.projects, v1_id)),
        "document_categories" => (id, ids(&truth.document_categories, v1_id)),
        "custom_reports_list" => (id, ids(&truth.custom_reports, v1_id)),
        "employees_absences_balance" => (
            "CAST(employee_id AS VARCHAR) || '|' || CAST(id AS VARCHAR)".into(),
            truth.balances.iter().flat_map(|(e, rows)| rows.iter().map(move |r| format!("{e}|{}", text(&r["id"])))).collect(),
        ),
        "custom_reports" => (
            "CAST(report_id AS VARCHAR)".into(),
            truth.custom_report_items.iter().filter(|(_, items)| !items.is_empty()).map(|(r, _)| r.clone()).collect(),
        ),
        "persons" => (id, ids(&truth.persons, |p| text(&p["id"]))),
        "employments" => (id, truth.employments.values().flatten().map(|e| text(&e["id"])).collect()),
        "absence_periods" => (id, ids(&truth.absence_periods, |p| text(&p["id"]))),
        "attendance_periods" => (id, ids(&truth.attendance_periods, |p| text(&p["id"]))),
        "projects_v2" => (id, ids(&truth.projects_v2, |p| text(&p["id"]))),
        other => panic!("no ground truth for {other}"),
    }
}

/// Rows a resource should have in the truth (report items have no unique id in the truth, count them).
fn truth_rows(truth: &Truth, resource: &str) -> usize {
    match resource {
        "custom_reports" => truth.custom_report_items.values().map(Vec::len).sum(),
        r => truth_keys(truth, r).1.len(),
    }
}

/// The table holds exactly the truth's rows: same count, same keys, no duplicates.
fn assert_equals_truth(w: &World, truth: &Truth, resource: &str) {
    let (sql, want) = truth_keys(truth, resource);
    let got = w.strings(&format!("SELECT {sql} FROM {}.{resource}", w.dataset));
    assert_eq!(got.len(), truth_rows(truth, resource), "{resource}: row count");
    let got: BTreeSet<String> = got.into_iter().collect();
    assert_eq!(got, want, "{resource}: keys");
}

const ALL: &[&str] = &[
    "employees", "absence_types", "absences", "attendances", "projects", "document_categories", "employees_absences_balance",
    "custom_reports_list", "custom_reports", "persons", "employments", "absence_periods", "attendance_periods", "projects_v2",
];

#[tokio::test]
async fn every_resource_alone_gets_no_4xx_and_equals_truth() {
    for resource in ALL {
        let mut w = World::new(tiny()).await;
        let truth = w.sandbox.handle().truth();
        let report = w.run(&[resource]).await;
        assert_eq!(report.loaded_packages.len(), 1, "{resource}: {report}");
        let errors = client_errors(&w.sandbox.handle().request_log());
        assert!(errors.is_empty(), "{resource}: 4xx responses: {errors:#?}");
        assert_equals_truth(&w, &truth, resource);
    }
}

#[tokio::test]
async fn default_set_gets_no_4xx_and_equals_truth() {
    let mut w = World::new(small()).await;
    w.options.allow_retired_v1 = false;
    let truth = w.sandbox.handle().truth();
    let report = w.run(&[]).await;
    assert_eq!(report.loaded_packages.len(), 1, "{report}");
    let log = w.sandbox.handle().request_log();
    let errors = client_errors(&log);
    assert!(errors.is_empty(), "4xx responses: {errors:#?}");
    for resource in ["employees", "absence_types", "absences", "document_categories", "employees_absences_balance", "custom_reports_list", "custom_reports", "attendance_periods", "projects_v2"] {
        assert_equals_truth(&w, &truth, resource);
    }
    // The published maxima: attendance-periods and projects at most 100 per page.
    for r in log.iter().filter(|r| r.path == "/v2/attendance-periods" || r.path == "/v2/projects") {
        assert!(!r.query.contains("limit=200"), "{}?{}", r.path, r.query);
    }
    let first = log.iter().find(|r| r.path == "/v2/attendance-periods").expect("attendance-periods requested");
    assert!(first.query.contains("limit=100"), "{}", first.query);
}

/// Records of a v2 list whose `updated_at` is at or after `since`.
fn updated_since(items: &[Value], since: chrono::DateTime<chrono::Utc>) -> BTreeSet<String> {
    items
        .iter()
        .filter(|p| p["updated_at"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).is_some_and(|t| t >= since))
        .map(|p| text(&p["id"]))
        .collect()
}

fn loaded_in(w: &World, table: &str, load_id: &str) -> BTreeSet<String> {
    w.id_set(&format!("SELECT CAST(id AS VARCHAR) FROM {}.{table} WHERE _dlt_load_id = '{load_id}'", w.dataset))
}

const INCREMENTAL: &[&str] = &[
    "employees", "employees_absences_balance", "absences", "attendances", "persons", "employments", "absence_periods", "attendance_periods",
];

#[tokio::test]
async fn incremental_runs_get_no_4xx_and_load_the_changes() {
    let mut w = World::new(small()).await;
    let h = w.sandbox.handle();
    w.run(INCREMENTAL).await;
    assert!(client_errors(&h.request_log()).is_empty(), "run 1: {:#?}", client_errors(&h.request_log()));

    // Mutate: employees (persons follow), absences, attendances (attendance periods follow).
    let t = h.advance_clock(chrono::Duration::hours(3));
    h.update_employees(4);
    let truth = h.truth();
    let absence: i64 = v1_id(&truth.absences[2]).parse().expect("absence id");
    let attendance: i64 = v1_id(&truth.attendances[3]).parse().expect("attendance id");
    assert!(h.update_absence(absence) && h.update_attendance(attendance));
    h.reset_request_log();
    let report = w.run(INCREMENTAL).await;
    let log = h.request_log();
    assert!(client_errors(&log).is_empty(), "run 2: {:#?}", client_errors(&log));
    assert_eq!(report.loaded_packages.len(), 1, "{report}");
    let load = &report.loaded_packages[0];
    let truth = h.truth();
    // Exactly the changed records are merged again; nothing of the unchanged set is re-fetched in bulk.
    assert_eq!(loaded_in(&w, "persons", load), updated_since(&truth.persons, t), "persons reloaded");
    assert_eq!(loaded_in(&w, "attendance_periods", load), updated_since(&truth.attendance_periods, t));
    assert_eq!(loaded_in(&w, "absence_periods", load), updated_since(&truth.absence_periods, t));
    assert_eq!(log.iter().filter(|r| r.path == "/v2/persons").count(), 1, "one page of changed persons");
    let persons_query = &log.iter().find(|r| r.path == "/v2/persons").expect("persons").query;
    assert!(persons_query.contains("updated_at.gt=") && !persons_query.contains(".gte"), "{persons_query}");
    for resource in INCREMENTAL {
        assert_equals_truth(&w, &truth, resource);
    }
}

/// `persons` filters with a strict `updated_at.gt`: records that share the cursor's timestamp but
/// arrive in a later run are loaded, the ones already loaded are not loaded again.
#[tokio::test]
async fn persons_sharing_the_boundary_timestamp_are_neither_missed_nor_reloaded() {
    let mut w = World::new(small()).await;
    let h = w.sandbox.handle();
    w.run(&["persons"]).await;
    let t = h.advance_clock(chrono::Duration::hours(1));
    h.update_employees(2);
    let first: BTreeSet<String> = updated_since(&h.truth().persons, t);
    let r = w.run(&["persons"]).await;
    assert_eq!(loaded_in(&w, "persons", &r.loaded_packages[0]), first);

    // Same clock: a new person at the very timestamp the cursor now holds.
    let added: BTreeSet<String> = h.add_employees(1).into_iter().map(|i| i.to_string()).collect();
    h.reset_request_log();
    let r = w.run(&["persons"]).await;
    assert!(client_errors(&h.request_log()).is_empty(), "{:#?}", client_errors(&h.request_log()));
    assert_eq!(r.loaded_packages.len(), 1, "{r}");
    assert_eq!(loaded_in(&w, "persons", &r.loaded_packages[0]), added, "only the new boundary record");
    assert_equals_truth(&w, &h.truth(), "persons");

    // Nothing changed: no package at all.
    let r = w.run(&["persons"]).await;
    assert!(r.loaded_packages.is_empty(), "{r}");
}

/// A credential without whitelisted attributes gets persons as `{id, employments, _meta}`: the run loads
/// all of them with one warning naming what to whitelist, and the next run works the same way.
#[tokio::test]
async fn persons_without_the_cursor_field_fall_back_to_a_full_load_with_one_warning() {
    let mut cfg = small();
    cfg.persons_without_attributes = true;
    let mut w = World::new(cfg).await;
    let h = w.sandbox.handle();
    for run in 1..=2 {
        let source = w.source();
        let selected = vec!["persons".to_string(), "employments".to_string()];
        let report = w.pipeline.run(&source, Some(&selected), &mut w.destination).await.expect("run");
        assert_eq!(report.loaded_packages.len(), 1, "run {run}: {report}");
        let warnings = source.warnings();
        assert_eq!(warnings.len(), 1, "run {run}: {warnings:?}");
        assert!(warnings[0].contains("updated_at") && warnings[0].contains("whitelist"), "{}", warnings[0]);
        assert!(client_errors(&h.request_log()).is_empty(), "{:#?}", client_errors(&h.request_log()));
        let truth = h.truth();
        assert_equals_truth(&w, &truth, "persons");
        assert_equals_truth(&w, &truth, "employments");
        h.advance_clock(chrono::Duration::hours(1));
        h.update_employees(2);
    }
}

/// A credential without `personio:attendances:read`: the default run fails naming the scope and the
/// resource, exits with 3 (docs/errors.md), and the dataset of the previous run is untouched.
#[test]
fn a_missing_scope_names_scope_and_resource_exits_3_and_leaves_the_dataset() {
    let mut cfg = tiny();
    cfg.scopes = Some(ALL_SCOPES.iter().filter(|s| **s != "personio:attendances:read").map(|s| s.to_string()).collect());
    let sandbox = BgSandbox::start(cfg);
    let project = Project::new();
    let limit = Duration::from_secs(120);
    let ok = project.run(project.cli(&sandbox.base_url()).args(["run", "--resources", "employees,absences"]), limit);
    assert!(ok.ok(), "{}", ok.summary());
    let before = Snapshot::take(&project, true);
    assert!(before.tables.as_ref().is_some_and(|t| t.get("employees").copied().unwrap_or(0) > 0), "{before:?}");

    let failed = project.run(project.cli(&sandbox.base_url()).arg("run"), limit);
    assert_eq!(failed.code, Some(3), "{}", failed.summary());
    let message = failed.error_lines().join("\n");
    assert!(message.contains("attendance_periods") && message.contains("personio:attendances:read"), "{}", failed.stderr);
    assert_eq!(Snapshot::take(&project, true), before, "the dataset and state are untouched");
    let tables = table_counts(&project.db()).unwrap_or_default();
    assert!(!tables.contains_key("attendance_periods"), "{tables:?} in {DATASET}");
    let h: SandboxHandle = sandbox.handle();
    assert!(h.request_log().iter().any(|r| r.status == 403 && r.path == "/v2/attendance-periods"));
}
