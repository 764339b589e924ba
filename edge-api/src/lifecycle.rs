//! Room lifecycle from LiveKit's webhooks (relayed in order by each region's media-sidecar, or
//! posted by its LiveKit straight to the edge: [`crate::livekit_webhooks`]), and the limits
//! the edge enforces on each heartbeat from a region, its only clock.
//!
//! - Each session has a LiveKit room of its own, named `<room_id>.<sid>` (`db::RoomRow`), so an
//!   event names exactly one session, and deleting a LiveKit room by name never reaches another
//!   session of the same room id (a sidecar cut off for a while delivers an earlier session's
//!   events late).
//! - `room_started` makes the session active; a LiveKit room with no running session of that
//!   name in that region is deleted (plugNmeet does the same: only the edge opens rooms; a
//!   holder of an ended session's token cannot reopen it). Sessions created before per-session
//!   names share the room id as name: a LiveKit room that started before such a session was
//!   created belongs to an earlier one and is ignored, neither linked nor deleted.
//! - `participant_joined` / `participant_left` keep the session's participant list; a visible
//!   identity's first entry counts in `joined_participants`. A participant joins only the
//!   session whose LiveKit room the event names. An identity the session has blocked (see
//!   [`crate::moderation`]) is removed from LiveKit again as soon as it is heard to join, and
//!   each heartbeat removes again any the session still lists as present.
//! - `room_finished` ends the session (it moves to past rooms).
//! - On each recorded heartbeat: sessions past their `room_duration`, or empty for their
//!   `empty_timeout`, are ended and their LiveKit room deleted; emptiness counts only while the
//!   region's sidecar holds no undelivered webhook (a re-join may be among them). A session
//!   whose LiveKit room never started (created, perhaps placed, nobody entered) ends once its
//!   `empty_timeout` has passed since creation, as LiveKit closes a room nobody joins. Sessions
//!   of a region that is gone (`registry::region_is_gone`) end once their `empty_timeout` has
//!   passed since the region was last heard from, on any region's heartbeat, unless a join
//!   moved them first.
//! - Events only ever reach sessions pinned to the sending region: a room moved away from a
//!   region is out of reach of that region's late events.
//!
//! Every event is applied by one idempotent statement and then its id is remembered, so a batch
//! re-sent after a lost acknowledgement, or cut short by a crash, changes nothing twice.

use serde::Deserialize;

use crate::config::Region;
use crate::db::{self, Joined, LimitReached, MediaParticipant, RoomStart};
use crate::livekit::{self, LiveKitError};
use crate::locks::{self, LockedJoin};
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::registry;
use crate::sidecars::REGION_CLOCK_SKEW_MS;
use crate::wire::lenient_int;
use crate::Edge;

/// Sessions ended per heartbeat at most (a request does bounded work; the next heartbeat
/// continues). An end costs three statements (the end, and its LiveKit delete kept and then
/// forgotten), so a heartbeat stays under 50, D1's cap per request on Workers' free plan:
/// two of its own, three to find what is due, 15 for the ends, 11 for the retried deletes,
/// up to five sweeping blocked users out ([`sweep_blocked`]), up to three for lock checks
/// ([`locks::sweep_checks`]), one pruning, with recorders two to find the recordings of the
/// rooms ending, and up to six delivering the customer's webhooks
/// ([`crate::webhooks::deliver_due`]): 48.
const ENDS_PER_HEARTBEAT: i64 = 5;

/// The webhook events the edge acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Followed {
    RoomStarted,
    ParticipantJoined,
    ParticipantLeft,
    RoomFinished,
    /// Tracks change nothing here; with webhooks configured they are passed on.
    TrackPublished,
    TrackUnpublished,
}

impl Followed {
    /// The event type LiveKit names, if the edge acts on it.
    fn parse(event: &str) -> Option<Followed> {
        match event {
            "room_started" => Some(Followed::RoomStarted),
            "participant_joined" => Some(Followed::ParticipantJoined),
            "participant_left" => Some(Followed::ParticipantLeft),
            "room_finished" => Some(Followed::RoomFinished),
            "track_published" => Some(Followed::TrackPublished),
            "track_unpublished" => Some(Followed::TrackUnpublished),
            _ => None,
        }
    }
}

