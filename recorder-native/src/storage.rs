//! Where finished recordings go. By default they stay in the recordings directory. With an
//! `[s3]` section they are uploaded to an S3-compatible object store (AWS S3, MinIO, R2, ...)
//! through `object_store`, multipart for large files, and removed locally once their job's
//! final state is recorded.
//!
//! An upload is retried with backoff for `retry_seconds`; until it succeeds the file stays on
//! disk, and a service that dies mid-upload uploads again when it concludes the job on its next
//! start. A recording is never deleted before the store has it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{Attribute, Attributes, BackoffConfig, ObjectStore, RetryConfig};
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

/// The `[s3]` section: an S3-compatible bucket for finished recordings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The endpoint of an S3-compatible store (path-style requests); AWS when unset.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when unset, which most S3-compatible stores accept).
    #[serde(default)]
    pub region: Option<String>,
    /// A key prefix, e.g. `edgemeet/recordings`. Keys go on with the node's `node_id`, so that
    /// nodes sharing a bucket never write over each other's recordings (a job id retried on
    /// another node after the first died, say).
    #[serde(default)]
    pub prefix: String,
    /// The access key; `AWS_ACCESS_KEY_ID` when unset.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret key; `AWS_SECRET_ACCESS_KEY` when unset. Never logged.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Keep the local file after a successful upload.
    #[serde(default)]
    pub keep_local: bool,
    /// How long to keep retrying an upload before giving up (the file then stays local).
    #[serde(default = "default_retry_seconds")]
    pub retry_seconds: f64,
}

fn default_retry_seconds() -> f64 {
    600.0
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("keep_local", &self.keep_local)
            .field("retry_seconds", &self.retry_seconds)
            .finish_non_exhaustive()
    }
}

/// Why an upload (or the store's set-up) failed. Never carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The `[s3]` settings cannot make a client.
    #[error("the [s3] settings are unusable: {0}")]
    Config(String),
    /// Reading the local file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The local file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The object store refused or could not be reached.
    #[error("uploading to s3://{bucket}/{key}: {message}")]
    Upload {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// What the store said.
        message: String,
    },
}

/// Where a job's outputs end up.
#[derive(Clone)]
pub enum Storage {
    /// In the recordings directory, where the worker wrote them.
    Local,
    /// In an S3-compatible bucket.
    S3(Arc<S3Storage>),
}

/// An S3-compatible bucket and how to use it.
pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: ObjectPath,
    keep_local: bool,
    retry: Duration,
}

impl Storage {
    /// The storage the config asks for, for the node `node_id`.
    pub fn from_config(s3: Option<&S3Config>, node_id: &str) -> Result<Storage, StorageError> {
        match s3 {
            None => Ok(Storage::Local),
            Some(config) => Ok(Storage::S3(Arc::new(S3Storage::new(config, node_id)?))),
        }
    }

    /// Moves a job's finished output (a file, or a directory of track files) to its final place
    /// and returns that place: the local path, or `s3://bucket/key` (a key prefix ending in `/`
    /// for a directory). Local files are removed only by [`Storage::release`].
    pub async fn store(&self, job_id: &str, output: &Path) -> Result<String, StorageError> {
        match self {
            Storage::Local => Ok(output.display().to_string()),
            Storage::S3(s3) => s3.upload_with_retries(job_id, output).await,
        }
    }

    /// Removes the local copy of an output that is safely stored elsewhere.
    pub fn release(&self, output: &Path) {
        let Storage::S3(s3) = self else { return };
        if s3.keep_local {
            return;
        }
        let removed = if output.is_dir() {
            std::fs::remove_dir_all(output)
        } else {
            std::fs::remove_file(output)
        };
        if let Err(e) = removed {
            tracing::warn!(path = %output.display(), error = %e, "cannot remove an uploaded recording");
        }
    }

    /// Whether outputs leave this machine.
    pub fn is_remote(&self) -> bool {
        matches!(self, Storage::S3(_))
    }
}

