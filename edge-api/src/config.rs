//! The edge's configuration: the plugNmeet API client, token lifetimes, limits and the
//! configured media regions. Loaded from a [`ConfigSource`] (Spin variables, Worker vars).

use serde::Deserialize;
use thiserror::Error;

use crate::platform::ConfigSource;

/// HS256 secrets shorter than this are refused: a short secret makes every token forgeable.
pub const MIN_SECRET_LEN: usize = 32;

/// A configuration value is missing or malformed. The message names the variable, never its value.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("configuration variable `{0}` is not set")]
    Missing(&'static str),
    /// A variable is set but cannot be used.
    #[error("configuration variable `{name}` is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct GeoPoint {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

impl GeoPoint {
    /// A point, if both coordinates are finite and in range.
    pub fn new(lat: f64, lon: f64) -> Option<GeoPoint> {
        let valid = lat.is_finite()
            && lon.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon);
        valid.then_some(GeoPoint { lat, lon })
    }
}

/// One LiveKit media region the edge can place rooms in.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Stable id, e.g. `eu-west`.
    pub id: String,
    /// Human name, e.g. `Frankfurt`.
    pub name: String,
    /// Where the region's media servers are.
    pub location: GeoPoint,
    /// The LiveKit URL browsers connect to (`ws://` or `wss://`).
    pub livekit_url: String,
    /// LiveKit API key.
    pub api_key: String,
    /// LiveKit API secret (from the platform's secret store).
    pub api_secret: String,
    /// The region's LiveKit posts its webhooks straight to the edge (`POST /webhook/<id>`),
    /// where no media-sidecar can run beside it (LiveKit Cloud): `"webhooks": "direct"`.
    pub direct_webhooks: bool,
}

impl Region {
    /// The base URL of the region's Twirp API (`ws` becomes `http`, `wss` becomes `https`).
    pub fn api_base_url(&self) -> String {
        let url = self.livekit_url.trim_end_matches('/');
        if let Some(rest) = url.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = url.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            url.to_owned()
        }
    }
}

/// Which request headers carry the end user's location (set by a trusted proxy or the platform).
#[derive(Debug, Clone, PartialEq)]
pub struct GeoHeaders {
    /// Header with the latitude in degrees.
    pub latitude: String,
    /// Header with the longitude in degrees.
    pub longitude: String,
}

/// Everything the edge needs to answer requests.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// The plugNmeet API key customers' backends send in `API-KEY`.
    pub api_key: String,
    /// The plugNmeet API secret: HMAC key for requests, HS256 key for join tokens.
    pub api_secret: String,
    /// Join-token lifetime in seconds (plugNmeet's `client.token_validity`, default 10 min).
    pub token_validity_secs: i64,
    /// Upper bound for a room's `max_participants` (0 = no bound).
    pub max_participants_cap: u32,
    /// Upper bound for a room's `room_duration` in minutes (0 = no bound).
    pub max_room_duration_minutes: u64,
    /// The regions rooms can be placed in, in configuration order.
    pub regions: Vec<Region>,
    /// The region used when nothing better is known.
    pub default_region: String,
    /// The headers the end user's location is read from.
    pub geo_headers: GeoHeaders,
    /// Each region's media-sidecar secret, by region id. When any is set, regions are placed
    /// only while their sidecar heartbeats (see [`crate::registry`]); when none is, every
    /// configured region is always available.
    pub sidecar_secrets: std::collections::HashMap<String, String>,
    /// A region whose last heartbeat is older than this is unhealthy.
    pub region_timeout_secs: i64,
    /// Most webhook events one sidecar batch may carry (1 to
    /// [`crate::sidecars::MAX_EVENTS`]). A followed event costs up to four statements, so on a
    /// platform that caps queries per request (D1 on Workers' free plan: 50) this keeps a
    /// batch inside the cap; larger batches are refused with the limit, which sidecars adopt.
    pub max_events_per_batch: usize,
    /// Days an ended session stays a past room before it and everything kept about it is
    /// deleted (0 = kept for good, as plugNmeet does).
    pub past_rooms_retention_days: i64,
    /// The recorder nodes recordings and broadcasts are sent to.
    pub recorders: RecorderFleet,
    /// Where plugNmeet's webhooks about each session go (see [`crate::webhooks`]).
    pub webhooks: CustomerWebhooks,
    /// The edge's public origin (`https://meet.example.com`), which links the edge hands out
    /// start with (BBB's join and playback links); empty: the request's own host.
    pub public_url: String,
}

