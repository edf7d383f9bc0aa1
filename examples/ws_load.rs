//! Load tool for the WebSocket stream: one subscriber (a real tokio-tungstenite client over
//! 127.0.0.1) against the real routes, fed by publishing into the hub directly (no tailer).
//!
//! Two phases, each bounded by a count and a time limit:
//! 1. throughput: publish `--count` records in batches of `--batch` as fast as the subscriber takes
//!    them (the publisher stays at most `--window` records ahead) and report lines/s at the client;
//! 2. latency: publish `--rate` records/s for `--seconds` seconds (batches every millisecond) and
//!    report the write-to-receipt p50/p99/max, measured from just before `Hub::publish` to the
//!    moment the client has the frame.
//!
//! ```text
//! cargo run --release --example ws_load -- --count 500000 --rate 20000 --seconds 5
//! ```
use futures_util::StreamExt;
use proxytail::auth::Authenticator;
use proxytail::config::Config;
use proxytail::http::{self, AppState, Connections};
use proxytail::hub::{Hub, Record};
use proxytail::sessions::{SessionLimits, SessionStore};
use proxytail::source::file::TailHealth;
use proxytail::tokens::TokenStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Command-line knobs.
struct Args {
    /// Records in the throughput phase.
    count: u64,
    /// Records per published batch in the throughput phase.
    batch: usize,
    /// How far the publisher may run ahead of the subscriber (below the history size).
    window: u64,
    /// Records per second in the latency phase.
    rate: u64,
    /// Length of the latency phase, seconds.
    seconds: u64,
    /// Hard bound on each phase, seconds.
    limit: u64,
    /// Bind like the daemon (TCP_NODELAY); `--nodelay 0` binds a plain listener for comparison.
    nodelay: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        count: 200_000,
        batch: 50,
        window: 50_000,
        rate: 10_000,
        seconds: 5,
        limit: 120,
        nodelay: true,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse::<u64>().ok());
        let Some(v) = value else {
            eprintln!("usage: ws_load [--count N] [--batch N] [--window N] [--rate N/s] [--seconds S] [--limit S] [--nodelay 0|1]");
            std::process::exit(2);
        };
        match pair[0].as_str() {
            "--count" => a.count = v,
            "--batch" => a.batch = v.max(1) as usize,
            "--window" => a.window = v.max(1),
            "--rate" => a.rate = v.max(1),
            "--seconds" => a.seconds = v,
            "--limit" => a.limit = v.max(1),
            "--nodelay" => a.nodelay = v != 0,
            other => {
                eprintln!("unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

/// A realistic entry (~330 bytes of JSON) whose destination carries `stamp`.
fn record(id: u64, stamp: u128) -> Record {
    let destination = format!("http://load.example/{stamp}/index.html");
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

/// The stamp inside a record's destination.
fn stamp_of(text: &str) -> Option<u128> {
    let rest = text.split("http://load.example/").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// The id at the start of a record's JSON.
fn id_of(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("{\"id\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = std::env::temp_dir().join(format!("ws_load-{}", std::process::id()));
    let (_, config) = Config::from_args([
        "proxytail",
        "--state-dir",
        &dir.display().to_string(),
        "--history",
        "100000",
    ])
    .expect("config");
    // `--nodelay 0` shows what Nagle's algorithm costs (the daemon always sets TCP_NODELAY).
    let listener = if args.nodelay {
        proxytail::app::bind_listener("127.0.0.1:0".parse().expect("addr")).expect("bind")
    } else {
        TcpListener::bind("127.0.0.1:0").await.expect("bind")
    };
    let addr = listener.local_addr().expect("addr");
    let state = AppState {
        hub: Arc::new(Hub::new(config.history)),
        auth: Arc::new(Authenticator::load(&config).expect("auth")),
        tokens: Arc::new(TokenStore::new(config.token_ttl)),
        sessions: Arc::new(SessionStore::in_memory(SessionLimits::of(&config))),
        health: Arc::new(TailHealth::default()),
        config: Arc::new(config),
        local_addr: addr,
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
        connections: Arc::new(Connections::default()),
        metrics: Arc::default(),
    };
    // The daemon's own server: the WebSocket route upgrades with the handle it passes along.
    let limits = http::server::Limits {
        header_read: state.config.header_read_timeout,
        total: state.config.max_http_connections,
        per_ip: state.config.max_http_connections_per_ip,
    };
    state.tracker.spawn(http::server::run(
        http::routes(state.clone()),
        listener,
        limits,
        state.shutdown.clone(),
    ));

    let limit = Duration::from_secs(args.limit);
    let origin = Instant::now();
    let nanos = move || origin.elapsed().as_nanos();

    // One subscriber; it records ids and receipt latencies.
    let token = state.tokens.mint("ws_load").expect("token");
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws/logs?token={token}"))
            .await
            .expect("connect");
    // Round trip so the session has subscribed before anything is published.
    futures_util::SinkExt::send(&mut ws, Message::text("ping"))
        .await
        .expect("ping");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "pong" => break,
            Some(Ok(_)) => continue,
            other => panic!("no pong: {other:?}"),
        }
    }
    let received = Arc::new(AtomicU64::new(0));
    let total = args.count + args.rate * args.seconds;
    let counter = received.clone();
    let reader = tokio::spawn(async move {
        let mut latencies_ns: Vec<u64> = Vec::new();
        let mut expected = 1u64;
        let mut throughput_done = None;
        let count = args.count;
        while expected <= total {
            let Some(Ok(msg)) = ws.next().await else {
                panic!("stream ended after {} records", expected - 1);
            };
            let Message::Text(text) = msg else { continue };
            let id = id_of(&text).expect("entry id");
            assert_eq!(id, expected, "gap or duplicate");
            if id > count {
                if let Some(stamp) = stamp_of(&text) {
                    latencies_ns.push((nanos() - stamp) as u64);
                }
            }
            if id == count {
                throughput_done = Some(Instant::now());
            }
            expected += 1;
            counter.store(id, Ordering::Release);
        }
        (latencies_ns, throughput_done)
    });

    // Phase 1: throughput.
    let hub = state.hub.clone();
    let started = Instant::now();
    let mut next = 1u64;
    while next <= args.count {
        if started.elapsed() > limit {
            eprintln!("throughput phase hit the time limit");
            std::process::exit(1);
        }
        if next - received.load(Ordering::Acquire) > args.window {
            tokio::task::yield_now().await;
            continue;
        }
        let end = (next + args.batch as u64 - 1).min(args.count);
        hub.publish((next..=end).map(|id| record(id, 0)).collect());
        next = end + 1;
    }
    // Phase 2: latency at a fixed rate, batches every millisecond.
    let per_ms = (args.rate / 1000).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let phase2_end = args.count + args.rate * args.seconds;
    while next <= phase2_end {
        tick.tick().await;
        let end = (next + per_ms - 1).min(phase2_end);
        let stamp = nanos();
        hub.publish((next..=end).map(|id| record(id, stamp)).collect());
        next = end + 1;
    }
    let (mut latencies, throughput_done) = tokio::time::timeout(limit, reader)
        .await
        .expect("subscriber finished within the limit")
        .expect("reader task");
    let elapsed = throughput_done
        .map(|t| t.duration_since(started))
        .unwrap_or_default();
    println!(
        "throughput: {} records in {:.3} s = {:.0} lines/s (batch {}, one subscriber)",
        args.count,
        elapsed.as_secs_f64(),
        args.count as f64 / elapsed.as_secs_f64().max(1e-9),
        args.batch
    );
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |&ns| ns as f64 / 1e6)
    };
    println!(
        "latency at {} lines/s for {} s ({} samples): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        args.rate,
        args.seconds,
        latencies.len(),
        pct(0.50),
        pct(0.99),
        latencies.last().map_or(0.0, |&ns| ns as f64 / 1e6)
    );
    state.shutdown.cancel();
    state.tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), state.tracker.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
}
