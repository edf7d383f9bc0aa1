//! Single-use WebSocket tokens: 32 random bytes, base64url, valid for a TTL, consumed atomically.
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Unknown, expired or already used.
    #[error("Token invalid, expired, or already used")]
    Invalid,
    /// Too many outstanding tokens.
    #[error("too many outstanding tokens")]
    Full,
}

/// The outstanding tokens.
#[derive(Debug)]
pub struct TokenStore {
    ttl: Duration,
}

impl TokenStore {
    /// A store whose tokens live `ttl`.
    pub fn new(ttl: Duration) -> TokenStore {
        TokenStore { ttl }
    }

    /// Mints a new token.
    pub fn mint(&self) -> Result<String, TokenError> {
        let _ = self.ttl;
        Err(TokenError::Full)
    }

    /// Consumes `token`: Ok exactly once for a valid, unexpired token.
    pub fn consume(&self, _token: &str) -> Result<(), TokenError> {
        Err(TokenError::Invalid)
    }

    /// Sweeps expired tokens periodically until `stop` is cancelled.
    pub async fn sweep_until(self: Arc<Self>, stop: CancellationToken) {
        stop.cancelled().await;
    }
}
