//! The dashboard in a real headless browser (Debian's chromium driven through chromedriver), after a
//! load of the Personio sandbox into DuckDB, into PostgreSQL and into a local lake (the filesystem
//! destination): every page shows the sandbox's ground truth, the SQL box refuses `DROP`, the absence
//! chart has one bar per month. Screenshots of every page are written to
//! `<target>/tmp/dashboard-screenshots/` (PostgreSQL's with a `postgres-` prefix, the lake's with
//! `filesystem-`).
//!
//! The PostgreSQL test uses the server at 127.0.0.1:5432 (trust auth, database `test`) or
//! `PERSONIO_TEST_POSTGRES`; it fails when the server is down unless `PERSONIO_SKIP_POSTGRES=1`.
//!
//! Without chromium or chromedriver the browser test prints `SKIPPED: …` and returns, unless
//! `PERSONIO_REQUIRE_BROWSER=1` (set by `.ci/run`), which turns a missing browser into a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{Datelike, NaiveDate, NaiveDateTime};
use personio_client::{ClientConfig, PersonioClient};
use personio_sandbox::{Sandbox, SandboxConfig, Truth, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use personio_source::{PersonioSource, SourceOptions};
use pipeline_dashboard::{DashboardConfig, ReaderFactory};
use pipeline_destinations::duckdb::DuckDbConfig;
use pipeline_destinations::filesystem::{FilesystemConfig, FilesystemReaders};
use pipeline_destinations::postgres::PostgresConfig;
use pipeline_destinations::read::{DatasetReader, DuckDbReader, PostgresReader};
use pipeline_engine::load::Destination;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};
use serde_json::{json, Value};

const PIPELINE: &str = "personio";
const DATASET: &str = "personio_data";

// ------------------------------------------------------------------------------------ WebDriver

