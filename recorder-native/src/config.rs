//! The recorder service's configuration: one TOML file (see `recorder.example.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::composite::CompositeSettings;
use crate::storage::S3Config;

/// Everything `recorder-native serve` reads from its config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Where the job API listens, e.g. `127.0.0.1:8090`.
    pub listen: SocketAddr,
    /// This recorder's name in events and heartbeats.
    pub node_id: String,
    /// The key callers put in `API-KEY`.
    pub api_key: String,
    /// The HMAC secret of the job API and of the events this node sends.
    pub api_secret: String,
    /// The job database, the outbox and the workers' job files.
    pub data_dir: PathBuf,
    /// Where recordings are written; `data_dir/recordings` when unset.
    #[serde(default)]
    pub recordings_dir: Option<PathBuf>,
    /// An S3-compatible bucket finished recordings are uploaded to; they stay local when unset.
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// Where events and heartbeats go; none are sent when unset.
    #[serde(default)]
    pub control_plane: Option<ControlPlane>,
    /// Which jobs fit.
    #[serde(default)]
    pub admission: AdmissionConfig,
    /// How long workers get.
    #[serde(default)]
    pub watchdog: WatchdogConfig,
    /// The encode of room composites.
    #[serde(default)]
    pub composite: CompositeSettings,
    /// Where broadcasts may go.
    #[serde(default)]
    pub broadcast: BroadcastConfig,
    /// Days a finished job (COMPLETE or FAILED) is kept in the job database, for `/jobs/list`
    /// and for answering a repeated start of it; 0 keeps them for ever. Its recording is not
    /// touched.
    #[serde(default = "default_keep_finished_jobs_days")]
    pub keep_finished_jobs_days: u32,
}

fn default_keep_finished_jobs_days() -> u32 {
    30
}

/// Where broadcasts may go (see [`crate::targets`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastConfig {
    /// Non-public networks RTMP targets may still be in, e.g. `["10.20.0.0/16"]` for an
    /// operator's own relay. Public addresses are always allowed.
    #[serde(default)]
    pub allowed_networks: Vec<ipnet::IpNet>,
}

/// The control plane that receives this node's events and heartbeats.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlane {
    /// The URL both are POSTed to (JSON, signed like the job API).
    pub url: String,
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat_seconds")]
    pub heartbeat_seconds: f64,
}

/// CPU-cost admission: the figures behind "no capacity".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Cores this node has for jobs; the machine's count when unset.
    #[serde(default)]
    pub cores: Option<f64>,
    /// The share of those cores jobs may use together.
    #[serde(default = "default_cpu_share")]
    pub cpu_share: f64,
    /// Hard maximum of concurrent jobs.
    #[serde(default = "default_max_jobs")]
    pub max_jobs: usize,
    /// Reserved cores for a 720p30 room composite until it is measured.
    #[serde(default = "default_composite_cost")]
    pub composite_cost: f64,
    /// Reserved cores for a pass-through track recording until it is measured.
    #[serde(default = "default_tracks_cost")]
    pub tracks_cost: f64,
    /// Seconds after which a job's measured cost replaces its estimate.
    #[serde(default = "default_measure_after")]
    pub measure_after_seconds: f64,
    /// MiB that must be free in the recordings directory for a new job that writes a file (a
    /// broadcast-only job writes none); 0 for no minimum. At most
    /// [`MAX_MIN_FREE_DISK_MB`].
    #[serde(default = "default_min_free_disk_mb")]
    pub min_free_disk_mb: u64,
}

/// Limits on workers: time and memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// A worker that has not joined its room by then is killed.
    #[serde(default = "default_start_seconds")]
    pub start_seconds: f64,
    /// A running worker that reports no progress for this long is killed.
    #[serde(default = "default_stall_seconds")]
    pub stall_seconds: f64,
    /// After a stop, a worker that has not finished its files by then is killed.
    #[serde(default = "default_stop_seconds")]
    pub stop_seconds: f64,
    /// Most memory a worker may take for its data, in MiB (`RLIMIT_DATA`: heap, thread stacks,
    /// frame buffers); 0 for no limit. A worker over it fails alone, with its job.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
}

