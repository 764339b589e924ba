//! The durable webhook outbox (SQLite). An accepted webhook is committed here, fsync'd, before
//! LiveKit gets its 200; it leaves only when the edge has acknowledged it. Events keep their
//! arrival order (`seq`), and LiveKit's own retries of an event still waiting are ignored by its
//! event id. (A repeat that arrives after the event was delivered and deleted is forwarded
//! again; the edge drops it by the same id.)
//!
//! A batch the edge refuses as malformed (400) even when it holds a single event would block
//! everything behind it; such an event is moved to `dead_letter`, kept for an operator rather
//! than lost.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

/// A database failure (disk full, corrupt file).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// SQLite failed.
    #[error("outbox database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task running the query panicked, or a previous one did while holding it.
    #[error("outbox database: the worker thread failed")]
    Worker,
}

/// One event waiting to be forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its place in the outbox; forwarding is in this order.
    pub seq: i64,
    /// LiveKit's event id.
    pub event_id: String,
    /// The event's JSON exactly as LiveKit posted it.
    pub body: String,
}

/// The outbox: one SQLite connection.
pub struct Outbox {
    conn: Connection,
    /// Events waiting, counted once at open and then kept by every change: a `COUNT(*)` on
    /// every webhook would scan a backlog of millions after a long edge outage.
    depth: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS drain_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    deadline_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS write_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    refused_status INTEGER NOT NULL,
    refused_ms INTEGER NOT NULL
);
";

