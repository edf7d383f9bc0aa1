//! The HTTP side: warp filters, thin handlers, the WebSocket loop and one rejection mapper.
pub mod client;
pub mod health;
pub mod host;
pub mod metrics;
pub mod reject;
pub mod routes;
pub mod server;
pub mod session;
pub mod token;
pub mod upgrade;
pub mod web;
pub mod ws;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::hub::Hub;
use crate::sessions::SessionStore;
use crate::source::file::TailHealth;
use crate::tokens::TokenStore;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use routes::routes;

/// Everything a handler may need, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Entries: the history and the subscriptions.
    pub hub: Arc<Hub>,
    /// Credential checks.
    pub auth: Arc<Authenticator>,
    /// Outstanding single-use WebSocket tokens.
    pub tokens: Arc<TokenStore>,
    /// Dashboard sessions (the `proxytail_session` cookie) that mint tokens without a password.
    pub sessions: Arc<SessionStore>,
    /// Tailer counters for /api/health.
    pub health: Arc<TailHealth>,
    /// The validated configuration (limits, origins).
    pub config: Arc<Config>,
    /// The address actually bound (the daemon's own origin is derived from it).
    pub local_addr: SocketAddr,
    /// Cancelled when the daemon stops; WebSocket loops close with 1001 then.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Open WebSocket connections, total and per address, for the caps.
    pub connections: Arc<Connections>,
    /// Counters for `/metrics` (token outcomes, entries sent, closes by code).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Counts of open WebSocket connections.
#[derive(Debug, Default)]
pub struct Connections {
    /// Per client address.
    pub per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// True when `origin` is the daemon's own (`http(s)://` + the `Host` header or the bound address)
/// or one of `allowed`.
pub fn origin_allowed(
    origin: &str,
    host: Option<&str>,
    local: SocketAddr,
    allowed: &[String],
) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    let same = |candidate: &str| candidate.trim_end_matches('/').eq_ignore_ascii_case(origin);
    if allowed.iter().any(|a| same(a)) {
        return true;
    }
    let own = |authority: &str| {
        same(&format!("http://{authority}")) || same(&format!("https://{authority}"))
    };
    host.is_some_and(|h| !h.is_empty() && own(h.trim())) || own(&local.to_string())
}
