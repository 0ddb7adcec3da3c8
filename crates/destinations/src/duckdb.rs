//! The DuckDB destination: `<pipeline_name>.duckdb`, one DuckDB schema per dataset.
//!
//! Rows arrive as Arrow batches and go in through DuckDB's appender (no row-by-row INSERTs). Each package
//! is one transaction running the engine's [`LoadPlan`] as rendered by [`crate::sql`] in the
//! [`DuckDbDialect`]: replace deletes and re-inserts inside it (readers see the old rows until commit),
//! merge goes through `<dataset>_staging` tables and delete-insert SQL in hash buckets of the key.
//!
//! DuckDB's API blocks, so every [`Destination`] call runs on tokio's blocking pool with the connection
//! moved there and back: the async runtime is never blocked.
//!
//! **Load during extract** ([`DuckDbConfig::load_during_extract`], on by default): the tables a load
//! creates (first load, full refresh) are created and appended batch by batch while the run still
//! extracts, in the load's open transaction, so DuckDB's compression of those rows overlaps the fetch
//! instead of following it. The database file is then held from the first normalized batch to the
//! commit, not only during the load.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use duckdb::Connection;
use pipeline_engine::load::{
    Capabilities, Destination, DestinationError, EarlyLoad, LoadInfo, LoadReport, StoredState, TableInfo,
};
use pipeline_engine::package::LoadPackage;
use pipeline_engine::plan::{Catalog, LoadPlan};
use pipeline_engine::schema::{DataType, MergeStrategy, Schema, Table, WriteDisposition};
use pipeline_engine::state::StateRow;

use crate::sql::{self, ident, literal, qualified, Dialect, EarlyTable, EarlyTables, Report, Step};
use crate::text::{strip_nul, NulReport};

const KIND: &str = "duckdb";

/// dlt's DuckDB type for a dlt data type.
pub fn duckdb_type(dt: DataType) -> &'static str {
    match dt {
        DataType::Text => "VARCHAR",
        DataType::Bigint => "BIGINT",
        DataType::Double => "DOUBLE",
        DataType::Bool => "BOOLEAN",
        DataType::Timestamp => "TIMESTAMP WITH TIME ZONE",
        DataType::Date => "DATE",
        DataType::Time => "TIME",
        DataType::Decimal => "DECIMAL(38,9)",
        DataType::Json => "JSON",
        DataType::Binary => "BLOB",
    }
}

/// Settings of the DuckDB destination.
#[derive(Debug, Clone)]
pub struct DuckDbConfig {
    /// The database file (`<pipeline_name>.duckdb` by default, in the current directory).
    pub path: PathBuf,
    /// Dataset name: the DuckDB schema holding the tables.
    pub dataset_name: String,
    /// DuckDB's `memory_limit` (e.g. `"512MB"`, `"4GB"`): the cap of its buffer pool. Above it, joins,
    /// aggregates and sorts spill to [`DuckDbConfig::temp_directory`]. `None` keeps DuckDB's default
    /// (80% of RAM).
    pub memory_limit: Option<String>,
    /// Where DuckDB spills (`None`: DuckDB's default, `<database file>.tmp`).
    pub temp_directory: Option<PathBuf>,
    /// Rows of a merge processed per step (the staged keys are split into hash buckets of about this
    /// size), which bounds the memory of the delete-insert independently of the package size.
    pub merge_chunk_rows: u64,
    /// How long opening the file waits while another process holds it (a reader between our loads),
    /// before failing with a "locked" error.
    pub lock_wait: std::time::Duration,
    /// Create and fill the tables a load creates while the run still extracts (see the module docs).
    /// `false` keeps the file closed until the extract ends, for readers that query it meanwhile.
    pub load_during_extract: bool,
    /// What a load during the extract may hold in DuckDB's memory, in MiB (`None`: no bound): the rows
    /// appended but not yet written (a table's rows stay in memory until they complete a row group of
    /// 122,880) and the written blocks DuckDB keeps. Once reached, the early load takes no more and the
    /// load step inserts the rest of each table, so a large first load does not hold several tables'
    /// uncompressed rows at once while it still extracts.
    pub early_load_memory_mib: Option<u64>,
    /// DuckDB's `memory_limit` while rows are appended — the load during the extract, a load's bulk
    /// inserts and a first merge's trimming of the tables it created — when lower than
    /// [`DuckDbConfig::memory_limit`] (which the rest of a load, merges into existing rows included, runs
    /// under). Appending needs no cache of the blocks just written, and a table's
    /// uncompressed rows beyond it go to the temp directory. `None`: `memory_limit` throughout.
    pub insert_memory_limit: Option<String>,
}

/// The default [`DuckDbConfig::lock_wait`].
pub const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The default [`DuckDbConfig::memory_limit`]: a 5M-record merge loads as fast under 256MB as under
/// 512MB (bench/run.sh), and the process then stays near 340 MiB whatever the package size.
pub const DEFAULT_MEMORY_LIMIT: &str = "256MB";

