//! `proxytail check-config`: every problem in the configuration, its files and their permissions,
//! found in one run and reported with the file and line (or the flag) it comes from. It works from the
//! raw [`Settings`] rather than a [`Config`], so that one invalid setting does not hide the others.
use crate::auth::users;
use crate::auth::Authenticator;
use crate::config::{self, Config, Settings, DEFAULT_LISTEN, DEFAULT_STATE_DIR};
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Shortest acceptable HS256 secret, in bytes (RFC 7518 §3.2: at least the hash size): the daemon's.
pub const MIN_JWT_SECRET_BYTES: usize = crate::auth::jwt::MIN_SECRET_BYTES;
/// The only port the packaged systemd unit lets the daemon bind (`SocketBindAllow=tcp:5001`).
pub const PACKAGED_PORT: u16 = 5001;
/// Widest acceptable mode for files holding credentials: owner read/write, group read.
pub const MAX_SECRET_FILE_MODE: u32 = 0o640;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something verified and fine; printed so the operator sees what was checked.
    Ok,
    /// Works, but deserves a look.
    Warning,
    /// The daemon would fail or be unsafe: `check-config` exits non-zero.
    Error,
}

/// One thing `check-config` has to say.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Whether it fails the check.
    pub severity: Severity,
    /// Where it comes from: `file:line`, `file`, or the flag/environment variable.
    pub location: Option<String>,
    /// What was found, and what to do about it.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match &self.location {
            Some(loc) => write!(f, "{label}: {loc}: {}", self.message),
            None => write!(f, "{label}: {}", self.message),
        }
    }
}

/// Everything found, in the order it was checked.
#[derive(Debug, Default)]
pub struct Report {
    /// The findings, printed one per line.
    pub findings: Vec<Finding>,
}

impl Report {
    fn push(&mut self, severity: Severity, location: Option<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            location,
            message: message.into(),
        });
    }

    /// Number of findings of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// True when nothing is an error.
    pub fn is_ok(&self) -> bool {
        self.count(Severity::Error) == 0
    }

    /// Prints every finding and a summary line.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for f in &self.findings {
            writeln!(out, "{f}")?;
        }
        writeln!(
            out,
            "{} error(s), {} warning(s)",
            self.count(Severity::Error),
            self.count(Severity::Warning)
        )
    }
}

/// Where each setting's value came from, to point at it.
struct Origin<'a> {
    /// The command-line/environment settings (they win over the file).
    cli: &'a Settings,
    /// The configuration file and its text, when one was read.
    file: Option<(&'a Path, &'a str)>,
}

impl Origin<'_> {
    /// `file:line` when `key` came from the file, else the flag that set it, else `None` (default).
    fn of(&self, key: &str, from_cli: bool) -> Option<String> {
        if from_cli {
            let env = format!("PROXYTAIL_{}", key.replace('-', "_").to_uppercase());
            return Some(format!("--{key} (or {env})"));
        }
        let (path, text) = self.file?;
        match key_line(text, key) {
            Some(line) => Some(format!("{}:{line}", path.display())),
            None => Some(path.display().to_string()),
        }
    }
}

