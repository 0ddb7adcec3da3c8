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

use crate::support::{http_get, serve, World};

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

/// Issue 14 on PostgreSQL: after `run --demo --destination postgres` with a password in the connection
/// string, `pipeline show --destination postgres` serves the dashboard from PostgreSQL (row counts equal to
/// the sandbox's truth, `DROP` and a data-changing `WITH` refused), `--no-browser` prints the text summary,
/// and the trace says where each setting was found — the connection string by its variable, never its
/// password, which appears in no output, no file and no page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_serves_the_dashboard_from_postgres_and_the_trace_hides_the_password() {
    const PASSWORD: &str = "pp-Dashb0ard-S3cret";
    let test = "show_serves_the_dashboard_from_postgres_and_the_trace_hides_the_password";
    let dataset = unique("pp_show");
    let Some(mut pg) = postgres(test, &dataset).await else { return };
    let project = tempfile::tempdir().expect("tempdir");
    // Trust authentication ignores the password; the program must still never show it.
    let creds = url().replacen("postgresql://postgres@", &format!("postgresql://postgres:{PASSWORD}@"), 1);
    assert!(creds.contains(PASSWORD), "PERSONIO_TEST_POSTGRES must be postgresql://postgres@host:port/db for this test");
    std::fs::create_dir_all(project.path().join(".dlt")).expect(".dlt");
    std::fs::write(project.path().join(".dlt").join("config.toml"), "[runtime]\nrequest_timeout = 45\n").expect("config.toml");
    let cli = || {
        let mut c = bin();
        c.arg("--project-dir").arg(project.path()).arg("--pipelines-dir").arg(project.path().join("pipelines"));
        c.env("DESTINATION__POSTGRES__CREDENTIALS", &creds).env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
        c
    };
    let run = cli().args(["run", "--demo", "--destination", "postgres", "--dataset", &dataset]).output().expect("run --demo");
    let mut outputs = vec![String::from_utf8_lossy(&run.stdout).to_string(), String::from_utf8_lossy(&run.stderr).to_string()];
    assert!(run.status.success(), "run --demo --destination postgres: {}", outputs[1]);
    assert!(outputs[0].contains(&format!("pipeline personio_demo show --dataset {dataset} --destination postgres")), "the hint: {}", outputs[0]);
    let truth = personio_sandbox::Sandbox::start(SandboxConfig::default(), "127.0.0.1:0").await.expect("sandbox").handle().truth();
    let n = truth.employees.len();

    // trace.json: where each setting came from.
    let trace_path = project.path().join("pipelines").join("personio_demo").join("trace.json");
    let trace_text = std::fs::read_to_string(&trace_path).expect("trace.json");
    let trace: serde_json::Value = serde_json::from_str(&trace_text).expect("trace JSON");
    let values = trace["resolved_config_values"].as_array().cloned().unwrap_or_default();
    let find = |key: &str| values.iter().find(|v| v["key"] == serde_json::json!(key)).cloned().unwrap_or_else(|| panic!("{key} missing in {values:?}"));
    let creds_value = find("destination.postgres.credentials");
    assert_eq!(creds_value["provider"], "environment");
    assert_eq!(creds_value["location"], "DESTINATION__POSTGRES__CREDENTIALS");
    assert_eq!((creds_value["is_secret"].clone(), creds_value["value"].clone()), (serde_json::json!(true), serde_json::Value::Null));
    let timeout = find("runtime.request_timeout");
    assert_eq!((timeout["provider"].as_str(), timeout["value"].as_str()), (Some("config.toml"), Some("45")));
    let per_page = find("sources.personio.items_per_page");
    assert_eq!((per_page["provider"].as_str(), per_page["value"].as_str()), (Some("default"), Some("200")));

    // The text summary still works on PostgreSQL.
    let text = cli().args(["pipeline", "personio_demo", "show", "--no-browser", "--destination", "postgres", "--dataset", &dataset]).output().expect("show --no-browser");
    let text_out = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    assert!(text_out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["employees", &n.to_string()]), "{text_out}");
    outputs.push(text_out);

    // The dashboard, served from PostgreSQL.
    let mut show = cli();
    show.args(["pipeline", "personio_demo", "show", "--destination", "postgres", "--dataset", &dataset]);
    let (mut child, base) = serve(show);
    let mut pages = Vec::new();
    for path in [
        "".to_string(),
        "tables".into(),
        "schema".into(),
        "state".into(),
        "loads".into(),
        "data?table=employees".into(),
        "charts".into(),
        format!("sql?q=DROP%20TABLE%20{dataset}.employees"),
        format!("sql?q=WITH%20gone%20AS%20(DELETE%20FROM%20{dataset}.employees%20RETURNING%201)%20SELECT%20count(*)%20FROM%20gone"),
        format!("sql?q=SELECT%20count(*)%20FROM%20{dataset}.employees"),
    ] {
        let body = http_get(&format!("{base}{path}"));
        pages.push((path, body));
    }
    let _ = child.kill();
    let _ = child.wait();
    let page = |p: &str| pages.iter().find(|(path, _)| path.starts_with(p) && (p.is_empty() == path.is_empty())).map(|(_, b)| b.as_str()).unwrap_or("");
    assert!(page("").contains("<dt>Destination</dt><dd>postgres</dd>"), "the overview names the destination: {}", page(""));
    assert!(page("").contains("id=\"card-loads\" data-value=\"1\""), "{}", page(""));
    assert!(page("tables").contains(&format!("id=\"rows-employees\" data-value=\"{n}\"")), "{}", page("tables"));
    assert!(page("schema").contains("bigint"), "destination types as PostgreSQL reports them");
    assert!(page("charts").contains("id=\"chart-absences\""), "the charts are computed in PostgreSQL: {}", page("charts"));
    assert!(!page("charts").contains("id=\"missing-") && !page("charts").contains("class=\"notice error"), "{}", page("charts"));
    assert!(page("charts").contains("id=\"chart-headcount\"") && page("charts").contains("id=\"chart-attendance\""), "{}", page("charts"));
    let refused = &pages[7].1;
    assert!(refused.contains("id=\"sql-error\"") && refused.contains("DROP statements are refused"), "{refused}");
    let with_delete = &pages[8].1;
    assert!(with_delete.contains("id=\"sql-error\""), "a data-changing WITH is refused by the server: {with_delete}");
    assert!(pages[9].1.contains(&format!("<td>{n}</td>")), "employees survived: {}", pages[9].1);
    let loads = page("loads");
    assert!(loads.contains("id=\"config-destination.postgres.credentials\""), "the configuration table lists the credentials: {loads}");
    assert!(loads.contains("DESTINATION__POSTGRES__CREDENTIALS"), "{loads}");

    // The password: nowhere.
    let mut hits = Vec::new();
    for (what, text) in outputs.iter().map(|o| ("CLI output", o.as_str())).chain(pages.iter().map(|(p, b)| (p.as_str(), b.as_str()))) {
        if text.contains(PASSWORD) {
            hits.push(format!("in {what:?}"));
        }
    }
    let mut stack = vec![project.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes())) {
                hits.push(format!("in {}", p.display()));
            }
        }
    }
    pg.disconnect().await;
    let client = pg.query_client().await.expect("connect");
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{dataset}\" CASCADE; DROP SCHEMA IF EXISTS \"{dataset}_staging\" CASCADE"))
        .await;
    assert!(hits.is_empty(), "the password leaked: {hits:?}");
}
