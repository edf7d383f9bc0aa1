//! Where entries come from: the sources a daemon follows, each producing entries with a resumable
//! position, before ids, the journal and the checkpoint.
//!
//! - [`file`]: log files on this host (watch → follow → parsers → ids → journal → hub), the
//!   single-host daemon and a fleet edge;
//! - [`nats`]: a fleet on NATS JetStream (CONTRACT §10): an edge's publisher of what its hub makes,
//!   and a central's source, the edges' streams merged into ids of its own.
pub mod file;
pub mod nats;
