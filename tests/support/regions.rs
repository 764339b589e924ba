//! Media regions for the system tests: real LiveKit servers on their own ports, each posting
//! its webhooks to a real `media-sidecar` that heartbeats and relays to the edge.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{free_port, media_ip, spawn_service, udp_range_start, unique, url_host};

/// A LiveKit server for one region.
pub struct LiveKitServer {
    child: Option<Child>,
    /// `ws://IP:PORT` for clients.
    pub ws_url: String,
    /// `http://127.0.0.1:PORT` for its Twirp API.
    pub http_url: String,
    /// API key.
    pub key: String,
    /// API secret.
    pub secret: String,
    dir: PathBuf,
}

/// A LiveKit server to start later, its address and credentials chosen now: for an edge whose
/// configuration names the server before the server can name the edge (its webhook URL).
pub struct PlannedLiveKit {
    /// `ws://IP:PORT` for clients.
    pub ws_url: String,
    /// API key.
    pub key: String,
    /// API secret.
    pub secret: String,
    name: String,
    port: u16,
}

impl PlannedLiveKit {
    /// Chooses a port and credentials for LiveKit server `name`.
    pub fn new(name: &str) -> PlannedLiveKit {
        let port = free_port();
        PlannedLiveKit {
            ws_url: format!("ws://{}:{port}", url_host(&media_ip())),
            key: format!("key{}", unique("lk").replace('-', "")),
            secret: format!("livekit-secret-{}-{}", unique("a"), unique("b")),
            name: name.to_owned(),
            port,
        }
    }

    /// Starts it, posting its webhooks to `webhook_url`.
    pub fn start(self, webhook_url: &str) -> LiveKitServer {
        LiveKitServer::launch(self, webhook_url)
    }
}

impl LiveKitServer {
    /// Starts a LiveKit server that posts its webhooks to `webhook_url`.
    pub fn start(name: &str, webhook_url: &str) -> LiveKitServer {
        PlannedLiveKit::new(name).start(webhook_url)
    }

    fn launch(plan: PlannedLiveKit, webhook_url: &str) -> LiveKitServer {
        let PlannedLiveKit {
            ws_url,
            key,
            secret,
            name,
            port,
        } = plan;
        let dir = std::env::temp_dir().join(unique(&format!("livekit-{name}")));
        std::fs::create_dir_all(&dir).expect("livekit dir");
        let udp = udp_range_start();
        let ip = media_ip();
        let config = format!(
            "port: {port}\nrtc:\n  tcp_port: {tcp}\n  port_range_start: {udp}\n  port_range_end: {udp_end}\n  \
             use_external_ip: false\n  enable_loopback_candidate: true\n\
             room:\n  auto_create: true\n  empty_timeout: 5\n  departure_timeout: 2\n\
             logging:\n  level: info\n  json: false\n\
             keys:\n  {key}: {secret}\n\
             webhook:\n  api_key: {key}\n  urls:\n    - {webhook_url}\n",
            tcp = port + 1,
            udp_end = udp + 49,
        );
        let config_path = dir.join("livekit.yaml");
        std::fs::write(&config_path, config).expect("livekit config");
        let log = std::fs::File::create(dir.join("livekit.log")).expect("livekit log");
        let mut command = Command::new(
            edgemeet::livekit_server::find_binary(None)
                .expect("livekit-server: run scripts/bootstrap.sh"),
        );
        command
            .arg("--config")
            .arg(&config_path)
            .args(["--node-ip", &ip, "--bind", "127.0.0.1"]);
        if ip != "127.0.0.1" {
            command.args(["--bind", &ip]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start livekit-server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "livekit-server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        LiveKitServer {
            child: Some(child),
            ws_url,
            http_url: format!("http://127.0.0.1:{port}"),
            key,
            secret,
            dir,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("livekit.log")).unwrap_or_default()
    }

    /// SIGSTOP: the media server hangs. Its sockets still take connections (the kernel
    /// completes them) but nothing answers, as with a wedged or overloaded server.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`LiveKitServer::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("livekit-server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid; it has not been waited for, so the pid is its.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// SIGKILL: the region's media server is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LiveKitServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `media-sidecar` binary, built next to the test binaries.
pub fn sidecar_binary() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_edgemeet"));
    let path = exe.with_file_name("media-sidecar");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build.sh",
        path.display()
    );
    path
}

/// A running `media-sidecar serve` beside one LiveKit server.
pub struct Sidecar {
    child: Option<Child>,
    /// Its HTTP base (`/webhook`, `/metrics`, `/admin/drain`).
    pub base: String,
    /// The region it serves.
    pub region_id: String,
    /// Its secret (shared with the edge).
    pub secret: String,
    config_path: PathBuf,
    /// What it logged on stderr so far.
    pub log: Vec<String>,
    stderr: Option<mpsc::Receiver<String>>,
}

