//! A sandbox on a loopback port, a pipeline in a temp dir, and queries.

use std::collections::BTreeSet;

use personio_client::{ClientConfig, PersonioClient};
use personio_sandbox::{RunningSandbox, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use personio_source::{PersonioSource, SourceOptions};
use pipeline_destinations::duckdb::{DuckDbConfig, DuckDbDestination};
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, RunReport};

pub struct World {
    pub sandbox: RunningSandbox,
    /// Keeps the DuckDB file and working directory alive for the test.
    pub _dir: tempfile::TempDir,
    pub dataset: String,
    pub pipeline: Pipeline,
    pub destination: DuckDbDestination,
    pub options: SourceOptions,
}

impl World {
    pub async fn new(config: SandboxConfig) -> Self {
        let sandbox = Sandbox::start(config, "127.0.0.1:0").await.expect("sandbox");
        let dir = tempfile::tempdir().expect("tempdir");
        let dataset = "test_data".to_string();
        let pipeline = Pipeline::open(PipelineConfig::new("test_pipeline", &dataset, dir.path().join("pipelines"))).expect("pipeline");
        let destination = DuckDbConfig::for_pipeline(dir.path(), "test_pipeline", &dataset).build().expect("duckdb");
        let options = SourceOptions { allow_retired_v1: true, ..SourceOptions::default() };
        World { sandbox, _dir: dir, dataset, pipeline, destination, options }
    }

    pub fn client(&self) -> PersonioClient {
        let mut c = ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(self.sandbox.base_url());
        c.backoff_factor = std::time::Duration::from_millis(20);
        c.retry_after_floor = std::time::Duration::from_millis(20);
        PersonioClient::new(c).expect("client")
    }

    pub fn source(&self) -> PersonioSource {
        PersonioSource::new(self.client(), self.options.clone())
    }

    pub async fn run(&mut self, resources: &[&str]) -> RunReport {
        let source = self.source();
        let selected: Vec<String> = resources.iter().map(|s| s.to_string()).collect();
        self.pipeline.run(&source, Some(&selected), &mut self.destination).await.expect("run")
    }

    pub fn count(&self, table: &str) -> i64 {
        self.i64(&format!("SELECT count(*) FROM {}.{table}", self.dataset))
    }

    pub fn i64(&self, sql: &str) -> i64 {
        self.destination.connection().expect("connection").query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn strings(&self, sql: &str) -> Vec<String> {
        let conn = self.destination.connection().expect("connection");
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.map(|r| r.expect("row")).collect()
    }

    pub fn id_set(&self, sql: &str) -> BTreeSet<String> {
        self.strings(sql).into_iter().collect()
    }
}

/// A JSON value as the text DuckDB prints for it (ids).
pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The v1 employee attribute value.
pub fn attr<'a>(e: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    &e["attributes"][key]["value"]
}

/// The CLI binary as a child process against a sandbox served in the background: what the reliability
/// suites (faults, crash, bad_inputs, secrets) share. Blocking tests, so a child can be killed mid-run.
pub mod cli_run {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use personio_sandbox::{RunningSandbox, Sandbox, SandboxConfig, SandboxHandle, Truth, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
    use pipeline_destinations::duckdb::DuckDbConfig;
    use serde_json::Value;

    use super::{attr, text};

    /// Dataset and pipeline names of every CLI run here (the CLI's defaults).
    pub const DATASET: &str = "personio_data";
    /// Pipeline name.
    pub const PIPELINE: &str = "personio";

    /// A sandbox served by its own runtime, so plain blocking tests can run and kill the binary.
    pub struct BgSandbox {
        pub sandbox: RunningSandbox,
        pub rt: tokio::runtime::Runtime,
    }

    impl BgSandbox {
        pub fn start(config: SandboxConfig) -> Self {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            let sandbox = rt.block_on(Sandbox::start(config, "127.0.0.1:0")).expect("sandbox");
            BgSandbox { sandbox, rt }
        }
        pub fn handle(&self) -> SandboxHandle {
            self.sandbox.handle()
        }
        pub fn base_url(&self) -> String {
            self.sandbox.base_url()
        }
    }

    /// A project directory (`.dlt/`, `personio.duckdb`, `pipelines/`) plus a separate folder for the
    /// child's stdout/stderr.
    pub struct Project {
        pub dir: tempfile::TempDir,
        pub logs: tempfile::TempDir,
        runs: std::cell::Cell<u32>,
    }

