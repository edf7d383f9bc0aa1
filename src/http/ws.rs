//! `GET /api/ws/logs`: the token-gated WebSocket stream of entries (CONTRACT.md §2).
//!
//! Before the upgrade: the `Origin` check (HTTP 403) and a connection slot (the caps). After it,
//! in this order: a refused slot → Close 1013, no or empty token → 4001, a token that is unknown,
//! expired or used → 4003, a bad `since`/`backlog` → 1008; then replay (`since`/`backlog`) and live.
//! The caps answer after the upgrade (1013 "try again later") rather than with an HTTP 503, because a
//! browser cannot read the status of a failed handshake; the slot is checked before the token, so a
//! refused client keeps its token and may retry with it. The Origin check stays an HTTP 403: a page
//! on a foreign origin gets nothing to read at all.
//!
//! warp spawns the socket task itself; a [`TaskTracker`](tokio_util::task::TaskTracker) token taken
//! when the request arrives keeps it counted, so shutdown waits for upgrades already under way.
//!
//! One task per socket runs one `select!` over the client's frames, the hub's receiver, the write in
//! progress, the keep-alive timers and the daemon's shutdown token. Writes never block the loop: the
//! records of a batch wait in a small outbox that a select branch drains (feed every record, then one
//! flush), and the hub receiver is only polled when the outbox is empty, so a slow client costs one
//! batch of memory, never the tailer's time. A client that falls further behind than the broadcast
//! buffer is caught up from the history, or closed with 4008 when the history no longer reaches back.
use super::{AppState, Connections};
use crate::hub::{Batch, Hub, Record, Replay, BROADCAST_BATCHES};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, StreamExt};
use std::collections::VecDeque;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};
use tokio::time::{sleep_until, Instant};
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Reply};

/// Interval between the server's WebSocket Ping control frames (keeps proxies' read timeouts fed).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A peer from which no frame at all arrived for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest client text message accepted (`ping` is the only one that means anything).
pub const MAX_CLIENT_TEXT: usize = 1024;
/// Frame and message size limit for reading (a larger frame is refused as soon as its header is read).
pub const MAX_FRAME: usize = 64 * 1024;
/// Bound on bytes written to the socket but not yet accepted by the kernel.
pub const MAX_WRITE_BUFFER: usize = 1 << 20;
/// How long a closing handshake may take when the daemon is not stopping; the socket is dropped after.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the closing handshake may take when the daemon is stopping (below `shutdown::GRACE`).
pub const SHUTDOWN_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pongs waiting behind a stalled write; a client that sends more pings than this without reading is
/// closed (1008) rather than buffered for.
const MAX_PENDING_CONTROL: usize = 64;
/// Records gathered from batches already waiting in the receiver before one flush.
const COALESCE: usize = 512;

/// Close codes and reasons sent by this endpoint.
pub mod close {
    /// No `token` parameter, or an empty one.
    pub const TOKEN_MISSING: (u16, &str) = (4001, "Token not provided");
    /// The token is unknown, expired or already used.
    pub const TOKEN_INVALID: (u16, &str) = (4003, "Token invalid, expired, or already used");
    /// The subscriber fell behind what the history can catch it up from.
    pub const TOO_SLOW: (u16, &str) = (4008, "Subscriber too slow; reconnect with since");
    /// The daemon is stopping.
    pub const GOING_AWAY: (u16, &str) = (1001, "going away");
    /// Nothing arrived from the peer for [`super::IDLE_TIMEOUT`].
    pub const IDLE: (u16, &str) = (1001, "idle timeout");
    /// A client text message over [`super::MAX_CLIENT_TEXT`], or a frame over [`super::MAX_FRAME`].
    pub const TOO_BIG: (u16, &str) = (1009, "Message too big");
    /// A binary client message.
    pub const BINARY: (u16, &str) = (1003, "Binary messages are not accepted");
    /// A malformed frame.
    pub const PROTOCOL: (u16, &str) = (1002, "Protocol error");
    /// `since` or `backlog` is not a non-negative integer.
    pub const POLICY: (u16, &str) = (1008, "Invalid since or backlog");
    /// More than a few dozen pongs/Pings piled up while the client did not read.
    pub const FLOOD: (u16, &str) = (1008, "Too many pings");
    /// A connection cap was reached; the token was not consumed and may be retried.
    pub const TRY_AGAIN: (u16, &str) = (1013, "Too many connections; try again later");
}

