//! dlt-style configuration: environment variables, then `.dlt/secrets.toml`, then `.dlt/config.toml`.
//!
//! A key such as `client_id` of section `sources.personio` is looked up, in each provider in turn, under
//! `sources.personio.personio.client_id`, `sources.personio.client_id` and `sources.client_id`; the first
//! hit wins. Environment variables spell the path in upper case joined by `__`
//! (`SOURCES__PERSONIO__CLIENT_ID`). A bare name (`CLIENT_SECRET`, `BASE_URL`, a top-level `client_id`)
//! is never read: a stray generic variable must not redirect or supply credentials. Secrets are never
//! read from `config.toml`.
//!
//! Errors never quote a value of `secrets.toml` (nor any text of a file that fails to parse); numbers
//! are checked against a documented range before use.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline_engine::trace::ConfigValue;

/// A configuration problem (exit code 2). Messages name the file or variable and never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `.dlt/*.toml` file that cannot be read.
    #[error("cannot read {}: {source}; it must be a readable UTF-8 TOML file: fix or remove it", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `.dlt/*.toml` file that is not valid TOML. The offending text is not quoted (it may be a secret).
    #[error(
        "{} is not valid TOML: line {line}, column {column}{}: {what}. Fix that line (its text is not shown: the file may hold secrets)",
        path.display(),
        key.map(|k| format!(" (key `{k}`)")).unwrap_or_default()
    )]
    Syntax { path: PathBuf, line: usize, column: usize, key: Option<&'static str>, what: String },
    /// A value outside what the setting accepts.
    #[error("{key} ({origin}) {problem}; allowed: {allowed}")]
    Value { key: String, origin: Origin, problem: String, allowed: String },
}

/// Where a value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable of that name.
    Env(String),
    /// A key path in one of the `.dlt` files (`secrets.toml` or `config.toml`).
    File { file: &'static str, path: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::File { file, path } => write!(f, "`{path}` in .dlt/{file}"),
        }
    }
}

/// Keys this program reads; a syntax error on a line that sets one of them names the key.
const KNOWN_KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "base_url",
    "items_per_page",
    "app_id",
    "partner_id",
    "requests_per_minute",
    "employees_requests_per_minute",
    "employees_burst",
    "auth_requests_per_minute",
    "v2_token_requests_per_minute",
    "balance_scope",
    "max_concurrency",
    "request_timeout",
    "request_max_attempts",
    "request_backoff_factor",
    "request_max_retry_delay",
    "max_body_bytes",
    "credentials",
    "memory_limit",
    "temp_directory",
    "merge_chunk_rows",
    "load_during_extract",
    "early_load_memory_mib",
    "insert_memory_limit",
    "log_level",
    "merge_strategy",
    "hard_delete",
    "dedup_sort",
    "active_record_timestamp",
    "boundary_timestamp",
    "reconcile",
    "deletes",
];

/// Parse a `.dlt` file. The error names line, column and what is wrong, and quotes nothing of the file.
pub fn parse_toml(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
        let before = text.get(..at).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before.get(line_start..).map(|s| s.chars().count()).unwrap_or(0) + 1;
        let line_text = text.lines().nth(line - 1).unwrap_or("");
        ConfigError::Syntax { path: path.to_path_buf(), line, column, key: known_key_of(line_text), what: e.message().to_string() }
    })
}

/// A setting this program reads must be a single value: `client_secret = {…}` or
/// `request_timeout = [1, 2]` is refused instead of being turned into text or ignored.
/// (`credentials` may be a table, as dlt's destination credentials are.)
fn check_value_types(file: &'static str, path: &mut Vec<String>, table: &toml::Table) -> Result<(), ConfigError> {
    for (key, value) in table {
        path.push(key.clone());
        let known = KNOWN_KEYS.contains(&key.as_str()) && key != "credentials";
        match value {
            toml::Value::Table(_) | toml::Value::Array(_) if known => {
                let kind = if value.is_table() { "a TOML table" } else { "a TOML array" };
                return Err(ConfigError::Value {
                    key: path.join("."),
                    origin: Origin::File { file, path: path.join(".") },
                    problem: format!("is {kind}, not a single value (its content is not shown)"),
                    allowed: "one string, number or boolean: fix that key".into(),
                });
            }
            toml::Value::Table(inner) => check_value_types(file, path, inner)?,
            _ => {}
        }
        path.pop();
    }
    Ok(())
}

