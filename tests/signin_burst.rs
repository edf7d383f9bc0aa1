//! Sign-in bursts at the DEFAULT Argon2 parameters over real HTTP (issue 14): 100 simultaneous Basic
//! sign-ins, each from its own 127.0.0.x address, all get tokens — they wait in the verification
//! queue rather than being refused — and a sign-in beyond the queue gets 503 with a `Retry-After`.
//! How long the burst takes is measured by `examples/e2e_load.rs --sign-in basic` (BENCHMARKS.md),
//! not asserted here.
mod auth_support;

use auth_support::*;
use proxytail::auth::users::{hash_password, hash_password_with};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATH: &str = "/api/ws-token";

/// A users file with `users` users whose password is `right`, hashed with the default parameters
/// (as `proxytail user add` writes it).
fn default_cost_users(dir: &std::path::Path, users: usize) -> std::path::PathBuf {
    let hash = hash_password("right").expect("hash");
    let mut text = String::new();
    for u in 0..users {
        text.push_str(&format!("user{u}:{hash}\n"));
    }
    let path = dir.join("users");
    std::fs::write(&path, text).expect("users file");
    path
}

/// `GET /api/ws-token` with `authorization` over a connection from `source`, within [`IO_BOUND`].
async fn sign_in_from(addr: SocketAddr, source: IpAddr, authorization: &str) -> Reply {
    let request = request_bytes(addr, PATH, &[("Authorization", authorization)]);
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(source, 0)).expect("bind");
        let mut stream = socket.connect(addr).await.expect("connect");
        stream.write_all(&request).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(IO_BOUND, exchange)
        .await
        .expect("an answer within the bound");
    parse_response(&raw)
}

/// Client `i`'s own loopback address: 127.0.0.2 onwards (i < 250).
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_simultaneous_sign_ins_all_get_tokens() {
    let dir = tempfile::tempdir().unwrap();
    // Two users of 50 sign-ins each: the per-user token quota (100) is not what this test is about.
    let users = default_cost_users(dir.path(), 2);
    let srv = serve(config(&["--users", users.to_str().unwrap()])).await;
    let verifier = srv.state.auth.verifier();
    assert!(
        verifier.admit_limit() >= 100,
        "the default queue must hold a burst of 100 (admit limit {})",
        verifier.admit_limit()
    );
    let mut tasks = Vec::new();
    for i in 0..100 {
        let authorization = basic(&format!("user{}", i % 2), "right");
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            sign_in_from(addr, source(i), &authorization).await
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "sign-in {i}: {reply:?}");
        assert_common_headers(&reply);
        let token = reply.json()["token"].as_str().expect("a token").to_owned();
        tokens.insert(token);
    }
    assert_eq!(tokens.len(), 100, "every sign-in got a token of its own");
    // Each was a real default-cost verification, at most `permits` at a time.
    assert_eq!(verifier.started(), 100);
    assert!(verifier.max_in_flight() <= verifier.permits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_beyond_the_queue_gets_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    // A slow hash (64 MiB, 8 passes), so the extra sign-in surely arrives while the others hash.
    let hash = hash_password_with("right", &hash_params(64 * 1024, 8)).unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("user0:{hash}\n")).unwrap();
    // No queue at all: only the sign-ins that hash now are admitted.
    let srv = serve(config(&[
        "--users",
        users.to_str().unwrap(),
        "--sign-in-queue",
        "0",
    ]))
    .await;
    let verifier = srv.state.auth.verifier();
    let permits = verifier.permits();
    assert_eq!(verifier.admit_limit(), permits);
    let right = basic("user0", "right");
    // Fill every permit, then ask once more while they all hash.
    let mut in_flight = verifier.watch_in_flight();
    let mut admitted = Vec::new();
    for i in 0..permits {
        let (addr, right) = (srv.addr, right.clone());
        admitted.push(tokio::spawn(async move {
            sign_in_from(addr, source(i), &right).await
        }));
    }
    tokio::time::timeout(IO_BOUND, in_flight.wait_for(|n| *n == permits))
        .await
        .expect("every permit in use")
        .unwrap();
    let extra = sign_in_from(srv.addr, source(permits), &right).await;
    assert_eq!(extra.status, 503, "{extra:?}");
    assert_common_headers(&extra);
    assert_eq!(extra.json()["status"], "error");
    let wait: u64 = extra
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    for task in admitted {
        assert_eq!(task.await.unwrap().status, 200);
    }
    // The 503 cost no hash.
    assert_eq!(verifier.started(), permits as u64);
}
