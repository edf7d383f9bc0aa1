//! The fleet on a real NATS JetStream cluster (CONTRACT §10, RELIABILITY 85-86): three edges (the
//! real binary with `--publish`) write their logs continuously, a central (`--consume`) merges the
//! three streams, and a WebSocket subscriber on the central that resumes with `since` after every
//! disconnection receives every line of every edge exactly once, in each node's order, with `node`
//! and `node_id` — across a SIGKILL of an edge, of the central and of one NATS server (restarted
//! while traffic flows, then another one killed once it has caught up), and a NATS outage of one
//! edge (cut at a TCP relay the test owns) during which that edge's own subscribers
//! keep receiving every line.
//!
//! `PROXYTAIL_FLEET_RATE` sets the lines per second each edge's log gets (default 2,000: debug
//! daemons cost ~93 µs of CPU per line at an edge and ~53 µs at the central, BENCHMARKS §12);
//! `scripts/test.sh` runs this test on release binaries (`PROXYTAIL_TEST_BIN`) at the issue's 10,000
//! lines/s per edge, on the nats-server it installs (`PROXYTAIL_NATS_SERVER`, 2.14.6; Debian's 2.9.10
//! cluster did not always heal at that rate). The outage lasts 60 s (`PROXYTAIL_FLEET_OUTAGE_SECS`
//! overrides it).
mod common;
mod fleet_support;

use common::process::{tail_of, LogTail, Proc};
use common::*;
use fleet_support::{Cluster, Relay};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Lines per second each edge's log gets.
fn rate() -> u64 {
    env_or("PROXYTAIL_FLEET_RATE", 2000)
}

/// How long one edge is cut off NATS.
fn outage() -> Duration {
    Duration::from_secs(env_or("PROXYTAIL_FLEET_OUTAGE_SECS", 60))
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A daemon start: the binary reports its address within this.
const START: Duration = Duration::from_secs(60);
/// Everything written must reach the central subscriber within this after the writers stop. At
/// 10,000 lines/s per edge on 2 loaded cores the drain took 30–53 s on nats-server 2.14.6 and
/// 70–194 s on 2.9.10 (BENCHMARKS §12), longer after a stall with a server down (more written
/// meanwhile, waiting in the edges' journals).
const DRAIN: Duration = Duration::from_secs(600);
/// Entries of every node again after the second NATS server's SIGKILL. A stream whose leader was on
/// it waits for a new leader and the central's reader for it: at 10,000 lines/s per edge one node
/// stalled there for 20 s to over 90 s on nats-server 2.9.10 (CI, 2026-12-02), once 20 s on 2.14.6.
const QUORUM_BACK: Duration = Duration::from_secs(180);
/// A restarted NATS server's replicas catch up with their leaders within this while the edges
/// publish.
const CATCH_UP: Duration = Duration::from_secs(180);
/// No writer writes longer than this, whatever happens to the test.
const MAX_WRITING: Duration = Duration::from_secs(400);

/// The command line of an edge: `node` tails `log` and publishes to `nats`, plus `extra`.
fn edge_args(
    state: &Path,
    log: &Path,
    users: &Path,
    nats: &str,
    node: &str,
    extra: &[&str],
) -> Vec<String> {
    let (state, log, users) = (
        state.display().to_string(),
        log.display().to_string(),
        users.display().to_string(),
    );
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &state,
        "--access-log",
        &log,
        "--users",
        &users,
        "--publish",
        nats,
        "--node-name",
        node,
    ];
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

/// The command line of a central consuming `nodes` (comma-separated) from `nats`, plus `extra`.
fn central_args(
    state: &Path,
    users: &Path,
    nats: &str,
    nodes: &str,
    extra: &[&str],
) -> Vec<String> {
    let (state, users) = (state.display().to_string(), users.display().to_string());
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &state,
        "--users",
        &users,
        "--consume",
        nats,
        "--nodes",
        nodes,
    ];
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

/// A Squid native line whose URL ends in `seq` (the edge's id of the line, ids starting at 1).
fn squid_line(node: &str, seq: u64) -> String {
    format!(
        "1795835993.{:03}     85 192.168.1.10 TCP_MISS/200 4096 GET http://{node}.example/{seq} - HIER_DIRECT/93.184.216.34 text/html\n",
        seq % 1000
    )
}

/// Appends lines to `path` at `rate` per second until `stop` (bounded by [`MAX_WRITING`]);
/// `written` is the number of lines written so far.
fn writer(
    node: String,
    path: PathBuf,
    rate: u64,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open access log");
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) && start.elapsed() < MAX_WRITING {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            let mut chunk = String::new();
            for seq in n + 1..=due {
                chunk.push_str(&squid_line(&node, seq));
            }
            f.write_all(chunk.as_bytes()).expect("append");
            n = n.max(due);
            written.store(n, Ordering::SeqCst);
            // Pacing the writer (a rate), not waiting for anything.
            std::thread::sleep(Duration::from_millis(10));
        }
        n
    })
}

