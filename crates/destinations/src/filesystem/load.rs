//! Executing a [`LoadPlan`] on files: appends as new files, replaces as Delta overwrite commits, merges
//! as copy-on-write Delta commits, then the bookkeeping files (`_dlt_loads` last).
//!
//! Idempotent under retries: data file names depend only on the load id, the table and a counter, and a
//! Delta table whose log already has this load's `txn` is skipped. A merge commits its child tables
//! first and its root last, so a retry after a partial merge recomputes the replaced roots from the
//! still-old root.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::DataType as A;
use bytes::Bytes;
use object_store::path::Path;
use pipeline_engine::load::{DestinationError, LoadReport};
use pipeline_engine::package::LoadPackage;
use pipeline_engine::plan::{Catalog, ChainTable, Dedup, HardDelete, LoadJob, LoadPlan, VersionRow};
use pipeline_engine::schema::{MergeStrategy, Schema, SortOrder};
use pipeline_engine::reconcile::{DeleteMode, DELETED_AT_COLUMN};
use pipeline_engine::state::StateRow;

use super::delta::{ActiveFile, CommitKind, LakeTable, NewFile, RECONCILE_APP_ID};
use super::files::{self, FileFormat, ParquetBuilder};
use super::layout;
use super::store::Bucket;
use super::{json_bytes, FilesystemConfig, KIND};

/// A data file is closed and uploaded at about this size (encoded plus buffered bytes).
const FILE_MAX_BYTES: usize = 128 * 1024 * 1024;
/// dlt's `max_state_files`: older state files of a pipeline are deleted beyond this many.
const MAX_STATE_FILES: usize = 100;

fn file_err(what: &str, e: files::FileError) -> DestinationError {
    DestinationError::new(KIND, format!("{what}: {e}")).with_source(e)
}

/// The object path of a file of a table, from its path relative to the table folder.
pub fn file_path(bucket: &Bucket, dataset: &str, table: &str, relative: &str) -> Path {
    relative.split('/').filter(|p| !p.is_empty()).fold(bucket.path(&[dataset, table]), |p, part| p.join(part))
}

/// Rows of a Parquet file, from its footer (the file's tail only).
pub async fn parquet_rows(bucket: &Bucket, path: &Path, size: Option<u64>) -> Result<u64, DestinationError> {
    use object_store::ObjectStoreExt as _;
    let size = match size {
        Some(s) => s,
        None => bucket.root.head(path).await.map_err(|e| super::store::store_err(&format!("reading {path}"), e))?.size,
    };
    let mut want = 64 * 1024u64;
    loop {
        let start = size.saturating_sub(want);
        let tail = bucket.root.get_range(path, start..size).await.map_err(|e| super::store::store_err(&format!("reading {path}"), e))?;
        match files::parquet_rows_from_tail(&tail, size).map_err(|e| file_err(&format!("reading the footer of {path}"), e))? {
            Ok(rows) => return Ok(rows),
            Err(needed) if (needed as u64) > want && start > 0 => want = needed as u64,
            Err(_) => return Err(DestinationError::new(KIND, format!("{path} is not a complete Parquet file"))),
        }
    }
}

/// Columns of a batch as text, cast once per batch, for key and id lookups without formatting rows.
struct Texts(Vec<StringArray>);

impl Texts {
    fn of(batch: &RecordBatch, names: &[String], table: &str) -> Result<Texts, DestinationError> {
        columns_of(batch, names, table)?.iter().map(text_array).collect::<Result<Vec<_>, _>>().map(Texts)
    }

    /// Row `r`'s value (one column) or its values joined (several); `None` when one is NULL.
    fn get<'a>(&'a self, r: usize, buf: &'a mut String) -> Option<&'a str> {
        if let [a] = self.0.as_slice() {
            return (!a.is_null(r)).then(|| a.value(r));
        }
        buf.clear();
        for (i, a) in self.0.iter().enumerate() {
            if a.is_null(r) {
                return None;
            }
            if i > 0 {
                buf.push('\u{1f}');
            }
            buf.push_str(a.value(r));
        }
        Some(buf.as_str())
    }

    /// Per row: whether its value is in `set`.
    fn in_set(&self, rows: usize, set: &HashSet<String>) -> Vec<bool> {
        let mut buf = String::new();
        (0..rows).map(|r| self.get(r, &mut buf).is_some_and(|v| set.contains(v))).collect()
    }
}

/// A column as text (integers and other keys cast; timestamps through their integer value).
fn text_array(col: &ArrayRef) -> Result<StringArray, DestinationError> {
    let text = match col.data_type() {
        A::Utf8 => col.clone(),
        other => arrow::compute::cast(col, &A::Utf8)
            .or_else(|_| arrow::compute::cast(col, &A::Int64).and_then(|i| arrow::compute::cast(&i, &A::Utf8)))
            .map_err(|e| DestinationError::new(KIND, format!("a key column of type {other} cannot be compared: {e}")))?,
    };
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DestinationError::new(KIND, "internal error: a text cast did not give text"))
}