/// The key a `key = value` line sets, if it is one this program knows (an unknown name could be a
/// pasted secret, so it is not echoed).
fn known_key_of(line: &str) -> Option<&'static str> {
    let (left, _) = line.split_once('=')?;
    let last = left.trim().rsplit('.').next()?.trim().trim_matches(|c| c == '"' || c == '\'');
    KNOWN_KEYS.iter().copied().find(|k| *k == last)
}

/// Keys whose values are secrets wherever they are found (on top of the lookups that say so).
const SECRET_KEYS: &[&str] = &["client_secret", "client_id", "password", "token", "api_key", "private_key"];

/// Where configuration values come from. Every lookup is remembered ([`ConfigResolver::resolved_values`])
/// for the run's trace: which key was found where, secrets without their value.
#[derive(Debug, Default, Clone)]
pub struct ConfigResolver {
    env: HashMap<String, String>,
    secrets: toml::Table,
    config: toml::Table,
    resolved: Arc<Mutex<Vec<ConfigValue>>>,
}

impl ConfigResolver {
    /// Read `.dlt/secrets.toml` and `.dlt/config.toml` from `project_dir` and the process environment.
    pub fn load(project_dir: &Path) -> Result<Self, ConfigError> {
        let dlt_dir = project_dir.join(".dlt");
        let read = |name: &str| -> Result<toml::Table, ConfigError> {
            let path = dlt_dir.join(name);
            if !path.exists() {
                return Ok(toml::Table::new());
            }
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            let table = parse_toml(&path, &text)?;
            let file = if name == "secrets.toml" { "secrets.toml" } else { "config.toml" };
            check_value_types(file, &mut Vec::new(), &table)?;
            Ok(table)
        };
        Ok(ConfigResolver {
            env: std::env::vars().collect(),
            secrets: read("secrets.toml")?,
            config: read("config.toml")?,
            resolved: Arc::default(),
        })
    }

    /// A resolver over explicit values (tests).
    #[cfg(test)]
    pub fn from_parts(env: HashMap<String, String>, secrets: &str, config: &str) -> Result<Self, ConfigError> {
        Ok(ConfigResolver {
            env,
            secrets: parse_toml(Path::new(".dlt/secrets.toml"), secrets)?,
            config: parse_toml(Path::new(".dlt/config.toml"), config)?,
            resolved: Arc::default(),
        })
    }

    /// Key paths from the most specific to the most general, never shorter than one section.
    fn candidate_paths(sections: &[&str], key: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        // dlt also tries the section path with the source name repeated (sources.personio.personio.key).
        if let Some(last) = sections.last() {
            let mut p: Vec<String> = sections.iter().map(|s| s.to_string()).collect();
            p.push(last.to_string());
            p.push(key.to_string());
            out.push(p);
        }
        for n in (1..=sections.len()).rev() {
            let mut p: Vec<String> = sections[..n].iter().map(|s| s.to_string()).collect();
            p.push(key.to_string());
            out.push(p);
        }
        out
    }

