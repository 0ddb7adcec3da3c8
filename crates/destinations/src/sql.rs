//! The SQL rendering of a [`LoadPlan`], shared by every SQL destination through a [`Dialect`].
//!
//! [`plan_steps`] turns the engine's plan into [`Step`]s: SQL statements, bulk inserts of a package
//! table (the destination's own fast path: DuckDB's appender, PostgreSQL's binary `COPY`) and row counts
//! for the report. A destination runs the steps in order inside its transaction with its own driver
//! ([`Report`] sums the counts), so the merge/replace/append logic exists once, here, and a dialect only
//! says how its SQL differs: type names, how a staging copy of a table is made, which column orders staged
//! rows, how a merge is split into buckets.
//!
//! The read side (catalog, stored state and schema, loads) is shared SQL too.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use pipeline_engine::load::LoadReport;
use pipeline_engine::plan::{ChainTable, Dedup, HardDelete, LoadJob, LoadPlan, Validity};
use pipeline_engine::reconcile::{DeleteMode, DELETED_AT_COLUMN};
use pipeline_engine::schema::{Column, DataType, MergeStrategy, SortOrder};

/// Quote an identifier with double quotes (doubling embedded quotes).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// A column definition (`"name" TYPE [NOT NULL]`) using a type-mapping function.
pub fn column_def(column: &Column, type_name: impl Fn(DataType) -> &'static str) -> String {
    let nn = if column.nullable { "" } else { " NOT NULL" };
    format!("{} {}{}", ident(&column.name), type_name(column.data_type), nn)
}

/// A string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A `TIMESTAMPTZ` literal (microseconds, UTC).
pub fn timestamp_literal(t: &chrono::DateTime<chrono::Utc>) -> String {
    format!("CAST({} AS TIMESTAMPTZ)", literal(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)))
}

/// How one SQL destination's SQL differs from the shared plan rendering.
pub trait Dialect: Send + Sync {
    /// The destination's type for a dlt type.
    fn type_name(&self, dt: DataType) -> &'static str;

    /// The type of a text column with a length (dlt's `precision`); default: the plain text type, for
    /// destinations whose text has no length.
    fn text_with_length(&self, _length: u32) -> String {
        self.type_name(DataType::Text).to_string()
    }

    /// SQL that orders the rows of a staging table by arrival (the last extracted row is the largest).
    fn staging_row_order(&self) -> &'static str;

    /// Statements that (re)create `staging.table` as an empty copy of `dataset.table`, ready for a bulk
    /// insert of the package's columns (and with [`Dialect::staging_row_order`] available).
    fn create_staging_table(&self, staging: &str, dataset: &str, table: &str) -> Vec<String>;

    /// Statements that (re)create table `qualified` (already quoted) from a query.
    fn create_table_as(&self, qualified: &str, select: &str) -> Vec<String>;

    /// Staged root rows merged per bucket (`None`: one bucket, whatever the package size).
    fn merge_chunk_rows(&self) -> Option<u64> {
        None
    }

    /// Whether a `delete-insert` merge into a root table this load created may skip staging: the
    /// package goes straight into the (empty) tables and the rows of a key that are not its last
    /// appended row are deleted after. Needs [`Dialect::staging_row_order`] to be the append order of a
    /// table created and filled in one transaction. Default: no.
    fn merges_fresh_in_place(&self) -> bool {
        false
    }

    /// An expression assigning a row to one of `buckets` by its key columns (a quoted, comma-separated
    /// list); used only when [`Dialect::merge_chunk_rows`] splits a merge.
    fn bucket_of(&self, key_list: &str, buckets: u64) -> String;
}

/// One step of a rendered plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Run a statement.
    Exec(String),
    /// Run a statement; the rows it changed are reported for `table`.
    ExecCounted {
        /// The statement.
        sql: String,
        /// Table the count belongs to.
        table: String,
    },
    /// Bulk-insert the package's rows of `table` into `schema.table`.
    BulkInsert {
        /// Package table (and target table name).
        table: String,
        /// Target schema (dataset or staging).
        schema: String,
        /// Whether the rows count in the report.
        report: bool,
        /// Rows of the package's table to leave out: the first ones, which an early load appended.
        skip: u64,
    },
    /// The steps up to the next `FillingNew(false)` only fill tables this load created (a first merge's
    /// in-place dedup): no join against rows loaded before, so a destination may run them with less
    /// cache (DuckDB: [`crate::duckdb::DuckDbConfig::insert_memory_limit`]).
    FillingNew(bool),
    /// Report `rows` for `table`.
    Report {
        /// Table.
        table: String,
        /// Rows.
        rows: u64,
    },
    /// Bulk-insert the package's key set of `resource` (a reconciliation, text columns) into
    /// `schema.table`, a table made by an earlier step.
    BulkInsertKeys {
        /// The resource whose key set is inserted.
        resource: String,
        /// Target schema (staging).
        schema: String,
        /// Target table.
        table: String,
    },
    /// Run a statement; the rows it changed are reported as deleted (or marked deleted) in `table`.
    ExecDeleted {
        /// The statement.
        sql: String,
        /// Table the count belongs to.
        table: String,
    },
    /// Run a statement; the rows it changed are taken back from `table`'s reported rows (duplicates
    /// removed after a bulk insert that counted them).
    ExecUncounted {
        /// The statement.
        sql: String,
        /// Table the count belongs to.
        table: String,
    },
}

