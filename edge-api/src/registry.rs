//! The region registry: what each region's media-sidecar last said, and whether the region can
//! take a new room now.
//!
//! A region is available when its sidecar heartbeated within `region_timeout_secs`, LiveKit
//! answered it, it is not draining, it has not left, and it has room left under the capacity
//! its sidecar reports. Rooms already pinned to a region keep their pin while it is unhealthy,
//! draining or full: their participants are there. Only a region that is gone (see
//! [`region_is_gone`]) gives its rooms up: the next join places them again, and those nobody
//! joins again end after their empty timeout. A configured region appears when its sidecar
//! first heartbeats and disappears when a drained sidecar says it is leaving (or stops
//! heartbeating).
//!
//! Without sidecar secrets configured there is no registry: every configured region is
//! available (a single-region set-up, or regions watched by other means).

use serde::Serialize;

use crate::config::EdgeConfig;
use crate::db;
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::Edge;

pub use edgemeet_protocol::heartbeat::{Capacity, Heartbeat, Load};

/// A region's entry in the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionStatus {
    /// The region.
    pub region_id: String,
    /// When the edge received its last heartbeat, Unix ms (edge clock).
    pub received_at_ms: i64,
    /// When its sidecar left after draining, if it did.
    pub left_at_ms: Option<i64>,
    /// The last heartbeat.
    pub heartbeat: Heartbeat,
}

/// Why a region takes no new room (or that it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// It takes rooms.
    Available,
    /// Its sidecar never heartbeated.
    Unknown,
    /// Its last heartbeat is too old.
    Silent,
    /// LiveKit did not answer its sidecar, or the sidecar cannot keep its webhooks.
    MediaDown,
    /// It is draining.
    Draining,
    /// It drained and left.
    Left,
    /// It is at its room or participant limit.
    Full,
}

impl RegionStatus {
    /// Whether the region takes a new room at `now_ms`.
    pub fn availability(&self, now_ms: i64, timeout_secs: i64) -> Availability {
        let h = &self.heartbeat;
        if self.left_at_ms.is_some() {
            Availability::Left
        } else if now_ms - self.received_at_ms > timeout_secs.saturating_mul(1000) {
            Availability::Silent
        } else if !h.livekit_ok || !h.events_ok {
            Availability::MediaDown
        } else if h.draining {
            Availability::Draining
        } else if h.capacity.is_full(&h.load) {
            Availability::Full
        } else {
            Availability::Available
        }
    }
}

/// How many heartbeat timeouts (`region_timeout_secs`) a region's sidecar may stay silent
/// before the region counts as gone: long enough for a sidecar or LiveKit restart, short
/// enough that a meeting whose region died can start again elsewhere within a minute or so.
pub const GONE_AFTER_TIMEOUTS: i64 = 4;

/// How long (ms) a region's sidecar may stay silent before the region counts as gone.
pub fn gone_after_ms(config: &EdgeConfig) -> i64 {
    config
        .region_timeout_secs
        .saturating_mul(GONE_AFTER_TIMEOUTS)
        .saturating_mul(1000)
}

/// Whether a running room pinned to `region_id` must leave it, at `now_ms`: the region was
/// removed from the configuration, or (with sidecars) it drained and left (`heard_ms` 0) or
/// its sidecar has been silent for [`gone_after_ms`]. `heard_ms` is
/// [`crate::db::RoomRow::region_heard_ms`]; a region the registry never heard of keeps its
/// rooms.
pub fn region_is_gone(
    config: &EdgeConfig,
    region_id: &str,
    heard_ms: Option<i64>,
    now_ms: i64,
) -> bool {
    if config.region(region_id).is_none() {
        return true;
    }
    // Only a sidecar's silence says a region is gone.
    if !config.has_sidecar(region_id) {
        return false;
    }
    heard_ms.is_some_and(|heard| heard == 0 || now_ms - heard > gone_after_ms(config))
}

/// The registry as read for one decision: every region's availability.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    statuses: std::collections::HashMap<String, RegionStatus>,
    now_ms: i64,
    timeout_secs: i64,
    /// No sidecars: every configured region is available.
    open: bool,
    /// Regions whose LiveKit posts its webhooks to the edge: available without a heartbeat.
    direct: std::collections::HashSet<String>,
}