fn columns_of(batch: &RecordBatch, names: &[String], table: &str) -> Result<Vec<ArrayRef>, DestinationError> {
    names
        .iter()
        .map(|n| {
            batch.column_by_name(n).cloned().ok_or_else(|| {
                DestinationError::new(KIND, format!("table `{table}` has rows without the column `{n}` a merge needs; drop the table and load it again"))
            })
        })
        .collect()
}

fn filter(batch: &RecordBatch, keep: Vec<bool>) -> Result<RecordBatch, DestinationError> {
    arrow::compute::filter_record_batch(batch, &BooleanArray::from(keep)).map_err(|e| DestinationError::new(KIND, format!("filtering rows: {e}")))
}

/// Writes one table's data files for one load: conformed batches in, files of about
/// [`FILE_MAX_BYTES`] out, uploaded as they fill.
struct Sink<'a> {
    bucket: &'a Bucket,
    dataset: &'a str,
    table: String,
    load_id: &'a str,
    format: FileFormat,
    target: arrow::datatypes::SchemaRef,
    json_columns: Vec<String>,
    current: Option<ParquetBuilder>,
    jsonl: Vec<RecordBatch>,
    files: Vec<NewFile>,
    /// Part of the file ids: two writers of one table in one load (a reconciliation, then the data)
    /// never name a file alike.
    tag: &'static str,
}

impl<'a> Sink<'a> {
    fn new(l: &'a Loader<'a>, table: &str, columns: &[(String, A)], format: FileFormat, schema: &Schema) -> Self {
        let json_columns = schema
            .tables
            .get(table)
            .map(|t| t.columns.values().filter(|c| c.data_type == pipeline_engine::schema::DataType::Json).map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        Sink {
            bucket: &l.bucket,
            dataset: &l.config.dataset_name,
            table: table.to_string(),
            load_id: l.load_id,
            format,
            target: files::arrow_schema(columns),
            json_columns,
            current: None,
            jsonl: Vec::new(),
            files: Vec::new(),
            tag: "",
        }
    }

    /// The same sink, naming its files with `tag` too.
    fn tagged(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }

    fn what(&self) -> String {
        format!("writing table {} of load {}", self.table, self.load_id)
    }

    async fn push(&mut self, batch: &RecordBatch) -> Result<(), DestinationError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = files::conform(batch, &self.target).map_err(|e| file_err(&self.what(), e))?;
        if self.format == FileFormat::Jsonl {
            self.jsonl.push(batch);
            return Ok(());
        }
        if self.current.is_none() {
            self.current = Some(ParquetBuilder::new(&self.target).map_err(|e| file_err(&self.what(), e))?);
        }
        let what = self.what();
        let full = match self.current.as_mut() {
            Some(w) => {
                w.write(&batch).map_err(|e| file_err(&what, e))?;
                w.size() >= FILE_MAX_BYTES
            }
            None => false,
        };
        if full {
            self.flush().await?;
        }
        Ok(())
    }

    async fn upload(&mut self, bytes: Bytes, rows: u64) -> Result<(), DestinationError> {
        let id_base = if self.tag.is_empty() { self.table.clone() } else { format!("{}/{}", self.table, self.tag) };
        let name = layout::data_file(self.load_id, &id_base, self.files.len(), self.format.extension());
        let size = bytes.len() as u64;
        self.bucket.put(&self.bucket.path(&[self.dataset, &self.table, &name]), bytes).await?;
        self.files.push(NewFile { path: name, size, rows });
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), DestinationError> {
        if let Some(w) = self.current.take() {
            let rows = w.rows();
            let bytes = w.finish().map_err(|e| file_err(&self.what(), e))?;
            self.upload(bytes, rows).await?;
        }
        Ok(())
    }

    /// Close the files; `keep_empty`: write one file without rows if there were none (so a new plain
    /// table exists, with its columns, like a created SQL table).
    async fn finish(mut self, keep_empty: bool) -> Result<Vec<NewFile>, DestinationError> {
        match self.format {
            FileFormat::Parquet => {
                self.flush().await?;
                if self.files.is_empty() && keep_empty {
                    let w = ParquetBuilder::new(&self.target).map_err(|e| file_err(&self.what(), e))?;
                    let bytes = w.finish().map_err(|e| file_err(&self.what(), e))?;
                    self.upload(bytes, 0).await?;
                }
            }
            FileFormat::Jsonl => {
                let rows: usize = self.jsonl.iter().map(|b| b.num_rows()).sum();
                if rows > 0 || keep_empty {
                    let bytes = files::encode_jsonl(&self.jsonl, &self.json_columns).map_err(|e| file_err(&self.what(), e))?;
                    self.upload(bytes, rows as u64).await?;
                }
            }
        }
        Ok(self.files)
    }
}

/// One load (or drop) against the bucket.
pub struct Loader<'a> {
    config: &'a FilesystemConfig,
    bucket: Bucket,
    load_id: &'a str,
}