/// One edge: its files and its process.
struct Edge {
    name: String,
    log: PathBuf,
    args: Vec<String>,
    proc: Option<Proc>,
    logs: LogTail,
    written: Arc<AtomicU64>,
}

impl Edge {
    fn new(dir: &Path, name: &str, url: &str, users: &Path) -> Edge {
        let state = dir.join(format!("{name}-state"));
        let log = dir.join(format!("{name}.log"));
        std::fs::write(&log, "").expect("create log");
        let args = edge_args(
            &state,
            &log,
            users,
            url,
            name,
            &["--from-start", "--nats-replicas", "3"],
        );
        Edge {
            name: name.into(),
            log,
            args,
            proc: None,
            logs: LogTail::default(),
            written: Arc::default(),
        }
    }

    fn start(&mut self) {
        self.proc = Some(Proc::start(&self.args, &self.logs, START));
    }

    fn addr(&self) -> SocketAddr {
        self.proc.as_ref().expect("running").addr
    }
}

/// What the central subscriber received.
#[derive(Default)]
struct Received {
    /// The central's last id seen (the `since` of the next connection).
    last_id: u64,
    /// Central ids that did not follow the previous one.
    id_breaks: Vec<(u64, u64)>,
    /// Per node, the `node_id`s in arrival order.
    per_node: BTreeMap<String, Vec<u64>>,
    /// Entries whose URL does not end in their `node_id` or that lack `node`.
    wrong: Vec<String>,
    /// Connections made.
    connections: u64,
    /// Told after each entry received: what [`wait_for`] awaits.
    arrived: Arc<tokio::sync::Notify>,
    /// The daemons' logs, by name, shown when a wait fails (which node stalled, and why).
    logs: Vec<(String, LogTail)>,
}

impl Received {
    fn count(&self, node: &str) -> usize {
        self.per_node.get(node).map_or(0, Vec::len)
    }

    /// The last lines of each daemon's log.
    fn log_tails(&self) -> String {
        self.logs
            .iter()
            .map(|(name, log)| {
                let all = tail_of(log);
                let lines: Vec<&str> = all.lines().collect();
                let last = lines[lines.len().saturating_sub(30)..].join("\n");
                format!("--- {name} ---\n{last}\n")
            })
            .collect()
    }
}

/// A token from the central at `addr`, or `None` while it is not answering.
async fn try_token(addr: SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let credentials = basic(USER, PASSWORD);
    let request = request_bytes(addr, "/api/ws-token", &[("authorization", &credentials)]);
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(&request).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        Some(raw)
    };
    let raw = tokio::time::timeout(WAIT, exchange).await.ok()??;
    let response = parse_response(&raw);
    (response.status == 200).then(|| response.json()["token"].as_str().map(str::to_owned))?
}

/// Follows the central (its address from `addr`), reconnecting with `since` after every
/// disconnection, until `done` is cancelled.
async fn collect(
    mut addr: watch::Receiver<SocketAddr>,
    got: Arc<Mutex<Received>>,
    done: tokio_util::sync::CancellationToken,
) {
    loop {
        if done.is_cancelled() {
            return;
        }
        let at = *addr.borrow_and_update();
        let Some(token) = try_token(at).await else {
            // Not answering: the central is down; its next address comes from the test.
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tokio::time::timeout(WAIT, addr.changed()) => continue,
            }
        };
        let since = got.lock().unwrap().last_id;
        let url = format!("ws://{at}/api/ws/logs?token={token}&since={since}");
        let Ok(mut ws) = try_connect(&url, &[]).await else {
            continue;
        };
        got.lock().unwrap().connections += 1;
        loop {
            let event = tokio::select! {
                _ = done.cancelled() => return,
                e = tokio::time::timeout(Duration::from_secs(30), next_event_within(&mut ws, Duration::from_secs(3600))) => e,
            };
            let Ok(Event::Text(text)) = event else {
                break; // closed, gone, or quiet for long: reconnect with since
            };
            // Only the fields checked, borrowed: at 30,000 entries/s a `serde_json::Value` per
            // entry made this (debug-built) collector one of the busiest processes on the machine.
            let e: Seen = serde_json::from_str(&text).expect("an entry is JSON");
            let mut g = got.lock().unwrap();
            if e.id != g.last_id + 1 {
                let last = g.last_id;
                g.id_breaks.push((last, e.id));
            }
            g.last_id = g.last_id.max(e.id);
            let (Some(node), Some(node_id)) = (e.node, e.node_id) else {
                g.wrong.push(text.clone());
                continue;
            };
            if !e.destination.is_some_and(|d| is_line_of(&d, node, node_id)) {
                g.wrong.push(text.clone());
            }
            match g.per_node.get_mut(node) {
                Some(ids) => ids.push(node_id),
                None => {
                    g.per_node.insert(node.to_owned(), vec![node_id]);
                }
            }
            g.arrived.notify_waiters();
        }
    }
}