impl Step {
    /// A one-line description for logs: the kind and table, or the statement's first 120 characters.
    pub fn summary(&self) -> String {
        let short = |sql: &str| sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(120).collect::<String>();
        match self {
            Step::Exec(sql) => short(sql),
            Step::ExecCounted { sql, .. } | Step::ExecDeleted { sql, .. } | Step::ExecUncounted { sql, .. } => short(sql),
            Step::BulkInsert { table, schema, .. } => format!("bulk insert {schema}.{table}"),
            Step::Report { table, rows } => format!("report {rows} rows of {table}"),
            Step::FillingNew(on) => format!("filling new tables: {on}"),
            Step::BulkInsertKeys { resource, schema, table } => format!("bulk insert keys of {resource} into {schema}.{table}"),
        }
    }
}

/// Rows per table, summed over steps, in first-seen order; and rows deleted by reconciliations.
#[derive(Debug, Default)]
pub struct Report(IndexMap<String, u64>, IndexMap<String, u64>);

impl Report {
    /// Add `rows` to `table`.
    pub fn add(&mut self, table: &str, rows: u64) {
        *self.0.entry(table.to_string()).or_default() += rows;
    }

    /// Take `rows` back from `table`'s reported rows.
    pub fn sub(&mut self, table: &str, rows: u64) {
        let n = self.0.entry(table.to_string()).or_default();
        *n = n.saturating_sub(rows);
    }

    /// Add `rows` deleted (or marked deleted) in `table`.
    pub fn add_deleted(&mut self, table: &str, rows: u64) {
        *self.1.entry(table.to_string()).or_default() += rows;
    }

    /// The load report.
    pub fn finish(self) -> LoadReport {
        LoadReport { rows: self.0.into_iter().collect(), deleted: self.1.into_iter().collect(), warnings: Vec::new() }
    }
}

/// What an early load did inside the load's transaction before the plan runs
/// ([`pipeline_engine::load::Destination::begin_early_load`]): it dropped the plan's `drop_tables` and
/// created and filled these tables of the dataset.
#[derive(Debug, Default, Clone)]
pub struct EarlyTables {
    /// Per table created early: its columns and the rows appended.
    pub tables: HashMap<String, EarlyTable>,
}

/// One table an early load created.
#[derive(Debug, Default, Clone)]
pub struct EarlyTable {
    /// Its columns so far.
    pub columns: HashSet<String>,
    /// Rows appended.
    pub rows: u64,
}

