//! The pipeline: one run = resume unfinished packages, extract → normalize into a new package, load it.
//!
//! The working directory (`<pipelines_dir>/<pipeline_name>/`) holds the state mirror (`state.json`), the
//! schema (`schemas/<name>.schema.json`), the load packages (`load/`), the last run's trace
//! (`trace.json`) and a lock file that keeps a second process out.

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::extract::{ExtractContext, ExtractShared, Items, ResourceSpec, Source, SourceError};
use crate::incremental::{Incremental, IncrementalError};
use crate::load::{Destination, DestinationError, EarlyLoad, EarlyResource, LoadReport};
use crate::normalize::{NormalizeConfig, NormalizeError, Normalizer, RootHints};
use crate::package::{discard_package, mark_loaded, pending_packages, LoadPackage, PackageError, PackageManifest, PackageWriter};
use crate::merge::MergeHints;
use crate::reconcile::{KeyOutcome, ReconcileEntry, ReconcilePolicy, ReconcileReport};
use crate::schema::{MergeStrategy, Schema, Table, WriteDisposition};
use crate::state::{PipelineState, StateError};
use crate::trace::{ConfigValue, StepClock, TraceStep};

/// Errors of a pipeline run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Another process holds the pipeline's lock.
    #[error("pipeline `{pipeline}` is locked by PID {pid} (lock file {path}); wait for that run to finish, or remove the lock file if that process is gone")]
    Locked {
        /// Pipeline name.
        pipeline: String,
        /// PID written in the lock file (or `unknown`).
        pid: String,
        /// The lock file.
        path: PathBuf,
    },
    /// Working-directory I/O.
    #[error("working directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Local state or schema files are invalid.
    #[error("{0}")]
    LocalFiles(String),
    /// The user selected resources the source does not have.
    #[error("unknown resource(s) {unknown:?}; available: {available:?}")]
    UnknownResource {
        /// Unknown names.
        unknown: Vec<String>,
        /// Known names.
        available: Vec<String>,
    },
    /// Extraction failed: nothing was loaded and no state advanced.
    #[error("extract failed, nothing was loaded and no state advanced: {0}")]
    Extract(#[source] SourceError),
    /// The incremental filter failed.
    #[error(transparent)]
    Incremental(#[from] IncrementalError),
    /// Normalization failed.
    #[error("normalize failed, nothing was loaded: {0}; the source's records do not fit the dataset: check that base_url points to Personio, rerun, and report it if it persists")]
    Normalize(#[from] NormalizeError),
    /// A package could not be written or read.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// Loading failed; the package stays on disk and the next run completes it without fetching again.
    #[error("load failed; the package stays in the working directory and the next run loads it without fetching again: {0}")]
    Load(#[source] DestinationError),
    /// Stored state could not be decoded.
    #[error(transparent)]
    State(#[from] StateError),
    /// A pipeline or dataset name that is not safe as a file or schema name.
    #[error("invalid {what} name {name:?}: {reason}; use 1 to {MAX_NAME_LEN} characters from A-Z, a-z, 0-9, `_` and `-`, not starting with `-`")]
    InvalidName {
        /// `pipeline` or `dataset`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The destination cannot load what was selected (a write disposition, a type or a name length it
    /// does not support); found before anything was extracted.
    #[error("{0}")]
    Unsupported(#[source] DestinationError),
    /// A resource's merge settings do not fit it (e.g. `upsert` without a primary key), or name a resource
    /// the source does not have.
    #[error("{0}")]
    MergeConfig(String),
    /// A resource's tables were loaded with another merge strategy than the one now configured.
    #[error(
        "resource `{resource}` was loaded with merge strategy `{stored}` and is now configured with `{configured}`: its rows cannot be merged the new way (row ids and child keys differ); reload it with --full-refresh (its tables are dropped and loaded again in one transaction), or set its merge_strategy back to `{stored}`"
    )]
    MergeStrategyChanged {
        /// The resource.
        resource: String,
        /// The strategy its tables were loaded with.
        stored: crate::schema::MergeStrategy,
        /// The strategy configured now.
        configured: crate::schema::MergeStrategy,
    },
    /// The destination's state moved while this run was extracting (another worker loaded the same
    /// dataset): the new package was made from an older state and is discarded, not loaded.
    #[error("the destination's pipeline state changed while this run was extracting (another worker loaded dataset `{dataset}`); package {load_id} was discarded and nothing was loaded; run again to continue from the destination's state")]
    DestinationChanged {
        /// The discarded package.
        load_id: String,
        /// Dataset name.
        dataset: String,
    },
}

/// Longest accepted pipeline or dataset name.
pub const MAX_NAME_LEN: usize = 64;

/// Check a pipeline or dataset name (`what` is `"pipeline"` or `"dataset"`): 1 to [`MAX_NAME_LEN`]
/// characters from `A-Z a-z 0-9 _ -`, not starting with `-`. Names become folder and file names
/// (`<pipelines_dir>/<pipeline>/`, `<pipeline>.duckdb`) and schema names, so path separators, `..` and
/// anything else outside that set are refused.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), PipelineError> {
    let fail = |reason| Err(PipelineError::InvalidName { what, name: name.to_string(), reason });
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("it is too long");
    }
    if name.contains('/') || name.contains('\\') || name.contains("..") {
        return fail("it contains a path separator or `..`");
    }
    if name.starts_with('-') {
        return fail("it starts with `-`");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return fail("it contains a character outside the allowed set");
    }
    Ok(())
}

impl PipelineError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
        move |source| PipelineError::Io { path: path.to_path_buf(), source }
    }
}

/// Settings of a pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Pipeline name (working directory, DuckDB file name, state key).
    pub pipeline_name: String,
    /// Dataset (destination schema) name.
    pub dataset_name: String,
    /// Folder holding pipelines' working directories.
    pub pipelines_dir: PathBuf,
    /// Rows per Arrow batch per table while normalizing (bounds memory).
    pub batch_rows: usize,
    /// Estimated bytes per Arrow batch per table while normalizing, whichever of rows and bytes comes
    /// first ([`crate::normalize::NormalizeConfig::batch_bytes`]).
    pub batch_bytes: usize,
    /// Pages buffered between extract and normalize (bounds memory; default 4: a page of wide employee
    /// records is ~10 MB parsed, and the normalizer keeps up with the fetch except on loopback).
    pub channel_pages: usize,
    /// Merge strategy and hints per resource, replacing what the source declares (configuration
    /// `[sources.<source>.resources.<name>]`).
    pub merge: std::collections::BTreeMap<String, MergeHints>,
}

