//! Settings from flags, `PROXYTAIL_*` environment variables and an optional TOML file, merged into a
//! validated [`Config`]. A flag beats the environment, which beats the file, which beats the default.
use crate::error::ConfigError;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the daemon listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5001";
/// Where checkpoints live unless told otherwise (systemd's `StateDirectory=proxytail`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/proxytail";

// Privacy policy (CONTRACT §7): the three settings' values; `privacy.rs` applies them.

/// What happens to `client_ip`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientIpPrivacy {
    /// As logged.
    #[default]
    Keep,
    /// Host part zeroed: IPv4 /24, IPv6 /48 (IPv4-mapped IPv6 as IPv4).
    Truncate,
    /// A keyed hash whose key lives only in memory and changes every UTC day.
    Pseudonymize,
}

/// What happens to `user`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserPrivacy {
    /// As logged.
    #[default]
    Keep,
    /// A keyed hash, as for client addresses.
    Pseudonymize,
    /// Null.
    Drop,
}

/// What happens to the query string of `destination`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryPrivacy {
    /// As logged.
    #[default]
    Keep,
    /// Everything from `?` on removed.
    Strip,
}

/// The daemon-wide privacy policy; all `keep` by default (the first release's behaviour).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrivacyPolicy {
    /// `--privacy-client-ip`.
    pub client_ip: ClientIpPrivacy,
    /// `--privacy-user`.
    pub user: UserPrivacy,
    /// `--privacy-query`.
    pub query: QueryPrivacy,
}
// --- Packaged configuration found by operator commands (issue 11) ----------------------------------
/// The configuration the Debian package installs.
pub const PACKAGED_CONFIG: &str = "/etc/proxytail/proxytail.toml";

/// `proxytail user …` and `proxytail check-config` with neither `--config` nor `--users` use the
/// packaged configuration when it exists, so `sudo proxytail user add ops` works as the README
/// shows on an installed package. The daemon itself never guesses: its unit names the file.
pub fn default_config_for_operator(cli: &mut Cli) {
    default_config_from(cli, Path::new(PACKAGED_CONFIG));
}

/// [`default_config_for_operator`] with the file to look for as a parameter (tests).
pub fn default_config_from(cli: &mut Cli, packaged: &Path) {
    let operator = matches!(
        cli.command,
        Some(Command::User { .. } | Command::CheckConfig)
    );
    let s = &mut cli.settings;
    if operator && s.config.is_none() && s.users.is_none() && packaged.is_file() {
        s.config = Some(packaged.to_owned());
    }
}
// --- end of issue 11 block ---------------------------------------------------------------------------

// History on disk (issue 12): how long and how much the journal keeps.
/// Journal retention by age unless told otherwise: a week reaches back past the last weekend's
/// changes, the usual "since the deploy" question.
pub const DEFAULT_RETENTION: &str = "7d";
/// Journal retention by size unless told otherwise: about 4 million entries (a busy proxy's day
/// or two), small enough for a default /var partition. Whichever is reached first applies.
pub const DEFAULT_RETENTION_BYTES: &str = "1GiB";
/// Smallest accepted `--retention-bytes`: segments are a sixteenth of it, at least 64 KiB.
pub const MIN_RETENTION_BYTES: u64 = 1 << 20;

/// A duration as `90s`, `30m`, `12h`, `7d` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 7d, 12h, 30m, 90s)"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (s, m, h, d, w)"
            ))
        }
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// A size as `2GiB`, `500MB`, `64KiB` or plain bytes (SI and binary units).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 2GiB, 500MB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "proxytail",
    version,
    about = "Follow a Squid access log and stream it live over a token-gated WebSocket API"
)]
pub struct Cli {
    /// What to do; without a subcommand the daemon runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Daemon settings (also accepted by `check-config` and `demo`).
    #[command(flatten)]
    pub settings: Settings,
}

/// Subcommands besides running the daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a password on stdin (or the terminal, without echo) and print its Argon2id PHC hash.
    HashPassword,
    /// Validate the configuration, files and permissions; exit non-zero on any problem.
    CheckConfig,
    /// Run on a built-in synthetic log; print the URL and a demo login.
    Demo,
    /// Manage the users file (`users`): add, remove and list users.
    User {
        /// What to do with the users file.
        #[command(subcommand)]
        action: UserAction,
    },
}

/// `proxytail user ...`: edits of the users file, written atomically with its owner and mode kept.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user, or set a new password for an existing one. The password is read twice from the
    /// terminal without echo, or once (one line) from stdin when stdin is not a terminal.
    Add {
        /// User name: no `:`, no whitespace, at most 64 bytes.
        name: String,
        /// What the user may see: a filter expression (as in `filter=`) that every subscription
        /// of theirs is narrowed by. Omitted: an existing user keeps their view; "" removes it.
        #[arg(long, value_name = "EXPR")]
        view: Option<String>,
    },
    /// Remove a user.
    Remove {
        /// User name.
        name: String,
    },
    /// Print the user names, one per line, each followed by a tab and `view: EXPR` when the
    /// user has a view.
    List,
}

