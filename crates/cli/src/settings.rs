//! Checked settings of a run, resolved from flags and configuration before anything starts: names, the
//! Personio endpoint and credentials, HTTP/retry numbers and pacing limits. Every problem is a
//! [`ConfigError`] or [`UsageError`] (exit code 2) that names the setting and never shows a secret.

use std::collections::BTreeMap;
use std::time::Duration;

use personio_client::{ClientConfig, ConcurrencyConfig, PacingConfig};
use pipeline_engine::merge::MergeHints;
use pipeline_engine::schema::{MergeStrategy, SortOrder};

use crate::commands::UsageError;
use crate::config::{ConfigError, ConfigResolver, Origin, SecondsBounds};

/// Pipeline name of a plain `run`.
pub const DEFAULT_PIPELINE: &str = "personio";
/// Pipeline name of `run --demo`: its own working directory and `personio_demo.duckdb`.
pub const DEMO_PIPELINE: &str = "personio_demo";
/// Dataset name when none is given.
pub const DEFAULT_DATASET: &str = "personio_data";

const SOURCE: [&str; 2] = ["sources", "personio"];
const RUNTIME: [&str; 1] = ["runtime"];

/// The client's accepted range of a duration setting (`ClientConfig::*_RANGE`), inclusive.
fn bounds((min, max): (Duration, Duration)) -> SecondsBounds {
    SecondsBounds { min: min.as_secs_f64(), min_exclusive: false, max: max.as_secs_f64() }
}

/// Upper bound of every per-minute pacing limit.
pub const MAX_PER_MINUTE: u64 = 1_000_000;

/// The pipeline and dataset names of a run: `--demo` gets its own pipeline unless one is named.
pub fn run_names(pipeline: Option<&str>, dataset: Option<&str>, demo: bool) -> (String, String) {
    let default_pipeline = if demo { DEMO_PIPELINE } else { DEFAULT_PIPELINE };
    (pipeline.unwrap_or(default_pipeline).to_string(), dataset.unwrap_or(DEFAULT_DATASET).to_string())
}

/// Checks both names with the engine's rule (no separators, no `..`, `A-Z a-z 0-9 _ -`; docs/errors.md).
pub fn check_names(pipeline: &str, dataset: &str) -> Result<(), pipeline_engine::pipeline::PipelineError> {
    pipeline_engine::pipeline::validate_name("pipeline", pipeline)?;
    pipeline_engine::pipeline::validate_name("dataset", dataset)
}

/// Where to find Personio and with which credentials.
pub struct Endpoint {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The configured Personio endpoint and credentials (`sources.personio.*`, sectioned names only).
pub fn endpoint(resolver: &ConfigResolver) -> Result<Endpoint, anyhow::Error> {
    let missing = |key: &str| {
        let mut msg = format!(
            "no Personio {key}: set {key} under [sources.personio] in .dlt/secrets.toml (run `personio-pipeline init`) or the environment variable SOURCES__PERSONIO__{}",
            key.to_uppercase()
        );
        if resolver.in_config_toml(&SOURCE, key) {
            msg.push_str(&format!(" ({key} in .dlt/config.toml is ignored: secrets belong in .dlt/secrets.toml)"));
        }
        UsageError(msg)
    };
    let client_id = resolver.get(&SOURCE, "client_id", true).ok_or_else(|| missing("client_id"))?;
    let client_secret = resolver.get(&SOURCE, "client_secret", true).ok_or_else(|| missing("client_secret"))?;
    let base_url = match resolver.get_with_origin(&SOURCE, "base_url", false) {
        Some((raw, origin)) => check_base_url(&raw, &origin)?,
        None => personio_client::DEFAULT_BASE_URL.to_string(),
    };
    Ok(Endpoint { base_url, client_id, client_secret })
}

/// Checks `base_url`: an `http(s)` URL with a host and no user name or password; plain `http` only to a
/// loopback host (a sandbox), since the client secret travels in the token request.
pub fn check_base_url(raw: &str, origin: &Origin) -> Result<String, ConfigError> {
    let value_error = |problem: String, allowed: &str| ConfigError::Value {
        key: "sources.personio.base_url".into(),
        origin: origin.clone(),
        problem,
        allowed: allowed.into(),
    };
    const ALLOWED: &str = "an https URL such as https://api.personio.de, or http://127.0.0.1:PORT for a local sandbox";
    let trimmed = raw.trim();
    let url = url::Url::parse(trimmed).map_err(|e| value_error(format!("is not a URL ({e})"), ALLOWED))?;
    let host = url.host().ok_or_else(|| value_error("has no host".into(), ALLOWED))?;
    let shown = format!("{}://{}", url.scheme(), host);
    if !url.username().is_empty() || url.password().is_some() {
        return Err(value_error(format!("({shown}) carries a user name or password"), "a URL without credentials; the client id and secret go in .dlt/secrets.toml"));
    }
    let loopback = match &host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(value_error(
                format!("is {shown}, plain http to a host that is not loopback (the client secret would travel unencrypted)"),
                ALLOWED,
            ))
        }
        other => return Err(value_error(format!("has the scheme {other:?}"), ALLOWED)),
    }
    Ok(trimmed.to_string())
}

