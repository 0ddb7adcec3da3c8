//! Personio sandbox: a faithful fake of the Personio public API (v1 and v2).
//!
//! It serves a deterministic company generated from a seed (same seed ⇒ byte-identical responses),
//! with a fake clock, an admin API under `/_sandbox/`, optional rate limits and injected faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), personio_sandbox::SandboxError> {
//! use personio_sandbox::{Preset, Sandbox, SandboxConfig};
//! let running = Sandbox::start(SandboxConfig::preset(Preset::Tiny, 7), "127.0.0.1:0").await?;
//! println!("v1 at {}/v1", running.base_url());
//! let truth = running.handle().truth();
//! assert!(!truth.employees.is_empty());
//! running.shutdown().await;
//! # Ok(()) }
//! ```

/// `Ok(v)` → `v`; `Err(response)` → return the response from the handler.
macro_rules! try_r {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

mod admin;
mod cli;
pub mod company;
mod config;
mod http;
mod limits;
mod net;
mod router;
mod state;
pub mod time;
mod v1;
mod v2;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use cli::{run_cli, SandboxArgs};
pub use company::{Company, Truth};
pub use config::{FaultConfig, FaultKind, Latency, Preset, SandboxConfig, Sizes, ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
pub use limits::Limited;
pub use state::{Options, RequestRecord, SandboxHandle, Traffic, TOKEN_TTL};

/// Errors of starting or running the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Invalid configuration.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// The server failed while running.
    #[error("sandbox server error: {0}")]
    Serve(std::io::Error),
}

/// Entry point: builds the company and starts serving.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// Generates the company and binds `addr` (e.g. `127.0.0.1:0` for a free port), serving in the background.
    pub async fn start(config: SandboxConfig, addr: &str) -> Result<RunningSandbox, SandboxError> {
        let company = build_company(&config)?;
        let shared = Arc::new(state::Shared::new(&config, company));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Bind { addr: addr.to_string(), source })?;
        let local = listener.local_addr().map_err(|source| SandboxError::Bind { addr: addr.to_string(), source })?;
        let base_url = format!("http://{local}");
        if let Ok(mut b) = shared.base_url.write() {
            *b = base_url.clone();
        }
        let app = router::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let listener = net::KillableListener(listener);
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<net::ConnKill>())
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .map_err(SandboxError::Serve)
        });
        tracing::info!(%base_url, "personio sandbox started");
        Ok(RunningSandbox { base_url, addr: local, handle: SandboxHandle { shared }, shutdown: Some(tx), task: Some(task) })
    }

    /// Starts on `addr` and serves until Ctrl-C.
    pub async fn serve_until_ctrl_c(config: SandboxConfig, addr: &str) -> Result<(), SandboxError> {
        let running = Sandbox::start(config, addr).await?;
        let _ = tokio::signal::ctrl_c().await;
        running.shutdown().await;
        Ok(())
    }
}

/// Generates the company a configuration describes (no server).
pub fn build_company(config: &SandboxConfig) -> Result<Company, SandboxError> {
    let now: DateTime<Utc> = match &config.now {
        None => time::default_now(),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| SandboxError::Config(format!("now {s:?}: {e}")))?
            .with_timezone(&Utc),
    };
    if config.sizes.employees > 200_000 {
        return Err(SandboxError::Config("at most 200000 employees".into()));
    }
    Ok(Company::generate(config.seed, &config.sizes, now))
}

/// A sandbox serving in the background. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningSandbox {
    base_url: String,
    addr: SocketAddr,
    handle: SandboxHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SandboxError>>>,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT` (v1 at `{base_url}/v1`, v2 at `{base_url}/v2`).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// In-process access to the company, truth, request log, faults.
    pub fn handle(&self) -> SandboxHandle {
        self.handle.clone()
    }

    /// Stops the server and waits for it (open keep-alive connections are given up to 2 s).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
