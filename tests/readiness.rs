//! Readiness and systemd's notification protocol on the real binary (CONTRACT section 9,
//! RELIABILITY 83's in-process half): `READY=1` only once the journal is recovered, the sources
//! positioned and the listener bound, so a line appended right after it (or right after the port
//! first accepts) is sent; `STATUS=` carries the last id and the subscriber count; `WATCHDOG=1`
//! keeps coming at half of `WATCHDOG_USEC` while the daemon is busy; `STOPPING=1` on SIGTERM.
mod common;

use common::process::{LogTail, Proc};
use common::*;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn line(seq: u64) -> String {
    format!("1795835993.065      2 ::1 TCP_MISS/200 353 GET http://h/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain\n")
}

fn append(path: &Path, from: u64, to: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log");
    let text: String = (from..=to).map(line).collect();
    f.write_all(text.as_bytes()).expect("append");
}

fn args(log: &Path, users: &Path, state: &Path, listen: &str) -> Vec<String> {
    [
        "--listen",
        listen,
        "--access-log",
        &log.to_string_lossy(),
        "--users",
        &users.to_string_lossy(),
        "--state-dir",
        &state.to_string_lossy(),
        "--history",
        "200000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Receives datagrams on `sock` into a channel; on the first `READY=1`, first appends line
/// `ready_seq` to `log` (before anyone else hears of readiness).
fn listen_notify(
    sock: UnixDatagram,
    log: std::path::PathBuf,
    ready_seq: u64,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        let mut ready = false;
        while let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !ready && msg.lines().any(|l| l == "READY=1") {
                ready = true;
                append(&log, ready_seq, ready_seq);
            }
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    rx
}

fn await_msg(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(m) if pred(&m) => return m,
            Ok(_) => continue,
            Err(e) => panic!("no {what} notification within {WAIT:?}: {e}"),
        }
    }
}

async fn expect_entry(addr: std::net::SocketAddr, since: u64, seq: u64) {
    let token = fetch_token(addr).await;
    let mut ws = connect(&format!(
        "ws://{addr}/api/ws/logs?token={token}&since={since}"
    ))
    .await;
    let entries = read_entries(&mut ws, 1).await;
    let dest = entries[0]["destination"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(dest, format!("http://h/x/{seq}"), "{}", entries[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_status_and_watchdog_over_notify_socket_and_a_line_appended_at_ready_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = write_users(dir.path());
    let log = dir.path().join("access.log");
    let state = dir.path().join("state");
    // Old content: read from its end (fresh state), so none of it is sent.
    append(&log, 1, 50);
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    let rx = listen_notify(sock, log.clone(), 1000);
    let env = [
        ("NOTIFY_SOCKET", path.as_os_str()),
        ("WATCHDOG_USEC", "200000".as_ref()),
    ];
    let mut daemon = Proc::start_env(
        &args(&log, &users, &state, "127.0.0.1:0"),
        &env,
        &LogTail::default(),
        WAIT,
    );
    let ready = await_msg(&rx, "READY=1", |m| m.lines().any(|l| l == "READY=1"));
    assert!(
        ready.contains("STATUS=last id 0, 0 subscriber(s)"),
        "{ready}"
    );
    // The line the notify thread appended the instant READY=1 arrived: sent, as id 1.
    expect_entry(daemon.addr, 0, 1000).await;
    // Keep-alives keep coming (every 100 ms) while a burst is read, each with the status.
    append(&log, 1001, 21_000);
    for _ in 0..5 {
        let m = await_msg(&rx, "WATCHDOG=1", |m| m.lines().any(|l| l == "WATCHDOG=1"));
        assert!(m.contains("STATUS=last id "), "{m}");
    }
    let last = await_msg(&rx, "STATUS after the whole burst", |m| {
        m.contains("STATUS=last id 20001,")
    });
    assert!(last.contains("WATCHDOG=1"), "{last}");
    let status = daemon.terminate(WAIT);
    assert!(status.success(), "{status:?}");
    await_msg(&rx, "STOPPING=1", |m| m.lines().any(|l| l == "STOPPING=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_refuses_until_ready_so_a_line_appended_at_first_connect_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = write_users(dir.path());
    let state = dir.path().join("state");
    // A long history to recover makes the next start-up take a while: 100 000 journaled entries.
    const OLD: u64 = 100_000;
    let old = dir.path().join("old.log");
    append(&old, 1, OLD);
    let mut first_args = args(&old, &users, &state, "127.0.0.1:0");
    first_args.push("--from-start".into());
    let mut first = Proc::start(&first_args, &LogTail::default(), WAIT);
    expect_entry(first.addr, OLD - 1, OLD).await;
    assert!(first.terminate(WAIT).success());

    // A new log with old content, not in the checkpoint: it is read from its end, as positioned
    // at start. Whoever reaches the port may append at once and must get the line.
    let new = dir.path().join("new.log");
    append(&new, 1, 50);
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("addr").port()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let appender = {
        let new = new.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            // Retry until the port accepts (there is no event for "now listening" but the
            // accept itself); bounded by WAIT.
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
                assert!(Instant::now() < deadline, "port {port} never accepted");
                std::thread::sleep(Duration::from_millis(1));
            }
            append(&new, 5000, 5000);
        })
    };
    let second_args = args(&new, &users, &state, &addr.to_string());
    let second = Proc::start(&second_args, &LogTail::default(), WAIT);
    appender.join().expect("appender");
    expect_entry(second.addr, OLD, 5000).await;
}
