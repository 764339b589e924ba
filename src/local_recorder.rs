//! The recorder node `edgemeet up` runs beside the local LiveKit: `recorder-native serve` as a
//! child process (each job is a worker process of the same binary), configured for this run and
//! known to the edge as recorder `local` (in region `local`, beside the local LiveKit), so the
//! one-machine system records and broadcasts as a deployment with a recorder fleet does. Its key
//! and secret are made anew for each run; its recordings are kept under the data directory. It
//! listens where the local LiveKit does (`[livekit] node_ip`), so the browsers that reach
//! LiveKit reach its downloads.
//!
//! The recorder reaches LiveKit over WebRTC, and its stack (libnice) does not use loopback: it
//! starts by default only when the local LiveKit advertises another address
//! (`[livekit] node_ip`, e.g. this machine's LAN address).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::local_sidecar::LOCAL_REGION;
use crate::settings::{random_hex, write_private, LocalRecorderSettings, RecorderSettings};

/// The local recorder's id at the edge (its `node_id`).
pub const LOCAL_RECORDER: &str = "local";

/// The longest `up` waits for the recorder's job API to listen (it first repairs what an
/// earlier run left unfinished, which does not hold the API back).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long a stopping recorder gets to end its jobs (each finishes its file) before it is
/// killed; what is left is repaired on the next start.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Whether `up` starts a local recorder, and if so which.
pub enum Plan {
    /// Start this one.
    Start(PlannedRecorder),
    /// Not started, for this reason (printed with the rest of what `up` started).
    NotStarted(String),
    /// Not asked for and nothing to say (no local LiveKit, or turned off).
    Off,
}

/// A local recorder decided on and not started yet: the edge learns of it first.
pub struct PlannedRecorder {
    binary: PathBuf,
    address: SocketAddr,
    secret: String,
    region: Option<String>,
    /// Asked for (`start = true`): failing to start it fails `up`. Otherwise `up` says why and
    /// goes on without it.
    pub required: bool,
}

impl Plan {
    /// Decides from `[recorder]`, given the node IP the local LiveKit advertises (`None`
    /// when `up` starts no LiveKit).
    pub fn decide(
        settings: &LocalRecorderSettings,
        livekit_node_ip: Option<IpAddr>,
    ) -> anyhow::Result<Plan> {
        let explicit = settings.start == Some(true);
        match (settings.start, livekit_node_ip) {
            (Some(false), _) | (None, None) => return Ok(Plan::Off),
            (None, Some(ip)) if ip.is_loopback() => {
                return Ok(Plan::NotStarted(format!(
                    "not started: the local LiveKit advertises {ip}, and the recorder's WebRTC \
                     cannot use loopback; set [livekit] node_ip (and bind) to this machine's \
                     address"
                )))
            }
            (Some(true), Some(ip)) if ip.is_loopback() => bail!(
                "[recorder] start = true, but the local LiveKit advertises {ip}: the \
                 recorder's WebRTC cannot use loopback; set [livekit] node_ip (and bind) to \
                 this machine's address"
            ),
            _ => {}
        }
        let binary = match find_binary(settings.binary.as_deref()) {
            Some(binary) => binary,
            None if explicit => bail!(
                "[recorder] start = true, but recorder-native was not found beside edgemeet or \
                 on PATH; build the workspace (scripts/build.sh) or set [recorder] binary"
            ),
            None => {
                return Ok(Plan::NotStarted(
                    "not started: recorder-native was not found beside edgemeet or on PATH \
                     (scripts/build.sh builds it)"
                        .into(),
                ))
            }
        };
        // Beside the local LiveKit it listens where LiveKit does: browsers that reach LiveKit
        // reach its downloads too, and the edge on this machine reaches it there.
        let ip = livekit_node_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let address = free_address(ip, settings.port)?;
        Ok(Plan::Start(PlannedRecorder {
            binary,
            address,
            secret: random_hex(32)?,
            region: livekit_node_ip.map(|_| LOCAL_REGION.to_owned()),
            required: explicit,
        }))
    }
}

impl PlannedRecorder {
    /// Its `[[recorders]]` entry for the edge.
    pub fn edge_entry(&self) -> RecorderSettings {
        RecorderSettings {
            id: LOCAL_RECORDER.into(),
            url: format!("http://{}", self.address),
            api_key: LOCAL_RECORDER.into(),
            api_secret: self.secret.clone(),
            region: self.region.clone(),
            public_url: None,
        }
    }

    /// Writes its configuration under `data_dir` (mode 0600: it holds the secret) and starts
    /// it, reporting to the edge at `edge_url`; returns once its job API listens.
    pub async fn start(self, data_dir: &Path, edge_url: &str) -> anyhow::Result<RunningRecorder> {
        let dir = data_dir.join("recorder");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let recordings = data_dir.join("recordings");
        let config_path = dir.join("recorder.toml");
        write_private(
            &config_path,
            self.config(&dir, &recordings, edge_url)?.as_bytes(),
        )?;
        let log = data_dir.join("recorder.log");
        let mut command = Command::new(&self.binary);
        command.arg("serve").arg("--config").arg(&config_path);
        let child = crate::children::spawn_tied(&mut command, &log)?;
        let mut running = RunningRecorder {
            child,
            address: self.address,
            recordings,
            log,
        };
        running.wait_ready().await?;
        Ok(running)
    }

