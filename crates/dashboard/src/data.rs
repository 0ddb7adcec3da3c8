//! What a page reads: the working directory (through the engine) and the dataset (through a reader).

use std::collections::BTreeMap;
use std::path::PathBuf;

use pipeline_destinations::read::DatasetReader;
use pipeline_engine::package::{pending_packages, LoadPackage};
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, PipelineError};
use pipeline_engine::schema::Schema;
use pipeline_engine::state::PipelineState;
use serde_json::Value;

use crate::App;

/// A package of the working directory: its load id and rows per table.
#[derive(Debug, Clone)]
pub struct PackageRows {
    /// Load id.
    pub load_id: String,
    /// Rows per table, in schema order.
    pub tables: Vec<(String, u64)>,
}

/// The working directory as the engine sees it.
#[derive(Debug, Default)]
pub struct Local {
    /// `<pipelines_dir>/<name>`.
    pub workdir: PathBuf,
    /// Whether it exists.
    pub exists: bool,
    /// Why state, schema or trace could not be read (a run holding the lock, unreadable files).
    pub problem: Option<String>,
    /// The local state mirror.
    pub state: Option<PipelineState>,
    /// The local schema.
    pub schema: Option<Schema>,
    /// The last run's trace.
    pub trace: Option<Value>,
    /// Complete packages not loaded yet.
    pub pending: Vec<PackageRows>,
    /// Rows per table of packages already loaded, by load id (their manifests are kept).
    pub loaded: BTreeMap<String, Vec<(String, u64)>>,
}

impl Local {
    /// Read the working directory. Never creates it; takes the pipeline lock only while reading.
    pub fn read(app: &App) -> Local {
        let c = &app.config;
        let workdir = c.pipelines_dir.join(&c.pipeline_name);
        let mut local = Local { exists: workdir.is_dir(), workdir, ..Local::default() };
        if !local.exists {
            return local;
        }
        let load_root = local.workdir.join("load");
        match pending_packages(&load_root) {
            Ok(p) => local.pending = p.iter().map(package_rows).collect(),
            Err(e) => local.problem = Some(format!("pending packages: {e}")),
        }
        if let Ok(entries) = std::fs::read_dir(load_root.join("loaded")) {
            for entry in entries.flatten() {
                if let Ok(p) = LoadPackage::open(&entry.path()) {
                    let rows = package_rows(&p);
                    local.loaded.insert(rows.load_id, rows.tables);
                }
            }
        }
        match Pipeline::open(PipelineConfig::new(&c.pipeline_name, &c.dataset_name, &c.pipelines_dir)) {
            Ok(p) => {
                match p.local_state() {
                    Ok(s) => local.state = s,
                    Err(e) => local.problem = Some(e.to_string()),
                }
                match p.local_schema(&c.schema_name) {
                    Ok(s) => local.schema = s,
                    Err(e) => local.problem = Some(e.to_string()),
                }
                local.trace = p.last_trace();
            }
            Err(PipelineError::Locked { pid, .. }) => {
                local.problem = Some(format!(
                    "a run is in progress (PID {pid} holds the pipeline lock): local state, schema and trace are shown once it finishes; reload the page"
                ));
            }
            Err(e) => local.problem = Some(e.to_string()),
        }
        local
    }
}

fn package_rows(p: &LoadPackage) -> PackageRows {
    PackageRows { load_id: p.load_id().to_string(), tables: p.manifest().tables.iter().map(|(t, j)| (t.clone(), j.rows)).collect() }
}

/// The dataset, opened read-only for one request.
pub struct Remote {
    /// The open reader, or why it could not be opened.
    pub reader: Result<Box<dyn DatasetReader>, String>,
}

impl Remote {
    /// Open the dataset.
    pub fn open(app: &App) -> Remote {
        Remote { reader: (app.reader)().map_err(|e| e.to_string()) }
    }
}

/// Cursor and state of one resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceState {
    /// Cursor field and its state (`last_value`, `initial_value`, `unique_hashes`, …).
    pub cursors: Vec<(String, serde_json::Map<String, Value>)>,
    /// Everything else the resource stores.
    pub other: serde_json::Map<String, Value>,
}

/// Resources of every source in a state document: (source, resource) → state.
pub fn resources(doc: &serde_json::Map<String, Value>) -> BTreeMap<(String, String), ResourceState> {
    let mut out = BTreeMap::new();
    let Some(sources) = doc.get("sources").and_then(Value::as_object) else { return out };
    for (source, s) in sources {
        let Some(res) = s.get("resources").and_then(Value::as_object) else { continue };
        for (name, r) in res {
            let Some(r) = r.as_object() else { continue };
            let mut rs = ResourceState::default();
            for (k, v) in r {
                if k == "incremental" {
                    if let Some(inc) = v.as_object() {
                        for (cursor, c) in inc {
                            rs.cursors.push((cursor.clone(), c.as_object().cloned().unwrap_or_default()));
                        }
                    }
                } else {
                    rs.other.insert(k.clone(), v.clone());
                }
            }
            out.insert((source.clone(), name.clone()), rs);
        }
    }
    out
}

/// A JSON value as short display text: strings without quotes and without dlt's type mark
/// (`U+F026`–`U+F02F` before a timestamp, date or decimal).
pub fn show_value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".to_string(),
        Some(Value::String(s)) => s.trim_start_matches(|c| ('\u{F020}'..='\u{F02F}').contains(&c)).to_string(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_split_cursors_from_other_state() {
        let doc = serde_json::json!({"sources": {"personio": {"resources": {
            "employees": {"incremental": {"last_modified_at": {"last_value": "\u{F027}2024-01-01T00:00:00+00:00", "unique_hashes": ["a"]}}},
            "employees_absences_balance": {"seen_employees": {"1": "x"}}
        }}}});
        let doc = doc.as_object().cloned().unwrap_or_default();
        let r = resources(&doc);
        let e = &r[&("personio".to_string(), "employees".to_string())];
        assert_eq!(e.cursors[0].0, "last_modified_at");
        assert_eq!(show_value(e.cursors[0].1.get("last_value")), "2024-01-01T00:00:00+00:00");
        let b = &r[&("personio".to_string(), "employees_absences_balance".to_string())];
        assert!(b.cursors.is_empty() && b.other.contains_key("seen_employees"));
    }
}
