//! Issue 11: the filesystem destination end to end. The Personio source against the sandbox lands the same
//! rows in the bucket (local directory, and S3 on a loopback moto server) as in DuckDB; changed employees
//! leave one row per employee in the Delta table; a fresh worker with an empty working directory resumes
//! from the bucket's state; `run --demo --destination filesystem` and `pipeline … show --no-browser` work
//! through the binary; no message prints the secret key.

use std::collections::BTreeMap;
use std::process::Command;

use personio_sandbox::{Preset, SandboxConfig};
use pipeline_destinations::filesystem::{FilesystemConfig, FilesystemDestination, S3Credentials};
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};

use crate::support::{http_get, serve, World};

#[path = "../../../destinations/tests/it/moto.rs"]
mod moto;

/// One rendering of a value for DuckDB's `CAST(… AS VARCHAR)` and Arrow's display: timestamps
/// `YYYY-MM-DD HH:MM:SS[.fraction without trailing zeros]+00`, doubles without a trailing `.0`.
fn canonical(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && (b[10] == b'T' || b[10] == b' ') && b[13] == b':' {
        let (date, time) = (&v[..10], &v[11..]);
        let time = time.trim_end_matches('Z').trim_end_matches("+00:00").trim_end_matches("+00");
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let frac = frac.trim_end_matches('0');
        return if frac.is_empty() { format!("{date} {hms}+00") } else { format!("{date} {hms}.{frac}+00") };
    }
    match v.strip_suffix(".0") {
        Some(int) if int.parse::<i64>().is_ok() => int.to_string(),
        _ => v.to_string(),
    }
}

/// Data columns (not `_dlt_*`) of every row of a DuckDB table, sorted.
fn duck_rows(w: &World, table: &str, columns: &[String]) -> Vec<String> {
    let parts: Vec<String> = columns.iter().map(|c| format!("COALESCE(CAST(\"{c}\" AS VARCHAR), '∅')")).collect();
    let sql = format!("SELECT {} FROM \"{}\".\"{table}\"", parts.join(" || chr(31) || "), w.dataset);
    let mut out: Vec<String> = w.strings(&sql).iter().map(|r| r.split('\u{1f}').map(canonical).collect::<Vec<_>>().join("|")).collect();
    out.sort();
    out
}

/// The same columns of every row of a table in the bucket, sorted.
async fn lake_rows(d: &mut FilesystemDestination, table: &str, columns: &[String]) -> Vec<String> {
    let batches = d.read_table(table).await.expect("read").unwrap_or_else(|| panic!("{table} is missing from the bucket"));
    let mut out = Vec::new();
    for b in &batches {
        // Arrow displays zone names only with chrono-tz: show UTC timestamps as naive ones.
        let cols: Vec<Option<arrow::array::ArrayRef>> = columns
            .iter()
            .map(|c| {
                b.column_by_name(c).map(|a| match a.data_type() {
                    arrow::datatypes::DataType::Timestamp(unit, Some(_)) => {
                        arrow::compute::cast(a, &arrow::datatypes::DataType::Timestamp(*unit, None)).expect("cast")
                    }
                    _ => a.clone(),
                })
            })
            .collect();
        for r in 0..b.num_rows() {
            let values: Vec<String> = cols
                .iter()
                .map(|a| match a {
                    Some(a) if !arrow::array::Array::is_null(a.as_ref(), r) => canonical(&arrow::util::display::array_value_to_string(a, r).expect("display")),
                    _ => "∅".to_string(),
                })
                .collect();
            out.push(values.join("|"));
        }
    }
    out.sort();
    out
}

