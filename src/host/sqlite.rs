//! `spin:sqlite/sqlite@3.1.0` over rusqlite.
//!
//! Every configured database keeps a small pool of rusqlite connections (WAL mode,
//! 5 s busy timeout, foreign keys on). A guest `connection` resource does not own a
//! pooled connection: each `execute` checks one out for the length of the statement.
//! Because of that, `changes` and `last-insert-rowid` are tracked per guest resource
//! and updated after each statement, rather than read from the shared connection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{OpenFlags, ToSql};
use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::bindings::sqlite::{self, Error, QueryResult, RowResult, Value};
use super::state::{Spin, SpinView};

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per database.
const MAX_IDLE_CONNECTIONS: usize = 8;
/// Prepared statements cached per connection.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// The configured databases, by the name a guest passes to `open`.
#[derive(Default)]
pub(crate) struct Databases {
    by_name: BTreeMap<String, Arc<Database>>,
}

impl Databases {
    /// Opens every configured database once (creating the file if needed) and runs the
    /// migrations on it, in order.
    pub(crate) fn open(
        databases: &BTreeMap<String, PathBuf>,
        migrations: &[(PathBuf, String)],
    ) -> anyhow::Result<Self> {
        let mut by_name = BTreeMap::new();
        for (name, path) in databases {
            let db = Database::new(path);
            let conn = db.checkout().with_context(|| {
                format!("opening sqlite database {name:?} at {}", path.display())
            })?;
            for (file, sql) in migrations {
                conn.execute_batch(sql).with_context(|| {
                    format!("running migration {} on database {name:?}", file.display())
                })?;
            }
            db.checkin(conn);
            tracing::info!(target: "edgemeet::host", database = %name, path = %path.display(), migrations = migrations.len(), "sqlite database ready");
            by_name.insert(name.clone(), Arc::new(db));
        }
        Ok(Self { by_name })
    }

    fn get(&self, name: &str) -> Option<Arc<Database>> {
        self.by_name.get(name).cloned()
    }
}

/// One database file and its pool of idle connections.
pub(crate) struct Database {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl Database {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn connect(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // The guest's SQL runs as given: without this, `ATTACH '/any/path'` (or `VACUUM INTO`,
        // which attaches) would let it create or change any file this process can, past the
        // read-only file system it is given.
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        // `journal_mode` answers with a row, so it is read rather than executed.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        Ok(conn)
    }

    /// Takes an idle connection, or opens a new one.
    fn checkout(&self) -> rusqlite::Result<rusqlite::Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    /// Returns a connection to the pool. One still inside a transaction is rolled
    /// back first (or dropped if that fails), so a transaction never leaks to
    /// another guest.
    fn checkin(&self, conn: rusqlite::Connection) {
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }
}

/// The state behind a guest's `spin:sqlite/sqlite.connection` resource.
pub struct GuestConnection {
    db: Arc<Database>,
    /// The pooled connection this resource holds while the guest has a transaction
    /// open on it (`BEGIN` ... `COMMIT` spans several `execute` calls).
    pinned: Option<rusqlite::Connection>,
    last_insert_rowid: i64,
    changes: u64,
}

impl Drop for GuestConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.pinned.take() {
            self.db.checkin(conn);
        }
    }
}

/// What one statement produced, and the resource's counters after it.
#[derive(Debug)]
pub(crate) struct Executed {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<RowResult>,
    pub(crate) last_insert_rowid: i64,
    pub(crate) changes: u64,
}

/// Everything needed to run one statement for a guest resource, detached from the
/// store so that it can move to a blocking thread.
pub(crate) struct Job {
    db: Arc<Database>,
    pinned: Option<rusqlite::Connection>,
    last_insert_rowid: i64,
    changes: u64,
}

impl Job {
    /// Runs `statement` on the resource's pinned connection or a pooled one. Returns
    /// the outcome and the connection to keep pinned (if a transaction is open).
    pub(crate) fn run(
        self,
        statement: &str,
        params: &[Value],
    ) -> (Result<Executed, Error>, Option<rusqlite::Connection>) {
        let conn = match self.pinned {
            Some(conn) => conn,
            None => match self.db.checkout() {
                Ok(conn) => conn,
                Err(e) => return (Err(error_from_sql(e)), None),
            },
        };
        let result = execute_on(
            &conn,
            statement,
            params,
            self.last_insert_rowid,
            self.changes,
        );
        if conn.is_autocommit() {
            self.db.checkin(conn);
            (result, None)
        } else {
            (result, Some(conn))
        }
    }
}

