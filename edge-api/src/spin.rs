//! The Fermyon Spin adapter: converts Spin's request, sqlite, variables and outbound HTTP to the
//! core's types and nothing more. Build with
//! `cargo build -p edge-api --target wasm32-wasip2 --features spin --profile component`.

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::Request;
use spin_sdk::sqlite::wit::sqlite::{self, Value};
use wasip3::http::types::RequestOptions;
use wasip3::http_compat::RequestOptionsExtension;

use crate::exchange::{EdgeRequest, EdgeResponse, MAX_BODY_BYTES};
use crate::platform::{
    ConfigSource, HttpClient, OutboundError, OutboundRequest, OutboundResponse, Rows, SqlValue,
    Store, StoreError, SystemClock,
};
use crate::{misconfigured, web, ConfigError, Edge, EdgeConfig};

/// Spin variables as the configuration source.
struct SpinVariables;

impl ConfigSource for SpinVariables {
    async fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).await.ok()
    }
}

/// The component's default sqlite database, through the synchronous functions of
/// `spin:sqlite@3.1.0` (`open`, `execute`). The SDK's async wrappers hand rows over a stream and a
/// future, three host round trips per statement; the synchronous call returns them at once and
/// made a request several times cheaper (docs/benchmarks.md). The binding is the SDK's own,
/// pinned with `spin-sdk = "=7.0.0"`.
struct SpinSqlite(sqlite::Connection);

impl SpinSqlite {
    fn open_default() -> Result<SpinSqlite, sqlite::Error> {
        sqlite::Connection::open("default").map(SpinSqlite)
    }
}

impl Store for SpinSqlite {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        let params: Vec<Value> = params
            .iter()
            .map(|p| match p {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(i) => Value::Integer(*i),
                SqlValue::Real(f) => Value::Real(*f),
                SqlValue::Text(s) => Value::Text(s.clone()),
                SqlValue::Blob(b) => Value::Blob(b.clone()),
            })
            .collect();
        let result = self
            .0
            .execute(sql, &params)
            .map_err(|e| StoreError(format!("{e:?}")))?;
        let rows = result
            .rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|v| match v {
                        Value::Null => SqlValue::Null,
                        Value::Integer(i) => SqlValue::Integer(i),
                        Value::Real(f) => SqlValue::Real(f),
                        Value::Text(s) => SqlValue::Text(s),
                        Value::Blob(b) => SqlValue::Blob(b),
                    })
                    .collect()
            })
            .collect();
        Ok(Rows {
            columns: result.columns,
            rows,
        })
    }
}

/// Outbound HTTP through `wasi:http`.
struct SpinHttp;

impl HttpClient for SpinHttp {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let read_body = request.read_body;
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        // A known length rather than a chunked body: not every server reads chunked requests
        // (a customer's webhook endpoint may be Python's http.server or a PHP script).
        if !request.body.is_empty() {
            builder = builder.header(http::header::CONTENT_LENGTH, request.body.len());
        }
        let mut outbound = builder
            .body(Full::new(Bytes::from(request.body)))
            .map_err(|e| OutboundError(e.to_string()))?;
        outbound
            .extensions_mut()
            .insert(request_options(request.timeout)?);
        let response = spin_sdk::http::send(outbound)
            .await
            .map_err(|e| OutboundError(e.to_string()))?;
        let status = response.status().as_u16();
        if !read_body {
            return Ok(OutboundResponse {
                status,
                body: Vec::new(),
            });
        }
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| OutboundError(format!("{e:?}")))?;
        Ok(OutboundResponse {
            status,
            body: body.to_vec(),
        })
    }
}

/// `wasi:http` request options bounding the connect, the wait for the answer's first byte and
/// each wait for more of its body by `timeout`.
fn request_options(timeout: std::time::Duration) -> Result<RequestOptionsExtension, OutboundError> {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let options = RequestOptions::new();
    options
        .set_connect_timeout(Some(nanos))
        .and_then(|()| options.set_first_byte_timeout(Some(nanos)))
        .and_then(|()| options.set_between_bytes_timeout(Some(nanos)))
        .map_err(|e| OutboundError(format!("request timeout not supported: {e:?}")))?;
    Ok(RequestOptionsExtension(options))
}

#[spin_sdk::http_service]
async fn handle(request: Request) -> http::Response<Full<Bytes>> {
    // A failed write to stderr loses the line rather than the request.
    crate::logging::install(|line| {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{line}");
    });
    let response = match serve(request).await {
        Ok(r) => r,
        Err(r) => r,
    };
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new())))
}

/// The configuration as this instance first read it. Spin serves many requests with one p3
/// instance (up to `--max-instance-reuse-count`, 128 by default), and reading the variables is
/// ten host calls, so an instance reads them once; a changed variable reaches the next instance.
static CONFIG: OnceLock<EdgeConfig> = OnceLock::new();

async fn instance_config() -> Result<EdgeConfig, ConfigError> {
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let config = EdgeConfig::load(&SpinVariables).await?;
    // Another request of this instance may have read it meanwhile; the values are the same.
    let _ = CONFIG.set(config.clone());
    Ok(config)
}

/// Where spin.toml mounts `web/dist` (`files = [{ source = "web/dist", destination = "/web" }]`).
const PAGE_DIR: &str = "/web";

/// One of the join page's files from the mounted directory, the precompressed `.gz` sibling
/// when the client takes gzip.
fn page_file_response(request: &Request, file: &web::PageFile) -> EdgeResponse {
    let path = std::path::Path::new(PAGE_DIR).join(&file.relative_path);
    let accept_encoding = request
        .headers()
        .get(http::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    if web::accepts_gzip(accept_encoding) {
        let mut gz = path.clone().into_os_string();
        gz.push(".gz");
        if let Ok(body) = std::fs::read(gz) {
            return web::file_response(request.method(), file, body, true);
        }
    }
    match std::fs::read(&path) {
        Ok(body) => web::file_response(request.method(), file, body, false),
        Err(_) => web::file_missing(file),
    }
}

async fn serve(request: Request) -> Result<EdgeResponse, EdgeResponse> {
    if let Some(file) = web::page_file(request.method(), request.uri().path()) {
        return Ok(page_file_response(&request, &file));
    }
    let config = instance_config().await.map_err(|e| misconfigured(&e))?;
    let (parts, body) = request.into_parts();
    let (body, body_too_large) = read_bounded(body).await?;
    let origin = parts
        .uri
        .scheme_str()
        .zip(parts.uri.authority())
        .map(|(scheme, authority)| format!("{scheme}://{authority}"));
    let edge_request = EdgeRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body,
        body_too_large,
        platform_geo: None,
        origin,
    };
    let store = SpinSqlite::open_default().map_err(|e| {
        // The detail is the operator's, in the log; the caller learns only that it failed.
        tracing::error!(error = ?e, "sqlite unavailable");
        EdgeResponse::text(503, "database unavailable")
    })?;
    let edge = Edge {
        config,
        store,
        http: SpinHttp,
        clock: SystemClock,
    };
    Ok(edge.handle(edge_request).await)
}

/// Reads the body up to [`MAX_BODY_BYTES`]; past that it stops and reports the body as too large.
async fn read_bounded<B>(mut body: B) -> Result<(Vec<u8>, bool), EdgeResponse>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| EdgeResponse::text(400, &format!("body read failed: {e:?}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_BODY_BYTES {
                return Ok((Vec::new(), true));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok((out, false))
}
