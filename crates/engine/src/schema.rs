//! The dataset schema: tables, columns and their dlt data types, versioned and hashed like dlt's.
//!
//! A [`Schema`] only grows: tables and columns are added, never removed or retyped (a conflicting value
//! goes to a variant column instead, see [`crate::normalize`]). Every change bumps [`Schema::version`] and
//! changes [`Schema::version_hash`], which is what `_dlt_version` and `_dlt_loads.schema_version_hash` record.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha3::Digest as _;

/// dlt's schema engine version written to `_dlt_version.engine_version`.
pub const SCHEMA_ENGINE_VERSION: i64 = 11;

/// A column's logical type, named as dlt names it (`text`, `bigint`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// UTF-8 text.
    Text,
    /// 64-bit signed integer.
    Bigint,
    /// 64-bit float.
    Double,
    /// Boolean.
    Bool,
    /// Timestamp with time zone (UTC, microseconds).
    Timestamp,
    /// Calendar date.
    Date,
    /// Time of day (microseconds).
    Time,
    /// Decimal(38, 9).
    Decimal,
    /// JSON document.
    Json,
    /// Raw bytes.
    Binary,
}

impl DataType {
    /// The dlt name of the type, also used in variant column suffixes (`__v_double`).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Text => "text",
            DataType::Bigint => "bigint",
            DataType::Double => "double",
            DataType::Bool => "bool",
            DataType::Timestamp => "timestamp",
            DataType::Date => "date",
            DataType::Time => "time",
            DataType::Decimal => "decimal",
            DataType::Json => "json",
            DataType::Binary => "binary",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a resource's rows are written to its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WriteDisposition {
    /// Insert rows as they are.
    #[default]
    Append,
    /// Replace the tables' contents atomically with the package's rows.
    Replace,
    /// Delete-insert by primary key, child tables included (through `_dlt_root_id`).
    Merge,
}

impl WriteDisposition {
    /// The dlt name (`append`, `replace`, `merge`).
    pub fn as_str(self) -> &'static str {
        match self {
            WriteDisposition::Append => "append",
            WriteDisposition::Replace => "replace",
            WriteDisposition::Merge => "merge",
        }
    }
}

impl fmt::Display for WriteDisposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown write disposition name.
#[derive(Debug, thiserror::Error)]
#[error("unknown write disposition `{0}`: expected one of append, replace, merge")]
pub struct ParseWriteDispositionError(String);

impl FromStr for WriteDisposition {
    type Err = ParseWriteDispositionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "append" => Ok(Self::Append),
            "replace" => Ok(Self::Replace),
            "merge" => Ok(Self::Merge),
            other => Err(ParseWriteDispositionError(other.to_string())),
        }
    }
}

/// How a `merge` resource's rows are merged (dlt's `write_disposition={"disposition": "merge",
/// "strategy": …}`); see `docs/history.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum MergeStrategy {
    /// Delete the destination rows whose primary key is staged (children too), insert the staged ones.
    #[default]
    #[serde(rename = "delete-insert")]
    DeleteInsert,
    /// Update the rows whose primary key exists, insert the others; `_dlt_id` is a hash of the key.
    #[serde(rename = "upsert")]
    Upsert,
    /// Slowly changing dimension type 2: every distinct version of a record is kept with its validity
    /// window; `_dlt_id` is a hash of the record's content.
    #[serde(rename = "scd2")]
    Scd2,
}

impl MergeStrategy {
    /// Every strategy, in dlt's order.
    pub const ALL: [MergeStrategy; 3] = [MergeStrategy::DeleteInsert, MergeStrategy::Upsert, MergeStrategy::Scd2];

    /// The dlt name (`delete-insert`, `upsert`, `scd2`).
    pub fn as_str(self) -> &'static str {
        match self {
            MergeStrategy::DeleteInsert => "delete-insert",
            MergeStrategy::Upsert => "upsert",
            MergeStrategy::Scd2 => "scd2",
        }
    }
}

impl fmt::Display for MergeStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown merge strategy name.
#[derive(Debug, thiserror::Error)]
#[error("unknown merge strategy `{0}`: expected one of delete-insert, upsert, scd2")]
pub struct ParseMergeStrategyError(String);

impl FromStr for MergeStrategy {
    type Err = ParseMergeStrategyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MergeStrategy::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| ParseMergeStrategyError(s.to_string()))
    }
}

/// Order of a `dedup_sort` column: which staged duplicate of a primary key survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// The row with the lowest value survives.
    Asc,
    /// The row with the highest value survives.
    Desc,
}

