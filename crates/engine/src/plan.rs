//! The load plan: what a destination does with a package, decided by the engine.
//!
//! [`LoadPlan::build`] turns a package's manifest and the destination's current tables (a [`Catalog`])
//! into explicit steps, in the order a destination applies them inside one transaction:
//!
//! 1. `drop_tables` (full refresh): dropped, then created again from the schema;
//! 2. `create_tables` (bookkeeping tables first) and `add_columns` (new columns are nullable);
//! 3. the `_dlt_version` row, inserted unless its `(schema_name, version_hash)` is stored already;
//! 4. the table [`LoadJob`]s: reconciliations (rows whose keys are gone), replace chains, merge roots with
//!    their key and child chain (delete-insert or upsert), scd2 roots with their validity columns, appends;
//! 5. the `_dlt_pipeline_state` row, when the state changed;
//! 6. the `_dlt_loads` row (status 0), last.
//!
//! The plan is pure data: SQL destinations render it through a dialect, the in-memory reference
//! destination applies it to vectors of rows, and both give the same dataset.

use std::collections::{HashMap, HashSet};

use indexmap::IndexSet;

use crate::package::PackageManifest;
use crate::reconcile::DeleteMode;
use crate::schema::{bookkeeping_tables, Column, DataType, MergeStrategy, Schema, SortOrder, Table, WriteDisposition, SCHEMA_ENGINE_VERSION};
use crate::state::StateRow;

/// The destination's tables and their column names right now (before the plan runs).
pub type Catalog = HashMap<String, HashSet<String>>;

/// A table to create, with its columns in order.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// Table name.
    pub name: String,
    /// Columns in creation order.
    pub columns: Vec<Column>,
}

/// A column to add to an existing table (always nullable: existing rows have no value).
#[derive(Debug, Clone, PartialEq)]
pub struct AddColumn {
    /// Table name.
    pub table: String,
    /// The column.
    pub column: Column,
}

/// The `_dlt_version` row of the package's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    /// Schema version.
    pub version: i64,
    /// dlt's schema engine version.
    pub engine_version: i64,
    /// Insert time.
    pub inserted_at: chrono::DateTime<chrono::Utc>,
    /// Schema name.
    pub schema_name: String,
    /// Schema content hash.
    pub version_hash: String,
    /// The schema as dlt's JSON.
    pub schema_json: String,
}

/// The `_dlt_loads` row that completes a package.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadsRow {
    /// Load id.
    pub load_id: String,
    /// Schema name.
    pub schema_name: String,
    /// 0 = completed.
    pub status: i64,
    /// Insert time.
    pub inserted_at: chrono::DateTime<chrono::Utc>,
    /// The schema hash that was loaded.
    pub schema_version_hash: String,
}

/// A table of a merge chain, with the columns the insert names (the schema's columns, which the
/// destination table has after the plan's schema changes).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainTable {
    /// Table name.
    pub name: String,
    /// Column names.
    pub columns: Vec<String>,
}

/// How duplicates of a merge key in one package are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedup {
    /// Per primary key, the last extracted row wins; child rows follow their root through `_dlt_root_id`.
    LastExtracted,
    /// dlt's `dedup_sort` hint: per primary key, the row first in `order` of `column` wins (NULLs last,
    /// ties: the first extracted).
    Sort {
        /// The column with the hint.
        column: String,
        /// `desc`: the highest value wins.
        order: SortOrder,
    },
}

/// dlt's `hard_delete` hint of a merge root: staged rows flagged by `column` delete instead of merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardDelete {
    /// The column with the hint.
    pub column: String,
    /// It is a `bool` column: only `true` flags a delete (`NULL` and `false` do not). Otherwise any
    /// non-NULL value does.
    pub boolean: bool,
}

/// The validity columns of an scd2 root and the values a load writes into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    /// `x-valid-from` column.
    pub from: String,
    /// `x-valid-to` column.
    pub to: String,
    /// The `to` value of an active version (`None`: NULL).
    pub active: Option<chrono::DateTime<chrono::Utc>>,
    /// This load's boundary: `from` of the versions it inserts, `to` of those it retires.
    pub boundary: chrono::DateTime<chrono::Utc>,
}