/// Applied event ids are kept this long (seconds); sidecars re-send within minutes.
pub(crate) const APPLIED_EVENTS_KEPT_SECS: i64 = 24 * 3600;

/// The part of a LiveKit webhook event the edge reads (LiveKit adds fields freely).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookEvent {
    /// LiveKit's event id.
    #[serde(default)]
    pub id: String,
    /// `room_started`, `participant_joined`, ...
    #[serde(default)]
    pub event: String,
    /// Unix seconds (LiveKit writes `createdAt`, an int64 as a string).
    #[serde(default, alias = "createdAt", deserialize_with = "lenient_int")]
    pub created_at: Option<i64>,
    /// The room.
    #[serde(default)]
    pub room: Option<EventRoom>,
    /// The participant, for participant and track events.
    #[serde(default)]
    pub participant: Option<EventParticipant>,
    /// The track, for track events: LiveKit's `TrackInfo`, passed on to the customer's webhooks
    /// as it came (its keys in snake_case).
    #[serde(default)]
    pub track: Option<serde_json::Value>,
}

/// A room in a webhook event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventRoom {
    /// LiveKit's room sid.
    #[serde(default)]
    pub sid: String,
    /// The room name: the session's LiveKit room name (`<room_id>.<sid>`).
    #[serde(default)]
    pub name: String,
}

/// A participant in a webhook event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventParticipant {
    /// LiveKit's participant sid.
    #[serde(default)]
    pub sid: String,
    /// The identity.
    #[serde(default)]
    pub identity: String,
    /// The display name.
    #[serde(default)]
    pub name: String,
    /// Its permissions (`hidden` for recorders and observers).
    #[serde(default)]
    pub permission: Option<EventPermission>,
}

/// The permission bits the edge reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventPermission {
    /// Hidden from others.
    #[serde(default)]
    pub hidden: bool,
    /// May publish at all.
    #[serde(default, alias = "canPublish")]
    pub can_publish: bool,
    /// The sources it may publish (LiveKit's enum names; empty: any).
    #[serde(default, alias = "canPublishSources")]
    pub can_publish_sources: Vec<serde_json::Value>,
    /// May publish data.
    #[serde(default, alias = "canPublishData")]
    pub can_publish_data: bool,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It changed the edge's state (or confirmed it).
    Applied,
    /// Its id was applied before.
    Duplicate,
    /// Nothing to do (an event type the edge does not follow, or a room it does not run).
    Ignored,
}