impl Outbox {
    /// Opens (or creates) the outbox. WAL with `synchronous=FULL`: a committed event survives
    /// a crash or a power loss.
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let depth: i64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))?;
        Ok(Outbox {
            conn,
            depth: u64::try_from(depth).unwrap_or(0),
        })
    }

    /// Appends an event unless one with the same id is already waiting. Returns whether it was
    /// new. Committed (and synced) when this returns.
    pub fn append(&mut self, event_id: &str, body: &str) -> Result<bool, OutboxError> {
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO outbox (event_id, body, received_ms) VALUES (?1, ?2, ?3)",
            params![event_id, body, now_ms()],
        )?;
        self.depth += inserted as u64;
        Ok(inserted == 1)
    }

    /// The oldest waiting events, oldest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<Pending>, OutboxError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, event_id, body FROM outbox ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
            Ok(Pending {
                seq: row.get(0)?,
                event_id: row.get(1)?,
                body: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets acknowledged events: every one up to and including `seq`. Batches are always the
    /// oldest events, so this removes exactly the acknowledged batch.
    pub fn ack_through(&mut self, seq: i64) -> Result<usize, OutboxError> {
        let deleted = self
            .conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", [seq])?;
        self.depth = self.depth.saturating_sub(deleted as u64);
        Ok(deleted)
    }

    /// Moves one event the edge refuses outright (`status`) to the dead-letter table.
    pub fn dead_letter(&mut self, seq: i64, status: u16) -> Result<(), OutboxError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO dead_letter (seq, event_id, body, received_ms, refused_status, refused_ms)
             SELECT seq, event_id, body, received_ms, ?2, ?3 FROM outbox WHERE seq = ?1",
            params![seq, status, now_ms()],
        )?;
        let deleted = tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
        tx.commit()?;
        self.depth = self.depth.saturating_sub(deleted as u64);
        Ok(())
    }

    /// How many events wait.
    pub fn depth(&self) -> Result<u64, OutboxError> {
        Ok(self.depth)
    }

    /// Checks that the outbox can take a write now: commits (and syncs) a one-row write, as
    /// [`Outbox::append`] does. It fails as an event's write would, on a write lock held past
    /// the busy timeout, a full disk or a read-only file.
    pub fn check_writable(&mut self) -> Result<(), OutboxError> {
        self.conn.execute(
            "INSERT INTO write_check (id, at_ms) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
            [now_ms()],
        )?;
        Ok(())
    }

    /// Remembers that the region drains until `deadline_ms` (Unix ms), so a sidecar that
    /// crashes mid-drain drains again when it comes back.
    pub fn save_drain(&mut self, deadline_ms: i64) -> Result<(), OutboxError> {
        self.conn.execute(
            "INSERT INTO drain_state (id, deadline_ms) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET deadline_ms = excluded.deadline_ms",
            [deadline_ms],
        )?;
        Ok(())
    }

    /// The deadline of a drain a previous run did not finish, if any.
    pub fn saved_drain(&self) -> Result<Option<i64>, OutboxError> {
        Ok(self
            .conn
            .query_row(
                "SELECT deadline_ms FROM drain_state WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Forgets the drain: it ended (the sidecar left or was told to quit).
    pub fn clear_drain(&mut self) -> Result<(), OutboxError> {
        self.conn.execute("DELETE FROM drain_state", [])?;
        Ok(())
    }

    /// How many events were set aside as refused.
    pub fn dead_letters(&self) -> Result<u64, OutboxError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM dead_letter", [], |row| row.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// The outbox shared by the webhook handler, the relay and the heartbeat; each call runs on
/// tokio's blocking pool, since a commit waits for the disk.
#[derive(Clone)]
pub struct SharedOutbox(Arc<Mutex<Outbox>>);

impl SharedOutbox {
    /// Shares `outbox`.
    pub fn new(outbox: Outbox) -> SharedOutbox {
        SharedOutbox(Arc::new(Mutex::new(outbox)))
    }

    /// Runs `f` on the outbox on the blocking pool.
    pub async fn with<T, F>(&self, f: F) -> Result<T, OutboxError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Outbox) -> Result<T, OutboxError> + Send + 'static,
    {
        let shared = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || {
            let mut outbox = shared.lock().map_err(|_| OutboxError::Worker)?;
            f(&mut outbox)
        })
        .await
        .map_err(|_| OutboxError::Worker)?
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Outbox::open(&dir.path().join("outbox.db")).expect("open");
        (dir, outbox)
    }

    fn ids(pending: &[Pending]) -> Vec<&str> {
        pending.iter().map(|p| p.event_id.as_str()).collect()
    }

    #[test]
    fn events_come_out_in_arrival_order() {
        let (_dir, mut outbox) = open();
        for id in ["EV_c", "EV_a", "EV_b"] {
            assert!(outbox
                .append(id, &format!(r#"{{"id":"{id}"}}"#))
                .expect("append"));
        }
        let pending = outbox.pending(10).expect("pending");
        assert_eq!(ids(&pending), ["EV_c", "EV_a", "EV_b"]);
        assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(pending[1].body, r#"{"id":"EV_a"}"#);
        assert_eq!(ids(&outbox.pending(2).expect("pending")), ["EV_c", "EV_a"]);
    }

    #[test]
    fn a_repeated_event_id_is_ignored_while_waiting() {
        let (_dir, mut outbox) = open();
        assert!(outbox.append("EV_1", "{\"n\":1}").expect("append"));
        assert!(outbox.append("EV_2", "{}").expect("append"));
        assert!(!outbox.append("EV_1", "{\"n\":2}").expect("retry"));
        let pending = outbox.pending(10).expect("pending");
        assert_eq!(ids(&pending), ["EV_1", "EV_2"]);
        assert_eq!(pending[0].body, "{\"n\":1}");
        assert_eq!(outbox.depth().expect("depth"), 2);
    }

    #[test]
    fn only_acknowledged_events_are_deleted() {
        let (_dir, mut outbox) = open();
        for i in 0..5 {
            outbox.append(&format!("EV_{i}"), "{}").expect("append");
        }
        let batch = outbox.pending(3).expect("pending");
        // A new event arriving while the batch is in flight is not part of the acknowledgement.
        outbox.append("EV_late", "{}").expect("append");
        assert_eq!(outbox.ack_through(batch[2].seq).expect("ack"), 3);
        assert_eq!(
            ids(&outbox.pending(10).expect("pending")),
            ["EV_3", "EV_4", "EV_late"]
        );
        assert_eq!(outbox.depth().expect("depth"), 3);
    }

    #[test]
    fn a_refused_event_moves_to_dead_letter() {
        let (_dir, mut outbox) = open();
        outbox.append("EV_bad", "{}").expect("append");
        outbox.append("EV_good", "{}").expect("append");
        let bad = outbox.pending(1).expect("pending")[0].seq;
        outbox.dead_letter(bad, 400).expect("dead letter");
        assert_eq!(ids(&outbox.pending(10).expect("pending")), ["EV_good"]);
        assert_eq!(outbox.dead_letters().expect("count"), 1);
        assert_eq!(outbox.depth().expect("depth"), 1);
    }

    #[test]
    fn a_write_lock_held_elsewhere_fails_the_write_check_until_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outbox.db");
        let mut outbox = Outbox::open(&path).expect("open");
        outbox.check_writable().expect("writable");
        outbox
            .conn
            .busy_timeout(Duration::from_millis(50))
            .expect("busy timeout");
        let other = Connection::open(&path).expect("open again");
        other.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        assert!(outbox.check_writable().is_err());
        other.execute_batch("ROLLBACK").expect("unlock");
        outbox.check_writable().expect("writable again");
        // Nothing an event needs was touched.
        assert_eq!(outbox.depth().expect("depth"), 0);
        assert!(outbox.pending(10).expect("pending").is_empty());
    }

    #[test]
    fn the_outbox_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outbox.db");
        {
            let mut outbox = Outbox::open(&path).expect("open");
            outbox.append("EV_1", "{\"a\":1}").expect("append");
            outbox.append("EV_2", "{\"a\":2}").expect("append");
            let first = outbox.pending(1).expect("pending")[0].seq;
            outbox.ack_through(first).expect("ack");
        }
        let mut outbox = Outbox::open(&path).expect("reopen");
        assert_eq!(ids(&outbox.pending(10).expect("pending")), ["EV_2"]);
        // Order continues after the restart.
        outbox.append("EV_3", "{}").expect("append");
        assert_eq!(ids(&outbox.pending(10).expect("pending")), ["EV_2", "EV_3"]);
        // The depth is counted again at open, then kept.
        assert_eq!(outbox.depth().expect("depth"), 2);
        let mode: String = outbox
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        let sync: i64 = outbox
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        assert_eq!((mode.as_str(), sync), ("wal", 2));
    }
}
