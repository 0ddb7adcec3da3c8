//! The filesystem destination read back for `pipeline show`'s dashboard: a [`DatasetReader`] over an
//! in-memory DuckDB snapshot of the dataset's **current** rows.
//!
//! A snapshot is built by reading the bucket, never by changing it: every Delta table at its current
//! version (the files its log names), every data file of a plain table (Parquet or dlt's gzipped JSONL),
//! and the bookkeeping rows of `_dlt_loads`, `_dlt_pipeline_state` and `_dlt_version`. Each table is
//! created as the DuckDB destination would create it from the stored schema (same type names, NOT NULL
//! where the stored schema says so and the rows agree), so pages, charts and the SQL box behave as on a
//! DuckDB dataset ([`SqlDialect::DuckDb`]). Parquet goes in as Arrow batches through DuckDB's appender;
//! JSONL rows go in as text and are cast by the appender to the column types.
//!
//! [`FilesystemReaders`] keeps the newest snapshot and hands out readers on it: each
//! [`FilesystemReaders::open`] lists the dataset's files (one `LIST` per 1,000 objects on S3) and
//! rebuilds the snapshot only when that listing changed (a load, a merge, a dropped table). The snapshot
//! holds the whole dataset in memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow::datatypes::{DataType as A, Field, Schema as ArrowSchema};
use duckdb::Connection;
use futures::TryStreamExt as _;
use indexmap::IndexMap;
use object_store::path::Path;
use pipeline_engine::load::{DestinationError, StoredState, TableInfo};
use pipeline_engine::schema::{bookkeeping_tables, Schema};
use serde_json::{Map, Value};

use super::delta::LakeTable;
use super::store::{store_err, Bucket};
use super::{files, layout, load, FilesystemConfig, Location, KIND};
use crate::duckdb::duckdb_type;
use crate::read::{ColumnInfo, DatasetReader, DuckDbReader, LoadRow, QueryRows, SqlDialect};
use crate::sql::{ident, qualified};

/// JSONL rows appended per batch.
const JSONL_BATCH_ROWS: usize = 64 * 1024;

fn db_err(context: &str) -> impl FnOnce(duckdb::Error) -> DestinationError + '_ {
    move |e| DestinationError::new(KIND, format!("building the in-memory snapshot: {context}: {e}")).with_source(e)
}

/// A dataset of the filesystem destination, read through an in-memory DuckDB snapshot of its current
/// rows (see the module docs). Queries run in DuckDB's dialect; the lake is never written.
#[derive(Debug)]
pub struct FilesystemReader {
    inner: DuckDbReader,
}

impl FilesystemReader {
    /// Read the dataset of `config` into a new snapshot (no cache: [`FilesystemReaders`] keeps one
    /// between calls).
    pub fn open(config: &FilesystemConfig) -> Result<Self, DestinationError> {
        FilesystemReaders::new(config)?.open()
    }
}

impl DatasetReader for FilesystemReader {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn dialect(&self) -> SqlDialect {
        self.inner.dialect()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn dataset_name(&self) -> &str {
        self.inner.dataset_name()
    }

    fn table_ref(&self, table: &str) -> String {
        self.inner.table_ref(table)
    }

    fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
        self.inner.tables()
    }

    fn columns(&mut self) -> Result<Vec<ColumnInfo>, DestinationError> {
        self.inner.columns()
    }

    fn loads(&mut self, limit: usize) -> Result<Vec<LoadRow>, DestinationError> {
        self.inner.loads(limit)
    }

    fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        self.inner.stored_state(pipeline_name)
    }

    fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        self.inner.stored_schema(schema_name)
    }

    fn query(&mut self, sql: &str, max_rows: usize) -> Result<QueryRows, DestinationError> {
        self.inner.query(sql, max_rows)
    }
}

/// One object of the dataset as listed: path, size, modification time (µs), entity tag. Two equal
/// listings are the same files.
type ListedFile = (String, u64, i64, Option<String>);

struct Snapshot {
    listing: Vec<ListedFile>,
    conn: Connection,
}

#[derive(Default)]
struct Cache {
    bucket: Option<Bucket>,
    snapshot: Option<Snapshot>,
}

