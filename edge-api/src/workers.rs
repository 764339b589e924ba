//! The Cloudflare Workers adapter: converts the Worker's request, D1, vars and secrets, `fetch`
//! and `Date.now()` to the core's types and nothing more. Build with
//! `cargo build -p edge-api --target wasm32-unknown-unknown --features workers` (then
//! `worker-build`, see wrangler.toml).
//!
//! Where Workers differ from Spin, the difference stays here:
//! - Time comes from `Date.now()`: `std::time` panics on `wasm32-unknown-unknown`.
//! - The end user's location comes from `request.cf` (Cloudflare's geolocation), not headers.
//! - Configuration: a name is looked up as a secret first, then as a var.
//! - D1 hands integers to JavaScript as numbers; they come back as whole reals, which the
//!   store's readers accept (`db.rs`).

use futures_util::future::Either;
use futures_util::StreamExt as _;
use wasm_bindgen::JsValue;
use worker::{
    AbortController, D1Database, Date, Delay, Env, Fetch, Headers, Method, RequestInit,
    RequestRedirect,
};

use crate::config::GeoPoint;
use crate::exchange::{EdgeRequest, EdgeResponse, MAX_BODY_BYTES};
use crate::platform::{
    Clock, ConfigSource, HttpClient, OutboundError, OutboundRequest, OutboundResponse, Rows,
    SqlValue, Store, StoreError,
};
use crate::{misconfigured, web, Edge, EdgeConfig};

/// The D1 binding the edge's tables live in (wrangler.toml `[[d1_databases]] binding`).
pub const D1_BINDING: &str = "DB";

/// Worker secrets, then vars, as the configuration source.
struct WorkerConfig<'a>(&'a Env);

impl ConfigSource for WorkerConfig<'_> {
    async fn get(&self, name: &str) -> Option<String> {
        if let Ok(secret) = self.0.secret(name) {
            return Some(secret.to_string());
        }
        self.0.var(name).ok().map(|v| v.to_string())
    }
}

/// SQL through D1, positional rows (`raw()`), parameters bound as JavaScript values.
struct D1Store(D1Database);

fn js_value(value: &SqlValue) -> JsValue {
    match value {
        SqlValue::Null => JsValue::NULL,
        // D1 takes JavaScript numbers; the edge's integers (timestamps, counts) fit in 2^53.
        SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
        SqlValue::Real(f) => JsValue::from_f64(*f),
        SqlValue::Text(s) => JsValue::from_str(s),
        SqlValue::Blob(b) => js_sys::Uint8Array::from(b.as_slice()).into(),
    }
}

fn sql_value(value: serde_json::Value) -> SqlValue {
    match value {
        serde_json::Value::Null => SqlValue::Null,
        serde_json::Value::Bool(b) => SqlValue::Integer(i64::from(b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => SqlValue::Text(s),
        serde_json::Value::Array(bytes) => SqlValue::Blob(
            bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect(),
        ),
        other @ serde_json::Value::Object(_) => SqlValue::Text(other.to_string()),
    }
}

impl Store for D1Store {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        let values: Vec<JsValue> = params.iter().map(js_value).collect();
        let rows = self
            .0
            .prepare(sql)
            .bind(&values)
            .map_err(|e| StoreError(e.to_string()))?
            .raw::<serde_json::Value>()
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(Rows {
            columns: Vec::new(),
            rows: rows
                .into_iter()
                .map(|row| row.into_iter().map(sql_value).collect())
                .collect(),
        })
    }
}

/// Outbound HTTP through the Worker's `fetch`.
struct WorkerFetch;

impl HttpClient for WorkerFetch {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let failed = |e: worker::Error| OutboundError(e.to_string());
        let read_body = request.read_body;
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(failed)?;
        }
        let mut init = RequestInit::new();
        // A 3xx comes back as such, as on Spin: a followed redirect would turn a Twirp POST
        // into a GET elsewhere and could carry the LiveKit token along.
        init.with_method(Method::from(request.method.to_string()))
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if !request.body.is_empty() {
            init.with_body(Some(
                js_sys::Uint8Array::from(request.body.as_slice()).into(),
            ));
        }
        let outbound = worker::Request::new_with_init(&request.url, &init).map_err(failed)?;
        // The whole exchange, answer and body, within the request's timeout; past it the fetch
        // is aborted.
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = Box::pin(async {
            let mut response = Fetch::Request(outbound)
                .send_with_signal(&signal)
                .await
                .map_err(failed)?;
            let body = if read_body {
                response.bytes().await.map_err(failed)?
            } else {
                Vec::new()
            };
            Ok(OutboundResponse {
                status: response.status_code(),
                body,
            })
        });
        let deadline = Box::pin(Delay::from(request.timeout));
        let raced = futures_util::future::select(exchange, deadline).await;
        match raced {
            Either::Left((answered, _)) => answered,
            Either::Right(((), _)) => {
                controller.abort();
                Err(OutboundError(format!(
                    "no answer within {} ms",
                    request.timeout.as_millis()
                )))
            }
        }
    }
}

