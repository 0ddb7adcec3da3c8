//! The HTTP client: auth, retries, pacing, one-call JSON fetches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::config::ClientConfig;
use crate::error::{extract_message, is_retryable_status, message_from_body, ClientError};
use crate::pacing::{classify_v1, Class, Pacer, RateHeaders};

/// Token lifetime assumed when `expires_in` is absent (Personio: 24 h).
const DEFAULT_EXPIRES_IN: u64 = 86_400;
/// Refresh this long before expiry (or at half the lifetime, if shorter).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Longest token lifetime believed (a week): a larger or absurd `expires_in` (`1e300`) is clamped,
/// so `Instant + lifetime` cannot overflow. Personio's tokens live 24 h.
const MAX_EXPIRES_IN: u64 = 7 * 86_400;
/// Personio's cool-down after too many `/auth` calls.
const AUTH_COOLDOWN: Duration = Duration::from_secs(60);

/// A snapshot of request counters; see [`PersonioClient::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent (every attempt, token requests included).
    pub requests: u64,
    /// Retries (attempts after the first, for any retryable reason).
    pub retries: u64,
    /// 429 responses seen.
    pub rate_limited: u64,
    /// Response body bytes received (after decompression).
    pub bytes_received: u64,
    /// Token requests sent (v1 and v2).
    pub auth_requests: u64,
    /// Tokens adopted from an `authorization` response header.
    pub tokens_adopted: u64,
    /// Re-authentications forced by a 401/403 on a data call.
    pub reauths: u64,
    /// Times a request waited for a client-side rate-limit token or a server-announced pause.
    pub rate_waits: u64,
    /// Pauses started because a server said its limit was exhausted (`Retry-After` on a 429,
    /// `x-ratelimit-remaining: 0`).
    pub server_pauses: u64,
    /// The adaptive concurrency limit now (requests in flight allowed).
    pub concurrency_limit: u64,
    /// The most data requests that were ever in flight at once.
    pub peak_in_flight: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    bytes_received: AtomicU64,
    auth_requests: AtomicU64,
    tokens_adopted: AtomicU64,
    reauths: AtomicU64,
}

#[derive(Clone)]
struct Token {
    value: String,
    refresh_at: Instant,
}

/// A cached token with single-flight refresh.
struct TokenCache {
    current: RwLock<Option<Token>>,
    refresh: tokio::sync::Mutex<()>,
}

impl TokenCache {
    fn new() -> Self {
        Self { current: RwLock::new(None), refresh: tokio::sync::Mutex::new(()) }
    }

    fn valid(&self) -> Option<String> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().filter(|t| Instant::now() < t.refresh_at).map(|t| t.value.clone())
    }

    fn peek(&self) -> Option<String> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|t| t.value.clone())
    }

    fn set(&self, value: String, expires_in: u64) {
        let lifetime = Duration::from_secs(expires_in);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let now = Instant::now();
        // `expires_in` is clamped when parsed; `checked_add` keeps this panic-free regardless.
        let refresh_at = now.checked_add(lifetime - margin).unwrap_or(now);
        let token = Token { value, refresh_at };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
    }

    /// Replaces the token value, keeping its refresh time. Returns true if it changed.
    fn adopt(&self, value: &str) -> bool {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(t) if t.value != value => {
                t.value = value.to_string();
                true
            }
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    V1,
    V2,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) base: Url,
    http: reqwest::Client,
    pacer: Pacer,
    counters: Counters,
    v1_token: TokenCache,
    v2_token: TokenCache,
}

/// A Personio API client. Cheap to clone (an `Arc` inside); clones share the token cache, pacing
/// buckets and counters, so one client can serve many concurrent tasks.
#[derive(Clone)]
pub struct PersonioClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PersonioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonioClient").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// A successful, parsed response.
pub(crate) struct Fetched {
    /// The body as received (after decompression), checked to be JSON but not yet parsed into a
    /// [`Value`]: a page fetched ahead of its consumer waits as its bytes, which a parsed page is several
    /// times larger than ([`crate::paging::LOOKAHEAD_BYTES`]).
    bytes: Vec<u8>,
    pub(crate) url: Url,
    /// Size of the response body as received (after decompression), in bytes.
    pub(crate) len: usize,
    attempts: u32,
}

