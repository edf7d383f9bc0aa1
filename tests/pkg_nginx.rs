//! The shipped nginx snippet (`packaging/nginx/proxytail-locations.conf`) in front of a real daemon:
//! Debian's nginx runs as a child with its own prefix, config, pid and logs in a temporary directory
//! on 127.0.0.1 (never the system service), and the token + WebSocket flow runs through it, close
//! codes included. Skipped with a message when `/usr/sbin/nginx` is absent and `CI` is unset; in CI
//! its absence is a failure.
use futures_util::{SinkExt, StreamExt};
use proxytail::config::Config;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const NGINX: &str = "/usr/sbin/nginx";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
/// Upper bound for any single step; a failure bound, not a delay.
const STEP: Duration = Duration::from_secs(10);

/// An nginx master started for this test only; stopped through its own pid file on drop.
struct Nginx {
    /// Holds the prefix (config, pid, logs, temp paths) alive as long as nginx runs.
    dir: tempfile::TempDir,
    /// Where nginx listens: 127.0.0.1 and a port that was free a moment ago.
    addr: SocketAddr,
}

impl Nginx {
    fn args(&self) -> Vec<String> {
        let prefix = self.dir.path().display().to_string();
        vec![
            "-p".into(),
            format!("{prefix}/"),
            "-c".into(),
            format!("{prefix}/nginx.conf"),
        ]
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Starts nginx in front of `backend`, including the shipped snippet verbatim.
    fn start(backend: SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        // Workers run as `nobody` when the test runs as root: let them through the prefix.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let snippet =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/nginx/proxytail-locations.conf");
        let p = dir.path().display();
        let conf = format!(
            r#"
worker_processes 1;
error_log {p}/error.log info;
pid {p}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    upstream proxytail {{ server {backend}; keepalive 8; }}
    server {{
        listen {addr};
        server_name localhost;
        include {snippet};
    }}
}}
"#,
            snippet = snippet.display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let nginx = Nginx { dir, addr };
        // Daemon mode: the command returns once the listening socket is bound (or failed).
        let out = Command::new(NGINX)
            .args(nginx.args())
            .output()
            .expect("run nginx");
        assert!(
            out.status.success(),
            "nginx failed to start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            nginx.error_log()
        );
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(NGINX)
            .args(self.args())
            .args(["-s", "stop"])
            .status();
    }
}

/// A minimal HTTP/1.1 GET (Connection: close); returns the status, the header block and the body.
async fn get(addr: SocketAddr, path: &str, auth: Option<(&str, &str)>) -> (u16, String, String) {
    use base64::Engine as _;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((u, p)) = auth {
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.push_str(&format!("Authorization: Basic {cred}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, head.to_owned(), body.to_owned())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr, query: &str, origin: &str) -> Ws {
    let mut req = format!("ws://{addr}/api/ws/logs{query}")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Origin", origin.parse().expect("origin header"));
    let (ws, resp) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next text message, skipping Ping/Pong control frames.
async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("message in time")
        {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The close code the server sends next (no data may come first).
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

async fn token(addr: SocketAddr) -> String {
    let (status, _, body) = get(addr, "/api/ws-token", Some((USER, PASSWORD))).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["status"], "success");
    json["token"].as_str().expect("token").to_owned()
}

fn nginx_available() -> bool {
    if Path::new(NGINX).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{NGINX} is missing in CI: install Debian's nginx (apt-get install nginx)"
    );
    eprintln!("skipping: {NGINX} is absent (apt-get install nginx); CI treats this as a failure");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_websocket_flow_through_the_shipped_nginx_snippet() {
    if !nginx_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log: PathBuf = dir.path().join("access.log");
    std::fs::write(&log, "").expect("log");
    let users = dir.path().join("users");
    let hash = proxytail::auth::hash_password(PASSWORD).expect("hash");
    std::fs::write(&users, format!("{USER}:{hash}\n")).expect("users");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let (_, config) = Config::from_args([
        "proxytail".as_ref(),
        "--access-log".as_ref(),
        log.as_os_str(),
        "--users".as_ref(),
        users.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--from-start".as_ref(),
        "--trust-forwarded-for".as_ref(),
    ])
    .expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let backend = listener.local_addr().expect("addr");
    let (control, signals) = proxytail::shutdown::channel();
    let daemon = tokio::spawn(proxytail::app::run(config, listener, signals));

    let nginx = Nginx::start(backend);
    let addr = nginx.addr;
    let origin = format!("http://{addr}");

    // Token endpoint: 401 with a Basic challenge, then a token for the right password.
    let (status, head, _) = get(addr, "/api/ws-token", None).await;
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{head}"
    );
    let (status, _, _) = get(addr, "/api/ws-token", Some((USER, "wrong"))).await;
    assert_eq!(status, 401);
    let first = token(addr).await;

    // The stream: a line written to the log arrives as an entry; ping gets pong.
    let mut ws = connect(addr, &format!("?token={first}"), &origin).await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
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
    ws.send(Message::Text("ping".into())).await.expect("ping");
    assert_eq!(next_text(&mut ws).await, "pong");

    // Close codes through the proxy: reused token 4003, no token 4001.
    let mut again = connect(addr, &format!("?token={first}"), &origin).await;
    assert_eq!(close_code(&mut again).await, 4003);
    let mut none = connect(addr, "", &origin).await;
    assert_eq!(close_code(&mut none).await, 4001);
    let mut bogus = connect(addr, "?token=AAAA", &origin).await;
    assert_eq!(close_code(&mut bogus).await, 4003);

    // A foreign Origin is refused at the upgrade, through the proxy too.
    let second = token(addr).await;
    let mut req = format!("ws://{addr}/api/ws/logs?token={second}")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().expect("origin"));
    match tokio::time::timeout(STEP, tokio_tungstenite::connect_async(req))
        .await
        .expect("answer in time")
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403)
        }
        Ok((mut ws, _)) => panic!(
            "foreign origin accepted; first frame: {:?}",
            ws.next().await
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }

    // Shutdown: the subscriber behind nginx gets 1001, the daemon returns Ok.
    control.stop.send(()).expect("stop");
    assert_eq!(close_code(&mut ws).await, 1001);
    tokio::time::timeout(Duration::from_secs(15), daemon)
        .await
        .expect("daemon stops in time")
        .expect("join")
        .expect("clean exit");

    // The single-use token travels in the query string: the snippet keeps it out of nginx's log.
    let access = std::fs::read_to_string(nginx.dir.path().join("access.log")).unwrap_or_default();
    assert!(!access.contains(&first), "token logged by nginx:\n{access}");
    drop(nginx);
}
