//! Where finished recordings go. By default they stay in the recordings directory. With an
//! `[s3]` section they are uploaded to an S3-compatible object store (AWS S3, MinIO, R2, ...)
//! through `object_store`, multipart for large files, and removed locally once their job's
//! final state is recorded.
//!
//! An upload is retried with backoff for `retry_seconds`; until it succeeds the file stays on
//! disk, and a service that dies mid-upload uploads again when it concludes the job on its next
//! start. A recording is never deleted before the store has it.
//!
//! Objects are named by job id, so an id started again once its first job was forgotten would
//! name the first job's objects. Every object carries its job's creation time
//! ([`JOB_MARK`]), and an upload never writes over an object of another job: the job then keeps
//! its recording locally, and says so.
//!
//! A finished recording in the bucket is handed out as a presigned GET URL valid for a few
//! minutes ([`Storage::presigned_get`]), and deleted on request ([`Storage::delete_stored`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::signer::Signer;
use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, GetOptions, ObjectStore, ObjectStoreExt,
    RetryConfig,
};
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

/// The user metadata (`x-amz-meta-edgemeet-job-created-ms`) each uploaded object carries: its
/// job's `created_ms`. An upload tried again (after a restart) finds its own objects by it, and
/// never writes over those of an earlier job with the same id.
pub const JOB_MARK: &str = "edgemeet-job-created-ms";

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
    /// The bucket holds the recording of an earlier job with this id: it is not written over.
    #[error(
        "{location} holds the recording of an earlier job with this id; nothing was uploaded over it"
    )]
    Taken {
        /// Where the earlier recording is (`s3://bucket/key`, a prefix ending in `/` for tracks).
        location: String,
    },
    /// The bucket could not be asked whether it holds an earlier recording.
    #[error("looking for an earlier recording at {location}: {message}")]
    Lookup {
        /// Where it looked.
        location: String,
        /// What the store said.
        message: String,
    },
    /// A job's recorded location is not one of this node's objects (no `[s3]`, another
    /// bucket, or not the job's own key): it is neither handed out nor deleted.
    #[error("{location} is not a recording in this node's bucket")]
    Foreign {
        /// The location.
        location: String,
    },
    /// The store could not be asked for the object, or could not sign a URL for it.
    #[error("reaching {location}: {message}")]
    Fetch {
        /// The object.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// Deleting the object(s) failed.
    #[error("deleting {location}: {message}")]
    Delete {
        /// The object, or the prefix of a directory's objects.
        location: String,
        /// What the store said.
        message: String,
    },
}

/// A job's output in its final place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Where it is: the local path, or `s3://bucket/key` (a key prefix ending in `/` for a
    /// directory).
    pub location: String,
    /// Its size in bytes: the file's, or the sum of the directory's files (what was uploaded).
    pub bytes: u64,
}