/// Readers of one filesystem dataset that share the newest in-memory snapshot: the dashboard's reader
/// factory. [`FilesystemReaders::open`] blocks (it drives the bucket's client on a runtime of its own):
/// call it from a thread that is not running async tasks, such as tokio's blocking pool.
pub struct FilesystemReaders {
    config: FilesystemConfig,
    location: String,
    runtime: Option<tokio::runtime::Runtime>,
    cache: Mutex<Cache>,
    builds: AtomicU64,
}

impl std::fmt::Debug for FilesystemReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesystemReaders").field("location", &self.location).field("dataset", &self.config.dataset_name).finish()
    }
}

impl Drop for FilesystemReaders {
    fn drop(&mut self) {
        // Never blocks, so dropping is fine anywhere (also inside async code).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl FilesystemReaders {
    /// Readers of the dataset of `config` (checked; the bucket is not contacted yet).
    pub fn new(config: &FilesystemConfig) -> Result<Self, DestinationError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DestinationError::new(KIND, format!("starting the reader's runtime: {e}")))?;
        Ok(FilesystemReaders {
            config: config.clone(),
            location: config.display_url(),
            runtime: Some(runtime),
            cache: Mutex::new(Cache::default()),
            builds: AtomicU64::new(0),
        })
    }

    /// Whether the bucket holds the dataset (a folder with at least one table). A local bucket that does
    /// not exist is not created.
    pub fn dataset_exists(&self) -> Result<bool, DestinationError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = self.bucket(&mut cache)? else {
            return Ok(false);
        };
        let folder = bucket.path(&[&self.config.dataset_name]);
        Ok(!self.block_on(async { bucket.folders(&folder).await })?.is_empty())
    }

    /// A reader on the dataset's current rows: the kept snapshot when the dataset's files are the same as
    /// when it was built, else a new one. Fails when the bucket has no such dataset.
    pub fn open(&self) -> Result<FilesystemReader, DestinationError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = self.bucket(&mut cache)? else {
            return Err(self.no_dataset());
        };
        let ds = self.config.dataset_name.clone();
        let listing = self.block_on(listing(&bucket, &ds))?;
        if !listing.iter().any(|(path, ..)| path.contains('/')) {
            return Err(self.no_dataset());
        }
        if cache.snapshot.as_ref().is_none_or(|s| s.listing != listing) {
            // The old snapshot goes first: one in memory (plus those of readers still open).
            cache.snapshot = None;
            let conn = self.block_on(build(&bucket, &ds, &listing))?;
            self.builds.fetch_add(1, Ordering::Relaxed);
            cache.snapshot = Some(Snapshot { listing, conn });
        }
        let snapshot = cache.snapshot.as_ref().ok_or_else(|| DestinationError::new(KIND, "internal error: no snapshot"))?;
        let conn = snapshot.conn.try_clone().map_err(db_err("opening a connection"))?;
        Ok(FilesystemReader { inner: DuckDbReader::over(conn, KIND, self.location.clone(), ds) })
    }

    /// How many snapshots were built so far (the lake was read that many times).
    pub fn snapshots_built(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// The opened bucket; `None` for a local directory that does not exist.
    fn bucket(&self, cache: &mut Cache) -> Result<Option<Bucket>, DestinationError> {
        if cache.bucket.is_none() {
            let location = self.config.location()?;
            if let Location::Local(dir) = &location {
                if !dir.is_dir() {
                    return Ok(None);
                }
            }
            cache.bucket = Some(Bucket::open(&location, &self.config.credentials)?);
        }
        Ok(cache.bucket.clone())
    }

    fn no_dataset(&self) -> DestinationError {
        DestinationError::new(
            KIND,
            format!(
                "no dataset {} in {}: nothing was loaded there yet; run `personio-pipeline run --destination filesystem` with this bucket_url and dataset first",
                self.config.dataset_name, self.location
            ),
        )
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = Result<T, DestinationError>>) -> Result<T, DestinationError> {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            None => Err(DestinationError::new(KIND, "internal error: the reader was shut down")),
        }
    }
}

