//! Rooms recorded from their start: plugNmeet's `recording_features.enable_auto_cloud_recording`.
//!
//! plugNmeet leaves this to the first moderator's browser, which presses Record a second after
//! it joins; a meeting no moderator's page joins is not recorded, and a moderator's page that
//! reloads starts a recording someone had stopped. Here the edge starts it, once per session:
//!
//! - `room/create` with the flag makes the session's row in `auto_recordings` (a trigger, in
//!   the same statement; `migrations/0012_auto_recording.sql`).
//! - Once the session has been joined (placed in a region by its first `/api/session`), the
//!   next heartbeat of any recorder node sends the recording, as a moderator's Record would
//!   ([`dispatch::start`]). Recorder heartbeats come every few seconds from every node, and
//!   only when a recorder could take the job; their requests pay for this, not a user's.
//! - The start is tried until it settles: a node took the job, a recording was running already
//!   (a moderator was quicker), or the room does not allow recording. A moderator who then stops
//!   the recording is not overruled. When no node had room (or the node's token could not be
//!   signed) it is tried again later, sooner at first and at most every five minutes. A node that
//!   did not answer keeps the job (it may have taken it): the next try comes only once such a
//!   job, never reported, counts as lost, so it finds the recording running or starts anew.
//! - A session that ends takes its row with it.

use super::dispatch::{self, NotStarted, UNREPORTED_JOB_MS};
use super::Kind;
use crate::db::recordings as db;
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::Edge;

/// How long a try holds the session from other heartbeats: longer than the node calls it may
/// make ([`super::nodes::CALL_TIMEOUT`] each).
const TRY_HELD_MS: i64 = 60_000;
/// The wait before the second try; each later wait is twice the one before.
const FIRST_RETRY_MS: i64 = 10_000;
/// The longest wait between tries.
const MAX_RETRY_MS: i64 = 300_000;
/// After a node did not answer, the next try waits this much past the time its job counts as
/// lost when never reported.
const UNREPORTED_MARGIN_MS: i64 = 5_000;

/// What a try left for the next one.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Nothing: the start is settled.
    Settled,
    /// Try again later.
    Retry,
    /// Try again once the job the silent node kept counts as lost if it never reports it.
    AfterUnreported,
}

/// Starts the recording of at most one session whose automatic start is due (one statement
/// when none is). Returns whether a node took a job.
pub async fn start_due<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
) -> Result<bool, StoreError> {
    if edge.config.recorders.nodes.is_empty() {
        return Ok(false);
    }
    let now_ms = edge.clock.now_ms();
    let Some(room) = db::due_auto_recording(&edge.store, now_ms).await? else {
        return Ok(false);
    };
    let Some(attempt) =
        db::claim_auto_recording(&edge.store, &room.sid, now_ms, now_ms + TRY_HELD_MS).await?
    else {
        // Another heartbeat took it meanwhile.
        return Ok(false);
    };
    let (next, outcome, took) = match dispatch::start(edge, &room, Kind::Recording, None).await {
        Ok(job_id) => {
            tracing::info!(room_id = %room.room_id, sid = %room.sid, job = %job_id, "recording started with the meeting");
            (Next::Settled, format!("started job {job_id}"), true)
        }
        Err(NotStarted::Store(e)) => return Err(e),
        Err(not_started) => {
            let (next, why) = after(&not_started);
            tracing::warn!(room_id = %room.room_id, sid = %room.sid, attempt, why, retried = (next != Next::Settled), "recording with the meeting not started");
            (next, why.to_owned(), false)
        }
    };
    let retry_at_ms =
        match next {
            Next::Settled => None,
            Next::Retry => Some(now_ms.saturating_add(retry_wait_ms(attempt))),
            Next::AfterUnreported => Some(now_ms.saturating_add(
                retry_wait_ms(attempt).max(UNREPORTED_JOB_MS + UNREPORTED_MARGIN_MS),
            )),
        };
    db::settle_auto_recording(&edge.store, &room.sid, attempt, retry_at_ms, &outcome).await?;
    Ok(took)
}

/// What follows a try that sent no job, and why, for the log and the stored outcome.
fn after(not_started: &NotStarted) -> (Next, &'static str) {
    match not_started {
        NotStarted::AlreadyRunning => (Next::Settled, "a recording was running already"),
        NotStarted::NotAllowed => (Next::Settled, "the room does not allow cloud recording"),
        NotStarted::RoomNotActive => (Next::Settled, "the session ended, or its region is gone"),
        NotStarted::BadJob(_) => (Next::Settled, "the recorder refused the job"),
        NotStarted::NoRecorder => (Next::Retry, "no recorder had room for it"),
        NotStarted::Unreachable => (Next::AfterUnreported, "the recorder did not answer"),
        NotStarted::Signing => (Next::Retry, "the recorder's token could not be signed"),
        NotStarted::Store(_) => (Next::Retry, "the store failed"),
    }
}

/// The wait after try number `attempt` (1 for the first) before the next.
fn retry_wait_ms(attempt: i64) -> i64 {
    let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    FIRST_RETRY_MS
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_five_minutes() {
        let waits: Vec<i64> = (1..=7).map(retry_wait_ms).collect();
        assert_eq!(
            waits,
            [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]
        );
        assert_eq!(retry_wait_ms(i64::MAX), MAX_RETRY_MS);
        assert_eq!(retry_wait_ms(0), FIRST_RETRY_MS);
    }

    #[test]
    fn only_a_missing_or_silent_recorder_is_tried_again() {
        assert_eq!(after(&NotStarted::NoRecorder).0, Next::Retry);
        assert_eq!(after(&NotStarted::Signing).0, Next::Retry);
        assert_eq!(after(&NotStarted::Unreachable).0, Next::AfterUnreported);
        for settled in [
            NotStarted::AlreadyRunning,
            NotStarted::NotAllowed,
            NotStarted::RoomNotActive,
            NotStarted::BadJob("no".into()),
        ] {
            assert_eq!(after(&settled).0, Next::Settled, "{settled:?}");
        }
    }
}