/// The 1-based line on which a top-level `key = ...` is set in a flat TOML text.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")));
            matches!(l, Some(rest) if rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Checks the configuration given by `cli` (and the file it names) and everything it points at.
pub fn check(cli: &Settings) -> Report {
    let mut report = Report::default();
    let mut text = String::new();
    let mut file_settings = Settings::default();
    let mut file_ok = true;
    if let Some(path) = &cli.config {
        match std::fs::read_to_string(path) {
            Err(e) => {
                report.push(
                    Severity::Error,
                    Some(path.display().to_string()),
                    format!("cannot read the configuration file: {e}"),
                );
                file_ok = false;
            }
            Ok(t) => {
                text = t;
                match toml::from_str::<Settings>(&text) {
                    Ok(s) => {
                        file_settings = s;
                        report.push(
                            Severity::Ok,
                            Some(path.display().to_string()),
                            "configuration file parsed",
                        );
                    }
                    Err(e) => {
                        let loc = match e.span() {
                            Some(span) => {
                                format!("{}:{}", path.display(), line_of(&text, span.start))
                            }
                            None => path.display().to_string(),
                        };
                        report.push(Severity::Error, Some(loc), e.message().to_owned());
                        file_ok = false;
                    }
                }
            }
        }
    }
    let origin = Origin {
        cli,
        file: cli
            .config
            .as_deref()
            .filter(|_| file_ok)
            .map(|p| (p, text.as_str())),
    };
    let s = config::merge(cli.clone(), file_settings);

    check_listen(&mut report, &origin, &s);
    check_numbers(&mut report, &origin, &s);
    check_logs(&mut report, &origin, &s);
    check_users(&mut report, &origin, &s);
    check_jwt_secret(&mut report, &origin, &s);
    check_public_key(&mut report, &origin, &s);
    check_state_dir(&mut report, &origin, &s);
    check_retention(&mut report, &origin, &s);
    check_origins(&mut report, &origin, &s);
    check_service(&mut report, &s);
    check_fleet(&mut report, &origin, &s);
    if s.users.is_none() && s.jwt_secret_file.is_none() && s.jwt_public_key_file.is_none() {
        report.push(
            Severity::Warning,
            None,
            "no users file and no JWT secret: nobody can get a WebSocket token",
        );
    }

    // Last, what the daemon itself would do at start with this configuration, so that
    // check-config never passes a configuration the daemon refuses.
    if report.is_ok() {
        match Config::from_settings(cli.clone()) {
            Err(e) => report.push(Severity::Error, None, e.to_string()),
            Ok(config) => match Authenticator::load(&config) {
                Ok(_) => report.push(Severity::Ok, None, "credentials load"),
                Err(e) => report.push(Severity::Error, None, e.to_string()),
            },
        }
    }
    report
}

// --- Fleet (issue 13): the NATS settings, and whether NATS answers with JetStream -----------------
fn check_fleet(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let key = if s.consume.is_some() {
        "consume"
    } else {
        "publish"
    };
    let from_cli = origin.cli.consume.is_some() || origin.cli.publish.is_some();
    let loc = origin.of(key, from_cli);
    if s.publish.is_none() && s.consume.is_none() {
        return;
    }
    // The fleet settings alone, validated as the daemon validates them.
    let probe = Settings {
        publish: s.publish.clone(),
        consume: s.consume.clone(),
        node_name: s.node_name.clone(),
        nodes: s.nodes.clone(),
        nats_replicas: s.nats_replicas,
        nats_credentials: s.nats_credentials.clone(),
        nats_ca: s.nats_ca.clone(),
        access_log: s.access_log.clone(),
        squid_conf: s.squid_conf.clone(),
        ..Settings::default()
    };
    let fleet = match Config::from_settings(probe) {
        Ok(c) => c.fleet,
        Err(e) => {
            report.push(Severity::Error, loc, e.to_string());
            return;
        }
    };
    let Some(fleet) = fleet else { return };
    match crate::source::nats::probe(&fleet) {
        Ok(notes) => {
            for note in notes {
                report.push(Severity::Ok, loc.clone(), note);
            }
        }
        Err(why) => report.push(Severity::Error, loc, why),
    }
}
// --- end of fleet block ----------------------------------------------------------------------------

fn check_listen(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let loc = origin.of("listen", origin.cli.listen.is_some());
    let listen: SocketAddr = match s.listen {
        Some(l) => l,
        None => match DEFAULT_LISTEN.parse() {
            Ok(l) => l,
            Err(_) => return,
        },
    };
    if listen.port() != PACKAGED_PORT {
        report.push(
            Severity::Warning,
            loc.clone(),
            format!(
                "port {} is not {PACKAGED_PORT}: the packaged unit may bind {PACKAGED_PORT} only \
                 (SocketBindAllow=); widen it in a drop-in (`systemctl edit proxytail`)",
                listen.port()
            ),
        );
    }
    if listen.ip().is_loopback() {
        report.push(Severity::Ok, loc, format!("listening on loopback {listen}"));
    } else if s.allow_non_loopback.unwrap_or(false) {
        report.push(
            Severity::Warning,
            loc,
            format!(
                "listen address {listen} is not loopback: put a TLS reverse proxy in front (tokens and \
                 passwords would otherwise cross the network in clear) and widen the unit's \
                 SocketBindAllow=/IPAddressAllow="
            ),
        );
    } else {
        report.push(
            Severity::Error,
            loc,
            format!(
                "listen address {listen} is not loopback: keep 127.0.0.1:5001 behind a reverse proxy, \
                 or set allow-non-loopback = true and put a TLS reverse proxy in front"
            ),
        );
    }
}

fn check_numbers(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let cli = origin.cli;
    if s.history == Some(0) {
        report.push(
            Severity::Error,
            origin.of("history", cli.history.is_some()),
            "history must be at least 1",
        );
    }
    if s.token_ttl == Some(0) {
        report.push(
            Severity::Error,
            origin.of("token-ttl", cli.token_ttl.is_some()),
            "token-ttl must be at least 1 second",
        );
    }
    if matches!(s.max_line_bytes, Some(n) if n < 256) {
        report.push(
            Severity::Error,
            origin.of("max-line-bytes", cli.max_line_bytes.is_some()),
            "max-line-bytes must be at least 256",
        );
    }
    if s.max_connections == Some(0) || s.max_connections_per_ip == Some(0) {
        report.push(
            Severity::Warning,
            origin.of(
                if s.max_connections == Some(0) {
                    "max-connections"
                } else {
                    "max-connections-per-ip"
                },
                cli.max_connections.is_some() || cli.max_connections_per_ip.is_some(),
            ),
            "a connection cap of 0 refuses every WebSocket subscriber",
        );
    }
}

fn check_logs(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let loc = origin.of("access-log", !origin.cli.access_log.is_empty());
    // A fleet central (`--consume`) follows streams, not files (checked in `check_fleet`).
    if s.access_log.is_empty() && s.squid_conf.is_none() && s.consume.is_none() {
        report.push(
            Severity::Error,
            loc.clone(),
            "no access log configured (set access-log or squid-conf)",
        );
    }
    for path in &s.access_log {
        check_readable_log(report, loc.clone(), path);
    }
    if let Some(conf) = &s.squid_conf {
        let loc = origin.of("squid-conf", origin.cli.squid_conf.is_some());
        match crate::source::file::discover_squid_conf(conf) {
            Ok(found) => {
                report.push(
                    Severity::Ok,
                    loc.clone(),
                    format!(
                        "{}: {} access log(s) found",
                        conf.display(),
                        found.sources.len()
                    ),
                );
                for note in found.notes {
                    report.push(Severity::Warning, loc.clone(), note);
                }
                for src in found.sources {
                    let what = format!("access log in squid.conf, format {}", src.format_name);
                    check_readable_log(report, Some(what), &src.path);
                }
            }
            Err(e) => {
                let mut msg = e.to_string();
                if let Some(source) = std::error::Error::source(&e) {
                    msg = format!("{msg}: {source}");
                }
                report.push(Severity::Error, loc, msg)
            }
        }
    }
}

fn check_readable_log(report: &mut Report, loc: Option<String>, path: &Path) {
    match std::fs::File::open(path).and_then(|f| f.metadata()) {
        Ok(m) if m.is_dir() => report.push(
            Severity::Error,
            loc,
            format!("{} is a directory, not a log file", path.display()),
        ),
        Ok(_) => report.push(Severity::Ok, loc, format!("{} is readable", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            match parent.map(std::fs::read_dir) {
                // A directory that is not there yet (Squid not installed yet) is waited for too.
                Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => report.push(
                    Severity::Error,
                    loc,
                    format!(
                        "{} does not exist and its directory cannot be read: {e}",
                        path.display()
                    ),
                ),
                _ => report.push(
                    Severity::Warning,
                    loc,
                    format!(
                        "{} does not exist yet; it will be waited for",
                        path.display()
                    ),
                ),
            }
        }
        Err(e) => report.push(
            Severity::Error,
            loc,
            format!(
                "{} is not readable: {e} (Debian's Squid logs are proxy:proxy 0640: the daemon's \
                 user must be in group proxy)",
                path.display()
            ),
        ),
    }
}

/// Reads a credentials file, reporting unreadability and a mode wider than 0640.
fn read_secret_file(report: &mut Report, loc: Option<String>, path: &Path) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            report.push(Severity::Error, loc, format!("{}: {e}", path.display()));
            return None;
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !MAX_SECRET_FILE_MODE != 0 {
        let mut wrong = Vec::new();
        if mode & 0o020 != 0 {
            wrong.push("group-writable");
        }
        if mode & 0o007 != 0 {
            wrong.push("accessible to others");
        }
        if mode & 0o7111 != 0 {
            wrong.push("executable or setuid/setgid/sticky");
        }
        report.push(
            Severity::Error,
            Some(path.display().to_string()),
            format!(
                "mode {mode:04o} is wider than {MAX_SECRET_FILE_MODE:04o} ({}): \
                 chmod 0640 {} (owner root, group of the daemon's user)",
                wrong.join(", "),
                path.display()
            ),
        );
    }
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            report.push(
                Severity::Error,
                Some(path.display().to_string()),
                format!("not readable: {e}"),
            );
            None
        }
    }
}

