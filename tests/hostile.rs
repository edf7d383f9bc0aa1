//! Hostile clients against the real binary (CONTRACT §11, RELIABILITY 63-71): each test starts
//! `proxytail` as a child process with the shipped defaults (only what the attack needs is set) and
//! attacks it the way issue 9 did. Every wait is bounded; every load loop is bounded by count.
mod common;

use common::process::{LogTail, Proc};
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A scratch directory with an empty access log, a state directory and a users file.
struct Scratch {
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("access.log");
        std::fs::write(&log, "").expect("log");
        std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
        Scratch { dir, log }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The daemon's arguments: loopback port 0, this log and state directory, plus `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--access-log".into(),
            self.log.display().to_string(),
            "--state-dir".into(),
            self.path("state").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// A users file in `dir` with `users` hashed with the shipped default Argon2 parameters.
fn default_cost_users(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let mut text = String::new();
    for (name, password) in users {
        let hash = proxytail::auth::users::hash_password(password).expect("hash");
        text.push_str(&format!("{name}:{hash}\n"));
    }
    let path = dir.join("users");
    std::fs::write(&path, text).expect("users file");
    path
}

/// A field of /proc/PID/status in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// RELIABILITY 63: 40 wrong and 40 right sign-ins with the default Argon2 parameters, sequential
/// then 8 at a time; the peak RSS (the kernel's high-water mark) stays within 64 MB, with no
/// MALLOC_* setting in the daemon's environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_do_not_grow_memory() {
    const LIMIT_KB: u64 = 64 * 1000;
    let scratch = Scratch::new();
    let users = default_cost_users(scratch.dir.path(), &[(USER, PASSWORD)]);
    // Each attempt claims its own address so the brute-force lockout stays out of the way.
    let args = scratch.args(&[
        "--users",
        users.to_str().expect("path"),
        "--trust-forwarded-for",
    ]);
    assert!(
        std::env::vars().all(|(k, _)| !k.starts_with("MALLOC_")),
        "the test environment must not tune the allocator"
    );
    let daemon = Proc::start(&args, &LogTail::default(), WAIT);
    let pid = daemon.pid();
    eprintln!("sign-ins: RSS at start {} kB", status_kb(pid, "VmRSS"));
    let right = basic(USER, PASSWORD);
    let wrong = basic(USER, "wrong");
    let attempt = |i: usize| {
        let (addr, right, wrong) = (daemon.addr, right.clone(), wrong.clone());
        async move {
            let good = i % 2 == 0;
            let ip = format!("10.0.{}.{}", i / 256, i % 256);
            let auth = if good { right } else { wrong };
            let r = get_within(
                addr,
                "/api/ws-token",
                &[("authorization", &auth), ("x-forwarded-for", &ip)],
                Duration::from_secs(30),
            )
            .await;
            assert_eq!(r.status, if good { 200 } else { 401 }, "{r:?}");
        }
    };
    for i in 0..80 {
        attempt(i).await;
        let rss = status_kb(pid, "VmRSS");
        assert!(
            rss <= LIMIT_KB,
            "RSS {rss} kB after {} sequential sign-ins",
            i + 1
        );
    }
    for round in 0..10 {
        let tasks: Vec<_> = (0..8)
            .map(|k| tokio::spawn(attempt(1000 + round * 8 + k)))
            .collect();
        for t in tasks {
            t.await.expect("attempt task");
        }
        let rss = status_kb(pid, "VmRSS");
        assert!(
            rss <= LIMIT_KB,
            "RSS {rss} kB after round {round} of 8 at a time"
        );
    }
    let peak = status_kb(pid, "VmHWM");
    eprintln!(
        "sign-ins: RSS peak {peak} kB, now {} kB",
        status_kb(pid, "VmRSS")
    );
    assert!(peak <= LIMIT_KB, "peak RSS {peak} kB");
}

/// The HS256 secret the JWT tests share (throw-away, at least 32 bytes).
const SECRET: &str = "hostile-tests-secret-0123456789-abcdefghij";

/// Writes the JWT secret file into `scratch` and returns its path as an argument.
fn jwt_secret(scratch: &Scratch) -> String {
    let path = scratch.path("jwt.secret");
    std::fs::write(&path, SECRET).expect("secret");
    path.display().to_string()
}

