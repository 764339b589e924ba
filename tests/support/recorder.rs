//! What the recorder tests share: the real `recorder-native serve` as a child process, a control
//! plane that receives its signed events and heartbeats, a real nginx with the RTMP module,
//! LiveKit tokens, and ffprobe/ffmpeg to look at what was written.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{free_port, hs256, now_secs, sign, spawn_service, unique, Reply, System, Target};

/// `edgemeet up` with its local LiveKit as a bare media server: the recorder suites join rooms
/// with LiveKit tokens of their own, not through the edge, so the local media-sidecar (whose
/// webhooks would have the edge delete rooms it never opened) is left out.
pub fn media_system(name: &str) -> System {
    System::start(name, "sidecar = false\n")
}

/// The `recorder-native` binary, built by scripts/build.sh next to the test binaries.
pub fn recorder_binary() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_edgemeet"));
    let path = exe.with_file_name("recorder-native");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build.sh",
        path.display()
    );
    path
}

/// A LiveKit token for `identity` in `room` with these video grant fields added.
pub fn livekit_token(system: &System, room: &str, identity: &str, grant: Value) -> String {
    livekit_token_until(system, room, identity, grant, now_secs() + 600)
}

/// The same, expiring at `exp` (Unix seconds; LiveKit allows a minute's leeway past it).
pub fn livekit_token_until(
    system: &System,
    room: &str,
    identity: &str,
    grant: Value,
    exp: i64,
) -> String {
    let mut video = json!({ "room": room, "roomJoin": true });
    if let (Some(video), Some(extra)) = (video.as_object_mut(), grant.as_object()) {
        video.extend(extra.clone());
    }
    hs256(
        &system.livekit_secret,
        &json!({
            "iss": system.livekit_key,
            "sub": identity,
            "name": identity,
            "nbf": now_secs() - 10,
            "exp": exp,
            "video": video,
        }),
    )
}

/// The recorder's hidden-subscriber token for `room`.
pub fn recorder_token(system: &System, room: &str) -> String {
    recorder_token_until(system, room, now_secs() + 600)
}

/// The recorder's token for `room`, expiring at `exp`.
pub fn recorder_token_until(system: &System, room: &str, exp: i64) -> String {
    livekit_token_until(
        system,
        room,
        &unique("recorder"),
        json!({ "canSubscribe": true, "canPublish": false, "hidden": true, "recorder": true }),
        exp,
    )
}

/// A publisher's token for `room`.
pub fn publisher_token(system: &System, room: &str, identity: &str) -> String {
    livekit_token(
        system,
        room,
        identity,
        json!({ "canPublish": true, "canSubscribe": true }),
    )
}

/// Runs the recorder cases of one test binary one at a time: they measure frames kept, which
/// would suffer from sharing two cores.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new room (named from `prefix`) with one publisher, "alice", sending audio and video.
pub fn room_with_publisher(system: &System, prefix: &str) -> (String, super::Participant) {
    let room = unique(prefix);
    let publisher = super::Participant::join(
        &system.livekit_ws,
        &publisher_token(system, &room, "alice"),
        "audio,video",
    );
    publisher.expect_line("joined", Duration::from_secs(30));
    (room, publisher)
}

/// A `/jobs/start` body for `room` with a fresh recorder token; `extra` is merged in.
pub fn start_body(system: &System, room: &str, job_id: &str, extra: Value) -> Value {
    let mut body = json!({
        "job_id": job_id,
        "room_id": room,
        "livekit_url": system.livekit_ws,
        "token": recorder_token(system, room),
    });
    super::merge(&mut body, extra);
    body
}

