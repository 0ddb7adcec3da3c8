//! Read-only access to a loaded dataset, for `pipeline show`'s dashboard.
//!
//! A [`DatasetReader`] opens the destination read-only (a reader never takes a writer's lock and never
//! changes data): row counts, columns as the destination typed them, `_dlt_loads`, the stored state and
//! schema, and one query at a time with a row cap and a time limit. [`SqlDialect::check_query`] is the
//! statement check every reader applies before running user SQL; the read-only connection (DuckDB) or
//! read-only transaction (PostgreSQL) is the guarantee behind it.
//!
//! Readers: [`DuckDbReader`] (feature `duckdb`) and [`PostgresReader`]; the filesystem destination, which
//! has no SQL engine of its own, has [`crate::filesystem::FilesystemReader`] (feature `duckdb`): a
//! [`DuckDbReader`] over an in-memory DuckDB snapshot of the lake's current files, in
//! [`SqlDialect::DuckDb`].

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

/// The SQL dialect a reader's queries are written in: what the dashboard's own queries (charts) use for
/// the few things DuckDB and PostgreSQL spell differently, and which statements the SQL box accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    /// DuckDB.
    DuckDb,
    /// PostgreSQL.
    Postgres,
}

impl SqlDialect {
    /// First keywords of the statements a reader runs: queries only.
    pub fn query_keywords(self) -> &'static [&'static str] {
        match self {
            SqlDialect::DuckDb => &["select", "with", "from", "values", "table", "describe", "summarize", "show", "pivot", "unpivot"],
            // A PostgreSQL reader runs the query as a cursor, which takes exactly these.
            SqlDialect::Postgres => &["select", "with", "values", "table"],
        }
    }

    /// Check that `sql` is a single query of this dialect and return it without a trailing semicolon;
    /// anything else (`DROP`, `INSERT`, `ATTACH`, `SET`, two statements) is refused with a message that
    /// names the statement.
    pub fn check_query(self, sql: &str) -> Result<&str, DestinationError> {
        let allowed = self.query_keywords().iter().map(|k| k.to_ascii_uppercase()).collect::<Vec<_>>().join(", ");
        let refuse = |what: String| DestinationError::new("read-only", format!("{what}: only a single read-only query ({allowed}) is allowed here"));
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
        if !self.query_keywords().contains(&first.as_str()) || (leading_paren && first != "select" && first != "with" && first != "from") {
            return Err(refuse(format!("{} statements are refused", first.to_ascii_uppercase())));
        }
        Ok(body)
    }

    /// `text` (a SQL expression of a text type) as a `DATE` when it starts with `YYYY-MM-DD`, else NULL.
    pub fn try_date(self, text: &str) -> String {
        match self {
            SqlDialect::DuckDb => format!("TRY_CAST(substr({text}, 1, 10) AS DATE)"),
            SqlDialect::Postgres => {
                format!("CASE WHEN {text} ~ '^[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])' THEN CAST(substr({text}, 1, 10) AS DATE) END")
            }
        }
    }

    /// `text` as a `TIMESTAMP` (without time zone) when it is an ISO date-time, else NULL.
    pub fn try_timestamp(self, text: &str) -> String {
        match self {
            SqlDialect::DuckDb => format!("TRY_CAST({text} AS TIMESTAMP)"),
            SqlDialect::Postgres => format!(
                "CASE WHEN {text} ~ '^[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]+)?)?$' THEN CAST({text} AS TIMESTAMP) END"
            ),
        }
    }

    /// `text` as a `TIME` when it is `HH:MM[:SS]`, else NULL.
    pub fn try_time(self, text: &str) -> String {
        match self {
            SqlDialect::DuckDb => format!("TRY_CAST({text} AS TIME)"),
            SqlDialect::Postgres => format!("CASE WHEN {text} ~ '^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]+)?)?$' THEN CAST({text} AS TIME) END"),
        }
    }

    /// A floating-point expression rounded to two decimals.
    pub fn round2(self, expr: &str) -> String {
        match self {
            SqlDialect::DuckDb => format!("round({expr}, 2)"),
            // PostgreSQL rounds to a number of decimals only for numeric.
            SqlDialect::Postgres => format!("round(CAST({expr} AS numeric), 2)"),
        }
    }
}

