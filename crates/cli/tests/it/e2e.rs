//! The dataset equals the sandbox's ground truth, row by row, for every resource and across runs.

use std::collections::BTreeSet;

use personio_sandbox::{FaultConfig, FaultKind, Preset, SandboxConfig};

use crate::support::{attr, text, World};

fn small() -> SandboxConfig {
    SandboxConfig::preset(Preset::Small, 7)
}

fn tiny() -> SandboxConfig {
    SandboxConfig::preset(Preset::Tiny, 3)
}

#[tokio::test]
async fn full_load_of_default_resources_equals_ground_truth() {
    let mut w = World::new(small()).await;
    w.options.allow_retired_v1 = false;
    let report = w.run(&[]).await;
    assert_eq!(report.loaded_packages.len(), 1, "{report}");
    let truth = w.sandbox.handle().truth();

    // employees: ids, names and the cursor (UTC) row by row.
    let ids: BTreeSet<String> = truth.employees.iter().map(|e| text(attr(e, "id"))).collect();
    assert_eq!(w.id_set("SELECT CAST(id AS VARCHAR) FROM test_data.employees"), ids);
    for e in &truth.employees {
        let id = text(attr(e, "id"));
        let got = w.strings(&format!("SELECT first_name || '|' || last_name || '|' || email FROM test_data.employees WHERE id = {id}"));
        let want = format!("{}|{}|{}", text(attr(e, "first_name")), text(attr(e, "last_name")), text(attr(e, "email")));
        assert_eq!(got, vec![want]);
        let lm = chrono::DateTime::parse_from_rfc3339(attr(e, "last_modified_at").as_str().expect("string")).expect("rfc3339").with_timezone(&chrono::Utc);
        // TIMESTAMPTZ prints in UTC (no ICU extension is loaded).
        let got = w.strings(&format!("SELECT CAST(last_modified_at AS VARCHAR) FROM test_data.employees WHERE id = {id}"));
        assert_eq!(got, vec![lm.format("%Y-%m-%d %H:%M:%S+00").to_string()], "last_modified_at of {id} in UTC");
    }
    // absences, types, categories, reports, balances, attendance periods, projects.
    let absence_ids: BTreeSet<String> = truth.absences.iter().map(|a| text(&a["attributes"]["id"])).collect();
    assert_eq!(w.id_set("SELECT CAST(id AS VARCHAR) FROM test_data.absences"), absence_ids);
    assert_eq!(w.count("absence_types") as usize, truth.time_off_types.len());
    assert_eq!(w.count("document_categories") as usize, truth.document_categories.len());
    assert_eq!(w.count("custom_reports_list") as usize, truth.custom_reports.len());
    let items: usize = truth.custom_report_items.values().map(Vec::len).sum();
    assert_eq!(w.count("custom_reports") as usize, items);
    let balances: usize = truth.balances.values().map(Vec::len).sum();
    assert_eq!(w.count("employees_absences_balance") as usize, balances);
    let periods: BTreeSet<String> = truth.attendance_periods.iter().map(|p| text(&p["id"])).collect();
    assert_eq!(w.id_set("SELECT id FROM test_data.attendance_periods"), periods);
    assert_eq!(w.count("projects_v2") as usize, truth.projects_v2.len());
    // Bookkeeping: one completed load; every root row carries its id.
    assert_eq!(w.i64("SELECT count(*) FROM test_data._dlt_loads WHERE status = 0"), 1);
    assert_eq!(w.i64("SELECT count(DISTINCT _dlt_load_id) FROM test_data.employees"), 1);
    // Half days produce the variant column, as in a real dlt dataset.
    let has_half = truth.absences.iter().any(|a| a["attributes"]["days_count"].as_f64().is_some_and(|d| d.fract() != 0.0));
    if has_half {
        assert!(w.i64("SELECT count(*) FROM test_data.absences WHERE days_count__v_double IS NOT NULL") > 0);
    }
}