/// The platform clock (`Date.now()`).
struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> i64 {
        i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX)
    }
}

#[worker::event(fetch)]
async fn fetch(
    request: worker::Request,
    env: Env,
    _ctx: worker::Context,
) -> worker::Result<worker::Response> {
    // One line to the Worker's console (`console.error`, what `wrangler tail` shows).
    crate::logging::install(|line| worker::console_error!("{line}"));
    let response = match serve(request, &env).await {
        Ok(r) | Err(r) => r,
    };
    let mut out = worker::Response::from_bytes(response.body)?.with_status(response.status);
    for (name, value) in response.headers {
        out.headers_mut().set(name, &value)?;
    }
    Ok(out)
}

/// The binding of the join page's static assets (wrangler.toml `[assets]`).
const ASSETS_BINDING: &str = "ASSETS";

/// The join page's HTML from the static assets. The platform serves `/assets/*` itself; `/` is
/// routed to the Worker first (`run_worker_first`) so the page gets its security headers.
async fn page_file_response(
    env: &Env,
    method: &http::Method,
    file: &web::PageFile,
) -> EdgeResponse {
    let path = if file.relative_path == "index.html" {
        String::new()
    } else {
        file.relative_path.clone()
    };
    let fetched = match env.assets(ASSETS_BINDING) {
        Ok(assets) => {
            assets
                .fetch(format!("https://assets.invalid/{path}"), None)
                .await
        }
        Err(e) => Err(e),
    };
    match fetched {
        Ok(mut response) if response.status_code() == 200 => match response.bytes().await {
            Ok(body) => web::file_response(method, file, body, false),
            Err(e) => {
                tracing::error!(error = %e, "static assets unavailable");
                EdgeResponse::text(503, "static assets unavailable")
            }
        },
        Ok(_) => web::file_missing(file),
        Err(_) => web::page_missing(),
    }
}

/// Reads the body up to [`MAX_BODY_BYTES`]; past that (declared or read) it stops and reports
/// the body as too large, as on Spin, so a huge body is never held whole in the isolate.
async fn read_bounded(request: &mut worker::Request) -> worker::Result<(Vec<u8>, bool)> {
    let declared = request
        .headers()
        .get("content-length")?
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Ok((Vec::new(), true));
    }
    if request.inner().body().is_none() {
        return Ok((Vec::new(), false));
    }
    let mut stream = request.stream()?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > MAX_BODY_BYTES {
            return Ok((Vec::new(), true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

async fn serve(mut request: worker::Request, env: &Env) -> Result<EdgeResponse, EdgeResponse> {
    let bad = |e: worker::Error| EdgeResponse::text(400, &format!("bad request: {e}"));
    let url = request.url().map_err(bad)?;
    let method = http::Method::from_bytes(request.method().to_string().as_bytes())
        .map_err(|_| EdgeResponse::text(405, "Method Not Allowed"))?;
    if let Some(file) = web::page_file(&method, url.path()) {
        return Ok(page_file_response(env, &method, &file).await);
    }
    let config = EdgeConfig::load(&WorkerConfig(env))
        .await
        .map_err(|e| misconfigured(&e))?;
    let mut edge_request = EdgeRequest::new(method, url.path());
    edge_request.query = url.query().unwrap_or("").to_owned();
    edge_request.origin = Some(url.origin().ascii_serialization());
    for (name, value) in request.headers().entries() {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(name.as_bytes()),
            http::header::HeaderValue::from_str(&value),
        ) {
            edge_request.headers.append(name, value);
        }
    }
    // Cloudflare's own location is request.cf; a `cf-*` location header reaching a Worker was
    // set by the client, so it is never read (other configured headers, set by a proxy the
    // operator trusts, still are when request.cf has no coordinates).
    for name in [&config.geo_headers.latitude, &config.geo_headers.longitude] {
        if name.to_ascii_lowercase().starts_with("cf-") {
            edge_request.headers.remove(name.as_str());
        }
    }
    let (body, body_too_large) = read_bounded(&mut request).await.map_err(bad)?;
    edge_request.body = body;
    edge_request.body_too_large = body_too_large;
    edge_request.platform_geo = request
        .cf()
        .and_then(|cf| cf.coordinates())
        .and_then(|(lat, lon)| GeoPoint::new(f64::from(lat), f64::from(lon)));
    let db = env.d1(D1_BINDING).map_err(|e| {
        // The detail is the operator's, in the log; the caller learns only that it failed.
        tracing::error!(error = %e, "D1 unavailable");
        EdgeResponse::text(503, "database unavailable")
    })?;
    let edge = Edge {
        config,
        store: D1Store(db),
        http: WorkerFetch,
        clock: WorkerClock,
    };
    Ok(edge.handle(edge_request).await)
}