/// The default [`DuckDbConfig::early_load_memory_mib`]. Measured (docs/performance.md, fifth release
/// session): unbounded, `large`'s early load held ~100 MiB at once and its run peaked ~80 MiB above one
/// bounded at 16 MiB; the realistic tenant's wall time was the same with either.
pub const DEFAULT_EARLY_LOAD_MEMORY_MIB: u64 = 16;

/// The default [`DuckDbConfig::insert_memory_limit`]. Measured on `large` (docs/performance.md, fifth
/// release session): a first load's bulk inserts peaked ~40 MiB lower than under 256MB, as fast; a merge
/// of 762k changed rows under 64MB throughout took 4.1 s instead of 3.4 s, so merges keep `memory_limit`.
pub const DEFAULT_INSERT_MEMORY_LIMIT: &str = "64MB";

/// The default [`DuckDbConfig::merge_chunk_rows`].
pub const DEFAULT_MERGE_CHUNK_ROWS: u64 = 500_000;

impl DuckDbConfig {
    /// dlt's default: `<pipeline_name>.duckdb` in `dir`.
    pub fn for_pipeline(dir: &Path, pipeline_name: &str, dataset_name: &str) -> Self {
        Self::at(dir.join(format!("{pipeline_name}.duckdb")), dataset_name)
    }

    /// A database file at `path` with the default settings.
    pub fn at(path: impl Into<PathBuf>, dataset_name: &str) -> Self {
        DuckDbConfig {
            path: path.into(),
            dataset_name: dataset_name.to_string(),
            memory_limit: Some(DEFAULT_MEMORY_LIMIT.to_string()),
            temp_directory: None,
            merge_chunk_rows: DEFAULT_MERGE_CHUNK_ROWS,
            lock_wait: DEFAULT_LOCK_WAIT,
            load_during_extract: true,
            early_load_memory_mib: Some(DEFAULT_EARLY_LOAD_MEMORY_MIB),
            insert_memory_limit: Some(DEFAULT_INSERT_MEMORY_LIMIT.to_string()),
        }
    }

    /// Check the settings without touching the file.
    pub fn validate(&self) -> Result<(), DestinationError> {
        if self.dataset_name.trim().is_empty() {
            return Err(DestinationError::new(KIND, "the dataset name is empty; pass --dataset or set dataset_name"));
        }
        pipeline_engine::pipeline::validate_name("dataset", &self.dataset_name)
            .map_err(|e| DestinationError::new(KIND, e.to_string()))?;
        for (key, limit) in [("memory_limit", &self.memory_limit), ("insert_memory_limit", &self.insert_memory_limit)] {
            if let Some(limit) = limit.as_ref().filter(|l| !is_memory_size(l)) {
                return Err(DestinationError::new(KIND, format!("{key} {limit:?} is not a size such as \"512MB\" or \"4GB\"")));
            }
        }
        if self.merge_chunk_rows == 0 {
            return Err(DestinationError::new(KIND, "merge_chunk_rows must be at least 1"));
        }
        Ok(())
    }

    /// A destination for these settings. Nothing is opened yet: the database file is opened (and
    /// created) on first use and closed again by [`Destination::disconnect`], so other processes can
    /// read it between loads.
    pub fn build(&self) -> Result<DuckDbDestination, DestinationError> {
        self.validate()?;
        Ok(DuckDbDestination { conn: None, config: self.clone(), early: None })
    }

    /// Open (create) the database file with the configured settings.
    fn open(&self) -> Result<Connection, DestinationError> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| DestinationError::new(KIND, format!("cannot create {}: {e}", parent.display())))?;
        }
        let started = std::time::Instant::now();
        let conn = loop {
            match Connection::open(&self.path).map_err(|e| open_error(&self.path, e)) {
                Err(e) if e.locked && started.elapsed() < self.lock_wait => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => break other?,
            }
        };
        // Never reach out to the network for extensions: everything used is built in.
        let mut settings = vec!["SET autoinstall_known_extensions = false".to_string()];
        if let Some(limit) = &self.memory_limit {
            settings.push(format!("SET memory_limit = {}", literal(limit)));
        }
        if let Some(dir) = &self.temp_directory {
            settings.push(format!("SET temp_directory = {}", literal(&dir.to_string_lossy())));
        }
        conn.execute_batch(&settings.join(";\n"))
            .map_err(|e| DestinationError::new(KIND, format!("configuring DuckDB: {e}")).with_source(e))?;
        Ok(conn)
    }

    /// The `memory_limit` while appending: [`DuckDbConfig::insert_memory_limit`] when it is lower than
    /// [`DuckDbConfig::memory_limit`] (no limit counts as the highest), else `None` (no change).
    fn lower_insert_limit(&self) -> Option<&str> {
        let insert = self.insert_memory_limit.as_deref()?;
        let lower = match self.memory_limit.as_deref() {
            None => true,
            Some(limit) => matches!((memory_bytes(insert), memory_bytes(limit)), (Some(i), Some(l)) if i < l),
        };
        lower.then_some(insert)
    }
}

