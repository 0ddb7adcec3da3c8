//! Load packages: the on-disk hand-off between normalize and load.
//!
//! A package is a folder `load/normalized/<load_id>/` in the pipeline's working directory holding one or
//! more Arrow IPC files per table and a `manifest.json` (schema snapshot, table jobs, replace chains,
//! state row). It is written under `load/new/` and renamed into `normalized/` only when complete, so a
//! package in `normalized/` is always whole: a run that fails during load leaves it there and the next run
//! loads it without fetching again. After a successful load the folder moves to `load/loaded/`
//! (data files removed, manifest kept).

use std::fs;
use std::path::{Path, PathBuf};

use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::reconcile::ReconcileEntry;
use crate::schema::Schema;
use crate::state::StateRow;

/// Errors reading or writing packages.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// File-system error with the path involved.
    #[error("load package I/O error at {path}: {source}; check free disk space, file size limits and permissions of the working directory, then rerun")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Arrow IPC error.
    #[error("load package file {path} could not be written or read: {source}; check free disk space and file size limits, then rerun")]
    Arrow {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: arrow::error::ArrowError,
    },
    /// Manifest error.
    #[error("load package manifest {path} is invalid: {source}; delete the package folder to discard it")]
    Manifest {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io { path: path.to_path_buf(), source }
}

/// One table's data in a package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableJob {
    /// Data files relative to the package folder, in write order.
    pub files: Vec<String>,
    /// Rows in all files.
    pub rows: u64,
}

/// What a package contains and how to load it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageManifest {
    /// The load id (`<unix seconds>.<fraction>`).
    pub load_id: String,
    /// Dataset (destination schema) name.
    pub dataset_name: String,
    /// Pipeline name.
    pub pipeline_name: String,
    /// The schema after normalizing this package.
    pub schema: Schema,
    /// Table jobs by table name, in schema order.
    pub tables: IndexMap<String, TableJob>,
    /// Root tables of selected replace resources: their whole chain is replaced, even with no rows.
    pub replace_roots: Vec<String>,
    /// The state row to append, when the state changed.
    pub state: Option<StateRow>,
    /// The state document (for the local mirror once loaded).
    pub state_doc: Option<serde_json::Map<String, serde_json::Value>>,
    /// Resources extracted, for the trace.
    pub resources: Vec<String>,
    /// [`crate::load::Destination::identity`] of the destination the package was made for.
    #[serde(default)]
    pub destination: String,
    /// `_version_hash` of the destination's state the package was derived from (`""`: none). A package
    /// whose base is no longer the destination's newest state is stale and never loaded.
    #[serde(default)]
    pub base_state_hash: Option<String>,
    /// Tables dropped and created again in the load transaction (full refresh of their resources).
    #[serde(default)]
    pub drop_tables: Vec<String>,
    /// Reconciliations: per resource, the full key set (in `reconcile/`) its root table is reconciled
    /// with in the load transaction (see [`crate::reconcile`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reconcile: Vec<ReconcileEntry>,
}

/// A complete package on disk.
#[derive(Debug, Clone)]
pub struct LoadPackage {
    dir: PathBuf,
    manifest: PackageManifest,
}

impl LoadPackage {
    /// Open a complete package folder.
    pub fn open(dir: &Path) -> Result<Self, PackageError> {
        let path = dir.join("manifest.json");
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let manifest = serde_json::from_str(&text).map_err(|source| PackageError::Manifest { path, source })?;
        Ok(LoadPackage { dir: dir.to_path_buf(), manifest })
    }

    /// The manifest.
    pub fn manifest(&self) -> &PackageManifest {
        &self.manifest
    }