fn check_users(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let Some(path) = &s.users else { return };
    let loc = origin.of("users", origin.cli.users.is_some());
    let Some(text) = read_secret_file(report, loc, path) else {
        return;
    };
    // Line by line with the daemon's own checks, so that every bad line is reported, not the first.
    let mut seen = std::collections::HashMap::new();
    let mut bad = 0;
    for (i, raw) in text.lines().enumerate() {
        let Some(entry) = users::split_line(raw) else {
            continue;
        };
        let loc = Some(format!("{}:{}", path.display(), i + 1));
        let (name, hash, view) = match entry {
            Ok(parts) => parts,
            Err(why) => {
                report.push(Severity::Error, loc, why);
                bad += 1;
                continue;
            }
        };
        let mut problems = Vec::new();
        if let Err(why) = users::check_name(name) {
            problems.push(why);
        }
        if let Err(why) = users::check_hash(hash) {
            problems.push(format!("user {name:?}: {why}"));
        }
        if let Err(why) = view.map(users::check_view).transpose() {
            problems.push(format!("user {name:?}: {why}"));
        }
        if let Some(first) = seen.insert(name.to_owned(), i + 1) {
            problems.push(format!("user {name:?} already defined on line {first}"));
        }
        bad += usize::from(!problems.is_empty());
        for why in problems {
            report.push(Severity::Error, loc.clone(), why);
        }
    }
    let n = seen.len();
    if n == 0 {
        report.push(
            Severity::Warning,
            Some(path.display().to_string()),
            "no users yet: add one with `proxytail user add NAME`",
        );
    } else if bad == 0 {
        report.push(
            Severity::Ok,
            Some(path.display().to_string()),
            format!("{n} user(s)"),
        );
    }
}

