//! The sidecar as a process, between a real LiveKit server and a stand-in for the edge.
//!
//! Each test starts its own `livekit-server` (`$HOME/.cache/edgemeet/bin/livekit-server`, or
//! `LIVEKIT_SERVER_BIN`) whose webhooks go to the sidecar, the built `media-sidecar` binary,
//! and a [`FakeEdge`]. Rooms are created and deleted through LiveKit's Twirp API, so LiveKit
//! itself signs and posts `room_started`/`room_finished`. Where a test needs many events in a
//! known order it posts them itself, signed with LiveKit's key exactly as LiveKit signs them.
//!
//! Everything binds 127.0.0.1 and every process is killed by its pid when its guard drops.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use livekit_api::access_token::AccessToken;
use livekit_api::services::room::{CreateRoomOptions, RoomClient};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const REGION: &str = "test-region";
const SIDECAR_SECRET: &str = "sidecar-secret-for-tests-0123456789abcdef";
const LK_KEY: &str = "sidecarkey";
const LK_SECRET: &str = "livekit-secret-for-tests-0123456789abcdef";
/// Generous: the machine is small and shared.
const PATIENCE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// FakeEdge

/// The edge's request body limit: FakeEdge refuses a larger body with 413, as the edge does.
const EDGE_MAX_BODY_BYTES: usize = 256 * 1024;

/// How [`FakeEdge`] answers event batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Keep the batch, answer 200.
    Accept,
    /// Keep nothing, answer 503.
    Refuse,
    /// Keep the batch but answer only when the mode changes (then 503): an acknowledgement
    /// that never arrives.
    Stall,
    /// Keep batches of at most this many events; refuse larger ones whole with 413 and the
    /// limit, as an edge with `max_events_per_batch` does.
    Capped(usize),
}

/// One request FakeEdge got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    signed: bool,
    /// Whether the edge kept it (a real edge would have applied it).
    kept: bool,
    /// The HTTP status it was answered with.
    status: u16,
    body: Value,
}