/// An HS256 JWT for `sub`, valid for an hour.
fn jwt(sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "sub": sub, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode JWT")
}

/// One keep-alive HTTP/1.1 connection sending the same request again and again: the flood needs
/// thousands of requests, not thousands of handshakes.
struct KeepAlive {
    stream: tokio::net::TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl KeepAlive {
    async fn open(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> KeepAlive {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        KeepAlive {
            stream,
            request: request.into_bytes(),
            buf: Vec::new(),
        }
    }

    /// Sends the request and reads one response (headers and a `Content-Length` body).
    async fn send(&mut self) -> HttpResponse {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(&self.request).await.expect("write");
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = parse_response(&self.buf[..end + 4]);
                let len: usize = head
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .expect("content-length");
                if self.buf.len() >= end + 4 + len {
                    let raw: Vec<u8> = self.buf.drain(..end + 4 + len).collect();
                    return parse_response(&raw);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed mid-response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// RELIABILITY 67: one JWT subject mints 10,000 tokens as fast as it can (4 keep-alive connections);
/// it is held to its own quota with a truthful `Retry-After`, and another user gets a token on the
/// first try within 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_principal_cannot_use_up_everyones_tokens() {
    const FLOOD: usize = 10_000;
    const CONNECTIONS: usize = 4;
    let scratch = Scratch::new();
    let users = write_users(scratch.dir.path());
    let secret = jwt_secret(&scratch);
    let args = scratch.args(&[
        "--users",
        users.to_str().expect("path"),
        "--jwt-secret-file",
        &secret,
    ]);
    let daemon = Proc::start(&args, &LogTail::default(), WAIT);
    let bearer = format!("Bearer {}", jwt("flooder"));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<HttpResponse>(64);
    let mut flooders = Vec::new();
    for _ in 0..CONNECTIONS {
        let (addr, bearer, done) = (daemon.addr, bearer.clone(), done_tx.clone());
        flooders.push(tokio::spawn(async move {
            let mut conn =
                KeepAlive::open(addr, "/api/ws-token", &[("authorization", &bearer)]).await;
            for _ in 0..FLOOD / CONNECTIONS {
                let r = conn.send().await;
                if done.send(r).await.is_err() {
                    return;
                }
            }
        }));
    }
    drop(done_tx);
    let flood = async {
        let (mut granted, mut refused, mut asked) = (0usize, 0usize, false);
        while let Some(r) = done_rx.recv().await {
            match r.status {
                200 => granted += 1,
                429 => {
                    refused += 1;
                    let wait: u64 = r
                        .header("retry-after")
                        .and_then(|v| v.parse().ok())
                        .expect("Retry-After");
                    // The oldest of the flooder's tokens was minted moments ago: it expires in ~120 s.
                    assert!((100..=120).contains(&wait), "Retry-After {wait}");
                }
                other => panic!("flooder got {other}: {r:?}"),
            }
            if refused >= 100 && !asked {
                asked = true;
                // Mid-flood: another user asks once.
                let other = get_within(
                    daemon.addr,
                    "/api/ws-token",
                    &[("authorization", &basic(USER, PASSWORD))],
                    Duration::from_secs(1),
                )
                .await;
                assert_eq!(other.status, 200, "{other:?}");
            }
        }
        (granted, refused, asked)
    };
    let (granted, refused, asked) = tokio::time::timeout(Duration::from_secs(120), flood)
        .await
        .expect("the flood ends within the bound");
    for f in flooders {
        f.await.expect("flooder");
    }
    eprintln!("flood: {granted} granted, {refused} refused");
    assert!(asked, "the other user asked during the flood");
    assert_eq!(granted + refused, FLOOD);
    assert_eq!(granted, proxytail::tokens::MAX_PER_PRINCIPAL);
}

/// Opens a WebSocket to `url` with the `X-Forwarded-For` lines given, one header line each.
async fn connect_forwarded(url: &str, lines: &[&str]) -> Client {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("request");
    for line in lines {
        request
            .headers_mut()
            .append("x-forwarded-for", line.parse().expect("header value"));
    }
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake within the bound")
        .expect("handshake");
    ws
}

/// RELIABILITY 69: two `X-Forwarded-For` lines (the client's forged one first, the proxy's last):
/// the sign-in throttle and the WebSocket per-address cap both count the last address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_read_the_same_way_everywhere() {
    let scratch = Scratch::new();
    let users = write_users(scratch.dir.path());
    let args = scratch.args(&[
        "--users",
        users.to_str().expect("path"),
        "--trust-forwarded-for",
        "--max-connections-per-ip",
        "1",
    ]);
    let daemon = Proc::start(&args, &LogTail::default(), WAIT);
    let addr = daemon.addr;
    let token_with = |lines: Vec<String>, auth: String| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut request = format!(
            "GET /api/ws-token HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: {auth}\r\n"
        );
        for line in &lines {
            request.push_str(&format!("X-Forwarded-For: {line}\r\n"));
        }
        request.push_str("\r\n");
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(request.as_bytes()).await.expect("write");
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).await.expect("read");
            raw
        };
        parse_response(&tokio::time::timeout(WAIT, exchange).await.expect("answer"))
    };
    let proxy = "198.51.100.7";
    let wrong = basic(USER, "wrong");
    let right = basic(USER, PASSWORD);
    // Ten failures, each with a different forged first line: all count against the proxy's address.
    for i in 0..10 {
        let r = token_with(vec![format!("10.9.9.{i}"), proxy.into()], wrong.clone()).await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let locked = token_with(vec!["10.9.9.99".into(), proxy.into()], right.clone()).await;
    assert_eq!(locked.status, 429, "{locked:?}");
    // The locked address in a forged first line does not lock anyone else out.
    let other = token_with(vec![proxy.into(), "203.0.113.5".into()], right.clone()).await;
    assert_eq!(other.status, 200, "{other:?}");
    let token = |r: HttpResponse| r.json()["token"].as_str().expect("token").to_owned();

    // The WebSocket cap (1 per address) counts the last line too.
    // `since=0`: an entry published before a session subscribes is still sent (no race).
    let url = |t: String| format!("ws://{addr}/api/ws/logs?token={t}&since=0");
    let t1 = token(token_with(vec!["203.0.113.9".into()], right.clone()).await);
    let mut first = connect_forwarded(&url(t1), &["10.1.1.1", "203.0.113.9"]).await;
    let t2 = token(token_with(vec!["203.0.113.10".into()], right.clone()).await);
    let mut second = connect_forwarded(&url(t2), &["10.1.1.2", "203.0.113.9"]).await;
    assert_eq!(
        expect_close(&mut second).await.0,
        1013,
        "same last address: over the cap"
    );
    let t3 = token(token_with(vec!["203.0.113.11".into()], right.clone()).await);
    let mut third = connect_forwarded(&url(t3), &["203.0.113.9", "203.0.113.11"]).await;
    // Still open: the first and third each hold their own address's only slot.
    std::fs::write(&scratch.log, squid_line(1)).expect("append");
    for ws in [&mut first, &mut third] {
        match next_event(ws).await {
            Event::Text(t) => assert_eq!(entry_id(&t), 1),
            other => panic!("expected entry 1, got {other:?}"),
        }
    }
}

/// One native Squid line (request number `n`).
fn squid_line(n: u64) -> String {
    format!("1795835993.065      2 ::1 TCP_MISS/200 353 GET http://h/x/{n} - HIER_DIRECT/127.0.0.1 text/plain\n")
}

/// `GET path` with `Host: host` (the common client always sends the socket address) and `headers`.
async fn get_as_host(
    addr: std::net::SocketAddr,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        raw
    };
    parse_response(&tokio::time::timeout(WAIT, exchange).await.expect("answer"))
}