impl SortOrder {
    /// `asc` or `desc`.
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Asc => "asc",
            SortOrder::Desc => "desc",
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Normalized column name.
    pub name: String,
    /// Logical type.
    pub data_type: DataType,
    /// Whether NULL is allowed (system and primary-key columns are NOT NULL).
    pub nullable: bool,
    /// Part of the table's primary key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub primary_key: bool,
    /// Marked unique (`_dlt_id`); no index is created.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
    /// This is a variant column (`col__v_<type>`) of another column.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub variant: bool,
    /// dlt's `hard_delete` hint: a staged row with a value here (`true` for a bool column) deletes the
    /// destination row with its primary key instead of being merged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hard_delete: bool,
    /// dlt's `dedup_sort` hint: among staged rows sharing a primary key, the one first in this order wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_sort: Option<SortOrder>,
    /// `x-valid-from`: the scd2 column holding when a version became valid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub valid_from: bool,
    /// `x-valid-to`: the scd2 column holding when a version was retired (the active value while current).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub valid_to: bool,
    /// `x-active-record-timestamp` of a `valid_to` column: the value marking an active version
    /// (`None`: NULL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_record_timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// `x-row-version`: the scd2 row hash column (`_dlt_id` of an scd2 root).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub row_version: bool,
}

impl Column {
    /// A nullable data column.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Column {
            name: name.into(),
            data_type,
            nullable: true,
            primary_key: false,
            unique: false,
            variant: false,
            hard_delete: false,
            dedup_sort: None,
            valid_from: false,
            valid_to: false,
            active_record_timestamp: None,
            row_version: false,
        }
    }

    /// A NOT NULL column (system columns, keys).
    pub fn not_null(name: impl Into<String>, data_type: DataType) -> Self {
        Column { nullable: false, ..Column::new(name, data_type) }
    }
}

/// One table: a resource's root table or a child table of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Normalized table name.
    pub name: String,
    /// Columns in creation order.
    pub columns: IndexMap<String, Column>,
    /// The parent table, for child tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The resource that produces this table (roots and children alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Write disposition; set on root tables, inherited by children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_disposition: Option<WriteDisposition>,
    /// The table has received at least one row (dlt's `x-normalizer.seen-data`).
    #[serde(default)]
    pub seen_data: bool,
    /// `x-merge-strategy` of a merge root; `None` is dlt's default, `delete-insert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_strategy: Option<MergeStrategy>,
    /// `x-boundary-timestamp` of an scd2 root: the validity boundary to use instead of the load time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary_timestamp: Option<chrono::DateTime<chrono::Utc>>,
}

impl Table {
    /// An empty root table for a resource.
    pub fn root(name: impl Into<String>, resource: impl Into<String>, disposition: WriteDisposition) -> Self {
        Table {
            name: name.into(),
            columns: IndexMap::new(),
            parent: None,
            resource: Some(resource.into()),
            write_disposition: Some(disposition),
            seen_data: false,
            merge_strategy: None,
            boundary_timestamp: None,
        }
    }

    /// The merge strategy in force for this root (dlt's default `delete-insert` when unset).
    pub fn merge_strategy(&self) -> MergeStrategy {
        self.merge_strategy.unwrap_or_default()
    }

    /// The first column with a hint, by predicate.
    pub fn column_where(&self, f: impl Fn(&Column) -> bool) -> Option<&Column> {
        self.columns.values().find(|c| f(c))
    }

    /// The primary-key column names, in declared order.
    pub fn primary_key(&self) -> Vec<&str> {
        self.columns.values().filter(|c| c.primary_key).map(|c| c.name.as_str()).collect()
    }
}

/// A versioned, persisted dataset schema (dlt's `Schema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Schema name (the source name, e.g. `personio`).
    pub name: String,
    /// Incremented on every change.
    pub version: i64,
    /// Hash of the content; see [`Schema::compute_hash`].
    pub version_hash: String,
    /// Tables in creation order, bookkeeping tables excluded.
    pub tables: IndexMap<String, Table>,
}

impl Schema {
    /// An empty schema (version 0) with the given name.
    pub fn new(name: impl Into<String>) -> Self {
        let mut s = Schema { name: name.into(), version: 0, version_hash: String::new(), tables: IndexMap::new() };
        s.version_hash = s.compute_hash();
        s
    }

