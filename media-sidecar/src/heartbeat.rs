//! Heartbeats: every `heartbeat_seconds` the sidecar asks LiveKit for its rooms (Twirp
//! `ListRooms`) and tells the edge, signed, whether LiveKit answered, the region's load and
//! capacity, whether it drains, and whether it keeps its webhooks (each heartbeat checks that the
//! outbox takes a write, so a region recovers from a passing outbox failure without waiting for
//! a webhook). Heartbeats are never queued: a failed one is logged and superseded by the next.
//! Each look at LiveKit is also published for the drain decision.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_api::services::room::RoomClient;
use livekit_protocol as proto;
use tokio::sync::watch;

use crate::config::{Capacity, Secret};
use crate::edge::{EdgeClient, EdgeError, HEARTBEAT_PATH};
use crate::metrics::{flag, Metrics};
use crate::outbox::{now_ms, SharedOutbox};
pub use edgemeet_protocol::heartbeat::{Heartbeat, Load};

/// LiveKit's rooms, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomTotals {
    /// Rooms open.
    pub rooms: u64,
    /// Participants in them (`num_participants`).
    pub participants: u64,
    /// Publishers in them (`num_publishers`).
    pub publishers: u64,
    /// Rooms that take a camera codec the recorder cannot receive (see
    /// [`misses_recordings`]).
    pub recordings_miss_video: u64,
}

/// Picture codecs LiveKit offers that the recorder cannot receive: its WebRTC stack (GStreamer
/// 1.22's webrtcbin) answers each track with VP8, and LiveKit withdraws a track in another
/// codec from it.
const UNRECORDABLE_VIDEO: [&str; 4] = ["video/h264", "video/h265", "video/vp9", "video/av1"];

/// Whether a room lets publishers send cameras its recordings would miss (LiveKit's
/// `room.enabled_codecs` lists more picture codecs than VP8).
pub fn misses_recordings(room: &proto::Room) -> bool {
    room.enabled_codecs.iter().any(|codec| {
        UNRECORDABLE_VIDEO
            .iter()
            .any(|mime| codec.mime.eq_ignore_ascii_case(mime))
    })
}

/// Sums `ListRooms`' answer.
pub fn totals(rooms: &[proto::Room]) -> RoomTotals {
    rooms
        .iter()
        .fold(RoomTotals::default(), |t, room| RoomTotals {
            rooms: t.rooms + 1,
            participants: t.participants + u64::from(room.num_participants),
            publishers: t.publishers + u64::from(room.num_publishers),
            recordings_miss_video: t.recordings_miss_video + u64::from(misses_recordings(room)),
        })
}

/// One look at LiveKit, and what the edge said of the region after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// When the look began.
    pub at: Instant,
    /// LiveKit's totals; `None` when it did not answer.
    pub totals: Option<RoomTotals>,
    /// The sessions the edge still runs in the region, as it counted them on recording the
    /// draining heartbeat sent after this look, when an earlier draining heartbeat had already
    /// been acknowledged before the look began (so a session placed while the first one was on
    /// its way is counted). `None` otherwise.
    pub edge_sessions: Option<u64>,
}

/// Lists LiveKit's rooms.
pub struct LiveKitProbe {
    rooms: RoomClient,
}

impl LiveKitProbe {
    /// A probe of the LiveKit server at `url`.
    pub fn new(url: &str, api_key: &str, api_secret: &Secret) -> LiveKitProbe {
        LiveKitProbe {
            rooms: RoomClient::with_api_key(url, api_key, api_secret.expose())
                .with_failover(false)
                .with_request_timeout(Duration::from_secs(3)),
        }
    }

    /// Lists the rooms now.
    pub async fn observe(&self) -> Observation {
        let at = Instant::now();
        let totals = match self.rooms.list_rooms(Vec::new()).await {
            Ok(rooms) => Some(totals(&rooms)),
            Err(e) => {
                tracing::warn!(error = %e, "LiveKit ListRooms failed");
                None
            }
        };
        Observation {
            at,
            totals,
            edge_sessions: None,
        }
    }
}

