//! The PostgreSQL destination: one PostgreSQL schema per dataset, merge staging in `<dataset>_staging`.
//!
//! A package is one transaction running the engine's [`LoadPlan`] as rendered by [`crate::sql`] in the
//! [`PostgresDialect`]. Rows go in with binary `COPY … FROM STDIN (FORMAT binary)`, encoded column by
//! column straight from the package's Arrow batches (no row-by-row INSERT, no text round trip); the
//! Arrow files are read on tokio's blocking pool and streamed to the server in 1 MiB chunks, so memory
//! stays bounded whatever the package size. Types follow dlt's PostgreSQL mapping (`varchar`, `bigint`,
//! `double precision`, `boolean`, `timestamp with time zone`, `date`, `time without time zone`,
//! `numeric(38,9)`, `jsonb`, `bytea`); identifiers are limited to 63 bytes, which the engine's naming
//! convention enforces with dlt's hash-tag shortening.
//!
//! The client is tokio-postgres: every call is async and runs on the caller's runtime. TLS (rustls with
//! Mozilla's roots) is used when the connection string asks for it (`sslmode=require` or `prefer`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use arrow::array::{
    Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray, Time64MicrosecondArray,
    TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;
use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use pipeline_engine::load::{Capabilities, Destination, DestinationError, LoadInfo, LoadReport, StoredState, TableInfo};
use pipeline_engine::package::LoadPackage;
use pipeline_engine::plan::{Catalog, LoadPlan};
use pipeline_engine::schema::{DataType, Schema};
use pipeline_engine::state::StateRow;
use tokio_postgres::config::SslMode;

use crate::sql::{self, ident, qualified, Dialect, Report, Step};
use crate::text::{strip_nul, NulReport};

const KIND: &str = "postgres";

/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// The column `<dataset>_staging` tables get to keep arrival order (the merge's "last row wins").
const STAGE_ROW: &str = "_dlt_stage_row";

/// dlt's PostgreSQL type for a dlt data type.
pub fn postgres_type(dt: DataType) -> &'static str {
    match dt {
        DataType::Text => "varchar",
        DataType::Bigint => "bigint",
        DataType::Double => "double precision",
        DataType::Bool => "boolean",
        DataType::Timestamp => "timestamp with time zone",
        DataType::Date => "date",
        DataType::Time => "time without time zone",
        DataType::Decimal => "numeric(38,9)",
        DataType::Json => "jsonb",
        DataType::Binary => "bytea",
    }
}

/// TLS use, as libpq's `sslmode` (`disable`, `prefer`, `require`; `verify-ca` and `verify-full` are
/// read as `require`, which always verifies the server's certificate against Mozilla's roots here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS if the server offers it.
    Prefer,
    /// TLS or fail.
    Require,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disable" | "allow" => Ok(TlsMode::Disable),
            "prefer" => Ok(TlsMode::Prefer),
            "require" | "verify-ca" | "verify-full" => Ok(TlsMode::Require),
            other => Err(format!("sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full")),
        }
    }
}

/// Settings of the PostgreSQL destination. `Debug` and every message show the password as `***`.
#[derive(Clone)]
pub struct PostgresConfig {
    /// Server host name or IP address.
    pub host: String,
    /// Server port (5432).
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User name.
    pub username: String,
    /// Password (`None`: trust or peer authentication).
    pub password: Option<String>,
    /// TLS use (`sslmode` in the connection string).
    pub tls: TlsMode,
    /// How long connecting may take (`connect_timeout`, dlt's default 15 s).
    pub connect_timeout: Duration,
    /// Dataset name: the PostgreSQL schema holding the tables.
    pub dataset_name: String,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("dataset_name", &self.dataset_name)
            .finish()
    }
}

