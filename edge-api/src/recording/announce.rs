//! Tells a session's participants what its recorders are doing. LiveKit's own recording flag
//! says only that some recorder is in the room: not whether it records or broadcasts, nor that
//! a job is starting or being saved. So whenever a job's state changes (a node's report, a job
//! taken for lost), the edge writes the session's live jobs into its LiveKit room's metadata,
//! which LiveKit sends to everyone in the room (a page that joins later gets it with the room):
//!
//! ```json
//! {"recorder": {"recording": "ACTIVE", "rtmp": "STARTING"}}
//! ```
//!
//! Each kind with a live job is there with the job's state (`STARTING`, `ACTIVE` or `ENDING`);
//! a kind with none is left out. The pages show their badge and moderators' buttons from it.
//!
//! One Twirp call per session a change touched, made by the request that changed it: a node's
//! report (or its heartbeat, when it takes another node's jobs for lost), or a moderator's
//! request that finds a job lost. Each call waits at most
//! [`crate::livekit::BRIEF_CALL_TIMEOUT`], and after one failure the request makes no more,
//! so a LiveKit that hangs costs a report at most that long and the node still gets its answer
//! in time. The sessions left unwritten are kept (`unannounced_sessions`), and each recorder
//! heartbeat writes a few of them again ([`announce_overdue`]) until LiveKit takes them or the
//! session ends; meanwhile pages go by LiveKit's flag where they can.
//!
//! Two requests changing one session's jobs at once (its recording's node and its broadcast's
//! reporting in the same instant) may each read the jobs before the other's change and land in
//! LiveKit in the other order, the older state last. So once its writes are made, a request
//! reads the jobs of the sessions it wrote again and writes any that changed meanwhile: the
//! request whose write lands last read after every change it could have missed, or reads them
//! now and writes them again.

use serde::Serialize;

use crate::db::recordings as db;
use crate::platform::{Clock, HttpClient, Store, StoreError};
use crate::Edge;

/// The LiveKit room metadata the edge writes.
#[derive(Serialize)]
struct RoomMetadata<'a> {
    recorder: LiveJobs<'a>,
}

/// The state of each kind's live job.
#[derive(Serialize)]
struct LiveJobs<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    recording: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtmp: Option<&'a str>,
}

/// Sessions whose state one heartbeat writes again at most.
const OVERDUE_PER_HEARTBEAT: u32 = 4;

/// Writes the live jobs of each of these sessions (each once) into its LiveKit room. Only a
/// running session placed in a configured region is written; the rest have no room to tell.
/// Sessions left unwritten are kept for [`announce_overdue`]. Failures are logged: the change
/// that called this stands either way.
pub(crate) async fn announce<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room_sids: &[&str],
) {
    let unwritten = match announce_each(edge, room_sids).await {
        Ok(unwritten) => unwritten,
        Err(e) => {
            tracing::error!(error = %e, "store failure reading the recording state to send to rooms");
            return;
        }
    };
    let now_ms = edge.clock.now_ms();
    if let Err(e) = db::note_unannounced(&edge.store, &unwritten, now_ms).await {
        tracing::error!(error = %e, "store failure keeping recording states to send again");
    }
}

/// Writes again the state of a few sessions whose earlier write failed; on a recorder's
/// heartbeat (one statement when there are none).
pub(crate) async fn announce_overdue<S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
) -> Result<(), StoreError> {
    let overdue = db::unannounced(&edge.store, OVERDUE_PER_HEARTBEAT).await?;
    let overdue: Vec<&str> = overdue.iter().map(String::as_str).collect();
    if overdue.is_empty() {
        return Ok(());
    }
    let unwritten = announce_each(edge, &overdue).await?;
    for sid in overdue.iter().filter(|sid| !unwritten.contains(sid)) {
        db::forget_unannounced(&edge.store, sid).await?;
    }
    Ok(())
}