/// A guest parameter, bound without copying.
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::Null => ValueRef::Null,
        }))
    }
}

/// Converts a column value read by rusqlite into the WIT `value`.
pub(crate) fn value_from_sql(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// Maps a rusqlite error onto the WIT `error`.
pub(crate) fn error_from_sql(err: rusqlite::Error) -> Error {
    match &err {
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull => {
            Error::DatabaseFull
        }
        _ => Error::Io(err.to_string()),
    }
}

/// The first keyword of a statement, lowercased (comments are not skipped).
fn leading_keyword(statement: &str) -> String {
    statement
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Runs one statement on `conn`.
///
/// `last_insert_rowid` and `changes` are the guest resource's counters before the
/// statement; the returned ones are the counters after it.
fn execute_on(
    conn: &rusqlite::Connection,
    statement: &str,
    params: &[Value],
    last_insert_rowid: i64,
    changes: u64,
) -> Result<Executed, Error> {
    let rowid_before = conn.last_insert_rowid();
    let total_before = conn.total_changes();

    let mut stmt = conn.prepare_cached(statement).map_err(error_from_sql)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let column_count = columns.len();
    let readonly = stmt.readonly();
    let mut rows = Vec::new();
    {
        let mut cursor = stmt
            .query(rusqlite::params_from_iter(params.iter().map(Param)))
            .map_err(error_from_sql)?;
        while let Some(row) = cursor.next().map_err(error_from_sql)? {
            let mut values = Vec::with_capacity(column_count);
            for i in 0..column_count {
                values.push(value_from_sql(row.get_ref(i).map_err(error_from_sql)?));
            }
            rows.push(RowResult { values });
        }
    }
    drop(stmt);

    let mut out = Executed {
        columns,
        rows,
        last_insert_rowid,
        changes,
    };
    if !readonly {
        let keyword = leading_keyword(statement);
        let wrote = conn.total_changes() != total_before;
        let dml = matches!(keyword.as_str(), "insert" | "replace" | "update" | "delete");
        if dml || wrote {
            out.changes = conn.changes();
        }
        let rowid_after = conn.last_insert_rowid();
        if rowid_after != rowid_before
            || (wrote && matches!(keyword.as_str(), "insert" | "replace"))
        {
            out.last_insert_rowid = rowid_after;
        }
    }
    Ok(out)
}

impl SpinView<'_> {
    fn open_connection(
        &mut self,
        database: &str,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        let Some(db) = self.shared.databases.get(database) else {
            return Ok(Err(Error::NoSuchDatabase));
        };
        let resource = self.table.push(GuestConnection {
            db,
            pinned: None,
            last_insert_rowid: 0,
            changes: 0,
        })?;
        Ok(Ok(resource))
    }

    /// Detaches what a statement needs from the resource (taking its pinned
    /// connection, if any).
    fn job(&mut self, conn: &Resource<GuestConnection>) -> wasmtime::Result<Job> {
        let c = self.table.get_mut(conn)?;
        Ok(Job {
            db: c.db.clone(),
            pinned: c.pinned.take(),
            last_insert_rowid: c.last_insert_rowid,
            changes: c.changes,
        })
    }

    /// Stores a statement's outcome back into the resource.
    fn finish(
        &mut self,
        conn: &Resource<GuestConnection>,
        result: &Result<Executed, Error>,
        pinned: Option<rusqlite::Connection>,
    ) -> wasmtime::Result<()> {
        let c = self.table.get_mut(conn)?;
        if let Ok(executed) = result {
            c.last_insert_rowid = executed.last_insert_rowid;
            c.changes = executed.changes;
        }
        if let Some(extra) = std::mem::replace(&mut c.pinned, pinned) {
            // Only possible with overlapping statements on one resource.
            c.db.checkin(extra);
        }
        Ok(())
    }
}

impl sqlite::Host for SpinView<'_> {}

impl sqlite::HostConnection for SpinView<'_> {
    fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        self.open_connection(&database)
    }

    fn execute(
        &mut self,
        conn: Resource<GuestConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        let job = self.job(&conn)?;
        let (result, pinned) = job.run(&statement, &parameters);
        self.finish(&conn, &result, pinned)?;
        Ok(result.map(|executed| QueryResult {
            columns: executed.columns,
            rows: executed.rows,
        }))
    }

    fn last_insert_rowid(&mut self, conn: Resource<GuestConnection>) -> wasmtime::Result<i64> {
        Ok(self.table.get(&conn)?.last_insert_rowid)
    }

    fn changes(&mut self, conn: Resource<GuestConnection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&conn)?.changes)
    }

    fn drop(&mut self, conn: Resource<GuestConnection>) -> wasmtime::Result<()> {
        // `GuestConnection`'s own `Drop` returns a pinned connection to the pool.
        self.table.delete(conn)?;
        Ok(())
    }
}