/// Percent-decoding of URL parts (`%40` → `@`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PostgresConfig {
    /// Settings for `host:5432` with user `postgres`, no password, no TLS.
    pub fn new(host: &str, database: &str, username: &str, dataset_name: &str) -> Self {
        PostgresConfig {
            host: host.to_string(),
            port: 5432,
            database: database.to_string(),
            username: username.to_string(),
            password: None,
            tls: TlsMode::Disable,
            connect_timeout: Duration::from_secs(15),
            dataset_name: dataset_name.to_string(),
        }
    }

    /// Parse dlt's connection string `postgresql://user:password@host:port/database?sslmode=require&connect_timeout=15`.
    /// Errors never repeat the string (it holds the password).
    pub fn from_connection_string(text: &str, dataset_name: &str) -> Result<Self, DestinationError> {
        let bad = |what: &str| {
            DestinationError::new(
                KIND,
                format!("the credentials connection string is invalid ({what}); expected postgresql://user:password@host:port/database"),
            )
        };
        let rest = text
            .trim()
            .strip_prefix("postgresql://")
            .or_else(|| text.trim().strip_prefix("postgres://"))
            .ok_or_else(|| bad("it does not start with postgresql://"))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = main.split_once('/').ok_or_else(|| bad("no /database"))?;
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (percent_decode(user), Some(percent_decode(pass))),
                None => (percent_decode(u), None),
            },
            None => ("postgres".to_string(), None),
        };
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            let (h, p) = stripped.split_once(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let mut config = PostgresConfig::new(&percent_decode(&host), &percent_decode(database), &username, dataset_name);
        config.password = password.filter(|p| !p.is_empty());
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            config.port = p.parse().map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => config.tls = v.parse().map_err(|e: String| DestinationError::new(KIND, e))?,
                "connect_timeout" => {
                    let secs: u64 = v.parse().map_err(|_| bad("connect_timeout is not a number of seconds"))?;
                    config.connect_timeout = Duration::from_secs(secs.max(1));
                }
                _ => {}
            }
        }
        Ok(config)
    }

    /// The connection string without the password (`postgresql://user:***@host:port/db`), for messages.
    pub fn redacted(&self) -> String {
        let pass = if self.password.is_some() { ":***" } else { "" };
        format!("postgresql://{}{pass}@{}:{}/{}", self.username, self.host, self.port, self.database)
    }

    /// Check the settings without connecting.
    pub fn validate(&self) -> Result<(), DestinationError> {
        let fail = |m: String| Err(DestinationError::new(KIND, m));
        if self.host.trim().is_empty() {
            return fail("credentials.host is empty; set it or pass a connection string postgresql://user:password@host:port/database".into());
        }
        if self.database.trim().is_empty() {
            return fail("credentials.database is empty".into());
        }
        if self.username.trim().is_empty() {
            return fail("credentials.username is empty".into());
        }
        if self.port == 0 {
            return fail("credentials.port must be from 1 to 65535".into());
        }
        pipeline_engine::pipeline::validate_name("dataset", &self.dataset_name).map_err(|e| DestinationError::new(KIND, e.to_string()))?;
        let staging = format!("{}_staging", self.dataset_name);
        if staging.len() > MAX_IDENTIFIER_LEN {
            return fail(format!(
                "dataset name {:?} is too long for PostgreSQL: its staging schema {staging:?} must fit in {MAX_IDENTIFIER_LEN} bytes; use at most {} characters",
                self.dataset_name,
                MAX_IDENTIFIER_LEN - "_staging".len()
            ));
        }
        Ok(())
    }

    /// A destination for these settings. Nothing connects yet.
    pub fn build(&self) -> Result<PostgresDestination, DestinationError> {
        self.validate()?;
        Ok(PostgresDestination { config: self.clone(), client: None })
    }

    fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.username)
            .connect_timeout(self.connect_timeout)
            .application_name("personio-pipeline")
            .ssl_mode(match self.tls {
                TlsMode::Disable => SslMode::Disable,
                TlsMode::Prefer => SslMode::Prefer,
                TlsMode::Require => SslMode::Require,
            });
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }

    /// Connect; the connection's I/O runs as a task on the current runtime.
    pub(crate) async fn connect(&self) -> Result<tokio_postgres::Client, DestinationError> {
        let config = self.pg_config();
        let fail = |e: tokio_postgres::Error| {
            // tokio-postgres' errors never contain the password; neither does our message.
            DestinationError::new(KIND, format!("cannot connect to {}: {e}; check host, port, database, user and password", self.redacted()))
                .with_source(e)
        };
        let client = if self.tls == TlsMode::Disable {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(fail)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!("postgres connection closed: {e}");
                }
            });
            client
        } else {
            let (client, connection) = config.connect(tls_connector()?).await.map_err(fail)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!("postgres connection closed: {e}");
                }
            });
            client
        };
        client.batch_execute("SET TIME ZONE 'UTC'").await.map_err(pg_err("configuring the session"))?;
        Ok(client)
    }
}

fn tls_connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, DestinationError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| DestinationError::new(KIND, format!("setting up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

pub(crate) fn pg_err(context: &str) -> impl FnOnce(tokio_postgres::Error) -> DestinationError + '_ {
    move |e| {
        let detail = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
        DestinationError::new(KIND, format!("{context}: {detail}")).with_source(e)
    }
}

/// The newest `_dlt_pipeline_state` row of [`sql::stored_state_query`]'s result, if any (shared by the
/// destination and the dashboard's reader).
pub(crate) fn stored_state_from_rows(rows: &[tokio_postgres::Row]) -> Result<Option<StoredState>, DestinationError> {
    let Some(r) = rows.first() else { return Ok(None) };
    let e = || pg_err("reading _dlt_pipeline_state");
    let created_at: String = r.try_get(4).map_err(e())?;
    Ok(Some(StoredState {
        row: StateRow {
            version: r.try_get(0).map_err(e())?,
            engine_version: r.try_get(1).map_err(e())?,
            pipeline_name: r.try_get(2).map_err(e())?,
            state: r.try_get(3).map_err(e())?,
            created_at: sql::parse_created_at(&created_at),
            version_hash: r.try_get::<_, Option<String>>(5).map_err(e())?.unwrap_or_default(),
            dlt_id: String::new(),
        },
        load_id: r.try_get(6).map_err(e())?,
    }))
}

fn sql_err(sql: &str) -> impl FnOnce(tokio_postgres::Error) -> DestinationError + '_ {
    move |e| {
        let detail = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
        let shown: String = sql.chars().take(300).collect();
        DestinationError::new(KIND, format!("{detail} (in: {shown})")).with_source(e)
    }
}

/// PostgreSQL's SQL for the shared plan rendering ([`crate::sql`]).
#[derive(Debug, Clone, Default)]
pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn type_name(&self, dt: DataType) -> &'static str {
        postgres_type(dt)
    }

    fn text_with_length(&self, length: u32) -> String {
        format!("varchar({length})")
    }

    fn staging_row_order(&self) -> &'static str {
        STAGE_ROW
    }

    fn create_staging_table(&self, staging: &str, dataset: &str, table: &str) -> Vec<String> {
        let t = qualified(staging, table);
        vec![
            format!("DROP TABLE IF EXISTS {t}"),
            // Unlogged: staging is scratch space, rebuilt by every merge.
            format!("CREATE UNLOGGED TABLE {t} (LIKE {})", qualified(dataset, table)),
            format!("ALTER TABLE {t} ADD COLUMN {} BIGINT GENERATED ALWAYS AS IDENTITY", ident(STAGE_ROW)),
        ]
    }

    fn create_table_as(&self, qualified: &str, select: &str) -> Vec<String> {
        vec![format!("DROP TABLE IF EXISTS {qualified}"), format!("CREATE UNLOGGED TABLE {qualified} AS {select}")]
    }

    fn bucket_of(&self, key_list: &str, buckets: u64) -> String {
        format!("abs(hashtextextended(({key_list})::text, 0)) % {buckets}")
    }
}

