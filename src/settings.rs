//! `edgemeet.toml`: the one configuration file of `edgemeet up` (see `edgemeet.example.toml`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::host::InstanceReuse;

/// The whole file. Every field has a default, so an empty file (or none) runs the system.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The edge API.
    pub edge: EdgeSettings,
    /// The local LiveKit server started when no region is configured.
    pub livekit: LocalLiveKit,
    /// Media regions already running elsewhere. None: a local LiveKit is started as `local`.
    pub regions: Vec<RegionSettings>,
    /// Recorder nodes recordings and broadcasts are sent to (`[[recorders]]`).
    pub recorders: Vec<RecorderSettings>,
    /// The recorder node started on this machine beside the local LiveKit.
    pub recorder: LocalRecorderSettings,
}

/// `[edge]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSettings {
    /// Where the edge API listens.
    pub listen: SocketAddr,
    /// SQLite database, compiled-component cache, generated credentials, LiveKit's config.
    pub data_dir: PathBuf,
    /// The edge-api Spin component. Default: the bootstrap's build output.
    pub component: Option<PathBuf>,
    /// The join page's built files (`web/dist`), mounted into the component at `/web`.
    /// Default: `web/dist` of this source tree.
    pub web_dir: Option<PathBuf>,
    /// plugNmeet API key. Default: `plugnmeet`.
    pub api_key: String,
    /// plugNmeet API secret (>= 32 bytes). Default: generated once into the data directory.
    pub api_secret: Option<String>,
    /// Join-token lifetime in seconds.
    pub token_validity_secs: u64,
    /// Upper bound of `max_participants` (0 = none).
    pub max_participants_cap: u32,
    /// Upper bound of `room_duration` in minutes (0 = none).
    pub max_room_duration_minutes: u64,
    /// The region used when placement knows nothing better.
    pub default_region: Option<String>,
    /// Header with the end user's latitude, set by a trusted proxy.
    pub geo_latitude_header: String,
    /// Header with the end user's longitude.
    pub geo_longitude_header: String,
    /// Most component instances alive at once (pooling allocator size).
    pub max_instances: u32,
    /// Requests one component instance serves before it is replaced (Spin's
    /// `--max-instance-reuse-count`; 1 = a fresh instance per request).
    pub max_instance_reuse_count: u32,
    /// Requests one instance serves at the same time.
    pub max_instance_concurrent_reuse_count: u32,
    /// Milliseconds an idle instance is kept for the next request.
    pub idle_instance_timeout_ms: u64,
    /// Seconds without a heartbeat after which a region takes no new rooms.
    pub region_timeout_secs: u64,
    /// Days an ended room stays a past room before it is deleted (0 = kept for good).
    pub past_rooms_retention_days: u64,
    /// A recorder node whose last heartbeat is older than this is taken for dead.
    pub recorder_timeout_secs: u64,
    /// How long a recording download token works.
    pub download_token_validity_secs: u64,
    /// plugNmeet's webhooks about every session go here (none when unset).
    pub webhook_url: Option<String>,
    /// A room's own `metadata.webhook_url` also gets its sessions' webhooks.
    pub webhook_per_meeting: bool,
    /// The edge's public origin, which the BigBlueButton API's join and playback links start
    /// with (none: the request's own host).
    pub public_url: Option<String>,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            data_dir: PathBuf::from(".edgemeet"),
            component: None,
            web_dir: None,
            api_key: "plugnmeet".into(),
            api_secret: None,
            token_validity_secs: 600,
            max_participants_cap: 0,
            max_room_duration_minutes: 0,
            default_region: None,
            geo_latitude_header: "cf-iplatitude".into(),
            geo_longitude_header: "cf-iplongitude".into(),
            max_instances: 100,
            max_instance_reuse_count: InstanceReuse::default().max_requests,
            max_instance_concurrent_reuse_count: InstanceReuse::default().max_concurrent,
            idle_instance_timeout_ms: InstanceReuse::default().idle_timeout.as_millis() as u64,
            region_timeout_secs: 15,
            past_rooms_retention_days: 0,
            recorder_timeout_secs: 15,
            download_token_validity_secs: 1800,
            webhook_url: None,
            webhook_per_meeting: false,
            public_url: None,
        }
    }
}

impl EdgeSettings {
    /// The join page's directory: the configured one, else this source tree's `web/dist`.
    pub fn web_dir(&self) -> PathBuf {
        self.web_dir.clone().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("web")
                .join("dist")
        })
    }

    /// The host's instance reuse from these settings.
    pub fn instance_reuse(&self) -> InstanceReuse {
        InstanceReuse {
            max_requests: self.max_instance_reuse_count,
            max_concurrent: self.max_instance_concurrent_reuse_count,
            idle_timeout: std::time::Duration::from_millis(self.idle_instance_timeout_ms),
        }
    }
}

/// `[livekit]`: the local LiveKit server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalLiveKit {
    /// Start it: `true`, `false`, or absent = only when no `[[regions]]` are configured.
    pub start: Option<bool>,
    /// The `livekit-server` binary. Default: `$EDGEMEET_CACHE/bin/livekit-server`, then `PATH`.
    pub binary: Option<PathBuf>,
    /// Signal port (HTTP/WebSocket); the TCP media port is this + 1.
    pub port: u16,
    /// Addresses it listens on.
    pub bind: Vec<IpAddr>,
    /// The address it advertises to clients for media.
    pub node_ip: IpAddr,
    /// First UDP port for media.
    pub udp_port_start: u16,
    /// Last UDP port for media.
    pub udp_port_end: u16,
    /// Where the region is, for placement.
    pub lat: f64,
    /// Where the region is, for placement.
    pub lon: f64,
    /// Run a media-sidecar beside it, in this process: `true`, `false`, or absent = only when
    /// no `[[regions]]` are configured. It relays LiveKit's webhooks and heartbeats to the
    /// edge, so rooms end when they are empty or past their `room_duration` and move to past
    /// rooms, as in a deployment with regions.
    pub sidecar: Option<bool>,
    /// The sidecar's port on 127.0.0.1: LiveKit posts its webhooks there, and its Prometheus
    /// metrics are at `/metrics`. 0 takes any free port.
    pub sidecar_port: u16,
}

