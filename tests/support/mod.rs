//! What the system tests share: starting the real `edgemeet up` (local host + real LiveKit) as a
//! child process, and a [`Target`] that talks to an edge over HTTP the way customers' backends
//! do. The cases only see a `Target`, so the same cases can run against another edge build.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub mod recorder;
pub mod regions;
pub mod s3;
pub mod worker;

/// An edge under test: where it is and the plugNmeet credentials it accepts.
pub struct Target {
    /// e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// plugNmeet API key.
    pub api_key: String,
    /// plugNmeet API secret.
    pub api_secret: String,
    agent: ureq::Agent,
}

/// A response, whole.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Every header.
    pub headers: ureq::http::HeaderMap,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Content-Type (empty when absent).
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }
}

/// Lowercase hex HMAC-SHA256, as plugNmeet's SDKs sign.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl Target {
    /// A target at `base` with these credentials.
    pub fn new(base: String, api_key: String, api_secret: String) -> Target {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Target {
            base,
            api_key,
            api_secret,
            agent,
        }
    }

    /// A signed `/auth/*` call with a JSON body; returns status and JSON.
    pub fn call(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        let reply = self.call_bytes(path, &bytes);
        (reply.status, reply.json())
    }

    /// A signed `/auth/*` call with these exact body bytes.
    pub fn call_bytes(&self, path: &str, body: &[u8]) -> Reply {
        let signature = sign(&self.api_secret, body);
        self.post(
            path,
            body,
            &[
                ("API-KEY", self.api_key.as_str()),
                ("HASH-SIGNATURE", signature.as_str()),
                ("Content-Type", "application/json"),
            ],
        )
    }

    /// A POST with exactly these headers and body.
    pub fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        Self::collect(response)
    }

    /// A request with another method and no body.
    pub fn request(&self, method: &str, path: &str) -> Reply {
        self.send(method, path, &[])
    }

    /// A request with any method and these headers, without a body (a browser's CORS
    /// preflight, a cross-origin GET).
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(()).expect("request");
        let response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if method == "HEAD" {
            // No body to read (and none to decompress, whatever Content-Encoding says).
            return Self::collect_head(&response);
        }
        Self::collect(response)
    }

    fn collect_head(response: &ureq::http::Response<ureq::Body>) -> Reply {
        Reply {
            status: response.status().as_u16(),
            body: Vec::new(),
            headers: response.headers().clone(),
        }
    }

    fn collect(mut response: ureq::http::Response<ureq::Body>) -> Reply {
        let mut reply = Self::collect_head(&response);
        response
            .body_mut()
            .as_reader()
            .read_to_end(&mut reply.body)
            .expect("read body");
        reply
    }

    /// The path and query of a BigBlueButton API call with these parameters (as sent), signed
    /// with SHA-256 under the API secret as BBB signs: `<call><params><secret>`.
    pub fn bbb_path(&self, call: &str, params: &str) -> String {
        let sum = hex::encode(Sha256::digest(
            format!("{call}{params}{}", self.api_secret).as_bytes(),
        ));
        let sep = if params.is_empty() { "" } else { "&" };
        format!(
            "/{}/bigbluebutton/api/{call}?{params}{sep}checksum={sum}",
            self.api_key
        )
    }

    /// GET `path_and_query` (a full URL is cut to its path), not following a redirect.
    pub fn get_unfollowed(&self, path_and_query: &str) -> Reply {
        let path = match path_and_query.find("://") {
            Some(at) => {
                let rest = &path_and_query[at + 3..];
                &rest[rest.find('/').unwrap_or(rest.len())..]
            }
            None => path_and_query,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let response = agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Self::collect(response)
    }

    /// Creates a room with a title; panics unless it succeeds. Returns `room_info`.
    pub fn create_room(&self, room_id: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({"room_id": room_id, "metadata": {"room_title": format!("Room {room_id}")}});
        merge(&mut body, extra);
        let (status, json) = self.call("/auth/room/create", &body);
        assert_eq!(status, 200, "{json}");
        assert_eq!(json["status"], true, "create {room_id}: {json}");
        json["room_info"].clone()
    }

    /// A join token for a user; panics unless it succeeds.
    pub fn join_token(
        &self,
        room_id: &str,
        user_id: &str,
        is_admin: bool,
        is_hidden: bool,
    ) -> String {
        let (_, json) = self.call(
            "/auth/room/getJoinToken",
            &serde_json::json!({"room_id": room_id, "user_info": {
                "name": format!("User {user_id}"), "user_id": user_id,
                "is_admin": is_admin, "is_hidden": is_hidden}}),
        );
        assert_eq!(json["status"], true, "getJoinToken: {json}");
        json["token"].as_str().expect("token").to_owned()
    }

    /// `POST /api/session` with a join token and extra headers.
    pub fn session(&self, token: &str, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("Authorization", token)];
        all.extend_from_slice(headers);
        self.post("/api/session", b"{}", &all)
    }
}

