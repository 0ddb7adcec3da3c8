//! Deletion detection against the sandbox (docs/deletions.md): absences and attendances deleted and an
//! employee erased in the sandbox; after a reconciled run the dataset equals the sandbox's ground truth
//! with no orphaned child rows (hard), or holds the deleted rows marked (soft); a reconciliation that did
//! not see every page deletes nothing.

use std::collections::{BTreeMap, BTreeSet};

use personio_client::{ClientConfig, PersonioClient};
use personio_sandbox::{FaultConfig, FaultKind, Preset, SandboxConfig, SandboxHandle, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use personio_source::PersonioSource;
use pipeline_engine::pipeline::{RunOptions, RunReport};
use pipeline_engine::reconcile::{DeleteMode, ReconcilePolicy, Schedule};

use crate::support::{attr, text, World};

/// Every resource whose records can disappear (v2 ones included), with the replace list the report rows
/// hang off.
const RESOURCES: &[&str] = &[
    "employees",
    "employees_absences_balance",
    "absences",
    "attendance_periods",
    "custom_reports_list",
    "custom_reports",
    "persons",
    "employments",
    "absence_periods",
];

fn small() -> SandboxConfig {
    SandboxConfig::preset(Preset::Small, 11)
}

async fn run_with(w: &mut World, resources: &[&str], options: RunOptions) -> RunReport {
    let source = w.source();
    run_source(w, &source, resources, options).await
}

async fn run_source(w: &mut World, source: &PersonioSource, resources: &[&str], options: RunOptions) -> RunReport {
    let selected: Vec<String> = resources.iter().map(|s| s.to_string()).collect();
    w.pipeline.run_with(source, Some(&selected), &mut w.destination, options).await.expect("run")
}

fn forced() -> RunOptions {
    RunOptions { force_reconcile: true, ..RunOptions::default() }
}

/// Delete three absences and two attendances, and erase the employee with the most absences (who has
/// attendances and report rows too). Returns the erased employee's id.
fn delete_things(h: &SandboxHandle) -> i64 {
    let (absences, attendances, erased) = h.with_company(|c| {
        let mut per_employee: BTreeMap<i64, usize> = BTreeMap::new();
        for a in &c.absences {
            *per_employee.entry(a.employee_id).or_default() += 1;
        }
        let erased = c
            .employees
            .iter()
            .filter(|e| c.attendances.iter().any(|a| a.employee_id == e.id))
            .max_by_key(|e| per_employee.get(&e.id).copied().unwrap_or(0))
            .map(|e| e.id)
            .expect("an employee with attendances");
        let absences: Vec<i64> = c.absences.iter().filter(|a| a.employee_id != erased && c.is_v1_time_off(a)).take(3).map(|a| a.id).collect();
        let attendances: Vec<i64> = c.attendances.iter().filter(|a| a.employee_id != erased).rev().take(2).map(|a| a.id).collect();
        assert!(per_employee.get(&erased).copied().unwrap_or(0) > 0, "the erased employee has absences");
        (absences, attendances, erased)
    });
    for id in absences {
        assert!(h.delete_absence(id));
    }
    for id in attendances {
        assert!(h.delete_attendance(id));
    }
    assert!(h.erase_employee(erased));
    erased
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

/// The dataset's rows (keys) per reconciled table equal the sandbox's truth.
fn assert_equals_truth(w: &World, live: &str) {
    let t = w.sandbox.handle().truth();
    let ds = &w.dataset;
    let q = |sql: &str| w.id_set(&format!("{sql}{live}"));
    assert_eq!(q(&format!("SELECT CAST(id AS VARCHAR) FROM {ds}.employees")), set(t.employees.iter().map(|e| text(attr(e, "id")))), "employees");
    assert_eq!(q(&format!("SELECT CAST(id AS VARCHAR) FROM {ds}.absences")), set(t.absences.iter().map(|a| text(&a["attributes"]["id"]))), "absences");
    assert_eq!(q(&format!("SELECT id FROM {ds}.attendance_periods")), set(t.attendance_periods.iter().map(|p| text(&p["id"]))), "attendance_periods");
    assert_eq!(q(&format!("SELECT id FROM {ds}.absence_periods")), set(t.absence_periods.iter().map(|p| text(&p["id"]))), "absence_periods");
    assert_eq!(q(&format!("SELECT CAST(id AS VARCHAR) FROM {ds}.persons")), set(t.persons.iter().map(|p| text(&p["id"]))), "persons");
    let employments = t.employments.values().flatten().map(|e| text(&e["id"]));
    assert_eq!(q(&format!("SELECT CAST(id AS VARCHAR) FROM {ds}.employments")), set(employments), "employments");
    let balances = t.balances.iter().flat_map(|(e, rows)| rows.iter().map(move |b| format!("{e}|{}", text(&b["id"]))));
    assert_eq!(q(&format!("SELECT CAST(employee_id AS VARCHAR) || '|' || CAST(id AS VARCHAR) FROM {ds}.employees_absences_balance")), set(balances), "balances");
    let items = t.custom_report_items.iter().flat_map(|(r, items)| items.iter().map(move |i| format!("{r}|{}", text(&i["employee_id"]))));
    assert_eq!(q(&format!("SELECT report_id || '|' || CAST(item_id AS VARCHAR) FROM {ds}.custom_reports")), set(items), "custom report rows");
}

/// Child rows whose root row is gone, per child table of the reconciled roots.
fn orphans(w: &World) -> BTreeMap<String, i64> {
    let ds = &w.dataset;
    let mut out = BTreeMap::new();
    for root in ["employees", "absences", "attendance_periods", "absence_periods", "persons", "employments", "employees_absences_balance", "custom_reports"] {
        let children = w.strings(&format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{ds}' AND table_name LIKE '{root}\\_\\_%' ESCAPE '\\'"
        ));
        for child in children {
            let n = w.i64(&format!(
                "SELECT count(*) FROM {ds}.\"{child}\" c WHERE NOT EXISTS (SELECT 1 FROM {ds}.{root} r WHERE r._dlt_id = c._dlt_root_id)"
            ));
            out.insert(child, n);
        }
    }
    out
}

#[tokio::test]
async fn a_reconciled_run_leaves_the_dataset_equal_to_the_ground_truth() {
    let mut w = World::new(small()).await;
    w.options.allow_retired_v1 = false;
    let first = run_with(&mut w, RESOURCES, RunOptions::default()).await;
    // The first run read every listing whole: its reconciliations cost no request.
    assert!(first.reconciliations.iter().all(|r| r.status == "applied" && r.requests == 0), "{first}");
    let h = w.sandbox.handle();
    h.advance_clock(chrono::Duration::hours(3));
    h.update_employees(2);
    let erased = delete_things(&h);

    // Not due yet (daily schedules): deleted records stay.
    let r = run_with(&mut w, RESOURCES, RunOptions::default()).await;
    assert!(r.reconciliations.iter().all(|x| x.resource == "custom_reports"), "only the free one runs: {r}");
    assert_eq!(w.i64(&format!("SELECT count(*) FROM {}.employees WHERE id = {erased}", w.dataset)), 1);

    // --reconcile: everything gone upstream is gone here, children included.
    h.reset_request_log();
    let r = run_with(&mut w, RESOURCES, forced()).await;
    assert_equals_truth(&w, "");
    assert!(orphans(&w).values().all(|n| *n == 0), "orphaned child rows: {:?}", orphans(&w));
    let by: BTreeMap<&str, &pipeline_engine::reconcile::ReconcileReport> = r.reconciliations.iter().map(|x| (x.resource.as_str(), x)).collect();
    for name in ["employees", "absences", "attendance_periods", "absence_periods", "persons", "employments", "employees_absences_balance", "custom_reports"] {
        assert_eq!(by.get(name).map(|x| x.status.as_str()), Some("applied"), "{name}: {r}");
    }
    assert_eq!(by["employees"].rows, 1, "the erased employee");
    assert!(by["absences"].rows >= 3 && by["attendance_periods"].rows >= 2, "{r}");
    // The request cost: key listings only where the run's extract was filtered.
    let log = h.request_log();
    let key_pages = |path: &str, marker: &str| log.iter().filter(|x| x.path == path && !x.query.contains(marker)).count() as u64;
    assert_eq!(by["absences"].requests, key_pages("/v1/company/time-offs", "updated_from"), "{r}");
    assert!(log.iter().any(|x| x.path == "/v1/company/employees" && x.query.contains("attributes")), "employees' key listing asks for ids only");
    // v2 key listings in one cursor chain: exactly one request per page of 100 (persons: 50).
    let t = h.truth();
    assert_eq!(by["attendance_periods"].requests, t.attendance_periods.len().div_ceil(100) as u64, "{r}");
    assert_eq!(by["absence_periods"].requests, t.absence_periods.len().div_ceil(100) as u64, "{r}");
    assert_eq!(by["persons"].requests, t.persons.len().div_ceil(50) as u64, "{r}");
    assert_eq!(by["employees"].requests, t.employees.len().div_ceil(100) as u64, "{r}");
    assert_eq!(by["employees_absences_balance"].requests, 0, "shares the employees' key listing");
    assert_eq!(by["custom_reports"].requests, 0, "free: every run reads every report");
    assert!(r.to_string().contains("Reconciled absences:"), "{r}");
}

#[tokio::test]
async fn soft_deletes_keep_the_deleted_rows_marked() {
    let mut w = World::new(small()).await;
    w.options.allow_retired_v1 = false;
    let resources = ["employees", "employees_absences_balance", "absences", "attendance_periods"];
    let soft = || {
        let mut o = forced();
        for r in resources {
            o.reconcile.insert(r.to_string(), ReconcilePolicy { schedule: Schedule::Never, deletes: DeleteMode::Soft });
        }
        o
    };
    run_with(&mut w, &resources, soft()).await;
    let h = w.sandbox.handle();
    let before: BTreeMap<&str, i64> = resources.iter().map(|r| (*r, w.count(r))).collect();
    let children_before = w.count("employees__cost_centers");
    let erased = delete_things(&h);
    let r = run_with(&mut w, &resources, soft()).await;
    // Nothing removed: the rows that are gone are marked, the others are not.
    for (table, n) in &before {
        assert_eq!(w.count(table), *n, "{table} keeps its rows");
    }
    assert_eq!(w.count("employees__cost_centers"), children_before, "child rows stay with their marked root");
    let ds = &w.dataset;
    assert_eq!(w.strings(&format!("SELECT CAST(id AS VARCHAR) FROM {ds}.employees WHERE _dlt_deleted_at IS NOT NULL")), vec![erased.to_string()]);
    let t = h.truth();
    let live = " WHERE _dlt_deleted_at IS NULL";
    assert_eq!(w.id_set(&format!("SELECT CAST(id AS VARCHAR) FROM {ds}.absences{live}")), set(t.absences.iter().map(|a| text(&a["attributes"]["id"]))));
    assert_eq!(w.id_set(&format!("SELECT id FROM {ds}.attendance_periods{live}")), set(t.attendance_periods.iter().map(|p| text(&p["id"]))));
    let balances = t.balances.iter().flat_map(|(e, rows)| rows.iter().map(move |b| format!("{e}|{}", text(&b["id"]))));
    assert_eq!(w.id_set(&format!("SELECT CAST(employee_id AS VARCHAR) || '|' || CAST(id AS VARCHAR) FROM {ds}.employees_absences_balance{live}")), set(balances));
    // Marked with the reconciliation time.
    let marks = w.strings(&format!("SELECT DISTINCT CAST(_dlt_deleted_at AS VARCHAR) FROM {ds}.absences WHERE _dlt_deleted_at IS NOT NULL"));
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert!(r.reconciliations.iter().all(|x| x.mode == "soft"), "{r}");
}

/// A client that gives up after one attempt, so a server fault fails the request it hits.
fn one_attempt_source(w: &World) -> PersonioSource {
    let mut c = ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(w.sandbox.base_url());
    c.max_attempts = 1;
    PersonioSource::new(PersonioClient::new(c).expect("client"), w.options.clone())
}

#[tokio::test]
async fn a_fault_during_reconciliation_deletes_nothing() {
    let mut w = World::new(small()).await;
    w.options.allow_retired_v1 = false;
    w.options.items_per_page = 50;
    run_with(&mut w, &["absences"], RunOptions::default()).await;
    let h = w.sandbox.handle();
    let gone: Vec<i64> = h.with_company(|c| c.absences.iter().filter(|a| c.is_v1_time_off(a)).take(2).map(|a| a.id).collect());
    for id in &gone {
        assert!(h.delete_absence(*id));
    }
    let loaded = w.count("absences");
    let still_there = |w: &World| w.i64(&format!("SELECT count(*) FROM {}.absences WHERE id IN ({}, {})", w.dataset, gone[0], gone[1]));

    // Records inserted between the pages of the key listing (before every request from the third on):
    // its total changes while it is read, so it is not trusted.
    h.reset_request_log();
    h.set_faults(FaultConfig { at_requests: (3..=80).map(|n| (n, FaultKind::InsertRecords)).collect(), ..FaultConfig::default() });
    let r = run_with(&mut w, &["absences"], forced()).await;
    h.set_faults(FaultConfig::default());
    let rec = &r.reconciliations[0];
    assert_eq!(rec.status, "skipped", "{r}");
    assert!(rec.reason.as_deref().is_some_and(|x| x.contains("total changed")), "{rec:?}");
    assert!(rec.requests >= 2, "{rec:?}");
    assert_eq!(still_there(&w), 2, "nothing deleted");
    assert!(w.count("absences") >= loaded);

    // The key listing fails outright (a 500 and no retry): nothing deleted, the rows of the run load.
    // Requests: 1 token, 2 the one page of changes, 3 the key listing's first page.
    w.options.items_per_page = 200;
    h.advance_clock(chrono::Duration::hours(1));
    let updated = h.with_company(|c| c.absences.iter().find(|a| c.is_v1_time_off(a)).map(|a| a.id)).expect("an absence");
    assert!(h.update_absence(updated));
    h.reset_request_log();
    h.set_faults(FaultConfig { at_requests: vec![(3, FaultKind::Status500)], ..FaultConfig::default() });
    let source = one_attempt_source(&w);
    let r = run_source(&mut w, &source, &["absences"], forced()).await;
    h.set_faults(FaultConfig::default());
    assert_eq!(r.reconciliations[0].status, "skipped", "{r}");
    assert!(r.reconciliations[0].reason.as_deref().is_some_and(|x| x.contains("failed")), "{r}");
    assert_eq!(still_there(&w), 2, "nothing deleted");
    assert!(r.loaded_packages.len() == 1 && r.rows.get("absences").is_some_and(|n| *n >= 1), "the run's own rows loaded: {r}");
    assert!(r.warnings.iter().any(|x| x.contains("nothing deleted")), "{:?}", r.warnings);

    // The next reconciliation that sees every page deletes them.
    let r = run_with(&mut w, &["absences"], forced()).await;
    assert_eq!(r.reconciliations[0].status, "applied", "{r}");
    assert_eq!(still_there(&w), 0);
    let truth: BTreeSet<String> = h.truth().absences.iter().map(|a| text(&a["attributes"]["id"])).collect();
    assert_eq!(w.id_set(&format!("SELECT CAST(id AS VARCHAR) FROM {}.absences", w.dataset)), truth);
}

/// The binary: per-resource settings from `.dlt/config.toml`, `--reconcile`, the cost in the JSON summary,
/// and a bad value is a configuration error (exit code 2) naming the setting.
#[test]
fn the_cli_reads_the_settings_and_reconcile_forces_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".dlt")).expect("mkdir");
    let run = |config: &str, args: &[&str]| {
        std::fs::write(dir.path().join(".dlt/config.toml"), config).expect("config");
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_personio-pipeline"));
        c.env_clear().arg("--project-dir").arg(dir.path()).arg("--pipelines-dir").arg(dir.path().join("pipelines"));
        c.args(["--json", "run", "--demo", "--resources", "absences"]).args(args);
        c.output().expect("run the binary")
    };
    let soft = "[sources.personio.resources.absences]\ndeletes = \"soft\"\nreconcile = \"7d\"\n";
    let first = run(soft, &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    // Every demo run starts a fresh sandbox, so nothing is gone; the point is the settings and the cost.
    let out = run(soft, &["--reconcile"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rec = &report["reconciliations"][0];
    assert_eq!((rec["resource"].as_str(), rec["status"].as_str(), rec["mode"].as_str()), (Some("absences"), Some("applied"), Some("soft")), "{report}");
    assert!(rec["requests"].as_u64().is_some_and(|n| n >= 1) && rec["keys"].as_u64().is_some_and(|n| n > 0), "{rec}");
    // Without --reconcile the weekly schedule is not due: no reconciliation, no key listing.
    let out = run(soft, &[]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(report.get("reconciliations").is_none(), "{report}");
    let bad = run("[sources.personio.resources.absences]\nreconcile = \"weekly\"\n", &[]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("sources.personio.resources.absences.reconcile") && err.contains("allowed"), "{err}");
}