fn default_heartbeat_seconds() -> f64 {
    5.0
}
fn default_cpu_share() -> f64 {
    0.8
}
fn default_max_jobs() -> usize {
    8
}
fn default_composite_cost() -> f64 {
    0.5
}
fn default_tracks_cost() -> f64 {
    0.05
}
fn default_measure_after() -> f64 {
    10.0
}
fn default_min_free_disk_mb() -> u64 {
    1024
}
fn default_start_seconds() -> f64 {
    30.0
}
fn default_stall_seconds() -> f64 {
    10.0
}
fn default_stop_seconds() -> f64 {
    20.0
}
fn default_memory_mb() -> u64 {
    2048
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            cores: None,
            cpu_share: default_cpu_share(),
            max_jobs: default_max_jobs(),
            composite_cost: default_composite_cost(),
            tracks_cost: default_tracks_cost(),
            measure_after_seconds: default_measure_after(),
            min_free_disk_mb: default_min_free_disk_mb(),
        }
    }
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            start_seconds: default_start_seconds(),
            stall_seconds: default_stall_seconds(),
            stop_seconds: default_stop_seconds(),
            memory_mb: default_memory_mb(),
        }
    }
}

/// Why the config file was refused. Never carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl ServiceConfig {
    /// Reads and checks the config file.
    pub fn load(path: &Path) -> Result<ServiceConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: ServiceConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Refuses values that cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        // Every number below is a time, a share or a cost: NaN and infinity mean nothing there
        // (and NaN compares false, so it would switch a check off).
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if self.api_key.is_empty() || self.api_secret.len() < 16 {
            return invalid("api_key must be set and api_secret must be at least 16 characters");
        }
        if self.node_id.is_empty() {
            return invalid("node_id must be set");
        }
        let a = &self.admission;
        if !(positive(a.cpu_share) && a.cpu_share <= 1.0) {
            return invalid("admission.cpu_share must be in (0, 1]");
        }
        if a.cores.is_some_and(|c| !positive(c))
            || !positive(a.composite_cost)
            || !positive(a.tracks_cost)
        {
            return invalid("admission cores and costs must be positive");
        }
        MEASURE_AFTER_SECONDS.check(a.measure_after_seconds)?;
        if a.min_free_disk_mb > MAX_MIN_FREE_DISK_MB {
            return invalid(&format!(
                "admission.min_free_disk_mb must be between 0 (no minimum) and \
                 {MAX_MIN_FREE_DISK_MB}"
            ));
        }
        if let Some(cp) = &self.control_plane {
            if !(cp.url.starts_with("http://") || cp.url.starts_with("https://")) {
                return invalid("control_plane.url must be an http(s) URL");
            }
            HEARTBEAT_SECONDS.check(cp.heartbeat_seconds)?;
        }
        if let Some(s3) = &self.s3 {
            if s3.bucket.is_empty() {
                return invalid("s3.bucket must be set");
            }
            if s3
                .endpoint
                .as_ref()
                .is_some_and(|e| !(e.starts_with("http://") || e.starts_with("https://")))
            {
                return invalid("s3.endpoint must be an http(s) URL");
            }
            RETRY_SECONDS.check(s3.retry_seconds)?;
        }
        if let Some(problem) = self.composite.problem() {
            return invalid(problem);
        }
        let w = &self.watchdog;
        START_SECONDS.check(w.start_seconds)?;
        STALL_SECONDS.check(w.stall_seconds)?;
        STOP_SECONDS.check(w.stop_seconds)?;
        if self.keep_finished_jobs_days > MAX_KEEP_FINISHED_JOBS_DAYS {
            return invalid(&format!(
                "keep_finished_jobs_days must be between 0 (for ever) and \
                 {MAX_KEEP_FINISHED_JOBS_DAYS}"
            ));
        }
        // Job outputs are named by job id inside the recordings directory: there, a job called
        // `jobs` would be the directory of job files (tokens, stream keys), and a tracks job's
        // upload and clean-up would take the service's own files with it.
        let (data, recordings) = (lexical(&self.data_dir), lexical(&self.recordings_dir()));
        if data.starts_with(&recordings) || recordings.starts_with(lexical(&self.jobs_dir())) {
            return invalid(
                "recordings_dir must not be data_dir, hold it, or lie in its jobs directory",
            );
        }
        Ok(())
    }

    /// Where the service keeps its workers' job files (they hold tokens; removed at start).
    pub fn jobs_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    /// Where recordings go.
    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    /// The cores admission counts with.
    pub fn cores(&self) -> f64 {
        self.admission.cores.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0)
        })
    }
}

