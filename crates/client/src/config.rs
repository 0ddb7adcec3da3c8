//! Client configuration.

use std::fmt;
use std::time::Duration;

use crate::error::ClientError;

/// Default Personio API host. The v1 root is `{base_url}/v1`, the v2 root `{base_url}/v2`.
pub const DEFAULT_BASE_URL: &str = "https://api.personio.de";

/// Default cap on one response body after decompression: 64 MiB (a 100-employee page is ~1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

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
    /// Largest response body read, in bytes, counted after gzip decoding (default 64 MiB). A larger
    /// 2xx body is [`ClientError::BodyTooLarge`](crate::ClientError::BodyTooLarge); a larger error body
    /// is truncated.
    pub max_body_bytes: u64,
    /// Client-side rate limits.
    pub pacing: PacingConfig,
    /// The adaptive limit on requests in flight.
    pub concurrency: ConcurrencyConfig,
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
    /// Sustained rate for v1 token requests (`/v1/auth`), per minute; burst 1.
    pub auth_per_min: u32,
    /// Sustained rate for v2 token requests (`/v2/auth/token`, Personio: 150/min), per minute; burst 1.
    pub v2_auth_per_min: u32,
    /// Whether absence-balance calls (`company/employees/{id}/absences/balance`) also pass the
    /// employees bucket (`true`, the safe default: Personio does not publish whether the 300/min
    /// employees limit covers them) or only the global one (`sources.personio.balance_scope`).
    pub balances_in_employees_limit: bool,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            employees_per_min: 300,
            employees_burst_per_sec: 15,
            global_per_min: 2000,
            auth_per_min: 60,
            v2_auth_per_min: 150,
            balances_in_employees_limit: true,
        }
    }
}

/// The adaptive limit on requests in flight, shared by all clones of a client (see
/// `docs/client.md`, "Concurrency"). It starts at `initial`, grows while latency (not the rate limits)
/// holds requests back, is halved by a 429, and never exceeds `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    /// Requests in flight at the start (default 4).
    pub initial: usize,
    /// Most requests in flight at once (`sources.personio.max_concurrency`, default 32).
    pub max: usize,
}

impl ConcurrencyConfig {
    /// Accepted `max` (and `initial`), inclusive.
    pub const RANGE: (usize, usize) = (1, 256);
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        Self { initial: 4, max: 32 }
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
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            pacing: PacingConfig::default(),
            concurrency: ConcurrencyConfig::default(),
            user_agent: format!("personio-pipeline/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Accepted `request_timeout`, inclusive: 1 ms to 1 hour.
    pub const REQUEST_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(3600));
    /// Accepted `backoff_factor`, inclusive: 0 to 10 minutes.
    pub const BACKOFF_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(600));
    /// Accepted `max_retry_delay` and `retry_after_floor`, inclusive: 0 to 1 hour.
    pub const RETRY_DELAY_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(3600));
    /// Accepted `max_attempts`, inclusive.
    pub const MAX_ATTEMPTS_RANGE: (u32, u32) = (1, 100);
    /// Accepted `max_body_bytes`, inclusive: 1 KiB to 4 GiB.
    pub const MAX_BODY_BYTES_RANGE: (u64, u64) = (1024, 4 * 1024 * 1024 * 1024);

    /// Converts a number of seconds read from configuration (`setting`, e.g. `runtime.request_timeout`)
    /// into a [`Duration`] within `range` (e.g. [`Self::REQUEST_TIMEOUT_RANGE`]). Negative, NaN,
    /// infinite and out-of-range values are a [`ClientError::Config`] naming the setting, its
    /// environment variable and the accepted range; this never panics.
    pub fn seconds(setting: &str, value: f64, range: (Duration, Duration)) -> Result<Duration, ClientError> {
        let (min, max) = range;
        let in_range = value.is_finite() && value >= min.as_secs_f64() && value <= max.as_secs_f64();
        match Duration::try_from_secs_f64(value) {
            Ok(d) if in_range && d >= min && d <= max => Ok(d),
            _ => Err(ClientError::Config(format!(
                "{setting} ({}) is {value} s: use a number of seconds from {} to {}",
                env_name(setting),
                min.as_secs_f64(),
                max.as_secs_f64()
            ))),
        }
    }

    /// Checks every number against its accepted range (the `*_RANGE` constants); [`PersonioClient::new`](crate::PersonioClient::new) calls it. Errors name the dlt
    /// setting (`runtime.request_timeout`, …) and never contain the secret.
    pub fn validate(&self) -> Result<(), ClientError> {
        let duration = |setting: &str, d: Duration, (min, max): (Duration, Duration)| {
            if d < min || d > max {
                return Err(ClientError::Config(format!(
                    "{setting} ({}) is {} s: use a number of seconds from {} to {}",
                    env_name(setting),
                    d.as_secs_f64(),
                    min.as_secs_f64(),
                    max.as_secs_f64()
                )));
            }
            Ok(())
        };
        duration("runtime.request_timeout", self.request_timeout, Self::REQUEST_TIMEOUT_RANGE)?;
        duration("runtime.request_backoff_factor", self.backoff_factor, Self::BACKOFF_RANGE)?;
        duration("runtime.request_max_retry_delay", self.max_retry_delay, Self::RETRY_DELAY_RANGE)?;
        duration("retry_after_floor", self.retry_after_floor, Self::RETRY_DELAY_RANGE)?;
        let (lo, hi) = Self::MAX_ATTEMPTS_RANGE;
        if !(lo..=hi).contains(&self.max_attempts) {
            return Err(ClientError::Config(format!(
                "runtime.request_max_attempts (RUNTIME__REQUEST_MAX_ATTEMPTS) is {}: use a whole number from {lo} to {hi}",
                self.max_attempts
            )));
        }
        let (lo, hi) = Self::MAX_BODY_BYTES_RANGE;
        if !(lo..=hi).contains(&self.max_body_bytes) {
            return Err(ClientError::Config(format!(
                "runtime.max_body_bytes (RUNTIME__MAX_BODY_BYTES) is {}: use a number of bytes from {lo} to {hi}",
                self.max_body_bytes
            )));
        }
        let (lo, hi) = ConcurrencyConfig::RANGE;
        if !(lo..=hi).contains(&self.concurrency.max) || !(lo..=hi).contains(&self.concurrency.initial) {
            return Err(ClientError::Config(format!(
                "sources.personio.max_concurrency (SOURCES__PERSONIO__MAX_CONCURRENCY) is {} (initial {}): use a whole number from {lo} to {hi}",
                self.concurrency.max, self.concurrency.initial
            )));
        }
        Ok(())
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
            .field("max_body_bytes", &self.max_body_bytes)
            .field("pacing", &self.pacing)
            .field("concurrency", &self.concurrency)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// `runtime.request_timeout` → `RUNTIME__REQUEST_TIMEOUT` (dlt's environment spelling).
fn env_name(setting: &str) -> String {
    setting.replace('.', "__").to_ascii_uppercase()
}
