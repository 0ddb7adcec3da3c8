//! Read-only access to a loaded dataset, for `pipeline show`'s dashboard.
//!
//! A [`DatasetReader`] opens the destination read-only (a reader never takes a writer's lock and never
//! changes data): row counts, columns as the destination typed them, `_dlt_loads`, the stored state and
//! schema, and one query at a time with a row cap. [`read_only_query`] is the statement check every reader
//! applies before running user SQL; the read-only connection is the guarantee behind it.

use pipeline_engine::load::{DestinationError, StoredState, TableInfo};
use pipeline_engine::schema::Schema;

/// A column of a destination table, as the destination reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    /// Table name.
    pub table: String,
    /// Column name.
    pub name: String,
    /// The destination's type name (`BIGINT`, `TIMESTAMP WITH TIME ZONE`, …).
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

/// A `_dlt_loads` row.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRow {
    /// Load id.
    pub load_id: String,
    /// Schema name.
    pub schema_name: String,
    /// Status (0 = completed).
    pub status: i64,
    /// When the load was committed (the destination's text).
    pub inserted_at: String,
    /// Hash of the schema version the load used.
    pub schema_version_hash: String,
}

/// The rows of a query, every cell as the destination's text (NULL as `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryRows {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, at most the cap asked for.
    pub rows: Vec<Vec<Option<String>>>,
    /// More rows existed than the cap.
    pub truncated: bool,
}

/// Read-only access to one dataset of a destination.
pub trait DatasetReader: Send {
    /// Short kind name (`duckdb`).
    fn kind(&self) -> &'static str;

    /// Where the data lives, for display (a file path or a host; never a password).
    fn location(&self) -> String;

    /// The dataset name.
    fn dataset_name(&self) -> &str;

    /// A table of the dataset as a quoted, qualified SQL name.
    fn table_ref(&self, table: &str) -> String;

    /// Tables of the dataset (data and bookkeeping) with their row counts, by name.
    fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError>;

    /// Columns of every table of the dataset, in table order then column order.
    fn columns(&mut self) -> Result<Vec<ColumnInfo>, DestinationError>;

    /// The newest `_dlt_loads` rows, newest first.
    fn loads(&mut self, limit: usize) -> Result<Vec<LoadRow>, DestinationError>;

    /// The newest completed state row of a pipeline, if any.
    fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError>;

    /// The newest stored schema with this name, if any.
    fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError>;

    /// Run one read-only query (checked with [`read_only_query`]) and return at most `max_rows` rows.
    fn query(&mut self, sql: &str, max_rows: usize) -> Result<QueryRows, DestinationError>;

    /// Rows of a table per `_dlt_load_id` (tables without that column: empty), newest load first.
    fn rows_per_load(&mut self, table: &str) -> Result<Vec<(String, u64)>, DestinationError> {
        let sql = format!(
            "SELECT _dlt_load_id, count(*) FROM {} GROUP BY _dlt_load_id ORDER BY _dlt_load_id DESC",
            self.table_ref(table)
        );
        let rows = self.query(&sql, 10_000)?;
        Ok(rows
            .rows
            .into_iter()
            .filter_map(|r| {
                let id = r.first()?.clone()?;
                let n = r.get(1)?.as_deref()?.parse().ok()?;
                Some((id, n))
            })
            .collect())
    }

    /// One page of a table's rows, in the destination's storage order.
    fn browse(&mut self, table: &str, offset: u64, limit: usize) -> Result<QueryRows, DestinationError> {
        let sql = format!("SELECT * FROM {} LIMIT {limit} OFFSET {offset}", self.table_ref(table));
        self.query(&sql, limit)
    }
}

/// Statements a reader runs: queries only.
const QUERY_KEYWORDS: &[&str] = &["select", "with", "from", "values", "table", "describe", "summarize", "show", "pivot", "unpivot"];

