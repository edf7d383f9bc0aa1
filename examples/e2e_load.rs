//! End-to-end load tool: the RELEASE daemon binary as a child process, a log file written with native
//! Squid lines, and N real WebSocket subscribers (tokio-tungstenite over 127.0.0.1).
//!
//! It measures the whole path (file → tail → parse → JSON → journal/checkpoint → hub → WebSocket):
//! per subscriber the lines received, loss, throughput and the write-to-receipt latency (each line
//! carries its write time in its URL, `http://hK.load.test/<seq>/<nanos>`); the daemon's VmRSS
//! (sampled every 100 ms from the first sign-in on) and VmHWM, and its CPU time per line written.
//! `examples/ws_load.rs` measures only the hub → WebSocket part, in-process.
//!
//! Sign-in (issue 14): every subscriber gets its token over HTTP from its own source address
//! (127.2.x.y), by `--sign-in cheap` (Basic, a users file hashed at m=1 MiB t=1: streaming figures
//! without sign-in cost), `basic` (Basic, a users file hashed with `proxytail::auth::users`'
//! defaults, as `proxytail user add` writes it) or `jwt` (an HS256 JWT signed with
//! `--jwt-secret-file`, or a fresh secret, exchanged as `Authorization: Bearer`). A 503 or 429 is
//! counted and retried after its `Retry-After`; the latency reported is from the first request to
//! the token. `--connect-rate N` starts N subscribers per second (sign-in, then WebSocket);
//! `0` starts them all at once.
//!
//! Filters (issue 10, CONTRACT §6): with `--filters distinct`, line `seq` goes to host
//! `h{seq mod N}.load.test` and subscriber k asks for `domain:hk.load.test`, so each gets exactly
//! the lines with `seq mod N = k`; with `--filters none-match` subscriber k asks for
//! `domain:nonek.load.test`, which no line matches. Each filter also ORs `domain:end.load.test`: one
//! last line to that host tells every subscriber that the daemon has passed every line. The tool
//! checks, per subscriber, that it received exactly its set of ids, in order, and no `gap`.
//! Without `--filters`, ids must run 1, 2, 3 … with no gap.
//!
//! Fleet (issue 13, CONTRACT §10): with `--fleet N --nats URL` the tool starts N edges (`--publish
//! URL --node-name lat<pid>-k`, each tailing a log of its own) and one central (`--consume URL --nodes
//! …`), and the subscribers sign in to the central. Each edge's log gets `--rate` lines/s (edge k's
//! lines go to host `ek.load.test`, its own writer thread), so the latency measured is from an
//! edge's log write to the central's subscriber. Besides the central's own consecutive ids, each
//! subscriber checks per node that `node_id` runs 1, 2, 3 … up to what that edge's log was given,
//! and that `node_id` equals the line's own sequence number. The node names carry the tool's PID,
//! so runs against the same NATS server do not meet each other's streams. Without `--filters` only.
//!
//! Bounded by count and time: the writer stops after `--lines` lines or `--seconds` seconds,
//! whichever comes first; the subscribers then get at most `--drain` seconds to receive the rest.
//! Then the daemon is stopped with SIGTERM and the tool exits (status 1 if anything was lost).
//!
//! ```text
//! cargo build --release && cargo build --release --example e2e_load
//! target/release/examples/e2e_load --subscribers 1 --rate 0 --lines 2000000 --seconds 30
//! target/release/examples/e2e_load --subscribers 100 --rate 1000 --lines 10000 --seconds 10
//! target/release/examples/e2e_load --sign-in basic --subscribers 100 --lines 1000 --seconds 2
//! target/release/examples/e2e_load --filters distinct --sign-in jwt --subscribers 1000 --rate 10000 --lines 100000
//! target/release/examples/e2e_load --fleet 3 --nats nats://127.0.0.1:4222 --rate 1000 --lines 10000
//! ```
use argon2::{Algorithm, Params, Version};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use proxytail::auth::users::{hash_password, hash_password_with, HashParams};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Bound on daemon start-up, each token request and each connection (a failure bound).
const BOUND: Duration = Duration::from_secs(30);
/// Lines per `write` when writing as fast as possible.
const MAX_RATE_CHUNK: u64 = 1_000;
/// The host of the last line, which every filter also matches (see the module comment).
const END_HOST: &str = "end.load.test";

/// How subscribers get their tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SignIn {
    /// Basic against a cheaply hashed users file.
    Cheap,
    /// Basic against a users file hashed with the default Argon2 parameters.
    Basic,
    /// A JWT signed with the shared HS256 secret, sent as Bearer.
    Jwt,
}

