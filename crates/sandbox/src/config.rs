//! Sandbox configuration: company size, credentials, limits and faults.

use serde::{Deserialize, Serialize};

/// Default demo client id.
pub const DEFAULT_CLIENT_ID: &str = "papi-sandbox-client";
/// Default demo client secret.
pub const DEFAULT_CLIENT_SECRET: &str = "papi-sandbox-secret";

/// Every scope a sandbox credential can hold (the default credential holds all of them).
///
/// `personio:persons:read` and `personio:absences:read` are named by Personio's v2 specs; the others
/// follow the same pattern (UNVERIFIED, see docs/sandbox.md).
pub const ALL_SCOPES: &[&str] = &[
    "personio:persons:read",
    "personio:employments:read",
    "personio:absences:read",
    "personio:attendances:read",
    "personio:projects:read",
    "personio:document_categories:read",
    "personio:reports:read",
];

/// Company size presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// ≈10 employees, 1 year of history.
    Tiny,
    /// ≈50 employees, 2 years.
    Small,
    /// ≈1,000 employees, 2 years.
    Medium,
    /// ≈10,000 employees, 3 years (few time trackers).
    Large,
}

impl Preset {
    /// The sizes of this preset.
    pub fn sizes(self) -> Sizes {
        match self {
            Preset::Tiny => Sizes { employees: 10, years: 1, attendance_share: 0.5 },
            Preset::Small => Sizes { employees: 50, years: 2, attendance_share: 0.3 },
            Preset::Medium => Sizes { employees: 1_000, years: 2, attendance_share: 0.3 },
            Preset::Large => Sizes { employees: 10_000, years: 3, attendance_share: 0.05 },
        }
    }
}

/// Explicit company sizes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sizes {
    /// Number of employees.
    pub employees: usize,
    /// Years of absences and attendances before the clock.
    pub years: u32,
    /// Share (0–1) of employees that track attendances (the first two always do).
    pub attendance_share: f64,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 500 Internal Server Error.
    Status500,
    /// 502 Bad Gateway.
    Status502,
    /// 503 Service Unavailable.
    Status503,
    /// 504 Gateway Timeout.
    Status504,
    /// 429 with `Retry-After: 0`.
    TooManyRequests,
    /// The TCP connection is reset without a response.
    ConnectionReset,
    /// The response is delayed by `slow_ms`.
    Slow,
    /// A 200 whose JSON body is cut in half.
    TruncatedBody,
    /// Every token is revoked; this request answers 403 and clients must re-authenticate.
    RevokeToken,
    /// New records are inserted before this request is served (between two pages).
    InsertRecords,
}

/// Fault injection, off by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Seed of the fault RNG.
    pub seed: u64,
    /// Probability (0–1) that a data request (not auth, not admin) gets a fault.
    pub probability: f64,
    /// Kinds drawn from when `probability` fires (empty: all status faults).
    pub kinds: Vec<FaultKind>,
    /// Faults at exact request numbers (1-based position in the request log, admin excluded).
    pub at_requests: Vec<(u64, FaultKind)>,
    /// Delay of a `Slow` fault in milliseconds (default 1500).
    pub slow_ms: Option<u64>,
    /// Records added by `InsertRecords` (default 3).
    pub insert_count: Option<usize>,
}

/// Per-request latency for benchmarks (off while `mean_ms` and `tail_ms` are 0): most requests wait
/// `mean_ms` ± 50 % (uniform), a share `tail_share` of them waits `tail_ms` instead (no tail while `tail_ms`
/// is 0). Seeded, so a run is
/// reproducible. Applies to every non-admin request, auth included, before it is served.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Typical delay in milliseconds.
    pub mean_ms: u64,
    /// Delay of the slow tail in milliseconds.
    pub tail_ms: u64,
    /// Share (0–1) of requests in the tail.
    pub tail_share: f64,
    /// Seed of the latency RNG.
    pub seed: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { mean_ms: 0, tail_ms: 0, tail_share: 0.05, seed: 0 }
    }
}

impl Latency {
    /// Is any delay configured?
    pub fn is_on(&self) -> bool {
        self.mean_ms > 0 || self.tail_ms > 0
    }
}

/// Full sandbox configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// Seed of the company generator.
    pub seed: u64,
    /// Company sizes (see [`Preset::sizes`]).
    pub sizes: Sizes,
    /// Accepted client id.
    pub client_id: String,
    /// Accepted client secret.
    pub client_secret: String,
    /// Enforce Personio's rate limits.
    pub rate_limits: bool,
    /// v1 attendances and projects answer 410 Gone (retired 2026-08-30).
    pub v1_retired: bool,
    /// Reject query-string credentials on `POST /v1/auth` with 403.
    pub reject_query_auth: bool,
    /// Answer 401 (instead of 403) for an unknown or expired token.
    pub invalid_token_401: bool,
    /// Fault injection.
    pub faults: FaultConfig,
    /// Fake clock start, RFC 3339 (default 2026-11-23T08:00:00Z).
    pub now: Option<String>,
    /// Scopes of the credential (`None`: all of [`ALL_SCOPES`]). A data endpoint outside them answers 403.
    pub scopes: Option<Vec<String>>,
    /// The credential has no whitelisted attributes: v2 persons are only `{id, employments, _meta}`.
    pub persons_without_attributes: bool,
    /// Per-request latency (off by default).
    pub latency: Latency,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            seed: 42,
            sizes: Preset::Small.sizes(),
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            rate_limits: false,
            v1_retired: false,
            reject_query_auth: false,
            invalid_token_401: false,
            faults: FaultConfig::default(),
            now: None,
            scopes: None,
            persons_without_attributes: false,
            latency: Latency::default(),
        }
    }
}

impl SandboxConfig {
    /// A default configuration with this preset and seed.
    pub fn preset(preset: Preset, seed: u64) -> Self {
        SandboxConfig { seed, sizes: preset.sizes(), ..Default::default() }
    }

    /// The credential's scopes (all when not configured).
    pub fn effective_scopes(&self) -> Vec<String> {
        match &self.scopes {
            Some(s) => s.clone(),
            None => ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
        }
    }
}
