//! Load: the [`Destination`] trait every destination implements (DuckDB, PostgreSQL, the in-memory
//! reference [`crate::memory::MemoryDestination`]) and the [`Capabilities`] each declares.
//!
//! Which tables a package replaces, merges (by which key, with which child chain) or appends is decided
//! by the engine's [`crate::plan::LoadPlan`]; a destination only executes it.
//!
//! A destination receives whole [`LoadPackage`]s. [`Destination::load_package`] must apply the package in
//! one transaction — schema changes, every table job under its write disposition, the `_dlt_version` row
//! for a new schema hash, the `_dlt_pipeline_state` row and finally the `_dlt_loads` row — and commit or
//! roll back before returning. The engine never calls it twice for a load id that
//! [`Destination::is_loaded`] reports as loaded.
//!
//! Disposition semantics (shared/spec/dlt-compat.md §6, with replace made atomic):
//! * `append`: insert the rows.
//! * `replace`: for each root in `replace_roots`, every table of its chain that exists is emptied and
//!   receives the package's rows, inside the transaction (readers never see an empty table).
//! * `merge`: by the root's merge strategy ([`crate::merge`]). `delete-insert` (default) and `upsert`:
//!   rows are deduplicated by primary key (the last extracted row wins, or dlt's `dedup_sort`);
//!   destination roots with a matching key and their child rows (by `_dlt_root_id`) are deleted; the
//!   deduplicated roots and their children are inserted, except rows flagged by dlt's `hard_delete`.
//!   `scd2`: versions missing from the extract are retired, new versions inserted with validity columns.
//!
//! A package of a full refresh lists `drop_tables`: they are dropped first, in the same transaction, and
//! created again from the package's schema, so readers see the old tables until the new ones commit.
//!
//! **Early load** (optional, [`Destination::begin_early_load`]): while the run still extracts, the tables
//! a load creates (a first load, a full refresh) can be filled batch by batch as the normalizer writes
//! them, inside the load's transaction, which [`Destination::load_package`] then completes. Nothing is
//! visible before that commit, and a failed or interrupted run rolls it back; the package on disk is
//! written as always, so a crash resumes the normal way.

use crate::package::LoadPackage;
use crate::schema::{DataType, MergeStrategy, Schema, WriteDisposition};
use crate::state::StateRow;

/// An error from a destination, with what to do about it in the message.
#[derive(Debug, thiserror::Error)]
#[error("{destination} destination: {message}")]
pub struct DestinationError {
    /// Destination kind (`duckdb`, …).
    pub destination: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// The locked-by-another-process case.
    pub locked: bool,
    /// Underlying cause.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl DestinationError {
    /// An error with a message.
    pub fn new(destination: &'static str, message: impl Into<String>) -> Self {
        DestinationError { destination, message: message.into(), locked: false, source: None }
    }

    /// Attach the cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl From<crate::package::PackageError> for DestinationError {
    fn from(e: crate::package::PackageError) -> Self {
        DestinationError::new("package", e.to_string()).with_source(e)
    }
}

/// What a destination reports after loading a package.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// Rows written per table.
    pub rows: Vec<(String, u64)>,
    /// Rows deleted (hard) or marked deleted (soft) per table by reconciliations.
    #[serde(default)]
    pub deleted: Vec<(String, u64)>,
    /// What the user must know about this load (values the destination could not store as they were);
    /// the run report carries them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The state and schema stored in a destination, for restoring a pipeline on an empty working directory.
#[derive(Debug, Clone)]
pub struct StoredState {
    /// The newest completed state row for the pipeline.
    pub row: StateRow,
    /// Its load id.
    pub load_id: String,
}

/// A row count of one table, for `pipeline show`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Rows.
    pub rows: u64,
}

/// A `_dlt_loads` row, for `pipeline show`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadInfo {
    /// Load id.
    pub load_id: String,
    /// Status (0 = completed).
    pub status: i64,
    /// When it was inserted (ISO text).
    pub inserted_at: String,
}

/// What a destination can do, declared up front so the pipeline can refuse a run it cannot load
/// **before** extracting anything (see [`Capabilities::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// Write dispositions the destination can apply.
    pub write_dispositions: Vec<WriteDisposition>,
    /// A package is applied in one transaction (readers never see half a package; a failure leaves the
    /// dataset as it was). A non-transactional destination must still make a retried package idempotent.
    pub transactional: bool,
    /// Longest table or column name; longer names are shortened by the naming convention (dlt's hash tag).
    pub max_identifier_len: Option<usize>,
    /// dlt data types the destination can store.
    pub types: Vec<DataType>,
    /// Merge (delete-insert by primary key with child chains) runs inside the destination, e.g. as SQL.
    pub native_merge: bool,
    /// dlt merge strategies the destination can apply to `merge` resources ([`crate::plan::LoadJob::Merge`]
    /// for `delete-insert` and `upsert`, [`crate::plan::LoadJob::Scd2`] for `scd2`).
    pub merge_strategies: Vec<MergeStrategy>,
    /// dlt's `hard_delete` and `dedup_sort` column hints are applied by its merges.
    pub merge_hints: bool,
    /// The destination executes [`crate::plan::LoadJob::Reconcile`] (deletion detection, hard and soft;
    /// see [`crate::reconcile`]). Without it, a run that asks for a reconciliation (configured for a
    /// selected resource, or forced) is refused before anything is extracted
    /// ([`Capabilities::check_reconcile`]); with the declarations' default schedules it keeps deleted
    /// records, as dlt does, and warns.
    pub reconcile: bool,
}

