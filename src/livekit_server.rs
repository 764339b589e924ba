//! Starts and stops the local LiveKit server `edgemeet up` runs when no region is configured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::settings::{write_private, LocalLiveKit};

/// How long LiveKit may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running `livekit-server` child process.
pub struct LiveKitProcess {
    child: Child,
    /// The URL clients connect to.
    pub url: String,
}

/// Finds the `livekit-server` binary: configured, then the bootstrap's cache, then `PATH`.
pub fn find_binary(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    let cache = crate::cache_dir();
    let cached = cache.join("bin").join("livekit-server");
    if cached.is_file() {
        return Ok(cached);
    }
    if let Some(path) = crate::children::on_path("livekit-server") {
        return Ok(path);
    }
    bail!(
        "livekit-server not found (looked in {} and PATH); run scripts/bootstrap.sh",
        cached.display()
    )
}

impl LiveKitProcess {
    /// Writes LiveKit's config (mode 0600, it holds the key) and starts it; returns once its
    /// HTTP port answers. With `webhook_url`, LiveKit posts its webhooks there, signed with
    /// `api_key`.
    pub async fn start(
        settings: &LocalLiveKit,
        data_dir: &Path,
        api_key: &str,
        api_secret: &str,
        webhook_url: Option<&str>,
    ) -> anyhow::Result<LiveKitProcess> {
        let binary = find_binary(settings.binary.as_deref())?;
        let config_path = data_dir.join("livekit.yaml");
        let webhook = webhook_url
            .map(|url| format!("webhook:\n  api_key: {api_key}\n  urls:\n    - {url}\n"))
            .unwrap_or_default();
        // Video is VP8 only: the recorder's WebRTC stack answers each track with the first
        // codec LiveKit offers (VP8), and LiveKit withdraws a track published in another codec
        // from it, so that camera would be missing from recordings. Clients that ask for H.264,
        // VP9 or AV1 publish VP8 instead.
        let config = format!(
            "port: {port}\n\
             rtc:\n  tcp_port: {tcp}\n  port_range_start: {udp_start}\n  port_range_end: {udp_end}\n  use_external_ip: false\n  enable_loopback_candidate: true\n\
             room:\n  auto_create: true\n  empty_timeout: 300\n  enabled_codecs:\n    - mime: audio/opus\n    - mime: audio/red\n    - mime: video/vp8\n\
             logging:\n  level: info\n  json: false\n\
             keys:\n  {api_key}: {api_secret}\n{webhook}",
            port = settings.port,
            tcp = settings.port.saturating_add(1),
            udp_start = settings.udp_port_start,
            udp_end = settings.udp_port_end,
        );
        write_private(&config_path, config.as_bytes())?;
        let log_path = data_dir.join("livekit.log");
        let mut command = Command::new(&binary);
        command
            .arg("--config")
            .arg(&config_path)
            .arg("--node-ip")
            .arg(settings.node_ip.to_string());
        for address in &settings.bind {
            command.arg("--bind").arg(address.to_string());
        }
        let child = crate::children::spawn_tied(&mut command, &log_path)?;
        let host = settings.node_ip;
        let url = format!("ws://{}:{}", url_host(host), settings.port);
        let mut process = LiveKitProcess { child, url };
        process.wait_ready(settings, &log_path).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, settings: &LocalLiveKit, log_path: &Path) -> anyhow::Result<()> {
        let probe = settings
            .bind
            .first()
            .map(|ip| std::net::SocketAddr::new(*ip, settings.port))
            .context("[livekit] bind is empty")?;
        crate::children::wait_started(
            &mut self.child,
            "livekit-server",
            &format!("listen on {probe}"),
            log_path,
            READY_WITHIN,
            async || tokio::net::TcpStream::connect(probe).await.is_ok(),
        )
        .await
    }

    /// Asks LiveKit to stop (SIGTERM), then kills it if it has not left after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        crate::children::stop(&mut self.child, grace).await;
    }
}

fn url_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    }
}
