//! The in-memory reference destination: executes a [`LoadPlan`] on vectors of rows.
//!
//! It is what every other destination is compared with in the conformance suite
//! (`crates/destinations/tests/it/conformance.rs`) and what the engine's own tests load into. Semantics
//! are those of the plan, spelled out plainly: a package is applied to a copy of the dataset that
//! replaces it only when every step succeeded (one transaction); merge (`delete-insert`, `upsert`)
//! deletes the destination roots whose key is staged and their children by `_dlt_root_id`, then inserts
//! the winning staged row per key (unless `hard_delete` flags it) and the staged children of the winners;
//! `scd2` retires active versions missing from the package and inserts new ones with the load's boundary
//! (see `docs/history.md`); a reconciliation deletes (or marks) the root rows whose key columns are not
//! in the package's key set, with their children. Values are kept as Arrow's display text (`None` for
//! NULL).
//!
//! Clones share the same dataset, so a test can keep a handle while the pipeline holds another.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;

use crate::load::{Capabilities, Destination, DestinationError, LoadInfo, LoadReport, StoredState, TableInfo};
use crate::package::LoadPackage;
use crate::plan::{Catalog, Dedup, HardDelete, LoadJob, LoadPlan, LoadsRow, Validity};
use crate::reconcile::{DeleteMode, DELETED_AT_COLUMN};
use crate::schema::{DataType, MergeStrategy, Schema, SortOrder, WriteDisposition};
use crate::state::StateRow;

const KIND: &str = "memory";

/// One row: column name → value as text (`None`: NULL). Columns a row never had are NULL too.
pub type Row = BTreeMap<String, Option<String>>;

/// One table: its columns in order and its rows in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemTable {
    /// Column names in creation order.
    pub columns: Vec<String>,
    /// Rows, each with the load id of the package that wrote it.
    pub rows: Vec<(Row, String)>,
}

/// Everything the destination holds.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Data tables by name.
    pub tables: BTreeMap<String, MemTable>,
    /// `_dlt_version`: the stored schemas, oldest first.
    pub schemas: Vec<Schema>,
    /// `_dlt_pipeline_state` rows with their load id, oldest first.
    pub state_rows: Vec<(StateRow, String)>,
    /// `_dlt_loads` rows, oldest first.
    pub loads: Vec<LoadsRow>,
}

/// A summary of the dataset for tests: row keys per table, state rows, schemas, load ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Data {
    /// table → row key (primary key of merge roots, else `_dlt_id`) → load id that wrote the row.
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    /// State rows with their load id.
    pub state_rows: Vec<(StateRow, String)>,
    /// Stored schemas.
    pub schemas: Vec<Schema>,
    /// Completed load ids.
    pub loads: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    data: Dataset,
    connected: bool,
    fail_loads: usize,
}

/// The in-memory destination; see the module docs.
#[derive(Debug, Clone)]
pub struct MemoryDestination {
    inner: Arc<Mutex<Inner>>,
    identity: String,
    capabilities: Capabilities,
}

impl MemoryDestination {
    /// An empty destination with this identity (e.g. `memory:a`).
    pub fn new(identity: &str) -> Self {
        MemoryDestination { inner: Arc::default(), identity: identity.to_string(), capabilities: Capabilities::full() }
    }

    /// The same destination declaring other capabilities (to test the pipeline's checks).
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the whole dataset.
    pub fn dataset(&self) -> Dataset {
        self.lock().data.clone()
    }

    /// Rows of a table (`None`: no such table).
    pub fn rows(&self, table: &str) -> Option<Vec<Row>> {
        self.lock().data.tables.get(table).map(|t| t.rows.iter().map(|(r, _)| r.clone()).collect())
    }

    /// A summary of the dataset.
    pub fn data(&self) -> Data {
        let inner = self.lock();
        let d = &inner.data;
        let tables = d
            .tables
            .keys()
            .map(|name| (name.clone(), Self::keyed(d, name).into_iter().collect()))
            .collect();
        Data {
            tables,
            state_rows: d.state_rows.clone(),
            schemas: d.schemas.clone(),
            loads: d.loads.iter().map(|l| l.load_id.clone()).collect(),
        }
    }