/// Every data table of the DuckDB dataset compared row for row with the bucket; returns rows compared.
async fn compare_with_duckdb(w: &World, d: &mut FilesystemDestination) -> usize {
    let tables = w.strings(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{}' AND table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\' ORDER BY 1",
        w.dataset
    ));
    assert!(tables.contains(&"employees".to_string()), "{tables:?}");
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
        let duck = duck_rows(w, table, &columns);
        let lake = lake_rows(d, table, &columns).await;
        assert_eq!(lake.len(), duck.len(), "{table}: row count");
        assert_eq!(lake, duck, "{table}: rows differ between DuckDB and the bucket");
        compared += duck.len();
    }
    compared
}

fn local(dir: &std::path::Path, dataset: &str) -> FilesystemConfig {
    FilesystemConfig::new(dir.join("bucket").display().to_string(), dataset)
}

/// The whole story on one bucket: same rows as DuckDB, changed employees merged (one row each), a fresh
/// worker resuming from the bucket.
async fn sandbox_story(config: FilesystemConfig, label: &str) {
    let mut w = World::new(SandboxConfig::preset(Preset::Small, 11)).await;
    w.options.allow_retired_v1 = false;
    let mut d = config.build().expect("filesystem");
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = |workdir: &str| Pipeline::open(PipelineConfig::new("lake_pipeline", &config.dataset_name, dir.path().join(workdir))).expect("pipeline");

    let duck = w.run(&[]).await;
    let first = pipeline("worker-1").run(&w.source(), None, &mut d).await.expect("filesystem run");
    assert_eq!(duck.rows, first.rows, "{label}: same rows normalized per table");
    let compared = compare_with_duckdb(&w, &mut d).await;
    assert!(compared > 100, "{label}: compared {compared} rows");
    let truth = w.sandbox.handle().truth();
    let employees = |rows: &[String]| rows.len();
    let ids = vec!["id".to_string()];
    assert_eq!(employees(&lake_rows(&mut d, "employees", &ids).await), truth.employees.len(), "{label}: employees = ground truth");

    // Employees change; a new one joins. A fresh worker (empty working directory) resumes from the
    // bucket's state: the second run is incremental and merges, leaving one row per employee.
    let h = w.sandbox.handle();
    h.advance_clock(chrono::Duration::hours(2));
    let changed = h.update_employees(3);
    let added = h.add_employees(1);
    let duck2 = w.run(&[]).await;
    let fresh = pipeline("worker-2");
    assert!(fresh.local_state().expect("state").is_none(), "an empty working directory");
    let second = fresh.run(&w.source(), None, &mut d).await.expect("fresh worker run");
    assert!(!second.loaded_packages.is_empty(), "{label}: the changes are loaded");
    let employee_rows = second.rows.get("employees").copied().unwrap_or(0);
    assert!(
        employee_rows < first.rows.get("employees").copied().unwrap_or(0),
        "{label}: incremental from the restored state ({employee_rows} employee rows fetched)"
    );
    assert_eq!(duck2.rows.get("employees"), second.rows.get("employees"), "{label}: the same increment as DuckDB's");
    let rows = lake_rows(&mut d, "employees", &ids).await;
    let distinct: std::collections::BTreeSet<&String> = rows.iter().collect();
    let truth = h.truth();
    assert_eq!(rows.len(), truth.employees.len(), "{label}: one row per employee after the merge");
    assert_eq!(distinct.len(), rows.len(), "{label}: no duplicate employee");
    for id in changed.iter().chain(&added) {
        assert!(rows.contains(&id.to_string()), "{label}: employee {id} present");
    }
    compare_with_duckdb(&w, &mut d).await;
}

#[tokio::test]
async fn a_sandbox_run_lands_the_same_rows_in_a_local_bucket_and_merges_on_a_fresh_worker() {
    let bucket = tempfile::tempdir().expect("tempdir");
    sandbox_story(local(bucket.path(), "lake_data"), "local").await;
}