fn check_public_key(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let Some(path) = &s.jwt_public_key_file else {
        return;
    };
    let loc = origin.of(
        "jwt-public-key-file",
        origin.cli.jwt_public_key_file.is_some(),
    );
    match std::fs::read_to_string(path) {
        Ok(_) => report.push(Severity::Ok, loc, format!("{} is readable", path.display())),
        Err(e) => report.push(Severity::Error, loc, format!("{}: {e}", path.display())),
    }
    if s.jwt_algorithm.is_none() {
        report.push(
            Severity::Error,
            origin.of("jwt-algorithm", false),
            "jwt-public-key-file needs jwt-algorithm (RS256, ES256, EdDSA, …): the algorithm is pinned, never taken from the token",
        );
    }
}

fn check_jwt_secret(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let Some(path) = &s.jwt_secret_file else {
        return;
    };
    let loc = origin.of("jwt-secret-file", origin.cli.jwt_secret_file.is_some());
    let Some(text) = read_secret_file(report, loc, path) else {
        return;
    };
    let secret = crate::auth::jwt::secret_of(text.as_bytes());
    if secret.len() < MIN_JWT_SECRET_BYTES {
        report.push(
            Severity::Error,
            Some(path.display().to_string()),
            format!(
                "weak JWT secret: {} bytes, at least {MIN_JWT_SECRET_BYTES} needed \
                 (e.g. `head -c 48 /dev/urandom | base64`)",
                secret.len()
            ),
        );
    } else {
        report.push(
            Severity::Ok,
            Some(path.display().to_string()),
            "JWT secret is long enough",
        );
    }
}