/// What the collector reads of a central entry.
#[derive(serde::Deserialize)]
struct Seen<'a> {
    id: u64,
    node: Option<&'a str>,
    node_id: Option<u64>,
    #[serde(borrow)]
    destination: Option<std::borrow::Cow<'a, str>>,
}

/// Whether `destination` is the URL [`squid_line`] wrote for line `node_id` of `node`.
fn is_line_of(destination: &str, node: &str, node_id: u64) -> bool {
    destination
        .strip_prefix("http://")
        .and_then(|d| d.strip_prefix(node))
        .and_then(|d| d.strip_prefix(".example/"))
        .and_then(|d| d.parse::<u64>().ok())
        == Some(node_id)
}

/// Between two progress lines of a long wait (CI logs show where a slow run spent its time).
const REPORT_EVERY: Duration = Duration::from_secs(20);

/// Waits (bounded) until `cond` holds on what the subscriber received, printing the counts every
/// [`REPORT_EVERY`].
async fn wait_for(
    got: &Arc<Mutex<Received>>,
    what: &str,
    bound: Duration,
    cond: impl Fn(&Received) -> bool,
) {
    let start = Instant::now();
    let deadline = start + bound;
    let mut report = start + REPORT_EVERY;
    let arrived = got.lock().unwrap().arrived.clone();
    loop {
        // Registered before the check, so an entry arriving in between still wakes it.
        let next = arrived.notified();
        tokio::pin!(next);
        next.as_mut().enable();
        let now = Instant::now();
        {
            let r = got.lock().unwrap();
            if cond(&r) {
                return;
            }
            // Counted only when shown: this loop turns once per entry received.
            if now >= report || now >= deadline {
                let counts: Vec<(&String, usize)> =
                    r.per_node.iter().map(|(n, v)| (n, v.len())).collect();
                assert!(
                    now < deadline,
                    "{what}: not within {bound:?} (received so far: {counts:?})\n{}",
                    r.log_tails()
                );
                eprintln!(
                    "fleet: waiting {:.0} s for {what}; received so far: {counts:?}",
                    (now - start).as_secs_f64()
                );
                report = now + REPORT_EVERY;
            }
        }
        let _ = tokio::time::timeout_at(deadline.min(report).into(), next).await;
    }
}

