//! `pipeline <name> show`: a local web dashboard of a pipeline and its dataset.
//!
//! One axum server on loopback renders every page on the server: HTML, one embedded stylesheet and SVG
//! charts, no scripts and nothing fetched from the network. Each request reads afresh — the working
//! directory through [`pipeline_engine::pipeline::Pipeline`] and the dataset through a
//! [`DatasetReader`] that the destination opens read-only for that request only, so the dashboard never
//! holds a lock a run needs for longer than one page. (The filesystem destination's reader factory keeps
//! an in-memory snapshot of the lake between requests and reads the lake again when its files change.)
//!
//! Pages: overview, tables, schema, state, loads, data browser, read-only SQL, HR charts (see
//! `docs/dashboard.md`).
#![deny(missing_docs)]

mod charts;
mod data;
pub mod html;
mod pages;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pipeline_destinations::read::DatasetReader;
use pipeline_engine::load::DestinationError;

pub use charts::{ChartData, HR_CHARTS};

/// Opens the dataset read-only; called once per request.
pub type ReaderFactory = Arc<dyn Fn() -> Result<Box<dyn DatasetReader>, DestinationError> + Send + Sync>;

/// What the dashboard shows and how.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Pipeline name.
    pub pipeline_name: String,
    /// Dataset name.
    pub dataset_name: String,
    /// Folder of pipelines' working directories.
    pub pipelines_dir: PathBuf,
    /// Schema name (the source's name, `personio`).
    pub schema_name: String,
    /// Rows a SQL query returns at most.
    pub sql_row_cap: usize,
    /// Rows per page in the data browser.
    pub page_rows: usize,
}

impl DashboardConfig {
    /// Defaults: schema `personio`, 500 SQL rows, 50 rows per data page.
    pub fn new(pipeline_name: &str, dataset_name: &str, pipelines_dir: impl Into<PathBuf>) -> Self {
        DashboardConfig {
            pipeline_name: pipeline_name.to_string(),
            dataset_name: dataset_name.to_string(),
            pipelines_dir: pipelines_dir.into(),
            schema_name: "personio".to_string(),
            sql_row_cap: 500,
            page_rows: 50,
        }
    }
}

/// Errors of the dashboard server.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}; pass another --port (or none for a free one)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("the dashboard server stopped: {0}")]
    Serve(#[source] std::io::Error),
}

/// Shared by all requests.
pub(crate) struct App {
    pub config: DashboardConfig,
    pub reader: ReaderFactory,
    /// `127.0.0.1:<port>` and `localhost:<port>`: the only Host headers served (no DNS rebinding).
    pub hosts: [String; 2],
}

/// A dashboard serving on loopback.
#[derive(Debug)]
pub struct RunningDashboard {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningDashboard {
    /// The bound address (127.0.0.1 and the chosen port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serve until Ctrl-C.
    pub async fn serve_until_ctrl_c(self) -> Result<(), DashboardError> {
        let _ = tokio::signal::ctrl_c().await;
        self.shutdown().await
    }

    /// Stop serving and wait for the server to finish.
    pub async fn shutdown(mut self) -> Result<(), DashboardError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result.map_err(DashboardError::Serve),
            Err(e) => Err(DashboardError::Serve(std::io::Error::other(e.to_string()))),
        }
    }
}

/// Bind 127.0.0.1 (`port`, or a free one when `None`) and start serving the dashboard.
pub async fn start(config: DashboardConfig, reader: ReaderFactory, port: Option<u16>) -> Result<RunningDashboard, DashboardError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port.unwrap_or(0)));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| DashboardError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| DashboardError::Bind { addr, source })?;
    let hosts = [format!("127.0.0.1:{}", addr.port()), format!("localhost:{}", addr.port())];
    let app = Arc::new(App { config, reader, hosts });
    let router = Router::new()
        .route("/", get(|s: State<Arc<App>>, h: HeaderMap, q: Query<Params>| page(s, h, q, pages::overview)))
        .route("/tables", get(|s: State<Arc<App>>, h: HeaderMap, q: Query<Params>| page(s, h, q, pages::tables)))
        .route("/schema", get(|s: State<Arc<App>>, h: HeaderMap, q: Query<Params>| page(s, h, q, pages::schema)))
        .route("/state", get(|s: State<Arc<App>>, h: HeaderMap, q: Query<Params>| page(s, h, q, pages::state)))
        .route("/loads", get(|s: State<Arc<App>>, h: HeaderMap, q: Query<Params>| page(s, h, q, pages::loads)))
        .route("/data", get(|s: State<Arc<App>>, h: HeaderMap, q: Query<Params>| page(s, h, q, pages::data)))
        .route("/sql", get(|s: State<Arc<App>>, h: HeaderMap, q: Query<Params>| page(s, h, q, pages::sql)))
        .route("/charts", get(|s: State<Arc<App>>, h: HeaderMap, q: Query<Params>| page(s, h, q, pages::charts)))
        .route("/assets/style.css", get(style))
        .fallback(not_found)
        .with_state(app);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningDashboard { addr, stop: Some(stop), task })
}

/// Open `url` in the desktop's browser when a display exists (`DISPLAY` or `WAYLAND_DISPLAY`), with
/// `xdg-open` (`open` on macOS). Returns whether a browser was launched.
pub fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        let has_display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if !has_display {
            return false;
        }
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Query parameters every page accepts (each page uses its own).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct Params {
    /// Data browser: table.
    pub table: Option<String>,
    /// Data browser: 1-based page.
    pub page: Option<u64>,
    /// SQL box: the query.
    pub q: Option<String>,
}

/// Whether the request names this server as its host: a page of another site that a DNS name pointing at
/// 127.0.0.1 loads must not read the dataset.
fn host_ok(app: &App, headers: &HeaderMap) -> bool {
    headers.get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(|h| app.hosts.iter().any(|ok| ok == h))
}

async fn page(State(app): State<Arc<App>>, headers: HeaderMap, Query(params): Query<Params>, render: fn(&App, &Params) -> String) -> Response {
    if !host_ok(&app, &headers) {
        return (StatusCode::FORBIDDEN, "this dashboard answers only to http://127.0.0.1:<port>/ and http://localhost:<port>/").into_response();
    }
    match tokio::task::spawn_blocking(move || render(&app, &params)).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the page failed: {e}")).into_response(),
    }
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], html::STYLE_CSS).into_response()
}

async fn not_found(State(app): State<Arc<App>>) -> Response {
    let body = html::notice("warn", "not-found", "No such page. Use the navigation above.");
    (StatusCode::NOT_FOUND, Html(html::layout(&app.config.pipeline_name, "", "Not found", &body))).into_response()
}
