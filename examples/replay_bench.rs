//! Replay from disk (CONTRACT §8, RELIABILITY 80): the RELEASE daemon binary follows a log of
//! `--count` Squid lines with `--history 1000`, so nearly all of them are on disk only; then
//!
//! 1. one WebSocket subscriber with `since=0` reads them all back (entries/s), while the daemon's
//!    VmRSS is sampled every 100 ms (the peak is reported);
//! 2. one search, `from`/`until` over the whole journal with `filter=status:5xx` (1 % of the lines
//!    are 503): the time until the server closes 1000, and the number of matches;
//! 3. live latency (RELIABILITY 80): a writer appends to the log at `--rate` lines/s and a live
//!    subscriber measures write-to-receipt latency, first alone for `--live-secs` seconds, then
//!    while another subscriber replays the whole journal from disk (`since=0`, as fast as it
//!    reads: the daemon is held back by its socket, it does not buffer); p50/p99/max of both.
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

/// The CPU time (user + system) of process `pid` so far, in seconds (clock ticks of 10 ms).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After `(comm)`, utime and stime are the 12th and 13th fields.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
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

/// Write times of the live lines (by id) and the latencies the live subscriber saw.
struct Live {
    /// Instant each live id was written to the log.
    written: std::sync::Mutex<std::collections::HashMap<u64, Instant>>,
    /// Write-to-receipt latencies, microseconds.
    seen: std::sync::Mutex<Vec<u64>>,
    /// Last id written; the subscriber stops there once `done`.
    last: AtomicU64,
    /// Set, then `finished` notified, once the writer has stopped.
    done: AtomicBool,
    finished: tokio::sync::Notify,
}

/// Appends lines `next..` to the log at `rate`/s (batches every 10 ms, on an absolute schedule)
/// until `stop` is set or `max` lines are written; returns the next id.
fn write_live(
    log: &std::path::Path,
    live: &Live,
    first: u64,
    rate: u64,
    stop: &AtomicBool,
    max: u64,
) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("log");
    let started = Instant::now();
    let mut next = first;
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) && next < first + max && started.elapsed() < BOUND {
        tick += 1;
        let target = first + (rate * tick / 100).min(max);
        let now = Instant::now();
        let mut buf = String::new();
        {
            let mut w = live.written.lock().expect("lock");
            for seq in next..target {
                buf.push_str(&line(seq));
                w.insert(seq, now);
            }
        }
        f.write_all(buf.as_bytes()).expect("append");
        if target > next {
            live.last.store(target - 1, Ordering::Relaxed);
        }
        next = target;
        let wake = started + Duration::from_millis(10 * tick);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    next
}

/// A live subscriber: records the latency of every id it was told the write time of, until the
/// writer is done and its last id arrived.
async fn live_reader(
    addr: SocketAddr,
    live: Arc<Live>,
    connected: tokio::sync::oneshot::Sender<()>,
) {
    let url = format!("ws://{addr}/api/ws/logs?token={}", token(addr).await);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let _ = connected.send(());
    let mut max_id = 0;
    loop {
        if live.done.load(Ordering::Relaxed) && max_id >= live.last.load(Ordering::Relaxed) {
            return;
        }
        let msg = tokio::select! {
            msg = ws.next() => msg,
            _ = live.finished.notified() => continue,
        };
        let Some(msg) = msg else { return };
        if let Message::Text(t) = msg.expect("frame") {
            let got = Instant::now();
            let id = id_of(&t).expect("entry id");
            if let Some(at) = live.written.lock().expect("lock").get(&id) {
                let us = got.duration_since(*at).as_micros() as u64;
                live.seen.lock().expect("lock").push(us);
            }
            max_id = max_id.max(id);
        }
    }
}

