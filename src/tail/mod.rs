//! The tailer: follows each configured log, parses complete lines, assigns ids, checkpoints and
//! publishes batches to the hub.
use crate::config::Config;
use crate::error::StartupError;
use crate::hub::Hub;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Per-source counters and state for `/api/health`.
#[derive(Debug, Default)]
pub struct TailHealth {}

impl TailHealth {
    /// A JSON snapshot: per source its state, lines taken, parse errors and skipped long lines.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({ "sources": [] })
    }
}

/// Follows the configured sources and feeds the hub.
#[derive(Debug)]
pub struct Tailer {
    hub: Arc<Hub>,
    health: Arc<TailHealth>,
}

impl Tailer {
    /// Loads the checkpoint, rebuilds the history into `hub` and prepares every source.
    pub fn new(_config: &Config, hub: Arc<Hub>) -> Result<Tailer, StartupError> {
        Ok(Tailer {
            hub,
            health: Arc::default(),
        })
    }

    /// Shared health counters.
    pub fn health(&self) -> Arc<TailHealth> {
        self.health.clone()
    }

    /// Follows until `token` is cancelled, then writes the checkpoint and returns.
    pub async fn run(self, token: CancellationToken) {
        let _ = &self.hub;
        token.cancelled().await;
    }
}