    fn keyed(d: &Dataset, table: &str) -> Vec<(String, String)> {
        let schema = d.schemas.iter().rev().find(|s| s.tables.contains_key(table));
        let pk: Vec<String> = schema
            .filter(|s| s.disposition_of(table) == WriteDisposition::Merge)
            .and_then(|s| s.tables.get(table))
            .map(|t| t.primary_key().into_iter().map(str::to_string).collect())
            .unwrap_or_default();
        let cols = if pk.is_empty() { vec!["_dlt_id".to_string()] } else { pk };
        d.tables
            .get(table)
            .map(|t| {
                t.rows
                    .iter()
                    .map(|(r, load)| {
                        let key = cols.iter().map(|c| r.get(c).cloned().flatten().unwrap_or_default()).collect::<Vec<_>>().join("|");
                        (key, load.clone())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a call is "connected" (between the first call and [`Destination::disconnect`]).
    pub fn is_connected(&self) -> bool {
        self.lock().connected
    }

    /// Row keys of a table, sorted (`None`: no such table).
    pub fn keys(&self, table: &str) -> Option<Vec<String>> {
        let inner = self.lock();
        inner.data.tables.get(table)?;
        let mut keys: Vec<String> = Self::keyed(&inner.data, table).into_iter().map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        Some(keys)
    }

    /// Rows of a table written by `load_id`.
    pub fn rows_of_load(&self, table: &str, load_id: &str) -> usize {
        self.lock().data.tables.get(table).map(|t| t.rows.iter().filter(|(_, l)| l == load_id).count()).unwrap_or(0)
    }

    /// Drop a table behind the engine's back (a user's `DROP TABLE`).
    pub fn remove_table(&self, table: &str) {
        self.lock().data.tables.remove(table);
    }

    /// Fail the next `n` package loads (after all their steps ran, so nothing may remain of them).
    pub fn fail_next_loads(&self, n: usize) {
        self.lock().fail_loads = n;
    }

    fn connect(&self) {
        self.lock().connected = true;
    }

    fn catalog(d: &Dataset) -> Catalog {
        let mut c: Catalog = d.tables.iter().map(|(n, t)| (n.clone(), t.columns.iter().cloned().collect())).collect();
        if !d.loads.is_empty() || !d.schemas.is_empty() {
            for (name, cols) in crate::schema::bookkeeping_tables() {
                c.insert(name.to_string(), cols.into_iter().map(|c| c.name).collect());
            }
        }
        c
    }
}

fn rows_of(batch: &RecordBatch) -> Vec<Row> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|i| {
            schema
                .fields()
                .iter()
                .enumerate()
                .map(|(c, f)| {
                    let col = batch.column(c);
                    let v = if col.is_null(i) { None } else { array_value_to_string(col, i).ok() };
                    (f.name().clone(), v)
                })
                .collect()
        })
        .collect()
}

fn package_rows(package: Option<&LoadPackage>, table: &str) -> Result<Vec<Row>, DestinationError> {
    let Some(p) = package else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for b in p.batches(table)? {
        out.extend(rows_of(&b));
    }
    Ok(out)
}

fn get<'a>(row: &'a Row, col: &str) -> Option<&'a str> {
    row.get(col).and_then(|v| v.as_deref())
}

/// Apply a plan to `d` (the caller commits by keeping the result).
fn apply(d: &mut Dataset, plan: &LoadPlan, package: Option<&LoadPackage>, schema: &Schema) -> Result<LoadReport, DestinationError> {
    let missing = |t: &str| DestinationError::new(KIND, format!("table {t} does not exist"));
    for t in &plan.drop_tables {
        d.tables.remove(t);
    }
    for t in &plan.create_tables {
        if crate::schema::bookkeeping_tables().iter().any(|(n, _)| *n == t.name) {
            continue;
        }
        d.tables.insert(t.name.clone(), MemTable { columns: t.columns.iter().map(|c| c.name.clone()).collect(), rows: Vec::new() });
    }
    for a in &plan.add_columns {
        d.tables.get_mut(&a.table).ok_or_else(|| missing(&a.table))?.columns.push(a.column.name.clone());
    }
    let v = &plan.version;
    if !d.schemas.iter().any(|s| s.name == v.schema_name && s.version_hash == v.version_hash) {
        d.schemas.push(schema.clone());
    }
    let load_id = plan.load_id.clone();
    let mut report: indexmap::IndexMap<String, u64> = indexmap::IndexMap::new();
    let mut deleted: indexmap::IndexMap<String, u64> = indexmap::IndexMap::new();
    for job in &plan.jobs {
        match job {
            LoadJob::Reconcile { resource, chain, columns, mode, at } => {
                for (table, n) in apply_reconcile(d, package, resource, chain, columns, *mode, at)? {
                    *deleted.entry(table).or_default() += n;
                }
            }
            LoadJob::Append { table } => {
                let rows = package_rows(package, table)?;
                *report.entry(table.clone()).or_default() += rows.len() as u64;
                let t = d.tables.get_mut(table).ok_or_else(|| missing(table))?;
                t.rows.extend(rows.into_iter().map(|r| (r, load_id.clone())));
            }
            LoadJob::Replace { chain, .. } => {
                for table in chain {
                    let rows = package_rows(package, table)?;
                    *report.entry(table.clone()).or_default() += rows.len() as u64;
                    let t = d.tables.get_mut(table).ok_or_else(|| missing(table))?;
                    t.rows = rows.into_iter().map(|r| (r, load_id.clone())).collect();
                }
            }
            LoadJob::Merge { chain, key, dedup, strategy, hard_delete, .. } => {
                let merge = KeyMerge { key, dedup, strategy: *strategy, hard_delete: hard_delete.as_ref(), schema };
                merge.apply(d, chain, package, &load_id, &mut report)?;
            }
            LoadJob::Scd2 { chain, validity } => scd2(d, chain, validity, package, &load_id, &mut report)?,
        }
    }
    if let Some(state) = &plan.state {
        d.state_rows.push((state.clone(), load_id.clone()));
    }
    d.loads.push(plan.loads.clone());
    Ok(LoadReport { rows: report.into_iter().collect(), deleted: deleted.into_iter().collect(), warnings: Vec::new() })
}

/// A reconciliation on rows: root rows whose key columns (as text) are not in the package's key set are
/// deleted with their children (hard) or get the mark column set (soft; rows seen again are unmarked).
/// Returns the rows deleted or newly marked per table.
fn apply_reconcile(
    d: &mut Dataset,
    package: Option<&LoadPackage>,
    resource: &str,
    chain: &[String],
    columns: &[String],
    mode: DeleteMode,
    at: &chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(String, u64)>, DestinationError> {
    let Some(root) = chain.first() else { return Ok(Vec::new()) };
    let mut keys: HashSet<Vec<String>> = HashSet::new();
    if let Some(p) = package {
        p.for_each_key_batch::<DestinationError>(resource, |batch| {
            for r in rows_of(&batch) {
                if let Some(k) = columns.iter().map(|c| r.get(c).cloned().flatten()).collect::<Option<Vec<String>>>() {
                    keys.insert(k);
                }
            }
            Ok(())
        })?;
    }
    let present = |r: &Row| columns.iter().map(|c| r.get(c).cloned().flatten()).collect::<Option<Vec<String>>>().is_some_and(|k| keys.contains(&k));
    let t = d.tables.get_mut(root).ok_or_else(|| DestinationError::new(KIND, format!("table {root} does not exist")))?;
    let mut out = Vec::new();
    match mode {
        DeleteMode::Hard => {
            let gone: HashSet<String> = t.rows.iter().filter(|(r, _)| !present(r)).filter_map(|(r, _)| get(r, "_dlt_id").map(str::to_string)).collect();
            let before = t.rows.len();
            t.rows.retain(|(r, _)| present(r));
            let root_deleted = (before - t.rows.len()) as u64;
            for child in chain.iter().skip(1) {
                if let Some(c) = d.tables.get_mut(child) {
                    let before = c.rows.len();
                    c.rows.retain(|(r, _)| !get(r, "_dlt_root_id").is_some_and(|id| gone.contains(id)));
                    out.push((child.clone(), (before - c.rows.len()) as u64));
                }
            }
            out.push((root.clone(), root_deleted));
        }
        DeleteMode::Soft => {
            // Arrow's display text of a UTC timestamp, as the packages' own timestamps read back here.
            let mark = at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            let mut marked = 0u64;
            for (r, _) in t.rows.iter_mut() {
                let is_marked = get(r, DELETED_AT_COLUMN).is_some();
                if present(r) {
                    if is_marked {
                        r.insert(DELETED_AT_COLUMN.to_string(), None);
                    }
                } else if !is_marked {
                    r.insert(DELETED_AT_COLUMN.to_string(), Some(mark.clone()));
                    marked += 1;
                }
            }
            out.push((root.clone(), marked));
        }
    }
    Ok(out)
}

/// A `delete-insert` or `upsert` merge of one chain (see [`LoadJob::Merge`]).
struct KeyMerge<'a> {
    key: &'a [String],
    dedup: &'a Dedup,
    strategy: MergeStrategy,
    hard_delete: Option<&'a HardDelete>,
    schema: &'a Schema,
}

impl KeyMerge<'_> {
    fn key_of(&self, r: &Row) -> Vec<String> {
        self.key.iter().map(|k| get(r, k).unwrap_or_default().to_string()).collect()
    }