/// Client configuration: endpoint, `app_id`/`partner_id`, dlt's `runtime.request_*` retry settings and
/// the pacing limits, every number checked.
pub fn client_config(resolver: &ConfigResolver, endpoint: Endpoint) -> Result<ClientConfig, ConfigError> {
    let mut c = ClientConfig::new(endpoint.client_id, endpoint.client_secret).with_base_url(endpoint.base_url);
    c.app_id = resolver.get(&SOURCE, "app_id", false);
    c.partner_id = resolver.get(&SOURCE, "partner_id", false);
    c.request_timeout = resolver.seconds(&RUNTIME, "request_timeout", c.request_timeout, bounds(ClientConfig::REQUEST_TIMEOUT_RANGE))?;
    let (lo, hi) = ClientConfig::MAX_ATTEMPTS_RANGE;
    let attempts = resolver.integer(&RUNTIME, "request_max_attempts", u64::from(c.max_attempts), u64::from(lo), u64::from(hi))?;
    c.max_attempts = u32::try_from(attempts).unwrap_or(hi);
    c.backoff_factor = resolver.seconds(&RUNTIME, "request_backoff_factor", c.backoff_factor, bounds(ClientConfig::BACKOFF_RANGE))?;
    c.max_retry_delay = resolver.seconds(&RUNTIME, "request_max_retry_delay", c.max_retry_delay, bounds(ClientConfig::RETRY_DELAY_RANGE))?;
    let (lo, hi) = ClientConfig::MAX_BODY_BYTES_RANGE;
    c.max_body_bytes = resolver.integer(&RUNTIME, "max_body_bytes", c.max_body_bytes, lo, hi)?;
    c.pacing = pacing(resolver, c.pacing)?;
    c.concurrency = concurrency(resolver, c.concurrency)?;
    Ok(c)
}

/// The adaptive concurrency cap, `max_concurrency` under `[sources.personio]` (or
/// `SOURCES__PERSONIO__MAX_CONCURRENCY`): 1 to 256, default 32. The starting limit is never above it.
pub fn concurrency(resolver: &ConfigResolver, defaults: ConcurrencyConfig) -> Result<ConcurrencyConfig, ConfigError> {
    let (lo, hi) = ConcurrencyConfig::RANGE;
    let max = resolver.integer(&SOURCE, "max_concurrency", defaults.max as u64, lo as u64, hi as u64)?;
    let max = usize::try_from(max).unwrap_or(hi);
    Ok(ConcurrencyConfig { max, initial: defaults.initial.min(max) })
}

