//! Error type.

use serde_json::Value;

/// Everything that can go wrong talking to Personio.
///
/// URLs in errors never carry credentials (auth sends them in the body; query values whose names
/// look secret are replaced by `REDACTED`). Tokens and the client secret never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Personio refused the credentials, or the token endpoint failed for good.
    #[error(
        "Personio authentication failed at {url}{} after {attempts} attempt(s): {message}. \
         Check client_id/client_secret in .dlt/secrets.toml (sources.personio) or \
         SOURCES__PERSONIO__CLIENT_ID / SOURCES__PERSONIO__CLIENT_SECRET, and that the credential is active",
        status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
    )]
    Auth {
        /// HTTP status, if a response arrived.
        status: Option<u16>,
        /// Token endpoint URL.
        url: String,
        /// Personio's message, or a description of the failure.
        message: String,
        /// Attempts made.
        attempts: u32,
    },

    /// A non-2xx response that was not retryable, or that persisted after all retries.
    #[error("Personio returned HTTP {status} for GET {url} after {attempts} attempt(s): {}. {}",
        message.as_deref().unwrap_or("no message"), http_hint(*status))]
    Http {
        /// HTTP status code.
        status: u16,
        /// Request URL (secrets redacted).
        url: String,
        /// Personio's error message, if the body had one.
        message: Option<String>,
        /// Attempts made.
        attempts: u32,
    },

    /// Connection failure, reset, timeout or broken body that persisted after all retries.
    #[error("request to {url} failed after {attempts} attempt(s): {message}. \
             Check network access to the Personio API (base_url) and runtime.request_timeout")]
    Transport {
        /// Request URL (secrets redacted).
        url: String,
        /// Description of the transport failure.
        message: String,
        /// Whether the last failure was a timeout.
        timeout: bool,
        /// Attempts made.
        attempts: u32,
    },

    /// A 2xx response whose body was not valid JSON (e.g. truncated), after all retries.
    #[error("Personio sent an invalid JSON body for {url} after {attempts} attempt(s): {message}; check that base_url points to Personio's API, then rerun")]
    InvalidJson {
        /// Request URL (secrets redacted).
        url: String,
        /// Parser error.
        message: String,
        /// Attempts made.
        attempts: u32,
    },

    /// A 2xx response that signals failure (`success: false`) or lacks `data` (dlt-compat F8).
    #[error("Personio reported an error for {url}: {message}")]
    Envelope {
        /// Request URL (secrets redacted).
        url: String,
        /// Personio's message, or what was wrong with the envelope.
        message: String,
        /// The response body, for diagnostics.
        body: Value,
    },

    /// A v2 `_meta.links.next.href` pointing somewhere other than the configured API host.
    #[error("refusing to follow v2 next link {next} from {url}: its scheme/host/port differs from the \
             configured base_url {base}")]
    ForeignNextLink {
        /// The offending link (secrets redacted).
        next: String,
        /// URL of the page that contained it.
        url: String,
        /// Configured base URL.
        base: String,
    },

    /// A v2 next link that could not be parsed, or that repeats the current page.
    #[error("invalid v2 next link {next:?} in response from {url}: {message}; the server's paging does not make progress: check that base_url points to Personio, then rerun")]
    BadNextLink {
        /// The link as received.
        next: String,
        /// URL of the page that contained it.
        url: String,
        /// What is wrong with it.
        message: String,
    },

    /// A 3xx answer. Redirects are never followed: token requests carry the client secret in their
    /// body and data calls a bearer token, so neither is re-sent anywhere, same origin included.
    #[error("Personio answered HTTP {status} for {url}, a redirect to {location}; redirects are never \
             followed because the request carries credentials. If the API really moved, set base_url \
             (sources.personio.base_url) to the new address")]
    Redirect {
        /// HTTP status (301, 302, 303, 307, 308, …).
        status: u16,
        /// Request URL (secrets redacted).
        url: String,
        /// The `Location` header, resolved against the request URL (secrets redacted).
        location: String,
    },

    /// A 2xx body larger than `max_body_bytes` after decompression; not retried.
    #[error("the response from {url} is larger than {limit} bytes after decompression (max_body_bytes); \
             it was not read. If the data is legitimately this large, raise runtime.max_body_bytes \
             (RUNTIME__MAX_BODY_BYTES) or lower items_per_page")]
    BodyTooLarge {
        /// Request URL (secrets redacted).
        url: String,
        /// The configured cap, in bytes.
        limit: u64,
    },

    /// v1 paging that makes no progress: a page identical to one already received in this stream.
    #[error("Personio sent the same page again for {url} (page {index} of this listing repeats an \
             earlier one): paging makes no progress, so it was stopped instead of looping. The server \
             may be ignoring offset/page; retry later, and report it if it persists")]
    PagingStalled {
        /// Request URL of the repeated page (secrets redacted).
        url: String,
        /// 0-based index of the repeated page within its stream.
        index: u32,
    },

    /// Invalid configuration or arguments (bad base URL, HTTP client construction failure, ...).
    #[error("invalid Personio client configuration: {0}")]
    Config(String),
}

