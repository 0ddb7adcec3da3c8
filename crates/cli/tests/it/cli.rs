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
    assert!(dir.path().join("personio_demo.duckdb").exists());
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

    let dropped = cli(&["pipeline", "personio_demo", "drop", "--resources", "absences"]);
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

/// The binary with an empty environment (no stray `SOURCES__…` of the developer's shell), a project
/// directory and a pipelines directory inside `dir`.
fn hermetic(dir: &std::path::Path) -> Command {
    let mut c = bin();
    c.env_clear().args(["--project-dir"]).arg(dir).args(["--pipelines-dir"]).arg(dir.join("pipelines"));
    c
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a blocking command from an async test (the sandbox serves on the test's runtime meanwhile).
async fn output(mut c: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.output().expect("run the binary")).await.expect("join")
}

/// Issue 9 defect 1: `run --demo` and a later real `run` must not share a pipeline, working directory,
/// database or dataset. Reproduced on the landed code: the real dataset held the demo's 50 employees
/// plus the tenant's 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_never_touches_the_real_dataset() {
    use personio_sandbox::{Preset, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = hermetic(dir.path());
    demo.args(["run", "--demo", "--resources", "employees"]);
    let out = output(demo).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("personio_demo.duckdb") && text.contains("personio-pipeline pipeline personio_demo show"), "{text}");
    assert!(dir.path().join("personio_demo.duckdb").exists());
    assert!(dir.path().join("pipelines/personio_demo").is_dir());
    assert!(!dir.path().join("personio.duckdb").exists(), "the demo wrote the real database file");
    assert!(!dir.path().join("pipelines/personio").exists(), "the demo used the real working directory");

    // A real tenant of 10 employees, reached through sectioned configuration.
    let tenant = Sandbox::start(SandboxConfig::preset(Preset::Tiny, 11), "127.0.0.1:0").await.expect("sandbox");
    let truth = tenant.handle().truth();
    let mut real = hermetic(dir.path());
    real.env("SOURCES__PERSONIO__BASE_URL", tenant.base_url())
        .env("SOURCES__PERSONIO__CLIENT_ID", DEFAULT_CLIENT_ID)
        .env("SOURCES__PERSONIO__CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args(["--json", "run", "--resources", "employees"]);
    let out = output(real).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["pipeline_name"], "personio", "{report}");
    assert!(report["database"].as_str().is_some_and(|p| p.ends_with("personio.duckdb") && !p.ends_with("_demo.duckdb")), "{report}");
    assert_eq!(report["rows"]["employees"].as_u64(), Some(truth.employees.len() as u64), "{report}");
    let db = pipeline_destinations::duckdb::DuckDbConfig::for_pipeline(dir.path(), "personio", "personio_data").build().expect("open");
    let n: i64 = db.connection().expect("connection").query_row("SELECT count(*) FROM personio_data.employees", [], |r| r.get(0)).expect("count");
    assert_eq!(n as usize, truth.employees.len(), "the real dataset holds exactly the tenant's employees");
}

/// Issue 9 defect 4: a malformed `.dlt/secrets.toml` (or `config.toml`) is reported with file, line,
/// column and what is wrong, exit code 2, and no text of the file (the TOML error used to quote the line).
#[test]
fn malformed_config_names_line_and_column_and_never_prints_a_secret() {
    let secret = "s3cr3t-VALUE-42";
    for (file, body, line, column) in [
        ("secrets.toml", format!("[sources.personio]\nclient_id = \"id\"\nclient_secret = {secret}\n"), 3, 17),
        ("secrets.toml", format!("[sources.personio]\nclient_secret = \"{secret}\nclient_id = \"id\"\n"), 2, 33),
        ("config.toml", format!("[sources.personio]\nclient_secret = '{secret}' x\n"), 2, 35),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".dlt")).expect("mkdir");
        std::fs::write(dir.path().join(".dlt").join(file), &body).expect("write");
        let out = hermetic(dir.path()).env("PERSONIO_LOG", "trace").arg("run").output().expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(!err.contains("s3cr3t") && !String::from_utf8_lossy(&out.stdout).contains("s3cr3t"), "secret printed: {err}");
        assert!(err.contains(file) && err.contains(&format!("line {line}, column {column}")), "{file}: {err}");
        assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "one clear line: {err}");
    }
}