/// What to do with one table (or one chain) of the package.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadJob {
    /// Insert the package's rows of `table`.
    Append {
        /// Table name.
        table: String,
    },
    /// Empty every table of the chain (root first) and insert the package's rows of each, inside the
    /// transaction, so readers never see an empty table. Runs even when the package has no rows.
    Replace {
        /// Root table.
        root: String,
        /// The root and its existing descendants, parents first.
        chain: Vec<String>,
    },
    /// Merge by primary key through the staging dataset (`delete-insert` or `upsert`): stage the
    /// package's rows of every chain table; per key pick the winning staged root ([`Dedup`]); delete
    /// destination roots whose key is staged and their children (by `_dlt_root_id`); insert the winners
    /// and their staged children. A winner flagged by [`HardDelete`] is not inserted (its key is only
    /// deleted), except with `upsert` when its key was not in the destination: dlt's upsert then inserts
    /// the flagged root (without children).
    Merge {
        /// The root, then its existing descendants, parents first.
        chain: Vec<ChainTable>,
        /// Primary-key columns of the root.
        key: Vec<String>,
        /// Which duplicate survives.
        dedup: Dedup,
        /// Root rows in the package (destinations may split the merge into buckets by this).
        staged_root_rows: u64,
        /// `delete-insert` or `upsert` (never `scd2`, which is [`LoadJob::Scd2`]).
        strategy: MergeStrategy,
        /// The root's `hard_delete` column, if it has one.
        hard_delete: Option<HardDelete>,
        /// The root table was created by this plan: it has no rows, so nothing needs deleting.
        fresh: bool,
    },
    /// dlt's scd2 through the staging dataset: stage the package's rows of every chain table; retire
    /// (set `to` = boundary) every active destination root whose `_dlt_id` (row hash) is not staged;
    /// insert each staged root whose `_dlt_id` is not active (once per hash) with `from` = boundary and
    /// `to` = the active value; insert staged child rows whose `_dlt_id` the child table lacks.
    Scd2 {
        /// The root, then its existing descendants, parents first.
        chain: Vec<ChainTable>,
        /// Validity columns and values.
        validity: Validity,
    },
    /// Reconcile a root table with the package's key set of `resource` ([`crate::reconcile`]): stage the
    /// keys (text columns named as `columns`); root rows whose `columns` (compared as text) are not a
    /// staged key are gone. [`DeleteMode::Hard`]: delete their child rows (by `_dlt_root_id`) and them;
    /// [`DeleteMode::Soft`]: set [`crate::reconcile::DELETED_AT_COLUMN`] to `at` where it is NULL, and
    /// back to NULL on rows whose key is staged. Runs before the package's rows are merged, so a row the
    /// package brings is never lost. Planned only for a root table that existed before the package.
    Reconcile {
        /// The resource (its key set in the package).
        resource: String,
        /// The root, then its existing descendants, parents first.
        chain: Vec<String>,
        /// Key columns of the root.
        columns: Vec<String>,
        /// Hard or soft.
        mode: DeleteMode,
        /// The reconciliation time.
        at: chrono::DateTime<chrono::Utc>,
    },
}

/// A package turned into explicit steps; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    /// Load id.
    pub load_id: String,
    /// Tables dropped first (full refresh or `pipeline drop`).
    pub drop_tables: Vec<String>,
    /// Tables to create, bookkeeping tables first.
    pub create_tables: Vec<CreateTable>,
    /// Columns to add to existing tables.
    pub add_columns: Vec<AddColumn>,
    /// The `_dlt_version` row, inserted unless stored already.
    pub version: VersionRow,
    /// Table jobs in order.
    pub jobs: Vec<LoadJob>,
    /// The state row, when the state changed.
    pub state: Option<StateRow>,
    /// The `_dlt_loads` row, written last.
    pub loads: LoadsRow,
}