/// The size in bytes of a finished output: a file's, or the sum of the files directly in a
/// directory of track files (the ones an upload sends).
pub fn output_bytes(output: &Path) -> std::io::Result<u64> {
    let metadata = std::fs::metadata(output)?;
    if !metadata.is_dir() {
        return Ok(metadata.len());
    }
    let mut total: u64 = 0;
    for entry in std::fs::read_dir(output)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            total = total.saturating_add(entry.metadata()?.len());
        }
    }
    Ok(total)
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
    /// Signs download URLs: the same client as `store` (none for the in-memory test bucket).
    signer: Option<Arc<dyn Signer>>,
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
    /// and returns that place and its size: the local path, or `s3://bucket/key` (a key prefix
    /// ending in `/` for a directory) and the bytes uploaded. `created_ms` is the job's: objects
    /// of another job with the same id are never written over ([`StorageError::Taken`]). Local
    /// files are removed only by [`Storage::release`].
    pub async fn store(
        &self,
        job_id: &str,
        created_ms: i64,
        output: &Path,
    ) -> Result<Stored, StorageError> {
        match self {
            Storage::Local => Ok(Stored {
                location: output.display().to_string(),
                bytes: output_bytes(output).map_err(|source| StorageError::Read {
                    path: output.to_owned(),
                    source,
                })?,
            }),
            Storage::S3(s3) => s3.upload_with_retries(job_id, created_ms, output).await,
        }
    }

    /// Where this storage already holds a recording of a job with this id, if it does: for a
    /// bucket, `<job_id>.mp4` or anything under `<job_id>/`. (The recordings directory is the
    /// supervisor's to look in.)
    pub async fn earlier_recording(&self, job_id: &str) -> Result<Option<String>, StorageError> {
        match self {
            Storage::Local => Ok(None),
            Storage::S3(s3) => s3.earlier_recording(job_id).await,
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

    /// A presigned GET URL, valid for `valid_for`, of job `job_id`'s composite recording at
    /// `location` (`s3://bucket/<prefix>/<node_id>/<job_id>.mp4`); `None` when the bucket holds
    /// no such object. The URL grants the object to whoever holds it: never logged.
    pub async fn presigned_get(
        &self,
        job_id: &str,
        location: &str,
        valid_for: Duration,
    ) -> Result<Option<String>, StorageError> {
        match self {
            Storage::Local => Err(StorageError::Foreign {
                location: location.to_owned(),
            }),
            Storage::S3(s3) => s3.presigned_get(job_id, location, valid_for).await,
        }
    }

    /// Deletes job `job_id`'s recording at `location`: the object of a composite, or every
    /// object under a tracks job's prefix (`.../<job_id>/`). Objects already gone are no
    /// error, so a deletion may be repeated.
    pub async fn delete_stored(&self, job_id: &str, location: &str) -> Result<(), StorageError> {
        match self {
            Storage::Local => Err(StorageError::Foreign {
                location: location.to_owned(),
            }),
            Storage::S3(s3) => s3.delete_stored(job_id, location).await,
        }
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
        let store = Arc::new(
            builder
                .build()
                .map_err(|e| StorageError::Config(e.to_string()))?,
        );
        let prefix = ObjectPath::parse(config.prefix.trim_matches('/'))
            .map_err(|e| StorageError::Config(format!("prefix: {e}")))?
            .join(PathPart::from(node_id));
        Ok(S3Storage {
            store: store.clone(),
            signer: Some(store),
            bucket: config.bucket.clone(),
            prefix,
            keep_local: config.keep_local,
            retry: crate::config::seconds(config.retry_seconds),
        })
    }

    fn key(&self, parts: &[&str]) -> ObjectPath {
        let mut key = self.prefix.clone();
        for part in parts {
            key = key.join(PathPart::from(*part));
        }
        key
    }

    /// The key of job `job_id`'s recording at `location` (`s3://<bucket>/<key>`, a key prefix
    /// ending in `/` for a tracks job), and whether it is such a prefix. Only a location in
    /// this bucket whose last part is the job's own (`<job_id>.mp4`, or `<job_id>/`) is taken:
    /// nothing else is handed out or deleted.
    fn job_key(&self, job_id: &str, location: &str) -> Result<(ObjectPath, bool), StorageError> {
        let foreign = || StorageError::Foreign {
            location: location.to_owned(),
        };
        let (bucket, key) = location
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(foreign)?;
        if bucket != self.bucket {
            return Err(foreign());
        }
        let (key, is_prefix) = match key.strip_suffix('/') {
            Some(dir) => (dir, true),
            None => (key, false),
        };
        let key = ObjectPath::parse(key).map_err(|_| foreign())?;
        let own_name = if is_prefix {
            job_id.to_owned()
        } else {
            format!("{job_id}.mp4")
        };
        if key.filename() != Some(own_name.as_str()) {
            return Err(foreign());
        }
        Ok((key, is_prefix))
    }

    async fn presigned_get(
        &self,
        job_id: &str,
        location: &str,
        valid_for: Duration,
    ) -> Result<Option<String>, StorageError> {
        let (key, is_prefix) = self.job_key(job_id, location)?;
        if is_prefix {
            return Err(StorageError::Foreign {
                location: location.to_owned(),
            });
        }
        let fetch_error = |message: String| StorageError::Fetch {
            location: location.to_owned(),
            message,
        };
        if self
            .head(&key)
            .await
            .map_err(|e| fetch_error(e.to_string()))?
            .is_none()
        {
            return Ok(None);
        }
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| fetch_error("this store cannot sign URLs".into()))?;
        let url = signer
            .signed_url(reqwest::Method::GET, &key, valid_for)
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        Ok(Some(url.to_string()))
    }

    async fn delete_stored(&self, job_id: &str, location: &str) -> Result<(), StorageError> {
        let (key, is_prefix) = self.job_key(job_id, location)?;
        let delete_error = |e: object_store::Error| StorageError::Delete {
            location: location.to_owned(),
            message: e.to_string(),
        };
        let keys = if is_prefix {
            self.store
                .list_with_delimiter(Some(&key))
                .await
                .map_err(delete_error)?
                .objects
                .into_iter()
                .map(|object| object.location)
                .collect()
        } else {
            vec![key]
        };
        for key in &keys {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(delete_error(e)),
            }
        }
        tracing::info!(job = %job_id, %location, objects = keys.len(), "stored recording deleted");
        Ok(())
    }

    async fn upload_with_retries(
        &self,
        job_id: &str,
        created_ms: i64,
        output: &Path,
    ) -> Result<Stored, StorageError> {
        // The config keeps `retry` within a week; should it be more, a week it is.
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(self.retry)
            .unwrap_or_else(|| now + Duration::from_secs(604_800));
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .without_max_times();
        (|| self.upload(job_id, created_ms, output))
            .retry(backoff)
            .when(|e| {
                matches!(e, StorageError::Upload { .. }) && tokio::time::Instant::now() < deadline
            })
            .notify(|e, delay| tracing::warn!(error = %e, retry_in = ?delay, "upload failed"))
            .await
    }

    /// Uploads once: a composite to `<prefix>/<node_id>/<job_id>.mp4`, a tracks directory's
    /// files to `<prefix>/<node_id>/<job_id>/<file>`. Refuses, before writing anything, when an
    /// object there is not this job's (`created_ms`).
    async fn upload(
        &self,
        job_id: &str,
        created_ms: i64,
        output: &Path,
    ) -> Result<Stored, StorageError> {
        let read_error = |source| StorageError::Read {
            path: output.to_owned(),
            source,
        };
        let mark = created_ms.to_string();
        if output.is_dir() {
            let dir = self.key(&[job_id]);
            let location = format!("s3://{}/{dir}/", self.bucket);
            let listed = self
                .store
                .list_with_delimiter(Some(&dir))
                .await
                .map_err(|e| StorageError::Upload {
                    bucket: self.bucket.clone(),
                    key: format!("{dir}/"),
                    message: e.to_string(),
                })?;
            for object in &listed.objects {
                if !self.is_free_for(&object.location, &mark).await? {
                    return Err(StorageError::Taken { location });
                }
            }
            let mut names = Vec::new();
            for entry in std::fs::read_dir(output).map_err(read_error)? {
                let entry = entry.map_err(read_error)?;
                if entry.file_type().map_err(read_error)?.is_file() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            names.sort();
            let mut bytes: u64 = 0;
            for name in &names {
                let sent = self
                    .put_file(&output.join(name), self.key(&[job_id, name]), &mark)
                    .await?;
                bytes = bytes.saturating_add(sent);
            }
            Ok(Stored { location, bytes })
        } else {
            let name = output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("{job_id}.mp4"));
            let key = self.key(&[&name]);
            let location = format!("s3://{}/{key}", self.bucket);
            if !self.is_free_for(&key, &mark).await? {
                return Err(StorageError::Taken { location });
            }
            let bytes = self.put_file(output, key.clone(), &mark).await?;
            Ok(Stored { location, bytes })
        }
    }

    /// Whether the job marked `mark` may write `key`: nothing is there, or its own object is
    /// (an upload tried again). A failed look is an upload failure, retried like one.
    async fn is_free_for(&self, key: &ObjectPath, mark: &str) -> Result<bool, StorageError> {
        match self.head(key).await {
            Ok(found) => Ok(found.is_none_or(|attributes| {
                attributes
                    .get(&Attribute::Metadata(JOB_MARK.into()))
                    .is_some_and(|value| value.as_ref() == mark)
            })),
            Err(e) => Err(StorageError::Upload {
                bucket: self.bucket.clone(),
                key: key.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// The attributes of the object at `key`, or `None` when there is none.
    async fn head(&self, key: &ObjectPath) -> Result<Option<Attributes>, object_store::Error> {
        match self
            .store
            .get_opts(key, GetOptions::new().with_head(true))
            .await
        {
            Ok(found) => Ok(Some(found.attributes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where the bucket holds a recording of a job with this id: `<job_id>.mp4`, or objects
    /// under `<job_id>/`.
    async fn earlier_recording(&self, job_id: &str) -> Result<Option<String>, StorageError> {
        let file = self.key(&[&format!("{job_id}.mp4")]);
        let location = format!("s3://{}/{file}", self.bucket);
        match self.head(&file).await {
            Ok(Some(_)) => return Ok(Some(location)),
            Ok(None) => {}
            Err(e) => {
                return Err(StorageError::Lookup {
                    location,
                    message: e.to_string(),
                })
            }
        }
        let dir = self.key(&[job_id]);
        let location = format!("s3://{}/{dir}/", self.bucket);
        match self.store.list_with_delimiter(Some(&dir)).await {
            Ok(listed) => Ok((!listed.objects.is_empty()).then_some(location)),
            Err(e) => Err(StorageError::Lookup {
                location,
                message: e.to_string(),
            }),
        }
    }

    /// Streams one file into one object (multipart above a few MiB), marked as its job's; how
    /// many bytes it holds.
    async fn put_file(
        &self,
        file: &Path,
        key: ObjectPath,
        mark: &str,
    ) -> Result<u64, StorageError> {
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
        // The bucket answers a presigned download with it, so the browser saves the file as
        // the node itself would serve it, instead of playing it in the tab.
        if let Some(name) = file.file_name().and_then(|n| n.to_str()) {
            attributes.insert(Attribute::ContentDisposition, attachment(name).into());
        }
        attributes.insert(
            Attribute::Metadata(JOB_MARK.into()),
            AttributeValue::from(mark.to_owned()),
        );
        let mut writer =
            BufWriter::new(self.store.clone(), key.clone()).with_attributes(attributes);
        let bytes = match tokio::io::copy(&mut reader, &mut writer).await {
            Ok(bytes) => bytes,
            Err(e) => {
                // Cleans up a multipart upload already begun. (A failed completion aborts its
                // own; parts left by a lost connection are the bucket lifecycle rule's to
                // expire.)
                let _ = writer.abort().await;
                return Err(upload_error(e.to_string()));
            }
        };
        writer
            .shutdown()
            .await
            .map_err(|e| upload_error(e.to_string()))?;
        tracing::info!(key = %key, bytes, "recording uploaded");
        Ok(bytes)
    }
}

#[cfg(test)]
impl S3Storage {
    /// A bucket in memory (`s3://test-bucket/<node_id>/...`) for tests, trying each upload once.
    pub(crate) fn in_memory(node_id: &str) -> S3Storage {
        S3Storage {
            store: Arc::new(object_store::memory::InMemory::new()),
            signer: None,
            bucket: "test-bucket".into(),
            prefix: ObjectPath::from(node_id),
            keep_local: false,
            retry: Duration::ZERO,
        }
    }

    /// The bytes of the object at `key`.
    pub(crate) async fn object(&self, key: &str) -> Vec<u8> {
        self.store
            .get_opts(&ObjectPath::from(key), GetOptions::default())
            .await
            .expect("object")
            .bytes()
            .await
            .expect("bytes")
            .to_vec()
    }
}

/// The `Content-Disposition` of a recording's file when downloaded: saved as `file_name`, not
/// played in the tab. The node names its files after job ids (letters, digits, `-` and `_`), so
/// nothing needs quoting or escaping.
pub fn attachment(file_name: &str) -> String {
    format!("attachment; filename=\"{file_name}\"")
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

    /// An upload never writes over another job's object of the same id (a job since forgotten):
    /// it fails for good, and the object stays as it was. The same job's own objects, from an
    /// upload tried before a restart, are written again.
    #[tokio::test]
    async fn an_upload_never_writes_over_an_earlier_jobs_recording() {
        let s3 = Arc::new(S3Storage::in_memory("rec-1"));
        let storage = Storage::S3(s3.clone());
        let dir = std::env::temp_dir().join(format!("storage-taken-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("tracks")).expect("dir");
        let file = dir.join("job.mp4");
        let (earlier, later) = (1_000, 2_000);

        std::fs::write(&file, b"first job").expect("write");
        let Stored { location, bytes } =
            storage.store("job", earlier, &file).await.expect("upload");
        assert_eq!(location, "s3://test-bucket/rec-1/job.mp4");
        assert_eq!(bytes, 9, "the bytes uploaded");
        std::fs::write(&file, b"first job, uploaded again").expect("write");
        storage
            .store("job", earlier, &file)
            .await
            .expect("the same job uploads again");
        assert_eq!(
            storage.earlier_recording("job").await.expect("look"),
            Some(location.clone())
        );

        std::fs::write(&file, b"second job").expect("write");
        let err = storage
            .store("job", later, &file)
            .await
            .expect_err("written over an earlier job's recording");
        assert!(
            matches!(&err, StorageError::Taken { location: at } if *at == location),
            "{err}"
        );
        assert_eq!(
            s3.object("rec-1/job.mp4").await,
            b"first job, uploaded again"
        );

        let tracks = dir.join("tracks");
        std::fs::write(tracks.join("a.mkv"), b"first tracks").expect("write");
        std::fs::write(tracks.join("b.mka"), b"audio").expect("write");
        let uploaded = storage
            .store("tracks", earlier, &tracks)
            .await
            .expect("upload tracks");
        assert_eq!(
            uploaded,
            Stored {
                location: "s3://test-bucket/rec-1/tracks/".into(),
                bytes: 12 + 5,
            }
        );
        std::fs::remove_file(tracks.join("b.mka")).expect("remove");
        std::fs::remove_file(tracks.join("a.mkv")).expect("remove");
        std::fs::write(tracks.join("b.mkv"), b"second tracks").expect("write");
        let err = storage
            .store("tracks", later, &tracks)
            .await
            .expect_err("mixed into an earlier job's tracks");
        assert!(
            matches!(&err, StorageError::Taken { location } if location == "s3://test-bucket/rec-1/tracks/"),
            "{err}"
        );
        assert_eq!(s3.object("rec-1/tracks/a.mkv").await, b"first tracks");
        let not_uploaded = s3
            .store
            .get_opts(
                &ObjectPath::from("rec-1/tracks/b.mkv"),
                GetOptions::default(),
            )
            .await;
        assert!(
            matches!(not_uploaded, Err(object_store::Error::NotFound { .. })),
            "{not_uploaded:?}"
        );
        assert_eq!(
            storage.earlier_recording("tracks").await.expect("look"),
            Some("s3://test-bucket/rec-1/tracks/".to_owned())
        );
        assert_eq!(
            storage.earlier_recording("other").await.expect("look"),
            None
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// A job's stored recording is deleted (a composite's object, every object under a tracks
    /// job's prefix, nothing of another job), again without error; a location that is not the
    /// job's own in this bucket is refused and deletes nothing.
    #[tokio::test]
    async fn a_stored_recording_is_deleted_and_nothing_else() {
        let s3 = Arc::new(S3Storage::in_memory("rec-1"));
        let storage = Storage::S3(s3.clone());
        let dir = std::env::temp_dir().join(format!("storage-delete-{}", uuid::Uuid::new_v4()));
        let tracks = dir.join("tracks");
        std::fs::create_dir_all(&tracks).expect("dir");
        for job in ["job", "other"] {
            let file = dir.join(format!("{job}.mp4"));
            std::fs::write(&file, job.as_bytes()).expect("write");
            storage.store(job, 1, &file).await.expect("upload");
        }
        std::fs::write(tracks.join("a.mkv"), b"video").expect("write");
        std::fs::write(tracks.join("b.mka"), b"audio").expect("write");
        let uploaded = storage.store("tracks", 1, &tracks).await.expect("upload");
        let exists = |key: &'static str| {
            let s3 = s3.clone();
            async move {
                s3.head(&ObjectPath::from(key))
                    .await
                    .expect("head")
                    .is_some()
            }
        };

        for refused in [
            "s3://test-bucket/rec-1/other.mp4",
            "s3://another-bucket/rec-1/job.mp4",
            "s3://test-bucket/rec-1/",
            "s3://test-bucket/",
            "/local/job.mp4",
        ] {
            let err = storage
                .delete_stored("job", refused)
                .await
                .expect_err(refused);
            assert!(matches!(err, StorageError::Foreign { .. }), "{err}");
        }
        assert!(exists("rec-1/job.mp4").await && exists("rec-1/other.mp4").await);

        for _ in 0..2 {
            storage
                .delete_stored("job", "s3://test-bucket/rec-1/job.mp4")
                .await
                .expect("delete");
            assert!(!exists("rec-1/job.mp4").await);
            storage
                .delete_stored("tracks", &uploaded.location)
                .await
                .expect("delete tracks");
            assert!(!exists("rec-1/tracks/a.mkv").await && !exists("rec-1/tracks/b.mka").await);
        }
        assert!(
            exists("rec-1/other.mp4").await,
            "another job's recording went"
        );
        assert_eq!(
            storage.earlier_recording("tracks").await.expect("look"),
            None
        );
        // The in-memory bucket cannot sign, but a missing object is found missing first.
        assert_eq!(
            storage
                .presigned_get(
                    "job",
                    "s3://test-bucket/rec-1/job.mp4",
                    Duration::from_secs(60)
                )
                .await
                .expect("look"),
            None
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
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
        let err = storage
            .store("job-1", 1, &file)
            .await
            .expect_err("no store");
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
