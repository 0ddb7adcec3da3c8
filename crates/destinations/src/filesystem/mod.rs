//! The filesystem destination: a dataset as files on a local disk or in S3, in dlt's layout, readable by
//! any engine that reads Parquet or Delta Lake (Spark, Trino, Athena, DuckDB, pyarrow, …).
//!
//! * `bucket_url` (`/abs/dir`, `relative/dir`, `file:///abs/dir`, `s3://bucket/prefix`) holds one folder
//!   per dataset; see [`layout`] for the file names (dlt 1.31's).
//! * Append tables are plain files: `<table>/<load_id>.<file_id>.parquet` (zstd) or `.jsonl.gz`.
//! * Merge and replace tables are Delta tables (dlt's `table_format = "delta"`): the Parquet files are
//!   written by [`files`] with the workspace's `parquet`, the log is committed through delta-rs
//!   ([`delta`]). A merge rewrites the files holding replaced keys (copy-on-write) and leaves one row per
//!   key; a replace is one overwrite commit; each table switches atomically.
//! * `_dlt_version`, `_dlt_pipeline_state` and `_dlt_loads` are one JSON file per row, `_dlt_loads` last,
//!   so a fresh worker restores state from the bucket exactly as from a database.
//!
//! `pipeline show`'s dashboard reads a dataset through [`FilesystemReader`] (feature `duckdb`): an
//! in-memory DuckDB snapshot of the current rows, kept by [`FilesystemReaders`] until the files change.
//!
//! Not transactional across tables: a package's tables switch one after another. A failed load is
//! retried idempotently: data file names are deterministic per load id, Delta commits carry the load id
//! in a `txn` and are skipped when already in the log. See `docs/destinations.md`.

mod delta;
mod files;
pub mod layout;
mod load;
#[cfg(feature = "duckdb")]
mod read;
mod store;

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};

use bytes::Bytes;
use pipeline_engine::load::{Capabilities, Destination, DestinationError, LoadInfo, LoadReport, StoredState, TableInfo};
use pipeline_engine::package::LoadPackage;
use pipeline_engine::schema::{DataType, MergeStrategy, Schema, WriteDisposition};
use pipeline_engine::state::StateRow;

pub use files::FileFormat;
#[cfg(feature = "duckdb")]
pub use read::{FilesystemReader, FilesystemReaders};
use store::Bucket;

const KIND: &str = "filesystem";

/// Which tables are Delta tables (dlt's `table_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Merge and replace tables are Delta tables, append tables plain files (the default).
    Auto,
    /// Every table is a Delta table (`table_format = "delta"`).
    Delta,
}

/// Where `bucket_url` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory (absolute).
    Local(PathBuf),
    /// An S3 bucket and a key prefix (no leading or trailing `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
}

/// `[destination.filesystem.credentials]`, as dlt names them. `Debug` shows whether a secret is set,
/// never its value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Credentials {
    /// `aws_access_key_id`.
    pub aws_access_key_id: Option<String>,
    /// `aws_secret_access_key` (secret).
    pub aws_secret_access_key: Option<String>,
    /// `aws_session_token` (secret).
    pub aws_session_token: Option<String>,
    /// `region_name` (default `us-east-1`).
    pub region_name: Option<String>,
    /// `endpoint_url` for S3-compatible servers (MinIO, moto, …): `https://…`, or `http://` to loopback.
    pub endpoint_url: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("aws_access_key_id", &self.aws_access_key_id)
            .field("aws_secret_access_key", &self.aws_secret_access_key.as_ref().map(|_| "***"))
            .field("aws_session_token", &self.aws_session_token.as_ref().map(|_| "***"))
            .field("region_name", &self.region_name)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// Settings of the filesystem destination.
#[derive(Debug, Clone)]
pub struct FilesystemConfig {
    /// `bucket_url` as configured.
    pub bucket_url: String,
    /// Where relative local paths start (the project directory).
    pub base_dir: PathBuf,
    /// Dataset name: the folder under the bucket.
    pub dataset_name: String,
    /// S3 credentials and endpoint (unused for local paths).
    pub credentials: S3Credentials,
    /// Format of plain (non-Delta) tables' files; Delta tables are always Parquet.
    pub loader_file_format: FileFormat,
    /// Which tables are Delta tables.
    pub table_format: TableFormat,
}