/// Deep-merges `extra` into `base` (objects merge, anything else replaces).
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// The text of the first `<name>` element of a BBB answer.
pub fn xml_field<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        + open.len();
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    &xml[start..end]
}

/// The claims of a JWT, without checking it.
pub fn jwt_claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims JSON")
}

/// An HS256 JWT over arbitrary claims (to forge expired or odd tokens in tests).
pub fn hs256(secret: &str, claims: &Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(&serde_json::to_vec(claims).expect("claims"))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A unique suffix for ids created by one test run.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("random");
    format!("{prefix}-{}", hex::encode(bytes))
}

/// The media address LiveKit advertises. Inside `scripts/test.sh`'s private network namespace
/// it is a veth address (WebRTC stacks ignore loopback); elsewhere loopback.
pub fn media_ip() -> String {
    std::env::var("EDGEMEET_TEST_MEDIA_IP").unwrap_or_else(|_| "127.0.0.1".into())
}

/// A UDP media port range of 50 for one LiveKit, distinct per process and per system in it.
pub fn udp_range_start() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 4;
    40000 + (std::process::id() % 100) as u16 * 200 + slot * 50
}

/// A free loopback TCP port (and the one after it, which LiveKit also takes).
///
/// Ports come from 20000-31999, below the kernel's ephemeral range (32768 and up): a port the
/// kernel handed out for `:0` and we released could be handed to any outgoing connection
/// before the service we pick it for binds it (a CI run once failed so). Each call in this
/// process gets a different pair, so parallel cases never share one.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = (std::process::id() % 200) * 60;
    loop {
        let step = NEXT.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        let port = u16::try_from(20_000 + (base + step) % 12_000).expect("port");
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
}

/// The directory cargo builds into (the test binary lives in `<target>/debug/deps`).
fn target_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_edgemeet"));
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The edge-api component that `scripts/build.sh` builds.
pub fn component_path() -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2")
        .join("component")
        .join("edge_api.wasm");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build.sh (or scripts/test.sh) first",
        path.display()
    );
    path
}

/// The Python that has LiveKit's and plugNmeet's SDKs (installed by scripts/bootstrap.sh).
pub fn python() -> PathBuf {
    let python = edgemeet::cache_dir()
        .join("venv")
        .join("bin")
        .join("python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/bootstrap.sh",
        python.display()
    );
    python
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An empty directory for a test's artefacts (screenshots), kept after the run:
/// `$CARGO_TARGET_DIR/test-artefacts/<name>` (or `target/` of the source tree).
pub fn artefacts_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("test-artefacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artefacts dir");
    dir
}

/// POSTs `sent` (all or the start of a body) over a raw connection, declaring
/// `Content-Length: declared`, with `headers`; returns the status code (0 without one) and the
/// whole answer. A server may answer an oversize body as soon as it sees the declared length,
/// without reading it, and close: a client that stops at the failed write (as ureq does) never
/// reads that answer, so the write's failure is ignored here and the answer read anyway.
pub fn post_tolerating_early_answer(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    sent: &[u8],
    declared: usize,
) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let timeout = Some(Duration::from_secs(10));
    stream.set_read_timeout(timeout).expect("timeout");
    stream.set_write_timeout(timeout).expect("timeout");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {address}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    ));
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(sent));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// A running `edgemeet up` with its own data directory and local LiveKit.
pub struct System {
    child: Option<Child>,
    /// The edge.
    pub target: Target,
    /// Its data directory (removed on drop).
    pub data_dir: PathBuf,
    /// The config file it was started with.
    pub config_path: PathBuf,
    /// LiveKit's HTTP base, e.g. `http://127.0.0.1:7880`.
    pub livekit_http: String,
    /// LiveKit's WebSocket URL as given to clients.
    pub livekit_ws: String,
    /// Local LiveKit API key.
    pub livekit_key: String,
    /// Local LiveKit API secret.
    pub livekit_secret: String,
    /// Lines `edgemeet up` printed on stdout after it said it was ready.
    pub stdout: mpsc::Receiver<String>,
    /// What it printed up to then: what it started.
    pub banner: Vec<String>,
    stderr_path: PathBuf,
}

