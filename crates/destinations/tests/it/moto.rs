//! A real S3-compatible server on loopback for the filesystem destination's S3 tests: moto's server
//! (PyPI `moto[server]`, installed by `bash lake/setup.sh` into ~/.cache/personio-pipeline/lake-venv).
//!
//! * `PERSONIO_S3_ENDPOINT=http://127.0.0.1:PORT`: use that server (buckets are created on it);
//! * otherwise the tests start `moto_server` from the venv on a free port and stop it when dropped (and,
//!   should the test process die, when its stdin closes);
//! * `PERSONIO_SKIP_S3=1` skips the S3 tests, naming them on stderr.
//!
//! Shared by the destinations and CLI test binaries (`#[path]`).

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto accepts any key pair.
pub const ACCESS_KEY: &str = "testing-key-id";
/// moto accepts any key pair.
pub const SECRET_KEY: &str = "testing-secret-key";

/// A running S3 endpoint with one bucket.
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// A fresh bucket on it.
    pub bucket: String,
    child: Option<Child>,
}

impl Drop for S3 {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Closing the shell's stdin ends its `read`: it kills moto and exits.
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

fn venv_moto() -> std::path::PathBuf {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(|| ".".into());
    home.join(".cache/personio-pipeline/lake-venv/bin/moto_server")
}

/// Send one plain HTTP request, return the status code.
fn http(addr: &str, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr.parse::<SocketAddr>().map_err(std::io::Error::other)?, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))
}

fn unique_bucket() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("pp-test-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// The S3 server for a test, or `None` when `PERSONIO_SKIP_S3=1` (the test is named on stderr).
pub fn s3(test: &str) -> Option<S3> {
    if std::env::var("PERSONIO_SKIP_S3").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: {test} (PERSONIO_SKIP_S3=1)");
        return None;
    }
    let (endpoint, child) = match std::env::var("PERSONIO_S3_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => (e.trim().trim_end_matches('/').to_string(), None),
        _ => {
            let moto = venv_moto();
            assert!(
                moto.exists(),
                "{test} needs an S3-compatible server: run `bash lake/setup.sh` (installs moto into {}), set PERSONIO_S3_ENDPOINT=http://127.0.0.1:PORT, or PERSONIO_SKIP_S3=1 to skip",
                moto.display()
            );
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
            // The shell stops moto when our stdin closes (this process ended without dropping `S3`).
            let script = format!("'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; read _; kill $m", moto.display());
            let child = Command::new("sh").arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().expect("start moto_server");
            (format!("http://127.0.0.1:{port}"), Some(child))
        }
    };
    let addr = endpoint.trim_start_matches("http://").to_string();
    let s3 = S3 { endpoint, bucket: unique_bucket(), child };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http(&addr, "PUT", &format!("/{}", s3.bucket)) {
            Ok(200) => break,
            Ok(code) => panic!("creating bucket {} on {} answered HTTP {code}", s3.bucket, s3.endpoint),
            Err(e) if Instant::now() > deadline => panic!("the S3 server at {} did not come up in 30 s ({e}); run `bash lake/setup.sh`", s3.endpoint),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    Some(s3)
}
