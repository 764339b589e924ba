//! # edgemeet-serve
//!
//! How edgemeet's native services (`media-sidecar`, `recorder-native`) serve their HTTP APIs,
//! written once: `axum::serve` sets no deadline on a request's head or body and no cap on
//! connections, so a crowd of slow clients could hold memory and file descriptors for ever.
//! Here a request head must arrive within the read timeout, a body is read only through
//! [`read_body`] (bounded in size and time), a client that takes no bytes of an answer for the
//! write timeout is let go (a download to a stalled client would otherwise hold its connection
//! and file for ever), connections past the cap wait in the listen backlog, and a stop lets
//! open requests finish for at most the read timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;

/// A service's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request head, and then (through [`read_body`])
    /// its body; also how long a stop waits for open requests.
    pub read_timeout: Duration,
    /// How long an answer may wait for the client to take more of it before the connection is
    /// closed.
    pub write_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish for
/// at most `limits.read_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.read_timeout)
            .serve_connection(
                TokioIo::new(Box::pin(stream)),
                TowerToHyperService::new(router.clone()),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.read_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open at the stop; closing them");
    }
    Ok(())
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than allowed, or cut off.
    #[error("request body unreadable or over {0} bytes")]
    TooLarge(usize),
    /// Not received within the read timeout.
    #[error("request body not received in time")]
    TooSlow,
}

/// Reads a request body of at most `max` bytes, if it arrives within `timeout`.
pub async fn read_body(body: Body, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(BodyError::TooLarge(max)),
        Err(_) => Err(BodyError::TooSlow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const LIMITS: Limits = Limits {
        max_connections: 2,
        read_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
    };

    async fn echo_len(body: Body) -> String {
        match read_body(body, 16, LIMITS.read_timeout).await {
            Ok(bytes) => format!("{} bytes", bytes.len()),
            Err(e) => e.to_string(),
        }
    }

    /// 256 MiB, more than the sockets' buffers take, sent as the client takes it.
    async fn large_answer() -> Body {
        Body::from(vec![b'x'; 256 << 20])
    }

    async fn start() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        start_with(LIMITS).await
    }

    async fn start_with(
        limits: Limits,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new()
            .route("/", post(echo_len))
            .route("/large", get(large_answer));
        tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    /// Sends `head` and `body`, then reads the answer until the server closes or 2 s pass.
    async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn bodies_are_bounded_in_size_and_time_and_heads_in_time() {
        let (address, _stop) = start().await;
        let ok =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        assert!(exchange(address, ok).await.ends_with("5 bytes"));
        let large =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\nConnection: close\r\n\r\n01234567890123456789";
        assert!(exchange(address, large).await.contains("over 16 bytes"));
        // A body promised and never sent, and a head never finished: both are let go.
        let stalled_body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
        assert!(exchange(address, stalled_body)
            .await
            .contains("not received in time"));
        let started = std::time::Instant::now();
        let stalled_head = exchange(address, b"POST / HTTP/1.1\r\nHost: x\r\n").await;
        assert!(
            started.elapsed() < Duration::from_millis(1900),
            "a half head was kept open: {stalled_head:?}"
        );
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_a_free_one() {
        let (address, _stop) = start().await;
        // Two connections hold both slots with unfinished heads; a third is accepted only once
        // they are let go (after the read timeout), not before.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("connect");
            stream
                .write_all(b"POST / HTTP/1.1\r\n")
                .await
                .expect("write");
            held.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let ok = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
        let answer = exchange(address, ok).await;
        assert!(answer.ends_with("2 bytes"), "{answer:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "served past the cap after {:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_an_answer_is_let_go() {
        // One connection at a time, taken by a client that asks for a large answer and reads
        // none of it.
        let (address, _stop) = start_with(Limits {
            max_connections: 1,
            ..LIMITS
        })
        .await;
        let mut stalled = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stalled
            .write_all(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        // Once the write timeout has passed with nothing taken, its slot is free again.
        let ok = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
        let answer = exchange(address, ok).await;
        assert!(
            answer.ends_with("2 bytes"),
            "a stalled download held its connection: {answer:?}"
        );
        drop(stalled);
    }
}
