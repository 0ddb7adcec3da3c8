//! Deletion detection by reconciliation: rows whose keys the source no longer serves are removed (or
//! marked) in the same transaction as the package.
//!
//! Sources without tombstones (Personio) simply stop returning a deleted record, so an incremental merge
//! keeps it forever. A resource that declares a [`ReconcileSpec`] can have its **full current key set**
//! gathered by the source (a cheap key-only listing, or for free when the run's extract read the whole
//! listing anyway) and shipped in the load package ([`ReconcileEntry`], one Arrow file of text keys per
//! resource). The load plan then has a [`crate::plan::LoadJob::Reconcile`] for it, which every
//! destination executes:
//!
//! * [`DeleteMode::Hard`] (default): rows of the root table whose key columns are not in the key set are
//!   deleted, and their child rows with them (by `_dlt_root_id`);
//! * [`DeleteMode::Soft`]: they stay, with [`DELETED_AT_COLUMN`] set to the reconciliation time (rows
//!   already marked keep their first mark; a row whose key is seen again is unmarked).
//!
//! The key columns need not be the primary key: a transformer's rows can be reconciled against its
//! parent's key set (balances by `employee_id` against the employees' ids), which removes the rows of a
//! parent that is gone.
//!
//! A key set is only shipped when the source saw every page of the listing; a failed, faulted or
//! inconsistent listing ([`KeyOutcome::Incomplete`]) deletes nothing and says so in the run report.
//! When it runs is a [`Schedule`] per resource; the time of the last reconciliation is kept in the
//! pipeline state ([`STATE_KEY`] in the resource's state), so a stateless worker restores it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType as ArrowType, Field, Schema as ArrowSchema};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The column a soft delete sets: when the reconciliation first found the row gone (`NULL`: present).
/// dlt has no soft-delete column (its `hard_delete` hint deletes, its scd2 closes `_dlt_valid_to`), so the
/// name follows dlt's `_dlt_` convention for columns the loader owns.
pub const DELETED_AT_COLUMN: &str = "_dlt_deleted_at";

/// Key of a resource's state holding the time of its last applied reconciliation (RFC 3339).
pub const STATE_KEY: &str = "reconciled_at";

/// Rows per Arrow batch in a key file.
const KEY_BATCH_ROWS: usize = 50_000;

/// When a resource is reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every run.
    Always,
    /// Never (as dlt: deleted records stay).
    Never,
    /// When the last reconciliation is at least this old (or there was none).
    Every(chrono::Duration),
}

impl Schedule {
    /// Whether a reconciliation is due at `now` after the last one at `last`.
    pub fn is_due(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match self {
            Schedule::Always => true,
            Schedule::Never => false,
            Schedule::Every(period) => last.is_none_or(|l| now - l >= *period),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Always => f.write_str("always"),
            Schedule::Never => f.write_str("never"),
            Schedule::Every(d) => {
                let s = d.num_seconds();
                let (n, unit) = if s % 604_800 == 0 {
                    (s / 604_800, "w")
                } else if s % 86_400 == 0 {
                    (s / 86_400, "d")
                } else if s % 3_600 == 0 {
                    (s / 3_600, "h")
                } else if s % 60 == 0 {
                    (s / 60, "m")
                } else {
                    (s, "s")
                };
                write!(f, "{n}{unit}")
            }
        }
    }
}

/// A schedule that is not `always`, `never` or a duration such as `7d`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is {0:?}; allowed: `always`, `never` or a duration: a whole number with a unit s, m, h, d or w (e.g. `12h`, `7d`), at least 1 minute and at most 3650 days")]
pub struct ParseScheduleError(pub String);

impl FromStr for Schedule {
    type Err = ParseScheduleError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let s = raw.trim().to_ascii_lowercase();
        let err = || ParseScheduleError(raw.chars().take(40).collect());
        match s.as_str() {
            "always" => return Ok(Schedule::Always),
            "never" => return Ok(Schedule::Never),
            _ => {}
        }
        let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (num, unit) = s.split_at(unit_at);
        let n: i64 = num.parse().map_err(|_| err())?;
        let secs_per = match unit.trim() {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(err()),
        };
        let secs = n.checked_mul(secs_per).ok_or_else(err)?;
        if !(60..=3650 * 86_400).contains(&secs) {
            return Err(err());
        }
        Ok(Schedule::Every(chrono::Duration::seconds(secs)))
    }
}

/// What happens to rows whose keys are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// Delete them and their child rows (mirrors the source; right for erasure).
    #[default]
    Hard,
    /// Keep them with [`DELETED_AT_COLUMN`] set.
    Soft,
}

impl DeleteMode {
    /// `hard` or `soft`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteMode::Hard => "hard",
            DeleteMode::Soft => "soft",
        }
    }
}

impl fmt::Display for DeleteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeleteMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hard" => Ok(DeleteMode::Hard),
            "soft" => Ok(DeleteMode::Soft),
            _ => Err(format!("is {:?}; allowed: `hard`, `soft`", s.chars().take(40).collect::<String>())),
        }
    }
}

/// A resource's reconciliation settings for a run (the declaration's defaults, overridden by config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilePolicy {
    /// When.
    pub schedule: Schedule,
    /// Hard or soft.
    pub deletes: DeleteMode,
}