/// p50, p99 and max of `us`, in milliseconds.
fn percentiles(us: &mut [u64]) -> (f64, f64, f64) {
    us.sort_unstable();
    let at = |q: f64| {
        us.get(((us.len() as f64 * q) as usize).min(us.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    (
        at(0.5),
        at(0.99),
        us.last().copied().unwrap_or(0) as f64 / 1000.0,
    )
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
    let mut rate: u64 = 1000;
    let mut live_secs: u64 = 10;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--count", Some(v)) => count = v.parse().expect("--count N"),
            ("--bin", Some(v)) => bin = v.into(),
            ("--rate", Some(v)) => rate = v.parse().expect("--rate N"),
            ("--live-secs", Some(v)) => live_secs = v.parse().expect("--live-secs N"),
            _ => panic!(
                "usage: replay_bench [--count N] [--bin PATH] [--rate LINES/S] [--live-secs S]"
            ),
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
    let mut child = Daemon(
        Command::new(&bin)
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
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display())),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.0.stderr.take().expect("stderr");
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
    let pid = child.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Ingest: a live subscriber from id 1 sees the whole log go through. One that falls more
        // than the history behind is closed 4008 (CONTRACT §2): it resumes with `since`.
        let started = Instant::now();
        let mut since = 0;
        while since < count {
            let query = format!("&since={since}");
            let (n, code) = tokio::time::timeout(BOUND, read(addr, &query, since + 1, count))
                .await
                .expect("ingest within the bound");
            since += n;
            assert!(since == count || code == Some(4008), "ingest closed {code:?}");
        }
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
        let (started, cpu) = (Instant::now(), cpu_secs(pid));
        let (n, _) = tokio::time::timeout(BOUND, read(addr, "&since=0", 1, count))
            .await
            .expect("replay within the bound");
        let took = started.elapsed().as_secs_f64();
        let cpu = cpu_secs(pid) - cpu;
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        assert_eq!(n, count);
        println!(
            "replay since=0 (history 1000, so {} from disk): {:.0} entries/s ({took:.1} s), daemon CPU {cpu:.1} s ({:.0} ns/entry); peak RSS {} MiB",
            count.saturating_sub(1000),
            n as f64 / took,
            cpu * 1e9 / n as f64,
            peak.load(Ordering::Relaxed) / 1024
        );
        let (started, cpu) = (Instant::now(), cpu_secs(pid));
        let query = format!(
            "&from={T0}&until={}&filter=status:5xx",
            T0 + count / 100 + 1
        );
        // `until` is past the last line: the search ends by the last match instead, so pass its id.
        let (n, code) = tokio::time::timeout(BOUND, read(addr, &query, 1, count / 100 * 100))
            .await
            .expect("search within the bound");
        println!(
            "search from/until + status:5xx over {count}: {n} matches in {:.2} s, daemon CPU {:.1} s (close {code:?})",
            started.elapsed().as_secs_f64(),
            cpu_secs(pid) - cpu
        );

        // Live latency, alone and then during a full replay from disk.
        let mut next = count + 1;
        for during_replay in [false, true] {
            let live = Arc::new(Live {
                written: Default::default(),
                seen: Default::default(),
                last: AtomicU64::new(0),
                done: AtomicBool::new(false),
                finished: tokio::sync::Notify::new(),
            });
            let (tx, rx) = tokio::sync::oneshot::channel();
            let reader = tokio::spawn(live_reader(addr, live.clone(), tx));
            tokio::time::timeout(BOUND, rx)
                .await
                .expect("live subscriber within the bound")
                .expect("connected");
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (log, live, stop) = (log.clone(), live.clone(), stop.clone());
                let max = if during_replay { u64::MAX / 2 } else { rate * live_secs };
                tokio::task::spawn_blocking(move || write_live(&log, &live, next, rate, &stop, max))
            };
            let mut replayed = None;
            if during_replay {
                let started = Instant::now();
                let (n, _) = tokio::time::timeout(BOUND, read(addr, "&since=0", 1, count))
                    .await
                    .expect("replay within the bound");
                assert_eq!(n, count);
                replayed = Some(n as f64 / started.elapsed().as_secs_f64());
                stop.store(true, Ordering::Relaxed);
            }
            next = writer.await.expect("writer");
            live.done.store(true, Ordering::Relaxed);
            live.finished.notify_one();
            tokio::time::timeout(BOUND, reader)
                .await
                .expect("live subscriber done within the bound")
                .expect("live subscriber");
            let mut us = std::mem::take(&mut *live.seen.lock().expect("lock"));
            let n = us.len();
            let (p50, p99, max) = percentiles(&mut us);
            let what = match replayed {
                Some(r) => format!("during a replay of {count} from disk ({r:.0} entries/s)"),
                None => "alone".to_owned(),
            };
            println!(
                "live subscriber at {rate} lines/s, {what}: {n} entries, latency p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
            );
        }
    });
}

/// The daemon started by this tool, stopped (by its PID) however the tool ends, a panic included.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}