    /// `recorder-native serve`'s configuration for this run.
    fn config(&self, dir: &Path, recordings: &Path, edge_url: &str) -> anyhow::Result<String> {
        let path = |p: &Path| {
            p.to_str()
                .map(str::to_owned)
                .with_context(|| format!("{} is not UTF-8", p.display()))
        };
        let mut control_plane = toml::Table::new();
        control_plane.insert(
            "url".into(),
            format!("{edge_url}/internal/recorder/events").into(),
        );
        let mut config = toml::Table::new();
        config.insert("listen".into(), self.address.to_string().into());
        config.insert("node_id".into(), LOCAL_RECORDER.into());
        config.insert("api_key".into(), LOCAL_RECORDER.into());
        config.insert("api_secret".into(), self.secret.clone().into());
        config.insert("data_dir".into(), path(&dir.join("data"))?.into());
        config.insert("recordings_dir".into(), path(recordings)?.into());
        config.insert("control_plane".into(), control_plane.into());
        toml::to_string(&config).context("writing the local recorder's configuration")
    }
}

/// A started local recorder.
pub struct RunningRecorder {
    child: Child,
    /// Where its job API (and downloads) listen.
    pub address: SocketAddr,
    /// Where it keeps recordings.
    pub recordings: PathBuf,
    /// Its log.
    pub log: PathBuf,
}

impl RunningRecorder {
    /// Waits until this recorder says it listens on its address (its own log, fresh for this
    /// run: another process that took the port meanwhile would answer a connect, but not
    /// write here).
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let listening = format!("listening on http://{}", self.address);
        let log = &self.log;
        crate::children::wait_started(
            &mut self.child,
            "recorder-native",
            &format!("listen on {}", self.address),
            log,
            READY_WITHIN,
            async || std::fs::read_to_string(log).is_ok_and(|text| text.contains(&listening)),
        )
        .await
    }

    /// Stops it: its jobs end and finish their files, for at most [`STOP_GRACE`].
    pub async fn stop(mut self) {
        crate::children::stop(&mut self.child, STOP_GRACE).await;
    }
}

/// The `recorder-native` binary: configured, else the one built beside this `edgemeet`, else
/// on `PATH`.
fn find_binary(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return Some(path.to_path_buf());
    }
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("recorder-native"))
        .filter(|p| p.is_file());
    beside.or_else(|| crate::children::on_path("recorder-native"))
}

/// `ip:port`, checked free now (the recorder binds it itself, and [`RunningRecorder`] makes sure
/// it was this recorder that did); port 0 takes any free one.
fn free_address(ip: IpAddr, port: u16) -> anyhow::Result<SocketAddr> {
    let wanted = SocketAddr::new(ip, port);
    let probe = std::net::TcpListener::bind(wanted)
        .with_context(|| format!("[recorder] port: {wanted} is not free"))?;
    probe.local_addr().context("the local recorder's address")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(start: Option<bool>) -> LocalRecorderSettings {
        LocalRecorderSettings {
            start,
            binary: Some(PathBuf::from("/bin/true")),
            port: 0,
        }
    }

    /// Not loopback, and free to bind on any machine the tests run on (a LAN address would be
    /// this machine's own).
    const LAN: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn it_starts_by_default_only_beside_a_local_livekit_it_can_reach() {
        assert!(matches!(
            Plan::decide(&settings(None), Some(LAN)),
            Ok(Plan::Start(_))
        ));
        assert!(matches!(Plan::decide(&settings(None), None), Ok(Plan::Off)));
        assert!(matches!(
            Plan::decide(&settings(Some(false)), Some(LAN)),
            Ok(Plan::Off)
        ));
        match Plan::decide(&settings(None), Some(LOOPBACK)) {
            Ok(Plan::NotStarted(why)) => assert!(why.contains("node_ip"), "{why}"),
            _ => panic!("started beside a loopback-only LiveKit"),
        }
        // Asked for, it must be able to work.
        assert!(Plan::decide(&settings(Some(true)), Some(LOOPBACK)).is_err());
    }

    #[test]
    fn the_edge_entry_and_the_config_name_the_same_node_and_secret() {
        let Ok(Plan::Start(planned)) = Plan::decide(&settings(Some(true)), Some(LAN)) else {
            panic!("not planned");
        };
        let entry = planned.edge_entry();
        assert_eq!(entry.id, LOCAL_RECORDER);
        assert_eq!(entry.region.as_deref(), Some(LOCAL_REGION));
        assert_eq!(entry.url, format!("http://{}", planned.address));
        // What `up` writes is a configuration the recorder itself accepts, naming the same node.
        let dir = std::env::temp_dir().join(format!(
            "edgemeet-local-recorder-{}",
            random_hex(4).unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let text = planned
            .config(&dir, &dir.join("recordings"), "http://127.0.0.1:8080")
            .expect("config");
        let path = dir.join("recorder.toml");
        std::fs::write(&path, text).unwrap();
        let config = recorder_native::config::ServiceConfig::load(&path).expect("accepted");
        assert_eq!(config.node_id, entry.id);
        assert_eq!(config.api_key, entry.api_key);
        assert_eq!(config.api_secret, entry.api_secret);
        assert_eq!(config.listen, planned.address);
        assert_eq!(
            config.control_plane.map(|cp| cp.url),
            Some("http://127.0.0.1:8080/internal/recorder/events".to_owned())
        );
        assert_eq!(config.recordings_dir, Some(dir.join("recordings")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