    /// Content hash: base64 of SHA3-256 over the canonical JSON of name and tables.
    ///
    /// As dlt's `generate_version_hash`: the content with every object's keys sorted (so the order in
    /// which resources created their tables does not matter), then each table's name and its column
    /// names in order (so a column order change does).
    pub fn compute_hash(&self) -> String {
        let content = sorted_keys(serde_json::json!({"name": self.name, "tables": self.tables}));
        let mut hasher = sha3::Sha3_256::new();
        hasher.update(content.to_string().as_bytes());
        let mut names: Vec<&String> = self.tables.keys().collect();
        names.sort();
        for name in names {
            hasher.update(name.as_bytes());
            for column in self.tables[name].columns.keys() {
                hasher.update(column.as_bytes());
            }
        }
        base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
    }

    /// Recompute the hash; bump the version if the content changed. Returns whether it changed.
    pub fn bump_version(&mut self) -> bool {
        let hash = self.compute_hash();
        if hash != self.version_hash {
            self.version += 1;
            self.version_hash = hash;
            true
        } else {
            false
        }
    }

    /// Root table names of one resource (tables without a parent).
    pub fn resource_root_tables(&self, resource: &str) -> Vec<&Table> {
        self.tables.values().filter(|t| t.parent.is_none() && t.resource.as_deref() == Some(resource)).collect()
    }

    /// The table and all its descendants, parents before children.
    pub fn table_chain(&self, root: &str) -> Vec<&Table> {
        let mut out: Vec<&Table> = Vec::new();
        if let Some(t) = self.tables.get(root) {
            out.push(t);
        }
        let mut i = 0;
        while i < out.len() {
            let parent = out[i].name.clone();
            out.extend(self.tables.values().filter(|t| t.parent.as_deref() == Some(parent.as_str())));
            i += 1;
        }
        out
    }

    /// The root table a table descends from.
    pub fn root_of<'a>(&'a self, table: &'a str) -> &'a str {
        let mut name = table;
        while let Some(parent) = self.tables.get(name).and_then(|t| t.parent.as_deref()) {
            name = parent;
        }
        name
    }

    /// The write disposition in force for a table (its root's).
    pub fn disposition_of(&self, table: &str) -> WriteDisposition {
        self.tables.get(self.root_of(table)).and_then(|t| t.write_disposition).unwrap_or_default()
    }

    /// The schema as dlt's stored schema JSON (readable by dlt), bookkeeping tables included.
    pub fn to_dlt_json(&self) -> serde_json::Value {
        let mut tables = serde_json::Map::new();
        for (name, cols) in bookkeeping_tables() {
            tables.insert(name.to_string(), table_json(&Table {
                name: name.to_string(),
                columns: cols.into_iter().map(|c| (c.name.clone(), c)).collect(),
                parent: None,
                resource: Some(name.to_string()),
                write_disposition: Some(WriteDisposition::Append),
                seen_data: false,
                merge_strategy: None,
                boundary_timestamp: None,
            }));
        }
        for t in self.tables.values() {
            tables.insert(t.name.clone(), table_json(t));
        }
        serde_json::json!({
            "version": self.version,
            "version_hash": self.version_hash,
            "engine_version": SCHEMA_ENGINE_VERSION,
            "name": self.name,
            "tables": tables,
            "settings": {"detections": ["iso_timestamp"], "default_hints": {
                "not_null": ["_dlt_id", "_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_load_id"],
                "parent_key": ["_dlt_parent_id"], "root_key": ["_dlt_root_id"], "unique": ["_dlt_id"],
                "row_key": ["_dlt_id"]}},
            "normalizers": {"names": "snake_case", "json": {"module": "dlt.common.normalizers.json.relational"}},
            "previous_hashes": [],
        })
    }

