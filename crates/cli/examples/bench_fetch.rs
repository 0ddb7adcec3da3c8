//! The raw-fetch floor of `bench/run.sh`: replays the data requests a pipeline run made (the sandbox's
//! request log) through the same Personio client, `concurrency` at a time, and discards every body — no
//! shaping, no normalizing, no loading. Its wall time is the least a run with the same requests, the same
//! client and the same concurrency can take.
//!
//! ```text
//! bench_fetch --base-url http://127.0.0.1:PORT --log requests.json --concurrency N [--pacing default|off]
//! ```
//!
//! `requests.json` is the body of the sandbox's `GET /_sandbox/requests`; its successful `GET`s under
//! `/v1/` and `/v2/` (token requests excluded) are replayed in log order. Prints one JSON object:
//! `requests`, `seconds`, `bytes`, `rate_limited` (429s seen), `retries`, `concurrency`.

use std::process::ExitCode;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use personio_client::{ClientConfig, PacingConfig, PersonioClient};
use serde_json::Value;

/// One request to replay: API (`true` = v1), path relative to the API root, query pairs.
struct Replay {
    v1: bool,
    path: String,
    params: Vec<(String, String)>,
}

struct Args {
    base_url: String,
    log: String,
    concurrency: usize,
    pacing: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut base_url = None;
    let mut log = None;
    let mut concurrency = 1usize;
    let mut pacing = true;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--base-url" => base_url = Some(value()?),
            "--log" => log = Some(value()?),
            "--concurrency" => {
                concurrency = value()?.parse().map_err(|_| "--concurrency takes a whole number".to_string())?;
            }
            "--pacing" => {
                pacing = match value()?.as_str() {
                    "default" => true,
                    "off" => false,
                    other => return Err(format!("--pacing is default or off, not {other:?}")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        base_url: base_url.ok_or("--base-url is required")?,
        log: log.ok_or("--log is required")?,
        concurrency: concurrency.max(1),
        pacing,
    })
}

/// The successful data GETs of a request log, in log order.
fn replays(log: &Value) -> Vec<Replay> {
    let Some(entries) = log.get("requests").and_then(Value::as_array) else { return Vec::new() };
    entries
        .iter()
        .filter(|r| r["method"] == "GET" && r["status"] == 200)
        .filter_map(|r| {
            let path = r["path"].as_str()?;
            let (v1, rel) = match (path.strip_prefix("/v1/"), path.strip_prefix("/v2/")) {
                (Some(rel), _) => (true, rel),
                (_, Some(rel)) => (false, rel),
                _ => return None,
            };
            let query = r["query"].as_str().unwrap_or("");
            let params = url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            Some(Replay { v1, path: rel.to_string(), params })
        })
        .collect()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let log: Value = match std::fs::read(&args.log).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.log);
            return ExitCode::from(2);
        }
    };
    let requests = replays(&log);
    let mut config = ClientConfig::new(personio_sandbox::DEFAULT_CLIENT_ID, personio_sandbox::DEFAULT_CLIENT_SECRET).with_base_url(&args.base_url);
    if !args.pacing {
        config.pacing = PacingConfig::disabled();
    }
    let client = match PersonioClient::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else { return ExitCode::from(1) };
    let result = rt.block_on(async {
        let has_v1 = requests.iter().any(|r| r.v1);
        let has_v2 = requests.iter().any(|r| !r.v1);
        // Tokens first, as the pipeline gets them before its first data call.
        if has_v1 {
            client.authenticate().await?;
        }
        if has_v2 {
            client.authenticate_v2().await?;
        }
        let started = Instant::now();
        let mut results = stream::iter(requests.iter())
            .map(|r| {
                let client = &client;
                async move {
                    if r.v1 {
                        client.get_v1_json(&r.path, &r.params).await.map(drop)
                    } else {
                        client.get_v2_json(&r.path, &r.params).await.map(drop)
                    }
                }
            })
            .buffer_unordered(args.concurrency);
        while let Some(r) = results.next().await {
            r?;
        }
        Ok::<f64, personio_client::ClientError>(started.elapsed().as_secs_f64())
    });
    match result {
        Ok(seconds) => {
            let s = client.stats();
            println!(
                "{{\"requests\": {}, \"seconds\": {seconds:.3}, \"bytes\": {}, \"rate_limited\": {}, \"retries\": {}, \"concurrency\": {}}}",
                requests.len(),
                s.bytes_received,
                s.rate_limited,
                s.retries,
                args.concurrency
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