/// Writes each session's state; returns the sessions left unwritten (from the first failure
/// on, since one failure ends the request's writes).
async fn announce_each<'a, S: Store, H: HttpClient, C: Clock>(
    edge: &Edge<S, H, C>,
    room_sids: &[&'a str],
) -> Result<Vec<&'a str>, StoreError> {
    // Each session once (a batch names one per event), in the order given.
    let mut sessions: Vec<&'a str> = Vec::with_capacity(room_sids.len());
    for &sid in room_sids {
        if !sessions.contains(&sid) {
            sessions.push(sid);
        }
    }
    let mut jobs: Option<Vec<db::JobRow>> = None;
    // The sessions' rooms, read at once.
    let rooms = crate::db::rooms_by_sids(&edge.store, &sessions).await?;
    // What was written where: (session, LiveKit room, its region, the metadata).
    let mut written = Vec::with_capacity(sessions.len());
    for (i, &sid) in sessions.iter().enumerate() {
        let Some(room) = rooms.iter().find(|room| room.sid == sid) else {
            continue;
        };
        let region = edge.media_region(room);
        let Some(region) = region.filter(|_| room.is_running) else {
            continue;
        };
        // The live jobs of every session, read once (they are few).
        let jobs = match &mut jobs {
            Some(jobs) => jobs,
            None => jobs.insert(db::live_jobs_of_sessions(&edge.store, &sessions).await?),
        };
        let metadata = metadata_of(jobs.iter().filter(|job| job.room_sid == sid));
        if let Err(e) = edge
            .livekit(region)
            .update_room_metadata(&room.livekit_room, &metadata)
            .await
        {
            // Each call may wait for its whole timeout: one is all this request spends.
            tracing::warn!(room = %room.room_id, region = %region.id, error = %e, "recording state not sent to the room; sent again on a later heartbeat");
            return Ok(sessions.split_off(i));
        }
        written.push((sid, room.livekit_room.as_str(), region, metadata));
    }
    if written.is_empty() {
        return Ok(Vec::new());
    }
    // Changes made by another request since this one read the jobs (see the module's docs).
    let sids: Vec<&str> = written.iter().map(|(sid, ..)| *sid).collect();
    let now = db::live_jobs_of_sessions(&edge.store, &sids).await?;
    let mut unwritten = Vec::new();
    for (sid, livekit_room, region, before) in written {
        let metadata = metadata_of(now.iter().filter(|job| job.room_sid == sid));
        if metadata == before {
            continue;
        }
        // After a failure this request makes no more calls: the rest wait for a heartbeat.
        if !unwritten.is_empty() {
            unwritten.push(sid);
            continue;
        }
        if let Err(e) = edge
            .livekit(region)
            .update_room_metadata(livekit_room, &metadata)
            .await
        {
            tracing::warn!(room = %livekit_room, region = %region.id, error = %e, "recording state not sent to the room; sent again on a later heartbeat");
            unwritten.push(sid);
        }
    }
    Ok(unwritten)
}

/// The metadata for a session whose live jobs are `jobs`.
fn metadata_of<'a>(jobs: impl Iterator<Item = &'a db::JobRow> + Clone) -> String {
    let state_of = |kind: &str| {
        jobs.clone()
            .find(|job| job.kind == kind)
            .map(|job| job.state.as_str())
    };
    let metadata = RoomMetadata {
        recorder: LiveJobs {
            recording: state_of(super::Kind::Recording.as_str()),
            rtmp: state_of(super::Kind::Rtmp.as_str()),
        },
    };
    // Two optional strings from a fixed set cannot fail to serialize.
    serde_json::to_string(&metadata).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: &str, state: &str) -> db::JobRow {
        db::JobRow {
            job_id: format!("j-{kind}"),
            room_sid: "s".into(),
            room_id: "r".into(),
            kind: kind.into(),
            recorder_id: "n".into(),
            state: state.into(),
            reason: None,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn names_each_kinds_live_state_and_leaves_out_the_rest() {
        assert_eq!(metadata_of([].iter()), r#"{"recorder":{}}"#);
        let both = [job("rtmp", "STARTING"), job("recording", "ACTIVE")];
        assert_eq!(
            metadata_of(both.iter()),
            r#"{"recorder":{"recording":"ACTIVE","rtmp":"STARTING"}}"#
        );
        assert_eq!(
            metadata_of([job("recording", "ENDING")].iter()),
            r#"{"recorder":{"recording":"ENDING"}}"#
        );
    }
}
