//! The sidecar's configuration: one TOML file (see `sidecar.example.toml`), checked at load.
//! Errors name the field that is wrong and never echo a value, so a secret can't reach a log.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything `media-sidecar serve` reads from its config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This region's id at the edge; also the `API-KEY` of everything the sidecar signs.
    pub region_id: String,
    /// Where the webhook, admin and metrics HTTP server listens, e.g. `127.0.0.1:7890`.
    pub listen: SocketAddr,
    /// The HMAC secret shared with the edge for this region (at least 32 characters).
    pub sidecar_secret: Secret,
    /// Where the outbox database lives.
    pub data_dir: PathBuf,
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat_seconds")]
    pub heartbeat_seconds: f64,
    /// The longest a drain waits for the rooms to end before the sidecar leaves anyway.
    #[serde(default = "default_drain_deadline_seconds")]
    pub drain_deadline_seconds: u64,
    /// The LiveKit cluster this sidecar stands beside.
    pub livekit: LiveKitConfig,
    /// The edge that receives heartbeats and events.
    pub edge: EdgeConfig,
    /// What the region may take, reported in heartbeats (0 = unlimited).
    #[serde(default)]
    pub capacity: Capacity,
}

/// The local LiveKit server: its Twirp API and the key it signs webhooks with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveKitConfig {
    /// LiveKit's URL (`http(s)://` or `ws(s)://`), e.g. `http://127.0.0.1:7880`.
    pub url: String,
    /// The API key the sidecar lists rooms with and LiveKit signs webhooks with.
    pub api_key: String,
    /// That key's secret.
    pub api_secret: Secret,
}

/// The edge's base URL; `/internal/sidecar/heartbeat` and `/internal/sidecar/events` are appended.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// e.g. `https://meet.example.com`.
    pub url: String,
}

/// The region's limits, as told to the edge (`[capacity]`).
pub use edgemeet_protocol::heartbeat::Capacity;

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for signing and verifying only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

fn default_heartbeat_seconds() -> f64 {
    5.0
}

fn default_drain_deadline_seconds() -> u64 {
    3600
}

/// The shortest `sidecar_secret` accepted.
pub const MIN_SECRET_LEN: usize = 32;

/// Why the config file was refused. Never carries a secret.
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
        /// What is wrong (TOML's message, without the offending line).
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads, parses and checks the config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks a config from its text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        // `message()` rather than the full error: the full one quotes the offending line,
        // which may hold a secret.
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.message().to_owned(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Refuses values that cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.region_id.is_empty()
            || self.region_id.len() > 64
            || !self
                .region_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return invalid("region_id must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.'");
        }
        if self.sidecar_secret.expose().chars().count() < MIN_SECRET_LEN {
            return invalid("sidecar_secret must be at least 32 characters");
        }
        if !(self.heartbeat_seconds.is_finite()
            && self.heartbeat_seconds >= 0.1
            && self.heartbeat_seconds <= 300.0)
        {
            return invalid("heartbeat_seconds must be between 0.1 and 300");
        }
        if self.drain_deadline_seconds == 0
            || self.drain_deadline_seconds > crate::drain::MAX_DRAIN_DEADLINE.as_secs()
        {
            return invalid("drain_deadline_seconds must be between 1 and 604800 (7 days)");
        }
        if !has_scheme(
            &self.livekit.url,
            &["http://", "https://", "ws://", "wss://"],
        ) {
            return invalid("livekit.url must be an http(s):// or ws(s):// URL");
        }
        if self.livekit.api_key.is_empty() || self.livekit.api_secret.expose().is_empty() {
            return invalid("livekit.api_key and livekit.api_secret must be set");
        }
        if !has_scheme(&self.edge.url, &["http://", "https://"]) {
            return invalid("edge.url must be an http(s):// URL");
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir must be set");
        }
        Ok(())
    }

    /// The heartbeat period.
    pub fn heartbeat_every(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_seconds)
    }

    /// The longest a drain waits for rooms to end.
    pub fn drain_deadline(&self) -> Duration {
        Duration::from_secs(self.drain_deadline_seconds)
    }

    /// The outbox database file.
    pub fn outbox_path(&self) -> PathBuf {
        self.data_dir.join("outbox.db")
    }
}

fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes
        .iter()
        .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";

    fn minimal() -> String {
        format!(
            r#"
            region_id = "eu"
            listen = "127.0.0.1:0"
            sidecar_secret = "{SECRET}"
            data_dir = "/tmp/sidecar"
            [livekit]
            url = "ws://127.0.0.1:7880"
            api_key = "devkey"
            api_secret = "lk-secret"
            [edge]
            url = "http://127.0.0.1:8080"
            "#
        )
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = Config::parse(&minimal()).expect("valid");
        assert_eq!(config.heartbeat_every(), Duration::from_secs(5));
        assert_eq!(config.drain_deadline(), Duration::from_secs(3600));
        assert_eq!(config.capacity, Capacity::default());
        assert_eq!(
            config.outbox_path(),
            PathBuf::from("/tmp/sidecar/outbox.db")
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let config = Config::parse(include_str!("../sidecar.example.toml")).expect("valid example");
        assert_eq!(config.region_id, "eu-west");
        assert_eq!(config.capacity.max_rooms, 500);
        assert_eq!(config.capacity.max_participants, 5000);
        assert_eq!(config.heartbeat_seconds, 5.0);
        assert_eq!(config.drain_deadline_seconds, 3600);
    }

    #[test]
    fn bad_values_are_refused_without_echoing_secrets() {
        let base = minimal();
        let cases = [
            base.replace("region_id = \"eu\"", "region_id = \"\""),
            base.replace("region_id = \"eu\"", "region_id = \"e u\""),
            base.replace(SECRET, "too-short"),
            base.replace("ws://127.0.0.1:7880", "ftp://x"),
            base.replace("api_key = \"devkey\"", "api_key = \"\""),
            base.replace("http://127.0.0.1:8080", "127.0.0.1:8080"),
            base.replace("data_dir", "heartbeat_seconds = 0\ndata_dir"),
            base.replace("data_dir", "drain_deadline_seconds = 0\ndata_dir"),
            base.replace("data_dir", "drain_deadline_seconds = 604801\ndata_dir"),
        ];
        for text in cases {
            let err = Config::parse(&text).expect_err("accepted a bad config");
            let message = err.to_string();
            assert!(matches!(err, ConfigError::Invalid(_)), "{message}");
            assert!(!message.contains("too-short") && !message.contains(SECRET));
        }
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_parse_errors_without_the_line() {
        let unknown = minimal().replace("data_dir", "colour = \"blue\"\ndata_dir");
        assert!(matches!(
            Config::parse(&unknown),
            Err(ConfigError::Parse { .. })
        ));
        let wrong = minimal().replace(&format!("\"{SECRET}\""), "42");
        let err = Config::parse(&wrong).expect_err("a number is no secret");
        assert!(!err.to_string().contains(SECRET));
        let typo = minimal().replace("api_secret = \"lk-secret\"", "api_secret = lk-secret");
        let err = Config::parse(&typo).expect_err("bare word");
        assert!(!err.to_string().contains("lk-secret"), "{err}");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let config = Config::parse(&minimal()).expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains(SECRET) && !debug.contains("lk-secret"));
        assert!(debug.contains("redacted"));
    }
}
