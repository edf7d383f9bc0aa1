//! The per-socket WebSocket loop.