/// What subscribers ask for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Filters {
    /// No filter: every line.
    None,
    /// Subscriber k: the lines with `seq mod N = k`.
    Distinct,
    /// Subscriber k: a host no line has.
    NoneMatch,
}

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
    /// How tokens are obtained.
    sign_in: SignIn,
    /// The HS256 secret for `--sign-in jwt` (default: a fresh random one in the temp directory).
    jwt_secret_file: Option<PathBuf>,
    /// Subscribers started per second; 0 = all at once.
    connect_rate: u64,
    /// Per-subscriber filters.
    filters: Filters,
    /// Fleet edges (0: no fleet, the subscribers read the one daemon tailing the log).
    fleet: usize,
    /// The NATS server(s) of the fleet (`--publish` / `--consume` URL).
    nats: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: e2e_load [--subscribers N] [--rate LINES/S (0 = max)] [--lines N] [--seconds S] \
         [--drain S] [--history N] [--bin PATH] [--dump FILE] [--tmp DIR] \
         [--sign-in cheap|basic|jwt] [--jwt-secret-file FILE] [--connect-rate N/S (0 = all at once)] \
         [--filters distinct|none-match] [--fleet EDGES --nats URL]"
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
        sign_in: SignIn::Cheap,
        jwt_secret_file: None,
        connect_rate: 0,
        filters: Filters::None,
        fleet: 0,
        nats: None,
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
            "--sign-in" => {
                a.sign_in = match value.as_str() {
                    "cheap" => SignIn::Cheap,
                    "basic" => SignIn::Basic,
                    "jwt" => SignIn::Jwt,
                    _ => usage(),
                }
            }
            "--jwt-secret-file" => a.jwt_secret_file = Some(PathBuf::from(value)),
            "--connect-rate" => a.connect_rate = num(),
            "--filters" => {
                a.filters = match value.as_str() {
                    "distinct" => Filters::Distinct,
                    "none-match" => Filters::NoneMatch,
                    _ => usage(),
                }
            }
            "--fleet" => a.fleet = num() as usize,
            "--nats" => a.nats = Some(value.clone()),
            _ => usage(),
        }
    }
    if a.fleet > 0 && (a.nats.is_none() || a.filters != Filters::None) {
        usage();
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

impl Drop for Daemon {
    /// A daemon not stopped (the tool panicked: a fleet edge whose central did not start, a
    /// subscriber that could not connect) is killed by its PID, never left running. After `stop`
    /// its exit is known and there is nothing left to kill.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
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

/// A cheap Argon2id hash (m=1024 KiB, t=1, p=1): streaming figures without sign-in cost.
fn cheap_hash(password: &str) -> String {
    let params = HashParams {
        algorithm: Algorithm::Argon2id,
        version: Version::V0x13,
        params: Params::new(1024, 1, 1, None).expect("argon2 params"),
    };
    hash_password_with(password, &params).expect("hash")
}

/// Subscriber `k`'s own source address, 127.2.x.y: per-address limits see N clients, not one.
fn source_of(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        2,
        (k / 256 % 256) as u8,
        (k % 256) as u8,
    ))
}

/// A TCP connection to `addr` from `source` (port chosen by the kernel).
async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// How one subscriber's sign-in went.
#[derive(Default)]
struct SignInStats {
    /// From the first request to the token.
    latency: Duration,
    /// 503 answers (the verification queue full) before the token.
    busy: u64,
    /// 429 answers (throttle or token quota) before the token.
    throttled: u64,
}