/// Render a plan for `dataset` (staging in `<dataset>_staging`). `package_rows` gives a package table's
/// row count (for the merge's children in the report). After an early load (`early`), its drops are not
/// repeated, the tables it created get only the columns they lack, and their bulk inserts are not
/// repeated: the rows are in the table already (moved to staging when the plan stages that table).
pub fn plan_steps(plan: &LoadPlan, dataset: &str, package_rows: impl Fn(&str) -> u64, d: &dyn Dialect, early: Option<&EarlyTables>) -> Vec<Step> {
    let ds = dataset;
    let stg = format!("{dataset}_staging");
    let mut steps = vec![Step::Exec(format!("CREATE SCHEMA IF NOT EXISTS {}", ident(ds)))];
    let exec = |steps: &mut Vec<Step>, sql: String| steps.push(Step::Exec(sql));
    let early_table = |t: &str| early.and_then(|e| e.tables.get(t));
    for t in plan.drop_tables.iter().filter(|_| early.is_none()) {
        exec(&mut steps, format!("DROP TABLE IF EXISTS {}", qualified(ds, t)));
    }
    for t in &plan.create_tables {
        match early_table(&t.name) {
            Some(have) => {
                for c in t.columns.iter().filter(|c| !have.columns.contains(&c.name)) {
                    exec(&mut steps, add_column_sql(ds, &t.name, c, d));
                }
            }
            None => exec(&mut steps, create_table_sql(ds, &t.name, &t.columns, d)),
        }
    }
    for a in &plan.add_columns {
        exec(&mut steps, add_column_sql(ds, &a.table, &a.column, d));
    }
    let v = &plan.version;
    let versions = qualified(ds, "_dlt_version");
    exec(
        &mut steps,
        format!(
            "INSERT INTO {versions} (version, engine_version, inserted_at, schema_name, version_hash, {schema}) \
             SELECT {}, {}, {}, {}, {}, {} WHERE NOT EXISTS (SELECT 1 FROM {versions} WHERE schema_name = {} AND version_hash = {})",
            v.version,
            v.engine_version,
            timestamp_literal(&v.inserted_at),
            literal(&v.schema_name),
            literal(&v.version_hash),
            literal(&v.schema_json),
            literal(&v.schema_name),
            literal(&v.version_hash),
            schema = ident("schema"),
        ),
    );
    let mut staging_ready = false;
    for job in &plan.jobs {
        match job {
            LoadJob::Reconcile { resource, chain, columns, mode, at } => {
                if !staging_ready {
                    exec(&mut steps, format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&stg)));
                    staging_ready = true;
                }
                reconcile_steps(&mut steps, ds, &stg, resource, chain, columns, *mode, at, d);
            }
            LoadJob::Append { table } => steps.push(Step::BulkInsert { table: table.clone(), schema: ds.to_string(), report: true, skip: 0 }),
            LoadJob::Replace { chain, .. } => {
                for t in chain {
                    if early_table(t).is_none() {
                        exec(&mut steps, format!("DELETE FROM {}", qualified(ds, t)));
                    }
                    steps.push(Step::BulkInsert { table: t.clone(), schema: ds.to_string(), report: true, skip: 0 });
                }
            }
            LoadJob::Merge { chain, key, dedup: Dedup::LastExtracted, strategy: MergeStrategy::DeleteInsert, hard_delete: None, fresh: true, .. }
                if d.merges_fresh_in_place() =>
            {
                fresh_merge_in_place(&mut steps, ds, chain, key, d);
            }
            LoadJob::Merge { chain, key, staged_root_rows, dedup, strategy, hard_delete, fresh } => {
                stage_chain(&mut steps, &mut staging_ready, ds, &stg, chain, d);
                let merge = KeyMerge { chain, pk: key, staged: *staged_root_rows, dedup, strategy: *strategy, hard_delete: hard_delete.as_ref(), fresh: *fresh };
                merge.steps(&mut steps, ds, &stg, d);
                for child in chain.iter().skip(1) {
                    steps.push(Step::Report { table: child.name.clone(), rows: package_rows(&child.name) });
                }
            }
            LoadJob::Scd2 { chain, validity } => {
                stage_chain(&mut steps, &mut staging_ready, ds, &stg, chain, d);
                scd2_steps(&mut steps, ds, &stg, chain, validity, d);
            }
        }
    }
    if let Some(s) = &plan.state {
        exec(
            &mut steps,
            format!(
                "INSERT INTO {} (version, engine_version, pipeline_name, state, created_at, version_hash, _dlt_load_id, _dlt_id) \
                 VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
                qualified(ds, "_dlt_pipeline_state"),
                s.version,
                s.engine_version,
                literal(&s.pipeline_name),
                literal(&s.state),
                timestamp_literal(&s.created_at),
                literal(&s.version_hash),
                literal(&plan.load_id),
                literal(&s.dlt_id)
            ),
        );
    }
    let l = &plan.loads;
    exec(
        &mut steps,
        format!(
            "INSERT INTO {} (load_id, schema_name, status, inserted_at, schema_version_hash) VALUES ({}, {}, {}, {}, {})",
            qualified(ds, "_dlt_loads"),
            literal(&l.load_id),
            literal(&l.schema_name),
            l.status,
            timestamp_literal(&l.inserted_at),
            literal(&l.schema_version_hash)
        ),
    );
    match early {
        Some(early) => without_early_inserts(steps, ds, early, package_rows),
        None => steps,
    }
}

/// `CREATE TABLE dataset.table (…)` with `columns` in order (bookkeeping text columns with their length).
pub fn create_table_sql<'a>(dataset: &str, table: &str, columns: impl IntoIterator<Item = &'a Column>, d: &dyn Dialect) -> String {
    let defs: Vec<String> = columns
        .into_iter()
        .map(|c| match pipeline_engine::schema::bookkeeping_text_length(table, &c.name) {
            Some(n) if c.data_type == DataType::Text => {
                format!("{} {}{}", ident(&c.name), d.text_with_length(n), if c.nullable { "" } else { " NOT NULL" })
            }
            _ => column_def(c, |dt| d.type_name(dt)),
        })
        .collect();
    format!("CREATE TABLE {} ({})", qualified(dataset, table), defs.join(", "))
}