/// A chromedriver process and one headless chromium session.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Browser {
    /// Start chromedriver and a session, or say why not (the test is then skipped).
    async fn start() -> Result<Browser, String> {
        let chromium = find_program("CHROME_BIN", &["chromium", "chromium-browser", "google-chrome"]).ok_or("chromium not found (apt-get install chromium)")?;
        let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]).ok_or("chromedriver not found (apt-get install chromium-driver)")?;
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting chromedriver: {e}"))?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser { http, base, session: String::new(), driver, _profile: profile };
        let started = Instant::now();
        loop {
            let ready = browser.http.get(format!("{}/status", browser.base)).send().await;
            if let Ok(r) = ready {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == json!(true) {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err("chromedriver did not become ready within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}}}});
        let v = browser.cmd("POST", "/session", Some(caps)).await?;
        browser.session = v["sessionId"].as_str().ok_or_else(|| format!("no session id in {v}"))?.to_string();
        Ok(browser)
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
            "DELETE" => self.http.delete(url),
            _ => self.http.get(url),
        };
        let resp = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let v: Value = resp.json().await.map_err(|e| format!("{method} {path}: {e}"))?;
        if v["value"]["error"].is_string() {
            return Err(format!("{method} {path}: {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", &self.s("/url"), Some(json!({"url": url}))).await.expect("navigate");
    }

    async fn all(&self, css: &str) -> Vec<String> {
        let v = self.cmd("POST", &self.s("/elements"), Some(json!({"using": "css selector", "value": css}))).await.expect("find elements");
        v.as_array().map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(String::from)).collect()).unwrap_or_default()
    }

    async fn one(&self, css: &str) -> String {
        let found = self.all(css).await;
        assert!(!found.is_empty(), "no element matches {css}");
        found[0].clone()
    }

    async fn text(&self, css: &str) -> String {
        let e = self.one(css).await;
        let v = self.cmd("GET", &self.s(&format!("/element/{e}/text")), None).await.expect("text");
        v.as_str().unwrap_or_default().to_string()
    }

    async fn attr(&self, css: &str, name: &str) -> String {
        let e = self.one(css).await;
        let v = self.cmd("GET", &self.s(&format!("/element/{e}/attribute/{name}")), None).await.expect("attribute");
        v.as_str().unwrap_or_default().to_string()
    }

    /// The `data-value` of an element (the exact number behind a formatted one).
    async fn value(&self, css: &str) -> u64 {
        let a = self.attr(css, "data-value").await;
        a.parse().unwrap_or_else(|_| panic!("{css}: data-value {a:?} is not a number"))
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.one(css).await;
        self.cmd("POST", &self.s(&format!("/element/{e}/clear")), Some(json!({}))).await.expect("clear");
        self.cmd("POST", &self.s(&format!("/element/{e}/value")), Some(json!({"text": text}))).await.expect("type");
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd("POST", &self.s("/execute/sync"), Some(json!({"script": js, "args": []}))).await.expect("execute script")
    }

    /// Click a link or submit button and wait until the page it leads to has loaded (WebDriver's click
    /// does not always wait for a form submission; reading the old page meanwhile made the test flaky).
    async fn click(&self, css: &str) {
        let e = self.one(css).await;
        self.script("window.__ppOldPage = true; return null;").await;
        self.cmd("POST", &self.s(&format!("/element/{e}/click")), Some(json!({}))).await.expect("click");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // While the new page loads, the script may fail (no document yet): not ready.
            let js = json!({"script": "return !window.__ppOldPage && document.readyState === 'complete';", "args": []});
            let ready = self.cmd("POST", &self.s("/execute/sync"), Some(js)).await;
            if matches!(ready, Ok(Value::Bool(true))) {
                return;
            }
            assert!(Instant::now() < deadline, "clicking {css} did not load a new page within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn title(&self) -> String {
        self.cmd("GET", &self.s("/title"), None).await.expect("title").as_str().unwrap_or_default().to_string()
    }

    /// A screenshot of the whole page (the window grows to the page's height, then shrinks back).
    async fn screenshot(&self, path: &Path) {
        let script = json!({"script": "return document.documentElement.scrollHeight", "args": []});
        let height = self.cmd("POST", &self.s("/execute/sync"), Some(script)).await.ok().and_then(|v| v.as_u64()).unwrap_or(900);
        let rect = |h: u64| json!({"width": 1280, "height": h.clamp(900, 8000)});
        self.cmd("POST", &self.s("/window/rect"), Some(rect(height + 120))).await.expect("resize");
        let v = self.cmd("GET", &self.s("/screenshot"), None).await.expect("screenshot");
        self.cmd("POST", &self.s("/window/rect"), Some(rect(900))).await.expect("resize back");
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }

    async fn quit(mut self) {
        let _ = self.cmd("DELETE", &self.s(""), None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

async fn browser_or_skip(test: &str) -> Option<Browser> {
    match Browser::start().await {
        Ok(b) => Some(b),
        Err(why) if std::env::var("PERSONIO_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            panic!("{test}: a browser is required (PERSONIO_REQUIRE_BROWSER=1) but {why}")
        }
        Err(why) => {
            println!("SKIPPED: {test}: {why}");
            eprintln!("SKIPPED: {test}: {why}");
            None
        }
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

// ------------------------------------------------------------------------------------ ground truth

fn attr<'a>(e: &'a Value, key: &str) -> &'a Value {
    &e["attributes"][key]["value"]
}

/// The local calendar day of a Personio v1 date (`2020-01-01T00:00:00+01:00`).
fn local_day(v: &Value) -> Option<NaiveDate> {
    v.as_str().and_then(|s| s.get(..10)).and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

fn last_day_of_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).and_then(|n| n.pred_opt()).expect("a valid date")
}

/// Employees counted at the end of the month of `day` (hired by then, not terminated before).
fn headcount_at(truth: &Truth, day: NaiveDate) -> u64 {
    let end = last_day_of_month(day);
    truth
        .employees
        .iter()
        .filter(|e| local_day(attr(e, "hire_date")).is_some_and(|h| h <= end))
        .filter(|e| local_day(attr(e, "termination_date")).is_none_or(|t| t >= end))
        .count() as u64
}

/// Months (`YYYY-MM`) in which absences start.
fn absence_months(truth: &Truth) -> BTreeSet<String> {
    truth.absences.iter().filter_map(|a| a["attributes"]["start_date"].as_str().and_then(|s| s.get(..7)).map(String::from)).collect()
}

/// Worked hours (work periods minus breaks) per week (Monday), from v2 attendance periods.
fn attendance_weeks(truth: &Truth) -> BTreeMap<NaiveDate, f64> {
    let parse = |v: &Value| v["date_time"].as_str().and_then(|s| NaiveDateTime::parse_from_str(s.get(..19)?, "%Y-%m-%dT%H:%M:%S").ok());
    let mut out = BTreeMap::new();
    for p in &truth.attendance_periods {
        let (Some(s), Some(e)) = (parse(&p["start"]), parse(&p["end"])) else { continue };
        let sign = if p["type"] == json!("BREAK") { -1.0 } else { 1.0 };
        let monday = s.date() - chrono::Duration::days(s.date().weekday().num_days_from_monday() as i64);
        *out.entry(monday).or_insert(0.0) += sign * (e - s).num_seconds() as f64 / 3600.0;
    }
    out
}

/// Load the demo company (the CLI's `run --demo`: default sandbox, default resources) into
/// `destination`, with the working directory under `dir`.
async fn load_demo(dir: &Path, dataset: &str, destination: &mut dyn Destination) -> (Truth, String) {
    let sandbox = Sandbox::start(SandboxConfig::default(), "127.0.0.1:0").await.expect("sandbox");
    let truth = sandbox.handle().truth();
    let client = PersonioClient::new(ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(sandbox.base_url())).expect("client");
    let source = PersonioSource::new(client, SourceOptions::default());
    let pipeline = Pipeline::open(PipelineConfig::new(PIPELINE, dataset, dir.join("pipelines"))).expect("pipeline");
    let report = pipeline.run(&source, None, destination).await.expect("demo load");
    assert_eq!(report.loaded_packages.len(), 1, "{report}");
    (truth, report.loaded_packages[0].clone())
}

fn factory(dir: &Path) -> ReaderFactory {
    let config = DuckDbConfig::for_pipeline(dir, PIPELINE, DATASET);
    Arc::new(move || DuckDbReader::open(&config).map(|r| Box::new(r) as Box<dyn DatasetReader>))
}

/// The PostgreSQL server for `dataset`, or `None` when skipped.
fn postgres_or_skip(test: &str, dataset: &str) -> Option<PostgresConfig> {
    if std::env::var("PERSONIO_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        println!("SKIPPED: {test} (PERSONIO_SKIP_POSTGRES=1)");
        eprintln!("SKIPPED: {test} (PERSONIO_SKIP_POSTGRES=1)");
        return None;
    }
    let url = std::env::var("PERSONIO_TEST_POSTGRES").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into());
    Some(PostgresConfig::from_connection_string(&url, dataset).expect("PERSONIO_TEST_POSTGRES"))
}

/// Which destination a page check runs against (the few things that differ).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    DuckDb,
    Postgres,
    /// The filesystem destination's files, read through an in-memory DuckDB.
    Filesystem,
}

// ------------------------------------------------------------------------------------ the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_show_the_sandbox_load_in_headless_chromium() {
    let test = "dashboard_pages_show_the_sandbox_load_in_headless_chromium";
    let Some(browser) = browser_or_skip(test).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut destination = DuckDbConfig::for_pipeline(dir.path(), PIPELINE, DATASET).build().expect("duckdb");
    let (truth, load_id) = load_demo(dir.path(), DATASET, &mut destination).await;
    let config = DashboardConfig::new(PIPELINE, DATASET, dir.path().join("pipelines"));
    let dashboard = pipeline_dashboard::start(config, factory(dir.path()), None).await.expect("dashboard");
    check_pages(&browser, &dashboard.url(), &truth, &load_id, DATASET, Kind::DuckDb).await;
    browser.quit().await;
    dashboard.shutdown().await.expect("shutdown");
}

/// The same pages, read from PostgreSQL through [`PostgresReader`]: the charts' SQL in PostgreSQL's
/// dialect, the SQL box in a read-only transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_show_a_postgres_load_in_headless_chromium() {
    let test = "dashboard_pages_show_a_postgres_load_in_headless_chromium";
    let dataset = format!("pp_dash_{}", std::process::id());
    let Some(pg) = postgres_or_skip(test, &dataset) else { return };
    let Some(browser) = browser_or_skip(test).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut destination = pg.build().expect("postgres config");
    destination
        .health_check()
        .await
        .unwrap_or_else(|e| panic!("{test}: PostgreSQL must run at 127.0.0.1:5432 (or set PERSONIO_SKIP_POSTGRES=1): {e}"));
    let (truth, load_id) = load_demo(dir.path(), &dataset, &mut destination).await;
    let reader_config = pg.clone();
    let factory: ReaderFactory = Arc::new(move || PostgresReader::open(&reader_config).map(|r| Box::new(r) as Box<dyn DatasetReader>));
    let config = DashboardConfig::new(PIPELINE, &dataset, dir.path().join("pipelines"));
    let dashboard = pipeline_dashboard::start(config, factory, None).await.expect("dashboard");
    let checked = tokio::spawn({
        let url = dashboard.url();
        let dataset = dataset.clone();
        async move {
            check_pages(&browser, &url, &truth, &load_id, &dataset, Kind::Postgres).await;
            browser.quit().await;
        }
    })
    .await;
    dashboard.shutdown().await.expect("shutdown");
    let client = destination.query_client().await.expect("connect");
    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{dataset}\" CASCADE; DROP SCHEMA IF EXISTS \"{dataset}_staging\" CASCADE")).await;
    if let Err(e) = checked {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The same pages, read from a local lake (Parquet files and Delta tables) through `FilesystemReader`:
/// DuckDB's dialect on an in-memory snapshot of the current rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_show_a_filesystem_load_in_headless_chromium() {
    let test = "dashboard_pages_show_a_filesystem_load_in_headless_chromium";
    let Some(browser) = browser_or_skip(test).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = FilesystemConfig::new(dir.path().join("bucket").display().to_string(), DATASET);
    let mut destination = lake.build().expect("filesystem");
    let (truth, load_id) = load_demo(dir.path(), DATASET, &mut destination).await;
    let readers = Arc::new(FilesystemReaders::new(&lake).expect("readers"));
    let factory: ReaderFactory = {
        let readers = readers.clone();
        Arc::new(move || readers.open().map(|r| Box::new(r) as Box<dyn DatasetReader>))
    };
    let config = DashboardConfig::new(PIPELINE, DATASET, dir.path().join("pipelines"));
    let dashboard = pipeline_dashboard::start(config, factory, None).await.expect("dashboard");
    check_pages(&browser, &dashboard.url(), &truth, &load_id, DATASET, Kind::Filesystem).await;
    browser.quit().await;
    dashboard.shutdown().await.expect("shutdown");
    assert_eq!(readers.snapshots_built(), 1, "every page read the one snapshot of the unchanged lake");
}

