//! Issue 10: the PostgreSQL destination end to end. The Personio source against the sandbox lands the same
//! rows in PostgreSQL as in DuckDB (every data table, row for row), incremental reruns behave the same,
//! and no message ever prints the password.
//!
//! Uses the server at 127.0.0.1:5432 (trust auth, database `test`) or `PERSONIO_TEST_POSTGRES`; a server
//! that is down fails these tests with a clear message unless `PERSONIO_SKIP_POSTGRES=1`, which skips them
//! by name on stderr.

use std::process::Command;

use personio_sandbox::{Preset, SandboxConfig};
use pipeline_destinations::postgres::{PostgresConfig, PostgresDestination};
use pipeline_engine::load::Destination;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};

use crate::support::World;

fn url() -> String {
    std::env::var("PERSONIO_TEST_POSTGRES").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_string())
}

/// A Postgres destination for a fresh dataset, or `None` when skipped.
async fn postgres(test: &str, dataset: &str) -> Option<PostgresDestination> {
    if std::env::var("PERSONIO_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: {test} (PERSONIO_SKIP_POSTGRES=1)");
        return None;
    }
    let mut d = PostgresConfig::from_connection_string(&url(), dataset).expect("PERSONIO_TEST_POSTGRES").build().expect("config");
    if let Err(e) = d.health_check().await {
        panic!("PostgreSQL is not reachable for {test} ({e}); start it (127.0.0.1:5432, trust auth, database `test`) or set PERSONIO_SKIP_POSTGRES=1");
    }
    d.disconnect().await;
    Some(d)
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A value as both destinations print it: doubles without a trailing `.0`.
fn canonical(field: &str) -> String {
    match field.strip_suffix(".0") {
        Some(int) if int.parse::<i64>().is_ok() => int.to_string(),
        _ => field.to_string(),
    }
}

/// Data columns (not `_dlt_*`: random ids differ per load) of every row, sorted.
fn select(ds: &str, table: &str, columns: &[String]) -> String {
    let parts: Vec<String> = columns.iter().map(|c| format!("COALESCE(CAST(\"{c}\" AS VARCHAR), '∅')")).collect();
    format!("SELECT {} FROM \"{ds}\".\"{table}\"", parts.join(" || chr(31) || "))
}

fn rows_of(raw: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = raw.iter().map(|r| r.split('\u{1f}').map(canonical).collect::<Vec<_>>().join("|")).collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_sandbox_run_lands_the_same_rows_in_postgres_as_in_duckdb() {
    let pg_dataset = unique("pp_e2e");
    let Some(mut pg) = postgres("a_sandbox_run_lands_the_same_rows_in_postgres_as_in_duckdb", &pg_dataset).await else { return };
    let mut w = World::new(SandboxConfig::preset(Preset::Small, 7)).await;
    w.options.allow_retired_v1 = false;
    let pg_dir = tempfile::tempdir().expect("tempdir");
    let pg_pipeline = Pipeline::open(PipelineConfig::new("test_pipeline", &pg_dataset, pg_dir.path().join("pipelines"))).expect("pipeline");

    let duck = w.run(&[]).await;
    let source = w.source();
    let pg_report = pg_pipeline.run(&source, None, &mut pg).await.expect("postgres run");
    assert_eq!(duck.rows, pg_report.rows, "same rows normalized per table");
    let client = pg.query_client().await.expect("connect");

    let tables = w.strings(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{}' AND table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\' ORDER BY 1",
        w.dataset
    ));
    assert!(tables.contains(&"employees".to_string()), "{tables:?}");
    let truth = w.sandbox.handle().truth();
    let mut compared = 0;
    for table in &tables {
        let columns: Vec<String> = w
            .strings(&format!(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = '{}' AND table_name = '{table}' ORDER BY ordinal_position",
                w.dataset
            ))
            .into_iter()
            .filter(|c| !c.starts_with("_dlt_"))
            .collect();
        let duck_rows = rows_of(w.strings(&select(&w.dataset, table, &columns)));
        let pg_rows = client.query(&select(&pg_dataset, table, &columns), &[]).await.unwrap_or_else(|e| panic!("{table} on postgres: {e}"));
        let pg_rows = rows_of(pg_rows.iter().map(|r| r.get::<_, String>(0)).collect());
        assert_eq!(pg_rows.len(), duck_rows.len(), "{table}: row count");
        assert_eq!(pg_rows, duck_rows, "{table}: rows differ between DuckDB and PostgreSQL");
        compared += duck_rows.len();
    }
    let employees = client.query_one(&format!("SELECT count(*) FROM \"{pg_dataset}\".employees"), &[]).await.expect("count").get::<_, i64>(0);
    assert_eq!(employees as usize, truth.employees.len(), "employees equal the sandbox's ground truth");
    assert!(compared > 100, "compared {compared} rows");

    // An unchanged rerun loads nothing on either destination.
    let again = pg_pipeline.run(&w.source(), None, &mut pg).await.expect("postgres rerun");
    let duck_again = w.run(&[]).await;
    assert_eq!(again.loaded_packages.len(), duck_again.loaded_packages.len(), "incremental reruns behave the same");
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{pg_dataset}\" CASCADE; DROP SCHEMA IF EXISTS \"{pg_dataset}_staging\" CASCADE"))
        .await;
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_personio-pipeline"))
}

/// Wrong host, unknown user, malformed connection strings: the error names the problem, never the password.
#[test]
fn postgres_errors_never_print_the_password() {
    const SECRET: &str = "Hunter2-S3cret-Pa55";
    let project = tempfile::tempdir().expect("tempdir");
    let cases = [
        // Unreachable port: connection refused.
        format!("postgresql://postgres:{SECRET}@127.0.0.1:1/test?connect_timeout=2"),
        // A role the server does not have (trust auth refuses it by name).
        format!("postgresql://no_such_role_pp:{SECRET}@127.0.0.1:5432/test"),
        // Malformed: port is not a number (refused before any I/O, exit 2).
        format!("postgresql://postgres:{SECRET}@127.0.0.1:port/test"),
    ];
    for (i, creds) in cases.iter().enumerate() {
        let out = bin()
            .args(["--project-dir"])
            .arg(project.path())
            .args(["run", "--demo", "--destination", "postgres", "--resources", "absence_types"])
            .env("PERSONIO_PIPELINES_DIR", project.path().join("pipelines"))
            .env("DESTINATION__POSTGRES__CREDENTIALS", creds)
            .output()
            .expect("run the binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} must fail: {stderr}");
        assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET), "case {i} printed the password:\n{stdout}\n{stderr}");
        assert!(stderr.contains("postgres"), "case {i} names the destination: {stderr}");
        if i == 2 {
            assert_eq!(out.status.code(), Some(2), "a malformed connection string is a configuration error: {stderr}");
        } else {
            assert_eq!(out.status.code(), Some(5), "a destination error: {stderr}");
            assert!(stderr.contains("***"), "the connection is shown redacted: {stderr}");
        }
    }
}
