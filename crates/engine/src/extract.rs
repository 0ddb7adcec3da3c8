//! Extract: how a source hands records to the engine.
//!
//! A [`Source`] declares its resources as [`ResourceSpec`] values and, when run, sends pages of JSON
//! records through an [`ExtractContext`]. The context owns the incremental cursors (so the source can push
//! the lower bound into its API query and filter pages before feeding transformers) and applies
//! back-pressure: [`ExtractContext::emit`] waits while the normalizer is busy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::incremental::{Incremental, IncrementalError};
use crate::merge::MergeHints;
use crate::reconcile::{KeyOutcome, ReconcileSpec};
use crate::schema::WriteDisposition;

/// The error type sources return: anything, boxed (the source crate owns its typed errors).
pub type SourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A resource's declaration: what the engine needs to know to land its records.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSpec {
    /// Resource name; also its root table name.
    pub name: String,
    /// Primary-key fields of the shaped record (empty for none).
    pub primary_key: Vec<String>,
    /// Write disposition of its tables.
    pub write_disposition: WriteDisposition,
    /// Incremental cursor field, if any.
    pub cursor: Option<String>,
    /// The parent resource, for transformers.
    pub parent: Option<String>,
    /// How a `merge` resource is merged (strategy and merge hints; see [`crate::merge`]).
    pub merge: MergeHints,
    /// Its records can disappear upstream: how its rows are reconciled with a full key set
    /// (see [`crate::reconcile`]); `None`: never reconciled.
    pub reconcile: Option<ReconcileSpec>,
}

impl ResourceSpec {
    /// A resource with a name, key and disposition; no cursor, no parent.
    pub fn new(name: &str, primary_key: &[&str], write_disposition: WriteDisposition) -> Self {
        ResourceSpec {
            name: name.to_string(),
            primary_key: primary_key.iter().map(|s| s.to_string()).collect(),
            write_disposition,
            cursor: None,
            parent: None,
            merge: MergeHints::default(),
            reconcile: None,
        }
    }

    /// Set the merge strategy and hints.
    pub fn with_merge(mut self, merge: MergeHints) -> Self {
        self.merge = merge;
        self
    }

    /// Set the incremental cursor field.
    pub fn with_cursor(mut self, cursor: &str) -> Self {
        self.cursor = Some(cursor.to_string());
        self
    }

    /// Make this a transformer of `parent`.
    pub fn with_parent(mut self, parent: &str) -> Self {
        self.parent = Some(parent.to_string());
        self
    }

    /// Declare that its records can disappear: rows are matched on `columns` against a key set.
    pub fn with_reconcile(mut self, columns: &[&str], schedule: crate::reconcile::Schedule) -> Self {
        self.reconcile = Some(ReconcileSpec { columns: columns.iter().map(|s| s.to_string()).collect(), schedule });
        self
    }
}

/// One page of records of one resource, as sent to the normalizer.
#[derive(Debug)]
pub struct Items {
    /// The resource the records belong to.
    pub resource: String,
    /// Shaped records.
    pub records: Vec<Value>,
}

/// A source of resources (e.g. Personio).
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// Source name: the schema name and the state key (e.g. `personio`).
    fn name(&self) -> &str;
    /// All resources this source can produce, in source order.
    fn resources(&self) -> Vec<ResourceSpec>;
    /// Resources selected when the user names none.
    fn default_resources(&self) -> Vec<String> {
        self.resources().into_iter().map(|r| r.name).collect()
    }
    /// Check a selection before anything runs (e.g. refuse a retired endpoint with a helpful message).
    fn validate_selection(&self, _selected: &[String]) -> Result<(), SourceError> {
        Ok(())
    }
    /// Extract the selected resources, sending pages through `ctx`.
    async fn extract(&self, ctx: ExtractContext) -> Result<(), SourceError>;
}

