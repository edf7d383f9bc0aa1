//! The stream itself: live entries, `since` and `backlog` replay (no gap, no duplicate at the seam),
//! slow readers continuing from the journal, the 4008 paths, client messages (ping/pong, size and type limits), keep-alive, shutdown, health.
mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use proxytail::http::ws::{IDLE_TIMEOUT, MAX_FRAME, PING_INTERVAL};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn live_stream_sends_only_new_entries_as_the_exact_serialized_json() {
    let server = Server::start(TestConfig::new(&[])).await;
    server.publish(1..=5, 5);
    let mut ws = server.subscribe("").await;
    assert_quiet(&mut ws).await;
    let six = record(6);
    let mut entry = parsers::Entry {
        destination: Some("http://x/\r\n\u{1b}[31m\"quoted\"".into()),
        ..Default::default()
    };
    let tricky = proxytail::hub::Record::new(7, &mut entry);
    server
        .state
        .hub
        .publish(vec![six.clone(), tricky.clone(), record(8)]);
    let texts: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            match next_event(&mut ws).await {
                Event::Text(t) => v.push(t),
                other => panic!("{other:?}"),
            }
        }
        v
    };
    assert_eq!(texts[0], six.text());
    assert_eq!(texts[1], tricky.text());
    let parsed: serde_json::Value = serde_json::from_str(&texts[1]).unwrap();
    assert_eq!(parsed["destination"], "http://x/\r\n\u{1b}[31m\"quoted\"");
    assert_eq!(entry_id(&texts[2]), 8);
    assert_quiet(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_replays_then_goes_live_without_gap_or_duplicate_while_publishing() {
    let server = Server::start(TestConfig::new(&["--history", "100000"])).await;
    server.publish(1..=500, 10);
    let hub = server.state.hub.clone();
    let publisher = tokio::spawn(async move {
        for first in (501..=30_000u64).step_by(3) {
            publish(&hub, first..=(first + 2).min(30_000), 3);
            tokio::task::yield_now().await;
        }
    });
    // Several subscribers join at different points of the flood.
    let mut clients = Vec::new();
    for since in [250u64, 400, 0] {
        clients.push((since, server.subscribe(&format!("&since={since}")).await));
    }
    for (since, mut ws) in clients {
        let ids = read_ids(&mut ws, (30_000 - since) as usize).await;
        let expected: Vec<u64> = (since + 1..=30_000).collect();
        assert!(
            ids == expected,
            "since={since}: ids are not exactly {}..=30000",
            since + 1
        );
        assert_quiet(&mut ws).await;
    }
    publisher.await.unwrap();
}

#[tokio::test]
async fn since_ahead_of_the_last_id_waits_for_those_ids() {
    let server = Server::start(TestConfig::new(&[])).await;
    server.publish(1..=10, 10);
    let mut ws = server.subscribe("&since=15").await;
    assert_quiet(&mut ws).await;
    server.publish(11..=20, 3);
    assert_eq!(read_ids(&mut ws, 5).await, vec![16, 17, 18, 19, 20]);
    assert_quiet(&mut ws).await;
    // The largest id a client can name: it waits (forever), nothing overflows.
    let mut far = server.subscribe(&format!("&since={}", u64::MAX)).await;
    assert_quiet(&mut far).await;
    server.publish(21..=22, 2);
    assert_quiet(&mut far).await;
    assert_eq!(read_ids(&mut ws, 2).await, vec![21, 22]);
}

#[tokio::test]
async fn since_older_than_the_history_replays_all_held_and_the_jump_shows_the_loss() {
    let server = Server::start(TestConfig::new(&["--history", "100"])).await;
    server.publish(1..=300, 7);
    // Held: 201..=300. since=199 would need 200, which is gone: the client gets 201.. (the jump
    // from its last id shows it what was lost), exactly like since=200, which lost nothing.
    let mut clients = Vec::new();
    for since in [0u64, 50, 199, 200] {
        let mut ws = server.subscribe(&format!("&since={since}")).await;
        assert_eq!(
            read_ids(&mut ws, 100).await,
            (201..=300).collect::<Vec<_>>(),
            "since={since}"
        );
        clients.push(ws);
    }
    // Then live, with no duplicate at the seam.
    server.publish(301..=302, 1);
    for ws in &mut clients {
        assert_eq!(read_ids(ws, 2).await, vec![301, 302]);
    }
}

#[tokio::test]
async fn backlog_sends_the_last_n_held_then_live() {
    let server = Server::start(TestConfig::new(&["--history", "100"])).await;
    server.publish(1..=150, 4);
    let mut ten = server.subscribe("&backlog=10").await;
    assert_eq!(
        read_ids(&mut ten, 10).await,
        (141..=150).collect::<Vec<_>>()
    );
    let mut all = server.subscribe("&backlog=100000").await;
    assert_eq!(
        read_ids(&mut all, 100).await,
        (51..=150).collect::<Vec<_>>()
    );
    let mut none = server.subscribe("&backlog=0").await;
    for ws in [&mut ten, &mut all, &mut none] {
        assert_quiet(ws).await;
    }
    server.publish(151..=153, 2);
    for ws in [&mut ten, &mut all, &mut none] {
        assert_eq!(read_ids(ws, 3).await, vec![151, 152, 153]);
    }
}

#[tokio::test]
async fn invalid_since_or_backlog_closes_1008() {
    let server = Server::start(TestConfig::new(&[])).await;
    for extra in ["&since=abc", "&backlog=-1", "&since=1e3"] {
        let mut ws = server.subscribe(extra).await;
        assert_eq!(expect_close(&mut ws).await.0, 1008, "{extra}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_reading_subscriber_is_closed_4008_and_does_not_hold_back_a_fast_one() {
    const TOTAL: u64 = 100_000;
    // History 10 000 and no journal (the routes-only server has none): nothing to continue from
    // once the history has passed it. With a journal, ws_subscriptions' RELIABILITY 66 test.
    let server = Server::start(TestConfig::new(&[])).await;
    let mut slow = server.subscribe("").await;
    let mut fast = server.subscribe("").await;
    assert_quiet(&mut slow).await;
    assert_quiet(&mut fast).await;
    // Publish in batches of 10 (10 000 batches), records of ~500 bytes
    // (more than the socket buffers hold). The fast client reads along every CHUNK records, which
    // its queue (4 MiB budget) holds whole: the daemon's sockets queue little beyond what the
    // client has room for (TCP_NOTSENT_LOWAT), so a client must not lag a history's worth. The
    // slow one reads nothing until the end.
    const CHUNK: u64 = 5_000;
    let mut next_fast = 1u64;
    for chunk_start in (1..=TOTAL).step_by(CHUNK as usize) {
        let chunk_end = chunk_start + CHUNK - 1;
        let ids: Vec<u64> = (chunk_start..=chunk_end).collect();
        for batch in ids.chunks(10) {
            server
                .state
                .hub
                .publish(batch.iter().map(|&id| record_padded(id, 200)).collect());
        }
        let got = read_ids(&mut fast, CHUNK as usize).await;
        assert!(
            got.iter().copied().eq(next_fast..=chunk_end),
            "fast subscriber: ids out of order or missing before {chunk_end}"
        );
        next_fast = chunk_end + 1;
    }
    assert_quiet(&mut fast).await;
    // The slow one: a consecutive run of ids from 1, then Close 4008 (never a silent skip).
    let mut expected = 1u64;
    let end = loop {
        match next_event(&mut slow).await {
            Event::Text(t) => {
                assert_eq!(entry_id(&t), expected, "slow subscriber skipped silently");
                expected += 1;
            }
            other => break other,
        }
    };
    assert!(
        matches!(end, Event::Close(4008, _)),
        "after {} entries: {end:?}",
        expected - 1
    );
    eprintln!("slow subscriber: {} entries, then {end:?}", expected - 1);
    assert!(expected > 1 && expected <= TOTAL);
}

#[tokio::test]
async fn ping_text_gets_exactly_pong_and_other_text_is_ignored() {
    let server = Server::start(TestConfig::new(&[])).await;
    let mut ws = server.subscribe("").await;
    send_text(&mut ws, "hello").await;
    send_text(&mut ws, &"x".repeat(1024)).await;
    send_text(&mut ws, "PING").await;
    let before_pong = texts_until_pong(&mut ws).await;
    assert!(before_pong.is_empty(), "{before_pong:?}");
    for _ in 0..3 {
        send_text(&mut ws, "ping").await;
    }
    for _ in 0..3 {
        assert!(matches!(next_event(&mut ws).await, Event::Text(t) if t == "pong"));
    }
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn client_text_over_1_kib_closes_1009() {
    let server = Server::start(TestConfig::new(&[])).await;
    let mut ws = server.subscribe("").await;
    send_text(&mut ws, &"x".repeat(1025)).await;
    assert_eq!(expect_close(&mut ws).await.0, 1009);
}

#[tokio::test]
async fn binary_message_closes_1003() {
    let server = Server::start(TestConfig::new(&[])).await;
    let mut ws = server.subscribe("").await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(expect_close(&mut ws).await.0, 1003);
}

#[tokio::test]
async fn one_mib_frame_closes_the_connection_and_others_keep_streaming() {
    let server = Server::start(TestConfig::new(&[])).await;
    let mut other = server.subscribe("").await;
    let mut ws = server.subscribe("").await;
    assert_quiet(&mut ws).await;
    // The server refuses the frame from its header (it never buffers it); whether the client gets
    // to write all of it does not matter.
    let _ = ws.send(Message::text("x".repeat(1 << 20))).await;
    assert_eq!(expect_close(&mut ws).await.0, 1009);
    assert_quiet(&mut other).await;
    server.publish(1..=3, 3);
    assert_eq!(read_ids(&mut other, 3).await, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_frame_at_the_limit_is_read_whole_and_one_byte_more_is_refused_from_its_header() {
    // The server's read buffer is far smaller than the frame limit: a frame of exactly the limit
    // is read whole over many reads (a binary message then closes 1003, as any binary would);
    // one byte more is refused as too big (1009).
    let server = Server::start(TestConfig::new(&[])).await;
    let mut ws = server.subscribe("").await;
    ws.send(Message::binary(vec![7u8; MAX_FRAME]))
        .await
        .unwrap();
    assert_eq!(expect_close(&mut ws).await.0, 1003);
    let mut ws = server.subscribe("").await;
    let _ = ws.send(Message::binary(vec![7u8; MAX_FRAME + 1])).await;
    assert_eq!(expect_close(&mut ws).await.0, 1009);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_entries_per_wake_arrive_as_separate_messages_in_order_with_their_exact_text() {
    // Whatever the server writes per wake-up (one take of many records, one flush), the client
    // sees one text message per entry, each byte-identical to the record's JSON, ids in order.
    let server = Server::start(TestConfig::new(&["--history", "100000"])).await;
    let mut ws = server.subscribe("").await;
    assert_quiet(&mut ws).await;
    const N: u64 = 5_000;
    server.publish(1..=N, 1_000);
    for id in 1..=N {
        match next_event(&mut ws).await {
            Event::Text(t) => assert_eq!(t, record(id).text(), "entry {id}"),
            other => panic!("entry {id}: {other:?}"),
        }
    }
    assert_quiet(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_128_subscribers_sessions_coalesce_and_every_entry_still_arrives_once_in_order() {
    // More subscribers than the coalescing threshold (ws.rs `COALESCE_FROM`): each session waits a
    // few ms between takes, and the hub wakes a session only when its queue stops being empty.
    // Every entry must still arrive exactly once and in order, one message each, and an entry
    // published alone after a quiet spell must arrive too: no wake-up may be lost to a permit that a
    // take made on the coalescing timer left behind. The server's Ping tick runs the session loop
    // again and would deliver a stuck entry after PING_INTERVAL, so each phase is bounded below it.
    const SUBSCRIBERS: usize = 150;
    let bound = PING_INTERVAL / 2;
    let cap = SUBSCRIBERS.to_string();
    let server = Server::start(TestConfig::new(&[
        "--max-connections",
        &cap,
        "--max-connections-per-ip",
        &cap,
    ]))
    .await;
    let mut clients = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let mut ws = server.subscribe("").await;
        assert_quiet(&mut ws).await;
        clients.push(ws);
    }
    assert_eq!(server.state.hub.subscriber_count(), SUBSCRIBERS as u64);
    let mut next = 1u64;
    // Many small batches (sessions hold while more arrive), then a single entry after a quiet spell.
    for (batches, batch) in [(200u64, 2usize), (1, 1)] {
        let first = next;
        for _ in 0..batches {
            server.publish(next..=next + batch as u64 - 1, batch);
            next += batch as u64;
            tokio::task::yield_now().await;
        }
        let deadline = tokio::time::Instant::now() + bound;
        for (k, ws) in clients.iter_mut().enumerate() {
            for id in first..next {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match next_event_within(ws, left).await {
                    Event::Text(t) => assert_eq!(entry_id(&t), id, "subscriber {k}"),
                    other => panic!("subscriber {k}, entry {id}: {other:?}"),
                }
            }
        }
    }
    for ws in clients.iter_mut().take(3) {
        assert_quiet(ws).await;
    }
}

#[tokio::test]
async fn client_ping_frame_is_answered_while_streaming() {
    let server = Server::start(TestConfig::new(&[])).await;
    let mut ws = server.subscribe("").await;
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(_)) => continue,
                other => panic!("no Pong: {other:?}"),
            }
        }
    })
    .await
    .expect("Pong within the bound");
    assert_eq!(&pong[..], b"are you there");
}

#[tokio::test]
async fn server_pings_every_30_s_and_closes_a_silent_peer_after_90_s() {
    let server = Server::start(TestConfig::new(&[])).await;
    let mut live = server.subscribe("").await;
    let mut silent = server.subscribe("").await;
    assert_quiet(&mut live).await;
    assert_quiet(&mut silent).await;
    // Move the daemon's clock (same runtime); real sockets keep working.
    tokio::time::pause();
    tokio::time::advance(PING_INTERVAL + Duration::from_millis(10)).await;
    tokio::time::resume();
    let ping = tokio::time::timeout(WAIT, async {
        loop {
            match live.next().await {
                Some(Ok(Message::Ping(_))) => return,
                Some(Ok(_)) => continue,
                other => panic!("no Ping: {other:?}"),
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "server Ping within the bound");
    // `live` answered (its client sends the Pong on the next read); `silent` never reads.
    assert_quiet(&mut live).await;
    tokio::time::pause();
    tokio::time::advance(IDLE_TIMEOUT - PING_INTERVAL).await;
    tokio::time::resume();
    assert_eq!(
        expect_close(&mut silent).await,
        (1001, "idle timeout".to_owned())
    );
    assert_quiet(&mut live).await;
}

#[tokio::test]
async fn shutdown_closes_every_subscriber_with_1001_and_every_task_ends() {
    let server = Server::start(TestConfig::new(&[])).await;
    let mut a = server.subscribe("").await;
    let mut b = server.subscribe("&backlog=5").await;
    assert_quiet(&mut a).await;
    assert_quiet(&mut b).await;
    server.stop().await;
    for ws in [&mut a, &mut b] {
        assert_eq!(expect_close(ws).await, (1001, "going away".to_owned()));
    }
}

#[tokio::test]
async fn whole_daemon_refuses_tokenless_clients_and_stops_cleanly() {
    // The whole daemon through app::run (its token store is its own, so no token from here).
    let files = TestConfig::new(&[]);
    let daemon = Daemon::start(&files).await;
    let mut ws = connect(&format!("ws://{}/api/ws/logs", daemon.addr)).await;
    assert_eq!(expect_close(&mut ws).await.0, 4001);
    daemon.stop().await.expect("clean stop");
}

#[tokio::test]
async fn health_reports_ids_subscribers_and_sources_without_caching() {
    let server = Server::start(TestConfig::new(&["--history", "10"])).await;
    server.publish(1..=25, 5);
    let mut ws = server.subscribe("").await;
    assert_quiet(&mut ws).await;
    let response = http_get(server.addr, "/api/health", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["last_id"], 25);
    assert_eq!(body["oldest_id"], 16);
    assert_eq!(body["subscribers"], 1);
    assert!(body.get("sources").is_some());
}

#[tokio::test]
async fn client_close_is_acknowledged_while_entries_are_pending() {
    // A subscriber buffer above the 16 MB published at once here: the only close is the client's.
    let server = Server::start(TestConfig::new(&["--subscriber-buffer-bytes", "33554432"])).await;
    let mut ws = server.subscribe("").await;
    assert_quiet(&mut ws).await;
    // More than the socket buffers hold, so the server is mid-write when the Close arrives.
    for first in (1..=20_000u64).step_by(100) {
        server.state.hub.publish(
            (first..first + 100)
                .map(|id| record_padded(id, 500))
                .collect(),
        );
    }
    let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.send(Message::Close(Some(frame)))
        .await
        .expect("send Close");
    let mut entries = 0u64;
    let end = loop {
        match next_event(&mut ws).await {
            Event::Text(t) => {
                entries += 1;
                assert_eq!(entry_id(&t), entries);
            }
            other => break other,
        }
    };
    assert!(
        matches!(end, Event::Close(1000, _)),
        "after {entries}: {end:?}"
    );
}

#[tokio::test]
async fn unmasked_client_frame_closes_1002() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(TestConfig::new(&[])).await;
    let token = server.token();
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /api/ws/logs?token={token} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
    })
    .await
    .expect("101 within the bound");
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // FIN + text, payload length 4, no mask bit: a client must mask every frame.
    tcp.write_all(&[0x81, 0x04, b'p', b'i', b'n', b'g'])
        .await
        .unwrap();
    let mut frame = [0u8; 4];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut frame))
        .await
        .expect("Close within the bound")
        .unwrap();
    assert_eq!(frame[0], 0x88, "a Close frame");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1002);
}

