//! Shared by the reverse proxy tests (`pkg_nginx`, `pkg_apache`, `pkg_caddy`): a real daemon on
//! 127.0.0.1:0 with a users file and a temporary log, a minimal HTTP/1.1 client, WebSocket helpers,
//! and the token + WebSocket flow run through a front end, close codes included.
//! The in-process daemon, its users file and the HTTP/1.1 and WebSocket clients are `tests/common`'s,
//! included here whole.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use common::{
    basic, expect_close, fetch_token, get_within, next_event, send_text, try_connect, Client,
    Event, HttpResponse, TestConfig, USER,
};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Upper bound for any single step; a failure bound, not a delay.
pub const STEP: Duration = Duration::from_secs(10);

/// `GET path` (Connection: close), with `user:password` Basic credentials when given.
pub async fn get(addr: SocketAddr, path: &str, auth: Option<(&str, &str)>) -> HttpResponse {
    let credentials = auth.map(|(user, password)| basic(user, password));
    let headers: Vec<(&str, &str)> = credentials
        .iter()
        .map(|c| ("Authorization", c.as_str()))
        .collect();
    get_within(addr, path, &headers, STEP).await
}

/// A WebSocket client connection.
pub type Ws = Client;

/// Connects to `/api/ws/logs{query}` at `addr` with an `Origin` header; panics unless upgraded.
pub async fn connect(addr: SocketAddr, query: &str, origin: &str) -> Ws {
    try_connect(
        &format!("ws://{addr}/api/ws/logs{query}"),
        &[("Origin", origin)],
    )
    .await
    .expect("handshake")
}

/// The next text message, skipping control frames.
pub async fn next_text(ws: &mut Ws) -> String {
    match next_event(ws).await {
        Event::Text(t) => t,
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The close code the server sends next (no data may come first).
pub async fn close_code(ws: &mut Ws) -> u16 {
    expect_close(ws).await.0
}

/// True if the front end binary exists. Absent outside CI: skip with a message; absent in CI
/// (`CI` set): a failure, since the test would otherwise prove nothing there.
pub fn available(bin: &str, package: &str) -> bool {
    if Path::new(bin).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{bin} is missing in CI: install Debian's {package} (scripts/nginx-test.sh does)"
    );
    eprintln!("skipping: {bin} is absent (apt-get install {package}); CI treats this as a failure");
    false
}

/// A port on 127.0.0.1 that was free a moment ago (front ends need a number in their config).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A temporary directory that front-end workers running as `nobody` (when the test is root) can enter.
pub fn prefix() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A shipped file of `packaging/`, by path relative to it.
pub fn shipped(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(rel)
}

/// Runs `cmd` to completion and panics with its output (and `log`, the front end's error log) on failure.
pub fn run_ok(cmd: &mut Command, log: &Path) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A daemon running in-process on 127.0.0.1:0 (`tests/common`'s) with [`USER`] in an owner-only
/// users file and an empty log.
pub struct Daemon {
    /// Where the daemon listens; the front end's backend.
    pub addr: SocketAddr,
    /// The access log it follows; the flow appends a line to it.
    pub log: PathBuf,
    /// The running daemon; the flow stops it to prove a clean exit.
    daemon: common::Daemon,
    /// Holds the log, users file and state directory.
    _files: TestConfig,
}

impl Daemon {
    /// Starts the daemon (reading the log from its start, trusting X-Forwarded-For from loopback).
    pub async fn start() -> Daemon {
        let files = TestConfig::with_users(&["--from-start", "--trust-forwarded-for"]);
        let log = files.access_log();
        std::fs::write(&log, "").expect("log");
        let users = files.config.users.clone().expect("users file");
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let daemon = common::Daemon::start(&files).await;
        Daemon {
            addr: daemon.addr,
            log,
            daemon,
            _files: files,
        }
    }
}

/// The whole flow through the front end at `front`: the dashboard page and health, 401 with a Basic challenge, a token, an entry
/// streamed for a line appended to the log, ping/pong, close codes 4003 (reused or unknown token)
/// and 4001 (none), 403 for a foreign Origin, and 1001 to the subscriber when the daemon stops.
/// Returns the first token, so the caller can check the front end's access log does not hold it.
pub async fn flow(front: SocketAddr, daemon: Daemon) -> String {
    let origin = format!("http://{front}");

    // The dashboard and the API on the same origin.
    let page = get(front, "/", None).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html")),
        "{page:?}"
    );
    assert!(
        page.text().to_ascii_lowercase().contains("<html"),
        "{page:?}"
    );
    let health = get(front, "/api/health", None).await;
    assert_eq!(health.status, 200, "{health:?}");

    let challenge = get(front, "/api/ws-token", None).await;
    assert_eq!(challenge.status, 401);
    assert!(
        challenge
            .header("www-authenticate")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("basic")),
        "{challenge:?}"
    );
    let wrong = get(front, "/api/ws-token", Some((USER, "wrong"))).await;
    assert_eq!(wrong.status, 401);
    let first = fetch_token(front).await;

    // The stream: a line written to the log arrives as an entry; ping gets pong.
    let mut ws = connect(front, &format!("?token={first}"), &origin).await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&daemon.log)
        .expect("open log");
    writeln!(
        f,
        "1774449130.123     85 192.168.1.10 TCP_TUNNEL/200 4096 CONNECT example.com:443 - HIER_DIRECT/93.184.216.34 -"
    )
    .expect("append");
    let entry: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(entry["id"], 1, "{entry}");
    assert_eq!(entry["destination"], "example.com:443");
    assert_eq!(entry["status"], "200 Connection established");
    send_text(&mut ws, "ping").await;
    assert_eq!(next_text(&mut ws).await, "pong");

    // Close codes through the proxy: reused token 4003, no token 4001, unknown token 4003.
    let mut again = connect(front, &format!("?token={first}"), &origin).await;
    assert_eq!(close_code(&mut again).await, 4003);
    let mut none = connect(front, "", &origin).await;
    assert_eq!(close_code(&mut none).await, 4001);
    let mut bogus = connect(front, "?token=AAAA", &origin).await;
    assert_eq!(close_code(&mut bogus).await, 4003);

    // A foreign Origin is refused at the upgrade, through the proxy too.
    let second = fetch_token(front).await;
    let url = format!("ws://{front}/api/ws/logs?token={second}");
    match try_connect(&url, &[("Origin", "http://evil.example")]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403)
        }
        Ok(mut ws) => panic!(
            "foreign origin accepted; first frame: {:?}",
            next_event(&mut ws).await
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }

    // Shutdown: the subscriber behind the proxy gets 1001, the daemon returns Ok.
    let stop = tokio::spawn(daemon.daemon.stop());
    assert_eq!(close_code(&mut ws).await, 1001);
    stop.await.expect("stop task").expect("clean exit");
    first
}

