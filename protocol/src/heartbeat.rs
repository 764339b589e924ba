//! The heartbeat a region's media-sidecar POSTs to the edge (`/internal/sidecar/heartbeat`,
//! signed with the region's secret) every few seconds: LiveKit's health, the region's load and
//! limits, and whether it drains or leaves. The edge's registry keeps the last one per region.
//!
//! The message only grows: a new field comes with a default for senders that predate it, and a
//! receiver ignores fields it does not know. So edge and sidecars upgrade in either order (a
//! new sidecar's heartbeat is not refused by an edge that predates one of its fields).

use serde::{Deserialize, Serialize};

/// One heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The region the sidecar serves (must match the signing region).
    pub region_id: String,
    /// Chosen by the sidecar at start (a UUID); a new one means it restarted.
    pub sidecar_id: String,
    /// The sidecar's clock, Unix ms: the edge drops a heartbeat older than the last one.
    pub sent_at_ms: i64,
    /// Whether LiveKit answered the sidecar just now.
    pub livekit_ok: bool,
    /// Whether the sidecar can keep LiveKit's webhooks (false while its outbox refuses writes,
    /// e.g. a full disk): a region whose webhooks would be lost takes no new rooms.
    #[serde(default = "yes")]
    pub events_ok: bool,
    /// What the region carries.
    pub load: Load,
    /// What it may carry.
    pub capacity: Capacity,
    /// The region takes no new rooms.
    #[serde(default)]
    pub draining: bool,
    /// The last heartbeat of a drained sidecar: the region leaves the registry.
    #[serde(default)]
    pub leaving: bool,
    /// Events the sidecar holds that the edge has not acknowledged.
    #[serde(default)]
    pub undelivered_events: u64,
}

fn yes() -> bool {
    true
}

/// A region's load: LiveKit's rooms summed, and the media machine's CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Rooms LiveKit has open.
    pub rooms: u64,
    /// Participants in them.
    pub participants: u64,
    /// Participants publishing.
    #[serde(default)]
    pub publishers: u64,
    /// 1-minute load average per core of the media machine; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_load: Option<f64>,
}

/// A region's limits, from its sidecar's configuration (`[capacity]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Most concurrent rooms; 0 = unlimited.
    #[serde(default)]
    pub max_rooms: u64,
    /// Most concurrent participants; 0 = unlimited.
    #[serde(default)]
    pub max_participants: u64,
}

impl Capacity {
    /// Whether `load` leaves no room for another room.
    pub fn is_full(&self, load: &Load) -> bool {
        (self.max_rooms > 0 && load.rooms >= self.max_rooms)
            || (self.max_participants > 0 && load.participants >= self.max_participants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"region_id":"eu","sidecar_id":"s","sent_at_ms":1,"livekit_ok":true,
        "load":{"rooms":2,"participants":3},"capacity":{"max_rooms":0,"max_participants":0}}"#;

    #[test]
    fn optional_fields_default_and_a_heartbeat_round_trips() {
        let hb: Heartbeat = serde_json::from_str(MINIMAL).expect("parse");
        assert!(!hb.draining && !hb.leaving);
        // A sidecar from before events_ok is taken as able to keep its webhooks.
        assert!(hb.events_ok);
        assert_eq!((hb.undelivered_events, hb.load.publishers), (0, 0));
        assert_eq!(hb.load.cpu_load, None);
        let text = serde_json::to_string(&hb).expect("json");
        assert!(!text.contains("cpu_load"), "{text}");
        assert_eq!(serde_json::from_str::<Heartbeat>(&text).expect("back"), hb);
    }

    #[test]
    fn fields_from_a_newer_sender_are_ignored_and_negative_counts_refused() {
        let newer = MINIMAL
            .replace(
                "\"livekit_ok\":true",
                "\"livekit_ok\":true,\"later_field\":{\"x\":1}",
            )
            .replace("\"rooms\":2", "\"rooms\":2,\"gpu_load\":0.5")
            .replace("\"max_rooms\":0", "\"max_rooms\":0,\"max_tracks\":9");
        let hb: Heartbeat = serde_json::from_str(&newer).expect("a newer heartbeat parses");
        assert_eq!(
            hb,
            serde_json::from_str::<Heartbeat>(MINIMAL).expect("parse")
        );
        let negative = MINIMAL.replace("\"rooms\":2", "\"rooms\":-2");
        assert!(serde_json::from_str::<Heartbeat>(&negative).is_err());
    }

    #[test]
    fn a_region_is_full_at_either_limit_and_never_without_one() {
        let load = Load {
            rooms: 2,
            participants: 10,
            ..Load::default()
        };
        let limits = |max_rooms, max_participants| Capacity {
            max_rooms,
            max_participants,
        };
        assert!(!limits(0, 0).is_full(&load));
        assert!(!limits(3, 11).is_full(&load));
        assert!(limits(2, 0).is_full(&load));
        assert!(limits(0, 10).is_full(&load));
    }
}
