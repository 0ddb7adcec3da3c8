//! A source of fixed JSON records: for tests, the dlt parity check and benchmarks.
//!
//! A case folder holds `resources.json` (`[{"name", "primary_key", "write_disposition", "cursor"}]`) and
//! one folder per run, `run<N>/<resource>.json`, each a JSON array of records. A resource without a file
//! in a run is not selected in that run; an empty array is selected and yields nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use crate::schema::WriteDisposition;

/// A source that yields the records it was given, in pages.
#[derive(Debug, Clone)]
pub struct FixtureSource {
    name: String,
    specs: Vec<ResourceSpec>,
    records: BTreeMap<String, Vec<Value>>,
    page_size: usize,
    calls: Arc<AtomicUsize>,
}

impl FixtureSource {
    /// A source named `name` with these resources and no records yet.
    pub fn new(name: &str, specs: Vec<ResourceSpec>) -> Self {
        FixtureSource { name: name.to_string(), specs, records: BTreeMap::new(), page_size: 1000, calls: Arc::default() }
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
            for page in records.chunks(self.page_size) {
                let kept = ctx.filter(&spec.name, page.to_vec())?;
                ctx.emit(&spec.name, kept).await?;
            }
        }
        Ok(())
    }
}
