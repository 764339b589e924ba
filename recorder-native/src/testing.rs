//! A node whose workers are fake: small shell scripts standing in for `recorder-native record`
//! and `repair`, so the supervisor's and recovery's file handling is tested without GStreamer or
//! LiveKit.
//!
//! Every node gets one dispatcher as its worker binary, written before any worker is spawned
//! (a script written while another thread forks could not be executed: ETXTBSY). The dispatcher runs the
//! node's own `<data_dir>/fake-worker.sh` with `sh`, which a test writes as it likes: for
//! `record --job FILE` it finds the job's output in `$out`; `repair` fails unless the script
//! says otherwise.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::config::ServiceConfig;
use crate::job::{JobView, Mode, StartRequest};
use crate::storage::Storage;
use crate::store::Store;
use crate::supervisor::Node;

/// A worker that reports `active`, writes `$out` (a track file in it, for a tracks job; nothing
/// for a broadcast) naming its own process, and finishes.
pub const WRITES_AND_FINISHES: &str = r#"echo '{"event":"active"}'
if [ -d "$out" ]; then out="$out/alice_TR_1.mkv"; fi
if [ -n "$out" ]; then printf 'recorded by worker %s\n' "$$" > "$out"; fi
echo '{"event":"finished","media_ms":1000}'"#;

/// A worker that reports `active` and then runs until it is killed (SIGTERM stays blocked in
/// workers, so the stop watchdog's SIGKILL ends it).
pub const RUNS_UNTIL_KILLED: &str = r#"echo '{"event":"active"}'
exec sleep 600"#;

/// The worker binary every fake node runs: it hands over to `<data_dir>/fake-worker.sh`. Its
/// third argument is the job file (`<data_dir>/jobs/<id>.json`) or the fragmented file being
/// repaired (`<data_dir>/recordings/<id>.part.mp4`): either way one level below `data_dir`.
fn dispatcher() -> &'static Path {
    static DISPATCHER: OnceLock<PathBuf> = OnceLock::new();
    DISPATCHER.get_or_init(|| {
        const SCRIPT: &str =
            "#!/bin/sh\nexec /bin/sh \"$(dirname \"$3\")/../fake-worker.sh\" \"$@\"\n";
        // One for every test run, put in place whole (test processes may run side by side).
        let path = std::env::temp_dir().join("recorder-native-fake-worker");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(SCRIPT) {
            let fresh = path.with_extension(uuid::Uuid::new_v4().to_string());
            std::fs::write(&fresh, SCRIPT).expect("write the dispatcher");
            std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755))
                .expect("make the dispatcher executable");
            std::fs::rename(&fresh, &path).expect("put the dispatcher in place");
        }
        path
    })
}

/// A node in a directory of its own, with fake workers.
pub struct FakeNode {
    /// The test's directory (removed on drop).
    pub dir: PathBuf,
    /// The node.
    pub node: Arc<Node>,
}

impl FakeNode {
    /// A node named after `test` whose workers run `record` (a shell script body; `$out` is
    /// the job's output), storing finished outputs in `storage`.
    pub fn new(test: &str, record: &str, storage: Storage) -> FakeNode {
        FakeNode::configured(test, record, storage, |_| {})
    }

    /// [`FakeNode::new`] with its configuration changed by `change` (then checked). It has no
    /// minimum of free disk space unless `change` sets one, and sends no events unless
    /// `change` names a control plane (nothing delivers them: they stay in the outbox).
    pub fn configured(
        test: &str,
        record: &str,
        storage: Storage,
        change: impl FnOnce(&mut ServiceConfig),
    ) -> FakeNode {
        let dir = std::env::temp_dir().join(format!("recorder-{test}-{}", uuid::Uuid::new_v4()));
        let data = dir.join("data");
        std::fs::create_dir_all(data.join("recordings")).expect("recordings dir");
        std::fs::write(
            data.join("fake-worker.sh"),
            format!(
                "case \"$1\" in\nrecord)\nout=$(sed -n 's/.*\"output\":\"\\([^\"]*\\)\".*/\\1/p' \"$3\")\n{record}\n;;\n*) exit 1 ;;\nesac\n"
            ),
        )
        .expect("write the fake worker");
        let mut config: ServiceConfig = toml::from_str(&format!(
            r#"
            listen = "127.0.0.1:0"
            node_id = "fake"
            api_key = "key"
            api_secret = "0123456789abcdef"
            data_dir = "{}"
            [admission]
            cores = 4
            min_free_disk_mb = 0
            [broadcast]
            allowed_networks = ["127.0.0.0/8"]
            [watchdog]
            stop_seconds = 1
            "#,
            data.display()
        ))
        .expect("config");
        change(&mut config);
        config.check().expect("valid config");
        let store = Store::open(&data.join("recorder.db")).expect("store");
        let node = Node::new(config, store, storage, dispatcher().to_owned());
        FakeNode { dir, node }
    }

    /// The recordings directory.
    pub fn recordings(&self) -> PathBuf {
        self.node.config().recordings_dir()
    }

    /// A start request for a composite of `job_id`.
    pub fn request(job_id: &str) -> StartRequest {
        StartRequest {
            job_id: job_id.into(),
            room_id: "room".into(),
            livekit_url: "ws://127.0.0.1:7880".into(),
            token: "token".into(),
            mode: Mode::Composite,
            file: true,
            rtmp_url: None,
        }
    }

    /// The job as stored once it has ended (COMPLETE or FAILED) and left the running table.
    pub async fn wait_ended(&self, job_id: &str) -> JobView {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stored = self
                .node
                .store()
                .lock()
                .expect("store")
                .job(job_id)
                .expect("read");
            match stored {
                Some((view, _)) if view.state.is_final() && !self.node.is_running(job_id) => {
                    return view
                }
                _ => {}
            }
            assert!(Instant::now() < deadline, "job {job_id} did not end");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forgets every finished job, as `keep_finished_jobs_days` does with old ones.
    pub fn forget_finished(&self) -> usize {
        self.node
            .store()
            .lock()
            .expect("store")
            .forget_finished(i64::MAX, 1000)
            .expect("forget")
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A POST of `body` to `url`, signed with `node`'s key and secret as a control plane signs
/// its calls: the answer's status and JSON.
pub async fn signed_post(
    node: &Node,
    url: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = body.to_string();
    let config = node.config();
    let answer = reqwest::Client::new()
        .post(url)
        .header(crate::auth::API_KEY_HEADER, &config.api_key)
        .header(
            crate::auth::SIGNATURE_HEADER,
            crate::auth::sign(config.api_secret.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("answer");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("json"))
}
