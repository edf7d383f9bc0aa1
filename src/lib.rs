//! proxytail: follow a Squid access log and stream its entries over a token-gated WebSocket API.
//!
//! # Layout
//!
//! ```text
//!  access.log ──► source::file::watch (notify: "something changed")
//!                    │
//!                    ▼
//!                source::file::follow (complete lines, rotation, truncation)
//!                    │
//!                    ▼
//!                parsers (line → Entry)  ──►  source::file (ids, checkpoint) ──► store (journal on disk)
//!                                               │
//!                                               ▼
//!                hub (history ring + subscriptions)
//!                                               │
//!          auth, tokens, sessions ──► http (warp: /api/ws-token, /api/session, /api/ws/logs, /api/health,
//!                                            /metrics, /)
//! ```
//!
//! `metrics` holds the counters the HTTP side adds to and renders `/metrics`; `notify` speaks
//! systemd's notification protocol (ready, status, watchdog keep-alives from the tailing loop).
//!
//! `source::nats` (CONTRACT §10): an edge publishes what the hub makes to NATS JetStream (a hub
//! subscription); a central takes the edges' streams as its source instead of `source::file`, with
//! ids, journal and checkpoint of its own.
//!
//! `app` wires them together; `config` turns flags, env and a TOML file into a validated [`config::Config`].

pub mod app;
pub mod auth;
pub mod check;
pub mod config;
pub mod demo;
pub mod error;
pub mod filter;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod notify;
pub mod privacy;
pub mod sessions;
pub mod shutdown;
pub mod source;
pub mod store;
pub mod tokens;
pub mod users_cmd;