/// Pacing limits from `[sources.personio]` (or `SOURCES__PERSONIO__*`); unset keys keep `defaults`
/// (Personio's published limits). `0` switches a per-minute limit off.
pub fn pacing(resolver: &ConfigResolver, defaults: PacingConfig) -> Result<PacingConfig, ConfigError> {
    let per_min = |key: &str, default: u32| -> Result<u32, ConfigError> {
        let v = resolver.integer(&SOURCE, key, u64::from(default), 0, MAX_PER_MINUTE)?;
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    };
    let mut p = defaults;
    p.global_per_min = per_min("requests_per_minute", p.global_per_min)?;
    p.employees_per_min = per_min("employees_requests_per_minute", p.employees_per_min)?;
    p.auth_per_min = per_min("auth_requests_per_minute", p.auth_per_min)?;
    p.v2_auth_per_min = per_min("v2_token_requests_per_minute", p.v2_auth_per_min)?;
    p.employees_burst_per_sec =
        u32::try_from(resolver.integer(&SOURCE, "employees_burst", u64::from(p.employees_burst_per_sec), 1, 10_000)?).unwrap_or(10_000);
    let default_scope = if p.balances_in_employees_limit { "employees" } else { "global" };
    p.balances_in_employees_limit = resolver.choice(&SOURCE, "balance_scope", default_scope, &["employees", "global"])? == "employees";
    Ok(p)
}

/// Keys of a per-resource settings table `[sources.personio.resources.<name>]`: the merge settings
/// read by [`resource_merge`], and `reconcile` / `deletes` of deletion detection (issue 12), which
/// read their own.
pub const RESOURCE_KEYS: &[&str] = &[
    "merge_strategy",
    "hard_delete",
    "dedup_sort",
    "validity_column_names",
    "active_record_timestamp",
    "boundary_timestamp",
    "reconcile",
    "deletes",
];

/// Per-resource merge settings under `[sources.personio.resources.<name>]` (or
/// `SOURCES__PERSONIO__RESOURCES__<NAME>__<KEY>`), dlt's merge options: `merge_strategy`
/// (`delete-insert`, `upsert`, `scd2`), `hard_delete` (a field), `dedup_sort` (`"<field>"` or
/// `"<field> asc|desc"`), and for scd2 `validity_column_names` (two names), `active_record_timestamp`
/// and `boundary_timestamp` (ISO dates or date-times). `resources` are the source's resource names; a
/// table for another name, or an unknown key, is refused. Whether the settings fit the resource is
/// checked by the pipeline.
pub fn resource_merge(resolver: &ConfigResolver, resources: &[String]) -> Result<BTreeMap<String, MergeHints>, ConfigError> {
    let base = ["sources", "personio", "resources"];
    for (name, origin) in resolver.keys_of(&base) {
        if !resources.contains(&name) {
            return Err(ConfigError::Value {
                key: format!("sources.personio.resources.{name}"),
                origin,
                problem: "names no resource of the personio source".into(),
                allowed: resources.join(", "),
            });
        }
        let sections = ["sources", "personio", "resources", name.as_str()];
        for (key, origin) in resolver.keys_of(&sections) {
            if !RESOURCE_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::Value {
                    key: format!("sources.personio.resources.{name}.{key}"),
                    origin,
                    problem: "is not a resource setting".into(),
                    allowed: RESOURCE_KEYS.join(", "),
                });
            }
        }
    }
    let mut out = BTreeMap::new();
    for name in resources {
        let sections = ["sources", "personio", "resources", name.as_str()];
        let value = |key: &str| resolver.get_exact(&sections, key);
        let bad = |key: &str, origin: Origin, problem: String, allowed: &str| ConfigError::Value {
            key: format!("sources.personio.resources.{name}.{key}"),
            origin,
            problem,
            allowed: allowed.to_string(),
        };
        let mut hints = MergeHints::default();
        if let Some((raw, origin)) = value("merge_strategy") {
            hints.strategy = raw.trim().parse::<MergeStrategy>().map_err(|_| bad("merge_strategy", origin, format!("is {raw:?}"), "`delete-insert`, `upsert`, `scd2`"))?;
        }
        if let Some((raw, origin)) = value("hard_delete") {
            let field = raw.trim();
            if field.is_empty() || field == "true" || field == "false" {
                return Err(bad("hard_delete", origin, format!("is {raw:?}"), "the name of the field that flags a deleted record, e.g. \"deleted_at\""));
            }
            hints.hard_delete = Some(field.to_string());
        }
        if let Some((raw, origin)) = value("dedup_sort") {
            let parts: Vec<&str> = raw.split_whitespace().collect();
            let order = match parts.get(1).map(|o| o.to_ascii_lowercase()) {
                None => Some(SortOrder::Desc),
                Some(o) if o == "desc" => Some(SortOrder::Desc),
                Some(o) if o == "asc" => Some(SortOrder::Asc),
                Some(_) => None,
            };
            match (parts.first(), order, parts.len()) {
                (Some(field), Some(order), 1 | 2) => hints.dedup_sort = Some((field.to_string(), order)),
                _ => return Err(bad("dedup_sort", origin, format!("is {raw:?}"), "\"<field>\", \"<field> desc\" or \"<field> asc\"")),
            }
        }
        if let Some((raw, origin)) = value("validity_column_names") {
            let names = string_list(&raw);
            match names.as_deref() {
                Some([from, to]) => hints.validity_column_names = Some((from.clone(), to.clone())),
                _ => return Err(bad("validity_column_names", origin, format!("is {raw}"), "two column names, e.g. [\"valid_from\", \"valid_to\"]")),
            }
        }
        for key in ["active_record_timestamp", "boundary_timestamp"] {
            if let Some((raw, origin)) = value(key) {
                let t = match pipeline_engine::typed::parse_iso(raw.trim()) {
                    Some(pipeline_engine::typed::Iso::DateTime(t)) => t,
                    Some(pipeline_engine::typed::Iso::Date(d)) => pipeline_engine::typed::date_to_timestamp(d),
                    _ => return Err(bad(key, origin, format!("is {raw:?}"), "an ISO date or date-time, e.g. \"9999-12-31\" or \"2024-08-21T12:15:00+00:00\"")),
                };
                if key == "active_record_timestamp" {
                    hints.active_record_timestamp = Some(t);
                } else {
                    hints.boundary_timestamp = Some(t);
                }
            }
        }
        if !hints.is_default() {
            out.insert(name.clone(), hints);
        }
    }
    Ok(out)
}