/// Every page against the ground truth; screenshots into the screenshot folder.
async fn check_pages(browser: &Browser, url: &str, truth: &Truth, load_id: &str, dataset: &str, kind: Kind) {
    let url = url.to_string();
    let load_id = load_id.to_string();
    let shot_prefix = match kind {
        Kind::DuckDb => "",
        Kind::Postgres => "postgres-",
        Kind::Filesystem => "filesystem-",
    };
    let shots = screenshot_dir();
    let shot = |name: &str| shots.join(format!("{shot_prefix}{name}.png"));
    let n_employees = truth.employees.len() as u64;

    // Overview: the last load, nothing pending, state in sync.
    browser.goto(&url).await;
    assert!(browser.title().await.starts_with("Overview · personio"), "{}", browser.title().await);
    assert_eq!(browser.text("#last-load").await, load_id);
    assert_eq!(browser.text("#dataset").await, dataset);
    assert_eq!(browser.value("#card-pending").await, 0);
    assert_eq!(browser.value("#card-loads").await, 1);
    assert!(browser.text("#state-sync").await.starts_with("In sync"), "{}", browser.text("#state-sync").await);
    assert_eq!(browser.text("#errors").await, "None recorded in the last trace.");
    // The steps of the last run, from trace.json.
    let steps = browser.text("#trace-steps").await;
    for step in ["sync", "extract", "normalize", "load"] {
        assert!(steps.contains(step), "step {step} missing: {steps}");
    }
    assert!(steps.contains("done") && !steps.contains("failed"), "{steps}");
    assert_eq!(browser.value("#run-rows-employees").await, n_employees);
    browser.screenshot(&shot("overview")).await;

    // Tables: row counts and the rows of the one load, equal to the truth.
    browser.goto(&format!("{url}tables")).await;
    let expected = [
        ("employees", n_employees),
        ("absences", truth.absences.len() as u64),
        ("attendance_periods", truth.attendance_periods.len() as u64),
        ("absence_types", truth.time_off_types.len() as u64),
        ("document_categories", truth.document_categories.len() as u64),
        ("projects_v2", truth.projects_v2.len() as u64),
        ("employees_absences_balance", truth.balances.values().map(Vec::len).sum::<usize>() as u64),
    ];
    for (table, n) in expected {
        assert_eq!(browser.value(&format!("#rows-{table}")).await, n, "rows of {table}");
    }
    assert_eq!(browser.value(&format!("[id='growth-employees-{load_id}']")).await, n_employees);
    assert_eq!(browser.value("#rows-_dlt_loads").await, 1);
    browser.screenshot(&shot("tables")).await;

    // Schema: employees' key and types; child tables nested under their parent.
    browser.goto(&format!("{url}schema")).await;
    let id_row = browser.text("#columns-employees tbody tr:first-child").await;
    let id_row = id_row.split_whitespace().collect::<Vec<_>>().join(" ");
    let id_type = if kind == Kind::Postgres { "bigint" } else { "BIGINT" };
    assert!(id_row.starts_with(&format!("id bigint {id_type} NOT NULL primary key")), "{id_row}");
    assert!(browser.text("#schema-employees summary").await.contains("merge"));
    let children = browser.all("#schema-employees ul details").await.len();
    assert!(children > 0, "employees has child tables in the tree");
    let child_id = browser.attr("#schema-employees ul details", "id").await;
    assert!(child_id.starts_with("schema-employees__"), "{child_id}");
    browser.screenshot(&shot("schema")).await;

    // State: the employees cursor is the newest last_modified_at of the truth.
    browser.goto(&format!("{url}state")).await;
    let newest = truth
        .employees
        .iter()
        .filter_map(|e| attr(e, "last_modified_at").as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()))
        .max()
        .expect("employees have last_modified_at");
    let shown = browser.text("#cursor-employees").await;
    let shown = chrono::DateTime::parse_from_rfc3339(&shown).unwrap_or_else(|e| panic!("cursor {shown:?}: {e}"));
    assert_eq!(shown, newest);
    browser.screenshot(&shot("state")).await;

    // Loads: the load with its rows per table.
    browser.goto(&format!("{url}loads")).await;
    assert_eq!(browser.text(&format!("[id='load-{load_id}-employees']")).await.replace('\u{202F}', ""), n_employees.to_string());
    assert_eq!(browser.all("#loads tbody tr").await.len(), 1);
    browser.screenshot(&shot("loads")).await;

    // Data browser: paging through employees.
    browser.goto(&format!("{url}data?table=employees")).await;
    assert_eq!(browser.text("#total-rows").await.replace('\u{202F}', ""), n_employees.to_string());
    assert_eq!(browser.all("#data tbody tr").await.len() as u64, n_employees.min(50));
    let pages = n_employees.div_ceil(50);
    assert_eq!(browser.text("#pages").await, pages.to_string());
    if pages > 1 {
        browser.click("#next").await;
        assert_eq!(browser.text("#page").await, "2");
        assert_eq!(browser.all("#data tbody tr").await.len() as u64, (n_employees - 50).min(50));
    }
    browser.screenshot(&shot("data")).await;

    // SQL: a query answers; DROP (alone or behind a query) is refused and changes nothing.
    browser.goto(&format!("{url}sql")).await;
    browser.type_into("#sql-input", &format!("SELECT count(*) AS n FROM {dataset}.employees")).await;
    browser.click("#sql-run").await;
    assert_eq!(browser.text("#sql-result tbody td").await, n_employees.to_string());
    browser.screenshot(&shot("sql")).await;
    for drop in [format!("DROP TABLE {dataset}.employees"), format!("SELECT 1; DROP TABLE {dataset}.employees")] {
        browser.type_into("#sql-input", &drop).await;
        browser.click("#sql-run").await;
        let refusal = browser.text("#sql-error").await;
        assert!(refusal.contains("refused") || refusal.contains("more than one statement"), "{refusal}");
        assert!(browser.all("#sql-result").await.is_empty());
    }
    browser.screenshot(&shot("sql-refused")).await;
    match kind {
        Kind::DuckDb | Kind::Filesystem => {
            // No other files: the destination is opened without external access.
            browser.type_into("#sql-input", "SELECT * FROM read_text('/etc/hostname')").await;
            browser.click("#sql-run").await;
            assert!(browser.all("#sql-result").await.is_empty(), "a file outside the database was read");
            assert!(!browser.text("#sql-error").await.is_empty());
        }
        Kind::Postgres => {
            // Statements that pass the keyword check are still refused by the read-only transaction (a
            // data-changing WITH), or by the server's one-statement rule (a second statement hidden in an
            // E'' string, which the check also catches).
            for sneaky in [
                format!("WITH gone AS (DELETE FROM {dataset}.employees RETURNING 1) SELECT count(*) FROM gone"),
                format!("SELECT E'\\''; DROP TABLE {dataset}.employees; --'"),
            ] {
                browser.type_into("#sql-input", &sneaky).await;
                browser.click("#sql-run").await;
                assert!(browser.all("#sql-result").await.is_empty(), "{sneaky} ran");
                assert!(!browser.text("#sql-error").await.is_empty(), "{sneaky}: no error shown");
            }
        }
    }
    browser.type_into("#sql-input", &format!("SELECT count(*) FROM {dataset}.employees")).await;
    browser.click("#sql-run").await;
    assert_eq!(browser.text("#sql-result tbody td").await, n_employees.to_string(), "employees survived the DROP attempts");
    // The row cap.
    // (1,000 rows: over the cap, cheap enough for a loaded CI machine's debug DuckDB.)
    let thousand = if kind == Kind::Postgres { "SELECT * FROM generate_series(1, 1000)" } else { "SELECT * FROM range(1000)" };
    browser.type_into("#sql-input", thousand).await;
    browser.click("#sql-run").await;
    if browser.all("#sql-rows").await.is_empty() {
        let error = if browser.all("#sql-error").await.is_empty() { String::new() } else { browser.text("#sql-error").await };
        panic!("the capped query shows no row count; its error: {error:?}");
    }
    assert_eq!(browser.text("#sql-rows").await, "500");
    assert!(browser.text("#sql-summary").await.contains("capped at 500 rows"));

    // Charts: one bar per month of absences; headcount and attendance equal to the truth.
    browser.goto(&format!("{url}charts")).await;
    let months: Vec<String> = absence_months(&truth).into_iter().collect();
    let months: Vec<String> = months[months.len().saturating_sub(36)..].to_vec();
    let bars = browser.all("#chart-absences g.bar").await;
    assert_eq!(bars.len(), months.len(), "one bar per month with absences");
    assert_eq!(browser.attr("#chart-absences g.bar:first-of-type", "data-bucket").await, months[0]);
    let today = chrono::Utc::now().date_naive();
    let month = today.format("%Y-%m").to_string();
    let last_bar = "#chart-headcount g.bar:last-of-type";
    assert_eq!(browser.attr(last_bar, "data-bucket").await, month);
    assert_eq!(browser.attr(last_bar, "data-total").await, headcount_at(&truth, today).to_string(), "headcount at the end of {month}");
    let weeks = attendance_weeks(&truth);
    let weeks: Vec<(&NaiveDate, &f64)> = weeks.iter().skip(weeks.len().saturating_sub(52)).collect();
    assert_eq!(browser.all("#chart-attendance g.bar").await.len(), weeks.len(), "one bar per week with attendance");
    if let Some((week, hours)) = weeks.last() {
        let bar = "#chart-attendance g.bar:last-of-type";
        assert_eq!(browser.attr(bar, "data-bucket").await, week.format("%Y-%m-%d").to_string());
        let shown: f64 = browser.attr(bar, "data-total").await.parse().expect("hours");
        assert!((shown - **hours).abs() < 0.051, "hours of week {week}: shown {shown}, truth {hours}");
    }
    browser.screenshot(&shot("charts")).await;
    println!("screenshots in {}", shots.display());
}


