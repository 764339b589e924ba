//! A real S3-compatible store for the recorder's upload tests: MinIO (go-installed by
//! scripts/bootstrap.sh) on a loopback port, looked at through an independent client (boto3).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, python, repo_root, unique};

/// A MinIO server with its own data directory; it keeps its data across [`Minio::restart`].
pub struct Minio {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The access key (MinIO's root user).
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
    port: u16,
    data: PathBuf,
}

impl Minio {
    /// Starts MinIO and waits until it serves.
    pub fn start() -> Minio {
        let data = std::env::temp_dir().join(unique("minio"));
        std::fs::create_dir_all(&data).expect("minio dir");
        let port = free_port();
        let mut minio = Minio {
            child: None,
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key: "edgemeet-test".into(),
            secret_key: unique("minio-secret"),
            port,
            data,
        };
        minio.launch();
        minio
    }

    fn launch(&mut self) {
        let binary = edgemeet::cache_dir().join("bin").join("minio");
        assert!(
            binary.is_file(),
            "{} is missing: run scripts/bootstrap.sh",
            binary.display()
        );
        let console = free_port();
        let child = Command::new(binary)
            .args(["server", "--quiet"])
            .arg(&self.data)
            .args(["--address", &format!("127.0.0.1:{}", self.port)])
            .args(["--console-address", &format!("127.0.0.1:{console}")])
            .env("MINIO_ROOT_USER", &self.access_key)
            .env("MINIO_ROOT_PASSWORD", &self.secret_key)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start minio");
        self.child = Some(child);
        let health = format!("{}/minio/health/live", self.endpoint);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ureq_ok(&health) {
            assert!(Instant::now() < deadline, "minio did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the store is unreachable until [`Minio::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        self.launch();
    }

    fn client(&self, args: &[&str]) -> String {
        let out = Command::new(python())
            .arg(repo_root().join("tests/clients/s3_bucket.py"))
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .output()
            .expect("run s3_bucket.py");
        assert!(
            out.status.success(),
            "s3_bucket.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        self.client(&["create", bucket]);
    }

    /// Every object in `bucket`: key -> {size, content_type}.
    pub fn objects(&self, bucket: &str) -> serde_json::Map<String, Value> {
        match serde_json::from_str(&self.client(&["list", bucket])).expect("list json") {
            Value::Object(map) => map,
            other => panic!("not a listing: {other}"),
        }
    }

    /// Downloads one object to `file`.
    pub fn get(&self, bucket: &str, key: &str, file: &Path) {
        self.client(&["get", bucket, key, &file.display().to_string()]);
    }

    /// The recorder config's `[s3]` table for `bucket` under `prefix`.
    pub fn recorder_toml(&self, bucket: &str, prefix: &str, retry_seconds: f64) -> String {
        format!(
            "[s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nprefix = \"{prefix}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nretry_seconds = {retry_seconds}\n",
            self.endpoint, self.access_key, self.secret_key
        )
    }
}

/// Whether a GET of `url` answers 200.
fn ureq_ok(url: &str) -> bool {
    ureq::get(url)
        .call()
        .is_ok_and(|r| r.status().as_u16() == 200)
}

impl Drop for Minio {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
