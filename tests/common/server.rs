//! The HTTP routes alone on 127.0.0.1:0 around an [`AppState`] built for the test (its own hub,
//! token store and idle tail health; no tailer), shared by `tests/common` and `tests/auth_support`
//! (which include this file). A leaf module: it names nothing of its includer.
#![allow(dead_code)]

use proxytail::auth::Authenticator;
use proxytail::config::Config;
use proxytail::http::{AppState, Connections};
use proxytail::hub::Hub;
use proxytail::sessions::{SessionLimits, SessionStore};
use proxytail::source::file::TailHealth;
use proxytail::tokens::TokenStore;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A listener on 127.0.0.1:0 bound the way the daemon binds its own.
pub fn bind_loopback() -> TcpListener {
    proxytail::app::bind_listener("127.0.0.1:0".parse().expect("address"))
        .expect("bind 127.0.0.1:0")
}

/// Serves every route on a fresh 127.0.0.1:0 listener around a new state for `config` and `auth`,
/// and returns that state (`state.local_addr` is where it listens). The server runs on
/// `state.tracker` and stops gracefully when `state.shutdown` is cancelled.
pub fn serve_routes(config: Config, auth: Authenticator) -> AppState {
    let listener = bind_loopback();
    let state = AppState {
        hub: Arc::new(Hub::new(config.history)),
        auth: Arc::new(auth),
        tokens: Arc::new(TokenStore::new(config.token_ttl)),
        sessions: Arc::new(SessionStore::in_memory(SessionLimits::of(&config))),
        health: Arc::new(TailHealth::default()),
        config: Arc::new(config),
        local_addr: listener.local_addr().expect("local addr"),
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
        connections: Arc::new(Connections::default()),
        metrics: Arc::default(),
    };
    // The daemon's own server (`app::run` serves the same way): the WebSocket route upgrades with
    // the handle it passes along, which `warp::serve` does not.
    let limits = proxytail::http::server::Limits {
        header_read: state.config.header_read_timeout,
        total: state.config.max_http_connections,
        per_ip: state.config.max_http_connections_per_ip,
    };
    state.tracker.spawn(proxytail::http::server::run(
        proxytail::http::routes(state.clone()),
        listener,
        limits,
        state.shutdown.clone(),
    ));
    state
}
