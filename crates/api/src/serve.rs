//! The HTTP/1 server loop: accepts connections on a listener and serves a router on each, within
//! the connection limits that `axum::serve` does not offer.
//!
//! - At most `max_connections` connections are served at once; beyond it new ones wait in the
//!   kernel's accept queue (a flood of idle sockets cannot exhaust file descriptors or tasks).
//! - A connection whose request headers do not arrive within `header_read_timeout` is closed (a
//!   slow-headers client holds a socket for that long, never a worker).
//! - On shutdown, accepting stops, idle connections close, and requests in flight get
//!   [`DRAIN`] to finish.
//!
//! WebSocket upgrades leave this loop's accounting when they are upgraded; `/ws` bounds its own
//! clients. This module must never block: everything here is async I/O.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How long requests in flight may take to finish once shutdown has begun.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Limits of the server loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// A response (or WebSocket frame) the client does not read for this long ends its
    /// connection, so a client that stops reading cannot keep a connection slot forever.
    pub write_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most [`DRAIN`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or a reset before accept: transient; back off briefly
                    // rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let stream = Box::pin(stream);
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds a slot: all slots back means all connections are done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use axum::routing::get;

    use super::*;

    /// One connection slot, held by a client that asked for a large answer and reads nothing: the
    /// write timeout ends that connection, and the next client is served.
    #[test]
    fn a_client_that_stops_reading_gives_its_slot_back() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Larger than what the kernel's socket buffers take on loopback.
        let app = Router::new()
            .route("/big", get(|| async { vec![b'x'; 64 * 1024 * 1024] }))
            .route("/small", get(|| async { "ok" }));
        let limits = ConnLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_millis(500),
        };
        runtime.spawn(serve(listener, app, limits, std::future::pending()));

        let mut stalled = std::net::TcpStream::connect(addr).expect("connect");
        stalled
            .write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("request");
        std::thread::sleep(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let mut next = std::net::TcpStream::connect(addr).expect("connect");
        next.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        next.write_all(b"GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut answer = String::new();
        next.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
        // Served once the stalled connection timed out, not after the 10 s read timeout.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(stalled);
    }
}
