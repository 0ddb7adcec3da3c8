//! Bad-input catalogue (issue 9 §4): one row per hostile or mistaken input. Every row starts from a copy of
//! a loaded project (dataset, state, working directory) and its own sandbox with the same company, runs the
//! binary once, and asserts:
//!
//! * refused inputs: the documented exit code (docs/errors.md), exactly one `error:` line that names what
//!   is wrong and says what to do, no secret in any output, and the dataset, state and pending packages
//!   exactly as before;
//! * inputs a loader must survive (hostile attribute labels, a field changing type, a token revoked
//!   mid-run): exit 0 and the dataset equal to the ground truth.
//!
//! Prints `bad inputs handled: X of Y` and fails listing every row that was not handled.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use personio_sandbox::{FaultConfig, FaultKind, Preset, SandboxConfig, DEFAULT_CLIENT_SECRET};

use crate::support::cli_run::{compare_with_truth, parse_ts, strings_on, BgSandbox, Project, Ran, Snapshot};

const SEED: u64 = 11;

fn company() -> SandboxConfig {
    SandboxConfig::preset(Preset::Tiny, SEED)
}

/// Everything one row works with.
struct Env {
    p: Project,
    sb: BgSandbox,
    base_url: String,
    /// Requests a hostile "elsewhere" server received (method, path, headers, body).
    thief: Arc<Mutex<Vec<String>>>,
    /// A run started by the row's setup (concurrency), awaited after the row.
    background: Option<crate::support::cli_run::Running>,
    /// The row must not open the database file to compare (corrupt, read-only).
    db_bytes_only: bool,
    /// Files made immutable (undone after the row).
    immutable: Vec<std::path::PathBuf>,
    /// Another process of the row legitimately loads (the first of two concurrent runs).
    changes_expected: bool,
}

impl Env {
    fn cli(&self) -> Command {
        self.p.cli(&self.base_url)
    }
    fn run_args(&self, args: &[&str]) -> Command {
        let mut c = self.cli();
        c.args(args);
        c
    }
    /// Serve `app` on a loopback port in the sandbox's runtime.
    fn serve(&self, app: Router) -> String {
        let listener = self.sb.rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        self.sb.rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }
    /// A server that records every request and answers `{}`.
    fn serve_thief(&self) -> String {
        let seen = self.thief.clone();
        let app = Router::new().fallback(move |req: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                let headers: Vec<String> = parts.headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or(""))).collect();
                if let Ok(mut s) = seen.lock() {
                    s.push(format!("{} {} {headers:?} {}", parts.method, parts.uri, String::from_utf8_lossy(&body)));
                }
                json(StatusCode::OK, "{}")
            }
        });
        self.serve(app)
    }
    /// `.dlt/secrets.toml` with the sandbox credentials (and no environment credentials).
    fn creds_in_file(&self, cmd: &mut Command, extra: &str) {
        self.p.write_dlt("secrets.toml", &format!("[sources.personio]\nclient_id = \"papi-sandbox-client\"\nclient_secret = \"{DEFAULT_CLIENT_SECRET}\"\n{extra}"));
        cmd.env_remove("SOURCES__PERSONIO__CLIENT_ID").env_remove("SOURCES__PERSONIO__CLIENT_SECRET");
    }
    fn make_immutable(&mut self, path: &Path) -> bool {
        let ok = Command::new("chattr").arg("+i").arg(path).status().is_ok_and(|s| s.success());
        if ok {
            self.immutable.push(path.to_path_buf());
        }
        ok
    }
}

fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

const AUTH_OK: &str = r#"{"success":true,"data":{"token":"hostile-token","expires_in":86400}}"#;
const V2_AUTH_OK: &str = r#"{"access_token":"hostile-token","token_type":"Bearer","expires_in":3600}"#;

/// Auth endpoints that accept anyone, plus `routes`.
fn hostile(routes: Router) -> Router {
    Router::new()
        .route("/v1/auth", post(|| async { json(StatusCode::OK, AUTH_OK) }))
        .route("/v2/auth/token", post(|| async { json(StatusCode::OK, V2_AUTH_OK) }))
        .merge(routes)
}

fn employees_page(body: &'static str) -> Router {
    hostile(Router::new().route("/v1/company/employees", get(move || async move { json(StatusCode::OK, body) })))
}

