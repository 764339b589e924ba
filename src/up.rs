//! `edgemeet up`: the whole system on one machine. Starts a local LiveKit (and the media-sidecar
//! and a recorder node beside it) unless regions are configured, then serves the edge-api
//! component in the wasmtime host until Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::host::{Host, HostSettings, MountedDir};
use crate::livekit_server::LiveKitProcess;
use crate::local_recorder::{self, PlannedRecorder, RunningRecorder};
use crate::local_sidecar::{BoundSidecar, RunningSidecar, LOCAL_REGION};
use crate::settings::{DevCredentials, RecorderSettings, RegionSettings, Settings};

/// Runs the system described by the file at `config_path`.
pub async fn run(config_path: &Path, explicit: bool) -> anyhow::Result<()> {
    // Listened to from the start: a signal during start-up (compiling the component) stops
    // the system as soon as it serves, cleanly, instead of killing it half started.
    let signals = StopSignals::install().context("listening for SIGINT and SIGTERM")?;
    let settings = Settings::load(config_path, explicit)?;
    let data_dir = &settings.edge.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let credentials = DevCredentials::load_or_create(data_dir)?;
    let api_secret = settings
        .edge
        .api_secret
        .clone()
        .unwrap_or_else(|| credentials.api_secret.clone());

    let start_local = settings
        .livekit
        .start
        .unwrap_or(settings.regions.is_empty());
    // Decided before anything starts: a recorder that was asked for and cannot work fails
    // `up` at once.
    let recorder = local_recorder::Plan::decide(
        &settings.recorder,
        start_local.then_some(settings.livekit.node_ip),
    )?;
    let mut livekit = None;
    let mut regions = settings.regions.clone();
    let mut sidecar = None;
    if start_local {
        // The sidecar's port is bound first: LiveKit is told to post its webhooks there.
        if local_sidecar_wanted(&settings)? {
            sidecar = Some(BoundSidecar::bind(settings.livekit.sidecar_port).await?);
        }
        let process = LiveKitProcess::start(
            &settings.livekit,
            data_dir,
            &credentials.livekit_key,
            &credentials.livekit_secret,
            sidecar.as_ref().map(|s| s.webhook_url.as_str()),
        )
        .await?;
        // Configured regions without their own LiveKit share the local one (handy for trying
        // placement on one machine).
        for region in regions.iter_mut().filter(|r| r.livekit_url.is_empty()) {
            region.livekit_url = process.url.clone();
            region.api_key = credentials.livekit_key.clone();
            region.api_secret = credentials.livekit_secret.clone();
        }
        if !regions.iter().any(|r| r.id == LOCAL_REGION) {
            regions.insert(
                0,
                RegionSettings {
                    id: LOCAL_REGION.into(),
                    name: "This machine".into(),
                    lat: settings.livekit.lat,
                    lon: settings.livekit.lon,
                    livekit_url: process.url.clone(),
                    api_key: credentials.livekit_key.clone(),
                    api_secret: credentials.livekit_secret.clone(),
                    sidecar_secret: sidecar.as_ref().map(|s| s.secret.clone()),
                    webhooks: None,
                },
            );
        }
        livekit = Some(process);
    }
    let media = LocalMedia {
        livekit_url: livekit.as_ref().map(|lk| lk.url.clone()),
        livekit_key: credentials.livekit_key.clone(),
        livekit_secret: credentials.livekit_secret.clone(),
        sidecar,
        recorder,
    };
    // Whatever happens from here on, a LiveKit this run started is stopped gracefully once.
    let served = serve_edge(&settings, &api_secret, &regions, media, signals).await;
    if let Some(lk) = livekit {
        lk.stop(Duration::from_secs(5)).await;
    }
    served
}

/// Whether `up` runs a media-sidecar beside the LiveKit it starts: as configured, else when no
/// regions are. Its webhooks would name only the local region, so no configured region may share
/// that LiveKit (the sidecar would have the edge delete their rooms as unknown).
fn local_sidecar_wanted(settings: &Settings) -> anyhow::Result<bool> {
    let wanted = settings
        .livekit
        .sidecar
        .unwrap_or(settings.regions.is_empty());
    if wanted {
        if let Some(shared) = settings.regions.iter().find(|r| r.livekit_url.is_empty()) {
            bail!(
                "[livekit] sidecar = true, but region `{}` shares the local LiveKit; \
                 give it its own livekit_url or set sidecar = false",
                shared.id
            );
        }
    }
    Ok(wanted)
}

