//! End-to-end load tool: the RELEASE daemon binary as a child process, a log file written with native
//! Squid lines, and N real WebSocket subscribers (tokio-tungstenite over 127.0.0.1).
//!
//! It measures the whole path (file → tail → parse → JSON → journal/checkpoint → hub → WebSocket):
//! per subscriber the lines received, loss (ids must run 1, 2, 3 … with no gap), throughput and the
//! write-to-receipt latency (each line carries its write time in its URL,
//! `http://load.test/<seq>/<nanos>`); and the daemon's VmRSS (sampled every 100 ms) and VmHWM.
//! `examples/ws_load.rs` measures only the hub → WebSocket part, in-process.
//!
//! Bounded by count and time: the writer stops after `--lines` lines or `--seconds` seconds,
//! whichever comes first; the subscribers then get at most `--drain` seconds to receive the rest.
//! Then the daemon is stopped with SIGTERM and the tool exits (status 1 if anything was lost).
//!
//! ```text
//! cargo build --release && cargo build --release --example e2e_load
//! target/release/examples/e2e_load --subscribers 1 --rate 0 --lines 2000000 --seconds 30
//! target/release/examples/e2e_load --subscribers 1 --rate 1000 --lines 10000 --seconds 10
//! target/release/examples/e2e_load --subscribers 100 --rate 1000 --lines 10000 --seconds 10
//! ```
use argon2::{Algorithm, Params, Version};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use proxytail::auth::users::{hash_password_with, HashParams};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Bound on daemon start-up, each token request and each connection (a failure bound).
const BOUND: Duration = Duration::from_secs(30);
/// Lines per `write` when writing as fast as possible.
const MAX_RATE_CHUNK: u64 = 1_000;

/// Command-line knobs.
struct Args {
    /// WebSocket subscribers.
    subscribers: usize,
    /// Lines per second to write; 0 = as fast as possible.
    rate: u64,
    /// Lines to write at most.
    lines: u64,
    /// Seconds to write at most.
    seconds: u64,
    /// Seconds the subscribers get, after the writer stopped, to receive the rest.
    drain: u64,
    /// The daemon's `--history` (what a lagging subscriber can be caught up from).
    history: u64,
    /// The daemon binary.
    bin: PathBuf,
    /// Parent of the temporary directory holding the log, users file and state directory
    /// (default: the system temp dir); e.g. `/dev/shm` to take the disk out of the measurement.
    tmp: Option<PathBuf>,
    /// Where to write subscriber 0's `seq latency_ns` pairs, one a line (for plotting tails).
    dump: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: e2e_load [--subscribers N] [--rate LINES/S (0 = max)] [--lines N] [--seconds S] \
         [--drain S] [--history N] [--bin PATH] [--dump FILE] [--tmp DIR]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        subscribers: 1,
        rate: 1_000,
        lines: 10_000,
        seconds: 10,
        drain: 30,
        history: 10_000,
        bin: PathBuf::from("target/release/proxytail"),
        dump: None,
        tmp: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let Some(value) = pair.get(1) else { usage() };
        let num = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match pair[0].as_str() {
            "--subscribers" => a.subscribers = num().max(1) as usize,
            "--rate" => a.rate = num(),
            "--lines" => a.lines = num().max(1),
            "--seconds" => a.seconds = num().max(1),
            "--drain" => a.drain = num().max(1),
            "--history" => a.history = num().max(1),
            "--bin" => a.bin = PathBuf::from(value),
            "--dump" => a.dump = Some(PathBuf::from(value)),
            "--tmp" => a.tmp = Some(PathBuf::from(value)),
            _ => usage(),
        }
    }
    a
}

/// The daemon child process and what it printed.
struct Daemon {
    /// The process.
    child: Child,
    /// Where it listens (from its `proxytail listening local=ADDR` line).
    addr: SocketAddr,
    /// Its last stderr lines, shown when something fails.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(bin: &Path, args: &[String]) -> Daemon {
        let mut child = Command::new(bin)
            .args(args)
            .env("NO_COLOR", "1")
            .env("PROXYTAIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("piped stderr");
        let keep = stderr.clone();
        std::thread::spawn(move || {
            // Keeps draining so the daemon never blocks on a full pipe.
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split("local=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                {
                    let _ = tx.send(addr.parse::<SocketAddr>());
                }
                let mut keep = keep.lock().unwrap_or_else(|p| p.into_inner());
                keep.push(line);
                if keep.len() > 400 {
                    keep.drain(..200);
                }
            }
        });
        let addr = match rx.recv_timeout(BOUND) {
            Ok(Ok(addr)) => addr,
            other => panic!(
                "daemon did not report its address ({other:?}): {:?}",
                stderr.lock().unwrap_or_else(|p| p.into_inner())
            ),
        };
        Daemon {
            child,
            addr,
            stderr,
        }
    }

    /// `(VmRSS, VmHWM)` in KiB from /proc/PID/status.
    fn memory(&self) -> Option<(u64, u64)> {
        memory_of(self.child.id())
    }

    /// SIGTERM, then wait (bounded) for the exit.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + BOUND;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return format!("{status}"),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return "killed after the SIGTERM bound".into();
                }
            }
        }
    }
}

fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) of process `pid` so far, seconds (`/proc/PID/stat`, 100 ticks/s).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A cheap Argon2id hash (m=1024 KiB, t=1, p=1): the load tool measures streaming, not sign-in.
fn cheap_hash(password: &str) -> String {
    let params = HashParams {
        algorithm: Algorithm::Argon2id,
        version: Version::V0x13,
        params: Params::new(1024, 1, 1, None).expect("argon2 params"),
    };
    hash_password_with(password, &params).expect("hash")
}

/// A single-use WebSocket token over HTTP Basic.
async fn token(addr: SocketAddr) -> Result<String, String> {
    let cred = base64::engine::general_purpose::STANDARD.encode("load:load-password");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!(
                "GET /api/ws-token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {cred}\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).await?;
        Ok::<_, std::io::Error>(resp)
    };
    let resp = tokio::time::timeout(BOUND, exchange)
        .await
        .map_err(|_| "token request timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).map_err(|e| format!("{e}: {resp}"))?;
    v["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| resp.clone())
}

/// The id at the start of an entry's JSON.
fn id_of(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("{\"id\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// `(seq, nanos)` from the destination `http://load.test/<seq>/<nanos>`.
fn stamp_of(text: &str) -> Option<(u64, u64)> {
    let rest = text.split("http://load.test/").nth(1)?;
    let mut parts = rest.split(['/', '"']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    /// Entries received.
    received: u64,
    /// Entries missing (sum of the jumps in the id sequence) plus ids out of order.
    lost: u64,
    /// The highest id received (ids after it up to the number written never arrived).
    last_id: u64,
    /// Entries whose id did not equal the line's own sequence number.
    mismatched: u64,
    /// Write-to-receipt latency of every entry, ns, in order of arrival.
    latencies: Vec<u64>,
    /// The sequence number of each entry in `latencies`.
    seqs: Vec<u64>,
    /// When the first and the last entry arrived (ns since the origin).
    first_last: Option<(u64, u64)>,
    /// How the stream ended early, if it did (a close frame or an error).
    ended: Option<String>,
}

/// Reads entries until the number of lines written (`expected`, published when the writer stops)
/// have arrived, the stream ends, or `stop` is cancelled.
async fn subscriber(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    origin: Instant,
    mut expected: tokio::sync::watch::Receiver<u64>,
    done: Arc<AtomicU64>,
    stop: CancellationToken,
) -> Seen {
    let mut seen = Seen::default();
    let mut last_id = 0u64;
    loop {
        if last_id >= *expected.borrow_and_update() {
            break;
        }
        let msg = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = expected.changed() => continue,
            m = ws.next() => m,
        };
        let msg = match msg {
            None => {
                seen.ended = Some("stream ended".into());
                break;
            }
            Some(Err(e)) => {
                seen.ended = Some(format!("error: {e}"));
                break;
            }
            Some(Ok(m)) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(frame) => {
                seen.ended = Some(format!("closed: {frame:?}"));
                break;
            }
            _ => continue,
        };
        let now = origin.elapsed().as_nanos() as u64;
        let Some(id) = id_of(&text) else { continue };
        if id != last_id + 1 {
            // A jump counts the ids skipped; an id at or below the last counts as one fault.
            seen.lost += id.saturating_sub(last_id + 1).max(u64::from(id <= last_id));
        }
        last_id = last_id.max(id);
        seen.received += 1;
        if let Some((seq, stamp)) = stamp_of(&text) {
            if seq != id {
                seen.mismatched += 1;
            }
            seen.latencies.push(now.saturating_sub(stamp));
            seen.seqs.push(seq);
        }
        seen.first_last = Some(seen.first_last.map_or((now, now), |(f, _)| (f, now)));
    }
    seen.last_id = last_id;
    done.fetch_add(1, Ordering::AcqRel);
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    seen
}

/// Writes native Squid lines at `rate` (0 = as fast as possible) until `lines` or `seconds`;
/// returns the number written and the time writing took.
fn write_lines(log: &Path, origin: Instant, args: &Args) -> (u64, Duration) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("open log");
    let limit = Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut buf = Vec::with_capacity(256 * MAX_RATE_CHUNK as usize);
    let mut seq = 0u64;
    while seq < args.lines {
        let elapsed = started.elapsed();
        if elapsed >= limit {
            break;
        }
        let due = if args.rate == 0 {
            (seq + MAX_RATE_CHUNK).min(args.lines)
        } else {
            let due = (elapsed.as_nanos() * u128::from(args.rate) / 1_000_000_000) as u64 + 1;
            due.min(args.lines)
        };
        if due <= seq {
            // Paced: sleep until the next line is due (at most 1 ms).
            let next_at =
                Duration::from_nanos((seq as u128 * 1_000_000_000 / u128::from(args.rate)) as u64);
            std::thread::sleep(
                next_at
                    .saturating_sub(elapsed)
                    .min(Duration::from_millis(1)),
            );
            continue;
        }
        buf.clear();
        let stamp = origin.elapsed().as_nanos() as u64;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ts = format!("{}.{:03}", wall.as_secs(), wall.subsec_millis());
        while seq < due {
            seq += 1;
            let _ = writeln!(
                buf,
                "{ts}     85 192.168.1.10 TCP_MISS/200 4096 GET http://load.test/{seq}/{stamp} - \
                 HIER_DIRECT/93.184.216.34 text/html"
            );
        }
        file.write_all(&buf).expect("write log");
    }
    (seq, started.elapsed())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e6
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = match &args.tmp {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let log = dir.path().join("access.log");
    std::fs::File::create(&log).expect("create log");
    let state = dir.path().join("state");
    let users = dir.path().join("users");
    std::fs::write(&users, format!("load:{}\n", cheap_hash("load-password"))).expect("users");
    let cap = (args.subscribers + 8).to_string();
    let daemon_args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--access-log",
        &log.display().to_string(),
        "--from-start",
        "--state-dir",
        &state.display().to_string(),
        "--users",
        &users.display().to_string(),
        "--history",
        &args.history.to_string(),
        "--max-connections",
        &cap,
        "--max-connections-per-ip",
        &cap,
        // Every subscriber's token is minted for the one user before any is used.
        "--max-tokens-per-user",
        &cap,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let daemon = Daemon::start(&args.bin, &daemon_args);
    let addr = daemon.addr;
    let pid = daemon.child.id();
    let (rss_start, _) = daemon.memory().unwrap_or_default();

    // Connect every subscriber and make sure each session is subscribed (ping → pong) first.
    let origin = Instant::now();
    let (expected_tx, expected) = tokio::sync::watch::channel(u64::MAX);
    let done = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let mut rss_tokens = 0;
    let handles = rt.block_on(async {
        // Every token first, so the RSS of sign-in (Argon2) and of connections are told apart.
        let mut tokens = Vec::new();
        for i in 0..args.subscribers {
            tokens.push(
                token(addr)
                    .await
                    .unwrap_or_else(|e| panic!("token {i}: {e}")),
            );
        }
        rss_tokens = memory_of(pid).unwrap_or_default().0;
        let mut handles = Vec::new();
        for (i, token) in tokens.into_iter().enumerate() {
            let url = format!("ws://{addr}/api/ws/logs?token={token}");
            let (mut ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::connect_async(url))
                .await
                .expect("connect within the bound")
                .unwrap_or_else(|e| panic!("connect {i}: {e}"));
            ws.send(Message::text("ping")).await.expect("ping");
            let ready = tokio::time::timeout(BOUND, async {
                while let Some(Ok(m)) = ws.next().await {
                    if m.to_text().ok() == Some("pong") {
                        return true;
                    }
                }
                false
            })
            .await;
            assert_eq!(ready, Ok(true), "subscriber {i} got no pong");
            handles.push(rt.spawn(subscriber(
                ws,
                origin,
                expected.clone(),
                done.clone(),
                stop.clone(),
            )));
        }
        handles
    });
    let (rss_connected, _) = memory_of(pid).unwrap_or_default();

    // Sample the daemon's RSS while the load runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, rss_max) = (sampling.clone(), rss_max.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some((rss, _)) = memory_of(pid) {
                    rss_max.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let write_start = origin.elapsed().as_nanos() as u64;
    let cpu_before = (cpu_seconds(&pid.to_string()), cpu_seconds("self"));
    let (written, write_time) = write_lines(&log, origin, &args);
    expected_tx.send_replace(written);
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain);
    while done.load(Ordering::Acquire) < args.subscribers as u64 && Instant::now() < drain_deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.cancel();
    let seen: Vec<Seen> = rt.block_on(async {
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await.expect("subscriber task"));
        }
        all
    });
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let (rss_end, hwm) = memory_of(pid).unwrap_or_default();
    let cpu_daemon = cpu_seconds(&pid.to_string()) - cpu_before.0;
    let cpu_tool = cpu_seconds("self") - cpu_before.1;
    let stderr = daemon.stderr.clone();
    let exit = daemon.stop();

    // Report.
    if let (Some(path), Some(s)) = (&args.dump, seen.first()) {
        let mut out = String::new();
        for (seq, ns) in s.seqs.iter().zip(&s.latencies) {
            out.push_str(&format!("{seq} {ns}\n"));
        }
        if let Err(e) = std::fs::write(path, out) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
    let mode = if args.rate == 0 {
        "max".to_string()
    } else {
        format!("{}/s", args.rate)
    };
    println!(
        "e2e_load: {} subscriber(s), rate {mode}, {written} lines written in {:.3} s ({:.0} lines/s written)",
        args.subscribers,
        write_time.as_secs_f64(),
        written as f64 / write_time.as_secs_f64().max(1e-9)
    );
    let mut all_lat: Vec<u64> = Vec::new();
    let mut total_lost = 0;
    let mut worst_p99 = 0f64;
    let mut min_tput = f64::INFINITY;
    let mut incomplete = 0;
    for (i, s) in seen.iter().enumerate() {
        let mut lat = s.latencies.clone();
        lat.sort_unstable();
        // Throughput: lines received over the time from the first write to the last receipt.
        let tput = s.first_last.map_or(0.0, |(_, last)| {
            s.received as f64 / (last.saturating_sub(write_start) as f64 / 1e9).max(1e-9)
        });
        // Gaps inside the sequence, plus the tail that never arrived.
        let lost = s.lost + written.saturating_sub(s.last_id);
        total_lost += lost;
        if s.received < written {
            incomplete += 1;
        }
        worst_p99 = worst_p99.max(percentile(&lat, 0.99));
        min_tput = min_tput.min(tput);
        if args.subscribers <= 4 || i < 2 || lost > 0 || s.ended.is_some() {
            println!(
                "  sub {i}: received {}/{written}, lost {}, id≠seq {}, {:.0} lines/s, latency p50 {:.3} ms p99 {:.3} ms max {:.3} ms{}",
                s.received,
                lost,
                s.mismatched,
                tput,
                percentile(&lat, 0.50),
                percentile(&lat, 0.99),
                lat.last().map_or(f64::NAN, |&n| n as f64 / 1e6),
                s.ended.as_deref().map(|e| format!(", ended early: {e}")).unwrap_or_default()
            );
        }
        all_lat.extend_from_slice(&lat);
    }
    all_lat.sort_unstable();
    println!(
        "  all: {} entries received, lost {total_lost}, incomplete subscribers {incomplete}, \
         slowest subscriber {min_tput:.0} lines/s, latency p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms \
         max {:.3} ms (worst per-subscriber p99 {worst_p99:.3} ms)",
        all_lat.len(),
        percentile(&all_lat, 0.50),
        percentile(&all_lat, 0.99),
        percentile(&all_lat, 0.999),
        all_lat.last().map_or(f64::NAN, |&n| n as f64 / 1e6),
    );
    println!(
        "  daemon RSS: {:.1} MiB at start, {:.1} MiB after the tokens, {:.1} MiB with subscribers connected, max sampled {:.1} MiB, \
         {:.1} MiB at end, VmHWM {:.1} MiB; exit {exit}",
        rss_start as f64 / 1024.0,
        rss_tokens as f64 / 1024.0,
        rss_connected as f64 / 1024.0,
        rss_max.load(Ordering::Relaxed).max(rss_end) as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "  CPU during the run: daemon {cpu_daemon:.2} s ({:.0} lines per daemon CPU-second, \
         {:.3} µs per line), load tool (writer + clients) {cpu_tool:.2} s; loadavg {}",
        written as f64 / cpu_daemon.max(1e-9),
        cpu_daemon * 1e6 / (written.max(1) as f64),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if total_lost > 0 {
        let tail = stderr.lock().unwrap_or_else(|p| p.into_inner());
        for line in tail.iter().rev().take(10).rev() {
            eprintln!("daemon: {line}");
        }
        drop(tail);
        // `exit` skips destructors: remove the temp directory first.
        drop(dir);
        std::process::exit(1);
    }
}
