//! A tiny scriptable HTTP server (axum on 127.0.0.1:0) and a raw TCP server for connection resets.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use personio_client::{ClientConfig, PacingConfig, PersonioClient};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// A scripted reply.
pub enum Reply {
    Json(u16, Value),
    JsonWith(u16, Value, Vec<(&'static str, String)>),
    Raw(u16, &'static str, Vec<(&'static str, String)>),
    Gzip(Value),
    /// 200 whose body stream fails half-way.
    BrokenBody,
    Delay(Duration, Box<Reply>),
}

type Handler = dyn Fn(&Req, usize) -> Reply + Send + Sync;

struct ServerState {
    log: Mutex<Vec<Req>>,
    handler: Box<Handler>,
}

pub struct Fake {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
}

impl Fake {
    /// Starts a server; `handler(req, n)` gets `n` = number of earlier requests to the same path.
    pub async fn start(handler: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> Fake {
        let state = Arc::new(ServerState { log: Mutex::new(Vec::new()), handler: Box::new(handler) });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Req> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// Queries of the requests to `path`, in order.
    pub fn queries(&self, path: &str) -> Vec<String> {
        self.requests_to(path).into_iter().map(|r| r.query).collect()
    }

    /// A client for this server: no pacing, fast retries.
    pub fn client(&self) -> PersonioClient {
        PersonioClient::new(self.config()).unwrap()
    }

    pub fn config(&self) -> ClientConfig {
        Self::config_for(&self.base())
    }

    /// Test configuration for any base URL: no pacing, 10 ms backoff.
    pub fn config_for(base: &str) -> ClientConfig {
        let mut cfg = ClientConfig::new("papi-client-id", "papi-super-secret-value").with_base_url(base);
        cfg.backoff_factor = Duration::from_millis(10);
        cfg.max_retry_delay = Duration::from_secs(5);
        cfg.request_timeout = Duration::from_secs(5);
        cfg.pacing = PacingConfig::disabled();
        cfg
    }
}

async fn handle(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let n = {
        let mut log = state.log.lock().unwrap();
        let n = log.iter().filter(|r| r.path == req.path).count();
        log.push(req.clone());
        n
    };
    let mut reply = (state.handler)(&req, n);
    loop {
        match reply {
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            other => return render(other),
        }
    }
}

fn render(reply: Reply) -> Response {
    let builder = |status: u16, headers: Vec<(&'static str, String)>| {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b
    };
    match reply {
        Reply::Json(status, v) => render(Reply::JsonWith(status, v, vec![])),
        Reply::JsonWith(status, v, mut headers) => {
            headers.push(("content-type", "application/json".into()));
            builder(status, headers).body(Body::from(v.to_string())).unwrap()
        }
        Reply::Raw(status, text, headers) => builder(status, headers).body(Body::from(text)).unwrap(),
        Reply::Gzip(v) => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(v.to_string().as_bytes()).unwrap();
            let bytes = enc.finish().unwrap();
            builder(200, vec![("content-type", "application/json".into()), ("content-encoding", "gzip".into())])
                .body(Body::from(bytes))
                .unwrap()
        }
        Reply::BrokenBody => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"success\":true,\"data\":[{\"id\":1},")),
                Err(std::io::Error::other("connection dropped")),
            ];
            builder(200, vec![("content-type", "application/json".into())])
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap()
        }
        Reply::Delay(..) => unreachable!(),
    }
}

// ------------------------------------------------------------------ reply helpers

pub fn auth_ok(token: &str) -> Reply {
    Reply::Json(200, json!({"success": true, "data": {"token": token, "expires_in": 86400, "scope": "x"}}))
}

pub fn auth_ok_expiring(token: &str, expires_in: u64) -> Reply {
    Reply::Json(200, json!({"success": true, "data": {"token": token, "expires_in": expires_in}}))
}

pub fn ok_data(data: Value) -> Reply {
    Reply::Json(200, json!({"success": true, "data": data}))
}

pub fn v1_error(status: u16, message: &str) -> Reply {
    Reply::Json(status, json!({"success": false, "error": {"code": status, "message": message}}))
}

/// Query parameters of a request, in order.
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

pub fn param(q: &str, key: &str) -> Option<String> {
    query_pairs(q).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

pub fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

// ------------------------------------------------------------------ raw TCP server

/// A raw HTTP/1.1 server: for the n-th connection, `None` closes it right after reading the
/// request (a reset from the client's view), `Some(body)` answers 200 with that JSON body.
/// Returns the address and a counter of connections accepted.
pub async fn raw_server(script: Vec<Option<&'static str>>) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Mutex::new(0usize));
    let counter = count.clone();
    tokio::spawn(async move {
        let mut i = 0;
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            *counter.lock().unwrap() += 1;
            let step = script.get(i).cloned().unwrap_or(Some(r#"{"success":true,"data":[]}"#));
            i += 1;
            let mut buf = vec![0u8; 8192];
            let _ = sock.read(&mut buf).await;
            match step {
                None => {
                    drop(sock);
                }
                Some(body) => {
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                        body.len(),
                        body
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                }
            }
        }
    });
    (addr, count)
}
