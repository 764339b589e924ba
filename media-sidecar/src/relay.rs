//! Forwarding the outbox to the edge: oldest first, in batches of up to [`MAX_BATCH`], signed,
//! retried with exponential backoff and jitter until the edge answers 2xx, and only then deleted.
//! A batch whose acknowledgement was lost is sent again; the edge drops repeats by event id.
//!
//! The decisions are pure ([`Batch::build`], and `edgemeet_protocol::delivery`'s `judge` and
//! `BatchSizer`) and [`run`] only carries them out. A 400 or 413 means the edge will never take
//! the batch as it is: it is split in halves until the one event it refuses is found and set
//! aside in the dead-letter table, so one bad event cannot stop the events behind it. A 413
//! that names the edge's `max_events` (an edge on a platform that caps queries per request)
//! instead caps every later batch at that size.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use edgemeet_protocol::delivery::{judge, BatchSizer, Next};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{watch, Notify};

use crate::edge::{EdgeClient, EdgeError, EVENTS_PATH};
use crate::metrics::Metrics;
use crate::outbox::{Pending, SharedOutbox};

/// The most events in one POST (the protocol's limit).
pub const MAX_BATCH: usize = 100;

/// The largest request body the edge takes (its `MAX_BODY_BYTES`): a batch, envelope included,
/// must fit in it.
pub const EDGE_MAX_BODY_BYTES: usize = 256 * 1024;

/// One POST's worth of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The JSON body: `{"region_id": ..., "events": [...]}`, events byte for byte as stored.
    pub body: Vec<u8>,
    /// The newest event's outbox `seq`; an acknowledgement deletes through it.
    pub last_seq: i64,
    /// The oldest event's outbox `seq`.
    pub first_seq: i64,
    /// How many events it holds.
    pub len: usize,
}

#[derive(Serialize)]
struct EventsBody<'a> {
    region_id: &'a str,
    events: Vec<Box<RawValue>>,
}

/// The bytes a batch adds around its events for `region_id`: the body of a batch with no event
/// (`{"region_id":...,"events":[]}`). A batch of one event is exactly this plus the event.
pub fn envelope_bytes(region_id: &str) -> usize {
    // Serialising a string and an empty list cannot fail; if it somehow did, count the whole
    // limit as envelope, so nothing is taken that might not be deliverable.
    serde_json::to_vec(&EventsBody {
        region_id,
        events: Vec::new(),
    })
    .map_or(EDGE_MAX_BODY_BYTES, |body| body.len())
}

/// The largest event (its JSON as stored) that fits alone in a batch for `region_id`: the
/// edge's body limit less the envelope. A larger event could never be delivered.
pub fn max_event_bytes(region_id: &str) -> usize {
    EDGE_MAX_BODY_BYTES.saturating_sub(envelope_bytes(region_id))
}

impl Batch {
    /// The batch for `pending` (oldest first, at most [`MAX_BATCH`] of them). `None` when there
    /// is nothing to send. An event that is somehow not JSON is returned as `Err(seq)`, to be
    /// set aside.
    pub fn build(region_id: &str, pending: &[Pending]) -> Result<Option<Batch>, i64> {
        let pending = &pending[..pending.len().min(MAX_BATCH)];
        let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
            return Ok(None);
        };
        let events = pending
            .iter()
            .map(|p| RawValue::from_string(p.body.clone()).map_err(|_| p.seq))
            .collect::<Result<Vec<_>, _>>()?;
        let body = serde_json::to_vec(&EventsBody { region_id, events }).map_err(|_| first.seq)?;
        Ok(Some(Batch {
            body,
            last_seq: last.seq,
            first_seq: first.seq,
            len: pending.len(),
        }))
    }
}

/// The delays between retries of a batch: 200 ms doubling up to 5 s, each plus a random jitter
/// of up to as much again, forever.
pub fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// The signals the relay listens to.
#[derive(Clone)]
pub struct RelaySignals {
    /// Notified when an event was queued.
    pub wake: Arc<Notify>,
    /// Notified to cut a retry wait short (the final flush).
    pub hurry: Arc<Notify>,
    /// Turns true to stop; an unacknowledged batch then simply stays in the outbox.
    pub stop: watch::Receiver<bool>,
}

