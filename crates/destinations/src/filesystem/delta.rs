//! Delta tables through delta-rs: the log and its commits only. Data files are written by
//! [`super::files`] with the workspace's `parquet`; here they become `add`/`remove` actions.
//!
//! delta-rs gets the bucket's own `object_store` instance (a `DefaultLogStore` over it), so commits go
//! through the same client and credentials as the data files, with no `deltalake-aws` crate. Its
//! `DefaultLogStore` writes each log entry with a put-if-absent (`PutMode::Create`: an atomic no-replace
//! rename on local disks, `If-None-Match: *` on S3), so two writers never both commit a version.
//!
//! Every commit carries an application transaction (`txn`) with app id [`APP_ID`] and the load id as
//! microseconds: a retried package skips each table whose commit for its load id is already in the log,
//! which makes a retry idempotent table by table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType as A, TimeUnit};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::kernel::{Action, Add, DataType as DeltaType, MetadataExt as _, PrimitiveType, Remove, StructField, StructType, Transaction};
use deltalake::logstore::{default_logstore, LogStoreRef, StorageConfig};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use futures::TryStreamExt as _;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use pipeline_engine::load::DestinationError;

use super::store::Bucket;
use super::KIND;

/// The application id of this tool's `txn` actions for a load's data.
pub const APP_ID: &str = "personio-pipeline";
/// The application id of a load's reconciliation commits (deletion detection), which precede its data
/// commit on the same table.
pub const RECONCILE_APP_ID: &str = "personio-pipeline/reconcile";

fn delta_err(what: &str, e: deltalake::DeltaTableError) -> DestinationError {
    DestinationError::new(KIND, format!("{what}: {e}; check the bucket is reachable and the table's _delta_log intact, then rerun (a retried load is idempotent)")).with_source(e)
}

/// A load id (`<seconds>.<fraction>`) as microseconds, the `txn` version of its commits.
pub fn txn_version(load_id: &str) -> i64 {
    let (int, frac) = load_id.split_once('.').unwrap_or((load_id, ""));
    let secs: i64 = int.parse().unwrap_or(0);
    let mut digits: String = frac.chars().filter(char::is_ascii_digit).take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    secs.saturating_mul(1_000_000).saturating_add(digits.parse::<i64>().unwrap_or(0))
}

/// The Delta type of an Arrow column type of our files.
pub fn delta_type(t: &A) -> Result<DeltaType, DestinationError> {
    Ok(match t {
        A::Utf8 | A::LargeUtf8 => DeltaType::STRING,
        A::Int64 => DeltaType::LONG,
        A::Float64 => DeltaType::DOUBLE,
        A::Boolean => DeltaType::BOOLEAN,
        A::Timestamp(_, Some(_)) => DeltaType::TIMESTAMP,
        A::Date32 => DeltaType::DATE,
        A::Binary | A::LargeBinary => DeltaType::BINARY,
        A::Decimal128(p, s) => DeltaType::decimal(*p, u8::try_from(*s).unwrap_or(0))
            .map_err(|e| DestinationError::new(KIND, format!("decimal({p},{s}) is not a Delta type: {e}")))?,
        other => return Err(DestinationError::new(KIND, format!("the Arrow type {other} has no Delta type here"))),
    })
}

/// The Arrow type our files use for a Delta column type (for columns a table has from earlier loads).
pub fn arrow_type(t: &DeltaType) -> Result<A, DestinationError> {
    let DeltaType::Primitive(p) = t else {
        return Err(DestinationError::new(KIND, format!("the Delta column type {t} is not written by this destination; load into a new dataset")));
    };
    Ok(match p {
        PrimitiveType::String => A::Utf8,
        PrimitiveType::Long => A::Int64,
        PrimitiveType::Integer => A::Int32,
        PrimitiveType::Double => A::Float64,
        PrimitiveType::Float => A::Float32,
        PrimitiveType::Boolean => A::Boolean,
        PrimitiveType::Binary => A::Binary,
        PrimitiveType::Date => A::Date32,
        PrimitiveType::Timestamp => A::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        PrimitiveType::TimestampNtz => A::Timestamp(TimeUnit::Microsecond, None),
        PrimitiveType::Decimal(d) => A::Decimal128(d.precision(), i8::try_from(d.scale()).unwrap_or(0)),
        other => return Err(DestinationError::new(KIND, format!("the Delta column type {other:?} is not written by this destination; load into a new dataset"))),
    })
}