    /// Read a schema stored by [`Schema::to_dlt_json`] (or by dlt itself); bookkeeping tables are skipped.
    pub fn from_dlt_json(value: &serde_json::Value) -> Option<Schema> {
        let name = value.get("name")?.as_str()?.to_string();
        let mut schema = Schema {
            name,
            version: value.get("version").and_then(|v| v.as_i64()).unwrap_or(0),
            version_hash: value.get("version_hash").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            tables: IndexMap::new(),
        };
        for (tname, t) in value.get("tables")?.as_object()? {
            if tname.starts_with("_dlt_") {
                continue;
            }
            let mut columns = IndexMap::new();
            if let Some(cols) = t.get("columns").and_then(|c| c.as_object()) {
                for (cname, c) in cols {
                    let Some(dt) = c.get("data_type").and_then(|d| serde_json::from_value::<DataType>(d.clone()).ok()) else {
                        continue;
                    };
                    let flag = |k: &str| c.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
                    columns.insert(cname.clone(), Column {
                        name: cname.clone(),
                        data_type: dt,
                        nullable: c.get("nullable").and_then(|v| v.as_bool()).unwrap_or(true),
                        primary_key: flag("primary_key"),
                        unique: flag("unique"),
                        variant: flag("variant"),
                        hard_delete: flag("hard_delete"),
                        dedup_sort: c.get("dedup_sort").and_then(|v| serde_json::from_value(v.clone()).ok()),
                        valid_from: flag("x-valid-from"),
                        valid_to: flag("x-valid-to"),
                        active_record_timestamp: c.get("x-active-record-timestamp").and_then(json_timestamp),
                        row_version: flag("x-row-version"),
                    });
                }
            }
            let s = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
            schema.tables.insert(tname.clone(), Table {
                name: tname.clone(),
                columns,
                parent: s("parent"),
                resource: s("resource"),
                write_disposition: s("write_disposition").and_then(|w| w.parse().ok()),
                seen_data: t.pointer("/x-normalizer/seen-data").and_then(|v| v.as_bool()).unwrap_or(false),
                // dlt writes `delete-insert` explicitly when a strategy is configured; it is the default.
                merge_strategy: s("x-merge-strategy").and_then(|m| m.parse().ok()).filter(|m| *m != MergeStrategy::DeleteInsert),
                boundary_timestamp: t.get("x-boundary-timestamp").and_then(json_timestamp),
            });
        }
        Some(schema)
    }

    /// The schema as YAML (for `schema export`).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.to_dlt_json()).unwrap_or_default()
    }
}

/// A timestamp hint as dlt stores it (ISO text); `None` for null or anything unparsable.
fn json_timestamp(v: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = v.as_str()?;
    match crate::typed::parse_iso(text)? {
        crate::typed::Iso::DateTime(t) => Some(t),
        crate::typed::Iso::Date(d) => Some(crate::typed::date_to_timestamp(d)),
        crate::typed::Iso::Time(_) => None,
    }
}

fn table_json(t: &Table) -> serde_json::Value {
    let mut cols = serde_json::Map::new();
    for c in t.columns.values() {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), c.name.clone().into());
        m.insert("data_type".into(), c.data_type.as_str().into());
        m.insert("nullable".into(), c.nullable.into());
        if c.primary_key {
            m.insert("primary_key".into(), true.into());
        }
        if c.unique {
            m.insert("unique".into(), true.into());
        }
        if c.variant {
            m.insert("variant".into(), true.into());
        }
        if c.hard_delete {
            m.insert("hard_delete".into(), true.into());
        }
        if let Some(order) = c.dedup_sort {
            m.insert("dedup_sort".into(), order.as_str().into());
        }
        if c.valid_from {
            m.insert("x-valid-from".into(), true.into());
        }
        if c.valid_to {
            m.insert("x-valid-to".into(), true.into());
            let active = c.active_record_timestamp.map(|t| serde_json::Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
            m.insert("x-active-record-timestamp".into(), active.unwrap_or(serde_json::Value::Null));
        }
        if c.row_version {
            // dlt: the row hash repeats after a record is deleted and reinserted, so it is not unique.
            m.insert("x-row-version".into(), true.into());
            m.insert("unique".into(), false.into());
            m.insert("row_key".into(), false.into());
        }
        cols.insert(c.name.clone(), m.into());
    }
    let mut m = serde_json::Map::new();
    m.insert("name".into(), t.name.clone().into());
    m.insert("columns".into(), cols.into());
    if let Some(p) = &t.parent {
        m.insert("parent".into(), p.clone().into());
    }
    if let Some(r) = &t.resource {
        m.insert("resource".into(), r.clone().into());
    }
    if let Some(wd) = t.write_disposition {
        m.insert("write_disposition".into(), wd.as_str().into());
    }
    if let Some(strategy) = t.merge_strategy {
        m.insert("x-merge-strategy".into(), strategy.as_str().into());
    }
    if let Some(b) = t.boundary_timestamp {
        m.insert("x-boundary-timestamp".into(), b.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true).into());
    }
    if t.seen_data {
        m.insert("x-normalizer".into(), serde_json::json!({"seen-data": true}));
    }
    m.into()
}

/// The length dlt gives a text column of a bookkeeping table (`precision: 64` on the load id of
/// `_dlt_loads` and `_dlt_pipeline_state`); destinations with bounded text types (PostgreSQL's
/// `varchar(64)`) create those columns with it. `None` for every other column.
pub fn bookkeeping_text_length(table: &str, column: &str) -> Option<u32> {
    match (table, column) {
        ("_dlt_loads", "load_id") | ("_dlt_pipeline_state", "_dlt_load_id") => Some(64),
        _ => None,
    }
}