#[tokio::test]
async fn a_sandbox_run_lands_the_same_rows_in_s3_and_merges_on_a_fresh_worker() {
    let Some(s3) = moto::s3("a_sandbox_run_lands_the_same_rows_in_s3_and_merges_on_a_fresh_worker") else { return };
    let mut c = FilesystemConfig::new(format!("s3://{}/lake", s3.bucket), "lake_data");
    c.credentials = S3Credentials {
        aws_access_key_id: Some(moto::ACCESS_KEY.into()),
        aws_secret_access_key: Some(moto::SECRET_KEY.into()),
        aws_session_token: None,
        region_name: Some("us-east-1".into()),
        endpoint_url: Some(s3.endpoint.clone()),
    };
    sandbox_story(c, "s3").await;
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_personio-pipeline"))
}

fn cli(project: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = bin();
    cmd.args(["--project-dir"]).arg(project).args(["--pipelines-dir"]).arg(project.join("pipelines")).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the binary")
}

/// Data tables and their rows, from `pipeline personio_demo show --no-browser --json`.
fn shown_rows(out: &std::process::Output) -> BTreeMap<String, u64> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| Some((t["name"].as_str()?.to_string(), t["rows"].as_u64()?)))
        .filter(|(n, _)| !n.starts_with("_dlt_"))
        .collect()
}