/// plugNmeet's `webhook_conf`: the customer's servers told about each session's events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerWebhooks {
    /// Every session's events go here (`webhook_url`; empty: nowhere).
    pub url: String,
    /// A room's own `metadata.webhook_url` also gets its sessions' events
    /// (`webhook_per_meeting`, plugNmeet's `enable_for_per_meeting`).
    pub per_meeting: bool,
}

impl CustomerWebhooks {
    /// Whether any session can have a URL (with neither setting, none is captured and nothing
    /// is sent: events queued while they were set wait until they are set again).
    pub fn enabled(&self) -> bool {
        !self.url.is_empty() || self.per_meeting
    }

    /// The URLs a session created with `room_url` (its `metadata.webhook_url`, '' when none)
    /// sends its events to, without repeats.
    pub fn urls_for<'a>(&'a self, room_url: &'a str) -> Vec<&'a str> {
        let mut urls = Vec::with_capacity(2);
        if !self.url.is_empty() {
            urls.push(self.url.as_str());
        }
        if self.per_meeting && !room_url.is_empty() && room_url != self.url {
            urls.push(room_url);
        }
        urls
    }
}

/// The recorder nodes the edge sends recording and RTMP jobs to (see [`crate::recording`]).
/// Each has its own `api_key`, by which its reports are known.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderFleet {
    /// The nodes, in configuration order.
    pub nodes: Vec<Recorder>,
    /// A recorder whose last heartbeat is older than this is taken for dead.
    pub timeout_secs: i64,
    /// How long a `recording/getDownloadToken` token works (plugNmeet's
    /// `recorder_info.token_validity`, which has no default there; 30 minutes here).
    pub download_token_validity_secs: u64,
}

impl Default for RecorderFleet {
    fn default() -> Self {
        RecorderFleet {
            nodes: Vec::new(),
            timeout_secs: 15,
            download_token_validity_secs: 1800,
        }
    }
}

impl RecorderFleet {
    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Recorder> {
        self.nodes.iter().find(|r| r.id == id)
    }
}

/// One recorder node: where its job API is and the key and secret it shares with the edge
/// (both ways: the edge signs jobs with them, the node signs its heartbeats and events).
#[derive(Clone, PartialEq)]
pub struct Recorder {
    /// The node's id, its `node_id`.
    pub id: String,
    /// Base URL of its job API (`http://` or `https://`).
    pub url: String,
    /// Its `api_key`.
    pub api_key: String,
    /// Its `api_secret` (from the platform's secret store).
    pub api_secret: String,
    /// The region it is nearest to: rooms there try it first.
    pub region: Option<String>,
    /// Base URL browsers download its recordings from (`/download/...` on its job API's
    /// server, usually behind a public proxy); its `url` when not set.
    pub public_url: String,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .field("region", &self.region)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// The shape of one entry of the `recorders` variable (secrets are separate).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecorderEntry {
    id: String,
    url: String,
    api_key: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    public_url: Option<String>,
}

/// A recorder's secret shorter than this is refused (the recorder's own minimum).
pub const MIN_RECORDER_SECRET_LEN: usize = 16;

/// The shape of one entry of the `regions` variable (secrets are separate).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionEntry {
    id: String,
    #[serde(default)]
    name: String,
    lat: f64,
    lon: f64,
    livekit_url: String,
    api_key: String,
    /// `direct`: its LiveKit posts webhooks to the edge itself.
    #[serde(default)]
    webhooks: Option<String>,
}

impl EdgeConfig {
    /// How long join and LiveKit tokens live, in seconds (10 minutes if the configured value
    /// is negative).
    pub fn token_validity(&self) -> u64 {
        u64::try_from(self.token_validity_secs).unwrap_or(600)
    }