/// The `GET /api/ws/logs` route.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    warp::path!("api" / "ws" / "logs")
        .and(warp::ws())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(super::client::address(state.config.trust_forwarded_for))
        // Pairs never fail to decode (a typed struct would, and warp logs the query on failure).
        .and(warp::query::<Vec<(String, String)>>())
        .map(
            move |ws: Ws,
                  origin: Option<String>,
                  host: Option<String>,
                  peer: IpAddr,
                  query: Vec<(String, String)>| {
                upgrade(
                    &state,
                    ws,
                    origin.as_deref(),
                    host.as_deref(),
                    peer,
                    Params::from_query(query),
                )
            },
        )
        .boxed()
}

/// What the client asked for in the query string.
#[derive(Debug, Default)]
struct Params {
    /// The single-use token (never logged).
    token: Option<String>,
    /// `since` as sent, validated after the token.
    since: Option<String>,
    /// `backlog` as sent, validated after the token.
    backlog: Option<String>,
}

impl Params {
    fn from_query(query: Vec<(String, String)>) -> Params {
        let mut p = Params::default();
        for (key, value) in query {
            let slot = match key.as_str() {
                "token" => &mut p.token,
                "since" => &mut p.since,
                "backlog" => &mut p.backlog,
                _ => continue,
            };
            // The first occurrence wins.
            slot.get_or_insert(value);
        }
        p
    }
}

/// Where the stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Live only.
    Live,
    /// Every held entry with an id greater than this, then live.
    Since(u64),
    /// The last n held entries, then live.
    Backlog(usize),
}

impl Start {
    /// `since` wins over `backlog` when both are given.
    fn parse(p: &Params) -> Result<Start, ()> {
        if let Some(s) = &p.since {
            return s.parse().map(Start::Since).map_err(|_| ());
        }
        if let Some(b) = &p.backlog {
            return b.parse().map(Start::Backlog).map_err(|_| ());
        }
        Ok(Start::Live)
    }
}

/// True when `origin` is the daemon's own (`http(s)://` + the `Host` header or the bound address)
/// or one of `allowed`.
fn origin_allowed(origin: &str, host: Option<&str>, local: SocketAddr, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    let same = |candidate: &str| candidate.trim_end_matches('/').eq_ignore_ascii_case(origin);
    if allowed.iter().any(|a| same(a)) {
        return true;
    }
    let own = |authority: &str| {
        same(&format!("http://{authority}")) || same(&format!("https://{authority}"))
    };
    host.is_some_and(|h| !h.is_empty() && own(h.trim())) || own(&local.to_string())
}

/// Decides before the upgrade (Origin → 403), reserves a slot, then upgrades.
fn upgrade(
    state: &AppState,
    ws: Ws,
    origin: Option<&str>,
    host: Option<&str>,
    peer: IpAddr,
    params: Params,
) -> warp::reply::Response {
    if let Some(origin) = origin {
        if !origin_allowed(
            origin,
            host,
            state.local_addr,
            &state.config.allowed_origins,
        ) {
            tracing::warn!(%peer, ?origin, "WebSocket upgrade refused: Origin not allowed");
            return super::reject::json_error(StatusCode::FORBIDDEN, "origin not allowed");
        }
    }
    let slot = state.connections.try_acquire(
        peer,
        state.config.max_connections,
        state.config.max_connections_per_ip,
    );
    // Counted by the tracker from now on, so shutdown waits for an upgrade already under way.
    let tracked = state.tracker.token();
    let state = state.clone();
    ws.max_frame_size(MAX_FRAME)
        .max_message_size(MAX_FRAME)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            session(socket, state, peer, params, slot).await;
            drop(tracked);
        })
        .into_response()
}

/// One upgraded connection, from the checks to the last frame.
async fn session(
    socket: WebSocket,
    state: AppState,
    peer: IpAddr,
    params: Params,
    slot: Option<Slot>,
) {
    let (sink, stream) = socket.split();
    let mut conn = Conn::new(sink, stream, state.shutdown.clone());
    let Some(_slot) = slot else {
        tracing::info!(%peer, "WebSocket refused: connection cap reached");
        return conn.close(close::TRY_AGAIN).await;
    };
    let token = params.token.as_deref().unwrap_or("");
    if token.is_empty() {
        tracing::debug!(%peer, "WebSocket closed: no token");
        return conn.close(close::TOKEN_MISSING).await;
    }
    if state.tokens.consume(token).is_err() {
        tracing::info!(%peer, "WebSocket closed: token invalid, expired or already used");
        return conn.close(close::TOKEN_INVALID).await;
    }
    let Ok(start) = Start::parse(&params) else {
        return conn.close(close::POLICY).await;
    };
    if state.shutdown.is_cancelled() {
        return conn.close(close::GOING_AWAY).await;
    }
    let _counted = state.hub.subscriber_guard();
    tracing::debug!(%peer, ?start, "WebSocket subscriber connected");
    let close_code = match conn.stream_entries(&state, start).await {
        End::Client => None,
        End::Closed(code) => Some(code),
    };
    tracing::debug!(%peer, ?close_code, "WebSocket subscriber gone");
}