impl System {
    /// Starts `edgemeet up` with a fresh data directory; `extra_toml` is appended to the config.
    pub fn start(name: &str, extra_toml: &str) -> System {
        System::start_with(name, "", extra_toml)
    }

    /// Like [`System::start`], with `edge_toml` lines added to the `[edge]` table. The edge
    /// keeps its port across [`System::restart`], so sidecars can reach it again.
    pub fn start_with(name: &str, edge_toml: &str, extra_toml: &str) -> System {
        let dir = std::env::temp_dir().join(unique(&format!("edgemeet-{name}")));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let api_secret = format!("test-api-secret-{}-{}", unique("a"), unique("b"));
        let port = free_port();
        let udp = udp_range_start();
        let media_ip = media_ip();
        let bind = if media_ip == "127.0.0.1" {
            r#"["127.0.0.1"]"#.to_string()
        } else {
            format!(r#"["127.0.0.1", "{media_ip}"]"#)
        };
        let config = format!(
            "[edge]\nlisten = \"127.0.0.1:{edge_port}\"\ndata_dir = \"{data}\"\ncomponent = \"{component}\"\n\
             api_key = \"plugnmeet\"\napi_secret = \"{api_secret}\"\n\
             geo_latitude_header = \"x-test-latitude\"\ngeo_longitude_header = \"x-test-longitude\"\n{edge_toml}\n\
             [livekit]\nstart = true\nbinary = \"{binary}\"\nport = {port}\nbind = {bind}\nnode_ip = \"{media_ip}\"\n\
             udp_port_start = {udp}\nudp_port_end = {udp_end}\nsidecar_port = {sidecar_port}\n{extra_toml}\n{recorder}",
            data = dir.join("data").display(),
            component = component_path().display(),
            binary = edgemeet::livekit_server::find_binary(None)
                .expect("livekit-server: run scripts/bootstrap.sh")
                .display(),
            udp_end = udp + 49,
            edge_port = free_port(),
            sidecar_port = free_port(),
            // `up` would start its own recorder beside a LiveKit it can reach: only the tests
            // that ask for it get one.
            recorder = if extra_toml.contains("[recorder]") {
                ""
            } else {
                "[recorder]\nstart = false\n"
            },
        );
        let config_path = dir.join("edgemeet.toml");
        std::fs::write(&config_path, config).expect("write config");
        let (child, stdout, stderr_path) = spawn_up(&config_path, &dir);
        let mut system = System {
            child: Some(child),
            target: Target::new(String::new(), "plugnmeet".into(), api_secret),
            data_dir: dir.join("data"),
            config_path,
            livekit_http: format!("http://127.0.0.1:{port}"),
            livekit_ws: format!("ws://{}:{port}", url_host(&media_ip)),
            livekit_key: String::new(),
            livekit_secret: String::new(),
            stdout,
            banner: Vec::new(),
            stderr_path,
        };
        let base = system.wait_ready();
        system.target.base = base;
        let creds: toml::Value = toml::from_str(
            &std::fs::read_to_string(system.data_dir.join("dev-credentials.toml"))
                .expect("dev credentials"),
        )
        .expect("credentials toml");
        system.livekit_key = creds["livekit_key"].as_str().expect("key").to_owned();
        system.livekit_secret = creds["livekit_secret"].as_str().expect("secret").to_owned();
        system
    }

    /// Starts `edgemeet up` again on this system's config and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        let dir = self.config_path.parent().expect("dir").to_path_buf();
        let (child, stdout, stderr_path) = spawn_up(&self.config_path, &dir);
        self.child = Some(child);
        self.stdout = stdout;
        self.stderr_path = stderr_path;
        self.banner.clear();
        self.target.base = self.wait_ready();
    }