#[tokio::test]
async fn every_seed_resource_alone_matches_truth() {
    let truth = World::new(tiny()).await.sandbox.handle().truth();
    let expected: Vec<(&str, usize)> = vec![
        ("employees", truth.employees.len()),
        ("absence_types", truth.time_off_types.len()),
        ("absences", truth.absences.len()),
        ("attendances", truth.attendances.len()),
        ("projects", truth.projects.len()),
        ("document_categories", truth.document_categories.len()),
        ("employees_absences_balance", truth.balances.values().map(Vec::len).sum()),
        ("custom_reports_list", truth.custom_reports.len()),
        ("custom_reports", truth.custom_report_items.values().map(Vec::len).sum()),
    ];
    for (resource, n) in expected {
        let mut w = World::new(tiny()).await;
        let r = w.run(&[resource]).await;
        assert_eq!(r.loaded_packages.len(), 1, "{resource}");
        assert_eq!(w.count(resource) as usize, n, "{resource}");
        // Only the selected resource's tables exist (a transformer's parent is not loaded).
        let roots = w.strings("SELECT table_name FROM information_schema.tables WHERE table_schema = 'test_data' AND table_name NOT LIKE '%\\_\\_%' ESCAPE '\\' AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\'");
        assert_eq!(roots, vec![resource.to_string()], "{resource}");
    }
}

#[tokio::test]
async fn incremental_runs_load_exactly_the_changes() {
    let mut w = World::new(small()).await;
    let resources = ["employees", "employees_absences_balance", "absences", "attendances", "absence_types"];
    w.run(&resources).await;
    let loads = w.i64("SELECT count(*) FROM test_data._dlt_loads");

    // No change: the only package is absence_types' (a replace resource always loads).
    let h = w.sandbox.handle();
    h.reset_request_log();
    let r = w.run(&["employees", "employees_absences_balance", "absences", "attendances"]).await;
    assert!(r.loaded_packages.is_empty(), "no change must create no package: {r}");
    assert_eq!(w.i64("SELECT count(*) FROM test_data._dlt_loads"), loads);
    let balance_calls = h.request_log().iter().filter(|r| r.path.ends_with("/absences/balance")).count();
    assert_eq!(balance_calls, 0, "no employee changed, so no balance is fetched");

    // Change 3 employees and some absences.
    h.advance_clock(chrono::Duration::hours(2));
    let changed: BTreeSet<String> = h.update_employees(3).into_iter().map(|i| i.to_string()).collect();
    let truth = h.truth();
    let some_absence = text(&truth.absences[0]["attributes"]["id"]);
    let gone = text(&truth.absences[1]["attributes"]["id"]);
    assert!(h.update_absence(some_absence.parse().expect("id")));
    assert!(h.delete_absence(gone.parse().expect("id")));
    h.reset_request_log();
    let r = w.run(&["employees", "employees_absences_balance", "absences", "attendances"]).await;
    assert_eq!(r.loaded_packages.len(), 1);
    let load_id = &r.loaded_packages[0];
    let reloaded = w.id_set(&format!("SELECT CAST(id AS VARCHAR) FROM test_data.employees WHERE _dlt_load_id = '{load_id}'"));
    assert_eq!(reloaded, changed, "exactly the changed employees are merged again");
    let balance_calls = h.request_log().iter().filter(|r| r.path.ends_with("/absences/balance")).count();
    assert_eq!(balance_calls, changed.len(), "balances are fetched for changed employees only");
    let employee_calls = h.request_log().iter().filter(|r| r.path == "/v1/company/employees").count();
    assert_eq!(employee_calls, 1, "one page of changes");
    let updated = w.strings(&format!("SELECT CAST(id AS VARCHAR) FROM test_data.absences WHERE _dlt_load_id = '{load_id}'"));
    assert_eq!(updated, vec![some_absence]);
    // Personio has no tombstones: an incremental merge alone keeps the deleted absence. It stays until
    // the next reconciliation (absences: daily; none was due in this run) — with `reconcile = "never"`
    // forever, as in dlt (docs/deletions.md).
    assert!(r.reconciliations.is_empty(), "{r}");
    assert_eq!(w.i64(&format!("SELECT count(*) FROM test_data.absences WHERE id = {gone}")), 1);
    assert_eq!(w.i64("SELECT count(*) FROM test_data.employees") as usize, h.truth().employees.len());
    // A reconciliation (forced here, as `--reconcile` does) removes it, at the cost of a key listing.
    h.reset_request_log();
    let source = w.source();
    let selected: Vec<String> = ["employees", "employees_absences_balance", "absences", "attendances"].iter().map(|s| s.to_string()).collect();
    let forced = pipeline_engine::pipeline::RunOptions { force_reconcile: true, ..Default::default() };
    let r = w.pipeline.run_with(&source, Some(&selected), &mut w.destination, forced).await.expect("reconciled run");
    assert_eq!(w.i64(&format!("SELECT count(*) FROM test_data.absences WHERE id = {gone}")), 0, "{r}");
    assert_eq!(w.count("absences") as usize, h.truth().absences.len());
    let key_pages = h.request_log().iter().filter(|x| x.path == "/v1/company/time-offs" && !x.query.contains("updated_from")).count() as u64;
    let absences = r.reconciliations.iter().find(|x| x.resource == "absences").expect("absences reconciled");
    assert_eq!((absences.rows, absences.requests), (1, key_pages), "{r}");

    // Deletions in a replace resource are reflected.
    h.delete_all_time_off_types();
    w.run(&["absence_types"]).await;
    assert_eq!(w.count("absence_types"), 0);
}

