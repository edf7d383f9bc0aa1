//! Signals on the real binary: SIGHUP reloads the users file without dropping a subscriber (a
//! changed view applies to new subscriptions only), and SIGTERM closes subscribers with 1001 and
//! exits 0.
mod common;

use common::process::{daemon_args, LogTail, Proc};
use common::*;
use futures_util::StreamExt;
use std::io::Write;

use tokio_tungstenite::tungstenite::Message;

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
    let args: Vec<String> = [
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--access-log".as_ref(),
        log.as_os_str(),
        "--users".as_ref(),
        users.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--from-start".as_ref(),
    ]
    .iter()
    .map(|a: &&std::ffi::OsStr| a.to_string_lossy().into_owned())
    .collect();
    let mut daemon = Proc::start(&args, &LogTail::default(), WAIT);
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
    daemon.await_line("reloaded users and keys", WAIT);

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
    let status = daemon.wait_exit(WAIT);
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_changed_view_to_new_subscriptions_and_keeps_open_ones() {
    // README "Views": an open subscription keeps the view it was opened with; the next token gets
    // the reloaded one.
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("users");
    let hash = cheap_hash(PASSWORD);
    std::fs::write(&users, format!("{USER}:{hash}:method:GET\n")).expect("users");
    let log = dir.path().join("access.log");
    let state = dir.path().join("state");
    // Odd lines GET, even lines POST.
    let append_lines = |from: u64, to: u64| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        for seq in from..=to {
            let method = if seq % 2 == 1 { "GET" } else { "POST" };
            writeln!(
                f,
                "1795835993.065      2 ::1 TCP_MISS/200 353 {method} http://h/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain"
            )
            .expect("append");
        }
    };
    append_lines(1, 4);
    let args = daemon_args(&log, &users, &state, &["--from-start"]);
    let mut daemon = Proc::start(&args, &LogTail::default(), WAIT);
    let addr = daemon.addr;
    let url = |token: &str| format!("ws://{addr}/api/ws/logs?token={token}&since=0");
    let mut old = connect(&url(&fetch_token(addr).await)).await;
    assert_eq!(read_ids(&mut old, 2).await, vec![1, 3]);

    std::fs::write(&users, format!("{USER}:{hash}:method:POST\n")).expect("users");
    daemon.signal("-HUP");
    daemon.await_line("reloaded users and keys", WAIT);
    let mut new = connect(&url(&fetch_token(addr).await)).await;
    assert_eq!(read_ids(&mut new, 2).await, vec![2, 4]);
    append_lines(5, 8);
    assert_eq!(
        read_ids(&mut old, 2).await,
        vec![5, 7],
        "the open one keeps its view"
    );
    assert_eq!(read_ids(&mut new, 2).await, vec![6, 8]);

    // A broken view refuses the reload (file and line named); the last good users stay.
    std::fs::write(&users, format!("# x\n{USER}:{hash}:stauts:500\n")).expect("users");
    daemon.signal("-HUP");
    let refused = daemon.await_line("reload failed", WAIT);
    assert!(
        refused.contains("line 2") && refused.contains("stauts"),
        "{refused}"
    );
    let mut after = connect(&url(&fetch_token(addr).await)).await;
    assert_eq!(read_ids(&mut after, 4).await, vec![2, 4, 6, 8]);
    assert!(daemon.terminate(WAIT).success());
}