/// `ALTER TABLE dataset.table ADD COLUMN …` (nullable: existing rows have no value).
pub fn add_column_sql(dataset: &str, table: &str, column: &Column, d: &dyn Dialect) -> String {
    format!("ALTER TABLE {} ADD COLUMN {} {}", qualified(dataset, table), ident(&column.name), d.type_name(column.data_type))
}

/// Replace the bulk inserts of tables an early load filled: into the dataset table, only the report of
/// its rows; into a staging copy, a move of the rows there (leaving the new table empty, as the plan
/// expects of a table it created). When the early load stopped before a table's last batch (it was
/// full), the bulk insert remains for the rest: the package's rows after those appended early.
fn without_early_inserts(steps: Vec<Step>, ds: &str, early: &EarlyTables, package_rows: impl Fn(&str) -> u64) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::BulkInsert { table, schema, report, skip: 0 } if early.tables.contains_key(&table) => {
                let rows = early.tables.get(&table).map(|t| t.rows).unwrap_or(0);
                let rest = package_rows(&table) > rows;
                if schema != ds {
                    let from = qualified(ds, &table);
                    out.push(Step::Exec(format!("INSERT INTO {} SELECT * FROM {from}", qualified(&schema, &table))));
                    out.push(Step::Exec(format!("DELETE FROM {from}")));
                }
                if report {
                    out.push(Step::Report { table: table.clone(), rows });
                }
                if rest {
                    out.push(Step::BulkInsert { table, schema, report, skip: rows });
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Create the staging schema once, then a staging copy of every chain table filled with the package's
/// rows.
fn stage_chain(steps: &mut Vec<Step>, staging_ready: &mut bool, ds: &str, stg: &str, chain: &[ChainTable], d: &dyn Dialect) {
    if !*staging_ready {
        steps.push(Step::Exec(format!("CREATE SCHEMA IF NOT EXISTS {}", ident(stg))));
        *staging_ready = true;
    }
    for t in chain {
        for sql in d.create_staging_table(stg, ds, &t.name) {
            steps.push(Step::Exec(sql));
        }
        steps.push(Step::BulkInsert { table: t.name.clone(), schema: stg.to_string(), report: false, skip: 0 });
    }
}

/// A `delete-insert` merge into a root table this load created, without staging
/// ([`Dialect::merges_fresh_in_place`]): the package's rows go straight into the empty tables, then the
/// root rows that are not the last appended row of their key — the winner [`KeyMerge`] would pick — are
/// deleted, with their children (through `_dlt_root_id`). With unique keys (the usual first load) that
/// is one append per table and two cheap checks instead of a copy through staging.
fn fresh_merge_in_place(steps: &mut Vec<Step>, ds: &str, chain: &[ChainTable], pk: &[String], d: &dyn Dialect) {
    let Some(root) = chain.first() else { return };
    let row = d.staging_row_order();
    let d_root = qualified(ds, &root.name);
    steps.push(Step::FillingNew(true));
    for t in chain {
        steps.push(Step::BulkInsert { table: t.name.clone(), schema: ds.to_string(), report: true, skip: 0 });
    }
    let pk_list = pk.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ");
    let losers = format!("{row} NOT IN (SELECT max({row}) FROM {d_root} GROUP BY {pk_list})");
    for child in chain.iter().skip(1) {
        // Reported as the staged merge reports children: the package's rows.
        steps.push(Step::Exec(format!(
            "DELETE FROM {} WHERE _dlt_root_id IN (SELECT _dlt_id FROM {d_root} WHERE {losers})",
            qualified(ds, &child.name)
        )));
    }
    steps.push(Step::ExecUncounted { sql: format!("DELETE FROM {d_root} WHERE {losers}"), table: root.name.clone() });
    steps.push(Step::FillingNew(false));
}

/// A `delete-insert` or `upsert` merge of a root and its children from staging ([`LoadJob::Merge`]).
struct KeyMerge<'a> {
    chain: &'a [ChainTable],
    pk: &'a [String],
    staged: u64,
    dedup: &'a Dedup,
    strategy: MergeStrategy,
    hard_delete: Option<&'a HardDelete>,
    fresh: bool,
}

impl KeyMerge<'_> {
    /// The steps, in hash buckets of about [`Dialect::merge_chunk_rows`] staged root rows so that every
    /// join and aggregate works on a bounded slice. Per key one staged row wins ([`Dedup`]; by default the
    /// last staged, [`Dialect::staging_row_order`]); it is recorded with whether the `hard_delete` column
    /// flags it and (upsert) whether its key existed. Destination roots with a staged key and their
    /// children (through `_dlt_root_id`) are deleted — not when the root table was just created, it is
    /// empty — then the kept winners and the staged children of the unflagged ones are inserted.
    fn steps(&self, steps: &mut Vec<Step>, ds: &str, stg: &str, d: &dyn Dialect) {
        let Some(root) = self.chain.first() else { return };
        let pk = self.pk;
        let d_root = qualified(ds, &root.name);
        let s_root = qualified(stg, &root.name);
        let winners = qualified(stg, "_dlt_merge_winners");
        let row = d.staging_row_order();
        let buckets = d.merge_chunk_rows().map(|n| self.staged.div_ceil(n.max(1)).max(1)).unwrap_or(1);
        let pk_list = |alias: &str| pk.iter().map(|k| format!("{alias}.{}", ident(k))).collect::<Vec<_>>().join(", ");
        let in_bucket = |alias: &str, b: u64| {
            if buckets == 1 {
                "TRUE".to_string()
            } else {
                format!("{} = {b}", d.bucket_of(&pk_list(alias), buckets))
            }
        };
        let key_match = pk.iter().map(|k| format!("s.{0} = d.{0}", ident(k))).collect::<Vec<_>>().join(" AND ");
        let cols = |t: &ChainTable| t.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        let deleted = match self.hard_delete {
            None => "FALSE".to_string(),
            Some(h) if h.boolean => format!("COALESCE(s.{} = TRUE, FALSE)", ident(&h.column)),
            Some(h) => format!("s.{} IS NOT NULL", ident(&h.column)),
        };
        let upsert_flags = self.strategy == MergeStrategy::Upsert && self.hard_delete.is_some();
        let existed = if upsert_flags && !self.fresh {
            format!("EXISTS (SELECT 1 FROM {d_root} d WHERE {key_match})")
        } else {
            "FALSE".to_string()
        };
        // Which winners are inserted: unflagged ones; with upsert also flagged ones whose key was new.
        let kept = match (self.hard_delete.is_some(), upsert_flags) {
            (false, _) => "TRUE",
            (true, false) => "NOT _dlt_deleted",
            (true, true) => "(NOT _dlt_deleted OR NOT _dlt_existed)",
        };
        for b in 0..buckets {
            let sb = in_bucket("s", b);
            let picked = match self.dedup {
                Dedup::LastExtracted => format!(
                    "SELECT s.{row} AS _dlt_row, s._dlt_id, {deleted} AS _dlt_deleted, {existed} AS _dlt_existed FROM {s_root} s \
                     WHERE s.{row} IN (SELECT max(s.{row}) FROM {s_root} s WHERE {sb} GROUP BY {})",
                    pk_list("s")
                ),
                Dedup::Sort { column, order } => {
                    let dir = match order {
                        SortOrder::Asc => "ASC",
                        SortOrder::Desc => "DESC",
                    };
                    format!(
                        "SELECT _dlt_row, _dlt_id, _dlt_deleted, _dlt_existed FROM (SELECT s.{row} AS _dlt_row, s._dlt_id, {deleted} AS _dlt_deleted, \
                         {existed} AS _dlt_existed, ROW_NUMBER() OVER (PARTITION BY {} ORDER BY s.{} {dir} NULLS LAST, s.{row} ASC) AS _dlt_rn \
                         FROM {s_root} s WHERE {sb}) w WHERE _dlt_rn = 1",
                        pk_list("s"),
                        ident(column)
                    )
                }
            };
            for sql in d.create_table_as(&winners, &picked) {
                steps.push(Step::Exec(sql));
            }
            if !self.fresh {
                // Destination roots of this bucket whose key is staged.
                let replaced = format!("{} AND EXISTS (SELECT 1 FROM {s_root} s WHERE {sb} AND {key_match})", in_bucket("d", b));
                for child in self.chain.iter().skip(1) {
                    steps.push(Step::Exec(format!(
                        "DELETE FROM {} WHERE _dlt_root_id IN (SELECT d._dlt_id FROM {d_root} d WHERE {replaced})",
                        qualified(ds, &child.name)
                    )));
                }
                steps.push(Step::Exec(format!("DELETE FROM {d_root} d WHERE {replaced}")));
            }
            let c = cols(root);
            steps.push(Step::ExecCounted {
                sql: format!("INSERT INTO {d_root} ({c}) SELECT {c} FROM {s_root} WHERE {row} IN (SELECT _dlt_row FROM {winners} WHERE {kept})"),
                table: root.name.clone(),
            });
            for child in self.chain.iter().skip(1) {
                let c = cols(child);
                let s_child = qualified(stg, &child.name);
                // Upsert child ids derive from the key, so a duplicate key's children share them: one each.
                let one_per_id = if self.strategy == MergeStrategy::Upsert {
                    format!(" AND {row} IN (SELECT max({row}) FROM {s_child} GROUP BY _dlt_id)")
                } else {
                    String::new()
                };
                steps.push(Step::Exec(format!(
                    "INSERT INTO {} ({c}) SELECT {c} FROM {s_child} WHERE _dlt_root_id IN (SELECT _dlt_id FROM {winners} WHERE NOT _dlt_deleted){one_per_id}",
                    qualified(ds, &child.name),
                )));
            }
        }
        steps.push(Step::Exec(format!("DROP TABLE IF EXISTS {winners}")));
    }
}