impl Capabilities {
    /// Every disposition and type, transactional, native merge, no identifier limit: what the SQL
    /// destinations and the in-memory reference offer.
    pub fn full() -> Self {
        use DataType::*;
        Capabilities {
            write_dispositions: vec![WriteDisposition::Append, WriteDisposition::Replace, WriteDisposition::Merge],
            transactional: true,
            max_identifier_len: None,
            types: vec![Text, Bigint, Double, Bool, Timestamp, Date, Time, Decimal, Json, Binary],
            native_merge: true,
            merge_strategies: MergeStrategy::ALL.to_vec(),
            merge_hints: true,
            reconcile: true,
        }
    }

    /// Check that the destination supports the merge strategy and hints of every selected `merge`
    /// resource (name, merge settings).
    pub fn check_merge(&self, destination: &'static str, resources: &[(String, crate::merge::MergeHints)]) -> Result<(), DestinationError> {
        for (name, hints) in resources {
            let strategy = &hints.strategy;
            if !self.merge_hints && (hints.hard_delete.is_some() || hints.dedup_sort.is_some()) {
                return Err(DestinationError::new(
                    destination,
                    format!("cannot apply hard_delete or dedup_sort to resource `{name}`: this destination does not support them; remove them from its settings or choose another destination"),
                ));
            }
            if !self.merge_strategies.contains(strategy) {
                let supported: Vec<&str> = self.merge_strategies.iter().map(|s| s.as_str()).collect();
                return Err(DestinationError::new(
                    destination,
                    format!(
                        "cannot merge resource `{name}` with merge strategy `{strategy}` (this destination supports {}); set another merge_strategy for it or choose another destination",
                        if supported.is_empty() { "none".to_string() } else { supported.join(", ") }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Check that the destination can reconcile when any of `resources` (selected resources whose
    /// reconciliation was asked for and is not `never`) is to be reconciled.
    pub fn check_reconcile(&self, destination: &'static str, resources: &[String]) -> Result<(), DestinationError> {
        if self.reconcile || resources.is_empty() {
            return Ok(());
        }
        Err(DestinationError::new(
            destination,
            format!(
                "cannot reconcile deletions (resources {}); set their `reconcile` setting to \"never\" (deleted records then stay, as in dlt; docs/deletions.md), or choose another destination",
                resources.join(", ")
            ),
        ))
    }

    /// Check that the selected resources (name, write disposition) and the tables of the schema they
    /// load into fit: dispositions supported, types storable, names within the identifier limit.
    pub fn check(
        &self,
        destination: &'static str,
        resources: &[(String, WriteDisposition)],
        schema: &Schema,
    ) -> Result<(), DestinationError> {
        for (name, disposition) in resources {
            if !self.write_dispositions.contains(disposition) {
                let supported: Vec<&str> = self.write_dispositions.iter().map(|d| d.as_str()).collect();
                return Err(DestinationError::new(
                    destination,
                    format!(
                        "cannot load resource `{name}` with write disposition `{disposition}` (it supports {}); choose another destination or leave the resource out",
                        supported.join(", ")
                    ),
                ));
            }
        }
        let selected = |t: &crate::schema::Table| {
            t.resource.as_deref().is_some_and(|r| resources.iter().any(|(n, _)| n == r))
        };
        for table in schema.tables.values().filter(|t| selected(t)) {
            if let Some(max) = self.max_identifier_len {
                let long = std::iter::once(&table.name).chain(table.columns.keys()).find(|n| n.len() > max);
                if let Some(name) = long {
                    return Err(DestinationError::new(
                        destination,
                        format!(
                            "`{name}` in table `{}` is {} bytes, longer than this destination's limit of {max}: this pipeline's schema was made for a destination with longer names; use another --pipeline-name for {destination}",
                            table.name,
                            name.len()
                        ),
                    ));
                }
            }
            if let Some(col) = table.columns.values().find(|c| !self.types.contains(&c.data_type)) {
                return Err(DestinationError::new(
                    destination,
                    format!(
                        "column `{}.{}` has type {}, which this destination cannot store",
                        table.name, col.name, col.data_type
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A resource whose tables the coming load creates, offered to [`Destination::begin_early_load`].
#[derive(Debug, Clone)]
pub struct EarlyResource {
    /// Resource name (its tables carry it in [`crate::schema::Table::resource`]).
    pub name: String,
    /// Its write disposition.
    pub disposition: WriteDisposition,
    /// Its merge settings (for `merge`).
    pub merge: crate::merge::MergeHints,
}

/// What [`Destination::begin_early_load`] is told about the coming load.
#[derive(Debug, Clone)]
pub struct EarlyLoad {
    /// The load id of the package being written.
    pub load_id: String,
    /// Tables the package drops and creates again (full refresh): dropped first, in the transaction.
    pub drop_tables: Vec<String>,
    /// Resources whose tables the load creates (none of them exists, or they are dropped).
    pub resources: Vec<EarlyResource>,
}

/// A destination. Asynchronous, so the engine never blocks its runtime: a destination with a blocking
/// driver (DuckDB) runs its calls on tokio's blocking pool; a network destination (PostgreSQL) awaits
/// its client. Object-safe (`&mut dyn Destination`) through `async_trait`.
#[async_trait::async_trait]
pub trait Destination: Send {
    /// Short kind name (`duckdb`).
    fn kind(&self) -> &'static str;

    /// dlt's destination type string for the state document (`dlt.destinations.duckdb`).
    fn destination_type(&self) -> &'static str;

    /// What the destination can do; checked by the pipeline against the selected resources before it
    /// extracts. Defaults to [`Capabilities::full`].
    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }

    /// Where the data goes (e.g. `duckdb:/abs/path/file.duckdb`), recorded in every load package: a
    /// package is only loaded into the destination (and dataset) it was made for. Never a secret.
    fn identity(&self) -> String {
        self.kind().to_string()
    }

    /// Release connections and file locks. The next call reconnects. The engine disconnects while it
    /// extracts, so other processes can read the dataset meanwhile.
    async fn disconnect(&mut self) {}

    /// Check the destination is reachable and writable.
    async fn health_check(&mut self) -> Result<(), DestinationError>;

    /// Names of the tables (data and bookkeeping) the dataset has now.
    async fn existing_tables(&mut self) -> Result<Vec<String>, DestinationError> {
        Ok(self.tables().await?.into_iter().map(|t| t.name).collect())
    }

    /// The newest completed state row of a pipeline in the dataset, if any.
    async fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError>;

    /// The newest stored schema (from `_dlt_version`) with this name, if any.
    async fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError>;

    /// Whether `_dlt_loads` already has this load id (so a package is never loaded twice).
    async fn is_loaded(&mut self, load_id: &str) -> Result<bool, DestinationError>;

    /// Apply a package in one transaction; see the module docs. The destination builds the package's
    /// [`crate::plan::LoadPlan`] against its current tables and executes it. When an early load of the
    /// same load id is open, it completes that transaction (the rows appended early are not inserted
    /// again); an early load of another id is rolled back first.
    async fn load_package(&mut self, package: &LoadPackage) -> Result<LoadReport, DestinationError>;

    /// Start the load of `early.load_id` while the run still extracts: open its transaction (dropping
    /// `early.drop_tables` in it) and return the resources whose batches [`Destination::early_append`]
    /// takes — those whose rows the load would insert straight into their new tables. The default takes
    /// none (the whole load runs in [`Destination::load_package`]).
    async fn begin_early_load(&mut self, early: &EarlyLoad) -> Result<Vec<String>, DestinationError> {
        let _ = early;
        Ok(Vec::new())
    }

    /// Append one normalized batch of `table` (a table of a resource [`Destination::begin_early_load`]
    /// took; `table` as normalized so far: its columns may grow between calls) in the open early load,
    /// creating the table or adding columns as needed. An error leaves the early load rolled back.
    /// `Ok(false)`: appended, but take no more — the destination holds what it may of this load in
    /// memory; the load step inserts the rest of every table from the package (after the rows appended
    /// early, which are a prefix of each table's batches).
    async fn early_append(&mut self, table: &crate::schema::Table, batch: arrow::record_batch::RecordBatch) -> Result<bool, DestinationError> {
        let _ = batch;
        Err(DestinationError::new(self.kind(), format!("internal error: no early load is open for table {}", table.name)))
    }

    /// Roll back an open early load (the run failed or loads nothing); nothing when none is open.
    async fn abort_early_load(&mut self) {}

    /// Data and bookkeeping tables of the dataset with their row counts.
    async fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError>;

    /// The most recent loads, newest first.
    async fn recent_loads(&mut self, limit: usize) -> Result<Vec<LoadInfo>, DestinationError>;

    /// Drop tables (for `pipeline drop`) in one transaction that also writes the schema version without
    /// them, the state row without the dropped resources and a `_dlt_loads` row for `load_id` — so a
    /// fresh worker restoring state from the destination does not resume the dropped cursors
    /// ([`crate::plan::LoadPlan::for_drop`]).
    async fn drop_tables(&mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str) -> Result<(), DestinationError>;
}