/// Check that `sql` is a single query (`SELECT`, `WITH`, `FROM`, `VALUES`, `DESCRIBE`, …) and return it
/// without a trailing semicolon; anything else (`DROP`, `INSERT`, `ATTACH`, `SET`, two statements) is
/// refused with a message that names the statement.
pub fn read_only_query(sql: &str) -> Result<&str, DestinationError> {
    let refuse = |what: String| {
        DestinationError::new("read-only", format!("{what}: only a single read-only query (SELECT, WITH, FROM, VALUES, DESCRIBE, SUMMARIZE, SHOW) is allowed here"))
    };
    let body = strip_trailing(sql);
    let code = code_only(body);
    let first = code
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| !w.is_empty())
        .map(str::to_ascii_lowercase);
    let Some(first) = first else { return Err(refuse("the query is empty".into())) };
    if code.contains(';') {
        return Err(refuse("more than one statement".into()));
    }
    let leading_paren = code.trim_start().starts_with('(');
    if !QUERY_KEYWORDS.contains(&first.as_str()) || (leading_paren && first != "select" && first != "with" && first != "from") {
        return Err(refuse(format!("{} statements are refused", first.to_ascii_uppercase())));
    }
    Ok(body)
}

/// `sql` without trailing whitespace, semicolons and comments.
fn strip_trailing(sql: &str) -> &str {
    let mut s = sql.trim_end();
    while let Some(rest) = s.strip_suffix(';') {
        s = rest.trim_end();
    }
    s
}