/// One `GET /api/ws-token` with `authorization` from `source`: `(status, Retry-After, body)`.
async fn token_request(
    addr: SocketAddr,
    source: IpAddr,
    authorization: &str,
) -> Result<(u16, u64, String), String> {
    let exchange = async {
        let mut s = connect_from(source, addr).await?;
        s.write_all(
            format!(
                "GET /api/ws-token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\
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
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {resp}"))?;
    let retry_after = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("retry-after")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(1);
    Ok((status, retry_after, body.trim().to_owned()))
}

/// A single-use WebSocket token, retrying 503 and 429 after their `Retry-After` (bounded).
async fn token(
    addr: SocketAddr,
    source: IpAddr,
    authorization: &str,
) -> Result<(String, SignInStats), String> {
    let started = Instant::now();
    let mut stats = SignInStats::default();
    loop {
        let (status, retry_after, body) = token_request(addr, source, authorization).await?;
        match status {
            200 => {
                let v: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
                let token = v["token"].as_str().ok_or_else(|| body.clone())?;
                stats.latency = started.elapsed();
                return Ok((token.to_owned(), stats));
            }
            503 => stats.busy += 1,
            429 => stats.throttled += 1,
            other => return Err(format!("status {other}: {body}")),
        }
        if started.elapsed() > 4 * BOUND {
            return Err(format!("no token after {:?}", started.elapsed()));
        }
        tokio::time::sleep(Duration::from_secs(retry_after.clamp(1, 30))).await;
    }
}

/// The `Authorization` value subscriber `k` signs in with.
fn authorization(sign_in: SignIn, k: usize, jwt_secret: &[u8]) -> String {
    match sign_in {
        SignIn::Cheap | SignIn::Basic => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("load:load-password")
        ),
        SignIn::Jwt => {
            let exp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                + 3600;
            let claims = serde_json::json!({ "sub": format!("load-{k}"), "exp": exp });
            let jwt = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(jwt_secret),
            )
            .expect("sign a JWT");
            format!("Bearer {jwt}")
        }
    }
}

/// Subscriber `k`'s filter of `n`, URL-encoded (`:` and space are the only characters to escape).
fn filter_of(filters: Filters, k: usize) -> Option<String> {
    let wanted = match filters {
        Filters::None => return None,
        Filters::Distinct => format!("h{k}.load.test"),
        Filters::NoneMatch => format!("none{k}.load.test"),
    };
    Some(format!("domain%3A{wanted}%20domain%3A{END_HOST}"))
}

/// What subscriber `k` must receive.
#[derive(Clone, Copy)]
enum Want {
    /// Ids 1, 2, 3 … up to the number written.
    All,
    /// The ids `≡ k (mod n)`, then the end line.
    Residue { k: u64, n: u64 },
    /// Only the end line.
    Nothing,
}

impl Want {
    fn of(filters: Filters, k: usize, n: usize) -> Want {
        match filters {
            Filters::None => Want::All,
            Filters::Distinct => Want::Residue {
                k: k as u64,
                n: n as u64,
            },
            Filters::NoneMatch => Want::Nothing,
        }
    }

    /// The first id after `id` this subscriber must receive, among ids `1..=written`.
    fn next_after(self, id: u64, written: u64) -> Option<u64> {
        let next = match self {
            Want::All => id + 1,
            Want::Residue { k, n } => {
                let from = id + 1;
                from + (k + n - from % n) % n
            }
            Want::Nothing => return None,
        };
        (next <= written).then_some(next)
    }

    /// How many ids in `1..=written` this subscriber must receive.
    fn count(self, written: u64) -> u64 {
        match self {
            Want::All => written,
            Want::Residue { k, n } => (written + n - k) / n - u64::from(k == 0),
            Want::Nothing => 0,
        }
    }
}

/// A subscriber's socket, which notes when a read last brought bytes in.
///
/// An entry's receipt time is the time of the `recv` that brought its last byte: tungstenite reads
/// only when its buffer holds no whole frame, and the `BufReader` in between reads the socket
/// only when it has handed tungstenite everything before, so when tungstenite returns an entry
/// the latest `recv` is the one that completed it. One clock read per `recv` instead of one per
/// entry (at 1,000 subscribers an entry arrives with ~20 others), and the time the tool spends on
/// the entries before it in the same `recv` is no longer counted as the daemon's latency.
struct Stamped {
    /// The connection.
    tcp: TcpStream,
    /// What receipt times are counted from (the writer's stamps use the same origin).
    origin: Instant,
    /// When the last read that returned bytes returned, ns since `origin`.
    read_at: u64,
}

impl tokio::io::AsyncRead for Stamped {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.read_at = self.origin.elapsed().as_nanos() as u64;
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Stamped {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// How much one `recv` of a subscriber's socket may bring in (see [`TUNGSTENITE_READ`]).
const SOCKET_READ: usize = 32 * 1024;

/// tungstenite's own read buffer. It zeroes it, up to this size, each time it reads (each poll
/// of the socket): at the default 128 KiB, 1,000 clients spent their CPU in `memset` (BENCHMARKS
/// §13), and at 16 KiB `memset` was still 10 % of the tool at 100 subscribers, where each wake-up
/// brings one entry and costs two reads (the entry, then the empty socket). So the socket is read
/// through a `BufReader` of [`SOCKET_READ`] (allocated and zeroed once), and tungstenite copies
/// small pieces out of it: one `recv` still takes in everything that arrived, and the zeroing per
/// read is 2 KiB.
const TUNGSTENITE_READ: usize = 2 * 1024;

type Ws = WebSocketStream<tokio::io::BufReader<Stamped>>;

/// Signs subscriber `k` in, opens its WebSocket (with its filter) from its own address, and waits
/// for the answer to a `ping`, so it is subscribed before anything is written.
async fn connect(
    addr: SocketAddr,
    k: usize,
    authorization: String,
    filter: Option<String>,
    origin: Instant,
) -> Result<(Ws, SignInStats), String> {
    let source = source_of(k);
    let (token, stats) = token(addr, source, &authorization).await?;
    let mut url = format!("ws://{addr}/api/ws/logs?token={token}");
    if let Some(filter) = filter {
        url.push_str("&filter=");
        url.push_str(&filter);
    }
    let open = async {
        let tcp = connect_from(source, addr)
            .await
            .map_err(|e| e.to_string())?;
        let stream = tokio::io::BufReader::with_capacity(
            SOCKET_READ,
            Stamped {
                tcp,
                origin,
                read_at: 0,
            },
        );
        let config = WebSocketConfig::default().read_buffer_size(TUNGSTENITE_READ);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .map_err(|e| e.to_string())?;
        ws.send(Message::text("ping"))
            .await
            .map_err(|e| e.to_string())?;
        while let Some(m) = ws.next().await {
            match m {
                Ok(m) if m.to_text().ok() == Some("pong") => return Ok(ws),
                Ok(Message::Close(frame)) => return Err(format!("closed: {frame:?}")),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("stream ended before the pong".to_string())
    };
    let ws = tokio::time::timeout(BOUND, open)
        .await
        .map_err(|_| "WebSocket not ready within the bound".to_string())??;
    Ok((ws, stats))
}

/// The decimal number at the start of `b` and its number of digits; `None` without a digit or
/// with more than 19 (no id or stamp comes near 10^19). Up to 19 digits the plain arithmetic
/// cannot overflow `u64`, so it compiles to shifts and adds; checked arithmetic was a multiply
/// and a branch per digit, and `str::parse` after the scan for the digits a second walk.
fn number(b: &[u8]) -> Option<(u64, usize)> {
    let len = b.iter().take(20).take_while(|c| c.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    let n = b[..len]
        .iter()
        .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    Some((n, len))
}

/// The id at the start of an entry's JSON, and what follows it.
fn id_of(text: &str) -> Option<(u64, &str)> {
    let rest = text.strip_prefix("{\"id\":")?;
    let (id, digits) = number(rest.as_bytes())?;
    // `digits` ASCII bytes: a character boundary.
    Some((id, &rest[digits..]))
}

/// `(node, node_id)` of a fleet central's entry, `{"id":…,"node":"…","node_id":…` (CONTRACT §10),
/// from what follows the id: a look at the next bytes, not a search of the whole entry (on one
/// host there is no `node`, and at 1,000 subscribers a search per message was a sixth of the tool).
fn node_of(after_id: &str) -> Option<(&str, u64)> {
    let rest = after_id.strip_prefix(",\"node\":\"")?;
    let (node, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(",\"node_id\":")?;
    Some((node, number(rest.as_bytes())?.0))
}

/// Finds `load.test/` in an entry: one SIMD searcher built once, instead of a `str` pattern
/// searcher set up per message (the two were a quarter of the tool's CPU at 1,000 subscribers).
static STAMP: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"load.test/"));

/// `(seq, nanos)` from the destination `"http://…load.test/<seq>/<nanos>"`, the string's end
/// included. Read byte by byte: a `split` on two delimiters and two `str::parse` were 7 % of the
/// tool at 1,000 subscribers.
fn stamp_of(text: &str) -> Option<(u64, u64)> {
    let b = text.as_bytes();
    let at = STAMP.find(b)? + b"load.test/".len();
    let (seq, n) = number(b.get(at..)?)?;
    let rest = b.get(at + n..)?.strip_prefix(b"/")?;
    let (nanos, n) = number(rest)?;
    (rest.get(n) == Some(&b'"')).then_some((seq, nanos))
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    /// Entries received (the end line not counted).
    received: u64,
    /// Entries it should have had and did not (missing ids) plus ids it should not have had or
    /// got out of order.
    lost: u64,
    /// The highest id received (ids after it up to the number written never arrived).
    last_id: u64,
    /// `gap` control messages received.
    gaps: u64,
    /// Whether the end line arrived (filtered subscribers only).
    ended_cleanly: bool,
    /// Entries whose id (a fleet entry's `node_id`) did not equal the line's own sequence number.
    mismatched: u64,
    /// Fleet: per node, the highest `node_id` received.
    nodes: std::collections::BTreeMap<String, u64>,
    /// Fleet: entries whose `node_id` was not the next of its node (one missing, repeated or out
    /// of order).
    node_faults: u64,
    /// Write-to-receipt latency of every entry, ns, in order of arrival.
    latencies: Vec<u64>,
    /// The sequence number of each entry in `latencies`.
    seqs: Vec<u64>,
    /// When the first and the last entry arrived (ns since the origin).
    first_last: Option<(u64, u64)>,
    /// How the stream ended early, if it did (a close frame or an error).
    ended: Option<String>,
}

/// How the main thread tells one subscriber that the run ends: channels of its own, not one
/// `watch` and one `CancellationToken` shared by all. A pending future of those re-takes the
/// shared `Notify`'s lock each time it is polled, and every subscriber polled both on every entry:
/// at 1,000 subscribers, two lock round trips between the cores per entry.
struct Ends {
    /// The number of lines written, sent when the writer stops (dropped unsent: the tool is
    /// failing, and only `stop` ends the subscriber).
    written: tokio::sync::oneshot::Receiver<u64>,
    /// Sent or dropped when every subscriber is done or the drain bound has passed: wakes a
    /// subscriber waiting on its socket.
    stop: tokio::sync::oneshot::Receiver<()>,
    /// Set just before `stop` is sent: read before each entry, so a subscriber still reading a
    /// backlog stops at once without polling its channels per entry (one load of a line that
    /// is written once).
    stopping: Arc<AtomicBool>,
}

/// The main thread's ends of every subscriber's [`Ends`].
struct EndSenders {
    written: Vec<tokio::sync::oneshot::Sender<u64>>,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    stopping: Arc<AtomicBool>,
}

impl EndSenders {
    fn new() -> EndSenders {
        EndSenders {
            written: Vec::new(),
            stop: Vec::new(),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A new subscriber's receiving ends.
    fn add(&mut self) -> Ends {
        let (written_tx, written) = tokio::sync::oneshot::channel();
        let (stop_tx, stop) = tokio::sync::oneshot::channel();
        self.written.push(written_tx);
        self.stop.push(stop_tx);
        Ends {
            written,
            stop,
            stopping: self.stopping.clone(),
        }
    }

    /// Tells every subscriber how many lines were written.
    fn written(&mut self, n: u64) {
        for tx in self.written.drain(..) {
            // A subscriber that has already returned (its stream ended) needs no count.
            let _ = tx.send(n);
        }
    }

    /// Tells every subscriber to return now.
    fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // Dropped senders complete the receivers with an error: that is the signal.
        self.stop.clear();
    }
}

/// Reads entries until it has all it must get (`ends.written` is the number of lines written,
/// sent when the writer stops; a filtered subscriber waits for the end line instead), the
/// stream ends, or `ends.stop` comes. Every id is checked against the next one `want` expects.
/// `expect` is how many entries it should get (room for their latencies is made at once);
/// `keep_seqs` keeps each entry's sequence number beside its latency (for `--dump`).
async fn subscriber(
    mut ws: Ws,
    want: Want,
    mut ends: Ends,
    done: Arc<AtomicU64>,
    expect: usize,
    keep_seqs: bool,
) -> Seen {
    let mut seen = Seen::default();
    seen.latencies.reserve(expect);
    if keep_seqs {
        seen.seqs.reserve(expect);
    }
    let mut last_id = 0u64;
    let filtered = !matches!(want, Want::All);
    let mut total = None;
    loop {
        if !filtered && total.is_some_and(|total| last_id >= total) {
            break;
        }
        if ends.stopping.load(Ordering::Acquire) {
            break;
        }
        // The socket first: while entries wait in it, the channels are not polled (polling them
        // per entry, each with its share of the task's cooperative budget, was ~7 % of the tool);
        // when it has none, they are, and they wake the task. `total` is only needed then: the
        // entries still in the socket come before it can be reached.
        let msg = tokio::select! {
            biased;
            m = ws.next() => m,
            _ = &mut ends.stop => break,
            n = &mut ends.written, if total.is_none() => {
                total = Some(n.unwrap_or(u64::MAX));
                continue;
            }
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
        let now = ws.get_ref().get_ref().read_at;
        if text.starts_with("{\"type\":\"gap\"") {
            seen.gaps += 1;
            continue;
        }
        let Some((id, after_id)) = id_of(&text) else {
            continue;
        };
        if filtered && text.contains(END_HOST) {
            seen.ended_cleanly = true;
            break;
        }
        // The id it should get next: anything before it skipped was lost; anything else is wrong.
        match want.next_after(last_id, u64::MAX) {
            Some(next) if next == id => {}
            Some(next) if id > next && want.next_after(id - 1, u64::MAX) == Some(id) => {
                seen.lost += want.count(id - 1) - want.count(next - 1);
            }
            _ => seen.lost += 1,
        }
        last_id = last_id.max(id);
        seen.received += 1;
        let node = node_of(after_id);
        if let Some((node, node_id)) = node {
            match seen.nodes.get_mut(node) {
                Some(last) => {
                    seen.node_faults += u64::from(node_id != *last + 1);
                    *last = (*last).max(node_id);
                }
                None => {
                    seen.node_faults += u64::from(node_id != 1);
                    seen.nodes.insert(node.to_owned(), node_id);
                }
            }
        }
        match stamp_of(&text) {
            Some((seq, stamp)) => {
                // On one host the line's sequence is the daemon's id; in a fleet, the edge's.
                if seq != node.map_or(id, |(_, node_id)| node_id) {
                    seen.mismatched += 1;
                }
                seen.latencies.push(now.saturating_sub(stamp));
                if keep_seqs {
                    seen.seqs.push(seq);
                }
            }
            // Every line the tool writes has the stamp: an entry without it is not the line.
            None => seen.mismatched += 1,
        }
        seen.first_last = Some(seen.first_last.map_or((now, now), |(f, _)| (f, now)));
    }
    seen.last_id = last_id;
    done.fetch_add(1, Ordering::AcqRel);
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    seen
}

/// Writes native Squid lines at `rate` (0 = as fast as possible) until `lines` or `seconds`, line
/// `seq` to host `host(seq)`; returns the number written and the time writing took.
fn write_lines(
    log: &Path,
    origin: Instant,
    args: &Args,
    host: impl Fn(u64) -> String,
) -> (u64, Duration) {
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
        while seq < due {
            seq += 1;
            squid_line(&mut buf, &host(seq), seq, stamp);
        }
        file.write_all(&buf).expect("write log");
    }
    (seq, started.elapsed())
}

/// Appends one native Squid line for `http://{host}/{seq}/{stamp}` to `buf`.
fn squid_line(buf: &mut Vec<u8>, host: &str, seq: u64, stamp: u64) {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let _ = writeln!(
        buf,
        "{}.{:03}     85 192.168.1.10 TCP_MISS/200 4096 GET http://{host}/{seq}/{stamp} - \
         HIER_DIRECT/93.184.216.34 text/html",
        wall.as_secs(),
        wall.subsec_millis()
    );
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e6
}

/// The daemon's CPU time (user + system, from /proc/PID/stat) since `before`, and per line:
/// `(seconds, microseconds per line)`. The one place this figure is computed.
fn cpu_per_line(pid: u32, before: f64, lines: u64) -> (f64, f64) {
    let used = cpu_seconds(&pid.to_string()) - before;
    (used, used * 1e6 / lines.max(1) as f64)
}

/// A fleet edge: its node name, its own log and the daemon publishing it.
struct Edge {
    node: String,
    log: PathBuf,
    daemon: Daemon,
}

/// Starts `args.fleet` edges publishing to `nats`, each on a fresh log and state directory in `dir`.
fn start_edges(args: &Args, nats: &str, dir: &Path) -> Vec<Edge> {
    // The PID keeps this run's streams apart from earlier runs' on the same NATS server.
    let run = std::process::id();
    (1..=args.fleet)
        .map(|k| {
            let node = format!("lat{run}-{k}");
            let log = dir.join(format!("{node}.log"));
            std::fs::File::create(&log).expect("create log");
            let edge_args: Vec<String> = [
                "--listen",
                "127.0.0.1:0",
                "--access-log",
                &log.display().to_string(),
                "--from-start",
                "--state-dir",
                &dir.join(format!("{node}.state")).display().to_string(),
                "--publish",
                nats,
                "--node-name",
                &node,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let daemon = Daemon::start(&args.bin, &edge_args);
            Edge { node, log, daemon }
        })
        .collect()
}

/// Waits (bounded) until NATS holds each node's stream and, with `followed`, until each has a
/// consumer (the central's): then no line written later waits for a stream or a consumer to be
/// made. NATS has no event for either, so it asks every 50 ms.
async fn fleet_ready(nats: &str, nodes: &[&str], followed: bool) -> Result<(), String> {
    let addrs = nats
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{nats}: {e}"))?;
    let client = tokio::time::timeout(BOUND, async_nats::connect(addrs))
        .await
        .map_err(|_| format!("no connection to {nats} within {BOUND:?}"))?
        .map_err(|e| format!("{nats}: {e}"))?;
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + BOUND;
    for node in nodes {
        let name = proxytail::source::nats::stream_name(node);
        loop {
            let ready = match js.get_stream(&name).await {
                Ok(mut stream) => {
                    !followed
                        || stream
                            .info()
                            .await
                            .is_ok_and(|i| i.state.consumer_count > 0)
                }
                Err(_) => false,
            };
            if ready {
                break;
            }
            if Instant::now() > deadline {
                let what = if followed { "followed" } else { "made" };
                return Err(format!("stream {name} not {what} within {BOUND:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
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
    let hash = match args.sign_in {
        SignIn::Basic => hash_password("load-password").expect("hash"),
        SignIn::Cheap | SignIn::Jwt => cheap_hash("load-password"),
    };
    std::fs::write(&users, format!("load:{hash}\n")).expect("users");
    let secret_file = args.jwt_secret_file.clone().unwrap_or_else(|| {
        let path = dir.path().join("jwt.secret");
        let mut secret = [0u8; 48];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret);
        std::fs::write(&path, text).expect("jwt secret");
        path
    });
    let jwt_secret = std::fs::read(&secret_file).expect("read the JWT secret file");
    // The daemon reads the file the same way: a trailing newline is not part of the secret.
    let jwt_secret = jwt_secret.trim_ascii_end().to_vec();
    let cap = (args.subscribers + 8).to_string();
    let http_cap = (args.subscribers + 64).to_string();
    // Fleet: the edges first, then (once NATS holds their streams) the central the subscribers use.
    let edges = match &args.nats {
        Some(nats) if args.fleet > 0 => {
            let edges = start_edges(&args, nats, dir.path());
            let nodes: Vec<&str> = edges.iter().map(|e| e.node.as_str()).collect();
            if let Err(e) = rt.block_on(fleet_ready(nats, &nodes, false)) {
                panic!("fleet: {e}");
            }
            edges
        }
        _ => Vec::new(),
    };
    let source: Vec<String> = match &args.nats {
        Some(nats) if !edges.is_empty() => {
            let nodes: Vec<&str> = edges.iter().map(|e| e.node.as_str()).collect();
            vec![
                "--consume".into(),
                nats.clone(),
                "--nodes".into(),
                nodes.join(","),
            ]
        }
        _ => vec![
            "--access-log".into(),
            log.display().to_string(),
            "--from-start".into(),
        ],
    };
    let mut daemon_args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &state.display().to_string(),
        "--users",
        &users.display().to_string(),
        "--jwt-secret-file",
        &secret_file.display().to_string(),
        "--history",
        &args.history.to_string(),
        "--max-connections",
        &cap,
        "--max-connections-per-ip",
        &cap,
        "--max-http-connections",
        &http_cap,
        // Every subscriber's token is minted for the one user before any is used.
        "--max-tokens-per-user",
        &cap,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    daemon_args.extend(source);
    let daemon = Daemon::start(&args.bin, &daemon_args);
    if let Some(nats) = args.nats.as_deref().filter(|_| !edges.is_empty()) {
        let nodes: Vec<&str> = edges.iter().map(|e| e.node.as_str()).collect();
        if let Err(e) = rt.block_on(fleet_ready(nats, &nodes, true)) {
            panic!("fleet: {e}");
        }
    }
    let addr = daemon.addr;
    let pid = daemon.child.id();
    let (rss_start, _) = daemon.memory().unwrap_or_default();

    // Sample the daemon's RSS from the first sign-in to the end.
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

    // Sign every subscriber in and connect it, at --connect-rate per second (0: all at once).
    let origin = Instant::now();
    let mut ends = EndSenders::new();
    let done = Arc::new(AtomicU64::new(0));
    let connect_start = Instant::now();
    let (handles, sign_ins) = rt.block_on(async {
        let mut connecting = Vec::new();
        for k in 0..args.subscribers {
            let at = if args.connect_rate == 0 {
                connect_start
            } else {
                connect_start
                    + Duration::from_nanos(
                        (k as u128 * 1_000_000_000 / u128::from(args.connect_rate)) as u64,
                    )
            };
            let auth = authorization(args.sign_in, k, &jwt_secret);
            let filter = filter_of(args.filters, k);
            connecting.push(tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                connect(addr, k, auth, filter, origin).await
            }));
        }
        let mut handles = Vec::new();
        let mut sign_ins = Vec::new();
        for (k, task) in connecting.into_iter().enumerate() {
            let (ws, stats) = task
                .await
                .expect("connect task")
                .unwrap_or_else(|e| panic!("subscriber {k}: {e}"));
            sign_ins.push(stats);
            let want = Want::of(args.filters, k, args.subscribers);
            // Room for every entry's latency at once, 128 MiB at most over all subscribers
            // (`--lines` may be far more than `--seconds` lets the writer write).
            let lines = args.lines.saturating_mul(args.fleet.max(1) as u64);
            let expect = want.count(lines).min((1 << 24) / args.subscribers as u64) as usize;
            let keep_seqs = k == 0 && args.dump.is_some();
            handles.push(tokio::spawn(subscriber(
                ws,
                want,
                ends.add(),
                done.clone(),
                expect,
                keep_seqs,
            )));
        }
        (handles, sign_ins)
    });
    let connect_time = connect_start.elapsed();
    let rss_signin_max = rss_max.swap(0, Ordering::Relaxed);
    let (rss_connected, _) = memory_of(pid).unwrap_or_default();

    let write_start = origin.elapsed().as_nanos() as u64;
    let cpu_before = (cpu_seconds(&pid.to_string()), cpu_seconds("self"));
    let edges_cpu_before: Vec<f64> = edges
        .iter()
        .map(|e| cpu_seconds(&e.daemon.child.id().to_string()))
        .collect();
    // Fleet: edge k's log gets its lines (to host ek.load.test) from a writer thread of its own.
    let edge_written: Vec<(u64, Duration)> = std::thread::scope(|s| {
        let writers: Vec<_> = edges
            .iter()
            .enumerate()
            .map(|(k, e)| {
                let args = &args;
                s.spawn(move || write_lines(&e.log, origin, args, |_| format!("e{k}.load.test")))
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().expect("writer thread"))
            .collect()
    });
    let (written, write_time) = if edges.is_empty() {
        let hosts = if args.filters == Filters::Distinct {
            args.subscribers as u64
        } else {
            1
        };
        write_lines(&log, origin, &args, |seq| {
            format!("h{}.load.test", seq % hosts)
        })
    } else {
        let total = edge_written.iter().map(|(n, _)| n).sum();
        let longest = edge_written
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap_or_default();
        (total, longest)
    };
    if args.filters != Filters::None {
        // The end line: every filter matches it, so each subscriber knows it has had all of its own.
        let mut buf = Vec::new();
        squid_line(&mut buf, END_HOST, written + 1, 0);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open log");
        file.write_all(&buf).expect("write log");
    }
    ends.written(written);
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain);
    while done.load(Ordering::Acquire) < args.subscribers as u64 && Instant::now() < drain_deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (cpu_daemon, cpu_line_us) = cpu_per_line(pid, cpu_before.0, written);
    let cpu_tool = cpu_seconds("self") - cpu_before.1;
    ends.stop();
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
    let edges_cpu: Vec<f64> = edges
        .iter()
        .zip(&edges_cpu_before)
        .map(|(e, before)| cpu_seconds(&e.daemon.child.id().to_string()) - before)
        .collect();
    let stderr = daemon.stderr.clone();
    let exit = daemon.stop();
    let edge_nodes: Vec<String> = edges.iter().map(|e| e.node.clone()).collect();
    let edge_exits: Vec<String> = edges.into_iter().map(|e| e.daemon.stop()).collect();

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
    let filters = match args.filters {
        Filters::None => "no filter",
        Filters::Distinct => "distinct filters (1/N of the lines each)",
        Filters::NoneMatch => "filters matching no line",
    };
    println!(
        "e2e_load: {} subscriber(s), {filters}, rate {mode}, {written} lines written in {:.3} s ({:.0} lines/s written)",
        args.subscribers,
        write_time.as_secs_f64(),
        written as f64 / write_time.as_secs_f64().max(1e-9)
    );
    let mut sign_in_lat: Vec<u64> = sign_ins
        .iter()
        .map(|s| s.latency.as_nanos() as u64)
        .collect();
    sign_in_lat.sort_unstable();
    let sign_in = match args.sign_in {
        SignIn::Cheap => "Basic, cheap Argon2 (m=1 MiB t=1)",
        SignIn::Basic => "Basic, default Argon2",
        SignIn::Jwt => "JWT (HS256) as Bearer",
    };
    let pace = if args.connect_rate == 0 {
        "all at once".to_string()
    } else {
        format!("{}/s", args.connect_rate)
    };
    println!(
        "  sign-in ({sign_in}, {pace}): latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms; \
         503 answers {}, 429 answers {}; all subscribers connected after {:.3} s",
        percentile(&sign_in_lat, 0.50),
        percentile(&sign_in_lat, 0.99),
        sign_in_lat.last().map_or(f64::NAN, |&n| n as f64 / 1e6),
        sign_ins.iter().map(|s| s.busy).sum::<u64>(),
        sign_ins.iter().map(|s| s.throttled).sum::<u64>(),
        connect_time.as_secs_f64(),
    );
    let mut all_lat: Vec<u64> = Vec::new();
    let mut total_lost = 0;
    let mut total_gaps = 0;
    let mut total_mismatched = 0;
    let mut worst_p99 = 0f64;
    let mut min_tput = f64::INFINITY;
    let mut incomplete = 0;
    for (i, s) in seen.iter().enumerate() {
        let want = Want::of(args.filters, i, args.subscribers);
        let mut lat = s.latencies.clone();
        lat.sort_unstable();
        // Throughput: lines received over the time from the first write to the last receipt.
        let tput = s.first_last.map_or(0.0, |(_, last)| {
            s.received as f64 / (last.saturating_sub(write_start) as f64 / 1e9).max(1e-9)
        });
        // Faults inside the sequence, plus the tail that never arrived.
        let mut lost = s.lost + want.count(written) - want.count(s.last_id.min(written));
        // Fleet: the same per node, on node_id against what that edge's log was given.
        lost += s.node_faults;
        for (node, (node_written, _)) in edge_nodes.iter().zip(&edge_written) {
            let got = s.nodes.get(node).copied().unwrap_or_default();
            lost += node_written - got.min(*node_written);
        }
        let unfinished = args.filters != Filters::None && !s.ended_cleanly;
        total_lost += lost;
        total_gaps += s.gaps;
        total_mismatched += s.mismatched;
        if s.received < want.count(written) || unfinished {
            incomplete += 1;
        }
        worst_p99 = worst_p99.max(percentile(&lat, 0.99));
        min_tput = min_tput.min(tput);
        if args.subscribers <= 4
            || i < 2
            || lost > 0
            || s.gaps > 0
            || s.mismatched > 0
            || s.ended.is_some()
        {
            println!(
                "  sub {i}: received {}/{}, lost {}, gaps {}, id≠seq {}, {:.0} lines/s, latency p50 {:.3} ms p99 {:.3} ms max {:.3} ms{}",
                s.received,
                want.count(written),
                lost,
                s.gaps,
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
        "  all: {} entries received, lost {total_lost}, gap messages {total_gaps}, id≠seq {total_mismatched}, \
         incomplete subscribers {incomplete}, \
         slowest subscriber {min_tput:.0} lines/s, latency p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms \
         max {:.3} ms (worst per-subscriber p99 {worst_p99:.3} ms)",
        all_lat.len(),
        percentile(&all_lat, 0.50),
        percentile(&all_lat, 0.99),
        percentile(&all_lat, 0.999),
        all_lat.last().map_or(f64::NAN, |&n| n as f64 / 1e6),
    );
    if !edge_nodes.is_empty() {
        let per_edge: Vec<String> = edge_nodes
            .iter()
            .zip(&edge_written)
            .zip(&edges_cpu)
            .zip(&edge_exits)
            .map(|(((node, (n, _)), cpu), exit)| {
                let highest: Vec<String> = seen
                    .iter()
                    .map(|s| s.nodes.get(node).copied().unwrap_or_default().to_string())
                    .collect();
                format!(
                    "{node}: {n} written, highest node_id received {}, CPU {cpu:.2} s = {:.3} µs/line, exit {exit}",
                    highest.join("/"),
                    cpu * 1e6 / (*n).max(1) as f64
                )
            })
            .collect();
        println!(
            "  fleet: {} edges at {} lines/s each, through NATS {} to the central (the daemon below); {}",
            edge_nodes.len(),
            args.rate,
            args.nats.as_deref().unwrap_or_default(),
            per_edge.join("; ")
        );
    }
    println!(
        "  daemon RSS: {:.1} MiB at start, max {:.1} MiB while signing in, {:.1} MiB with subscribers connected, \
         max {:.1} MiB while streaming, {:.1} MiB at end, VmHWM {:.1} MiB; exit {exit}",
        rss_start as f64 / 1024.0,
        rss_signin_max as f64 / 1024.0,
        rss_connected as f64 / 1024.0,
        rss_max.load(Ordering::Relaxed).max(rss_end) as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "  CPU during the run: daemon {cpu_daemon:.2} s = {cpu_line_us:.3} µs per line written \
         ({:.0} lines per daemon CPU-second), load tool (writer + clients) {cpu_tool:.2} s; loadavg {}",
        written as f64 / cpu_daemon.max(1e-9),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if total_lost > 0 || total_gaps > 0 || total_mismatched > 0 || incomplete > 0 {
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
