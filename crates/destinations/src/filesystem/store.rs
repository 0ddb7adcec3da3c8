//! The bucket behind `bucket_url`: one `object_store` instance (the local file system or an S3 bucket)
//! and the path of `bucket_url` inside it. The same instance is handed to delta-rs for the Delta logs,
//! so there is one client, one set of credentials and no second storage stack.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use pipeline_engine::load::DestinationError;
use url::Url;

use super::{Location, S3Credentials, KIND};

/// An opened bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The store, rooted at `/` (local) or at the S3 bucket.
    pub root: Arc<dyn ObjectStore>,
    /// `bucket_url`'s path inside [`Bucket::root`].
    pub base: Path,
    /// `bucket_url` as a URL ending in `/` (`file:///abs/dir/`, `s3://bucket/prefix/`).
    pub url: Url,
}

/// An error of the store, with what was being done and what to check.
pub fn store_err(what: &str, e: object_store::Error) -> DestinationError {
    let hint = match &e {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            "; check the credentials under [destination.filesystem.credentials] (aws_access_key_id, aws_secret_access_key) and the bucket's permissions"
        }
        object_store::Error::NotFound { .. } => "; the object is gone (removed by another process?)",
        _ => "; check that bucket_url is reachable and writable, then rerun (a retried load is idempotent)",
    };
    DestinationError::new(KIND, format!("{what}: {e}{hint}")).with_source(e)
}

impl Bucket {
    /// Open the store of a location. Local directories are created; S3 is not contacted yet.
    pub fn open(location: &Location, credentials: &S3Credentials) -> Result<Bucket, DestinationError> {
        match location {
            Location::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    DestinationError::new(KIND, format!("cannot create the bucket directory {}: {e}; check bucket_url and its permissions", dir.display()))
                        .with_source(e)
                })?;
                let dir = std::fs::canonicalize(dir).map_err(|e| {
                    DestinationError::new(KIND, format!("cannot resolve the bucket directory {}: {e}", dir.display())).with_source(e)
                })?;
                let base = Path::from_absolute_path(&dir).map_err(|e| {
                    DestinationError::new(KIND, format!("the bucket directory {} is not a valid object path: {e}", dir.display()))
                })?;
                let url = Url::from_directory_path(&dir)
                    .map_err(|()| DestinationError::new(KIND, format!("the bucket directory {} has no file:// URL", dir.display())))?;
                // Deleting a table's last file removes its folder too, so a dropped table leaves no trace.
                let root: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new().with_automatic_cleanup(true));
                Ok(Bucket { root, base, url })
            }
            Location::S3 { bucket, prefix } => {
                // Transient errors are retried for up to a minute (object_store's default is three): a
                // bucket that stays unreachable fails the load soon, and the next run resumes it.
                let retry = object_store::RetryConfig { max_retries: 6, retry_timeout: std::time::Duration::from_secs(60), ..Default::default() };
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_retry(retry)
                    .with_bucket_name(bucket)
                    .with_region(credentials.region_name.clone().unwrap_or_else(|| "us-east-1".to_string()));
                if let Some(k) = &credentials.aws_access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &credentials.aws_secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                if let Some(t) = &credentials.aws_session_token {
                    b = b.with_token(t);
                }
                if let Some(e) = &credentials.endpoint_url {
                    // Validated already: plain http only to a loopback endpoint.
                    b = b.with_endpoint(e.trim_end_matches('/')).with_allow_http(e.starts_with("http://"));
                }
                let store = b.build().map_err(|e| store_err("cannot configure the S3 client", e))?;
                let base = Path::from(prefix.as_str());
                let text = if prefix.is_empty() { format!("s3://{bucket}/") } else { format!("s3://{bucket}/{prefix}/") };
                let url = Url::parse(&text).map_err(|e| DestinationError::new(KIND, format!("bucket_url {text} is not a URL: {e}")))?;
                Ok(Bucket { root: Arc::new(store), base, url })
            }
        }
    }

    /// A path under the bucket, from `/`-separated parts (each a dataset, table or file name).
    pub fn path(&self, parts: &[&str]) -> Path {
        parts.iter().fold(self.base.clone(), |p, part| p.join(*part))
    }

    /// The URL of a folder under the bucket (ends in `/`).
    pub fn folder_url(&self, parts: &[&str]) -> Result<Url, DestinationError> {
        let rel: String = parts.iter().map(|p| format!("{p}/")).collect();
        self.url.join(&rel).map_err(|e| DestinationError::new(KIND, format!("cannot form the URL of {rel} under {}: {e}", self.url)))
    }

    /// Write an object (replacing it).
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), DestinationError> {
        self.root.put(path, PutPayload::from_bytes(bytes)).await.map(|_| ()).map_err(|e| store_err(&format!("writing {path}"), e))
    }

    /// Write an object unless it exists; `false` if it did.
    pub async fn put_if_absent(&self, path: &Path, bytes: Bytes) -> Result<bool, DestinationError> {
        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.root.put_opts(path, PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(store_err(&format!("writing {path}"), e)),
        }
    }

    /// Read an object; `None` if it does not exist.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>, DestinationError> {
        match self.root.get(path).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|e| store_err(&format!("reading {path}"), e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(&format!("reading {path}"), e)),
        }
    }

    /// Every object under a folder (recursively), with its size.
    pub async fn list(&self, folder: &Path) -> Result<Vec<object_store::ObjectMeta>, DestinationError> {
        self.root.list(Some(folder)).try_collect().await.map_err(|e| store_err(&format!("listing {folder}"), e))
    }

    /// The names of the sub-folders of a folder (tables of a dataset).
    pub async fn folders(&self, folder: &Path) -> Result<Vec<String>, DestinationError> {
        match self.root.list_with_delimiter(Some(folder)).await {
            Ok(r) => Ok(r.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(store_err(&format!("listing {folder}"), e)),
        }
    }

    /// Delete objects; ones already gone are fine.
    pub async fn delete_all(&self, paths: Vec<Path>) -> Result<(), DestinationError> {
        if paths.is_empty() {
            return Ok(());
        }
        let stream = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.root.delete_stream(stream);
        while let Some(r) = futures::StreamExt::next(&mut results).await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err("deleting files", e)),
            }
        }
        Ok(())
    }
}
