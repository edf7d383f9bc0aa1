//! Shared integration-test harness: start proxytail in-process on 127.0.0.1:0 (either the whole
//! daemon through `app::run`, or just the HTTP routes around a hand-built [`AppState`] whose hub the
//! test feeds itself), then talk to it with real clients: tokio-tungstenite WebSockets and a minimal
//! HTTP/1.1 client. Every wait has a bound ([`WAIT`] unless told otherwise); nothing sleeps.
//!
//! Each test binary includes it with `mod common;` and uses what it needs. The HTTP client
//! ([`http`]), the routes-only server ([`server`]), users files ([`users`]) and the tracing capture
//! ([`capture`]) are leaf submodules that `tests/auth_support` and `tests/pkg_support` include too,
//! so each exists once.
#![allow(dead_code)]

pub mod capture;
pub mod http;
pub mod server;
pub mod users;

#[allow(unused_imports)]
pub use self::capture::Capture;
#[allow(unused_imports)]
pub use self::http::{basic, get_within, parse_response, request_bytes, HttpResponse};
#[allow(unused_imports)]
pub use self::server::{bind_loopback, serve_routes};
#[allow(unused_imports)]
pub use self::users::{cheap_hash, cheap_params, hash_params};

use futures_util::{SinkExt, StreamExt};
use proxytail::auth::Authenticator;
use proxytail::config::Config;
use proxytail::http::AppState;
use proxytail::hub::{Hub, Record};
use proxytail::shutdown::{self, Control};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Default upper bound for any single wait in a test (a failure bound, not a delay).
pub const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket client connection.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A configuration for tests: a temporary state directory and access log, everything else default.
pub struct TestConfig {
    /// The configuration itself; tweak fields before starting.
    pub config: Config,
    /// Owns the state directory and log file; removed when dropped.
    pub dir: tempfile::TempDir,
}

impl TestConfig {
    /// Defaults plus `extra` command-line arguments (e.g. `["--history", "100"]`).
    pub fn new(extra: &[&str]) -> TestConfig {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        let log = dir.path().join("access.log");
        let mut args: Vec<String> = vec![
            "proxytail".into(),
            "--state-dir".into(),
            state.display().to_string(),
            "--access-log".into(),
            log.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (_, config) = Config::from_args(args).expect("test configuration is valid");
        TestConfig { config, dir }
    }

    /// The access log path the configuration names (not created).
    pub fn access_log(&self) -> PathBuf {
        self.config.access_logs[0].clone()
    }
}

/// The whole daemon (`app::run`) on 127.0.0.1:0 in this runtime. The test keeps the
/// [`TestConfig`], so a second daemon can start on the same state directory after a stop.
pub struct Daemon {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Stop and reload handles.
    pub control: Option<Control>,
    /// `app::run`'s task.
    pub task: JoinHandle<Result<(), proxytail::error::StartupError>>,
}

impl Daemon {
    /// Binds 127.0.0.1:0 and runs `app::run` with `files.config` on it.
    pub async fn start(files: &TestConfig) -> Daemon {
        let listener = bind_loopback();
        let addr = listener.local_addr().expect("local addr");
        let (control, signals) = shutdown::channel();
        let task = tokio::spawn(proxytail::app::run(files.config.clone(), listener, signals));
        Daemon {
            addr,
            control: Some(control),
            task,
        }
    }

    /// Sends the stop signal and waits (bounded) for `app::run` to return.
    pub async fn stop(mut self) -> Result<(), proxytail::error::StartupError> {
        if let Some(control) = self.control.take() {
            let _ = control.stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("daemon stops within the bound")
            .expect("daemon task did not panic")
    }
}

/// Only the HTTP routes, around an [`AppState`] the test builds and feeds (no tailer).
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The state the routes use: publish into `state.hub`, mint with `state.tokens`.
    pub state: AppState,
    /// Keeps the temp files alive.
    pub files: TestConfig,
}

impl Server {
    /// Serves the routes for a state built from `files.config` on 127.0.0.1:0.
    pub async fn start(files: TestConfig) -> Server {
        let config = files.config.clone();
        let auth = Authenticator::load(&config).expect("authenticator");
        let state = serve_routes(config, auth);
        Server {
            addr: state.local_addr,
            state,
            files,
        }
    }

