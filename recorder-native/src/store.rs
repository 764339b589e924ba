//! The node's durable state in SQLite: the job table (so a restart knows what was running) and
//! the event outbox (so no event is lost while the control plane is away). A state change and
//! its event are written in one transaction.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::events::{now_ms, Event};
use crate::job::{JobState, JobView, Mode};

/// A database failure (disk full, corrupt file).
#[derive(Debug, thiserror::Error)]
#[error("job database: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

impl StoreError {
    /// Whether the database refused a write for lack of space (`SQLITE_FULL`: its disk is full,
    /// or it may grow no further).
    pub fn is_full(&self) -> bool {
        matches!(
            &self.0,
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

/// The job table and the outbox.
pub struct Store {
    conn: Connection,
}

/// How a job ended, decided when its worker was gone and kept until the job is concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The worker finished its output.
    Complete,
    /// The job failed; nothing was recovered.
    Failed,
    /// The job failed and its recording was repaired.
    Recovered,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "COMPLETE",
            Outcome::Failed => "FAILED",
            Outcome::Recovered => "RECOVERED",
        }
    }

    fn parse(text: &str) -> Option<Outcome> {
        match text {
            "COMPLETE" => Some(Outcome::Complete),
            "FAILED" => Some(Outcome::Failed),
            "RECOVERED" => Some(Outcome::Recovered),
            _ => None,
        }
    }
}

/// A job an earlier run of the service left unfinished.
#[derive(Debug, Clone)]
pub struct Unfinished {
    /// The job as stored.
    pub view: JobView,
    /// Its outcome and reason, if they were decided before the service stopped.
    pub decided: Option<(Outcome, Option<String>)>,
}

/// One event waiting to be delivered.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its place in the outbox; delivery is in this order.
    pub seq: i64,
    /// The event as JSON.
    pub body: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    file TEXT,
    rtmp TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    outcome TEXT,
    outcome_reason TEXT,
    file_bytes INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_update ON jobs (updated_ms);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    refused_status INTEGER NOT NULL,
    refused_ms INTEGER NOT NULL
);
";

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Composite => "composite",
        Mode::Tracks => "tracks",
    }
}

/// A state's place in the job's life, as the update statement's CASE ranks the stored one
/// (COMPLETE and FAILED share the last place).
fn state_rank(state: JobState) -> i64 {
    match state {
        JobState::Starting => 0,
        JobState::Active => 1,
        JobState::Ending | JobState::Complete | JobState::Failed => 2,
    }
}

