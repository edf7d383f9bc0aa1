//! `proxytail demo`: a synthetic Squid log written a few times a second into a temporary directory,
//! served with a freshly generated demo login. Nothing outside the temporary directory is touched.
use crate::config::Config;
use crate::error::StartupError;
use crate::shutdown::Signals;
use rand::Rng;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Demo user name printed at start.
pub const DEMO_USER: &str = "demo";

/// Synthetic traffic: (method, destination, result, status, content type).
const REQUESTS: &[(&str, &str, &str, u16, &str)] = &[
    ("CONNECT", "example.com:443", "TCP_TUNNEL", 200, "-"),
    ("CONNECT", "api.github.com:443", "TCP_TUNNEL", 200, "-"),
    (
        "GET",
        "http://deb.debian.org/debian/dists/bookworm/InRelease",
        "TCP_REFRESH_UNMODIFIED",
        304,
        "-",
    ),
    (
        "GET",
        "http://example.org/index.html",
        "TCP_MISS",
        200,
        "text/html",
    ),
    (
        "GET",
        "http://example.org/logo.png",
        "TCP_MEM_HIT",
        200,
        "image/png",
    ),
    (
        "GET",
        "http://intranet.local/missing",
        "TCP_MISS",
        404,
        "text/html",
    ),
    (
        "POST",
        "http://collector.example.net/v1/events",
        "TCP_MISS",
        204,
        "-",
    ),
    (
        "GET",
        "http://ads.tracker.example/pixel.gif",
        "TCP_DENIED",
        403,
        "text/html",
    ),
    (
        "HEAD",
        "http://mirror.example.com/ubuntu/ls-lR.gz",
        "TCP_HIT",
        200,
        "application/gzip",
    ),
    (
        "GET",
        "http://flaky.example.com/api",
        "TCP_MISS",
        502,
        "text/html",
    ),
    (
        "CONNECT",
        "slow.example.com:443",
        "TCP_TUNNEL_ABORTED",
        200,
        "-",
    ),
    (
        "GET",
        "http://auth.example.com/secure",
        "TCP_DENIED",
        407,
        "text/html",
    ),
];

const CLIENTS: &[&str] = &[
    "192.168.1.10",
    "192.168.1.23",
    "10.0.0.5",
    "10.0.0.77",
    "2001:db8::42",
    "::1",
];

/// One realistic native-format line for `now`.
pub fn synthetic_line(rng: &mut impl Rng, now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (method, dest, result, status, ctype) = REQUESTS[rng.random_range(0..REQUESTS.len())];
    let client = CLIENTS[rng.random_range(0..CLIENTS.len())];
    let elapsed: u32 = rng.random_range(0..900);
    let bytes: u32 = if status == 304 {
        0
    } else {
        rng.random_range(200..200_000)
    };
    let hier = if result == "TCP_DENIED" {
        "HIER_NONE/-"
    } else {
        "HIER_DIRECT/93.184.216.34"
    };
    let user = if status == 407 {
        "-"
    } else if rng.random_bool(0.2) {
        "alice"
    } else {
        "-"
    };
    format!(
        "{}.{:03} {elapsed:>6} {client} {result}/{status:03} {bytes} {method} {dest} {user} {hier} {ctype}\n",
        since.as_secs(),
        since.subsec_millis()
    )
}

/// Runs the demo until `signals.stop` fires.
pub async fn run(mut config: Config, signals: Signals) -> Result<(), StartupError> {
    let dir = std::env::temp_dir().join(format!("proxytail-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| StartupError::Other(format!("{}: {e}", dir.display())))?;
    let result = run_in(&mut config, &dir, signals).await;
    // Best effort: the directory only holds demo data.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(config: &mut Config, dir: &Path, signals: Signals) -> Result<(), StartupError> {
    let log = dir.join("access.log");
    let users = dir.join("users");
    let password = random_password();
    let hash = crate::auth::users::hash_password(&password)
        .map_err(|e| StartupError::Auth(e.to_string()))?;
    std::fs::write(&users, format!("{DEMO_USER}:{hash}\n"))
        .map_err(|e| StartupError::Other(format!("{}: {e}", users.display())))?;
    {
        let mut f = std::fs::File::create(&log)
            .map_err(|e| StartupError::Other(format!("{}: {e}", log.display())))?;
        let mut rng = rand::rng();
        for _ in 0..50 {
            let _ = f.write_all(synthetic_line(&mut rng, SystemTime::now()).as_bytes());
        }
    }
    config.access_logs = vec![log.clone()];
    config.users = Some(users);
    config.state_dir = dir.join("state");
    config.from_start = true;
    config.format = "squid".into();
    config.log_format = parsers::Format::builtin("squid")
        .ok_or_else(|| StartupError::Other("the squid format is built in".into()))?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartupError::Other(e.to_string()))?;
    println!(
        "proxytail demo\n\n  dashboard  http://{addr}/\n  user       {DEMO_USER}\n  password   {password}\n\n\
         Try the API:\n  TOKEN=$(curl -s -u {DEMO_USER}:{password} http://{addr}/api/ws-token | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')\n\
         \x20 websocat \"ws://{addr}/api/ws/logs?token=$TOKEN&backlog=20\"\n\n\
         The synthetic log is {}; press Ctrl-C to stop.",
        log.display()
    );
    let writer = tokio::spawn(write_forever(log));
    let result = crate::app::run(config.clone(), listener, signals).await;
    writer.abort();
    result
}

fn random_password() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 12];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends a few lines several times a second, like a lightly used proxy.
async fn write_forever(log: std::path::PathBuf) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let lines: String = {
            let mut rng = rand::rng();
            let n = rng.random_range(0..4);
            (0..n)
                .map(|_| synthetic_line(&mut rng, SystemTime::now()))
                .collect()
        };
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .and_then(|mut f| f.write_all(lines.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %log.display(), error = %e, "demo writer failed");
        }
    }
}
