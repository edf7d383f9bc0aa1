//! A real Squid writes real logs in three formats (native, common, a custom `logformat`) while the
//! daemon, pointed at that squid.conf, follows them; `squid -k rotate` runs in the middle. Every
//! request sent through the proxy must come out of the WebSocket once per log, with the right method,
//! status and bytes.
//!
//! Needs Debian's `squid` and `curl` (scripts/test.sh installs them). Runs as root (as CI does): Squid
//! then drops to its `proxy` user, so the temporary directory is handed to that user.
mod common;

use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use warp::Filter;

const BOUND: Duration = Duration::from_secs(30);

/// A private Squid: its own config, logs and pid file in a temporary directory.
struct Squid {
    conf: PathBuf,
    child: Child,
    port: u16,
}

impl Squid {
    fn start(dir: &Path) -> Squid {
        let port = free_port();
        let d = dir.display();
        let conf = dir.join("squid.conf");
        std::fs::write(
            &conf,
            format!(
                "http_port 127.0.0.1:{port}\n\
                 pid_filename {d}/squid.pid\n\
                 cache_log {d}/cache.log\n\
                 coredump_dir {d}\n\
                 cache deny all\n\
                 cache_mem 8 MB\n\
                 pinger_enable off\n\
                 shutdown_lifetime 0 seconds\n\
                 dns_nameservers 127.0.0.1\n\
                 netdb_filename none\n\
                 logfile_rotate 1\n\
                 acl denied urlpath_regex ^/denied\n\
                 http_access deny denied\n\
                 http_access allow localhost\n\
                 http_access deny all\n\
                 logformat mine %ts.%03tu %>a \"%rm %ru\" %>Hs %<st \"%{{User-Agent}}>h\"\n\
                 access_log stdio:{d}/access.log squid\n\
                 access_log stdio:{d}/common.log common\n\
                 access_log daemon:{d}/custom.log mine\n"
            ),
        )
        .unwrap();
        chown_to_proxy(dir);
        let child = Command::new("squid")
            .args(["-N", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squid is installed (scripts/test.sh installs it)");
        let squid = Squid { conf, child, port };
        // Squid accepts once its listening socket is up: wait for the port, bounded.
        wait_until(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        squid
    }

    fn rotate(&self) {
        let status = Command::new("squid")
            .arg("-f")
            .arg(&self.conf)
            .args(["-k", "rotate"])
            .status()
            .unwrap();
        assert!(status.success(), "squid -k rotate failed");
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chown_to_proxy(dir: &Path) {
    let status = Command::new("chown")
        .args(["-R", "proxy:proxy"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls a cheap condition against an external process we cannot get events from (Squid starting).
fn wait_until(mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + BOUND;
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request through the proxy with curl; returns the bytes Squid sent (headers + body).
fn curl(proxy: u16, args: &[&str]) -> u64 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_header} %{size_download} %{http_code}",
            "--max-time",
            "10",
        ])
        .args(["-x", &format!("http://127.0.0.1:{proxy}")])
        .args(args)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    it.next().unwrap_or(0) + it.next().unwrap_or(0)
}

/// (method, path-or-authority, status) of a request we sent, and the bytes curl received.
type Sent = Vec<(String, String, u16, Option<u64>)>;

fn send_mix(proxy: u16, origin: SocketAddr, round: u32) -> Sent {
    let base = format!("http://{origin}");
    let mut sent = Sent::new();
    let b = curl(proxy, &[&format!("{base}/ok/{round}")]);
    sent.push(("GET".into(), format!("{base}/ok/{round}"), 200, Some(b)));
    let b = curl(proxy, &[&format!("{base}/missing/{round}")]);
    sent.push((
        "GET".into(),
        format!("{base}/missing/{round}"),
        404,
        Some(b),
    ));
    let b = curl(proxy, &["-d", "x=1", &format!("{base}/post/{round}")]);
    sent.push(("POST".into(), format!("{base}/post/{round}"), 200, Some(b)));
    let b = curl(proxy, &["-I", &format!("{base}/ok/{round}")]);
    sent.push(("HEAD".into(), format!("{base}/ok/{round}"), 200, Some(b)));
    let b = curl(proxy, &[&format!("{base}/denied/{round}")]);
    sent.push(("GET".into(), format!("{base}/denied/{round}"), 403, Some(b)));
    // A tunnel: curl CONNECTs to the origin, then speaks HTTP through it. Squid logs the CONNECT.
    curl(proxy, &["-p", &format!("{base}/ok/tunnel{round}")]);
    sent.push(("CONNECT".into(), origin.to_string(), 200, None));
    sent
}

async fn origin() -> SocketAddr {
    let ok = warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path!("ok" / String))
        .map(|_| "hello from origin\n");
    let post = warp::post()
        .and(warp::path!("post" / String))
        .map(|_| "posted\n");
    let missing = warp::any()
        .map(|| warp::reply::with_status("no such page\n", warp::http::StatusCode::NOT_FOUND));
    let routes = ok.or(post).or(missing);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_squid_logs_in_three_formats_are_streamed_exactly_once_across_a_rotation() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    if Command::new("squid").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "squid must be installed in CI"
        );
        eprintln!("skipping: squid is not installed (run scripts/test.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("squid");
    std::fs::create_dir(&logs).unwrap();
    // Two origins, so that each round's CONNECT has its own destination.
    let origins = [origin().await, origin().await];
    let squid = Squid::start(&logs);

    let state = dir.path().join("state");
    let users = common::write_users(dir.path());
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_, config) = proxytail::config::Config::from_args([
        "proxytail".as_ref(),
        "--squid-conf".as_ref(),
        squid.conf.as_os_str(),
        "--from-start".as_ref(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--users".as_ref(),
        users.as_os_str(),
    ])
    .unwrap();
    // check-config shows what it found in the real squid.conf.
    let check = Command::new(env!("CARGO_BIN_EXE_proxytail"))
        .arg("check-config")
        .arg("--squid-conf")
        .arg(&squid.conf)
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--users")
        .arg(&users)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{shown}");
    assert!(shown.contains("3 access log(s) found"), "{shown}");
    for (file, format) in [
        ("access.log", "squid"),
        ("common.log", "common"),
        ("custom.log", "mine"),
    ] {
        assert!(
            shown.contains(&format!("format {format}: {}", logs.join(file).display())),
            "{shown}"
        );
    }
    let (control, signals) = proxytail::shutdown::channel();
    let daemon = tokio::spawn(proxytail::app::run(config, listener, signals));

    let token = common::fetch_token(addr).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws/logs?token={token}&since=0"))
            .await
            .unwrap();

    let mut sent = tokio::task::spawn_blocking(move || {
        let mut sent = send_mix(squid.port, origins[0], 1);
        squid.rotate();
        sent.extend(send_mix(squid.port, origins[1], 2));
        (sent, squid)
    })
    .await
    .unwrap();
    let sent_list = std::mem::take(&mut sent.0);

    let sources = ["access.log", "common.log", "custom.log"];
    // The readiness probe (one TCP connect, then close) is a record too: Squid logs it as
    // `error:transaction-end-before-headers` in every log.
    let expected = (sent_list.len() + 1) * sources.len();
    let mut got: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut last_id = 0;
    let mut n = 0;
    while n < expected {
        let msg = tokio::time::timeout(BOUND, ws.next())
            .await
            .unwrap_or_else(|_| panic!("only {n} of {expected} entries arrived: {got:#?}"))
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let id = v["id"].as_u64().unwrap();
        assert_eq!(id, last_id + 1, "ids are consecutive");
        last_id = id;
        let source = v["source"].as_str().unwrap().to_owned();
        let file = Path::new(&source)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        got.entry(file).or_default().push(v);
        n += 1;
    }
    for file in sources {
        let entries = got
            .get(file)
            .unwrap_or_else(|| panic!("nothing from {file}: {got:#?}"));
        let probes = entries
            .iter()
            .filter(|e| e["destination"] == "error:transaction-end-before-headers");
        assert_eq!(
            probes.count(),
            1,
            "{file}: the readiness probe is logged once"
        );
        let mut seen: Vec<(String, String, u64)> = entries
            .iter()
            .filter(|e| e["destination"] != "error:transaction-end-before-headers")
            .map(|e| {
                let m = e["method"].as_str().unwrap_or("?").to_owned();
                let d = e["destination"].as_str().unwrap_or("?").to_owned();
                (m, d, e["code"].as_u64().unwrap_or(999))
            })
            .collect();
        let mut want: Vec<(String, String, u64)> = sent_list
            .iter()
            .map(|(m, d, c, _)| (m.clone(), d.clone(), u64::from(*c)))
            .collect();
        seen.sort();
        want.sort();
        assert_eq!(seen, want, "{file}: every request exactly once");
        for (method, dest, code, bytes) in &sent_list {
            let e = entries
                .iter()
                .find(|e| e["method"] == method.as_str() && e["destination"] == dest.as_str())
                .unwrap_or_else(|| panic!("{file}: no {method} {dest} {code} in {entries:#?}"));
            if let Some(b) = bytes {
                assert_eq!(
                    e["bytes"].as_u64(),
                    Some(*b),
                    "{file}: bytes of {method} {dest}"
                );
            }
        }
    }
    // The daemon took exactly these lines, no more, and could parse every one of them.
    let health = common::http_get(addr, "/api/health", &[]).await.json();
    assert_eq!(health["last_id"], expected as u64, "{health}");
    let sources = health["sources"].as_array().expect("sources");
    let taken: u64 = sources
        .iter()
        .map(|s| s["lines"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(taken, expected as u64, "{health}");
    assert!(sources.iter().all(|s| s["parse_errors"] == 0), "{health}");
    drop(sent);
    let _ = control.stop.send(());
    tokio::time::timeout(BOUND, daemon)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