/// dlt's scd2 merge of a root and its children from staging ([`LoadJob::Scd2`]): retire the active
/// versions whose row hash is not staged, insert the staged versions that are not active (one per
/// hash) with this load's boundary, insert the child rows the destination lacks.
fn scd2_steps(steps: &mut Vec<Step>, ds: &str, stg: &str, chain: &[ChainTable], v: &Validity, d: &dyn Dialect) {
    let Some(root) = chain.first() else { return };
    let d_root = qualified(ds, &root.name);
    let s_root = qualified(stg, &root.name);
    let row = d.staging_row_order();
    let (from, to) = (ident(&v.from), ident(&v.to));
    let boundary = timestamp_literal(&v.boundary);
    let (active_value, is_active) = match &v.active {
        None => ("NULL".to_string(), format!("d.{to} IS NULL")),
        Some(t) => (timestamp_literal(t), format!("d.{to} = {}", timestamp_literal(t))),
    };
    steps.push(Step::Exec(format!(
        "UPDATE {d_root} AS d SET {to} = {boundary} WHERE {is_active} AND NOT EXISTS (SELECT 1 FROM {s_root} s WHERE s._dlt_id = d._dlt_id)"
    )));
    let data: Vec<String> = root.columns.iter().filter(|c| **c != v.from && **c != v.to).map(|c| ident(c)).collect();
    let data_s: Vec<String> = data.iter().map(|c| format!("s.{c}")).collect();
    steps.push(Step::ExecCounted {
        sql: format!(
            "INSERT INTO {d_root} ({}, {from}, {to}) SELECT {}, {boundary}, {active_value} FROM {s_root} s \
             WHERE s.{row} IN (SELECT min({row}) FROM {s_root} GROUP BY _dlt_id) \
             AND NOT EXISTS (SELECT 1 FROM {d_root} d WHERE {is_active} AND d._dlt_id = s._dlt_id)",
            data.join(", "),
            data_s.join(", ")
        ),
        table: root.name.clone(),
    });
    for child in chain.iter().skip(1) {
        let c = child.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        let d_child = qualified(ds, &child.name);
        let s_child = qualified(stg, &child.name);
        steps.push(Step::ExecCounted {
            sql: format!(
                "INSERT INTO {d_child} ({c}) SELECT {c} FROM {s_child} s WHERE s.{row} IN (SELECT min({row}) FROM {s_child} GROUP BY _dlt_id) \
                 AND NOT EXISTS (SELECT 1 FROM {d_child} d WHERE d._dlt_id = s._dlt_id)"
            ),
            table: child.name.clone(),
        });
    }
}