impl FilesystemConfig {
    /// Settings for `bucket_url` and a dataset, with defaults (Parquet, Delta for merge and replace).
    pub fn new(bucket_url: impl Into<String>, dataset_name: impl Into<String>) -> Self {
        FilesystemConfig {
            bucket_url: bucket_url.into(),
            base_dir: PathBuf::from("."),
            dataset_name: dataset_name.into(),
            credentials: S3Credentials::default(),
            loader_file_format: FileFormat::Parquet,
            table_format: TableFormat::Auto,
        }
    }

    /// Parse `bucket_url`.
    pub fn location(&self) -> Result<Location, DestinationError> {
        parse_bucket_url(&self.bucket_url, &self.base_dir)
    }

    /// `bucket_url` as a URL without credentials (`file:///abs/dir`, `s3://bucket/prefix`), for messages
    /// and the destination's identity. Never contacts the bucket.
    pub fn display_url(&self) -> String {
        match self.location() {
            Ok(Location::Local(dir)) => {
                let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
                url::Url::from_directory_path(&dir).map(|u| u.to_string().trim_end_matches('/').to_string()).unwrap_or_else(|()| dir.display().to_string())
            }
            Ok(Location::S3 { bucket, prefix }) if prefix.is_empty() => format!("s3://{bucket}"),
            Ok(Location::S3 { bucket, prefix }) => format!("s3://{bucket}/{prefix}"),
            Err(_) => self.bucket_url.clone(),
        }
    }

    /// Check the settings without touching the bucket.
    pub fn validate(&self) -> Result<(), DestinationError> {
        let location = self.location()?;
        if let Some(e) = &self.credentials.endpoint_url {
            check_endpoint(e)?;
        }
        if matches!(location, Location::S3 { .. }) && self.credentials.aws_access_key_id.is_some() != self.credentials.aws_secret_access_key.is_some() {
            return Err(DestinationError::new(
                KIND,
                "set both aws_access_key_id and aws_secret_access_key under [destination.filesystem.credentials], or neither (then the AWS_* environment variables are used)",
            ));
        }
        Ok(())
    }

    /// The destination (the bucket is opened on first use).
    pub fn build(&self) -> Result<FilesystemDestination, DestinationError> {
        self.validate()?;
        Ok(FilesystemDestination { config: self.clone(), bucket: None })
    }

    /// Whether a table of this disposition is a Delta table.
    fn is_delta(&self, disposition: WriteDisposition) -> bool {
        self.table_format == TableFormat::Delta || disposition != WriteDisposition::Append
    }
}

/// Parse `bucket_url`: `s3://bucket[/prefix]`, `file:///abs/dir`, or a local path (relative to `base`).
pub fn parse_bucket_url(raw: &str, base: &FsPath) -> Result<Location, DestinationError> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "bucket_url" {
        return Err(DestinationError::new(
            KIND,
            "bucket_url is not set: set bucket_url under [destination.filesystem] in .dlt/config.toml or DESTINATION__FILESYSTEM__BUCKET_URL (a local path, file:///abs/dir or s3://bucket/prefix)",
        ));
    }
    if let Some(rest) = raw.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains('@') || bucket.contains(':') {
            return Err(DestinationError::new(KIND, format!("bucket_url `{raw}` has no valid bucket name: expected s3://bucket/prefix (credentials go under [destination.filesystem.credentials])")));
        }
        return Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() });
    }
    if raw.starts_with("file://") {
        let url = url::Url::parse(raw).map_err(|e| DestinationError::new(KIND, format!("bucket_url `{raw}` is not a file URL: {e}")))?;
        let path = url.to_file_path().map_err(|()| DestinationError::new(KIND, format!("bucket_url `{raw}` is not a local file URL: expected file:///absolute/path")))?;
        return Ok(Location::Local(path));
    }
    if let Some((scheme, _)) = raw.split_once("://") {
        return Err(DestinationError::new(
            KIND,
            format!("bucket_url scheme `{scheme}://` is not supported: use a local path, file:///abs/dir or s3://bucket/prefix (S3-compatible servers through endpoint_url)"),
        ));
    }
    let path = FsPath::new(raw);
    Ok(Location::Local(if path.is_absolute() { path.to_path_buf() } else { base.join(path) }))
}