const ONE_EMPLOYEE_PAGE: &str = r#"{"success":true,"metadata":{"total_elements":500,"current_page":0,"total_pages":5},"offset":0,"limit":100,"data":[{"type":"Employee","attributes":{"id":{"label":"ID","value":1,"type":"integer","universal_id":"id"},"last_modified_at":{"label":"Last modified","value":"2026-11-20T10:00:00+01:00","type":"date","universal_id":null}}}]}"#;
const EMPTY_PAGE: &str = r#"{"success":true,"metadata":{"total_elements":0,"current_page":0,"total_pages":0},"offset":0,"limit":100,"data":[]}"#;

#[derive(Clone, Copy)]
enum Expect {
    /// Exit code among these; the one error line matches every pattern (`a|b` = either, case-insensitive).
    Refused(&'static [i32], &'static [&'static str]),
    /// Exit 0 and the employees (or every default resource) equal to the truth.
    Loads,
}

struct Case {
    name: &'static str,
    expect: Expect,
    setup: fn(&mut Env) -> Command,
    /// An extra check after the run (`Err`: not handled).
    check: Option<fn(&Env, &Ran) -> Result<(), String>>,
}

fn refused(name: &'static str, codes: &'static [i32], says: &'static [&'static str], setup: fn(&mut Env) -> Command) -> Case {
    Case { name, expect: Expect::Refused(codes, says), setup, check: None }
}

fn loads(name: &'static str, setup: fn(&mut Env) -> Command, check: Option<fn(&Env, &Ran) -> Result<(), String>>) -> Case {
    Case { name, expect: Expect::Loads, setup, check }
}

/// Words that say what to do.
const HINTS: &[&str] = &[
    "set ", "check", "use ", "pass ", "run ", "rerun", "delete", "remove", "wait", "fix", "free ", "choose", "must", "should", "try",
    "point ", "expected", "allowed", "give ", "add ", "only ", "instead", "make sure", "ensure", "between", "at least", "at most", "one of",
    "raise", "lower", "grant", "available", "possible values", "report", "--help", "such as", "e.g.",
];

/// A line that says the same thing twice (an error chain printing each cause's text again).
fn repeats_itself(line: &str) -> Option<String> {
    let parts: Vec<&str> = line.split(": ").map(str::trim).filter(|p| p.len() >= 24).collect();
    parts.iter().enumerate().find(|(i, p)| parts[i + 1..].contains(p)).map(|(_, p)| p.to_string())
}

fn with_env(e: &mut Env, vars: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = e.cli();
    for (k, v) in vars {
        c.env(k, v);
    }
    c.args(args);
    c
}

fn config_toml(e: &mut Env, text: &'static str) -> Command {
    e.p.write_dlt("config.toml", text);
    e.run_args(&["run"])
}

/// Every employee (or default resource) equals the truth, `_dlt_id` is unique, the cursor column holds
/// the truth's values.
fn employees_exact(e: &Env, _: &Ran) -> Result<(), String> {
    let t = e.sb.handle().truth();
    let diffs = compare_with_truth(&e.p.db(), &t, &t);
    let diffs: Vec<String> = diffs.into_iter().filter(|d| d.starts_with("employees:") || d.starts_with("employees_absences")).collect();
    if !diffs.is_empty() {
        return Err(format!("{diffs:?}"));
    }
    let d = pipeline_destinations::duckdb::DuckDbConfig::at(e.p.db(), crate::support::cli_run::DATASET).build().map_err(|e| e.to_string())?;
    let ids = strings_on(&d, "SELECT CAST(count(*) - count(DISTINCT _dlt_id) AS VARCHAR) FROM personio_data.employees")?;
    if ids.first().map(String::as_str) != Some("0") {
        return Err(format!("duplicate _dlt_id in employees: {ids:?}"));
    }
    let got: std::collections::BTreeMap<String, Option<chrono::DateTime<chrono::Utc>>> =
        strings_on(&d, "SELECT CAST(id AS VARCHAR) || '|' || CAST(last_modified_at AS VARCHAR) FROM personio_data.employees")?
            .into_iter()
            .filter_map(|l| l.split_once('|').map(|(id, ts)| (id.to_string(), parse_ts(ts))))
            .collect();
    for emp in &t.employees {
        let id = crate::support::text(crate::support::attr(emp, "id"));
        let want = crate::support::attr(emp, "last_modified_at").as_str().and_then(parse_ts);
        if got.get(&id).copied().flatten() != want {
            return Err(format!("employee {id}: last_modified_at {:?}, truth {want:?}", got.get(&id)));
        }
    }
    Ok(())
}

/// A label added to everyone, then an employees run; afterwards one employee changes and a second run must
/// bring the change (the cursor still works).
fn label_case(e: &mut Env, label: &str) -> Command {
    let h = e.sb.handle();
    h.advance_clock(chrono::Duration::hours(1));
    h.add_custom_attribute(label, "standard");
    e.run_args(&["run", "--resources", "employees"])
}

fn then_incremental(e: &Env, ran: &Ran) -> Result<(), String> {
    employees_exact(e, ran)?;
    let h = e.sb.handle();
    h.advance_clock(chrono::Duration::hours(1));
    h.update_employees(2);
    let again = e.p.run(&mut e.run_args(&["run", "--resources", "employees"]), Duration::from_secs(120));
    if !again.ok() {
        return Err(format!("second run: {}", again.summary()));
    }
    employees_exact(e, &again)
}

fn the_catalogue() -> Vec<Case> {
    vec![
        // ------------------------------------------------------------ credentials
        refused("wrong client_secret", &[3], &["credential|client_secret|rejected"], |e| with_env(e, &[("SOURCES__PERSONIO__CLIENT_SECRET", "not-the-secret")], &["run"])),
        refused("wrong client_id", &[3], &["credential|client_id|rejected"], |e| with_env(e, &[("SOURCES__PERSONIO__CLIENT_ID", "nobody")], &["run"])),
        refused("empty client_secret", &[2, 3], &["client_secret"], |e| with_env(e, &[("SOURCES__PERSONIO__CLIENT_SECRET", "")], &["run"])),
        refused("missing client_id", &[2], &["client_id"], |e| {
            let mut c = e.run_args(&["run"]);
            c.env_remove("SOURCES__PERSONIO__CLIENT_ID");
            c
        }),
        refused("client_secret only in config.toml (secrets are never read from it)", &[2], &["client_secret"], |e| {
            e.p.write_dlt("config.toml", &format!("[sources.personio]\nclient_secret = \"{DEFAULT_CLIENT_SECRET}\"\n"));
            let mut c = e.run_args(&["run"]);
            c.env_remove("SOURCES__PERSONIO__CLIENT_SECRET");
            c
        }),
        refused("access revoked: every token refused, also after re-authenticating", &[3, 4], &["403|refused|rejected|denied|not valid"], |e| {
            e.sb.handle().set_faults(FaultConfig { probability: 1.0, kinds: vec![FaultKind::RevokeToken], ..FaultConfig::default() });
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")], &["run", "--resources", "employees"])
        }),
        loads(
            "token revoked twice during a run: re-authenticate and load",
            |e| {
                let h = e.sb.handle();
                h.advance_clock(chrono::Duration::hours(1));
                h.update_employees(3);
                h.set_faults(FaultConfig { at_requests: vec![(2, FaultKind::RevokeToken), (7, FaultKind::RevokeToken)], ..FaultConfig::default() });
                e.run_args(&["run", "--resources", "employees,employees_absences_balance"])
            },
            Some(employees_exact),
        ),
        // ------------------------------------------------------------ config and secrets files
        refused("malformed secrets.toml (the bad line holds the secret)", &[2], &["secrets.toml"], |e| {
            e.p.write_dlt("secrets.toml", "[sources.personio]\nclient_id = \"papi-sandbox-client\"\nclient_secret = \"TOPSECRET-4711\n");
            e.run_args(&["run"])
        }),
        refused("malformed config.toml", &[2], &["config.toml"], |e| config_toml(e, "[sources.personio\nitems_per_page = 100\n")),
        refused("secrets.toml is a directory", &[2], &["secrets.toml"], |e| {
            std::fs::create_dir_all(e.p.root().join(".dlt/secrets.toml")).expect("mkdir");
            e.run_args(&["run"])
        }),
        refused("secrets.toml is not UTF-8", &[2], &["secrets.toml"], |e| {
            std::fs::create_dir_all(e.p.root().join(".dlt")).expect("mkdir");
            std::fs::write(e.p.root().join(".dlt/secrets.toml"), b"[sources.personio]\nclient_secret = \"\xff\xfe\xfa\"\n").expect("write");
            e.run_args(&["run"])
        }),
        refused("client_secret of the wrong type (a table)", &[2], &["client_secret"], |e| {
            let mut c = e.run_args(&["run"]);
            e.creds_in_file(&mut c, "");
            e.p.write_dlt("secrets.toml", "[sources.personio]\nclient_id = \"papi-sandbox-client\"\n[sources.personio.client_secret]\nvalue = 1\n");
            c
        }),
        // ------------------------------------------------------------ numbers and types in config
        refused("items_per_page not a number", &[2], &["items_per_page"], |e| config_toml(e, "[sources.personio]\nitems_per_page = \"many\"\n")),
        refused("items_per_page = 0", &[2], &["items_per_page"], |e| config_toml(e, "[sources.personio]\nitems_per_page = 0\n")),
        refused("items_per_page negative", &[2], &["items_per_page"], |e| config_toml(e, "[sources.personio]\nitems_per_page = -5\n")),
        refused("items_per_page fractional", &[2], &["items_per_page"], |e| config_toml(e, "[sources.personio]\nitems_per_page = 3.5\n")),
        refused("items_per_page far above Personio's limit", &[2], &["items_per_page"], |e| config_toml(e, "[sources.personio]\nitems_per_page = 1000000\n")),
        refused("request_timeout negative", &[2], &["request_timeout"], |e| with_env(e, &[("RUNTIME__REQUEST_TIMEOUT", "-1")], &["run"])),
        refused("request_timeout infinite", &[2], &["request_timeout"], |e| with_env(e, &[("RUNTIME__REQUEST_TIMEOUT", "inf")], &["run"])),
        refused("request_timeout not a number", &[2], &["request_timeout"], |e| with_env(e, &[("RUNTIME__REQUEST_TIMEOUT", "soon")], &["run"])),
        refused("request_timeout zero", &[2], &["request_timeout"], |e| with_env(e, &[("RUNTIME__REQUEST_TIMEOUT", "0")], &["run"])),
        refused("request_backoff_factor huge", &[2], &["request_backoff_factor"], |e| with_env(e, &[("RUNTIME__REQUEST_BACKOFF_FACTOR", "1e300")], &["run"])),
        refused("request_backoff_factor negative", &[2], &["request_backoff_factor"], |e| with_env(e, &[("RUNTIME__REQUEST_BACKOFF_FACTOR", "-1")], &["run"])),
        refused("request_max_retry_delay NaN", &[2], &["request_max_retry_delay"], |e| with_env(e, &[("RUNTIME__REQUEST_MAX_RETRY_DELAY", "NaN")], &["run"])),
        refused("request_max_attempts zero", &[2], &["request_max_attempts"], |e| with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "0")], &["run"])),
        refused("request_max_attempts negative", &[2], &["request_max_attempts"], |e| with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "-3")], &["run"])),
        refused("request_timeout of the wrong TOML type", &[2], &["request_timeout"], |e| config_toml(e, "[runtime]\nrequest_timeout = [1, 2]\n")),
        refused("merge_chunk_rows not a number", &[2], &["merge_chunk_rows"], |e| config_toml(e, "[destination.duckdb]\nmerge_chunk_rows = \"lots\"\n")),
        refused("load_during_extract not a boolean", &[2], &["load_during_extract"], |e| config_toml(e, "[destination.duckdb]\nload_during_extract = \"sometimes\"\n")),
        refused("memory_limit not a size", &[2], &["memory_limit"], |e| config_toml(e, "[destination.duckdb]\nmemory_limit = \"plenty\"\n")),
        refused("start date not a date", &[2], &["start-date|start_date|2026-13-45"], |e| e.run_args(&["run", "--start-date", "2026-13-45"])),
        // ------------------------------------------------------------ unknown names, unsafe names
        refused("unknown resource", &[2], &["salaries"], |e| e.run_args(&["run", "--resources", "employees,salaries"])),
        refused("unknown destination", &[2], &["snowflake"], |e| e.run_args(&["run", "--destination", "snowflake"])),
        refused("pipeline name escaping the pipelines dir", &[2], &["pipeline"], |e| e.run_args(&["run", "--pipeline-name", "../../escape"])),
        refused("pipeline name with a path separator", &[2], &["pipeline"], |e| e.run_args(&["run", "--pipeline-name", "a/b"])),
        refused("empty pipeline name", &[2], &["pipeline"], |e| e.run_args(&["run", "--pipeline-name", ""])),
        refused("dataset name with SQL in it", &[2], &["dataset"], |e| e.run_args(&["run", "--dataset", "x; DROP SCHEMA personio_data CASCADE; --"])),
        refused("dataset name with a path", &[2], &["dataset"], |e| e.run_args(&["run", "--dataset", "../evil"])),
        // ------------------------------------------------------------ base URLs
        refused("base URL that is not Personio (404 HTML everywhere)", &[2, 3, 4], &["personio|base_url|base url"], |e| {
            let app = Router::new().fallback(|| async { (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html")], "<html><body>Not Found</body></html>").into_response() });
            e.base_url = e.serve(app);
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")], &["run", "--resources", "employees"])
        }),
        refused("base URL with an unsupported scheme", &[2], &["base_url|base url|scheme|https"], |e| {
            e.base_url = "ftp://127.0.0.1:21".into();
            e.run_args(&["run"])
        }),
        refused("base URL that is not a URL", &[2], &["base_url|base url|url"], |e| {
            e.base_url = "not a url at all".into();
            e.run_args(&["run"])
        }),
        refused("plain HTTP to a non-loopback host", &[2], &["https|http|loopback"], |e| {
            e.base_url = "http://10.255.255.1:80".into();
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "1"), ("RUNTIME__REQUEST_TIMEOUT", "3")], &["run", "--resources", "employees"])
        }),
        Case {
            name: "auth answers 307 to another host (the body holds the secret)",
            expect: Expect::Refused(&[3, 4], &["redirect|307"]),
            setup: |e| {
                let thief = e.serve_thief();
                let app = Router::new().fallback(move || {
                    let to = format!("{thief}/v1/auth");
                    async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response() }
                });
                e.base_url = e.serve(app);
                with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")], &["run", "--resources", "employees"])
            },
            check: Some(|e, _| {
                let seen = e.thief.lock().map(|s| s.clone()).unwrap_or_default();
                match seen.iter().find(|s| s.contains(DEFAULT_CLIENT_SECRET)) {
                    Some(s) => Err(format!("the secret was sent to the redirect target: {s}")),
                    None => Ok(()),
                }
            }),
        },
        Case {
            name: "data endpoint answers 302 to another host",
            expect: Expect::Refused(&[4], &["redirect|302|host"]),
            setup: |e| {
                let thief = e.serve_thief();
                let app = hostile(Router::new().route(
                    "/v1/company/employees",
                    get(move || {
                        let to = format!("{thief}/v1/company/employees");
                        async move { (StatusCode::FOUND, [(header::LOCATION, to)]).into_response() }
                    }),
                ));
                e.base_url = e.serve(app);
                with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")], &["run", "--resources", "employees"])
            },
            check: Some(|e, _| {
                let seen = e.thief.lock().map(|s| s.clone()).unwrap_or_default();
                match seen.iter().find(|s| s.contains("hostile-token")) {
                    Some(s) => Err(format!("the token was sent to the redirect target: {s}")),
                    None => Ok(()),
                }
            }),
        },
        // ------------------------------------------------------------ destination files
        Case {
            name: "corrupt DuckDB file",
            expect: Expect::Refused(&[5], &["personio.duckdb"]),
            setup: |e| {
                e.db_bytes_only = true;
                let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
                std::fs::write(e.p.db(), garbage).expect("corrupt");
                e.run_args(&["run"])
            },
            check: None,
        },
        Case {
            name: "DuckDB path is a directory",
            expect: Expect::Refused(&[5], &["personio.duckdb"]),
            setup: |e| {
                e.db_bytes_only = true;
                std::fs::remove_file(e.p.db()).expect("rm db");
                std::fs::create_dir(e.p.db()).expect("mkdir db");
                e.run_args(&["run"])
            },
            check: None,
        },
        Case {
            name: "read-only DuckDB file",
            expect: Expect::Refused(&[5], &["personio.duckdb"]),
            setup: |e| {
                e.db_bytes_only = true;
                let h = e.sb.handle();
                h.advance_clock(chrono::Duration::hours(1));
                h.update_employees(2);
                let db = e.p.db();
                let mut perms = std::fs::metadata(&db).expect("meta").permissions();
                perms.set_readonly(true);
                std::fs::set_permissions(&db, perms).expect("chmod");
                // root ignores permissions: make the file immutable instead.
                if std::fs::OpenOptions::new().append(true).open(&db).is_ok() && !e.make_immutable(&db) {
                    eprintln!("read-only DuckDB file: cannot make a read-only file here; the row runs on a writable file");
                }
                e.run_args(&["run", "--resources", "employees"])
            },
            check: None,
        },
        Case {
            name: "disk full while writing a package (file size limit 8 KiB)",
            expect: Expect::Refused(&[1, 4, 5], &["space|full|too large|file size|efbig|write|writing"]),
            setup: |e| {
                let h = e.sb.handle();
                h.advance_clock(chrono::Duration::hours(1));
                h.add_custom_attribute("Disk filler", "standard");
                let inner = e.run_args(&["run"]);
                limited(&inner, 8192)
            },
            check: None,
        },
        Case {
            name: "two concurrent runs of one pipeline",
            expect: Expect::Refused(&[6], &["lock|another|running"]),
            setup: |e| {
                e.sb.handle().set_faults(FaultConfig { at_requests: vec![(1, FaultKind::Slow)], slow_ms: Some(4000), ..FaultConfig::default() });
                let first = e.p.spawn(&mut e.run_args(&["run"]));
                e.background = Some(first);
                e.changes_expected = true;
                std::thread::sleep(Duration::from_millis(1500));
                e.run_args(&["run"])
            },
            check: Some(|e, r| if e.sb.handle().request_log().is_empty() { Err("the first run never reached the API".into()) } else { employees_exact(e, r) }),
        },
        // ------------------------------------------------------------ hostile attribute labels
        loads("label with SQL metacharacters", |e| label_case(e, "x\"; DROP TABLE personio_data.employees; --"), Some(employees_exact)),
        loads("label with quotes", |e| label_case(e, "O'Brien's \"quoted\" `label`"), Some(employees_exact)),
        loads("label of 300 characters", |e| label_case(e, &"Verylonglabel ".repeat(22)[..300]), Some(employees_exact)),
        loads("empty label", |e| label_case(e, ""), Some(employees_exact)),
        loads(
            "two labels normalizing to one column",
            |e| {
                e.sb.handle().add_custom_attribute("Cost-Center", "standard");
                label_case(e, "cost center")
            },
            Some(employees_exact),
        ),
        loads("label _dlt_id", |e| label_case(e, "_dlt_id"), Some(then_incremental)),
        loads("label _dlt_load_id", |e| label_case(e, "_dlt_load_id"), Some(employees_exact)),
        loads("label id (the primary key)", |e| label_case(e, "ID"), Some(then_incremental)),
        loads("label last_modified_at (the cursor)", |e| label_case(e, "Last modified at"), Some(then_incremental)),
        loads(
            "a field changing type between runs (integer to text)",
            |e| {
                let h = e.sb.handle();
                h.advance_clock(chrono::Duration::hours(1));
                let key = h.add_custom_attribute("Badge number", "integer");
                let first = e.p.run(&mut e.run_args(&["run", "--resources", "employees"]), Duration::from_secs(120));
                assert!(first.ok(), "setup run: {}", first.summary());
                h.advance_clock(chrono::Duration::hours(1));
                h.change_attribute_type(&key, "standard");
                e.run_args(&["run", "--resources", "employees"])
            },
            Some(employees_exact),
        ),
        loads(
            "a field changing type between runs (text to decimal)",
            |e| {
                let h = e.sb.handle();
                h.advance_clock(chrono::Duration::hours(1));
                let key = h.add_custom_attribute("Shoe size", "standard");
                let first = e.p.run(&mut e.run_args(&["run", "--resources", "employees"]), Duration::from_secs(120));
                assert!(first.ok(), "setup run: {}", first.summary());
                h.advance_clock(chrono::Duration::hours(1));
                h.change_attribute_type(&key, "decimal");
                e.run_args(&["run", "--resources", "employees"])
            },
            Some(employees_exact),
        ),
        // ------------------------------------------------------------ hostile server responses
        refused("valid JSON of the wrong shape (a bare array)", &[4], &["employees|envelope|shape|expected|data"], |e| {
            e.base_url = e.serve(employees_page("[1, 2, 3]"));
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")], &["run", "--resources", "employees"])
        }),
        refused("valid JSON of the wrong shape (data is a string)", &[4], &["employees|envelope|shape|expected|data"], |e| {
            e.base_url = e.serve(employees_page(r#"{"success":true,"metadata":{"total_elements":1,"current_page":0,"total_pages":1},"data":"hello"}"#));
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")], &["run", "--resources", "employees"])
        }),
        refused("records without attributes", &[4], &["employees|attributes|id|expected|shape"], |e| {
            e.base_url = e.serve(employees_page(r#"{"success":true,"metadata":{"total_elements":2,"current_page":0,"total_pages":1},"data":[{"type":"Employee"},{"nothing":true}]}"#));
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")], &["run", "--resources", "employees"])
        }),
        refused("the same page again and again", &[4], &["page|repeat|progress|loop"], |e| {
            e.base_url = e.serve(employees_page(ONE_EMPLOYEE_PAGE));
            e.run_args(&["run", "--resources", "employees"])
        }),
        refused("a cycle of v2 next links", &[4], &["next|cycle|loop|link|page"], |e| {
            let app = hostile(Router::new().route(
                "/v2/attendance-periods",
                get(|uri: Uri, _h: HeaderMap| async move {
                    let q = uri.query().unwrap_or("");
                    let next = if q.contains("cursor=b") { "c" } else { "b" };
                    let body = format!(r#"{{"_data":[],"_meta":{{"links":{{"self":{{"href":"/v2/attendance-periods?{q}"}},"next":{{"href":"/v2/attendance-periods?limit=1&cursor={next}"}}}}}}}}"#);
                    let body = body.replace(r#""_data":[]"#, r#""_data":[{"id":"p1","person":{"id":"1"},"type":"WORK","updated_at":"2026-11-20T10:00:00Z"}]"#);
                    json(StatusCode::OK, body)
                }),
            ));
            e.base_url = e.serve(app);
            e.run_args(&["run", "--resources", "attendance_periods"])
        }),
        refused("an oversized body (300 MiB)", &[4], &["large|size|limit|bytes|mib|mb"], |e| {
            let app = hostile(Router::new().route(
                "/v1/company/employees",
                get(|| async {
                    let chunk = bytes_chunk();
                    let stream = futures::stream::iter(std::iter::once(r#"{"success":true,"data":["#.as_bytes().to_vec()).chain(std::iter::repeat_n(chunk, 300 * 16)).map(Ok::<_, std::io::Error>));
                    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
                }),
            ));
            e.base_url = e.serve(app);
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "1"), ("RUNTIME__REQUEST_TIMEOUT", "60")], &["run", "--resources", "employees"])
        }),
        refused("a 200 with an HTML body", &[4], &["json|html"], |e| {
            let app = hostile(Router::new().route(
                "/v1/company/employees",
                get(|| async { (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "<html><body><h1>Scheduled maintenance</h1></body></html>").into_response() }),
            ));
            e.base_url = e.serve(app);
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")], &["run", "--resources", "employees"])
        }),
        refused("a 200 with an empty body", &[4], &["json|empty|body"], |e| {
            e.base_url = e.serve(employees_page(""));
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")], &["run", "--resources", "employees"])
        }),
        refused("expires_in of 1e300 (then an empty company)", &[0, 4], &["expires_in|token"], |e| {
            let app = Router::new()
                .route("/v1/auth", post(|| async { json(StatusCode::OK, r#"{"success":true,"data":{"token":"t","expires_in":1e300}}"#) }))
                .route("/v1/company/employees", get(|| async { json(StatusCode::OK, EMPTY_PAGE) }));
            e.base_url = e.serve(app);
            e.run_args(&["run", "--resources", "employees"])
        }),
        refused("expires_in negative", &[0, 4], &["expires_in|token"], |e| {
            let app = Router::new()
                .route("/v1/auth", post(|| async { json(StatusCode::OK, r#"{"success":true,"data":{"token":"t","expires_in":-5}}"#) }))
                .route("/v1/company/employees", get(|| async { json(StatusCode::OK, EMPTY_PAGE) }));
            e.base_url = e.serve(app);
            e.run_args(&["run", "--resources", "employees"])
        }),
        refused("auth answer without a token", &[3, 4], &["token"], |e| {
            let app = Router::new().route("/v1/auth", post(|| async { json(StatusCode::OK, r#"{"success":true,"data":{"expires_in":100}}"#) }));
            e.base_url = e.serve(app);
            with_env(e, &[("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")], &["run", "--resources", "employees"])
        }),
    ]
}

/// 64 KiB of employee records, for the oversized body.
fn bytes_chunk() -> Vec<u8> {
    let one = br#"{"type":"Employee","attributes":{"id":{"label":"ID","value":1,"type":"integer"}}},"#;
    one.iter().copied().cycle().take(64 * 1024).collect()
}

/// `cmd` under a file-size limit (`prlimit --fsize`), SIGXFSZ ignored so writes fail with EFBIG.
fn limited(cmd: &Command, bytes: u64) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("trap '' XFSZ; exec prlimit --fsize={bytes} -- \"$@\"")).arg("sh").arg(cmd.get_program()).args(cmd.get_args());
    c.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn matches_all(line: &str, says: &[&str]) -> bool {
    let l = line.to_lowercase();
    says.iter().all(|alt| alt.split('|').any(|w| l.contains(&w.to_lowercase())))
}

/// Runs one row; `Err` says why it was not handled.
fn run_case(case: &Case, template: &Path) -> Result<(), String> {
    let p = Project::new();
    copy_dir(template, p.root());
    let sb = BgSandbox::start(company());
    let base_url = sb.base_url();
    let mut e = Env { p, sb, base_url, thief: Arc::new(Mutex::new(Vec::new())), background: None, db_bytes_only: false, immutable: Vec::new(), changes_expected: false };
    let mut cmd = (case.setup)(&mut e);
    let before = Snapshot::take(&e.p, !e.db_bytes_only);
    let ran = e.p.run(&mut cmd, Duration::from_secs(40));
    let mut problems = Vec::new();
    if let Some(bg) = e.background.take() {
        let first = bg.wait(Duration::from_secs(60));
        if !first.ok() {
            problems.push(format!("the first of the concurrent runs failed: {}", first.summary()));
        }
    }
    e.sb.handle().set_faults(FaultConfig::default());
    for path in std::mem::take(&mut e.immutable) {
        let _ = Command::new("chattr").arg("-i").arg(&path).status();
    }
    let all_output = format!("{}\n{}", ran.stdout, ran.stderr);
    if all_output.contains(DEFAULT_CLIENT_SECRET) || all_output.contains("TOPSECRET-4711") {
        problems.push("a secret appears in the output".into());
    }
    if ran.stderr.contains("panicked") || ran.code == Some(101) {
        problems.push("panicked".into());
    }
    if ran.timed_out {
        problems.push("did not end within 40 s".into());
    }
    match case.expect {
        Expect::Refused(codes, says) => {
            if !ran.code.is_some_and(|c| codes.contains(&c)) {
                problems.push(format!("exit code {:?}, documented {codes:?}", ran.code));
            }
            if ran.code != Some(0) {
                let lines = ran.error_lines();
                match lines.as_slice() {
                    [line] => {
                        if !matches_all(line, says) {
                            problems.push(format!("the error line does not say {says:?}: {line}"));
                        }
                        // The hint may follow on the next lines (clap prints the allowed values there).
                        let from_error: String = ran.stderr.lines().skip_while(|l| !l.starts_with("error:")).take(4).collect::<Vec<_>>().join("\n");
                        if !HINTS.iter().any(|h| from_error.to_lowercase().contains(h)) {
                            problems.push(format!("the error line does not say what to do: {line}"));
                        }
                        if let Some(twice) = repeats_itself(line) {
                            problems.push(format!("the error line repeats itself ({twice:?})"));
                        }
                    }
                    _ => problems.push(format!("expected one error line, got {lines:?}")),
                }
            }
            let after = Snapshot::take(&e.p, !e.db_bytes_only);
            if after != before && !e.changes_expected {
                problems.push(format!("destination or state changed: before {before:?}, after {after:?}"));
            }
        }
        Expect::Loads => {
            if !ran.ok() {
                problems.push(format!("expected a successful load: {}", ran.summary()));
            }
        }
    }
    if problems.is_empty() {
        if let Some(check) = case.check {
            if let Err(m) = check(&e, &ran) {
                problems.push(m);
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} [{}]", problems.join("; "), ran.summary()))
    }
}

#[test]
fn bad_inputs_are_refused_clearly_and_change_nothing() {
    let cases = the_catalogue();
    assert!(cases.len() >= 40, "the catalogue has {} rows", cases.len());
    // The loaded project every row starts from.
    let template = Project::new();
    let sb = BgSandbox::start(company());
    let first = template.run(template.cli(&sb.base_url()).arg("run"), Duration::from_secs(180));
    assert!(first.ok(), "template run: {}", first.summary());
    drop(sb);
    let only = std::env::var("PP_BAD_INPUT").ok();
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let mut tried = 0;
    for case in cases.iter().filter(|c| only.as_deref().is_none_or(|o| c.name.contains(o))) {
        tried += 1;
        let t = std::time::Instant::now();
        let outcome = run_case(case, template.root());
        println!("{:>5.1}s {} {}", t.elapsed().as_secs_f64(), if outcome.is_ok() { "ok  " } else { "FAIL" }, case.name);
        if let Err(why) = outcome {
            failed.push(format!("{}: {why}", case.name));
        }
    }
    println!("bad inputs handled: {} of {tried} ({:.0}s)", tried - failed.len(), started.elapsed().as_secs_f64());
    for f in &failed {
        println!("NOT HANDLED: {f}");
    }
    assert!(failed.is_empty(), "{} of {tried} bad inputs not handled:\n{}", failed.len(), failed.join("\n"));
}