/// Applies one event from `region`'s LiveKit. A blocked or locked user heard joining is noted
/// in `joins`, for [`follow_up_joins`] once the batch is applied.
pub async fn apply<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    event: &WebhookEvent,
    joins: &mut HeardJoins,
) -> Result<Outcome, StoreError> {
    // Most of LiveKit's events (egress, ...) change nothing here: no statement for them.
    let Some(kind) = Followed::parse(&event.event) else {
        return Ok(Outcome::Ignored);
    };
    if !event.id.is_empty() && db::event_applied(&edge.store, &region.id, &event.id).await? {
        return Ok(Outcome::Duplicate);
    }
    let now = edge.now_secs();
    let skew = REGION_CLOCK_SKEW_MS / 1000;
    // Never later than the allowed clock skew: a room "started" far in the future would never
    // reach its limits.
    let at = event
        .created_at
        .filter(|t| *t > 0)
        .unwrap_or(now)
        .min(now + skew);
    let room = event.room.clone().unwrap_or_default();
    let participant = event.participant.clone().unwrap_or_default();
    let changed = match kind {
        Followed::RoomStarted if !room.name.is_empty() => {
            match db::room_started(&edge.store, &region.id, &room.name, &room.sid, at, skew).await?
            {
                RoomStart::Linked => true,
                RoomStart::Stale => {
                    // The LiveKit room of the current session is another one (or will be):
                    // deleting by name would end the meeting going on now.
                    tracing::warn!(region = %region.id, room = %room.name, livekit_sid = %room.sid, "a late room_started of an earlier session: ignored");
                    false
                }
                RoomStart::Unknown => {
                    tracing::warn!(region = %region.id, room = %room.name, "LiveKit started a room the edge does not run there: deleting it");
                    delete_unknown_livekit_room(edge, region, &room.name).await?;
                    false
                }
            }
        }
        Followed::ParticipantJoined | Followed::ParticipantLeft if !participant.sid.is_empty() => {
            let media = MediaParticipant {
                sid: &participant.sid,
                identity: &participant.identity,
                name: &participant.name,
                hidden: participant.permission.as_ref().is_some_and(|p| p.hidden),
            };
            if kind == Followed::ParticipantJoined {
                let joined = db::participant_joined(
                    &edge.store,
                    &region.id,
                    &room.name,
                    &room.sid,
                    &media,
                    at,
                )
                .await?;
                match &joined {
                    Joined::Blocked => joins.note_blocked(&room.name, &participant.identity),
                    Joined::Locked { room_sid } => {
                        let granted = participant.permission.clone().unwrap_or_default();
                        joins.locked.push(LockedJoin {
                            room_sid: room_sid.clone(),
                            identity: participant.identity.clone(),
                            can_publish: granted.can_publish,
                            can_publish_sources: granted.can_publish_sources,
                            can_publish_data: granted.can_publish_data,
                        });
                    }
                    Joined::Recorded | Joined::NotRecorded => {}
                }
                joined != Joined::NotRecorded
            } else {
                db::participant_left(&edge.store, &region.id, &room.name, &room.sid, &media, at)
                    .await?
            }
        }
        Followed::RoomFinished if !room.sid.is_empty() => {
            let ended = db::room_finished(&edge.store, &region.id, &room.sid, at).await?;
            if let Some(sid) = &ended {
                tracing::info!(region = %region.id, room = %room.name, %sid, "room finished in LiveKit: session ended");
            }
            ended.is_some()
        }
        Followed::TrackPublished | Followed::TrackUnpublished if !room.sid.is_empty() => {
            let detail = crate::webhooks::track_detail(&participant, event.track.as_ref());
            let track = crate::db::webhooks::TrackEvent {
                region_id: &region.id,
                livekit_room: &room.name,
                livekit_sid: &room.sid,
                event: &event.event,
                detail: &detail,
                at,
            };
            // For the customer's webhooks (where there are any), and for the session's
            // analytics file.
            let queued = edge.config.webhooks.enabled()
                && crate::db::webhooks::queue_track_event(&edge.store, &track).await?;
            crate::db::analytics::note_track_event(&edge.store, &track).await? || queued
        }
        _ => false,
    };
    // Only a change needs remembering: an event that changed nothing changes nothing again.
    if changed && !event.id.is_empty() {
        db::mark_event_applied(&edge.store, &event.id, &region.id, now).await?;
    }
    Ok(if changed {
        Outcome::Applied
    } else {
        Outcome::Ignored
    })
}

/// Most removals of blocked users one request makes (sent side by side, each waiting at most
/// [`livekit::BRIEF_CALL_TIMEOUT`]); the rest wait for the next heartbeat's sweep.
pub const REMOVALS_PER_REQUEST: usize = 4;

/// Joins heard in one batch of events that LiveKit must be told about once it is applied:
/// blocked users (each `(LiveKit room, identity)` once, as LiveKit removes by identity) and
/// users a moderator locked something for.
#[derive(Debug, Default)]
pub struct HeardJoins {
    blocked: Vec<(String, String)>,
    locked: Vec<LockedJoin>,
}

impl HeardJoins {
    fn note_blocked(&mut self, livekit_room: &str, identity: &str) {
        if !self
            .blocked
            .iter()
            .any(|(room, who)| room == livekit_room && who == identity)
        {
            self.blocked
                .push((livekit_room.to_owned(), identity.to_owned()));
        }
    }

    /// The locked users heard joining.
    pub(crate) fn locked(&self) -> &[LockedJoin] {
        &self.locked
    }
}

/// Once a batch is applied, side by side, so the sidecar waiting on it waits
/// [`livekit::BRIEF_CALL_TIMEOUT`] at most:
/// - removes from `region`'s LiveKit users whom their session has blocked, who came back with
///   a LiveKit token minted before the block (LiveKit keeps no block list, and refreshes a
///   connected client's token), at most [`REMOVALS_PER_REQUEST`]. Whoever is left, or whose
///   removal failed, is still listed as present, and the next heartbeat's sweep
///   ([`sweep_blocked`]) tries again;
/// - narrows the permission of locked users who joined with more ([`locks::enforce_on_join`]).
pub async fn follow_up_joins<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    joins: HeardJoins,
) {
    let targets = joins.blocked.iter().take(REMOVALS_PER_REQUEST);
    let removals = remove_from_livekit(
        edge,
        region,
        targets.map(|(room, who)| (room.as_str(), who.as_str())),
    );
    futures_util::future::join(
        removals,
        locks::enforce_on_join(edge, region, joins.locked()),
    )
    .await;
}