impl PipelineConfig {
    /// A config with defaults for batch size and buffering.
    pub fn new(pipeline_name: &str, dataset_name: &str, pipelines_dir: impl Into<PathBuf>) -> Self {
        PipelineConfig {
            pipeline_name: pipeline_name.to_string(),
            dataset_name: dataset_name.to_string(),
            pipelines_dir: pipelines_dir.into(),
            batch_rows: 10_000,
            batch_bytes: crate::normalize::DEFAULT_BATCH_BYTES,
            channel_pages: 4,
            merge: std::collections::BTreeMap::new(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    /// Pipeline name.
    pub pipeline_name: String,
    /// Dataset name.
    pub dataset_name: String,
    /// Destination kind.
    pub destination: String,
    /// Packages loaded by this run (resumed ones first).
    pub loaded_packages: Vec<String>,
    /// Of those, packages left over by an earlier failed run.
    pub resumed_packages: Vec<String>,
    /// Rows normalized per table in the new package.
    pub rows: IndexMap<String, u64>,
    /// Of those, rows the destination appended while the run still extracted (an early load,
    /// [`Destination::begin_early_load`]), committed with the rest.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub early_rows: u64,
    /// Resources run.
    pub resources: Vec<String>,
    /// Whether the state changed (and a state row was written).
    pub state_changed: bool,
    /// Seconds for the whole run.
    pub elapsed_secs: f64,
    /// Resources reloaded from scratch (full refresh, or their tables were missing in the destination).
    pub refreshed: Vec<String>,
    /// Pending packages discarded because the destination's state moved past them.
    pub discarded_packages: Vec<String>,
    /// Things the user must know (state reset, packages left for another dataset).
    pub warnings: Vec<String>,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// The steps with their wall times (`sync`, `extract`, `normalize`, `load`); see [`crate::trace`].
    pub steps: Vec<TraceStep>,
    /// Reconciliations of this run (deletion detection, [`crate::reconcile`]): applied or skipped, with
    /// their request cost and the rows they deleted or marked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconciliations: Vec<ReconcileReport>,
    /// Why the run failed (the error as printed); absent for a completed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which configuration value was found where ([`RunOptions::config_values`]; secrets without value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_config_values: Vec<ConfigValue>,
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for w in &self.warnings {
            writeln!(f, "WARNING: {w}")?;
        }
        if !self.refreshed.is_empty() {
            writeln!(f, "Reloaded from scratch: {}", self.refreshed.join(", "))?;
        }
        writeln!(f, "Pipeline {} load step completed in {:.2} seconds", self.pipeline_name, self.elapsed_secs)?;
        for r in &self.reconciliations {
            writeln!(f, "{r}")?;
        }
        if self.loaded_packages.is_empty() {
            return writeln!(f, "No changes: no load package was created (dataset {} is up to date)", self.dataset_name);
        }
        writeln!(
            f,
            "{} load package(s) were loaded to destination {} and into dataset {}",
            self.loaded_packages.len(),
            self.destination,
            self.dataset_name
        )?;
        for id in &self.loaded_packages {
            let resumed = if self.resumed_packages.contains(id) { " (resumed from an earlier run)" } else { "" };
            writeln!(f, "Load package {id} is LOADED and contains no failed jobs{resumed}")?;
        }
        for (table, rows) in &self.rows {
            writeln!(f, "  {table}: {rows} rows")?;
        }
        Ok(())
    }
}

/// An open pipeline: its working directory, locked for this process.
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    workdir: PathBuf,
    _lock: fs::File,
}

impl Pipeline {
    /// Open (create) the working directory and take the pipeline lock.
    pub fn open(config: PipelineConfig) -> Result<Self, PipelineError> {
        validate_name("pipeline", &config.pipeline_name)?;
        let workdir = config.pipelines_dir.join(&config.pipeline_name);
        fs::create_dir_all(&workdir).map_err(PipelineError::io(&workdir))?;
        let lock_path = workdir.join("pipeline.lock");
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(PipelineError::io(&lock_path))?;
        if file.try_lock().is_err() {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = if pid.trim().is_empty() { "unknown".to_string() } else { pid.trim().to_string() };
            return Err(PipelineError::Locked { pipeline: config.pipeline_name.clone(), pid, path: lock_path });
        }
        file.set_len(0).map_err(PipelineError::io(&lock_path))?;
        file.rewind().map_err(PipelineError::io(&lock_path))?;
        write!(file, "{}", std::process::id()).map_err(PipelineError::io(&lock_path))?;
        file.flush().map_err(PipelineError::io(&lock_path))?;
        Ok(Pipeline { config, workdir, _lock: file })
    }

    /// The working directory.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The config.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    fn load_root(&self) -> PathBuf {
        self.workdir.join("load")
    }

    fn state_path(&self) -> PathBuf {
        self.workdir.join("state.json")
    }

    fn schema_path(&self, name: &str) -> PathBuf {
        self.workdir.join("schemas").join(format!("{name}.schema.json"))
    }