    /// Reads and checks the configuration.
    ///
    /// Variables: `api_key`, `api_secret` (secret), `regions` (JSON list of
    /// `{id, name, lat, lon, livekit_url, api_key}`), `livekit_secrets` (secret, JSON object
    /// region id → LiveKit API secret), and optionally `default_region`, `token_validity_secs`,
    /// `max_participants_cap`, `max_room_duration_minutes`, `geo_latitude_header`,
    /// `geo_longitude_header`, `sidecar_secrets`, `region_timeout_secs`, `max_events_per_batch`,
    /// `past_rooms_retention_days`, `recorders` (JSON list of `{id, url, api_key, region?,
    /// public_url?}`),
    /// `recorder_secrets` (secret, JSON object recorder id → secret), `recorder_timeout_secs`,
    /// `download_token_validity_secs`, `webhook_url`, `webhook_per_meeting` (`true`/`false`),
    /// `public_url`.
    pub async fn load(source: &impl ConfigSource) -> Result<EdgeConfig, ConfigError> {
        let api_key = required(source, "api_key").await?;
        let api_secret = required(source, "api_secret").await?;
        if api_secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::Invalid {
                name: "api_secret",
                reason: format!("must be at least {MIN_SECRET_LEN} bytes"),
            });
        }
        let regions_json = required(source, "regions").await?;
        let secrets_json = required(source, "livekit_secrets").await?;
        let regions = parse_regions(&regions_json, &secrets_json)?;
        // The customer's webhook receivers get bodies signed with the API key and secret; a
        // region whose LiveKit webhooks the edge takes directly under the same pair would take
        // such a body, replayed to `/webhook/<region>`, as its LiveKit's (a `room_finished`).
        if let Some(shared) = regions
            .iter()
            .find(|r| r.direct_webhooks && r.api_key == api_key && r.api_secret == api_secret)
        {
            return Err(ConfigError::Invalid {
                name: "regions",
                reason: format!(
                    "region `{}` takes LiveKit's webhooks directly: its api_key and secret must \
                     not be the edge's own",
                    shared.id
                ),
            });
        }
        let default_region = match source.get("default_region").await {
            Some(id) if !id.is_empty() => {
                if !regions.iter().any(|r| r.id == id) {
                    return Err(ConfigError::Invalid {
                        name: "default_region",
                        reason: format!("no region has id `{id}`"),
                    });
                }
                id
            }
            _ => regions[0].id.clone(),
        };
        let sidecar_secrets = sidecar_secrets(source, &regions).await?;
        let recorders = recorders(source, &regions).await?;
        Ok(EdgeConfig {
            api_key,
            api_secret,
            token_validity_secs: number(source, "token_validity_secs", 600).await?,
            max_participants_cap: number(source, "max_participants_cap", 0).await?,
            max_room_duration_minutes: number(source, "max_room_duration_minutes", 0).await?,
            regions,
            default_region,
            sidecar_secrets,
            region_timeout_secs: number(source, "region_timeout_secs", 15).await?,
            max_events_per_batch: events_per_batch(source).await?,
            past_rooms_retention_days: number(source, "past_rooms_retention_days", 0).await?,
            recorders: RecorderFleet {
                nodes: recorders,
                timeout_secs: number(source, "recorder_timeout_secs", 15).await?,
                download_token_validity_secs: number(source, "download_token_validity_secs", 1800)
                    .await?,
            },
            webhooks: customer_webhooks(source).await?,
            public_url: public_url(source).await?,
            geo_headers: GeoHeaders {
                latitude: source
                    .get("geo_latitude_header")
                    .await
                    .unwrap_or_else(|| "cf-iplatitude".into()),
                longitude: source
                    .get("geo_longitude_header")
                    .await
                    .unwrap_or_else(|| "cf-iplongitude".into()),
            },
        })
    }

    /// The region with this id.
    pub fn region(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Whether `region_id` reports through a media-sidecar (and so must heartbeat to take
    /// rooms, and counts as gone when its sidecar falls silent).
    pub fn has_sidecar(&self, region_id: &str) -> bool {
        self.sidecar_secrets.contains_key(region_id)
    }

    /// Whether the edge hears `region_id`'s LiveKit webhooks, through its sidecar or straight
    /// from LiveKit: then LiveKit's `participant_joined` counts who joined, not the edge.
    pub fn hears_events_of(&self, region_id: &str) -> bool {
        self.has_sidecar(region_id) || self.region(region_id).is_some_and(|r| r.direct_webhooks)
    }

    /// Whether regions report through media-sidecars (and so must heartbeat to take rooms).
    pub fn uses_sidecars(&self) -> bool {
        !self.sidecar_secrets.is_empty()
    }
}

/// The optional `webhook_url` (an http(s) URL) and `webhook_per_meeting` variables.
async fn customer_webhooks(source: &impl ConfigSource) -> Result<CustomerWebhooks, ConfigError> {
    let url = source
        .get("webhook_url")
        .await
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    if !url.is_empty() && !crate::metadata::is_http_url(&url) {
        return Err(ConfigError::Invalid {
            name: "webhook_url",
            reason: "must be an http(s) URL".into(),
        });
    }
    let per_meeting = match source
        .get("webhook_per_meeting")
        .await
        .as_deref()
        .map(str::trim)
    {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ConfigError::Invalid {
                name: "webhook_per_meeting",
                reason: "must be true or false".into(),
            })
        }
    };
    Ok(CustomerWebhooks { url, per_meeting })
}