/// The three bookkeeping tables (`_dlt_version`, `_dlt_loads`, `_dlt_pipeline_state`) with dlt's columns.
pub fn bookkeeping_tables() -> Vec<(&'static str, Vec<Column>)> {
    use DataType::*;
    vec![
        ("_dlt_version", vec![
            Column::not_null("version", Bigint),
            Column::not_null("engine_version", Bigint),
            Column::not_null("inserted_at", Timestamp),
            Column::not_null("schema_name", Text),
            Column::not_null("version_hash", Text),
            Column::not_null("schema", Text),
        ]),
        ("_dlt_loads", vec![
            Column::not_null("load_id", Text),
            Column::new("schema_name", Text),
            Column::not_null("status", Bigint),
            Column::not_null("inserted_at", Timestamp),
            Column::new("schema_version_hash", Text),
        ]),
        ("_dlt_pipeline_state", vec![
            Column::not_null("version", Bigint),
            Column::not_null("engine_version", Bigint),
            Column::not_null("pipeline_name", Text),
            Column::not_null("state", Text),
            Column::not_null("created_at", Timestamp),
            Column::new("version_hash", Text),
            Column::not_null("_dlt_load_id", Text),
            Column::not_null("_dlt_id", Text),
        ]),
    ]
}

/// The value with the keys of every object sorted (the workspace's `serde_json` keeps insertion order).
fn sorted_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_bumps_only_on_change() {
        let mut s = Schema::new("personio");
        assert!(!s.bump_version());
        s.tables.insert("t".into(), Table::root("t", "t", WriteDisposition::Merge));
        assert!(s.bump_version());
        assert_eq!(s.version, 1);
        assert!(!s.bump_version());
    }

    /// dlt's rule: the order tables were created in (which resource finished first) does not change
    /// the hash; the order of a table's columns does.
    #[test]
    fn hash_ignores_table_order_but_not_column_order() {
        let table = |name: &str, cols: &[&str]| {
            let mut t = Table::root(name, name, WriteDisposition::Append);
            for c in cols {
                t.columns.insert((*c).to_string(), Column::new(*c, DataType::Text));
            }
            t
        };
        let mut a = Schema::new("p");
        a.tables.insert("x".into(), table("x", &["id", "name"]));
        a.tables.insert("y".into(), table("y", &["id"]));
        let mut b = Schema::new("p");
        b.tables.insert("y".into(), table("y", &["id"]));
        b.tables.insert("x".into(), table("x", &["id", "name"]));
        assert_eq!(a.compute_hash(), b.compute_hash());
        let mut c = Schema::new("p");
        c.tables.insert("x".into(), table("x", &["name", "id"]));
        c.tables.insert("y".into(), table("y", &["id"]));
        assert_ne!(a.compute_hash(), c.compute_hash());
    }

    #[test]
    fn chain_lists_descendants() {
        let mut s = Schema::new("x");
        s.tables.insert("a".into(), Table::root("a", "a", WriteDisposition::Merge));
        let mut c = Table::root("a__b", "a", WriteDisposition::Merge);
        c.parent = Some("a".into());
        c.write_disposition = None;
        s.tables.insert("a__b".into(), c);
        let mut d = Table::root("a__b__c", "a", WriteDisposition::Merge);
        d.parent = Some("a__b".into());
        d.write_disposition = None;
        s.tables.insert("a__b__c".into(), d);
        let names: Vec<_> = s.table_chain("a").iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, ["a", "a__b", "a__b__c"]);
        assert_eq!(s.root_of("a__b__c"), "a");
        assert_eq!(s.disposition_of("a__b__c"), WriteDisposition::Merge);
    }

    #[test]
    fn dlt_json_round_trip() {
        let mut s = Schema::new("personio");
        let mut t = Table::root("employees", "employees", WriteDisposition::Merge);
        let mut id = Column::not_null("id", DataType::Bigint);
        id.primary_key = true;
        t.columns.insert("id".into(), id);
        t.columns.insert("hire_date".into(), Column::new("hire_date", DataType::Timestamp));
        t.seen_data = true;
        s.tables.insert("employees".into(), t);
        s.bump_version();
        let back = Schema::from_dlt_json(&s.to_dlt_json()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn disposition_parses_and_lists_valid_values() {
        assert_eq!("merge".parse::<WriteDisposition>().unwrap(), WriteDisposition::Merge);
        let err = "upsert".parse::<WriteDisposition>().unwrap_err().to_string();
        assert!(err.contains("append, replace, merge"), "{err}");
    }
}
