//! Client configuration.

use std::fmt;
use std::time::Duration;

/// Default Personio API host. The v1 root is `{base_url}/v1`, the v2 root `{base_url}/v2`.
pub const DEFAULT_BASE_URL: &str = "https://api.personio.de";

/// Configuration of a [`PersonioClient`](crate::PersonioClient).
///
/// Build one with [`ClientConfig::new`] and adjust the public fields. The `Debug` output never shows
/// `client_secret`.
#[derive(Clone)]
pub struct ClientConfig {
    /// API host without a version suffix, e.g. `https://api.personio.de` (a trailing `/` is ignored).
    pub base_url: String,
    /// Personio API client id (`sources.personio.client_id`).
    pub client_id: String,
    /// Personio API client secret (`sources.personio.client_secret`). Never logged or printed.
    pub client_secret: String,
    /// Sent as `X-Personio-App-ID` (and `Personio-App-ID` on v2) when set.
    pub app_id: Option<String>,
    /// Sent as `X-Personio-Partner-ID` (and `Personio-Partner-ID` on v2) when set.
    pub partner_id: Option<String>,
    /// Timeout of one HTTP request, body included (dlt: `runtime.request_timeout`, 60 s).
    pub request_timeout: Duration,
    /// Total attempts per request, the first included (dlt: `runtime.request_max_attempts`, 5).
    pub max_attempts: u32,
    /// First retry wait; later waits double (dlt: `runtime.request_backoff_factor`, 1 s).
    pub backoff_factor: Duration,
    /// Upper bound of any single wait, `Retry-After` included (dlt: `runtime.request_max_retry_delay`, 300 s).
    pub max_retry_delay: Duration,
    /// Smallest wait after a `Retry-After` that asks for less (e.g. `0`); doubles with every retry of
    /// the same request so a misbehaving server is never hammered. Default 250 ms.
    pub retry_after_floor: Duration,
    /// Client-side rate limits.
    pub pacing: PacingConfig,
    /// `User-Agent` header.
    pub user_agent: String,
}

/// Client-side pacing (token buckets shared by all clones of a client).
///
/// Defaults follow Personio's published limits: `GET /company/employees*` 300/min with bursts of 15/s,
/// 2000/min for all v1 calls per IP, 60/min for `POST /auth`. A limit of `0` disables that bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacingConfig {
    /// Master switch; `false` disables all client-side pacing.
    pub enabled: bool,
    /// Sustained rate for paths under `company/employees` (absence balances included), per minute.
    pub employees_per_min: u32,
    /// Burst size for the employees bucket (requests that may go out at once).
    pub employees_burst_per_sec: u32,
    /// Sustained rate for every API call (v1 and v2), per minute.
    pub global_per_min: u32,
    /// Sustained rate for token requests (`/v1/auth`, `/v2/auth/token`), per minute; burst 1.
    pub auth_per_min: u32,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            employees_per_min: 300,
            employees_burst_per_sec: 15,
            global_per_min: 2000,
            auth_per_min: 60,
        }
    }
}

impl PacingConfig {
    /// Pacing switched off (for tests against a local fake).
    pub fn disabled() -> Self {
        Self { enabled: false, ..Self::default() }
    }
}

impl ClientConfig {
    /// A configuration with dlt-compatible defaults for the given credentials.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            app_id: None,
            partner_id: None,
            request_timeout: Duration::from_secs(60),
            max_attempts: 5,
            backoff_factor: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(300),
            retry_after_floor: Duration::from_millis(250),
            pacing: PacingConfig::default(),
            user_agent: format!("personio-pipeline/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Replaces the base URL (builder style).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("app_id", &self.app_id)
            .field("partner_id", &self.partner_id)
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_factor", &self.backoff_factor)
            .field("max_retry_delay", &self.max_retry_delay)
            .field("retry_after_floor", &self.retry_after_floor)
            .field("pacing", &self.pacing)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}