fn row_to_view(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobView> {
    let mode: String = row.get("mode")?;
    let state: String = row.get("state")?;
    Ok(JobView {
        job_id: row.get("id")?,
        room_id: row.get("room_id")?,
        mode: if mode == "tracks" {
            Mode::Tracks
        } else {
            Mode::Composite
        },
        state: JobState::parse(&state).unwrap_or(JobState::Failed),
        reason: row.get("reason")?,
        file: row.get("file")?,
        file_bytes: row.get("file_bytes")?,
        rtmp: row.get("rtmp")?,
        created_ms: row.get("created_ms")?,
        updated_ms: row.get("updated_ms")?,
    })
}

impl Store {
    /// Opens (or creates) the database. WAL with full sync: an acknowledged job or event
    /// survives power loss.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Databases from before the decided outcome, and the size of a finished output, were
        // kept: their columns are added (empty, so older jobs have no size).
        for (column, add) in [
            (
                "outcome",
                "ALTER TABLE jobs ADD COLUMN outcome TEXT; \
                 ALTER TABLE jobs ADD COLUMN outcome_reason TEXT;",
            ),
            (
                "file_bytes",
                "ALTER TABLE jobs ADD COLUMN file_bytes INTEGER;",
            ),
        ] {
            let has_column: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
                [column],
                |row| row.get(0),
            )?;
            if !has_column {
                conn.execute_batch(add)?;
            }
        }
        Ok(Store { conn })
    }

    /// Keeps a job's decided final state (and its reason) while its output is still being
    /// delivered, so a restart in between reports what was decided instead of guessing from
    /// the files left behind.
    pub fn decide(
        &mut self,
        job_id: &str,
        outcome: Outcome,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET outcome = ?2, outcome_reason = ?3 WHERE id = ?1",
            params![job_id, outcome.as_str(), reason],
        )?;
        Ok(())
    }

    /// A job and the fingerprint of its start request.
    pub fn job(&self, id: &str) -> Result<Option<(JobView, String)>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT * FROM jobs WHERE id = ?1", [id], |row| {
                Ok((row_to_view(row)?, row.get("fingerprint")?))
            })
            .optional()?)
    }

    /// Records a new job and its first event together.
    pub fn insert(
        &mut self,
        job: &JobView,
        fingerprint: &str,
        event: Option<&Event>,
    ) -> Result<(), StoreError> {
        self.execute_with_events(
            "INSERT INTO jobs (id, room_id, mode, fingerprint, state, reason, file, rtmp, created_ms, updated_ms, file_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                job.job_id,
                job.room_id,
                mode_name(job.mode),
                fingerprint,
                job.state.as_str(),
                job.reason,
                job.file,
                job.rtmp,
                job.created_ms,
                job.updated_ms,
                job.file_bytes
            ],
            event.map(std::slice::from_ref).unwrap_or_default(),
        )
        .map(|_| ())
    }

    /// Deletes up to `limit` jobs that finished (COMPLETE or FAILED) before `before_ms`, the
    /// oldest first; how many. Running jobs and their events are never touched.
    pub fn forget_finished(&mut self, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
               WHERE state IN ('COMPLETE', 'FAILED') AND updated_ms < ?1 \
               ORDER BY updated_ms LIMIT ?2)",
            params![before_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
        )?)
    }

    /// Saves a job's new state, reason, file and its size together with the events that report
    /// it.
    /// States only go forward, and a job that reached COMPLETE or FAILED stays as it was: such
    /// an update (a late writer) changes nothing, queues no event and returns `false`.
    pub fn update(&mut self, job: &JobView, events: &[Event]) -> Result<bool, StoreError> {
        self.execute_with_events(
            "UPDATE jobs SET state = ?2, reason = ?3, file = ?4, updated_ms = ?5, file_bytes = ?7 \
             WHERE id = ?1 AND state NOT IN ('COMPLETE', 'FAILED') \
               AND (CASE state WHEN 'STARTING' THEN 0 WHEN 'ACTIVE' THEN 1 ELSE 2 END) <= ?6",
            params![
                job.job_id,
                job.state.as_str(),
                job.reason,
                job.file,
                job.updated_ms,
                state_rank(job.state),
                job.file_bytes
            ],
            events,
        )
    }

    /// Forgets where an ended job's output was and its size, once the output is deleted: the
    /// job stays (listed, and a start of its id returns it) with `file` and `file_bytes` empty.
    /// Whether the store holds such an ended job (`false`: unknown, or not ended).
    pub fn clear_output(&mut self, job_id: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE jobs SET file = NULL, file_bytes = NULL \
             WHERE id = ?1 AND state IN ('COMPLETE', 'FAILED')",
            [job_id],
        )? > 0)
    }

    /// One statement and the events that report it, in one transaction; the events only if the
    /// statement changed a row. Whether it did.
    fn execute_with_events(
        &mut self,
        sql: &str,
        params: impl rusqlite::Params,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let changed = tx.execute(sql, params)? > 0;
        if changed {
            for event in events {
                append(&tx, event)?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Queues an event on its own.
    pub fn append_event(&mut self, event: &Event) -> Result<(), StoreError> {
        append(&self.conn, event)
    }

    /// Jobs that had not ended when the service last stopped.
    pub fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT * FROM jobs WHERE state NOT IN ('COMPLETE', 'FAILED') ORDER BY created_ms",
        )?;
        let rows = stmt.query_map([], |row| {
            let outcome: Option<String> = row.get("outcome")?;
            Ok(Unfinished {
                view: row_to_view(row)?,
                decided: outcome.as_deref().and_then(Outcome::parse).map(|outcome| {
                    (
                        outcome,
                        row.get::<_, Option<String>>("outcome_reason")
                            .ok()
                            .flatten(),
                    )
                }),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The most recently changed jobs, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<JobView>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM jobs ORDER BY updated_ms DESC, id LIMIT ?1")?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], row_to_view)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The oldest undelivered events, in order.
    pub fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, body FROM outbox ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
            Ok(Pending {
                seq: row.get(0)?,
                body: row.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets delivered events, up to and including `seq`.
    pub fn delivered_through(&mut self, seq: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", [seq])?;
        Ok(())
    }

    /// How many events wait.
    pub fn backlog(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))?)
    }

    /// Moves the event `seq`, which the control plane refuses for good (`status`; 0 when the
    /// stored event is not even JSON), from the outbox to `dead_letter`, kept for an operator,
    /// so the events behind it go on.
    pub fn set_aside(&mut self, seq: i64, status: u16) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO dead_letter (seq, body, refused_status, refused_ms) \
             SELECT seq, body, ?2, ?3 FROM outbox WHERE seq = ?1",
            params![seq, status, now_ms()],
        )?;
        tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
        tx.commit()?;
        Ok(())
    }

    /// How many events were set aside as refused.
    pub fn set_aside_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM dead_letter", [], |row| row.get(0))?)
    }

    /// Tests: a full disk. The database is compacted (no free page left) and may not grow
    /// past its size, so a write that needs a new page fails with a genuine `SQLITE_FULL`; one
    /// that fits in the pages it has still succeeds, as on a full disk.
    #[cfg(test)]
    pub(crate) fn stop_growing(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("VACUUM")?;
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))?;
        self.set_max_pages(pages)
    }

    /// Tests: undoes [`Store::stop_growing`].
    #[cfg(test)]
    pub(crate) fn grow_again(&mut self) -> Result<(), StoreError> {
        self.set_max_pages(i64::from(u32::MAX - 1))
    }

    #[cfg(test)]
    fn set_max_pages(&mut self, pages: i64) -> Result<(), StoreError> {
        let set: i64 =
            self.conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| {
                    row.get(0)
                })?;
        assert_eq!(set, pages, "max_page_count");
        Ok(())
    }
}