/// Bytes of a size [`is_memory_size`] accepts, with DuckDB's units (KB = 1000 bytes, KiB = 1024).
fn memory_bytes(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "b" | "bytes" => 1.0,
        "kb" | "kilobytes" => 1e3,
        "mb" | "megabytes" => 1e6,
        "gb" | "gigabytes" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1048576.0,
        "gib" => 1073741824.0,
        "tib" => 1099511627776.0,
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// `"512MB"`, `"4 GiB"`, `"1.5GB"`: a number and one of DuckDB's size units.
fn is_memory_size(text: &str) -> bool {
    memory_bytes(text).is_some_and(|n| n > 0.0)
}

fn open_error(path: &Path, e: duckdb::Error) -> DestinationError {
    let text = e.to_string();
    let mut err = DestinationError::new(KIND, format!("cannot open {}: {text}", path.display()));
    if text.contains("lock") {
        err.locked = true;
        err.message = format!(
            "{} is locked by another process ({text}); wait for it to finish",
            path.display()
        );
    }
    err.with_source(e)
}

/// The dlt type of each column of `batch` from its table's schema (text when unknown), for NUL removal.
fn column_types(batch: &arrow::record_batch::RecordBatch, table: Option<&Table>) -> Vec<DataType> {
    let of = |name: &str| table.and_then(|t| t.columns.get(name)).map(|c| c.data_type).unwrap_or(DataType::Text);
    batch.schema().fields().iter().map(|f| of(f.name())).collect()
}

fn sql_err(sql: &str) -> impl FnOnce(duckdb::Error) -> DestinationError + '_ {
    move |e| DestinationError::new(KIND, format!("{e} (in: {sql})")).with_source(e)
}

fn db_err(context: &str) -> impl FnOnce(duckdb::Error) -> DestinationError + '_ {
    move |e| DestinationError::new(KIND, format!("{context}: {e}")).with_source(e)
}

/// The DuckDB destination; connected only while in use (see [`DuckDbConfig::build`]).
pub struct DuckDbDestination {
    conn: Option<Connection>,
    config: DuckDbConfig,
    /// The load begun while extracting, its transaction open on `conn`.
    early: Option<Early>,
}

/// An early load in progress ([`Destination::begin_early_load`]).
#[derive(Debug)]
struct Early {
    load_id: String,
    /// The dataset's tables before the early load (the plan is built against them).
    catalog: Catalog,
    /// Tables dropped at its start.
    dropped: Vec<String>,
    /// Resources whose batches it takes.
    taken: Vec<String>,
    /// Tables created and filled so far.
    tables: EarlyTables,
    nul: NulReport,
}

impl std::fmt::Debug for DuckDbDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbDestination").field("config", &self.config).finish()
    }
}


/// DuckDB's SQL for the shared plan rendering ([`crate::sql`]).
#[derive(Debug, Clone)]
pub struct DuckDbDialect {
    /// [`DuckDbConfig::merge_chunk_rows`].
    pub merge_chunk_rows: u64,
}

impl Dialect for DuckDbDialect {
    fn type_name(&self, dt: DataType) -> &'static str {
        duckdb_type(dt)
    }

    fn staging_row_order(&self) -> &'static str {
        "rowid"
    }

    /// A table created and appended in one transaction numbers its rows in append order.
    fn merges_fresh_in_place(&self) -> bool {
        true
    }

    fn create_staging_table(&self, staging: &str, dataset: &str, table: &str) -> Vec<String> {
        vec![format!("CREATE OR REPLACE TABLE {} AS SELECT * FROM {} LIMIT 0", qualified(staging, table), qualified(dataset, table))]
    }

    fn create_table_as(&self, qualified: &str, select: &str) -> Vec<String> {
        vec![format!("CREATE OR REPLACE TABLE {qualified} AS {select}")]
    }

    fn merge_chunk_rows(&self) -> Option<u64> {
        Some(self.merge_chunk_rows)
    }

    fn bucket_of(&self, key_list: &str, buckets: u64) -> String {
        format!("hash({key_list}) % {buckets}")
    }
}

impl DuckDbDestination {
    /// A connection for queries (tests, `pipeline show`): a clone of the open one, or a new one that
    /// holds the database file until dropped.
    pub fn connection(&self) -> Result<Connection, DestinationError> {
        match &self.conn {
            Some(c) => c.try_clone().map_err(db_err("cloning the connection")),
            None => self.config.open(),
        }
    }

    /// Whether the database file is open now.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Connect unless connected.
    fn connect(&mut self) -> Result<(), DestinationError> {
        if self.conn.is_none() {
            self.conn = Some(self.config.open()?);
        }
        Ok(())
    }