    fn is_deleted(&self, r: &Row) -> bool {
        match self.hard_delete {
            None => false,
            Some(h) if h.boolean => get(r, &h.column) == Some("true"),
            Some(h) => get(r, &h.column).is_some(),
        }
    }

    /// Whether staged row `a` beats the current winner `b` of its key.
    fn beats(&self, root: &str, a: &Row, b: &Row) -> bool {
        match self.dedup {
            Dedup::LastExtracted => true,
            Dedup::Sort { column, order } => {
                let data_type = self.schema.tables.get(root).and_then(|t| t.columns.get(column)).map(|c| c.data_type);
                match (get(a, column), get(b, column)) {
                    (Some(x), Some(y)) => {
                        let ord = compare_values(data_type, x, y);
                        match order {
                            SortOrder::Desc => ord == std::cmp::Ordering::Greater,
                            SortOrder::Asc => ord == std::cmp::Ordering::Less,
                        }
                    }
                    // NULLs last; ties keep the first extracted.
                    (Some(_), None) => true,
                    _ => false,
                }
            }
        }
    }

    fn apply(
        &self,
        d: &mut Dataset,
        chain: &[crate::plan::ChainTable],
        package: Option<&LoadPackage>,
        load_id: &str,
        report: &mut indexmap::IndexMap<String, u64>,
    ) -> Result<(), DestinationError> {
        let Some(root) = chain.first() else { return Ok(()) };
        let missing = |t: &str| DestinationError::new(KIND, format!("table {t} does not exist"));
        let staged = package_rows(package, &root.name)?;
        let mut winner_of: HashMap<Vec<String>, usize> = HashMap::new();
        for (i, r) in staged.iter().enumerate() {
            let k = self.key_of(r);
            match winner_of.get(&k) {
                Some(&w) if !self.beats(&root.name, r, &staged[w]) => {}
                _ => {
                    winner_of.insert(k, i);
                }
            }
        }
        let mut winners: Vec<usize> = winner_of.values().copied().collect();
        winners.sort_unstable();
        let dest = d.tables.get_mut(&root.name).ok_or_else(|| missing(&root.name))?;
        let existed: HashSet<Vec<String>> = dest.rows.iter().map(|(r, _)| self.key_of(r)).filter(|k| winner_of.contains_key(k)).collect();
        let replaced: HashSet<String> = dest
            .rows
            .iter()
            .filter(|(r, _)| winner_of.contains_key(&self.key_of(r)))
            .filter_map(|(r, _)| get(r, "_dlt_id").map(str::to_string))
            .collect();
        dest.rows.retain(|(r, _)| !winner_of.contains_key(&self.key_of(r)));
        let mut inserted = 0u64;
        let mut with_children: HashSet<String> = HashSet::new();
        for &i in &winners {
            let r = &staged[i];
            let keep = if self.is_deleted(r) {
                // dlt's upsert inserts a flagged row whose key it did not have (MERGE … WHEN NOT MATCHED).
                self.strategy == MergeStrategy::Upsert && !existed.contains(&self.key_of(r))
            } else {
                if let Some(id) = get(r, "_dlt_id") {
                    with_children.insert(id.to_string());
                }
                true
            };
            if keep {
                dest.rows.push((r.clone(), load_id.to_string()));
                inserted += 1;
            }
        }
        *report.entry(root.name.clone()).or_default() += inserted;
        for child in chain.iter().skip(1) {
            let rows = package_rows(package, &child.name)?;
            *report.entry(child.name.clone()).or_default() += rows.len() as u64;
            let t = d.tables.get_mut(&child.name).ok_or_else(|| missing(&child.name))?;
            t.rows.retain(|(r, _)| !get(r, "_dlt_root_id").is_some_and(|id| replaced.contains(id) || with_children.contains(id)));
            // Upsert child ids derive from the key: a duplicate key's children share them; the last wins.
            let mut by_id: indexmap::IndexMap<String, Row> = indexmap::IndexMap::new();
            for r in rows.into_iter().filter(|r| get(r, "_dlt_root_id").is_some_and(|id| with_children.contains(id))) {
                let id = get(&r, "_dlt_id").unwrap_or_default().to_string();
                by_id.insert(id, r);
            }
            t.rows.extend(by_id.into_values().map(|r| (r, load_id.to_string())));
        }
        Ok(())
    }
}