/// Deletion detection per resource (docs/deletions.md): `reconcile` (`always`, `never` or a duration
/// such as `7d`) and `deletes` (`hard` or `soft`) under `[sources.personio.resources.<name>]` (env
/// `SOURCES__PERSONIO__RESOURCES__<NAME>__RECONCILE`), or for every resource under `[sources.personio]`.
/// Returns the resources with either key set (the other one defaulting to the declared schedule or a hard
/// delete); the rest keep their declared defaults in the engine, where a destination that cannot
/// reconcile only warns about them, while a configured one is refused. Only resources that declare a
/// reconciliation are read; a value is checked even when the resource is not selected.
pub fn reconcile_policies(
    resolver: &ConfigResolver,
    specs: &[pipeline_engine::extract::ResourceSpec],
) -> Result<std::collections::BTreeMap<String, pipeline_engine::reconcile::ReconcilePolicy>, ConfigError> {
    use pipeline_engine::reconcile::{DeleteMode, ReconcilePolicy, Schedule};
    let mut out = std::collections::BTreeMap::new();
    for spec in specs {
        let Some(decl) = &spec.reconcile else { continue };
        let sections = ["sources", "personio", "resources", spec.name.as_str()];
        let value_error = |key: &str, origin, problem: String, allowed: &str| ConfigError::Value {
            key: format!("sources.personio.resources.{}.{key}", spec.name),
            origin,
            problem,
            allowed: allowed.into(),
        };
        let configured = |key| resolver.get_with_origin(&sections, key, false).is_some();
        if !configured("reconcile") && !configured("deletes") {
            continue;
        }
        let schedule = match resolver.get_with_origin(&sections, "reconcile", false) {
            None => decl.schedule,
            Some((raw, origin)) => raw.parse::<Schedule>().map_err(|e| {
                value_error("reconcile", origin, format!("is {:?}", e.0), "`always`, `never` or a duration such as `12h`, `1d`, `7d`, `2w` (1 minute to 3650 days)")
            })?,
        };
        let deletes = match resolver.get_with_origin(&sections, "deletes", false) {
            None => DeleteMode::Hard,
            Some((raw, origin)) => raw.parse::<DeleteMode>().map_err(|problem| value_error("deletes", origin, problem, "`hard` (delete the rows) or `soft` (keep them with `_dlt_deleted_at` set)"))?,
        };
        out.insert(spec.name.clone(), ReconcilePolicy { schedule, deletes });
    }
    Ok(out)
}