impl<T> sqlite::HostConnectionWithStore<T> for Spin {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        accessor.with(|mut access| access.get().open_connection(&database))
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<GuestConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<String>,
                StreamReader<RowResult>,
                FutureReader<Result<(), Error>>,
            ),
            Error,
        >,
    > {
        let job = accessor.with(|mut access| access.get().job(&conn))?;
        // Runs on the async worker: a statement on a local WAL database takes microseconds,
        // readers never wait, and a writer waits at most the busy timeout. Handing each
        // statement to a blocking thread cost more than the statement itself (two thread
        // switches per call; see docs/benchmarks.md).
        let (result, pinned) = job.run(&statement, &parameters);
        accessor.with(|mut access| {
            access.get().finish(&conn, &result, pinned)?;
            let executed = match result {
                Ok(executed) => executed,
                Err(e) => return Ok(Err(e)),
            };
            let rows = StreamReader::new(&mut access, executed.rows)?;
            let done = FutureReader::new(&mut access, async {
                wasmtime::Result::<Result<(), Error>>::Ok(Ok(()))
            })?;
            Ok(Ok((executed.columns, rows, done)))
        })
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<GuestConnection>,
    ) -> wasmtime::Result<i64> {
        accessor.with(|mut access| Ok(access.get().table.get(&conn)?.last_insert_rowid))
    }

    async fn changes_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<GuestConnection>,
    ) -> wasmtime::Result<u64> {
        accessor.with(|mut access| Ok(access.get().table.get(&conn)?.changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a statement as a fresh guest resource with the given counters would.
    fn execute(
        db: &Arc<Database>,
        statement: &str,
        params: &[Value],
        last_insert_rowid: i64,
        changes: u64,
    ) -> Result<Executed, Error> {
        let job = Job {
            db: db.clone(),
            pinned: None,
            last_insert_rowid,
            changes,
        };
        let (result, pinned) = job.run(statement, params);
        if let Some(conn) = pinned {
            db.checkin(conn);
        }
        result
    }

    #[test]
    fn a_transaction_pins_the_connection_until_commit() {
        let (dir, dbs) = temp_db("tx");
        let db = dbs.get("default").unwrap();
        let mut guest = GuestConnection {
            db: db.clone(),
            pinned: None,
            last_insert_rowid: 0,
            changes: 0,
        };
        let step = |guest: &mut GuestConnection, sql: &str| {
            let job = Job {
                db: guest.db.clone(),
                pinned: guest.pinned.take(),
                last_insert_rowid: guest.last_insert_rowid,
                changes: guest.changes,
            };
            let (result, pinned) = job.run(sql, &[]);
            guest.pinned = pinned;
            let executed = result.unwrap();
            guest.last_insert_rowid = executed.last_insert_rowid;
            guest.changes = executed.changes;
            executed
        };
        step(&mut guest, "BEGIN");
        assert!(guest.pinned.is_some());
        step(&mut guest, "INSERT INTO t (name) VALUES ('in-tx')");
        // Another user of the pool does not see the uncommitted row.
        let other = execute(&db, "SELECT count(*) FROM t", &[], 0, 0).unwrap();
        assert!(matches!(other.rows[0].values[0], Value::Integer(0)));
        step(&mut guest, "COMMIT");
        assert!(guest.pinned.is_none());
        assert_eq!((guest.changes, guest.last_insert_rowid), (1, 1));
        let after = execute(&db, "SELECT count(*) FROM t", &[], 0, 0).unwrap();
        assert!(matches!(after.rows[0].values[0], Value::Integer(1)));

        // Dropping a resource mid-transaction rolls the transaction back.
        step(&mut guest, "BEGIN");
        step(&mut guest, "INSERT INTO t (name) VALUES ('abandoned')");
        drop(guest);
        let end = execute(&db, "SELECT count(*) FROM t", &[], 0, 0).unwrap();
        assert!(matches!(end.rows[0].values[0], Value::Integer(1)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn temp_db(tag: &str) -> (PathBuf, Databases) {
        let dir = std::env::temp_dir().join(format!(
            "edgemeet-sqlite-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("default.db");
        let dbs = Databases::open(
            &BTreeMap::from([("default".to_string(), path.clone())]),
            &[(
                PathBuf::from("0001.sql"),
                "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, data BLOB);
                 CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, t_id INTEGER NOT NULL REFERENCES t(id));"
                    .to_string(),
            )],
        )
        .unwrap();
        (dir, dbs)
    }

    #[test]
    fn migrations_are_rerunnable_and_pragmas_apply() {
        let (dir, dbs) = temp_db("pragmas");
        // Opening again re-runs the (idempotent) migrations.
        let again = Databases::open(
            &BTreeMap::from([("default".to_string(), dir.join("default.db"))]),
            &[(
                PathBuf::from("0001.sql"),
                "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY);".into(),
            )],
        );
        assert!(again.is_ok());
        let db = dbs.get("default").unwrap();
        let mode = execute(&db, "PRAGMA journal_mode", &[], 0, 0).unwrap();
        assert!(matches!(&mode.rows[0].values[0], Value::Text(m) if m == "wal"));
        let fk = execute(&db, "PRAGMA foreign_keys", &[], 0, 0).unwrap();
        assert!(matches!(mode.columns.len(), 1));
        assert!(matches!(fk.rows[0].values[0], Value::Integer(1)));
        // Foreign keys are enforced.
        let err = execute(&db, "INSERT INTO child (t_id) VALUES (42)", &[], 0, 0).unwrap_err();
        assert!(
            matches!(err, Error::Io(ref m) if m.contains("FOREIGN KEY")),
            "{err:?}"
        );
        assert!(dbs.get("nope").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn binds_every_value_kind_and_reads_it_back() {
        let (dir, dbs) = temp_db("values");
        let db = dbs.get("default").unwrap();
        let params = vec![
            Value::Text("ada".into()),
            Value::Real(1.5),
            Value::Blob(vec![0, 1, 255]),
        ];
        let ins = execute(
            &db,
            "INSERT INTO t (name, score, data) VALUES (?, ?, ?)",
            &params,
            0,
            0,
        )
        .unwrap();
        assert_eq!(ins.changes, 1);
        assert_eq!(ins.last_insert_rowid, 1);
        assert!(ins.rows.is_empty());
        let ins2 = execute(
            &db,
            "INSERT INTO t (name, score, data) VALUES (?1, ?2, ?3)",
            &[Value::Text("bob".into()), Value::Null, Value::Null],
            ins.last_insert_rowid,
            ins.changes,
        )
        .unwrap();
        assert_eq!(ins2.last_insert_rowid, 2);

        let sel = execute(
            &db,
            "SELECT id, name, score, data FROM t WHERE id >= ? ORDER BY id",
            &[Value::Integer(1)],
            0,
            0,
        )
        .unwrap();
        assert_eq!(sel.columns, ["id", "name", "score", "data"]);
        assert_eq!(sel.rows.len(), 2);
        let r0 = &sel.rows[0].values;
        assert!(matches!(r0[0], Value::Integer(1)));
        assert!(matches!(&r0[1], Value::Text(s) if s == "ada"));
        assert!(matches!(r0[2], Value::Real(f) if f == 1.5));
        assert!(matches!(&r0[3], Value::Blob(b) if b == &[0, 1, 255]));
        let r1 = &sel.rows[1].values;
        assert!(matches!(r1[2], Value::Null));
        assert!(matches!(r1[3], Value::Null));
        // A SELECT leaves the counters of the resource alone.
        assert_eq!(sel.changes, 0);
        assert_eq!(sel.last_insert_rowid, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn counters_follow_the_guest_resource_not_the_pooled_connection() {
        let (dir, dbs) = temp_db("counters");
        let db = dbs.get("default").unwrap();
        for name in ["a", "b", "c"] {
            execute(
                &db,
                "INSERT INTO t (name) VALUES (?)",
                &[Value::Text(name.into())],
                0,
                0,
            )
            .unwrap();
        }
        // Resource A: an UPDATE of 3 rows.
        let a = execute(&db, "UPDATE t SET score = 2.0", &[], 0, 0).unwrap();
        assert_eq!(a.changes, 3);
        assert_eq!(a.last_insert_rowid, 0);
        // Resource B inserts on the same pooled connection afterwards.
        let b = execute(&db, "INSERT INTO t (name) VALUES ('d')", &[], 0, 0).unwrap();
        assert_eq!((b.changes, b.last_insert_rowid), (1, 4));
        // Resource A runs DDL and a SELECT: its counters stay its own.
        let a2 = execute(
            &db,
            "CREATE TABLE IF NOT EXISTS other (x)",
            &[],
            a.last_insert_rowid,
            a.changes,
        )
        .unwrap();
        assert_eq!((a2.changes, a2.last_insert_rowid), (3, 0));
        // An UPDATE matching nothing reports 0 changes.
        let a3 = execute(
            &db,
            "UPDATE t SET score = 1 WHERE id = 999",
            &[],
            a2.last_insert_rowid,
            a2.changes,
        )
        .unwrap();
        assert_eq!(a3.changes, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn errors_map_to_io_and_open_transactions_do_not_leak() {
        let (dir, dbs) = temp_db("errors");
        let db = dbs.get("default").unwrap();
        assert!(matches!(
            execute(&db, "SELEKT 1", &[], 0, 0),
            Err(Error::Io(_))
        ));
        assert!(matches!(
            execute(&db, "SELECT ?", &[Value::Null, Value::Null], 0, 0),
            Err(Error::Io(_))
        ));
        // A resource that began a transaction and went away: its connection was
        // rolled back before returning to the pool, so the next user is in
        // autocommit mode and its insert is committed at once.
        execute(&db, "BEGIN", &[], 0, 0).unwrap();
        execute(&db, "INSERT INTO t (name) VALUES ('tx')", &[], 0, 0).unwrap();
        let conn = db.checkout().unwrap();
        assert!(conn.is_autocommit());
        db.checkin(conn);
        let count = execute(&db, "SELECT count(*) FROM t", &[], 0, 0).unwrap();
        assert!(matches!(count.rows[0].values[0], Value::Integer(1)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The guest's SQL cannot reach other files: ATTACH and VACUUM INTO are refused and
    /// create nothing.
    #[test]
    fn the_guest_cannot_attach_or_vacuum_into_other_files() {
        let (dir, dbs) = temp_db("attach");
        let db = dbs.get("default").unwrap();
        let elsewhere = dir.join("elsewhere.db");
        for statement in [
            format!("ATTACH DATABASE '{}' AS x", elsewhere.display()),
            format!("ATTACH DATABASE 'file:{}' AS x", elsewhere.display()),
            format!("VACUUM INTO '{}'", elsewhere.display()),
        ] {
            assert!(
                execute(&db, &statement, &[], 0, 0).is_err(),
                "{statement} was allowed"
            );
            assert!(!elsewhere.exists(), "{statement} created a file");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn text_and_keyword_helpers() {
        assert_eq!(leading_keyword("  \n Insert into t"), "insert");
        assert_eq!(leading_keyword("(select 1)"), "");
        assert!(
            matches!(value_from_sql(ValueRef::Text(b"h\xffi")), Value::Text(s) if s == "h\u{fffd}i")
        );
        assert!(matches!(
            error_from_sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None
            )),
            Error::DatabaseFull
        ));
    }
}
