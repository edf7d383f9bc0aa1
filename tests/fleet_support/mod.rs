//! A real NATS JetStream cluster for fleet tests: servers on free loopback ports with temporary
//! store directories, started, SIGKILLed and restarted by the test and killed when dropped, so
//! nothing is left running. Plus a TCP relay the test owns and can cut, to take one edge off NATS
//! while the others stay on.
//!
//! The server binary is `$PROXYTAIL_NATS_SERVER` when set (`scripts/test.sh` points the fleet test
//! under load at a pinned newer release there), else `nats-server` on `PATH` (Debian's 2.9).
//!
//! A server counts as ready when its monitoring endpoint's `/healthz` answers 200: JetStream is
//! up, the server is in contact with a metadata leader, and (once streams exist) every stream
//! replica it holds is current. Its log is no readiness signal: a start-up on a loaded machine once
//! waited 60 s for a "metadata leader" line, and a server restarted into a running cluster must
//! also have caught up its replicas before the next server may be killed.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a server has to join its cluster and catch up its replicas (the machine is loaded).
const START_BOUND: Duration = Duration::from_secs(120);

/// Cluster starts tried when a server exits at start-up (a port taken meanwhile).
const START_ATTEMPTS: u32 = 3;

/// Why a server did not get ready.
struct NotReady {
    /// It exited (e.g. its port was taken), rather than running without getting healthy.
    exited: bool,
    why: String,
}

/// Between two `/healthz` questions while a server gets ready (nats-server pushes no event).
const HEALTHZ_EVERY: Duration = Duration::from_millis(100);

/// The nats-server binary the tests run.
fn server_binary() -> std::ffi::OsString {
    std::env::var_os("PROXYTAIL_NATS_SERVER").unwrap_or_else(|| "nats-server".into())
}

/// How far (raft entries) a replica may trail its leader and count as caught up: under load the
/// replica outside the quorum is always a few entries behind.
const CAUGHT_UP_LAG: u64 = 1_000;

/// What the tests read of `/jsz?accounts=true&streams=true` (the same on nats-server 2.9 and 2.14).
#[derive(serde::Deserialize)]
struct Jsz {
    #[serde(default)]
    account_details: Vec<JszAccount>,
}

#[derive(serde::Deserialize)]
struct JszAccount {
    #[serde(default)]
    stream_detail: Vec<JszStream>,
}

#[derive(serde::Deserialize)]
struct JszStream {
    name: String,
    #[serde(default)]
    cluster: JszCluster,
}

#[derive(serde::Deserialize, Default)]
struct JszCluster {
    leader: Option<String>,
    /// The other replicas, as the leader sees them (a follower reports less).
    #[serde(default)]
    replicas: Vec<Replica>,
}

#[derive(serde::Deserialize, Debug)]
struct Replica {
    name: String,
    #[serde(default)]
    current: bool,
    #[serde(default)]
    offline: bool,
    #[serde(default)]
    lag: u64,
}

/// A free loopback port (bound and released; nats-server binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One nats-server process.
struct Server {
    child: Option<Child>,
    /// Every stderr line, shown when it does not get ready.
    lines: Option<mpsc::Receiver<String>>,
    config: PathBuf,
    client_port: u16,
    /// Its monitoring endpoint (`http:`), for `/healthz`.
    monitor_port: u16,
}

/// Three (or `n`) servers in one cluster with JetStream.
pub struct Cluster {
    dir: tempfile::TempDir,
    servers: Vec<Server>,
}

impl Cluster {
    /// Starts `n` servers and waits (bounded) until each is healthy: joined, with a JetStream
    /// metadata leader elected.
    pub fn start(n: usize) -> Cluster {
        let binary = server_binary();
        assert!(
            Command::new(&binary)
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            "nats-server {binary:?} is missing: apt-get install -y nats-server, or set PROXYTAIL_NATS_SERVER (scripts/test.sh does)"
        );
        // A port found free may be taken by another process before nats-server binds it (other
        // tests bind 127.0.0.1:0 all the time): a server that exits at start-up gets a new
        // cluster on new ports. One that runs but does not get ready fails the test.
        Cluster::start_with(n, true)
    }

    /// One server without JetStream: a misconfigured NATS for a fleet daemon.
    pub fn start_without_jetstream() -> Cluster {
        Cluster::start_with(1, false)
    }

