//! Shared integration-test harness: start proxytail in-process on 127.0.0.1:0 (either the whole
//! daemon through `app::run`, or just the HTTP routes around a hand-built [`AppState`] whose hub the
//! test feeds itself), then talk to it with real clients: tokio-tungstenite WebSockets and a minimal
//! HTTP/1.1 client. Every wait has a bound ([`WAIT`] unless told otherwise); nothing sleeps.
//!
//! Each test binary includes it with `mod common;` and uses what it needs. The HTTP client
//! ([`http`]), the WebSocket client ([`ws`], re-exported whole), the routes-only server
//! ([`server`]), users files ([`users`]) and the tracing capture ([`capture`]) are leaf submodules
//! that `tests/auth_support` and `tests/pkg_support` include too, so each exists once.
#![allow(dead_code)]

pub mod capture;
pub mod http;
pub mod process;
pub mod server;
pub mod users;
pub mod ws;

#[allow(unused_imports)]
pub use self::capture::Capture;
#[allow(unused_imports)]
pub use self::http::{basic, get_within, parse_response, request_bytes, HttpResponse};
#[allow(unused_imports)]
pub use self::server::{bind_loopback, serve_routes};
#[allow(unused_imports)]
pub use self::users::{cheap_hash, cheap_params, hash_params};
pub use self::ws::*;

use proxytail::auth::Authenticator;
use proxytail::config::Config;
use proxytail::http::AppState;
use proxytail::hub::{Hub, Record};
use proxytail::shutdown::{self, Control};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::task::JoinHandle;

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
        TestConfig::in_dir(tempfile::tempdir().expect("temp dir"), extra)
    }

    /// Like [`TestConfig::new`] with `--users` naming a users file in the temporary directory that
    /// holds `alice` ([`write_users`]), so [`fetch_token`] works against it.
    pub fn with_users(extra: &[&str]) -> TestConfig {
        let dir = tempfile::tempdir().expect("temp dir");
        let users = write_users(dir.path()).display().to_string();
        let mut args = vec!["--users", users.as_str()];
        args.extend_from_slice(extra);
        TestConfig::in_dir(dir, &args)
    }

    fn in_dir(dir: tempfile::TempDir, extra: &[&str]) -> TestConfig {
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

    /// Connects to the stream with a fresh token from [`fetch_token`] (the configuration must name
    /// a users file with `alice`, as [`TestConfig::with_users`] does) plus `extra` query
    /// (e.g. `&since=0`).
    pub async fn subscribe(&self, extra: &str) -> Client {
        let token = fetch_token(self.addr).await;
        connect(&format!(
            "ws://{}/api/ws/logs?token={token}{extra}",
            self.addr
        ))
        .await
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
        self.state.tokens.mint(USER).expect("mint token")
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

/// `GET path` over a fresh HTTP/1.1 connection with `Connection: close` and extra `headers`,
/// within [`WAIT`].
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    get_within(addr, path, headers, WAIT).await
}

/// The user that [`write_users`] creates.
pub const USER: &str = "alice";
/// Password of the [`USER`] that [`write_users`] creates.
pub const PASSWORD: &str = "correct horse battery staple";

/// Writes a users file with [`USER`] (a cheap Argon2id hash of [`PASSWORD`]) into `dir`.
pub fn write_users(dir: &std::path::Path) -> PathBuf {
    users::write_users(dir, &[(USER, PASSWORD)])
}

/// A WebSocket token from `/api/ws-token` with [`USER`]'s Basic credentials.
pub async fn fetch_token(addr: SocketAddr) -> String {
    let credentials = basic(USER, PASSWORD);
    let response = http_get(
        addr,
        "/api/ws-token",
        &[("authorization", credentials.as_str())],
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    let json = response.json();
    assert_eq!(json["status"], "success", "{json}");
    json["token"].as_str().expect("token").to_owned()
}