    /// The load id.
    pub fn load_id(&self) -> &str {
        &self.manifest.load_id
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read all batches of one table, file by file (each file may have its own set of columns: later files
    /// can have more columns than earlier ones).
    pub fn batches(&self, table: &str) -> Result<Vec<RecordBatch>, PackageError> {
        let mut out = Vec::new();
        self.for_each_batch(table, |b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    /// Stream the batches of one table into `f` without holding them all in memory.
    pub fn for_each_batch<E: From<PackageError>>(&self, table: &str, f: impl FnMut(RecordBatch) -> Result<(), E>) -> Result<(), E> {
        let Some(job) = self.manifest.tables.get(table) else { return Ok(()) };
        self.read_files(&job.files, f)
    }

    /// [`Self::for_each_batch`] without the first `skip` rows of the table (rows an early load appended).
    pub fn for_each_batch_after<E: From<PackageError>>(&self, table: &str, skip: u64, mut f: impl FnMut(RecordBatch) -> Result<(), E>) -> Result<(), E> {
        let mut skip = skip;
        self.for_each_batch(table, |batch| {
            let n = batch.num_rows() as u64;
            if skip >= n {
                skip -= n;
                return Ok(());
            }
            let from = usize::try_from(skip).unwrap_or(usize::MAX);
            skip = 0;
            f(if from == 0 { batch } else { batch.slice(from, batch.num_rows() - from) })
        })
    }

    /// The reconciliation of a resource in this package, if any.
    pub fn reconcile_entry(&self, resource: &str) -> Option<&ReconcileEntry> {
        self.manifest.reconcile.iter().find(|e| e.resource == resource)
    }

    /// Stream the key batches of a resource's reconciliation into `f` (text columns named as the entry's
    /// key columns).
    pub fn for_each_key_batch<E: From<PackageError>>(&self, resource: &str, f: impl FnMut(RecordBatch) -> Result<(), E>) -> Result<(), E> {
        let Some(entry) = self.reconcile_entry(resource) else { return Ok(()) };
        self.read_files(&entry.files, f)
    }

    fn read_files<E: From<PackageError>>(&self, files: &[String], mut f: impl FnMut(RecordBatch) -> Result<(), E>) -> Result<(), E> {
        for file in files {
            let path = self.dir.join(file);
            let reader = fs::File::open(&path).map_err(io(&path)).map_err(E::from)?;
            let reader = FileReader::try_new(std::io::BufReader::new(reader), None)
                .map_err(|source| E::from(PackageError::Arrow { path: path.clone(), source }))?;
            for batch in reader {
                let batch = batch.map_err(|source| E::from(PackageError::Arrow { path: path.clone(), source }))?;
                f(batch)?;
            }
        }
        Ok(())
    }
}

/// Writes a package's table files while normalizing.
pub struct PackageWriter {
    dir: PathBuf,
    writers: IndexMap<String, (FileWriter<std::io::BufWriter<fs::File>>, arrow::datatypes::SchemaRef)>,
    jobs: IndexMap<String, TableJob>,
}

impl std::fmt::Debug for PackageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageWriter").field("dir", &self.dir).field("jobs", &self.jobs).finish()
    }
}

impl PackageWriter {
    /// Start a package in `<load_root>/new/<load_id>/`.
    pub fn create(load_root: &Path, load_id: &str) -> Result<Self, PackageError> {
        let dir = load_root.join("new").join(load_id);
        let tables = dir.join("tables");
        fs::create_dir_all(&tables).map_err(io(&tables))?;
        Ok(PackageWriter { dir, writers: IndexMap::new(), jobs: IndexMap::new() })
    }

    /// Append a batch of a table. A batch with a different set of columns starts a new file.
    pub fn write(&mut self, table: &str, batch: &RecordBatch) -> Result<(), PackageError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let needs_new = match self.writers.get(table) {
            Some((_, schema)) => schema != &batch.schema(),
            None => true,
        };
        if needs_new {
            if let Some((mut w, _)) = self.writers.shift_remove(table) {
                w.finish().map_err(|source| PackageError::Arrow { path: self.dir.clone(), source })?;
            }
            let job = self.jobs.entry(table.to_string()).or_default();
            let name = format!("tables/{}.{}.arrow", table, job.files.len());
            let path = self.dir.join(&name);
            let file = fs::File::create(&path).map_err(io(&path))?;
            let w = FileWriter::try_new(std::io::BufWriter::new(file), &batch.schema())
                .map_err(|source| PackageError::Arrow { path: path.clone(), source })?;
            job.files.push(name);
            self.writers.insert(table.to_string(), (w, batch.schema()));
        }
        let dir = self.dir.clone();
        if let Some((w, _)) = self.writers.get_mut(table) {
            w.write(batch).map_err(|source| PackageError::Arrow { path: dir, source })?;
        }
        if let Some(job) = self.jobs.get_mut(table) {
            job.rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    /// Write a resource's key set for a reconciliation; returns the file (relative to the package).
    pub fn write_keys(&mut self, resource: &str, columns: &[String], keys: &[Vec<String>]) -> Result<String, PackageError> {
        let dir = self.dir.join("reconcile");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let safe: String = resource.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        let name = format!("reconcile/{safe}.keys.arrow");
        crate::reconcile::write_key_file(&self.dir.join(&name), columns, keys)?;
        Ok(name)
    }

    /// Whether any row was written.
    pub fn is_empty(&self) -> bool {
        self.jobs.values().all(|j| j.rows == 0)
    }

    /// Close files, write the manifest and move the package to `<load_root>/normalized/<load_id>/`.
    pub fn finish(mut self, load_root: &Path, mut manifest: PackageManifest) -> Result<LoadPackage, PackageError> {
        for (_, (mut w, _)) in self.writers.drain(..) {
            w.finish().map_err(|source| PackageError::Arrow { path: self.dir.clone(), source })?;
        }
        // Table jobs in schema order, so parents load before children.
        let mut tables = IndexMap::new();
        for name in manifest.schema.tables.keys() {
            if let Some(job) = self.jobs.shift_remove(name) {
                tables.insert(name.clone(), job);
            }
        }
        tables.extend(self.jobs.drain(..));
        manifest.tables = tables;
        let path = self.dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest).map_err(|source| PackageError::Manifest { path: path.clone(), source })?;
        fs::write(&path, text).map_err(io(&path))?;
        let target_root = load_root.join("normalized");
        fs::create_dir_all(&target_root).map_err(io(&target_root))?;
        let target = target_root.join(&manifest.load_id);
        fs::rename(&self.dir, &target).map_err(io(&target))?;
        Ok(LoadPackage { dir: target, manifest })
    }

    /// Discard the package being written.
    pub fn discard(self) {
        drop(self.writers);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Complete packages waiting in `<load_root>/normalized/`, oldest first.
pub fn pending_packages(load_root: &Path) -> Result<Vec<LoadPackage>, PackageError> {
    let dir = load_root.join("normalized");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    ids.sort_by(|a, b| {
        let key = |p: &PathBuf| p.file_name().and_then(|n| n.to_str()).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    ids.iter().map(|p| LoadPackage::open(p)).collect()
}

/// Mark a package loaded: keep its manifest under `<load_root>/loaded/<load_id>/`, drop its data files.
pub fn mark_loaded(load_root: &Path, package: &LoadPackage) -> Result<(), PackageError> {
    let target_root = load_root.join("loaded");
    fs::create_dir_all(&target_root).map_err(io(&target_root))?;
    let target = target_root.join(package.load_id());
    let _ = fs::remove_dir_all(&target);
    fs::rename(package.dir(), &target).map_err(io(&target))?;
    let tables = target.join("tables");
    let _ = fs::remove_dir_all(tables);
    let _ = fs::remove_dir_all(target.join("reconcile"));
    Ok(())
}

/// Discard a package that must never be loaded (stale, or superseded by a refresh): its folder moves to
/// `<load_root>/discarded/<load_id>/` with the manifest only, for the record.
pub fn discard_package(load_root: &Path, package: &LoadPackage) -> Result<(), PackageError> {
    let target_root = load_root.join("discarded");
    fs::create_dir_all(&target_root).map_err(io(&target_root))?;
    let target = target_root.join(package.load_id());
    let _ = fs::remove_dir_all(&target);
    fs::rename(package.dir(), &target).map_err(io(&target))?;
    let _ = fs::remove_dir_all(target.join("tables"));
    let _ = fs::remove_dir_all(target.join("reconcile"));
    Ok(())
}
