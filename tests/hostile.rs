//! Hostile clients against the real binary (CONTRACT §11, RELIABILITY 63-71): each test starts
//! `proxytail` as a child process with the shipped defaults (only what the attack needs is set) and
//! attacks it the way issue 9 did. Every wait is bounded; every load loop is bounded by count.
mod common;

use common::process::{LogTail, Proc};
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A scratch directory with an empty access log, a state directory and a users file.
struct Scratch {
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("access.log");
        std::fs::write(&log, "").expect("log");
        std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
        Scratch { dir, log }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The daemon's arguments: loopback port 0, this log and state directory, plus `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--access-log".into(),
            self.log.display().to_string(),
            "--state-dir".into(),
            self.path("state").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// A users file in `dir` with `users` hashed with the shipped default Argon2 parameters.
fn default_cost_users(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let mut text = String::new();
    for (name, password) in users {
        let hash = proxytail::auth::users::hash_password(password).expect("hash");
        text.push_str(&format!("{name}:{hash}\n"));
    }
    let path = dir.join("users");
    std::fs::write(&path, text).expect("users file");
    path
}

/// A field of /proc/PID/status in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// RELIABILITY 63: 40 wrong and 40 right sign-ins with the default Argon2 parameters, sequential
/// then 8 at a time; the peak RSS (the kernel's high-water mark) stays within 64 MB, with no
/// MALLOC_* setting in the daemon's environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_do_not_grow_memory() {
    const LIMIT_KB: u64 = 64 * 1000;
    let scratch = Scratch::new();
    let users = default_cost_users(scratch.dir.path(), &[(USER, PASSWORD)]);
    // Each attempt claims its own address so the brute-force lockout stays out of the way.
    let args = scratch.args(&[
        "--users",
        users.to_str().expect("path"),
        "--trust-forwarded-for",
    ]);
    assert!(
        std::env::vars().all(|(k, _)| !k.starts_with("MALLOC_")),
        "the test environment must not tune the allocator"
    );
    let daemon = Proc::start(&args, &LogTail::default(), WAIT);
    let pid = daemon.pid();
    eprintln!("sign-ins: RSS at start {} kB", status_kb(pid, "VmRSS"));
    let right = basic(USER, PASSWORD);
    let wrong = basic(USER, "wrong");
    let attempt = |i: usize| {
        let (addr, right, wrong) = (daemon.addr, right.clone(), wrong.clone());
        async move {
            let good = i % 2 == 0;
            let ip = format!("10.0.{}.{}", i / 256, i % 256);
            let auth = if good { right } else { wrong };
            let r = get_within(
                addr,
                "/api/ws-token",
                &[("authorization", &auth), ("x-forwarded-for", &ip)],
                Duration::from_secs(30),
            )
            .await;
            assert_eq!(r.status, if good { 200 } else { 401 }, "{r:?}");
        }
    };
    for i in 0..80 {
        attempt(i).await;
        let rss = status_kb(pid, "VmRSS");
        assert!(
            rss <= LIMIT_KB,
            "RSS {rss} kB after {} sequential sign-ins",
            i + 1
        );
    }
    for round in 0..10 {
        let tasks: Vec<_> = (0..8)
            .map(|k| tokio::spawn(attempt(1000 + round * 8 + k)))
            .collect();
        for t in tasks {
            t.await.expect("attempt task");
        }
        let rss = status_kb(pid, "VmRSS");
        assert!(
            rss <= LIMIT_KB,
            "RSS {rss} kB after round {round} of 8 at a time"
        );
    }
    let peak = status_kb(pid, "VmHWM");
    eprintln!(
        "sign-ins: RSS peak {peak} kB, now {} kB",
        status_kb(pid, "VmRSS")
    );
    assert!(peak <= LIMIT_KB, "peak RSS {peak} kB");
}