/// `endpoint_url`: an https URL, or http to a loopback host (a local S3-compatible server); no user info.
fn check_endpoint(raw: &str) -> Result<(), DestinationError> {
    let url = url::Url::parse(raw.trim()).map_err(|e| DestinationError::new(KIND, format!("credentials.endpoint_url is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DestinationError::new(KIND, "credentials.endpoint_url carries a user name or password: put the keys in aws_access_key_id and aws_secret_access_key"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(DestinationError::new(KIND, "credentials.endpoint_url has no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(DestinationError::new(
            KIND,
            "credentials.endpoint_url is plain http to a host that is not loopback (data would travel unencrypted): use https, or http only for a server on 127.0.0.1",
        )),
        other => Err(DestinationError::new(KIND, format!("credentials.endpoint_url has the scheme {other:?}; expected https (or http to loopback)"))),
    }
}

/// The filesystem destination; see the module docs.
#[derive(Debug)]
pub struct FilesystemDestination {
    config: FilesystemConfig,
    bucket: Option<Bucket>,
}

impl FilesystemDestination {
    /// The settings.
    pub fn config(&self) -> &FilesystemConfig {
        &self.config
    }

    fn bucket(&mut self) -> Result<Bucket, DestinationError> {
        if self.bucket.is_none() {
            self.bucket = Some(Bucket::open(&self.config.location()?, &self.config.credentials)?);
        }
        self.bucket.clone().ok_or_else(|| DestinationError::new(KIND, "internal error: the bucket is not open"))
    }

    fn ds(&self) -> &str {
        &self.config.dataset_name
    }

    /// Names of the table folders of the dataset (data and bookkeeping).
    async fn folders(&mut self) -> Result<Vec<String>, DestinationError> {
        let b = self.bucket()?;
        let mut names = b.folders(&b.path(&[self.ds()])).await?;
        names.sort();
        Ok(names)
    }

    /// Bookkeeping files of one table: `(name part, load id, hash part, path)`.
    async fn bookkeeping(&mut self, table: &str) -> Result<Vec<(String, String, String, object_store::path::Path)>, DestinationError> {
        let b = self.bucket()?;
        let folder = b.path(&[self.ds(), table]);
        let mut out = Vec::new();
        for meta in b.list(&folder).await? {
            if let Some((name, id, hash)) = meta.location.filename().and_then(layout::parse_bookkeeping) {
                out.push((name, id, hash, meta.location.clone()));
            }
        }
        out.sort_by(|a, b| layout::load_id_order(&b.1, &a.1));
        Ok(out)
    }

    async fn read_json(&mut self, path: &object_store::path::Path) -> Result<Option<serde_json::Value>, DestinationError> {
        let b = self.bucket()?;
        let Some(bytes) = b.get(path).await? else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DestinationError::new(KIND, format!("{path} is not JSON ({e}); delete the file if it is not dlt's")))
    }

    /// Load ids with a `_dlt_loads` file.
    async fn completed_loads(&mut self) -> Result<HashSet<String>, DestinationError> {
        Ok(self.bookkeeping(layout::LOADS).await?.into_iter().map(|(_, id, _, _)| id).collect())
    }

    /// The current rows of a data table: a Delta table's current version, or every Parquet file of a
    /// plain table (`None`: no such table). For tests and tools; JSONL files are not read back.
    pub async fn read_table(&mut self, table: &str) -> Result<Option<Vec<arrow::array::RecordBatch>>, DestinationError> {
        let b = self.bucket()?;
        let ds = self.ds().to_string();
        let lake = delta::LakeTable::open(&b, &ds, table).await?;
        let paths: Vec<object_store::path::Path> = if lake.exists() {
            lake.active_files().await?.iter().map(|f| load::file_path(&b, &ds, table, &f.path)).collect()
        } else {
            let all = b.list(&b.path(&[&ds, table])).await?;
            if all.is_empty() {
                return Ok(None);
            }
            all.into_iter().map(|m| m.location).filter(|p| p.filename().is_some_and(|n| n.ends_with(".parquet"))).collect()
        };
        // A Delta table's files are read with the table's columns (older files lack newer ones).
        let target = if lake.exists() { Some(files::arrow_schema(&lake.columns()?)) } else { None };
        let mut out = Vec::new();
        for path in paths {
            let bytes = b.get(&path).await?.ok_or_else(|| DestinationError::new(KIND, format!("{path} disappeared while reading")))?;
            for batch in files::read_parquet(bytes, None).map_err(|e| DestinationError::new(KIND, format!("reading {path}: {e}")))? {
                out.push(match &target {
                    Some(t) => files::conform(&batch, t).map_err(|e| DestinationError::new(KIND, format!("reading {path}: {e}")))?,
                    None => batch,
                });
            }
        }
        Ok(Some(out))
    }

    /// Column names of a data table: a Delta table's schema, or the union of its Parquet files'.
    pub async fn table_columns(&mut self, table: &str) -> Result<Vec<String>, DestinationError> {
        let b = self.bucket()?;
        let ds = self.ds().to_string();
        let lake = delta::LakeTable::open(&b, &ds, table).await?;
        if lake.exists() {
            return Ok(lake.columns()?.into_iter().map(|(n, _)| n).collect());
        }
        let mut cols: Vec<String> = Vec::new();
        for batch in self.read_table(table).await?.unwrap_or_default() {
            for f in batch.schema().fields() {
                if !cols.contains(f.name()) {
                    cols.push(f.name().clone());
                }
            }
        }
        Ok(cols)
    }

    /// Rows of one table folder: JSON files for bookkeeping tables, the Delta version's files, or every
    /// data file.
    async fn count_rows(&mut self, table: &str) -> Result<u64, DestinationError> {
        let b = self.bucket()?;
        if table.starts_with("_dlt_") {
            return Ok(self.bookkeeping(table).await?.len() as u64);
        }
        let ds = self.ds().to_string();
        let lake = delta::LakeTable::open(&b, &ds, table).await?;
        if lake.exists() {
            let mut n = 0;
            for f in lake.active_files().await? {
                n += match f.rows {
                    Some(r) => r,
                    None => load::parquet_rows(&b, &load::file_path(&b, &ds, table, &f.path), None).await?,
                };
            }
            return Ok(n);
        }
        let mut n = 0;
        for meta in b.list(&b.path(&[&ds, table])).await? {
            let name = meta.location.filename().unwrap_or_default();
            if name.ends_with(".parquet") {
                n += load::parquet_rows(&b, &meta.location, Some(meta.size)).await?;
            } else if name.ends_with(".jsonl.gz") {
                if let Some(bytes) = b.get(&meta.location).await? {
                    n += files::jsonl_rows(&bytes).map_err(|e| DestinationError::new(KIND, format!("reading {}: {e}", meta.location)))?;
                }
            }
        }
        Ok(n)
    }
}

#[async_trait::async_trait]
impl Destination for FilesystemDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn destination_type(&self) -> &'static str {
        "dlt.destinations.filesystem"
    }

    fn capabilities(&self) -> Capabilities {
        use DataType::*;
        Capabilities {
            write_dispositions: vec![WriteDisposition::Append, WriteDisposition::Replace, WriteDisposition::Merge],
            // Each table switches atomically (a Delta commit, or whole new files), a package's tables one
            // after another; a retried package is idempotent.
            transactional: false,
            max_identifier_len: None,
            // `time` is stored as text in Delta tables (Delta has no time type).
            types: vec![Text, Bigint, Double, Bool, Timestamp, Date, Time, Decimal, Json, Binary],
            // Merge is copy-on-write in this process, not inside a database.
            native_merge: false,
            // delete-insert and upsert with dlt's hard_delete/dedup_sort hints (copy-on-write); not scd2.
            merge_strategies: vec![MergeStrategy::DeleteInsert, MergeStrategy::Upsert],
            merge_hints: true,
            // Deletion detection (docs/deletions.md): copy-on-write on the Delta tables, hard or soft.
            reconcile: true,
        }
    }

    fn identity(&self) -> String {
        format!("{KIND}:{}", self.config.display_url())
    }

    async fn disconnect(&mut self) {
        self.bucket = None;
    }

    async fn health_check(&mut self) -> Result<(), DestinationError> {
        let b = self.bucket()?;
        b.folders(&b.path(&[self.ds()])).await.map(|_| ())
    }

    async fn existing_tables(&mut self) -> Result<Vec<String>, DestinationError> {
        self.folders().await
    }

    async fn stored_state(&mut self, pipeline_name: &str) -> Result<Option<StoredState>, DestinationError> {
        let completed = self.completed_loads().await?;
        for (name, load_id, _, path) in self.bookkeeping(layout::STATE).await? {
            if name != pipeline_name || !completed.contains(&load_id) {
                continue;
            }
            let b = self.bucket()?;
            let Some(bytes) = b.get(&path).await? else { continue };
            let text = String::from_utf8_lossy(&bytes);
            let (row, load_id) = layout::parse_state(&text).ok_or_else(|| {
                DestinationError::new(KIND, format!("the state file {path} is not dlt's state row; delete it to fall back to the previous state"))
            })?;
            return Ok(Some(StoredState { row, load_id }));
        }
        Ok(None)
    }

    async fn stored_schema(&mut self, schema_name: &str) -> Result<Option<Schema>, DestinationError> {
        let files = self.bookkeeping(layout::VERSION).await?;
        let Some((_, _, _, path)) = files.into_iter().find(|(name, _, _, _)| name == schema_name) else { return Ok(None) };
        let Some(v) = self.read_json(&path).await? else { return Ok(None) };
        let text = v.get("schema").and_then(|s| s.as_str()).unwrap_or_default();
        let schema: serde_json::Value =
            serde_json::from_str(text).map_err(|e| DestinationError::new(KIND, format!("the stored schema in {path} is not JSON: {e}")))?;
        Ok(Schema::from_dlt_json(&schema))
    }

    async fn is_loaded(&mut self, load_id: &str) -> Result<bool, DestinationError> {
        Ok(self.completed_loads().await?.contains(load_id))
    }

    async fn load_package(&mut self, package: &LoadPackage) -> Result<LoadReport, DestinationError> {
        let bucket = self.bucket()?;
        let catalog_tables = self.folders().await?;
        load::Loader::new(&self.config, bucket).load(package, &catalog_tables).await
    }

    async fn tables(&mut self) -> Result<Vec<TableInfo>, DestinationError> {
        let mut out = Vec::new();
        for name in self.folders().await? {
            let rows = self.count_rows(&name).await?;
            out.push(TableInfo { name, rows });
        }
        Ok(out)
    }

    async fn recent_loads(&mut self, limit: usize) -> Result<Vec<LoadInfo>, DestinationError> {
        let files = self.bookkeeping(layout::LOADS).await?;
        let mut out = Vec::new();
        for (_, load_id, _, path) in files.into_iter().take(limit) {
            let v = self.read_json(&path).await?.unwrap_or_default();
            out.push(LoadInfo {
                load_id,
                status: v.get("status").and_then(|s| s.as_i64()).unwrap_or(0),
                inserted_at: v.get("inserted_at").and_then(|s| s.as_str()).unwrap_or_default().to_string(),
            });
        }
        Ok(out)
    }

    async fn drop_tables(&mut self, tables: &[String], new_schema: &Schema, state: &StateRow, load_id: &str) -> Result<(), DestinationError> {
        let bucket = self.bucket()?;
        let catalog_tables = self.folders().await?;
        load::Loader::new(&self.config, bucket).drop(tables, new_schema, state, load_id, &catalog_tables).await
    }
}