/// A resource's declaration that its records can disappear and how its rows are matched to a key set.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileSpec {
    /// Fields of the shaped record (columns of the root table) matched against the key set, in the order
    /// the source gives key tuples.
    pub columns: Vec<String>,
    /// The default schedule (the source documents why).
    pub schedule: Schedule,
}

/// What the source gathered for a resource's reconciliation.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyOutcome {
    /// Every page was seen: the full current key set (tuples in [`ReconcileSpec::columns`] order, as text).
    Complete {
        /// The key tuples.
        keys: Vec<Vec<String>>,
        /// Requests the key set cost beyond the run's extract (0: it rode on a full extract).
        requests: u64,
    },
    /// Not every page was seen (error, fault, a listing whose total changed): nothing is deleted.
    Incomplete {
        /// Why, for the report.
        reason: String,
        /// Requests made before giving up.
        requests: u64,
    },
}

/// A key value as text, the form every destination compares: strings as they are, numbers and booleans
/// as JSON writes them, `None` for null (a row with a null key part matches no key).
pub fn key_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A reconciliation shipped in a load package: which root table, which key columns, which file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileEntry {
    /// The resource.
    pub resource: String,
    /// Its root table.
    pub table: String,
    /// Normalized key columns of the root table (the key file's columns, all text).
    pub columns: Vec<String>,
    /// Key files relative to the package folder (Arrow IPC).
    pub files: Vec<String>,
    /// Key tuples in the files.
    pub keys: u64,
    /// Hard or soft.
    pub mode: DeleteMode,
    /// The reconciliation time (a soft delete's mark).
    pub at: DateTime<Utc>,
}

/// The Arrow schema of a key file: one nullable text column per key column.
pub fn key_schema(columns: &[String]) -> Arc<ArrowSchema> {
    Arc::new(ArrowSchema::new(columns.iter().map(|c| Field::new(c, ArrowType::Utf8, true)).collect::<Vec<_>>()))
}

/// Write key tuples as Arrow IPC to `path` (batches of [`KEY_BATCH_ROWS`]).
pub fn write_key_file(path: &Path, columns: &[String], keys: &[Vec<String>]) -> Result<(), crate::package::PackageError> {
    use crate::package::PackageError;
    let schema = key_schema(columns);
    let file = std::fs::File::create(path).map_err(|source| PackageError::Io { path: path.to_path_buf(), source })?;
    let arrow_err = |source| PackageError::Arrow { path: path.to_path_buf(), source };
    let mut w = arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &schema).map_err(arrow_err)?;
    for chunk in keys.chunks(KEY_BATCH_ROWS) {
        let arrays: Vec<ArrayRef> = (0..columns.len())
            .map(|i| Arc::new(chunk.iter().map(|k| k.get(i).map(String::as_str)).collect::<StringArray>()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(arrow_err)?;
        w.write(&batch).map_err(arrow_err)?;
    }
    w.finish().map_err(arrow_err)
}

/// One resource's reconciliation in a run report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// The resource.
    pub resource: String,
    /// Its root table.
    pub table: String,
    /// `applied`: rows whose keys are gone were deleted or marked; `skipped`: nothing was deleted.
    pub status: String,
    /// Hard or soft.
    pub mode: String,
    /// Keys in the key set.
    pub keys: u64,
    /// Extra requests the key set cost (0 when it rode on a full extract).
    pub requests: u64,
    /// Root rows deleted (hard) or newly marked (soft); child rows go with their roots.
    pub rows: u64,
    /// Why it was skipped, or why it was applied without a key set (a load that created the tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == "applied" {
            let verb = if self.mode == "soft" { "marked deleted" } else { "deleted" };
            write!(
                f,
                "Reconciled {}: {} keys ({} extra requests), {} row(s) {verb} in {}",
                self.resource, self.keys, self.requests, self.rows, self.table
            )
        } else {
            write!(
                f,
                "Reconciliation of {} skipped, nothing deleted ({} requests): {}",
                self.resource,
                self.requests,
                self.reason.as_deref().unwrap_or("not every page was seen")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print() {
        for (raw, want) in [("always", "always"), ("NEVER", "never"), ("7d", "1w"), ("12h", "12h"), (" 30m ", "30m"), ("2w", "2w"), ("1d", "1d")] {
            assert_eq!(raw.parse::<Schedule>().map(|s| s.to_string()).as_deref(), Ok(want), "{raw}");
        }
        for bad in ["", "weekly", "7", "d", "-1d", "0d", "30s", "7 days", "99999999999999999999d", "4000d"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_schedule_is_due_when_the_last_run_is_old_enough() {
        let now = Utc::now();
        let week = Schedule::Every(chrono::Duration::days(7));
        assert!(week.is_due(None, now));
        assert!(!week.is_due(Some(now - chrono::Duration::days(6)), now));
        assert!(week.is_due(Some(now - chrono::Duration::days(7)), now));
        assert!(Schedule::Always.is_due(Some(now), now));
        assert!(!Schedule::Never.is_due(None, now));
    }

    #[test]
    fn key_text_is_the_json_scalar() {
        assert_eq!(key_text(&serde_json::json!(12)), Some("12".into()));
        assert_eq!(key_text(&serde_json::json!("a")), Some("a".into()));
        assert_eq!(key_text(&serde_json::Value::Null), None);
        assert_eq!("soft".parse::<DeleteMode>(), Ok(DeleteMode::Soft));
        assert!("archive".parse::<DeleteMode>().is_err());
    }
}
