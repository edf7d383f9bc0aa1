//! The gate in front of the stream: token checks (4001/4003, expiry, single use under a race),
//! the Origin check (403 before the upgrade) and the connection caps (1013 after it).
mod common;

use common::*;
use futures_util::future::join_all;
use futures_util::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn no_token_or_empty_token_closes_4001_before_any_entry() {
    let server = Server::start(TestConfig::new(&[])).await;
    server.publish(1..=5, 5);
    for query in ["", "token=", "since=0&backlog=3"] {
        let mut ws = server.connect(query).await;
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(
            (code, reason.as_str()),
            (4001, "Token not provided"),
            "{query}"
        );
    }
}

#[tokio::test]
async fn random_token_closes_4003() {
    let server = Server::start(TestConfig::new(&[])).await;
    server.publish(1..=5, 5);
    let mut ws = server
        .connect("token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&backlog=5")
        .await;
    assert_eq!(
        expect_close(&mut ws).await,
        (4003, "Token invalid, expired, or already used".to_owned())
    );
}

#[tokio::test]
async fn token_is_valid_until_its_ttl_and_refused_after() {
    let server = Server::start(TestConfig::new(&[])).await;
    let ttl = server.state.config.token_ttl;
    let fresh = server.token();
    let stale = server.token();
    // Move the daemon's clock (same runtime) forward instead of waiting for real.
    tokio::time::pause();
    tokio::time::advance(ttl - Duration::from_secs(1)).await;
    tokio::time::resume();
    let mut ws = server.connect(&format!("token={fresh}")).await;
    assert_quiet(&mut ws).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume();
    let mut ws = server.connect(&format!("token={stale}")).await;
    assert_eq!(expect_close(&mut ws).await.0, 4003);
}

#[tokio::test]
async fn token_reused_after_the_session_ended_closes_4003() {
    let server = Server::start(TestConfig::new(&[])).await;
    let token = server.token();
    let mut first = server.connect(&format!("token={token}")).await;
    assert_quiet(&mut first).await;
    // Full closing handshake: our Close, the server's answer.
    let answer = close_handshake(&mut first).await;
    assert!(matches!(answer, Event::Close(1000, _)), "{answer:?}");
    let mut again = server.connect(&format!("token={token}")).await;
    assert_eq!(expect_close(&mut again).await.0, 4003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_racing_connections_with_one_token_exactly_one_streams() {
    let server = Server::start(TestConfig::new(&[])).await;
    for round in 0..5 {
        let token = server.token();
        let url = server.ws_url(&format!("token={token}"));
        let clients = join_all((0..16).map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut ws = connect(&url).await;
                // A refused client may already be closed: the send may fail, the Close is still read.
                let _ = ws.send(Message::text("ping")).await;
                match next_event(&mut ws).await {
                    Event::Text(t) if t == "pong" => true,
                    Event::Close(4003, _) => false,
                    other => panic!("unexpected {other:?}"),
                }
            })
        }))
        .await;
        let streaming = clients
            .into_iter()
            .map(|r| r.expect("client task"))
            .filter(|&s| s)
            .count();
        assert_eq!(streaming, 1, "round {round}");
    }
}

#[tokio::test]
async fn foreign_origin_is_refused_with_403_before_the_upgrade() {
    let mut files = TestConfig::new(&[]);
    files.config.allowed_origins = vec!["https://dash.example.com".to_owned()];
    let server = Server::start(files).await;
    let url = server.ws_url(&format!("token={}", server.token()));
    match try_connect(&url, &[("origin", "http://evil.example")]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 403),
        Err(other) => panic!("expected HTTP 403, got {other}"),
        Ok(_) => panic!("a foreign Origin was upgraded"),
    }
    // The refused request consumed nothing: the same token still streams from an allowed origin.
    let mut ws = try_connect(&url, &[("origin", "https://dash.example.com")])
        .await
        .expect("listed origin");
    assert_quiet(&mut ws).await;
    let own = format!("http://{}", server.addr);
    let url = server.ws_url(&format!("token={}", server.token()));
    let mut ws = try_connect(&url, &[("origin", own.as_str())])
        .await
        .expect("own origin");
    assert_quiet(&mut ws).await;
}

/// Waits (bounded) until the server holds `n` connection slots.
async fn slots_settle(server: &Server, n: usize) {
    tokio::time::timeout(WAIT, async {
        while server.state.connections.total() != n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("connection slots settle");
}

#[tokio::test]
async fn global_cap_refuses_with_1013_keeps_the_token_and_spares_existing_connections() {
    let server = Server::start(TestConfig::new(&["--max-connections", "2"])).await;
    let mut a = server.subscribe("").await;
    let mut b = server.subscribe("").await;
    assert_quiet(&mut a).await;
    assert_quiet(&mut b).await;
    let token = server.token();
    let mut refused = server.connect(&format!("token={token}")).await;
    assert_eq!(
        expect_close(&mut refused).await,
        (1013, "Too many connections; try again later".to_owned())
    );
    assert_quiet(&mut a).await;
    assert_quiet(&mut b).await;
    // A slot frees up: the refused client retries with the same token.
    let answer = close_handshake(&mut a).await;
    assert!(matches!(answer, Event::Close(1000, _)), "{answer:?}");
    slots_settle(&server, 1).await;
    let mut retry = server.connect(&format!("token={token}")).await;
    assert_quiet(&mut retry).await;
}

#[tokio::test]
async fn per_address_cap_counts_the_forwarded_address_when_trusted() {
    let server = Server::start(TestConfig::new(&[
        "--max-connections-per-ip",
        "1",
        "--trust-forwarded-for",
    ]))
    .await;
    let url = |s: &Server| s.ws_url(&format!("token={}", s.token()));
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let mut one = try_connect(&url(&server), &from("10.0.0.1")).await.unwrap();
    assert_quiet(&mut one).await;
    let mut same = try_connect(&url(&server), &from("192.0.2.9, 10.0.0.1"))
        .await
        .unwrap();
    assert_eq!(expect_close(&mut same).await.0, 1013);
    let mut other = try_connect(&url(&server), &from("10.0.0.2")).await.unwrap();
    assert_quiet(&mut other).await;
    assert_quiet(&mut one).await;
}

#[tokio::test]
async fn per_address_cap_uses_the_peer_without_trust() {
    let server = Server::start(TestConfig::new(&["--max-connections-per-ip", "1"])).await;
    let url = |s: &Server| s.ws_url(&format!("token={}", s.token()));
    let mut one = try_connect(&url(&server), &[("x-forwarded-for", "10.0.0.1")])
        .await
        .unwrap();
    assert_quiet(&mut one).await;
    let mut two = try_connect(&url(&server), &[("x-forwarded-for", "10.0.0.2")])
        .await
        .unwrap();
    assert_eq!(expect_close(&mut two).await.0, 1013);
}