/// The optional `public_url` variable: an http(s) origin, without a path.
async fn public_url(source: &impl ConfigSource) -> Result<String, ConfigError> {
    let url = source
        .get("public_url")
        .await
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let origin_only = url
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains(['/', '?', '#']));
    let usable = url.is_empty() || (crate::metadata::is_http_url(&url) && origin_only);
    if !usable {
        return Err(ConfigError::Invalid {
            name: "public_url",
            reason: "must be an http(s) origin such as https://meet.example.com".into(),
        });
    }
    Ok(url)
}

/// The optional `max_events_per_batch` variable, 1 to [`crate::sidecars::MAX_EVENTS`].
async fn events_per_batch(source: &impl ConfigSource) -> Result<usize, ConfigError> {
    let max = crate::sidecars::MAX_EVENTS;
    let value: usize = number(source, "max_events_per_batch", max).await?;
    if !(1..=max).contains(&value) {
        return Err(ConfigError::Invalid {
            name: "max_events_per_batch",
            reason: format!("must be 1 to {max}"),
        });
    }
    Ok(value)
}

/// The optional `sidecar_secrets` variable: a JSON object region id -> secret.
async fn sidecar_secrets(
    source: &impl ConfigSource,
    regions: &[Region],
) -> Result<std::collections::HashMap<String, String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "sidecar_secrets",
        reason,
    };
    let Some(json) = source
        .get("sidecar_secrets")
        .await
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(std::collections::HashMap::new());
    };
    // As with livekit_secrets, a parse error is not passed on: it could echo a secret.
    let secrets: std::collections::HashMap<String, String> =
        serde_json::from_str(&json).map_err(|_| invalid("not a JSON object of strings".into()))?;
    for (id, secret) in &secrets {
        let Some(region) = regions.iter().find(|r| &r.id == id) else {
            return Err(invalid(format!("no region has id `{id}`")));
        };
        if region.direct_webhooks {
            return Err(invalid(format!(
                "region `{id}` has its webhooks sent directly: it has no sidecar"
            )));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(invalid(format!(
                "the secret of region `{id}` must be at least {MIN_SECRET_LEN} bytes"
            )));
        }
    }
    Ok(secrets)
}

