//! The DuckDB destination: `<pipeline_name>.duckdb`, one DuckDB schema per dataset.
//!
//! Rows arrive as Arrow batches and go in through DuckDB's appender (no row-by-row INSERTs). Each package
//! is one transaction: replace deletes and re-inserts inside it (readers see the old rows until commit),
//! merge goes through `<dataset>_staging` tables and delete-insert SQL.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use duckdb::{params, Connection};
use pipeline_engine::load::{Destination, DestinationError, LoadInfo, LoadReport, StoredState, TableInfo};
use pipeline_engine::package::LoadPackage;
use pipeline_engine::schema::{bookkeeping_tables, DataType, Schema, Table, WriteDisposition, SCHEMA_ENGINE_VERSION};
use pipeline_engine::state::StateRow;

use crate::sql::{column_def, ident, literal, qualified};

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
}

/// The default [`DuckDbConfig::lock_wait`].
pub const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The default [`DuckDbConfig::memory_limit`]: a 5M-record merge loads as fast under 256MB as under
/// 512MB (bench/run.sh), and the process then stays near 340 MiB whatever the package size.
pub const DEFAULT_MEMORY_LIMIT: &str = "256MB";

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
        }
    }

    /// Check the settings without touching the file.
    pub fn validate(&self) -> Result<(), DestinationError> {
        if self.dataset_name.trim().is_empty() {
            return Err(DestinationError::new(KIND, "the dataset name is empty; pass --dataset or set dataset_name"));
        }
        pipeline_engine::pipeline::validate_name("dataset", &self.dataset_name)
            .map_err(|e| DestinationError::new(KIND, e.to_string()))?;
        if let Some(limit) = &self.memory_limit {
            if !is_memory_size(limit) {
                return Err(DestinationError::new(
                    KIND,
                    format!("memory_limit {limit:?} is not a size such as \"512MB\" or \"4GB\""),
                ));
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
        Ok(DuckDbDestination { conn: None, config: self.clone() })
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
}

/// `"512MB"`, `"4 GiB"`, `"1.5GB"`: a number and one of DuckDB's size units.
fn is_memory_size(text: &str) -> bool {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let units = ["b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "bytes", "kilobytes", "megabytes", "gigabytes"];
    number.parse::<f64>().is_ok_and(|n| n > 0.0) && units.contains(&unit.trim().to_ascii_lowercase().as_str())
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
}

impl std::fmt::Debug for DuckDbDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbDestination").field("config", &self.config).finish()
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

    fn staging(&self) -> String {
        format!("{}_staging", self.config.dataset_name)
    }

    fn table_exists(&self, schema: &str, table: &str) -> Result<bool, DestinationError> {
        let n: i64 = self
            .c()?
            .query_row(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                params![schema, table],
                |r| r.get(0),
            )
            .map_err(db_err("reading information_schema"))?;
        Ok(n > 0)
    }

    fn existing_columns(&self, schema: &str) -> Result<HashMap<String, HashSet<String>>, DestinationError> {
        let mut stmt = self
            .c()?
            .prepare("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ?")
            .map_err(db_err("reading information_schema"))?;
        let rows = stmt
            .query_map(params![schema], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db_err("reading information_schema"))?;
        let mut out: HashMap<String, HashSet<String>> = HashMap::new();
        for row in rows {
            let (t, c) = row.map_err(db_err("reading information_schema"))?;
            out.entry(t).or_default().insert(c);
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

    /// Create missing bookkeeping and data tables and add missing columns.
    fn sync_schema(&self, schema: &Schema) -> Result<(), DestinationError> {
        let ds = self.ds().to_string();
        self.exec(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&ds)))?;
        let existing = self.existing_columns(&ds)?;
        for (name, cols) in bookkeeping_tables() {
            if !existing.contains_key(name) {
                let defs: Vec<String> = cols.iter().map(|c| column_def(c, duckdb_type)).collect();
                self.exec(&format!("CREATE TABLE {} ({})", qualified(&ds, name), defs.join(", ")))?;
            }
        }
        for table in schema.tables.values() {
            if table.columns.is_empty() {
                continue;
            }
            match existing.get(&table.name) {
                None => {
                    let defs: Vec<String> = table.columns.values().map(|c| column_def(c, duckdb_type)).collect();
                    self.exec(&format!("CREATE TABLE {} ({})", qualified(&ds, &table.name), defs.join(", ")))?;
                }
                Some(have) => {
                    for col in table.columns.values().filter(|c| !have.contains(&c.name)) {
                        // Added columns are nullable: existing rows have no value.
                        self.exec(&format!(
                            "ALTER TABLE {} ADD COLUMN {} {}",
                            qualified(&ds, &table.name),
                            ident(&col.name),
                            duckdb_type(col.data_type)
                        ))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Append a package table's batches into `schema.table` through the appender.
    fn append_batches(&self, package: &LoadPackage, table: &str, target_schema: &str) -> Result<u64, DestinationError> {
        let mut rows = 0u64;
        package.for_each_batch::<DestinationError>(table, |batch| {
            let arrow_schema = batch.schema();
            let names: Vec<&str> = arrow_schema.fields().iter().map(|f| f.name().as_str()).collect();
            let mut app = self
                .c()?
                .appender_with_columns_to_db(table, target_schema, &names)
                .map_err(db_err(&format!("opening an appender on {target_schema}.{table}")))?;
            rows += batch.num_rows() as u64;
            app.append_record_batch(batch).map_err(db_err(&format!("appending to {target_schema}.{table}")))?;
            app.flush().map_err(db_err(&format!("flushing {target_schema}.{table}")))?;
            Ok(())
        })?;
        Ok(rows)
    }

    fn existing_chain(&self, schema: &Schema, root: &str, existing: &HashMap<String, HashSet<String>>) -> Vec<Table> {
        schema.table_chain(root).into_iter().filter(|t| existing.contains_key(&t.name)).cloned().collect()
    }

    fn load_in_transaction(&self, package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        let m = package.manifest();
        let schema = &m.schema;
        let ds = self.ds().to_string();
        // Full refresh: the old tables go in this transaction; readers see them until it commits.
        for t in &m.drop_tables {
            self.exec(&format!("DROP TABLE IF EXISTS {}", qualified(&ds, t)))?;
        }
        self.sync_schema(schema)?;
        let existing = self.existing_columns(&ds)?;
        let mut report = LoadReport::default();
        self.insert_version_if_new(schema)?;

        let mut done: HashSet<String> = HashSet::new();
        // Replace: empty every existing table of the chain, then insert the package's rows.
        for root in &m.replace_roots {
            for t in self.existing_chain(schema, root, &existing) {
                self.exec(&format!("DELETE FROM {}", qualified(&ds, &t.name)))?;
                let n = self.append_batches(package, &t.name, &ds)?;
                report.rows.push((t.name.clone(), n));
                done.insert(t.name.clone());
            }
        }

        // Merge: per merge root with rows, delete-insert through staging.
        let merge_roots: Vec<&str> = m
            .tables
            .keys()
            .filter(|t| !done.contains(*t))
            .map(|t| schema.root_of(t))
            .filter(|r| schema.disposition_of(r) == WriteDisposition::Merge)
            .collect::<indexmap::IndexSet<_>>()
            .into_iter()
            .collect();
        for root in merge_roots {
            let Some(root_table) = schema.tables.get(root) else { continue };
            let pk: Vec<String> = root_table.primary_key().into_iter().map(str::to_string).collect();
            let chain = self.existing_chain(schema, root, &existing);
            if pk.is_empty() {
                for t in &chain {
                    let n = self.append_batches(package, &t.name, &ds)?;
                    report.rows.push((t.name.clone(), n));
                    done.insert(t.name.clone());
                }
                continue;
            }
            let stg = self.staging();
            self.exec(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&stg)))?;
            for t in &chain {
                self.exec(&format!(
                    "CREATE OR REPLACE TABLE {} AS SELECT * FROM {} LIMIT 0",
                    qualified(&stg, &t.name),
                    qualified(&ds, &t.name)
                ))?;
                self.append_batches(package, &t.name, &stg)?;
            }
            let staged = m.tables.get(root).map(|j| j.rows).unwrap_or(0);
            let root_rows = self.merge_chain(&ds, &stg, &chain, &pk, staged)?;
            report.rows.push((root.to_string(), root_rows));
            for child in chain.iter().skip(1) {
                report.rows.push((child.name.clone(), m.tables.get(&child.name).map(|j| j.rows).unwrap_or(0)));
            }
            for t in &chain {
                done.insert(t.name.clone());
            }
        }

        // Append: everything else.
        for table in m.tables.keys() {
            if done.contains(table) {
                continue;
            }
            let n = self.append_batches(package, table, &ds)?;
            report.rows.push((table.clone(), n));
        }

        if let Some(state) = &m.state {
            self.insert_state(state, package.load_id())?;
        }
        self.insert_load(package.load_id(), schema)?;
        Ok(report)
    }

    /// Delete-insert a merge root and its children from staging into the dataset, in hash buckets of
    /// about `merge_chunk_rows` staged root rows so that every join and aggregate works on a bounded
    /// slice. Per key the last staged row wins (the highest `rowid`: the last one extracted); children
    /// follow their root row through `_dlt_root_id`. Returns the root rows inserted.
    fn merge_chain(&self, ds: &str, stg: &str, chain: &[Table], pk: &[String], staged: u64) -> Result<u64, DestinationError> {
        let Some(root) = chain.first() else { return Ok(0) };
        let d_root = qualified(ds, &root.name);
        let s_root = qualified(stg, &root.name);
        let winners = qualified(stg, "_dlt_merge_winners");
        let buckets = staged.div_ceil(self.config.merge_chunk_rows).max(1);
        let pk_list = |alias: &str| pk.iter().map(|k| format!("{alias}.{}", ident(k))).collect::<Vec<_>>().join(", ");
        let in_bucket = |alias: &str, b: u64| {
            if buckets == 1 {
                "TRUE".to_string()
            } else {
                format!("hash({}) % {buckets} = {b}", pk_list(alias))
            }
        };
        let key_match = pk.iter().map(|k| format!("s.{0} = d.{0}", ident(k))).collect::<Vec<_>>().join(" AND ");
        let mut inserted = 0u64;
        for b in 0..buckets {
            let sb = in_bucket("s", b);
            // Destination roots of this bucket whose key is staged.
            let replaced = format!("{} AND EXISTS (SELECT 1 FROM {s_root} s WHERE {sb} AND {key_match})", in_bucket("d", b));
            for child in chain.iter().skip(1) {
                self.exec(&format!(
                    "DELETE FROM {} WHERE _dlt_root_id IN (SELECT d._dlt_id FROM {d_root} d WHERE {replaced})",
                    qualified(ds, &child.name)
                ))?;
            }
            self.exec(&format!("DELETE FROM {d_root} d WHERE {replaced}"))?;
            // The winning staged row of every key in this bucket, and its _dlt_id for the children.
            self.exec(&format!(
                "CREATE OR REPLACE TABLE {winners} AS SELECT s.rowid AS _dlt_row, s._dlt_id FROM {s_root} s \
                 WHERE s.rowid IN (SELECT max(s.rowid) FROM {s_root} s WHERE {sb} GROUP BY {})",
                pk_list("s")
            ))?;
            inserted += self.insert_count(&format!(
                "INSERT INTO {d_root} BY NAME SELECT * FROM {s_root} WHERE rowid IN (SELECT _dlt_row FROM {winners})"
            ))?;
            for child in chain.iter().skip(1) {
                self.exec(&format!(
                    "INSERT INTO {} BY NAME SELECT * FROM {} WHERE _dlt_root_id IN (SELECT _dlt_id FROM {winners})",
                    qualified(ds, &child.name),
                    qualified(stg, &child.name)
                ))?;
            }
        }
        self.exec(&format!("DROP TABLE IF EXISTS {winners}"))?;
        Ok(inserted)
    }

    /// A `_dlt_version` row for the schema unless its hash is stored already.
    fn insert_version_if_new(&self, schema: &Schema) -> Result<(), DestinationError> {
        let versions = qualified(self.ds(), "_dlt_version");
        let known: i64 = self
            .c()?
            .query_row(
                &format!("SELECT count(*) FROM {versions} WHERE schema_name = ? AND version_hash = ?"),
                params![schema.name, schema.version_hash],
                |r| r.get(0),
            )
            .map_err(db_err("reading _dlt_version"))?;
        if known == 0 {
            self.c()?
                .execute(
                    &format!("INSERT INTO {versions} VALUES (?, ?, CAST(? AS TIMESTAMPTZ), ?, ?, ?)"),
                    params![
                        schema.version,
                        SCHEMA_ENGINE_VERSION,
                        chrono::Utc::now().to_rfc3339(),
                        schema.name,
                        schema.version_hash,
                        schema.to_dlt_json().to_string()
                    ],
                )
                .map_err(db_err("writing _dlt_version"))?;
        }
        Ok(())
    }

    /// The `_dlt_loads` row of a completed load (status 0).
    fn insert_load(&self, load_id: &str, schema: &Schema) -> Result<(), DestinationError> {
        self.c()?
            .execute(
                &format!("INSERT INTO {} VALUES (?, ?, 0, CAST(? AS TIMESTAMPTZ), ?)", qualified(self.ds(), "_dlt_loads")),
                params![load_id, schema.name, chrono::Utc::now().to_rfc3339(), schema.version_hash],
            )
            .map_err(db_err("writing _dlt_loads"))?;
        Ok(())
    }

    fn insert_state(&self, state: &StateRow, load_id: &str) -> Result<(), DestinationError> {
        self.c()?
            .execute(
                &format!(
                    "INSERT INTO {} VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMPTZ), ?, ?, ?)",
                    qualified(self.ds(), "_dlt_pipeline_state")
                ),
                params![
                    state.version,
                    state.engine_version,
                    state.pipeline_name,
                    state.state,
                    state.created_at.to_rfc3339(),
                    state.version_hash,
                    load_id,
                    state.dlt_id
                ],
            )
            .map_err(db_err("writing _dlt_pipeline_state"))?;
        Ok(())
    }
}

impl Destination for DuckDbDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destination_type(&self) -> &'static str {
        "dlt.destinations.duckdb"
    }

    fn identity(&self) -> String {
        let path = std::path::absolute(&self.config.path).unwrap_or_else(|_| self.config.path.clone());
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        format!("{KIND}:{}", path.display())
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }

    fn health_check(&mut self) -> Result<(), DestinationError> {
        self.connect()?;
        self.c()?.execute_batch("SELECT 1").map_err(db_err("health check"))
    }

    fn existing_tables(&mut self) -> Result<Vec<String>, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        let mut names: Vec<String> = self.existing_columns(&ds)?.into_keys().collect();
        names.sort();
        Ok(names)
    }

    fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        if !self.table_exists(&ds, "_dlt_pipeline_state")? || !self.table_exists(&ds, "_dlt_loads")? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT s.version, s.engine_version, s.pipeline_name, s.state, CAST(s.created_at AS VARCHAR), s.version_hash, s._dlt_load_id \
             FROM {} s JOIN {} l ON l.load_id = s._dlt_load_id AND l.status = 0 \
             WHERE s.pipeline_name = ? ORDER BY s._dlt_load_id DESC LIMIT 1",
            qualified(&ds, "_dlt_pipeline_state"),
            qualified(&ds, "_dlt_loads")
        );
        let mut stmt = self.c()?.prepare(&sql).map_err(db_err("reading _dlt_pipeline_state"))?;
        let mut rows = stmt
            .query_map(params![pipeline_name], |r| {
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
        let created_at = chrono::DateTime::parse_from_str(&created_at, "%Y-%m-%d %H:%M:%S%.f%#z")
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        Ok(Some(StoredState {
            row: StateRow {
                version,
                engine_version,
                pipeline_name,
                state,
                created_at,
                version_hash: version_hash.unwrap_or_default(),
                dlt_id: String::new(),
            },
            load_id,
        }))
    }

    fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        if !self.table_exists(&ds, "_dlt_version")? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT schema FROM {} WHERE schema_name = ? ORDER BY version DESC, inserted_at DESC LIMIT 1",
            qualified(&ds, "_dlt_version")
        );
        let mut stmt = self.c()?.prepare(&sql).map_err(db_err("reading _dlt_version"))?;
        let mut rows = stmt.query_map(params![schema_name], |r| r.get::<_, String>(0)).map_err(db_err("reading _dlt_version"))?;
        let Some(text) = rows.next() else { return Ok(None) };
        let text = text.map_err(db_err("reading _dlt_version"))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| DestinationError::new(KIND, format!("the stored schema in _dlt_version is not JSON: {e}")))?;
        Ok(Schema::from_dlt_json(&value))
    }

    fn is_loaded(&mut self, load_id: &str) -> Result<bool, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        if !self.table_exists(&ds, "_dlt_loads")? {
            return Ok(false);
        }
        let n: i64 = self
            .c()?
            .query_row(
                &format!("SELECT count(*) FROM {} WHERE load_id = ? AND status = 0", qualified(&ds, "_dlt_loads")),
                params![load_id],
                |r| r.get(0),
            )
            .map_err(db_err("reading _dlt_loads"))?;
        Ok(n > 0)
    }

    fn load_package(&mut self, package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        self.connect()?;
        self.exec("BEGIN TRANSACTION")?;
        match self.load_in_transaction(package) {
            Ok(report) => {
                self.exec("COMMIT")?;
                Ok(report)
            }
            Err(e) => {
                if let Ok(c) = self.c() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }

    fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
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

    fn recent_loads(&mut self, limit: usize) -> Result<Vec<LoadInfo>, DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        if !self.table_exists(&ds, "_dlt_loads")? {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT load_id, status, CAST(inserted_at AS VARCHAR) FROM {} ORDER BY load_id DESC LIMIT {limit}",
            qualified(&ds, "_dlt_loads")
        );
        let mut stmt = self.c()?.prepare(&sql).map_err(db_err("reading _dlt_loads"))?;
        let rows = stmt
            .query_map([], |r| Ok(LoadInfo { load_id: r.get(0)?, status: r.get(1)?, inserted_at: r.get(2)? }))
            .map_err(db_err("reading _dlt_loads"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err("reading _dlt_loads"))
    }

    fn drop_tables(&mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str) -> Result<(), DestinationError> {
        self.connect()?;
        let ds = self.ds().to_string();
        self.exec("BEGIN TRANSACTION")?;
        let result = (|| {
            for t in tables {
                self.exec(&format!("DROP TABLE IF EXISTS {}", qualified(&ds, t)))?;
            }
            self.sync_schema(new_schema)?;
            self.insert_version_if_new(new_schema)?;
            self.insert_state(state, load_id)?;
            self.insert_load(load_id, new_schema)?;
            Ok(())
        })();
        match result {
            Ok(()) => self.exec("COMMIT"),
            Err(e) => {
                if let Ok(c) = self.c() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