impl S3Storage {
    /// A client for the configured bucket (credentials from the config, else the environment),
    /// writing under `<prefix>/<node_id>/`.
    pub fn new(config: &S3Config, node_id: &str) -> Result<S3Storage, StorageError> {
        // A few quick retries per request spare a long multipart upload from starting over for
        // one lost part; outages are the outer, longer retry's (see `upload_with_retries`).
        let per_request = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_retry(per_request)
            .with_bucket_name(&config.bucket)
            .with_region(config.region.as_deref().unwrap_or("us-east-1"));
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Config(e.to_string()))?;
        let prefix = ObjectPath::parse(config.prefix.trim_matches('/'))
            .map_err(|e| StorageError::Config(format!("prefix: {e}")))?
            .join(PathPart::from(node_id));
        Ok(S3Storage {
            store: Arc::new(store),
            bucket: config.bucket.clone(),
            prefix,
            keep_local: config.keep_local,
            retry: Duration::from_secs_f64(config.retry_seconds.max(0.0)),
        })
    }

    fn key(&self, parts: &[&str]) -> ObjectPath {
        let mut key = self.prefix.clone();
        for part in parts {
            key = key.join(PathPart::from(*part));
        }
        key
    }

    async fn upload_with_retries(
        &self,
        job_id: &str,
        output: &Path,
    ) -> Result<String, StorageError> {
        let deadline = tokio::time::Instant::now() + self.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .without_max_times();
        (|| self.upload(job_id, output))
            .retry(backoff)
            .when(|e| {
                matches!(e, StorageError::Upload { .. }) && tokio::time::Instant::now() < deadline
            })
            .notify(|e, delay| tracing::warn!(error = %e, retry_in = ?delay, "upload failed"))
            .await
    }

    /// Uploads once: a composite to `<prefix>/<node_id>/<job_id>.mp4`, a tracks directory's
    /// files to `<prefix>/<node_id>/<job_id>/<file>`.
    async fn upload(&self, job_id: &str, output: &Path) -> Result<String, StorageError> {
        let read_error = |source| StorageError::Read {
            path: output.to_owned(),
            source,
        };
        if output.is_dir() {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(output).map_err(read_error)? {
                let entry = entry.map_err(read_error)?;
                if entry.file_type().map_err(read_error)?.is_file() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            names.sort();
            for name in &names {
                self.put_file(&output.join(name), self.key(&[job_id, name]))
                    .await?;
            }
            Ok(format!("s3://{}/{}/", self.bucket, self.key(&[job_id])))
        } else {
            let name = output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("{job_id}.mp4"));
            let key = self.key(&[&name]);
            self.put_file(output, key.clone()).await?;
            Ok(format!("s3://{}/{key}", self.bucket))
        }
    }

    /// Streams one file into one object (multipart above a few MiB).
    async fn put_file(&self, file: &Path, key: ObjectPath) -> Result<(), StorageError> {
        let upload_error = |message: String| StorageError::Upload {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            message,
        };
        let mut reader =
            tokio::fs::File::open(file)
                .await
                .map_err(|source| StorageError::Read {
                    path: file.to_owned(),
                    source,
                })?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type(file).into());
        let mut writer =
            BufWriter::new(self.store.clone(), key.clone()).with_attributes(attributes);
        if let Err(e) = tokio::io::copy(&mut reader, &mut writer).await {
            // Cleans up a multipart upload already begun. (A failed completion aborts its own;
            // parts left by a lost connection are the bucket lifecycle rule's to expire.)
            let _ = writer.abort().await;
            return Err(upload_error(e.to_string()));
        }
        writer
            .shutdown()
            .await
            .map_err(|e| upload_error(e.to_string()))?;
        tracing::info!(key = %key, "recording uploaded");
        Ok(())
    }
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("mp4") => "video/mp4",
        Some("mkv") => "video/x-matroska",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: &str) -> S3Config {
        toml::from_str(&format!(
            r#"
            bucket = "recordings"
            endpoint = "http://127.0.0.1:9"
            prefix = "{prefix}"
            access_key_id = "AKIDEXAMPLE"
            secret_access_key = "very-secret-key"
            "#
        ))
        .expect("parse")
    }

    #[test]
    fn keys_sit_under_the_prefix_and_encode_odd_names() {
        let s3 = S3Storage::new(&config("/edgemeet/rec/"), "rec-1").expect("client");
        assert_eq!(
            s3.key(&["job-1.mp4"]).as_ref(),
            "edgemeet/rec/rec-1/job-1.mp4"
        );
        assert_eq!(
            s3.key(&["job-1", "a/b_TR 1.mkv"]).as_ref(),
            "edgemeet/rec/rec-1/job-1/a%2Fb_TR 1.mkv"
        );
        let bare = S3Storage::new(&config(""), "rec/2").expect("client");
        assert_eq!(bare.key(&["j.mp4"]).as_ref(), "rec%2F2/j.mp4");
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let shown = format!("{:?}", config("p"));
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(shown.contains("recordings"));
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_without_leaking_the_secret() {
        let mut settings = config("p");
        settings.retry_seconds = 0.0;
        let storage = Storage::from_config(Some(&settings), "rec-1").expect("client");
        let dir = std::env::temp_dir().join(format!("storage-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("job-1.mp4");
        std::fs::write(&file, b"not really an mp4").expect("write");
        let err = storage.store("job-1", &file).await.expect_err("no store");
        let message = err.to_string();
        assert!(
            message.contains("s3://recordings/p/rec-1/job-1.mp4"),
            "{message}"
        );
        assert!(!message.contains("very-secret-key"), "{message}");
        assert!(file.exists(), "a failed upload must keep the file");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