/// The front end's access log at `path` recorded the token request but not `token` itself: the
/// single-use token travels in the query string, and the shipped snippet keeps it out of the log.
pub fn assert_token_not_logged(path: &Path, token: &str, front_end: &str) {
    let access = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        access.contains("/api/ws-token"),
        "{front_end} logged nothing?\n{access}"
    );
    assert!(
        !access.contains(token),
        "token logged by {front_end}:\n{access}"
    );
}

/// Copies the shipped file `rel` into `dir`, pointing its backend `127.0.0.1:5001` at `backend`
/// (the only change), and returns the copy's path.
pub fn shipped_with_backend(rel: &str, dir: &Path, backend: SocketAddr) -> PathBuf {
    let text = std::fs::read_to_string(shipped(rel)).expect("read shipped snippet");
    assert!(
        text.contains("127.0.0.1:5001"),
        "{rel} does not name the default backend"
    );
    let copy = dir.join(Path::new(rel).file_name().expect("file name"));
    std::fs::write(&copy, text.replace("127.0.0.1:5001", &backend.to_string())).expect("write");
    copy
}

/// Runs `start`, then waits (at most `bound`) until `path` exists and is not empty, driven by
/// inotify events on its directory rather than by polling.
pub fn wait_for_file(path: &Path, bound: Duration, start: impl FnOnce()) {
    use notify::Watcher;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx).expect("watcher");
    watcher
        .watch(
            path.parent().expect("parent"),
            notify::RecursiveMode::NonRecursive,
        )
        .expect("watch");
    start();
    let deadline = std::time::Instant::now() + bound;
    while !std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(_) => {}
            Err(_) => panic!("{} did not appear within {bound:?}", path.display()),
        }
    }
}

/// True when this process runs as root (front ends then drop their workers to `nobody`).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
