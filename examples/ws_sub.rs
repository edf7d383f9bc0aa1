//! A minimal subscriber for scripts (`scripts/systemd-test.sh`): gets a token with Basic
//! credentials, opens `/api/ws/logs` (with `since` when given), and prints one line per event:
//! `ENTRY <id> <destination>` for each entry, `CLOSE <code>` when the server closes, `GONE` when
//! the connection ends without a Close. Output is flushed per line so a script can follow it.
//!
//! ```text
//! ws_sub 127.0.0.1:5001 USER PASSWORD [SINCE]
//! ```
use futures_util::StreamExt;
use std::io::Write;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, user, password, rest @ ..] = args.as_slice() else {
        return Err("usage: ws_sub ADDR USER PASSWORD [SINCE]".into());
    };
    let token = fetch_token(addr, user, password).await?;
    let since = rest
        .first()
        .map(|s| format!("&since={s}"))
        .unwrap_or_default();
    let url = format!("ws://{addr}/api/ws/logs?token={token}{since}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "OPEN")?;
    out.flush()?;
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t)?;
                writeln!(
                    out,
                    "ENTRY {} {}",
                    v["id"],
                    v["destination"].as_str().unwrap_or("-")
                )?;
            }
            Ok(Message::Close(frame)) => {
                writeln!(out, "CLOSE {}", frame.map_or(1005, |f| u16::from(f.code)))?;
                out.flush()?;
                return Ok(());
            }
            Ok(_) => continue,
            Err(_) => break,
        }
        out.flush()?;
    }
    writeln!(out, "GONE")?;
    Ok(())
}

/// `GET /api/ws-token` over a plain HTTP/1.1 connection (no HTTP client crate needed).
async fn fetch_token(
    addr: &str,
    user: &str,
    password: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    use base64::Engine;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET /api/ws-token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {credentials}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split("\r\n\r\n").nth(1).ok_or("no body")?;
    let v: serde_json::Value = serde_json::from_str(body.trim())?;
    Ok(v["token"].as_str().ok_or("no token")?.to_owned())
}