/// The media parts this run started on this machine, for the edge to work with.
struct LocalMedia {
    /// The local LiveKit's URL, if one was started.
    livekit_url: Option<String>,
    livekit_key: String,
    livekit_secret: String,
    /// Its sidecar, bound and not yet serving (it reports to the edge once that serves).
    sidecar: Option<BoundSidecar>,
    /// Whether a recorder node starts beside it (once the edge serves).
    recorder: local_recorder::Plan,
}

/// Checks the edge's configuration, starts the host (and the local sidecar) and serves until
/// Ctrl-C or SIGTERM.
async fn serve_edge(
    settings: &Settings,
    api_secret: &str,
    regions: &[RegionSettings],
    media: LocalMedia,
    mut signals: StopSignals,
) -> anyhow::Result<()> {
    let data_dir = &settings.edge.data_dir;
    if let Some(region) = regions
        .iter()
        .find(|r| r.livekit_url.is_empty() || r.api_secret.is_empty())
    {
        bail!(
            "region `{}` has no livekit_url/api_key/api_secret and no local LiveKit is started",
            region.id
        );
    }

    let (planned_recorder, recorder_note) = match media.recorder {
        local_recorder::Plan::Start(planned) => (Some(planned), None),
        local_recorder::Plan::NotStarted(why) => (None, Some(why)),
        local_recorder::Plan::Off => (None, None),
    };
    let mut recorders = settings.recorders.clone();
    recorders.extend(planned_recorder.as_ref().map(PlannedRecorder::edge_entry));
    let variables = edge_variables(settings, api_secret, regions, &recorders)?;
    // The component checks its configuration on every request; check it once here too, so a
    // bad file fails `up` at once instead of answering 500 to every call.
    if let Err(e) = edge_api::EdgeConfig::load(&VariableMap(&variables)).await {
        bail!("invalid edge configuration: {e}");
    }
    let component = component_path(settings.edge.component.as_deref())?;
    let migration = data_dir.join("schema.sql");
    std::fs::write(&migration, edge_api::db::SCHEMA)
        .with_context(|| format!("writing {}", migration.display()))?;
    let host = Host::start(HostSettings {
        listen: settings.edge.listen,
        component: component.clone(),
        variables,
        sqlite_databases: BTreeMap::from([("default".to_string(), data_dir.join("edge.sqlite"))]),
        sqlite_migrations: vec![migration],
        cache_dir: data_dir.join("cache"),
        max_instances: settings.edge.max_instances,
        instance_reuse: settings.edge.instance_reuse(),
        mounts: vec![MountedDir {
            host: settings.edge.web_dir(),
            guest: "/web".into(),
        }],
    })
    .await?;
    let address = host.local_addr();
    let mut sidecar = None;
    if let (Some(bound), Some(livekit_url)) = (media.sidecar, &media.livekit_url) {
        sidecar = Some(bound.start(
            data_dir,
            livekit_url,
            &media.livekit_key,
            &media.livekit_secret,
            &format!("http://{}", reachable(address)),
        )?);
    }
    let mut ready = Ready {
        settings,
        api_secret,
        regions,
        component: &component,
        address,
        local_livekit: media.livekit_url.is_some(),
        sidecar: sidecar.as_ref().map(|running| running.address),
        recorder: None,
        recorder_note,
    };
    let edge_url = format!("http://{}", reachable(address));
    let data_dir = data_dir.clone();

    let (startup_failed, mut startup_failure) = tokio::sync::oneshot::channel();
    let served = host
        .serve(async move {
            let recorder = match start_beside_edge(
                sidecar.as_mut(),
                planned_recorder,
                &data_dir,
                &edge_url,
                &mut ready,
            )
            .await
            {
                Ok(recorder) => recorder,
                Err(e) => {
                    let _ = startup_failed.send(e);
                    if let Some(running) = sidecar {
                        running.stop().await;
                    }
                    return;
                }
            };
            ready.print();
            signals.recv().await;
            // A second signal means now: the open requests are not waited for. LiveKit goes
            // with the process (its parent-death signal).
            tokio::spawn(async move {
                signals.recv().await;
                eprintln!("edgemeet: stop requested again; stopping now");
                std::process::exit(130);
            });
            // The recorder and the sidecar first, while the edge still answers: the recordings
            // finish and their final states are delivered, and so is what the sidecar holds.
            if let Some(running) = recorder {
                running.stop().await;
            }
            if let Some(running) = sidecar {
                running.stop().await;
            }
        })
        .await;
    if let Ok(failure) = startup_failure.try_recv() {
        return Err(failure);
    }
    println!("edgemeet: stopping");
    served
}