/// Removes each `(LiveKit room, identity)` of `targets` from `region`'s LiveKit, side by side,
/// each waiting at most [`livekit::BRIEF_CALL_TIMEOUT`], and logs what came of it; the outcomes
/// in the same order.
async fn remove_from_livekit<'t, S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    targets: impl Iterator<Item = (&'t str, &'t str)>,
) -> Vec<Result<bool, LiveKitError>> {
    let api = edge.livekit(region);
    let removals = targets.map(|(room, identity)| {
        let api = &api;
        async move {
            let outcome = api
                .remove_participant(room, identity, livekit::BRIEF_CALL_TIMEOUT)
                .await;
            log_removal(region, room, identity, &outcome);
            outcome
        }
    });
    futures_util::future::join_all(removals).await
}

fn log_removal(region: &Region, room: &str, identity: &str, outcome: &Result<bool, LiveKitError>) {
    match outcome {
        Ok(true) => {
            tracing::warn!(region = %region.id, %room, %identity, "a blocked user came back with an earlier LiveKit token: removed again");
        }
        Ok(false) => {
            tracing::info!(region = %region.id, %room, %identity, "a blocked user had left LiveKit already");
        }
        Err(e) => {
            tracing::warn!(region = %region.id, %room, %identity, error = %e, "a blocked user could not be removed from LiveKit; the next heartbeat tries again");
        }
    }
}

/// On a heartbeat from `region`: removes again the blocked users its sessions still list as
/// present (a removal that failed or was cut short, a batch re-sent after one), at most
/// [`REMOVALS_PER_REQUEST`], side by side; one LiveKit says it does not have is marked gone.
/// One statement, plus one per participant marked gone.
pub(crate) async fn sweep_blocked<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
) -> Result<(), StoreError> {
    let limit = i64::try_from(REMOVALS_PER_REQUEST).unwrap_or(1);
    let present = db::blocked_presences(&edge.store, &region.id, limit).await?;
    let targets = present
        .iter()
        .map(|p| (p.livekit_room.as_str(), p.identity.as_str()));
    let outcomes = remove_from_livekit(edge, region, targets).await;
    let now = edge.now_secs();
    for (p, outcome) in present.iter().zip(outcomes) {
        // Removed: LiveKit's participant_left marks them gone. Not there: nothing will.
        if matches!(outcome, Ok(false)) {
            db::participant_gone(&edge.store, &p.room_sid, &p.participant_sid, now).await?;
        }
    }
    Ok(())
}

/// The due work a heartbeat from `region` pays for: ends sessions past their limits (and
/// deletes their LiveKit rooms) and forgets old event ids. `events_settled`: the heartbeat says
/// its sidecar holds no undelivered webhook and keeps new ones. Returns the sessions ended.
pub async fn on_heartbeat<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    events_settled: bool,
) -> Result<usize, StoreError> {
    let now = edge.now_secs();
    let mut due = db::due_rooms(
        &edge.store,
        &region.id,
        now,
        events_settled,
        ENDS_PER_HEARTBEAT,
    )
    .await?;
    let capacity_left = |due: &[db::DueRoom]| {
        ENDS_PER_HEARTBEAT - i64::try_from(due.len()).unwrap_or(ENDS_PER_HEARTBEAT)
    };
    let limit = capacity_left(&due);
    if limit > 0 {
        // This region's own only once its sidecar holds no undelivered webhook (a
        // room_started may be among them); unplaced ones on any heartbeat.
        let regions: &[&str] = if events_settled { &[&region.id] } else { &[] };
        due.extend(db::never_started_rooms(&edge.store, regions, true, now, limit).await?);
    }
    // Any region's heartbeat ends the rooms of regions that are gone: theirs no longer come.
    let limit = capacity_left(&due);
    if limit > 0 {
        let gone_after = registry::gone_after_ms(&edge.config);
        let with_sidecars: Vec<&str> = edge
            .config
            .sidecar_secrets
            .keys()
            .map(String::as_str)
            .collect();
        let now_ms = edge.clock.now_ms();
        due.extend(
            db::orphaned_rooms(&edge.store, now_ms, gone_after, &with_sidecars, limit).await?,
        );
    }
    end_due(edge, Some(region), &due).await?;
    retry_deletes(edge, region).await?;
    sweep_blocked(edge, region).await?;
    locks::sweep_checks(edge, region).await?;
    db::prune_applied_events(&edge.store, now - APPLIED_EVENTS_KEPT_SECS).await?;
    Ok(due.len())
}