/// A test double for the edge's internal endpoints (`/internal/sidecar/heartbeat` and
/// `/internal/sidecar/events`): it checks every request's `API-KEY` and HMAC signature itself,
/// answers 401 to a bad one, and keeps what it accepts in arrival order. It does not apply
/// events; the real edge is tested in the system tests.
struct FakeEdge {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn hex_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl FakeEdge {
    fn start() -> FakeEdge {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("fake edge server");
        let url = format!(
            "http://{}",
            server.server_addr().to_ip().expect("ip address")
        );
        let hits = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Accept));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (hits, mode, stop) = (hits.clone(), mode.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) else {
                        continue;
                    };
                    let (hits, mode, stop) = (hits.clone(), mode.clone(), stop.clone());
                    std::thread::spawn(move || FakeEdge::handle(request, &hits, &mode, &stop));
                }
            })
        };
        FakeEdge {
            url,
            hits,
            mode,
            stop,
            thread: Some(thread),
        }
    }

    fn handle(
        mut request: tiny_http::Request,
        hits: &Mutex<Vec<Hit>>,
        mode: &Mutex<Mode>,
        stop: &AtomicBool,
    ) {
        let mut body = Vec::new();
        let _ = request.as_reader().read_to_end(&mut body);
        let too_large = body.len() > EDGE_MAX_BODY_BYTES;
        let header = |name: &str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_owned())
        };
        let signed = request.method() == &tiny_http::Method::Post
            && header("API-KEY").as_deref() == Some(REGION)
            && header("HASH-SIGNATURE") == Some(hex_hmac(SIDECAR_SECRET, &body))
            && header("Content-Type").as_deref() == Some("application/json");
        let path = request.url().to_owned();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let current = *mode.lock().expect("lock");
        let (status, kept) = if too_large {
            (413, false)
        } else if !signed {
            (401, false)
        } else if path == "/internal/sidecar/heartbeat" {
            (200, true)
        } else if path != "/internal/sidecar/events" {
            (404, false)
        } else {
            let events = body["events"].as_array().map_or(0, Vec::len);
            match current {
                Mode::Accept => (200, true),
                Mode::Refuse => (503, false),
                Mode::Stall => (503, true),
                Mode::Capped(most) if events > most => (413, false),
                Mode::Capped(_) => (200, true),
            }
        };
        hits.lock().expect("lock").push(Hit {
            path,
            signed,
            kept,
            status,
            body,
        });
        if signed && current == Mode::Stall && status == 503 {
            let until = Instant::now() + PATIENCE;
            while *mode.lock().expect("lock") == Mode::Stall
                && !stop.load(Ordering::Relaxed)
                && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // As the edge answers: a recorded heartbeat counts the sessions running in the region
        // (this fake runs none, so a drain may end as soon as LiveKit has no rooms).
        let mut answer = json!({"status": status == 200, "msg": "fake edge", "recorded": true,
                                "rooms_ended": 0, "running_sessions": 0});
        if let (413, Mode::Capped(most)) = (status, current) {
            answer = json!({"status": false, "msg": "too many events", "max_events": most});
        }
        let answer = answer.to_string();
        let _ = request.respond(tiny_http::Response::from_string(answer).with_status_code(status));
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    /// Every event batch body received (kept or not), in arrival order.
    fn batches(&self) -> Vec<Value> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == "/internal/sidecar/events")
            .map(|h| h.body)
            .collect()
    }

    /// Each event batch's answer and size, in arrival order.
    fn answered_batches(&self) -> Vec<(u16, usize)> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == "/internal/sidecar/events")
            .map(|h| (h.status, h.body["events"].as_array().map_or(0, Vec::len)))
            .collect()
    }

    /// Every event kept, in arrival order, repeats included.
    fn events(&self) -> Vec<Value> {
        self.hits()
            .into_iter()
            .filter(|h| h.kept && h.path == "/internal/sidecar/events")
            .flat_map(|h| h.body["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The ids of the events kept, first occurrences only (what the edge applies).
    fn event_ids(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.events()
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    fn heartbeats(&self) -> Vec<Value> {
        self.hits()
            .into_iter()
            .filter(|h| h.kept && h.path == "/internal/sidecar/heartbeat")
            .map(|h| h.body)
            .collect()
    }

    fn unsigned(&self) -> usize {
        self.hits().iter().filter(|h| !h.signed).count()
    }
}

impl Drop for FakeEdge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A free loopback TCP port below Linux's ephemeral range (32768 and up), so no outgoing
/// connection or `bind(0)` anywhere can take it between choosing it here and binding it in the
/// process under test. Each test process walks its own stretch of 200.
fn free_port() -> u16 {
    loop {
        let port = next_port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn next_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = 20_000 + (std::process::id() as usize % 60) * 200;
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 200;
    u16::try_from(base + n).expect("port")
}

/// A running `livekit-server`, killed when dropped.
struct LiveKit {
    child: Child,
    url: String,
}

impl LiveKit {
    fn start(dir: &Path, webhook_url: &str) -> LiveKit {
        let binary = std::env::var_os("LIVEKIT_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                    .join(".cache/edgemeet/bin/livekit-server")
            });
        assert!(
            binary.exists(),
            "these tests need a LiveKit server binary at {} (or LIVEKIT_SERVER_BIN)",
            binary.display()
        );
        let port = free_port();
        let tcp_port = free_port();
        // Ten UDP ports of this test's own (no media flows here, so nothing binds them).
        static NEXT_RANGE: AtomicUsize = AtomicUsize::new(0);
        let base = 30_000
            + (std::process::id() as usize % 27) * 100
            + NEXT_RANGE.fetch_add(1, Ordering::Relaxed) % 10 * 10;
        let config = dir.join("livekit.yaml");
        std::fs::write(
            &config,
            format!(
                "port: {port}\n\
                 rtc:\n  tcp_port: {tcp_port}\n  port_range_start: {base}\n  port_range_end: {end}\n  use_external_ip: false\n\
                 keys:\n  {LK_KEY}: {LK_SECRET}\n\
                 webhook:\n  api_key: {LK_KEY}\n  urls:\n    - {webhook_url}\n\
                 logging:\n  level: info\n",
                end = base + 9
            ),
        )
        .expect("livekit config");
        let log = File::create(dir.join("livekit.log")).expect("livekit log");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg("--bind")
            .arg("127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start livekit-server");
        LiveKit {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn rooms(&self) -> RoomClient {
        RoomClient::with_api_key(&self.url, LK_KEY, LK_SECRET).with_failover(false)
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let until = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("livekit-server exited early: {status}");
            }
            if let Ok(r) = http.get(&self.url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < until, "livekit-server did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_room(&self, name: &str) {
        self.rooms()
            .create_room(name, CreateRoomOptions::default())
            .await
            .expect("CreateRoom");
    }

    async fn delete_room(&self, name: &str) {
        self.rooms().delete_room(name).await.expect("DeleteRoom");
    }
}

impl Drop for LiveKit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `media-sidecar serve`, killed when dropped.
struct Sidecar {
    child: Child,
    /// `http://127.0.0.1:PORT`, from its "listening on" line.
    url: String,
}

impl Sidecar {
    fn start(config: &Path, log_path: &Path) -> Sidecar {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("sidecar log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_media-sidecar"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "media_sidecar=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start media-sidecar");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(PATIENCE) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "media-sidecar never said where it listens\n--- its log ---\n{}",
                    std::fs::read_to_string(log_path).unwrap_or_default()
                );
            }
        };
        Sidecar { child, url }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid"))
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal the sidecar");
    }

    fn kill_hard(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The whole arrangement

struct Harness {
    dir: tempfile::TempDir,
    edge: FakeEdge,
    livekit: LiveKit,
    sidecar: Sidecar,
    config: PathBuf,
    http: reqwest::Client,
}

impl Harness {
    async fn start(drain_deadline_seconds: u64) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let edge = FakeEdge::start();
        let sidecar_port = free_port();
        let mut livekit = LiveKit::start(
            dir.path(),
            &format!("http://127.0.0.1:{sidecar_port}/webhook"),
        );
        livekit.wait_ready().await;
        let config = dir.path().join("sidecar.toml");
        std::fs::write(
            &config,
            format!(
                r#"
region_id = "{REGION}"
listen = "127.0.0.1:{sidecar_port}"
sidecar_secret = "{SIDECAR_SECRET}"
data_dir = "{data}"
heartbeat_seconds = 0.5
drain_deadline_seconds = {drain_deadline_seconds}

[livekit]
url = "{lk}"
api_key = "{LK_KEY}"
api_secret = "{LK_SECRET}"

[edge]
url = "{edge}/"

[capacity]
max_rooms = 7
max_participants = 70
"#,
                data = dir.path().join("data").display(),
                lk = livekit.url,
                edge = edge.url,
            ),
        )
        .expect("sidecar config");
        let sidecar = Sidecar::start(&config, &dir.path().join("sidecar.log"));
        Harness {
            dir,
            edge,
            livekit,
            sidecar,
            config,
            http: reqwest::Client::new(),
        }
    }

    fn restart_sidecar(&mut self) {
        self.sidecar = Sidecar::start(&self.config, &self.dir.path().join("sidecar.log"));
    }

    /// The tail of the sidecar's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("sidecar.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits for the sidecar to exit by itself, or fails the test with `what` and its log.
    async fn wait_exit(&mut self, what: &str) -> ExitStatus {
        let until = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.sidecar.exited() {
                return status;
            }
            assert!(Instant::now() < until, "{what}\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `check` until it holds, or fails the test with `what` and the sidecar's log.
    async fn wait_for(&self, what: &str, mut check: impl FnMut(&Harness) -> bool) {
        let until = Instant::now() + PATIENCE;
        while !check(self) {
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}\n--- sidecar log ---\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts a webhook to the sidecar as LiveKit does; returns the status.
    async fn post_webhook(&self, body: &str, authorization: Option<String>) -> u16 {
        let mut request = self
            .http
            .post(format!("{}/webhook", self.sidecar.url))
            .header("Content-Type", "application/webhook+json")
            .body(body.to_owned());
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        request
            .send()
            .await
            .expect("post webhook")
            .status()
            .as_u16()
    }

    /// One metric's value from `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    /// Polls `/metrics` until `name` satisfies `check`.
    async fn wait_for_metric(&self, name: &str, check: impl Fn(f64) -> bool) {
        let until = Instant::now() + PATIENCE;
        loop {
            let value = self.metric(name).await;
            if check(value) {
                return;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting on {name} (now {value})\n--- sidecar log ---\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.sidecar.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

/// The `Authorization` LiveKit sends with `body`: a JWT from its key whose `sha256` claim is the
/// body's hash.
fn livekit_signature(secret: &str, body: &str) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    AccessToken::with_api_key(LK_KEY, secret)
        .with_sha256(&hash)
        .to_jwt()
        .expect("jwt")
}

/// A webhook body shaped like LiveKit's, numbered `n`.
fn synthetic_event(n: usize) -> String {
    format!(
        r#"{{"event":"participant_joined", "room":{{"sid":"RM_synthetic", "name":"synthetic"}}, "participant":{{"sid":"PA_{n}", "identity":"user-{n}"}}, "id":"EV_TEST_{n:06}", "createdAt":"1795497519"}}"#
    )
}

async fn post_synthetic(h: &Harness, range: std::ops::Range<usize>) {
    for n in range {
        let body = synthetic_event(n);
        let status = h
            .post_webhook(&body, Some(livekit_signature(LK_SECRET, &body)))
            .await;
        assert_eq!(status, 200, "webhook {n}");
    }
}

fn synthetic_ids(h: &Harness) -> Vec<String> {
    h.edge
        .event_ids()
        .into_iter()
        .filter(|id| id.starts_with("EV_TEST_"))
        .collect()
}

fn expected_ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("EV_TEST_{n:06}")).collect()
}

/// The LiveKit events FakeEdge kept for `room`, as `event` names in arrival order.
fn room_events(h: &Harness, room: &str) -> Vec<String> {
    h.edge
        .events()
        .iter()
        .filter(|e| e["room"]["name"] == room)
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect()
}

fn batches_are_well_formed(h: &Harness) {
    for batch in h.edge.batches() {
        assert_eq!(batch["region_id"], REGION);
        let n = batch["events"].as_array().map_or(0, Vec::len);
        assert!((1..=100).contains(&n), "a batch of {n} events");
    }
    assert_eq!(h.edge.unsigned(), 0, "a request to the edge was not signed");
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_events_reach_the_edge_in_order_and_signed() {
    let h = Harness::start(3600).await;
    for room in ["alpha", "beta"] {
        h.livekit.create_room(room).await;
    }
    h.livekit.delete_room("alpha").await;
    h.livekit.delete_room("beta").await;
    h.wait_for("both rooms' events", |h| {
        room_events(h, "alpha").len() >= 2 && room_events(h, "beta").len() >= 2
    })
    .await;
    for room in ["alpha", "beta"] {
        assert_eq!(room_events(&h, room), ["room_started", "room_finished"]);
    }
    // Exactly as LiveKit posted them: its ids and its camelCase fields.
    for event in h.edge.events() {
        assert!(event["id"].as_str().is_some_and(|id| id.starts_with("EV_")));
        assert!(event["createdAt"].is_string() || event["createdAt"].is_number());
        assert!(event["room"]["sid"]
            .as_str()
            .is_some_and(|s| s.starts_with("RM_")));
    }

    // Many events in a known order: more than one batch, oldest first, none twice.
    post_synthetic(&h, 0..250).await;
    h.wait_for("250 events", |h| synthetic_ids(h).len() == 250)
        .await;
    assert_eq!(synthetic_ids(&h), expected_ids(0..250));
    let synthetic: Vec<Value> = h
        .edge
        .events()
        .into_iter()
        .filter(|e| {
            e["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("EV_TEST_"))
        })
        .collect();
    assert_eq!(synthetic.len(), 250, "an event was forwarded twice");
    assert_eq!(
        synthetic[7],
        serde_json::from_str::<Value>(&synthetic_event(7)).expect("json")
    );
    batches_are_well_formed(&h);

    // The sidecar's counters say what happened.
    h.wait_for_metric("media_sidecar_outbox_depth", |v| v == 0.0)
        .await;
    assert!(h.metric("media_sidecar_events_forwarded_total").await >= 254.0);
    assert_eq!(h.metric("media_sidecar_webhooks_rejected_total").await, 0.0);
    assert_eq!(h.metric("media_sidecar_livekit_up").await, 1.0);
    assert_eq!(h.metric("media_sidecar_draining").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_outage_loses_nothing_and_keeps_the_order() {
    let h = Harness::start(3600).await;
    h.edge.set_mode(Mode::Refuse);
    post_synthetic(&h, 0..150).await;
    h.livekit.create_room("during-outage").await;
    h.wait_for("the edge to refuse a few batches", |h| {
        h.edge.batches().len() >= 3
    })
    .await;
    assert!(h.edge.events().is_empty());
    h.wait_for_metric("media_sidecar_outbox_depth", |v| v == 151.0)
        .await;
    // LiveKit retrying an event the sidecar still holds adds nothing.
    post_synthetic(&h, 42..43).await;
    h.wait_for_metric("media_sidecar_outbox_depth", |v| v == 151.0)
        .await;
    h.edge.set_mode(Mode::Accept);
    post_synthetic(&h, 150..160).await;
    h.wait_for("every event after the outage", |h| {
        synthetic_ids(h).len() == 160 && room_events(h, "during-outage").len() == 1
    })
    .await;
    assert_eq!(synthetic_ids(&h), expected_ids(0..160));
    let synthetic = h
        .edge
        .events()
        .iter()
        .filter(|e| {
            e["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("EV_TEST_"))
        })
        .count();
    assert_eq!(synthetic, 160, "an event was forwarded twice");
    batches_are_well_formed(&h);
    assert!(h.metric("media_sidecar_forward_failures_total").await >= 3.0);
    h.wait_for_metric("media_sidecar_outbox_depth", |v| v == 0.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_loses_nothing_waiting_or_in_flight() {
    let mut h = Harness::start(3600).await;
    // An acknowledgement that never comes: the edge keeps the batch but the sidecar dies
    // before it hears so.
    h.edge.set_mode(Mode::Stall);
    post_synthetic(&h, 0..120).await;
    h.wait_for("a batch in flight", |h| !h.edge.events().is_empty())
        .await;
    h.sidecar.kill_hard();
    h.edge.set_mode(Mode::Refuse);
    let before = h.edge.batches().len();
    h.restart_sidecar();
    post_synthetic(&h, 120..130).await;
    h.livekit.create_room("after-restart").await;
    h.wait_for("refused batches after the restart", |h| {
        h.edge.batches().len() >= before + 3
    })
    .await;
    // And once more, with everything waiting in the outbox.
    h.sidecar.kill_hard();
    h.edge.set_mode(Mode::Accept);
    h.restart_sidecar();
    h.wait_for("every event after two SIGKILLs", |h| {
        synthetic_ids(h).len() == 130 && room_events(h, "after-restart").len() == 1
    })
    .await;
    // The batch in flight at the first SIGKILL is sent again (the edge drops repeats by id);
    // nothing is missing and the first sight of each event is in order.
    assert_eq!(synthetic_ids(&h), expected_ids(0..130));
    batches_are_well_formed(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_webhooks_are_refused_and_never_forwarded() {
    let h = Harness::start(3600).await;
    let forged = synthetic_event(1);
    let wrong_secret = livekit_signature("not-the-livekit-secret-0123456789abcdef", &forged);
    assert_eq!(h.post_webhook(&forged, Some(wrong_secret)).await, 401);
    assert_eq!(h.post_webhook(&forged, None).await, 401);
    assert_eq!(
        h.post_webhook(&forged, Some("Bearer x.y.z".into())).await,
        401
    );
    // A genuine signature, for another body.
    let other_body = synthetic_event(2);
    let elsewhere = livekit_signature(LK_SECRET, &other_body);
    assert_eq!(h.post_webhook(&forged, Some(elsewhere)).await, 401);
    // A body past 256 KiB is refused before anything is checked or stored, even genuinely
    // signed (the edge could not take it either), with a 5xx: LiveKit logs any 4xx as sent.
    let padding = "x".repeat(300 * 1024);
    let oversize = forged.replacen('{', &format!("{{\"padding\":\"{padding}\","), 1);
    let signed = livekit_signature(LK_SECRET, &oversize);
    assert_eq!(h.post_webhook(&oversize, Some(signed)).await, 500);
    h.wait_for_metric("media_sidecar_webhooks_rejected_total", |v| v == 5.0)
        .await;
    assert_eq!(h.metric("media_sidecar_outbox_depth").await, 0.0);

    // A genuine event after them goes through, alone.
    post_synthetic(&h, 3..4).await;
    h.wait_for("the genuine event", |h| !synthetic_ids(h).is_empty())
        .await;
    h.livekit.create_room("real").await;
    h.wait_for("LiveKit's event", |h| room_events(h, "real").len() == 1)
        .await;
    assert_eq!(synthetic_ids(&h), ["EV_TEST_000003"]);
    assert_eq!(h.metric("media_sidecar_webhooks_rejected_total").await, 5.0);
    batches_are_well_formed(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_signed_and_report_livekit() {
    let h = Harness::start(3600).await;
    h.livekit.create_room("one").await;
    h.livekit.create_room("two").await;
    h.wait_for("a heartbeat with two rooms", |h| {
        h.edge
            .heartbeats()
            .iter()
            .any(|b| b["livekit_ok"] == true && b["load"]["rooms"] == 2)
    })
    .await;
    let beats = h.edge.heartbeats();
    let beat = beats
        .iter()
        .rev()
        .find(|b| b["load"]["rooms"] == 2)
        .expect("heartbeat");
    assert_eq!(beat["region_id"], REGION);
    assert_eq!(
        beat["sidecar_id"]
            .as_str()
            .map(|id| (id.len(), &id[14..15])),
        Some((36, "4")),
        "a UUID v4"
    );
    assert!(beat["sent_at_ms"]
        .as_i64()
        .is_some_and(|ms| ms > 1_700_000_000_000));
    assert_eq!(beat["load"]["participants"], 0);
    assert_eq!(beat["load"]["publishers"], 0);
    assert!(beat["load"]["cpu_load"].as_f64().is_some_and(|l| l >= 0.0));
    assert_eq!(
        beat["capacity"],
        json!({"max_rooms": 7, "max_participants": 70})
    );
    assert_eq!(
        (&beat["draining"], &beat["leaving"]),
        (&json!(false), &json!(false))
    );
    assert!(beat["undelivered_events"].is_u64());
    // One process, one id.
    let ids: HashSet<&str> = beats
        .iter()
        .filter_map(|b| b["sidecar_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1);
    batches_are_well_formed(&h);
    assert!(h.metric("media_sidecar_heartbeats_sent_total").await >= 1.0);
    assert_eq!(h.metric("media_sidecar_livekit_up").await, 1.0);
    // This LiveKit runs with its default codecs, H.264 among them: both rooms take cameras the
    // recorder would miss.
    assert_eq!(
        h.metric("media_sidecar_rooms_recordings_miss_video").await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_until_the_rooms_are_gone_then_leaves() {
    let mut h = Harness::start(3600).await;
    h.livekit.create_room("ongoing").await;
    h.wait_for("a heartbeat with the room", |h| {
        h.edge.heartbeats().iter().any(|b| b["load"]["rooms"] == 1)
    })
    .await;
    h.sidecar.signal(Signal::SIGTERM);
    h.wait_for("a draining heartbeat", |h| {
        h.edge
            .heartbeats()
            .iter()
            .any(|b| b["draining"] == true && b["leaving"] == false && b["load"]["rooms"] == 1)
    })
    .await;
    // Still serving: the room's events keep flowing while it drains.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.sidecar.exited().is_none(), "left with a room open");
    assert_eq!(h.metric("media_sidecar_draining").await, 1.0);
    post_synthetic(&h, 0..5).await;
    h.livekit.delete_room("ongoing").await;

    let status = h.wait_exit("no exit after the drain").await;
    assert_eq!(status.code(), Some(0), "{}", h.log_tail());
    let hits = h.edge.hits();
    let last = hits.last().expect("requests");
    assert_eq!(last.path, "/internal/sidecar/heartbeat");
    assert_eq!(
        (&last.body["leaving"], &last.body["draining"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(last.body["load"]["rooms"], 0);
    assert_eq!(last.body["undelivered_events"], 0);
    assert!(last.signed);
    // Everything reached the edge before the goodbye.
    assert_eq!(
        room_events(&h, "ongoing"),
        ["room_started", "room_finished"]
    );
    assert_eq!(synthetic_ids(&h), expected_ids(0..5));
    let leaving = hits.iter().filter(|h| h.body["leaving"] == true).count();
    assert_eq!(leaving, 1);
    batches_are_well_formed(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_drain_is_signed_and_its_deadline_ends_it() {
    let mut h = Harness::start(3600).await;
    h.livekit.create_room("stays").await;
    h.wait_for("a heartbeat with the room", |h| {
        h.edge.heartbeats().iter().any(|b| b["load"]["rooms"] == 1)
    })
    .await;
    let url = format!("{}/admin/drain", h.sidecar.url);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let post_body = |body: String, signature: String| {
        h.http
            .post(&url)
            .header("API-KEY", REGION)
            .header("HASH-SIGNATURE", signature)
            .body(body)
            .send()
    };
    // A correctly signed call from two minutes ago (a captured one, replayed) is refused.
    let stale = format!(
        r#"{{"sent_at_ms": {}, "deadline_seconds": 1}}"#,
        now_ms - 120_000
    );
    let replayed = post_body(stale.clone(), hex_hmac(SIDECAR_SECRET, stale.as_bytes()))
        .await
        .expect("post");
    assert_eq!(replayed.status().as_u16(), 400);
    let body = format!(r#"{{"sent_at_ms": {now_ms}, "deadline_seconds": 3}}"#);
    let post = |signature: String| post_body(body.clone(), signature);
    let unsigned = post("00".repeat(32)).await.expect("post");
    assert_eq!(unsigned.status().as_u16(), 401);
    let other_secret = post(hex_hmac(
        "another-secret-another-secret-0123",
        body.as_bytes(),
    ))
    .await
    .expect("post");
    assert_eq!(other_secret.status().as_u16(), 401);
    assert_eq!(h.metric("media_sidecar_draining").await, 0.0);
    let signed = post(hex_hmac(SIDECAR_SECRET, body.as_bytes()))
        .await
        .expect("post");
    assert_eq!(signed.status().as_u16(), 200);

    let status = h.wait_exit("the deadline did not end the drain").await;
    assert_eq!(status.code(), Some(0), "{}", h.log_tail());
    let beats = h.edge.heartbeats();
    assert!(beats
        .iter()
        .any(|b| b["draining"] == true && b["leaving"] == false));
    let last = beats.last().expect("heartbeats");
    assert_eq!(last["leaving"], true);
    // The deadline, not an empty LiveKit, ended it.
    assert_eq!(last["load"]["rooms"], 1);
}

/// A sidecar that crashes mid-drain drains again when it comes back, with the same deadline:
/// a restart by its supervisor must not put the region back into service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_survives_a_crash() {
    let mut h = Harness::start(3600).await;
    h.livekit.create_room("stays").await;
    h.wait_for("a heartbeat with the room", |h| {
        h.edge.heartbeats().iter().any(|b| b["load"]["rooms"] == 1)
    })
    .await;
    h.sidecar.signal(Signal::SIGTERM);
    h.wait_for("a draining heartbeat", |h| {
        h.edge.heartbeats().iter().any(|b| b["draining"] == true)
    })
    .await;
    h.sidecar.kill_hard();
    let before = h.edge.heartbeats().len();
    h.restart_sidecar();
    h.wait_for("heartbeats from the restarted sidecar", |h| {
        h.edge.heartbeats().len() >= before + 3
    })
    .await;
    let after: Vec<Value> = h.edge.heartbeats()[before..].to_vec();
    assert!(
        after.iter().all(|b| b["draining"] == true),
        "the restarted sidecar took rooms again: {after:#?}"
    );
    assert_eq!(h.metric("media_sidecar_draining").await, 1.0);
    // Once the room is gone it leaves as a drained sidecar does, and forgets the drain.
    h.livekit.delete_room("stays").await;
    let status = h.wait_exit("the resumed drain did not end").await;
    assert_eq!(status.code(), Some(0), "{}", h.log_tail());
    h.restart_sidecar();
    let before = h.edge.heartbeats().len();
    h.wait_for("a heartbeat after the finished drain", |h| {
        h.edge.heartbeats().len() > before
    })
    .await;
    let last = h.edge.heartbeats().last().cloned().expect("heartbeat");
    assert_eq!(last["draining"], false, "{last}");
}

/// While the outbox cannot store webhooks (here: another process holds its write lock, as a
/// full disk would refuse the write), LiveKit gets 500 and the heartbeats say the region's
/// webhooks are not kept, so the edge places no new room there; once it stores again, they
/// say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_report_an_outbox_that_cannot_store() {
    let h = Harness::start(3600).await;
    h.wait_for("a heartbeat", |h| !h.edge.heartbeats().is_empty())
        .await;
    assert_eq!(h.edge.heartbeats().last().expect("beat")["events_ok"], true);
    let outbox = rusqlite::Connection::open(h.dir.path().join("data").join("outbox.db"))
        .expect("open the outbox");
    outbox
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");
    let event = synthetic_event(1);
    let signed = livekit_signature(LK_SECRET, &event);
    assert_eq!(h.post_webhook(&event, Some(signed.clone())).await, 500);
    h.wait_for("a heartbeat saying webhooks are not kept", |h| {
        h.edge
            .heartbeats()
            .last()
            .is_some_and(|b| b["events_ok"] == false)
    })
    .await;
    outbox.execute_batch("ROLLBACK").expect("release the lock");
    assert_eq!(h.post_webhook(&event, Some(signed)).await, 200);
    h.wait_for("a heartbeat saying webhooks are kept again", |h| {
        h.edge
            .heartbeats()
            .last()
            .is_some_and(|b| b["events_ok"] == true)
    })
    .await;
    h.wait_for("the event, stored on LiveKit's retry", |h| {
        synthetic_ids(h) == ["EV_TEST_000001"]
    })
    .await;
}

/// The outbox's state is checked at every heartbeat, not only when a webhook arrives: a region
/// whose outbox stops taking writes is reported at once, and one whose outbox takes writes
/// again returns to service even if no webhook comes (an idle region gets none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_that_stores_again_is_reported_without_a_webhook() {
    let h = Harness::start(3600).await;
    h.wait_for("a heartbeat", |h| !h.edge.heartbeats().is_empty())
        .await;
    assert_eq!(h.edge.heartbeats().last().expect("beat")["events_ok"], true);
    let outbox = rusqlite::Connection::open(h.dir.path().join("data").join("outbox.db"))
        .expect("open the outbox");
    outbox
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");
    // No webhook yet: the heartbeats see it themselves.
    h.wait_for("a heartbeat saying webhooks would not be kept", |h| {
        h.edge
            .heartbeats()
            .last()
            .is_some_and(|b| b["events_ok"] == false)
    })
    .await;
    // A webhook that cannot be stored meanwhile.
    let event = synthetic_event(1);
    let signed = livekit_signature(LK_SECRET, &event);
    assert_eq!(h.post_webhook(&event, Some(signed)).await, 500);
    outbox.execute_batch("ROLLBACK").expect("release the lock");
    let released = h.edge.heartbeats().len();
    // No further webhook: the region is back once a heartbeat finds the outbox writable.
    h.wait_for("a heartbeat saying webhooks are kept again", |h| {
        h.edge.heartbeats()[released..]
            .iter()
            .any(|b| b["events_ok"] == true)
    })
    .await;
    // And stays back.
    let recovered = h.edge.heartbeats().len();
    h.wait_for("three more heartbeats", |h| {
        h.edge.heartbeats().len() >= recovered + 3
    })
    .await;
    assert!(h.edge.heartbeats()[recovered..]
        .iter()
        .all(|b| b["events_ok"] == true));
    // Nothing was stored or forwarded on the way.
    assert_eq!(h.metric("media_sidecar_outbox_depth").await, 0.0);
    assert!(h.edge.batches().is_empty());
}

/// An event the edge could not take even alone in a batch (256 KiB with the batch around it) is
/// refused with a status LiveKit counts as a failure, rather than taken and then refused by the
/// edge for good; one that just fits is taken and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_for_the_edge_is_refused_and_one_that_fits_is_delivered() {
    let h = Harness::start(3600).await;
    // The batch envelope around a single event, as this region's batches spell it.
    let most = EDGE_MAX_BODY_BYTES - format!(r#"{{"region_id":"{REGION}","events":[]}}"#).len();
    let sized = |n: usize, bytes: usize| {
        let event = synthetic_event(n);
        let pad = bytes - event.len() - r#""pad":"","#.len();
        event.replacen('{', &format!("{{\"pad\":\"{}\",", "x".repeat(pad)), 1)
    };
    let over = sized(1, most + 1);
    assert_eq!(over.len(), most + 1);
    let answer = h
        .http
        .post(format!("{}/webhook", h.sidecar.url))
        .header("Authorization", livekit_signature(LK_SECRET, &over))
        .body(over.clone())
        .send()
        .await
        .expect("post webhook");
    let status = answer.status().as_u16();
    let msg = answer.text().await.expect("answer");
    assert_eq!(status, 500, "{msg}");
    assert!(msg.contains("too large for the edge"), "{msg}");
    h.wait_for_metric("media_sidecar_webhooks_rejected_total", |v| v == 1.0)
        .await;
    let fits = sized(2, most);
    assert_eq!(
        h.post_webhook(&fits, Some(livekit_signature(LK_SECRET, &fits)))
            .await,
        200
    );
    h.wait_for("the event that fits", |h| !synthetic_ids(h).is_empty())
        .await;
    assert_eq!(synthetic_ids(&h), expected_ids(2..3));
    h.wait_for_metric("media_sidecar_outbox_depth", |v| v == 0.0)
        .await;
    assert_eq!(
        h.metric("media_sidecar_events_dead_lettered_total").await,
        0.0
    );
    assert!(h
        .edge
        .answered_batches()
        .iter()
        .all(|&(status, _)| status == 200));
    // A webhook refused for its size is no storage failure: the region stays in service.
    assert_eq!(h.edge.heartbeats().last().expect("beat")["events_ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once() {
    let mut h = Harness::start(3600).await;
    h.livekit.create_room("busy").await;
    h.sidecar.signal(Signal::SIGTERM);
    h.wait_for("a draining heartbeat", |h| {
        h.edge.heartbeats().iter().any(|b| b["draining"] == true)
    })
    .await;
    let asked = Instant::now();
    h.sidecar.signal(Signal::SIGTERM);
    let status = loop {
        if let Some(status) = h.sidecar.exited() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "still running after the second SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", h.log_tail());
    assert!(h.edge.heartbeats().iter().all(|b| b["leaving"] == false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_takes_smaller_batches_gets_them_from_then_on() {
    let h = Harness::start(3600).await;
    // Sixty events wait in the outbox, so the first batch after the edge returns is large.
    h.edge.set_mode(Mode::Refuse);
    post_synthetic(&h, 0..60).await;
    h.wait_for_metric("media_sidecar_outbox_depth", |v| v >= 60.0)
        .await;
    h.edge.set_mode(Mode::Capped(7));
    h.wait_for("all sixty events", |h| synthetic_ids(h).len() == 60)
        .await;
    assert_eq!(synthetic_ids(&h), expected_ids(0..60));
    let answered = h.edge.answered_batches();
    // One batch over the limit, refused with it; then never more than the limit, and no
    // growing back into another refusal after each success.
    let refused = answered.iter().filter(|(status, _)| *status == 413).count();
    assert_eq!(refused, 1, "answers and sizes: {answered:?}");
    assert!(
        answered
            .iter()
            .all(|&(status, events)| status != 200 || events <= 7),
        "answers and sizes: {answered:?}"
    );
    batches_are_well_formed(&h);
}
