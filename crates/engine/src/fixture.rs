//! A source of fixed JSON records: for tests, the dlt parity check and benchmarks.
//!
//! A case folder holds `resources.json` (`[{"name", "primary_key", "write_disposition", "cursor",
//! "reconcile"}]`, `reconcile` an optional list of key fields) and one folder per run,
//! `run<N>/<resource>.json`, each a JSON array of records. A resource without a file in a run is not
//! selected in that run; an empty array is selected and yields nothing.
//!
//! Merge resources may also set dlt's merge options (see [`merge_hints`]): `merge_strategy`,
//! `hard_delete`, `dedup_sort`, `validity_column_names`, `active_record_timestamp`,
//! `boundary_timestamp`.
//!
//! A resource declaring a reconciliation gets its records' keys handed in as a complete key set like a
//! real source would: for free (0 requests) on a run without a cursor start value (it read everything),
//! else only when the reconciliation is due, as a "key listing" of one request per page — unless
//! [`FixtureSource::fail_keys`] makes that listing fail.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use crate::merge::MergeHints;
use crate::reconcile::{key_text, KeyOutcome, ReconcileSpec, Schedule};
use crate::schema::{MergeStrategy, SortOrder, WriteDisposition};

/// A source that yields the records it was given, in pages.
#[derive(Debug, Clone)]
pub struct FixtureSource {
    name: String,
    specs: Vec<ResourceSpec>,
    records: BTreeMap<String, Vec<Value>>,
    page_size: usize,
    calls: Arc<AtomicUsize>,
    failing_keys: Vec<String>,
}

impl FixtureSource {
    /// A source named `name` with these resources and no records yet.
    pub fn new(name: &str, specs: Vec<ResourceSpec>) -> Self {
        FixtureSource { name: name.to_string(), specs, records: BTreeMap::new(), page_size: 1000, calls: Arc::default(), failing_keys: Vec::new() }
    }

    /// Make the key listing of `resource` fail (its reconciliation is then incomplete: nothing deleted).
    pub fn fail_keys(&mut self, resource: &str) -> &mut Self {
        self.failing_keys.push(resource.to_string());
        self
    }

    /// Set a resource's records (replacing earlier ones).
    pub fn set(&mut self, resource: &str, records: Vec<Value>) -> &mut Self {
        self.records.insert(resource.to_string(), records);
        self
    }

    /// Set the page size.
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// How many times `extract` ran.
    pub fn extract_calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Load run `run` of a case folder; returns the source and the resources selected in that run.
    pub fn from_case_dir(dir: &Path, run: u32) -> Result<(Self, Vec<String>), String> {
        let read = |p: &Path| -> Result<Value, String> {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
        };
        let res = read(&dir.join("resources.json"))?;
        let mut specs = Vec::new();
        for r in res.as_array().ok_or("resources.json must be a list")? {
            let name = r.get("name").and_then(Value::as_str).ok_or("resource without name")?;
            let pk: Vec<String> = r
                .get("primary_key")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let wd: WriteDisposition = r
                .get("write_disposition")
                .and_then(Value::as_str)
                .unwrap_or("append")
                .parse()
                .map_err(|e: crate::schema::ParseWriteDispositionError| e.to_string())?;
            specs.push(ResourceSpec {
                name: name.to_string(),
                primary_key: pk,
                write_disposition: wd,
                cursor: r.get("cursor").and_then(Value::as_str).map(str::to_string),
                parent: None,
                merge: merge_hints(r).map_err(|e| format!("resources.json, resource `{name}`: {e}"))?,
                reconcile: r.get("reconcile").and_then(Value::as_array).map(|cols| ReconcileSpec {
                    columns: cols.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                    schedule: Schedule::Always,
                }),
            });
        }
        let mut source = FixtureSource::new("fixtures", specs.clone());
        let mut selected = Vec::new();
        let run_dir = dir.join(format!("run{run}"));
        for spec in &specs {
            let p = run_dir.join(format!("{}.json", spec.name));
            if p.exists() {
                let records = read(&p)?.as_array().cloned().ok_or_else(|| format!("{} must be a JSON array", p.display()))?;
                source.set(&spec.name, records);
                selected.push(spec.name.clone());
            }
        }
        Ok((source, selected))
    }
}