impl LoadPlan {
    /// The plan of a package against the destination's current tables.
    pub fn build(manifest: &PackageManifest, catalog: &Catalog) -> LoadPlan {
        let schema = &manifest.schema;
        let now = chrono::Utc::now();
        let mut plan = LoadPlan::schema_only(&manifest.load_id, &manifest.drop_tables, schema, catalog, now);
        let existing = plan.tables_after(catalog);
        let existing_chain =
            |root: &str| -> Vec<String> { schema.table_chain(root).into_iter().filter(|t| existing.contains(&t.name)).map(|t| t.name.clone()).collect() };

        plan.jobs.extend(reconcile_jobs(manifest, catalog));
        let mut done: HashSet<String> = HashSet::new();
        for root in &manifest.replace_roots {
            let chain = existing_chain(root);
            done.extend(chain.iter().cloned());
            plan.jobs.push(LoadJob::Replace { root: root.clone(), chain });
        }
        let merge_roots: IndexSet<&str> = manifest
            .tables
            .keys()
            .filter(|t| !done.contains(*t))
            .map(|t| schema.root_of(t))
            .filter(|r| schema.disposition_of(r) == WriteDisposition::Merge)
            .collect();
        let created: HashSet<&str> = plan.create_tables.iter().map(|t| t.name.as_str()).collect();
        let mut merge_jobs = Vec::new();
        for root in merge_roots {
            let Some(root_table) = schema.tables.get(root) else { continue };
            let key: Vec<String> = root_table.primary_key().into_iter().map(str::to_string).collect();
            let chain = existing_chain(root);
            done.extend(chain.iter().cloned());
            let strategy = root_table.merge_strategy();
            if strategy == MergeStrategy::Scd2 {
                if let Some(validity) = validity_of(root_table, &manifest.load_id) {
                    merge_jobs.push(LoadJob::Scd2 { chain: chain_tables(schema, chain), validity });
                    continue;
                }
            }
            if key.is_empty() {
                // No key to merge on: rows are appended (dlt does the same).
                merge_jobs.extend(chain.into_iter().map(|table| LoadJob::Append { table }));
                continue;
            }
            let staged_root_rows = manifest.tables.get(root).map(|j| j.rows).unwrap_or(0);
            let dedup = match root_table.column_where(|c| c.dedup_sort.is_some()) {
                Some(c) => Dedup::Sort { column: c.name.clone(), order: c.dedup_sort.unwrap_or(SortOrder::Desc) },
                None => Dedup::LastExtracted,
            };
            let hard_delete = root_table
                .column_where(|c| c.hard_delete)
                .map(|c| HardDelete { column: c.name.clone(), boolean: c.data_type == DataType::Bool });
            let fresh = created.contains(root);
            let chain = chain_tables(schema, chain);
            merge_jobs.push(LoadJob::Merge { chain, key, dedup, staged_root_rows, strategy, hard_delete, fresh });
        }
        plan.jobs.extend(merge_jobs);
        for table in manifest.tables.keys().filter(|t| !done.contains(*t)) {
            plan.jobs.push(LoadJob::Append { table: table.clone() });
        }
        plan.state = manifest.state.clone();
        plan
    }

    /// The plan of `pipeline drop`: drop `tables`, bring the rest in line with `new_schema`, record its
    /// version, the state row without the dropped resources and a `_dlt_loads` row.
    pub fn for_drop(tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str, catalog: &Catalog) -> LoadPlan {
        let mut plan = LoadPlan::schema_only(load_id, tables, new_schema, catalog, chrono::Utc::now());
        plan.state = Some(state.clone());
        plan
    }

