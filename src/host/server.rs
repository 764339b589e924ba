//! The HTTP/1.1 listener in front of the component.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use wasmtime_wasi_http::handler::ProxyHandler;

use super::instances::Instances;
use super::{handle_request, text_response, Inner, MAX_REQUEST_BODY, REQUEST_TIMEOUT};

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send its request body, once the head is in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections open at once, across the serving threads; further clients wait in the listen
/// backlog. Each may buffer a body of up to [`MAX_REQUEST_BODY`], so this bounds that memory
/// (2 GiB at most) and the file descriptors a crowd of slow clients can hold.
const MAX_CONNECTIONS: usize = 2048;

/// Serves on one thread per core until `shutdown` resolves, then waits for open connections to
/// finish their in-flight requests.
///
/// Each serving thread runs its own single-threaded tokio runtime and accepts from the shared
/// socket; a connection, and every request on it, stays on the thread that accepted it. A
/// request's guest work (the component instance, its fibers, host calls) wakes its own task many
/// times; on a work-stealing runtime every such wake-up unparks an idle worker that then steals
/// the task, and each of those hops costs tens of microseconds of futex and scheduler time.
pub(super) async fn serve(
    inner: Arc<Inner>,
    listener: TcpListener,
    local_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = listener
        .into_std()
        .context("detaching the listening socket")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads {
        let listener = listener
            .try_clone()
            .context("sharing the listening socket")?;
        let inner = inner.clone();
        let stop = stop_rx.clone();
        let connections = connections.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("edge-serve-{index}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("building a serving runtime")
                    .and_then(|runtime| {
                        runtime.block_on(accept_loop(
                            inner,
                            listener,
                            local_addr,
                            connections,
                            stop,
                        ))
                    });
                let _ = done_tx.send(result);
            })
            .context("starting a serving thread")?;
        finished.push(done_rx);
    }
    drop(listener);
    tracing::info!(target: "edgemeet::host", addr = %local_addr, threads, "serving");

    shutdown.await;
    let _ = stop_tx.send(true);
    tracing::info!(target: "edgemeet::host", "shutting down: waiting for in-flight requests");
    let mut outcome = Ok(());
    for done in finished {
        match done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => outcome = Err(e),
            Err(_) => outcome = Err(anyhow::anyhow!("a serving thread panicked")),
        }
    }
    tracing::info!(target: "edgemeet::host", "stopped");
    outcome
}

/// One serving thread: accepts connections until told to stop, then drains its own.
async fn accept_loop(
    inner: Arc<Inner>,
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    connections: Arc<Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = TcpListener::from_std(listener).context("registering the listening socket")?;
    let graceful = GracefulShutdown::new();
    let instances = inner.thread_instances();
    loop {
        // A connection slot first: at the limit, clients wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(target: "edgemeet::host", error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let instances = instances.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let instances = instances.clone();
                    async move {
                        Ok::<_, Infallible>(serve_one(&instances, req, peer, local_addr).await)
                    }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(target: "edgemeet::host", peer = %peer, error = %e, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(
        REQUEST_TIMEOUT + Duration::from_secs(5),
        graceful.shutdown(),
    )
    .await
    .is_err()
    {
        tracing::warn!(target: "edgemeet::host", "some connections did not finish in time");
    }
    Ok(())
}

/// One request off the wire: body capped, URI completed, Spin headers set.
async fn serve_one(
    instances: &ProxyHandler<Instances>,
    req: Request<Incoming>,
    peer: SocketAddr,
    local_addr: SocketAddr,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = match read_request(req, peer, local_addr).await {
        Ok(req) => match handle_request(instances, req).await {
            Ok(res) => res,
            Err(e) => {
                tracing::error!(target: "edgemeet::host", error = %format!("{e:#}"), "request failed in the host");
                text_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
            }
        },
        Err(res) => res,
    };
    tracing::debug!(
        target: "edgemeet::host",
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response.map(Full::new)
}

/// Reads the body (at most [`MAX_REQUEST_BODY`]) and shapes the request the way
/// Spin presents it to a component.
async fn read_request(
    req: Request<Incoming>,
    peer: SocketAddr,
    local_addr: SocketAddr,
) -> Result<Request<Bytes>, Response<Bytes>> {
    let too_large = || text_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_REQUEST_BODY as u64) {
        return Err(too_large());
    }
    let (mut parts, body) = req.into_parts();
    let collected = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(body, MAX_REQUEST_BODY).collect(),
    );
    let body = match collected.await {
        Err(_elapsed) => {
            tracing::debug!(target: "edgemeet::host", "request body not received in time");
            return Err(text_response(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time\n",
            ));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            tracing::debug!(target: "edgemeet::host", error = %e, "reading the request body failed");
            return Err(text_response(StatusCode::BAD_REQUEST, "bad request body\n"));
        }
    };
    // Clients must not be able to forge what the host asserts.
    let forged: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in forged {
        parts.headers.remove(name);
    }
    if let Ok(value) = HeaderValue::from_str(&peer.to_string()) {
        parts
            .headers
            .insert(HeaderName::from_static("spin-client-addr"), value);
    }
    complete_request(Request::from_parts(parts, body), local_addr).map_err(|e| {
        tracing::debug!(target: "edgemeet::host", error = %format!("{e:#}"), "unusable request target");
        text_response(StatusCode::BAD_REQUEST, "bad request target\n")
    })
}

/// Gives the request an absolute `http://` URI (authority from the URI, else the
/// `Host` header, else `local_addr`) and adds the Spin routing headers a component
/// served at route `/...` sees, unless they are already present.
pub(super) fn complete_request(
    mut req: Request<Bytes>,
    local_addr: SocketAddr,
) -> anyhow::Result<Request<Bytes>> {
    let uri = req.uri().clone();
    let authority = match uri.authority() {
        Some(authority) => authority.clone(),
        None => match req.headers().get(HOST).and_then(|h| h.to_str().ok()) {
            Some(host) => host.parse::<Authority>()?,
            None => local_addr.to_string().parse::<Authority>()?,
        },
    };
    let path_and_query = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let full = Uri::builder()
        .scheme(uri.scheme().cloned().unwrap_or(Scheme::HTTP))
        .authority(authority.clone())
        .path_and_query(path_and_query.clone())
        .build()?;

    let headers = req.headers_mut();
    if !headers.contains_key(HOST) {
        headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
    }
    let path = path_and_query.path().to_owned();
    let spin_headers = [
        ("spin-full-url", full.to_string()),
        ("spin-path-info", path),
        ("spin-matched-route", "/...".to_owned()),
        ("spin-raw-component-route", "/...".to_owned()),
        ("spin-component-route", String::new()),
        ("spin-base-path", "/".to_owned()),
    ];
    for (name, value) in spin_headers {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_str(&value)?);
        }
    }
    *req.uri_mut() = full;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_uri_gets_scheme_and_host() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let req = Request::builder()
            .uri("/rooms/a?x=1")
            .header(HOST, "edge.local:8080")
            .body(Bytes::new())
            .unwrap();
        let req = complete_request(req, addr).unwrap();
        assert_eq!(req.uri().to_string(), "http://edge.local:8080/rooms/a?x=1");
        assert_eq!(req.headers()["spin-path-info"], "/rooms/a");
        assert_eq!(
            req.headers()["spin-full-url"],
            "http://edge.local:8080/rooms/a?x=1"
        );

        let req = Request::builder().uri("/").body(Bytes::new()).unwrap();
        let req = complete_request(req, addr).unwrap();
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:9/");
        assert_eq!(req.headers()[HOST], "127.0.0.1:9");
    }
}
