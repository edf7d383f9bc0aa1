//! The Argon2 concurrency cap over real HTTP (RELIABILITY 37, 38): a flood of wrong passwords never
//! runs more than N verifications at once, the surplus gets 503 with `Retry-After`, requests that
//! need no hashing still answer, and a client that disconnects mid-verification does not free its
//! permit early.
mod auth_support;

use auth_support::*;
use proxytail::auth::throttle::ThrottleLimits;
use proxytail::auth::users::hash_password_with;
use proxytail::auth::verify::Verifier;
use proxytail::auth::Authenticator;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const PATH: &str = "/api/ws-token";

/// A server whose single user has a hash of `m_kib`/`t` cost, a cap of `permits` with `queue`
/// waiting, and X-Forwarded-For trusted (each request claims its own address, so the brute-force
/// throttle stays out of the way).
async fn server(
    m_kib: u32,
    t: u32,
    permits: usize,
    queue: usize,
) -> (TestServer, tempfile::TempDir) {
    let params = hash_params(m_kib, t);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let hash = hash_password_with("right", &params).unwrap();
    std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
    let config = config(&["--users", path.to_str().unwrap(), "--trust-forwarded-for"]);
    let auth = Authenticator::load_with(
        &config,
        Verifier::new(permits, queue),
        ThrottleLimits::default(),
    )
    .unwrap();
    (serve_with(config, auth).await, dir)
}

fn xff(i: usize) -> String {
    format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)
}

/// A token request with `authorization` claiming address [`xff`]`(i)`, on its own task.
fn spawn_attempt(
    addr: std::net::SocketAddr,
    authorization: &str,
    i: usize,
) -> tokio::task::JoinHandle<Reply> {
    let authorization = authorization.to_owned();
    tokio::spawn(async move {
        let ip = xff(i);
        get(
            addr,
            PATH,
            &[("Authorization", &authorization), ("X-Forwarded-For", &ip)],
        )
        .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_wrong_passwords_is_capped_and_surplus_told_to_retry() {
    let (srv, _dir) = server(32 * 1024, 3, 2, 4).await;
    let wrong = basic("alice", "wrong");
    let mut tasks = Vec::new();
    for i in 0..200 {
        tasks.push(spawn_attempt(srv.addr, &wrong, i));
    }
    // While the flood is on, a request that needs no hashing still answers promptly.
    let quick = tokio::time::timeout(
        Duration::from_secs(10),
        get(srv.addr, PATH, &[("X-Forwarded-For", "10.200.0.1")]),
    )
    .await
    .expect("a no-credentials request answers during the flood");
    assert_eq!(quick.status, 401);

    let (mut unauthorized, mut busy) = (0u64, 0u64);
    for task in tasks {
        let reply = task.await.unwrap();
        assert_common_headers(&reply);
        match reply.status {
            401 => unauthorized += 1,
            503 => {
                busy += 1;
                // The estimated wait for the queue ahead: at least 1 s.
                let wait: u64 = reply
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .expect("a numeric Retry-After");
                assert!((1..=60).contains(&wait), "{reply:?}");
                assert_eq!(reply.json()["status"], "error");
            }
            other => panic!("unexpected status {other}: {reply:?}"),
        }
    }
    let verifier = srv.state.auth.verifier();
    eprintln!(
        "401: {unauthorized}, 503: {busy}, max in flight {}",
        verifier.max_in_flight()
    );
    assert!(
        verifier.max_in_flight() <= 2,
        "max in flight {}",
        verifier.max_in_flight()
    );
    assert!(verifier.max_in_flight() >= 1);
    assert!(busy > 0, "the surplus was told to retry");
    assert!(unauthorized >= 2, "some were verified");
    // Every 401 of the flood was a real verification; no 503 cost a hash.
    assert_eq!(verifier.started(), unauthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_clients_keep_their_permits_until_hashing_ends() {
    // Slow hashes so that the new requests arrive while the abandoned ones still hash.
    let (srv, _dir) = server(64 * 1024, 4, 2, 2).await;
    let verifier = srv.state.auth.verifier();
    let mut in_flight = verifier.watch_in_flight();
    let wrong = basic("alice", "wrong");

    // Two clients start verifications …
    let mut abandoned = Vec::new();
    for i in 0..2 {
        let mut stream = TcpStream::connect(srv.addr).await.unwrap();
        let ip = xff(i);
        stream
            .write_all(&request_bytes(
                srv.addr,
                PATH,
                &[("Authorization", &wrong), ("X-Forwarded-For", &ip)],
            ))
            .await
            .unwrap();
        abandoned.push(stream);
    }
    tokio::time::timeout(IO_BOUND, in_flight.wait_for(|n| *n == 2))
        .await
        .expect("both verifications start")
        .unwrap();
    // … and go away mid-verification.
    drop(abandoned);

    // Two more arrive at once: they must wait for the abandoned hashes, not run beside them.
    let mut later = Vec::new();
    for i in 2..4 {
        later.push(spawn_attempt(srv.addr, &wrong, i));
    }
    for task in later {
        assert_eq!(task.await.unwrap().status, 401);
    }
    tokio::time::timeout(IO_BOUND, in_flight.wait_for(|n| *n == 0))
        .await
        .expect("all verifications end")
        .unwrap();
    assert_eq!(
        verifier.started(),
        4,
        "the abandoned verifications ran to the end"
    );
    assert!(
        verifier.max_in_flight() <= 2,
        "max in flight {}",
        verifier.max_in_flight()
    );
}
