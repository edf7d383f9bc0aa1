//! The WebSocket test client every harness shares (`tests/common`, `tests/pkg_support` include this
//! file): tokio-tungstenite connections with optional extra headers, the next text or Close frame
//! within a bound, entries read by id, the ping/pong and closing handshakes. A leaf module: it names
//! nothing of its includer.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Default upper bound for any single wait in a test (a failure bound, not a delay). Generous:
/// CI machines run the suite beside other builds, and a debug daemon starting under a load of 10+
/// has been seen to take more than 10 s to say it listens.
pub const WAIT: Duration = Duration::from_secs(30);

/// A WebSocket client connection.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects a WebSocket client to `url`; panics on failure.
pub async fn connect(url: &str) -> Client {
    try_connect(url, &[]).await.expect("WebSocket handshake")
}

/// The receive buffer [`connect_small_rcvbuf`] asks for: fixed (the kernel doubles it and turns
/// autotuning off), so what can wait in the kernel for a client that does not read is known.
pub const SMALL_RCVBUF: u32 = 64 << 10;

/// Connects a WebSocket client to `ws://addr/api/ws/logs?{query}` on a socket with a
/// [`SMALL_RCVBUF`] receive buffer; panics on failure.
pub async fn connect_small_rcvbuf(addr: std::net::SocketAddr, query: &str) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(SMALL_RCVBUF)
        .expect("SO_RCVBUF");
    let tcp = socket.connect(addr).await.expect("connect");
    let url = format!("ws://{addr}/api/ws/logs?{query}");
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)),
    )
    .await
    .expect("handshake within the bound")
    .expect("WebSocket handshake");
    ws
}

/// Connects with extra request headers; returns the handshake error (e.g. HTTP 403) as is.
pub async fn try_connect(
    url: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            *name,
            HeaderValue::from_str(value).expect("valid header value"),
        );
    }
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake within the bound")?;
    Ok(ws)
}

/// What the next frame of interest from the server was.
#[derive(Debug)]
pub enum Event {
    /// A text frame.
    Text(String),
    /// A Close frame: code and reason (1005 when it had none).
    Close(u16, String),
    /// The connection ended without a Close frame (EOF or an I/O error).
    Gone(String),
}

/// The next text or Close frame (Ping/Pong/binary are skipped), within `bound`.
pub async fn next_event_within(ws: &mut Client, bound: Duration) -> Event {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame within the bound");
        match frame {
            None => return Event::Gone("end of stream".into()),
            Some(Err(e)) => return Event::Gone(e.to_string()),
            Some(Ok(Message::Text(t))) => return Event::Text(t.to_string()),
            Some(Ok(Message::Close(frame))) => {
                // Poll once more so the client sends its answering Close, as a browser does, and
                // the server's closing handshake completes; this ends when the server hangs up.
                let _ = tokio::time::timeout_at(deadline, ws.next()).await;
                return match frame {
                    Some(CloseFrame { code, reason }) => {
                        Event::Close(u16::from(code), reason.to_string())
                    }
                    None => Event::Close(1005, String::new()),
                };
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// The next text or Close frame within [`WAIT`].
pub async fn next_event(ws: &mut Client) -> Event {
    next_event_within(ws, WAIT).await
}

/// Expects a Close frame before any text frame; returns its code and reason.
pub async fn expect_close(ws: &mut Client) -> (u16, String) {
    match next_event(ws).await {
        Event::Close(code, reason) => (code, reason),
        other => panic!("expected a Close frame first, got {other:?}"),
    }
}

/// Reads exactly `n` entries (text frames parsed as JSON) and returns their ids; panics on a Close,
/// a non-JSON text or the bound.
pub async fn read_ids(ws: &mut Client, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        match next_event(ws).await {
            Event::Text(t) => ids.push(entry_id(&t)),
            other => panic!(
                "after {} entries: expected an entry, got {other:?}",
                ids.len()
            ),
        }
    }
    ids
}

/// Reads exactly `n` entries and returns them parsed; panics on a Close, a non-JSON text or the bound.
pub async fn read_entries(ws: &mut Client, n: usize) -> Vec<serde_json::Value> {
    let mut entries = Vec::with_capacity(n);
    while entries.len() < n {
        match next_event(ws).await {
            Event::Text(t) => entries.push(
                serde_json::from_str(&t).unwrap_or_else(|e| panic!("entry is JSON ({e}): {t}")),
            ),
            other => panic!(
                "after {} entries: expected an entry, got {other:?}",
                entries.len()
            ),
        }
    }
    entries
}

/// The `id` field of an entry's JSON text.
pub fn entry_id(text: &str) -> u64 {
    // Fast path for the daemon's own serialization (`id` is always the first key).
    if let Some(rest) = text.strip_prefix("{\"id\":") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(id) = rest[..digits].parse() {
            return id;
        }
    }
    let v: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("entry is JSON ({e}): {text}"));
    v["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("entry has an id: {text}"))
}

/// Sends a client text message.
pub async fn send_text(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.expect("send text");
}

/// Runs the client side of a closing handshake (Close 1000) and returns the server's answer.
pub async fn close_handshake(ws: &mut Client) -> Event {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.close(Some(frame)).await.expect("send Close");
    next_event(ws).await
}

/// Checks that nothing but the given text arrives before a `ping`→`pong` round trip: sends `ping`
/// and returns every text frame received up to (excluding) the `pong`.
pub async fn texts_until_pong(ws: &mut Client) -> Vec<String> {
    send_text(ws, "ping").await;
    let mut seen = Vec::new();
    loop {
        match next_event(ws).await {
            Event::Text(t) if t == "pong" => return seen,
            Event::Text(t) => seen.push(t),
            other => panic!("expected pong, got {other:?}"),
        }
    }
}

/// A `ping` round trip with nothing before the `pong`: proves the session loop runs (so it has
/// subscribed) and nothing else is queued.
pub async fn assert_quiet(ws: &mut Client) {
    assert_eq!(texts_until_pong(ws).await, Vec::<String>::new());
}