/// Every object under `<dataset>/`, as paths relative to it, sorted.
async fn listing(bucket: &Bucket, dataset: &str) -> Result<Vec<ListedFile>, DestinationError> {
    let folder = bucket.path(&[dataset]);
    let prefix = format!("{folder}/");
    let metas: Vec<object_store::ObjectMeta> = match bucket.root.list(Some(&folder)).try_collect().await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(store_err(&format!("listing {folder}"), e)),
    };
    let mut out: Vec<ListedFile> = metas
        .into_iter()
        .map(|m| {
            let full = m.location.to_string();
            let rel = full.strip_prefix(&prefix).unwrap_or(&full).to_string();
            (rel, m.size, m.last_modified.timestamp_micros(), m.e_tag)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A table of the snapshot being built: its columns so far (created on the first batch, or at the end
/// from the stored schema).
struct TableBuilder<'a> {
    conn: &'a Connection,
    schema: String,
    name: String,
    /// Column name → DuckDB type.
    columns: IndexMap<String, String>,
    /// Columns the stored schema declares NOT NULL.
    not_null: Vec<String>,
    created: bool,
}

impl<'a> TableBuilder<'a> {
    fn new(conn: &'a Connection, schema: &str, name: &str) -> Self {
        TableBuilder { conn, schema: schema.to_string(), name: name.to_string(), columns: IndexMap::new(), not_null: Vec::new(), created: false }
    }

    /// Declare a column unless the table has it already.
    fn declare(&mut self, name: &str, sql_type: String, nullable: bool) {
        if !self.columns.contains_key(name) {
            self.columns.insert(name.to_string(), sql_type);
            if !nullable {
                self.not_null.push(name.to_string());
            }
        }
    }

    fn qualified(&self) -> String {
        qualified(&self.schema, &self.name)
    }

    fn create(&mut self) -> Result<(), DestinationError> {
        if self.created || self.columns.is_empty() {
            return Ok(());
        }
        // Every column nullable at first: older files may lack a column the schema now has.
        let defs: Vec<String> = self.columns.iter().map(|(n, t)| format!("{} {t}", ident(n))).collect();
        let sql = format!("CREATE TABLE {} ({})", self.qualified(), defs.join(", "));
        self.conn.execute_batch(&sql).map_err(db_err(&format!("creating {}", self.name)))?;
        self.created = true;
        Ok(())
    }

    /// Append a batch, adding the columns the table lacks (typed by their Arrow type).
    fn append(&mut self, batch: RecordBatch) -> Result<(), DestinationError> {
        if batch.num_rows() == 0 || batch.num_columns() == 0 {
            return Ok(());
        }
        let arrow_schema = batch.schema();
        for f in arrow_schema.fields() {
            if self.columns.contains_key(f.name()) {
                continue;
            }
            let t = sql_type(f.data_type());
            if self.created {
                let sql = format!("ALTER TABLE {} ADD COLUMN {} {t}", self.qualified(), ident(f.name()));
                self.conn.execute_batch(&sql).map_err(db_err(&format!("adding {} to {}", f.name(), self.name)))?;
            }
            self.columns.insert(f.name().clone(), t);
        }
        self.create()?;
        let names: Vec<&str> = arrow_schema.fields().iter().map(|f| f.name().as_str()).collect();
        let what = format!("appending to {}", self.name);
        let mut app = self.conn.appender_with_columns_to_db(&self.name, &self.schema, &names).map_err(db_err(&what))?;
        app.append_record_batch(batch).map_err(db_err(&what))?;
        app.flush().map_err(db_err(&what))
    }

    /// Create the table if no batch did, then mark the stored schema's NOT NULL columns where no row has a
    /// NULL (a column added after older files were written stays nullable, as on DuckDB).
    fn finish(mut self) -> Result<(), DestinationError> {
        self.create()?;
        for c in &self.not_null {
            let sql = format!("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL", self.qualified(), ident(c));
            // Refused when a row has NULL there: the column then stays nullable.
            let _ = self.conn.execute_batch(&sql);
        }
        Ok(())
    }
}

/// DuckDB's type for an Arrow type of a file (columns the stored schema does not know).
fn sql_type(t: &A) -> String {
    match t {
        A::Int64 => "BIGINT".into(),
        A::Int32 => "INTEGER".into(),
        A::Int16 => "SMALLINT".into(),
        A::Int8 => "TINYINT".into(),
        A::Float64 => "DOUBLE".into(),
        A::Float32 => "FLOAT".into(),
        A::Boolean => "BOOLEAN".into(),
        A::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        A::Timestamp(_, None) => "TIMESTAMP".into(),
        A::Date32 | A::Date64 => "DATE".into(),
        A::Time32(_) | A::Time64(_) => "TIME".into(),
        A::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        A::Binary | A::LargeBinary => "BLOB".into(),
        _ => "VARCHAR".into(),
    }
}

/// JSON rows as a batch of text columns (in the order keys first appear): strings as they are, other
/// values — and every value of a `json_columns` column — as JSON text. DuckDB's appender casts the text
/// to the table's column types.
fn text_batch(rows: &[Map<String, Value>], json_columns: &HashSet<String>) -> Result<RecordBatch, DestinationError> {
    let mut names: Vec<&String> = Vec::new();
    let mut seen: HashSet<&String> = HashSet::new();
    for r in rows {
        for k in r.keys() {
            if seen.insert(k) {
                names.push(k);
            }
        }
    }
    let text = |v: &Value, json: bool| match v {
        Value::Null => None,
        Value::String(s) if !json => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let columns: Vec<ArrayRef> = names
        .iter()
        .map(|n| {
            let json = json_columns.contains(*n);
            Arc::new(rows.iter().map(|r| r.get(*n).and_then(|v| text(v, json))).collect::<StringArray>()) as ArrayRef
        })
        .collect();
    let schema = Arc::new(ArrowSchema::new(names.iter().map(|n| Field::new(*n, A::Utf8, true)).collect::<Vec<_>>()));
    RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(rows.len())))
        .map_err(|e| DestinationError::new(KIND, format!("building the in-memory snapshot: {e}")))
}

/// The JSON objects of a (gzipped or plain) JSONL file.
fn json_lines(path: &Path, bytes: &[u8]) -> Result<Vec<Map<String, Value>>, DestinationError> {
    let mut text = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read as _;
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut text).map_err(|e| DestinationError::new(KIND, format!("reading {path}: {e}")).with_source(e))?;
    } else {
        text.extend_from_slice(bytes);
    }
    text.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| match serde_json::from_slice(l) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(DestinationError::new(KIND, format!("{path} has a line that is not a JSON object"))),
            Err(e) => Err(DestinationError::new(KIND, format!("{path} is not JSONL ({e})"))),
        })
        .collect()
}