    /// The local state mirror, if any.
    pub fn local_state(&self) -> Result<Option<PipelineState>, PipelineError> {
        let path = self.state_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(PipelineError::io(&path))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(doc)) => Ok(Some(PipelineState::from_doc(doc))),
            _ => Err(PipelineError::LocalFiles(format!("{} is not a state document; delete it to restore the state from the destination", path.display()))),
        }
    }

    /// The local schema, if any.
    pub fn local_schema(&self, name: &str) -> Result<Option<Schema>, PipelineError> {
        let path = self.schema_path(name);
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(PipelineError::io(&path))?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            PipelineError::LocalFiles(format!("{} is not a schema ({e}); delete it to restore it from the destination", path.display()))
        })
    }

    /// Write the local state mirror and schema (atomically, via rename).
    pub fn save_local(&self, state: &PipelineState, schema: &Schema) -> Result<(), PipelineError> {
        write_atomic(&self.state_path(), &serde_json::to_string_pretty(&Value::Object(state.doc().clone())).unwrap_or_default())?;
        let sp = self.schema_path(&schema.name);
        if let Some(parent) = sp.parent() {
            fs::create_dir_all(parent).map_err(PipelineError::io(parent))?;
        }
        write_atomic(&sp, &serde_json::to_string_pretty(schema).unwrap_or_default())
    }

    /// Remove the local state, schema and packages (the destination is untouched).
    pub fn reset_local(&self) -> Result<(), PipelineError> {
        for p in [self.state_path(), self.workdir.join("schemas"), self.load_root(), self.workdir.join("trace.json")] {
            if p.is_dir() {
                fs::remove_dir_all(&p).map_err(PipelineError::io(&p))?;
            } else if p.exists() {
                fs::remove_file(&p).map_err(PipelineError::io(&p))?;
            }
        }
        Ok(())
    }

    /// State and schema to start from, reconciled with the destination (see [`Pipeline::sync_state`]).
    pub async fn current_state(
        &self,
        schema_name: &str,
        destination: &mut dyn Destination,
    ) -> Result<(PipelineState, Schema), PipelineError> {
        let synced = self.sync_state(schema_name, destination).await?;
        Ok((synced.state, synced.schema))
    }

    /// Compare the local mirror with the destination's newest `_dlt_pipeline_state` row and pick the state
    /// to start from. The destination holds the truth, since its state is committed with its data:
    /// * it has the local mirror's state (same `_version_hash`): the local mirror;
    /// * it has another one (newer, written from another working directory, or older after a restore):
    ///   the destination's state and schema;
    /// * it has none (a deleted database file, another dataset or destination) while the local mirror
    ///   has one: an empty state, with a warning, so every selected resource is loaded in full.
    ///
    /// Resources whose tables the chosen schema lists but the destination no longer has are returned in
    /// [`SyncedState::missing`]; a run reloads them from scratch.
    pub async fn sync_state(&self, schema_name: &str, destination: &mut dyn Destination) -> Result<SyncedState, PipelineError> {
        let local_state = self.local_state()?;
        let local_schema = self.local_schema(schema_name)?;
        let stored = destination.stored_state(&self.config.pipeline_name).await.map_err(PipelineError::Load)?;
        let pipeline = &self.config.pipeline_name;
        let dataset = &self.config.dataset_name;
        let fresh = PipelineState::new(pipeline, dataset, schema_name, destination.destination_type());
        let mut warnings = Vec::new();
        let (state, schema, base_hash) = match stored {
            None => {
                if local_state.as_ref().is_some_and(|s| s.version() > 0) {
                    warnings.push(format!(
                        "dataset `{dataset}` in {} has no state of pipeline `{pipeline}` (a deleted database file, another dataset or another destination) but the working directory has one: starting from an empty state, every selected resource is loaded in full",
                        destination.identity()
                    ));
                    (fresh, Schema::new(schema_name), String::new())
                } else {
                    (local_state.unwrap_or(fresh), local_schema.unwrap_or_else(|| Schema::new(schema_name)), String::new())
                }
            }
            Some(stored) => {
                let hash = stored.row.version_hash.clone();
                match (local_state, local_schema) {
                    (Some(ls), Some(lsc)) if ls.version_hash() == hash => (ls, lsc, hash),
                    (local, _) => {
                        let remote = PipelineState::decode(&stored.row.state)?;
                        match local {
                            None => tracing::info!(load_id = %stored.load_id, "restored pipeline state from the destination"),
                            Some(l) if l.version() > remote.version() => warnings.push(format!(
                                "the working directory's state of pipeline `{pipeline}` (version {}) is ahead of dataset `{dataset}`'s newest state (version {}, load {}); the destination is older than the local mirror (restored from a backup?): continuing from the destination's state",
                                l.version(),
                                remote.version(),
                                stored.load_id
                            )),
                            Some(l) => tracing::info!(
                                local_version = l.version(),
                                destination_version = remote.version(),
                                load_id = %stored.load_id,
                                "the destination has a newer state than the working directory; continuing from it"
                            ),
                        }
                        let schema = destination
                            .stored_schema(schema_name)
                            .await
                            .map_err(PipelineError::Load)?
                            .unwrap_or_else(|| Schema::new(schema_name));
                        (remote, schema, hash)
                    }
                }
            }
        };
        let existing: Vec<String> = destination.existing_tables().await.map_err(PipelineError::Load)?;
        let mut missing: Vec<String> = Vec::new();
        for t in schema.tables.values() {
            if t.columns.is_empty() || existing.contains(&t.name) {
                continue;
            }
            let resource = t.resource.clone().or_else(|| schema.tables.get(schema.root_of(&t.name)).and_then(|r| r.resource.clone()));
            if let Some(r) = resource {
                if !missing.contains(&r) {
                    missing.push(r);
                }
            }
        }
        if !missing.is_empty() {
            warnings.push(format!(
                "dataset `{dataset}` no longer has tables of {missing:?}: their state is reset and they are reloaded from scratch"
            ));
        }
        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(SyncedState { state, schema, base_hash, missing, existing_tables: existing, warnings })
    }

    /// Drop the tables (roots and children) and the state of `resources` of source `source_name`. The
    /// destination drops them and records the new schema and state in one transaction; the local copy
    /// follows. Pending packages of these resources are removed first (they would bring the dropped
    /// cursors back); other pending packages are loaded first. Returns the dropped tables.
    pub async fn drop_resources(
        &self,
        source_name: &str,
        resources: &[String],
        destination: &mut dyn Destination,
    ) -> Result<Vec<String>, PipelineError> {
        let result = self.drop_inner(source_name, resources, destination).await;
        destination.disconnect().await;
        result
    }

    async fn drop_inner(&self, source_name: &str, resources: &[String], destination: &mut dyn Destination) -> Result<Vec<String>, PipelineError> {
        validate_name("dataset", &self.config.dataset_name)?;
        self.remove_pending_of(resources, destination)?;
        let mut resumed = RunReport::default();
        self.resume_into(destination, &mut resumed).await?;
        let SyncedState { mut state, mut schema, .. } = self.sync_state(source_name, destination).await?;
        let mut dropped = Vec::new();
        for name in resources {
            let tables = resource_tables(&schema, name);
            let had_state = state.drop_resource(source_name, name);
            if had_state || !tables.is_empty() {
                // The next run that selects it fetches all its parents' keys, not only changed parents.
                state.resource_mut(source_name, name).insert(RESET_MARKER.to_string(), json!(true));
            }
            for t in tables {
                schema.tables.shift_remove(&t);
                dropped.push(t);
            }
        }
        schema.bump_version();
        if !state.bump() && dropped.is_empty() {
            // Nothing of these resources was loaded or remembered: leave the destination alone.
            return Ok(dropped);
        }
        let load_id = self.new_load_id();
        destination
            .drop_tables(&dropped, &schema, &state.to_row(chrono::Utc::now()), &load_id)
            .await
            .map_err(PipelineError::Load)?;
        self.save_local(&state, &schema)?;
        Ok(dropped)
    }

    /// Delete pending packages (for this dataset and destination) that touch any of `resources`.
    /// Returns their load ids.
    fn remove_pending_of(&self, resources: &[String], destination: &dyn Destination) -> Result<Vec<String>, PipelineError> {
        let mut removed = Vec::new();
        for package in pending_packages(&self.load_root())? {
            let m = package.manifest();
            if !self.made_for(m, destination) {
                continue;
            }
            let touches = m.resources.iter().any(|r| resources.contains(r))
                || m.tables.keys().any(|t| m.schema.tables.get(t).and_then(|t| t.resource.as_ref()).is_some_and(|r| resources.contains(r)));
            if touches {
                tracing::warn!(load_id = package.load_id(), "removing a pending package of the resources being reset");
                discard_package(&self.load_root(), &package)?;
                removed.push(package.load_id().to_string());
            }
        }
        Ok(removed)
    }

    fn made_for(&self, m: &PackageManifest, destination: &dyn Destination) -> bool {
        m.dataset_name == self.config.dataset_name && (m.destination.is_empty() || m.destination == destination.identity())
    }

    /// Load complete packages left by an earlier run. Returns their load ids. Packages made for another
    /// dataset or destination stay pending; packages made from a state the destination no longer has
    /// are discarded (their data is fetched again).
    pub async fn resume_pending(&self, destination: &mut dyn Destination) -> Result<Vec<String>, PipelineError> {
        let mut report = RunReport::default();
        let result = self.resume_into(destination, &mut report).await;
        destination.disconnect().await;
        result.map(|()| report.loaded_packages)
    }

    async fn resume_into(&self, destination: &mut dyn Destination, report: &mut RunReport) -> Result<(), PipelineError> {
        for package in pending_packages(&self.load_root())? {
            let id = package.load_id().to_string();
            match self.load_one(destination, &package).await? {
                LoadOutcome::Loaded(loaded) => {
                    report.warnings.extend(loaded.warnings);
                    report.loaded_packages.push(id.clone());
                    report.resumed_packages.push(id);
                }
                LoadOutcome::Skipped(why) => {
                    tracing::warn!("{why}");
                    report.warnings.push(why);
                }
                LoadOutcome::Discarded(why) => {
                    tracing::warn!("{why}");
                    report.warnings.push(why);
                    report.discarded_packages.push(id);
                }
            }
        }
        Ok(())
    }

    async fn load_one(&self, destination: &mut dyn Destination, package: &LoadPackage) -> Result<LoadOutcome, PipelineError> {
        let m = package.manifest();
        if !self.made_for(m, destination) {
            return Ok(LoadOutcome::Skipped(format!(
                "load package {} was made for dataset `{}` in {}; it stays pending until a run loads that dataset there",
                package.load_id(),
                m.dataset_name,
                if m.destination.is_empty() { "another destination" } else { &m.destination }
            )));
        }
        let already = destination.is_loaded(package.load_id()).await.map_err(PipelineError::Load)?;
        let mut load_report = LoadReport::default();
        if already {
            tracing::info!(load_id = package.load_id(), "package already loaded; not loading it twice");
        } else {
            if let Some(base) = &m.base_state_hash {
                let current = destination
                    .stored_state(&self.config.pipeline_name)
                    .await
                    .map_err(PipelineError::Load)?
                    .map(|s| s.row.version_hash)
                    .unwrap_or_default();
                if &current != base {
                    discard_package(&self.load_root(), package)?;
                    return Ok(LoadOutcome::Discarded(format!(
                        "load package {} was made from a state dataset `{}` no longer has (it was loaded further from elsewhere, dropped, or the database was replaced); it was discarded and its data is fetched again",
                        package.load_id(),
                        m.dataset_name
                    )));
                }
            }
            load_report = destination.load_package(package).await.map_err(PipelineError::Load)?;
            for w in &load_report.warnings {
                tracing::warn!(load_id = package.load_id(), "{w}");
            }
        }
        if let Some(doc) = &m.state_doc {
            self.save_local(&PipelineState::from_doc(doc.clone()), &m.schema)?;
        } else {
            let state = self.local_state()?.unwrap_or_else(|| {
                PipelineState::new(&m.pipeline_name, &m.dataset_name, &m.schema.name, destination.destination_type())
            });
            self.save_local(&state, &m.schema)?;
        }
        mark_loaded(&self.load_root(), package)?;
        Ok(LoadOutcome::Loaded(load_report))
    }

    /// Run `source` for the selected resources (`None`: the source's defaults) into `destination`.
    pub async fn run(
        &self,
        source: &dyn Source,
        selected: Option<&[String]>,
        destination: &mut dyn Destination,
    ) -> Result<RunReport, PipelineError> {
        self.run_with(source, selected, destination, RunOptions::default()).await
    }

    /// [`Pipeline::run`] with options (full refresh, test hooks). The destination is connected while
    /// pending packages are loaded and the state is read, disconnected while extracting, and connected
    /// again only to load the new package.
    pub async fn run_with(
        &self,
        source: &dyn Source,
        selected: Option<&[String]>,
        destination: &mut dyn Destination,
        mut options: RunOptions,
    ) -> Result<RunReport, PipelineError> {
        let config_values = std::mem::take(&mut options.config_values);
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let started = Instant::now();
        let mut clock = StepClock::default();
        let result = self.run_inner(source, selected, destination, options, &mut clock).await;
        // A run that failed (or loaded nothing) after an early load began leaves nothing behind.
        destination.abort_early_load().await;
        destination.disconnect().await;
        // The trace is written for failed runs too: `pipeline show` reports their error and steps.
        let (mut report, failure) = match result {
            Ok(report) => (report, None),
            Err(e) => {
                let error = e.to_string();
                clock.fail_unfinished(&error);
                let report = RunReport {
                    pipeline_name: self.config.pipeline_name.clone(),
                    dataset_name: self.config.dataset_name.clone(),
                    destination: destination.kind().to_string(),
                    resources: selected.map(<[String]>::to_vec).unwrap_or_default(),
                    elapsed_secs: started.elapsed().as_secs_f64(),
                    error: Some(error),
                    ..Default::default()
                };
                (report, Some(e))
            }
        };
        report.started_at = started_at;
        report.steps = clock.into_steps();
        report.resolved_config_values = config_values;
        self.write_trace(&report);
        match failure {
            None => Ok(report),
            Some(e) => Err(e),
        }
    }

    async fn run_inner(
        &self,
        source: &dyn Source,
        selected: Option<&[String]>,
        destination: &mut dyn Destination,
        options: RunOptions,
        clock: &mut StepClock,
    ) -> Result<RunReport, PipelineError> {
        let started = Instant::now();
        validate_name("dataset", &self.config.dataset_name)?;
        let specs = self.resource_specs(source)?;
        let selected: Vec<String> = match selected {
            Some(s) if !s.is_empty() => s.to_vec(),
            _ => source.default_resources(),
        };
        let unknown: Vec<String> = selected.iter().filter(|s| !specs.iter().any(|r| &r.name == *s)).cloned().collect();
        if !unknown.is_empty() {
            return Err(PipelineError::UnknownResource { unknown, available: specs.iter().map(|r| r.name.clone()).collect() });
        }
        source.validate_selection(&selected).map_err(PipelineError::Extract)?;
        // What the destination cannot load is refused before anything is fetched or connected.
        let capabilities = destination.capabilities();
        let selected_dispositions: Vec<(String, WriteDisposition)> =
            specs.iter().filter(|s| selected.contains(&s.name)).map(|s| (s.name.clone(), s.write_disposition)).collect();
        capabilities
            .check(destination.kind(), &selected_dispositions, &Schema::new(source.name()))
            .map_err(PipelineError::Unsupported)?;
        let selected_merges: Vec<(String, MergeHints)> = specs
            .iter()
            .filter(|s| selected.contains(&s.name) && s.write_disposition == WriteDisposition::Merge)
            .map(|s| (s.name.clone(), s.merge.clone()))
            .collect();
        capabilities.check_merge(destination.kind(), &selected_merges).map_err(PipelineError::Unsupported)?;
        // Resources that may be reconciled in this run, with their settings.
        let mut reconcilable: Vec<(&ResourceSpec, ReconcilePolicy)> = specs
            .iter()
            .filter(|s| selected.contains(&s.name))
            .filter_map(|s| {
                let decl = s.reconcile.as_ref()?;
                let configured = options.reconcile.get(&s.name).copied();
                // scd2 retires what disappears from its full extract itself (dlt's semantics); deleting its
                // history takes an explicit setting.
                if s.merge.strategy == MergeStrategy::Scd2 && configured.is_none() {
                    return None;
                }
                let policy = configured.unwrap_or(ReconcilePolicy { schedule: decl.schedule, deletes: Default::default() });
                (options.force_reconcile || policy.schedule != crate::reconcile::Schedule::Never).then_some((s, policy))
            })
            .collect();
        // A destination that cannot reconcile refuses an explicit reconciliation (configured or forced) up
        // front; with the declarations' defaults its runs keep deleted records, as dlt does, and say so.
        let mut no_reconcile_warning = None;
        if !capabilities.reconcile && !reconcilable.is_empty() {
            let explicit: Vec<String> = reconcilable
                .iter()
                .filter(|(s, _)| options.force_reconcile || options.reconcile.contains_key(&s.name))
                .map(|(s, _)| s.name.clone())
                .collect();
            capabilities.check_reconcile(destination.kind(), &explicit).map_err(PipelineError::Unsupported)?;
            let names: Vec<&str> = reconcilable.iter().map(|(s, _)| s.name.as_str()).collect();
            no_reconcile_warning = Some(format!(
                "the {} destination cannot reconcile deletions: records deleted upstream stay in {} (as in dlt); docs/deletions.md",
                destination.kind(),
                names.join(", ")
            ));
            reconcilable.clear();
        }
        destination.health_check().await.map_err(PipelineError::Load)?;

        let mut report = RunReport {
            pipeline_name: self.config.pipeline_name.clone(),
            dataset_name: self.config.dataset_name.clone(),
            destination: destination.kind().to_string(),
            resources: selected.clone(),
            ..Default::default()
        };
        report.warnings.extend(no_reconcile_warning);

        // 1. Finish what an earlier run left; a full refresh first removes the packages it supersedes.
        let sync_step = clock.start("sync");
        let mut refresh: Vec<String> = if options.full_refresh { selected.clone() } else { Vec::new() };
        if !refresh.is_empty() {
            self.remove_pending_of(&refresh, destination)?;
        }
        self.resume_into(destination, &mut report).await?;

        // 2. State and schema, reconciled with the destination.
        let SyncedState { mut state, mut schema, base_hash, missing, existing_tables, warnings } =
            self.sync_state(source.name(), destination).await?;
        clock.finish(sync_step);
        report.warnings.extend(warnings);
        capabilities.check(destination.kind(), &selected_dispositions, &schema).map_err(PipelineError::Unsupported)?;
        for spec in &specs {
            let marked = selected.contains(&spec.name)
                && state.resource(source.name(), &spec.name).is_some_and(|r| r.contains_key(RESET_MARKER));
            if (marked || missing.contains(&spec.name)) && !refresh.contains(&spec.name) {
                refresh.push(spec.name.clone());
            }
        }
        check_strategy_unchanged(&schema, &specs, &selected, &refresh)?;

        // 3. Reset refreshed resources: state and schema now; their tables are dropped in the load
        //    transaction, so a failed run leaves the dataset as it was.
        let mut drop_tables = Vec::new();
        for name in &refresh {
            for t in resource_tables(&schema, name) {
                schema.tables.shift_remove(&t);
                if existing_tables.contains(&t) {
                    drop_tables.push(t);
                }
            }
            state.drop_resource(source.name(), name);
            if !selected.contains(name) {
                state.resource_mut(source.name(), name).insert(RESET_MARKER.to_string(), json!(true));
            }
        }
        report.refreshed = refresh.iter().filter(|r| selected.contains(r)).cloned().collect();
        // A reloaded child needs every parent key: its parents run without their cursor filter.
        let mut all_parents: Vec<String> = Vec::new();
        for name in &report.refreshed {
            let mut parent = specs.iter().find(|s| &s.name == name).and_then(|s| s.parent.clone());
            while let Some(p) = parent {
                if !refresh.contains(&p) && !all_parents.contains(&p) {
                    all_parents.push(p.clone());
                }
                parent = specs.iter().find(|s| s.name == p).and_then(|s| s.parent.clone());
            }
        }

        state.set("destination_type", json!(destination.destination_type()));
        state.set("dataset_name", json!(self.config.dataset_name));
        let mut shared = ExtractShared::default();
        for spec in &specs {
            let res_state = state.resource(source.name(), &spec.name).cloned();
            // scd2 retires what a run does not extract, so its resources are always extracted in full:
            // no cursor filter (the stored cursor is kept for a later switch back).
            let full_extract = spec.write_disposition == WriteDisposition::Merge && spec.merge.strategy == MergeStrategy::Scd2;
            if let (Some(cursor), false) = (&spec.cursor, full_extract) {
                let stored = if all_parents.contains(&spec.name) {
                    None
                } else {
                    res_state.as_ref().and_then(|s| s.get("incremental")).and_then(|i| i.get(cursor))
                };
                shared.incrementals.insert(spec.name.clone(), Incremental::from_state(cursor, &spec.primary_key, stored));
            }
            if let Some(mut rs) = res_state {
                rs.remove("incremental");
                rs.remove(RESET_MARKER);
                if !rs.is_empty() {
                    shared.resource_state.insert(spec.name.clone(), rs);
                }
            }
        }
        let now = chrono::Utc::now();
        // Selected resources whose tables this load creates (a first load, a full refresh, lost tables).
        let creates_tables: Vec<&ResourceSpec> = specs
            .iter()
            .filter(|s| selected.contains(&s.name))
            .filter(|s| refresh.contains(&s.name) || !resource_tables(&schema, &s.name).iter().any(|t| existing_tables.contains(t)))
            .collect();
        // Those hold only this run's records afterwards: reconciling them could delete nothing, so no key
        // set is gathered or shipped (`large`: ~140 MB of keys held to the load, and the anti-joins in it)
        // and the load itself counts as their reconciliation. Soft deletes keep the usual path (it adds
        // their column).
        let fresh: Vec<String> = reconcilable
            .iter()
            .filter(|(s, p)| p.deletes == crate::reconcile::DeleteMode::Hard && creates_tables.iter().any(|c| c.name == s.name))
            .map(|(s, _)| s.name.clone())
            .collect();
        for (spec, policy) in reconcilable.iter().filter(|(s, _)| !fresh.contains(&s.name)) {
            let last = state
                .resource(source.name(), &spec.name)
                .and_then(|r| r.get(crate::reconcile::STATE_KEY))
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            let due = options.force_reconcile || policy.schedule.is_due(last, now);
            shared.reconcile.insert(spec.name.clone(), due);
        }
        // A destination may fill them while extracting ([`Destination::begin_early_load`]).
        let early_resources: Vec<EarlyResource> = creates_tables
            .iter()
            .map(|s| EarlyResource { name: s.name.clone(), disposition: s.write_disposition, merge: s.merge.clone() })
            .collect();
        let shared = Arc::new(Mutex::new(shared));
        // Nobody is locked out of the dataset while extracting (an early load, if the destination takes
        // one, connects when the first batch of a new table is ready).
        destination.disconnect().await;

        // 4. Extract and normalize concurrently into a new package.
        let load_id = self.new_load_id();
        let writer = PackageWriter::create(&self.load_root(), &load_id)?;
        let (tx, rx) = mpsc::channel::<Items>(self.config.channel_pages.max(1));
        let hints: IndexMap<String, RootHints> = specs
            .iter()
            .map(|s| {
                (s.name.clone(), RootHints {
                    resource: s.name.clone(),
                    table: s.name.clone(),
                    primary_key: s.primary_key.clone(),
                    disposition: s.write_disposition,
                    merge: s.merge.clone(),
                })
            })
            .collect();
        let norm_config = NormalizeConfig {
            max_identifier_len: capabilities.max_identifier_len,
            batch_rows: self.config.batch_rows,
            batch_bytes: self.config.batch_bytes,
            max_batch_age: (!early_resources.is_empty()).then_some(EARLY_BATCH_AGE),
        };
        let norm_load_id = load_id.clone();
        let extract_step = clock.start("extract");
        let normalize_step = clock.start("normalize");
        let (early_tx, early_rx) = if early_resources.is_empty() {
            (None, None)
        } else {
            let (etx, erx) = mpsc::channel::<EarlyBatch>(EARLY_BATCHES);
            let names = early_resources.iter().map(|r| r.name.clone()).collect();
            (Some((etx, names)), Some(erx))
        };
        let normalizer = tokio::task::spawn_blocking(move || normalize_loop(rx, schema, writer, hints, norm_config, &norm_load_id, early_tx));
        let ctx = ExtractContext::new(selected.clone(), tx, shared.clone());
        let extract = async {
            let r = source.extract(ctx).await;
            if r.is_ok() {
                clock.finish(extract_step);
            }
            r
        };
        let (extracted, early_rows) = match early_rx {
            Some(erx) => {
                let early = EarlyLoad { load_id: load_id.clone(), drop_tables: drop_tables.clone(), resources: early_resources };
                tokio::join!(extract, early_loader(&mut *destination, erx, early))
            }
            None => (extract.await, 0),
        };
        let normalized = normalizer.await.map_err(|e| PipelineError::LocalFiles(format!("normalizer thread failed: {e}")))?;
        if normalized.is_ok() {
            clock.finish(normalize_step);
        }
        let (mut schema, writer, rows) = match (extracted, normalized) {
            (Ok(()), Ok(out)) => out,
            (Err(e), Ok((_, w, _))) => {
                w.discard();
                return Err(PipelineError::Extract(e));
            }
            // A normalize failure stops the extractor too; report the cause, not the extractor's echo.
            (_, Err((e, w))) => {
                if let Some(w) = w {
                    w.discard();
                }
                return Err(e);
            }
        };
        report.early_rows = early_rows;
        report.rows = rows;

        // 5. State: cursors and resource state of every resource that ran. A parent run unfiltered for a
        //    reloaded child keeps its cursor unless its own rows were loaded.
        {
            let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
            for (name, inc) in &shared.incrementals {
                if all_parents.contains(name) && !selected.contains(name) {
                    continue;
                }
                let res = state.resource_mut(source.name(), name);
                let entry = res.entry("incremental".to_string()).or_insert_with(|| json!({}));
                if let Value::Object(m) = entry {
                    m.insert(inc.cursor().to_string(), inc.to_state());
                }
            }
            for (name, rs) in &shared.resource_state {
                let res = state.resource_mut(source.name(), name);
                for (k, v) in rs {
                    res.insert(k.clone(), v.clone());
                }
            }
        }
        // A cursor that never moved must not create state on a first run with no rows.
        prune_empty_incrementals(&mut state, source.name(), &specs);

        // 5b. Reconciliations: complete key sets go into the package (and their time into the state);
        //     incomplete ones delete nothing and are reported.
        let key_sets = std::mem::take(&mut shared.lock().unwrap_or_else(|e| e.into_inner()).key_sets);
        let due: std::collections::BTreeMap<String, bool> = shared.lock().unwrap_or_else(|e| e.into_inner()).reconcile.clone();
        let mut entries = Vec::new();
        let mut writer = writer;
        for (spec, policy) in &reconcilable {
            let Some(decl) = &spec.reconcile else { continue };
            let root = schema.resource_root_tables(&spec.name).into_iter().find(|t| !t.columns.is_empty()).map(|t| t.name.clone());
            let mut r = ReconcileReport {
                resource: spec.name.clone(),
                table: root.clone().unwrap_or_else(|| spec.name.clone()),
                mode: policy.deletes.to_string(),
                ..Default::default()
            };
            match key_sets.get(&spec.name) {
                _ if fresh.contains(&spec.name) => {
                    r.status = "applied".into();
                    r.keys = root.as_ref().and_then(|t| report.rows.get(t)).copied().unwrap_or(0);
                    r.reason = Some("its tables are created by this load: they hold only this run's records".into());
                }
                Some(KeyOutcome::Complete { keys, requests }) => {
                    r.status = "applied".into();
                    r.keys = keys.len() as u64;
                    r.requests = *requests;
                    if let Some(root) = &root {
                        let columns: Vec<String> =
                            decl.columns.iter().map(|c| crate::naming::normalize_key(c, capabilities.max_identifier_len)).collect();
                        if policy.deletes == crate::reconcile::DeleteMode::Soft {
                            if let Some(t) = schema.tables.get_mut(root) {
                                let col = crate::reconcile::DELETED_AT_COLUMN;
                                if !t.columns.contains_key(col) {
                                    t.columns.insert(col.to_string(), crate::schema::Column::new(col, crate::schema::DataType::Timestamp));
                                }
                            }
                        }
                        let file = writer.write_keys(&spec.name, &columns, keys)?;
                        entries.push(ReconcileEntry {
                            resource: spec.name.clone(),
                            table: root.clone(),
                            columns,
                            files: vec![file],
                            keys: keys.len() as u64,
                            mode: policy.deletes,
                            at: now,
                        });
                    }
                }
                Some(KeyOutcome::Incomplete { reason, requests }) => {
                    r.status = "skipped".into();
                    r.requests = *requests;
                    r.reason = Some(reason.clone());
                }
                None if due.get(&spec.name).copied().unwrap_or(false) => {
                    r.status = "skipped".into();
                    r.reason = Some("the source gathered no key set".into());
                }
                None => continue,
            }
            if r.status == "applied" {
                state
                    .resource_mut(source.name(), &spec.name)
                    .insert(crate::reconcile::STATE_KEY.to_string(), json!(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)));
            }
            if r.status == "skipped" {
                let w = format!("{r}; the last reconciliation time is unchanged, so it is due again (or rerun with --reconcile)");
                tracing::warn!("{w}");
                report.warnings.push(w);
            }
            report.reconciliations.push(r);
        }
        // The key sets are in the package now; they must not stay in memory through the load (`large`:
        // ~75 MB of attendance-period, absence and employee keys).
        drop(key_sets);
        if specs.iter().any(|s| selected.contains(&s.name) && s.write_disposition == WriteDisposition::Replace) {
            state.ensure_source(source.name());
        }
        let state_changed = state.bump();
        report.state_changed = state_changed;

        // 6. Replace roots: selected replace resources' root tables that have held data.
        let replace_roots: Vec<String> = specs
            .iter()
            .filter(|s| selected.contains(&s.name) && s.write_disposition == WriteDisposition::Replace)
            .flat_map(|s| schema.resource_root_tables(&s.name).into_iter().filter(|t| t.seen_data).map(|t| t.name.clone()).collect::<Vec<_>>())
            .collect();

        if writer.is_empty() && !state_changed && replace_roots.is_empty() && drop_tables.is_empty() && entries.is_empty() {
            writer.discard();
            // Nothing to load; the state the run started from is mirrored locally.
            self.save_local(&state, &schema)?;
            report.elapsed_secs = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        schema.bump_version();
        let now = chrono::Utc::now();
        let manifest = PackageManifest {
            load_id: load_id.clone(),
            dataset_name: self.config.dataset_name.clone(),
            pipeline_name: self.config.pipeline_name.clone(),
            schema,
            tables: IndexMap::new(),
            replace_roots,
            state: state_changed.then(|| state.to_row(now)),
            state_doc: Some(state.doc().clone()),
            resources: selected.clone(),
            destination: destination.identity(),
            base_state_hash: Some(base_hash),
            drop_tables,
            reconcile: entries,
        };
        let package = writer.finish(&self.load_root(), manifest)?;
        if options.fail_before_load {
            return Err(PipelineError::Load(DestinationError::new("test", "failure injected between normalize and load")));
        }

        // 7. Load (completing the early load, if one is open).
        let load_step = clock.start("load");
        match self.load_one(destination, &package).await? {
            LoadOutcome::Loaded(loaded) => {
                report.warnings.extend(loaded.warnings.iter().cloned());
                report.loaded_packages.push(load_id);
                for r in report.reconciliations.iter_mut().filter(|r| r.status == "applied") {
                    r.rows = loaded.deleted.iter().filter(|(t, _)| *t == r.table).map(|(_, n)| n).sum();
                }
            }
            LoadOutcome::Skipped(_) | LoadOutcome::Discarded(_) => {
                return Err(PipelineError::DestinationChanged { load_id, dataset: self.config.dataset_name.clone() })
            }
        }
        clock.finish(load_step);
        report.elapsed_secs = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The source's resources with the configured merge settings applied and checked.
    fn resource_specs(&self, source: &dyn Source) -> Result<Vec<ResourceSpec>, PipelineError> {
        let mut specs = source.resources();
        for (name, hints) in &self.config.merge {
            match specs.iter_mut().find(|s| &s.name == name) {
                Some(spec) => spec.merge = hints.clone(),
                None => {
                    let available: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                    return Err(PipelineError::MergeConfig(format!(
                        "merge settings for resource `{name}`, which source `{}` does not have; resources: {}",
                        source.name(),
                        available.join(", ")
                    )));
                }
            }
        }
        for spec in &specs {
            spec.merge.check(spec).map_err(PipelineError::MergeConfig)?;
        }
        Ok(specs)
    }

    fn new_load_id(&self) -> String {
        let now = chrono::Utc::now();
        let mut micros = now.timestamp_micros();
        // Load ids strictly increase, even across quick successive runs.
        let last = self.last_load_id_micros();
        if micros <= last {
            micros = last + 1;
        }
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    fn last_load_id_micros(&self) -> i64 {
        let mut max = 0i64;
        for sub in ["new", "normalized", "loaded"] {
            if let Ok(rd) = fs::read_dir(self.load_root().join(sub)) {
                for e in rd.flatten() {
                    if let Some(name) = e.file_name().to_str() {
                        if let Some((s, f)) = name.split_once('.') {
                            if let (Ok(s), Ok(f)) = (s.parse::<i64>(), format!("{f:0<6}")[..6].parse::<i64>()) {
                                max = max.max(s * 1_000_000 + f);
                            }
                        }
                    }
                }
            }
        }
        max
    }

    fn write_trace(&self, report: &RunReport) {
        let path = self.workdir.join("trace.json");
        let _ = write_atomic(&path, &serde_json::to_string_pretty(report).unwrap_or_default());
    }

    /// The last run's trace, if any.
    pub fn last_trace(&self) -> Option<Value> {
        fs::read_to_string(self.workdir.join("trace.json")).ok().and_then(|t| serde_json::from_str(&t).ok())
    }
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Reload the selected resources from scratch: their pending packages are removed, their state is
    /// reset, children refetch every parent key, and their tables are dropped and loaded again in the
    /// load transaction — only once the new extract has succeeded.
    pub full_refresh: bool,
    /// Test hook: stop with an error after the package is complete, before loading it.
    pub fail_before_load: bool,
    /// Reconciliation settings of the resources the user configured, overriding the declaration's
    /// schedule and the default hard delete (see [`crate::reconcile`]). An entry is an explicit request:
    /// a destination that cannot reconcile refuses it, where it only warns about the defaults.
    pub reconcile: std::collections::BTreeMap<String, ReconcilePolicy>,
    /// Reconcile every selected resource that declares a reconciliation now, whatever its schedule
    /// (`never` included).
    pub force_reconcile: bool,
    /// The configuration values the caller resolved for this run, written to the trace as they are
    /// (the caller leaves secrets' values out).
    pub config_values: Vec<ConfigValue>,
}

/// The state a run starts from, as [`Pipeline::sync_state`] reconciled it with the destination.
#[derive(Debug, Clone)]
pub struct SyncedState {
    /// The pipeline state.
    pub state: PipelineState,
    /// The schema.
    pub schema: Schema,
    /// `_version_hash` of the destination's newest state (`""`: none), the base of the next package.
    pub base_hash: String,
    /// Resources whose tables the schema lists but the destination no longer has.
    pub missing: Vec<String>,
    /// Tables the destination has.
    pub existing_tables: Vec<String>,
    /// What the user must know (also logged).
    pub warnings: Vec<String>,
}

/// Resource state key marking a resource reset (dropped) but not reloaded yet: the next run that
/// selects it reloads it from scratch, fetching every parent key for a child resource.
pub const RESET_MARKER: &str = "_reset";

enum LoadOutcome {
    Loaded(LoadReport),
    Skipped(String),
    Discarded(String),
}

/// Every table of a resource in the schema: its roots and their descendants, and tables tagged with it.
fn resource_tables(schema: &Schema, resource: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for root in schema.resource_root_tables(resource) {
        for t in schema.table_chain(&root.name) {
            if !out.contains(&t.name) {
                out.push(t.name.clone());
            }
        }
    }
    for t in schema.tables.values().filter(|t| t.resource.as_deref() == Some(resource)) {
        if !out.contains(&t.name) {
            out.push(t.name.clone());
        }
    }
    out
}

/// Refuse a run that would merge a resource with another strategy than its tables were loaded with
/// (unless it is reloaded from scratch now).
fn check_strategy_unchanged(schema: &Schema, specs: &[ResourceSpec], selected: &[String], refresh: &[String]) -> Result<(), PipelineError> {
    for spec in specs {
        if !selected.contains(&spec.name) || refresh.contains(&spec.name) || spec.write_disposition != WriteDisposition::Merge {
            continue;
        }
        for root in schema.resource_root_tables(&spec.name) {
            if root.seen_data && root.write_disposition == Some(WriteDisposition::Merge) && root.merge_strategy() != spec.merge.strategy {
                return Err(PipelineError::MergeStrategyChanged {
                    resource: spec.name.clone(),
                    stored: root.merge_strategy(),
                    configured: spec.merge.strategy,
                });
            }
        }
    }
    Ok(())
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

type NormalizeOut = (Schema, PackageWriter, IndexMap<String, u64>);

/// A batch the normalizer wrote, for the early load: its table as normalized so far, and the rows.
type EarlyBatch = (Table, arrow::record_batch::RecordBatch);

/// While a destination may load during the extract, a table's rows reach it at least this often (the
/// normalizer returns a batch once its oldest row has waited this long), so little is left to append
/// when the extract ends.
const EARLY_BATCH_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Batches waiting for the early load (they are in the package already; these are shared references).
const EARLY_BATCHES: usize = 8;

/// Feed the batches of new tables to the destination while extracting. The destination's transaction is
/// opened on the first batch; a destination that takes nothing, or fails, ends the early load (the
/// receiver is dropped, so the normalizer stops sending) and [`Destination::load_package`] does the
/// whole load as usual. A destination that is full (`Ok(false)`) keeps what it took, and its load step
/// inserts the rest of each table. Returns the rows appended (0 when it stopped: they were rolled back).
async fn early_loader(destination: &mut dyn Destination, mut rx: mpsc::Receiver<EarlyBatch>, early: EarlyLoad) -> u64 {
    let mut taken: Option<Vec<String>> = None;
    let mut rows = 0u64;
    while let Some((table, batch)) = rx.recv().await {
        let taken = match &mut taken {
            Some(t) => t,
            None => match destination.begin_early_load(&early).await {
                Ok(t) if !t.is_empty() => taken.insert(t),
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!("early load not started, loading after the extract instead: {e}");
                    destination.abort_early_load().await;
                    return 0;
                }
            },
        };
        if !table.resource.as_ref().is_some_and(|r| taken.contains(r)) {
            continue;
        }
        let n = batch.num_rows() as u64;
        match destination.early_append(&table, batch).await {
            Ok(more) => {
                rows += n;
                if !more {
                    // The rest of every table is inserted from the package by the load step.
                    tracing::debug!(rows, "early load full: the load step inserts the remaining rows");
                    break;
                }
            }
            Err(e) => {
                tracing::warn!("early load stopped, loading after the extract instead: {e}");
                destination.abort_early_load().await;
                return 0;
            }
        }
    }
    rows
}

fn normalize_loop(
    mut rx: mpsc::Receiver<Items>,
    mut schema: Schema,
    mut writer: PackageWriter,
    hints: IndexMap<String, RootHints>,
    config: NormalizeConfig,
    load_id: &str,
    mut early: Option<(mpsc::Sender<EarlyBatch>, std::collections::HashSet<String>)>,
) -> Result<NormalizeOut, (PipelineError, Option<PackageWriter>)> {
    let mut normalizer = Normalizer::new(config);
    let mut ensured = std::collections::HashSet::new();
    // Written batches of the early load's resources go to it too; once it stops listening, no more.
    let mut offer = |schema: &Schema, table: &str, batch: &arrow::record_batch::RecordBatch| {
        let Some((tx, resources)) = &early else { return };
        let Some(t) = schema.tables.get(table).filter(|t| t.resource.as_ref().is_some_and(|r| resources.contains(r))) else { return };
        if tx.blocking_send((t.clone(), batch.clone())).is_err() {
            early = None;
        }
    };
    let result: Result<(), PipelineError> = (|| {
        while let Some(items) = rx.blocking_recv() {
            let Some(h) = hints.get(&items.resource) else { continue };
            if ensured.insert(items.resource.clone()) {
                normalizer.ensure_root(&mut schema, h);
            }
            for record in items.records {
                normalizer.push(&mut schema, h, record, load_id)?;
            }
            for (table, batch) in normalizer.take_ready(&schema)? {
                writer.write(&table, &batch)?;
                offer(&schema, &table, &batch);
            }
        }
        for (table, batch) in normalizer.finish(&schema)? {
            writer.write(&table, &batch)?;
            offer(&schema, &table, &batch);
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            let rows = normalizer.row_counts().clone();
            Ok((schema, writer, rows))
        }
        Err(e) => {
            // Stop the extractor: dropping the receiver makes `emit` fail.
            drop(rx);
            Err((e, Some(writer)))
        }
    }
}

fn prune_empty_incrementals(state: &mut PipelineState, source: &str, specs: &[ResourceSpec]) {
    for spec in specs {
        let Some(cursor) = &spec.cursor else { continue };
        let empty = state
            .resource(source, &spec.name)
            .and_then(|r| r.get("incremental"))
            .and_then(|i| i.get(cursor))
            .map(|c| c.get("last_value").is_none_or(Value::is_null))
            .unwrap_or(false);
        if empty {
            let res = state.resource_mut(source, &spec.name);
            res.remove("incremental");
            if res.is_empty() {
                state.drop_resource(source, &spec.name);
            }
        }
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), PipelineError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).map_err(PipelineError::io(&tmp))?;
    fs::rename(&tmp, path).map_err(PipelineError::io(path))
}
