//! The SQL of recording: recorder nodes' heartbeats, the jobs sent to them, and the catalog of
//! finished recordings (`migrations/0011_recordings.sql`).

use super::{count_where, first_int, listing_filter, text_opt, Columns, ListingQuery};
use crate::platform::{Rows, SqlValue, Store, StoreError};

/// A recorder's latest heartbeat, as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderHeartbeat<'a> {
    /// The node.
    pub recorder_id: &'a str,
    /// Unix ms, the edge's clock.
    pub heard_ms: i64,
    /// Unix ms, the node's clock.
    pub sent_at_ms: i64,
    /// Cores its admission can still give.
    pub free_cores: f64,
    /// Jobs running.
    pub jobs: i64,
    /// Its hard maximum of jobs.
    pub max_jobs: i64,
    /// Whether a job that writes a file can be admitted (disk and job store).
    pub accepts_files: bool,
}

/// Keeps `beat` unless a newer heartbeat (by the node's clock) is kept already. Returns whether
/// it was kept.
pub async fn record_heartbeat(
    store: &impl Store,
    beat: &RecorderHeartbeat<'_>,
) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "INSERT INTO recorder_status \
             (recorder_id, heard_ms, sent_at_ms, free_cores, jobs, max_jobs, accepts_files) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (recorder_id) DO UPDATE SET heard_ms = excluded.heard_ms, \
             sent_at_ms = excluded.sent_at_ms, free_cores = excluded.free_cores, \
             jobs = excluded.jobs, max_jobs = excluded.max_jobs, \
             accepts_files = excluded.accepts_files \
             WHERE excluded.sent_at_ms >= recorder_status.sent_at_ms \
             RETURNING recorder_id",
            &[
                beat.recorder_id.into(),
                beat.heard_ms.into(),
                beat.sent_at_ms.into(),
                SqlValue::Real(beat.free_cores),
                beat.jobs.into(),
                beat.max_jobs.into(),
                beat.accepts_files.into(),
            ],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// A recorder heard from recently, with what it can take.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRecorder {
    /// The node.
    pub recorder_id: String,
    /// Cores its admission can still give.
    pub free_cores: f64,
    /// Jobs running.
    pub jobs: i64,
    /// Its hard maximum of jobs.
    pub max_jobs: i64,
    /// Whether a job that writes a file can be admitted.
    pub accepts_files: bool,
}

/// Recorders heard from at or after `heard_since_ms` (the edge's clock), most free cores first.
pub async fn live_recorders(
    store: &impl Store,
    heard_since_ms: i64,
) -> Result<Vec<LiveRecorder>, StoreError> {
    let rows = store
        .execute(
            "SELECT recorder_id, free_cores, jobs, max_jobs, accepts_files FROM recorder_status \
             WHERE heard_ms >= ? ORDER BY free_cores DESC, recorder_id",
            &[heard_since_ms.into()],
        )
        .await?;
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(LiveRecorder {
                recorder_id: col.text(0)?,
                free_cores: real(r.get(1)).unwrap_or(0.0),
                jobs: col.int(2)?,
                max_jobs: col.int(3)?,
                accepts_files: col.int(4)? != 0,
            })
        })
        .collect()
}

/// One job the edge sent to a recorder.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// The job id (a recording's record_id).
    pub job_id: String,
    /// Its session.
    pub room_sid: String,
    /// Its room.
    pub room_id: String,
    /// `recording` or `rtmp`.
    pub kind: String,
    /// The node that runs it.
    pub recorder_id: String,
    /// STARTING, ACTIVE, ENDING, COMPLETE or FAILED.
    pub state: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Unix ms, the edge's clock.
    pub created_ms: i64,
    /// Unix ms, the node's clock of its latest event (0 before any).
    pub updated_ms: i64,
}

const JOB_COLUMNS: &str =
    "job_id, room_sid, room_id, kind, recorder_id, state, reason, created_ms, updated_ms";