fn append(conn: &Connection, event: &Event) -> Result<(), StoreError> {
    // Serialising our own plain structs cannot fail.
    let body = serde_json::to_string(event).unwrap_or_default();
    conn.execute("INSERT INTO outbox (body) VALUES (?1)", [body])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn view(id: &str, state: JobState) -> JobView {
        JobView {
            job_id: id.into(),
            room_id: "room".into(),
            mode: Mode::Composite,
            state,
            reason: None,
            file: Some(format!("/r/{id}.mp4")),
            file_bytes: None,
            rtmp: None,
            created_ms: 1,
            updated_ms: 1,
        }
    }

    #[test]
    fn state_changes_and_events_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("rec-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jobs.db");
        {
            let mut store = Store::open(&path).expect("open");
            let job = view("a", JobState::Starting);
            store
                .insert(&job, "fp", Some(&Event::new(EventKind::JobState, &job)))
                .expect("insert");
            let mut active = job.clone();
            active.state = JobState::Active;
            active.updated_ms = 2;
            store
                .update(&active, &[Event::new(EventKind::JobState, &active)])
                .expect("update");
        }
        let mut store = Store::open(&path).expect("reopen");
        let (job, fp) = store.job("a").expect("read").expect("job");
        assert_eq!((job.state, fp.as_str()), (JobState::Active, "fp"));
        assert_eq!(store.unfinished().expect("unfinished").len(), 1);
        assert!(store.unfinished().expect("unfinished")[0].decided.is_none());
        store
            .decide(
                "a",
                Outcome::Recovered,
                Some("the worker exited: signal: 9"),
            )
            .expect("decide");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        let left = store.unfinished().expect("unfinished");
        assert_eq!(
            left[0].decided,
            Some((
                Outcome::Recovered,
                Some("the worker exited: signal: 9".to_owned())
            ))
        );
        let mut store = store;
        let pending = store.pending(10).expect("pending");
        assert_eq!(pending.len(), 2);
        assert!(pending[0].seq < pending[1].seq);
        assert!(pending[1].body.contains("\"ACTIVE\""));
        store.delivered_through(pending[0].seq).expect("ack");
        assert_eq!(store.backlog().expect("backlog"), 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A completed job's output size is stored with it, listed after a restart, and in the
    /// COMPLETE event queued for the control plane.
    #[test]
    fn a_complete_jobs_size_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("rec-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jobs.db");
        {
            let mut store = Store::open(&path).expect("open");
            let job = view("sized", JobState::Active);
            store.insert(&job, "fp", None).expect("insert");
            let complete = JobView {
                state: JobState::Complete,
                file_bytes: Some(5_000_000_000),
                updated_ms: 2,
                ..job
            };
            assert!(store
                .update(&complete, &[Event::new(EventKind::JobState, &complete)])
                .expect("update"));
        }
        let store = Store::open(&path).expect("reopen");
        let (job, _) = store.job("sized").expect("read").expect("job");
        assert_eq!(
            (job.state, job.file_bytes),
            (JobState::Complete, Some(5_000_000_000))
        );
        assert_eq!(
            store.recent(10).expect("recent")[0].file_bytes,
            Some(5_000_000_000)
        );
        let pending = store.pending(10).expect("pending");
        let event: Event = serde_json::from_str(&pending[0].body).expect("event");
        assert_eq!(
            (event.job.state, event.job.file_bytes),
            (JobState::Complete, Some(5_000_000_000))
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A database from before the outcome and the size were kept opens: its jobs read without
    /// a size, and new ones keep theirs.
    #[test]
    fn an_older_database_gains_the_new_columns() {
        let dir = std::env::temp_dir().join(format!("rec-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jobs.db");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE jobs (id TEXT PRIMARY KEY, room_id TEXT NOT NULL, mode TEXT NOT NULL,
                     fingerprint TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, file TEXT,
                     rtmp TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
                 INSERT INTO jobs VALUES ('old', 'room', 'composite', 'fp', 'COMPLETE', NULL,
                     '/r/old.mp4', NULL, 1, 1);",
            )
            .expect("an older schema");
        }
        let mut store = Store::open(&path).expect("open an older database");
        let (old, _) = store.job("old").expect("read").expect("job");
        assert_eq!((old.state, old.file_bytes), (JobState::Complete, None));
        let new = JobView {
            file_bytes: Some(42),
            ..view("new", JobState::Complete)
        };
        store.insert(&new, "fp", None).expect("insert");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        let (kept, _) = store.job("new").expect("read").expect("job");
        assert_eq!(kept.file_bytes, Some(42));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// Finished jobs older than the cut-off go, oldest first and a batch at a time; running
    /// jobs and newer finished ones stay, and so do the events already queued.
    #[test]
    fn old_finished_jobs_are_forgotten_a_batch_at_a_time() {
        let dir = std::env::temp_dir().join(format!("rec-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut store = Store::open(&dir.join("jobs.db")).expect("open");
        let jobs = [
            ("done-1", JobState::Complete, 10),
            ("failed", JobState::Failed, 20),
            ("done-2", JobState::Complete, 30),
            ("running", JobState::Active, 5),
            ("ending", JobState::Ending, 5),
            ("recent", JobState::Complete, 500),
        ];
        for (id, state, updated_ms) in jobs {
            let mut job = view(id, state);
            job.updated_ms = updated_ms;
            store
                .insert(&job, "fp", Some(&Event::new(EventKind::JobState, &job)))
                .expect("insert");
        }
        assert_eq!(store.forget_finished(100, 2).expect("forget"), 2);
        let left = |store: &Store| {
            let mut ids: Vec<String> = jobs
                .iter()
                .filter(|(id, ..)| store.job(id).expect("read").is_some())
                .map(|(id, ..)| (*id).to_owned())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(left(&store), ["done-2", "ending", "recent", "running"]);
        assert_eq!(store.forget_finished(100, 20).expect("forget"), 1);
        assert_eq!(left(&store), ["ending", "recent", "running"]);
        assert_eq!(store.forget_finished(100, 20).expect("forget"), 0);
        assert_eq!(store.backlog().expect("backlog"), 6, "queued events stay");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// An event set aside leaves the outbox for `dead_letter`, whole, and the rest keep their
    /// order, across a reopening.
    #[test]
    fn a_refused_event_is_set_aside_and_kept() {
        let dir = std::env::temp_dir().join(format!("rec-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jobs.db");
        let mut store = Store::open(&path).expect("open");
        for id in ["a", "b", "c"] {
            store
                .append_event(&Event::new(
                    EventKind::JobState,
                    &view(id, JobState::Starting),
                ))
                .expect("append");
        }
        let pending = store.pending(10).expect("pending");
        store.set_aside(pending[1].seq, 400).expect("set aside");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        let left = store.pending(10).expect("pending");
        assert_eq!(
            left.iter().map(|p| p.seq).collect::<Vec<_>>(),
            [pending[0].seq, pending[2].seq]
        );
        assert_eq!(store.backlog().expect("backlog"), 2);
        assert_eq!(store.set_aside_count().expect("count"), 1);
        let (body, status): (String, u16) = store
            .conn
            .query_row(
                "SELECT body, refused_status FROM dead_letter WHERE seq = ?1",
                [pending[1].seq],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("dead letter row");
        assert_eq!((body.as_str(), status), (pending[1].body.as_str(), 400));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A database from before outcomes were kept gains the columns and keeps its jobs.
    #[test]
    fn an_older_database_is_migrated() {
        let dir = std::env::temp_dir().join(format!("rec-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jobs.db");
        let old = Connection::open(&path).expect("old");
        old.execute_batch(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, room_id TEXT NOT NULL, mode TEXT NOT NULL,
                 fingerprint TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, file TEXT,
                 rtmp TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
             INSERT INTO jobs VALUES ('old', 'r', 'composite', 'fp', 'ENDING', NULL, '/r/old.mp4',
                 NULL, 1, 1);",
        )
        .expect("old schema");
        drop(old);
        let mut store = Store::open(&path).expect("open and migrate");
        store
            .decide("old", Outcome::Failed, Some("why"))
            .expect("decide");
        let left = store.unfinished().expect("unfinished");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].view.job_id, "old");
        assert_eq!(
            left[0].decided,
            Some((Outcome::Failed, Some("why".to_owned())))
        );
        drop(store);
        Store::open(&path).expect("opening again is a no-op");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A store that may not grow refuses a change that needs new pages with SQLITE_FULL, whole
    /// (neither the state nor its event is kept), and takes it once it may grow again. Other
    /// failures are not taken for a full store.
    #[test]
    fn a_full_store_refuses_a_change_whole_and_takes_it_later() {
        let dir = std::env::temp_dir().join(format!("rec-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut store = Store::open(&dir.join("jobs.db")).expect("open");
        let active = view("a", JobState::Active);
        store
            .insert(
                &active,
                "fp",
                Some(&Event::new(EventKind::JobState, &active)),
            )
            .expect("insert");
        let duplicate = store.insert(&active, "fp", None).expect_err("duplicate id");
        assert!(!duplicate.is_full(), "{duplicate}");

        store.stop_growing().expect("stop growing");
        let failed = JobView {
            state: JobState::Failed,
            reason: Some("x".repeat(6000)),
            ..active.clone()
        };
        let event = Event::new(EventKind::JobState, &failed);
        let full = store
            .update(&failed, std::slice::from_ref(&event))
            .expect_err("a full store");
        assert!(full.is_full(), "{full}");
        let (kept, _) = store.job("a").expect("read").expect("job");
        assert_eq!(kept.state, JobState::Active);
        assert_eq!(store.backlog().expect("backlog"), 1);

        store.grow_again().expect("grow again");
        assert!(store.update(&failed, &[event]).expect("update"));
        let (kept, _) = store.job("a").expect("read").expect("job");
        assert_eq!((kept.state, kept.reason), (JobState::Failed, failed.reason));
        assert_eq!(store.backlog().expect("backlog"), 2);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A deleted output is forgotten for an ended job only, and stays forgotten after a
    /// reopening; the job itself stays.
    #[test]
    fn a_deleted_output_is_forgotten_for_ended_jobs_only() {
        let dir = std::env::temp_dir().join(format!("rec-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jobs.db");
        {
            let mut store = Store::open(&path).expect("open");
            let done = JobView {
                file_bytes: Some(42),
                ..view("done", JobState::Complete)
            };
            store.insert(&done, "fp", None).expect("insert");
            store
                .insert(&view("running", JobState::Active), "fp", None)
                .expect("insert");
            assert!(store.clear_output("done").expect("clear"));
            assert!(store.clear_output("done").expect("clear again"));
            assert!(!store.clear_output("running").expect("clear"));
            assert!(!store.clear_output("unknown").expect("clear"));
        }
        let store = Store::open(&path).expect("reopen");
        let (done, _) = store.job("done").expect("read").expect("job");
        assert_eq!(
            (done.state, done.file, done.file_bytes),
            (JobState::Complete, None, None)
        );
        let (running, _) = store.job("running").expect("read").expect("job");
        assert_eq!(running.file.as_deref(), Some("/r/running.mp4"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A late writer cannot move a job back, nor touch one that ended; it queues no event.
    #[test]
    fn states_only_go_forward() {
        let mut store = Store::open(Path::new(":memory:")).expect("open");
        let job = view("b", JobState::Starting);
        store.insert(&job, "fp", None).expect("insert");
        let at = |state| JobView {
            state,
            ..job.clone()
        };
        let event = |v: &JobView| Event::new(EventKind::JobState, v);
        for (state, stored) in [
            (JobState::Ending, true),
            (JobState::Active, false),
            (JobState::Ending, true),
            (JobState::Complete, true),
            (JobState::Ending, false),
            (JobState::Failed, false),
        ] {
            let v = at(state);
            assert_eq!(
                store.update(&v, &[event(&v)]).expect("update"),
                stored,
                "{state:?}"
            );
        }
        let (stored, _) = store.job("b").expect("read").expect("job");
        assert_eq!(stored.state, JobState::Complete);
        let states: Vec<bool> = store
            .pending(10)
            .expect("pending")
            .iter()
            .map(|e| e.body.contains("COMPLETE"))
            .collect();
        assert_eq!(
            states,
            [false, false, true],
            "ENDING, ENDING, COMPLETE queued"
        );
    }
}