/// RELIABILITY 70: `Host: evil.example` with `Origin: http://evil.example` (a DNS-rebound page) gets
/// 421 on every route and no entry; loopback hosts and the configured public URL work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_is_refused() {
    let scratch = Scratch::new();
    let users = write_users(scratch.dir.path());
    let args = scratch.args(&[
        "--users",
        users.to_str().expect("path"),
        "--public-url",
        "https://proxy.example/",
    ]);
    let daemon = Proc::start(&args, &LogTail::default(), WAIT);
    let addr = daemon.addr;
    let port = addr.port();
    std::fs::write(&scratch.log, squid_line(1)).expect("append");
    let auth = basic(USER, PASSWORD);
    let evil = [("host", "evil.example"), ("origin", "http://evil.example")];
    for path in ["/api/ws-token", "/api/health", "/"] {
        let r = get_within(
            addr,
            path,
            &[evil[0], evil[1], ("authorization", &auth)],
            WAIT,
        )
        .await;
        assert_eq!(r.status, 421, "{path}: {r:?}");
    }
    // The WebSocket upgrade, with a valid token, is refused before it happens.
    let token = fetch_token(addr).await;
    let url = format!("ws://{addr}/api/ws/logs?token={token}&backlog=10");
    match try_connect(&url, &evil).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 421),
        Err(e) => panic!("expected HTTP 421, got {e}"),
        Ok(_) => panic!("the upgrade of a foreign Host succeeded"),
    }
    // Loopback names, with and without the port, and the public URL's host all work.
    let localhost = format!("localhost:{port}");
    let v6 = format!("[::1]:{port}");
    for host in [
        "localhost",
        localhost.as_str(),
        "127.0.0.1",
        v6.as_str(),
        "proxy.example",
    ] {
        let r = get_as_host(addr, "/api/health", host, &[]).await;
        assert_eq!(r.status, 200, "Host {host}: {r:?}");
    }
    // Through the public URL the dashboard's origin is allowed, and the token from before was not
    // consumed by the refused upgrade.
    let public = [
        ("host", "proxy.example"),
        ("origin", "https://proxy.example"),
    ];
    let mut ws = try_connect(&url, &public)
        .await
        .expect("upgrade via the public URL");
    match next_event(&mut ws).await {
        Event::Text(t) => assert_eq!(entry_id(&t), 1),
        other => panic!("expected entry 1, got {other:?}"),
    }
}

