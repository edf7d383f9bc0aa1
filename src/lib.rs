//! proxytail: follow a Squid access log and stream its entries over a token-gated WebSocket API.
//!
//! # Layout
//!
//! ```text
//!  access.log ──► tail::watch (notify: "something changed")
//!                    │
//!                    ▼
//!                tail::follow (complete lines, rotation, truncation)
//!                    │
//!                    ▼
//!                parsers (line → Entry)  ──►  tail (ids, checkpoint) ──► store (journal on disk)
//!                                               │
//!                                               ▼
//!                hub (history ring + broadcast of serialized records)
//!                                               │
//!                    auth, tokens ──► http (warp: /api/ws-token, /api/ws/logs, /api/health, /)
//! ```
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
pub mod shutdown;
pub mod store;
pub mod tail;
pub mod tokens;
pub mod users_cmd;