impl Fetched {
    /// The body, parsed.
    pub(crate) fn body(&self) -> Result<Value, ClientError> {
        crate::json::parse(&self.bytes)
            .map_err(|e| ClientError::InvalidJson { url: redact(&self.url), message: e.to_string(), attempts: self.attempts })
    }
}

/// What one attempt saw of the server's limits.
#[derive(Default)]
struct Seen {
    status: Option<u16>,
    rate: Option<RateHeaders>,
}

/// Outcome of one attempt.
enum Attempt {
    Done(Fetched),
    /// Retryable failure: the error to return if attempts run out, and a server-requested wait.
    Retry(ClientError, Option<Duration>),
    Fail(ClientError),
}

impl PersonioClient {
    /// Builds a client. Fails on an unparsable `base_url` or if the HTTP stack cannot be set up.
    /// No request is sent; call [`authenticate`](Self::authenticate) to check credentials early.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let trimmed = config.base_url.trim_end_matches('/');
        let base = Url::parse(&format!("{trimmed}/"))
            .map_err(|e| ClientError::Config(format!("base_url {:?}: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(ClientError::Config(format!(
                "base_url {:?} must be an http(s) URL with a host",
                config.base_url
            )));
        }
        config.validate()?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .default_headers(headers)
            .gzip(true)
            // Never follow redirects: a 307/308 would re-send the token request's body (the client
            // secret) to wherever `Location` points. A 3xx is `ClientError::Redirect`.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build HTTP client: {e}")))?;
        let pacer = Pacer::new(&config.pacing, &config.concurrency, config.max_retry_delay);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                base,
                http,
                pacer,
                counters: Counters::default(),
                v1_token: TokenCache::new(),
                v2_token: TokenCache::new(),
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A snapshot of the request counters (shared by all clones).
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            auth_requests: c.auth_requests.load(Ordering::Relaxed),
            tokens_adopted: c.tokens_adopted.load(Ordering::Relaxed),
            reauths: c.reauths.load(Ordering::Relaxed),
            rate_waits: self.inner.pacer.rate_waits.load(Ordering::Relaxed),
            server_pauses: self.inner.pacer.server_pauses.load(Ordering::Relaxed),
            concurrency_limit: self.inner.pacer.concurrency().limit() as u64,
            peak_in_flight: self.inner.pacer.concurrency().peak() as u64,
        }
    }

    /// The v1 root, `{base_url}/v1/`.
    pub fn v1_root(&self) -> Url {
        self.inner.base.join("v1/").expect("static path joins")
    }

    /// The v2 root, `{base_url}/v2/`.
    pub fn v2_root(&self) -> Url {
        self.inner.base.join("v2/").expect("static path joins")
    }

    /// Gets a v1 token now (cached if still fresh). Call it up-front so bad credentials fail the run
    /// before any data call (dlt requests its token when it builds the source).
    pub async fn authenticate(&self) -> Result<(), ClientError> {
        self.token(Api::V1, None).await.map(|_| ())
    }

    /// Gets a v2 OAuth token now (cached if still fresh).
    pub async fn authenticate_v2(&self) -> Result<(), ClientError> {
        self.token(Api::V2, None).await.map(|_| ())
    }

    /// One GET of a v1 path (relative to `{base_url}/v1/`), query parameters in the given order,
    /// returning the whole parsed body. Applies the v1 envelope check (F8): a 2xx with
    /// `success: false` or without `data` is a [`ClientError::Envelope`].
    pub async fn get_v1_json(&self, path: &str, params: &[(String, String)]) -> Result<Value, ClientError> {
        let url = self.build_url(Api::V1, path, params)?;
        let fetched = self.get(Api::V1, classify_v1(path), url).await?;
        let body = fetched.body()?;
        check_v1_envelope(&body, &fetched.url)?;
        Ok(body)
    }

    /// One GET of a v2 path (relative to `{base_url}/v2/`), returning the parsed body as is.
    pub async fn get_v2_json(&self, path: &str, params: &[(String, String)]) -> Result<Value, ClientError> {
        let url = self.build_url(Api::V2, path, params)?;
        self.get(Api::V2, Class::V2, url).await?.body()
    }

    pub(crate) fn build_url(&self, api: Api, path: &str, params: &[(String, String)]) -> Result<Url, ClientError> {
        let root = match api {
            Api::V1 => self.v1_root(),
            Api::V2 => self.v2_root(),
        };
        let rel = path.trim_start_matches('/');
        if rel.contains('?') || rel.contains('#') || rel.starts_with("//") || rel.contains("://") {
            return Err(ClientError::Config(format!(
                "path {rel:?} must be a plain path; pass query parameters separately"
            )));
        }
        let mut url = root
            .join(rel)
            .map_err(|e| ClientError::Config(format!("path {rel:?}: {e}")))?;
        set_query(&mut url, params);
        Ok(url)
    }

    // ---------------------------------------------------------------- auth

    async fn token(&self, api: Api, stale: Option<&str>) -> Result<String, ClientError> {
        let cache = match api {
            Api::V1 => &self.inner.v1_token,
            Api::V2 => &self.inner.v2_token,
        };
        if stale.is_none() {
            if let Some(t) = cache.valid() {
                return Ok(t);
            }
        }
        // Single flight: one caller refreshes, the others wait and reuse its result.
        let _gate = cache.refresh.lock().await;
        match stale {
            None => {
                if let Some(t) = cache.valid() {
                    return Ok(t);
                }
            }
            Some(stale) => {
                if let Some(t) = cache.valid() {
                    if t != stale {
                        return Ok(t);
                    }
                }
            }
        }
        let (token, expires_in) = self.fetch_token(api).await?;
        cache.set(token.clone(), expires_in);
        Ok(token)
    }

    async fn fetch_token(&self, api: Api) -> Result<(String, u64), ClientError> {
        let cfg = &self.inner.config;
        let url = match api {
            Api::V1 => self.v1_root().join("auth"),
            Api::V2 => self.v2_root().join("auth/token"),
        }
        .expect("static path joins");
        self.inner.counters.auth_requests.fetch_add(1, Ordering::Relaxed);
        let result = self
            .send_with_retries(api, if api == Api::V1 { Class::Auth } else { Class::V2Auth }, Method::POST, url.clone(), None, || {
                let req = self.inner.http.post(url.clone());
                let req = self.personio_headers(api, req);
                match api {
                    Api::V1 => req.json(&serde_json::json!({
                        "client_id": cfg.client_id,
                        "client_secret": cfg.client_secret,
                    })),
                    Api::V2 => req.form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", cfg.client_id.as_str()),
                        ("client_secret", cfg.client_secret.as_str()),
                    ]),
                }
            })
            .await;
        let fetched = match result {
            Ok(f) => f,
            Err(e) => return Err(into_auth_error(e, &url)),
        };
        let body = &fetched.body().map_err(|e| into_auth_error(e, &url))?;
        let auth_err = |message: String| ClientError::Auth {
            status: None,
            url: url.to_string(),
            message,
            attempts: 1,
        };
        let (token, expires) = match api {
            Api::V1 => {
                if body.get("success").and_then(Value::as_bool) == Some(false) {
                    return Err(auth_err(
                        extract_message(body).unwrap_or_else(|| "success: false".into()),
                    ));
                }
                let data = body.get("data");
                (
                    data.and_then(|d| d.get("token")).and_then(Value::as_str),
                    data.and_then(|d| d.get("expires_in")),
                )
            }
            Api::V2 => (
                body.get("access_token").and_then(Value::as_str),
                body.get("expires_in"),
            ),
        };
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| auth_err(
                extract_message(body).unwrap_or_else(|| "the token response has no token".into()),
            ))?
            .to_string();
        let expires_in =
            expires.and_then(as_u64).filter(|&s| s > 0).unwrap_or(DEFAULT_EXPIRES_IN).min(MAX_EXPIRES_IN);
        tracing::debug!(?api, expires_in, "obtained Personio token");
        Ok((token, expires_in))
    }

    fn personio_headers(&self, api: Api, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let cfg = &self.inner.config;
        if let Some(app) = &cfg.app_id {
            req = req.header("X-Personio-App-ID", app);
            if api == Api::V2 {
                req = req.header("Personio-App-ID", app);
            }
        }
        if let Some(partner) = &cfg.partner_id {
            req = req.header("X-Personio-Partner-ID", partner);
            if api == Api::V2 {
                req = req.header("Personio-Partner-ID", partner);
            }
        }
        req
    }

    // ---------------------------------------------------------------- data calls

    /// Authenticated GET with retries. On 401/403 it re-authenticates and retries while the token
    /// server hands out a *different* token (the refused one was revoked or expired), within the
    /// request's attempt budget; when re-authentication returns the very token that was refused, the
    /// refusal is about the credential (a missing scope), and the 401/403 is returned at once.
    pub(crate) async fn get(&self, api: Api, class: Class, url: Url) -> Result<Fetched, ClientError> {
        let mut token = self.token(api, None).await?;
        let max_reauths = self.inner.config.max_attempts.saturating_sub(1).max(1);
        let mut reauths = 0u32;
        loop {
            let tok = token.clone();
            let result = self
                .send_with_retries(api, class, Method::GET, url.clone(), Some(&tok), || {
                    let req = self.inner.http.get(url.clone()).bearer_auth(&tok);
                    self.personio_headers(api, req)
                })
                .await;
            match result {
                Err(ClientError::Http { status: 401 | 403, .. }) if reauths < max_reauths => {
                    reauths += 1;
                    self.inner.counters.reauths.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(url = %redact(&url), reauths, "token refused; re-authenticating");
                    let fresh = self.token(api, Some(&tok)).await?;
                    if fresh == tok {
                        // The same token again: re-sending it cannot help.
                        return result;
                    }
                    token = fresh;
                }
                other => return other,
            }
        }
    }

    /// Sends a request built by `build` up to `max_attempts` times.
    async fn send_with_retries<F>(
        &self,
        api: Api,
        class: Class,
        method: Method,
        url: Url,
        sent_token: Option<&str>,
        build: F,
    ) -> Result<Fetched, ClientError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let cfg = &self.inner.config;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.backoff_factor)
            .with_factor(2.0)
            .with_max_delay(cfg.max_retry_delay)
            .with_max_times(cfg.max_attempts.saturating_sub(1) as usize)
            .build();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let admission = self.inner.pacer.admit(class).await;
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%method, url = %redact(&url), attempt, "Personio request");
            let (outcome, seen) = self.attempt(api, &url, sent_token, attempt, build()).await;
            let retry_after_seen = match &outcome {
                Attempt::Retry(_, ra) => *ra,
                _ => None,
            };
            self.inner.pacer.on_response(class, &admission, seen.status, seen.rate, retry_after_seen);
            drop(admission);
            let (err, retry_after) = match outcome {
                Attempt::Done(f) => return Ok(f),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e, ra) => (e, ra),
            };
            let Some(exp) = backoff.next() else {
                return Err(err);
            };
            let auth = matches!(class, Class::Auth | Class::V2Auth);
            let wait = self.retry_wait(attempt, exp, retry_after, auth && err.status() == Some(429));
            self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(url = %redact(&url), attempt, wait_ms = wait.as_millis() as u64, error = %err,
                "retrying Personio request");
            tokio::time::sleep(wait).await;
        }
    }

    /// The wait before the next attempt.
    fn retry_wait(&self, attempt: u32, exp: Duration, retry_after: Option<Duration>, auth_429: bool) -> Duration {
        let cfg = &self.inner.config;
        let max = cfg.max_retry_delay;
        match retry_after {
            Some(ra) => {
                // Honour Retry-After, but never hammer: a floor doubling with each retry.
                let shift = attempt.saturating_sub(1).min(16);
                let floor = cfg.retry_after_floor.saturating_mul(1 << shift);
                ra.min(max).max(floor.min(max))
            }
            None => {
                // Exponential (from backon), plus up to 20% jitter, capped.
                let jitter = exp.mul_f64(rand::rng().random_range(0.0..0.2));
                let mut wait = exp.saturating_add(jitter).min(max);
                if auth_429 {
                    wait = wait.max(AUTH_COOLDOWN.min(max));
                }
                wait
            }
        }
    }

    async fn attempt(
        &self,
        api: Api,
        url: &Url,
        sent_token: Option<&str>,
        attempts: u32,
        req: reqwest::RequestBuilder,
    ) -> (Attempt, Seen) {
        let mut seen = Seen::default();
        let outcome = self.attempt_inner(api, url, sent_token, attempts, req, &mut seen).await;
        (outcome, seen)
    }

    async fn attempt_inner(
        &self,
        api: Api,
        url: &Url,
        sent_token: Option<&str>,
        attempts: u32,
        req: reqwest::RequestBuilder,
        seen: &mut Seen,
    ) -> Attempt {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: redact(url),
            message: describe_reqwest(&e),
            timeout: e.is_timeout(),
            attempts,
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let retry = is_retryable_reqwest(&e);
                let err = transport(e);
                return if retry { Attempt::Retry(err, None) } else { Attempt::Fail(err) };
            }
        };
        let status = resp.status();
        seen.status = Some(status.as_u16());
        seen.rate = RateHeaders::parse(resp.headers());
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let header_token = resp
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|t| t.trim().to_string());
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(LOCATION)
                .map(|v| match v.to_str().ok().and_then(|l| url.join(l.trim()).ok()) {
                    Some(target) => redact(&target),
                    None => format!("{:?}", String::from_utf8_lossy(v.as_bytes())),
                })
                .unwrap_or_else(|| "an unspecified location (no Location header)".into());
            return Attempt::Fail(ClientError::Redirect { status: status.as_u16(), url: redact(url), location });
        }
        let limit = self.inner.config.max_body_bytes;
        let (bytes, truncated) = match read_capped(resp, limit).await {
            Ok(b) => b,
            Err(e) => {
                // Broken or truncated body: retry whatever the status.
                return Attempt::Retry(transport(e), retry_after);
            }
        };
        self.inner.counters.bytes_received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if truncated && status.is_success() {
            return Attempt::Fail(ClientError::BodyTooLarge { url: redact(url), limit });
        }

        if !status.is_success() {
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.inner.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            let err = ClientError::Http {
                status: status.as_u16(),
                url: redact(url),
                message: message_from_body(&bytes),
                attempts,
            };
            return if is_retryable_status(status.as_u16()) {
                Attempt::Retry(err, retry_after)
            } else {
                Attempt::Fail(err)
            };
        }

        // Checked here, so an invalid body is retried; parsed when the page is consumed.
        match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            Ok(_) => {}
            Err(e) => {
                return Attempt::Retry(
                    ClientError::InvalidJson { url: redact(url), message: e.to_string(), attempts },
                    retry_after,
                )
            }
        };

        // Legacy token rotation: adopt a token handed back in the response header (v1 data calls).
        if api == Api::V1 && sent_token.is_some() {
            if let Some(t) = header_token.filter(|t| !t.is_empty()) {
                if self.inner.v1_token.peek().as_deref() != Some(t.as_str()) && self.inner.v1_token.adopt(&t) {
                    self.inner.counters.tokens_adopted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("adopted token from authorization response header");
                }
            }
        }
        Attempt::Done(Fetched { len: bytes.len(), bytes, url: url.clone(), attempts })
    }
}

