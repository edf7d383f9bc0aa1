//! The HTTP server: warp's routes on hyper's HTTP/1 connection driver, with the limits `warp::serve`
//! does not expose (CONTRACT §11): a deadline for request headers (which also ends idle keep-alive
//! connections: hyper starts it whenever it waits for a request), and a cap on open connections in
//! total and per non-loopback address. A socket over a cap is closed at once, so sockets that send
//! nothing or trickle bytes cannot pile up to the descriptor limit and starve real requests.
use super::client::Peer;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::filters::BoxedFilter;

/// The connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers (and to start the next request on a kept-alive connection).
    pub header_read: Duration,
    /// Open connections at most.
    pub total: usize,
    /// Open connections from one non-loopback address at most. A loopback peer is the local reverse
    /// proxy carrying many clients; the total bounds it.
    pub per_ip: usize,
}

/// Open connections, total and per address.
#[derive(Debug, Default)]
struct Open {
    /// Per peer address; the sum is the total.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection's share; released when dropped.
struct Held(Arc<Open>, IpAddr);

impl Open {
    fn try_hold(self: &Arc<Self>, ip: IpAddr, limits: Limits) -> Option<Held> {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = map.values().sum();
        let mine = map.get(&ip).copied().unwrap_or(0);
        if total >= limits.total || (!ip.is_loopback() && mine >= limits.per_ip) {
            return None;
        }
        *map.entry(ip).or_default() += 1;
        Some(Held(self.clone(), ip))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self.0.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

/// Unsent bytes the kernel queues per connection before a write waits (`TCP_NOTSENT_LOWAT`); the
/// writer is woken again once fewer than half of them are left. Without it the kernel grows a
/// socket's send buffer to megabytes and wakes a waiting writer only after a third of it has gone:
/// a subscriber reading slowly through a flood (tens of KiB/s) then let the session write nothing
/// for longer than [`super::ws::STALL`], and was closed 4008 as if it had stopped reading. With it,
/// every 64 KiB the client reads lets the session write again, and a subscriber that stopped
/// reading pins 128 KiB in the kernel beyond its own receive buffer, not megabytes. A client that
/// reads as fast as the daemon writes never has unsent bytes waiting, so it costs it nothing.
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Serves `routes` on `listener` until `stop` is cancelled, then stops accepting and lets open
/// requests finish (upgraded WebSockets end on their own, with the same token).
pub async fn run(
    routes: BoxedFilter<(warp::reply::Response,)>,
    listener: TcpListener,
    limits: Limits,
    stop: CancellationToken,
) {
    let open = Arc::new(Open::default());
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and the like: back off briefly rather than spin on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(held) = open.try_hold(peer.ip(), limits) else {
            tracing::debug!(%peer, "connection refused: HTTP connection cap reached");
            continue;
        };
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
            tracing::debug!(%peer, error = %e, "TCP_NOTSENT_LOWAT not set");
        }
        let inner = TowerToHyperService::new(warp::service(routes.clone()));
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            // The WebSocket route upgrades with tokio-tungstenite, not warp (fanout, issue 14).
            super::upgrade::Upgrade::wrap(&mut req);
            hyper::service::Service::call(&inner, req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            let _held = held;
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = stop.cancelled() => {
                    // Finish the request in progress (if any), then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
