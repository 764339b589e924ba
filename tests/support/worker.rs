//! The edge as a Cloudflare Worker for the black-box suite: the `scripts/build-worker.sh`
//! build served by Miniflare (workerd, the Workers runtime, from npm) with a local D1, driven by
//! `tests/clients/miniflare_edge.mjs`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{forward_lines, free_port, repo_root};

/// A Worker served by Miniflare on a loopback port.
pub struct WorkerEdge {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stderr: mpsc::Receiver<String>,
}

/// The Worker build (run scripts/build-worker.sh first).
pub fn worker_script() -> PathBuf {
    let shim = repo_root().join("edge-api/build/worker/shim.mjs");
    assert!(
        shim.is_file(),
        "{} is missing: run scripts/build-worker.sh",
        shim.display()
    );
    shim
}

impl WorkerEdge {
    /// Serves the Worker with these vars and secrets (a JSON object of strings).
    pub fn start(bindings: &Value) -> WorkerEdge {
        WorkerEdge::start_with_cf(bindings, &serde_json::json!({}))
    }

    /// Like [`WorkerEdge::start`], with `cf` as every request's `request.cf` (Cloudflare's
    /// geolocation fields, e.g. `latitude` and `longitude` as strings).
    pub fn start_with_cf(bindings: &Value, cf: &Value) -> WorkerEdge {
        let node_modules = edgemeet::cache_dir().join("node").join("node_modules");
        let port = free_port();
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/clients/miniflare_edge.mjs"))
            .arg(worker_script())
            .arg(repo_root().join("edge-api/migrations"))
            .arg(bindings.to_string())
            .arg(port.to_string())
            .env("NODE_MODULES_DIR", &node_modules)
            .env("EDGEMEET_TEST_CF", cf.to_string())
            .env("EDGEMEET_WEB_DIR", repo_root().join("web/dist"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start miniflare (node)");
        let stdout = forward_lines(child.stdout.take().expect("stdout"));
        let stderr = forward_lines(child.stderr.take().expect("stderr"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(line) = stdout.recv_timeout(Duration::from_millis(200)) {
                if let Some(base) = line.strip_prefix("ready at ") {
                    return WorkerEdge {
                        child: Some(child),
                        base: base.trim().to_owned(),
                        stderr,
                    };
                }
            }
            let exited = child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "miniflare did not start ({exited:?}):\n{}",
                stderr.try_iter().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// What workerd logged so far.
    pub fn log(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for WorkerEdge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
