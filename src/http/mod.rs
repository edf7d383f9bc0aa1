//! The HTTP side: warp filters, thin handlers, the WebSocket loop and one rejection mapper.
pub mod client;
pub mod health;
pub mod host;
pub mod reject;
pub mod routes;
pub mod server;
pub mod token;
pub mod web;
pub mod ws;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::hub::Hub;
use crate::tail::TailHealth;
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
    /// Entries: history and live broadcast.
    pub hub: Arc<Hub>,
    /// Credential checks.
    pub auth: Arc<Authenticator>,
    /// Outstanding single-use WebSocket tokens.
    pub tokens: Arc<TokenStore>,
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
}

/// Counts of open WebSocket connections.
#[derive(Debug, Default)]
pub struct Connections {
    /// Per client address.
    pub per_ip: Mutex<HashMap<IpAddr, usize>>,
}