/// Every daemon setting. Each is optional here so that flags, environment and file can be merged.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// TOML configuration file with the same settings as the flags (kebab-case keys).
    #[arg(long, env = "PROXYTAIL_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on. Anything but loopback needs `--allow-non-loopback`.
    #[arg(long, env = "PROXYTAIL_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Accept a listen address that is not loopback (put a TLS reverse proxy in front).
    #[arg(long, env = "PROXYTAIL_ALLOW_NON_LOOPBACK", global = true)]
    pub allow_non_loopback: Option<bool>,
    /// Access log(s) to follow (repeatable).
    #[arg(
        long = "access-log",
        env = "PROXYTAIL_ACCESS_LOG",
        value_delimiter = ',',
        global = true
    )]
    #[serde(default)]
    pub access_log: Vec<PathBuf>,
    /// Log format: `squid` (native, default), `common`, `combined`, `referrer`, `useragent`,
    /// `logformat` (with `--logformat`) or `regex` (with `--regex`).
    #[arg(long, env = "PROXYTAIL_FORMAT", global = true)]
    pub format: Option<String>,
    /// With `--format regex`: a regular expression with named groups (`client_ip`, `method`,
    /// `destination`, `code`, `bytes`, `time`, …; other names become extra fields).
    #[arg(long, env = "PROXYTAIL_REGEX", global = true)]
    pub regex: Option<String>,
    /// With `--format logformat`: a Squid `logformat` definition (the part after its name).
    #[arg(long, env = "PROXYTAIL_LOGFORMAT", global = true)]
    pub logformat: Option<String>,
    /// Read `access_log` and `logformat` lines from this squid.conf.
    #[arg(long, env = "PROXYTAIL_SQUID_CONF", global = true)]
    pub squid_conf: Option<PathBuf>,
    /// Users file: one `name:$argon2id$...` line per user, `#` comments.
    #[arg(long, env = "PROXYTAIL_USERS", global = true)]
    pub users: Option<PathBuf>,
    /// File whose content (one trailing newline removed, at least 32 bytes) is the HS256 JWT secret.
    #[arg(long, env = "PROXYTAIL_JWT_SECRET_FILE", global = true)]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key for asymmetric JWTs (with `--jwt-algorithm` RS256/ES256/EdDSA …).
    #[arg(long, env = "PROXYTAIL_JWT_PUBLIC_KEY_FILE", global = true)]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Algorithm of `--jwt-public-key-file`: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA.
    #[arg(long, env = "PROXYTAIL_JWT_ALGORITHM", global = true)]
    pub jwt_algorithm: Option<String>,
    /// Required `iss` claim of JWTs, when set.
    #[arg(long, env = "PROXYTAIL_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim of JWTs, when set.
    #[arg(long, env = "PROXYTAIL_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Cookie that may carry the JWT instead of the Authorization header.
    #[arg(long, env = "PROXYTAIL_JWT_COOKIE", global = true)]
    pub jwt_cookie: Option<String>,
    /// Lifetime of a WebSocket token in seconds (default 120).
    #[arg(long, env = "PROXYTAIL_TOKEN_TTL", global = true)]
    pub token_ttl: Option<u64>,
    /// Directory for the checkpoint and journal.
    #[arg(long, env = "PROXYTAIL_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Entries kept for `since`/`backlog` replay (default 10000).
    #[arg(long, env = "PROXYTAIL_HISTORY", global = true)]
    pub history: Option<usize>,
    /// Read the log from its start the first time instead of its end.
    #[arg(long, env = "PROXYTAIL_FROM_START", num_args = 0..=1, default_missing_value = "true", global = true)]
    pub from_start: Option<bool>,
    /// Write `timestamp` in the machine's local time zone (`TZ` or /etc/localtime) instead of UTC.
    #[arg(long, env = "PROXYTAIL_LOCAL_TIME", num_args = 0..=1, default_missing_value = "true", global = true)]
    pub local_time: Option<bool>,
    /// Poll the file instead of using inotify (network file systems).
    #[arg(long, env = "PROXYTAIL_POLL", num_args = 0..=1, default_missing_value = "true", global = true)]
    pub poll: Option<bool>,
    /// Lines longer than this many bytes are skipped and counted (default 65536).
    #[arg(long, env = "PROXYTAIL_MAX_LINE_BYTES", global = true)]
    pub max_line_bytes: Option<usize>,
    /// Extra allowed `Origin` for WebSocket upgrades (repeatable); the daemon's own origin always is.
    #[arg(
        long = "allowed-origin",
        env = "PROXYTAIL_ALLOWED_ORIGIN",
        value_delimiter = ',',
        global = true
    )]
    #[serde(default)]
    pub allowed_origin: Vec<String>,
    /// Maximum concurrent WebSocket subscribers (default 256).
    #[arg(long, env = "PROXYTAIL_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Maximum concurrent WebSocket subscribers from one address (default 32).
    #[arg(long, env = "PROXYTAIL_MAX_CONNECTIONS_PER_IP", global = true)]
    pub max_connections_per_ip: Option<usize>,
    /// Trust `X-Forwarded-For` from loopback peers for throttling (behind a reverse proxy).
    #[arg(long, env = "PROXYTAIL_TRUST_FORWARDED_FOR", num_args = 0..=1, default_missing_value = "true", global = true)]
    pub trust_forwarded_for: Option<bool>,
    // --- dashboard sessions (issue 9) ---
    /// Lifetime of a dashboard session in seconds, counted from sign-in (default 43200, 12 h).
    #[arg(long, env = "PROXYTAIL_SESSION_TTL", global = true)]
    pub session_ttl: Option<u64>,
    /// Dashboard sessions open at once; beyond it the oldest ends (default 4096).
    #[arg(long, env = "PROXYTAIL_MAX_SESSIONS", global = true)]
    pub max_sessions: Option<usize>,
    /// Dashboard sessions one user may hold; beyond it their oldest ends (default 16).
    #[arg(long, env = "PROXYTAIL_MAX_SESSIONS_PER_USER", global = true)]
    pub max_sessions_per_user: Option<usize>,
    // Subscriptions (issue 9/10).
    /// Bytes of entries queued for one WebSocket subscriber at most (default 4 MiB).
    #[arg(long, env = "PROXYTAIL_SUBSCRIBER_BUFFER_BYTES", global = true)]
    pub subscriber_buffer_bytes: Option<usize>,
    // Privacy policy (CONTRACT §7), applied to each entry as it is made.
    /// Client addresses: `keep` (default), `truncate` (IPv4 /24, IPv6 /48) or `pseudonymize`
    /// (keyed hash, key replaced every UTC day).
    #[arg(long, env = "PROXYTAIL_PRIVACY_CLIENT_IP", global = true)]
    pub privacy_client_ip: Option<ClientIpPrivacy>,
    /// User names: `keep` (default), `pseudonymize` or `drop` (null).
    #[arg(long, env = "PROXYTAIL_PRIVACY_USER", global = true)]
    pub privacy_user: Option<UserPrivacy>,
    /// Query strings of destination URLs: `keep` (default) or `strip` (everything after `?`).
    #[arg(long, env = "PROXYTAIL_PRIVACY_QUERY", global = true)]
    pub privacy_query: Option<QueryPrivacy>,
    // History on disk (issue 12).
    /// How long the journal keeps entries, by their `ts`: `7d`, `12h`, `30m` (default 7d).
    #[arg(long, env = "PROXYTAIL_RETENTION", global = true)]
    pub retention: Option<String>,
    /// Most bytes the journal keeps: `2GiB`, `500MB` (default 1GiB). Whichever limit is reached
    /// first applies.
    #[arg(long, env = "PROXYTAIL_RETENTION_BYTES", global = true)]
    pub retention_bytes: Option<String>,
    // Hostile clients (CONTRACT §11): token bounds and the Host allowlist.
    /// Outstanding WebSocket tokens allowed in total (default 10000).
    #[arg(long, env = "PROXYTAIL_MAX_TOKENS", global = true)]
    pub max_tokens: Option<usize>,
    /// Outstanding WebSocket tokens one user or JWT subject may hold (default 100).
    #[arg(long, env = "PROXYTAIL_MAX_TOKENS_PER_USER", global = true)]
    pub max_tokens_per_user: Option<usize>,
    /// URL the daemon is reached at through a reverse proxy (repeatable): its host is accepted in
    /// `Host` and its origin in `Origin`. Other hosts than loopback and the listen address get 421.
    #[arg(
        long = "public-url",
        env = "PROXYTAIL_PUBLIC_URL",
        value_delimiter = ',',
        global = true
    )]
    #[serde(default)]
    pub public_url: Vec<String>,
    /// Seconds a client has to send a request's headers, also the keep-alive idle limit (default 10).
    #[arg(long, env = "PROXYTAIL_HEADER_READ_TIMEOUT", global = true)]
    pub header_read_timeout: Option<u64>,
    /// Open HTTP connections, WebSockets included, at most (default 768).
    #[arg(long, env = "PROXYTAIL_MAX_HTTP_CONNECTIONS", global = true)]
    pub max_http_connections: Option<usize>,
    /// Open HTTP connections from one non-loopback address at most (default 64).
    #[arg(long, env = "PROXYTAIL_MAX_HTTP_CONNECTIONS_PER_IP", global = true)]
    pub max_http_connections_per_ip: Option<usize>,
    // Sign-in bursts (issue 14).
    /// Password sign-ins that may wait for an Argon2 slot (default 128); beyond them, or after 30 s
    /// of waiting, 503 with Retry-After. Each waiting sign-in holds only its request (a few KiB).
    #[arg(long, env = "PROXYTAIL_SIGN_IN_QUEUE", global = true)]
    pub sign_in_queue: Option<usize>,
    // --- Fleet on NATS JetStream (issue 13, CONTRACT §10) ---
    /// Edge: publish every entry to NATS JetStream at this URL (`nats://host:4222`; several
    /// servers of one cluster comma-separated).
    #[arg(long, env = "PROXYTAIL_PUBLISH", global = true)]
    pub publish: Option<String>,
    /// Edge: this proxy's name in the fleet (letters, digits, `-`, `_`); default the host name.
    #[arg(long, env = "PROXYTAIL_NODE_NAME", global = true)]
    pub node_name: Option<String>,
    /// Central: follow the edges' JetStream streams at this NATS URL instead of log files.
    #[arg(long, env = "PROXYTAIL_CONSUME", global = true)]
    pub consume: Option<String>,
    /// Central: the node names of the edges to follow (comma-separated or repeated).
    #[arg(long, env = "PROXYTAIL_NODES", value_delimiter = ',', global = true)]
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Edge: replicas of its stream (1-5; default 3 when the cluster has three servers or more, else 1).
    #[arg(long, env = "PROXYTAIL_NATS_REPLICAS", global = true)]
    pub nats_replicas: Option<usize>,
    /// NATS credentials file (`.creds`: user JWT and NKey seed).
    #[arg(long, env = "PROXYTAIL_NATS_CREDENTIALS", global = true)]
    pub nats_credentials: Option<PathBuf>,
    /// PEM file of the CA certificate(s) that sign the NATS servers' TLS certificates.
    #[arg(long, env = "PROXYTAIL_NATS_CA", global = true)]
    pub nats_ca: Option<PathBuf>,
    // --- end of fleet settings ---
}

