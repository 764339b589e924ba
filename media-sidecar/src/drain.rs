//! Draining: on SIGTERM (or SIGINT) or a signed `POST /admin/drain` the region takes no new
//! rooms, the sidecar keeps relaying the webhooks of the rooms it has, and it leaves once LiveKit
//! reports no rooms and the edge no running session placed there, or at the deadline. A second
//! signal means leave now.
//!
//! [`Drain`] is the decision, pure: requests and looks at LiveKit go in, a [`Step`] comes out.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;

/// The longest drain: deadlines beyond it (from the configuration or an admin request) are
/// refused.
pub const MAX_DRAIN_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Something that asks the sidecar to drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT.
    Signal,
    /// `POST /admin/drain`, with its own deadline if it gave one.
    Admin {
        /// Overrides `drain_deadline_seconds` for this drain.
        deadline: Option<Duration>,
    },
    /// The process the sidecar runs in stops, and its LiveKit with it (`edgemeet up` on a
    /// signal): no drain, a quick flush, and the rest kept for the next start.
    Stop,
}

/// Why a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// LiveKit reported no rooms, and the edge no running session in the region.
    RoomsEnded,
    /// The deadline passed with rooms still open.
    Deadline,
}

/// What the sidecar does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on serving (draining or not).
    Serve,
    /// The drain is over: flush, say goodbye, exit 0.
    Leave(Reason),
    /// A second signal: flush what can be flushed quickly and exit.
    ExitNow,
}

/// The drain state of one sidecar process.
#[derive(Debug, Clone)]
pub struct Drain {
    default_deadline: Duration,
    draining: Option<Draining>,
    signals: u32,
}

#[derive(Debug, Clone, Copy)]
struct Draining {
    since: Instant,
    until: Instant,
}

impl Drain {
    /// Not draining; a drain will wait at most `default_deadline`.
    pub fn new(default_deadline: Duration) -> Drain {
        Drain {
            default_deadline,
            draining: None,
            signals: 0,
        }
    }

    /// Whether the region drains.
    pub fn is_draining(&self) -> bool {
        self.draining.is_some()
    }

    /// When the drain ends at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.draining.map(|d| d.until)
    }

    /// Drains again, until `until`, after a run that crashed mid-drain (as if asked at `now`).
    pub fn resume(&mut self, until: Instant, now: Instant) {
        self.draining = Some(Draining { since: now, until });
    }

    /// Handles a request at `now`. A drain already under way keeps its start; a new deadline
    /// only ever brings its end closer.
    pub fn request(&mut self, request: Request, now: Instant) -> Step {
        let deadline = match request {
            Request::Signal => {
                self.signals += 1;
                if self.signals > 1 {
                    return Step::ExitNow;
                }
                self.default_deadline
            }
            Request::Admin { deadline } => deadline.unwrap_or(self.default_deadline),
            Request::Stop => return Step::ExitNow,
        };
        let until = now + deadline.min(MAX_DRAIN_DEADLINE);
        self.draining = Some(match self.draining {
            None => Draining { since: now, until },
            Some(d) => Draining {
                since: d.since,
                until: d.until.min(until),
            },
        });
        Step::Serve
    }

    /// Decides after a look at LiveKit begun at `seen_at` that found `rooms` (`None`: no
    /// answer), with `edge_sessions`, the running sessions the edge counted in the region after
    /// that look (`None`: not known to be counted since the edge knew of the drain). Only a look
    /// begun after the drain began can end it, so a count from before the region stopped taking
    /// rooms is never trusted; and only once the edge has nothing placed there, since a user
    /// given a LiveKit token for the region may not have connected yet.
    pub fn observe(
        &self,
        seen_at: Instant,
        rooms: Option<u64>,
        edge_sessions: Option<u64>,
        now: Instant,
    ) -> Step {
        let Some(draining) = self.draining else {
            return Step::Serve;
        };
        if rooms == Some(0) && edge_sessions == Some(0) && seen_at >= draining.since {
            Step::Leave(Reason::RoomsEnded)
        } else if now >= draining.until {
            Step::Leave(Reason::Deadline)
        } else {
            Step::Serve
        }
    }
}

/// How far an admin call's `sent_at_ms` may be from the sidecar's clock. The signature covers
/// the body only, so without a time in it a captured call could be replayed for ever.
pub const ADMIN_CALL_MAX_AGE_MS: i64 = 60_000;