    /// A fresh single-use token.
    pub fn token(&self) -> String {
        self.state.tokens.mint().expect("mint token")
    }

    /// Publishes records `ids` in batches of `batch`.
    pub fn publish(&self, ids: std::ops::RangeInclusive<u64>, batch: usize) {
        publish(&self.state.hub, ids, batch);
    }

    /// `ws://addr/api/ws/logs?{query}`.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/api/ws/logs?{query}", self.addr)
    }

    /// Connects to the stream with `query` (e.g. `token=...&since=5`).
    pub async fn connect(&self, query: &str) -> Client {
        connect(&self.ws_url(query)).await
    }

    /// Connects with a fresh token plus `extra` query (e.g. `&since=5`).
    pub async fn subscribe(&self, extra: &str) -> Client {
        let token = self.token();
        self.connect(&format!("token={token}{extra}")).await
    }

    /// Stops like `app::run` does: cancel, close the tracker, wait (bounded) for every task.
    pub async fn stop(&self) {
        self.state.shutdown.cancel();
        self.state.tracker.close();
        tokio::time::timeout(WAIT, self.state.tracker.wait())
            .await
            .expect("every task ends within the bound");
    }
}

/// A record whose JSON is a realistic entry (about 300 bytes, plus `pad` bytes of URL path).
pub fn record_padded(id: u64, pad: usize) -> Record {
    let destination = format!("http://example.com/{id}/{}", "x".repeat(pad));
    let mut entry = parsers::Entry {
        time: Some(parsers::Timestamp::new(1_774_449_130, 123)),
        client_ip: Some("192.168.1.10".into()),
        method: Some("GET".into()),
        destination: Some(destination.into()),
        code: Some(200),
        bytes: Some(4096),
        elapsed_ms: Some(85),
        result: Some("TCP_MISS".into()),
        hierarchy: Some("HIER_DIRECT".into()),
        peer: Some("93.184.216.34".into()),
        content_type: Some("text/html".into()),
        ..Default::default()
    };
    Record::new(id, &mut entry)
}

/// A record with a realistic entry.
pub fn record(id: u64) -> Record {
    record_padded(id, 0)
}

/// Publishes records `ids` into `hub` in batches of `batch`.
pub fn publish(hub: &Hub, ids: std::ops::RangeInclusive<u64>, batch: usize) {
    let ids: Vec<u64> = ids.collect();
    for chunk in ids.chunks(batch.max(1)) {
        hub.publish(chunk.iter().map(|&id| record(id)).collect());
    }
}

/// Connects a WebSocket client to `url`; panics on failure.
pub async fn connect(url: &str) -> Client {
    try_connect(url, &[]).await.expect("WebSocket handshake")
}

/// Connects with extra request headers; returns the handshake error (e.g. HTTP 403) as is.
pub async fn try_connect(
    url: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            *name,
            HeaderValue::from_str(value).expect("valid header value"),
        );
    }
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake within the bound")?;
    Ok(ws)
}

/// What the next frame of interest from the server was.
#[derive(Debug)]
pub enum Event {
    /// A text frame.
    Text(String),
    /// A Close frame: code and reason (1005 when it had none).
    Close(u16, String),
    /// The connection ended without a Close frame (EOF or an I/O error).
    Gone(String),
}