/// Read-only access to one dataset of a destination.
pub trait DatasetReader: Send {
    /// Short kind name (`duckdb`, `postgres`).
    fn kind(&self) -> &'static str;

    /// The SQL the reader's queries are written in.
    fn dialect(&self) -> SqlDialect;

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

    /// Run one read-only query (checked with [`SqlDialect::check_query`]) and return at most `max_rows`
    /// rows.
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

/// [`SqlDialect::check_query`] for DuckDB (`SELECT`, `WITH`, `FROM`, `VALUES`, `DESCRIBE`, …).
pub fn read_only_query(sql: &str) -> Result<&str, DestinationError> {
    SqlDialect::DuckDb.check_query(sql)
}

/// `sql` without trailing whitespace, semicolons and comments.
fn strip_trailing(sql: &str) -> &str {
    let mut s = sql.trim_end();
    while let Some(rest) = s.strip_suffix(';') {
        s = rest.trim_end();
    }
    s
}

/// `sql` with string literals (`'…'`, `E'…'` with backslash escapes, `$tag$…$tag$`), quoted identifiers
/// and comments blanked out, so that keyword and semicolon checks see code only. Erring on the side of
/// code: an unterminated literal ends the text.
fn code_only(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    // The previous character and whether it ended a word (`E'…'` only counts when `E` stands alone).
    let mut prev: Option<char> = None;
    let mut before_prev_is_word = false;
    while let Some(c) = chars.next() {
        let escape_string = c == '\'' && matches!(prev, Some('e' | 'E')) && !before_prev_is_word;
        before_prev_is_word = prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$');
        prev = Some(c);
        match c {
            '\'' | '"' => {
                out.push(' ');
                // A doubled quote inside the literal continues it; in E'…' a backslash escapes the next
                // character.
                loop {
                    match chars.next() {
                        None => break,
                        Some('\\') if escape_string => {
                            chars.next();
                        }
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
                prev = Some(' ');
            }
            '$' if !before_prev_is_word => {
                // A dollar quote `$tag$…$tag$` (tag: letters, digits, `_`, not starting with a digit); `$1`
                // is a parameter.
                let mut tag = String::from("$");
                let mut look = chars.clone();
                let mut is_quote = false;
                while let Some(&n) = look.peek() {
                    if n == '$' {
                        tag.push('$');
                        is_quote = !tag[1..].starts_with(|d: char| d.is_ascii_digit());
                        break;
                    }
                    if !(n.is_alphanumeric() || n == '_') {
                        break;
                    }
                    tag.push(n);
                    look.next();
                }
                if !is_quote {
                    out.push(c);
                    continue;
                }
                for _ in 1..tag.chars().count() {
                    chars.next();
                }
                let rest: String = chars.clone().collect();
                match rest.find(&tag) {
                    Some(end) => {
                        let skip = rest[..end + tag.len()].chars().count();
                        for _ in 0..skip {
                            chars.next();
                        }
                    }
                    None => {
                        while chars.next().is_some() {}
                    }
                }
                out.push(' ');
                prev = Some(' ');
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
    use std::sync::mpsc;
    use std::time::Duration;

    use duckdb::{params, AccessMode, Connection};
    use pipeline_engine::load::{DestinationError, StoredState, TableInfo};
    use pipeline_engine::schema::Schema;
    use pipeline_engine::state::StateRow;

    use super::{read_only_query, ColumnInfo, DatasetReader, LoadRow, QueryRows, SqlDialect};
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
        kind: &'static str,
        location: String,
        dataset: String,
    }

    impl std::fmt::Debug for DuckDbReader {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("DuckDbReader").field("kind", &self.kind).field("location", &self.location).field("dataset", &self.dataset).finish()
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
            Ok(DuckDbReader { conn, kind: KIND, location: path.display().to_string(), dataset: config.dataset_name.clone() })
        }

        /// A reader over a connection the crate prepared (the filesystem destination's in-memory
        /// snapshot), reporting `kind` and `location` as that destination's.
        pub(crate) fn over(conn: Connection, kind: &'static str, location: String, dataset: String) -> Self {
            DuckDbReader { conn, kind, location, dataset }
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
            self.kind
        }

        fn dialect(&self) -> SqlDialect {
            SqlDialect::DuckDb
        }

        fn location(&self) -> String {
            self.location.clone()
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

pub use self::pg::PostgresReader;

mod pg {
    use std::time::Duration;

    use pipeline_engine::load::{DestinationError, StoredState, TableInfo};
    use pipeline_engine::schema::Schema;
    use tokio_postgres::SimpleQueryMessage;

    use super::{ColumnInfo, DatasetReader, LoadRow, QueryRows, SqlDialect};
    use crate::postgres::{pg_err, PostgresConfig};
    use crate::sql::{self, literal, qualified};

    const KIND: &str = "postgres";

    /// A statement running longer is cancelled by the server.
    pub const QUERY_TIME_LIMIT: Duration = Duration::from_secs(20);

    /// A dataset in PostgreSQL, read through one connection whose every transaction is read-only
    /// (`default_transaction_read_only`), with a statement timeout. User queries run in their own
    /// `SET TRANSACTION READ ONLY` transaction as a cursor (which PostgreSQL accepts for one query only,
    /// never a second statement), of which at most the cap is fetched.
    ///
    /// The trait is synchronous: the reader owns a small single-thread tokio runtime that drives its
    /// connection during each call. Call it from a thread that is not running async tasks (the
    /// dashboard calls readers on tokio's blocking pool).
    pub struct PostgresReader {
        client: tokio_postgres::Client,
        runtime: Option<tokio::runtime::Runtime>,
        config: PostgresConfig,
        time_limit: Duration,
    }

    impl std::fmt::Debug for PostgresReader {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PostgresReader").field("config", &self.config).field("time_limit", &self.time_limit).finish()
        }
    }

    impl Drop for PostgresReader {
        fn drop(&mut self) {
            // Never blocks, so dropping a reader is fine anywhere (also inside async code).
            if let Some(rt) = self.runtime.take() {
                rt.shutdown_background();
            }
        }
    }

    impl PostgresReader {
        /// Connect to the dataset of `config` (its schema need not exist yet: the reader then shows an
        /// empty dataset).
        pub fn open(config: &PostgresConfig) -> Result<Self, DestinationError> {
            Self::open_with_time_limit(config, QUERY_TIME_LIMIT)
        }

        /// [`PostgresReader::open`] with another statement time limit.
        pub fn open_with_time_limit(config: &PostgresConfig, time_limit: Duration) -> Result<Self, DestinationError> {
            config.validate()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DestinationError::new(KIND, format!("starting the reader's runtime: {e}")))?;
            let millis = time_limit.as_millis().max(1);
            let client = runtime.block_on(async {
                let client = config.connect().await?;
                client
                    .batch_execute(&format!(
                        "SET default_transaction_read_only = on; SET statement_timeout = {millis}; SET application_name = 'personio-pipeline dashboard'"
                    ))
                    .await
                    .map_err(pg_err("configuring a read-only session"))?;
                Ok::<_, DestinationError>(client)
            })?;
            Ok(PostgresReader { client, runtime: Some(runtime), config: config.clone(), time_limit })
        }

        fn block_on<T>(&self, f: impl std::future::Future<Output = Result<T, DestinationError>>) -> Result<T, DestinationError> {
            match &self.runtime {
                Some(rt) => rt.block_on(f),
                None => Err(DestinationError::new(KIND, "internal error: the reader was shut down")),
            }
        }

        fn ds(&self) -> &str {
            &self.config.dataset_name
        }

        fn table_exists(&self, table: &str) -> Result<bool, DestinationError> {
            let q = format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = {} AND table_name = {}",
                literal(self.ds()),
                literal(table)
            );
            let n: i64 = self.block_on(async {
                let row = self.client.query_one(q.as_str(), &[]).await.map_err(pg_err("reading information_schema"))?;
                row.try_get(0).map_err(pg_err("reading information_schema"))
            })?;
            Ok(n > 0)
        }

        fn timed_out(&self, e: DestinationError) -> DestinationError {
            if e.message.contains("statement timeout") {
                DestinationError::new(
                    KIND,
                    format!("the query ran longer than {}s and was stopped; add filters or a LIMIT", self.time_limit.as_secs_f64()),
                )
            } else {
                e
            }
        }
    }

    impl DatasetReader for PostgresReader {
        fn kind(&self) -> &'static str {
            KIND
        }

        fn dialect(&self) -> SqlDialect {
            SqlDialect::Postgres
        }

        fn location(&self) -> String {
            self.config.redacted()
        }

        fn dataset_name(&self) -> &str {
            self.ds()
        }

        fn table_ref(&self, table: &str) -> String {
            qualified(self.ds(), table)
        }

        fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
            let q = format!(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = {} AND table_type = 'BASE TABLE' ORDER BY 1",
                literal(self.ds())
            );
            let this = &*self;
            self.block_on(async {
                let rows = this.client.query(q.as_str(), &[]).await.map_err(pg_err("reading information_schema"))?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let name: String = r.try_get(0).map_err(pg_err("reading information_schema"))?;
                    let count = format!("SELECT count(*) FROM {}", this.table_ref(&name));
                    let n: i64 =
                        this.client.query_one(count.as_str(), &[]).await.and_then(|r| r.try_get(0)).map_err(pg_err("counting rows"))?;
                    out.push(TableInfo { name, rows: n.max(0) as u64 });
                }
                Ok(out)
            })
            .map_err(|e| self.timed_out(e))
        }

        fn columns(&mut self) -> Result<Vec<ColumnInfo>, DestinationError> {
            // Types as PostgreSQL writes them (`character varying`, `numeric(38,9)`, `timestamp with time zone`).
            let q = format!(
                "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = {} AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY c.relname, a.attnum",
                literal(self.ds())
            );
            self.block_on(async {
                let rows = self.client.query(q.as_str(), &[]).await.map_err(pg_err("reading the catalog"))?;
                let e = || pg_err("reading the catalog");
                rows.iter()
                    .map(|r| {
                        Ok(ColumnInfo {
                            table: r.try_get(0).map_err(e())?,
                            name: r.try_get(1).map_err(e())?,
                            data_type: r.try_get(2).map_err(e())?,
                            nullable: r.try_get(3).map_err(e())?,
                        })
                    })
                    .collect()
            })
        }

        fn loads(&mut self, limit: usize) -> Result<Vec<LoadRow>, DestinationError> {
            if !self.table_exists("_dlt_loads")? {
                return Ok(Vec::new());
            }
            let q = format!(
                "SELECT load_id, schema_name, status, CAST(inserted_at AS text), coalesce(schema_version_hash, '') \
                 FROM {} ORDER BY load_id DESC LIMIT {limit}",
                self.table_ref("_dlt_loads")
            );
            self.block_on(async {
                let rows = self.client.query(q.as_str(), &[]).await.map_err(pg_err("reading _dlt_loads"))?;
                let e = || pg_err("reading _dlt_loads");
                rows.iter()
                    .map(|r| {
                        Ok(LoadRow {
                            load_id: r.try_get(0).map_err(e())?,
                            schema_name: r.try_get::<_, Option<String>>(1).map_err(e())?.unwrap_or_default(),
                            status: r.try_get(2).map_err(e())?,
                            inserted_at: r.try_get(3).map_err(e())?,
                            schema_version_hash: r.try_get(4).map_err(e())?,
                        })
                    })
                    .collect()
            })
        }

        fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
            if !self.table_exists("_dlt_pipeline_state")? || !self.table_exists("_dlt_loads")? {
                return Ok(None);
            }
            let q = sql::stored_state_query(self.ds(), pipeline_name);
            self.block_on(async {
                let rows = self.client.query(q.as_str(), &[]).await.map_err(pg_err("reading _dlt_pipeline_state"))?;
                crate::postgres::stored_state_from_rows(&rows)
            })
        }

        fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
            if !self.table_exists("_dlt_version")? {
                return Ok(None);
            }
            let q = sql::stored_schema_query(self.ds(), schema_name);
            let text: Option<String> = self.block_on(async {
                let rows = self.client.query(q.as_str(), &[]).await.map_err(pg_err("reading _dlt_version"))?;
                rows.first().map(|r| r.try_get(0)).transpose().map_err(pg_err("reading _dlt_version"))
            })?;
            let Some(text) = text else { return Ok(None) };
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| DestinationError::new(KIND, format!("the stored schema in _dlt_version is not JSON: {e}")))?;
            Ok(Schema::from_dlt_json(&value))
        }

        fn query(&mut self, sql: &str, max_rows: usize) -> Result<QueryRows, DestinationError> {
            let body = SqlDialect::Postgres.check_query(sql)?;
            let declare = format!("DECLARE personio_pipeline_query NO SCROLL CURSOR FOR {body}");
            let fetch = format!("FETCH FORWARD {} FROM personio_pipeline_query", max_rows.saturating_add(1));
            let millis = self.time_limit.as_millis().max(1);
            let result = self.block_on(async {
                self.client
                    .batch_execute(&format!("BEGIN; SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {millis}"))
                    .await
                    .map_err(pg_err("starting a read-only transaction"))?;
                let run = async {
                    // The extended protocol takes exactly one statement: a second one hidden from the
                    // statement check is refused by the server.
                    self.client.execute(declare.as_str(), &[]).await.map_err(pg_err("query"))?;
                    self.client.simple_query(&fetch).await.map_err(pg_err("query"))
                };
                let fetched = run.await;
                // Nothing to commit: every change was refused anyway.
                let rollback = self.client.batch_execute("ROLLBACK").await.map_err(pg_err("ending the read-only transaction"));
                let messages = fetched?;
                rollback?;
                let mut out = QueryRows::default();
                for m in messages {
                    match m {
                        SimpleQueryMessage::RowDescription(cols) => out.columns = cols.iter().map(|c| c.name().to_string()).collect(),
                        SimpleQueryMessage::Row(row) => {
                            if out.columns.is_empty() {
                                out.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                            }
                            if out.rows.len() == max_rows {
                                out.truncated = true;
                                continue;
                            }
                            let cells = (0..row.len()).map(|i| row.try_get(i).ok().flatten().map(String::from)).collect();
                            out.rows.push(cells);
                        }
                        _ => {}
                    }
                }
                Ok(out)
            });
            result.map_err(|e| self.timed_out(e))
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

    #[test]
    fn escape_strings_and_dollar_quotes_cannot_hide_a_second_statement() {
        let pg = SqlDialect::Postgres;
        for ok in ["SELECT E'it\\'s; fine'", "SELECT $$a;b$$", "SELECT $tag$ ; DROP $$ $tag$", "SELECT 'a''b;'", "select\"e\"'x;y' FROM t", "VALUES (1)", "TABLE t"] {
            assert!(pg.check_query(ok).is_ok(), "{ok}");
        }
        for bad in [
            "SELECT E'\\''; DROP TABLE t; --'",
            "SELECT e'\\\\'; DROP TABLE t",
            "SELECT $1; DROP TABLE t",
            "SELECT 1; COMMIT",
            "DESCRIBE t",
            "FROM t",
            "SHOW search_path",
            "EXPLAIN ANALYZE DELETE FROM t",
            "SET default_transaction_read_only = off",
            "COMMIT",
        ] {
            assert!(pg.check_query(bad).is_err(), "{bad}");
        }
        // `name'…'` is an identifier followed by a literal, not an E'' string: a backslash does not escape.
        assert!(pg.check_query("SELECT somee'\\'; DROP TABLE t").is_err());
        let err = pg.check_query("DESCRIBE t").expect_err("refused");
        assert!(err.to_string().contains("SELECT, WITH, VALUES, TABLE"), "{err}");
    }

    /// The server of this machine (or `PERSONIO_TEST_POSTGRES`), `None` when `PERSONIO_SKIP_POSTGRES=1`.
    fn server(dataset: &str) -> Option<crate::postgres::PostgresConfig> {
        if std::env::var("PERSONIO_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: postgres reader test (PERSONIO_SKIP_POSTGRES=1)");
            return None;
        }
        let url = std::env::var("PERSONIO_TEST_POSTGRES").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into());
        Some(crate::postgres::PostgresConfig::from_connection_string(&url, dataset).expect("PERSONIO_TEST_POSTGRES"))
    }

    /// The PostgreSQL reader against the real server: types as PostgreSQL reports them, text cells, the
    /// row cap, the time limit, and writes refused by the read-only transaction even when a statement
    /// passes the keyword check.
    #[test]
    fn the_postgres_reader_reads_and_refuses_writes() {
        let dataset = format!("pp_reader_{}", std::process::id());
        let Some(config) = server(&dataset) else { return };
        let setup = |sql: String| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let c = config.connect().await.unwrap_or_else(|e| panic!("PostgreSQL must run at 127.0.0.1:5432 (or set PERSONIO_SKIP_POSTGRES=1): {e}"));
                c.batch_execute(&sql).await
            })
        };
        let t = format!("\"{dataset}\".people");
        setup(format!(
            "CREATE SCHEMA \"{dataset}\"; CREATE TABLE {t} (id bigint NOT NULL, name varchar, at timestamp with time zone, amount numeric(38,9), ok boolean, doc jsonb); \
             INSERT INTO {t} SELECT g, 'p' || g, TIMESTAMPTZ '2024-05-01 10:00:00+02', 12.5, g % 2 = 0, '{{\"a\": 1}}' FROM generate_series(1, 30) g"
        ))
        .expect("setup");
        let result = std::panic::catch_unwind(|| {
            let mut r = PostgresReader::open_with_time_limit(&config, std::time::Duration::from_secs(1)).expect("open");
            assert_eq!((r.kind(), r.dialect()), ("postgres", SqlDialect::Postgres));
            assert!(!r.location().contains(":***@") || config.password.is_some());
            assert_eq!(r.tables().expect("tables"), [TableInfo { name: "people".into(), rows: 30 }]);
            let cols: Vec<(String, String, bool)> = r.columns().expect("columns").into_iter().map(|c| (c.name, c.data_type, c.nullable)).collect();
            assert_eq!(
                cols,
                [
                    ("id".to_string(), "bigint".to_string(), false),
                    ("name".into(), "character varying".into(), true),
                    ("at".into(), "timestamp with time zone".into(), true),
                    ("amount".into(), "numeric(38,9)".into(), true),
                    ("ok".into(), "boolean".into(), true),
                    ("doc".into(), "jsonb".into(), true),
                ]
            );
            assert!(r.loads(10).expect("no _dlt_loads").is_empty());
            assert!(r.stored_state("p").expect("no state table").is_none());
            let q = r.query(&format!("SELECT id, name, at, amount, ok, doc, NULL AS nothing FROM {t} WHERE id = 2"), 10).expect("query");
            assert_eq!(q.columns, ["id", "name", "at", "amount", "ok", "doc", "nothing"]);
            let row: Vec<Option<&str>> = q.rows[0].iter().map(|c| c.as_deref()).collect();
            assert_eq!(row, [Some("2"), Some("p2"), Some("2024-05-01 08:00:00+00"), Some("12.500000000"), Some("t"), Some("{\"a\": 1}"), None]);
            let capped = r.query(&format!("SELECT * FROM {t} ORDER BY id"), 25).expect("capped");
            assert_eq!((capped.rows.len(), capped.truncated), (25, true));
            let empty = r.query(&format!("SELECT id FROM {t} WHERE false"), 25).expect("no rows");
            assert_eq!((empty.columns.as_slice(), empty.rows.len()), (["id".to_string()].as_slice(), 0));
            let page = r.browse("people", 20, 50).expect("browse");
            assert_eq!(page.rows.len(), 10);
            for write in [
                format!("WITH gone AS (DELETE FROM {t} RETURNING 1) SELECT count(*) FROM gone"),
                format!("SELECT * FROM {t} FOR UPDATE"),
            ] {
                let err = r.query(&write, 10).expect_err(&write);
                assert!(err.message.contains("read-only") || err.message.contains("data-modifying"), "{write}: {err}");
            }
            let err = r.query("SELECT pg_sleep(5)", 10).expect_err("time limit");
            assert!(err.message.contains("ran longer than 1s"), "{err}");
            // The connection is still usable after errors, and nothing was deleted.
            assert_eq!(r.tables().expect("tables")[0].rows, 30);
        });
        let _ = setup(format!("DROP SCHEMA \"{dataset}\" CASCADE"));
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}