    fn schema_only(load_id: &str, drop_tables: &[String], schema: &Schema, catalog: &Catalog, now: chrono::DateTime<chrono::Utc>) -> LoadPlan {
        let mut present: Catalog = catalog.clone();
        for t in drop_tables {
            present.remove(t);
        }
        let mut create_tables = Vec::new();
        let mut add_columns = Vec::new();
        for (name, cols) in bookkeeping_tables() {
            if !present.contains_key(name) {
                create_tables.push(CreateTable { name: name.to_string(), columns: cols });
            }
        }
        for table in schema.tables.values().filter(|t| !t.columns.is_empty()) {
            match present.get(&table.name) {
                None => create_tables.push(CreateTable { name: table.name.clone(), columns: table.columns.values().cloned().collect() }),
                Some(have) => {
                    for col in table.columns.values().filter(|c| !have.contains(&c.name)) {
                        add_columns.push(AddColumn { table: table.name.clone(), column: Column { nullable: true, ..col.clone() } });
                    }
                }
            }
        }
        LoadPlan {
            load_id: load_id.to_string(),
            drop_tables: drop_tables.to_vec(),
            create_tables,
            add_columns,
            version: VersionRow {
                version: schema.version,
                engine_version: SCHEMA_ENGINE_VERSION,
                inserted_at: now,
                schema_name: schema.name.clone(),
                version_hash: schema.version_hash.clone(),
                schema_json: schema.to_dlt_json().to_string(),
            },
            jobs: Vec::new(),
            state: None,
            loads: LoadsRow {
                load_id: load_id.to_string(),
                schema_name: schema.name.clone(),
                status: 0,
                inserted_at: now,
                schema_version_hash: schema.version_hash.clone(),
            },
        }
    }

    /// Table names that exist once the drops and creates of this plan ran.
    fn tables_after(&self, catalog: &Catalog) -> HashSet<String> {
        let mut out: HashSet<String> = catalog.keys().filter(|t| !self.drop_tables.contains(t)).cloned().collect();
        out.extend(self.create_tables.iter().map(|t| t.name.clone()));
        out
    }

    /// Whether a job stages rows (the destination then needs its staging dataset).
    pub fn needs_staging(&self) -> bool {
        self.jobs.iter().any(|j| matches!(j, LoadJob::Merge { .. } | LoadJob::Scd2 { .. } | LoadJob::Reconcile { .. }))
    }
}

/// Chain tables with the schema's columns.
fn chain_tables(schema: &Schema, chain: Vec<String>) -> Vec<ChainTable> {
    chain
        .into_iter()
        .map(|name| {
            let columns = schema.tables.get(&name).map(|t| t.columns.keys().cloned().collect()).unwrap_or_default();
            ChainTable { name, columns }
        })
        .collect()
}

/// The validity columns of an scd2 root and this load's values; `None` if the root lacks them (a
/// schema written by something else), in which case it is merged like `delete-insert`.
fn validity_of(root: &Table, load_id: &str) -> Option<Validity> {
    let from = root.column_where(|c| c.valid_from)?;
    let to = root.column_where(|c| c.valid_to)?;
    Some(Validity {
        from: from.name.clone(),
        to: to.name.clone(),
        active: to.active_record_timestamp,
        boundary: crate::merge::boundary_of(load_id, root.boundary_timestamp),
    })
}

