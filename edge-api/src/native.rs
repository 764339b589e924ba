//! The platform traits natively: SQLite through rusqlite and the system clock. For tests,
//! benchmarks and native tools; the edge targets use their own adapters ([`crate::spin`]).

use std::sync::Mutex;

pub use crate::platform::SystemClock;
use crate::platform::{Rows, SqlValue, Store, StoreError};

/// A SQLite database through rusqlite, with the local host's pragmas and the edge's schema.
pub struct SqliteStore(Mutex<rusqlite::Connection>);

impl SqliteStore {
    /// Opens (or creates) the database at `path` and applies the schema.
    pub fn open(path: &std::path::Path) -> Result<SqliteStore, StoreError> {
        Self::prepare(rusqlite::Connection::open(path).map_err(store_error)?)
    }

    /// A private in-memory database with the schema.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::prepare(rusqlite::Connection::open_in_memory().map_err(store_error)?)
    }

    fn prepare(conn: rusqlite::Connection) -> Result<SqliteStore, StoreError> {
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(store_error)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(store_error)?;
        conn.execute_batch(crate::db::SCHEMA).map_err(store_error)?;
        Ok(SqliteStore(Mutex::new(conn)))
    }

    /// Runs raw SQL (a test or tool looking at the tables directly).
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.lock().execute_batch(sql).map_err(store_error)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn store_error(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

impl Store for SqliteStore {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        use rusqlite::types::Value;
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(store_error)?;
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let values = params.iter().map(|p| match p {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(i) => Value::Integer(*i),
            SqlValue::Real(f) => Value::Real(*f),
            SqlValue::Text(s) => Value::Text(s.clone()),
            SqlValue::Blob(b) => Value::Blob(b.clone()),
        });
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values))
            .map_err(store_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(store_error)? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(match row.get::<_, Value>(i).map_err(store_error)? {
                    Value::Null => SqlValue::Null,
                    Value::Integer(i) => SqlValue::Integer(i),
                    Value::Real(f) => SqlValue::Real(f),
                    Value::Text(s) => SqlValue::Text(s),
                    Value::Blob(b) => SqlValue::Blob(b),
                });
            }
            out.push(values);
        }
        Ok(Rows { columns, rows: out })
    }
}