/// Reconcile a root table (and its children) with the package's key set of `resource`: stage the keys
/// as text, then delete (hard) or mark (soft) the root rows whose key columns, cast to text, are not a
/// staged key. Children of deleted roots go first, by `_dlt_root_id`.
#[allow(clippy::too_many_arguments)]
fn reconcile_steps(
    steps: &mut Vec<Step>,
    ds: &str,
    stg: &str,
    resource: &str,
    chain: &[String],
    columns: &[String],
    mode: DeleteMode,
    at: &chrono::DateTime<chrono::Utc>,
    d: &dyn Dialect,
) {
    let Some(root) = chain.first() else { return };
    let text = d.type_name(DataType::Text);
    let keys_name = format!("_dlt_reconcile_{root}");
    let keys = qualified(stg, &keys_name);
    let empty = columns.iter().map(|c| format!("CAST(NULL AS {text}) AS {}", ident(c))).collect::<Vec<_>>().join(", ");
    for sql in d.create_table_as(&keys, &format!("SELECT {empty} WHERE 1 = 0")) {
        steps.push(Step::Exec(sql));
    }
    steps.push(Step::BulkInsertKeys { resource: resource.to_string(), schema: stg.to_string(), table: keys_name });
    let d_root = qualified(ds, root);
    let matches = columns.iter().map(|c| format!("k.{0} = CAST(d.{0} AS {text})", ident(c))).collect::<Vec<_>>().join(" AND ");
    let gone = format!("NOT EXISTS (SELECT 1 FROM {keys} k WHERE {matches})");
    let gone_ids = format!("SELECT d._dlt_id FROM {d_root} d WHERE {gone}");
    match mode {
        DeleteMode::Hard => {
            for child in chain.iter().skip(1) {
                steps.push(Step::ExecDeleted {
                    sql: format!("DELETE FROM {} WHERE _dlt_root_id IN ({gone_ids})", qualified(ds, child)),
                    table: child.clone(),
                });
            }
            steps.push(Step::ExecDeleted { sql: format!("DELETE FROM {d_root} d WHERE {gone}"), table: root.clone() });
        }
        DeleteMode::Soft => {
            let mark = ident(DELETED_AT_COLUMN);
            steps.push(Step::ExecDeleted {
                sql: format!("UPDATE {d_root} AS d SET {mark} = {} WHERE d.{mark} IS NULL AND {gone}", timestamp_literal(at)),
                table: root.clone(),
            });
            // A row seen again (its key is back in the listing) is no longer marked.
            let back = format!("EXISTS (SELECT 1 FROM {keys} k WHERE {matches})");
            steps.push(Step::Exec(format!("UPDATE {d_root} AS d SET {mark} = NULL WHERE d.{mark} IS NOT NULL AND {back}")));
        }
    }
    steps.push(Step::Exec(format!("DROP TABLE IF EXISTS {keys}")));
}