/// The merge options of one `resources.json` entry, as dlt's `write_disposition` dict and column hints
/// take them: `"merge_strategy": "delete-insert" | "upsert" | "scd2"`, `"hard_delete": "<field>"`,
/// `"dedup_sort": ["<field>", "asc" | "desc"]` (or just `"<field>"`: `desc`),
/// `"validity_column_names": ["<from>", "<to>"]`, `"active_record_timestamp"` and
/// `"boundary_timestamp"` as ISO date-times.
pub fn merge_hints(entry: &Value) -> Result<MergeHints, String> {
    let text = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
    let timestamp = |k: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        match text(k) {
            None => Ok(None),
            Some(t) => match crate::typed::parse_iso(&t) {
                Some(crate::typed::Iso::DateTime(d)) => Ok(Some(d)),
                Some(crate::typed::Iso::Date(d)) => Ok(Some(crate::typed::date_to_timestamp(d))),
                _ => Err(format!("{k} `{t}` is not an ISO date or date-time")),
            },
        }
    };
    let strategy = match text("merge_strategy") {
        Some(s) => s.parse::<MergeStrategy>().map_err(|e| e.to_string())?,
        None => MergeStrategy::default(),
    };
    let dedup_sort = match entry.get("dedup_sort") {
        None | Some(Value::Null) => None,
        Some(Value::String(col)) => Some((col.clone(), SortOrder::Desc)),
        Some(Value::Array(a)) => {
            let col = a.first().and_then(Value::as_str).ok_or("dedup_sort must be [\"<field>\", \"asc\"|\"desc\"]")?;
            let order = match a.get(1).and_then(Value::as_str) {
                Some("asc") => SortOrder::Asc,
                Some("desc") | None => SortOrder::Desc,
                Some(o) => return Err(format!("dedup_sort order `{o}`: expected asc or desc")),
            };
            Some((col.to_string(), order))
        }
        Some(_) => return Err("dedup_sort must be a field name or [\"<field>\", \"asc\"|\"desc\"]".into()),
    };
    let validity_column_names = match entry.get("validity_column_names").and_then(Value::as_array) {
        None => None,
        Some(a) => match (a.first().and_then(Value::as_str), a.get(1).and_then(Value::as_str), a.len()) {
            (Some(f), Some(t), 2) => Some((f.to_string(), t.to_string())),
            _ => return Err("validity_column_names must be two names".into()),
        },
    };
    Ok(MergeHints {
        strategy,
        hard_delete: text("hard_delete"),
        dedup_sort,
        validity_column_names,
        active_record_timestamp: timestamp("active_record_timestamp")?,
        boundary_timestamp: timestamp("boundary_timestamp")?,
    })
}

#[async_trait::async_trait]
impl Source for FixtureSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn resources(&self) -> Vec<ResourceSpec> {
        self.specs.clone()
    }

    async fn extract(&self, ctx: ExtractContext) -> Result<(), SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        for spec in &self.specs {
            if !ctx.is_selected(&spec.name) {
                continue;
            }
            let records = self.records.get(&spec.name).cloned().unwrap_or_default();
            let full_read = ctx.start_value(&spec.name).is_none();
            let wanted = ctx.reconcile_enabled(&spec.name) && (full_read || ctx.reconcile_due(&spec.name));
            if let Some(rc) = spec.reconcile.as_ref().filter(|_| wanted) {
                let requests = if full_read { 0 } else { records.len().div_ceil(self.page_size).max(1) as u64 };
                let outcome = if self.failing_keys.contains(&spec.name) {
                    KeyOutcome::Incomplete { reason: "the key listing failed (injected)".into(), requests }
                } else {
                    let keys = records
                        .iter()
                        .filter_map(|r| rc.columns.iter().map(|c| r.get(c).and_then(key_text)).collect::<Option<Vec<String>>>())
                        .collect();
                    KeyOutcome::Complete { keys, requests }
                };
                ctx.submit_keys(&spec.name, outcome);
            }
            for page in records.chunks(self.page_size) {
                let kept = ctx.filter(&spec.name, page.to_vec())?;
                ctx.emit(&spec.name, kept).await?;
            }
        }
        Ok(())
    }
}
