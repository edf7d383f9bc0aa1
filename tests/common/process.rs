//! The real `proxytail` binary as a child process: its listen address read from its own start-up
//! log line, its stderr kept for awaiting log events and for failure messages, signals sent with
//! `kill(1)`, and every wait bounded.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines of stderr kept for failure messages, shared across restarts of one test.
pub type LogTail = Arc<Mutex<VecDeque<String>>>;

/// How many stderr lines a [`LogTail`] keeps.
const KEPT: usize = 400;

/// A running daemon.
pub struct Proc {
    /// The child; replaced by a finished stand-in once waited for.
    child: Child,
    /// Where it listens (from its `proxytail listening local=…` line).
    pub addr: SocketAddr,
    /// Every stderr line, in order, to await log events.
    lines: mpsc::Receiver<String>,
    /// The last stderr lines, for failure messages.
    pub log: LogTail,
}

impl Proc {
    /// Starts the binary with `args` (which should include `--listen 127.0.0.1:0`) and waits,
    /// within `bound`, for it to report its address. Its stderr also goes to `log`.
    pub fn start(args: &[String], log: &LogTail, bound: Duration) -> Proc {
        Proc::spawn(&[], args, &[], log, bound)
    }

    /// [`Proc::start`] with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
    pub fn start_env(
        args: &[String],
        env: &[(&str, &std::ffi::OsStr)],
        log: &LogTail,
        bound: Duration,
    ) -> Proc {
        Proc::spawn(&[], args, env, log, bound)
    }

    /// Like [`Proc::start`], run through `wrapper` (a command that execs the rest of its argv, e.g.
    /// `["prlimit", "--nofile=1024:1024", "--"]`), so the daemon's PID is still the child's.
    pub fn start_under(wrapper: &[&str], args: &[String], log: &LogTail, bound: Duration) -> Proc {
        Proc::spawn(wrapper, args, &[], log, bound)
    }

    fn spawn(
        wrapper: &[&str],
        args: &[String],
        env: &[(&str, &std::ffi::OsStr)],
        log: &LogTail,
        bound: Duration,
    ) -> Proc {
        // PROXYTAIL_TEST_BIN runs the same tests against another build (a release binary for the
        // fleet test at the 10,000 lines/s per edge, which debug builds cannot sustain).
        let binary = std::env::var_os("PROXYTAIL_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_proxytail").into());
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&binary);
                c
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .env("PROXYTAIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn proxytail");
        let (tx, lines) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let keep = log.clone();
        std::thread::spawn(move || {
            // Keeps draining so the daemon never blocks on a full pipe.
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
                kept.push_back(line.clone());
                if kept.len() > KEPT {
                    kept.pop_front();
                }
                drop(kept);
                let _ = tx.send(line);
            }
        });
        let unbound: SocketAddr = "127.0.0.1:1".parse().expect("address");
        let mut p = Proc {
            child,
            addr: unbound,
            lines,
            log: log.clone(),
        };
        let line = p.await_line("proxytail listening", bound);
        let addr = line
            .split("local=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("local= in the listening line");
        p.addr = addr.parse().expect("listen address");
        p
    }

    /// The daemon's process id (for /proc/PID/…).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (within `bound`) for a stderr line containing `needle`.
    pub fn await_line(&mut self, needle: &str, bound: Duration) -> String {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!(
                    "no log line with {needle:?} within {bound:?} ({e}):\n{}",
                    tail_of(&self.log)
                ),
            }
        }
    }

    /// Sends `signal` (`-HUP`, `-TERM`, …) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(sent.success(), "kill {signal} failed");
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Waits (within `bound`) for the process to exit and returns its status.
    pub fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        // `Child::wait` has no bound: wait on a thread and bound the wait for its answer.
        let stand_in = Command::new("true").spawn().expect("spawn true");
        let mut child = std::mem::replace(&mut self.child, stand_in);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(bound) {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!("still running after {bound:?}:\n{}", tail_of(&self.log)),
        }
    }

    /// SIGTERM, then the exit status (within `bound`).
    pub fn terminate(&mut self, bound: Duration) -> ExitStatus {
        self.signal("-TERM");
        self.wait_exit(bound)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kept stderr lines, without the per-request token lines.
pub fn tail_of(log: &LogTail) -> String {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.iter()
        .filter(|l| !l.contains("issued a WebSocket token"))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// The daemon's usual command line in a test: loopback port 0, this access log, users file and
/// state directory, then `extra`.
pub fn daemon_args(
    log: &std::path::Path,
    users: &std::path::Path,
    state: &std::path::Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--access-log".into(),
        log.display().to_string(),
        "--users".into(),
        users.display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}