/// Reads a body, decoded, up to `limit` bytes. Returns what was read and whether the body was longer
/// (the rest is never read nor buffered).
async fn read_capped(mut resp: reqwest::Response, limit: u64) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok((Vec::new(), true));
    }
    let mut buf = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize).min(cap));
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, false))
}

/// Turns a failure of the token endpoint into [`ClientError::Auth`].
fn into_auth_error(e: ClientError, url: &Url) -> ClientError {
    let attempts = e.attempts().unwrap_or(1);
    let status = e.status();
    let message = match &e {
        ClientError::Http { message, .. } => message.clone().unwrap_or_else(|| "no message".into()),
        other => other.to_string(),
    };
    ClientError::Auth { status, url: url.to_string(), message, attempts }
}

/// v1 envelope check (F8).
pub(crate) fn check_v1_envelope(body: &Value, url: &Url) -> Result<(), ClientError> {
    let err = |message: String| ClientError::Envelope { url: redact(url), message, body: body.clone() };
    match body {
        Value::Object(map) => {
            if map.get("success").and_then(Value::as_bool) == Some(false) {
                return Err(err(extract_message(body).unwrap_or_else(|| "success: false".into())));
            }
            if !map.contains_key("data") {
                return Err(err(extract_message(body)
                    .unwrap_or_else(|| "the response has no `data` field".into())));
            }
            Ok(())
        }
        _ => Err(err("the response is not a JSON object".into())),
    }
}

