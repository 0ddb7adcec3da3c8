//! Secrets test (issue 9 §6): two full runs with trace-level logging (a first load, then, after every
//! token was revoked, an incremental employees run that re-authenticates), then a search of every output stream and
//! every file the runs wrote — working directory, load packages, state, schemas, trace, the DuckDB file's
//! bytes and, because DuckDB may compress strings, every row of every table and the stored state decoded —
//! for the client secret and for each token the sandbox issued. Zero hits.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use personio_sandbox::{Preset, SandboxConfig};
use serde_json::Value;

use crate::support::cli_run::{destination_state, query_strings, BgSandbox, Project, DATASET};

const CLIENT_ID: &str = "pp-secrets-test-client";
const CLIENT_SECRET: &str = "pp-S3cr3t-9f2c71d4e8a6b5";

/// The token the sandbox currently issues for our client (it hands out the same token until revoked).
fn current_token(base_url: &str) -> String {
    let addr = base_url.trim_start_matches("http://");
    let body = serde_json::json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).to_string();
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the sandbox");
    let req = format!("POST /v1/auth HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let json = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("auth answer {resp:?}: {e}"));
    v["data"]["token"].as_str().expect("token").to_string()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn no_secret_or_token_in_any_output_or_file() {
    let mut config = SandboxConfig::preset(Preset::Tiny, 21);
    config.client_id = CLIENT_ID.into();
    config.client_secret = CLIENT_SECRET.into();
    let sb = BgSandbox::start(config);
    let h = sb.handle();
    let p = Project::new();
    // Credentials as a user keeps them: in .dlt/secrets.toml (the one file that may hold the secret).
    p.write_dlt("secrets.toml", &format!("[sources.personio]\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n"));
    let cli = || {
        let mut c = p.cli(&sb.base_url());
        c.env_remove("SOURCES__PERSONIO__CLIENT_ID")
            .env_remove("SOURCES__PERSONIO__CLIENT_SECRET")
            .env("PERSONIO_LOG", "trace")
            .env("RUST_LOG", "trace")
            .arg("run");
        c
    };
    let first = p.run(&mut cli(), Duration::from_secs(300));
    assert!(first.ok(), "first run: {}", first.summary());
    let mut tokens = vec![current_token(&sb.base_url())];
    h.revoke_tokens();
    h.advance_clock(chrono::Duration::hours(1));
    h.update_employees(3);
    let second = p.run(cli().args(["--resources", "employees,employees_absences_balance"]), Duration::from_secs(300));
    assert!(second.ok(), "second run: {}", second.summary());
    tokens.push(current_token(&sb.base_url()));
    assert_ne!(tokens[0], tokens[1], "the revocation issued a new token");
    let auths = h.request_log().iter().filter(|r| r.path.contains("auth")).count();
    assert!(auths >= 2, "both runs authenticated ({auths} auth requests)");

    let needles: Vec<(&str, &str)> = std::iter::once(("client secret", CLIENT_SECRET)).chain(tokens.iter().map(|t| ("token", t.as_str()))).collect();
    let mut hits = Vec::new();
    let mut scanned_bytes = 0usize;
    let mut scanned_files = 0usize;
    let user_file = p.root().join(".dlt").join("secrets.toml");
    let mut files = Vec::new();
    files_under(p.root(), &mut files);
    files_under(p.logs.path(), &mut files);
    for f in files.iter().filter(|f| **f != user_file) {
        let bytes = std::fs::read(f).unwrap_or_default();
        scanned_bytes += bytes.len();
        scanned_files += 1;
        for (what, n) in &needles {
            let c = count(&bytes, n.as_bytes());
            if c > 0 {
                hits.push(format!("{what} ×{c} in {}", f.display()));
            }
        }
    }
    // Trace-level logging must have produced real output, or the test proves nothing.
    let log_bytes = first.stderr.len() + second.stderr.len();
    assert!(log_bytes > 10_000, "trace logging produced only {log_bytes} bytes");

    // Every row of every table, as text, and the stored state, decoded.
    let tables = query_strings(&p.db(), &format!("SELECT table_name FROM information_schema.tables WHERE table_schema = '{DATASET}'")).expect("tables");
    assert!(tables.iter().any(|t| t == "employees"), "{tables:?}");
    for t in &tables {
        for (what, n) in &needles {
            let sql = format!("SELECT CAST(count(*) AS VARCHAR) FROM {DATASET}.\"{t}\" AS r WHERE CAST(r AS VARCHAR) LIKE '%{n}%'");
            let c = query_strings(&p.db(), &sql).unwrap_or_else(|e| panic!("{e}"));
            if c.first().map(String::as_str) != Some("0") {
                hits.push(format!("{what} in {c:?} rows of table {t}"));
            }
        }
    }
    let state = destination_state(&p.db()).expect("the destination holds a state").to_string();
    for (what, n) in &needles {
        if state.contains(n) {
            hits.push(format!("{what} in the destination's stored state"));
        }
    }
    println!(
        "secret hits: {} (searched {} files, {} bytes incl. {} bytes of trace logs, {} tables, the stored state; needles: the client secret and {} tokens)",
        hits.len(),
        scanned_files,
        scanned_bytes,
        log_bytes,
        tables.len(),
        tokens.len()
    );
    assert!(hits.is_empty(), "secrets leaked: {hits:#?}");
}
