//! Signals on the real binary: SIGHUP reloads the users file without dropping a subscriber, and
//! SIGTERM closes subscribers with 1001 and exits 0.
mod common;

use common::*;
use futures_util::StreamExt;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use tokio_tungstenite::tungstenite::Message;

/// The real daemon; every stderr line goes to `lines` so a test can await a log event.
struct Proc {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_proxytail"))
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .env("PROXYTAIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn proxytail");
        let (tx, lines) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut p = Proc {
            child,
            addr: "127.0.0.1:1".parse().expect("addr"),
            lines,
        };
        let line = p.await_line("proxytail listening");
        let addr = line
            .split("local=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("local=");
        p.addr = addr.parse().expect("listen address");
        p
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    fn await_line(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no log line with {needle:?} within {WAIT:?}: {e}"),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &std::path::Path, seq: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log");
    writeln!(
        f,
        "1795835993.065      2 ::1 TCP_MISS/200 353 GET http://h/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain"
    )
    .expect("append");
}

async fn next_id(ws: &mut Client) -> u64 {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an entry within the bound")
        {
            Some(Ok(Message::Text(t))) => return entry_id(&t),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected an entry, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_users_without_dropping_subscribers_and_sigterm_closes_1001_exit_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = write_users(dir.path());
    let log = dir.path().join("access.log");
    let state = dir.path().join("state");
    append(&log, 1);
    let mut daemon = Proc::start(&[
        "--access-log",
        log.to_str().expect("utf-8"),
        "--users",
        users.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--from-start",
    ]);
    let token = fetch_token(daemon.addr).await;
    let mut ws = connect(&format!(
        "ws://{}/api/ws/logs?token={token}&since=0",
        daemon.addr
    ))
    .await;
    assert_eq!(next_id(&mut ws).await, 1);

    // `bob` is not a user yet: 401.
    let bob = "Basic Ym9iOmJvYnMgcGFzc3dvcmQ="; // bob:bobs password
    let before = http_get(daemon.addr, "/api/ws-token", &[("authorization", bob)]).await;
    assert_eq!(before.status, 401);

    // Add bob (same cheap parameters), SIGHUP, await the daemon's own word that it reloaded.
    let params = proxytail::auth::users::HashParams {
        algorithm: argon2::Algorithm::Argon2id,
        version: argon2::Version::V0x13,
        params: argon2::Params::new(1024, 1, 1, None).expect("params"),
    };
    let hash = proxytail::auth::users::hash_password_with("bobs password", &params).expect("hash");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&users)
        .expect("users");
    writeln!(f, "bob:{hash}").expect("append user");
    daemon.signal("-HUP");
    daemon.await_line("reloaded users and keys");

    let after = http_get(daemon.addr, "/api/ws-token", &[("authorization", bob)]).await;
    assert_eq!(
        after.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&after.body)
    );
    // The subscriber connected before the reload still streams.
    append(&log, 2);
    assert_eq!(next_id(&mut ws).await, 2);

    daemon.signal("-TERM");
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1001, "going away"));
    let mut child = std::mem::replace(
        &mut daemon.child,
        Command::new("true").spawn().expect("true"),
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(WAIT)
        .expect("exits within the bound")
        .expect("wait");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