/// Forwards the outbox to the edge until `signals.stop` turns true.
pub async fn run(
    outbox: SharedOutbox,
    client: EdgeClient,
    metrics: Metrics,
    mut signals: RelaySignals,
) {
    let mut delays = backoff();
    let mut sizer = BatchSizer::new(MAX_BATCH);
    while !*signals.stop.borrow() {
        let limit = sizer.limit();
        let read = outbox
            .with(move |o| Ok((o.pending(limit)?, o.depth()?)))
            .await;
        let pending = match read {
            Ok((pending, depth)) => {
                metrics.set_outbox_depth(depth);
                pending
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = signals.stop.changed() => {}
                }
                continue;
            }
        };
        let batch = match Batch::build(client.region_id(), &pending) {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                tokio::select! {
                    () = signals.wake.notified() => {}
                    _ = signals.stop.changed() => {}
                }
                continue;
            }
            Err(seq) => {
                tracing::error!(seq, "an outbox event is not JSON; setting it aside");
                set_aside(&outbox, &metrics, seq, 0).await;
                continue;
            }
        };
        let result = tokio::select! {
            result = client.post(EVENTS_PATH, batch.body.clone()) => result,
            _ = signals.stop.changed() => return,
        };
        match judge(
            result.as_ref().map(|_| ()).map_err(EdgeError::status),
            batch.len,
        ) {
            Next::Ack => {
                let last = batch.last_seq;
                match outbox
                    .with(move |o| {
                        o.ack_through(last)?;
                        o.depth()
                    })
                    .await
                {
                    Ok(depth) => metrics.set_outbox_depth(depth),
                    // They will be sent again; the edge drops the repeats.
                    Err(e) => tracing::error!(error = %e, "cannot delete forwarded events"),
                }
                metrics.events_forwarded.inc_by(batch.len as u64);
                tracing::debug!(events = batch.len, "events forwarded");
                delays = backoff();
                sizer.succeeded();
            }
            Next::Split => {
                metrics.forward_failures.inc();
                match result.err() {
                    // The edge takes fewer events a batch (a platform's query cap): adopt its
                    // limit for good rather than halving and growing back into it again.
                    Some(EdgeError::TooLarge {
                        max_events: Some(most),
                    }) if most < batch.len => {
                        tracing::info!(
                            events = batch.len,
                            most,
                            "the edge takes smaller batches; sending at most its limit"
                        );
                        sizer.cap(most);
                    }
                    error => {
                        tracing::warn!(
                            events = batch.len,
                            ?error,
                            "the edge refused a batch; splitting it"
                        );
                        sizer.split(batch.len);
                    }
                }
            }
            Next::SetAside(status) => {
                metrics.forward_failures.inc();
                tracing::error!(
                    seq = batch.first_seq,
                    status,
                    "the edge refused an event; setting it aside in dead_letter"
                );
                set_aside(&outbox, &metrics, batch.first_seq, status).await;
                sizer.succeeded();
            }
            Next::Retry => {
                metrics.forward_failures.inc();
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = ?result.err().map(|e| e.to_string()), retry_in = ?delay, waiting = batch.len, "event batch not delivered");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = signals.hurry.notified() => {}
                    _ = signals.stop.changed() => {}
                }
            }
        }
    }
}

async fn set_aside(outbox: &SharedOutbox, metrics: &Metrics, seq: i64, status: u16) {
    match outbox
        .with(move |o| {
            o.dead_letter(seq, status)?;
            o.depth()
        })
        .await
    {
        Ok(depth) => {
            metrics.events_dead_lettered.inc();
            metrics.set_outbox_depth(depth);
        }
        Err(e) => tracing::error!(error = %e, "cannot set an event aside"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: usize) -> Vec<Pending> {
        (0..n)
            .map(|i| Pending {
                seq: 10 + i as i64,
                event_id: format!("EV_{i}"),
                body: format!(r#"{{"id":"EV_{i}", "event":"room_started","createdAt":"17"}}"#),
            })
            .collect()
    }

    #[test]
    fn a_batch_is_the_oldest_hundred_events_as_stored() {
        assert_eq!(Batch::build("eu", &[]), Ok(None));
        let events = pending(150);
        let batch = Batch::build("eu", &events).expect("valid").expect("batch");
        assert_eq!((batch.len, batch.first_seq, batch.last_seq), (100, 10, 109));
        let body: serde_json::Value = serde_json::from_slice(&batch.body).expect("json");
        assert_eq!(body["region_id"], "eu");
        let sent = body["events"].as_array().expect("events");
        assert_eq!(sent.len(), 100);
        assert_eq!(sent[0]["id"], "EV_0");
        assert_eq!(sent[99]["id"], "EV_99");
        // Byte for byte, LiveKit's spacing included.
        let text = String::from_utf8(batch.body).expect("utf8");
        assert!(text.starts_with(
            r#"{"region_id":"eu","events":[{"id":"EV_0", "event":"room_started","createdAt":"17"},"#
        ));
    }

    #[test]
    fn the_largest_event_fills_a_batch_to_the_edges_limit() {
        // A region id that needs escaping too: the envelope is measured as serialised.
        for region in ["eu", "test-region", "a\"b\\c\u{7}"] {
            let most = max_event_bytes(region);
            let event = |bytes: usize| {
                let head = r#"{"id":"EV_big","pad":""#;
                let tail = r#""}"#;
                let pad = "x".repeat(bytes - head.len() - tail.len());
                vec![Pending {
                    seq: 1,
                    event_id: "EV_big".into(),
                    body: format!("{head}{pad}{tail}"),
                }]
            };
            let fits = Batch::build(region, &event(most))
                .expect("valid")
                .expect("batch");
            assert_eq!(fits.body.len(), EDGE_MAX_BODY_BYTES, "{region}");
            let over = Batch::build(region, &event(most + 1))
                .expect("valid")
                .expect("batch");
            assert_eq!(over.body.len(), EDGE_MAX_BODY_BYTES + 1, "{region}");
        }
        assert_eq!(
            max_event_bytes("test-region"),
            256 * 1024 - r#"{"region_id":"test-region","events":[]}"#.len()
        );
    }

    #[test]
    fn an_event_that_is_not_json_is_named() {
        let mut events = pending(3);
        events[1].body = "{broken".into();
        assert_eq!(Batch::build("eu", &events), Err(11));
    }

    #[test]
    fn backoff_grows_with_jitter_and_never_ends() {
        let delays: Vec<Duration> = backoff().take(20).collect();
        assert_eq!(delays.len(), 20);
        assert!(delays[0] >= Duration::from_millis(200) && delays[0] < Duration::from_millis(500));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(10)));
        assert!(delays[19] >= Duration::from_secs(5));
    }
}