/// The reconciliation jobs of a package: one per entry whose root table exists in the destination and
/// is not dropped by this package (a new or recreated table has nothing to reconcile), and has the key
/// columns (and, for a soft delete, gets the mark column from the package's schema).
fn reconcile_jobs(manifest: &PackageManifest, catalog: &Catalog) -> Vec<LoadJob> {
    let schema = &manifest.schema;
    let kept = |t: &str| catalog.contains_key(t) && !manifest.drop_tables.iter().any(|d| d == t);
    let mut jobs = Vec::new();
    for entry in &manifest.reconcile {
        let Some(have) = catalog.get(&entry.table).filter(|_| kept(&entry.table)) else { continue };
        if !entry.columns.iter().all(|c| have.contains(c)) {
            tracing::warn!(table = %entry.table, columns = ?entry.columns, "the table lacks the key columns of its reconciliation; nothing is reconciled");
            continue;
        }
        let chain: Vec<String> = schema.table_chain(&entry.table).into_iter().map(|t| t.name.clone()).filter(|t| kept(t)).collect();
        if chain.first() != Some(&entry.table) {
            continue;
        }
        if entry.mode == DeleteMode::Hard && chain.iter().skip(1).any(|c| !catalog.get(c).is_some_and(|cols| cols.contains("_dlt_root_id"))) {
            tracing::warn!(table = %entry.table, "a child table has no _dlt_root_id (not a merge table); nothing is reconciled");
            continue;
        }
        jobs.push(LoadJob::Reconcile {
            resource: entry.resource.clone(),
            chain,
            columns: entry.columns.clone(),
            mode: entry.mode,
            at: entry.at,
        });
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::TableJob;
    use crate::schema::{DataType, Table};
    use indexmap::IndexMap;

    fn table(name: &str, parent: Option<&str>, resource: &str, wd: WriteDisposition, pk: bool) -> Table {
        let mut t = Table::root(name, resource, wd);
        if let Some(p) = parent {
            t.parent = Some(p.to_string());
            t.write_disposition = None;
        }
        let mut id = Column::not_null("id", DataType::Bigint);
        id.primary_key = pk && parent.is_none();
        t.columns.insert("id".into(), id);
        t.columns.insert("_dlt_id".into(), Column::not_null("_dlt_id", DataType::Text));
        t.seen_data = true;
        t
    }

    fn manifest() -> PackageManifest {
        let mut s = Schema::new("s");
        for t in [
            table("e", None, "e", WriteDisposition::Merge, true),
            table("e__c", Some("e"), "e", WriteDisposition::Merge, true),
            table("r", None, "r", WriteDisposition::Replace, false),
            table("r__c", Some("r"), "r", WriteDisposition::Replace, false),
            table("a", None, "a", WriteDisposition::Append, false),
        ] {
            s.tables.insert(t.name.clone(), t);
        }
        s.bump_version();
        let mut tables = IndexMap::new();
        for (t, n) in [("e", 3), ("a", 2)] {
            tables.insert(t.to_string(), TableJob { files: vec![], rows: n });
        }
        PackageManifest {
            load_id: "1.0".into(),
            dataset_name: "d".into(),
            pipeline_name: "p".into(),
            schema: s,
            tables,
            replace_roots: vec!["r".into()],
            state: None,
            state_doc: None,
            resources: vec![],
            destination: String::new(),
            base_state_hash: None,
            drop_tables: vec![],
            reconcile: vec![],
        }
    }

    #[test]
    fn first_load_creates_everything_and_plans_each_disposition() {
        let plan = LoadPlan::build(&manifest(), &Catalog::new());
        let created: Vec<&str> = plan.create_tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(created, ["_dlt_version", "_dlt_loads", "_dlt_pipeline_state", "e", "e__c", "r", "r__c", "a"]);
        assert_eq!(plan.jobs[0], LoadJob::Replace { root: "r".into(), chain: vec!["r".into(), "r__c".into()] });
        match &plan.jobs[1] {
            LoadJob::Merge { chain, key, staged_root_rows, .. } => {
                assert_eq!(chain.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["e", "e__c"]);
                assert_eq!(key, &["id"]);
                assert_eq!(*staged_root_rows, 3);
            }
            other => panic!("expected a merge, got {other:?}"),
        }
        assert_eq!(plan.jobs[2], LoadJob::Append { table: "a".into() });
        assert!(plan.needs_staging());
        assert_eq!(plan.loads.schema_version_hash, plan.version.version_hash);
    }

    #[test]
    fn existing_tables_get_only_new_columns_and_drops_are_recreated() {
        let mut m = manifest();
        let mut catalog = Catalog::new();
        for (name, _) in bookkeeping_tables() {
            catalog.insert(name.to_string(), HashSet::new());
        }
        for t in ["e", "e__c", "r", "r__c"] {
            catalog.insert(t.to_string(), ["id".to_string(), "_dlt_id".to_string()].into());
        }
        catalog.insert("a".into(), ["id".to_string()].into());
        m.drop_tables = vec!["r".into()];
        let plan = LoadPlan::build(&m, &catalog);
        assert_eq!(plan.create_tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["r"]);
        assert_eq!(plan.add_columns.len(), 1);
        assert_eq!(plan.add_columns[0].table, "a");
        assert!(plan.add_columns[0].column.nullable, "added columns are nullable");
    }

    #[test]
    fn merge_strategies_and_hints_become_jobs() {
        let mut m = manifest();
        {
            let e = m.schema.tables.get_mut("e").expect("e");
            e.merge_strategy = Some(MergeStrategy::Upsert);
            let mut deleted = Column::new("deleted", DataType::Bool);
            deleted.hard_delete = true;
            e.columns.insert("deleted".into(), deleted);
            let mut lsn = Column::new("lsn", DataType::Bigint);
            lsn.dedup_sort = Some(SortOrder::Asc);
            e.columns.insert("lsn".into(), lsn);
        }
        let mut catalog = Catalog::new();
        catalog.insert("e".into(), HashSet::new());
        let plan = LoadPlan::build(&m, &catalog);
        match &plan.jobs[1] {
            LoadJob::Merge { strategy, hard_delete, dedup, fresh, .. } => {
                assert_eq!(*strategy, MergeStrategy::Upsert);
                assert_eq!(hard_delete, &Some(HardDelete { column: "deleted".into(), boolean: true }));
                assert_eq!(dedup, &Dedup::Sort { column: "lsn".into(), order: SortOrder::Asc });
                assert!(!fresh, "e exists");
            }
            other => panic!("expected a merge, got {other:?}"),
        }
        // A table created by the plan is fresh: nothing to delete.
        let plan = LoadPlan::build(&m, &Catalog::new());
        assert!(matches!(&plan.jobs[1], LoadJob::Merge { fresh: true, .. }));
    }

    #[test]
    fn scd2_roots_get_their_validity_and_the_load_time_as_boundary() {
        let mut m = manifest();
        m.load_id = "1700000000.250000".into();
        {
            let e = m.schema.tables.get_mut("e").expect("e");
            e.merge_strategy = Some(MergeStrategy::Scd2);
            let mut from = Column::new("valid_from", DataType::Timestamp);
            from.valid_from = true;
            let mut to = Column::new("valid_to", DataType::Timestamp);
            to.valid_to = true;
            e.columns.insert("valid_from".into(), from);
            e.columns.insert("valid_to".into(), to);
        }
        let plan = LoadPlan::build(&m, &Catalog::new());
        match &plan.jobs[1] {
            LoadJob::Scd2 { chain, validity } => {
                assert_eq!(chain.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["e", "e__c"]);
                assert_eq!((validity.from.as_str(), validity.to.as_str(), validity.active), ("valid_from", "valid_to", None));
                assert_eq!(validity.boundary.timestamp_micros(), 1_700_000_000_250_000);
            }
            other => panic!("expected scd2, got {other:?}"),
        }
        assert!(plan.needs_staging());
    }

    #[test]
    fn a_replace_chain_lists_only_tables_that_exist() {
        let mut m = manifest();
        m.schema.tables.get_mut("r__c").map(|t| t.columns.clear());
        let plan = LoadPlan::build(&m, &Catalog::new());
        assert_eq!(plan.jobs[0], LoadJob::Replace { root: "r".into(), chain: vec!["r".into()] });
    }

    #[test]
    fn a_reconciliation_runs_first_and_only_on_tables_the_destination_has() {
        let mut m = manifest();
        let at = chrono::Utc::now();
        m.reconcile = vec![crate::reconcile::ReconcileEntry {
            resource: "e".into(),
            table: "e".into(),
            columns: vec!["id".into()],
            files: vec!["reconcile/e.keys.arrow".into()],
            keys: 2,
            mode: DeleteMode::Hard,
            at,
        }];
        // A first load: nothing to reconcile.
        assert!(!LoadPlan::build(&m, &Catalog::new()).jobs.iter().any(|j| matches!(j, LoadJob::Reconcile { .. })));
        let mut catalog = Catalog::new();
        for t in ["e", "e__c"] {
            catalog.insert(t.to_string(), ["id", "_dlt_id", "_dlt_root_id"].iter().map(|c| c.to_string()).collect());
        }
        let plan = LoadPlan::build(&m, &catalog);
        assert_eq!(
            plan.jobs[0],
            LoadJob::Reconcile { resource: "e".into(), chain: vec!["e".into(), "e__c".into()], columns: vec!["id".into()], mode: DeleteMode::Hard, at }
        );
        assert!(matches!(plan.jobs.last(), Some(LoadJob::Append { .. })));
        assert!(plan.needs_staging());
        // A table dropped by the package (full refresh) is not reconciled.
        m.drop_tables = vec!["e".into()];
        assert!(!LoadPlan::build(&m, &catalog).jobs.iter().any(|j| matches!(j, LoadJob::Reconcile { .. })));
    }
}