/// The validated configuration the daemon runs with; passed down as values, never global.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Log files to follow, in order.
    pub access_logs: Vec<PathBuf>,
    /// Log format name (`squid`, …).
    pub format: String,
    /// The compiled format of every `--access-log` (from `format`, `regex`, `logformat`).
    pub log_format: parsers::Format,
    /// squid.conf to discover logs and formats from.
    pub squid_conf: Option<PathBuf>,
    /// Users file for Basic authentication.
    pub users: Option<PathBuf>,
    /// HS256 secret file for Bearer JWTs.
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key for asymmetric JWTs, pinned to `jwt_algorithm`.
    pub jwt_public_key_file: Option<PathBuf>,
    /// Algorithm name for `jwt_public_key_file` (validated when the authenticator loads).
    pub jwt_algorithm: Option<String>,
    /// Required JWT issuer.
    pub jwt_issuer: Option<String>,
    /// Required JWT audience.
    pub jwt_audience: Option<String>,
    /// Cookie carrying a JWT.
    pub jwt_cookie: Option<String>,
    /// WebSocket token lifetime.
    pub token_ttl: Duration,
    /// Checkpoint directory.
    pub state_dir: PathBuf,
    /// History size (entries).
    pub history: usize,
    /// Start at the beginning of a file seen for the first time.
    pub from_start: bool,
    /// `timestamp` in local time rather than UTC.
    pub local_time: bool,
    /// Use polling instead of inotify.
    pub poll: bool,
    /// Longest line taken, in bytes.
    pub max_line_bytes: usize,
    /// Allowed WebSocket origins besides the daemon's own.
    pub allowed_origins: Vec<String>,
    /// Global WebSocket connection cap.
    pub max_connections: usize,
    /// Per-address WebSocket connection cap.
    pub max_connections_per_ip: usize,
    /// Trust X-Forwarded-For from loopback peers.
    pub trust_forwarded_for: bool,
    // --- dashboard sessions (issue 9) ---
    /// How long a dashboard session lasts from sign-in (absolute, not sliding).
    pub session_ttl: Duration,
    /// Dashboard sessions open at once.
    pub max_sessions: usize,
    /// Dashboard sessions one user may hold.
    pub max_sessions_per_user: usize,
    // Subscriptions (issue 9/10).
    /// Bytes of entries queued for one WebSocket subscriber at most.
    pub subscriber_buffer_bytes: usize,
    /// What the privacy policy does to client addresses, users and query strings.
    pub privacy: PrivacyPolicy,
    // History on disk (issue 12).
    /// Journal retention by age (entries' `ts`).
    pub retention: Duration,
    /// Journal retention by size, in bytes.
    pub retention_bytes: u64,
    // Hostile clients (CONTRACT §11).
    /// Bound on outstanding WebSocket tokens in total.
    pub max_tokens: usize,
    /// Bound on outstanding WebSocket tokens per principal.
    pub max_tokens_per_user: usize,
    /// Host names (lower case, no port) of the `--public-url`s, accepted in `Host` besides the
    /// daemon's own; their origins are in `allowed_origins`.
    pub public_hosts: Vec<String>,
    /// The authorities (`host[:port]`, as in a `Host` header) of the `https://` public URLs: a
    /// request for one came through TLS, so the session cookie gets `Secure`.
    pub public_urls_https: Vec<String>,
    /// Deadline for a request's headers, and for the next request on an idle keep-alive connection.
    pub header_read_timeout: Duration,
    /// Cap on open HTTP connections.
    pub max_http_connections: usize,
    /// Cap on open HTTP connections per non-loopback peer address.
    pub max_http_connections_per_ip: usize,
    // Sign-in bursts (issue 14).
    /// Password sign-ins that may wait for an Argon2 slot.
    pub sign_in_queue: usize,
    /// Fleet role on NATS JetStream (CONTRACT §10): none, an edge that publishes, or a central.
    pub fleet: Option<Fleet>,
}