    impl Default for Project {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Project {
        pub fn new() -> Self {
            Project { dir: tempfile::tempdir().expect("tempdir"), logs: tempfile::tempdir().expect("tempdir"), runs: std::cell::Cell::new(0) }
        }
        pub fn root(&self) -> &Path {
            self.dir.path()
        }
        pub fn pipelines(&self) -> PathBuf {
            self.root().join("pipelines")
        }
        pub fn workdir(&self) -> PathBuf {
            self.pipelines().join(PIPELINE)
        }
        pub fn db(&self) -> PathBuf {
            self.root().join(format!("{PIPELINE}.duckdb"))
        }
        pub fn write_dlt(&self, name: &str, text: &str) {
            let dir = self.root().join(".dlt");
            std::fs::create_dir_all(&dir).expect("mkdir .dlt");
            std::fs::write(dir.join(name), text).expect("write .dlt file");
        }

        /// The binary with a clean environment (nothing of the caller's `SOURCES__*`), sandbox credentials,
        /// fast retries, and this project's directories. Append the subcommand.
        pub fn cli(&self, base_url: &str) -> Command {
            let mut c = Command::new(env!("CARGO_BIN_EXE_personio-pipeline"));
            c.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", self.root())
                .env("SOURCES__PERSONIO__BASE_URL", base_url)
                .env("SOURCES__PERSONIO__CLIENT_ID", DEFAULT_CLIENT_ID)
                .env("SOURCES__PERSONIO__CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
                .env("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.02")
                .env("RUNTIME__REQUEST_MAX_RETRY_DELAY", "0.5")
                .env("RUNTIME__REQUEST_TIMEOUT", "10")
                .current_dir(self.root())
                .arg("--project-dir")
                .arg(self.root())
                .arg("--pipelines-dir")
                .arg(self.pipelines())
                .arg("--json");
            c
        }

        /// Start `cmd` with stdout/stderr going to files in [`Project::logs`].
        pub fn spawn(&self, cmd: &mut Command) -> Running {
            let n = self.runs.get() + 1;
            self.runs.set(n);
            let out = self.logs.path().join(format!("run{n}.stdout"));
            let err = self.logs.path().join(format!("run{n}.stderr"));
            let child = cmd
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).expect("stdout file"))
                .stderr(std::fs::File::create(&err).expect("stderr file"))
                .spawn()
                .expect("spawn the CLI");
            Running { child, out, err, started: Instant::now() }
        }

        /// Run `cmd` to its end (killed after `limit`).
        pub fn run(&self, cmd: &mut Command, limit: Duration) -> Ran {
            self.spawn(cmd).wait(limit)
        }
    }

    /// A started child.
    pub struct Running {
        pub child: Child,
        out: PathBuf,
        err: PathBuf,
        started: Instant,
    }

    impl Running {
        pub fn finished(&mut self) -> bool {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }
        /// SIGKILL (on unix) and collect.
        pub fn kill(mut self) -> Ran {
            let _ = self.child.kill();
            let mut ran = self.wait(Duration::from_secs(30));
            ran.killed = true;
            ran
        }
        pub fn wait(mut self, limit: Duration) -> Ran {
            let deadline = self.started + limit;
            let mut timed_out = false;
            let status = loop {
                match self.child.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if Instant::now() >= deadline => {
                        timed_out = true;
                        let _ = self.child.kill();
                        break self.child.wait().ok();
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    Err(_) => break None,
                }
            };
            Ran {
                code: status.and_then(|s| s.code()),
                stdout: String::from_utf8_lossy(&std::fs::read(&self.out).unwrap_or_default()).into_owned(),
                stderr: String::from_utf8_lossy(&std::fs::read(&self.err).unwrap_or_default()).into_owned(),
                secs: self.started.elapsed().as_secs_f64(),
                timed_out,
                killed: false,
            }
        }
    }

    /// A finished child.
    #[derive(Debug, Clone)]
    pub struct Ran {
        /// Exit code (`None`: killed by a signal).
        pub code: Option<i32>,
        pub stdout: String,
        pub stderr: String,
        pub secs: f64,
        pub timed_out: bool,
        pub killed: bool,
    }