/// How a subscriber's stream ended.
#[derive(Debug)]
enum End {
    /// The client closed or went away.
    Client,
    /// The server closed with this code.
    Closed(u16),
}

/// What a client message means for the session.
enum Heard {
    /// Carry on.
    Fine,
    /// The client sent Close.
    Closed,
    /// Close with this code.
    Refuse((u16, &'static str)),
}

/// Something waiting to be written.
enum Out {
    /// An entry: its JSON goes out as one text frame.
    Record(Record),
    /// A control frame or the `pong` text.
    Other(Message),
}

/// An upgraded socket with its outbox.
struct Conn {
    /// Write half; only the drive branch and `close` write to it.
    sink: SplitSink<WebSocket, Message>,
    /// Read half, polled on every loop turn so Pings and Closes from the client are answered.
    stream: SplitStream<WebSocket>,
    /// Frames fed to `sink` by the next drive; at most one batch (or one replay from the history)
    /// plus a few control frames.
    outbox: VecDeque<Out>,
    /// Control frames and pongs in `outbox`, bounded by `MAX_PENDING_CONTROL`.
    pending_control: usize,
    /// Something was fed or queued and not yet flushed: the drive branch is active, the hub is not
    /// read.
    dirty: bool,
    /// The daemon's shutdown token.
    shutdown: tokio_util::sync::CancellationToken,
}

impl Conn {
    fn new(
        sink: SplitSink<WebSocket, Message>,
        stream: SplitStream<WebSocket>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Conn {
        Conn {
            sink,
            stream,
            outbox: VecDeque::new(),
            pending_control: 0,
            dirty: false,
            shutdown,
        }
    }

    /// Queues the records newer than `last_sent` (ids only grow) and advances it.
    fn push_records(&mut self, records: impl IntoIterator<Item = Record>, last_sent: &mut u64) {
        for r in records {
            if r.id > *last_sent {
                *last_sent = r.id;
                self.outbox.push_back(Out::Record(r));
                self.dirty = true;
            }
        }
    }

    /// Queues a control frame; false when too many are already waiting.
    fn push_control(&mut self, msg: Message) -> bool {
        if self.pending_control >= MAX_PENDING_CONTROL {
            return false;
        }
        self.pending_control += 1;
        self.outbox.push_back(Out::Other(msg));
        self.dirty = true;
        true
    }

    /// Replay, then live, until the client leaves or the server closes.
    async fn stream_entries(&mut self, state: &AppState, start: Start) -> End {
        let hub = &state.hub;
        let mut last_id_watch: watch::Receiver<u64> = hub.watch_last_id();
        // Subscribe first, then read the history: nothing published in between is missed, and
        // anything seen twice is skipped by id.
        let (mut rx, mut last_sent) = match start {
            Start::Live => hub.subscribe_at(),
            Start::Since(since) => {
                let rx = hub.subscribe();
                match hub.since(since) {
                    Replay::Records(records) => {
                        let mut last = since;
                        self.push_records(records, &mut last);
                        (rx, last)
                    }
                    Replay::TooOld { oldest } => {
                        // CONTRACT §2: replay every entry after `since` still held. The ones
                        // before `oldest` are gone; the client sees that as the jump in ids.
                        tracing::debug!(
                            since,
                            oldest,
                            "since is older than the history: replaying all held"
                        );
                        let mut last = since;
                        self.push_records(hub.backlog(usize::MAX), &mut last);
                        (rx, last)
                    }
                }
            }
            Start::Backlog(n) => {
                let (rx, live_after) = hub.subscribe_at();
                // The backlog may end before or after `live_after` (records published since the
                // subscription are in both): live continues after the greater.
                let mut last = 0;
                self.push_records(hub.backlog(n), &mut last);
                (rx, last.max(live_after))
            }
        };
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return self.close_end(close::GOING_AWAY).await,
                frame = self.stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        None => return End::Client,
                        Some(Err(e)) => return self.close_end(read_error_close(&e)).await,
                        Some(Ok(msg)) => match self.on_client_message(msg) {
                            Heard::Fine => {}
                            Heard::Closed => return self.finish_client_close().await,
                            Heard::Refuse(code) => return self.close_end(code).await,
                        },
                    }
                }
                written = drive(&mut self.sink, &mut self.outbox, &mut self.pending_control), if self.dirty => {
                    if written.is_err() {
                        return End::Client;
                    }
                    self.dirty = false;
                }
                received = rx.recv(), if !self.dirty => {
                    if let Err(code) = self.take(received, &mut rx, hub, &mut last_sent) {
                        return self.close_end(code).await;
                    }
                }
                // While a write is stalled the receiver is not read: each publish checks whether
                // the entries this client still needs are gone from both the broadcast and the history.
                changed = last_id_watch.changed(), if self.dirty => {
                    if changed.is_err() {
                        return self.close_end(close::GOING_AWAY).await;
                    }
                    let needed = last_sent.saturating_add(1);
                    let history_lost = hub.oldest_id().is_some_and(|oldest| oldest > needed);
                    if history_lost && rx.len() > BROADCAST_BATCHES {
                        return self.close_end(close::TOO_SLOW).await;
                    }
                }
                _ = ping.tick() => {
                    if !self.push_control(Message::ping(Vec::new())) {
                        return self.close_end(close::FLOOD).await;
                    }
                }
                _ = sleep_until(last_heard + IDLE_TIMEOUT) => {
                    return self.close_end(close::IDLE).await;
                }
            }
        }
    }

    /// Queues `received` and whatever else the receiver already holds (up to [`COALESCE`] records,
    /// so several small batches share one flush). A lag is caught up from the history; `Err` is the
    /// close to send when that is impossible.
    fn take(
        &mut self,
        received: Result<Batch, RecvError>,
        rx: &mut broadcast::Receiver<Batch>,
        hub: &Hub,
        last_sent: &mut u64,
    ) -> Result<(), (u16, &'static str)> {
        let mut received = received;
        loop {
            match received {
                Ok(batch) => self.push_records(batch.iter().cloned(), last_sent),
                Err(RecvError::Lagged(_)) => match hub.since(*last_sent) {
                    Replay::Records(records) => self.push_records(records, last_sent),
                    Replay::TooOld { .. } => return Err(close::TOO_SLOW),
                },
                Err(RecvError::Closed) => return Err(close::GOING_AWAY),
            }
            if self.outbox.len() >= COALESCE {
                return Ok(());
            }
            received = match rx.try_recv() {
                Ok(batch) => Ok(batch),
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
        }
    }

    /// Handles one client message.
    fn on_client_message(&mut self, msg: Message) -> Heard {
        if msg.is_close() {
            return Heard::Closed;
        }
        if msg.is_binary() {
            return Heard::Refuse(close::BINARY);
        }
        if msg.is_text() {
            let text = msg.as_bytes();
            if text.len() > MAX_CLIENT_TEXT {
                return Heard::Refuse(close::TOO_BIG);
            }
            if text == b"ping" && !self.push_control(Message::text("pong")) {
                return Heard::Refuse(close::FLOOD);
            }
        }
        // Ping (answered by tungstenite on the next read), Pong, other text: nothing to do.
        Heard::Fine
    }

    /// The client sent Close: tungstenite queued the reply behind what is already buffered; flush
    /// it (bounded, and abandoned if the daemon stops) and stop.
    async fn finish_client_close(&mut self) -> End {
        let shutdown = self.shutdown.clone();
        let flush = futures_util::SinkExt::flush(&mut self.sink);
        tokio::select! {
            _ = tokio::time::timeout(CLOSE_TIMEOUT, flush) => {}
            _ = shutdown.cancelled() => {}
        }
        End::Client
    }

    async fn close_end(&mut self, code: (u16, &'static str)) -> End {
        self.close(code).await;
        End::Closed(code.0)
    }

    /// Sends Close `code` after whatever is already on its way (pending entries are dropped), then
    /// waits for the client's Close (or the end of the stream), both bounded in time.
    async fn close(&mut self, (code, reason): (u16, &'static str)) {
        self.outbox.clear();
        self.pending_control = 0;
        self.outbox
            .push_back(Out::Other(Message::close_with(code, reason)));
        let stopping = (code, reason) == close::GOING_AWAY;
        let limit = if stopping {
            SHUTDOWN_CLOSE_TIMEOUT
        } else {
            CLOSE_TIMEOUT
        };
        let handshake = async {
            if drive(&mut self.sink, &mut self.outbox, &mut self.pending_control)
                .await
                .is_err()
            {
                return;
            }
            // Read (and discard) until the client's Close arrives or the stream ends.
            while let Some(Ok(_)) = self.stream.next().await {}
        };
        let shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::timeout(limit, handshake) => {}
            _ = shutdown.cancelled(), if !stopping => {}
        }
    }
}

/// The close that answers a read error: 1009 for an oversized frame, 1002 otherwise.
fn read_error_close(e: &warp::Error) -> (u16, &'static str) {
    let too_big = e
        .source()
        .and_then(|s| s.downcast_ref::<tungstenite::Error>())
        .is_some_and(|t| matches!(t, tungstenite::Error::Capacity(_)));
    if too_big {
        close::TOO_BIG
    } else {
        close::PROTOCOL
    }
}

/// Feeds every queued frame to the sink, then flushes once. Cancel-safe: what is not yet fed stays
/// in `outbox`.
async fn drive(
    sink: &mut SplitSink<WebSocket, Message>,
    outbox: &mut VecDeque<Out>,
    pending_control: &mut usize,
) -> Result<(), warp::Error> {
    std::future::poll_fn(|cx: &mut Context<'_>| -> Poll<Result<(), warp::Error>> {
        loop {
            if outbox.is_empty() {
                return Pin::new(&mut *sink).poll_flush(cx);
            }
            ready!(Pin::new(&mut *sink).poll_ready(cx))?;
            let msg = match outbox.pop_front() {
                // The one copy per subscriber warp's `Message::text(String)` requires.
                Some(Out::Record(r)) => Message::text(r.text()),
                Some(Out::Other(m)) => {
                    *pending_control = pending_control.saturating_sub(1);
                    m
                }
                None => continue,
            };
            Pin::new(&mut *sink).start_send(msg)?;
        }
    })
    .await
}