/// A time in the config (in seconds) and the range it must be in, inclusive. A time outside it
/// is a mistake (a heartbeat every picosecond, a stop deadline of 10^30 s) that would make a
/// timer or a deadline overflow later, so [`ServiceConfig::check`] refuses it at load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondsRange {
    /// The key, as written in the file (`section.name`).
    pub key: &'static str,
    /// The shortest time allowed.
    pub min: f64,
    /// The longest time allowed.
    pub max: f64,
}

impl SecondsRange {
    /// Refuses `value` outside the range (NaN and infinity are outside every range), naming
    /// the key and the range.
    pub fn check(self, value: f64) -> Result<(), ConfigError> {
        if value.is_finite() && (self.min..=self.max).contains(&value) {
            return Ok(());
        }
        Err(ConfigError::Invalid(format!(
            "{} must be between {} and {} seconds",
            self.key, self.min, self.max
        )))
    }
}

/// `control_plane.heartbeat_seconds`: as the media-sidecar's heartbeats.
pub const HEARTBEAT_SECONDS: SecondsRange = SecondsRange {
    key: "control_plane.heartbeat_seconds",
    min: 0.1,
    max: 300.0,
};
/// `admission.measure_after_seconds`: CPU is sampled once a second.
pub const MEASURE_AFTER_SECONDS: SecondsRange = SecondsRange {
    key: "admission.measure_after_seconds",
    min: 1.0,
    max: 3600.0,
};
/// `watchdog.start_seconds`.
pub const START_SECONDS: SecondsRange = SecondsRange {
    key: "watchdog.start_seconds",
    min: 1.0,
    max: 3600.0,
};
/// `watchdog.stall_seconds`: workers report progress once a second, so less than two would
/// kill healthy ones.
pub const STALL_SECONDS: SecondsRange = SecondsRange {
    key: "watchdog.stall_seconds",
    min: 2.0,
    max: 3600.0,
};
/// `watchdog.stop_seconds`.
pub const STOP_SECONDS: SecondsRange = SecondsRange {
    key: "watchdog.stop_seconds",
    min: 1.0,
    max: 3600.0,
};
/// `s3.retry_seconds`: 0 tries an upload once; at most a week (the sidecar's longest drain).
pub const RETRY_SECONDS: SecondsRange = SecondsRange {
    key: "s3.retry_seconds",
    min: 0.0,
    max: 604_800.0,
};

/// Most days `keep_finished_jobs_days` may say (0 keeps finished jobs for ever).
pub const MAX_KEEP_FINISHED_JOBS_DAYS: u32 = 3650;

/// Most MiB `admission.min_free_disk_mb` may say (1 TiB; 0 is no minimum).
pub const MAX_MIN_FREE_DISK_MB: u64 = 1024 * 1024;