impl Sidecar {
    /// Starts a sidecar for `region_id` on `port` (LiveKit's webhook URL points there), beside
    /// `livekit`, reporting to `edge_url`. `extra_toml` is appended (e.g. `[capacity]`).
    pub fn start(
        region_id: &str,
        port: u16,
        livekit: &LiveKitServer,
        edge_url: &str,
        secret: &str,
        extra_toml: &str,
    ) -> Sidecar {
        let dir = std::env::temp_dir().join(unique(&format!("sidecar-{region_id}")));
        std::fs::create_dir_all(&dir).expect("sidecar dir");
        let config = format!(
            "region_id = \"{region_id}\"\nlisten = \"127.0.0.1:{port}\"\n\
             sidecar_secret = \"{secret}\"\ndata_dir = \"{data}\"\nheartbeat_seconds = 1\n\
             drain_deadline_seconds = 120\n{extra_toml}\n\
             [livekit]\nurl = \"{lk}\"\napi_key = \"{key}\"\napi_secret = \"{lk_secret}\"\n\
             [edge]\nurl = \"{edge_url}\"\n",
            data = dir.join("data").display(),
            lk = livekit.http_url,
            key = livekit.key,
            lk_secret = livekit.secret,
        );
        let config_path = dir.join("sidecar.toml");
        std::fs::write(&config_path, config).expect("sidecar config");
        let mut sidecar = Sidecar {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            region_id: region_id.to_owned(),
            secret: secret.to_owned(),
            config_path,
            log: Vec::new(),
            stderr: None,
        };
        sidecar.launch();
        sidecar
    }

    fn launch(&mut self) {
        let spawned = spawn_service(
            &sidecar_binary(),
            &self.config_path,
            Duration::from_secs(30),
            &mut self.log,
        );
        self.stderr = Some(spawned.stderr);
        self.child = Some(spawned.child);
    }

    fn drain_log(&mut self) {
        if let Some(stderr) = &self.stderr {
            self.log.extend(stderr.try_iter());
        }
    }

    /// SIGKILL: the region goes silent (and anything unsent stays in its outbox).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.drain_log();
    }

    /// Starts it again on the same config and outbox.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        self.launch();
    }

    /// SIGTERM: the region drains and the sidecar leaves once its LiveKit has no rooms.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    /// Waits for the process to exit; its code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    self.drain_log();
                    return status.code();
                }
            } else {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Its Prometheus metrics text.
    pub fn metrics(&self) -> String {
        ureq::get(&format!("{}/metrics", self.base))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.config_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A region: a LiveKit server and, once the edge runs, its sidecar.
pub struct Region {
    /// The region id.
    pub id: String,
    /// The region's LiveKit.
    pub livekit: LiveKitServer,
    /// Its sidecar, once started.
    pub sidecar: Option<Sidecar>,
    /// The sidecar's secret (the edge's config carries it too).
    pub secret: String,
    sidecar_port: u16,
}

impl Region {
    /// Starts the region's LiveKit, its webhooks aimed at the sidecar to come.
    pub fn start(id: &str) -> Region {
        let sidecar_port = free_port();
        let livekit = LiveKitServer::start(id, &format!("http://127.0.0.1:{sidecar_port}/webhook"));
        Region {
            id: id.to_owned(),
            livekit,
            sidecar: None,
            secret: format!("sidecar-secret-{}-{}", unique("a"), unique("b")),
            sidecar_port,
        }
    }

    /// The edge config's `[[regions]]` entry for this region at `lat`, `lon`.
    pub fn edge_toml(&self, lat: f64, lon: f64) -> String {
        format!(
            "[[regions]]
id = \"{id}\"
name = \"Region {id}\"
lat = {lat}
lon = {lon}
\
             livekit_url = \"{ws}\"
api_key = \"{key}\"
api_secret = \"{secret}\"
\
             sidecar_secret = \"{sidecar}\"
",
            id = self.id,
            ws = self.livekit.ws_url,
            key = self.livekit.key,
            secret = self.livekit.secret,
            sidecar = self.secret,
        )
    }

    /// Starts the sidecar, reporting to the edge at `edge_url`.
    pub fn start_sidecar(&mut self, edge_url: &str, extra_toml: &str) {
        self.sidecar = Some(Sidecar::start(
            &self.id,
            self.sidecar_port,
            &self.livekit,
            edge_url,
            &self.secret,
            extra_toml,
        ));
    }

    /// The running sidecar.
    pub fn sidecar(&mut self) -> &mut Sidecar {
        self.sidecar.as_mut().expect("sidecar started")
    }
}