/// The next text or Close frame (Ping/Pong/binary are skipped), within `bound`.
pub async fn next_event_within(ws: &mut Client, bound: Duration) -> Event {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame within the bound");
        match frame {
            None => return Event::Gone("end of stream".into()),
            Some(Err(e)) => return Event::Gone(e.to_string()),
            Some(Ok(Message::Text(t))) => return Event::Text(t.to_string()),
            Some(Ok(Message::Close(frame))) => {
                // Poll once more so the client sends its answering Close, as a browser does, and
                // the server's closing handshake completes; this ends when the server hangs up.
                let _ = tokio::time::timeout_at(deadline, ws.next()).await;
                return match frame {
                    Some(CloseFrame { code, reason }) => {
                        Event::Close(u16::from(code), reason.to_string())
                    }
                    None => Event::Close(1005, String::new()),
                };
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// The next text or Close frame within [`WAIT`].
pub async fn next_event(ws: &mut Client) -> Event {
    next_event_within(ws, WAIT).await
}

/// Expects a Close frame before any text frame; returns its code and reason.
pub async fn expect_close(ws: &mut Client) -> (u16, String) {
    match next_event(ws).await {
        Event::Close(code, reason) => (code, reason),
        other => panic!("expected a Close frame first, got {other:?}"),
    }
}

/// Reads exactly `n` entries (text frames parsed as JSON) and returns their ids; panics on a Close,
/// a non-JSON text or the bound.
pub async fn read_ids(ws: &mut Client, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        match next_event(ws).await {
            Event::Text(t) => ids.push(entry_id(&t)),
            other => panic!(
                "after {} entries: expected an entry, got {other:?}",
                ids.len()
            ),
        }
    }
    ids
}

/// Reads exactly `n` entries and returns them parsed; panics on a Close, a non-JSON text or the bound.
pub async fn read_entries(ws: &mut Client, n: usize) -> Vec<serde_json::Value> {
    let mut entries = Vec::with_capacity(n);
    while entries.len() < n {
        match next_event(ws).await {
            Event::Text(t) => entries.push(
                serde_json::from_str(&t).unwrap_or_else(|e| panic!("entry is JSON ({e}): {t}")),
            ),
            other => panic!(
                "after {} entries: expected an entry, got {other:?}",
                entries.len()
            ),
        }
    }
    entries
}

/// The `id` field of an entry's JSON text.
pub fn entry_id(text: &str) -> u64 {
    // Fast path for the daemon's own serialization (`id` is always the first key).
    if let Some(rest) = text.strip_prefix("{\"id\":") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(id) = rest[..digits].parse() {
            return id;
        }
    }
    let v: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("entry is JSON ({e}): {text}"));
    v["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("entry has an id: {text}"))
}

/// Sends a client text message.
pub async fn send_text(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.expect("send text");
}

/// Runs the client side of a closing handshake (Close 1000) and returns the server's answer.
pub async fn close_handshake(ws: &mut Client) -> Event {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.close(Some(frame)).await.expect("send Close");
    next_event(ws).await
}

/// Checks that nothing but the given text arrives before a `ping`→`pong` round trip: sends `ping`
/// and returns every text frame received up to (excluding) the `pong`.
pub async fn texts_until_pong(ws: &mut Client) -> Vec<String> {
    send_text(ws, "ping").await;
    let mut seen = Vec::new();
    loop {
        match next_event(ws).await {
            Event::Text(t) if t == "pong" => return seen,
            Event::Text(t) => seen.push(t),
            other => panic!("expected pong, got {other:?}"),
        }
    }
}

/// `GET path` over a fresh HTTP/1.1 connection with `Connection: close` and extra `headers`,
/// within [`WAIT`].
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    get_within(addr, path, headers, WAIT).await
}

/// Password of the `alice` user that [`write_users`] creates.
pub const PASSWORD: &str = "correct horse battery staple";

/// Writes a users file with `alice` (a cheap Argon2id hash of [`PASSWORD`]) into `dir`.
pub fn write_users(dir: &std::path::Path) -> PathBuf {
    users::write_users(dir, &[("alice", PASSWORD)])
}

/// A WebSocket token from `/api/ws-token` with `alice`'s Basic credentials.
pub async fn fetch_token(addr: SocketAddr) -> String {
    let credentials = basic("alice", PASSWORD);
    let response = http_get(
        addr,
        "/api/ws-token",
        &[("authorization", credentials.as_str())],
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    response.json()["token"].as_str().expect("token").to_owned()
}