    impl Ran {
        pub fn ok(&self) -> bool {
            self.code == Some(0)
        }
        /// The `error: …` lines the binary printed.
        pub fn error_lines(&self) -> Vec<&str> {
            self.stderr.lines().filter(|l| l.starts_with("error:")).collect()
        }
        /// One line for a failure message.
        pub fn summary(&self) -> String {
            let tail: Vec<&str> = self.stderr.lines().rev().take(4).collect();
            format!("exit {:?} after {:.1}s{}; stderr tail: {:?}", self.code, self.secs, if self.timed_out { " (timed out)" } else { "" }, tail)
        }
    }

    /// Table → row count of the dataset, `None` when the database file does not exist.
    pub fn table_counts(db: &Path) -> Option<BTreeMap<String, i64>> {
        if !db.exists() {
            return None;
        }
        let d = DuckDbConfig::at(db, DATASET).build().ok()?;
        let conn = d.connection().ok()?;
        let mut stmt = conn
            .prepare("SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name")
            .ok()?;
        let names: Vec<String> = stmt.query_map([DATASET], |r| r.get::<_, String>(0)).ok()?.filter_map(Result::ok).collect();
        if names.is_empty() {
            return Some(BTreeMap::new());
        }
        let sql: Vec<String> = names
            .iter()
            .map(|n| format!("SELECT '{}', count(*) FROM {DATASET}.\"{}\"", n.replace('\'', "''"), n.replace('"', "\"\"")))
            .collect();
        let mut stmt = conn.prepare(&sql.join(" UNION ALL ")).ok()?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).ok()?;
        Some(rows.filter_map(Result::ok).collect())
    }

    /// One column of text from a query on the database file.
    pub fn query_strings(db: &Path, sql: &str) -> Result<Vec<String>, String> {
        let d = DuckDbConfig::at(db, DATASET).build().map_err(|e| e.to_string())?;
        strings_on(&d, sql)
    }

    /// One column of text from a query on an open database.
    pub fn strings_on(d: &pipeline_destinations::duckdb::DuckDbDestination, sql: &str) -> Result<Vec<String>, String> {
        strings_many(d, &[sql.to_string()]).and_then(|mut v| v.pop().ok_or_else(|| "no result".to_string())?)
    }

    /// Several one-column queries on one connection (opening a connection is slow in debug builds); each
    /// query's result or error.
    pub fn strings_many(d: &pipeline_destinations::duckdb::DuckDbDestination, sqls: &[String]) -> Result<Vec<Result<Vec<String>, String>>, String> {
        let conn = d.connection().map_err(|e| e.to_string())?;
        Ok(sqls
            .iter()
            .map(|sql| {
                let mut stmt = conn.prepare(sql).map_err(|e| format!("{sql}: {e}"))?;
                let rows = stmt.query_map([], |r| r.get::<_, Option<String>>(0)).map_err(|e| format!("{sql}: {e}"))?;
                Ok(rows.filter_map(Result::ok).map(|s| s.unwrap_or_default()).collect())
            })
            .collect())
    }