    /// The open connection. Every entry point connects first, so `None` is a bug, reported as an error.
    fn c(&self) -> Result<&Connection, DestinationError> {
        self.conn.as_ref().ok_or_else(|| DestinationError::new(KIND, "internal error: used while disconnected"))
    }

    /// The config.
    pub fn config(&self) -> &DuckDbConfig {
        &self.config
    }

    fn ds(&self) -> &str {
        &self.config.dataset_name
    }

    fn dialect(&self) -> DuckDbDialect {
        DuckDbDialect { merge_chunk_rows: self.config.merge_chunk_rows }
    }

    /// Run `f` with the connection on tokio's blocking pool (DuckDB's calls block), moving the
    /// connection there and back; inline when no tokio runtime is running.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut DuckDbDestination) -> Result<T, DestinationError> + Send + 'static,
    ) -> Result<T, DestinationError> {
        let mut me = DuckDbDestination { conn: self.conn.take(), config: self.config.clone(), early: self.early.take() };
        if tokio::runtime::Handle::try_current().is_err() {
            let r = f(&mut me);
            self.conn = me.conn;
            self.early = me.early;
            return r;
        }
        let (me, r) = tokio::task::spawn_blocking(move || {
            let r = f(&mut me);
            (me, r)
        })
        .await
        .map_err(|e| DestinationError::new(KIND, format!("the DuckDB worker failed: {e}")))?;
        self.conn = me.conn;
        self.early = me.early;
        r
    }

    fn table_exists(&self, schema: &str, table: &str) -> Result<bool, DestinationError> {
        Ok(self.existing_columns(schema)?.contains_key(table))
    }

    fn existing_columns(&self, schema: &str) -> Result<Catalog, DestinationError> {
        let mut stmt = self.c()?.prepare(&sql::catalog_query(schema)).map_err(db_err("reading information_schema"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db_err("reading information_schema"))?;
        let mut out: Catalog = HashMap::new();
        for row in rows {
            let (t, c) = row.map_err(db_err("reading information_schema"))?;
            out.entry(t).or_insert_with(HashSet::new).insert(c);
        }
        Ok(out)
    }

    fn exec(&self, sql: &str) -> Result<(), DestinationError> {
        self.c()?.execute_batch(sql).map_err(sql_err(sql))
    }

    /// Run one statement and return the rows it changed.
    fn insert_count(&self, sql: &str) -> Result<u64, DestinationError> {
        Ok(self.c()?.execute(sql, []).map_err(sql_err(sql))? as u64)
    }

    /// Append a package table's batches into `schema.table` through the appender. NUL characters are
    /// removed from text values, as dlt's DuckDB loads do (counted in `nul`; see [`crate::text`]).
    fn append_batches(&self, package: &LoadPackage, table: &str, target_schema: &str, skip: u64, nul: &mut NulReport) -> Result<u64, DestinationError> {
        let mut rows = 0u64;
        let schema_table = package.manifest().schema.tables.get(table);
        package.for_each_batch_after::<DestinationError>(table, skip, |batch| {
            let col_types = column_types(&batch, schema_table);
            let batch = strip_nul(batch, &col_types, false, table, nul);
            self.append_batch(batch, table, target_schema, &mut rows)
        })?;
        Ok(rows)
    }

    /// Append a reconciliation's key set of `resource` into `schema.table` through the appender.
    fn append_keys(&self, package: &LoadPackage, resource: &str, table: &str, target_schema: &str) -> Result<u64, DestinationError> {
        let mut rows = 0u64;
        package.for_each_key_batch::<DestinationError>(resource, |batch| self.append_batch(batch, table, target_schema, &mut rows))?;
        Ok(rows)
    }

    fn append_batch(&self, batch: arrow::record_batch::RecordBatch, table: &str, target_schema: &str, rows: &mut u64) -> Result<(), DestinationError> {
        let arrow_schema = batch.schema();
        let names: Vec<&str> = arrow_schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut app = self
            .c()?
            .appender_with_columns_to_db(table, target_schema, &names)
            .map_err(db_err(&format!("opening an appender on {target_schema}.{table}")))?;
        *rows += batch.num_rows() as u64;
        app.append_record_batch(batch).map_err(db_err(&format!("appending to {target_schema}.{table}")))?;
        app.flush().map_err(db_err(&format!("flushing {target_schema}.{table}")))?;
        Ok(())
    }

    /// Run a rendered plan; bulk inserts read `package` (none for `pipeline drop`).
    fn run_steps(&self, steps: &[Step], package: Option<&LoadPackage>) -> Result<LoadReport, DestinationError> {
        let mut report = Report::default();
        let mut nul = NulReport::default();
        // After an early load, which appended under the insert limit.
        self.use_insert_limit(false);
        let mut filling_new = false;
        for step in steps {
            let started = std::time::Instant::now();
            match step {
                Step::Exec(sql) => self.exec(sql)?,
                Step::ExecCounted { sql, table } => {
                    let n = self.insert_count(sql)?;
                    report.add(table, n);
                }
                Step::BulkInsert { table, schema, report: counted, skip } => {
                    let n = match package {
                        Some(p) => {
                            self.use_insert_limit(true);
                            let appended = self.append_batches(p, table, schema, *skip, &mut nul);
                            self.use_insert_limit(filling_new);
                            appended?
                        }
                        None => 0,
                    };
                    if *counted {
                        report.add(table, n);
                    }
                }
                Step::Report { table, rows } => report.add(table, *rows),
                Step::FillingNew(on) => {
                    filling_new = *on;
                    self.use_insert_limit(filling_new);
                }
                Step::BulkInsertKeys { resource, schema, table } => {
                    if let Some(p) = package {
                        self.append_keys(p, resource, table, schema)?;
                    }
                }
                Step::ExecDeleted { sql, table } => {
                    let n = self.insert_count(sql)?;
                    report.add_deleted(table, n);
                }
                Step::ExecUncounted { sql, table } => {
                    let n = self.insert_count(sql)?;
                    report.sub(table, n);
                }
            }
            tracing::debug!(target: "load_steps", ms = started.elapsed().as_secs_f64() * 1e3, "{}", step.summary());
        }
        let mut out = report.finish();
        out.warnings.extend(nul.warning("DuckDB"));
        Ok(out)
    }

    /// Run `f` in a transaction: commit on success, roll back on error.
    fn in_transaction<T>(&self, f: impl FnOnce(&Self) -> Result<T, DestinationError>) -> Result<T, DestinationError> {
        self.exec("BEGIN TRANSACTION")?;
        self.end_transaction(f(self))
    }

    /// Commit the open transaction after `result`, or roll it back on error.
    fn end_transaction<T>(&self, result: Result<T, DestinationError>) -> Result<T, DestinationError> {
        match result {
            Ok(v) => {
                let started = std::time::Instant::now();
                self.exec("COMMIT")?;
                tracing::debug!(target: "load_steps", ms = started.elapsed().as_secs_f64() * 1e3, "COMMIT");
                Ok(v)
            }
            Err(e) => {
                if let Ok(c) = self.c() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }

    fn load_sync(&mut self, package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        let m = package.manifest();
        let rows = |t: &str| m.tables.get(t).map(|j| j.rows).unwrap_or(0);
        match self.early.take() {
            // Complete the early load: its transaction is open, its tables filled.
            Some(early) if early.load_id == m.load_id && self.conn.is_some() => {
                let result = (|| {
                    let plan = LoadPlan::build(m, &early.catalog);
                    let steps = sql::plan_steps(&plan, self.ds(), rows, &self.dialect(), Some(&early.tables));
                    let mut report = self.run_steps(&steps, Some(package))?;
                    report.warnings.extend(early.nul.warning("DuckDB"));
                    Ok(report)
                })();
                self.end_transaction(result)
            }
            other => {
                if other.is_some() {
                    self.rollback();
                }
                self.connect()?;
                self.in_transaction(|me| {
                    let plan = LoadPlan::build(m, &me.existing_columns(me.ds())?);
                    let steps = sql::plan_steps(&plan, me.ds(), rows, &me.dialect(), None);
                    me.run_steps(&steps, Some(package))
                })
            }
        }
    }

    /// Roll back the open transaction, if any (errors ignored: a failed rollback leaves nothing either).
    fn rollback(&self) {
        if let Some(c) = &self.conn {
            let _ = c.execute_batch("ROLLBACK");
        }
    }

    /// [`Destination::begin_early_load`]: open the transaction, drop the refreshed tables, and take the
    /// resources whose rows the plan inserts straight into their new tables (append, replace, and a
    /// `delete-insert` merge with no `hard_delete` or `dedup_sort`, which merges in place).
    fn begin_early_sync(&mut self, load: &EarlyLoad) -> Result<Vec<String>, DestinationError> {
        if self.early.take().is_some() {
            self.rollback();
        }
        let taken: Vec<String> = load
            .resources
            .iter()
            .filter(|r| match r.disposition {
                WriteDisposition::Append | WriteDisposition::Replace => true,
                WriteDisposition::Merge => {
                    r.merge.strategy == MergeStrategy::DeleteInsert && r.merge.hard_delete.is_none() && r.merge.dedup_sort.is_none()
                }
            })
            .map(|r| r.name.clone())
            .collect();
        if !self.config.load_during_extract || taken.is_empty() {
            return Ok(Vec::new());
        }
        self.connect()?;
        self.exec("BEGIN TRANSACTION")?;
        self.use_insert_limit(true);
        let begun = (|| {
            self.exec(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(self.ds())))?;
            let catalog = self.existing_columns(self.ds())?;
            for t in &load.drop_tables {
                self.exec(&format!("DROP TABLE IF EXISTS {}", qualified(self.ds(), t)))?;
            }
            Ok(catalog)
        })();
        match begun {
            Ok(catalog) => {
                self.early = Some(Early {
                    load_id: load.load_id.clone(),
                    catalog,
                    dropped: load.drop_tables.clone(),
                    taken: taken.clone(),
                    tables: EarlyTables::default(),
                    nul: NulReport::default(),
                });
                Ok(taken)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// [`Destination::early_append`]: create the table (or add the columns it lacks) and append.
    /// Returns whether the early load takes more ([`DuckDbConfig::early_load_memory_mib`]).
    fn early_append_sync(&mut self, table: &Table, batch: arrow::record_batch::RecordBatch) -> Result<bool, DestinationError> {
        let Some(mut early) = self.early.take() else {
            return Err(DestinationError::new(KIND, format!("internal error: no early load is open for table {}", table.name)));
        };
        let result = self.early_append_in(&mut early, table, batch);
        match result {
            Ok(()) => {
                self.early = Some(early);
                Ok(self.early_load_has_room())
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    fn early_append_in(&self, early: &mut Early, table: &Table, batch: arrow::record_batch::RecordBatch) -> Result<(), DestinationError> {
        let ds = self.ds();
        let name = &table.name;
        let existed = early.catalog.contains_key(name) && !early.dropped.contains(name);
        if existed || !table.resource.as_ref().is_some_and(|r| early.taken.contains(r)) {
            return Err(DestinationError::new(KIND, format!("internal error: table {name} is not one this load creates")));
        }
        let dialect = self.dialect();
        match early.tables.tables.get_mut(name) {
            None => {
                self.exec(&sql::create_table_sql(ds, name, table.columns.values(), &dialect))?;
                let columns = table.columns.keys().cloned().collect();
                early.tables.tables.insert(name.clone(), EarlyTable { columns, rows: 0 });
            }
            Some(have) => {
                let missing: Vec<_> = table.columns.values().filter(|c| !have.columns.contains(&c.name)).collect();
                for c in missing {
                    self.exec(&sql::add_column_sql(ds, name, c, &dialect))?;
                    have.columns.insert(c.name.clone());
                }
            }
        }
        let col_types = column_types(&batch, Some(table));
        let batch = strip_nul(batch, &col_types, false, name, &mut early.nul);
        let mut rows = 0;
        let started = std::time::Instant::now();
        self.append_batch(batch, name, ds, &mut rows)?;
        tracing::debug!(target: "load_steps", ms = started.elapsed().as_secs_f64() * 1e3, rows, "early append to {ds}.{name}");
        if let Some(t) = early.tables.tables.get_mut(name) {
            t.rows += rows;
        }
        if tracing::enabled!(target: "load_steps", tracing::Level::DEBUG) {
            tracing::debug!(target: "load_steps", "DuckDB memory after the append: {}", self.memory_summary());
        }
        Ok(())
    }

    /// Switch DuckDB's `memory_limit` to the one for appending (`inserting`) or back
    /// ([`DuckDbConfig::insert_memory_limit`]); nothing when they are the same. A limit DuckDB cannot
    /// apply at once (more is pinned) is logged and the load goes on under the current one.
    fn use_insert_limit(&self, inserting: bool) {
        let Some(low) = self.config.lower_insert_limit() else { return };
        let sql = match (inserting, &self.config.memory_limit) {
            (true, _) => format!("SET memory_limit = {}", literal(low)),
            (false, Some(limit)) => format!("SET memory_limit = {}", literal(limit)),
            (false, None) => "RESET memory_limit".to_string(),
        };
        if let Err(e) = self.exec(&sql) {
            tracing::debug!(target: "load_steps", "{sql}: {e}");
        }
    }

    /// Whether DuckDB holds less of the tables' data than [`DuckDbConfig::early_load_memory_mib`]
    /// (`duckdb_memory()`: rows appended but not yet written, written blocks it keeps). When it cannot
    /// tell, no: the load step inserts the rest.
    fn early_load_has_room(&self) -> bool {
        let Some(mib) = self.config.early_load_memory_mib else { return true };
        let sql = "SELECT CAST(coalesce(sum(memory_usage_bytes), 0) AS BIGINT) FROM duckdb_memory() WHERE tag IN ('IN_MEMORY_TABLE', 'BASE_TABLE')";
        let held = self.c().and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)).map_err(db_err("reading duckdb_memory()")));
        match held {
            Ok(bytes) if u64::try_from(bytes).unwrap_or(0) < mib.saturating_mul(1 << 20) => true,
            Ok(bytes) => {
                tracing::debug!(target: "load_steps", mib = bytes as f64 / 1048576.0, "the early load is full: the load step inserts the rest of each table");
                false
            }
            Err(e) => {
                tracing::debug!(target: "load_steps", "early load stopped: {e}");
                false
            }
        }
    }

    /// DuckDB's own account of its memory (`duckdb_memory()`: MiB per tag in use), for the debug log.
    fn memory_summary(&self) -> String {
        let Ok(conn) = self.c() else { return "unavailable (not connected)".into() };
        let read = || -> Result<Vec<(String, i64)>, duckdb::Error> {
            let mut stmt = conn.prepare("SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0 ORDER BY 2 DESC")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect()
        };
        match read() {
            Ok(tags) => tags.iter().map(|(t, b)| format!("{t} {:.1}", *b as f64 / 1048576.0)).collect::<Vec<_>>().join(", "),
            Err(e) => format!("unavailable ({e})"),
        }
    }

    fn drop_sync(&mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str) -> Result<(), DestinationError> {
        self.connect()?;
        self.in_transaction(|me| {
            let plan = LoadPlan::for_drop(tables, new_schema, state, load_id, &me.existing_columns(me.ds())?);
            let steps = sql::plan_steps(&plan, me.ds(), |_| 0, &me.dialect(), None);
            me.run_steps(&steps, None).map(|_| ())
        })
    }

    /// The newest completed state row of a pipeline (blocking; see [`Destination::stored_state`]).
    pub fn stored_state_sync(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        if !self.table_exists(&ds, "_dlt_pipeline_state")? || !self.table_exists(&ds, "_dlt_loads")? {
            return Ok(None);
        }
        let sql = sql::stored_state_query(&ds, pipeline_name);
        let mut stmt = self.c()?.prepare(&sql).map_err(db_err("reading _dlt_pipeline_state"))?;
        let mut rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(db_err("reading _dlt_pipeline_state"))?;
        let Some(row) = rows.next() else { return Ok(None) };
        let (version, engine_version, pipeline_name, state, created_at, version_hash, load_id) =
            row.map_err(db_err("reading _dlt_pipeline_state"))?;
        Ok(Some(StoredState {
            row: StateRow {
                version,
                engine_version,
                pipeline_name,
                state,
                created_at: sql::parse_created_at(&created_at),
                version_hash: version_hash.unwrap_or_default(),
                dlt_id: String::new(),
            },
            load_id,
        }))
    }

    fn stored_schema_sync(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        if !self.table_exists(&ds, "_dlt_version")? {
            return Ok(None);
        }
        let sql = sql::stored_schema_query(&ds, schema_name);
        let mut stmt = self.c()?.prepare(&sql).map_err(db_err("reading _dlt_version"))?;
        let mut rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db_err("reading _dlt_version"))?;
        let Some(text) = rows.next() else { return Ok(None) };
        let text = text.map_err(db_err("reading _dlt_version"))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| DestinationError::new(KIND, format!("the stored schema in _dlt_version is not JSON: {e}")))?;
        Ok(Schema::from_dlt_json(&value))
    }

    fn is_loaded_sync(&mut self, load_id: &str) -> Result<bool, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        if !self.table_exists(&ds, "_dlt_loads")? {
            return Ok(false);
        }
        let n: i64 = self.c()?.query_row(&sql::is_loaded_query(&ds, load_id), [], |r| r.get(0)).map_err(db_err("reading _dlt_loads"))?;
        Ok(n > 0)
    }

    /// Tables of the dataset with their row counts (blocking; see [`Destination::tables`]).
    pub fn tables_sync(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        let mut names: Vec<String> = self.existing_columns(&ds)?.into_keys().collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let n: i64 = self
                .c()?
                .query_row(&format!("SELECT count(*) FROM {}", qualified(&ds, &name)), [], |r| r.get(0))
                .map_err(db_err("counting rows"))?;
            out.push(TableInfo { name, rows: n as u64 });
        }
        Ok(out)
    }

    /// The newest loads (blocking; see [`Destination::recent_loads`]).
    pub fn recent_loads_sync(&mut self, limit: usize) -> Result<Vec<LoadInfo>, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        if !self.table_exists(&ds, "_dlt_loads")? {
            return Ok(Vec::new());
        }
        let mut stmt = self.c()?.prepare(&sql::recent_loads_query(&ds, limit)).map_err(db_err("reading _dlt_loads"))?;
        let rows = stmt
            .query_map([], |r| Ok(LoadInfo { load_id: r.get(0)?, status: r.get(1)?, inserted_at: r.get(2)? }))
            .map_err(db_err("reading _dlt_loads"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err("reading _dlt_loads"))
    }
}