fn http_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "The token was refused even after re-authenticating: check that the API credential \
                      may read this endpoint and its attributes (Personio: Settings > API credentials)",
        404 => "The resource does not exist (unknown id or path), or the endpoint was retired",
        400 | 422 => "Personio rejected the request parameters (e.g. limit out of range, bad date format)",
        429 => "Personio kept rate limiting: lower concurrency or the pacing limits, then rerun",
        500..=599 => "Personio had a server error that persisted; retry later",
        _ => "Unexpected response",
    }
}

impl ClientError {
    /// Whether repeating the same request later could succeed (429, 5xx, transport, invalid JSON).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Http { status, .. } => is_retryable_status(*status),
            ClientError::Transport { .. } | ClientError::InvalidJson { .. } => true,
            ClientError::Auth { status, .. } => status.is_some_and(is_retryable_status),
            _ => false,
        }
    }

    /// HTTP status of the failing response, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            ClientError::Auth { status, .. } => *status,
            _ => None,
        }
    }

    /// Number of attempts made, where known.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            ClientError::Http { attempts, .. }
            | ClientError::Auth { attempts, .. }
            | ClientError::Transport { attempts, .. }
            | ClientError::InvalidJson { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// Personio's own error message, where one was received.
    pub fn personio_message(&self) -> Option<&str> {
        match self {
            ClientError::Http { message, .. } => message.as_deref(),
            ClientError::Auth { message, .. } | ClientError::Envelope { message, .. } => Some(message),
            _ => None,
        }
    }
}

pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// Extracts a human-readable message from any of Personio's error shapes: v1
/// `{"error":{"message"}}`, custom reports `[{"errors":[{"title","details"}]}]`, v2
/// `{"errors":[{"title","detail"}]}`, OAuth `{"error","error_description"}`, or a plain `message`.
pub(crate) fn extract_message(body: &Value) -> Option<String> {
    match body {
        Value::Array(items) => items.iter().find_map(extract_message),
        Value::Object(map) => {
            if let Some(err) = map.get("error") {
                match err {
                    Value::Object(e) => {
                        if let Some(m) = e.get("message").and_then(Value::as_str) {
                            let mut s = m.trim().to_string();
                            if let Some(d) = e.get("detailed_message") {
                                if !d.is_null() {
                                    s.push_str(&format!(" ({d})"));
                                }
                            }
                            return Some(s);
                        }
                    }
                    Value::String(code) => {
                        return Some(match map.get("error_description").and_then(Value::as_str) {
                            Some(d) => format!("{code}: {d}"),
                            None => code.clone(),
                        });
                    }
                    _ => {}
                }
            }
            if let Some(Value::Array(errors)) = map.get("errors") {
                let parts: Vec<String> = errors
                    .iter()
                    .filter_map(|e| {
                        let title = e.get("title").and_then(Value::as_str);
                        let detail = e
                            .get("detail")
                            .or_else(|| e.get("details"))
                            .and_then(Value::as_str);
                        match (title, detail) {
                            (Some(t), Some(d)) => Some(format!("{t}: {d}")),
                            (Some(t), None) => Some(t.to_string()),
                            (None, Some(d)) => Some(d.to_string()),
                            (None, None) => None,
                        }
                    })
                    .collect();
                if !parts.is_empty() {
                    return Some(parts.join("; "));
                }
            }
            map.get("message").and_then(Value::as_str).map(|s| s.trim().to_string())
        }
        _ => None,
    }
}

/// Message from a raw error body: JSON shapes first, else the first 300 characters of the text.
pub(crate) fn message_from_body(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(m) = extract_message(&v) {
            return Some(m);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        None
    } else {
        Some(text.chars().take(300).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_from_all_shapes() {
        let v1 = json!({"success":false,"error":{"code":403,"message":"Provided authorization is not valid"}});
        assert_eq!(extract_message(&v1).unwrap(), "Provided authorization is not valid");
        let cr = json!([{"status":404,"errors":[{"title":"Not Found","details":"Report not found"}]}]);
        assert_eq!(extract_message(&cr).unwrap(), "Not Found: Report not found");
        let v2 = json!({"errors":[{"title":"Not found","detail":"nope"}]});
        assert_eq!(extract_message(&v2).unwrap(), "Not found: nope");
        let oauth = json!({"error":"invalid_client","error_description":"bad"});
        assert_eq!(extract_message(&oauth).unwrap(), "invalid_client: bad");
        assert_eq!(message_from_body(b"Too Many Attempts.").unwrap(), "Too Many Attempts.");
        assert_eq!(message_from_body(b"  "), None);
    }

    #[test]
    fn retryability() {
        let e = |status| ClientError::Http { status, url: String::new(), message: None, attempts: 1 };
        assert!(e(429).is_retryable());
        assert!(e(503).is_retryable());
        assert!(!e(404).is_retryable());
        assert!(!e(400).is_retryable());
    }
}