/// `table_name, column_name` of every column in `schema` (the catalog a plan is built against).
pub fn catalog_query(schema: &str) -> String {
    format!(
        "SELECT CAST(table_name AS VARCHAR), CAST(column_name AS VARCHAR) FROM information_schema.columns WHERE table_schema = {}",
        literal(schema)
    )
}

/// The newest completed state row of a pipeline: version, engine_version, pipeline_name, state,
/// created_at (text), version_hash, _dlt_load_id.
pub fn stored_state_query(ds: &str, pipeline_name: &str) -> String {
    format!(
        "SELECT s.version, s.engine_version, s.pipeline_name, s.state, CAST(s.created_at AS VARCHAR), s.version_hash, s._dlt_load_id \
         FROM {} s JOIN {} l ON l.load_id = s._dlt_load_id AND l.status = 0 \
         WHERE s.pipeline_name = {} ORDER BY s._dlt_load_id DESC LIMIT 1",
        qualified(ds, "_dlt_pipeline_state"),
        qualified(ds, "_dlt_loads"),
        literal(pipeline_name)
    )
}

/// Parse `created_at` as the stored-state query renders it (`2024-05-01 10:00:00.123+00`).
pub fn parse_created_at(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now())
}

/// The newest stored schema JSON with this name.
pub fn stored_schema_query(ds: &str, schema_name: &str) -> String {
    format!(
        "SELECT {} FROM {} WHERE schema_name = {} ORDER BY version DESC, inserted_at DESC LIMIT 1",
        ident("schema"),
        qualified(ds, "_dlt_version"),
        literal(schema_name)
    )
}

/// Count of completed `_dlt_loads` rows with this load id.
pub fn is_loaded_query(ds: &str, load_id: &str) -> String {
    format!("SELECT count(*) FROM {} WHERE load_id = {} AND status = 0", qualified(ds, "_dlt_loads"), literal(load_id))
}

