//! systemd's notification protocol (`sd_notify(3)`), hand-written: one datagram per message to the
//! socket named by `NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).
//!
//! The daemon says `READY=1` once it is ready (journal recovered, sources positioned, listener
//! bound), `STATUS=` with the last id and the subscriber count, `WATCHDOG=1` from the tailing loop
//! itself (so a stuck tailer stops the keep-alives and systemd restarts the service), and
//! `STOPPING=1` when it shuts down. Without `NOTIFY_SOCKET` (not under systemd, or `Type=simple`)
//! every call does nothing. A failed send is logged once and never fatal: the service manager, not
//! the daemon, decides what a missing notification means.
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection to the service manager's notification socket.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// The socket and its address; `None` when not started by a service manager.
    target: Option<Arc<Target>>,
}

/// Where notifications go.
#[derive(Debug)]
struct Target {
    /// An unbound datagram socket, reused for every message.
    socket: UnixDatagram,
    /// `NOTIFY_SOCKET` resolved (path or abstract name).
    addr: SocketAddr,
    /// A send already failed and was logged (later failures are not, to keep the log readable).
    warned: AtomicBool,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; a notifier that does nothing when it is unset or unusable.
    pub fn from_env() -> Notifier {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::default();
        };
        match open(&name.to_string_lossy()) {
            Ok(target) => Notifier {
                target: Some(Arc::new(target)),
            },
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET unusable; systemd will not hear from the daemon");
                Notifier::default()
            }
        }
    }

    /// True when notifications go somewhere.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `message` (newline-separated `KEY=value` assignments).
    pub fn send(&self, message: &str) {
        let Some(t) = &self.target else { return };
        if let Err(e) = t.socket.send_to_addr(message.as_bytes(), &t.addr) {
            if !t.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "notification to systemd failed");
            }
        }
    }

    /// `READY=1` plus a first status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }
}

fn open(name: &str) -> io::Result<Target> {
    let addr = if let Some(abstract_name) = name.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(abstract_name.as_bytes())?
    } else if name.starts_with('/') {
        SocketAddr::from_pathname(name)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name",
        ));
    };
    Ok(Target {
        socket: UnixDatagram::unbound()?,
        addr,
        warned: AtomicBool::new(false),
    })
}

/// Keep-alives for `WatchdogSec=`: [`Watchdog::due`] says when the next one is owed. The tailing
/// loop calls [`Watchdog::kick`] on every turn (also between chunks of a long burst), so a busy
/// tailer keeps pinging and only one that stops turning (stuck, deadlocked, SIGSTOPped) goes quiet.
#[derive(Debug)]
pub struct Watchdog {
    /// Where the keep-alives go.
    notifier: Notifier,
    /// Half the watchdog timeout (systemd's advice), or a plain status period without one.
    every: Duration,
    /// Whether `WATCHDOG=1` is owed at all (else only `STATUS=` is refreshed).
    watchdog: bool,
    /// When the last message went out.
    last: Instant,
}

/// How often `STATUS=` is refreshed when no watchdog is configured.
const STATUS_EVERY: Duration = Duration::from_secs(5);

impl Watchdog {
    /// From `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must name this process when set). `None`
    /// when the notifier does nothing.
    pub fn from_env(notifier: &Notifier) -> Option<Watchdog> {
        if !notifier.enabled() {
            return None;
        }
        let timeout = watchdog_timeout();
        Some(Watchdog {
            notifier: notifier.clone(),
            every: timeout.map_or(STATUS_EVERY, |t| t / 2),
            watchdog: timeout.is_some(),
            last: Instant::now(),
        })
    }

    /// When the next message is owed.
    pub fn due(&self) -> Instant {
        self.last + self.every
    }

    /// Sends `WATCHDOG=1` (when configured) and `STATUS=status()` if one is owed.
    pub fn kick(&mut self, status: impl FnOnce() -> String) {
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let status = status();
        if self.watchdog {
            self.notifier.send(&format!("WATCHDOG=1\nSTATUS={status}"));
        } else {
            self.notifier.send(&format!("STATUS={status}"));
        }
    }
}

/// The watchdog timeout systemd set for this process (`WATCHDOG_USEC`), if any.
pub fn watchdog_timeout() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The `STATUS=` text: what an operator sees in `systemctl status`.
pub fn status_line(last_id: u64, subscribers: u64) -> String {
    format!("last id {last_id}, {subscribers} subscriber(s)")
}