async fn get(bucket: &Bucket, path: &Path) -> Result<bytes::Bytes, DestinationError> {
    bucket.get(path).await?.ok_or_else(|| DestinationError::new(KIND, format!("{path} disappeared while reading (a load in progress?); reload the page")))
}

/// The bookkeeping rows of one folder (`_dlt_loads`, …), one JSON object per file.
async fn bookkeeping_rows(bucket: &Bucket, dataset: &str, table: &str, listing: &[ListedFile]) -> Result<Vec<Map<String, Value>>, DestinationError> {
    let mut out = Vec::new();
    for (rel, ..) in listing {
        let Some(name) = rel.strip_prefix(table).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        if name.contains('/') || layout::parse_bookkeeping(name).is_none() {
            continue;
        }
        let path = bucket.path(&[dataset, table, name]);
        let bytes = get(bucket, &path).await?;
        out.extend(json_lines(&path, &bytes)?);
    }
    Ok(out)
}

/// The newest stored schema of each name in `_dlt_version` rows.
fn stored_schemas(versions: &[Map<String, Value>]) -> Vec<Schema> {
    let mut newest: HashMap<&str, (i64, &str, &Map<String, Value>)> = HashMap::new();
    for v in versions {
        let (Some(name), Some(version)) = (v.get("schema_name").and_then(Value::as_str), v.get("version").and_then(Value::as_i64)) else {
            continue;
        };
        let at = v.get("inserted_at").and_then(Value::as_str).unwrap_or_default();
        if newest.get(name).is_none_or(|(nv, na, _)| (version, at) > (*nv, *na)) {
            newest.insert(name, (version, at, v));
        }
    }
    newest
        .values()
        .filter_map(|(_, _, v)| {
            let text = v.get("schema")?.as_str()?;
            Schema::from_dlt_json(&serde_json::from_str(text).ok()?)
        })
        .collect()
}