/// `GET /api/health` of `addr` (no credentials: counts only).
async fn health(addr: SocketAddr) -> serde_json::Value {
    get_within(addr, "/api/health", &[], WAIT).await.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edge_line_reaches_the_central_subscriber_once_across_kills_and_an_outage() {
    let rate = rate();
    let mut dir = tempfile::tempdir().expect("temp dir");
    // Logs and stores of the edges, central and cluster stay for a look after a failure.
    dir.disable_cleanup(std::env::var_os("PROXYTAIL_FLEET_KEEP").is_some());
    let users = write_users(dir.path());
    let mut cluster = tokio::task::block_in_place(|| Cluster::start(3));
    // e3 reaches NATS only through the relay, to server 0; server 1 is the one killed.
    let relay = Relay::start(cluster.addr(0)).await;

    let central_args = central_args(
        &dir.path().join("central-state"),
        &users,
        &cluster.urls(),
        "e1,e2,e3",
        &[],
    );
    let central_logs = LogTail::default();
    let mut central =
        tokio::task::block_in_place(|| Proc::start(&central_args, &central_logs, START));

    let mut edges = vec![
        Edge::new(dir.path(), "e1", &cluster.urls(), &users),
        Edge::new(dir.path(), "e2", &cluster.urls(), &users),
        Edge::new(dir.path(), "e3", &relay.url(), &users),
    ];
    for e in &mut edges {
        tokio::task::block_in_place(|| e.start());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = edges
        .iter()
        .map(|e| {
            writer(
                e.name.clone(),
                e.log.clone(),
                rate,
                stop.clone(),
                e.written.clone(),
            )
        })
        .collect();

    let (addr_tx, addr_rx) = watch::channel(central.addr);
    let got = Arc::new(Mutex::new(Received::default()));
    got.lock().unwrap().logs = std::iter::once(("central".to_string(), central_logs.clone()))
        .chain(edges.iter().map(|e| (e.name.clone(), e.logs.clone())))
        .collect();
    let done = tokio_util::sync::CancellationToken::new();
    let collector = tokio::spawn(collect(addr_rx, got.clone(), done.clone()));
    let flowing =
        |min: usize| move |r: &Received| ["e1", "e2", "e3"].iter().all(|n| r.count(n) >= min);
    let progress = Duration::from_secs(90);
    wait_for(
        &got,
        "entries of every edge at the central",
        progress,
        flowing(100),
    )
    .await;

    // SIGKILL an edge while it writes and publishes; it resumes from its checkpoint and the stream.
    let e1 = &mut edges[0];
    e1.proc.as_mut().expect("e1 running").kill();
    tokio::task::block_in_place(|| e1.start());
    let seen = got.lock().unwrap().count("e1");
    wait_for(&got, "e1 after its restart", progress, |r| {
        r.count("e1") > seen + 500
    })
    .await;

    // SIGKILL the central; the subscriber resumes on the new one with since.
    central.kill();
    central = tokio::task::block_in_place(|| Proc::start(&central_args, &central_logs, START));
    addr_tx.send(central.addr).expect("collector listening");
    let seen = got.lock().unwrap().count("e2");
    wait_for(&got, "entries after the central's restart", progress, |r| {
        r.count("e2") > seen + 500
    })
    .await;

    // SIGKILL one NATS server (replicas 3: the other two keep the streams), then start it again
    // on its ports and store while the edges publish: it rejoins and catches its replicas up.
    cluster.kill(1);
    let seen = got.lock().unwrap().count("e2");
    wait_for(&got, "entries with one NATS server down", progress, |r| {
        r.count("e2") > seen + 500
    })
    .await;
    tokio::task::block_in_place(|| cluster.restart(1));
    // Healed: once server 1's replicas have caught up, a second server may die without the
    // streams losing a quorum that can make progress. Killing it earlier would take out a member
    // the cluster still needs, which no deployment does on purpose and is not what this tests.
    let restarted = Instant::now();
    tokio::task::block_in_place(|| cluster.await_caught_up(CATCH_UP));
    eprintln!(
        "fleet: NATS server 1's replicas caught up {:.1} s after its restart was healthy",
        restarted.elapsed().as_secs_f64()
    );
    cluster.kill(2);
    let seen = {
        let r = got.lock().unwrap();
        [r.count("e1"), r.count("e2")]
    };
    wait_for(
        &got,
        "entries with server 1 back and server 2 down",
        QUORUM_BACK,
        |r| r.count("e1") > seen[0] + 500 && r.count("e2") > seen[1] + 500,
    )
    .await;
    tokio::task::block_in_place(|| cluster.restart(2));

    // Cut e3 off NATS. Its own subscriber keeps getting every line (RELIABILITY 86) and it counts
    // what is pending.
    let e3 = edges[2].addr();
    let token = fetch_token(e3).await;
    let mut local = connect(&format!("ws://{e3}/api/ws/logs?token={token}")).await;
    relay.cut();
    let cut_at = edges[2].written.load(Ordering::SeqCst);
    let local_target = cut_at + 5 * rate;
    let mut local_last = 0;
    while local_last < local_target {
        match next_event_within(&mut local, Duration::from_secs(60)).await {
            Event::Text(t) => local_last = entry_id(&t),
            other => panic!(
                "e3's local subscriber during the outage: {other:?}\n{}",
                tail_of(&edges[2].logs)
            ),
        }
    }
    let h = health(e3).await;
    assert!(
        h["fleet"]["pending"].as_u64().unwrap_or(0) > 0,
        "e3 counts entries not yet in its stream during the outage: {h}"
    );
    assert_eq!(h["fleet"]["role"], "edge", "{h}");
    // The outage itself is the scenario: it lasts its duration.
    tokio::time::sleep(outage()).await;
    relay.restore();

    // Stop writing; everything written must arrive once, in each node's order.
    stop.store(true, Ordering::SeqCst);
    let totals: Vec<u64> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let expect: BTreeMap<String, u64> = edges
        .iter()
        .zip(&totals)
        .map(|(e, &n)| (e.name.clone(), n))
        .collect();
    let all_in = |r: &Received| expect.iter().all(|(n, &total)| r.count(n) as u64 >= total);
    let stopped = Instant::now();
    wait_for(
        &got,
        "every line of every edge at the central",
        DRAIN,
        all_in,
    )
    .await;
    // Figures for the rate's choice (BENCHMARKS §12): lines written, how long the central took to
    // drain them, and daemon CPU per line (e2 is never restarted; the central since its restart).
    let e2_pid = edges[1].proc.as_ref().expect("e2 running").pid();
    eprintln!(
        "fleet: rate {rate}/s per edge, written {expect:?}, drained {:.1} s after the writers stopped; CPU per line: edge e2 {:.1} µs, central (since its restart) {:.1} µs",
        stopped.elapsed().as_secs_f64(),
        cpu_secs(e2_pid) * 1e6 / totals[1] as f64,
        cpu_secs(central.pid()) * 1e6 / totals.iter().sum::<u64>() as f64,
    );
    // The central may hold an entry before the edge has its acknowledgement: pending reaches 0
    // a moment later.
    health_until(
        e3,
        "e3 published its backlog",
        Duration::from_secs(60),
        |h| h["fleet"]["pending"] == 0,
    )
    .await;
    let ch = health(central.addr).await;
    assert_eq!(ch["fleet"]["skipped"], 0, "{ch}");
    done.cancel();
    let _ = collector.await;

    let r = got.lock().unwrap();
    assert!(
        r.wrong.is_empty(),
        "entries without node/node_id or with the wrong line: {:?}",
        &r.wrong[..r.wrong.len().min(3)]
    );
    assert!(
        r.id_breaks.is_empty(),
        "central ids not consecutive at the subscriber: {:?}",
        &r.id_breaks[..r.id_breaks.len().min(5)]
    );
    for (node, &total) in &expect {
        let ids = &r.per_node[node];
        let want: Vec<u64> = (1..=total).collect();
        if ids != &want {
            let dup = ids.len() as u64 - total;
            let first_bad = ids.iter().zip(&want).position(|(a, b)| a != b);
            panic!("{node}: {} entries for {total} lines ({dup} extra), first difference at {first_bad:?}", ids.len());
        }
    }
    assert!(
        r.connections >= 2,
        "the subscriber resumed after the central's SIGKILL"
    );
    drop(r);
    for e in &mut edges {
        let status = e.proc.as_mut().expect("running").terminate(WAIT);
        assert!(status.success(), "{} stops cleanly", e.name);
    }
    let status = central.terminate(WAIT);
    assert!(
        status.success(),
        "central stops cleanly:\n{}",
        tail_of(&central_logs)
    );
}

/// CPU seconds (user + system) process `pid` has used (`/proc/PID/stat`, 100 ticks/s).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// `proxytail check-config` for edge `e1` of `log` publishing to `publish`, with a state dir and
/// users file when given: whether it passed, and what it printed.
fn check_config(log: &Path, state_users: Option<(&Path, &Path)>, publish: &str) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_proxytail"));
    command.arg("check-config").arg("--access-log").arg(log);
    if let Some((state, users)) = state_users {
        command
            .arg("--state-dir")
            .arg(state)
            .arg("--users")
            .arg(users);
    }
    let out = command
        .args(["--publish", publish, "--node-name", "e1"])
        .output()
        .expect("run check-config");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A closed loopback port: nothing answers there.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_nats_is_reported_and_foreign_messages_get_no_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = write_users(dir.path());
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").expect("create log");
    let nowhere = format!("nats://127.0.0.1:{}", closed_port());

    // check-config names the unreachable server and fails.
    let (ok, text) = check_config(
        &log,
        Some((&dir.path().join("check-state"), &users)),
        &nowhere,
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("unreachable") && text.contains(&nowhere),
        "check-config says why: {text}"
    );
    // A URL that is not a NATS URL is refused with the setting's name.
    let (ok, text) = check_config(&log, None, "http://127.0.0.1:4222");
    assert!(!ok && text.contains("publish"), "{text}");

    // An edge whose NATS is unreachable runs, serves its own subscribers and says why in health.
    let args = edge_args(
        &dir.path().join("edge-state"),
        &log,
        &users,
        &nowhere,
        "e1",
        &[],
    );
    let logs = LogTail::default();
    let mut edge = tokio::task::block_in_place(|| Proc::start(&args, &logs, START));
    // since=0: subscribed before the first line whenever the server registers the socket.
    let mut local = edge_subscriber_since(edge.addr, 0).await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    for seq in 1..=3 {
        f.write_all(squid_line("e1", seq).as_bytes())
            .expect("append");
    }
    assert_eq!(read_ids(&mut local, 3).await, vec![1, 2, 3]);
    let h = health(edge.addr).await;
    assert_eq!(h["fleet"]["connected"], false, "{h}");
    assert_eq!(h["fleet"]["pending"], 3, "{h}");
    assert!(
        h["fleet"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{h}"
    );
    assert!(edge.terminate(WAIT).success(), "{}", tail_of(&logs));

    // A NATS server without JetStream: check-config says so and fails; an edge runs, connected,
    // and its health says why nothing is published.
    let plain = tokio::task::block_in_place(Cluster::start_without_jetstream);
    let (ok, text) = check_config(
        &log,
        Some((&dir.path().join("check-state"), &users)),
        &plain.url(0),
    );
    assert!(
        !ok && text.contains("no JetStream"),
        "check-config names the missing JetStream: {text}"
    );
    let mut plain_args = args.clone();
    let at = plain_args
        .iter()
        .position(|a| a == "--publish")
        .expect("--publish");
    plain_args[at + 1] = plain.url(0);
    let mut edge = tokio::task::block_in_place(|| Proc::start(&plain_args, &logs, START));
    let h = health_until(
        edge.addr,
        "the edge says why it cannot publish",
        WAIT,
        |h| {
            h["fleet"]["connected"] == true
                && h["fleet"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("PROXYTAIL_e1") && e.contains("jetstream"))
        },
    )
    .await;
    assert_eq!(h["fleet"]["published"], 0, "{h}");
    assert!(edge.terminate(WAIT).success(), "{}", tail_of(&logs));
    drop(plain);

    // A stream holding a foreign message, a malformed one and an entry: only the entry gets an id.
    let cluster = tokio::task::block_in_place(|| Cluster::start(1));
    let client = async_nats::connect(cluster.url(0)).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "PROXYTAIL_x".into(),
        subjects: vec!["proxytail.x".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let entry = r#"{"id":1,"timestamp":null,"ts":1795835993.065,"method":"GET","destination":"http://x.example/1"}"#;
    for (id, payload) in [
        ("someone-else", r#"{"hello":"world"}"#),
        ("x:0", "not json at all"),
        ("x:1", entry),
    ] {
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.as_bytes().to_vec().into())
            .message_id(id);
        js.send_publish("proxytail.x", msg)
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let central_args = central_args(
        &dir.path().join("central-state"),
        &users,
        &cluster.url(0),
        "x",
        &[],
    );
    let clogs = LogTail::default();
    let mut central = tokio::task::block_in_place(|| Proc::start(&central_args, &clogs, START));
    let mut sub = edge_subscriber_since(central.addr, 0).await;
    let got = read_entries(&mut sub, 1).await;
    assert_eq!(got[0]["id"], 1, "{got:?}");
    assert_eq!(got[0]["node"], "x");
    assert_eq!(got[0]["node_id"], 1);
    // The central's filters know `node`.
    let token = fetch_token(central.addr).await;
    let mut filtered = connect(&format!(
        "ws://{}/api/ws/logs?token={token}&since=0&filter=node:x",
        central.addr
    ))
    .await;
    assert_eq!(read_ids(&mut filtered, 1).await, vec![1]);
    let h = health(central.addr).await;
    assert_eq!(h["fleet"]["skipped"], 2, "{h}");
    assert_eq!(h["fleet"]["consumed"], 1, "{h}");
    assert!(central.terminate(WAIT).success(), "{}", tail_of(&clogs));
}

async fn edge_subscriber_since(addr: SocketAddr, since: u64) -> Client {
    let token = fetch_token(addr).await;
    connect(&format!(
        "ws://{addr}/api/ws/logs?token={token}&since={since}"
    ))
    .await
}

/// Every file under `dir` (recursively) that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read state dir") {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if std::fs::read(&path)
                .expect("read state file")
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_applies_its_own_privacy_policy_to_what_it_consumes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = write_users(dir.path());
    let cluster = tokio::task::block_in_place(|| Cluster::start(1));
    let log = dir.path().join("p1.log");
    std::fs::write(&log, "").expect("create log");
    let edge_state = dir.path().join("edge-state");
    let central_state = dir.path().join("central-state");
    // The edge keeps everything (the default policy); the central removes all three.
    let edge_args = edge_args(&edge_state, &log, &users, &cluster.url(0), "p1", &[]);
    let central_args = central_args(
        &central_state,
        &users,
        &cluster.url(0),
        "p1",
        &[
            "--privacy-client-ip",
            "truncate",
            "--privacy-user",
            "pseudonymize",
            "--privacy-query",
            "strip",
        ],
    );
    let (elogs, clogs) = (LogTail::default(), LogTail::default());
    let mut edge = tokio::task::block_in_place(|| Proc::start(&edge_args, &elogs, START));
    let mut central = tokio::task::block_in_place(|| Proc::start(&central_args, &clogs, START));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    for seq in 1..=3 {
        writeln!(
            f,
            "1795835993.{seq:03}     85 10.20.30.47 TCP_MISS/200 4096 GET http://p1.example/{seq}?q=secret-{seq} alice HIER_DIRECT/93.184.216.34 text/html"
        )
        .expect("append");
    }
    let mut local = edge_subscriber_since(edge.addr, 0).await;
    for (i, e) in read_entries(&mut local, 3).await.iter().enumerate() {
        assert_eq!(e["client_ip"], "10.20.30.47", "{e}");
        assert_eq!(e["user"], "alice", "{e}");
        assert_eq!(
            e["destination"],
            format!("http://p1.example/{}?q=secret-{}", i + 1, i + 1)
        );
    }
    let mut sub = edge_subscriber_since(central.addr, 0).await;
    let got = read_entries(&mut sub, 3).await;
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e["node_id"], i as u64 + 1, "{e}");
        assert_eq!(e["client_ip"], "10.20.30.0", "{e}");
        assert_eq!(e["destination"], format!("http://p1.example/{}", i + 1));
        let user = e["user"].as_str().unwrap_or_default();
        assert!(user.starts_with("p-") && user.len() == 14, "{e}");
        assert_eq!(e["user"], got[0]["user"], "one pseudonym per user");
    }
    assert!(edge.terminate(WAIT).success(), "{}", tail_of(&elogs));
    assert!(central.terminate(WAIT).success(), "{}", tail_of(&clogs));
    // On disk: the edge's journal holds the raw values (so the search below can find them), the
    // central's state directory holds none of them.
    for raw in ["10.20.30.47", "alice", "secret-"] {
        assert!(
            !files_holding(&edge_state, raw).is_empty(),
            "the edge's journal keeps {raw:?}"
        );
        let leaked = files_holding(&central_state, raw);
        assert!(leaked.is_empty(), "{raw:?} in the central's {leaked:?}");
    }
}

/// Polls `GET /api/health` of `addr` until `cond` holds on it (bounded by `bound`).
async fn health_until(
    addr: SocketAddr,
    what: &str,
    bound: Duration,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + bound;
    let credentials = basic(USER, PASSWORD);
    loop {
        // With credentials: the journal's figures are part of the detail.
        let h = get_within(
            addr,
            "/api/health",
            &[("authorization", &credentials)],
            WAIT,
        )
        .await
        .json();
        if cond(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {bound:?}: {h}"
        );
        // Health is polled: the daemon pushes no event for it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_whose_journal_lost_what_its_stream_lacks_publishes_on_past_a_marked_gap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = write_users(dir.path());
    let cluster = tokio::task::block_in_place(|| Cluster::start(1));
    let relay = Relay::start(cluster.addr(0)).await;
    let log = dir.path().join("g1.log");
    std::fs::write(&log, "").expect("create log");
    // A small journal and history: an outage of a few thousand lines outlives them.
    let edge_args = edge_args(
        &dir.path().join("edge-state"),
        &log,
        &users,
        &relay.url(),
        "g1",
        &["--history", "100", "--retention-bytes", "1MiB"],
    );
    let central_args = central_args(
        &dir.path().join("central-state"),
        &users,
        &cluster.url(0),
        "g1",
        &[],
    );
    let (elogs, clogs) = (LogTail::default(), LogTail::default());
    let mut edge = tokio::task::block_in_place(|| Proc::start(&edge_args, &elogs, START));
    let mut central = tokio::task::block_in_place(|| Proc::start(&central_args, &clogs, START));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    let mut write = |from: u64, to: u64| {
        let text: String = (from..=to).map(|seq| squid_line("g1", seq)).collect();
        f.write_all(text.as_bytes()).expect("append");
    };
    let progress = Duration::from_secs(90);
    let mut sub = edge_subscriber_since(central.addr, 0).await;
    write(1, 10);
    let first = read_entries(&mut sub, 10).await;
    assert!(
        first.iter().all(|e| e.get("node_gap").is_none()),
        "{first:?}"
    );

    // Off NATS, the edge makes 20,000 entries; its journal keeps the last ~1 MiB of them.
    relay.cut();
    let total = 20_010;
    write(11, total);
    let h = health_until(
        edge.addr,
        "the edge's journal past the outage's start",
        DRAIN,
        |h| h["last_id"] == total && h["journal"]["oldest_id"].as_u64().unwrap_or(0) > 11,
    )
    .await;
    let oldest = h["journal"]["oldest_id"].as_u64().expect("oldest id");
    // Restarted while still cut off: what the running publisher held in memory (its queue, the
    // publishes the client buffered) is gone, so only the journal can serve the stream now.
    assert!(edge.terminate(WAIT).success(), "{}", tail_of(&elogs));
    edge = tokio::task::block_in_place(|| Proc::start(&edge_args, &elogs, START));

    // Back on NATS: it publishes what it has, in order, past the gap, and counts the gap.
    relay.restore();
    let mut after = Vec::new();
    let mut last_node_id = 10;
    let mut gaps = Vec::new();
    while last_node_id < total {
        let e = read_entries(&mut sub, 1).await.remove(0);
        let node_id = e["node_id"].as_u64().expect("node_id");
        assert_eq!(
            e["id"],
            11 + after.len() as u64,
            "central ids stay consecutive: {e}"
        );
        if node_id != last_node_id + 1 {
            assert_eq!(
                e["node_gap"],
                serde_json::json!({"after": last_node_id, "before": node_id}),
                "the first entry after a gap marks it: {e}"
            );
            gaps.push((last_node_id, node_id));
        } else {
            assert!(e.get("node_gap").is_none(), "{e}");
        }
        last_node_id = node_id;
        after.push(e);
    }
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?}");
    let (gap_after, gap_before) = gaps[0];
    assert_eq!(
        gap_before, oldest,
        "published on from the journal's oldest entry"
    );
    let lost = gap_before - gap_after - 1;
    let eh = health_until(edge.addr, "the edge's backlog published", progress, |h| {
        h["fleet"]["pending"] == 0
    })
    .await;
    assert_eq!(
        (&eh["fleet"]["gaps"], &eh["fleet"]["lost"]),
        (&serde_json::json!(1), &serde_json::json!(lost)),
        "{eh}"
    );
    let ch = health(central.addr).await;
    assert_eq!(
        (
            &ch["fleet"]["gaps"],
            &ch["fleet"]["lost"],
            &ch["fleet"]["skipped"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(lost),
            &serde_json::json!(0)
        ),
        "{ch}"
    );
    let metrics = get_within(
        central.addr,
        "/metrics",
        &[("authorization", &basic(USER, PASSWORD))],
        WAIT,
    )
    .await
    .text();
    assert!(
        metrics.contains(&format!("proxytail_fleet_lost_total {lost}\n"))
            && metrics.contains("proxytail_fleet_gaps_total 1\n"),
        "{metrics}"
    );

    // A restarted edge resumes after the stream's last entry (its id is read from the message
    // id, the sequence being behind it now): no new gap, nothing twice.
    assert!(edge.terminate(WAIT).success(), "{}", tail_of(&elogs));
    edge = tokio::task::block_in_place(|| Proc::start(&edge_args, &elogs, START));
    write(total + 1, total + 5);
    let more = read_entries(&mut sub, 5).await;
    for (k, e) in more.iter().enumerate() {
        assert_eq!(e["node_id"], total + 1 + k as u64, "{e}");
        assert!(e.get("node_gap").is_none(), "{e}");
    }
    let ch = health(central.addr).await;
    assert_eq!(ch["fleet"]["gaps"], 1, "{ch}");
    assert!(edge.terminate(WAIT).success(), "{}", tail_of(&elogs));
    assert!(central.terminate(WAIT).success(), "{}", tail_of(&clogs));
}