/// Stands in for the control plane: an HTTP server that checks each POST's signature and keeps
/// what it accepted. While `refusing`, it answers 503 and keeps nothing. Batches holding an
/// event of the job named by [`ControlPlane::refuse_job`] get 400 (a refusal for good).
pub struct ControlPlane {
    /// Where the recorder posts.
    pub url: String,
    accepted: Arc<Mutex<Vec<Value>>>,
    forged: Arc<Mutex<usize>>,
    refusing: Arc<AtomicBool>,
    refused_job: Arc<Mutex<Option<String>>>,
    refused_batches: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlPlane {
    /// Listens on loopback, accepting posts signed with `key` and `secret`.
    pub fn start(key: &str, secret: &str) -> ControlPlane {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("control plane server");
        let url = format!(
            "http://{}/recorder/events",
            server.server_addr().to_ip().expect("ip address")
        );
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let forged = Arc::new(Mutex::new(0));
        let refusing = Arc::new(AtomicBool::new(false));
        let refused_job = Arc::new(Mutex::new(None::<String>));
        let refused_batches = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (key, secret) = (key.to_owned(), secret.to_owned());
        let thread = {
            let (accepted, forged, refusing, stop) = (
                accepted.clone(),
                forged.clone(),
                refusing.clone(),
                stop.clone(),
            );
            let (refused_job, refused_batches) = (refused_job.clone(), refused_batches.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(100))
                    else {
                        continue;
                    };
                    let mut body = Vec::new();
                    let _ = std::io::Read::read_to_end(request.as_reader(), &mut body);
                    let header = |name: &str| {
                        request
                            .headers()
                            .iter()
                            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                            .map(|h| h.value.as_str().to_owned())
                    };
                    let signed = header("API-KEY").as_deref() == Some(key.as_str())
                        && header("HASH-SIGNATURE") == Some(sign(&secret, &body));
                    let status = if !signed {
                        *forged.lock().expect("lock") += 1;
                        401
                    } else if refusing.load(Ordering::Relaxed) {
                        503
                    } else {
                        let value: Value = serde_json::from_slice(&body).expect("json body");
                        let refused = refused_job.lock().expect("lock").clone();
                        let holds_refused = value["events"].as_array().is_some_and(|events| {
                            events.iter().any(|e| {
                                refused
                                    .as_deref()
                                    .is_some_and(|job| e["job"]["job_id"] == job)
                            })
                        });
                        if holds_refused {
                            *refused_batches.lock().expect("lock") += 1;
                            400
                        } else {
                            accepted.lock().expect("lock").push(value);
                            200
                        }
                    };
                    let _ = request.respond(tiny_http::Response::empty(status));
                }
            })
        };
        ControlPlane {
            url,
            accepted,
            forged,
            refusing,
            refused_job,
            refused_batches,
            stop,
            thread: Some(thread),
        }
    }

    /// Answers 503 (and keeps nothing) while `on`.
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::Relaxed);
    }

    /// Answers 400 from now on to every batch that holds an event of `job_id`.
    pub fn refuse_job(&self, job_id: &str) {
        *self.refused_job.lock().expect("lock") = Some(job_id.to_owned());
    }

    /// Batches answered 400 so far.
    pub fn refused_batches(&self) -> usize {
        *self.refused_batches.lock().expect("lock")
    }

    /// Posts with a bad signature seen so far.
    pub fn forged(&self) -> usize {
        *self.forged.lock().expect("lock")
    }

    /// Every event accepted, in arrival order, repeats included.
    pub fn events(&self) -> Vec<Value> {
        self.accepted
            .lock()
            .expect("lock")
            .iter()
            .filter(|b| b["type"] == "events")
            .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Every heartbeat accepted.
    pub fn heartbeats(&self) -> Vec<Value> {
        self.accepted
            .lock()
            .expect("lock")
            .iter()
            .filter(|b| b["type"] == "heartbeat")
            .cloned()
            .collect()
    }

    /// The job states reported for `job_id`, in order of arrival, repeats removed by event id.
    pub fn states(&self, job_id: &str) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.events()
            .into_iter()
            .filter(|e| e["job"]["job_id"] == job_id && e["type"] == "job_state")
            .filter(|e| seen.insert(e["event_id"].as_str().unwrap_or("").to_owned()))
            .map(|e| e["job"]["state"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Waits until an event matches `pred`; returns it.
    pub fn wait_event(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events().into_iter().find(|e| pred(e)) {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no event {what} within {timeout:?}; got {:#?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A running `recorder-native serve` with its own data directory.
pub struct Service {
    child: Option<Child>,
    /// The job API, signed with the recorder's key and secret.
    pub api: Target,
    /// The service's data directory.
    pub data_dir: PathBuf,
    /// Where recordings go.
    pub recordings: PathBuf,
    config_path: PathBuf,
    stderr: Option<mpsc::Receiver<String>>,
    /// Lines the service (and its workers) logged so far.
    pub log: Vec<String>,
}

/// The recorder's API key in tests.
pub const RECORDER_KEY: &str = "recorder-test";

/// A fresh secret for a service and its control plane.
pub fn new_secret() -> String {
    format!("recorder-secret-{}", unique("s"))
}

impl Service {
    /// Starts a service named `name` signing with `secret` (see [`new_secret`]); `extra_toml`
    /// is appended to its config (tables such as `[admission]` and `[watchdog]`);
    /// `control_plane` receives its events, if given.
    pub fn start(
        name: &str,
        secret: &str,
        control_plane: Option<&ControlPlane>,
        extra_toml: &str,
    ) -> Service {
        let dir = std::env::temp_dir().join(unique(&format!("recorder-{name}")));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let data_dir = dir.join("data");
        let mut config = format!(
            "listen = \"127.0.0.1:0\"\nnode_id = \"{name}\"\napi_key = \"{RECORDER_KEY}\"\n\
             api_secret = \"{secret}\"\ndata_dir = \"{}\"\n",
            data_dir.display()
        );
        if let Some(cp) = control_plane {
            config.push_str(&format!(
                "[control_plane]\nurl = \"{}\"\nheartbeat_seconds = 1\n",
                cp.url
            ));
        }
        config.push_str(extra_toml);
        let config_path = dir.join("recorder.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut service = Service {
            child: None,
            api: Target::new(String::new(), RECORDER_KEY.into(), secret.to_owned()),
            recordings: data_dir.join("recordings"),
            data_dir,
            config_path,
            stderr: None,
            log: Vec::new(),
        };
        service.launch();
        service
    }

    /// A service on a port chosen beforehand (`listen = "127.0.0.1:PORT"`), so that its address
    /// can go into a control plane's config (the edge's `[[recorders]]`) before the service
    /// exists (see [`PlannedRecorder`]). It heartbeats every second to `control_plane_url` and
    /// writes its recordings to `recordings`; `name` is its `node_id`; `extra_toml` is appended
    /// to its config (tables such as `[broadcast]`).
    pub fn start_at(
        name: &str,
        secret: &str,
        port: u16,
        control_plane_url: &str,
        recordings: &Path,
        extra_toml: &str,
    ) -> Service {
        let dir = std::env::temp_dir().join(unique(&format!("recorder-{name}")));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let data_dir = dir.join("data");
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\nnode_id = \"{name}\"\napi_key = \"{RECORDER_KEY}\"\n\
             api_secret = \"{secret}\"\ndata_dir = \"{}\"\nrecordings_dir = \"{}\"\n\
             [control_plane]\nurl = \"{control_plane_url}\"\nheartbeat_seconds = 1\n{extra_toml}",
            data_dir.display(),
            recordings.display(),
        );
        let config_path = dir.join("recorder.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut service = Service {
            child: None,
            api: Target::new(String::new(), RECORDER_KEY.into(), secret.to_owned()),
            recordings: recordings.to_path_buf(),
            data_dir,
            config_path,
            stderr: None,
            log: Vec::new(),
        };
        service.launch();
        service
    }

    fn launch(&mut self) {
        let spawned = spawn_service(
            &recorder_binary(),
            &self.config_path,
            Duration::from_secs(60),
            &mut self.log,
        );
        self.api.base = spawned.base;
        self.stderr = Some(spawned.stderr);
        self.child = Some(spawned.child);
    }

    /// Its configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Starts the service again on the same config and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.launch();
    }

    fn drain(&mut self) {
        if let Some(stderr) = &self.stderr {
            self.log.extend(stderr.try_iter());
        }
    }

    /// Waits for a log line containing `needle` after line `from`; returns its index.
    pub fn wait_log(&mut self, from: usize, needle: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if let Some(i) = self.log.iter().skip(from).position(|l| l.contains(needle)) {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "the recorder did not log `{needle}` within {timeout:?}:\n{}",
                self.log.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A signed call; status and JSON answer.
    pub fn call(&self, path: &str, body: &Value) -> (u16, Value) {
        self.api.call(path, body)
    }

    /// Starts a job; panics unless accepted.
    pub fn start_job(&self, body: &Value) -> Value {
        let (status, reply) = self.call("/jobs/start", body);
        assert_eq!(status, 200, "start refused: {reply}");
        reply["job"].clone()
    }

    /// The job `job_id` as the API lists it.
    pub fn job(&self, job_id: &str) -> Option<Value> {
        let (status, reply) = self.call("/jobs/list", &json!({}));
        assert_eq!(status, 200, "{reply}");
        reply["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["job_id"] == job_id).cloned())
    }

    /// Polls until the job is in `state`; returns it.
    pub fn wait_state(&mut self, job_id: &str, state: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(job_id);
            if let Some(job) = job.as_ref().filter(|j| j["state"] == state) {
                return job.clone();
            }
            if Instant::now() >= deadline {
                self.drain();
                panic!(
                    "job {job_id} not {state} within {timeout:?}: {job:?}\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls until the job has ended (COMPLETE or FAILED); returns it.
    pub fn wait_ended(&mut self, job_id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(job) = self
                .job(job_id)
                .filter(|j| j["state"] == "COMPLETE" || j["state"] == "FAILED")
            {
                return job;
            }
            if Instant::now() >= deadline {
                self.drain();
                panic!(
                    "job {job_id} did not end within {timeout:?}\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of the service.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The pids of its worker processes (`recorder-native record`, not `repair`).
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"record"))
            })
            .collect()
    }

    /// SIGKILL, no clean-up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(Duration::from_millis(200));
        self.drain();
    }

    /// SIGTERM; the exit code (None if it had to be killed after `grace`).
    pub fn terminate(&mut self, grace: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.drain();
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        self.drain();
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: signalling a process this test started (or its child).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Whether process `pid` exists.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Processes whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// A real nginx with the RTMP module on a loopback port, recording every stream it receives.
pub struct Nginx {
    child: Child,
    /// `rtmp://127.0.0.1:PORT/live`.
    pub base_url: String,
    /// Where it records (`<stream>.flv`).
    pub record_dir: PathBuf,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx (Debian's, with libnginx-mod-rtmp, installed by scripts/bootstrap.sh).
    pub fn start() -> Nginx {
        let dir = std::env::temp_dir().join(unique("nginx-rtmp"));
        let record_dir = dir.join("rec");
        std::fs::create_dir_all(&record_dir).expect("nginx dirs");
        let port = free_port();
        let config = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record all; record_path {rec}; record_unique off; }} }} }}\n",
            dir = dir.display(),
            rec = record_dir.display(),
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("nginx.conf");
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx (scripts/bootstrap.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            base_url: format!("rtmp://127.0.0.1:{port}/live"),
            record_dir,
            dir,
        }
    }

    /// SIGKILL: the RTMP server goes away mid-stream.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its error log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// ffprobe's view of a media file: duration and each stream's codec, size and frames.
pub fn probe(file: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "format=duration,format_name:stream=codec_type,codec_name,nb_read_frames,width,height,duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe (installed by scripts/bootstrap.sh)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// The first stream of `kind` (`video`, `audio`) in a probe.
pub fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

/// A number ffprobe gave as a string or a number.
pub fn number(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Asserts `file` is a finished faststart MP4 (index before data, no fragments).
pub fn assert_faststart(file: &Path) {
    let bytes = std::fs::read(file).expect("read mp4");
    let at = |atom: &[u8]| bytes.windows(4).position(|w| w == atom);
    let (moov, mdat) = (at(b"moov").expect("moov"), at(b"mdat").expect("mdat"));
    assert!(moov < mdat, "not faststart: moov at {moov}, mdat at {mdat}");
    assert!(at(b"moof").is_none(), "still fragmented");
}

/// The video frame at `seconds` as 8-bit RGB rows (`width * height * 3` bytes).
pub fn frame_rgb(file: &Path, seconds: f64) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{seconds:.2}"), "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "ffmpeg could not read a frame at {seconds} s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A download token for `job_id`'s recording on a node signing with `secret`, good until
/// `expires_at` (Unix seconds): `<job_id>.<expires_at>.<hex HMAC-SHA256 of
/// "edgemeet-download\n<job_id>\n<expires_at">`, made here from that format rather than with
/// the code under test.
pub fn download_token(secret: &str, job_id: &str, expires_at: i64) -> String {
    let signature = sign(
        secret,
        format!("edgemeet-download\n{job_id}\n{expires_at}").as_bytes(),
    );
    format!("{job_id}.{expires_at}.{signature}")
}

/// A GET or HEAD of `url` with `headers`, following no redirect: status, headers and (for a
/// GET) the body.
pub fn fetch(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = match method {
        "GET" => agent.get(url),
        "HEAD" => agent.head(url),
        other => panic!("method {other} not supported here"),
    };
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request
        .call()
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let mut body = Vec::new();
    if method != "HEAD" {
        std::io::Read::read_to_end(&mut response.body_mut().as_reader(), &mut body)
            .expect("read body");
    }
    Reply {
        status: response.status().as_u16(),
        body,
        headers: response.headers().clone(),
    }
}

/// The whole answer, head and anything after it, to a HEAD of `path` at `base`
/// (`http://host:port`) over a connection of its own that the server closes.
pub fn raw_head(base: &str, path: &str) -> Vec<u8> {
    use std::io::{Read as _, Write as _};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "HEAD {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    answer
}

/// The timestamps (seconds) of the video packets in `file`, in file order.
pub fn video_packet_times(file: &std::path::Path) -> Vec<f64> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// A recorder node planned before the edge starts: the edge's config names the node (its
/// `[[recorders]]` entry) and the node's names the edge, so its port and secret are chosen
/// first. Started (or not) by the case.
pub struct PlannedRecorder {
    /// Its `node_id` and the edge's `[[recorders]]` id.
    pub id: String,
    /// The port its job API will listen on (127.0.0.1).
    pub port: u16,
    /// Its `api_secret`.
    pub secret: String,
    /// Where it writes recordings (kept with the test's artefacts).
    pub recordings: PathBuf,
}

impl PlannedRecorder {
    /// A node `id` whose recordings go to the artefacts directory `artefacts`.
    pub fn new(id: &str, artefacts: &str) -> PlannedRecorder {
        PlannedRecorder {
            id: id.to_owned(),
            port: super::free_port(),
            secret: new_secret(),
            recordings: super::artefacts_dir(artefacts),
        }
    }

    /// Its `[[recorders]]` entry in the edge's config (region `local`).
    pub fn edge_toml(&self) -> String {
        format!(
            "[[recorders]]\nid = \"{id}\"\nurl = \"http://127.0.0.1:{port}\"\n\
             api_key = \"{RECORDER_KEY}\"\napi_secret = \"{secret}\"\nregion = \"local\"\n",
            id = self.id,
            port = self.port,
            secret = self.secret,
        )
    }

    /// Starts `recorder-native serve` on the planned port, reporting to `system`'s edge, with
    /// `extra_toml` (tables such as `[broadcast]`) in its config.
    pub fn start(&self, system: &super::System, extra_toml: &str) -> Service {
        Service::start_at(
            &self.id,
            &self.secret,
            self.port,
            &format!("{}/internal/recorder/events", system.target.base),
            &self.recordings,
            extra_toml,
        )
    }
}