/// Replaces the query of `url` with `params`, in order.
pub(crate) fn set_query(url: &mut Url, params: &[(String, String)]) {
    if params.is_empty() {
        url.set_query(None);
        return;
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    url.set_query(Some(&ser.finish()));
}

/// The URL as text with secret-looking query values replaced.
pub(crate) fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let lk = k.to_ascii_lowercase();
                let secret = ["secret", "token", "password", "client_id", "key"].iter().any(|s| lk.contains(s));
                (k.into_owned(), if secret { "REDACTED".to_string() } else { v.into_owned() })
            })
            .collect();
        set_query(&mut u, &pairs);
    }
    u.to_string()
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn is_retryable_reqwest(e: &reqwest::Error) -> bool {
    !e.is_builder() && !e.is_redirect()
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Parses `Retry-After`: delta seconds (fractions allowed) or an HTTP date; negative → 0.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() {
            return Some(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)));
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-5"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let future = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let d = parse_retry_after(&future).unwrap();
        assert!(d > Duration::from_secs(27) && d <= Duration::from_secs(30), "{d:?}");
        let gmt = (chrono::Utc::now() + chrono::Duration::seconds(30)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        assert!(parse_retry_after(&gmt).unwrap() > Duration::from_secs(27));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn redaction() {
        let u = Url::parse("https://u:p@x.test/v1/auth?client_id=a&client_secret=b&limit=3").unwrap();
        let r = redact(&u);
        assert!(!r.contains("=a") && !r.contains("=b") && !r.contains(":p@"), "{r}");
        assert!(r.contains("limit=3"));
    }

    #[test]
    fn retry_wait_rules() {
        let mut cfg = ClientConfig::new("id", "secret");
        cfg.max_retry_delay = Duration::from_secs(300);
        let c = PersonioClient::new(cfg).unwrap();
        // Retry-After replaces the backoff, clamped to max_retry_delay.
        assert_eq!(c.retry_wait(1, Duration::from_secs(1), Some(Duration::from_secs(7)), false), Duration::from_secs(7));
        assert_eq!(c.retry_wait(1, Duration::from_secs(1), Some(Duration::from_secs(900)), false), Duration::from_secs(300));
        // Retry-After: 0 gets a growing floor.
        assert_eq!(c.retry_wait(1, Duration::from_secs(1), Some(Duration::ZERO), false), Duration::from_millis(250));
        assert_eq!(c.retry_wait(3, Duration::from_secs(4), Some(Duration::ZERO), false), Duration::from_millis(1000));
        // Exponential with at most 20% jitter.
        let w = c.retry_wait(2, Duration::from_secs(2), None, false);
        assert!(w >= Duration::from_secs(2) && w <= Duration::from_millis(2400), "{w:?}");
        // 429 on auth without Retry-After: Personio's 60 s cool-down.
        assert!(c.retry_wait(1, Duration::from_secs(1), None, true) >= Duration::from_secs(60));
    }

    #[test]
    fn debug_redacts_secret() {
        let c = PersonioClient::new(ClientConfig::new("papi-id", "papi-very-secret")).unwrap();
        let s = format!("{c:?} {:?}", c.config());
        assert!(!s.contains("very-secret"), "{s}");
        assert!(s.contains("papi-id"));
    }
}
