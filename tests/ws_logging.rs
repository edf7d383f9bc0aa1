//! No WebSocket token (nor any query string, which carries it) reaches the logs (CONTRACT §5,
//! RELIABILITY 43): every tracing event of the process at TRACE level, warp's and hyper's included,
//! is captured across accepted, refused and reused connections and searched for the tokens.
mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs() {
    let capture = Capture::install_global();

    let server = Server::start(TestConfig::new(&["--max-connections", "1"])).await;
    server.publish(1..=3, 3);
    let mut tokens = Vec::new();

    // Accepted, then the same token reused.
    let used = server.token();
    tokens.push(used.clone());
    let mut ws = server.connect(&format!("token={used}&backlog=3")).await;
    assert_eq!(read_ids(&mut ws, 3).await, vec![1, 2, 3]);
    // Refused by the cap while the first one streams (the token stays unused).
    let capped = server.token();
    tokens.push(capped.clone());
    let mut refused = server.connect(&format!("token={capped}")).await;
    assert_eq!(expect_close(&mut refused).await.0, 1013);
    assert!(matches!(close_handshake(&mut ws).await, Event::Close(..)));
    drop(ws);
    tokio::time::timeout(WAIT, async {
        while server.state.connections.total() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("slot freed");
    let mut reused = server.connect(&format!("token={used}")).await;
    assert_eq!(expect_close(&mut reused).await.0, 4003);
    // Unknown token, bad since, refused Origin.
    let forged = "forged-token-value-0123456789abcdefghijklmno".to_owned();
    tokens.push(forged.clone());
    let mut ws = server.connect(&format!("token={forged}")).await;
    assert_eq!(expect_close(&mut ws).await.0, 4003);
    let bad_since = server.token();
    tokens.push(bad_since.clone());
    let mut ws = server.connect(&format!("token={bad_since}&since=x")).await;
    assert_eq!(expect_close(&mut ws).await.0, 1008);
    let cross = server.token();
    tokens.push(cross.clone());
    let refused = try_connect(
        &server.ws_url(&format!("token={cross}")),
        &[("origin", "http://evil.example")],
    )
    .await;
    assert!(refused.is_err());
    server.stop().await;

    let logs = capture.text();
    // The capture works: refusals were logged, with the peer address.
    assert!(logs.contains("Origin not allowed"), "{logs}");
    assert!(logs.contains("connection cap reached"), "{logs}");
    assert!(logs.contains("127.0.0.1"), "{logs}");
    assert!(
        !logs.contains("token="),
        "a query string was logged:\n{logs}"
    );
    for token in &tokens {
        assert!(
            !logs.contains(token.as_str()),
            "{token:?} leaked into the logs:\n{logs}"
        );
    }
}