/// Shared state of one extraction: selection, cursors, per-resource state.
#[derive(Debug, Default)]
pub(crate) struct ExtractShared {
    pub(crate) incrementals: BTreeMap<String, Incremental>,
    pub(crate) resource_state: BTreeMap<String, serde_json::Map<String, Value>>,
    /// Resources that may be reconciled in this run, and whether a reconciliation is due (else only one
    /// that costs no request is taken).
    pub(crate) reconcile: BTreeMap<String, bool>,
    /// What the source gathered per resource.
    pub(crate) key_sets: BTreeMap<String, KeyOutcome>,
}

/// Handed to [`Source::extract`]: selection, cursors and the channel to the normalizer.
#[derive(Clone)]
pub struct ExtractContext {
    selected: Arc<Vec<String>>,
    sink: mpsc::Sender<Items>,
    shared: Arc<Mutex<ExtractShared>>,
}

impl std::fmt::Debug for ExtractContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractContext").field("selected", &self.selected).finish()
    }
}

impl ExtractContext {
    pub(crate) fn new(selected: Vec<String>, sink: mpsc::Sender<Items>, shared: Arc<Mutex<ExtractShared>>) -> Self {
        ExtractContext { selected: Arc::new(selected), sink, shared }
    }

    /// Whether the user selected this resource (its rows are loaded).
    pub fn is_selected(&self, resource: &str) -> bool {
        self.selected.iter().any(|r| r == resource)
    }

    /// The selected resources.
    pub fn selected(&self) -> &[String] {
        &self.selected
    }

    /// The cursor's start value for this run (the stored `last_value`), to push into an API query.
    /// `None` on a first run or for a resource without a cursor.
    pub fn start_value(&self, resource: &str) -> Option<Value> {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.incrementals.get(resource).and_then(|i| i.start_value().cloned())
    }

    /// Apply the resource's incremental filter to a page (no-op without a cursor). Returns the kept rows.
    pub fn filter(&self, resource: &str, records: Vec<Value>) -> Result<Vec<Value>, IncrementalError> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match shared.incrementals.get_mut(resource) {
            Some(inc) => inc.filter(records),
            None => Ok(records),
        }
    }

    /// Read a value of the resource's persisted state.
    pub fn resource_state(&self, resource: &str, key: &str) -> Option<Value> {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.resource_state.get(resource).and_then(|m| m.get(key).cloned())
    }

    /// Set a value of the resource's persisted state (saved with the package's data).
    pub fn set_resource_state(&self, resource: &str, key: &str, value: Value) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.resource_state.entry(resource.to_string()).or_default().insert(key.to_string(), value);
    }

    /// Whether the resource may be reconciled in this run (it declares a reconciliation, is selected and
    /// its schedule is not `never`). A key set that costs no request (the run read the whole listing) is
    /// worth handing in whenever this holds.
    pub fn reconcile_enabled(&self, resource: &str) -> bool {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).reconcile.contains_key(resource)
    }

    /// Whether a reconciliation of the resource is due in this run (its schedule, or forced): the source
    /// then gathers the full key set even when it costs requests.
    pub fn reconcile_due(&self, resource: &str) -> bool {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).reconcile.get(resource).copied().unwrap_or(false)
    }

    /// Hand in what was gathered for a resource's reconciliation (ignored when it is not enabled). A
    /// complete key set replaces an earlier one; an incomplete outcome always wins (nothing is deleted).
    pub fn submit_keys(&self, resource: &str, outcome: KeyOutcome) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if !shared.reconcile.contains_key(resource) {
            return;
        }
        if matches!(shared.key_sets.get(resource), Some(KeyOutcome::Incomplete { .. })) {
            return;
        }
        shared.key_sets.insert(resource.to_string(), outcome);
    }

    /// Send a page of a selected resource to the normalizer (pages of unselected resources are dropped).
    /// Waits while the normalizer is busy.
    pub async fn emit(&self, resource: &str, records: Vec<Value>) -> Result<(), SourceError> {
        if !self.is_selected(resource) || records.is_empty() {
            return Ok(());
        }
        self.sink
            .send(Items { resource: resource.to_string(), records })
            .await
            .map_err(|_| "the normalizer stopped; the run is being aborted".into())
    }
}
