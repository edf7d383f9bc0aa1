//! Shared helpers of the `auth_*` tests: cheap Argon2 hashes, an in-process server on 127.0.0.1:0
//! around a real `AppState`, and a raw HTTP/1.1 client.
#![allow(dead_code)]

use argon2::{Algorithm, Params, Version};
use base64::Engine;
use proxytail::auth::users::{hash_password_with, HashParams};
use proxytail::auth::Authenticator;
use proxytail::config::Config;
use proxytail::http::{AppState, Connections};
use proxytail::hub::Hub;
use proxytail::tokens::TokenStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Upper bound on any single HTTP exchange in these tests (a failure bound, not a delay).
pub const IO_BOUND: Duration = Duration::from_secs(30);

/// Cheap Argon2id parameters for tests: m=1024 KiB, t=1, p=1.
pub fn cheap_params() -> HashParams {
    HashParams {
        algorithm: Algorithm::Argon2id,
        version: Version::V0x13,
        params: Params::new(1024, 1, 1, None).unwrap(),
    }
}

/// A cheap Argon2id PHC string of `password`.
pub fn cheap_hash(password: &str) -> String {
    hash_password_with(password, &cheap_params()).unwrap()
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Writes a users file into `dir` and returns its path.
pub fn write_users(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("# test users\n\n");
    for (name, password) in users {
        text.push_str(&format!("{name}:{}\n", cheap_hash(password)));
    }
    let path = dir.join("users");
    std::fs::write(&path, text).unwrap();
    path
}

/// A validated config from command-line style `args` (program name added).
pub fn config(args: &[&str]) -> Config {
    let mut argv = vec!["proxytail"];
    argv.extend_from_slice(args);
    Config::from_args(argv).unwrap().1
}

/// A server bound to 127.0.0.1:0 serving every route; stopped when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The state its routes use (authenticator counters, token store).
    pub state: AppState,
    /// Cancels the server on drop.
    stop: CancellationToken,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts a server with the authenticator loaded from `config`.
pub async fn serve(config: Config) -> TestServer {
    let auth = Authenticator::load(&config).unwrap();
    serve_with(config, auth).await
}

/// Starts a server around `auth`.
pub async fn serve_with(config: Config, auth: Authenticator) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let state = AppState {
        hub: Arc::new(Hub::new(config.history)),
        auth: Arc::new(auth),
        tokens: Arc::new(TokenStore::new(config.token_ttl)),
        health: Arc::default(),
        config: Arc::new(config),
        local_addr: addr,
        shutdown: stop.clone(),
        tracker: TaskTracker::new(),
        connections: Arc::new(Connections::default()),
    };
    let server = warp::serve(proxytail::http::routes(state.clone()))
        .incoming(listener)
        .graceful(stop.clone().cancelled_owned());
    tokio::spawn(server.run());
    TestServer { addr, state, stop }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// `GET path` with `headers` over a fresh connection (`Connection: close`).
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    tokio::time::timeout(IO_BOUND, get_inner(addr, path, headers))
        .await
        .expect("HTTP exchange within the bound")
}

async fn get_inner(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&request_bytes(path, headers))
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse_reply(&raw)
}

/// The bytes of a `GET` request.
pub fn request_bytes(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Parses a complete HTTP/1.1 response with a `Content-Length` (or read-to-close) body.
pub fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("complete head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Asserts the headers every token-endpoint reply carries, and that no CORS header is present.
pub fn assert_common_headers(reply: &Reply) {
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    assert!(
        !reply
            .headers
            .iter()
            .any(|(n, _)| n.starts_with("access-control-")),
        "no CORS header: {reply:?}"
    );
}