/// The PostgreSQL destination; connected only while in use.
pub struct PostgresDestination {
    config: PostgresConfig,
    client: Option<tokio_postgres::Client>,
}

impl std::fmt::Debug for PostgresDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDestination").field("config", &self.config).finish()
    }
}

/// One message of the COPY producer: start a COPY with these columns, or data for the current one.
enum CopyChunk {
    Start(Vec<String>),
    Data(Bytes),
}

/// Flush the COPY buffer at about this size.
const CHUNK_BYTES: usize = 1 << 20;
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between the Unix epoch and PostgreSQL's.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Encode a batch as binary COPY tuples (without header or trailer) into `buf`. `types` gives the
/// destination type of each column (for `jsonb`).
fn encode_batch(batch: &RecordBatch, types: &[DataType], buf: &mut BytesMut) -> Result<(), String> {
    enum Col<'a> {
        I64(&'a Int64Array),
        F64(&'a Float64Array),
        Bool(&'a BooleanArray),
        Str(&'a StringArray, bool),
        Ts(&'a TimestampMicrosecondArray),
        Date(&'a Date32Array),
        Time(&'a Time64MicrosecondArray),
        Dec(&'a Decimal128Array),
        Bin(&'a BinaryArray),
    }
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (i, array) in batch.columns().iter().enumerate() {
        let a = array.as_any();
        let name = batch.schema().field(i).name().clone();
        let col = if let Some(x) = a.downcast_ref::<Int64Array>() {
            Col::I64(x)
        } else if let Some(x) = a.downcast_ref::<Float64Array>() {
            Col::F64(x)
        } else if let Some(x) = a.downcast_ref::<BooleanArray>() {
            Col::Bool(x)
        } else if let Some(x) = a.downcast_ref::<StringArray>() {
            Col::Str(x, types.get(i) == Some(&DataType::Json))
        } else if let Some(x) = a.downcast_ref::<TimestampMicrosecondArray>() {
            Col::Ts(x)
        } else if let Some(x) = a.downcast_ref::<Date32Array>() {
            Col::Date(x)
        } else if let Some(x) = a.downcast_ref::<Time64MicrosecondArray>() {
            Col::Time(x)
        } else if let Some(x) = a.downcast_ref::<Decimal128Array>() {
            Col::Dec(x)
        } else if let Some(x) = a.downcast_ref::<BinaryArray>() {
            Col::Bin(x)
        } else {
            return Err(format!("column {name} has Arrow type {}, which the binary COPY encoder does not handle", array.data_type()));
        };
        cols.push(col);
    }
    let n_cols = i16::try_from(cols.len()).map_err(|_| "more than 32767 columns".to_string())?;
    for row in 0..batch.num_rows() {
        buf.put_i16(n_cols);
        for col in &cols {
            let null = match col {
                Col::I64(a) => a.is_null(row),
                Col::F64(a) => a.is_null(row),
                Col::Bool(a) => a.is_null(row),
                Col::Str(a, _) => a.is_null(row),
                Col::Ts(a) => a.is_null(row),
                Col::Date(a) => a.is_null(row),
                Col::Time(a) => a.is_null(row),
                Col::Dec(a) => a.is_null(row),
                Col::Bin(a) => a.is_null(row),
            };
            if null {
                buf.put_i32(-1);
                continue;
            }
            match col {
                Col::I64(a) => {
                    buf.put_i32(8);
                    buf.put_i64(a.value(row));
                }
                Col::F64(a) => {
                    buf.put_i32(8);
                    buf.put_f64(a.value(row));
                }
                Col::Bool(a) => {
                    buf.put_i32(1);
                    buf.put_u8(u8::from(a.value(row)));
                }
                Col::Str(a, json) => {
                    let v = a.value(row).as_bytes();
                    let extra = usize::from(*json);
                    buf.put_i32(i32::try_from(v.len() + extra).map_err(|_| "a value over 2 GiB".to_string())?);
                    if *json {
                        buf.put_u8(1); // jsonb binary format version
                    }
                    buf.put_slice(v);
                }
                Col::Ts(a) => {
                    buf.put_i32(8);
                    buf.put_i64(a.value(row) - PG_EPOCH_MICROS);
                }
                Col::Date(a) => {
                    buf.put_i32(4);
                    buf.put_i32(a.value(row) - PG_EPOCH_DAYS);
                }
                Col::Time(a) => {
                    buf.put_i32(8);
                    buf.put_i64(a.value(row));
                }
                Col::Dec(a) => encode_numeric(a.value(row), a.scale(), buf),
                Col::Bin(a) => {
                    let v = a.value(row);
                    buf.put_i32(i32::try_from(v.len()).map_err(|_| "a value over 2 GiB".to_string())?);
                    buf.put_slice(v);
                }
            }
        }
    }
    Ok(())
}

/// PostgreSQL's binary `numeric`: base-10000 digits, weight, sign, display scale.
fn encode_numeric(value: i128, scale: i8, buf: &mut BytesMut) {
    let scale = scale.max(0) as u32;
    let negative = value < 0;
    let abs = value.unsigned_abs();
    let pow = 10u128.pow(scale);
    let (mut int, frac) = (abs / pow, abs % pow);
    let mut int_groups = Vec::new();
    while int > 0 {
        int_groups.push((int % 10_000) as i16);
        int /= 10_000;
    }
    int_groups.reverse();
    // Fraction digits padded to a multiple of 4.
    let frac_groups_n = scale.div_ceil(4);
    let frac_padded = frac * 10u128.pow(frac_groups_n * 4 - scale);
    let mut frac_groups: Vec<i16> = (0..frac_groups_n).rev().map(|i| ((frac_padded / 10_000u128.pow(i)) % 10_000) as i16).collect();
    while frac_groups.last() == Some(&0) {
        frac_groups.pop();
    }
    let weight: i16 = if int_groups.is_empty() { -1 } else { int_groups.len() as i16 - 1 };
    let mut digits = int_groups;
    if digits.is_empty() {
        // Leading zero groups of the fraction move the weight down.
        let lead = frac_groups.iter().take_while(|d| **d == 0).count();
        frac_groups.drain(..lead);
        let weight = if frac_groups.is_empty() { 0 } else { -1 - lead as i16 };
        digits = frac_groups;
        write_numeric(buf, &digits, weight, negative && !digits.is_empty(), scale as i16);
        return;
    }
    digits.extend(frac_groups);
    write_numeric(buf, &digits, weight, negative, scale as i16);
}

fn write_numeric(buf: &mut BytesMut, digits: &[i16], weight: i16, negative: bool, dscale: i16) {
    buf.put_i32(8 + 2 * digits.len() as i32);
    buf.put_i16(digits.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if negative { 0x4000 } else { 0 });
    buf.put_i16(dscale);
    for d in digits {
        buf.put_i16(*d);
    }
}

impl PostgresDestination {
    /// The config.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.client.as_ref().is_some_and(|c| !c.is_closed())
    }

    async fn client(&mut self) -> Result<&tokio_postgres::Client, DestinationError> {
        if !self.is_connected() {
            self.client = Some(self.config.connect().await?);
        }
        self.client.as_ref().ok_or_else(|| DestinationError::new(KIND, "internal error: not connected"))
    }

    /// A new connection for queries (tests, `pipeline show`), independent of the destination's.
    pub async fn query_client(&self) -> Result<tokio_postgres::Client, DestinationError> {
        self.config.connect().await
    }

    fn ds(&self) -> &str {
        &self.config.dataset_name
    }

    async fn catalog(&mut self) -> Result<Catalog, DestinationError> {
        let q = sql::catalog_query(&self.config.dataset_name);
        let rows = self.client().await?.query(&q, &[]).await.map_err(pg_err("reading information_schema"))?;
        let mut out: Catalog = HashMap::new();
        for r in rows {
            let t: String = r.try_get(0).map_err(pg_err("reading information_schema"))?;
            let c: String = r.try_get(1).map_err(pg_err("reading information_schema"))?;
            out.entry(t).or_insert_with(HashSet::new).insert(c);
        }
        Ok(out)
    }

    /// Binary COPY of a package table into `schema.table`; returns the rows copied and the values whose
    /// NUL characters were removed.
    async fn copy_table(&mut self, package: &LoadPackage, table: &str, schema: &str, skip: u64) -> Result<(u64, NulReport), DestinationError> {
        self.copy_in(package, table, schema, None, skip).await
    }

    /// Binary COPY of a package table (`keys_of: None`) or of the reconciliation key set of resource
    /// `keys_of` (text columns) into `schema.table`, without a table's first `skip` rows; returns the rows copied and the values whose NUL
    /// characters were removed (PostgreSQL text cannot hold NUL, nor jsonb the escape `\u0000`; key sets
    /// lose them too, so they match the stored keys; see [`crate::text`]).
    async fn copy_in(&mut self, package: &LoadPackage, table: &str, schema: &str, keys_of: Option<String>, skip: u64) -> Result<(u64, NulReport), DestinationError> {
        let types: HashMap<String, DataType> = match keys_of {
            Some(_) => HashMap::new(),
            None => package
                .manifest()
                .schema
                .tables
                .get(table)
                .map(|t| t.columns.values().map(|c| (c.name.clone(), c.data_type)).collect())
                .unwrap_or_default(),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<CopyChunk, DestinationError>>(4);
        let reader_package = package.clone();
        let reader_table = table.to_string();
        let producer = tokio::task::spawn_blocking(move || {
            let mut current: Option<Vec<String>> = None;
            let mut buf = BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024);
            let mut rows = 0u64;
            let mut nul = NulReport::default();
            let nul_table = reader_table.clone();
            let each_batch = |batch: arrow::record_batch::RecordBatch| -> Result<(), DestinationError> {
                let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
                let col_types: Vec<DataType> = names.iter().map(|n| types.get(n).copied().unwrap_or(DataType::Text)).collect();
                let batch = strip_nul(batch, &col_types, true, &nul_table, &mut nul);
                if current.as_ref() != Some(&names) {
                    if !buf.is_empty() {
                        let _ = tx.blocking_send(Ok(CopyChunk::Data(buf.split().freeze())));
                    }
                    current = Some(names.clone());
                    let _ = tx.blocking_send(Ok(CopyChunk::Start(names)));
                    // Header: signature, flags, header extension length.
                    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
                    buf.put_i32(0);
                    buf.put_i32(0);
                }
                encode_batch(&batch, &col_types, &mut buf).map_err(|m| DestinationError::new(KIND, m))?;
                rows += batch.num_rows() as u64;
                if buf.len() >= CHUNK_BYTES && tx.blocking_send(Ok(CopyChunk::Data(buf.split().freeze()))).is_err() {
                    return Err(DestinationError::new(KIND, "the COPY was aborted"));
                }
                Ok(())
            };
            let result = match &keys_of {
                Some(resource) => reader_package.for_each_key_batch::<DestinationError>(resource, each_batch),
                None => reader_package.for_each_batch_after::<DestinationError>(&reader_table, skip, each_batch),
            };
            match result {
                Ok(()) => {
                    if !buf.is_empty() {
                        let _ = tx.blocking_send(Ok(CopyChunk::Data(buf.split().freeze())));
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                }
            }
            (rows, nul)
        });
        let target = qualified(schema, table);
        let mut sink: Option<std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>> = None;
        let mut copied = 0u64;
        let trailer = Bytes::from_static(&[0xff, 0xff]);
        while let Some(msg) = rx.recv().await {
            match msg? {
                CopyChunk::Start(cols) => {
                    if let Some(mut s) = sink.take() {
                        s.send(trailer.clone()).await.map_err(pg_err(&format!("copying into {target}")))?;
                        copied += s.as_mut().finish().await.map_err(pg_err(&format!("copying into {target}")))?;
                    }
                    let list = cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                    let stmt = format!("COPY {target} ({list}) FROM STDIN (FORMAT binary)");
                    let s = self.client().await?.copy_in::<_, Bytes>(&stmt).await.map_err(sql_err(&stmt))?;
                    sink = Some(Box::pin(s));
                }
                CopyChunk::Data(bytes) => {
                    let s = sink.as_mut().ok_or_else(|| DestinationError::new(KIND, "internal error: COPY data before its start"))?;
                    s.send(bytes).await.map_err(pg_err(&format!("copying into {target}")))?;
                }
            }
        }
        if let Some(mut s) = sink.take() {
            s.send(trailer).await.map_err(pg_err(&format!("copying into {target}")))?;
            copied += s.as_mut().finish().await.map_err(pg_err(&format!("copying into {target}")))?;
        }
        let (produced, nul) = producer.await.map_err(|e| DestinationError::new(KIND, format!("reading the package failed: {e}")))?;
        if produced != copied {
            return Err(DestinationError::new(KIND, format!("COPY into {target} wrote {copied} rows of {produced}")));
        }
        Ok((copied, nul))
    }

    async fn run_steps(&mut self, steps: &[Step], package: Option<&LoadPackage>) -> Result<LoadReport, DestinationError> {
        let mut report = Report::default();
        let mut nul = NulReport::default();
        for step in steps {
            let started = std::time::Instant::now();
            match step {
                Step::Exec(sql) => self.client().await?.batch_execute(sql).await.map_err(sql_err(sql))?,
                Step::ExecCounted { sql, table } => {
                    let n = self.client().await?.execute(sql.as_str(), &[]).await.map_err(sql_err(sql))?;
                    report.add(table, n);
                }
                Step::BulkInsert { table, schema, report: counted, skip } => {
                    let has_rows = package.is_some_and(|p| p.manifest().tables.get(table).is_some_and(|j| j.rows > *skip));
                    let n = match package {
                        Some(p) if has_rows => {
                            let (n, stripped) = self.copy_table(p, table, schema, *skip).await?;
                            nul.merge(stripped);
                            n
                        }
                        _ => 0,
                    };
                    if *counted {
                        report.add(table, n);
                    }
                }
                Step::Report { table, rows } => report.add(table, *rows),
                Step::FillingNew(_) => {}
                Step::BulkInsertKeys { resource, schema, table } => {
                    let has_keys = package.and_then(|p| p.reconcile_entry(resource)).is_some_and(|e| e.keys > 0);
                    if let Some(p) = package.filter(|_| has_keys) {
                        // Key sets lose NUL like the stored keys; they are not data, so not counted.
                        self.copy_in(p, table, schema, Some(resource.clone()), 0).await?;
                    }
                }
                Step::ExecDeleted { sql, table } => {
                    let n = self.client().await?.execute(sql.as_str(), &[]).await.map_err(sql_err(sql))?;
                    report.add_deleted(table, n);
                }
                Step::ExecUncounted { sql, table } => {
                    let n = self.client().await?.execute(sql.as_str(), &[]).await.map_err(sql_err(sql))?;
                    report.sub(table, n);
                }
            }
            tracing::debug!(target: "load_steps", ms = started.elapsed().as_secs_f64() * 1e3, "{}", step.summary());
        }
        let mut out = report.finish();
        out.warnings.extend(nul.warning("PostgreSQL"));
        Ok(out)
    }

    /// Render and run `plan` in one transaction.
    async fn execute(&mut self, plan: &LoadPlan, package: Option<&LoadPackage>) -> Result<LoadReport, DestinationError> {
        let rows_of = |t: &str| package.and_then(|p| p.manifest().tables.get(t)).map(|j| j.rows).unwrap_or(0);
        let steps = sql::plan_steps(plan, self.ds(), rows_of, &PostgresDialect, None);
        let result = self.run_steps(&steps, package).await;
        match result {
            Ok(report) => {
                self.client().await?.batch_execute("COMMIT").await.map_err(pg_err("committing the load"))?;
                Ok(report)
            }
            Err(e) => {
                if let Some(c) = &self.client {
                    if c.batch_execute("ROLLBACK").await.is_err() {
                        self.client = None;
                    }
                }
                Err(e)
            }
        }
    }

    async fn begin(&mut self) -> Result<Catalog, DestinationError> {
        self.client().await?.batch_execute("BEGIN").await.map_err(pg_err("starting the load transaction"))?;
        match self.catalog().await {
            Ok(c) => Ok(c),
            Err(e) => {
                if let Some(c) = &self.client {
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                Err(e)
            }
        }
    }

    async fn table_exists(&mut self, table: &str) -> Result<bool, DestinationError> {
        Ok(self.catalog().await?.contains_key(table))
    }

    async fn query_one_i64(&mut self, q: &str, context: &str) -> Result<i64, DestinationError> {
        let row = self.client().await?.query_one(q, &[]).await.map_err(pg_err(context))?;
        row.try_get(0).map_err(pg_err(context))
    }
}

#[async_trait::async_trait]
impl Destination for PostgresDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destination_type(&self) -> &'static str {
        "dlt.destinations.postgres"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { max_identifier_len: Some(MAX_IDENTIFIER_LEN), ..Capabilities::full() }
    }

    fn identity(&self) -> String {
        let c = &self.config;
        format!("{KIND}://{}@{}:{}/{}", c.username, c.host, c.port, c.database)
    }

    async fn disconnect(&mut self) {
        self.client = None;
    }

    async fn health_check(&mut self) -> Result<(), DestinationError> {
        self.client().await?.batch_execute("SELECT 1").await.map_err(pg_err("health check"))
    }

    async fn existing_tables(&mut self) -> Result<Vec<String>, DestinationError> {
        let mut names: Vec<String> = self.catalog().await?.into_keys().collect();
        names.sort();
        Ok(names)
    }

    async fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        let catalog = self.catalog().await?;
        if !catalog.contains_key("_dlt_pipeline_state") || !catalog.contains_key("_dlt_loads") {
            return Ok(None);
        }
        let q = sql::stored_state_query(self.ds(), pipeline_name);
        let rows = self.client().await?.query(&q, &[]).await.map_err(pg_err("reading _dlt_pipeline_state"))?;
        stored_state_from_rows(&rows)
    }

    async fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        if !self.table_exists("_dlt_version").await? {
            return Ok(None);
        }
        let q = sql::stored_schema_query(self.ds(), schema_name);
        let rows = self.client().await?.query(&q, &[]).await.map_err(pg_err("reading _dlt_version"))?;
        let Some(r) = rows.first() else { return Ok(None) };
        let text: String = r.try_get(0).map_err(pg_err("reading _dlt_version"))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| DestinationError::new(KIND, format!("the stored schema in _dlt_version is not JSON: {e}")))?;
        Ok(Schema::from_dlt_json(&value))
    }

    async fn is_loaded(&mut self, load_id: &str) -> Result<bool, DestinationError> {
        if !self.table_exists("_dlt_loads").await? {
            return Ok(false);
        }
        let q = sql::is_loaded_query(self.ds(), load_id);
        Ok(self.query_one_i64(&q, "reading _dlt_loads").await? > 0)
    }

    async fn load_package(&mut self, package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        let catalog = self.begin().await?;
        let plan = LoadPlan::build(package.manifest(), &catalog);
        self.execute(&plan, Some(package)).await
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
        let mut names: Vec<String> = self.catalog().await?.into_keys().collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let q = format!("SELECT count(*) FROM {}", qualified(self.ds(), &name));
            let rows = self.query_one_i64(&q, "counting rows").await?;
            out.push(TableInfo { name, rows: rows as u64 });
        }
        Ok(out)
    }

    async fn recent_loads(&mut self, limit: usize) -> Result<Vec<LoadInfo>, DestinationError> {
        if !self.table_exists("_dlt_loads").await? {
            return Ok(Vec::new());
        }
        let q = sql::recent_loads_query(self.ds(), limit);
        let rows = self.client().await?.query(&q, &[]).await.map_err(pg_err("reading _dlt_loads"))?;
        let e = || pg_err("reading _dlt_loads");
        rows.iter()
            .map(|r| Ok(LoadInfo { load_id: r.try_get(0).map_err(e())?, status: r.try_get(1).map_err(e())?, inserted_at: r.try_get(2).map_err(e())? }))
            .collect()
    }

    async fn drop_tables(&mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str) -> Result<(), DestinationError> {
        let catalog = self.begin().await?;
        let plan = LoadPlan::for_drop(tables, new_schema, state, load_id, &catalog);
        self.execute(&plan, None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_parse_and_never_show_the_password() {
        let c = PostgresConfig::from_connection_string("postgresql://loader:s%40cret@db.example:6543/dlt_data?sslmode=require&connect_timeout=5", "ds")
            .expect("parse");
        assert_eq!((c.username.as_str(), c.host.as_str(), c.port, c.database.as_str()), ("loader", "db.example", 6543, "dlt_data"));
        assert_eq!(c.password.as_deref(), Some("s@cret"));
        assert_eq!(c.tls, TlsMode::Require);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains("s@cret"));
        assert!(!c.redacted().contains("s@cret"));
        let err = PostgresConfig::from_connection_string("mysql://u:topsecret@h/db", "ds").expect_err("scheme");
        assert!(!err.to_string().contains("topsecret"), "{err}");
        let err = PostgresConfig::from_connection_string("postgresql://u:topsecret@h:port/db", "ds").expect_err("port");
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn long_datasets_are_refused_before_connecting() {
        let c = PostgresConfig::new("h", "db", "u", &"d".repeat(60));
        let err = c.validate().expect_err("too long");
        assert!(err.to_string().contains("staging"), "{err}");
    }

    #[test]
    fn numerics_encode_in_base_10000() {
        let mut buf = BytesMut::new();
        // 12345.678900000 with scale 9 → digits [1, 2345, 6789], weight 1, dscale 9.
        encode_numeric(12_345_678_900_000, 9, &mut buf);
        let b = buf.freeze();
        assert_eq!(&b[4..6], &3i16.to_be_bytes());
        assert_eq!(&b[6..8], &1i16.to_be_bytes());
        assert_eq!(&b[12..14], &1i16.to_be_bytes());
        assert_eq!(&b[14..16], &2345i16.to_be_bytes());
        assert_eq!(&b[16..18], &6789i16.to_be_bytes());
    }

    /// The server of this machine (or `PERSONIO_TEST_POSTGRES`), `None` when `PERSONIO_SKIP_POSTGRES=1`.
    fn server(dataset: &str) -> Option<PostgresConfig> {
        if std::env::var("PERSONIO_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: postgres unit test (PERSONIO_SKIP_POSTGRES=1)");
            return None;
        }
        let url = std::env::var("PERSONIO_TEST_POSTGRES").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into());
        Some(PostgresConfig::from_connection_string(&url, dataset).expect("PERSONIO_TEST_POSTGRES"))
    }

    /// Every type the normalizer produces goes through binary COPY and reads back as PostgreSQL renders it.
    #[tokio::test]
    async fn binary_copy_round_trips_every_type() {
        use pipeline_engine::extract::ResourceSpec;
        use pipeline_engine::fixture::FixtureSource;
        use pipeline_engine::pipeline::{Pipeline, PipelineConfig};
        use pipeline_engine::schema::WriteDisposition;
        let dataset = format!("pp_unit_{}", std::process::id());
        let Some(config) = server(&dataset) else { return };
        let mut d = config.build().expect("config");
        d.health_check().await.unwrap_or_else(|e| panic!("PostgreSQL must run at 127.0.0.1:5432 (or set PERSONIO_SKIP_POSTGRES=1): {e}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Pipeline::open(PipelineConfig::new("unit", &dataset, dir.path().join("p"))).expect("pipeline");
        let mut src = FixtureSource::new("fx", vec![ResourceSpec::new("things", &["id"], WriteDisposition::Merge)]);
        src.set(
            "things",
            vec![
                serde_json::json!({"id": 1, "name": "a'b", "x": 1.5, "ok": true, "at": "\u{F027}2024-05-01T10:00:00.123456+00:00", "day": "\u{F028}2024-05-01", "tags": ["t1", "t2"]}),
                serde_json::json!({"id": 2, "name": null, "x": -2.25, "ok": false, "at": "\u{F027}1999-12-31T23:59:59+00:00", "day": "\u{F028}1970-01-01", "tags": []}),
                serde_json::json!({"id": 1, "name": "last wins", "x": 3.0, "ok": true, "at": "\u{F027}2024-05-02T00:00:00+00:00", "day": "\u{F028}2024-05-02", "tags": ["t3"]}),
            ],
        );
        let result = p.run(&src, None, &mut d).await;
        let client = d.query_client().await.expect("connect");
        let rows = client
            .query(
                &format!(
                    "SELECT CAST(id AS VARCHAR) || '|' || COALESCE(name, '-') || '|' || CAST(x AS VARCHAR) || '|' || CAST(ok AS VARCHAR) || '|' || CAST(at AS VARCHAR) || '|' || CAST(day AS VARCHAR) FROM \"{dataset}\".things ORDER BY id"
                ),
                &[],
            )
            .await;
        let tags = client.query(&format!("SELECT value FROM \"{dataset}\".things__tags ORDER BY value"), &[]).await;
        let _ = client.batch_execute(&format!("DROP SCHEMA \"{dataset}\" CASCADE; DROP SCHEMA IF EXISTS \"{dataset}_staging\" CASCADE")).await;
        result.expect("run");
        let rows: Vec<String> = rows.expect("select").iter().map(|r| r.get(0)).collect();
        assert_eq!(
            rows,
            [
                "1|last wins|3|true|2024-05-02 00:00:00+00|2024-05-02",
                "2|-|-2.25|false|1999-12-31 23:59:59+00|1970-01-01"
            ]
        );
        let tags: Vec<String> = tags.expect("tags").iter().map(|r| r.get(0)).collect();
        assert_eq!(tags, ["t3"], "the merged entity's children are replaced");
    }

    /// PostgreSQL text cannot hold NUL: a load of values with NUL goes through without them (as dlt's),
    /// merge keys with NUL match their stripped form, and the run report counts the values per column.
    #[tokio::test]
    async fn nul_characters_are_removed_from_text_and_counted() {
        use pipeline_engine::extract::ResourceSpec;
        use pipeline_engine::fixture::FixtureSource;
        use pipeline_engine::pipeline::{Pipeline, PipelineConfig};
        use pipeline_engine::schema::WriteDisposition;
        let dataset = format!("pp_nul_{}", std::process::id());
        let Some(config) = server(&dataset) else { return };
        let mut d = config.build().expect("config");
        d.health_check().await.unwrap_or_else(|e| panic!("PostgreSQL must run at 127.0.0.1:5432 (or set PERSONIO_SKIP_POSTGRES=1): {e}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Pipeline::open(PipelineConfig::new("nul", &dataset, dir.path().join("p"))).expect("pipeline");
        let mut src = FixtureSource::new(
            "fx",
            vec![ResourceSpec::new("people", &["code"], WriteDisposition::Merge), ResourceSpec::new("notes", &[], WriteDisposition::Append)],
        );
        src.set(
            "people",
            vec![
                serde_json::json!({"code": "a\u{0}1", "name": "Zoë\u{0}\u{0} M.", "tags": ["x\u{0}", "y"]}),
                serde_json::json!({"code": "b2", "name": "plain", "tags": []}),
            ],
        );
        src.set("notes", vec![serde_json::json!({"text": "\u{0}"}), serde_json::json!({"text": "ok"})]);
        let first = p.run(&src, None, &mut d).await;
        // The same key without NUL merges into the row loaded above.
        src.set("people", vec![serde_json::json!({"code": "a1", "name": "second", "tags": []})]);
        src.set("notes", vec![]);
        let second = p.run(&src, None, &mut d).await;
        let client = d.query_client().await.expect("connect");
        let people = client.query(&format!("SELECT code || '|' || name FROM \"{dataset}\".people ORDER BY code"), &[]).await;
        let notes = client.query(&format!("SELECT text FROM \"{dataset}\".notes ORDER BY text"), &[]).await;
        let tags = client.query(&format!("SELECT value FROM \"{dataset}\".people__tags ORDER BY value"), &[]).await;
        let _ = client.batch_execute(&format!("DROP SCHEMA \"{dataset}\" CASCADE; DROP SCHEMA IF EXISTS \"{dataset}_staging\" CASCADE")).await;
        let first = first.expect("a load with NUL characters goes through");
        second.expect("second run");
        let rows = |r: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>| -> Vec<String> { r.expect("select").iter().map(|r| r.get(0)).collect() };
        assert_eq!(rows(people), ["a1|second", "b2|plain"], "NUL removed; the stripped key merged");
        assert_eq!(rows(notes), ["", "ok"]);
        assert_eq!(rows(tags), Vec::<String>::new(), "the merged entity's children were replaced");
        let warning = first.warnings.iter().find(|w| w.contains("NUL")).unwrap_or_else(|| panic!("no NUL warning in {:?}", first.warnings));
        for part in ["people.code (1)", "people.name (1)", "people__tags.value (1)", "notes.text (1)", "4 value(s)", "PostgreSQL"] {
            assert!(warning.contains(part), "{part} missing in: {warning}");
        }
        assert!(first.to_string().contains("WARNING: 4 value(s) had NUL characters"), "the run summary shows it:\n{first}");
        let trace = p.last_trace().expect("trace.json");
        assert!(trace["warnings"].as_array().is_some_and(|w| w.is_empty()), "the second run changed nothing: {trace}");
    }

    /// jsonb refuses the escape `\u0000`: such JSON values lose it, on the exact path a package table takes
    /// (strip, then binary COPY), against the real server.
    #[tokio::test]
    async fn jsonb_values_lose_escaped_nul() {
        use arrow::array::{ArrayRef, Int64Array};
        use arrow::datatypes::{Field, Schema as ArrowSchema};
        let dataset = format!("pp_nuljson_{}", std::process::id());
        let Some(config) = server(&dataset) else { return };
        let client = config.connect().await.unwrap_or_else(|e| panic!("PostgreSQL must run at 127.0.0.1:5432 (or set PERSONIO_SKIP_POSTGRES=1): {e}"));
        let table = format!("\"{dataset}\".docs");
        client.batch_execute(&format!("CREATE SCHEMA \"{dataset}\"; CREATE TABLE {table} (id bigint, doc jsonb)")).await.expect("create");
        let schema = ArrowSchema::new(vec![Field::new("id", arrow::datatypes::DataType::Int64, false), Field::new("doc", arrow::datatypes::DataType::Utf8, true)]);
        let cols: Vec<ArrayRef> = vec![
            std::sync::Arc::new(Int64Array::from(vec![1, 2])),
            std::sync::Arc::new(StringArray::from(vec![Some(r#"{"k":"a\u0000b","\u0000":[1]}"#), Some(r#"{"path":"C:\\u0000"}"#)])),
        ];
        let batch = RecordBatch::try_new(std::sync::Arc::new(schema), cols).expect("batch");
        let types = [DataType::Bigint, DataType::Json];
        let mut nul = NulReport::default();
        let batch = strip_nul(batch, &types, true, "docs", &mut nul);
        let mut buf = BytesMut::new();
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0);
        buf.put_i32(0);
        encode_batch(&batch, &types, &mut buf).expect("encode");
        buf.put_i16(-1);
        let copied = async {
            let sink = client.copy_in::<_, Bytes>(&format!("COPY {table} (id, doc) FROM STDIN (FORMAT binary)")).await?;
            futures::pin_mut!(sink);
            sink.send(buf.freeze()).await?;
            sink.finish().await
        }
        .await;
        let docs = client.query(&format!("SELECT doc::text FROM {table} ORDER BY id"), &[]).await;
        let _ = client.batch_execute(&format!("DROP SCHEMA \"{dataset}\" CASCADE")).await;
        assert_eq!(copied.expect("COPY of the cleaned JSON"), 2);
        let docs: Vec<String> = docs.expect("select").iter().map(|r| r.get(0)).collect();
        assert_eq!(docs, [r#"{"": [1], "k": "ab"}"#, r#"{"path": "C:\\u0000"}"#], "an escaped backslash before u0000 is text, kept");
        assert_eq!(nul.count("docs", "doc"), 1);
    }
}