/// A data file the table's current version references.
#[derive(Debug, Clone)]
pub struct ActiveFile {
    /// Path relative to the table folder.
    pub path: String,
    /// Rows, from the file's statistics, when recorded.
    pub rows: Option<u64>,
    /// The action that removes it.
    pub remove: Remove,
}

/// A data file written for a commit.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Path relative to the table folder.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Rows.
    pub rows: u64,
}

/// How a commit changes the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    /// Only adds files.
    Append,
    /// Removes every file of the current version (replace, full refresh).
    Overwrite,
    /// Removes the files a merge rewrote.
    Merge,
}

/// One Delta table of the dataset, at the version read when it was opened.
pub struct LakeTable {
    log_store: LogStoreRef,
    state: Option<DeltaTableState>,
    name: String,
    app: &'static str,
}

impl LakeTable {
    /// Open `<dataset>/<table>` (a table without a `_delta_log` opens as not existing).
    pub async fn open(bucket: &Bucket, dataset: &str, table: &str) -> Result<LakeTable, DestinationError> {
        let path = bucket.path(&[dataset, table]);
        let url = bucket.folder_url(&[dataset, table])?;
        let prefixed: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(bucket.root.clone(), path));
        let log_store = default_logstore(prefixed, bucket.root.clone(), &url, &StorageConfig::default());
        let exists = log_store.is_delta_table_location().await.map_err(|e| delta_err(&format!("reading the Delta log of {table}"), e))?;
        let state = if exists {
            Some(DeltaTableState::try_new(log_store.as_ref(), None).await.map_err(|e| delta_err(&format!("reading the Delta log of {table}"), e))?)
        } else {
            None
        };
        Ok(LakeTable { log_store, state, name: table.to_string(), app: APP_ID })
    }

    /// The same table, committing (and checking commits) under another `txn` application id.
    pub fn with_app(mut self, app: &'static str) -> Self {
        self.app = app;
        self
    }

    /// Whether the table has a Delta log.
    pub fn exists(&self) -> bool {
        self.state.is_some()
    }

    /// Whether this table already has the commit of `load_id` (a retried package skips it).
    pub async fn committed(&self, load_id: &str) -> Result<bool, DestinationError> {
        let Some(state) = &self.state else { return Ok(false) };
        let v = state
            .transaction_version(self.log_store.as_ref(), self.app)
            .await
            .map_err(|e| delta_err(&format!("reading the transactions of {}", self.name), e))?;
        Ok(v.is_some_and(|v| v >= txn_version(load_id)))
    }

    /// The files of the current version.
    pub async fn active_files(&self) -> Result<Vec<ActiveFile>, DestinationError> {
        let Some(state) = &self.state else { return Ok(Vec::new()) };
        let views: Vec<_> = state
            .snapshot()
            .file_views(self.log_store.as_ref(), None)
            .try_collect()
            .await
            .map_err(|e| delta_err(&format!("listing the files of {}", self.name), e))?;
        Ok(views
            .iter()
            .map(|v| ActiveFile { path: v.path().to_string(), rows: v.num_records().map(|n| n as u64), remove: v.remove_action(true) })
            .collect())
    }

    /// The table's columns as Arrow types, in order (empty for a new table).
    pub fn columns(&self) -> Result<Vec<(String, A)>, DestinationError> {
        let Some(state) = &self.state else { return Ok(Vec::new()) };
        state.schema().fields().map(|f| Ok((f.name().clone(), arrow_type(f.data_type())?))).collect()
    }

    /// Commit one change: `columns` is the table's whole schema afterwards (a superset of the current
    /// one, or anything on [`CommitKind::Overwrite`]), `removes` the files it drops, `adds` the files it
    /// writes. A new table is created by this commit (version 0 holds its data), so readers never see it
    /// empty. The commit records `load_id` in a `txn` and in `commitInfo`.
    pub async fn commit(
        &self,
        load_id: &str,
        columns: &[(String, A)],
        kind: CommitKind,
        removes: Vec<Remove>,
        adds: &[NewFile],
    ) -> Result<(), DestinationError> {
        if let Some(f) = adds.iter().find(|a| removes.iter().any(|r| r.path == a.path)) {
            // A file rewritten under its own name would be removed by the commit that adds it.
            return Err(DestinationError::new(KIND, format!("internal error: {} would be removed and added by one commit to {}", f.path, self.name)));
        }
        let fields = columns
            .iter()
            .map(|(n, t)| Ok(StructField::new(n.clone(), delta_type(t)?, true)))
            .collect::<Result<Vec<_>, DestinationError>>()?;
        let now = chrono::Utc::now().timestamp_millis();
        let add_actions: Vec<Action> = adds
            .iter()
            .map(|f| {
                Action::Add(Add {
                    path: f.path.clone(),
                    partition_values: HashMap::new(),
                    size: i64::try_from(f.size).unwrap_or(i64::MAX),
                    modification_time: now,
                    data_change: true,
                    stats: Some(serde_json::json!({ "numRecords": f.rows }).to_string()),
                    ..Add::default()
                })
            })
            .collect();
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new_with_last_update(self.app, txn_version(load_id), Some(now)))
            .with_metadata([("dlt_load_id".to_string(), serde_json::Value::String(load_id.to_string()))]);
        let what = format!("committing load {load_id} to the Delta table {}", self.name);
        let Some(state) = &self.state else {
            CreateBuilder::new()
                .with_log_store(self.log_store.clone())
                .with_table_name(self.name.clone())
                .with_columns(fields)
                .with_actions(add_actions)
                .with_commit_properties(properties)
                .with_save_mode(SaveMode::ErrorIfExists)
                .await
                .map_err(|e| delta_err(&what, e))?;
            return Ok(());
        };
        let mut actions = Vec::new();
        let schema = StructType::try_new(fields).map_err(|e| delta_err(&what, e.into()))?;
        if schema != *state.schema() {
            let metadata = state.metadata().clone().with_schema(&schema).map_err(|e| delta_err(&what, e.into()))?;
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(removes.into_iter().map(Action::Remove));
        actions.extend(add_actions);
        let operation = match kind {
            CommitKind::Append => DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None },
            CommitKind::Overwrite => DeltaOperation::Write { mode: SaveMode::Overwrite, partition_by: None, predicate: None },
            CommitKind::Merge => DeltaOperation::Merge {
                predicate: None,
                merge_predicate: Some("primary key".to_string()),
                matched_predicates: Vec::new(),
                not_matched_predicates: Vec::new(),
                not_matched_by_source_predicates: Vec::new(),
            },
        };
        CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(state as &dyn TableReference), self.log_store.clone(), operation)
            .await
            .map_err(|e| delta_err(&what, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_ids_become_increasing_microseconds() {
        assert_eq!(txn_version("1796077180.314954"), 1_796_077_180_314_954);
        assert_eq!(txn_version("1796077180.5"), 1_796_077_180_500_000);
        assert!(txn_version("1796077180.314954") < txn_version("1796077181.000001"));
    }

    #[test]
    fn types_map_both_ways() {
        for t in [A::Utf8, A::Int64, A::Float64, A::Boolean, A::Date32, A::Binary, A::Decimal128(38, 9), A::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))] {
            assert_eq!(arrow_type(&delta_type(&t).expect("delta")).expect("arrow"), t);
        }
        assert!(delta_type(&A::Time64(TimeUnit::Microsecond)).is_err(), "time is written as text in Delta tables");
    }
}