/// Ends the sessions `due` (their recordings asked to stop first, two statements at most) and
/// deletes the LiveKit rooms of those that started, in `region`'s LiveKit.
async fn end_due<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: Option<&Region>,
    due: &[db::DueRoom],
) -> Result<(), StoreError> {
    let now = edge.now_secs();
    let due_sids: Vec<&str> = due.iter().map(|room| room.sid.as_str()).collect();
    crate::recording::dispatch::stop_jobs_of_sessions(edge, &due_sids).await;
    let region_id = region.map_or("", |r| r.id.as_str());
    for room in due {
        if db::end_room(&edge.store, &room.sid, now).await? {
            let why = match room.reason {
                LimitReached::Duration => "room_duration is over",
                LimitReached::Empty => "empty_timeout passed with nobody in the room",
                LimitReached::NeverStarted => "empty_timeout passed and nobody ever entered",
                LimitReached::RegionGone => {
                    "its region is gone and nobody joined it again within empty_timeout"
                }
            };
            tracing::info!(region = region_id, room_id = %room.room_id, sid = %room.sid, why, "room ended by the edge");
        }
        // A session that never started has no LiveKit room of its own to delete, and a gone
        // region's LiveKit is not this region's (if it comes back, its room_started for an
        // ended session deletes the room).
        let started = !matches!(
            room.reason,
            LimitReached::NeverStarted | LimitReached::RegionGone
        );
        if let (true, Some(region)) = (started, region) {
            delete_livekit_room(edge, region, &room.livekit_room).await?;
        }
    }
    Ok(())
}

/// Sessions one `room/create` ends at most for regions no heartbeat speaks for.
const ENDS_PER_CREATE: i64 = 4;

/// On a new `room/create`, what a heartbeat would end where none comes: sessions nobody entered
/// within their `empty_timeout` (unplaced ones when no region has a sidecar, and those of
/// regions whose LiveKit posts webhooks straight to the edge, which hear `room_started`), and
/// sessions of such regions past their `room_duration`, [`ENDS_PER_CREATE`] at most. A region
/// with neither a sidecar nor direct webhooks is left alone: the edge cannot tell whether
/// anyone is in its rooms. One statement when nothing is due, plus one per direct region.
pub(crate) async fn end_due_without_heartbeats<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
) {
    let config = &edge.config;
    let direct: Vec<&Region> = config
        .regions
        .iter()
        .filter(|r| r.direct_webhooks)
        .collect();
    let unplaced = !config.uses_sidecars();
    if direct.is_empty() && !unplaced {
        return;
    }
    let ended = async {
        let now = edge.now_secs();
        let direct_ids: Vec<&str> = direct.iter().map(|r| r.id.as_str()).collect();
        let never_started =
            db::never_started_rooms(&edge.store, &direct_ids, unplaced, now, ENDS_PER_CREATE)
                .await?;
        end_due(edge, None, &never_started).await?;
        for region in direct {
            // Not settled: only those past their room_duration (emptiness is LiveKit's to judge
            // here: it closes an empty room, and its room_finished ends the session).
            let over = db::due_rooms(&edge.store, &region.id, now, false, ENDS_PER_CREATE).await?;
            end_due(edge, Some(region), &over).await?;
        }
        Ok::<(), StoreError>(())
    };
    if let Err(e) = ended.await {
        tracing::warn!(error = %e, "could not end the sessions due without heartbeats");
    }
}

/// Attempts at deleting a LiveKit room before the edge gives up on it (about four hours).
const MAX_DELETE_ATTEMPTS: i64 = 10;

/// Retried LiveKit deletes a heartbeat (or, without sidecars, a create or end) pays for.
const DELETES_PER_HEARTBEAT: i64 = 5;