/// What starts once the edge answers. The sidecar's first heartbeat can arrive now, and rooms
/// are placed in the local region only once the edge has taken one, so it is waited for. Then
/// the local recorder starts (it reports to the edge); one that was not asked for and fails is
/// noted in `ready`, and the system runs without it (the edge finds no live recorder, and says
/// so to a moderator who presses Record).
async fn start_beside_edge(
    sidecar: Option<&mut RunningSidecar>,
    planned: Option<PlannedRecorder>,
    data_dir: &Path,
    edge_url: &str,
    ready: &mut Ready<'_>,
) -> anyhow::Result<Option<RunningRecorder>> {
    if let Some(running) = sidecar {
        running.wait_heard(SIDECAR_FIRST_HEARTBEAT).await?;
    }
    let Some(planned) = planned else {
        return Ok(None);
    };
    let required = planned.required;
    match planned.start(data_dir, edge_url).await {
        Ok(running) => {
            ready.recorder = Some((
                running.address,
                running.recordings.clone(),
                running.log.clone(),
            ));
            Ok(Some(running))
        }
        Err(e) if !required => {
            ready.recorder_note = Some(format!("not started: {e:#}"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What `up` prints once the system is ready: what a developer needs to start using it (the
/// credentials are local development ones).
struct Ready<'a> {
    settings: &'a Settings,
    api_secret: &'a str,
    regions: &'a [RegionSettings],
    component: &'a Path,
    address: SocketAddr,
    local_livekit: bool,
    sidecar: Option<SocketAddr>,
    /// The local recorder, once started: its address, recordings and log.
    recorder: Option<(SocketAddr, PathBuf, PathBuf)>,
    /// Why no local recorder was started, when that needs saying.
    recorder_note: Option<String>,
}

impl Ready<'_> {
    fn print(&self) {
        let Ready {
            settings,
            api_secret,
            address,
            ..
        } = self;
        let data_dir = &settings.edge.data_dir;
        println!("edgemeet is up");
        println!(
            "  edge API     http://{address}  (component {})",
            self.component.display()
        );
        println!(
            "  join page    http://{address}/?access_token=<join token from room/getJoinToken>  (files {})",
            settings.edge.web_dir().display()
        );
        for region in self.regions {
            println!(
                "  region       {} ({}) -> {}",
                region.id, region.name, region.livekit_url
            );
        }
        if self.local_livekit {
            println!(
                "  livekit      started locally, log in {}",
                data_dir.join("livekit.log").display()
            );
        }
        if let Some(sidecar) = self.sidecar {
            println!("  sidecar      http://{sidecar}  (LiveKit's webhooks to the edge; /metrics)");
        }
        if let Some((recorder, recordings, log)) = &self.recorder {
            println!(
                "  recorder     http://{recorder}  (recordings in {}, log in {})",
                recordings.display(),
                log.display()
            );
        }
        if let Some(note) = &self.recorder_note {
            println!("  recorder     {note}");
        }
        println!("  API key      {}", settings.edge.api_key);
        if settings.edge.api_secret.is_none() {
            println!(
                "  API secret   {api_secret}  (generated, kept in {})",
                data_dir.join("dev-credentials.toml").display()
            );
        }
        println!("  data         {}", data_dir.display());
        println!("edgemeet: ready at http://{address}");
    }
}

/// The longest `up` waits for the edge to take the local sidecar's first heartbeat.
const SIDECAR_FIRST_HEARTBEAT: Duration = Duration::from_secs(15);

/// An address to reach a server listening on `address` from this machine: an unspecified
/// (any) address is reached on loopback.
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), address.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), address.port())
        }
        _ => address,
    }
}