// --- Fleet on NATS JetStream (issue 13, CONTRACT §10) ---------------------------------------------
/// What a daemon is in a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetRole {
    /// Publishes its entries to the stream of `node` (`--publish`).
    Edge {
        /// `--node-name`, or the host name.
        node: String,
    },
    /// Follows the streams of `nodes` instead of log files (`--consume`).
    Central {
        /// `--nodes`, in the order given.
        nodes: Vec<String>,
    },
}

/// The NATS settings of an edge or a central.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Edge or central.
    pub role: FleetRole,
    /// Stream replicas an edge asks for; `None`: 3 when the cluster has three servers or more.
    pub replicas: Option<usize>,
    /// `.creds` file.
    pub credentials: Option<PathBuf>,
    /// CA certificate(s) for TLS.
    pub ca: Option<PathBuf>,
}

/// A node name is part of a stream name and a subject: no dots, wildcards or spaces.
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The host name's first label, as a default node name.
fn host_name() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let first = text.trim().split('.').next()?.to_owned();
    valid_node_name(&first).then_some(first)
}

/// Validates the fleet settings: at most one role, URLs `nats://` or `tls://`, node names usable in
/// stream names.
fn fleet_of(s: &Settings) -> Result<Option<Fleet>, ConfigError> {
    let invalid = |field: &'static str, why: String| ConfigError::Invalid { field, why };
    let check_url = |field: &'static str, url: &str| -> Result<String, ConfigError> {
        let ok = url.split(',').all(|u| {
            let u = u.trim();
            ["nats://", "tls://"]
                .iter()
                .any(|p| u.len() > p.len() && u.starts_with(p))
                && u.parse::<async_nats::ServerAddr>().is_ok()
        });
        if ok {
            Ok(url.trim().to_owned())
        } else {
            Err(invalid(
                field,
                format!("{url:?}: expected nats://host:port or tls://host:port (comma-separated)"),
            ))
        }
    };
    let check_node = |field: &'static str, name: &str| -> Result<String, ConfigError> {
        if valid_node_name(name) {
            Ok(name.to_owned())
        } else {
            Err(invalid(
                field,
                format!("{name:?}: a node name is 1-64 letters, digits, '-' or '_'"),
            ))
        }
    };
    let (url, role) = match (&s.publish, &s.consume) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "consume",
                "--publish (edge) and --consume (central) exclude each other".into(),
            ))
        }
        (Some(url), None) => {
            let node = match &s.node_name {
                Some(n) => check_node("node-name", n)?,
                None => host_name().ok_or_else(|| {
                    invalid(
                        "node-name",
                        "the host name is not a usable node name: set --node-name".into(),
                    )
                })?,
            };
            (check_url("publish", url)?, FleetRole::Edge { node })
        }
        (None, Some(url)) => {
            if s.nodes.is_empty() {
                return Err(invalid(
                    "nodes",
                    "--consume needs --nodes a,b,… (the edges' node names)".into(),
                ));
            }
            if !s.access_log.is_empty() || s.squid_conf.is_some() {
                return Err(invalid(
                    "consume",
                    "a central follows streams, not log files: drop --access-log/--squid-conf"
                        .into(),
                ));
            }
            let mut nodes = Vec::new();
            for n in &s.nodes {
                let n = check_node("nodes", n.trim())?;
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
            (check_url("consume", url)?, FleetRole::Central { nodes })
        }
    };
    if let Some(r) = s.nats_replicas {
        if !(1..=5).contains(&r) {
            return Err(invalid("nats-replicas", "must be 1 to 5".into()));
        }
    }
    Ok(Some(Fleet {
        url,
        role,
        replicas: s.nats_replicas,
        credentials: s.nats_credentials.clone(),
        ca: s.nats_ca.clone(),
    }))
}
// --- end of fleet block ----------------------------------------------------------------------------