/// RELIABILITY 71: a JWT whose `sub` holds a newline and an ESC sequence: the daemon's log (its
/// stderr, as the journal would get it) holds neither raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_text_is_escaped_in_the_log() {
    let scratch = Scratch::new();
    let secret = jwt_secret(&scratch);
    let args = scratch.args(&["--jwt-secret-file", &secret]);
    let log = LogTail::default();
    let mut daemon = Proc::start(&args, &log, WAIT);
    let sub = "mallory\nFAKE proxytail: admin signed in\u{1b}[2J";
    let r = http_get(
        daemon.addr,
        "/api/ws-token",
        &[("authorization", &format!("Bearer {}", jwt(sub)))],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let line = daemon.await_line("issued a WebSocket token", WAIT);
    assert!(
        line.contains(r"mallory\nFAKE"),
        "escaped subject in {line:?}"
    );
    let status = daemon.terminate(WAIT);
    assert!(status.success(), "{status}");
    let kept = log.lock().expect("log").clone();
    for l in &kept {
        assert!(!l.contains('\u{1b}'), "raw ESC in {l:?}");
        assert!(!l.starts_with("FAKE"), "a forged log line: {l:?}");
    }
}

/// Makes a FIFO at `path` (mkfifo(1)).
fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo(1)");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Health within 2 s: without credentials counts and states only, no path and no error text; with
/// `alice`'s credentials the source's path and error, which names the refusal.
async fn health_reports_refusal(addr: std::net::SocketAddr, log: &Path) {
    let bound = Duration::from_secs(2);
    // The tailer logs the refusal a moment before it copies its state into health (same step, but
    // a loaded machine can preempt it in between), so health is asked again until it says "error".
    let deadline = tokio::time::Instant::now() + WAIT;
    let open = loop {
        let open = get_within(addr, "/api/health", &[], bound).await;
        assert_eq!(open.status, 200, "{open:?}");
        if open.json()["sources"][0]["state"] == "error" || tokio::time::Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = open.text();
    let body = open.json();
    assert_eq!(body["sources"][0]["state"], "error", "{body}");
    assert!(body["sources"][0].get("path").is_none(), "{body}");
    assert!(body["sources"][0].get("error").is_none(), "{body}");
    assert!(!text.contains(&*log.to_string_lossy()), "{text}");
    let auth = basic(USER, PASSWORD);
    let full = get_within(addr, "/api/health", &[("authorization", &auth)], bound).await;
    assert_eq!(full.status, 200, "{full:?}");
    let body = full.json();
    assert_eq!(
        body["sources"][0]["path"],
        log.to_string_lossy().as_ref(),
        "{body}"
    );
    let reason = body["sources"][0]["error"].as_str().unwrap_or_default();
    assert!(reason.contains("not a regular file"), "{body}");
    let wrong = basic(USER, "wrong");
    let refused = get_within(addr, "/api/health", &[("authorization", &wrong)], bound).await;
    assert_eq!(refused.status, 401, "{refused:?}");
}

/// RELIABILITY 68 (and the health detail of CONTRACT §9): a FIFO at the log path when the daemon
/// starts is refused and reported, never opened in a way that blocks; health answers and SIGTERM
/// exits 0 within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_at_start_is_refused_and_reported() {
    let scratch = Scratch::new();
    std::fs::remove_file(&scratch.log).expect("rm log");
    mkfifo(&scratch.log);
    let users = write_users(scratch.dir.path());
    let args = scratch.args(&["--users", users.to_str().expect("path")]);
    let mut daemon = Proc::start(&args, &LogTail::default(), WAIT);
    health_reports_refusal(daemon.addr, &scratch.log).await;
    let status = daemon.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// RELIABILITY 68: a FIFO renamed over the followed log at run time: the lines before it are
/// streamed, the FIFO is refused and reported, health answers, SIGTERM exits 0 within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_swapped_in_is_refused_and_reported() {
    let scratch = Scratch::new();
    std::fs::write(&scratch.log, squid_line(1)).expect("log");
    let users = write_users(scratch.dir.path());
    let args = scratch.args(&["--users", users.to_str().expect("path"), "--from-start"]);
    let mut daemon = Proc::start(&args, &LogTail::default(), WAIT);
    let token = fetch_token(daemon.addr).await;
    let mut ws = connect(&format!(
        "ws://{}/api/ws/logs?token={token}&since=0",
        daemon.addr
    ))
    .await;
    assert_eq!(read_ids(&mut ws, 1).await, vec![1]);
    let fifo = scratch.path("fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, &scratch.log).expect("rename the FIFO over the log");
    daemon.await_line("cannot open the log", WAIT);
    health_reports_refusal(daemon.addr, &scratch.log).await;
    let status = daemon.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// RELIABILITY 64: 300 sockets that send nothing and 300 that trickle a request one byte every 2 s,
/// against a daemon limited to 1,024 descriptors: health and a token request still answer within
/// 2 s, and every one of those sockets is closed by the daemon within 30 s (the header deadline is
/// 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_sockets_do_not_starve_real_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const EACH: usize = 300;
    let scratch = Scratch::new();
    let users = write_users(scratch.dir.path());
    let args = scratch.args(&["--users", users.to_str().expect("path")]);
    let wrapper = ["prlimit", "--nofile=1024:1024", "--"];
    let daemon = Proc::start_under(&wrapper, &args, &LogTail::default(), WAIT);
    let addr = daemon.addr;
    let started = tokio::time::Instant::now();
    let mut idle = Vec::with_capacity(EACH);
    for _ in 0..EACH {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel::<()>(2 * EACH);
    let request = format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    for _ in 0..EACH {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (request, closed) = (request.clone(), closed_tx.clone());
        tokio::spawn(async move {
            // The attack's own pace, bounded by the request's length.
            let mut pace = tokio::time::interval(Duration::from_secs(2));
            for byte in request.iter().take(request.len() - 1) {
                pace.tick().await;
                if s.write_all(&[*byte]).await.is_err() {
                    break;
                }
            }
            let _ = closed.send(()).await;
        });
    }
    for mut s in idle {
        let closed = closed_tx.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            // EOF (or a reset) is the daemon closing it; it never sends anything else.
            let _ = s.read(&mut buf).await;
            let _ = closed.send(()).await;
        });
    }
    drop(closed_tx);
    let bound = Duration::from_secs(2);
    let health = get_within(addr, "/api/health", &[], bound).await;
    assert_eq!(health.status, 200, "{health:?}");
    let auth = basic(USER, PASSWORD);
    let token = get_within(addr, "/api/ws-token", &[("authorization", &auth)], bound).await;
    assert_eq!(token.status, 200, "{token:?}");
    let mut closed = 0;
    let all_closed = async {
        while closed_rx.recv().await.is_some() {
            closed += 1;
        }
    };
    let deadline = started + Duration::from_secs(30);
    tokio::time::timeout_at(deadline, all_closed)
        .await
        .unwrap_or_else(|_| panic!("{closed} of {} sockets closed within 30 s", 2 * EACH));
    eprintln!("held sockets: all closed after {:?}", started.elapsed());
}