/// Issue 9 defect 5: numbers from config/env are checked (the key, the value's problem, the allowed
/// range) with exit code 2 before anything starts; `RUNTIME__REQUEST_TIMEOUT=-1` used to panic (101).
#[test]
fn out_of_range_numbers_are_configuration_errors_not_panics() {
    for (var, value, problem) in [
        ("RUNTIME__REQUEST_TIMEOUT", "-1", "negative"),
        ("RUNTIME__REQUEST_TIMEOUT", "inf", "finite"),
        ("RUNTIME__REQUEST_TIMEOUT", "0", "too small"),
        ("RUNTIME__REQUEST_BACKOFF_FACTOR", "1e300", "maximum"),
        ("RUNTIME__REQUEST_BACKOFF_FACTOR", "NaN", "finite"),
        ("RUNTIME__REQUEST_MAX_RETRY_DELAY", "1e400", "finite"),
        ("RUNTIME__REQUEST_MAX_ATTEMPTS", "0", "minimum"),
        ("RUNTIME__REQUEST_MAX_ATTEMPTS", "5.5", "whole"),
        ("SOURCES__PERSONIO__ITEMS_PER_PAGE", "-3", "negative"),
        ("SOURCES__PERSONIO__REQUESTS_PER_MINUTE", "1e9", "whole"),
        ("SOURCES__PERSONIO__EMPLOYEES_REQUESTS_PER_MINUTE", "99999999999", "maximum"),
        ("DESTINATION__DUCKDB__MERGE_CHUNK_ROWS", "0", "minimum"),
        ("SOURCES__PERSONIO__BALANCE_SCOPE", "all", "`employees`, `global`"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = hermetic(dir.path()).env(var, value).args(["run", "--demo"]).output().expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(var) && err.contains(problem) && err.contains("allowed"), "{var}={value}: {err}");
        assert!(!dir.path().join("personio_demo.duckdb").exists() && !dir.path().join("pipelines").exists(), "{var}: ran anyway");
    }
    // The same from config.toml names the file and the key.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".dlt")).expect("mkdir");
    std::fs::write(dir.path().join(".dlt/config.toml"), "[runtime]\nrequest_timeout = -1\n").expect("write");
    let out = hermetic(dir.path()).args(["run", "--demo"]).output().expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("runtime.request_timeout") && err.contains(".dlt/config.toml") && err.contains("at most 3600"), "{err}");
    // A flag out of range is a usage error too.
    let out = hermetic(dir.path()).args(["run", "--demo", "--concurrency", "0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Issue 9 defect 6: pipeline and dataset names that would be paths are refused (exit code 2) and nothing
/// is created; `--pipeline-name ../../escape` used to create `../../escape.duckdb`.
#[test]
fn names_that_are_paths_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let project = root.path().join("a").join("b");
    std::fs::create_dir_all(&project).expect("mkdir");
    let cases: [&[&str]; 7] = [
        &["run", "--demo", "--pipeline-name", "../../escape"],
        &["run", "--demo", "--pipeline-name", "a/b"],
        &["run", "--demo", "--dataset", "../escape"],
        &["run", "--demo", "--dataset", "x\"; drop schema main; --"],
        &["pipeline", "../../escape", "info"],
        &["pipeline", "personio", "drop", "--dataset", ".."],
        &["schema", "export", "--pipeline-name", "../escape"],
    ];
    for args in cases {
        let out = hermetic(&project).args(args).output().expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("name"), "{args:?}: {err}");
    }
    let mut left: Vec<_> = walk(root.path());
    left.retain(|p| p != &project && !project.starts_with(p));
    assert!(left.is_empty(), "created: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// Issue 9 defect 12: bare `BASE_URL`/`CLIENT_ID`/`CLIENT_SECRET` are not Personio settings (they used to
/// be read, sending the credentials wherever `BASE_URL` pointed), and `http` is refused for a host that is
/// not loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_environment_names_are_ignored_and_http_needs_loopback() {
    use personio_sandbox::{Preset, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
    let catcher = Sandbox::start(SandboxConfig::preset(Preset::Tiny, 5), "127.0.0.1:0").await.expect("sandbox");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = hermetic(dir.path());
    c.env("BASE_URL", catcher.base_url())
        .env("CLIENT_ID", DEFAULT_CLIENT_ID)
        .env("CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .args(["run", "--resources", "employees"]);
    let out = output(c).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no Personio client_id") && err.contains("SOURCES__PERSONIO__CLIENT_ID"), "{err}");
    assert!(catcher.handle().request_log().is_empty(), "credentials were sent to BASE_URL");

    for (url, problem) in [("http://api.personio.de", "plain http"), ("http://10.1.2.3:8080", "plain http"), ("https://u:p@api.personio.de", "user name")] {
        let mut c = hermetic(dir.path());
        c.env("SOURCES__PERSONIO__BASE_URL", url)
            .env("SOURCES__PERSONIO__CLIENT_ID", "id")
            .env("SOURCES__PERSONIO__CLIENT_SECRET", "very-secret")
            .args(["run", "--resources", "employees"]);
        let out = output(c).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("SOURCES__PERSONIO__BASE_URL") && err.contains(problem), "{url}: {err}");
        assert!(!err.contains("very-secret") && !err.contains("u:p@"), "{err}");
    }
}