impl Config {
    /// Parses `args` (argv including the program name) into the command and a validated config.
    pub fn from_args<I, T>(args: I) -> Result<(Option<Command>, Config), ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        let config = Config::from_settings(cli.settings)?;
        Ok((cli.command, config))
    }

    /// Merges `cli` over the TOML file it names (if any) and validates the result.
    pub fn from_settings(cli: Settings) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file_settings(path)?,
            None => Settings::default(),
        };
        let s = merge(cli, file);
        // Fleet (issue 13).
        let fleet = fleet_of(&s)?;
        let listen = s
            .listen
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        if !listen.ip().is_loopback() && !s.allow_non_loopback.unwrap_or(false) {
            return Err(ConfigError::NonLoopback(listen));
        }
        let format = s.format.unwrap_or_else(|| "squid".to_owned());
        let log_format = compile_format(&format, s.regex.as_deref(), s.logformat.as_deref())?;
        let history = s.history.unwrap_or(10_000);
        if history == 0 {
            return Err(ConfigError::Invalid {
                field: "history",
                why: "must be at least 1".into(),
            });
        }
        let token_ttl = s.token_ttl.unwrap_or(120);
        if token_ttl == 0 {
            return Err(ConfigError::Invalid {
                field: "token-ttl",
                why: "must be at least 1 second".into(),
            });
        }
        let max_line_bytes = s.max_line_bytes.unwrap_or(64 * 1024);
        if max_line_bytes < 256 {
            return Err(ConfigError::Invalid {
                field: "max-line-bytes",
                why: "must be at least 256".into(),
            });
        }
        // --- dashboard sessions (issue 9) ---
        let session_ttl = s.session_ttl.unwrap_or(12 * 3600);
        if session_ttl == 0 {
            return Err(ConfigError::Invalid {
                field: "session-ttl",
                why: "must be at least 1 second".into(),
            });
        }
        let max_sessions = s.max_sessions.unwrap_or(4096);
        let max_sessions_per_user = s.max_sessions_per_user.unwrap_or(16);
        if max_sessions == 0 || max_sessions_per_user == 0 {
            return Err(ConfigError::Invalid {
                field: if max_sessions == 0 {
                    "max-sessions"
                } else {
                    "max-sessions-per-user"
                },
                why: "must be at least 1".into(),
            });
        }
        // Subscriptions (issue 9/10).
        let subscriber_buffer_bytes = s.subscriber_buffer_bytes.unwrap_or(4 << 20);
        if subscriber_buffer_bytes < 64 * 1024 {
            return Err(ConfigError::Invalid {
                field: "subscriber-buffer-bytes",
                why: "must be at least 65536".into(),
            });
        }
        // History on disk (issue 12).
        let retention = parse_duration(s.retention.as_deref().unwrap_or(DEFAULT_RETENTION))
            .map_err(|why| ConfigError::Invalid {
                field: "retention",
                why,
            })?;
        if retention.is_zero() {
            return Err(ConfigError::Invalid {
                field: "retention",
                why: "must be at least 1 second".into(),
            });
        }
        let retention_bytes = parse_bytes(
            s.retention_bytes
                .as_deref()
                .unwrap_or(DEFAULT_RETENTION_BYTES),
        )
        .map_err(|why| ConfigError::Invalid {
            field: "retention-bytes",
            why,
        })?;
        if retention_bytes < MIN_RETENTION_BYTES {
            return Err(ConfigError::Invalid {
                field: "retention-bytes",
                why: "must be at least 1MiB".into(),
            });
        }
        // Hostile clients (CONTRACT §11).
        let max_tokens = s.max_tokens.unwrap_or(crate::tokens::MAX_OUTSTANDING);
        let max_tokens_per_user = s
            .max_tokens_per_user
            .unwrap_or(crate::tokens::MAX_PER_PRINCIPAL);
        if max_tokens == 0 || max_tokens_per_user == 0 {
            return Err(ConfigError::Invalid {
                field: "max-tokens",
                why: "token bounds must be at least 1".into(),
            });
        }
        let header_read_timeout = s.header_read_timeout.unwrap_or(10);
        let max_http_connections = s.max_http_connections.unwrap_or(768);
        let max_http_connections_per_ip = s.max_http_connections_per_ip.unwrap_or(64);
        if header_read_timeout == 0 || max_http_connections == 0 || max_http_connections_per_ip == 0
        {
            return Err(ConfigError::Invalid {
                field: "header-read-timeout",
                why: "HTTP limits must be at least 1".into(),
            });
        }
        let mut allowed_origins = s.allowed_origin;
        let mut public_hosts = Vec::new();
        let mut public_urls_https = Vec::new();
        for url in &s.public_url {
            let (origin, host) = public_origin(url).map_err(|why| ConfigError::Invalid {
                field: "public-url",
                why,
            })?;
            if let Some(authority) = origin.strip_prefix("https://") {
                public_urls_https.push(authority.to_owned());
            }
            allowed_origins.push(origin);
            public_hosts.push(host);
        }
        Ok(Config {
            listen,
            access_logs: s.access_log,
            format,
            log_format,
            squid_conf: s.squid_conf,
            users: s.users,
            jwt_secret_file: s.jwt_secret_file,
            jwt_public_key_file: s.jwt_public_key_file,
            jwt_algorithm: s.jwt_algorithm,
            jwt_issuer: s.jwt_issuer,
            jwt_audience: s.jwt_audience,
            jwt_cookie: s.jwt_cookie,
            token_ttl: Duration::from_secs(token_ttl),
            state_dir: s.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            history,
            from_start: s.from_start.unwrap_or(false),
            local_time: s.local_time.unwrap_or(false),
            poll: s.poll.unwrap_or(false),
            max_line_bytes,
            allowed_origins,
            max_connections: s.max_connections.unwrap_or(256),
            max_connections_per_ip: s.max_connections_per_ip.unwrap_or(32),
            trust_forwarded_for: s.trust_forwarded_for.unwrap_or(false),
            // --- dashboard sessions (issue 9) ---
            session_ttl: Duration::from_secs(session_ttl),
            max_sessions,
            max_sessions_per_user,
            subscriber_buffer_bytes,
            privacy: PrivacyPolicy {
                client_ip: s.privacy_client_ip.unwrap_or_default(),
                user: s.privacy_user.unwrap_or_default(),
                query: s.privacy_query.unwrap_or_default(),
            },
            retention,
            retention_bytes,
            max_tokens,
            max_tokens_per_user,
            public_hosts,
            public_urls_https,
            header_read_timeout: Duration::from_secs(header_read_timeout),
            max_http_connections,
            max_http_connections_per_ip,
            // Sign-in bursts (issue 14).
            sign_in_queue: s
                .sign_in_queue
                .unwrap_or(crate::auth::verify::DEFAULT_QUEUE),
            fleet,
        })
    }
}