/// The optional `recorders` and `recorder_secrets` variables.
async fn recorders(
    source: &impl ConfigSource,
    regions: &[Region],
) -> Result<Vec<Recorder>, ConfigError> {
    let present = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let Some(json) = present(source.get("recorders").await) else {
        return Ok(Vec::new());
    };
    let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
    let entries: Vec<RecorderEntry> =
        serde_json::from_str(&json).map_err(|e| invalid("recorders", e.to_string()))?;
    // As with the other secrets, a parse error is not passed on: it could echo a secret.
    let secrets: std::collections::HashMap<String, String> =
        match present(source.get("recorder_secrets").await) {
            Some(json) => serde_json::from_str(&json)
                .map_err(|_| invalid("recorder_secrets", "not a JSON object of strings".into()))?,
            None => Default::default(),
        };
    let mut nodes: Vec<Recorder> = Vec::with_capacity(entries.len());
    for e in entries {
        if !crate::recording::is_node_id(&e.id) {
            return Err(invalid(
                "recorders",
                format!("recorder id `{}` must be 1-64 of [A-Za-z0-9_-]", e.id),
            ));
        }
        if nodes.iter().any(|r| r.id == e.id) {
            return Err(invalid(
                "recorders",
                format!("recorder id `{}` repeats", e.id),
            ));
        }
        // A node is known by its key: two nodes with one key could speak for each other.
        if e.api_key.is_empty() || nodes.iter().any(|r| r.api_key == e.api_key) {
            return Err(invalid(
                "recorders",
                format!(
                    "recorder `{}`: api_key must be set and differ from every other node's",
                    e.id
                ),
            ));
        }
        let base_url = |url: &str, field: &str| {
            let url = url.trim_end_matches('/').to_owned();
            let plain = (url.starts_with("http://") || url.starts_with("https://"))
                && !url.contains(['?', '#'])
                && !url.chars().any(char::is_control);
            if plain {
                Ok(url)
            } else {
                Err(invalid(
                    "recorders",
                    format!(
                        "recorder `{}`: {field} must be an http:// or https:// URL",
                        e.id
                    ),
                ))
            }
        };
        let url = base_url(&e.url, "url")?;
        let public_url = match &e.public_url {
            Some(public) => base_url(public, "public_url")?,
            None => url.clone(),
        };
        if let Some(region) = &e.region {
            if !regions.iter().any(|r| &r.id == region) {
                return Err(invalid(
                    "recorders",
                    format!("recorder `{}`: no region has id `{region}`", e.id),
                ));
            }
        }
        let api_secret = secrets.get(&e.id).cloned().unwrap_or_default();
        if api_secret.len() < MIN_RECORDER_SECRET_LEN {
            return Err(invalid(
                "recorder_secrets",
                format!(
                    "the secret of recorder `{}` must be at least {MIN_RECORDER_SECRET_LEN} bytes",
                    e.id
                ),
            ));
        }
        nodes.push(Recorder {
            id: e.id,
            url,
            api_key: e.api_key,
            api_secret,
            region: e.region,
            public_url,
        });
    }
    if let Some(id) = secrets
        .keys()
        .find(|id| !nodes.iter().any(|r| &r.id == *id))
    {
        return Err(invalid(
            "recorder_secrets",
            format!("no recorder has id `{id}`"),
        ));
    }
    Ok(nodes)
}

async fn required(source: &impl ConfigSource, name: &'static str) -> Result<String, ConfigError> {
    match source.get(name).await {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

async fn number<T: std::str::FromStr>(
    source: &impl ConfigSource,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match source.get(name).await {
        None => Ok(default),
        Some(v) if v.trim().is_empty() => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: "not a non-negative whole number".into(),
        }),
    }
}

fn parse_regions(regions_json: &str, secrets_json: &str) -> Result<Vec<Region>, ConfigError> {
    let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
    let entries: Vec<RegionEntry> =
        serde_json::from_str(regions_json).map_err(|e| invalid("regions", e.to_string()))?;
    // The error of a failed secrets parse must not echo the secrets, so it is not passed on.
    let secrets: std::collections::HashMap<String, String> = serde_json::from_str(secrets_json)
        .map_err(|_| invalid("livekit_secrets", "not a JSON object of strings".into()))?;
    if entries.is_empty() {
        return Err(invalid("regions", "at least one region is needed".into()));
    }
    let mut regions: Vec<Region> = Vec::with_capacity(entries.len());
    for e in entries {
        let valid_id = !e.id.is_empty()
            && e.id.len() <= 64
            && e.id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_id {
            return Err(invalid(
                "regions",
                format!("region id `{}` must be 1-64 of [A-Za-z0-9_-]", e.id),
            ));
        }
        if regions.iter().any(|r| r.id == e.id) {
            return Err(invalid("regions", format!("region id `{}` repeats", e.id)));
        }
        let location = GeoPoint::new(e.lat, e.lon).ok_or_else(|| {
            invalid(
                "regions",
                format!("region `{}` has an invalid lat/lon", e.id),
            )
        })?;
        if !(e.livekit_url.starts_with("ws://") || e.livekit_url.starts_with("wss://")) {
            return Err(invalid(
                "regions",
                format!("region `{}`: livekit_url must be ws:// or wss://", e.id),
            ));
        }
        let api_secret = secrets.get(&e.id).cloned().ok_or_else(|| {
            invalid(
                "livekit_secrets",
                format!("no secret for region `{}`", e.id),
            )
        })?;
        if api_secret.len() < MIN_SECRET_LEN {
            return Err(invalid(
                "livekit_secrets",
                format!(
                    "the secret of region `{}` must be at least {MIN_SECRET_LEN} bytes",
                    e.id
                ),
            ));
        }
        let direct_webhooks = match e.webhooks.as_deref() {
            None | Some("") | Some("sidecar") => false,
            Some("direct") => true,
            Some(_) => {
                return Err(invalid(
                    "regions",
                    format!(
                        "region `{}`: webhooks must be \"direct\" or \"sidecar\"",
                        e.id
                    ),
                ))
            }
        };
        let name = if e.name.is_empty() {
            e.id.clone()
        } else {
            e.name
        };
        regions.push(Region {
            id: e.id,
            name,
            location,
            livekit_url: e.livekit_url,
            api_key: e.api_key,
            api_secret,
            direct_webhooks,
        });
    }
    // A webhook names no region, only the key that signed it: one signed for another region's
    // room would be taken here for a room this region does not run, whose LiveKit room it would
    // then delete.
    if let Some(shared) = regions.iter().find(|r| {
        r.direct_webhooks
            && regions
                .iter()
                .any(|other| other.id != r.id && other.api_key == r.api_key)
    }) {
        return Err(invalid(
            "regions",
            format!(
                "region `{}` takes LiveKit's webhooks directly: its api_key must be its own",
                shared.id
            ),
        ));
    }
    Ok(regions)
}