/// The machine's 1-minute load average per core (Linux); `None` elsewhere.
pub fn cpu_load() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let cores = std::thread::available_parallelism().ok()?.get();
    load_per_core(&text, cores)
}

/// The first field of `/proc/loadavg` divided by `cores`.
pub fn load_per_core(loadavg: &str, cores: usize) -> Option<f64> {
    let one_minute: f64 = loadavg.split_whitespace().next()?.parse().ok()?;
    (cores > 0 && one_minute.is_finite() && one_minute >= 0.0).then(|| one_minute / cores as f64)
}

/// What every heartbeat of this process shares.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// This region.
    pub region_id: String,
    /// This process's id.
    pub sidecar_id: String,
    /// The configured limits.
    pub capacity: Capacity,
}

/// The parts of a heartbeat that change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moment {
    /// The latest look at LiveKit.
    pub totals: Option<RoomTotals>,
    /// The machine's load per core.
    pub cpu_load: Option<f64>,
    /// Draining?
    pub draining: bool,
    /// Leaving (the last heartbeat)?
    pub leaving: bool,
    /// Events not yet acknowledged.
    pub undelivered_events: u64,
    /// Whether webhooks are kept: the outbox takes a write, and none failed to be stored since
    /// the last heartbeat.
    pub events_ok: bool,
}

impl Reporter {
    /// The heartbeat for `moment`, stamped now. A LiveKit that did not answer reports zero load.
    pub fn heartbeat(&self, moment: &Moment) -> Heartbeat {
        let totals = moment.totals.unwrap_or_default();
        Heartbeat {
            region_id: self.region_id.clone(),
            sidecar_id: self.sidecar_id.clone(),
            sent_at_ms: now_ms(),
            livekit_ok: moment.totals.is_some(),
            events_ok: moment.events_ok,
            load: Load {
                rooms: totals.rooms,
                participants: totals.participants,
                publishers: totals.publishers,
                cpu_load: moment.cpu_load,
            },
            capacity: self.capacity,
            draining: moment.draining || moment.leaving,
            leaving: moment.leaving,
            undelivered_events: moment.undelivered_events,
        }
    }
}

/// Signs and sends one heartbeat; the edge's reply.
pub async fn send(
    client: &EdgeClient,
    heartbeat: &Heartbeat,
) -> Result<serde_json::Value, EdgeError> {
    // Serialising plain numbers and strings cannot fail.
    let body = serde_json::to_vec(heartbeat).unwrap_or_default();
    client.post(HEARTBEAT_PATH, body).await
}

/// What the heartbeat loop needs.
pub struct HeartbeatLoop {
    /// The fixed fields.
    pub reporter: Reporter,
    /// LiveKit.
    pub probe: LiveKitProbe,
    /// The edge.
    pub client: EdgeClient,
    /// For `undelivered_events`, and checked for writes for `events_ok`.
    pub outbox: SharedOutbox,
    /// Counters and gauges.
    pub metrics: Metrics,
    /// The period.
    pub every: Duration,
    /// Where each look at LiveKit is published.
    pub observations: watch::Sender<Observation>,
    /// Cleared by the webhook handler when a webhook cannot be stored. Each heartbeat reports
    /// it and sets it again: a heartbeat says `events_ok` when no webhook failed to be stored
    /// since the one before and the outbox takes a write now.
    pub events_ok: Arc<AtomicBool>,
    /// Whether the region drains; a change is reported at once.
    pub draining: watch::Receiver<bool>,
    /// Turns true to stop, after the heartbeat being sent (if any) is answered.
    pub stop: watch::Receiver<bool>,
}