/// Reads the TOML configuration file at `path` (`check-config` reports its errors by line).
pub fn read_file_settings(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Toml {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Field by field: `a` if set, else `b`.
pub fn merge(a: Settings, b: Settings) -> Settings {
    fn vec_or<T>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
        if a.is_empty() {
            b
        } else {
            a
        }
    }
    Settings {
        config: a.config,
        listen: a.listen.or(b.listen),
        allow_non_loopback: a.allow_non_loopback.or(b.allow_non_loopback),
        access_log: vec_or(a.access_log, b.access_log),
        format: a.format.or(b.format),
        regex: a.regex.or(b.regex),
        logformat: a.logformat.or(b.logformat),
        squid_conf: a.squid_conf.or(b.squid_conf),
        users: a.users.or(b.users),
        jwt_secret_file: a.jwt_secret_file.or(b.jwt_secret_file),
        jwt_public_key_file: a.jwt_public_key_file.or(b.jwt_public_key_file),
        jwt_algorithm: a.jwt_algorithm.or(b.jwt_algorithm),
        jwt_issuer: a.jwt_issuer.or(b.jwt_issuer),
        jwt_audience: a.jwt_audience.or(b.jwt_audience),
        jwt_cookie: a.jwt_cookie.or(b.jwt_cookie),
        token_ttl: a.token_ttl.or(b.token_ttl),
        state_dir: a.state_dir.or(b.state_dir),
        history: a.history.or(b.history),
        from_start: a.from_start.or(b.from_start),
        local_time: a.local_time.or(b.local_time),
        poll: a.poll.or(b.poll),
        max_line_bytes: a.max_line_bytes.or(b.max_line_bytes),
        allowed_origin: vec_or(a.allowed_origin, b.allowed_origin),
        max_connections: a.max_connections.or(b.max_connections),
        max_connections_per_ip: a.max_connections_per_ip.or(b.max_connections_per_ip),
        subscriber_buffer_bytes: a.subscriber_buffer_bytes.or(b.subscriber_buffer_bytes),
        trust_forwarded_for: a.trust_forwarded_for.or(b.trust_forwarded_for),
        // --- dashboard sessions (issue 9) ---
        session_ttl: a.session_ttl.or(b.session_ttl),
        max_sessions: a.max_sessions.or(b.max_sessions),
        max_sessions_per_user: a.max_sessions_per_user.or(b.max_sessions_per_user),
        privacy_client_ip: a.privacy_client_ip.or(b.privacy_client_ip),
        privacy_user: a.privacy_user.or(b.privacy_user),
        privacy_query: a.privacy_query.or(b.privacy_query),
        retention: a.retention.or(b.retention),
        retention_bytes: a.retention_bytes.or(b.retention_bytes),
        max_tokens: a.max_tokens.or(b.max_tokens),
        max_tokens_per_user: a.max_tokens_per_user.or(b.max_tokens_per_user),
        public_url: vec_or(a.public_url, b.public_url),
        header_read_timeout: a.header_read_timeout.or(b.header_read_timeout),
        max_http_connections: a.max_http_connections.or(b.max_http_connections),
        max_http_connections_per_ip: a
            .max_http_connections_per_ip
            .or(b.max_http_connections_per_ip),
        // Sign-in bursts (issue 14).
        sign_in_queue: a.sign_in_queue.or(b.sign_in_queue),
        // Fleet (issue 13).
        publish: a.publish.or(b.publish),
        node_name: a.node_name.or(b.node_name),
        consume: a.consume.or(b.consume),
        nodes: vec_or(a.nodes, b.nodes),
        nats_replicas: a.nats_replicas.or(b.nats_replicas),
        nats_credentials: a.nats_credentials.or(b.nats_credentials),
        nats_ca: a.nats_ca.or(b.nats_ca),
    }
}

/// `https://proxy.example/` → its origin (`https://proxy.example`) and host (`proxy.example`).
fn public_origin(url: &str) -> Result<(String, String), String> {
    let uri: warp::http::Uri = url
        .trim()
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{url:?}: the scheme must be http or https"));
    }
    let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
        return Err(format!("{url:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("{url:?}: no user information in a public URL"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((
        format!("{scheme}://{}", authority.as_str().to_ascii_lowercase()),
        host.to_ascii_lowercase(),
    ))
}

