//! Issue 9, defects 2, 3, 10 and 11 through the binary: the destination's state wins over a stale local
//! mirror, a failed `--full-refresh` leaves the dataset as it was, refreshing a child reloads it for
//! every parent, and the database file is not locked while extracting.

use std::time::{Duration, Instant};

use personio_sandbox::{FaultConfig, FaultKind, Preset, SandboxConfig};

use crate::support::cli_run::{query_strings, table_counts, BgSandbox, Project, Snapshot};

const LIMIT: Duration = Duration::from_secs(180);

fn tiny() -> SandboxConfig {
    SandboxConfig::preset(Preset::Tiny, 3)
}

fn count(p: &Project, table: &str) -> Option<i64> {
    table_counts(&p.db()).and_then(|t| t.get(table).copied())
}

/// Defect 2: deleting the database file is a new destination; the next run loads everything again.
#[test]
fn a_deleted_database_file_is_loaded_again_in_full() {
    let sb = BgSandbox::start(tiny());
    let p = Project::new();
    let truth = sb.handle().truth();
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--resources", "employees"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(count(&p, "employees"), Some(truth.employees.len() as i64));
    std::fs::remove_file(p.db()).expect("delete the database file");
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--resources", "employees"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(count(&p, "employees"), Some(truth.employees.len() as i64), "the table comes back");
    assert!(r.stderr.contains("empty state"), "loudly logged: {}", r.stderr);
}

/// Defect 2: another dataset is another destination, loaded in full.
#[test]
fn switching_the_dataset_loads_the_new_one_in_full() {
    let sb = BgSandbox::start(tiny());
    let p = Project::new();
    let truth = sb.handle().truth();
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--resources", "employees"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--resources", "employees", "--dataset", "other_data"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    let ids = query_strings(&p.db(), "SELECT CAST(id AS VARCHAR) FROM other_data.employees").expect("other dataset");
    assert_eq!(ids.len(), truth.employees.len());
}

/// Defect 3: `--full-refresh` with the API failing leaves the table, the state and the packages as
/// they were; once the API is back it swaps the new rows in.
#[test]
fn a_failed_full_refresh_leaves_the_dataset_as_it_was() {
    let sb = BgSandbox::start(tiny());
    let p = Project::new();
    let truth = sb.handle().truth();
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--resources", "employees"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    let before = Snapshot::take(&p, true);
    sb.handle().set_faults(FaultConfig { probability: 1.0, kinds: vec![FaultKind::Status500], ..FaultConfig::default() });
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--full-refresh", "--resources", "employees"]), LIMIT);
    assert_eq!(r.code, Some(4), "{}", r.summary());
    assert_eq!(Snapshot::take(&p, true), before, "dataset, state and packages unchanged");
    assert_eq!(count(&p, "employees"), Some(truth.employees.len() as i64));

    sb.handle().set_faults(FaultConfig::default());
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--full-refresh", "--resources", "employees"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    let loads = query_strings(&p.db(), "SELECT DISTINCT _dlt_load_id FROM personio_data.employees").expect("employees");
    assert_eq!(loads.len(), 1, "every row comes from the refresh");
    assert_eq!(count(&p, "employees"), Some(truth.employees.len() as i64));
}

/// Defect 10: refreshing the balances alone fetches every employee's balance.
#[test]
fn refreshing_balances_alone_reloads_every_employees_balance() {
    let sb = BgSandbox::start(tiny());
    let p = Project::new();
    let truth = sb.handle().truth();
    let balances: usize = truth.balances.values().map(Vec::len).sum();
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--resources", "employees,employees_absences_balance"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(count(&p, "employees_absences_balance"), Some(balances as i64));
    sb.handle().reset_request_log();
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--full-refresh", "--resources", "employees_absences_balance"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(count(&p, "employees_absences_balance"), Some(balances as i64), "{}", r.stdout);
    let calls = sb.handle().request_log().iter().filter(|r| r.path.ends_with("/absences/balance")).count();
    assert_eq!(calls, truth.employees.len(), "one balance call per employee");
    // The employees cursor did not move: an employees run afterwards still has nothing new.
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--resources", "employees"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
}

/// Defect 11: while a run extracts (slow API), another process can open the database file.
#[test]
fn the_database_file_is_not_locked_while_extracting() {
    let sb = BgSandbox::start(tiny());
    let p = Project::new();
    let r = p.run(p.cli(&sb.base_url()).args(["run", "--resources", "employees"]), LIMIT);
    assert!(r.ok(), "{}", r.summary());
    sb.handle().advance_clock(chrono::Duration::hours(1));
    sb.handle().update_employees(2);
    sb.handle().set_faults(FaultConfig { probability: 1.0, kinds: vec![FaultKind::Slow], slow_ms: Some(4000), ..FaultConfig::default() });
    let mut running = p.spawn(p.cli(&sb.base_url()).args(["run", "--resources", "employees"]));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut read_while_running = None;
    std::thread::sleep(Duration::from_millis(300));
    while Instant::now() < deadline && !running.finished() {
        if let Ok(n) = query_strings(&p.db(), "SELECT CAST(count(*) AS VARCHAR) FROM personio_data.employees") {
            if !running.finished() {
                read_while_running = n.first().cloned();
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = running.wait(LIMIT);
    assert!(r.ok(), "{}", r.summary());
    assert!(read_while_running.is_some(), "the dataset could not be read while the run was extracting");
}
