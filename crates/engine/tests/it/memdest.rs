//! An in-memory destination and a parent/child test source, for state and refresh tests without DuckDB.
//!
//! The destination applies a package like a transaction (on a copy, committed at the end), keeps rows by
//! primary key, and records whether it is connected, so tests can check what the engine does between
//! loads.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::util::display::array_value_to_string;
use pipeline_engine::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use pipeline_engine::load::{Destination, DestinationError, LoadInfo, LoadReport, StoredState, TableInfo};
use pipeline_engine::package::LoadPackage;
use pipeline_engine::schema::{Schema, WriteDisposition};
use pipeline_engine::state::StateRow;
use serde_json::{json, Value};

/// Everything the destination holds.
#[derive(Debug, Clone, Default)]
pub struct Data {
    /// table → row key → load id.
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    pub state_rows: Vec<(StateRow, String)>,
    pub schemas: Vec<Schema>,
    pub loads: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    data: Data,
    connected: bool,
    fail_loads: usize,
}

/// A shared handle: clones see the same destination.
#[derive(Debug, Clone)]
pub struct MemDestination {
    inner: Arc<Mutex<Inner>>,
    identity: String,
}

impl MemDestination {
    pub fn new(identity: &str) -> Self {
        MemDestination { inner: Arc::default(), identity: identity.to_string() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn data(&self) -> Data {
        self.lock().data.clone()
    }

    pub fn is_connected(&self) -> bool {
        self.lock().connected
    }

    /// Row keys of a table (sorted), `None` if it does not exist.
    pub fn keys(&self, table: &str) -> Option<Vec<String>> {
        self.lock().data.tables.get(table).map(|t| t.keys().cloned().collect())
    }

    /// Rows of a table loaded by `load_id`.
    pub fn rows_of_load(&self, table: &str, load_id: &str) -> usize {
        self.lock().data.tables.get(table).map(|t| t.values().filter(|l| *l == load_id).count()).unwrap_or(0)
    }

    /// Drop a table behind the engine's back (a user's `DROP TABLE`).
    pub fn remove_table(&self, table: &str) {
        self.lock().data.tables.remove(table);
    }

    /// Fail the next `n` package loads.
    pub fn fail_next_loads(&self, n: usize) {
        self.lock().fail_loads = n;
    }

    fn connect(&self) {
        self.lock().connected = true;
    }
}

fn key_of(batch: &arrow::record_batch::RecordBatch, row: usize, pk: &[&str]) -> String {
    let cols: Vec<&str> = if pk.is_empty() { vec!["_dlt_id"] } else { pk.to_vec() };
    cols.iter()
        .map(|c| batch.column_by_name(c).map(|a| array_value_to_string(a, row).unwrap_or_default()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("|")
}

impl Destination for MemDestination {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn destination_type(&self) -> &'static str {
        "test.memory"
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn disconnect(&mut self) {
        self.lock().connected = false;
    }

    fn health_check(&mut self) -> Result<(), DestinationError> {
        self.connect();
        Ok(())
    }

    fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        self.connect();
        let inner = self.lock();
        Ok(inner
            .data
            .state_rows
            .iter()
            .rev()
            .find(|(row, load_id)| row.pipeline_name == pipeline_name && inner.data.loads.contains(load_id))
            .map(|(row, load_id)| StoredState { row: row.clone(), load_id: load_id.clone() }))
    }

    fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        self.connect();
        Ok(self.lock().data.schemas.iter().rev().find(|s| s.name == schema_name).cloned())
    }

    fn is_loaded(&mut self, load_id: &str) -> Result<bool, DestinationError> {
        self.connect();
        Ok(self.lock().data.loads.iter().any(|l| l == load_id))
    }

    fn load_package(&mut self, package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        self.connect();
        let mut inner = self.lock();
        if inner.fail_loads > 0 {
            inner.fail_loads -= 1;
            return Err(DestinationError::new("memory", "injected load failure"));
        }
        let m = package.manifest();
        let mut data = inner.data.clone();
        for t in &m.drop_tables {
            data.tables.remove(t);
        }
        for t in m.schema.tables.values().filter(|t| !t.columns.is_empty()) {
            data.tables.entry(t.name.clone()).or_default();
        }
        for root in &m.replace_roots {
            for t in m.schema.table_chain(root) {
                if let Some(rows) = data.tables.get_mut(&t.name) {
                    rows.clear();
                }
            }
        }
        let mut report = LoadReport::default();
        for (table, job) in &m.tables {
            let pk: Vec<&str> = match m.schema.disposition_of(table) {
                WriteDisposition::Merge => m.schema.tables.get(table).map(|t| t.primary_key()).unwrap_or_default(),
                _ => Vec::new(),
            };
            let rows = data.tables.entry(table.clone()).or_default();
            for batch in package.batches(table).map_err(DestinationError::from)? {
                for i in 0..batch.num_rows() {
                    rows.insert(key_of(&batch, i, &pk), m.load_id.clone());
                }
            }
            report.rows.push((table.clone(), job.rows));
        }
        if let Some(state) = &m.state {
            data.state_rows.push((state.clone(), m.load_id.clone()));
        }
        data.schemas.push(m.schema.clone());
        data.loads.push(m.load_id.clone());
        inner.data = data;
        Ok(report)
    }

    fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
        self.connect();
        Ok(self.lock().data.tables.iter().map(|(name, rows)| TableInfo { name: name.clone(), rows: rows.len() as u64 }).collect())
    }

    fn recent_loads(&mut self, _limit: usize) -> Result<Vec<LoadInfo>, DestinationError> {
        Ok(Vec::new())
    }

    fn drop_tables(&mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str) -> Result<(), DestinationError> {
        self.connect();
        let mut inner = self.lock();
        for t in tables {
            inner.data.tables.remove(t);
        }
        inner.data.schemas.push(new_schema.clone());
        inner.data.state_rows.push((state.clone(), load_id.to_string()));
        inner.data.loads.push(load_id.to_string());
        Ok(())
    }
}

/// A Personio-like source: `parents` (merge, cursor `updated_at`, filtered server-side too), `kids`
/// (a transformer of `parents`, one call per kept parent) and `others` (merge, cursor).
#[derive(Debug, Default)]
pub struct Tree {
    pub parents: Mutex<Vec<Value>>,
    pub kids: Mutex<HashMap<i64, Vec<Value>>>,
    pub others: Mutex<Vec<Value>>,
    /// Fail the extract (after the first pages went out), like an API answering 500.
    pub fail: AtomicBool,
    /// Kid calls made (one per parent id).
    pub kid_calls: AtomicUsize,
    /// Parents returned by the "API" (after the server-side `updated_since`).
    pub parents_served: AtomicUsize,
    /// A destination whose connection is checked while extracting.
    pub probe: Mutex<Option<MemDestination>>,
    /// Set when the probe was connected during an extract.
    pub probe_saw_connected: AtomicBool,
}

pub fn at(day: u32) -> String {
    format!("2024-01-{day:02}T00:00:00+00:00")
}

impl Tree {
    /// `n` parents updated on day 1, each with two kids, and `n` others.
    pub fn new(n: i64) -> Self {
        let t = Tree::default();
        for id in 1..=n {
            t.set_parent(id, 1);
            t.others.lock().unwrap_or_else(|e| e.into_inner()).push(json!({"id": id, "updated_at": at(1)}));
        }
        t
    }