#[test]
fn demo_run_to_a_local_bucket_matches_the_duckdb_demo() {
    let duck = tempfile::tempdir().expect("tempdir");
    let lake = tempfile::tempdir().expect("tempdir");
    let bucket = lake.path().join("bucket");
    let env = [("DESTINATION__FILESYSTEM__BUCKET_URL", bucket.to_str().expect("utf-8 path"))];
    let out = cli(lake.path(), &["run", "--demo", "--destination", "filesystem"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("The filesystem destination used file://"), "{stdout}");
    assert!(stdout.contains("--destination filesystem"), "the hint names the destination: {stdout}");
    assert!(bucket.join("personio_data/init").exists(), "dlt's dataset marker");
    assert!(bucket.join("personio_data/employees/_delta_log").exists(), "employees (merge) is a Delta table");
    let out = cli(duck.path(), &["run", "--demo"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let lake_tables = shown_rows(&cli(lake.path(), &["--json", "pipeline", "personio_demo", "show", "--no-browser", "--destination", "filesystem"], &env));
    let duck_tables = shown_rows(&cli(duck.path(), &["--json", "pipeline", "personio_demo", "show", "--no-browser"], &[]));
    assert_eq!(lake_tables, duck_tables, "the same tables with the same row counts");
    assert!(lake_tables.get("employees").copied().unwrap_or(0) > 0);

    // A rerun of the incremental resources with a fresh working directory restores the state from the
    // bucket: nothing new to load (without the state, both would load again).
    std::fs::remove_dir_all(lake.path().join("pipelines")).expect("wipe the working directory");
    let out = cli(lake.path(), &["--json", "run", "--demo", "--destination", "filesystem", "--resources", "employees,absences"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["loaded_packages"].as_array().map(Vec::len), Some(0), "{report}");
}

/// `pipeline … show --destination filesystem` serves the dashboard over the lake: before any load it says
/// what to run (exit 2, creating nothing); after `run --demo` every page reads the lake's current rows,
/// with the row counts the destination reports, and the SQL box refuses `DROP`.
#[test]
fn show_serves_the_dashboard_from_a_local_lake() {
    let project = tempfile::tempdir().expect("tempdir");
    let bucket = project.path().join("bucket");
    let env = [("DESTINATION__FILESYSTEM__BUCKET_URL", bucket.to_str().expect("utf-8 path"))];
    let cli = |args: &[&str]| {
        let mut c = bin();
        c.arg("--project-dir").arg(project.path()).arg("--pipelines-dir").arg(project.path().join("pipelines")).args(args);
        c.env(env[0].0, env[0].1).env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
        c
    };
    let out = cli(&["pipeline", "personio_demo", "show", "--destination", "filesystem"]).output().expect("show");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no dataset personio_data in file://"), "{stderr}");
    assert!(stderr.contains("run `personio-pipeline run --pipeline-name personio_demo --destination filesystem` first"), "{stderr}");
    assert!(!bucket.exists(), "show created the bucket directory");

    let out = cli(&["run", "--demo", "--destination", "filesystem"]).output().expect("run --demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Look at it: personio-pipeline pipeline personio_demo show --destination filesystem"), "the hint opens the dashboard: {stdout}");
    let counts = shown_rows(&cli(&["--json", "pipeline", "personio_demo", "show", "--no-browser", "--destination", "filesystem"]).output().expect("show --json"));
    let employees = counts.get("employees").copied().unwrap_or(0);
    assert!(employees > 0, "{counts:?}");

    let (mut child, base) = serve(cli(&["pipeline", "personio_demo", "show", "--destination", "filesystem"]));
    let get = |path: &str| http_get(&format!("{base}{path}"));
    let (overview, tables, schema, charts, data) = (get(""), get("tables"), get("schema"), get("charts"), get("data?table=employees"));
    let refused = get("sql?q=DROP%20TABLE%20personio_data.employees");
    let counted = get("sql?q=SELECT%20count(*)%20FROM%20personio_data.employees");
    let _ = child.kill();
    let _ = child.wait();
    assert!(overview.contains("<dt>Destination</dt><dd>filesystem</dd>"), "the overview names the destination: {overview}");
    assert!(overview.contains(&format!("file://{}", bucket.canonicalize().expect("bucket").display())), "the bucket URL: {overview}");
    assert!(overview.contains("id=\"card-loads\" data-value=\"1\""), "{overview}");
    for (table, n) in &counts {
        assert!(tables.contains(&format!("id=\"rows-{table}\" data-value=\"{n}\"")), "rows of {table}: {n} expected: {tables}");
    }
    assert!(schema.contains("BIGINT"), "destination types as DuckDB reports them: {schema}");
    assert!(data.contains(&format!("<span id=\"total-rows\">{employees}</span>")), "{data}");
    for chart in ["chart-absences", "chart-headcount", "chart-attendance"] {
        assert!(charts.contains(&format!("id=\"{chart}\"")), "{chart}: {charts}");
    }
    assert!(!charts.contains("id=\"missing-") && !charts.contains("class=\"notice error"), "{charts}");
    assert!(refused.contains("id=\"sql-error\"") && refused.contains("DROP statements are refused"), "{refused}");
    assert!(counted.contains(&format!("<td>{employees}</td>")), "{counted}");
}

/// Configuration mistakes are usage errors (exit 2) before anything runs; an unreachable S3 endpoint is a
/// destination error (exit 5); no message shows the secret key.
#[test]
fn filesystem_settings_are_checked_and_the_secret_key_never_printed() {
    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET";
    let project = tempfile::tempdir().expect("tempdir");
    let creds = |endpoint: &'static str| {
        vec![
            ("DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY", SECRET),
            ("DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL", endpoint),
        ]
    };
    let cases: Vec<(Vec<(&str, &str)>, i32, &str)> = vec![
        (vec![], 2, "bucket_url"),
        (vec![("DESTINATION__FILESYSTEM__BUCKET_URL", "gs://bucket/x")], 2, "not supported"),
        ([vec![("DESTINATION__FILESYSTEM__BUCKET_URL", "s3://bucket/x")], creds("http://s3.example.com:9000")].concat(), 2, "loopback"),
        ([vec![("DESTINATION__FILESYSTEM__BUCKET_URL", "s3://bucket/x")], creds("http://127.0.0.1:1")].concat(), 5, "filesystem"),
    ];
    for (i, (env, code, says)) in cases.iter().enumerate() {
        let out = cli(project.path(), &["run", "--demo", "--destination", "filesystem", "--resources", "absence_types"], env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "case {i}: {stderr}");
        assert!(stderr.contains(says), "case {i} says {says:?}: {stderr}");
        assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET), "case {i} printed the secret key:\n{stdout}\n{stderr}");
    }
}