fn check_state_dir(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let loc = origin.of("state-dir", origin.cli.state_dir.is_some());
    let dir: PathBuf = s
        .state_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    match std::fs::metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => report.push(
            Severity::Warning,
            loc,
            format!(
                "state directory {} does not exist (systemd's StateDirectory= creates it)",
                dir.display()
            ),
        ),
        Err(e) => report.push(Severity::Error, loc, format!("{}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => report.push(
            Severity::Error,
            loc,
            format!("state directory {} is not a directory", dir.display()),
        ),
        Ok(_) => {
            // The only reliable test of writability (ACLs, read-only mounts, sandboxing) is a write.
            let probe = dir.join(format!(".check-config-{}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
            {
                Ok(_) => {
                    let _ = std::fs::remove_file(&probe);
                    report.push(
                        Severity::Ok,
                        loc,
                        format!("state directory {} is writable", dir.display()),
                    );
                }
                Err(e) => report.push(
                    Severity::Error,
                    loc,
                    format!("state directory {} is not writable: {e}", dir.display()),
                ),
            }
        }
    }
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `40 B`.
fn human_bytes(n: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in units {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

/// `7.0 d`, `12.0 h`, `30 min`.
fn human_secs(secs: f64) -> String {
    if secs >= 86_400.0 {
        format!("{:.1} d", secs / 86_400.0)
    } else if secs >= 3600.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.0} min", secs / 60.0)
    }
}

/// The journal's retention, and the disk it needs at the rate its own entries were made.
fn check_retention(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let cli = origin.cli;
    let age = config::parse_duration(s.retention.as_deref().unwrap_or(config::DEFAULT_RETENTION));
    let bytes = config::parse_bytes(
        s.retention_bytes
            .as_deref()
            .unwrap_or(config::DEFAULT_RETENTION_BYTES),
    );
    let (age, bytes) = match (age, bytes) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(why), _) => {
            let loc = origin.of("retention", cli.retention.is_some());
            return report.push(Severity::Error, loc, format!("retention: {why}"));
        }
        (_, Err(why)) => {
            let loc = origin.of("retention-bytes", cli.retention_bytes.is_some());
            return report.push(Severity::Error, loc, format!("retention-bytes: {why}"));
        }
    };
    let loc = origin.of("retention", cli.retention.is_some());
    let age_s = age.as_secs_f64();
    let mut message = format!(
        "journal retention {} or {}, whichever is reached first",
        human_secs(age_s),
        human_bytes(bytes)
    );
    let dir: PathBuf = s
        .state_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    let seen = crate::store::journal::inspect(&dir).unwrap_or_default();
    let span = match (seen.oldest, seen.newest) {
        (Some((_, Some(a))), Some((_, Some(b)))) => Some((b - a) as f64 / 1000.0),
        _ => None,
    };
    let mut severity = Severity::Ok;
    match span {
        Some(span) if span >= 60.0 && seen.bytes > 0 => {
            let rate = seen.bytes as f64 / span;
            let need = (rate * age_s) as u64;
            message.push_str(&format!(
                "; the journal holds {} over {} ({}/day), so {} needs {}",
                human_bytes(seen.bytes),
                human_secs(span),
                human_bytes((rate * 86_400.0) as u64),
                human_secs(age_s),
                human_bytes(need)
            ));
            if need > bytes {
                message.push_str(&format!(
                    ": retention-bytes is reached first, after about {}",
                    human_secs(bytes as f64 / rate)
                ));
            }
            let keep = need.min(bytes);
            if let Ok(fs) = rustix::fs::statvfs(&dir) {
                let free = fs.f_bavail.saturating_mul(fs.f_frsize);
                if free.saturating_add(seen.bytes) < keep {
                    severity = Severity::Warning;
                    message.push_str(&format!(
                        "; only {} free on {}: the disk fills before retention applies",
                        human_bytes(free),
                        dir.display()
                    ));
                }
            }
        }
        _ => message.push_str(&format!(
            "; no rate yet (the journal in {} holds {} over less than a minute)",
            dir.display(),
            human_bytes(seen.bytes)
        )),
    }
    report.push(severity, loc, message);
}

fn check_origins(report: &mut Report, origin: &Origin<'_>, s: &Settings) {
    let loc = origin.of("allowed-origin", !origin.cli.allowed_origin.is_empty());
    for o in &s.allowed_origin {
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains('/') => {}
            _ => report.push(
                Severity::Error,
                loc.clone(),
                format!(
                    "allowed-origin {o:?} is not an origin: scheme://host[:port], no path or trailing slash"
                ),
            ),
        }
    }
}