/// The body of `POST /admin/drain`: `{"sent_at_ms": <Unix ms, now>, "deadline_seconds": N}`,
/// the deadline optional.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminDrainBody {
    /// When the call was made (Unix milliseconds); within [`ADMIN_CALL_MAX_AGE_MS`] of now.
    #[serde(default)]
    pub sent_at_ms: Option<i64>,
    /// Seconds until the drain ends at the latest.
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
}

impl AdminDrainBody {
    /// Parses and checks a body at `now_ms`.
    pub fn parse(body: &[u8], now_ms: i64) -> Result<AdminDrainBody, String> {
        let parsed: AdminDrainBody =
            serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))?;
        match parsed.sent_at_ms {
            None => return Err("sent_at_ms (Unix milliseconds) is required".into()),
            Some(at) if at.abs_diff(now_ms) > ADMIN_CALL_MAX_AGE_MS.unsigned_abs() => {
                return Err(format!(
                    "sent_at_ms is more than {} s from the sidecar's clock",
                    ADMIN_CALL_MAX_AGE_MS / 1000
                ))
            }
            Some(_) => {}
        }
        if parsed.deadline_seconds == Some(0) {
            return Err("deadline_seconds must be positive".into());
        }
        if parsed
            .deadline_seconds
            .is_some_and(|s| s > MAX_DRAIN_DEADLINE.as_secs())
        {
            return Err(format!(
                "deadline_seconds must be at most {}",
                MAX_DRAIN_DEADLINE.as_secs()
            ));
        }
        Ok(parsed)
    }

    /// As a drain request.
    pub fn request(&self) -> Request {
        Request::Admin {
            deadline: self.deadline_seconds.map(Duration::from_secs),
        }
    }
}