#[async_trait::async_trait]
impl Destination for DuckDbDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destination_type(&self) -> &'static str {
        "dlt.destinations.duckdb"
    }

    fn capabilities(&self) -> Capabilities {
        // DuckDB's identifier limit (65536) is never reached: names are not shortened, as in dlt.
        Capabilities::full()
    }

    fn identity(&self) -> String {
        let path = std::path::absolute(&self.config.path).unwrap_or_else(|_| self.config.path.clone());
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        format!("{KIND}:{}", path.display())
    }

    /// Closing the connection rolls back an early load still open.
    async fn disconnect(&mut self) {
        self.early = None;
        self.conn = None;
    }

    async fn health_check(&mut self) -> Result<(), DestinationError> {
        self.blocking(|d| {
            d.connect()?;
            d.c()?.execute_batch("SELECT 1").map_err(db_err("health check"))
        })
        .await
    }

    async fn existing_tables(&mut self) -> Result<Vec<String>, DestinationError> {
        self.blocking(|d| {
            d.connect()?;
            let mut names: Vec<String> = d.existing_columns(d.ds())?.into_keys().collect();
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        let name = pipeline_name.to_string();
        self.blocking(move |d| d.stored_state_sync(&name)).await
    }

    async fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        let name = schema_name.to_string();
        self.blocking(move |d| d.stored_schema_sync(&name)).await
    }

    async fn is_loaded(&mut self, load_id: &str) -> Result<bool, DestinationError> {
        let id = load_id.to_string();
        self.blocking(move |d| d.is_loaded_sync(&id)).await
    }

    async fn load_package(&mut self, package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        let package = package.clone();
        self.blocking(move |d| d.load_sync(&package)).await
    }

    async fn begin_early_load(&mut self, early: &EarlyLoad) -> Result<Vec<String>, DestinationError> {
        let early = early.clone();
        self.blocking(move |d| d.begin_early_sync(&early)).await
    }

    async fn early_append(&mut self, table: &Table, batch: arrow::record_batch::RecordBatch) -> Result<bool, DestinationError> {
        let table = table.clone();
        self.blocking(move |d| d.early_append_sync(&table, batch)).await
    }

    async fn abort_early_load(&mut self) {
        if self.early.take().is_some() {
            let _ = self
                .blocking(|d| {
                    d.rollback();
                    Ok(())
                })
                .await;
        }
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
        self.blocking(|d| d.tables_sync()).await
    }

    async fn recent_loads(&mut self, limit: usize) -> Result<Vec<LoadInfo>, DestinationError> {
        self.blocking(move |d| d.recent_loads_sync(limit)).await
    }

    async fn drop_tables(&mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str) -> Result<(), DestinationError> {
        let (tables, schema, state, id) = (tables.to_vec(), new_schema.clone(), state.clone(), load_id.to_string());
        self.blocking(move |d| d.drop_sync(&tables, &schema, &state, &id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_runs_under_the_lower_insert_limit() {
        let mut config = DuckDbConfig::at("x.duckdb", "ds");
        assert_eq!(config.lower_insert_limit(), Some("64MB"), "64MB under the default 256MB");
        config.memory_limit = Some("32MB".into());
        assert_eq!(config.lower_insert_limit(), None, "a lower memory_limit holds throughout");
        config.memory_limit = Some("0.5 GiB".into());
        assert_eq!(config.lower_insert_limit(), Some("64MB"));
        config.memory_limit = None;
        assert_eq!(config.lower_insert_limit(), Some("64MB"), "no memory_limit: DuckDB's 80% of RAM");
        config.insert_memory_limit = None;
        assert_eq!(config.lower_insert_limit(), None);
        assert_eq!(memory_bytes("1.5GB"), Some(1.5e9));
        assert_eq!(memory_bytes("2 KiB"), Some(2048.0));
        assert_eq!(memory_bytes("lots"), None);
        config.insert_memory_limit = Some("lots".into());
        assert!(config.validate().is_err(), "not a size");
    }

    #[test]
    fn memory_sizes_are_checked_before_opening() {
        for ok in ["512MB", "4GB", "1.5 GiB", "100000b"] {
            assert!(is_memory_size(ok), "{ok}");
        }
        for bad in ["", "lots", "0MB", "512", "MB", "-1GB", "5 parsecs"] {
            assert!(!is_memory_size(bad), "{bad}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = DuckDbConfig::for_pipeline(dir.path(), "p", "d");
        config.memory_limit = Some("lots".into());
        let err = config.build().expect_err("invalid memory_limit");
        assert!(err.to_string().contains("memory_limit"), "{err}");
        assert!(!dir.path().join("p.duckdb").exists(), "nothing is created for an invalid config");
    }

    #[test]
    fn settings_reach_duckdb() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = DuckDbConfig::for_pipeline(dir.path(), "p", "d");
        config.memory_limit = Some("300MB".into());
        config.temp_directory = Some(dir.path().join("spill"));
        let d = config.build().expect("open");
        let limit: String = d.connection().expect("connection").query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0)).expect("setting");
        // DuckDB reports the limit in its own units (300MB = 286.1 MiB).
        assert!(limit.starts_with("286") && limit.contains("MiB"), "{limit}");
        let temp: String = d.connection().expect("connection").query_row("SELECT current_setting('temp_directory')", [], |r| r.get(0)).expect("setting");
        assert!(temp.ends_with("spill"), "{temp}");
    }
}