// --- Metrics and systemd (issue 11) ------------------------------------------------------------------
/// The `/metrics` endpoint and the systemd notification/watchdog settings the daemon will use.
fn check_service(report: &mut Report, s: &Settings) {
    let listen = s
        .listen
        .map_or_else(|| DEFAULT_LISTEN.to_owned(), |a| a.to_string());
    if s.users.is_some() || s.jwt_secret_file.is_some() || s.jwt_public_key_file.is_some() {
        report.push(
            Severity::Ok,
            None,
            format!("metrics: http://{listen}/metrics, with the same credentials as the API (a user or a JWT)"),
        );
    } else {
        report.push(
            Severity::Warning,
            None,
            format!("metrics: http://{listen}/metrics answers 401 to everyone: no users file or JWT key is configured"),
        );
    }
    let watchdog = match crate::notify::watchdog_timeout() {
        Some(t) => format!(
            "watchdog: WatchdogSec={} ms, keep-alive every {} ms from the tailing loop",
            t.as_millis(),
            (t / 2).as_millis()
        ),
        None => {
            "watchdog: not set for this process; under systemd, WatchdogSec= in the unit sets it \
                 and the tailing loop sends keep-alives every half period"
                .to_owned()
        }
    };
    report.push(Severity::Ok, None, watchdog);
    let notify = if std::env::var_os("NOTIFY_SOCKET").is_some() {
        "systemd notification: NOTIFY_SOCKET set (READY=1 once ready, STATUS= with the last id)"
    } else {
        "systemd notification: no NOTIFY_SOCKET for this process (ExecStartPre has none; the daemon under Type=notify sends READY=1, STATUS=, WATCHDOG=1)"
    };
    report.push(Severity::Ok, None, notify);
}
// --- end of issue 11 block ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_line_finds_keys_not_comments_or_prefixes() {
        let text = "# listen = \"x\"\nlisten-other = 1\n  listen = \"127.0.0.1:1\"\n";
        assert_eq!(key_line(text, "listen"), Some(3));
        assert_eq!(key_line(text, "users"), None);
    }

    #[test]
    fn line_of_counts_newlines_before_the_offset() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }

    // Issue 12: check-config reports the retention and the disk it needs at the journal's rate.
    #[test]
    fn retention_is_reported_with_the_disk_it_needs_at_the_journal_rate() {
        use crate::store::journal::{Journal, Options, Retention};
        let dir = tempfile::tempdir().unwrap();
        let options = Options::new(
            10,
            Retention {
                age: std::time::Duration::from_secs(7 * 86_400),
                bytes: 1 << 30,
            },
        );
        let (mut j, _) = Journal::open(dir.path(), &options, Some(1)).unwrap();
        // 3,601 entries of about 1 KiB, one a second: about 3.5 MiB an hour.
        let base: i64 = 1_700_000_000;
        let records: Vec<_> = (1..=3601u64)
            .map(|id| {
                let json = format!(
                    "{{\"id\":{id},\"ts\":{}.000,\"pad\":\"{}\"}}",
                    base + id as i64 - 1,
                    "x".repeat(1000)
                );
                crate::store::record(id, json.into())
            })
            .collect();
        j.append(&records).unwrap();
        drop(j);
        let settings = Settings {
            state_dir: Some(dir.path().to_owned()),
            retention_bytes: Some("100MiB".into()),
            ..Settings::default()
        };
        let report = check(&settings);
        let found = report
            .findings
            .iter()
            .find(|f| f.message.starts_with("journal retention"))
            .expect("a retention finding");
        // 7 d at ~86 MiB/day is ~600 MiB: over 100 MiB, so the size limit applies first.
        assert!(found.message.contains("7.0 d or 100.0 MiB"), "{found}");
        assert!(found.message.contains("over 1.0 h"), "{found}");
        assert!(
            found
                .message
                .contains("retention-bytes is reached first, after about 1."),
            "{found}"
        );
    }
}