/// Bytes of a small JSON text.
fn json_bytes(text: String) -> Bytes {
    Bytes::from(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls_as_dlt_spells_them() {
        let base = FsPath::new("/project");
        assert_eq!(parse_bucket_url("s3://b/some/prefix/", base).expect("s3"), Location::S3 { bucket: "b".into(), prefix: "some/prefix".into() });
        assert_eq!(parse_bucket_url("s3://b", base).expect("s3"), Location::S3 { bucket: "b".into(), prefix: String::new() });
        assert_eq!(parse_bucket_url("file:///data/lake", base).expect("file"), Location::Local("/data/lake".into()));
        assert_eq!(parse_bucket_url("lake", base).expect("relative"), Location::Local("/project/lake".into()));
        for bad in ["", "bucket_url", "gs://b/p", "s3://", "s3://key:secret@b/p"] {
            assert!(parse_bucket_url(bad, base).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_are_https_or_loopback_http() {
        for ok in ["https://s3.example.com", "http://127.0.0.1:9000", "http://localhost:5000/"] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in ["http://minio.internal:9000", "ftp://127.0.0.1", "http://key:secret@127.0.0.1:9000", "not a url"] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_show() {
        let mut c = FilesystemConfig::new("s3://b/p", "d");
        c.credentials = S3Credentials {
            aws_access_key_id: Some("AKIAEXAMPLE".into()),
            aws_secret_access_key: Some("very-secret-key".into()),
            aws_session_token: Some("token-value".into()),
            region_name: Some("eu-central-1".into()),
            endpoint_url: None,
        };
        let shown = format!("{c:?} {}", c.display_url());
        assert!(!shown.contains("very-secret-key") && !shown.contains("token-value"), "{shown}");
        assert_eq!(c.display_url(), "s3://b/p");
        let d = c.build().expect("valid");
        assert_eq!(d.identity(), "filesystem:s3://b/p");
        c.credentials.aws_secret_access_key = None;
        assert!(c.validate().is_err(), "a key id without its secret is refused");
    }
}