/// Seconds as a `Duration`, for the config's float seconds.
pub fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// `path` made absolute (from the working directory) with `.` and `..` worked out, without
/// asking the file system (the directories may not exist yet).
fn lexical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        listen = "127.0.0.1:0"
        node_id = "rec-1"
        api_key = "key"
        api_secret = "0123456789abcdef"
        data_dir = "/tmp/x"
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let config: ServiceConfig = toml::from_str(MINIMAL).expect("parse");
        config.check().expect("valid");
        assert_eq!(config.recordings_dir(), PathBuf::from("/tmp/x/recordings"));
        assert_eq!(config.admission.max_jobs, 8);
        assert_eq!(config.admission.min_free_disk_mb, 1024);
        assert_eq!(config.keep_finished_jobs_days, 30);
        assert!(config.control_plane.is_none());
    }

    #[test]
    fn recordings_stay_out_of_the_services_own_files() {
        for (recordings, ok) in [
            ("/srv/recordings", true),
            ("/tmp/x/recordings", true),
            ("/tmp/x/media/", true),
            ("/tmp/x", false),
            ("/tmp/x/", false),
            ("/tmp/x/recordings/..", false),
            ("/tmp", false),
            ("/tmp/x/jobs", false),
            ("/tmp/x/jobs/out", false),
        ] {
            let text = format!("recordings_dir = \"{recordings}\"\n{MINIMAL}");
            let config: ServiceConfig = toml::from_str(&text).expect("parse");
            assert_eq!(config.check().is_ok(), ok, "{recordings}");
        }
    }

    #[test]
    fn the_example_config_is_valid() {
        let config: ServiceConfig =
            toml::from_str(include_str!("../recorder.example.toml")).expect("parse example");
        config.check().expect("valid example");
        assert_eq!(config.admission.composite_cost, 0.5);
        assert_eq!(config.admission.min_free_disk_mb, 1024);
        assert_eq!(config.composite, CompositeSettings::default());
    }

    #[test]
    fn s3_settings_are_checked() {
        let good =
            format!("{MINIMAL}\n[s3]\nbucket = \"rec\"\nendpoint = \"http://127.0.0.1:9000\"\n");
        let config: ServiceConfig = toml::from_str(&good).expect("parse");
        config.check().expect("valid");
        assert_eq!(config.s3.as_ref().map(|s| s.retry_seconds), Some(600.0));
        for bad in [
            "bucket = \"\"",
            "bucket = \"rec\"\nendpoint = \"ftp://x\"",
            "bucket = \"rec\"\nretry_seconds = -1",
        ] {
            let text = format!("{MINIMAL}\n[s3]\n{bad}\n");
            let config: ServiceConfig = toml::from_str(&text).expect("parse");
            assert!(config.check().is_err(), "accepted {bad}");
        }
    }

    /// NaN and infinity parse as TOML floats; each is refused where a time, share or cost goes.
    #[test]
    fn numbers_must_be_finite() {
        for (section, key) in [
            ("admission", "cpu_share"),
            ("admission", "cores"),
            ("admission", "composite_cost"),
            ("admission", "tracks_cost"),
            ("admission", "measure_after_seconds"),
            ("watchdog", "start_seconds"),
            ("watchdog", "stall_seconds"),
            ("watchdog", "stop_seconds"),
            ("s3", "retry_seconds"),
        ] {
            for value in ["nan", "inf"] {
                let extra = if section == "s3" {
                    "bucket = \"rec\"\n"
                } else {
                    ""
                };
                let text = format!("{MINIMAL}\n[{section}]\n{extra}{key} = {value}\n");
                let config: ServiceConfig = toml::from_str(&text).expect("parse");
                assert!(
                    config.check().is_err(),
                    "accepted {section}.{key} = {value}"
                );
            }
        }
        assert_eq!(seconds(f64::INFINITY), Duration::MAX);
    }

    /// Every time in the config has a range, checked at load with the key named: values that
    /// parse and are positive but would make a timer or a deadline panic later are refused.
    #[test]
    fn times_out_of_range_are_refused_naming_the_key() {
        let ranges = [
            HEARTBEAT_SECONDS,
            MEASURE_AFTER_SECONDS,
            START_SECONDS,
            STALL_SECONDS,
            STOP_SECONDS,
            RETRY_SECONDS,
        ];
        let config_with = |key: &str, value: &str| {
            let (section, name) = key.split_once('.').expect("section.name");
            let extra = match section {
                "s3" => "bucket = \"rec\"\n",
                "control_plane" => "url = \"http://127.0.0.1:9\"\n",
                _ => "",
            };
            let text = format!("{MINIMAL}\n[{section}]\n{extra}{name} = {value}\n");
            toml::from_str::<ServiceConfig>(&text).expect("parse")
        };
        for range in ranges {
            for ok in [range.min, range.max] {
                let config = config_with(range.key, &format!("{ok:?}"));
                assert!(config.check().is_ok(), "refused {} = {ok}", range.key);
            }
            let below = if range.min > 0.0 {
                range.min / 2.0
            } else {
                -1.0
            };
            for bad in [
                format!("{below:?}"),
                format!("{:?}", range.max * 2.0),
                "1e-12".into(),
                "1e30".into(),
                "nan".into(),
                "inf".into(),
            ] {
                if bad
                    .parse::<f64>()
                    .is_ok_and(|v| (range.min..=range.max).contains(&v))
                {
                    continue;
                }
                let err = config_with(range.key, &bad)
                    .check()
                    .expect_err(&format!("accepted {} = {bad}", range.key))
                    .to_string();
                assert!(err.contains(range.key), "{err}");
                assert!(err.contains(&format!("between {} and", range.min)), "{err}");
            }
        }
        // The three the review found: each would have panicked once the service ran.
        for (key, value) in [
            ("control_plane.heartbeat_seconds", "1e-12"),
            ("watchdog.stop_seconds", "1e30"),
            ("s3.retry_seconds", "1e300"),
        ] {
            let err = config_with(key, value).check().expect_err(key).to_string();
            assert!(err.starts_with(key), "{err}");
        }
        for (days, ok) in [(0, true), (3650, true), (3651, false), (u32::MAX, false)] {
            let text = format!("keep_finished_jobs_days = {days}\n{MINIMAL}");
            let config: ServiceConfig = toml::from_str(&text).expect("parse");
            let checked = config.check();
            assert_eq!(checked.is_ok(), ok, "{days}: {checked:?}");
            if let Err(e) = checked {
                assert!(e.to_string().contains("keep_finished_jobs_days"), "{e}");
            }
        }
    }

    /// The free disk minimum has a range, checked at load with the key named.
    #[test]
    fn the_free_disk_minimum_is_checked() {
        for (mb, ok) in [
            (0, true),
            (1024, true),
            (MAX_MIN_FREE_DISK_MB, true),
            (MAX_MIN_FREE_DISK_MB + 1, false),
            (u64::MAX, false),
        ] {
            let text = format!("{MINIMAL}\n[admission]\nmin_free_disk_mb = {mb}\n");
            let parsed = toml::from_str::<ServiceConfig>(&text);
            // TOML integers are signed 64-bit: u64::MAX does not even parse.
            let checked = parsed.map_err(|e| e.to_string()).and_then(|config| {
                assert_eq!(config.admission.min_free_disk_mb, mb);
                config.check().map_err(|e| e.to_string())
            });
            assert_eq!(checked.is_ok(), ok, "{mb}: {checked:?}");
            if let (Err(e), true) = (&checked, mb <= i64::MAX as u64) {
                assert!(e.contains("admission.min_free_disk_mb"), "{e}");
            }
        }
    }

    #[test]
    fn composite_settings_are_read_and_checked() {
        let config: ServiceConfig = toml::from_str(MINIMAL).expect("parse");
        assert_eq!(config.composite, CompositeSettings::default());
        let fast = format!("{MINIMAL}\n[composite]\npreset = \"superfast\"\nwidth = 1920\nheight = 1080\nencoder_threads = 0\n");
        let config: ServiceConfig = toml::from_str(&fast).expect("parse");
        config.check().expect("valid");
        assert_eq!(config.composite.preset.x264_name(), "superfast");
        assert_eq!(config.composite.canvas().width, 1920);
        assert_eq!(config.composite.framerate, 30);
        assert_eq!(config.composite.max_videos, 16);
        for bad in [
            "width = 1281",
            "height = 8",
            "framerate = 0",
            "video_kbps = 10",
            "audio_kbps = 4096",
            "encoder_threads = 100",
            "max_videos = 0",
            "max_videos = 65",
        ] {
            let text = format!("{MINIMAL}\n[composite]\n{bad}\n");
            let config: ServiceConfig = toml::from_str(&text).expect("parse");
            assert!(config.check().is_err(), "accepted {bad}");
        }
        for unknown in ["preset = \"warp\"", "bitrate = 1"] {
            let text = format!("{MINIMAL}\n[composite]\n{unknown}\n");
            assert!(
                toml::from_str::<ServiceConfig>(&text).is_err(),
                "parsed {unknown}"
            );
        }
    }

    #[test]
    fn short_secret_and_bad_share_are_refused() {
        let short = MINIMAL.replace("0123456789abcdef", "short");
        let config: ServiceConfig = toml::from_str(&short).expect("parse");
        let err = config.check().expect_err("short secret").to_string();
        assert!(!err.contains("short"), "the secret leaked: {err}");
        let share = format!("{MINIMAL}\n[admission]\ncpu_share = 1.5\n");
        let config: ServiceConfig = toml::from_str(&share).expect("parse");
        assert!(config.check().is_err());
    }
}