/// Report ids whose pages the sandbox served since its log was reset.
fn fetched_reports(h: &personio_sandbox::SandboxHandle) -> BTreeSet<String> {
    let prefix = "/v1/company/custom-reports/reports/";
    h.request_log().iter().filter_map(|r| r.path.strip_prefix(prefix).map(str::to_string)).collect()
}

/// Report id → `data_refreshed_at`, from the sandbox's ground truth.
fn refreshed_at(h: &personio_sandbox::SandboxHandle) -> std::collections::BTreeMap<String, String> {
    h.truth().custom_reports.iter().map(|r| (text(&r["attributes"]["id"]), text(&r["attributes"]["data_refreshed_at"]))).collect()
}

#[tokio::test]
async fn custom_reports_are_fetched_again_only_when_personio_refreshed_them() {
    let mut w = World::new(small()).await;
    let resources = ["custom_reports_list", "custom_reports"];
    let h = w.sandbox.handle();
    let rows_equal_truth = |w: &World| {
        let truth = w.sandbox.handle().truth();
        let want: BTreeSet<String> = truth
            .custom_report_items
            .iter()
            .flat_map(|(r, items)| items.iter().map(move |i| format!("{r}|{}", text(&i["employee_id"]))))
            .collect();
        assert_eq!(w.id_set("SELECT report_id || '|' || CAST(item_id AS VARCHAR) FROM test_data.custom_reports"), want);
    };
    let with_items: BTreeSet<String> = h.truth().custom_report_items.iter().filter(|(_, i)| !i.is_empty()).map(|(r, _)| r.clone()).collect();
    assert!(with_items.len() >= 3, "the small company has reports with rows: {with_items:?}");
    // A report Personio is still updating has no version to trust: it is fetched every run.
    let updating: BTreeSet<String> = h
        .truth()
        .custom_reports
        .iter()
        .filter(|r| r["attributes"]["status"] != "up_to_date")
        .map(|r| text(&r["attributes"]["id"]))
        .collect();
    assert!(!updating.is_empty() && updating.is_disjoint(&with_items), "{updating:?}");
    w.run(&resources).await;
    rows_equal_truth(&w);

    // Nothing changed: Personio did not refresh any report, so no report page is fetched again.
    h.advance_clock(chrono::Duration::hours(2));
    h.reset_request_log();
    w.run(&resources).await;
    assert_eq!(fetched_reports(&h), updating, "unchanged reports are not fetched");
    rows_equal_truth(&w);

    // A department change refreshes the reports showing departments, and only those are fetched.
    let before = refreshed_at(&h);
    let moved = h.truth().employees.iter().find(|e| text(attr(e, "status")) == "active").map(|e| attr(e, "id").as_i64().expect("id")).expect("an active employee");
    h.advance_clock(chrono::Duration::hours(1));
    let (_, department) = h.move_to_next_department(moved).expect("moved");
    let after = refreshed_at(&h);
    let refreshed: BTreeSet<String> = after.iter().filter(|(id, at)| before.get(*id) != Some(at)).map(|(id, _)| id.clone()).collect();
    assert!(!refreshed.is_empty() && refreshed.len() < with_items.len(), "some reports show departments, some do not: {refreshed:?}");
    h.reset_request_log();
    let r = w.run(&resources).await;
    assert_eq!(fetched_reports(&h), &refreshed | &updating, "exactly the refreshed reports are fetched");
    rows_equal_truth(&w);
    let load_id = r.loaded_packages.last().expect("a package");
    let reloaded = w.id_set(&format!("SELECT DISTINCT report_id FROM test_data.custom_reports WHERE _dlt_load_id = '{load_id}'"));
    assert_eq!(reloaded, refreshed, "the refreshed reports' rows are merged again");
    let shown = w.i64(&format!(
        "SELECT count(*) FROM test_data.custom_reports WHERE _dlt_load_id = '{load_id}' AND item_id = {moved} AND department = '{}'",
        department.replace('\'', "''")
    ));
    assert_eq!(shown, 1, "the moved employee's new department is in the reloaded headcount report");

    // A due reconciliation (forced, as `--reconcile` does) needs every report's rows: all are fetched.
    h.reset_request_log();
    let source = w.source();
    let selected: Vec<String> = resources.iter().map(|s| s.to_string()).collect();
    let forced = pipeline_engine::pipeline::RunOptions { force_reconcile: true, ..Default::default() };
    let r = w.pipeline.run_with(&source, Some(&selected), &mut w.destination, forced).await.expect("reconciled run");
    assert_eq!(fetched_reports(&h), &with_items | &updating, "{r}");
    assert!(r.reconciliations.iter().any(|x| x.resource == "custom_reports" && x.status == "applied"), "{r}");
    rows_equal_truth(&w);
}

