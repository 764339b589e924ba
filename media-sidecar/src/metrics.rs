//! The sidecar's Prometheus metrics (`GET /metrics`, OpenMetrics text via `prometheus-client`).
//! All names start with `media_sidecar_`.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric the sidecar keeps, cheap to clone and share.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Webhooks LiveKit posted (accepted or not).
    pub webhooks_received: Counter,
    /// Webhooks refused: bad signature (401), malformed (400), or too large for the edge.
    pub webhooks_rejected: Counter,
    /// Events the edge acknowledged.
    pub events_forwarded: Counter,
    /// Event batches the edge did not acknowledge.
    pub forward_failures: Counter,
    /// Events set aside because the edge refused them as malformed.
    pub events_dead_lettered: Counter,
    /// Events waiting in the outbox.
    pub outbox_depth: Gauge,
    /// Heartbeats the edge acknowledged.
    pub heartbeats_sent: Counter,
    /// Heartbeats that did not land.
    pub heartbeats_failed: Counter,
    /// 1 while draining.
    pub draining: Gauge,
    /// 1 when LiveKit answered the last ListRooms.
    pub livekit_up: Gauge,
    /// LiveKit rooms that take cameras in a codec recordings miss (anything but VP8).
    pub rooms_recordings_miss_video: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("media_sidecar");
        let webhooks_received = Counter::default();
        let webhooks_rejected = Counter::default();
        let events_forwarded = Counter::default();
        let forward_failures = Counter::default();
        let events_dead_lettered = Counter::default();
        let outbox_depth = Gauge::default();
        let heartbeats_sent = Counter::default();
        let heartbeats_failed = Counter::default();
        let draining = Gauge::default();
        let livekit_up = Gauge::default();
        let rooms_recordings_miss_video = Gauge::default();
        registry.register(
            "webhooks_received",
            "Webhooks LiveKit posted",
            webhooks_received.clone(),
        );
        registry.register(
            "webhooks_rejected",
            "Webhooks refused for a bad signature or body",
            webhooks_rejected.clone(),
        );
        registry.register(
            "events_forwarded",
            "Events the edge acknowledged",
            events_forwarded.clone(),
        );
        registry.register(
            "forward_failures",
            "Event batches the edge did not acknowledge",
            forward_failures.clone(),
        );
        registry.register(
            "events_dead_lettered",
            "Events set aside because the edge refused them as malformed",
            events_dead_lettered.clone(),
        );
        registry.register(
            "outbox_depth",
            "Events waiting in the outbox",
            outbox_depth.clone(),
        );
        registry.register(
            "heartbeats_sent",
            "Heartbeats the edge acknowledged",
            heartbeats_sent.clone(),
        );
        registry.register(
            "heartbeats_failed",
            "Heartbeats that did not land",
            heartbeats_failed.clone(),
        );
        registry.register("draining", "1 while the region drains", draining.clone());
        registry.register(
            "livekit_up",
            "1 when LiveKit answered the last ListRooms",
            livekit_up.clone(),
        );
        registry.register(
            "rooms_recordings_miss_video",
            "LiveKit rooms that take cameras in a codec recordings miss (H.264, H.265, VP9, AV1)",
            rooms_recordings_miss_video.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            webhooks_received,
            webhooks_rejected,
            events_forwarded,
            forward_failures,
            events_dead_lettered,
            outbox_depth,
            heartbeats_sent,
            heartbeats_failed,
            draining,
            livekit_up,
            rooms_recordings_miss_video,
        }
    }

    /// Records the outbox's depth.
    pub fn set_outbox_depth(&self, depth: u64) {
        self.outbox_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// 1 for true, 0 for false, for the 0/1 gauges.
pub fn flag(on: bool) -> i64 {
    i64::from(on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed() {
        let metrics = Metrics::new();
        metrics.webhooks_received.inc();
        metrics.outbox_depth.set(3);
        metrics.livekit_up.set(flag(true));
        let text = metrics.render();
        for line in [
            "media_sidecar_webhooks_received_total 1",
            "media_sidecar_webhooks_rejected_total 0",
            "media_sidecar_events_forwarded_total 0",
            "media_sidecar_forward_failures_total 0",
            "media_sidecar_outbox_depth 3",
            "media_sidecar_heartbeats_sent_total 0",
            "media_sidecar_heartbeats_failed_total 0",
            "media_sidecar_draining 0",
            "media_sidecar_livekit_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