impl Default for LocalLiveKit {
    fn default() -> Self {
        LocalLiveKit {
            start: None,
            binary: None,
            port: 7880,
            bind: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            node_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            udp_port_start: 50000,
            udp_port_end: 50100,
            lat: 0.0,
            lon: 0.0,
            sidecar: None,
            sidecar_port: 7890,
        }
    }
}

/// `[recorder]`: a recorder node (`recorder-native serve`) `up` starts on this machine, known to
/// the edge as recorder `local` (in region `local` when beside the local LiveKit).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalRecorderSettings {
    /// Start it: `true`, `false`, or absent = when the local LiveKit is started and advertises
    /// an address other than loopback (`[livekit] node_ip`): the recorder's WebRTC stack
    /// (libnice) cannot use loopback.
    pub start: Option<bool>,
    /// The `recorder-native` binary. Default: the one built beside `edgemeet`.
    pub binary: Option<PathBuf>,
    /// Its job API's port (downloads are served there too), on the local LiveKit's `node_ip`.
    /// 0 takes any free port.
    pub port: u16,
}

impl Default for LocalRecorderSettings {
    fn default() -> Self {
        LocalRecorderSettings {
            start: None,
            binary: None,
            port: 8090,
        }
    }
}

/// `[[regions]]`: a LiveKit region running elsewhere.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSettings {
    /// Stable id.
    pub id: String,
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// `ws://` or `wss://` URL of its LiveKit. Absent: the local LiveKit's URL.
    #[serde(default)]
    pub livekit_url: String,
    /// LiveKit API key. Absent: the local LiveKit's key.
    #[serde(default)]
    pub api_key: String,
    /// LiveKit API secret. Absent: the local LiveKit's secret.
    #[serde(default, skip_serializing)]
    pub api_secret: String,
    /// The secret this region's media-sidecar signs with (at least 32 bytes). When any region
    /// has one, regions take new rooms only while their sidecar heartbeats (or, with
    /// `webhooks = "direct"`, always).
    #[serde(default, skip_serializing)]
    pub sidecar_secret: Option<String>,
    /// `direct`: the region's LiveKit posts its webhooks to the edge itself
    /// (`/webhook/<id>`), where no sidecar can run beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<String>,
}

/// One `[[recorders]]` entry: a recorder node's job API and the key and secret it shares with
/// the edge (the node's own `api_key` and `api_secret`; its `node_id` is `id`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecorderSettings {
    /// The node's `node_id`.
    pub id: String,
    /// Base URL of its job API, e.g. `http://10.0.0.5:8090`.
    pub url: String,
    /// Its `api_key`.
    pub api_key: String,
    /// Its `api_secret` (never passed on in the `recorders` variable).
    #[serde(skip_serializing)]
    pub api_secret: String,
    /// The region it is nearest to: rooms there try it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Where browsers reach its `/download/...` route (default: `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl Settings {
    /// Reads the file; a missing file at the default path means all defaults.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Settings> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let settings: Settings =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if settings.livekit.udp_port_start > settings.livekit.udp_port_end {
            bail!("[livekit] udp_port_start is above udp_port_end");
        }
        Ok(settings)
    }
}

/// Credentials generated on first run and kept in the data directory, so restarts keep them.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DevCredentials {
    /// plugNmeet API secret.
    pub api_secret: String,
    /// Local LiveKit API key.
    pub livekit_key: String,
    /// Local LiveKit API secret.
    pub livekit_secret: String,
}

impl DevCredentials {
    /// Loads `dev-credentials.toml` from `data_dir`, creating it (mode 0600) the first time.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<DevCredentials> {
        let path = data_dir.join("dev-credentials.toml");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return toml::from_str(&text).with_context(|| format!("parsing {}", path.display()));
        }
        let creds = DevCredentials {
            api_secret: random_hex(24)?,
            livekit_key: format!("lk{}", random_hex(6)?),
            livekit_secret: random_hex(24)?,
        };
        write_private(&path, toml::to_string(&creds)?.as_bytes())?;
        Ok(creds)
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let s: Settings = toml::from_str("").unwrap();
        assert_eq!(s.edge.listen.port(), 8080);
        assert!(s.regions.is_empty());
        assert!(toml::from_str::<Settings>("[edge]\nlisten_typo = 1").is_err());
        let example = include_str!("../edgemeet.example.toml");
        let parsed: Settings = toml::from_str(example).unwrap();
        assert_eq!(parsed.edge.api_key, "plugnmeet");
    }

    #[test]
    fn credentials_persist_and_are_private() {
        let dir = std::env::temp_dir().join(format!("edgemeet-creds-{}", random_hex(4).unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = DevCredentials::load_or_create(&dir).unwrap();
        let b = DevCredentials::load_or_create(&dir).unwrap();
        assert_eq!(a.api_secret, b.api_secret);
        assert_eq!(a.api_secret.len(), 48);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("dev-credentials.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