/// Read the dataset's current rows into a new in-memory DuckDB.
async fn build(bucket: &Bucket, dataset: &str, listing: &[ListedFile]) -> Result<Connection, DestinationError> {
    let settings = duckdb::Config::default()
        .enable_external_access(false)
        .and_then(|c| c.enable_autoload_extension(false))
        .and_then(|c| c.with("lock_configuration", "true"))
        .map_err(db_err("configuring DuckDB"))?;
    let conn = Connection::open_in_memory_with_flags(settings).map_err(db_err("opening DuckDB"))?;
    conn.execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(dataset))).map_err(db_err("creating the schema"))?;
    let mut folders: Vec<&str> = listing.iter().filter_map(|(rel, ..)| rel.split_once('/').map(|(t, _)| t)).collect();
    folders.dedup();

    conn.execute_batch("BEGIN TRANSACTION").map_err(db_err("starting a transaction"))?;
    // Bookkeeping first: the stored schema types the data tables.
    let mut rows_of: HashMap<&str, Vec<Map<String, Value>>> = HashMap::new();
    for (table, _) in bookkeeping_tables() {
        if folders.contains(&table) {
            rows_of.insert(table, bookkeeping_rows(bucket, dataset, table, listing).await?);
        }
    }
    let schemas = stored_schemas(rows_of.get(layout::VERSION).map(Vec::as_slice).unwrap_or_default());
    let mut tables: Vec<TableBuilder> = Vec::new();
    for (table, columns) in bookkeeping_tables() {
        let Some(rows) = rows_of.get_mut(table) else {
            continue;
        };
        if table == layout::STATE {
            for r in rows.iter_mut() {
                // dlt before 0.5 named the load id `dlt_load_id`; its files carry no `_dlt_id`.
                if !r.contains_key("_dlt_load_id") {
                    if let Some(id) = r.remove("dlt_load_id") {
                        r.insert("_dlt_load_id".into(), id);
                    }
                }
                r.entry("_dlt_id").or_insert_with(|| Value::String(String::new()));
            }
        }
        let mut t = TableBuilder::new(&conn, dataset, table);
        for c in &columns {
            t.declare(&c.name, duckdb_type(c.data_type).to_string(), c.nullable);
        }
        t.create()?;
        t.append(text_batch(rows, &HashSet::new())?)?;
        tables.push(t);
    }

    let bookkeeping: Vec<&str> = bookkeeping_tables().into_iter().map(|(b, _)| b).collect();
    for table in folders.iter().copied().filter(|t| !bookkeeping.contains(t)) {
        let mut t = TableBuilder::new(&conn, dataset, table);
        let mut json_columns = HashSet::new();
        if let Some(st) = schemas.iter().rev().find_map(|s| s.tables.get(table)) {
            for c in st.columns.values() {
                t.declare(&c.name, duckdb_type(c.data_type).to_string(), c.nullable);
                if c.data_type == pipeline_engine::schema::DataType::Json {
                    json_columns.insert(c.name.clone());
                }
            }
        }
        let lake = LakeTable::open(bucket, dataset, table).await?;
        let paths: Vec<Path> = if lake.exists() {
            for (name, ty) in lake.columns()? {
                t.declare(&name, sql_type(&ty), true);
            }
            lake.active_files().await?.iter().map(|f| load::file_path(bucket, dataset, table, &f.path)).collect()
        } else {
            listing
                .iter()
                .filter_map(|(rel, ..)| rel.strip_prefix(table)?.strip_prefix('/'))
                .filter(|name| !name.contains('/') && (name.ends_with(".parquet") || name.ends_with(".jsonl.gz") || name.ends_with(".jsonl")))
                .map(|name| bucket.path(&[dataset, table, name]))
                .collect()
        };
        for path in paths {
            let bytes = get(bucket, &path).await?;
            if path.filename().is_some_and(|n| n.ends_with(".parquet")) {
                let batches = files::read_parquet(bytes, None).map_err(|e| DestinationError::new(KIND, format!("reading {path}: {e}")).with_source(e))?;
                for b in batches {
                    t.append(b)?;
                }
            } else {
                for chunk in json_lines(&path, &bytes)?.chunks(JSONL_BATCH_ROWS) {
                    t.append(text_batch(chunk, &json_columns)?)?;
                }
            }
        }
        tables.push(t);
    }
    conn.execute_batch("COMMIT").map_err(db_err("committing"))?;
    for t in tables {
        t.finish()?;
    }
    Ok(conn)
}