#[tokio::test]
async fn a_subscriber_lagging_behind_the_broadcast_is_caught_up_from_the_history() {
    // One thread: while the test publishes without yielding, the session cannot run, so it falls
    // further behind than its buffer (64 KiB, about 180 of these records); the history (10 000)
    // still holds the 9000 published.
    let server = Server::start(TestConfig::new(&["--subscriber-buffer-bytes", "65536"])).await;
    let mut ws = server.subscribe("").await;
    assert_quiet(&mut ws).await;
    server.publish(1..=9000, 1);
    let ids = read_ids(&mut ws, 9000).await;
    assert!(
        ids.iter().copied().eq(1..=9000),
        "gap or duplicate after the lag"
    );
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn a_subscriber_lagging_behind_the_history_too_is_closed_4008() {
    // Its buffer (64 KiB, the least) and the history (10 000) together hold less than the 12 000
    // records published while it cannot run, and the routes-only server has no journal to
    // continue from (with one it would: `slow_readers_through_a_burst_...`).
    let server = Server::start(TestConfig::new(&["--subscriber-buffer-bytes", "65536"])).await;
    let mut ws = server.subscribe("").await;
    assert_quiet(&mut ws).await;
    server.publish(1..=12_000, 1);
    assert_eq!(
        expect_close(&mut ws).await,
        (4008, "Subscriber too slow; reconnect with since".to_owned())
    );
}

/// A Squid line numbered `seq` (its `bytes` field): POST when `seq` is even, GET otherwise.
/// A daemon on an empty log with a 1,000-entry memory history and a 64 KiB subscriber budget:
/// a burst of tens of thousands of lines passes any reader that is not keeping up.
async fn burst_daemon() -> (TestConfig, Daemon) {
    let files = TestConfig::with_users(&[
        "--from-start",
        "--history",
        "1000",
        "--subscriber-buffer-bytes",
        "65536",
    ]);
    std::fs::write(files.access_log(), "").expect("log");
    let daemon = Daemon::start(&files).await;
    (files, daemon)
}

/// Appends lines 1..=`lines` of [`burst_line`] to the log in one write.
fn append_burst(files: &TestConfig, lines: u64) {
    let burst: String = (1..=lines).map(burst_line).collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(files.access_log())
        .and_then(|mut f| std::io::Write::write_all(&mut f, burst.as_bytes()))
        .expect("append the burst");
}

fn burst_line(seq: u64) -> String {
    let method = if seq % 2 == 0 { "POST" } else { "GET" };
    format!(
        "1795835993.065      2 10.1.{}.{} TCP_MISS/200 {seq} {method} http://h.example/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain\n",
        seq % 250,
        seq % 200
    )
}

/// Bytes that can be on their way to a subscriber beyond what it has read: two takes of its
/// budget, the daemon's socket write buffers, the kernel's send buffer at most (tcp_wmem) and its
/// receive buffer (the kernel doubles what was asked), plus 1 MiB of slack.
fn in_flight_bound(budget: u64) -> u64 {
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").expect("tcp_wmem");
    let wmem_max: u64 = wmem
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .expect("tcp_wmem max");
    2 * budget
        + proxytail::http::ws::MAX_WRITE_BUFFER as u64
        + wmem_max
        + 2 * u64::from(SMALL_RCVBUF)
        + (1 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_through_a_burst_past_the_history_get_every_entry_from_the_journal() {
    // Issue 14: a subscriber that reads, however slowly, continues from the journal once the
    // history has passed it: every entry exactly once, in order, no gap, no 4008. One unfiltered,
    // one filtered (every other line), and a fast one whose progress paces the slow ones' pauses.
    const LINES: u64 = 60_000;
    const HISTORY: u64 = 1_000;
    const BUDGET: u64 = 65_536;
    let (files, daemon) = burst_daemon().await;
    let mut fast = daemon.subscribe("&since=0").await;
    let token = fetch_token(daemon.addr).await;
    let mut slow = connect_small_rcvbuf(daemon.addr, &format!("token={token}&since=0")).await;
    let token = fetch_token(daemon.addr).await;
    let filtered = format!("token={token}&since=0&filter=method%3APOST");
    let mut slow_post = connect_small_rcvbuf(daemon.addr, &filtered).await;
    for ws in [&mut fast, &mut slow, &mut slow_post] {
        assert_quiet(ws).await;
    }
    // The whole burst at once: the tailer reads it as fast as it can.
    append_burst(&files, LINES);
    let (fast_tx, fast_rx) = tokio::sync::watch::channel(0u64);
    let fast_task = tokio::spawn(async move {
        let mut shortest = usize::MAX;
        for expected in 1..=LINES {
            match next_event(&mut fast).await {
                Event::Text(t) => {
                    assert_eq!(entry_id(&t), expected, "fast: gap, duplicate or reorder");
                    shortest = shortest.min(t.len());
                }
                other => panic!("fast, after {}: {other:?}", expected - 1),
            }
            if expected % 1_000 == 0 {
                fast_tx.send_replace(expected);
            }
        }
        shortest
    });
    // A slow reader: `step` entries, then a pause until the fast one is 5,000 entries further
    // (several times what the history holds) or 1 s has passed, far below the stall bound; at full
    // speed once the fast one has everything. Returns the last id it had then, and checks every
    // entry. Small steps keep it far behind even when a loaded machine makes the burst slow.
    let slow_reader = |mut ws: Client, step: u64, every: u64, name: &'static str| {
        let mut fast_rx = fast_rx.clone();
        tokio::spawn(async move {
            let mut seen_when_fast_done = None;
            let mut expected = every;
            let mut n = 0u64;
            while expected <= LINES {
                match next_event(&mut ws).await {
                    Event::Text(t) => {
                        assert_eq!(entry_id(&t), expected, "{name}: gap, duplicate or reorder")
                    }
                    other => panic!("{name}, expecting {expected}: {other:?}"),
                }
                expected += every;
                n += 1;
                if n % step == 0 {
                    let target = (*fast_rx.borrow() + 5_000).min(LINES);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        fast_rx.wait_for(|&f| f >= target),
                    )
                    .await;
                }
                if seen_when_fast_done.is_none() && *fast_rx.borrow() == LINES {
                    seen_when_fast_done = Some(expected - every);
                }
            }
            assert_quiet(&mut ws).await;
            seen_when_fast_done.unwrap_or(LINES)
        })
    };
    let slow_task = slow_reader(slow, 200, 1, "slow");
    let post_task = slow_reader(slow_post, 100, 2, "slow filtered");
    let shortest = fast_task.await.expect("fast reader") as u64;
    let slow_at = slow_task.await.expect("slow reader");
    let post_at = post_task.await.expect("slow filtered reader");
    // The test proves something only if the history had passed both: when the last entry was
    // published, each was further behind than everything that could be in flight to it.
    let in_flight = in_flight_bound(BUDGET) / shortest;
    eprintln!(
        "fast done: slow at {slow_at}, filtered at {post_at}; at most {in_flight} entries in flight"
    );
    assert!(
        slow_at + in_flight + HISTORY < LINES,
        "the slow reader was never passed by the history"
    );
    assert!(
        post_at + 2 * in_flight + HISTORY < LINES,
        "the filtered slow reader was never passed by the history"
    );
    daemon.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_slow_reader_through_a_long_flood_is_not_taken_for_a_stalled_one() {
    // CONTRACT §11: 4008 is for a subscriber that stopped reading, not for one that reads slower
    // than the flood. This one reads about 70 KiB/s for more than twice the stall bound while the
    // daemon is far ahead of it, then the rest at full speed: every entry once, in order, no 4008.
    // (Without TCP_NOTSENT_LOWAT on the daemon's sockets the kernel let its writes wait for
    // megabytes to drain, longer than the stall bound at this pace.)
    const LINES: u64 = 60_000;
    const STEP: u64 = 50;
    const PAUSE: Duration = Duration::from_millis(250);
    let slow_for = proxytail::http::ws::STALL * 2 + Duration::from_secs(2);
    let (files, daemon) = burst_daemon().await;
    let token = fetch_token(daemon.addr).await;
    let mut ws = connect_small_rcvbuf(daemon.addr, &format!("token={token}&since=0")).await;
    assert_quiet(&mut ws).await;
    append_burst(&files, LINES);
    let slow_until = tokio::time::Instant::now() + slow_for;
    for expected in 1..=LINES {
        match next_event(&mut ws).await {
            Event::Text(t) => assert_eq!(entry_id(&t), expected, "gap, duplicate or reorder"),
            other => panic!("expecting {expected}: {other:?}"),
        }
        // The pace is the scenario (a reader slower than the flood), not a wait for an event.
        if expected % STEP == 0 && tokio::time::Instant::now() < slow_until {
            tokio::time::sleep(PAUSE).await;
        }
    }
    assert_quiet(&mut ws).await;
    daemon.stop().await.expect("clean stop");
}
