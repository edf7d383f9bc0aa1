//! Replay from disk (CONTRACT §8, RELIABILITY 80): the RELEASE daemon binary follows a log of
//! `--count` Squid lines with `--history 1000`, so nearly all of them are on disk only; then
//!
//! 1. one WebSocket subscriber with `since=0` reads them all back (entries/s), while the daemon's
//!    VmRSS is sampled every 100 ms (the peak is reported);
//! 2. one search, `from`/`until` over the whole journal with `filter=status:5xx` (1 % of the lines
//!    are 503): the time until the server closes 1000, and the number of matches.
//!
//! ```text
//! cargo build --release && cargo build --release --example replay_bench
//! target/release/examples/replay_bench --count 5000000
//! ```
//! Bounded: every wait has [`BOUND`]; the tool panics if an id is missing, repeated or out of order.
use argon2::{Algorithm, Params, Version};
use base64::Engine;
use futures_util::StreamExt;
use proxytail::auth::users::{hash_password_with, HashParams};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// Bound on each step (start-up, ingest, replay, search).
const BOUND: Duration = Duration::from_secs(600);
/// Timestamp of line 1 (seconds); line n is `T0 + n / 100`.
const T0: u64 = 1_774_000_000;

fn line(seq: u64) -> String {
    let status = if seq % 100 == 0 { 503 } else { 200 };
    format!(
        "{}.{:03}     85 192.168.1.10 TCP_MISS/{status} 4096 GET http://bench.example.com/{seq} - HIER_DIRECT/93.184.216.34 text/html\n",
        T0 + seq / 100,
        (seq % 100) * 10
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            l.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

async fn token(addr: SocketAddr) -> String {
    let cred = base64::engine::general_purpose::STANDARD.encode("bench:bench-password");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /api/ws-token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {cred}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.expect("response");
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body.trim()).expect("token JSON");
    v["token"].as_str().expect("token").to_owned()
}

fn id_of(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("{\"id\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// Reads entries until `until_id` (checking order) or a Close; returns (entries, close code).
async fn read(addr: SocketAddr, query: &str, first: u64, until_id: u64) -> (u64, Option<u16>) {
    let url = format!("ws://{addr}/api/ws/logs?token={}{query}", token(addr).await);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let mut n = 0;
    let mut last = first - 1;
    let ordered = query.contains("filter");
    while let Some(msg) = ws.next().await {
        match msg.expect("frame") {
            Message::Text(t) => {
                let id = id_of(&t).expect("entry id");
                if ordered {
                    assert!(id > last, "out of order: {id} after {last}");
                } else {
                    assert_eq!(id, last + 1, "gap or duplicate");
                }
                last = id;
                n += 1;
                if id == until_id {
                    return (n, None);
                }
            }
            Message::Close(f) => return (n, f.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
    (n, None)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut count: u64 = 1_000_000;
    let mut bin = PathBuf::from("target/release/proxytail");
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--count", Some(v)) => count = v.parse().expect("--count N"),
            ("--bin", Some(v)) => bin = v.into(),
            _ => panic!("usage: replay_bench [--count N] [--bin PATH]"),
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log).expect("log"));
        for seq in 1..=count {
            f.write_all(line(seq).as_bytes()).expect("write");
        }
    }
    let users = dir.path().join("users");
    let params = HashParams {
        algorithm: Algorithm::Argon2id,
        version: Version::V0x13,
        params: Params::new(1024, 1, 1, None).expect("argon2 params"),
    };
    let hash = hash_password_with("bench-password", &params).expect("hash");
    std::fs::write(&users, format!("bench:{hash}\n")).expect("users");
    let state = dir.path().join("state");
    let mut child = Command::new(&bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--from-start",
            "--history",
            "1000",
        ])
        .args(["--retention", "3650d", "--retention-bytes", "100GiB"])
        .arg("--access-log")
        .arg(&log)
        .arg("--state-dir")
        .arg(&state)
        .arg("--users")
        .arg(&users)
        .env("PROXYTAIL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(a) = l
                .split("local=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                let _ = tx.send(a.parse::<SocketAddr>());
            }
        }
    });
    let addr = rx.recv_timeout(BOUND).expect("address").expect("address");
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Ingest: a live subscriber from id 1 sees the whole log go through.
        let started = Instant::now();
        let (n, _) = tokio::time::timeout(BOUND, read(addr, "&since=0", 1, count))
            .await
            .expect("ingest within the bound");
        assert_eq!(n, count);
        let rss_before = rss_kib(pid);
        println!(
            "ingest: {count} entries in {:.1} s; daemon RSS {} MiB",
            started.elapsed().as_secs_f64(),
            rss_before / 1024
        );
        let peak = Arc::new(AtomicU64::new(rss_before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let started = Instant::now();
        let (n, _) = tokio::time::timeout(BOUND, read(addr, "&since=0", 1, count))
            .await
            .expect("replay within the bound");
        let took = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        assert_eq!(n, count);
        println!(
            "replay since=0 (history 1000, so {} from disk): {:.0} entries/s ({took:.1} s); peak RSS {} MiB",
            count.saturating_sub(1000),
            n as f64 / took,
            peak.load(Ordering::Relaxed) / 1024
        );
        let started = Instant::now();
        let query = format!(
            "&from={T0}&until={}&filter=status:5xx",
            T0 + count / 100 + 1
        );
        // `until` is past the last line: the search ends by the last match instead, so pass its id.
        let (n, code) = tokio::time::timeout(BOUND, read(addr, &query, 1, count / 100 * 100))
            .await
            .expect("search within the bound");
        println!(
            "search from/until + status:5xx over {count}: {n} matches in {:.2} s (close {code:?})",
            started.elapsed().as_secs_f64()
        );
    });
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}