/// A TOML array of strings as the resolver renders it (`["a", "b"]`), or a comma-separated list (an
/// environment variable).
fn string_list(raw: &str) -> Option<Vec<String>> {
    let t = raw.trim();
    if t.starts_with('[') {
        let table: toml::Table = format!("v = {t}").parse().ok()?;
        return table.get("v")?.as_array()?.iter().map(|v| v.as_str().map(str::to_string)).collect();
    }
    Some(t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// `items_per_page` (dlt's name): 1 to 200, the largest page any endpoint serves.
pub fn items_per_page(resolver: &ConfigResolver) -> Result<u32, ConfigError> {
    Ok(u32::try_from(resolver.integer(&SOURCE, "items_per_page", 200, 1, 200)?).unwrap_or(200))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolver(env: &[(&str, &str)], secrets: &str, config: &str) -> ConfigResolver {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
        ConfigResolver::from_parts(env, secrets, config).expect("valid toml")
    }

    #[test]
    fn demo_names_are_its_own_unless_named() {
        assert_eq!(run_names(None, None, true), ("personio_demo".to_string(), "personio_data".to_string()));
        assert_eq!(run_names(None, None, false), ("personio".to_string(), "personio_data".to_string()));
        assert_eq!(run_names(Some("mine"), Some("ds"), true), ("mine".to_string(), "ds".to_string()));
    }

    #[test]
    fn names_that_would_be_paths_are_refused() {
        assert!(check_names("personio_demo", "personio_data").is_ok());
        for (p, d) in [("../../escape", "d"), ("a/b", "d"), ("p", ".."), ("p", "x;drop"), ("", "d"), ("p", "a\\b")] {
            assert!(check_names(p, d).is_err(), "{p} {d}");
        }
    }

    #[test]
    fn base_url_https_or_loopback_http_only() {
        let o = Origin::Env("SOURCES__PERSONIO__BASE_URL".into());
        for ok in ["https://api.personio.de", "https://api.personio.de/", "http://127.0.0.1:18080", "http://localhost:1", "http://[::1]:8080", "http://127.1.2.3"] {
            assert!(check_base_url(ok, &o).is_ok(), "{ok}");
        }
        for (bad, what) in [
            ("http://api.personio.de", "plain http"),
            ("http://evil.com\\@127.0.0.1/", "plain http"),
            ("http://10.0.0.1:80", "plain http"),
            ("https://user:pw@api.personio.de", "user name or password"),
            ("ftp://api.personio.de", "scheme"),
            ("api.personio.de", "not a URL"),
            ("file:///etc/passwd", "host"),
        ] {
            let e = check_base_url(bad, &o).expect_err(bad).to_string();
            assert!(e.contains(what) && e.contains("SOURCES__PERSONIO__BASE_URL"), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn merge_settings_per_resource() {
        let names: Vec<String> = ["employees", "absences", "absence_types"].iter().map(|s| s.to_string()).collect();
        let none = resource_merge(&resolver(&[], "", ""), &names).expect("no settings");
        assert!(none.is_empty());
        let config = "[sources.personio]\nmerge_strategy = \"upsert\"\n\
            [sources.personio.resources.employees]\nmerge_strategy = \"scd2\"\nvalidity_column_names = [\"valid_from\", \"valid_to\"]\nactive_record_timestamp = \"9999-12-31\"\n\
            [sources.personio.resources.absences]\nhard_delete = \"deleted_at\"\ndedup_sort = \"updated_at asc\"\n";
        let m = resource_merge(&resolver(&[], "", config), &names).expect("valid");
        let e = &m["employees"];
        assert_eq!(e.strategy, MergeStrategy::Scd2);
        assert_eq!(e.validity_column_names, Some(("valid_from".to_string(), "valid_to".to_string())));
        assert_eq!(e.active_record_timestamp.map(|t| t.to_rfc3339()), Some("9999-12-31T00:00:00+00:00".to_string()));
        let a = &m["absences"];
        assert_eq!((a.strategy, a.hard_delete.as_deref()), (MergeStrategy::DeleteInsert, Some("deleted_at")), "never read from [sources.personio]");
        assert_eq!(a.dedup_sort, Some(("updated_at".to_string(), SortOrder::Asc)));
        assert!(!m.contains_key("absence_types"));
        let env = resolver(&[("SOURCES__PERSONIO__RESOURCES__ABSENCES__MERGE_STRATEGY", "upsert")], "", "");
        assert_eq!(resource_merge(&env, &names).expect("env")["absences"].strategy, MergeStrategy::Upsert);
        for (config, key, problem) in [
            ("[sources.personio.resources.employes]\nmerge_strategy = \"scd2\"\n", "sources.personio.resources.employes", "names no resource"),
            ("[sources.personio.resources.employees]\nmerge_stratgy = \"scd2\"\n", "merge_stratgy", "not a resource setting"),
            ("[sources.personio.resources.employees]\nmerge_strategy = \"scd3\"\n", "merge_strategy", "delete-insert"),
            ("[sources.personio.resources.employees]\ndedup_sort = \"a b c\"\n", "dedup_sort", "<field> asc"),
            ("[sources.personio.resources.employees]\nhard_delete = true\n", "hard_delete", "deleted_at"),
            ("[sources.personio.resources.employees]\nvalidity_column_names = [\"a\"]\n", "validity_column_names", "two column names"),
            ("[sources.personio.resources.employees]\nactive_record_timestamp = \"soon\"\n", "active_record_timestamp", "ISO date"),
        ] {
            let e = resource_merge(&resolver(&[], "", config), &names).expect_err(config).to_string();
            assert!(e.contains(key) && e.contains(problem), "{config}: {e}");
        }
    }

    #[test]
    fn credentials_are_read_only_from_sectioned_names() {
        let r = resolver(&[("CLIENT_ID", "a"), ("CLIENT_SECRET", "b"), ("BASE_URL", "http://evil.test")], "", "");
        let e = endpoint(&r).err().expect("generic names are not read").to_string();
        assert!(e.contains("no Personio client_id"), "{e}");
        let r = resolver(&[("SOURCES__PERSONIO__CLIENT_ID", "a"), ("SOURCES__PERSONIO__CLIENT_SECRET", "b"), ("BASE_URL", "http://evil.test")], "", "");
        assert_eq!(endpoint(&r).expect("sectioned").base_url, "https://api.personio.de");
        let r = resolver(&[("SOURCES__PERSONIO__BASE_URL", "http://evil.test")], "[sources.personio]\nclient_id=\"a\"\nclient_secret=\"b\"\n", "");
        assert!(endpoint(&r).is_err());
        let r = resolver(&[], "[sources.personio]\nclient_id=\"a\"\n", "[sources.personio]\nclient_secret=\"b\"\n");
        let e = endpoint(&r).err().expect("secret in config.toml is ignored").to_string();
        assert!(e.contains("client_secret") && e.contains("ignored") && !e.contains("\"b\""), "{e}");
    }

    #[test]
    fn runtime_and_pacing_numbers_are_validated_and_applied() {
        let ep = || Endpoint { base_url: "https://api.personio.de".into(), client_id: "i".into(), client_secret: "s".into() };
        for (k, v) in [
            ("RUNTIME__REQUEST_TIMEOUT", "-1"),
            ("RUNTIME__REQUEST_TIMEOUT", "inf"),
            ("RUNTIME__REQUEST_BACKOFF_FACTOR", "1e300"),
            ("RUNTIME__REQUEST_MAX_RETRY_DELAY", "NaN"),
            ("RUNTIME__REQUEST_MAX_ATTEMPTS", "0"),
            ("SOURCES__PERSONIO__REQUESTS_PER_MINUTE", "-5"),
            ("SOURCES__PERSONIO__EMPLOYEES_REQUESTS_PER_MINUTE", "lots"),
            ("SOURCES__PERSONIO__EMPLOYEES_BURST", "0"),
            ("SOURCES__PERSONIO__BALANCE_SCOPE", "all"),
            ("SOURCES__PERSONIO__MAX_CONCURRENCY", "0"),
            ("SOURCES__PERSONIO__MAX_CONCURRENCY", "1000"),
            ("SOURCES__PERSONIO__V2_TOKEN_REQUESTS_PER_MINUTE", "-1"),
        ] {
            let e = client_config(&resolver(&[(k, v)], "", ""), ep()).expect_err(k).to_string();
            assert!(e.contains(k) && e.contains("allowed"), "{e}");
        }
        let r = resolver(
            &[("RUNTIME__REQUEST_TIMEOUT", "2.5"), ("SOURCES__PERSONIO__EMPLOYEES_REQUESTS_PER_MINUTE", "600")],
            "",
            "[runtime]\nrequest_max_attempts = 3\n[sources.personio]\nrequests_per_minute = 1000\nemployees_burst = 20\nauth_requests_per_minute = 0\nbalance_scope = \"global\"\nmax_concurrency = 2\nv2_token_requests_per_minute = 100\n",
        );
        let c = client_config(&r, ep()).expect("valid");
        assert_eq!(c.request_timeout, Duration::from_millis(2500));
        assert_eq!(c.max_attempts, 3);
        assert_eq!((c.pacing.global_per_min, c.pacing.employees_per_min, c.pacing.employees_burst_per_sec, c.pacing.auth_per_min), (1000, 600, 20, 0));
        assert!(!c.pacing.balances_in_employees_limit);
        assert_eq!(c.pacing.v2_auth_per_min, 100);
        assert_eq!(c.concurrency, ConcurrencyConfig { max: 2, initial: 2 });
        // Unset: Personio's published limits.
        let d = client_config(&resolver(&[], "", ""), ep()).expect("defaults");
        assert_eq!(d.pacing, PacingConfig::default());
        assert_eq!(d.concurrency, ConcurrencyConfig::default());
        assert_eq!(items_per_page(&resolver(&[], "", "")).ok(), Some(200));
        assert!(items_per_page(&resolver(&[("SOURCES__PERSONIO__ITEMS_PER_PAGE", "0")], "", "")).is_err());
    }

    #[test]
    fn reconcile_settings_per_resource_over_source_defaults() {
        use pipeline_engine::extract::ResourceSpec;
        use pipeline_engine::reconcile::{DeleteMode, Schedule};
        use pipeline_engine::schema::WriteDisposition::Merge;
        let week = Schedule::Every(chrono::Duration::days(7));
        let specs = vec![
            ResourceSpec::new("absences", &["id"], Merge).with_reconcile(&["id"], week),
            ResourceSpec::new("employees", &["id"], Merge).with_reconcile(&["id"], Schedule::Always),
            ResourceSpec::new("plain", &["id"], Merge),
        ];
        assert!(reconcile_policies(&resolver(&[], "", ""), &specs).expect("defaults").is_empty(), "nothing configured");
        let d = reconcile_policies(&resolver(&[("SOURCES__PERSONIO__DELETES", "soft")], "", ""), &specs).expect("valid");
        assert_eq!((d["absences"].schedule, d["absences"].deletes), (week, DeleteMode::Soft), "the declared schedule");
        assert!(!d.contains_key("plain"), "no declaration, no setting");
        let r = resolver(
            &[("SOURCES__PERSONIO__RESOURCES__EMPLOYEES__DELETES", "soft")],
            "",
            "[sources.personio]\nreconcile = \"never\"\n[sources.personio.resources.absences]\nreconcile = \"1d\"\n",
        );
        let p = reconcile_policies(&r, &specs).expect("valid");
        assert_eq!(p["absences"].schedule, Schedule::Every(chrono::Duration::days(1)));
        assert_eq!((p["employees"].schedule, p["employees"].deletes), (Schedule::Never, DeleteMode::Soft), "source-wide value, env per resource");
        for (k, v, key) in [
            ("SOURCES__PERSONIO__RESOURCES__ABSENCES__RECONCILE", "weekly", "sources.personio.resources.absences.reconcile"),
            ("SOURCES__PERSONIO__RESOURCES__ABSENCES__DELETES", "archive", "sources.personio.resources.absences.deletes"),
        ] {
            let e = reconcile_policies(&resolver(&[(k, v)], "", ""), &specs).expect_err(v).to_string();
            assert!(e.contains(key) && e.contains(k) && e.contains("allowed"), "{e}");
        }
    }
}