#[tokio::test]
async fn page_counts_equal_total_pages() {
    let mut w = World::new(small()).await;
    w.options.items_per_page = 7;
    w.run(&["employees", "absences", "attendances"]).await;
    let truth = w.sandbox.handle().truth();
    let log = w.sandbox.handle().request_log();
    let pages = |p: &str| log.iter().filter(|r| r.path == p).count();
    let ceil = |n: usize, k: usize| n.div_ceil(k).max(1);
    assert_eq!(pages("/v1/company/employees"), ceil(truth.employees.len(), 7));
    assert_eq!(pages("/v1/company/time-offs"), ceil(truth.absences.len(), 7));
    assert_eq!(pages("/v1/company/attendances"), ceil(truth.attendances.len(), 7));
    // dlt's query strings (A12): offset and page on every call, includePending=True, no cursor on run 1.
    for r in log.iter().filter(|r| r.path.starts_with("/v1/company/")) {
        assert!(r.query.contains("offset=") && r.query.contains("page="), "{}?{}", r.path, r.query);
        assert!(!r.query.contains("updated_since") && !r.query.contains("updated_from"), "{}", r.query);
    }
    assert!(log.iter().filter(|r| r.path == "/v1/company/attendances").all(|r| r.query.contains("includePending=True")));
}

#[tokio::test]
async fn token_revoked_mid_run_and_server_faults_are_survived() {
    let mut cfg = small();
    cfg.faults = FaultConfig {
        at_requests: vec![(3, FaultKind::RevokeToken), (5, FaultKind::Status503), (7, FaultKind::TruncatedBody), (9, FaultKind::ConnectionReset), (11, FaultKind::TooManyRequests)],
        ..FaultConfig::default()
    };
    let mut w = World::new(cfg).await;
    w.options.items_per_page = 10;
    w.run(&["employees", "absences"]).await;
    let truth = w.sandbox.handle().truth();
    assert_eq!(w.count("employees") as usize, truth.employees.len());
    assert_eq!(w.count("absences") as usize, truth.absences.len());
    let log = w.sandbox.handle().request_log();
    assert!(log.iter().filter(|r| r.path == "/v1/auth").count() >= 2, "re-authenticated after the revocation");
}

#[tokio::test]
async fn rate_limited_sandbox_sees_no_429() {
    let mut cfg = small();
    cfg.rate_limits = true;
    let mut w = World::new(cfg).await;
    w.options.items_per_page = 5; // many employee pages + one balance call per employee
    w.run(&["employees", "employees_absences_balance"]).await;
    let log = w.sandbox.handle().request_log();
    let limited = log.iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 0, "client-side pacing keeps within Personio's limits");
    assert_eq!(w.count("employees_absences_balance") as usize, w.sandbox.handle().truth().balances.values().map(Vec::len).sum::<usize>());
}

#[tokio::test]
async fn retired_v1_resource_fails_naming_its_replacement() {
    let mut cfg = tiny();
    cfg.v1_retired = true;
    let mut w = World::new(cfg).await;
    w.options.allow_retired_v1 = false;
    let source = w.source();
    let err = w
        .pipeline
        .run(&source, Some(&["attendances".to_string()]), &mut w.destination)
        .await
        .expect_err("retired");
    assert!(err.to_string().contains("attendance_periods"), "{err}");
    assert!(w.sandbox.handle().request_log().is_empty(), "refused before any request");
}