impl Registry {
    /// The registry from the stored statuses, as of `now_ms`.
    pub fn new(config: &EdgeConfig, statuses: Vec<RegionStatus>, now_ms: i64) -> Registry {
        Registry {
            statuses: statuses
                .into_iter()
                .map(|s| (s.region_id.clone(), s))
                .collect(),
            now_ms,
            timeout_secs: config.region_timeout_secs,
            open: !config.uses_sidecars(),
            direct: config
                .regions
                .iter()
                .filter(|r| r.direct_webhooks)
                .map(|r| r.id.clone())
                .collect(),
        }
    }

    /// Whether `region_id` takes a new room.
    pub fn availability(&self, region_id: &str) -> Availability {
        // Nothing reports on these: they take rooms. (With sidecars, a region with neither a
        // sidecar nor webhooks of its own is never heard, and takes none.)
        if self.open || self.direct.contains(region_id) {
            return Availability::Available;
        }
        self.statuses
            .get(region_id)
            .map_or(Availability::Unknown, |s| {
                s.availability(self.now_ms, self.timeout_secs)
            })
    }

    /// Whether `region_id` takes a new room.
    pub fn is_available(&self, region_id: &str) -> bool {
        self.availability(region_id) == Availability::Available
    }
}

/// The registry as the store holds it now (no query without sidecars).
pub async fn load<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
) -> Result<Registry, StoreError> {
    let statuses = if edge.config.uses_sidecars() {
        db::region_statuses(&edge.store).await?
    } else {
        Vec::new()
    };
    Ok(Registry::new(&edge.config, statuses, edge.clock.now_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(rooms: u64, max_rooms: u64) -> RegionStatus {
        RegionStatus {
            region_id: "eu".into(),
            received_at_ms: 100_000,
            left_at_ms: None,
            heartbeat: Heartbeat {
                region_id: "eu".into(),
                sidecar_id: "s".into(),
                sent_at_ms: 99_000,
                livekit_ok: true,
                events_ok: true,
                load: Load {
                    rooms,
                    participants: 3,
                    publishers: 1,
                    cpu_load: Some(0.2),
                },
                capacity: Capacity {
                    max_rooms,
                    max_participants: 0,
                },
                draining: false,
                leaving: false,
                undelivered_events: 0,
            },
        }
    }

    #[test]
    fn availability_follows_health_drain_and_capacity() {
        let s = status(1, 2);
        assert_eq!(s.availability(110_000, 15), Availability::Available);
        assert_eq!(s.availability(115_001, 15), Availability::Silent);
        assert_eq!(status(2, 2).availability(101_000, 15), Availability::Full);
        assert_eq!(
            status(200, 0).availability(101_000, 15),
            Availability::Available
        );
        let mut down = status(0, 0);
        down.heartbeat.livekit_ok = false;
        assert_eq!(down.availability(101_000, 15), Availability::MediaDown);
        let mut unkept = status(0, 0);
        unkept.heartbeat.events_ok = false;
        assert_eq!(unkept.availability(101_000, 15), Availability::MediaDown);
        let mut draining = status(0, 0);
        draining.heartbeat.draining = true;
        assert_eq!(draining.availability(101_000, 15), Availability::Draining);
        let mut left = status(0, 0);
        left.left_at_ms = Some(100_500);
        assert_eq!(left.availability(101_000, 15), Availability::Left);
    }

    #[test]
    fn a_region_is_gone_when_removed_left_or_long_silent() {
        let mut config = crate::config::fixtures::config();
        // Without sidecars only the configuration says a region is gone.
        assert!(region_is_gone(&config, "removed", None, 0));
        assert!(!region_is_gone(&config, "eu", Some(0), 1_000_000));
        config.sidecar_secrets = [("eu".to_string(), "x".to_string())].into();
        assert_eq!(gone_after_ms(&config), 60_000);
        assert!(!region_is_gone(&config, "eu", None, 1_000_000));
        assert!(region_is_gone(&config, "eu", Some(0), 1_000_000));
        assert!(!region_is_gone(&config, "eu", Some(940_000), 1_000_000));
        assert!(region_is_gone(&config, "eu", Some(939_999), 1_000_000));
    }
}