/// The Spin variables the component reads (see `edge_api::EdgeConfig::load`).
fn edge_variables(
    settings: &Settings,
    api_secret: &str,
    regions: &[RegionSettings],
    recorders: &[RecorderSettings],
) -> anyhow::Result<BTreeMap<String, String>> {
    let secrets: BTreeMap<&str, &str> = regions
        .iter()
        .map(|r| (r.id.as_str(), r.api_secret.as_str()))
        .collect();
    let edge = &settings.edge;
    let mut vars = BTreeMap::from([
        ("api_key".to_string(), edge.api_key.clone()),
        ("api_secret".to_string(), api_secret.to_owned()),
        ("regions".to_string(), serde_json::to_string(regions)?),
        (
            "livekit_secrets".to_string(),
            serde_json::to_string(&secrets)?,
        ),
        (
            "token_validity_secs".to_string(),
            edge.token_validity_secs.to_string(),
        ),
        (
            "max_participants_cap".to_string(),
            edge.max_participants_cap.to_string(),
        ),
        (
            "max_room_duration_minutes".to_string(),
            edge.max_room_duration_minutes.to_string(),
        ),
        (
            "past_rooms_retention_days".to_string(),
            edge.past_rooms_retention_days.to_string(),
        ),
        (
            "webhook_url".to_string(),
            edge.webhook_url.clone().unwrap_or_default(),
        ),
        (
            "public_url".to_string(),
            edge.public_url.clone().unwrap_or_default(),
        ),
        (
            "webhook_per_meeting".to_string(),
            edge.webhook_per_meeting.to_string(),
        ),
        (
            "geo_latitude_header".to_string(),
            edge.geo_latitude_header.clone(),
        ),
        (
            "geo_longitude_header".to_string(),
            edge.geo_longitude_header.clone(),
        ),
    ]);
    let sidecar_secrets: BTreeMap<&str, &str> = regions
        .iter()
        .filter_map(|r| Some((r.id.as_str(), r.sidecar_secret.as_deref()?)))
        .collect();
    if !sidecar_secrets.is_empty() {
        vars.insert(
            "sidecar_secrets".into(),
            serde_json::to_string(&sidecar_secrets)?,
        );
    }
    vars.insert(
        "region_timeout_secs".into(),
        edge.region_timeout_secs.to_string(),
    );
    if !recorders.is_empty() {
        let recorder_secrets: BTreeMap<&str, &str> = recorders
            .iter()
            .map(|r| (r.id.as_str(), r.api_secret.as_str()))
            .collect();
        vars.insert("recorders".into(), serde_json::to_string(recorders)?);
        vars.insert(
            "recorder_secrets".into(),
            serde_json::to_string(&recorder_secrets)?,
        );
    }
    vars.insert(
        "recorder_timeout_secs".into(),
        edge.recorder_timeout_secs.to_string(),
    );
    vars.insert(
        "download_token_validity_secs".into(),
        edge.download_token_validity_secs.to_string(),
    );
    if let Some(default_region) = &edge.default_region {
        vars.insert("default_region".into(), default_region.clone());
    }
    Ok(vars)
}

/// The variables map read the way the component reads Spin variables.
struct VariableMap<'a>(&'a BTreeMap<String, String>);

impl edge_api::platform::ConfigSource for VariableMap<'_> {
    async fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// The component: configured, else the bootstrap's build output.
fn component_path(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match configured {
        Some(path) => vec![path.to_path_buf()],
        None => {
            let built = Path::new("wasm32-wasip2")
                .join("component")
                .join("edge_api.wasm");
            let mut c = Vec::new();
            if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
                c.push(PathBuf::from(dir).join(&built));
            }
            c.push(crate::cache_dir().join("target").join(&built));
            c.push(Path::new("target").join(&built));
            c
        }
    };
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    bail!(
        "the edge-api component was not found at {}; build it with scripts/build-component.sh",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )
}

/// SIGINT (Ctrl-C) and SIGTERM.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next SIGINT or SIGTERM (one received since the last call counts).
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