    /// Add or update a parent (and give it two kids).
    pub fn set_parent(&self, id: i64, day: u32) {
        let mut parents = self.parents.lock().unwrap_or_else(|e| e.into_inner());
        parents.retain(|p| p["id"] != json!(id));
        parents.push(json!({"id": id, "updated_at": at(day)}));
        self.kids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, vec![json!({"parent_id": id, "id": 1, "v": day}), json!({"parent_id": id, "id": 2, "v": day})]);
    }

    pub fn kid_calls(&self) -> usize {
        self.kid_calls.load(Ordering::SeqCst)
    }

    pub fn reset_counters(&self) {
        self.kid_calls.store(0, Ordering::SeqCst);
        self.parents_served.store(0, Ordering::SeqCst);
    }

    fn probe(&self) {
        if let Some(p) = self.probe.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if p.is_connected() {
                self.probe_saw_connected.store(true, Ordering::SeqCst);
            }
        }
    }
}

fn since(records: &[Value], start: Option<Value>) -> Vec<Value> {
    let start = start.and_then(|v| v.as_str().map(|s| s.trim_start_matches('\u{F027}').to_string()));
    records
        .iter()
        .filter(|r| start.as_deref().is_none_or(|s| r["updated_at"].as_str().unwrap_or_default() >= s))
        .cloned()
        .collect()
}

#[async_trait::async_trait]
impl Source for Tree {
    fn name(&self) -> &str {
        "tree"
    }

    fn resources(&self) -> Vec<ResourceSpec> {
        vec![
            ResourceSpec::new("parents", &["id"], WriteDisposition::Merge).with_cursor("updated_at"),
            ResourceSpec::new("kids", &["parent_id", "id"], WriteDisposition::Merge).with_parent("parents"),
            ResourceSpec::new("others", &["id"], WriteDisposition::Merge).with_cursor("updated_at"),
        ]
    }

    async fn extract(&self, ctx: ExtractContext) -> Result<(), SourceError> {
        self.probe();
        let want_kids = ctx.is_selected("kids");
        if ctx.is_selected("parents") || want_kids {
            let all = self.parents.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let page = since(&all, ctx.start_value("parents"));
            self.parents_served.fetch_add(page.len(), Ordering::SeqCst);
            let kept = ctx.filter("parents", page)?;
            if want_kids {
                for p in &kept {
                    let id = p["id"].as_i64().unwrap_or_default();
                    self.kid_calls.fetch_add(1, Ordering::SeqCst);
                    let kids = self.kids.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned().unwrap_or_default();
                    ctx.emit("kids", kids).await?;
                }
            }
            ctx.emit("parents", kept).await?;
        }
        self.probe();
        if self.fail.load(Ordering::SeqCst) {
            return Err("the API answered 500 Internal Server Error".into());
        }
        if ctx.is_selected("others") {
            let all = self.others.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let kept = ctx.filter("others", since(&all, ctx.start_value("others")))?;
            ctx.emit("others", kept).await?;
        }
        Ok(())
    }
}