/// The newest loads: load_id, status, inserted_at (text).
pub fn recent_loads_query(ds: &str, limit: usize) -> String {
    format!(
        "SELECT load_id, status, CAST(inserted_at AS VARCHAR) FROM {} ORDER BY load_id DESC LIMIT {limit}",
        qualified(ds, "_dlt_loads")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;

    impl Dialect for Plain {
        fn type_name(&self, _: DataType) -> &'static str {
            "TEXT"
        }
        fn staging_row_order(&self) -> &'static str {
            "rowid"
        }
        fn create_staging_table(&self, staging: &str, dataset: &str, table: &str) -> Vec<String> {
            vec![format!("CREATE TABLE {} AS SELECT * FROM {} LIMIT 0", qualified(staging, table), qualified(dataset, table))]
        }
        fn create_table_as(&self, qualified: &str, select: &str) -> Vec<String> {
            vec![format!("CREATE TABLE {qualified} AS {select}")]
        }
        fn bucket_of(&self, key_list: &str, buckets: u64) -> String {
            format!("hash({key_list}) % {buckets}")
        }
    }

    fn chain() -> Vec<ChainTable> {
        vec![
            ChainTable { name: "e".into(), columns: vec!["id".into(), "_dlt_id".into()] },
            ChainTable { name: "e__c".into(), columns: vec!["v".into(), "_dlt_root_id".into(), "_dlt_id".into()] },
        ]
    }

    fn merge_sql(fresh: bool, strategy: MergeStrategy, hard_delete: Option<HardDelete>) -> Vec<String> {
        let key = vec!["id".to_string()];
        let m = KeyMerge { chain: &chain(), pk: &key, staged: 10, dedup: &Dedup::LastExtracted, strategy, hard_delete: hard_delete.as_ref(), fresh };
        let mut steps = Vec::new();
        m.steps(&mut steps, "ds", "ds_staging", &Plain);
        steps
            .into_iter()
            .map(|s| match s {
                Step::Exec(sql) | Step::ExecCounted { sql, .. } => sql,
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// A merge into a table the same plan created has nothing to delete (perf issue: the first load).
    #[test]
    fn a_merge_into_a_fresh_table_deletes_nothing() {
        let fresh = merge_sql(true, MergeStrategy::DeleteInsert, None);
        assert!(!fresh.iter().any(|s| s.starts_with("DELETE")), "{fresh:#?}");
        assert!(fresh.iter().any(|s| s.starts_with("INSERT INTO \"ds\".\"e\" ")), "{fresh:#?}");
        let existing = merge_sql(false, MergeStrategy::DeleteInsert, None);
        assert_eq!(existing.iter().filter(|s| s.starts_with("DELETE")).count(), 2, "{existing:#?}");
    }

    /// A first merge in place only fills and trims the tables it created: marked so, from its first bulk
    /// insert to its last delete, for a destination to run with less cache.
    #[test]
    fn a_first_merge_in_place_is_marked_as_filling_new_tables() {
        let mut steps = Vec::new();
        fresh_merge_in_place(&mut steps, "ds", &chain(), &["id".to_string()], &Plain);
        assert_eq!(steps.first(), Some(&Step::FillingNew(true)), "{steps:#?}");
        assert_eq!(steps.last(), Some(&Step::FillingNew(false)), "{steps:#?}");
        assert_eq!(steps.iter().filter(|s| matches!(s, Step::BulkInsert { .. })).count(), 2);
        assert_eq!(steps.iter().filter(|s| matches!(s, Step::FillingNew(_))).count(), 2, "{steps:#?}");
    }

    #[test]
    fn hard_delete_keeps_flagged_winners_out() {
        let sql = merge_sql(false, MergeStrategy::DeleteInsert, Some(HardDelete { column: "deleted".into(), boolean: true }));
        assert!(sql.iter().any(|s| s.contains("COALESCE(s.\"deleted\" = TRUE, FALSE) AS _dlt_deleted")), "{sql:#?}");
        assert!(sql.iter().any(|s| s.contains("WHERE NOT _dlt_deleted)")), "{sql:#?}");
        let upsert = merge_sql(false, MergeStrategy::Upsert, Some(HardDelete { column: "deleted_at".into(), boolean: false }));
        assert!(upsert.iter().any(|s| s.contains("(NOT _dlt_deleted OR NOT _dlt_existed)")), "{upsert:#?}");
        assert!(upsert.iter().any(|s| s.contains("s.\"deleted_at\" IS NOT NULL")), "{upsert:#?}");
    }

    /// Rows an early load appended are reported, not inserted again; rows a plan stages are moved there;
    /// the rows after those an early load took are inserted.
    #[test]
    fn an_early_load_is_not_repeated() {
        let bulk = |table: &str, schema: &str, report| Step::BulkInsert { table: table.into(), schema: schema.into(), report, skip: 0 };
        let mut early = EarlyTables::default();
        early.tables.insert("t".into(), EarlyTable { columns: HashSet::from(["id".to_string()]), rows: 5 });
        let steps = vec![bulk("t", "ds", true), bulk("t", "ds_staging", false), bulk("u", "ds", true)];
        assert_eq!(
            without_early_inserts(steps.clone(), "ds", &early, |_| 5),
            vec![
                Step::Report { table: "t".into(), rows: 5 },
                Step::Exec("INSERT INTO \"ds_staging\".\"t\" SELECT * FROM \"ds\".\"t\"".into()),
                Step::Exec("DELETE FROM \"ds\".\"t\"".into()),
                bulk("u", "ds", true),
            ]
        );
        // The early load stopped after 5 of the package's 8 rows: the rest is inserted after them.
        let rest = |schema: &str, report| Step::BulkInsert { table: "t".into(), schema: schema.into(), report, skip: 5 };
        assert_eq!(
            without_early_inserts(steps, "ds", &early, |t| if t == "t" { 8 } else { 3 }),
            vec![
                Step::Report { table: "t".into(), rows: 5 },
                rest("ds", true),
                Step::Exec("INSERT INTO \"ds_staging\".\"t\" SELECT * FROM \"ds\".\"t\"".into()),
                Step::Exec("DELETE FROM \"ds\".\"t\"".into()),
                rest("ds_staging", false),
                bulk("u", "ds", true),
            ]
        );
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("s", "t"), "\"s\".\"t\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
