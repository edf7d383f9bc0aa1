//! A real NATS JetStream cluster for fleet tests (Debian's `nats-server`): servers on free loopback
//! ports with temporary store directories, started, SIGKILLed and restarted by the test and killed
//! when dropped, so nothing is left running. Plus a TCP relay the test owns and can cut, to take one
//! edge off NATS while the others stay on.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a server has to join its cluster (the machine is loaded).
const START_BOUND: Duration = Duration::from_secs(60);

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
    /// Every stderr line, to await its readiness.
    lines: Option<mpsc::Receiver<String>>,
    config: PathBuf,
    client_port: u16,
}

/// Three (or `n`) servers in one cluster with JetStream.
pub struct Cluster {
    dir: tempfile::TempDir,
    servers: Vec<Server>,
}

impl Cluster {
    /// Starts `n` servers and waits (bounded) until each has joined and a JetStream metadata
    /// leader is elected.
    pub fn start(n: usize) -> Cluster {
        assert!(
            Command::new("nats-server")
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            "nats-server is missing: apt-get install -y nats-server (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let client: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route: Vec<u16> = (0..n).map(|_| free_port()).collect();
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
                "server_name: n{i}\nlisten: 127.0.0.1:{}\n\
                 jetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 2GB }}\n",
                client[i],
                store.display(),
            );
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
            });
        }
        let mut cluster = Cluster { dir, servers };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.await_ready(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let s = &mut self.servers[i];
        let mut child = Command::new("nats-server")
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

    /// A single server is ready when it says so; a clustered one once a metadata leader is known.
    fn await_ready(&mut self, i: usize) {
        let needle = if self.servers.len() > 1 {
            "metadata leader"
        } else {
            "Server is ready"
        };
        self.await_line(i, needle, START_BOUND);
    }

    fn await_line(&mut self, i: usize, needle: &str, bound: Duration) {
        let deadline = Instant::now() + bound;
        let rx = self.servers[i].lines.as_ref().expect("running");
        // What the server said, shown when the wait fails (a cluster that never elects a leader
        // says why in its log).
        let mut seen: Vec<String> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(line) => seen.push(line),
                Err(e) => {
                    let tail = seen[seen.len().saturating_sub(30)..].join("\n");
                    panic!(
                        "nats-server n{i}: no {needle:?} within {bound:?} ({e}); its log:\n{tail}"
                    )
                }
            }
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

    /// Starts server `i` again on its ports and store, and waits until it has rejoined.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.await_ready(i);
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