/// Compare two values of a column as the destination would (numbers as numbers, timestamps as
/// instants, the rest as text).
fn compare_values(data_type: Option<DataType>, a: &str, b: &str) -> std::cmp::Ordering {
    match data_type {
        Some(DataType::Bigint | DataType::Double | DataType::Decimal) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
            _ => a.cmp(b),
        },
        Some(DataType::Timestamp) => match (chrono::DateTime::parse_from_rfc3339(a), chrono::DateTime::parse_from_rfc3339(b)) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        },
        _ => a.cmp(b),
    }
}

/// A timestamp as this destination stores values: Arrow's display text.
fn timestamp_text(t: &chrono::DateTime<chrono::Utc>) -> String {
    let array = arrow::array::TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC");
    array_value_to_string(&array, 0).unwrap_or_else(|_| t.to_rfc3339())
}

/// dlt's scd2 merge of one chain (see [`LoadJob::Scd2`]).
fn scd2(
    d: &mut Dataset,
    chain: &[crate::plan::ChainTable],
    v: &Validity,
    package: Option<&LoadPackage>,
    load_id: &str,
    report: &mut indexmap::IndexMap<String, u64>,
) -> Result<(), DestinationError> {
    let Some(root) = chain.first() else { return Ok(()) };
    let missing = |t: &str| DestinationError::new(KIND, format!("table {t} does not exist"));
    let boundary = Some(timestamp_text(&v.boundary));
    let active_value = v.active.as_ref().map(timestamp_text);
    let is_active = |r: &Row| r.get(&v.to).cloned().flatten() == active_value;
    let staged = package_rows(package, &root.name)?;
    let staged_ids: HashSet<&str> = staged.iter().filter_map(|r| get(r, "_dlt_id")).collect();
    let dest = d.tables.get_mut(&root.name).ok_or_else(|| missing(&root.name))?;
    // Retire active versions missing from the extract.
    for (r, _) in dest.rows.iter_mut() {
        if is_active(r) && !get(r, "_dlt_id").is_some_and(|id| staged_ids.contains(id)) {
            r.insert(v.to.clone(), boundary.clone());
        }
    }
    // Insert staged versions that are not active, once per row hash.
    let mut active_ids: HashSet<String> =
        dest.rows.iter().filter(|(r, _)| is_active(r)).filter_map(|(r, _)| get(r, "_dlt_id").map(str::to_string)).collect();
    let mut inserted = 0u64;
    for mut r in staged {
        let Some(id) = get(&r, "_dlt_id").map(str::to_string) else { continue };
        if active_ids.insert(id) {
            r.insert(v.from.clone(), boundary.clone());
            r.insert(v.to.clone(), active_value.clone());
            dest.rows.push((r, load_id.to_string()));
            inserted += 1;
        }
    }
    *report.entry(root.name.clone()).or_default() += inserted;
    // Child rows are insert-only: their ids derive from the root's row hash.
    for child in chain.iter().skip(1) {
        let rows = package_rows(package, &child.name)?;
        let t = d.tables.get_mut(&child.name).ok_or_else(|| missing(&child.name))?;
        let mut have: HashSet<String> = t.rows.iter().filter_map(|(r, _)| get(r, "_dlt_id").map(str::to_string)).collect();
        let mut n = 0u64;
        for r in rows {
            if get(&r, "_dlt_id").is_some_and(|id| have.insert(id.to_string())) {
                t.rows.push((r, load_id.to_string()));
                n += 1;
            }
        }
        *report.entry(child.name.clone()).or_default() += n;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Destination for MemoryDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destination_type(&self) -> &'static str {
        "test.memory"
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    async fn disconnect(&mut self) {
        self.lock().connected = false;
    }

    async fn health_check(&mut self) -> Result<(), DestinationError> {
        self.connect();
        Ok(())
    }

    async fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        self.connect();
        let inner = self.lock();
        let completed = |id: &str| inner.data.loads.iter().any(|l| l.load_id == id && l.status == 0);
        Ok(inner
            .data
            .state_rows
            .iter()
            .filter(|(row, load_id)| row.pipeline_name == pipeline_name && completed(load_id))
            .max_by(|a, b| a.1.cmp(&b.1))
            .map(|(row, load_id)| StoredState { row: row.clone(), load_id: load_id.clone() }))
    }

    async fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        self.connect();
        Ok(self.lock().data.schemas.iter().rev().find(|s| s.name == schema_name).cloned())
    }

    async fn is_loaded(&mut self, load_id: &str) -> Result<bool, DestinationError> {
        self.connect();
        Ok(self.lock().data.loads.iter().any(|l| l.load_id == load_id && l.status == 0))
    }

    async fn existing_tables(&mut self) -> Result<Vec<String>, DestinationError> {
        self.connect();
        let mut names: Vec<String> = Self::catalog(&self.lock().data).into_keys().collect();
        names.sort();
        Ok(names)
    }

    async fn load_package(&mut self, package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        self.connect();
        let mut inner = self.lock();
        let plan = LoadPlan::build(package.manifest(), &Self::catalog(&inner.data));
        let mut data = inner.data.clone();
        let report = apply(&mut data, &plan, Some(package), &package.manifest().schema)?;
        if inner.fail_loads > 0 {
            inner.fail_loads -= 1;
            return Err(DestinationError::new(KIND, "injected load failure; nothing of the package was kept"));
        }
        inner.data = data;
        Ok(report)
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
        self.connect();
        let inner = self.lock();
        let d = &inner.data;
        let mut out: Vec<TableInfo> = d.tables.iter().map(|(name, t)| TableInfo { name: name.clone(), rows: t.rows.len() as u64 }).collect();
        if !d.loads.is_empty() {
            out.push(TableInfo { name: "_dlt_loads".into(), rows: d.loads.len() as u64 });
            out.push(TableInfo { name: "_dlt_pipeline_state".into(), rows: d.state_rows.len() as u64 });
            out.push(TableInfo { name: "_dlt_version".into(), rows: d.schemas.len() as u64 });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn recent_loads(&mut self, limit: usize) -> Result<Vec<LoadInfo>, DestinationError> {
        self.connect();
        let mut loads: Vec<LoadInfo> = self
            .lock()
            .data
            .loads
            .iter()
            .map(|l| LoadInfo { load_id: l.load_id.clone(), status: l.status, inserted_at: l.inserted_at.to_rfc3339() })
            .collect();
        loads.sort_by(|a, b| b.load_id.cmp(&a.load_id));
        loads.truncate(limit);
        Ok(loads)
    }

    async fn drop_tables(&mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str) -> Result<(), DestinationError> {
        self.connect();
        let mut inner = self.lock();
        let plan = LoadPlan::for_drop(tables, new_schema, state, load_id, &Self::catalog(&inner.data));
        let mut data = inner.data.clone();
        apply(&mut data, &plan, None, new_schema)?;
        inner.data = data;
        Ok(())
    }
}
