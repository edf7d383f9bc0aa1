//! The WebSocket handshake of `GET /api/ws/logs`, served with tokio-tungstenite under warp's routing.
//!
//! warp's own `WebSocket` takes a `String` per text message, so every entry would be copied once per
//! subscriber; tokio-tungstenite's `Message::Text` holds shared `Bytes`, so a record's JSON, encoded
//! once, goes to every subscriber without a copy (BENCHMARKS §13). warp still checks the request
//! (`warp::ws()`: GET, `Connection: upgrade`, `Upgrade: websocket`, version 13, a key) and routes it;
//! hyper's upgrade handle, which warp keeps to its own filter, is moved by the server into an
//! [`Upgrade`] extension that this module takes it from.
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderValue, StatusCode};

/// An upgraded WebSocket connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// hyper's upgrade handle of one request, in a form warp's `ext` filters can carry (they need
/// `Clone`); taken once by the WebSocket route.
#[derive(Clone)]
pub struct Upgrade(Arc<Mutex<Option<OnUpgrade>>>);

impl Upgrade {
    /// Moves the request's upgrade handle (present only when the client asked for an upgrade) into
    /// an [`Upgrade`] extension. Called by the server for every request, before warp sees it.
    pub fn wrap<B>(req: &mut hyper::Request<B>) {
        if let Some(on) = req.extensions_mut().remove::<OnUpgrade>() {
            req.extensions_mut()
                .insert(Upgrade(Arc::new(Mutex::new(Some(on)))));
        }
    }

    /// The handle, the first time only.
    fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The `101 Switching Protocols` answer to a request carrying `key`, and the upgrade run in its
/// own task once hyper hands the connection over: `session` then owns the socket, configured with
/// `config`. Without an upgrade handle (a server that did not call [`Upgrade::wrap`]) the answer
/// is a 500.
pub fn switch<F, S>(
    upgrade: Option<Upgrade>,
    key: &HeaderValue,
    config: WebSocketConfig,
    session: S,
) -> warp::reply::Response
where
    S: FnOnce(Socket) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let Some(on) = upgrade.as_ref().and_then(Upgrade::take) else {
        tracing::error!("WebSocket request without an upgrade handle");
        return super::reject::json_error(StatusCode::INTERNAL_SERVER_ERROR, "upgrade unavailable");
    };
    tokio::spawn(async move {
        match on.await {
            Ok(upgraded) => {
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                session(socket).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut res = warp::reply::Response::default();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}