/// `sql` with string literals, quoted identifiers and comments blanked out (same length), so that keyword
/// and semicolon checks see code only.
fn code_only(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(' ');
                // A doubled quote inside the literal continues it.
                loop {
                    match chars.next() {
                        None => break,
                        Some(q) if q == c => {
                            if chars.peek() == Some(&c) {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(_) => {}
                    }
                }
                out.push(' ');
            }
            '-' if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                out.push('\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                out.push(' ');
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(feature = "duckdb")]
pub use self::duck::DuckDbReader;

#[cfg(feature = "duckdb")]
mod duck {
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    use duckdb::{params, AccessMode, Connection};
    use pipeline_engine::load::{DestinationError, StoredState, TableInfo};
    use pipeline_engine::schema::Schema;
    use pipeline_engine::state::StateRow;

    use super::{read_only_query, ColumnInfo, DatasetReader, LoadRow, QueryRows};
    use crate::duckdb::DuckDbConfig;
    use crate::sql::qualified;

    const KIND: &str = "duckdb";

    /// A query running longer is interrupted.
    const QUERY_TIME_LIMIT: Duration = Duration::from_secs(20);

    fn db_err(context: &str) -> impl FnOnce(duckdb::Error) -> DestinationError + '_ {
        move |e| DestinationError::new(KIND, format!("{context}: {e}")).with_source(e)
    }

    /// A DuckDB database opened read-only, with no access to other files or the network.
    pub struct DuckDbReader {
        conn: Connection,
        path: PathBuf,
        dataset: String,
    }

    impl std::fmt::Debug for DuckDbReader {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("DuckDbReader").field("path", &self.path).field("dataset", &self.dataset).finish()
        }
    }

    impl DuckDbReader {
        /// Open the database of `config` read-only. Fails when the file does not exist or another
        /// process is writing it (a run in progress).
        pub fn open(config: &DuckDbConfig) -> Result<Self, DestinationError> {
            let path = config.path.clone();
            if !path.exists() {
                return Err(DestinationError::new(
                    KIND,
                    format!("no database at {}: run the pipeline first", path.display()),
                ));
            }
            let mut settings = duckdb::Config::default()
                .access_mode(AccessMode::ReadOnly)
                .and_then(|c| c.enable_external_access(false))
                .and_then(|c| c.enable_autoload_extension(false));
            if let Some(limit) = &config.memory_limit {
                settings = settings.and_then(|c| c.max_memory(limit));
            }
            let settings = settings
                .and_then(|c| c.with("lock_configuration", "true"))
                .map_err(db_err("configuring a read-only DuckDB connection"))?;
            let conn = Connection::open_with_flags(&path, settings).map_err(|e| {
                let text = e.to_string();
                let mut err = DestinationError::new(KIND, format!("cannot open {} read-only: {text}", path.display()));
                if text.contains("lock") {
                    err.locked = true;
                    err.message = format!(
                        "{} is being written by another process (a run in progress?); try again when it finishes ({text})",
                        path.display()
                    );
                }
                err.with_source(e)
            })?;
            Ok(DuckDbReader { conn, path, dataset: config.dataset_name.clone() })
        }

        fn table_exists(&self, table: &str) -> Result<bool, DestinationError> {
            let n: i64 = self
                .conn
                .query_row(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                    params![self.dataset, table],
                    |r| r.get(0),
                )
                .map_err(db_err("reading information_schema"))?;
            Ok(n > 0)
        }

        /// Column names of a checked query, by running it with no rows.
        fn column_names(&self, body: &str) -> Result<Vec<String>, DestinationError> {
            let sql = format!("SELECT * FROM (\n{body}\n) LIMIT 0");
            let mut stmt = self.conn.prepare(&sql).map_err(db_err("query"))?;
            let rows = stmt.query([]).map_err(db_err("query"))?;
            Ok(rows.as_ref().map(|s| s.column_names()).unwrap_or_default())
        }
    }

    impl DatasetReader for DuckDbReader {
        fn kind(&self) -> &'static str {
            KIND
        }

        fn location(&self) -> String {
            self.path.display().to_string()
        }

        fn dataset_name(&self) -> &str {
            &self.dataset
        }

        fn table_ref(&self, table: &str) -> String {
            qualified(&self.dataset, table)
        }

        fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
            let mut stmt = self
                .conn
                .prepare("SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name")
                .map_err(db_err("reading information_schema"))?;
            let names = stmt
                .query_map(params![self.dataset], |r| r.get::<_, String>(0))
                .map_err(db_err("reading information_schema"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err("reading information_schema"))?;
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let n: i64 = self
                    .conn
                    .query_row(&format!("SELECT count(*) FROM {}", self.table_ref(&name)), [], |r| r.get(0))
                    .map_err(db_err("counting rows"))?;
                out.push(TableInfo { name, rows: n.max(0) as u64 });
            }
            Ok(out)
        }

        fn columns(&mut self) -> Result<Vec<ColumnInfo>, DestinationError> {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT table_name, column_name, data_type, is_nullable = 'YES' FROM information_schema.columns \
                     WHERE table_schema = ? ORDER BY table_name, ordinal_position",
                )
                .map_err(db_err("reading information_schema"))?;
            let rows = stmt
                .query_map(params![self.dataset], |r| {
                    Ok(ColumnInfo { table: r.get(0)?, name: r.get(1)?, data_type: r.get(2)?, nullable: r.get(3)? })
                })
                .map_err(db_err("reading information_schema"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err("reading information_schema"))
        }

        fn loads(&mut self, limit: usize) -> Result<Vec<LoadRow>, DestinationError> {
            if !self.table_exists("_dlt_loads")? {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT load_id, schema_name, status, CAST(inserted_at AS VARCHAR), coalesce(schema_version_hash, '') \
                 FROM {} ORDER BY load_id DESC LIMIT {limit}",
                self.table_ref("_dlt_loads")
            );
            let mut stmt = self.conn.prepare(&sql).map_err(db_err("reading _dlt_loads"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(LoadRow {
                        load_id: r.get(0)?,
                        schema_name: r.get(1)?,
                        status: r.get(2)?,
                        inserted_at: r.get(3)?,
                        schema_version_hash: r.get(4)?,
                    })
                })
                .map_err(db_err("reading _dlt_loads"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err("reading _dlt_loads"))
        }

        fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
            if !self.table_exists("_dlt_pipeline_state")? || !self.table_exists("_dlt_loads")? {
                return Ok(None);
            }
            let sql = format!(
                "SELECT s.version, s.engine_version, s.pipeline_name, s.state, CAST(s.created_at AS VARCHAR), \
                 coalesce(s.version_hash, ''), s._dlt_load_id, s._dlt_id \
                 FROM {} s JOIN {} l ON l.load_id = s._dlt_load_id AND l.status = 0 \
                 WHERE s.pipeline_name = ? ORDER BY s._dlt_load_id DESC LIMIT 1",
                self.table_ref("_dlt_pipeline_state"),
                self.table_ref("_dlt_loads")
            );
            let mut stmt = self.conn.prepare(&sql).map_err(db_err("reading _dlt_pipeline_state"))?;
            let mut rows = stmt
                .query_map(params![pipeline_name], |r| {
                    let created: String = r.get(4)?;
                    let created_at = chrono::DateTime::parse_from_str(&created, "%Y-%m-%d %H:%M:%S%.f%#z")
                        .map(|d| d.with_timezone(&chrono::Utc))
                        .unwrap_or_default();
                    let row = StateRow {
                        version: r.get(0)?,
                        engine_version: r.get(1)?,
                        pipeline_name: r.get(2)?,
                        state: r.get(3)?,
                        created_at,
                        version_hash: r.get(5)?,
                        dlt_id: r.get(7)?,
                    };
                    Ok(StoredState { row, load_id: r.get(6)? })
                })
                .map_err(db_err("reading _dlt_pipeline_state"))?;
            rows.next().transpose().map_err(db_err("reading _dlt_pipeline_state"))
        }

        fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
            if !self.table_exists("_dlt_version")? {
                return Ok(None);
            }
            let sql = format!(
                "SELECT schema FROM {} WHERE schema_name = ? ORDER BY version DESC, inserted_at DESC LIMIT 1",
                self.table_ref("_dlt_version")
            );
            let mut stmt = self.conn.prepare(&sql).map_err(db_err("reading _dlt_version"))?;
            let mut rows = stmt.query_map(params![schema_name], |r| r.get::<_, String>(0)).map_err(db_err("reading _dlt_version"))?;
            let Some(text) = rows.next().transpose().map_err(db_err("reading _dlt_version"))? else { return Ok(None) };
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| DestinationError::new(KIND, format!("the stored schema in _dlt_version is not JSON: {e}")))?;
            Ok(Schema::from_dlt_json(&value))
        }

        fn query(&mut self, sql: &str, max_rows: usize) -> Result<QueryRows, DestinationError> {
            let body = read_only_query(sql)?;
            let columns = self.column_names(body)?;
            if columns.is_empty() {
                return Ok(QueryRows::default());
            }
            // Every cell as DuckDB's own text; positional names keep duplicate output names apart.
            let casts: Vec<String> = (0..columns.len()).map(|i| format!("CAST(#{} AS VARCHAR)", i + 1)).collect();
            let wrapped = format!("SELECT {} FROM (\n{body}\n) LIMIT {}", casts.join(", "), max_rows.saturating_add(1));
            // A watchdog interrupts a query that runs too long.
            let (done, wait) = mpsc::channel::<()>();
            let interrupt = self.conn.interrupt_handle();
            let watchdog = std::thread::spawn(move || {
                if wait.recv_timeout(QUERY_TIME_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
                    interrupt.interrupt();
                }
            });
            let result = (|| {
                let mut stmt = self.conn.prepare(&wrapped).map_err(db_err("query"))?;
                let mut rows = stmt.query([]).map_err(db_err("query"))?;
                let mut out = QueryRows { columns: columns.clone(), ..QueryRows::default() };
                while let Some(row) = rows.next().map_err(db_err("query"))? {
                    if out.rows.len() == max_rows {
                        out.truncated = true;
                        break;
                    }
                    let mut cells = Vec::with_capacity(columns.len());
                    for i in 0..columns.len() {
                        cells.push(row.get::<_, Option<String>>(i).map_err(db_err("reading a result cell"))?);
                    }
                    out.rows.push(cells);
                }
                Ok(out)
            })();
            let _ = done.send(());
            let _ = watchdog.join();
            result.map_err(|e: DestinationError| {
                if e.message.contains("INTERRUPT") || e.message.to_ascii_lowercase().contains("interrupted") {
                    DestinationError::new(KIND, format!("the query ran longer than {}s and was stopped; add filters or a LIMIT", QUERY_TIME_LIMIT.as_secs()))
                } else {
                    e
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_queries_pass() {
        for ok in [
            "SELECT 1",
            "select * from t;",
            "  WITH a AS (SELECT 1) SELECT * FROM a ;; ",
            "FROM personio_data.employees",
            "-- comment; DROP\nSELECT 'a;b', \"x;y\" FROM t",
            "/* DROP TABLE t; */ SELECT 1",
            "DESCRIBE t",
            "(SELECT 1) UNION (SELECT 2)",
        ] {
            assert!(read_only_query(ok).is_ok(), "{ok}");
        }
        for bad in [
            "DROP TABLE personio_data.employees",
            "drop table t;",
            "SELECT 1; DROP TABLE t",
            "DELETE FROM t",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "ATTACH 'x.duckdb'",
            "COPY t TO 'x.csv'",
            "SET memory_limit = '1GB'",
            "PRAGMA version",
            "CREATE TABLE x AS SELECT 1",
            "",
            " ; ",
            "-- only a comment",
            "'SELECT' ; DROP TABLE t",
        ] {
            assert!(read_only_query(bad).is_err(), "{bad}");
        }
        let err = read_only_query("DROP TABLE t").expect_err("refused");
        assert!(err.to_string().contains("DROP statements are refused"), "{err}");
    }

    #[test]
    fn trailing_semicolons_are_dropped() {
        assert_eq!(read_only_query("SELECT 1 ;\n").ok(), Some("SELECT 1"));
    }
}