/// The parser for `--format NAME` (with `--regex` / `--logformat` where the name asks for one).
fn compile_format(
    name: &str,
    regex: Option<&str>,
    logformat: Option<&str>,
) -> Result<parsers::Format, ConfigError> {
    let invalid = |field: &'static str, why: String| ConfigError::Invalid { field, why };
    match name {
        "regex" => {
            let pattern = regex
                .ok_or_else(|| invalid("regex", "--format regex needs --regex PATTERN".into()))?;
            parsers::Format::regex(pattern).map_err(|e| invalid("regex", e.to_string()))
        }
        "logformat" => {
            let def = logformat.ok_or_else(|| {
                invalid(
                    "logformat",
                    "--format logformat needs --logformat DEFINITION".into(),
                )
            })?;
            parsers::Format::from_logformat(def).map_err(|e| invalid("logformat", e.to_string()))
        }
        builtin => parsers::Format::builtin(builtin).ok_or_else(|| {
            invalid(
                "format",
                format!(
                    "unknown format {builtin:?} (known: {}, logformat, regex)",
                    parsers::BUILTIN_NAMES.join(", ")
                ),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_settings_parse_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("-1d").is_err());
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("500MB"), Ok(500_000_000));
        assert!(parse_bytes("1XB").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
        let base = ["proxytail", "--access-log", "/x"];
        let (_, c) = Config::from_args(base).unwrap();
        assert_eq!(
            (c.retention, c.retention_bytes),
            (Duration::from_secs(7 * 86_400), 1 << 30)
        );
        let with = |extra: &[&str]| Config::from_args(base.iter().chain(extra).copied());
        let (_, c) = with(&["--retention", "12h", "--retention-bytes", "2GiB"]).unwrap();
        assert_eq!(
            (c.retention, c.retention_bytes),
            (Duration::from_secs(12 * 3600), 2 << 30)
        );
        assert!(with(&["--retention-bytes", "1KiB"]).is_err());
        assert!(with(&["--retention", "0s"]).is_err());
    }

    #[test]
    fn fleet_settings_are_validated() {
        let args = |extra: &[&str]| {
            let mut a = vec!["proxytail"];
            a.extend_from_slice(extra);
            Config::from_args(a)
        };
        let (_, c) = args(&[
            "--access-log",
            "/x",
            "--publish",
            "nats://a:4222, nats://b:4222",
            "--node-name",
            "e1",
        ])
        .unwrap();
        let fleet = c.fleet.unwrap();
        assert_eq!(fleet.role, FleetRole::Edge { node: "e1".into() });
        assert_eq!(fleet.replicas, None);
        let (_, c) = args(&["--consume", "nats://a:4222", "--nodes", "e1,e2,e1"]).unwrap();
        assert_eq!(
            c.fleet.unwrap().role,
            FleetRole::Central {
                nodes: vec!["e1".into(), "e2".into()]
            }
        );
        for bad in [
            &[
                "--access-log",
                "/x",
                "--publish",
                "http://a:4222",
                "--node-name",
                "e",
            ][..],
            &[
                "--access-log",
                "/x",
                "--publish",
                "nats://a:4222",
                "--node-name",
                "a.b",
            ],
            &["--consume", "nats://a:4222"],
            &[
                "--consume",
                "nats://a:4222",
                "--nodes",
                "a",
                "--access-log",
                "/x",
            ],
            &[
                "--publish",
                "nats://a:4222",
                "--consume",
                "nats://a:4222",
                "--nodes",
                "a",
            ],
            &[
                "--access-log",
                "/x",
                "--publish",
                "nats://a:4222",
                "--node-name",
                "e",
                "--nats-replicas",
                "7",
            ],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }
}