    fn lookup_toml(table: &toml::Table, path: &[String]) -> Option<String> {
        let (last, parents) = path.split_last()?;
        let mut current = table;
        for part in parents {
            current = current.get(part)?.as_table()?;
        }
        match current.get(last)? {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// Resolve a value and say where it came from. `secret` values are not read from `config.toml`.
    pub fn get_with_origin(&self, sections: &[&str], key: &str, secret: bool) -> Option<(String, Origin)> {
        let found = self.find(sections, key, secret);
        self.remember(sections, key, secret, found.as_ref());
        found
    }

    fn find(&self, sections: &[&str], key: &str, secret: bool) -> Option<(String, Origin)> {
        let paths = Self::candidate_paths(sections, key);
        for p in &paths {
            let name = p.iter().map(|s| s.to_uppercase()).collect::<Vec<_>>().join("__");
            if let Some(v) = self.env.get(&name) {
                return Some((v.clone(), Origin::Env(name)));
            }
        }
        let files: &[(&'static str, &toml::Table)] =
            if secret { &[("secrets.toml", &self.secrets)] } else { &[("secrets.toml", &self.secrets), ("config.toml", &self.config)] };
        for (file, table) in files {
            for p in &paths {
                if let Some(v) = Self::lookup_toml(table, p) {
                    return Some((v, Origin::File { file, path: p.join(".") }));
                }
            }
        }
        None
    }

    /// Note a lookup for the trace (the first lookup of a key counts).
    fn remember(&self, sections: &[&str], key: &str, secret: bool, found: Option<&(String, Origin)>) {
        let is_secret = secret || SECRET_KEYS.contains(&key);
        let (provider, location, value) = match found {
            Some((v, Origin::Env(name))) => ("environment", Some(name.clone()), Some(v.clone())),
            Some((v, Origin::File { file, path })) => (*file, Some(path.clone()), Some(v.clone())),
            None => ("default", None, None),
        };
        let entry = ConfigValue {
            key: dotted(sections, key),
            provider: provider.to_string(),
            location,
            value: if is_secret { None } else { value },
            is_secret,
        };
        let mut seen = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.iter().any(|c| c.key == entry.key) {
            seen.push(entry);
        }
    }

    /// Note the default a key took when it was not set anywhere.
    fn remember_default(&self, sections: &[&str], key: &str, default: String) {
        let key = dotted(sections, key);
        let mut seen = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = seen.iter_mut().find(|c| c.key == key && c.provider == "default" && !c.is_secret) {
            c.value = Some(default);
        }
    }

    /// Every value looked up so far, in lookup order: where it was found (`environment`, `secrets.toml`,
    /// `config.toml`, or `default`) and its value, secrets without it. For the run's trace.
    pub fn resolved_values(&self) -> Vec<ConfigValue> {
        self.resolved.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolve a value. `secret` values are not read from `config.toml`.
    pub fn get(&self, sections: &[&str], key: &str, secret: bool) -> Option<String> {
        self.get_with_origin(sections, key, secret).map(|(v, _)| v)
    }

    /// A value at exactly `sections.key`, without dlt's fallback to shorter section paths (a per-resource
    /// setting must not be picked up from `[sources.personio]`): the environment variable
    /// (`SOURCES__PERSONIO__RESOURCES__EMPLOYEES__MERGE_STRATEGY`), then `secrets.toml`, then `config.toml`.
    pub fn get_exact(&self, sections: &[&str], key: &str) -> Option<(String, Origin)> {
        let mut path: Vec<String> = sections.iter().map(|s| s.to_string()).collect();
        path.push(key.to_string());
        let name = path.iter().map(|s| s.to_uppercase()).collect::<Vec<_>>().join("__");
        if let Some(v) = self.env.get(&name) {
            return Some((v.clone(), Origin::Env(name)));
        }
        for (file, table) in [("secrets.toml", &self.secrets), ("config.toml", &self.config)] {
            if let Some(v) = Self::lookup_toml(table, &path) {
                return Some((v, Origin::File { file, path: path.join(".") }));
            }
        }
        None
    }

    /// The keys of the table at `sections` in `secrets.toml` and `config.toml`, with where each was
    /// found (sub-tables included, each once).
    pub fn keys_of(&self, sections: &[&str]) -> Vec<(String, Origin)> {
        let mut out: Vec<(String, Origin)> = Vec::new();
        for (file, table) in [("secrets.toml", &self.secrets), ("config.toml", &self.config)] {
            let mut current = Some(table);
            for part in sections {
                current = current.and_then(|t| t.get(*part)).and_then(|v| v.as_table());
            }
            for key in current.map(|t| t.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                if !out.iter().any(|(k, _)| *k == key) {
                    let path = format!("{}.{key}", sections.join("."));
                    out.push((key, Origin::File { file, path }));
                }
            }
        }
        out
    }

    /// Whether `config.toml` sets this key (used to explain that secrets belong in `secrets.toml`).
    pub fn in_config_toml(&self, sections: &[&str], key: &str) -> bool {
        Self::candidate_paths(sections, key).iter().any(|p| Self::lookup_toml(&self.config, p).is_some())
    }

    /// A whole number in `min..=max`, `default` when unset.
    pub fn integer(&self, sections: &[&str], key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        match self.get_with_origin(sections, key, false) {
            None => {
                self.remember_default(sections, key, default.to_string());
                Ok(default)
            }
            Some((raw, origin)) => check_integer(&raw, min, max).map_err(|problem| ConfigError::Value {
                key: dotted(sections, key),
                origin,
                problem,
                allowed: format!("a whole number from {min} to {max}"),
            }),
        }
    }

    /// `true` or `false` (any case), `default` when unset.
    pub fn boolean(&self, sections: &[&str], key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get_with_origin(sections, key, false) {
            None => {
                self.remember_default(sections, key, default.to_string());
                Ok(default)
            }
            Some((raw, origin)) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ConfigError::Value {
                    key: dotted(sections, key),
                    origin,
                    problem: format!("{:?} is not a boolean", raw.trim()),
                    allowed: "true or false".to_string(),
                }),
            },
        }
    }

    /// A number of seconds in `min..=max` (`min_exclusive`: strictly above `min`), `default` when unset.
    pub fn seconds(&self, sections: &[&str], key: &str, default: Duration, bounds: SecondsBounds) -> Result<Duration, ConfigError> {
        match self.get_with_origin(sections, key, false) {
            None => {
                self.remember_default(sections, key, format!("{}", default.as_secs_f64()));
                Ok(default)
            }
            Some((raw, origin)) => check_seconds(&raw, bounds).map_err(|problem| ConfigError::Value {
                key: dotted(sections, key),
                origin,
                problem,
                allowed: bounds.to_string(),
            }),
        }
    }

    /// One of `allowed` (case-insensitive), `default` when unset.
    pub fn choice(&self, sections: &[&str], key: &str, default: &'static str, allowed: &[&'static str]) -> Result<&'static str, ConfigError> {
        match self.get_with_origin(sections, key, false) {
            None => {
                self.remember_default(sections, key, default.to_string());
                Ok(default)
            }
            Some((raw, origin)) => allowed.iter().copied().find(|a| a.eq_ignore_ascii_case(raw.trim())).ok_or_else(|| ConfigError::Value {
                key: dotted(sections, key),
                origin,
                problem: format!("is {}", quote(&raw)),
                allowed: allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

fn dotted(sections: &[&str], key: &str) -> String {
    let mut s = sections.join(".");
    s.push('.');
    s.push_str(key);
    s
}

/// A non-secret value for an error message, shortened.
fn quote(raw: &str) -> String {
    let short: String = raw.chars().take(40).collect();
    if short.len() < raw.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

/// Checks a whole number; the error says what is wrong with it.
pub fn check_integer(raw: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = raw.trim();
    match t.parse::<i128>() {
        Ok(n) if n < 0 => Err(format!("is {}, a negative number", quote(raw))),
        Ok(n) if n < i128::from(min) => Err(format!("is {}, below the minimum {min}", quote(raw))),
        Ok(n) if n > i128::from(max) => Err(format!("is {}, above the maximum {max}", quote(raw))),
        Ok(n) => u64::try_from(n).map_err(|_| format!("is {}, above the maximum {max}", quote(raw))),
        Err(_) => Err(format!("is {}, not a whole number", quote(raw))),
    }
}

/// Allowed range of a duration setting, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondsBounds {
    pub min: f64,
    pub min_exclusive: bool,
    pub max: f64,
}

impl fmt::Display for SecondsBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.min_exclusive { "above" } else { "from" };
        write!(f, "seconds (a finite number) {op} {} and at most {}", self.min, self.max)
    }
}

/// Checks a number of seconds; the error says what is wrong with it.
pub fn check_seconds(raw: &str, b: SecondsBounds) -> Result<Duration, String> {
    let t = raw.trim();
    let v: f64 = t.parse().map_err(|_| format!("is {}, not a number", quote(raw)))?;
    if !v.is_finite() {
        return Err(format!("is {}, not a finite number", quote(raw)));
    }
    if v < 0.0 {
        return Err(format!("is {}, a negative number", quote(raw)));
    }
    if v < b.min || (b.min_exclusive && v <= b.min) {
        return Err(format!("is {}, too small", quote(raw)));
    }
    if v > b.max {
        return Err(format!("is {}, above the maximum {}", quote(raw), b.max));
    }
    Duration::try_from_secs_f64(v).map_err(|_| format!("is {}, not a valid duration", quote(raw)))
}

/// The `.dlt/config.toml` written by `init`, in dlt's format.
pub fn init_config_toml(destination: &str) -> String {
    let mut s = String::from(
        "# put your configuration values here\n\n[runtime]\nlog_level=\"WARNING\"  # the system log level of dlt\n\n[sources.personio]\n# base_url = \"https://api.personio.de\"  # point at a sandbox: http://127.0.0.1:18080\nitems_per_page = 200\n",
    );
    if destination == "filesystem" {
        s.push_str("\n[destination.filesystem]\nbucket_url = \"bucket_url\" # please set me up!\n");
    }
    s
}

/// The `.dlt/secrets.toml` written by `init`, in dlt's format.
pub fn init_secrets_toml(destination: &str) -> String {
    let mut s = String::from(
        "# put your secret values and credentials here. do not share this file and do not push it to github\n\n[sources.personio]\nclient_id = \"client_id\" # please set me up!\nclient_secret = \"client_secret\" # please set me up!\n",
    );
    match destination {
        "postgres" => s.push_str(
            "\n[destination.postgres.credentials]\ndatabase = \"database\" # please set me up!\npassword = \"password\" # please set me up!\nusername = \"username\" # please set me up!\nhost = \"host\" # please set me up!\nport = 5432\nconnect_timeout = 15\n",
        ),
        "filesystem" => s.push_str(
            "\n[destination.filesystem.credentials]\n# for s3:// buckets (or the AWS_* environment variables):\n# aws_access_key_id = \"aws_access_key_id\"\n# aws_secret_access_key = \"aws_secret_access_key\"\n# region_name = \"eu-central-1\"\n# endpoint_url = \"https://s3.example.com\" # S3-compatible servers (http only to 127.0.0.1)\n",
        ),
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_beats_secrets_and_paths_go_from_specific_to_general() {
        let env = HashMap::from([("SOURCES__PERSONIO__CLIENT_SECRET".to_string(), "from-env".to_string())]);
        let r = ConfigResolver::from_parts(
            env,
            "[sources.personio]\nclient_id = \"id-secrets\"\nclient_secret = \"s\"\n[sources.personio.personio]\nitems_per_page = 50\n",
            "[sources]\nitems_per_page = 10\nclient_id = \"nope\"\n",
        )
        .unwrap();
        assert_eq!(r.get(&["sources", "personio"], "client_secret", true).as_deref(), Some("from-env"));
        assert_eq!(r.get(&["sources", "personio"], "client_id", true).as_deref(), Some("id-secrets"));
        assert_eq!(r.get(&["sources", "personio"], "items_per_page", false).as_deref(), Some("50"));
    }

    #[test]
    fn secrets_are_not_read_from_config_toml() {
        let r = ConfigResolver::from_parts(HashMap::new(), "", "[sources.personio]\nclient_secret = \"leak\"\nitems_per_page = 7\n").unwrap();
        assert_eq!(r.get(&["sources", "personio"], "client_secret", true), None);
        assert!(r.in_config_toml(&["sources", "personio"], "client_secret"));
        assert_eq!(r.get(&["sources", "personio"], "items_per_page", false).as_deref(), Some("7"));
    }

    #[test]
    fn generic_names_are_never_read() {
        let env: HashMap<String, String> = [("BASE_URL", "http://evil.test"), ("CLIENT_SECRET", "x"), ("CLIENT_ID", "y"), ("REQUEST_TIMEOUT", "-1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = ConfigResolver::from_parts(env, "client_id = \"top\"\n", "base_url = \"http://evil.test\"\n").unwrap();
        for key in ["base_url", "client_secret", "client_id"] {
            assert_eq!(r.get(&["sources", "personio"], key, key != "base_url"), None, "{key}");
        }
        assert_eq!(r.get(&["runtime"], "request_timeout", false), None);
        // The section-level name is read (dlt's `sources.<key>`).
        let env = HashMap::from([("SOURCES__BASE_URL".to_string(), "https://a.test".to_string())]);
        let r = ConfigResolver::from_parts(env, "", "").unwrap();
        let (v, origin) = r.get_with_origin(&["sources", "personio"], "base_url", false).unwrap();
        assert_eq!((v.as_str(), origin), ("https://a.test", Origin::Env("SOURCES__BASE_URL".into())));
    }

    #[test]
    fn syntax_errors_name_file_line_column_and_never_quote_the_file() {
        let secret = "s3cr3tVALUE";
        let cases = [
            format!("[sources.personio]\nclient_secret = {secret}\n"),
            format!("[sources.personio]\nclient_secret = \"{secret}\n"),
            format!("[sources.personio]\nclient_secret = \"{secret}\\q\"\n"),
            format!("[sources.personio]\nclient_secret = '{secret}' junk\n"),
            format!("[sources.personio]\nclient_secret = 12{secret}\n"),
            format!("[sources.personio]\nclient_secret = \"\"\"{secret}\n"),
            format!("[sources.personio]\n{secret}\n"),
            format!("[sources.personio]\n{secret} = \n"),
            format!("[sources.personio]\nclient_secret = [{secret}]\n"),
            format!("[sources.personio]\nclient_secret = {{a = {secret}}}\n"),
            format!("[sources.personio]\nclient_secret = tru{secret}\n"),
            format!("[sources.personio]\nclient_secret = \"a\"\nclient_secret = \"{secret}\"\n"),
        ];
        for text in &cases {
            let err = parse_toml(Path::new("/p/.dlt/secrets.toml"), text).expect_err(text);
            let msg = err.to_string();
            assert!(!msg.contains("s3cr3t"), "{msg}");
            assert!(msg.contains("/p/.dlt/secrets.toml") && msg.contains("line ") && msg.contains("column "), "{msg}");
        }
        let err = parse_toml(Path::new("s.toml"), &cases[0]).expect_err("bad");
        match &err {
            ConfigError::Syntax { line, column, key, .. } => assert_eq!((*line, *column, *key), (2, 17, Some("client_secret"))),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("string values must be quoted"), "{err}");
    }

    #[test]
    fn numbers_are_checked_with_the_key_the_problem_and_the_range() {
        let b = SecondsBounds { min: 0.0, min_exclusive: true, max: 3600.0 };
        for (raw, problem) in [("-1", "negative"), ("inf", "finite"), ("NaN", "finite"), ("1e400", "finite"), ("1e300", "maximum"), ("0", "small"), ("x", "not a number"), ("", "not a number")] {
            let e = check_seconds(raw, b).expect_err(raw);
            assert!(e.contains(problem), "{raw}: {e}");
        }
        assert_eq!(check_seconds(" 2.5 ", b), Ok(Duration::from_millis(2500)));
        for (raw, problem) in [("-1", "negative"), ("0", "minimum"), ("201", "maximum"), ("2.5", "whole"), ("99999999999999999999999999", "maximum"), ("ten", "whole")] {
            let e = check_integer(raw, 1, 200).expect_err(raw);
            assert!(e.contains(problem), "{raw}: {e}");
        }
        assert_eq!(check_integer("200", 1, 200), Ok(200));

        let env = HashMap::from([("RUNTIME__REQUEST_TIMEOUT".to_string(), "-1".to_string())]);
        let r = ConfigResolver::from_parts(env, "", "[sources.personio]\nitems_per_page = 0\nbalance_scope = \"nope\"\n").unwrap();
        let e = r.seconds(&["runtime"], "request_timeout", Duration::from_secs(60), b).expect_err("negative").to_string();
        assert!(e.contains("runtime.request_timeout") && e.contains("RUNTIME__REQUEST_TIMEOUT") && e.contains("negative") && e.contains("at most 3600"), "{e}");
        let e = r.integer(&["sources", "personio"], "items_per_page", 200, 1, 200).expect_err("zero").to_string();
        assert!(e.contains("sources.personio.items_per_page") && e.contains(".dlt/config.toml") && e.contains("from 1 to 200"), "{e}");
        let e = r.choice(&["sources", "personio"], "balance_scope", "employees", &["employees", "global"]).expect_err("choice").to_string();
        assert!(e.contains("`employees`, `global`"), "{e}");
        assert_eq!(r.integer(&["sources", "personio"], "requests_per_minute", 2000, 0, 100_000).ok(), Some(2000));
    }

    #[test]
    fn settings_that_are_tables_or_arrays_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".dlt")).expect("mkdir");
        for (file, text, key) in [
            ("secrets.toml", "[sources.personio.client_secret]\nvalue = \"s3cr3t-in-a-table\"\n", "sources.personio.client_secret"),
            ("config.toml", "[runtime]\nrequest_timeout = [1, 2]\n", "runtime.request_timeout"),
        ] {
            let other = if file == "secrets.toml" { "config.toml" } else { "secrets.toml" };
            let _ = std::fs::remove_file(dir.path().join(".dlt").join(other));
            std::fs::write(dir.path().join(".dlt").join(file), text).expect("write");
            let err = ConfigResolver::load(dir.path()).err().expect("refused").to_string();
            assert!(err.contains(key) && err.contains("not a single value"), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
            std::fs::remove_file(dir.path().join(".dlt").join(file)).expect("rm");
        }
        // credentials may be a table (dlt's destination credentials).
        std::fs::write(dir.path().join(".dlt/secrets.toml"), "[destination.postgres.credentials]\nhost = \"h\"\n").expect("write");
        assert!(ConfigResolver::load(dir.path()).is_ok());
    }

    #[test]
    fn init_files_parse_and_carry_dlt_keys() {
        for d in ["duckdb", "postgres", "filesystem"] {
            let s: toml::Table = init_secrets_toml(d).parse().unwrap();
            assert!(s["sources"]["personio"].get("client_id").is_some());
            let _: toml::Table = init_config_toml(d).parse().unwrap();
        }
        let pg: toml::Table = init_secrets_toml("postgres").parse().unwrap();
        assert_eq!(pg["destination"]["postgres"]["credentials"]["port"].as_integer(), Some(5432));
    }
}
