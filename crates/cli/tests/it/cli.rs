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