    fn start_with(n: usize, jetstream: bool) -> Cluster {
        for attempt in 1.. {
            match Cluster::try_start(n, jetstream) {
                Ok(cluster) => return cluster,
                Err(NotReady { exited: true, why }) if attempt < START_ATTEMPTS => {
                    eprintln!("nats cluster start attempt {attempt} failed, retrying: {why}");
                }
                Err(NotReady { why, .. }) => panic!("{why}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn try_start(n: usize, jetstream: bool) -> Result<Cluster, NotReady> {
        let dir = tempfile::tempdir().expect("temp dir");
        let client: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let monitor: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes = route
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut servers = Vec::new();
        for i in 0..n {
            let store = dir.path().join(format!("store{i}"));
            let config = dir.path().join(format!("n{i}.conf"));
            // no_advertise: clients learn no other servers, so an edge behind a relay cannot
            // bypass it when the test cuts the relay.
            let mut text = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\n",
                client[i], monitor[i],
            );
            if jetstream {
                text.push_str(&format!(
                    "jetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 2GB }}\n",
                    store.display()
                ));
            }
            if n > 1 {
                text.push_str(&format!(
                    "cluster {{ name: proxytail-test, listen: 127.0.0.1:{}, no_advertise: true, routes: [{routes}] }}\n",
                    route[i]
                ));
            }
            std::fs::write(&config, text).expect("write nats config");
            servers.push(Server {
                child: None,
                lines: None,
                config,
                client_port: client[i],
                monitor_port: monitor[i],
            });
        }
        let mut cluster = Cluster { dir, servers };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.await_ready(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) {
        let s = &mut self.servers[i];
        let mut child = Command::new(server_binary())
            .arg("-c")
            .arg(&s.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        s.child = Some(child);
        s.lines = Some(rx);
    }

    /// Waits (bounded) until server `i`'s `/healthz` answers 200; fails at once if it exited, and
    /// says why with its last log lines and health answer either way.
    fn await_ready(&mut self, i: usize) -> Result<(), NotReady> {
        let deadline = Instant::now() + START_BOUND;
        loop {
            let last = match self.healthz(i) {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => format!("{status} {body}"),
                Err(e) => e.to_string(),
            };
            let exited = self.servers[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                let rx = self.servers[i].lines.as_ref().expect("spawned");
                // The reader thread ends with the process; what it read so far is here.
                let seen: Vec<String> = rx.try_iter().collect();
                let tail = seen[seen.len().saturating_sub(30)..].join("\n");
                return Err(NotReady {
                    exited: exited.is_some(),
                    why: format!(
                        "nats-server n{i} not ready within {START_BOUND:?} (exited: {exited:?}; last /healthz: {last}); its log:\n{tail}"
                    ),
                });
            }
            // Polling: nats-server pushes no readiness event a test could await.
            std::thread::sleep(HEALTHZ_EVERY);
        }
    }

    /// `GET /healthz` of server `i`: status code and body.
    pub fn healthz(&self, i: usize) -> std::io::Result<(u16, String)> {
        self.monitor(i, "/healthz")
    }

    /// `GET path` of server `i`'s monitoring endpoint: status code and body.
    fn monitor(&self, i: usize, path: &str) -> std::io::Result<(u16, String)> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.servers[i].monitor_port));
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_owned();
        Ok((status, body))
    }

    /// The body of server `i`'s answer to `GET path` when it is 200, else what it was instead.
    fn monitor_ok(&self, i: usize, path: &str) -> Result<String, String> {
        match self.monitor(i, path) {
            Ok((200, body)) => Ok(body),
            Ok((status, body)) => Err(format!("n{i} {path} {status} {body}")),
            Err(e) => Err(format!("n{i} {path}: {e}")),
        }
    }

    /// Waits (bounded) until every stream is caught up on every running server: they all name the
    /// same leader for it, and that leader sees each of its replicas online and at most
    /// [`CAUGHT_UP_LAG`] raft entries behind. `/healthz` answering 200 on a restarted server says
    /// only that its own replicas are not catching up at that moment, as its own raft state sees
    /// it; this asks each stream's leader. (A 2.9.10 cluster whose restarted server had answered
    /// 200 was found after the next server's SIGKILL with every replica hundreds of thousands of
    /// messages behind and a stream without a leader.) Prints what is behind every 20 s of waiting.
    pub fn await_caught_up(&self, bound: Duration) {
        let start = Instant::now();
        let mut report = start + Duration::from_secs(20);
        loop {
            let state = self.replication();
            let Err(why) = &state else { return };
            let now = Instant::now();
            assert!(
                now < start + bound,
                "nats streams not caught up within {bound:?}: {why}"
            );
            if now >= report {
                eprintln!(
                    "fleet: waiting {:.0} s for the nats streams to catch up: {why}",
                    (now - start).as_secs_f64()
                );
                report = now + Duration::from_secs(20);
            }
            // Polling: nats-server pushes no event a test could await.
            std::thread::sleep(HEALTHZ_EVERY);
        }
    }

    /// `Ok` when every stream is caught up on every running server (see
    /// [`Cluster::await_caught_up`]), else what is not.
    fn replication(&self) -> Result<(), String> {
        // Per stream: the leader each running server names, and the replicas the leader reports.
        let mut leaders: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut replicas: BTreeMap<String, Vec<Replica>> = BTreeMap::new();
        for i in 0..self.servers.len() {
            if self.servers[i].child.is_none() {
                continue;
            }
            let name = format!("n{i}");
            self.monitor_ok(i, "/healthz")?;
            let body = self.monitor_ok(i, "/jsz?accounts=true&streams=true")?;
            let jsz: Jsz =
                serde_json::from_str(&body).map_err(|e| format!("n{i} /jsz: {e}: {body}"))?;
            for stream in jsz
                .account_details
                .into_iter()
                .flat_map(|a| a.stream_detail)
            {
                let leader = stream.cluster.leader.unwrap_or_default();
                if leader == name {
                    replicas.insert(stream.name.clone(), stream.cluster.replicas);
                }
                leaders
                    .entry(stream.name)
                    .or_default()
                    .push((name.clone(), leader));
            }
        }
        let running = self.servers.iter().filter(|s| s.child.is_some()).count();
        let mut behind = Vec::new();
        for (stream, named) in &leaders {
            let leader = &named[0].1;
            if leader.is_empty() || named.len() < running || named.iter().any(|(_, l)| l != leader)
            {
                behind.push(format!("{stream}: leaders named {named:?}"));
                continue;
            }
            let Some(reps) = replicas.get(stream) else {
                behind.push(format!("{stream}: leader {leader} does not report it"));
                continue;
            };
            for r in reps {
                if r.offline || !(r.current || r.lag <= CAUGHT_UP_LAG) {
                    behind.push(format!(
                        "{stream}: {} {} behind{}",
                        r.name,
                        r.lag,
                        if r.offline { ", offline" } else { "" }
                    ));
                }
            }
        }
        if behind.is_empty() {
            Ok(())
        } else {
            Err(behind.join("; "))
        }
    }

    /// `nats://127.0.0.1:p` of server `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// Every server's URL, comma-separated.
    pub fn urls(&self) -> String {
        (0..self.servers.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client address of server `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.servers[i].client_port))
    }

    /// SIGKILLs server `i` (and reaps it).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts server `i` again on its ports and store, and waits until it has rejoined and its
    /// stream replicas are current again (`/healthz` checks each one it holds).
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        if let Err(e) = self.await_ready(i) {
            panic!("restart: {}", e.why);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}

/// A TCP relay from a loopback port to `target`, which the test can cut (every connection closed,
/// new ones closed at once) and restore.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// True while cut.
    cut: Arc<AtomicBool>,
    /// Cancelled to close the current connections (replaced on each cut).
    conns: Arc<std::sync::Mutex<CancellationToken>>,
    /// Stops the relay.
    stop: CancellationToken,
}

impl Relay {
    /// Starts relaying in this runtime.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let cut = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (cut2, conns2, stop2) = (cut.clone(), conns.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop2.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = conns2.lock().expect("relay lock").clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Relay {
            addr,
            cut,
            conns,
            stop,
        }
    }

    /// `nats://` URL of the relay.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Closes every relayed connection and refuses new ones until [`Relay::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut t = self.conns.lock().expect("relay lock");
        t.cancel();
        *t = CancellationToken::new();
    }

    /// Relays again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.conns.lock().map(|t| t.cancel()).unwrap_or_default();
    }
}