/// Configurations for unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{EdgeConfig, GeoHeaders, GeoPoint, Region};

    /// A region at `lat`, `lon` with placeholder LiveKit details.
    pub(crate) fn region(id: &str, lat: f64, lon: f64) -> Region {
        Region {
            id: id.into(),
            name: id.into(),
            location: GeoPoint { lat, lon },
            livekit_url: "ws://x".into(),
            api_key: "k".into(),
            api_secret: "s".into(),
            direct_webhooks: false,
        }
    }

    /// Three regions (eu, us, ap; us the default), no sidecars.
    pub(crate) fn config() -> EdgeConfig {
        EdgeConfig {
            api_key: "k".into(),
            api_secret: "s".into(),
            token_validity_secs: 600,
            max_participants_cap: 0,
            max_room_duration_minutes: 0,
            regions: vec![
                region("eu", 50.1, 8.7),
                region("us", 39.0, -77.5),
                region("ap", 1.35, 103.8),
            ],
            default_region: "us".into(),
            geo_headers: GeoHeaders {
                latitude: "a".into(),
                longitude: "b".into(),
            },
            sidecar_secrets: Default::default(),
            region_timeout_secs: 15,
            max_events_per_batch: crate::sidecars::MAX_EVENTS,
            past_rooms_retention_days: 0,
            recorders: Default::default(),
            webhooks: Default::default(),
            public_url: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) struct MapSource(pub HashMap<&'static str, String>);
    impl ConfigSource for MapSource {
        async fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn base() -> HashMap<&'static str, String> {
        HashMap::from([
            ("api_key", "plugnmeet".to_string()),
            ("api_secret", "s".repeat(40)),
            (
                "regions",
                r#"[{"id":"eu","name":"Frankfurt","lat":50.1,"lon":8.7,"livekit_url":"wss://eu.example","api_key":"k"}]"#.into(),
            ),
            ("livekit_secrets", format!(r#"{{"eu":"{}"}}"#, "x".repeat(32))),
        ])
    }

    #[tokio::test]
    async fn loads_defaults() {
        let cfg = EdgeConfig::load(&MapSource(base())).await.unwrap();
        assert_eq!(cfg.default_region, "eu");
        assert_eq!(cfg.token_validity_secs, 600);
        assert_eq!(cfg.regions[0].api_base_url(), "https://eu.example");
        assert_eq!(cfg.geo_headers.latitude, "cf-iplatitude");
        assert_eq!(cfg.max_events_per_batch, crate::sidecars::MAX_EVENTS);
    }

    #[tokio::test]
    async fn events_per_batch_stay_within_the_protocol() {
        for (value, ok) in [
            ("12", Some(12)),
            ("100", Some(100)),
            ("0", None),
            ("101", None),
        ] {
            let mut m = base();
            m.insert("max_events_per_batch", value.into());
            let loaded = EdgeConfig::load(&MapSource(m)).await;
            assert_eq!(loaded.ok().map(|c| c.max_events_per_batch), ok, "{value}");
        }
    }

    #[tokio::test]
    async fn refuses_short_secrets_without_echoing_them() {
        let mut m = base();
        m.insert("api_secret", "short".into());
        let err = EdgeConfig::load(&MapSource(m)).await.unwrap_err();
        assert!(!err.to_string().contains("short"), "{err}");

        let mut m = base();
        m.insert("livekit_secrets", r#"{"eu":"tiny-secret"}"#.into());
        let err = EdgeConfig::load(&MapSource(m)).await.unwrap_err();
        assert!(!err.to_string().contains("tiny-secret"), "{err}");
    }

    #[tokio::test]
    async fn refuses_bad_regions() {
        for (regions, needle) in [
            ("[]", "at least one"),
            (
                r#"[{"id":"a b","lat":0,"lon":0,"livekit_url":"ws://x","api_key":"k"}]"#,
                "region id",
            ),
            (
                r#"[{"id":"eu","lat":95,"lon":0,"livekit_url":"ws://x","api_key":"k"}]"#,
                "lat/lon",
            ),
            (
                r#"[{"id":"eu","lat":1,"lon":0,"livekit_url":"http://x","api_key":"k"}]"#,
                "ws://",
            ),
        ] {
            let mut m = base();
            m.insert("regions", regions.into());
            let err = EdgeConfig::load(&MapSource(m)).await.unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let mut m = base();
        m.insert("default_region", "us".into());
        assert!(EdgeConfig::load(&MapSource(m)).await.is_err());
    }

    #[tokio::test]
    async fn a_region_hears_livekit_through_its_sidecar_or_directly_not_both() {
        let direct = r#"[{"id":"eu","lat":1,"lon":0,"livekit_url":"ws://x","api_key":"k","webhooks":"direct"}]"#;
        let mut m = base();
        m.insert("regions", direct.into());
        let cfg = EdgeConfig::load(&MapSource(m.clone())).await.unwrap();
        assert!(cfg.regions[0].direct_webhooks);
        assert!(cfg.hears_events_of("eu") && !cfg.has_sidecar("eu"));
        assert!(!EdgeConfig::load(&MapSource(base()))
            .await
            .unwrap()
            .hears_events_of("eu"));
        m.insert(
            "sidecar_secrets",
            format!(r#"{{"eu":"{}"}}"#, "y".repeat(32)),
        );
        let err = EdgeConfig::load(&MapSource(m)).await.unwrap_err();
        assert!(err.to_string().contains("no sidecar"), "{err}");
        let mut m = base();
        m.insert("regions", direct.replace("direct", "loud"));
        let err = EdgeConfig::load(&MapSource(m)).await.unwrap_err();
        assert!(err.to_string().contains("webhooks must be"), "{err}");
        let mut m = base();
        let two = r#"[{"id":"eu","lat":1,"lon":0,"livekit_url":"ws://x","api_key":"k","webhooks":"direct"},
                      {"id":"us","lat":2,"lon":0,"livekit_url":"ws://y","api_key":"k"}]"#;
        m.insert("regions", two.into());
        m.insert(
            "livekit_secrets",
            format!(r#"{{"eu":"{0}","us":"{0}"}}"#, "x".repeat(32)),
        );
        let err = EdgeConfig::load(&MapSource(m)).await.unwrap_err();
        assert!(err.to_string().contains("must be its own"), "{err}");
        // Nor the edge's own key and secret: its webhooks to customers could be replayed.
        let mut m = base();
        m.insert(
            "regions",
            direct.replace(r#""api_key":"k""#, r#""api_key":"plugnmeet""#),
        );
        m.insert(
            "livekit_secrets",
            format!(r#"{{"eu":"{}"}}"#, "s".repeat(40)),
        );
        let err = EdgeConfig::load(&MapSource(m.clone())).await.unwrap_err();
        assert!(err.to_string().contains("not be the edge's own"), "{err}");
        assert!(
            !err.to_string().contains(&"s".repeat(40)),
            "no secret in the error"
        );
        m.insert(
            "livekit_secrets",
            format!(r#"{{"eu":"{}"}}"#, "t".repeat(40)),
        );
        assert!(
            EdgeConfig::load(&MapSource(m)).await.is_ok(),
            "another secret"
        );
    }
}