impl<'a> Loader<'a> {
    /// A loader for the dataset of `config` in `bucket`.
    pub fn new(config: &'a FilesystemConfig, bucket: Bucket) -> Loader<'a> {
        Loader { config, bucket, load_id: "" }
    }

    fn ds(&self) -> &str {
        &self.config.dataset_name
    }

    fn catalog(schema: &Schema, folders: &[String]) -> Catalog {
        folders
            .iter()
            .map(|t| (t.clone(), schema.tables.get(t).map(|s| s.columns.keys().cloned().collect()).unwrap_or_default()))
            .collect()
    }

    fn is_delta(&self, schema: &Schema, table: &str) -> bool {
        self.config.is_delta(schema.disposition_of(table))
    }

    /// Load a package; see the module docs.
    pub async fn load(mut self, package: &'a LoadPackage, folders: &[String]) -> Result<LoadReport, DestinationError> {
        let m = package.manifest();
        self.load_id = package.load_id();
        let plan = LoadPlan::build(m, &Self::catalog(&m.schema, folders));
        self.init_dataset().await?;
        self.write_version(&plan.version).await?;
        let dropped: HashSet<&str> = plan.drop_tables.iter().map(String::as_str).collect();
        let mut touched: HashSet<String> = HashSet::new();
        let mut report: Vec<(String, u64)> = Vec::new();
        let mut deleted: Vec<(String, u64)> = Vec::new();
        for job in &plan.jobs {
            match job {
                LoadJob::Append { table } => {
                    touched.insert(table.clone());
                    let rows = self.write_table(package, &m.schema, table, dropped.contains(table.as_str())).await?;
                    report.push((table.clone(), rows));
                }
                LoadJob::Replace { chain, .. } => {
                    for table in chain.iter().rev() {
                        touched.insert(table.clone());
                        let rows = self.write_table(package, &m.schema, table, true).await?;
                        report.push((table.clone(), rows));
                    }
                }
                LoadJob::Merge { chain, key, strategy, hard_delete, dedup, .. } => {
                    touched.extend(chain.iter().map(|c| c.name.clone()));
                    let job = MergeJob { chain, key, strategy: *strategy, hard_delete: hard_delete.as_ref(), dedup };
                    report.extend(self.merge(package, &m.schema, &job, &dropped).await?);
                }
                LoadJob::Scd2 { chain, .. } => return Err(unsupported_merge(chain)),
                LoadJob::Reconcile { resource, chain, columns, mode, at } => {
                    if !dropped.contains(chain.first().map(String::as_str).unwrap_or_default()) {
                        let job = ReconcileJob { resource, chain, columns, mode: *mode, at };
                        deleted.extend(self.reconcile(package, &m.schema, &job).await?);
                    }
                }
            }
        }
        // Tables created by the plan that no job wrote (no rows in this package) exist afterwards, empty.
        for t in &plan.create_tables {
            if !touched.contains(&t.name) && !t.name.starts_with("_dlt_") {
                touched.insert(t.name.clone());
                self.write_table(package, &m.schema, &t.name, dropped.contains(t.name.as_str())).await?;
            }
        }
        // Dropped tables the new schema no longer has.
        for t in plan.drop_tables.iter().filter(|t| !touched.contains(*t)) {
            self.delete_table(t).await?;
        }
        if let Some(state) = &plan.state {
            self.write_state(state, &plan.version.version_hash).await?;
        }
        self.write_loads(&plan).await?;
        report.retain(|(_, n)| *n > 0);
        Ok(LoadReport { rows: report, deleted, warnings: Vec::new() })
    }

    /// `pipeline drop`: delete the tables, then record the schema without them, the state and a load.
    pub async fn drop(mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &'a str, folders: &[String]) -> Result<(), DestinationError> {
        self.load_id = load_id;
        let plan = LoadPlan::for_drop(tables, new_schema, state, load_id, &Self::catalog(new_schema, folders));
        self.init_dataset().await?;
        self.write_version(&plan.version).await?;
        for t in tables {
            self.delete_table(t).await?;
        }
        if let Some(state) = &plan.state {
            self.write_state(state, &plan.version.version_hash).await?;
        }
        self.write_loads(&plan).await
    }

    async fn init_dataset(&self) -> Result<(), DestinationError> {
        let path = self.bucket.path(&[self.ds(), layout::INIT_FILE]);
        self.bucket.put_if_absent(&path, Bytes::from_static(layout::INIT_CONTENT.as_bytes())).await.map(|_| ())
    }

    /// The `_dlt_version` file, unless one with this schema's name and hash is stored.
    async fn write_version(&self, v: &VersionRow) -> Result<(), DestinationError> {
        let folder = self.bucket.path(&[self.ds(), layout::VERSION]);
        let hash = layout::path_safe_hash(&v.version_hash);
        for meta in self.bucket.list(&folder).await? {
            if let Some((name, _, h)) = meta.location.filename().and_then(layout::parse_bookkeeping) {
                if name == v.schema_name && h == hash {
                    return Ok(());
                }
            }
        }
        let name = layout::version_file(&v.schema_name, self.load_id, &v.version_hash);
        let mut row = v.clone();
        row.schema_json = layout::with_table_formats(&v.schema_json, |disposition| self.config.is_delta(disposition));
        self.bucket.put(&folder.clone().join(name.as_str()), json_bytes(layout::version_json(&row))).await
    }

    async fn write_state(&self, s: &StateRow, schema_hash: &str) -> Result<(), DestinationError> {
        let folder = self.bucket.path(&[self.ds(), layout::STATE]);
        let name = layout::state_file(&s.pipeline_name, self.load_id, schema_hash);
        self.bucket.put(&folder.clone().join(name.as_str()), json_bytes(layout::state_json(s, self.load_id))).await?;
        // dlt's max_state_files: keep the newest of this pipeline.
        let mut mine: Vec<(String, Path)> = self
            .bucket
            .list(&folder)
            .await?
            .into_iter()
            .filter_map(|m| {
                let (p, id, _) = m.location.filename().and_then(layout::parse_bookkeeping)?;
                (p == s.pipeline_name).then_some((id, m.location))
            })
            .collect();
        if mine.len() > MAX_STATE_FILES {
            mine.sort_by(|a, b| layout::load_id_order(&b.0, &a.0));
            self.bucket.delete_all(mine.into_iter().skip(MAX_STATE_FILES).map(|(_, p)| p).collect()).await?;
        }
        Ok(())
    }

    async fn write_loads(&self, plan: &LoadPlan) -> Result<(), DestinationError> {
        let name = layout::loads_file(&plan.loads.schema_name, &plan.loads.load_id);
        let path = self.bucket.path(&[self.ds(), layout::LOADS, &name]);
        self.bucket.put(&path, json_bytes(layout::loads_json(&plan.loads))).await
    }

    /// Delete a table: its files and, for a Delta table, its log.
    async fn delete_table(&self, table: &str) -> Result<(), DestinationError> {
        let files = self.bucket.list(&self.bucket.path(&[self.ds(), table])).await?;
        // Data files first, the log last: a reader never sees a log whose files are gone half-way.
        let (log, data): (Vec<_>, Vec<_>) = files.into_iter().map(|m| m.location).partition(|p| p.parts().any(|part| part.as_ref() == layout::DELTA_LOG));
        self.bucket.delete_all(data).await?;
        self.bucket.delete_all(log).await
    }

    /// The columns a table's files get: `existing` ones first (their types kept), then the schema's new
    /// ones.
    fn target_columns(schema: &Schema, table: &str, existing: Vec<(String, A)>, delta: bool) -> Vec<(String, A)> {
        let mut cols = existing;
        if let Some(t) = schema.tables.get(table) {
            for c in t.columns.values() {
                if !cols.iter().any(|(n, _)| n == &c.name) {
                    cols.push((c.name.clone(), files::file_type(c.data_type, delta)));
                }
            }
        }
        cols
    }

    /// Write a table's package rows: appended, or replacing the table when `overwrite` (replace chains,
    /// full refresh). Returns the rows written.
    async fn write_table(&self, package: &LoadPackage, schema: &Schema, table: &str, overwrite: bool) -> Result<u64, DestinationError> {
        if self.is_delta(schema, table) {
            let lake = LakeTable::open(&self.bucket, self.ds(), table).await?;
            if lake.committed(self.load_id).await? {
                return Ok(0);
            }
            let existing = if overwrite { Vec::new() } else { lake.columns()? };
            let columns = Self::target_columns(schema, table, existing, true);
            let mut sink = Sink::new(self, table, &columns, FileFormat::Parquet, schema);
            self.push_package_rows(package, table, &mut sink, None).await?;
            let files = sink.finish(false).await?;
            let rows = files.iter().map(|f| f.rows).sum();
            let unchanged_schema = lake.columns()? == columns;
            if lake.exists() && !overwrite && files.is_empty() && unchanged_schema {
                return Ok(0);
            }
            let (kind, removes) = if overwrite {
                (CommitKind::Overwrite, lake.active_files().await?.into_iter().map(|f| f.remove).collect())
            } else {
                (CommitKind::Append, Vec::new())
            };
            lake.commit(self.load_id, &columns, kind, removes, &files).await?;
            return Ok(rows);
        }
        let columns = Self::target_columns(schema, table, Vec::new(), false);
        let mut sink = Sink::new(self, table, &columns, self.config.loader_file_format, schema);
        self.push_package_rows(package, table, &mut sink, None).await?;
        let files = sink.finish(true).await?;
        if overwrite {
            // New files first, then the old ones go: readers see the old rows, then old and new for a
            // moment, never an empty table (plain files cannot switch atomically; Delta tables do).
            let written: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
            let old: Vec<Path> = self
                .bucket
                .list(&self.bucket.path(&[self.ds(), table]))
                .await?
                .into_iter()
                .map(|m| m.location)
                .filter(|p| p.filename().is_some_and(|n| !written.contains(n)))
                .collect();
            self.bucket.delete_all(old).await?;
        }
        Ok(files.iter().map(|f| f.rows).sum())
    }

    /// Push the package's batches of `table` into `sink`, keeping the rows `keep` selects.
    async fn push_package_rows(
        &self,
        package: &LoadPackage,
        table: &str,
        sink: &mut Sink<'_>,
        keep: Option<&(dyn Fn(&RecordBatch) -> Result<Vec<bool>, DestinationError> + Sync)>,
    ) -> Result<u64, DestinationError> {
        let batches = package.batches(table).map_err(DestinationError::from)?;
        let mut rows = 0;
        for batch in batches {
            let batch = match keep {
                Some(f) => filter(&batch, f(&batch)?)?,
                None => batch,
            };
            rows += batch.num_rows() as u64;
            sink.push(&batch).await?;
        }
        Ok(rows)
    }

    /// Push the package's rows of `table` that `keep` selects, one per `_dlt_id` (the last).
    async fn push_last_per_id(
        &self,
        package: &LoadPackage,
        table: &str,
        sink: &mut Sink<'_>,
        keep: &(dyn Fn(&RecordBatch) -> Result<Vec<bool>, DestinationError> + Sync),
    ) -> Result<u64, DestinationError> {
        let batches = package.batches(table).map_err(DestinationError::from)?;
        let dlt_id = vec!["_dlt_id".to_string()];
        let mut last: HashMap<String, (usize, usize)> = HashMap::new();
        let mut masks = Vec::new();
        let mut buf = String::new();
        for (bi, b) in batches.iter().enumerate() {
            let ids = Texts::of(b, &dlt_id, table)?;
            let mask = keep(b)?;
            for r in (0..b.num_rows()).filter(|r| mask[*r]) {
                if let Some(id) = ids.get(r, &mut buf) {
                    last.insert(id.to_string(), (bi, r));
                }
            }
            masks.push(vec![false; b.num_rows()]);
        }
        for (bi, r) in last.into_values() {
            masks[bi][r] = true;
        }
        let mut rows = 0;
        for (b, mask) in batches.iter().zip(masks) {
            let b = filter(b, mask)?;
            rows += b.num_rows() as u64;
            sink.push(&b).await?;
        }
        Ok(rows)
    }

    async fn read_file(&self, table: &str, f: &ActiveFile) -> Result<Bytes, DestinationError> {
        let path = file_path(&self.bucket, self.ds(), table, &f.path);
        self.bucket.get(&path).await?.ok_or_else(|| {
            DestinationError::new(KIND, format!("{path} is in the Delta log of `{table}` but missing from the bucket; restore it or drop the table"))
        })
    }

    /// Deletion detection ([`LoadJob::Reconcile`], docs/deletions.md) on Delta tables, copy-on-write:
    /// root rows whose key is not in the package's key set are deleted with their child rows (hard), or
    /// get `_dlt_deleted_at` = the reconciliation time unless marked already, and rows whose key is seen
    /// again lose their mark (soft). Commits (children first, the root last) carry their own `txn`
    /// application id, so the load's merge into the same table still commits after them. Returns the
    /// rows deleted or newly marked per table.
    async fn reconcile(&self, package: &LoadPackage, schema: &Schema, job: &ReconcileJob<'_>) -> Result<Vec<(String, u64)>, DestinationError> {
        let Some(root) = job.chain.first().map(String::as_str) else { return Ok(Vec::new()) };
        let root_lake = LakeTable::open(&self.bucket, self.ds(), root).await?.with_app(RECONCILE_APP_ID);
        if !root_lake.exists() || root_lake.committed(self.load_id).await? {
            return Ok(Vec::new());
        }
        let mut keys: HashSet<String> = HashSet::new();
        let mut buf = String::new();
        package.for_each_key_batch::<DestinationError>(job.resource, |b| {
            let texts = Texts::of(&b, job.columns, job.resource)?;
            for r in 0..b.num_rows() {
                if let Some(k) = texts.get(r, &mut buf) {
                    keys.insert(k.to_string());
                }
            }
            Ok(())
        })?;
        let columns = Self::target_columns(schema, root, root_lake.columns()?, true);
        let dlt_id = vec!["_dlt_id".to_string()];
        let soft = job.mode == DeleteMode::Soft;
        let mut projection: Vec<&str> = job.columns.iter().map(String::as_str).collect();
        projection.push(if soft { DELETED_AT_COLUMN } else { "_dlt_id" });
        let target = files::arrow_schema(&columns);
        let mut sink = Sink::new(self, root, &columns, FileFormat::Parquet, schema).tagged("reconcile");
        let mut removes = Vec::new();
        let mut gone: HashSet<String> = HashSet::new();
        let mut changed = 0u64;
        let at = job.at.timestamp_micros();
        for f in root_lake.active_files().await? {
            let bytes = self.read_file(root, &f).await?;
            // Which rows change: gone (hard), or to be marked or unmarked (soft).
            let mut affected = false;
            for b in files::read_parquet(bytes.clone(), Some(projection.as_slice())).map_err(|e| file_err(&format!("reading {}", f.path), e))? {
                let present = Texts::of(&b, job.columns, root)?.in_set(b.num_rows(), &keys);
                let marked = b.column_by_name(DELETED_AT_COLUMN).cloned();
                let is_marked = |r: usize| marked.as_ref().is_some_and(|m| m.is_valid(r));
                affected |= (0..b.num_rows()).any(|r| if soft { present[r] == is_marked(r) } else { !present[r] });
            }
            if !affected {
                continue;
            }
            for b in files::read_parquet(bytes, None).map_err(|e| file_err(&format!("reading {}", f.path), e))? {
                let b = files::conform(&b, &target).map_err(|e| file_err(&format!("reading {}", f.path), e))?;
                let present = Texts::of(&b, job.columns, root)?.in_set(b.num_rows(), &keys);
                if soft {
                    let (b, marked) = mark_deleted(&b, &present, at)?;
                    changed += marked;
                    sink.push(&b).await?;
                } else {
                    let ids = Texts::of(&b, &dlt_id, root)?;
                    for r in (0..b.num_rows()).filter(|r| !present[*r]) {
                        changed += 1;
                        if let Some(id) = ids.get(r, &mut buf) {
                            gone.insert(id.to_string());
                        }
                    }
                    sink.push(&filter(&b, present)?).await?;
                }
            }
            removes.push(f.remove);
        }
        let files = sink.finish(false).await?;
        let mut out = Vec::new();
        if !gone.is_empty() {
            let root_id = vec!["_dlt_root_id".to_string()];
            for child in job.chain.iter().skip(1).rev() {
                let lake = LakeTable::open(&self.bucket, self.ds(), child).await?.with_app(RECONCILE_APP_ID);
                if !lake.exists() || lake.committed(self.load_id).await? {
                    continue;
                }
                let child_columns = Self::target_columns(schema, child, lake.columns()?, true);
                let mut child_sink = Sink::new(self, child, &child_columns, FileFormat::Parquet, schema).tagged("reconcile");
                let mut child_removes = Vec::new();
                let mut deleted = 0u64;
                for f in lake.active_files().await? {
                    let bytes = self.read_file(child, &f).await?;
                    let mut affected = false;
                    for b in files::read_parquet(bytes.clone(), Some(&["_dlt_root_id"][..])).map_err(|e| file_err(&format!("reading {}", f.path), e))? {
                        affected |= Texts::of(&b, &root_id, child)?.in_set(b.num_rows(), &gone).contains(&true);
                    }
                    if !affected {
                        continue;
                    }
                    for b in files::read_parquet(bytes, None).map_err(|e| file_err(&format!("reading {}", f.path), e))? {
                        let hit = Texts::of(&b, &root_id, child)?.in_set(b.num_rows(), &gone);
                        deleted += hit.iter().filter(|h| **h).count() as u64;
                        child_sink.push(&filter(&b, hit.into_iter().map(|h| !h).collect())?).await?;
                    }
                    child_removes.push(f.remove);
                }
                let child_files = child_sink.finish(false).await?;
                if !child_removes.is_empty() {
                    lake.commit(self.load_id, &child_columns, CommitKind::Merge, child_removes, &child_files).await?;
                }
                out.push((child.clone(), deleted));
            }
        }
        if !removes.is_empty() {
            root_lake.commit(self.load_id, &columns, CommitKind::Merge, removes, &files).await?;
        }
        out.push((root.to_string(), changed));
        Ok(out)
    }

    /// Merge a chain (`delete-insert` or `upsert`, with dlt's `hard_delete` and `dedup_sort`): see the
    /// module docs and docs/history.md for the semantics, which are the SQL destinations'. Returns rows
    /// per table.
    async fn merge(&self, package: &LoadPackage, schema: &Schema, job: &MergeJob<'_>, dropped: &HashSet<&str>) -> Result<Vec<(String, u64)>, DestinationError> {
        let (chain, key) = (job.chain, job.key);
        let Some(root) = chain.first().map(|c| c.name.as_str()) else { return Ok(Vec::new()) };
        let root_lake = LakeTable::open(&self.bucket, self.ds(), root).await?;
        if root_lake.committed(self.load_id).await? {
            // The root commits last: the whole chain is in.
            return Ok(Vec::new());
        }
        let fresh = dropped.contains(root) || !root_lake.exists();
        let existing = if fresh { Vec::new() } else { root_lake.columns()? };
        let root_columns = Self::target_columns(schema, root, existing, true);
        let target = files::arrow_schema(&root_columns);

        // The package's roots as one batch with the table's columns.
        let conformed = package
            .batches(root)
            .map_err(DestinationError::from)?
            .iter()
            .map(|b| files::conform(b, &target).map_err(|e| file_err(&format!("merging {root}"), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let staged = arrow::compute::concat_batches(&target, &conformed).map_err(|e| DestinationError::new(KIND, format!("merging {root}: {e}")))?;
        drop(conformed);
        let rows = staged.num_rows();
        let dlt_id = vec!["_dlt_id".to_string()];
        let staged_keys = Texts::of(&staged, key, root)?;
        let staged_ids = Texts::of(&staged, &dlt_id, root)?;
        // One winner per key: the last extracted, or the first in `dedup_sort` order (NULLs last, ties
        // to the first extracted).
        let better = match job.dedup {
            Dedup::LastExtracted => None,
            Dedup::Sort { column, order } => {
                let col = staged.column_by_name(column).cloned().unwrap_or_else(|| arrow::array::new_null_array(&A::Utf8, rows));
                let opts = arrow::compute::SortOptions { descending: *order == SortOrder::Desc, nulls_first: false };
                Some(arrow::array::make_comparator(col.as_ref(), col.as_ref(), opts).map_err(|e| DestinationError::new(KIND, format!("dedup_sort on {root}.{column}: {e}")))?)
            }
        };
        let mut winner: HashMap<String, usize> = HashMap::new();
        let mut keyless: Vec<usize> = Vec::new();
        let mut buf = String::new();
        for r in 0..rows {
            match staged_keys.get(r, &mut buf) {
                // A NULL key matches nothing: the row is inserted as it is.
                None => keyless.push(r),
                Some(k) => match (winner.get(k), &better) {
                    (Some(&w), Some(cmp)) if cmp(r, w) != std::cmp::Ordering::Less => {}
                    _ => {
                        winner.insert(k.to_string(), r);
                    }
                },
            }
        }
        // hard_delete: the winner is a delete (bool columns: only `true`; others: any value).
        let flags = job.hard_delete.and_then(|h| staged.column_by_name(&h.column).cloned().map(|c| (h.boolean, c)));
        let deleted = |r: usize| match &flags {
            None => false,
            Some((true, c)) => c.as_any().downcast_ref::<BooleanArray>().is_some_and(|b| b.is_valid(r) && b.value(r)),
            Some((false, c)) => c.is_valid(r),
        };
        let keys: HashSet<String> = winner.keys().cloned().collect();

        // The root: files holding a staged key are rewritten without those rows.
        let mut root_sink = Sink::new(self, root, &root_columns, FileFormat::Parquet, schema);
        let mut replaced_ids: HashSet<String> = HashSet::new();
        let mut existed: HashSet<String> = HashSet::new();
        let mut root_removes = Vec::new();
        if !fresh {
            let mut projection: Vec<&str> = key.iter().map(String::as_str).collect();
            // Key and _dlt_id only: files without a staged key are not decoded further.
            projection.push("_dlt_id");
            for f in root_lake.active_files().await? {
                let bytes = self.read_file(root, &f).await?;
                let mut affected = false;
                for b in files::read_parquet(bytes.clone(), Some(projection.as_slice())).map_err(|e| file_err(&format!("reading {}", f.path), e))? {
                    let found = Texts::of(&b, key, root)?;
                    let ids = Texts::of(&b, &dlt_id, root)?;
                    let mut idb = String::new();
                    for r in 0..b.num_rows() {
                        let Some(k) = found.get(r, &mut buf).filter(|k| keys.contains(*k)) else { continue };
                        affected = true;
                        existed.insert(k.to_string());
                        if let Some(id) = ids.get(r, &mut idb) {
                            replaced_ids.insert(id.to_string());
                        }
                    }
                }
                if !affected {
                    continue;
                }
                for b in files::read_parquet(bytes, None).map_err(|e| file_err(&format!("reading {}", f.path), e))? {
                    let survive = Texts::of(&b, key, root)?.in_set(b.num_rows(), &keys).into_iter().map(|hit| !hit).collect();
                    root_sink.push(&filter(&b, survive)?).await?;
                }
                root_removes.push(f.remove);
            }
        } else if root_lake.exists() {
            root_removes = root_lake.active_files().await?.into_iter().map(|f| f.remove).collect();
        }
        // Inserted: unflagged winners; with upsert also flagged ones whose key the table did not have
        // (dlt's MERGE … WHEN NOT MATCHED THEN INSERT). Children follow the unflagged winners.
        let upsert_flags = job.strategy == MergeStrategy::Upsert && job.hard_delete.is_some();
        let mut keep = vec![false; rows];
        let mut winner_ids: HashSet<String> = HashSet::new();
        for r in keyless.iter().copied() {
            keep[r] = true;
        }
        for (k, &r) in &winner {
            let flagged = deleted(r);
            keep[r] = !flagged || (upsert_flags && !existed.contains(k));
            if !flagged {
                if let Some(id) = staged_ids.get(r, &mut buf) {
                    winner_ids.insert(id.to_string());
                }
            }
        }
        for r in keyless {
            if let Some(id) = staged_ids.get(r, &mut buf) {
                winner_ids.insert(id.to_string());
            }
        }
        let inserted = filter(&staged, keep)?;
        let root_rows = inserted.num_rows() as u64;
        root_sink.push(&inserted).await?;
        drop((staged, inserted));
        let root_files = root_sink.finish(false).await?;

        // Children first (a retry recomputes the replaced roots from the root, which commits last).
        let mut report = vec![(root.to_string(), root_rows)];
        for child in chain.iter().skip(1).rev() {
            let name = child.name.as_str();
            let lake = LakeTable::open(&self.bucket, self.ds(), name).await?;
            if lake.committed(self.load_id).await? {
                continue;
            }
            let fresh = dropped.contains(name) || !lake.exists();
            let existing = if fresh { Vec::new() } else { lake.columns()? };
            let columns = Self::target_columns(schema, name, existing, true);
            let mut sink = Sink::new(self, name, &columns, FileFormat::Parquet, schema);
            let mut removes = Vec::new();
            let root_id = vec!["_dlt_root_id".to_string()];
            if fresh {
                if lake.exists() {
                    removes = lake.active_files().await?.into_iter().map(|f| f.remove).collect();
                }
            } else if !replaced_ids.is_empty() {
                for f in lake.active_files().await? {
                    let bytes = self.read_file(name, &f).await?;
                    let mut affected = false;
                    for b in files::read_parquet(bytes.clone(), Some(&["_dlt_root_id"][..])).map_err(|e| file_err(&format!("reading {}", f.path), e))? {
                        affected |= Texts::of(&b, &root_id, name)?.in_set(b.num_rows(), &replaced_ids).contains(&true);
                    }
                    if !affected {
                        continue;
                    }
                    for b in files::read_parquet(bytes, None).map_err(|e| file_err(&format!("reading {}", f.path), e))? {
                        let survive = Texts::of(&b, &root_id, name)?.in_set(b.num_rows(), &replaced_ids).into_iter().map(|hit| !hit).collect();
                        sink.push(&filter(&b, survive)?).await?;
                    }
                    removes.push(f.remove);
                }
            }
            let keep_children = |b: &RecordBatch| -> Result<Vec<bool>, DestinationError> {
                Ok(Texts::of(b, &root_id, name)?.in_set(b.num_rows(), &winner_ids))
            };
            let rows = if job.strategy == MergeStrategy::Upsert {
                // Upsert child ids derive from the key: a duplicate key's children share them, one each
                // (the last extracted).
                self.push_last_per_id(package, name, &mut sink, &keep_children).await?
            } else {
                self.push_package_rows(package, name, &mut sink, Some(&keep_children)).await?
            };
            let files = sink.finish(false).await?;
            if lake.exists() && !fresh && removes.is_empty() && files.is_empty() && lake.columns()? == columns {
                continue;
            }
            let kind = if fresh { CommitKind::Overwrite } else { CommitKind::Merge };
            lake.commit(self.load_id, &columns, kind, removes, &files).await?;
            report.push((name.to_string(), rows));
        }
        let kind = if fresh { CommitKind::Overwrite } else { CommitKind::Merge };
        root_lake.commit(self.load_id, &root_columns, kind, root_removes, &root_files).await?;
        Ok(report)
    }
}

/// A merge job this destination does not apply (scd2).
fn unsupported_merge(chain: &[ChainTable]) -> DestinationError {
    let table = chain.first().map(|c| c.name.as_str()).unwrap_or_default();
    DestinationError::new(
        KIND,
        format!("table `{table}` is merged with the scd2 strategy, which this destination does not apply; use delete-insert or upsert for it, or another destination"),
    )
}

/// A reconciliation of a resource's chain ([`LoadJob::Reconcile`]).
struct ReconcileJob<'a> {
    resource: &'a str,
    chain: &'a [String],
    columns: &'a [String],
    mode: DeleteMode,
    at: &'a chrono::DateTime<chrono::Utc>,
}

/// Soft deletion on a batch with the table's columns: rows not `present` get `_dlt_deleted_at` = `at`
/// unless marked already, present rows lose their mark. Returns the batch and the rows newly marked.
fn mark_deleted(batch: &RecordBatch, present: &[bool], at: i64) -> Result<(RecordBatch, u64), DestinationError> {
    let Some(idx) = batch.schema().index_of(DELETED_AT_COLUMN).ok() else {
        return Err(DestinationError::new(KIND, format!("the table has no {DELETED_AT_COLUMN} column for soft deletes; drop it and load it again")));
    };
    // No casts: a zone name (`UTC`) is not parsed without chrono-tz; the values are UTC microseconds.
    let (A::Timestamp(arrow::datatypes::TimeUnit::Microsecond, tz), Some(old)) =
        (batch.schema().field(idx).data_type().clone(), batch.column(idx).as_any().downcast_ref::<arrow::array::TimestampMicrosecondArray>().cloned())
    else {
        return Err(DestinationError::new(KIND, format!("{DELETED_AT_COLUMN} is not a timestamp; drop the table and load it again")));
    };
    let mut marked = 0u64;
    let values: arrow::array::TimestampMicrosecondArray = (0..batch.num_rows())
        .map(|r| match (present[r], old.is_valid(r)) {
            (true, _) => None,
            (false, true) => Some(old.value(r)),
            (false, false) => {
                marked += 1;
                Some(at)
            }
        })
        .collect();
    let column: ArrayRef = std::sync::Arc::new(values.with_timezone_opt(tz));
    let mut columns = batch.columns().to_vec();
    columns[idx] = column;
    let out = RecordBatch::try_new(batch.schema(), columns).map_err(|e| DestinationError::new(KIND, format!("writing {DELETED_AT_COLUMN}: {e}")))?;
    Ok((out, marked))
}

/// A `delete-insert` or `upsert` merge of a chain ([`LoadJob::Merge`]).
struct MergeJob<'a> {
    chain: &'a [ChainTable],
    key: &'a [String],
    strategy: MergeStrategy,
    hard_delete: Option<&'a HardDelete>,
    dedup: &'a Dedup,
}