    /// What "unchanged" compares: the dataset's tables and row counts (or the file bytes when the file
    /// must not be opened), the local state document and the pending packages.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Snapshot {
        pub tables: Option<BTreeMap<String, i64>>,
        pub db_bytes: Option<u64>,
        pub state: Option<Value>,
        pub pending: BTreeSet<String>,
    }

    impl Snapshot {
        pub fn take(p: &Project, open_db: bool) -> Snapshot {
            // A database file without tables (a failed first run opened it) is no dataset, as before.
            let (tables, db_bytes) = if open_db {
                (table_counts(&p.db()).filter(|t| !t.is_empty()), None)
            } else {
                (None, std::fs::read(p.db()).ok().map(|b| fnv(&b)))
            };
            let state = std::fs::read_to_string(p.workdir().join("state.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
            let pending = std::fs::read_dir(p.workdir().join("load").join("normalized"))
                .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            Snapshot { tables, db_bytes, state, pending }
        }
    }

    /// FNV-1a of bytes (file identity without another dependency).
    pub fn fnv(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
    }

    /// The default resources' keys in the ground truth.
    fn truth_keys(t: &Truth) -> BTreeMap<&'static str, Vec<String>> {
        let mut m = BTreeMap::new();
        m.insert("employees", t.employees.iter().map(|e| text(attr(e, "id"))).collect());
        m.insert("absences", t.absences.iter().map(|a| text(&a["attributes"]["id"])).collect());
        m.insert("attendance_periods", t.attendance_periods.iter().map(|p| text(&p["id"])).collect());
        m
    }

    fn truth_counts(t: &Truth) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        m.insert("employees", t.employees.len());
        m.insert("absences", t.absences.len());
        m.insert("attendance_periods", t.attendance_periods.len());
        m.insert("absence_types", t.time_off_types.len());
        m.insert("document_categories", t.document_categories.len());
        m.insert("custom_reports_list", t.custom_reports.len());
        m.insert("custom_reports", t.custom_report_items.values().map(Vec::len).sum());
        m.insert("employees_absences_balance", t.balances.values().map(Vec::len).sum());
        m.insert("projects_v2", t.projects_v2.len());
        m
    }

    /// Primary keys of the default resources, as SQL expressions.
    const KEYS: &[(&str, &str)] = &[
        ("employees", "CAST(id AS VARCHAR)"),
        ("absences", "CAST(id AS VARCHAR)"),
        ("attendance_periods", "CAST(id AS VARCHAR)"),
        ("absence_types", "CAST(id AS VARCHAR)"),
        ("document_categories", "CAST(id AS VARCHAR)"),
        ("custom_reports_list", "CAST(id AS VARCHAR)"),
        ("custom_reports", "CAST(report_id AS VARCHAR) || '|' || CAST(item_id AS VARCHAR)"),
        ("employees_absences_balance", "CAST(employee_id AS VARCHAR) || '|' || CAST(id AS VARCHAR)"),
        ("projects_v2", "CAST(id AS VARCHAR)"),
    ];

    /// Compare the dataset with the ground truth. Records that existed before the run (`before`) must all
    /// be there, nothing may be there that is not in `after`, and no key may repeat. With `before ==
    /// after` that is equality. Returns the differences (empty: exact).
    pub fn compare_with_truth(db: &Path, before: &Truth, after: &Truth) -> Vec<String> {
        let mut diffs = Vec::new();
        let (kb, ka) = (truth_keys(before), truth_keys(after));
        let (cb, ca) = (truth_counts(before), truth_counts(after));
        let d = match DuckDbConfig::at(db, DATASET).build() {
            Ok(d) => d,
            Err(e) => return vec![format!("cannot open {}: {e}", db.display())],
        };
        let sqls: Vec<String> = KEYS.iter().map(|(table, key)| format!("SELECT {key} FROM {DATASET}.{table}")).collect();
        let mut results = match strings_many(&d, &sqls) {
            Ok(r) => r.into_iter(),
            Err(e) => return vec![format!("cannot query {}: {e}", db.display())],
        };
        for (table, _) in KEYS {
            let keys = match results.next().unwrap_or_else(|| Err("no result".into())) {
                Ok(k) => k,
                Err(e) => {
                    if ca.get(*table).copied().unwrap_or(0) > 0 {
                        diffs.push(format!("{table}: cannot read ({e})"));
                    }
                    continue;
                }
            };
            let set: BTreeSet<&String> = keys.iter().collect();
            if set.len() != keys.len() {
                diffs.push(format!("{table}: {} rows but {} distinct keys (duplicates)", keys.len(), set.len()));
            }
            if let (Some(b), Some(a)) = (kb.get(*table), ka.get(*table)) {
                let missing: Vec<&String> = b.iter().filter(|k| !set.contains(k)).collect();
                let extra: Vec<&&String> = set.iter().filter(|k| !a.contains(**k)).collect();
                if !missing.is_empty() {
                    diffs.push(format!("{table}: {} rows lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(3)]));
                }
                if !extra.is_empty() {
                    diffs.push(format!("{table}: {} rows not in the truth, e.g. {:?}", extra.len(), &extra[..extra.len().min(3)]));
                }
            } else {
                let (b, a) = (cb.get(*table).copied().unwrap_or(0), ca.get(*table).copied().unwrap_or(0));
                if set.len() < b.min(a) || set.len() > b.max(a) {
                    diffs.push(format!("{table}: {} distinct rows, truth {b} (before the run) / {a} (after)", set.len()));
                }
            }
        }
        diffs
    }

    /// The newest state the destination holds (`_dlt_pipeline_state`), decoded, if any.
    pub fn destination_state(db: &Path) -> Option<Value> {
        if !db.exists() {
            return None;
        }
        let mut d = DuckDbConfig::at(db, DATASET).build().ok()?;
        let stored = d.stored_state_sync(PIPELINE).ok()??;
        let state = pipeline_engine::state::PipelineState::decode(&stored.row.state).ok()?;
        Some(Value::Object(state.doc().clone()))
    }

    /// A timestamp as DuckDB prints it (`2026-10-31 22:46:43+00`, or naive = UTC) or as dlt stores a cursor
    /// (RFC 3339, possibly behind dlt's one-character type tag).
    pub fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let t = s.trim_start_matches(|c: char| !c.is_ascii_digit()).trim();
        if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
            return Some(d.with_timezone(&chrono::Utc));
        }
        if let Ok(d) = chrono::DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z") {
            return Some(d.with_timezone(&chrono::Utc));
        }
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").ok().map(|n| n.and_utc())
    }

    /// Cursors of `state` that are ahead of the data in `db`: for each incremental resource, the stored
    /// `last_value` must not exceed the newest cursor value in its table (a cursor without a readable table
    /// is ahead by definition).
    pub fn cursors_ahead(db: &Path, state: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut found = Vec::new();
        find_cursors(state, &mut found);
        for (resource, cursor, last) in found {
            let Some(last) = last.as_str().and_then(parse_ts) else {
                out.push(format!("{resource}.{cursor}: unreadable stored cursor {last}"));
                continue;
            };
            let sql = format!("SELECT CAST(max({cursor}) AS VARCHAR) FROM {DATASET}.{resource}");
            match query_strings(db, &sql) {
                Ok(v) => {
                    let newest = v.first().and_then(|s| parse_ts(s));
                    if newest.is_none_or(|n| n < last) {
                        out.push(format!("{resource}.{cursor}: state says {last}, table holds up to {newest:?}"));
                    }
                }
                Err(e) => out.push(format!("{resource}.{cursor}: state says {last} but the table cannot be read ({e})")),
            }
        }
        out
    }

    /// `(resource, cursor, last_value)` under `sources.*.resources.*.incremental`.
    fn find_cursors(v: &Value, out: &mut Vec<(String, String, Value)>) {
        let Some(sources) = v.get("sources").and_then(Value::as_object) else {
            if let Some(obj) = v.as_object() {
                for inner in obj.values() {
                    find_cursors(inner, out);
                }
            }
            return;
        };
        for src in sources.values() {
            let Some(resources) = src.get("resources").and_then(Value::as_object) else { continue };
            for (name, r) in resources {
                let Some(inc) = r.get("incremental").and_then(Value::as_object) else { continue };
                for (cursor, c) in inc {
                    if let Some(last) = c.get("last_value") {
                        out.push((name.clone(), cursor.clone(), last.clone()));
                    }
                }
            }
        }
    }

    /// A tiny deterministic RNG for choosing faults and points (no extra dependency).
    pub struct Lcg(pub u64);

    impl Lcg {
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        /// Uniform in `0..n` (n > 0).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n.max(1)
        }
        pub fn unit(&mut self) -> f64 {
            (self.next_u64() % 1_000_000) as f64 / 1_000_000.0
        }
    }

    /// `name=value` from the environment, parsed, or `default`.
    pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
        std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    }

    /// The slow profile is on (`PP_SLOW=1`).
    pub fn slow() -> bool {
        std::env::var("PP_SLOW").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }
}

/// Spawn `show` (a `pipeline … show` command serving the dashboard) and return it with the URL it
/// printed; fails the test with its stderr when it prints none within a minute.
pub fn serve(mut show: std::process::Command) -> (std::process::Child, String) {
    let mut child = show.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("show");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_default();
    let Some(base) = line.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")).map(String::from) else {
        let _ = child.kill();
        let err = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).to_string()).unwrap_or_default();
        panic!("show printed no URL: {line:?}; stderr: {err}");
    };
    (child, base)
}

/// The body of `GET url` (`http://127.0.0.1:port/path`), over a plain socket.
pub fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".to_string()));
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(120))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let mut body: &[u8] = resp.get(split + 4..).unwrap_or(&[]);
    assert!(head.starts_with("HTTP/1.1 200"), "GET {url}: {head}");
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return String::from_utf8_lossy(body).to_string();
    }
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        let data = body.get(eol + 2..eol + 2 + n).unwrap_or(&[]);
        out.extend_from_slice(data);
        body = body.get(eol + 4 + n..).unwrap_or(&[]);
    }
    String::from_utf8_lossy(&out).to_string()
}