fn jobs(rows: Rows) -> Result<Vec<JobRow>, StoreError> {
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(JobRow {
                job_id: col.text(0)?,
                room_sid: col.text(1)?,
                room_id: col.text(2)?,
                kind: col.text(3)?,
                recorder_id: col.text(4)?,
                state: col.text(5)?,
                reason: text_opt(r.get(6)),
                created_ms: col.int(7)?,
                updated_ms: col.int(8)?,
            })
        })
        .collect()
}

/// A job about to be sent.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The job id.
    pub job_id: &'a str,
    /// Its session.
    pub room_sid: &'a str,
    /// Its room.
    pub room_id: &'a str,
    /// `recording` or `rtmp`.
    pub kind: &'a str,
    /// The first node it is offered to.
    pub recorder_id: &'a str,
    /// Unix ms, the edge's clock.
    pub created_ms: i64,
}

/// Takes the session's slot for the job's kind: stores the job as STARTING unless a live job of
/// that kind holds the slot. Returns whether it was taken.
pub async fn claim_job(store: &impl Store, job: &NewJob<'_>) -> Result<bool, StoreError> {
    let rows = store
        .execute(
            "INSERT INTO recording_jobs \
             (job_id, room_sid, room_id, kind, recorder_id, state, created_ms, updated_ms) \
             VALUES (?, ?, ?, ?, ?, 'STARTING', ?, 0) ON CONFLICT DO NOTHING RETURNING job_id",
            &[
                job.job_id.into(),
                job.room_sid.into(),
                job.room_id.into(),
                job.kind.into(),
                job.recorder_id.into(),
                job.created_ms.into(),
            ],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// The session's live job of `kind`, if any.
pub async fn live_job(
    store: &impl Store,
    room_sid: &str,
    kind: &str,
) -> Result<Option<JobRow>, StoreError> {
    let rows = store
        .execute(
            &format!(
                "SELECT {JOB_COLUMNS} FROM recording_jobs WHERE room_sid = ? AND kind = ? \
                 AND state IN ('STARTING', 'ACTIVE', 'ENDING')"
            ),
            &[room_sid.into(), kind.into()],
        )
        .await?;
    Ok(jobs(rows)?.into_iter().next())
}

/// The live jobs of these sessions, of every kind (running sessions are few: the sids are
/// matched in Rust, so one statement serves any number of them).
pub async fn live_jobs_of_sessions(
    store: &impl Store,
    room_sids: &[&str],
) -> Result<Vec<JobRow>, StoreError> {
    if room_sids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = store
        .execute(
            &format!(
                "SELECT {JOB_COLUMNS} FROM recording_jobs \
                 WHERE state IN ('STARTING', 'ACTIVE', 'ENDING')"
            ),
            &[],
        )
        .await?;
    Ok(jobs(rows)?
        .into_iter()
        .filter(|job| room_sids.contains(&job.room_sid.as_str()))
        .collect())
}

/// Moves a STARTING job that no event has touched to another node (the last one said no).
pub async fn offer_job_to(
    store: &impl Store,
    job_id: &str,
    recorder_id: &str,
) -> Result<(), StoreError> {
    store
        .execute(
            "UPDATE recording_jobs SET recorder_id = ? WHERE job_id = ? AND updated_ms = 0",
            &[recorder_id.into(), job_id.into()],
        )
        .await?;
    Ok(())
}

/// Forgets a job no node took, freeing its slot.
pub async fn drop_job(store: &impl Store, job_id: &str) -> Result<(), StoreError> {
    store
        .execute(
            "DELETE FROM recording_jobs WHERE job_id = ? AND updated_ms = 0",
            &[job_id.into()],
        )
        .await?;
    Ok(())
}

/// Marks a live job FAILED with `reason`, from the edge's side (its node died or forgot it).
/// Its `updated_ms` is kept, so an event the node sends later still applies.
pub async fn fail_job(store: &impl Store, job_id: &str, reason: &str) -> Result<(), StoreError> {
    store
        .execute(
            "UPDATE recording_jobs SET state = 'FAILED', reason = ? WHERE job_id = ? \
             AND state IN ('STARTING', 'ACTIVE', 'ENDING')",
            &[reason.into(), job_id.into()],
        )
        .await?;
    Ok(())
}

/// Marks a job ENDING (a stop was accepted), unless an event already moved it further.
pub async fn mark_ending(store: &impl Store, job_id: &str) -> Result<(), StoreError> {
    store
        .execute(
            "UPDATE recording_jobs SET state = 'ENDING' WHERE job_id = ? \
             AND state IN ('STARTING', 'ACTIVE')",
            &[job_id.into()],
        )
        .await?;
    Ok(())
}

/// A job state as its node reported it.
#[derive(Debug, Clone)]
pub struct JobUpdate<'a> {
    /// The reporting node: only its own jobs change.
    pub recorder_id: &'a str,
    /// The job.
    pub job_id: &'a str,
    /// The new state.
    pub state: &'a str,
    /// Why it failed, or what went wrong on the way.
    pub reason: Option<&'a str>,
    /// Unix ms, the node's clock of this state.
    pub updated_ms: i64,
}

/// Applies a node's report about one of its jobs. A final state (COMPLETE, FAILED) always
/// replaces a live one, whatever the node's clock says (a clock stepped back must not keep a
/// finished job running); otherwise the report applies unless a newer one was applied (one as
/// new applies again, so a batch sent again changes nothing). A job back in a live state that
/// would take a slot a newer job holds is left as it is. Returns the job as it is now when the
/// report was applied; `None` when it was not (stale, or not this node's job).
pub async fn apply_job_update(
    store: &impl Store,
    update: &JobUpdate<'_>,
) -> Result<Option<JobRow>, StoreError> {
    let rows = store
        .execute(
            &format!(
                "UPDATE OR IGNORE recording_jobs SET state = ?1, reason = ?2, updated_ms = ?3 \
                 WHERE job_id = ?4 AND recorder_id = ?5 AND CASE \
                 WHEN state IN ('COMPLETE', 'FAILED') THEN ?1 IN ('COMPLETE', 'FAILED') \
                 AND updated_ms <= ?3 \
                 WHEN ?1 IN ('COMPLETE', 'FAILED') THEN 1 \
                 ELSE updated_ms <= ?3 END \
                 RETURNING {JOB_COLUMNS}"
            ),
            &[
                update.state.into(),
                update.reason.into(),
                update.updated_ms.into(),
                update.job_id.into(),
                update.recorder_id.into(),
            ],
        )
        .await?;
    Ok(jobs(rows)?.into_iter().next())
}

/// Live jobs whose node was last heard before `heard_before_ms` (or never), at most `limit`.
pub async fn orphaned_jobs(
    store: &impl Store,
    heard_before_ms: i64,
    limit: u32,
) -> Result<Vec<JobRow>, StoreError> {
    let rows = store
        .execute(
            &format!(
                "SELECT {JOB_COLUMNS} FROM recording_jobs j WHERE state IN \
                 ('STARTING', 'ACTIVE', 'ENDING') AND COALESCE((SELECT heard_ms FROM \
                 recorder_status r WHERE r.recorder_id = j.recorder_id), 0) < ? LIMIT {limit}"
            ),
            &[heard_before_ms.into()],
        )
        .await?;
    jobs(rows)
}

/// The sessions (of `sids`) with an ACTIVE job whose node was heard at or after
/// `heard_since_ms`, each with the kinds it runs.
pub async fn active_kinds(
    store: &impl Store,
    sids: &[&str],
    heard_since_ms: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    if sids.is_empty() {
        return Ok(Vec::new());
    }
    // Running sessions are few; the sids are matched in Rust so that one statement serves any
    // number of them (D1 binds at most 100 parameters).
    let rows = store
        .execute(
            "SELECT j.room_sid, j.kind FROM recording_jobs j JOIN recorder_status r \
             ON r.recorder_id = j.recorder_id WHERE j.state = 'ACTIVE' AND r.heard_ms >= ?",
            &[heard_since_ms.into()],
        )
        .await?;
    let mut found = Vec::new();
    for r in &rows.rows {
        let col = Columns(r);
        let sid = col.text(0)?;
        if sids.contains(&sid.as_str()) {
            found.push((sid, col.text(1)?));
        }
    }
    Ok(found)
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRow {
    /// Its id (its job's id).
    pub record_id: String,
    /// Its room.
    pub room_id: String,
    /// Its session.
    pub room_sid: String,
    /// The node that made it.
    pub recorder_id: String,
    /// The file as the node reported it.
    pub file_path: String,
    /// Its size.
    pub file_bytes: i64,
    /// Unix seconds: when the recording started.
    pub created_at: i64,
    /// Unix seconds: when its session was created.
    pub room_created_at: i64,
    /// What the backend said about it (plugNmeet's `RecordingMetadata` as JSON), if anything
    /// (`migrations/0015_recording_metadata.sql`; never written with the row).
    pub metadata: Option<String>,
}

const RECORDING_COLUMNS: &str = "record_id, room_id, room_sid, recorder_id, file_path, \
     file_bytes, created_at, room_created_at, (SELECT m.metadata FROM recording_metadata m \
     WHERE m.record_id = recordings.record_id)";

fn recordings(rows: Rows) -> Result<Vec<RecordingRow>, StoreError> {
    rows.rows
        .iter()
        .map(|r| {
            let col = Columns(r);
            Ok(RecordingRow {
                record_id: col.text(0)?,
                room_id: col.text(1)?,
                room_sid: col.text(2)?,
                recorder_id: col.text(3)?,
                file_path: col.text(4)?,
                file_bytes: col.int(5)?,
                created_at: col.int(6)?,
                room_created_at: col.int(7)?,
                metadata: text_opt(r.get(8)),
            })
        })
        .collect()
}

/// Adds a finished recording to the catalog (once: a repeat keeps the first).
pub async fn add_recording(store: &impl Store, row: &RecordingRow) -> Result<(), StoreError> {
    store
        .execute(
            "INSERT INTO recordings (record_id, room_id, room_sid, recorder_id, file_path, \
             file_bytes, created_at, room_created_at) VALUES (?, ?, ?, ?, ?, ?, ?, \
             COALESCE((SELECT created_at FROM rooms WHERE sid = ?), ?)) \
             ON CONFLICT (record_id) DO NOTHING",
            &[
                row.record_id.as_str().into(),
                row.room_id.as_str().into(),
                row.room_sid.as_str().into(),
                row.recorder_id.as_str().into(),
                row.file_path.as_str().into(),
                row.file_bytes.into(),
                row.created_at.into(),
                row.room_sid.as_str().into(),
                row.room_created_at.into(),
            ],
        )
        .await?;
    Ok(())
}

/// A page of recordings and how many match in all.
pub async fn recordings_page(
    store: &impl Store,
    q: &ListingQuery<'_>,
) -> Result<(i64, Vec<RecordingRow>), StoreError> {
    let (filter, params) = listing_filter("1 = 1", q);
    let total = count_where(store, "recordings", &filter, &params).await?;
    let order = if q.descending { "DESC" } else { "ASC" };
    // LIMIT and OFFSET are integers written into the statement, as in `past_rooms`.
    let (limit, from) = (q.limit, q.from);
    let sql = format!(
        "SELECT {RECORDING_COLUMNS} FROM recordings WHERE {filter} \
         ORDER BY created_at {order}, record_id {order} LIMIT {limit} OFFSET {from}"
    );
    Ok((total, recordings(store.execute(&sql, &params).await?)?))
}

/// One recording by id.
pub async fn recording(
    store: &impl Store,
    record_id: &str,
) -> Result<Option<RecordingRow>, StoreError> {
    let rows = store
        .execute(
            &format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE record_id = ?"),
            &[record_id.into()],
        )
        .await?;
    Ok(recordings(rows)?.into_iter().next())
}

/// Recordings `record_ids` (those the catalog has), newest first, in one statement.
pub async fn recordings_by_ids(
    store: &impl Store,
    record_ids: &[&str],
) -> Result<Vec<RecordingRow>, StoreError> {
    let rows = store
        .execute(
            &format!(
                "SELECT {RECORDING_COLUMNS} FROM recordings \
                 WHERE record_id IN (SELECT value FROM json_each(?)) ORDER BY created_at DESC"
            ),
            &[super::json_list(record_ids)?],
        )
        .await?;
    recordings(rows)
}

/// Removes a recording from the catalog, with its job: a node that sends the job's final
/// event again (its earlier answer lost) then finds no job, so the recording cannot come back.
pub async fn delete_recording(store: &impl Store, record_id: &str) -> Result<(), StoreError> {
    store
        .execute(
            "DELETE FROM recording_jobs WHERE job_id = ? \
             AND state NOT IN ('STARTING', 'ACTIVE', 'ENDING')",
            &[record_id.into()],
        )
        .await?;
    store
        .execute(
            "DELETE FROM recordings WHERE record_id = ?",
            &[record_id.into()],
        )
        .await?;
    Ok(())
}

/// Largest stored metadata of one recording, in bytes of JSON.
pub const MAX_METADATA_BYTES: i64 = 16 * 1024;

/// What became of a metadata update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataUpdate {
    /// Applied: the recording's metadata now (JSON).
    Updated(String),
    /// No recording by that id.
    NotFound,
    /// Applied, it would be over [`MAX_METADATA_BYTES`]: nothing was changed.
    TooLarge,
}

/// Applies `patch`, a JSON merge patch (RFC 7396: a member set to null is removed), to the
/// metadata of recording `record_id`, in one statement, unless the result would be over
/// [`MAX_METADATA_BYTES`] (bytes of UTF-8, not characters). A recording without metadata gets
/// some only from a patch that sets something (`sets_values`): one that only clears leaves it
/// without.
pub async fn patch_recording_metadata(
    store: &impl Store,
    record_id: &str,
    patch: &str,
    sets_values: bool,
) -> Result<MetadataUpdate, StoreError> {
    let params = [record_id.into(), patch.into(), MAX_METADATA_BYTES.into()];
    let rows = if sets_values {
        store
            .execute(
                "INSERT INTO recording_metadata (record_id, metadata) \
                 SELECT record_id, json_patch('{}', ?2) FROM recordings \
                 WHERE record_id = ?1 AND length(CAST(json_patch('{}', ?2) AS BLOB)) <= ?3 \
                 ON CONFLICT (record_id) DO UPDATE SET metadata = json_patch(metadata, ?2) \
                 WHERE length(CAST(json_patch(metadata, ?2) AS BLOB)) <= ?3 RETURNING metadata",
                &params,
            )
            .await?
    } else {
        store
            .execute(
                "UPDATE recording_metadata SET metadata = json_patch(metadata, ?2) \
                 WHERE record_id = ?1 AND length(CAST(json_patch(metadata, ?2) AS BLOB)) <= ?3 \
                 RETURNING metadata",
                &params,
            )
            .await?
    };
    if let Some(row) = rows.rows.first() {
        return Ok(MetadataUpdate::Updated(Columns(row).text(0)?));
    }
    Ok(match recording(store, record_id).await? {
        None => MetadataUpdate::NotFound,
        // Clearing what was never set: nothing to do.
        Some(row) if !sets_values && row.metadata.is_none() => {
            MetadataUpdate::Updated(String::from("{}"))
        }
        Some(_) => MetadataUpdate::TooLarge,
    })
}

fn real(v: Option<&SqlValue>) -> Option<f64> {
    match v {
        Some(SqlValue::Real(f)) => Some(*f),
        Some(SqlValue::Integer(i)) => Some(*i as f64),
        _ => None,
    }
}

/// The running session that is recorded from its start (`migrations/0012_auto_recording.sql`)
/// and whose automatic start is due at `now_ms`, if any: one joined already (placed in a
/// region), the longest due first.
pub async fn due_auto_recording(
    store: &impl Store,
    now_ms: i64,
) -> Result<Option<super::RoomRow>, StoreError> {
    let sql = format!(
        "SELECT {} FROM rooms WHERE sid = (SELECT a.room_sid FROM auto_recordings a \
         JOIN rooms r ON r.sid = a.room_sid \
         WHERE a.next_attempt_ms <= ? AND r.is_running = 1 AND r.region IS NOT NULL \
         ORDER BY a.next_attempt_ms LIMIT 1)",
        super::ROOM_COLUMNS
    );
    Ok(super::rooms(store.execute(&sql, &[now_ms.into()]).await?)?
        .into_iter()
        .next())
}

/// Takes the due automatic start of session `room_sid` for one try, holding it from other
/// requests until `held_until_ms`. Returns the try's number, or `None` when another request
/// took it first (or it is settled, or not due).
pub async fn claim_auto_recording(
    store: &impl Store,
    room_sid: &str,
    now_ms: i64,
    held_until_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let rows = store
        .execute(
            "UPDATE auto_recordings SET attempts = attempts + 1, next_attempt_ms = ? \
             WHERE room_sid = ? AND next_attempt_ms <= ? RETURNING attempts",
            &[held_until_ms.into(), room_sid.into(), now_ms.into()],
        )
        .await?;
    Ok((!rows.rows.is_empty()).then(|| first_int(&rows)))
}

/// Ends try number `attempt` of session `room_sid`'s automatic start: settled for good
/// (`retry_at_ms` `None`) or due again at `retry_at_ms`. `outcome` says what the try did. A try
/// that outlived its hold, and was followed by another, changes nothing.
pub async fn settle_auto_recording(
    store: &impl Store,
    room_sid: &str,
    attempt: i64,
    retry_at_ms: Option<i64>,
    outcome: &str,
) -> Result<(), StoreError> {
    store
        .execute(
            "UPDATE auto_recordings SET next_attempt_ms = ?, outcome = ? \
             WHERE room_sid = ? AND attempts = ?",
            &[
                retry_at_ms.map_or(SqlValue::Null, SqlValue::from),
                outcome.into(),
                room_sid.into(),
                attempt.into(),
            ],
        )
        .await?;
    Ok(())
}

/// Keeps sessions whose recording state could not be written into their LiveKit rooms, to be
/// written again (`migrations/0013_unannounced_sessions.sql`); one statement.
pub async fn note_unannounced(
    store: &impl Store,
    room_sids: &[&str],
    now_ms: i64,
) -> Result<(), StoreError> {
    if room_sids.is_empty() {
        return Ok(());
    }
    store
        .execute(
            "INSERT OR IGNORE INTO unannounced_sessions (room_sid, since_ms) \
             SELECT value, ? FROM json_each(?)",
            &[now_ms.into(), super::json_list(room_sids)?],
        )
        .await?;
    Ok(())
}

/// Up to `limit` sessions whose recording state is still to be written, longest waiting first.
pub async fn unannounced(store: &impl Store, limit: u32) -> Result<Vec<String>, StoreError> {
    let rows = store
        .execute(
            &format!("SELECT room_sid FROM unannounced_sessions ORDER BY since_ms LIMIT {limit}"),
            &[],
        )
        .await?;
    rows.rows.iter().map(|r| Columns(r).text(0)).collect()
}

/// Forgets a session whose recording state was written (or that has no room to write to).
pub async fn forget_unannounced(store: &impl Store, room_sid: &str) -> Result<(), StoreError> {
    store
        .execute(
            "DELETE FROM unannounced_sessions WHERE room_sid = ?",
            &[room_sid.into()],
        )
        .await?;
    Ok(())
}