/// Deletes LiveKit room `room` in `region` (disconnecting everyone). When LiveKit does not
/// answer, the delete is kept and retried: on the region's heartbeats (see [`retry_deletes`])
/// when it has a sidecar, else on the next `room/create` or `room/endRoom` (see
/// [`retry_due_deletes`]).
///
/// Each attempt is counted and the next one scheduled before LiveKit is asked: a request cut off
/// while LiveKit is slow (the platform's time limit, the client gone) leaves the delete kept for
/// a retry rather than lost, and a LiveKit that hangs is asked again only when the retry is due,
/// not by every request that retries deletes.
pub(crate) async fn delete_livekit_room<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    room: &str,
) -> Result<(), StoreError> {
    let attempts =
        db::defer_livekit_deletion(&edge.store, &region.id, room, edge.now_secs()).await?;
    let result = edge.livekit(region).delete_room(room).await;
    settle_delete(edge, region, room, attempts, result).await
}

/// Deletes a LiveKit room a webhook said started without a session of the edge's. Only a
/// failure is recorded: a request cut off before its event is remembered gets the event again
/// from the sidecar, which deletes again, and so a followed event stays within the statements
/// [`crate::config::EdgeConfig::max_events_per_batch`] counts on.
async fn delete_unknown_livekit_room<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    room: &str,
) -> Result<(), StoreError> {
    let Err(error) = edge.livekit(region).delete_room(room).await else {
        return Ok(());
    };
    let attempts =
        db::defer_livekit_deletion(&edge.store, &region.id, room, edge.now_secs()).await?;
    settle_delete(edge, region, room, attempts, Err(error)).await
}

/// What an attempt at a kept delete leaves: a success forgets it; a failure leaves it for the
/// retry, or gives it up after [`MAX_DELETE_ATTEMPTS`].
async fn settle_delete<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
    room: &str,
    attempts: i64,
    result: Result<(), LiveKitError>,
) -> Result<(), StoreError> {
    match result {
        Ok(()) => {
            db::forget_livekit_deletion(&edge.store, &region.id, room).await?;
            if attempts > 1 {
                tracing::info!(region = %region.id, %room, attempts, "LiveKit room deleted on retry");
            }
        }
        Err(error) if attempts >= MAX_DELETE_ATTEMPTS => {
            db::forget_livekit_deletion(&edge.store, &region.id, room).await?;
            tracing::error!(region = %region.id, %room, attempts, %error, "deleting the LiveKit room failed; giving up");
        }
        Err(error) => {
            tracing::warn!(region = %region.id, %room, attempts, %error, "deleting the LiveKit room failed; will retry");
        }
    }
    Ok(())
}

/// Retries the deletes in `region` that are due (see [`delete_livekit_room`]).
async fn retry_deletes<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    region: &Region,
) -> Result<(), StoreError> {
    let due = db::due_livekit_deletions(
        &edge.store,
        Some(&region.id),
        edge.now_secs(),
        DELETES_PER_HEARTBEAT,
    )
    .await?;
    for (_, room) in due {
        delete_livekit_room(edge, region, &room).await?;
    }
    Ok(())
}

/// Retries due deletes for deployments where some region has no sidecar, and so no heartbeat
/// to retry on; called on the plugNmeet calls that end and start sessions. Every configured
/// region's due deletes are retried (a gone sidecar region's must not hold the few places a
/// call has); a delete kept for a region no longer configured is dropped. A store failure is
/// logged: it only delays the retry.
pub(crate) async fn retry_due_deletes<S: Store, H: HttpClient, C: Clock>(edge: &Edge<S, H, C>) {
    let config = &edge.config;
    if config
        .regions
        .iter()
        .all(|region| config.sidecar_secrets.contains_key(&region.id))
    {
        return;
    }
    let retried = async {
        let due =
            db::due_livekit_deletions(&edge.store, None, edge.now_secs(), DELETES_PER_HEARTBEAT)
                .await?;
        for (region_id, room) in due {
            match config.region(&region_id) {
                Some(region) => delete_livekit_room(edge, region, &room).await?,
                None => db::forget_livekit_deletion(&edge.store, &region_id, &room).await?,
            }
        }
        Ok::<(), StoreError>(())
    };
    if let Err(e) = retried.await {
        tracing::warn!(error = %e, "could not retry failed LiveKit deletes");
    }
}
