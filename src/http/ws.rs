//! `GET /api/ws/logs`: the token-gated WebSocket stream of entries (CONTRACT.md §2, §6, §11).
//!
//! Before the upgrade: the `Origin` check (HTTP 403). After it, in this order: a connection slot
//! (refused → Close 1013), no or empty token → 4001, a token that is unknown, expired or used →
//! 4003, a bad `since`/`backlog`/`from`/`until` → 1008, a bad `filter` → 1008 naming the problem; then replay and
//! live. The caps answer after the upgrade (1013 "try again later") rather than with an HTTP 503,
//! because a browser cannot read the status of a failed handshake; the slot is taken before the
//! token is consumed, so a refused client keeps its token and may retry with it, and given back
//! before a refused client is told why, so a client without a valid token never holds one while its
//! closing handshake (at most [`REFUSED_CLOSE_TIMEOUT`]) runs. The Origin check stays an HTTP 403:
//! a page on a foreign origin gets nothing to read at all.
//!
//! The handshake is [`super::upgrade`]'s (tokio-tungstenite under warp's routing, so an entry's JSON
//! is shared by every subscriber, never copied per subscriber); it spawns the socket task, and a
//! [`TaskTracker`](tokio_util::task::TaskTracker) token taken when the request arrives keeps it
//! counted, so shutdown waits for upgrades already under way.
//!
//! One task per socket runs one `select!` over the client's frames, the subscription, the write in
//! progress, the keep-alive timers and the daemon's shutdown token. The replay-then-live protocol
//! (start, filter, seam, budget, gaps, 4008) is the hub's [`Subscription`]; this file keeps sockets,
//! frames and close codes. Writes never block the loop: what the subscription hands out (at most its
//! byte budget) waits in an outbox that a select branch drains (feed every record, then one flush:
//! one `write` for everything queued, however many entries),
//! and the subscription is only asked for more when the outbox is empty, so a slow client costs at
//! most its budget queued plus the take being written, never the tailer's time. A subscriber whose
//! writes make no progress for [`STALL`] while it is behind the memory history has stopped reading:
//! it is closed 4008 (a slow reader, however far behind, continues from the journal).
use super::origin_allowed;
use super::upgrade::{self, Socket, Upgrade};
use super::{AppState, Connections};
use crate::filter::Filter as EntryFilter;
use crate::hub::{Next, Record, Start, Subscription};
use crate::metrics::Metrics;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, StreamExt};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::Filter;

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
/// tungstenite's read buffer: allocated per connection up front, and zeroed up to this size each
/// time the read half is polled, which the session loop does on every wake-up (BENCHMARKS §13: the
/// default, 128 KiB, was most of a connection's memory and a 128 KiB `memset` per entry sent).
/// Clients send little (`ping`, Pong, Close); a larger frame is read in several reads, its buffer
/// growing as needed up to [`MAX_FRAME`].
const READ_BUFFER: usize = 1024;
/// tungstenite writes its buffer to the socket once it holds this much, and at every flush (the
/// session flushes once per wake-up, so live entries still go out in one write). Its default, 128
/// KiB, let a catch-up take of up to the byte budget leave a buffer of 256 KiB allocated per
/// connection for good; this keeps it near 32 KiB for a few more writes per take.
const WRITE_BUFFER: usize = 16 * 1024;
/// How long a closing handshake may take when the daemon is not stopping; the socket is dropped after.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the closing handshake may take when the daemon is stopping (below `shutdown::GRACE`).
pub const SHUTDOWN_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the closing handshake may take for a client refused before streaming (cap, token,
/// parameters; CONTRACT §11): it holds no slot meanwhile, but its socket is dropped soon.
pub const REFUSED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest close reason that fits a Close frame (125 bytes of payload minus the code).
const MAX_CLOSE_REASON: usize = 123;
/// A subscriber behind the memory history (CONTRACT §11) whose writes made no progress for this
/// long is closed 4008: a reader that is merely slow takes something every few milliseconds, one
/// that stopped would otherwise hold its slot and its budget for good. Checked on a timer
/// ([`STALL_CHECK`]), since a flood that passed it may have stopped.
pub const STALL: Duration = Duration::from_secs(5);
/// How often a stalled write is looked at (only while one is in progress).
const STALL_CHECK: Duration = Duration::from_secs(1);
/// Pongs waiting behind a stalled write; a client that sends more pings than this without reading is
/// closed (1008) rather than buffered for.
const MAX_PENDING_CONTROL: usize = 64;

// Coalescing at high fan-out (issue 14, BENCHMARKS §17, §20). Each write to a socket costs the
// daemon a `sendto` through the loopback stack, several µs, whether it carries one entry or ten, and
// costs the reader one wake-up and one read: at 1,000 subscribers and 1,000 lines/s, one write per
// entry per subscriber saturated the machine and the p99 became queueing (seconds). Past
// `COALESCE_FROM` subscribers, a session that has just taken entries takes again only after a
// delay that grows with the fan-out, so what arrives meanwhile leaves in one write. The delay
// bounds the writes of all sessions together (subscribers ÷ delay ≤ 1 ÷ `COALESCE_PER_SUBSCRIBER`
// = 50,000 per second) rather than each session's; the first entry after a quiet spell still
// leaves at once. Below the threshold the delay is zero: at 100 subscribers the p99 goal is 2 ms,
// and one write per entry is affordable there. At 1,000 subscribers the delay is 20 ms: on the
// 2-core machine, where daemon and readers share the cores, 10 ms left both cores full and the p99
// at 33–65 ms; 20 ms took a quarter of the daemon's CPU and gave 35–45 ms (§20).
/// Subscribers connected up to which a session never waits before taking.
const COALESCE_FROM: u64 = 128;
/// A session's wait between two takes, per subscriber connected (past `COALESCE_FROM`).
const COALESCE_PER_SUBSCRIBER: Duration = Duration::from_micros(20);
/// Longest wait between two takes, whatever the fan-out.
const COALESCE_MAX: Duration = Duration::from_millis(20);

/// How long a session waits after a take before the next, with `subscribers` connected.
fn coalesce_delay(subscribers: u64) -> Duration {
    if subscribers <= COALESCE_FROM {
        return Duration::ZERO;
    }
    let n = u32::try_from(subscribers).unwrap_or(u32::MAX);
    COALESCE_PER_SUBSCRIBER.saturating_mul(n).min(COALESCE_MAX)
}

/// Close codes and reasons sent by this endpoint.
pub mod close {
    /// No `token` parameter, or an empty one.
    pub const TOKEN_MISSING: (u16, &str) = (4001, "Token not provided");
    /// The token is unknown, expired or already used.
    pub const TOKEN_INVALID: (u16, &str) = (4003, "Token invalid, expired, or already used");
    /// The subscriber stopped reading while behind the history (or fell behind it without a
    /// journal to continue from).
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
    /// The `until` of the requested window was reached (CONTRACT §8).
    pub const WINDOW_END: (u16, &str) = (1000, "End of the requested time window");
    /// A connection cap was reached; the token was not consumed and may be retried.
    pub const TRY_AGAIN: (u16, &str) = (1013, "Too many connections; try again later");
}

/// The `GET /api/ws/logs` route.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    warp::path!("api" / "ws" / "logs")
        // warp's checks of the handshake request (and its rejections); the upgrade itself is ours.
        .and(warp::ws())
        .and(warp::header::value("sec-websocket-key"))
        .and(warp::ext::optional::<Upgrade>())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(super::client::address(state.config.trust_forwarded_for))
        // Pairs never fail to decode (a typed struct would, and warp logs the query on failure).
        .and(warp::query::<Vec<(String, String)>>())
        .map(
            move |_: warp::ws::Ws,
                  key: HeaderValue,
                  handle: Option<Upgrade>,
                  origin: Option<String>,
                  host: Option<String>,
                  peer: IpAddr,
                  query: Vec<(String, String)>| {
                upgrade(
                    &state,
                    (handle, &key),
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
    /// `filter` as sent, compiled after the token; its presence also turns on gap messages.
    filter: Option<String>,
    /// `from` as sent (RFC 3339 or epoch seconds), validated after the token.
    from: Option<String>,
    /// `until` as sent, validated after the token.
    until: Option<String>,
}

impl Params {
    fn from_query(query: Vec<(String, String)>) -> Params {
        let mut p = Params::default();
        for (key, value) in query {
            let slot = match key.as_str() {
                "token" => &mut p.token,
                "since" => &mut p.since,
                "backlog" => &mut p.backlog,
                "filter" => &mut p.filter,
                "from" => &mut p.from,
                "until" => &mut p.until,
                _ => continue,
            };
            // The first occurrence wins.
            slot.get_or_insert(value);
        }
        p
    }
}

/// Where the stream starts; `since` wins over `backlog` when both are given.
fn parse_start(p: &Params) -> Result<Start, ()> {
    if let Some(s) = &p.since {
        return s.parse().map(Start::Since).map_err(|_| ());
    }
    if let Some(b) = &p.backlog {
        return b.parse().map(Start::Backlog).map_err(|_| ());
    }
    Ok(Start::Live)
}

/// A time as epoch milliseconds: epoch seconds (fractions allowed) or RFC 3339.
fn parse_time(s: &str) -> Option<i64> {
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = s.parse().ok()?;
        // Beyond year 9999 is certainly a mistake (and keeps the product in range).
        return (secs < 253_402_300_800.0).then(|| (secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The `from` and `until` of a time window (epoch ms), or the close reason naming the problem.
fn parse_window(p: &Params) -> Result<(Option<i64>, Option<i64>), &'static str> {
    let from = match &p.from {
        Some(s) => Some(parse_time(s).ok_or("Invalid from: expected RFC 3339 or epoch seconds")?),
        None => None,
    };
    let until = match &p.until {
        Some(s) => Some(parse_time(s).ok_or("Invalid until: expected RFC 3339 or epoch seconds")?),
        None => None,
    };
    if let (Some(f), Some(u)) = (from, until) {
        if u <= f {
            return Err("Invalid window: until must be after from");
        }
    }
    Ok((from, until))
}

/// `reason` cut to fit a Close frame, on a character boundary.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Decides before the upgrade (Origin → 403), reserves a slot, then upgrades.
fn upgrade(
    state: &AppState,
    (handle, key): (Option<Upgrade>, &HeaderValue),
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
    // Counted by the tracker from now on, so shutdown waits for an upgrade already under way.
    let tracked = state.tracker.token();
    let state = state.clone();
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_FRAME))
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    upgrade::switch(handle, key, config, move |socket| async move {
        session(socket, state, peer, params).await;
        drop(tracked);
    })
}

/// One upgraded connection, from the checks to the last frame.
async fn session(socket: Socket, state: AppState, peer: IpAddr, params: Params) {
    let (sink, stream) = socket.split();
    let mut conn = Conn::new(sink, stream, state.shutdown.clone());
    let Some(slot) = state.connections.try_acquire(
        peer,
        state.config.max_connections,
        state.config.max_connections_per_ip,
    ) else {
        tracing::info!(%peer, "WebSocket refused: connection cap reached");
        return conn
            .refuse(close::TRY_AGAIN.0, close::TRY_AGAIN.1.into())
            .await;
    };
    let refusal = check(&state, &params, peer);
    let (start, until, view, filter) = match refusal {
        Ok(accepted) => accepted,
        Err((code, reason)) => {
            drop(slot);
            return conn.refuse(code, reason).await;
        }
    };
    if state.shutdown.is_cancelled() {
        return conn.close(close::GOING_AWAY).await;
    }
    tracing::debug!(%peer, ?start, "WebSocket subscriber connected");
    // A subscriber with a view is filtered even when it sent none, so it is told of gaps too.
    let gaps = params.filter.is_some() || !view.is_all();
    let sub = Subscription::with_view(
        state.hub.clone(),
        start,
        &view,
        &filter,
        state.config.subscriber_buffer_bytes,
    )
    .until(until);
    let close_code = match conn.stream_entries(sub, gaps, &state.metrics).await {
        End::Client => None,
        End::Closed(code) => {
            state.metrics.subscriber_closed(code);
            Some(code)
        }
    };
    drop(slot);
    tracing::debug!(%peer, ?close_code, "WebSocket subscriber gone");
}

/// What an accepted subscriber asked for: where to start, the window's end (epoch ms), the token
/// minter's view and the requested filter.
type Accepted = (Start, Option<i64>, EntryFilter, EntryFilter);

/// The token (consumed here), then the parameters; or the close to refuse with.
fn check(
    state: &AppState,
    params: &Params,
    peer: IpAddr,
) -> Result<Accepted, (u16, Cow<'static, str>)> {
    let token = params.token.as_deref().unwrap_or("");
    if token.is_empty() {
        tracing::debug!(%peer, "WebSocket closed: no token");
        return Err((close::TOKEN_MISSING.0, close::TOKEN_MISSING.1.into()));
    }
    let Ok(view) = state.tokens.consume(token) else {
        tracing::info!(%peer, "WebSocket closed: token invalid, expired or already used");
        return Err((close::TOKEN_INVALID.0, close::TOKEN_INVALID.1.into()));
    };
    let mut start = parse_start(params).map_err(|()| (close::POLICY.0, close::POLICY.1.into()))?;
    let (from, until) = parse_window(params).map_err(|why| (close::POLICY.0, why.into()))?;
    // `since` wins over `from`, `from` over `backlog`.
    if let (Some(ms), Start::Live | Start::Backlog(_)) = (from, start) {
        start = Start::From(ms);
    }
    let filter = EntryFilter::parse(params.filter.as_deref().unwrap_or(""))
        .map_err(|e| (close::POLICY.0, Cow::Owned(close_reason(&e.to_string()))))?;
    Ok((start, until, view, filter))
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
    sink: SplitSink<Socket, Message>,
    /// Read half, polled on every loop turn so Pings and Closes from the client are answered.
    stream: SplitStream<Socket>,
    /// Frames fed to `sink` by the next drive; at most one take from the subscription (its byte
    /// budget) plus a few control frames.
    outbox: VecDeque<Out>,
    /// Control frames and pongs in `outbox`, bounded by `MAX_PENDING_CONTROL`.
    pending_control: usize,
    /// Something was fed or queued and not yet flushed: the drive branch is active, the
    /// subscription is not asked for more.
    dirty: bool,
    /// The daemon's shutdown token.
    shutdown: tokio_util::sync::CancellationToken,
}

impl Conn {
    fn new(
        sink: SplitSink<Socket, Message>,
        stream: SplitStream<Socket>,
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

    /// Replay, then live, until the client leaves or the server closes. `gaps`: the client sent a
    /// filter, so it is told about lost entries (CONTRACT §6); others see the jump in ids.
    async fn stream_entries(
        &mut self,
        mut sub: Subscription,
        gaps: bool,
        metrics: &Metrics,
    ) -> End {
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One timer for the session, pushed forward only when it fires early: a fresh `sleep` per
        // loop turn would register and cancel a timer on every wake (twice per take).
        let idle = sleep_until(last_heard + IDLE_TIMEOUT);
        tokio::pin!(idle);
        // The stall watch, polled only while a write is in progress: `written` says a write
        // completed since the last look (so the first look at every write starts its clock),
        // `left` is the outbox's length at the last look (it shrinks as the client reads).
        let stall_check = sleep_until(Instant::now() + STALL_CHECK);
        tokio::pin!(stall_check);
        let (mut written, mut left, mut stuck_since) = (true, 0usize, Instant::now());
        // The coalescing wait after a take (`coalesce_delay`), armed only at high fan-out.
        let hold = sleep_until(last_heard);
        tokio::pin!(hold);
        let mut held = false;
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
                sent = drive(&mut self.sink, &mut self.outbox, &mut self.pending_control), if self.dirty => {
                    if sent.is_err() {
                        return End::Client;
                    }
                    self.dirty = false;
                    written = true;
                }
                () = &mut stall_check, if self.dirty => {
                    let now = Instant::now();
                    if written || self.outbox.len() < left {
                        stuck_since = now;
                    }
                    (written, left) = (false, self.outbox.len());
                    if now.duration_since(stuck_since) >= STALL && sub.behind() {
                        return self.close_end(close::TOO_SLOW).await;
                    }
                    stall_check.as_mut().reset(now + STALL_CHECK);
                }
                // More only once the outbox is written.
                next = async {
                    if held {
                        hold.as_mut().await;
                    }
                    sub.next().await
                }, if !self.dirty => {
                    held = false;
                    match next {
                        Next::Entries(records) => {
                            // Counted here, the one place entries leave the subscription.
                            metrics.entries_sent(records.len());
                            self.outbox.extend(records.into_iter().map(Out::Record));
                            self.dirty = true;
                            let delay = coalesce_delay(sub.subscribers());
                            if !delay.is_zero() {
                                hold.as_mut().reset(Instant::now() + delay);
                                held = true;
                            }
                        }
                        Next::Gap { after, before } => {
                            let gap = format!(r#"{{"type":"gap","after":{after},"before":{before}}}"#);
                            if gaps && !self.push_control(Message::text(gap)) {
                                return self.close_end(close::FLOOD).await;
                            }
                        }
                        Next::Gone => return self.close_end(close::TOO_SLOW).await,
                        Next::End => {
                            // What is already queued goes out before the Close frame.
                            if self.dirty && drive(&mut self.sink, &mut self.outbox, &mut self.pending_control).await.is_err() {
                                return End::Client;
                            }
                            return self.close_end(close::WINDOW_END).await;
                        }
                    }
                }
                _ = ping.tick() => {
                    if !self.push_control(Message::Ping(Bytes::new())) {
                        return self.close_end(close::FLOOD).await;
                    }
                }
                () = &mut idle => {
                    let deadline = last_heard + IDLE_TIMEOUT;
                    if deadline > Instant::now() {
                        idle.as_mut().reset(deadline);
                    } else {
                        return self.close_end(close::IDLE).await;
                    }
                }
            }
        }
    }

    /// Handles one client message.
    fn on_client_message(&mut self, msg: Message) -> Heard {
        match msg {
            Message::Close(_) => Heard::Closed,
            Message::Binary(_) => Heard::Refuse(close::BINARY),
            Message::Text(text) if text.len() > MAX_CLIENT_TEXT => Heard::Refuse(close::TOO_BIG),
            Message::Text(text) if text.as_str() == "ping" => {
                if self.push_control(Message::text("pong")) {
                    Heard::Fine
                } else {
                    Heard::Refuse(close::FLOOD)
                }
            }
            // Ping (answered by tungstenite on the next read), Pong, other text: nothing to do.
            _ => Heard::Fine,
        }
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

    /// Closes a streaming subscriber with `code`: the one place its close code is decided.
    async fn close_end(&mut self, code: (u16, &'static str)) -> End {
        if code == close::TOO_SLOW {
            tracing::info!("WebSocket subscriber too slow: closing 4008");
        }
        self.close(code).await;
        End::Closed(code.0)
    }

    /// Sends Close `code` after whatever is already on its way (pending entries are dropped), then
    /// waits for the client's Close (or the end of the stream), both bounded in time.
    async fn close(&mut self, (code, reason): (u16, &'static str)) {
        let stopping = (code, reason) == close::GOING_AWAY;
        let limit = if stopping {
            SHUTDOWN_CLOSE_TIMEOUT
        } else {
            CLOSE_TIMEOUT
        };
        self.close_within(code, reason.into(), limit, stopping)
            .await;
    }

    /// Closes a client refused before streaming, waiting at most [`REFUSED_CLOSE_TIMEOUT`].
    async fn refuse(&mut self, code: u16, reason: Cow<'static, str>) {
        self.close_within(code, reason, REFUSED_CLOSE_TIMEOUT, false)
            .await;
    }

    /// Sends Close and waits for the client's (or the end of the stream) at most `limit`; a daemon
    /// stop cuts that short unless this close is the stop's own.
    async fn close_within(
        &mut self,
        code: u16,
        reason: Cow<'static, str>,
        limit: Duration,
        stopping: bool,
    ) {
        self.outbox.clear();
        self.pending_control = 0;
        self.outbox
            .push_back(Out::Other(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: Utf8Bytes::from(reason.as_ref()),
            }))));
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
fn read_error_close(e: &WsError) -> (u16, &'static str) {
    if matches!(e, WsError::Capacity(_)) {
        close::TOO_BIG
    } else {
        close::PROTOCOL
    }
}

/// Feeds every queued frame to the sink, then flushes once. Cancel-safe: what is not yet fed stays
/// in `outbox`.
async fn drive(
    sink: &mut SplitSink<Socket, Message>,
    outbox: &mut VecDeque<Out>,
    pending_control: &mut usize,
) -> Result<(), WsError> {
    std::future::poll_fn(|cx: &mut Context<'_>| -> Poll<Result<(), WsError>> {
        loop {
            if outbox.is_empty() {
                return Pin::new(&mut *sink).poll_flush(cx);
            }
            ready!(Pin::new(&mut *sink).poll_ready(cx))?;
            let msg = match outbox.pop_front() {
                // The record's bytes, shared: no copy per subscriber. Checked for UTF-8 once, when
                // the record was made, not again per subscriber (a text frame built from a `Frame`
                // is not checked by tungstenite); a record that failed goes out empty, as
                // `Record::text` has it.
                Some(Out::Record(r)) if r.utf8_json().is_some() => {
                    Message::Frame(Frame::message(r.json, OpCode::Data(Data::Text), true))
                }
                Some(Out::Record(_)) => Message::Text(Utf8Bytes::default()),
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
    use std::net::SocketAddr;

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
        assert_eq!(parse_start(&p), Ok(Start::Since(7)));
        let p = Params::from_query(vec![("backlog".into(), "-1".into())]);
        assert_eq!(parse_start(&p), Err(()));
        assert_eq!(parse_start(&Params::default()), Ok(Start::Live));
        assert_eq!(close_reason(&"é".repeat(100)).len(), 122);
    }

    #[test]
    fn times_are_rfc3339_or_epoch_seconds_and_a_window_must_be_ordered() {
        assert_eq!(parse_time("1774449130.5"), Some(1_774_449_130_500));
        assert_eq!(parse_time("2026-03-25T14:32:10Z"), Some(1_774_449_130_000));
        assert_eq!(
            parse_time("2026-03-25T15:32:10+01:00"),
            Some(1_774_449_130_000)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("1e3"), None);
        let p = |from: &str, until: &str| {
            parse_window(&Params::from_query(vec![
                ("from".into(), from.into()),
                ("until".into(), until.into()),
            ]))
        };
        assert_eq!(p("10", "20"), Ok((Some(10_000), Some(20_000))));
        assert!(p("20", "10")
            .unwrap_err()
            .contains("until must be after from"));
        assert!(p("x", "10").unwrap_err().contains("from"));
        assert!(p("10", "x").unwrap_err().contains("until"));
    }

    #[test]
    fn sessions_coalesce_only_past_the_threshold_and_never_longer_than_the_cap() {
        assert_eq!(coalesce_delay(1), Duration::ZERO);
        assert_eq!(coalesce_delay(COALESCE_FROM), Duration::ZERO);
        assert_eq!(coalesce_delay(1_000), Duration::from_millis(20));
        assert_eq!(coalesce_delay(u64::MAX), COALESCE_MAX);
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