    fn wait_ready(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match self.stdout.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("edgemeet: ready at ") {
                        return addr.trim().to_owned();
                    }
                    self.banner.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                    {
                        panic!("edgemeet up exited with {status}:\n{}", self.stderr());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("edgemeet up closed stdout:\n{}", self.stderr())
                }
            }
        }
        panic!("edgemeet up was not ready within 120 s:\n{}", self.stderr());
    }

    /// What `edgemeet up` logged on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The pid of `edgemeet up`, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits up to `timeout` for `edgemeet up` to exit by itself; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM (like Ctrl-C's SIGINT, handled the same); waits up to `grace` and returns the
    /// exit status, or None if it had to be killed.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pgid = child.id() as libc::pid_t;
        // SAFETY: signalling our own child's process group.
        unsafe {
            libc::kill(pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                // Anything left in its group (LiveKit) is stopped too.
                // SAFETY: as above.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = child.wait();
        None
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
        if let Some(dir) = self.config_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn spawn_up(config: &Path, dir: &Path) -> (Child, mpsc::Receiver<String>, PathBuf) {
    let stderr_path = dir.join(format!("stderr-{}.log", unique("run")));
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgemeet"))
        .arg("up")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info,wasmtime=warn,cranelift=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        // Its own process group, so the tests can stop it and its LiveKit together.
        .process_group(0)
        .spawn()
        .expect("spawn edgemeet up");
    let rx = forward_lines(child.stdout.take().expect("stdout"));
    (child, rx, stderr_path)
}

/// Sends a child's output lines (stdout or stderr) to a channel from a thread of their own.
/// A service process started by [`spawn_service`].
pub struct Spawned {
    /// The process.
    pub child: Child,
    /// The address it printed (`http://ADDR`).
    pub base: String,
    /// Its stderr, line by line.
    pub stderr: mpsc::Receiver<String>,
}

/// Starts `binary serve --config CONFIG` (RUST_LOG=info) and waits up to `timeout` for the
/// `listening on http://ADDR` line every edgemeet service prints when ready. While waiting its
/// stderr goes into `log`, which a failure shows.
pub fn spawn_service(
    binary: &Path,
    config: &Path,
    timeout: Duration,
    log: &mut Vec<String>,
) -> Spawned {
    let mut child = Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    let stdout = forward_lines(child.stdout.take().expect("stdout"));
    let stderr = forward_lines(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(line) = stdout.recv_timeout(Duration::from_millis(200)) {
            if let Some(base) = line.strip_prefix("listening on ") {
                return Spawned {
                    child,
                    base: base.trim().to_owned(),
                    stderr,
                };
            }
            continue;
        }
        log.extend(stderr.try_iter());
        let exited = child.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "{} did not start ({exited:?}):\n{}",
            binary.display(),
            log.join("\n")
        );
    }
}

pub fn forward_lines(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn url_host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    }
}

/// A LiveKit participant: `tests/clients/livekit_participant.py`, LiveKit's Python realtime
/// SDK joining over real WebRTC. Its stdout lines arrive on `lines`.
pub struct Participant {
    child: Child,
    /// stdout lines.
    pub lines: mpsc::Receiver<String>,
}

impl Participant {
    /// Joins `url` with `token`; `publish` is `audio,video` or `none`.
    pub fn join(url: &str, token: &str, publish: &str) -> Participant {
        Participant::join_with(url, token, publish, &[])
    }

    /// [`Participant::join`] with more of `livekit_participant.py`'s options (`--video-codec`,
    /// `--resize-after`).
    pub fn join_with(url: &str, token: &str, publish: &str, options: &[&str]) -> Participant {
        // WebRTC stacks skip loopback and would send media over the machine's own network
        // interface; real media only ever crosses the private namespace scripts/test.sh makes.
        assert_ne!(
            media_ip(),
            "127.0.0.1",
            "a real participant needs the private network namespace: run scripts/test.sh"
        );
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/clients/livekit_participant.py"))
            .args([
                "--url",
                url,
                "--token",
                token,
                "--publish",
                publish,
                "--seconds",
                "90",
            ])
            .args(options)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn participant");
        let lines = forward_lines(child.stdout.take().expect("stdout"));
        Participant { child, lines }
    }

    /// Waits for a stdout line starting with `prefix`; panics after `timeout`.
    pub fn expect_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("participant did not print `{prefix}` within {timeout:?}; it printed {seen:?}");
    }

    /// Leaves the room gracefully (closes stdin, which the client treats as "leave") and waits
    /// for it to exit.
    pub fn leave(mut self, timeout: Duration) -> Option<i32> {
        drop(self.child.stdin.take());
        self.wait_exit(timeout)
    }

    /// Waits for the process to exit and returns its code.
    pub fn wait(mut self, timeout: Duration) -> Option<i32> {
        self.wait_exit(timeout)
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
