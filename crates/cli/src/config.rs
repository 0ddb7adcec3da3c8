//! dlt-style configuration: environment variables, then `.dlt/secrets.toml`, then `.dlt/config.toml`.
//!
//! A key such as `client_id` of section `sources.personio` is looked up, in each provider in turn, under
//! `sources.personio.personio.client_id`, `sources.personio.client_id`, `sources.client_id` and
//! `client_id`; the first hit wins. Environment variables spell the path in upper case joined by `__`
//! (`SOURCES__PERSONIO__CLIENT_ID`). Secrets are never read from `config.toml`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

/// Where configuration values come from.
#[derive(Debug, Default, Clone)]
pub struct ConfigResolver {
    env: HashMap<String, String>,
    secrets: toml::Table,
    config: toml::Table,
}

impl ConfigResolver {
    /// Read `.dlt/secrets.toml` and `.dlt/config.toml` from `project_dir` and the process environment.
    pub fn load(project_dir: &Path) -> Result<Self> {
        let dlt_dir = project_dir.join(".dlt");
        let read = |name: &str| -> Result<toml::Table> {
            let path = dlt_dir.join(name);
            if !path.exists() {
                return Ok(toml::Table::new());
            }
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            text.parse::<toml::Table>().with_context(|| format!("{} is not valid TOML", path.display()))
        };
        Ok(ConfigResolver { env: std::env::vars().collect(), secrets: read("secrets.toml")?, config: read("config.toml")? })
    }

    /// A resolver over explicit values (tests).
    #[cfg(test)]
    pub fn from_parts(env: HashMap<String, String>, secrets: &str, config: &str) -> Result<Self> {
        Ok(ConfigResolver {
            env,
            secrets: secrets.parse().context("secrets")?,
            config: config.parse().context("config")?,
        })
    }

    fn candidate_paths(sections: &[&str], key: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        // dlt also tries the section path with the source name repeated (sources.personio.personio.key).
        if let Some(last) = sections.last() {
            let mut p: Vec<String> = sections.iter().map(|s| s.to_string()).collect();
            p.push(last.to_string());
            p.push(key.to_string());
            out.push(p);
        }
        for n in (0..=sections.len()).rev() {
            let mut p: Vec<String> = sections[..n].iter().map(|s| s.to_string()).collect();
            p.push(key.to_string());
            out.push(p);
        }
        out
    }

    fn lookup_toml(table: &toml::Table, path: &[String]) -> Option<String> {
        let mut node: Option<&toml::Value> = None;
        let mut current = table;
        for (i, part) in path.iter().enumerate() {
            let v = current.get(part)?;
            if i + 1 == path.len() {
                node = Some(v);
            } else {
                current = v.as_table()?;
            }
        }
        match node? {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// Resolve a value. `secret` values are not read from `config.toml`.
    pub fn get(&self, sections: &[&str], key: &str, secret: bool) -> Option<String> {
        let paths = Self::candidate_paths(sections, key);
        for p in &paths {
            let name = p.iter().map(|s| s.to_uppercase()).collect::<Vec<_>>().join("__");
            if let Some(v) = self.env.get(&name) {
                return Some(v.clone());
            }
        }
        for p in &paths {
            if let Some(v) = Self::lookup_toml(&self.secrets, p) {
                return Some(v);
            }
        }
        if !secret {
            for p in &paths {
                if let Some(v) = Self::lookup_toml(&self.config, p) {
                    return Some(v);
                }
            }
        }
        None
    }
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
        "filesystem" => s.push_str("\n[destination.filesystem.credentials]\n# credentials of the bucket, if any\n"),
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
        assert_eq!(r.get(&["sources", "personio"], "items_per_page", false).as_deref(), Some("7"));
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