/// A reserved connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    /// The counts to give the slot back to.
    connections: Arc<Connections>,
    /// The address the slot is counted under.
    ip: IpAddr,
}

impl Connections {
    /// Reserves a slot for `ip` unless `max_total` connections are open, or `max_per_ip` from `ip`.
    pub fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Option<Slot> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = per_ip.values().sum();
        let mine = per_ip.get(&ip).copied().unwrap_or(0);
        if total >= max_total || mine >= max_per_ip {
            return None;
        }
        per_ip.insert(ip, mine + 1);
        Some(Slot {
            connections: self.clone(),
            ip,
        })
    }

    /// Open WebSocket connections (slots held), all addresses together.
    pub fn total(&self) -> usize {
        self.per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self
            .connections
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_be_own_or_listed() {
        let local: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let listed = vec!["https://dash.example.com".to_owned()];
        assert!(origin_allowed("http://127.0.0.1:5001", None, local, &[]));
        assert!(origin_allowed(
            "http://proxy.lan:8080",
            Some("proxy.lan:8080"),
            local,
            &[]
        ));
        assert!(origin_allowed(
            "https://Dash.example.com/",
            None,
            local,
            &listed
        ));
        assert!(!origin_allowed(
            "http://evil.example",
            Some("127.0.0.1:5001"),
            local,
            &listed
        ));
        assert!(!origin_allowed("null", Some("127.0.0.1:5001"), local, &[]));
        assert!(!origin_allowed("http://127.0.0.1:5002", None, local, &[]));
    }

    #[test]
    fn since_wins_over_backlog_and_garbage_is_refused() {
        let p = Params::from_query(vec![
            ("backlog".into(), "5".into()),
            ("since".into(), "7".into()),
            ("since".into(), "9".into()),
        ]);
        assert_eq!(Start::parse(&p), Ok(Start::Since(7)));
        let p = Params::from_query(vec![("backlog".into(), "-1".into())]);
        assert_eq!(Start::parse(&p), Err(()));
        assert_eq!(Start::parse(&Params::default()), Ok(Start::Live));
    }

    #[test]
    fn slots_are_capped_in_total_and_per_address() {
        let c = Arc::new(Connections::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = c.try_acquire(a, 3, 2).unwrap();
        let _a2 = c.try_acquire(a, 3, 2).unwrap();
        assert!(c.try_acquire(a, 3, 2).is_none());
        let _b1 = c.try_acquire(b, 3, 2).unwrap();
        assert!(c.try_acquire(b, 3, 2).is_none());
        drop(a1);
        assert_eq!(c.total(), 2);
        assert!(c.try_acquire(b, 3, 2).is_some());
    }
}
