//! Personio API client: fetches pages of JSON, nothing more.
//!
//! It knows nothing about tables or pipelines. It handles:
//!
//! * **Auth**: v1 `POST /v1/auth` with the credentials in a JSON body; v2 `POST /v2/auth/token`
//!   (form-encoded client credentials). Tokens are cached and refreshed 5 min before `expires_in`
//!   (86400 s if absent), single-flight across concurrent callers; a token in an `authorization:
//!   Bearer …` response header is adopted; a 401/403 on a data call re-authenticates once and
//!   retries once.
//! * **Retries** (backon exponential schedule): 429, 5xx, connection errors, timeouts, broken or
//!   invalid JSON bodies; `Retry-After` honoured (seconds or HTTP date, clamped to
//!   `max_retry_delay`) with a growing floor so `Retry-After: 0` never hammers.
//! * **Pacing** (the `pacing` module's token buckets shared by all clones, with adaptive concurrency and
//!   server-announced pauses): `company/employees*` 300/min, burst 15; every call 2000/min; v1 auth
//!   60/min; v2 token 150/min.
//! * **Paging** exactly as dlt's personio source pages ([`PagingMode`]), and v2 cursors.
//! * **Envelope check** (dlt-compat F8): a 2xx with `success: false` or without `data` is an error.
//! * **Hostile servers are bounded**: redirects are never followed (the token request's body holds the
//!   secret); bodies are capped after gzip decoding (`max_body_bytes`, 64 MiB); a repeated v1 page or a
//!   cycle of v2 next links is an error; `expires_in` and every configured number are range-checked.
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use personio_client::{ClientConfig, PagingMode, PersonioClient};
//!
//! # async fn run() -> Result<(), personio_client::ClientError> {
//! let client = PersonioClient::new(ClientConfig::new("papi-id", "papi-secret"))?;
//! client.authenticate().await?; // bad credentials fail here, before any data call
//! let params = vec![("limit".to_string(), "100".to_string())];
//! let mut pages = client.v1_pages("company/employees", params, PagingMode::RecordOffset { limit: Some(100) });
//! while let Some(page) = pages.try_next().await? {
//!     println!("{} employees from {}", page.data.len(), page.url);
//! }
//! println!("{:?}", client.stats());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod json;
mod pacing;
mod paging;
mod partition;

pub use client::{ClientStats, PersonioClient};
pub use config::{ClientConfig, ConcurrencyConfig, PacingConfig, DEFAULT_BASE_URL, DEFAULT_MAX_BODY_BYTES};
pub use error::ClientError;
pub use paging::{Page, PageMetadata, PageStream, PagingMode, V1Pager, V2Pager};
pub use partition::{PartitionOptions, WindowSpec};