// ------------------------------------------------------------------------------------ the CLI

/// The CLI binary of this build (`target/debug/personio-pipeline`, next to `deps/`).
fn cli_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join(format!("personio-pipeline{}", std::env::consts::EXE_SUFFIX));
    bin.is_file().then_some(bin)
}

/// `run --demo`, then `pipeline personio show` serves the dashboard (no display: it prints the URL);
/// `--no-browser` and `--json` print the summaries as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_show_serves_the_dashboard_after_run_demo() {
    let test = "cli_show_serves_the_dashboard_after_run_demo";
    let Some(bin) = cli_binary() else {
        println!("SKIPPED: {test}: the personio-pipeline binary is not built next to this test (run `cargo test --workspace`)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = || {
        let mut c = Command::new(&bin);
        c.arg("--project-dir").arg(dir.path()).arg("--pipelines-dir").arg(dir.path().join("pipelines"));
        c.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
        c
    };
    let out = cli().args(["--json", "run", "--demo"]).output().expect("run --demo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON run report");
    let pipeline = report["pipeline_name"].as_str().expect("pipeline_name in the report").to_string();
    let pipeline = pipeline.as_str();
    let sandbox = Sandbox::start(SandboxConfig::default(), "127.0.0.1:0").await.expect("sandbox");
    let n = sandbox.handle().truth().employees.len();

    // Scripts keep the text and JSON summaries.
    let text = cli().args(["pipeline", pipeline, "show", "--no-browser"]).output().expect("show --no-browser");
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["employees", &n.to_string()]), "{text}");
    let json = cli().args(["--json", "pipeline", pipeline, "show"]).output().expect("--json show");
    let json: Value = serde_json::from_slice(&json.stdout).expect("JSON summary");
    let employees = json["tables"].as_array().and_then(|t| t.iter().find(|t| t["name"] == json!("employees"))).cloned();
    assert_eq!(employees.map(|t| t["rows"].clone()), Some(json!(n)));

    // The dashboard: the URL on stdout, pages with the truth, DROP refused.
    let mut child = cli().args(["pipeline", pipeline, "show"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("show");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    let url = line.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")).map(String::from);
    let Some(url) = url else {
        let _ = child.kill();
        let err = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).to_string()).unwrap_or_default();
        panic!("show printed no URL: {line:?}; stderr: {err}");
    };
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let http = http.clone();
        let url = format!("{url}{path}");
        async move { http.get(&url).send().await.expect("GET").text().await.expect("body") }
    };
    let tables = get("tables").await;
    let overview = get("").await;
    let refused = get("sql?q=DROP%20TABLE%20personio_data.employees").await;
    let counted = get("sql?q=SELECT%20count(*)%20FROM%20personio_data.employees").await;
    let foreign = http.get(&url).header("Host", "attacker.example").send().await.expect("GET").status();
    let _ = child.kill();
    let _ = child.wait();
    assert!(tables.contains(&format!("id=\"rows-employees\" data-value=\"{n}\"")), "{tables}");
    assert!(overview.contains("id=\"card-loads\" data-value=\"1\""), "{overview}");
    assert!(refused.contains("id=\"sql-error\"") && refused.contains("DROP statements are refused"), "{refused}");
    assert!(counted.contains(&format!("<td>{n}</td>")), "{counted}");
    assert_eq!(foreign.as_u16(), 403, "a request for another host name is refused (DNS rebinding)");
}
