//! Recording: the edge sends recordings and RTMP broadcasts of running sessions to recorder
//! nodes (`recorder-native`), follows their jobs, and keeps the catalog of finished recordings.
//!
//! - [`dispatch`]: `POST /api/recording`, where a moderator's page starts and stops a recording
//!   or a broadcast. The edge picks a live node with room for the job (the room's region
//!   first), mints the node a hidden LiveKit token, and sends the job; a full node is passed
//!   over for the next.
//! - [`reports`]: `POST /internal/recorder/events`, where nodes send heartbeats (liveness and
//!   free capacity) and their jobs' events.
//! - [`catalog`]: plugNmeet's `/auth/recording/fetch`, `/auth/recording/info` and
//!   `/auth/recording/delete`.
//! - [`downloads`]: `/auth/recording/getDownloadToken` and `GET /download/recording/<token>`,
//!   which redirects to the node holding the file.
//! - [`nodes`]: the nodes' job API, as the edge calls it.
//! - [`announce`]: the session's live jobs, written into its LiveKit room's metadata whenever
//!   one changes, so every page in the room shows what is recorded or broadcast.
//! - [`autostart`]: rooms recorded from their start (`enable_auto_cloud_recording`), started
//!   by the edge on a recorder's heartbeat once the session has been joined.
//!
//! A session has at most one live job of each kind. A node that stops heartbeating for
//! `recorder_timeout_secs` is taken for dead: its jobs stop counting as running at once, so a
//! dead node cannot leave a room marked as recording (plugNmeet's can, until the room ends).

pub mod announce;
pub mod autostart;
pub mod catalog;
pub mod dispatch;
pub mod downloads;
pub mod nodes;
pub mod reports;

/// What a job makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A composite MP4 recording.
    Recording,
    /// An RTMP broadcast.
    Rtmp,
}

impl Kind {
    /// The name stored with the job.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Recording => "recording",
            Kind::Rtmp => "rtmp",
        }
    }

    /// plugNmeet's name for this kind in notifications (`recording`, `rtmp`).
    fn notification(self, what: &str) -> String {
        format!("notifications.{}-{what}", self.as_str())
    }
}

/// Whether `id` can name a recorder node: 1 to 64 of `[A-Za-z0-9_-]` (the node's own rule).
pub fn is_node_id(id: &str) -> bool {
    id.len() <= 64 && crate::rooms::is_plain_id(id)
}

/// The edge's clock minus the recorder timeout: nodes heard from at or after this are alive.
pub(crate) fn alive_since_ms(timeout_secs: i64, now_ms: i64) -> i64 {
    now_ms.saturating_sub(timeout_secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        assert!(is_node_id("rec-1_A"));
        for bad in ["", "a b", "a/b", "ü", &"a".repeat(65)] {
            assert!(!is_node_id(bad), "{bad}");
        }
    }
}