impl HeartbeatLoop {
    /// Sends heartbeats until `stop` turns true, then returns once the heartbeat in flight, if
    /// any, is answered.
    pub async fn run(mut self) {
        // When the edge first acknowledged a draining heartbeat.
        let mut drain_known_since: Option<Instant> = None;
        // Whether the last write check passed (to log changes only).
        let mut writable = true;
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = self.draining.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tick.reset();
                }
                _ = self.stop.changed() => return,
            }
            // Not cut short by `stop`: a heartbeat still in flight could otherwise reach the
            // edge after the final one.
            self.beat(&mut drain_known_since, &mut writable).await;
        }
    }

    async fn beat(&self, drain_known_since: &mut Option<Instant>, was_writable: &mut bool) {
        let (mut observation, (writable, undelivered_events)) =
            tokio::join!(self.probe.observe(), self.check_outbox());
        if writable != *was_writable {
            if writable {
                tracing::info!("the outbox takes writes again");
            } else {
                tracing::error!("the outbox cannot take a write: webhooks would be lost");
            }
            *was_writable = writable;
        }
        // Read after the check: a webhook that failed while it ran is reported now.
        let webhooks_kept = self.events_ok.swap(true, Ordering::Relaxed);
        self.metrics
            .livekit_up
            .set(flag(observation.totals.is_some()));
        if let Some(totals) = observation.totals {
            let misses = i64::try_from(totals.recordings_miss_video).unwrap_or(i64::MAX);
            let before = self.metrics.rooms_recordings_miss_video.set(misses);
            if before == 0 && misses > 0 {
                tracing::warn!(
                    rooms = misses,
                    "LiveKit rooms take H.264, H.265, VP9 or AV1 cameras, which recordings miss; \
                     set LiveKit's room.enabled_codecs to audio/opus, audio/red and video/vp8"
                );
            }
        }
        let heartbeat = self.reporter.heartbeat(&Moment {
            totals: observation.totals,
            cpu_load: cpu_load(),
            draining: *self.draining.borrow(),
            leaving: false,
            undelivered_events,
            events_ok: writable && webhooks_kept,
        });
        match send(&self.client, &heartbeat).await {
            Ok(reply) => {
                if heartbeat.draining && reply["recorded"] == true {
                    if drain_known_since.is_some_and(|since| observation.at >= since) {
                        observation.edge_sessions = reply["running_sessions"].as_u64();
                    }
                    drain_known_since.get_or_insert_with(Instant::now);
                }
                self.metrics.heartbeats_sent.inc();
                tracing::debug!(
                    livekit_ok = heartbeat.livekit_ok,
                    rooms = heartbeat.load.rooms,
                    draining = heartbeat.draining,
                    "heartbeat sent"
                );
            }
            Err(e) => {
                self.metrics.heartbeats_failed.inc();
                tracing::warn!(error = %e, "heartbeat not delivered");
            }
        }
        // Published after the edge's answer, which the drain decision needs.
        self.observations.send_replace(observation);
    }

    /// Whether the outbox takes a write now ([`crate::outbox::Outbox::check_writable`]), and
    /// how many events wait in it.
    async fn check_outbox(&self) -> (bool, u64) {
        let checked = self
            .outbox
            .with(|o| Ok((o.check_writable(), o.depth()?)))
            .await;
        match checked {
            Ok((writable, depth)) => {
                self.metrics.set_outbox_depth(depth);
                if let Err(e) = &writable {
                    tracing::warn!(error = %e, "outbox write check failed");
                }
                (writable.is_ok(), depth)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot check the outbox");
                let depth = u64::try_from(self.metrics.outbox_depth.get()).unwrap_or(0);
                (false, depth)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_summed() {
        let room = |participants, publishers| proto::Room {
            num_participants: participants,
            num_publishers: publishers,
            ..Default::default()
        };
        assert_eq!(totals(&[]), RoomTotals::default());
        assert_eq!(
            totals(&[room(3, 1), room(2, 2), room(0, 0)]),
            RoomTotals {
                rooms: 3,
                participants: 5,
                publishers: 3,
                recordings_miss_video: 0,
            }
        );
    }

    #[test]
    fn rooms_that_take_cameras_recordings_miss_are_counted() {
        let room = |mimes: &[&str]| proto::Room {
            enabled_codecs: mimes
                .iter()
                .map(|mime| proto::Codec {
                    mime: (*mime).to_owned(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        // What `edgemeet up` configures, and LiveKit's defaults (mimes as LiveKit spells them).
        let vp8_only = room(&["audio/opus", "audio/red", "video/vp8"]);
        let defaults = room(&[
            "audio/PCMU",
            "audio/opus",
            "audio/red",
            "video/VP8",
            "video/H264",
            "video/VP9",
            "video/AV1",
            "video/H265",
            "video/rtx",
        ]);
        assert!(!misses_recordings(&vp8_only));
        assert!(misses_recordings(&defaults));
        assert!(misses_recordings(&room(&["video/vp8", "video/av1"])));
        assert!(!misses_recordings(&room(&["video/VP8", "video/rtx"])));
        assert_eq!(
            totals(&[vp8_only, defaults.clone(), defaults]).recordings_miss_video,
            2
        );
    }

    #[test]
    fn load_average_is_divided_by_cores() {
        assert_eq!(load_per_core("0.50 0.40 0.30 1/123 4567\n", 2), Some(0.25));
        assert_eq!(load_per_core("", 2), None);
        assert_eq!(load_per_core("x 1 2", 2), None);
        assert_eq!(load_per_core("1.0", 0), None);
    }

    #[test]
    fn the_heartbeat_has_the_protocol_fields() {
        let reporter = Reporter {
            region_id: "eu".into(),
            sidecar_id: "3f1c".into(),
            capacity: Capacity {
                max_rooms: 500,
                max_participants: 5000,
            },
        };
        let moment = Moment {
            totals: Some(RoomTotals {
                rooms: 2,
                participants: 5,
                publishers: 3,
                recordings_miss_video: 0,
            }),
            cpu_load: Some(0.12),
            draining: false,
            leaving: false,
            undelivered_events: 4,
            events_ok: true,
        };
        let json = serde_json::to_value(reporter.heartbeat(&moment)).expect("json");
        assert_eq!(json["region_id"], "eu");
        assert_eq!(json["sidecar_id"], "3f1c");
        assert!(json["sent_at_ms"]
            .as_i64()
            .is_some_and(|ms| ms > 1_700_000_000_000));
        assert_eq!(
            (&json["livekit_ok"], &json["events_ok"]),
            (&true.into(), &true.into())
        );
        // An outbox that cannot store webhooks is reported.
        let unkept = reporter.heartbeat(&Moment {
            events_ok: false,
            ..moment
        });
        assert_eq!(
            serde_json::to_value(unkept).expect("json")["events_ok"],
            false
        );
        assert_eq!(
            json["load"],
            serde_json::json!({"rooms": 2, "participants": 5, "publishers": 3, "cpu_load": 0.12})
        );
        assert_eq!(
            json["capacity"],
            serde_json::json!({"max_rooms": 500, "max_participants": 5000})
        );
        assert_eq!(
            (
                &json["draining"],
                &json["leaving"],
                &json["undelivered_events"]
            ),
            (&false.into(), &false.into(), &4.into())
        );

        let down = reporter.heartbeat(&Moment {
            totals: None,
            cpu_load: None,
            leaving: true,
            ..moment
        });
        let json = serde_json::to_value(down).expect("json");
        assert_eq!(json["livekit_ok"], false);
        assert_eq!(
            json["load"],
            serde_json::json!({"rooms": 0, "participants": 0, "publishers": 0})
        );
        assert_eq!(
            (&json["draining"], &json["leaving"]),
            (&true.into(), &true.into())
        );
    }
}