/// Turns SIGTERM and SIGINT into drain requests. Must be called inside the tokio runtime.
pub fn signal_requests() -> std::io::Result<mpsc::Receiver<Request>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                else => return,
            };
            tracing::info!(signal = name, "stop requested");
            if tx.send(Request::Signal).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn serving_until_asked() {
        let drain = Drain::new(HOUR);
        let now = Instant::now();
        assert!(!drain.is_draining());
        assert_eq!(drain.observe(now, Some(0), Some(0), now), Step::Serve);
        assert_eq!(drain.observe(now, None, None, now + 2 * HOUR), Step::Serve);
    }

    #[test]
    fn a_drain_ends_when_a_later_look_finds_no_rooms_and_the_edge_none_placed() {
        let mut drain = Drain::new(HOUR);
        let t0 = Instant::now();
        let before = t0;
        let start = t0 + Duration::from_secs(1);
        assert_eq!(drain.request(Request::Signal, start), Step::Serve);
        assert!(drain.is_draining());
        assert_eq!(drain.deadline(), Some(start + HOUR));
        // A count taken before the drain began proves nothing.
        assert_eq!(drain.observe(before, Some(0), Some(0), start), Step::Serve);
        let later = start + Duration::from_secs(5);
        assert_eq!(drain.observe(later, Some(2), Some(2), later), Step::Serve);
        // LiveKit not answering is not "no rooms".
        assert_eq!(drain.observe(later, None, Some(0), later), Step::Serve);
        // No LiveKit room, but a session placed here whose users have not connected yet, or an
        // edge that has not counted since it learnt of the drain.
        assert_eq!(drain.observe(later, Some(0), Some(1), later), Step::Serve);
        assert_eq!(drain.observe(later, Some(0), None, later), Step::Serve);
        assert_eq!(
            drain.observe(later, Some(0), Some(0), later),
            Step::Leave(Reason::RoomsEnded)
        );
    }

    /// A stop of the process around the sidecar exits at once and begins no drain (its next
    /// start serves, rather than drains on).
    #[test]
    fn a_stop_exits_at_once_without_a_drain() {
        let mut drain = Drain::new(HOUR);
        assert_eq!(drain.request(Request::Stop, Instant::now()), Step::ExitNow);
        assert!(!drain.is_draining());
        assert_eq!(drain.deadline(), None);
    }

    #[test]
    fn the_deadline_ends_a_drain_with_rooms_left() {
        let mut drain = Drain::new(HOUR);
        let start = Instant::now();
        drain.request(Request::Signal, start);
        let end = start + HOUR;
        assert_eq!(
            drain.observe(end, Some(3), Some(3), end - Duration::from_secs(1)),
            Step::Serve
        );
        assert_eq!(
            drain.observe(end, Some(3), Some(3), end),
            Step::Leave(Reason::Deadline)
        );
        assert_eq!(
            drain.observe(start, None, None, end),
            Step::Leave(Reason::Deadline)
        );
    }

    #[test]
    fn admin_deadlines_only_bring_the_end_closer() {
        let mut drain = Drain::new(HOUR);
        let start = Instant::now();
        let ten = Duration::from_secs(10);
        assert_eq!(
            drain.request(
                Request::Admin {
                    deadline: Some(ten)
                },
                start
            ),
            Step::Serve
        );
        assert_eq!(drain.deadline(), Some(start + ten));
        drain.request(Request::Admin { deadline: None }, start + ten / 2);
        assert_eq!(drain.deadline(), Some(start + ten));
        drain.request(
            Request::Admin {
                deadline: Some(Duration::from_secs(1)),
            },
            start + Duration::from_secs(2),
        );
        assert_eq!(drain.deadline(), Some(start + Duration::from_secs(3)));
        // The first signal after an admin drain is not yet "the second one".
        assert_eq!(drain.request(Request::Signal, start), Step::Serve);
        assert_eq!(drain.request(Request::Signal, start), Step::ExitNow);
    }

    #[test]
    fn a_resumed_drain_keeps_its_deadline_and_counts_from_the_restart() {
        let mut drain = Drain::new(HOUR);
        let before = Instant::now();
        let now = before + Duration::from_secs(1);
        let until = now + Duration::from_secs(90);
        drain.resume(until, now);
        assert!(drain.is_draining());
        assert_eq!(drain.deadline(), Some(until));
        // A look from before this run proves nothing; a later one can end it.
        assert_eq!(drain.observe(before, Some(0), Some(0), now), Step::Serve);
        assert_eq!(
            drain.observe(now, Some(0), Some(0), now),
            Step::Leave(Reason::RoomsEnded)
        );
        // A signal now is the first of this run: it drains on, it does not exit at once.
        assert_eq!(drain.request(Request::Signal, now), Step::Serve);
    }

    #[test]
    fn a_second_signal_exits_now() {
        let mut drain = Drain::new(HOUR);
        let now = Instant::now();
        assert_eq!(drain.request(Request::Signal, now), Step::Serve);
        assert_eq!(drain.request(Request::Signal, now), Step::ExitNow);
    }

    #[test]
    fn admin_bodies_are_checked() {
        const NOW: i64 = 1_800_000_000_000;
        let parse = |body: &str| AdminDrainBody::parse(body.as_bytes(), NOW);
        let body = parse(r#"{"sent_at_ms": 1800000000000, "deadline_seconds": 30}"#).expect("ok");
        assert_eq!(
            body.request(),
            Request::Admin {
                deadline: Some(Duration::from_secs(30))
            }
        );
        assert_eq!(
            parse(r#"{"sent_at_ms": 1799999950000}"#).map(|b| b.request()),
            Ok(Request::Admin { deadline: None })
        );
        // No time, or one a minute off: a captured call replayed later is refused.
        assert!(parse("").is_err());
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"deadline_seconds": 30}"#).is_err());
        assert!(parse(r#"{"sent_at_ms": 1799999880000}"#).is_err());
        assert!(parse(r#"{"sent_at_ms": 1800000070000}"#).is_err());
        assert!(parse(r#"{"sent_at_ms": -9223372036854775808}"#).is_err());
        let at = |extra: &str| format!(r#"{{"sent_at_ms": 1800000000000, {extra}}}"#);
        assert!(parse(&at(r#""deadline_seconds": 0"#)).is_err());
        // Huge deadlines are refused (they overflowed the clock and killed the process).
        assert!(parse(&at(r#""deadline_seconds": 18446744073709551615"#)).is_err());
        assert!(parse(&at(r#""deadline_seconds": 604801"#)).is_err());
        assert!(parse(&at(r#""deadline_seconds": 604800"#)).is_ok());
        let mut drain = Drain::new(Duration::MAX);
        let now = Instant::now();
        assert_eq!(drain.request(Request::Signal, now), Step::Serve);
        assert_eq!(drain.deadline(), Some(now + MAX_DRAIN_DEADLINE));
        assert!(parse(&at(r#""deadline_seconds": -1"#)).is_err());
        assert!(parse(&at(r#""deadline": 5"#)).is_err());
        assert!(parse("[").is_err());
    }
}
