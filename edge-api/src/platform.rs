//! The four small traits an edge platform implements: SQL store, outbound HTTP, clock and
//! configuration source. Everything else in this crate is pure logic over them.
//!
//! The traits use `async fn` without `Send` bounds on purpose: every edge target (Spin's WASI
//! p3, Workers, the wasmtime host's guest) runs a request on one thread.
#![allow(async_fn_in_trait)]

use thiserror::Error;

/// One SQL value, in SQLite's five storage classes (what Spin sqlite and D1 both speak).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
/// A count past SQLite's largest integer is stored as that largest integer.
impl From<u64> for SqlValue {
    fn from(v: u64) -> Self {
        SqlValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// The rows a statement returned (empty for statements without `RETURNING`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One vector of values per row, in column order.
    pub rows: Vec<Vec<SqlValue>>,
}

/// A failure of the SQL store, with the store's own message (no secrets pass through SQL).
#[derive(Debug, Error)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

/// A SQL database in SQLite's dialect: Spin sqlite, Cloudflare D1, or rusqlite in tests.
pub trait Store {
    /// Executes one statement with positional `?` parameters and returns its rows.
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError>;
}

/// A borrowed store is a store (an edge built per request over a shared database).
impl<T: Store + ?Sized> Store for &T {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        (**self).execute(sql, params).await
    }
}

/// An HTTP request the edge sends (to LiveKit, later to webhooks and recorders).
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// HTTP method, e.g. "POST".
    pub method: http::Method,
    /// Absolute URL.
    pub url: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// The longest the platform waits for the answer (Spin: for the connection, the first byte
    /// and each later one; Workers: for the whole exchange); past it the request fails as
    /// unanswered. Without one, a server that accepts and never answers holds the edge's
    /// request until the platform's own limit.
    pub timeout: std::time::Duration,
    /// Whether the answer's body is read. A webhook needs only the status: its receiver's body
    /// is left unread, so a receiver cannot hold the edge with a slow body or fill its memory
    /// with a large one.
    pub read_body: bool,
}

/// The answer to an [`OutboundRequest`].
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response body (empty when the request did not ask for it).
    pub body: Vec<u8>,
}

/// An outbound request that got no HTTP answer (connection refused, DNS, timeout).
#[derive(Debug, Error)]
#[error("outbound request failed: {0}")]
pub struct OutboundError(pub String);

/// Outbound HTTP: `wasi:http` on Spin, `fetch` on Workers.
pub trait HttpClient {
    /// Sends one request and returns the whole response.
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError>;
}

/// Wall-clock time from the platform (`std::time` is not available on every edge target).
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The standard library's wall clock, where there is one (natively and on WASI; not on
/// `wasm32-unknown-unknown`, where Workers use `Date.now()`).
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub struct SystemClock;

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// Named configuration values: Spin variables, Worker vars and secrets.
pub trait ConfigSource {
    /// The value of `name`, or `None` when it is not set.
    async fn get(&self, name: &str) -> Option<String>;
}
