//! The binary: init files, demo run, exit codes.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_personio-pipeline"))
}

#[test]
fn init_writes_dlt_files_with_private_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin().args(["--project-dir"]).arg(dir.path()).args(["init", "postgres"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secrets = dir.path().join(".dlt/secrets.toml");
    let text = std::fs::read_to_string(&secrets).expect("secrets");
    assert!(text.contains("[sources.personio]") && text.contains("[destination.postgres.credentials]"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secrets).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    // A second init refuses to overwrite: usage error, exit code 2.
    let again = bin().args(["--project-dir"]).arg(dir.path()).args(["init"]).output().expect("run");
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn demo_run_loads_and_a_rerun_is_a_no_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |extra: &[&str]| {
        bin()
            .args(["--project-dir"])
            .arg(dir.path())
            .args(["--pipelines-dir"])
            .arg(dir.path().join("pipelines"))
            .args(["--json", "run", "--demo"])
            .args(extra)
            .output()
            .expect("run")
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["loaded_packages"].as_array().map(Vec::len), Some(1));
    assert!(report["rows"]["employees"].as_u64().unwrap_or(0) > 0);
    assert!(dir.path().join("personio.duckdb").exists());
    let out = run(&["--resources", "employees,absences"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["loaded_packages"].as_array().map(Vec::len), Some(0), "{report}");
}

#[test]
fn missing_credentials_and_unknown_resources_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .args(["--project-dir"])
        .arg(dir.path())
        .args(["--pipelines-dir"])
        .arg(dir.path().join("p"))
        .arg("run")
        .env_remove("SOURCES__PERSONIO__CLIENT_ID")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_id"));
    let out = bin()
        .args(["--project-dir"])
        .arg(dir.path())
        .args(["--pipelines-dir"])
        .arg(dir.path().join("p"))
        .args(["run", "--demo", "--resources", "salaries"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `pipeline drop` removes the tables and the cursors, also in the destination's state: a fresh worker
/// (empty working directory) restoring state afterwards loads the dropped resource from scratch.
#[test]
fn drop_forgets_tables_and_cursors_also_for_a_fresh_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipelines = dir.path().join("pipelines");
    let cli = |args: &[&str]| {
        let out = bin()
            .args(["--project-dir"])
            .arg(dir.path())
            .args(["--pipelines-dir"])
            .arg(&pipelines)
            .arg("--json")
            .args(args)
            .output()
            .expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json output")
    };
    let first = cli(&["run", "--demo", "--resources", "employees,absences"]);
    let absences = first["rows"]["absences"].as_u64().unwrap_or(0);
    assert!(absences > 0, "{first}");

    // Unchanged data: a rerun loads nothing.
    let again = cli(&["run", "--demo", "--resources", "absences"]);
    assert_eq!(again["loaded_packages"].as_array().map(Vec::len), Some(0), "{again}");

    let dropped = cli(&["pipeline", "personio", "drop", "--resources", "absences"]);
    let tables: Vec<&str> = dropped["dropped_tables"].as_array().expect("list").iter().filter_map(|t| t.as_str()).collect();
    assert!(tables.contains(&"absences"), "{dropped}");
    assert!(!tables.contains(&"employees"), "{dropped}");

    std::fs::remove_dir_all(&pipelines).expect("fresh worker");
    let reloaded = cli(&["run", "--demo", "--resources", "absences"]);
    assert_eq!(reloaded["loaded_packages"].as_array().map(Vec::len), Some(1), "{reloaded}");
    assert_eq!(reloaded["rows"]["absences"].as_u64(), Some(absences), "{reloaded}");
    // The employees cursor survived the drop: an employees run on the fresh worker is a no-op.
    let employees = cli(&["run", "--demo", "--resources", "employees"]);
    assert_eq!(employees["loaded_packages"].as_array().map(Vec::len), Some(0), "{employees}");
}
