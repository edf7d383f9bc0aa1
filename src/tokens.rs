//! Single-use WebSocket tokens: 32 bytes from the OS random source, base64url without padding,
//! valid for a TTL, consumed atomically by the first connection that presents them.
//!
//! Only a SHA-256 digest of each token is kept (a memory dump or a debug print of the store reveals
//! no usable token). Expiry uses [`tokio::time::Instant`] so tests can pause and advance the clock.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Outstanding tokens allowed at once; minting beyond this fails with [`TokenError::Full`].
pub const MAX_OUTSTANDING: usize = 10_000;

/// Longest token text worth hashing; a minted token is 43 characters.
const MAX_TOKEN_LEN: usize = 128;

/// Longest pause between two sweeps of expired tokens.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Why a token was not minted or not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Unknown, expired or already used.
    #[error("Token invalid, expired, or already used")]
    Invalid,
    /// Too many outstanding tokens.
    #[error("too many outstanding tokens")]
    Full,
    /// The OS random source failed; no token can be minted safely.
    #[error("the OS random source is unavailable")]
    Unavailable,
}

/// SHA-256 of a token's text: the only form in which a token is stored.
type Digest32 = [u8; 32];

/// The outstanding tokens.
#[derive(Debug)]
pub struct TokenStore {
    /// How long a minted token stays valid.
    ttl: Duration,
    /// Bound on outstanding tokens, so a flood of mint requests cannot grow memory without limit.
    max_outstanding: usize,
    /// Digest of each outstanding token → the instant it expires. One lock: `remove` is the atomic
    /// "first presenter wins" step.
    tokens: Mutex<HashMap<Digest32, Instant>>,
}

impl TokenStore {
    /// A store whose tokens live `ttl`, holding at most [`MAX_OUTSTANDING`] at once.
    pub fn new(ttl: Duration) -> TokenStore {
        TokenStore::with_limit(ttl, MAX_OUTSTANDING)
    }

    /// A store whose tokens live `ttl`, holding at most `max_outstanding` (at least 1) at once.
    pub fn with_limit(ttl: Duration, max_outstanding: usize) -> TokenStore {
        TokenStore {
            ttl,
            max_outstanding: max_outstanding.max(1),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The lifetime of a freshly minted token.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Mints a new token: 32 bytes from the OS random source, base64url without padding.
    pub fn mint(&self) -> Result<String, TokenError> {
        let mut raw = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut raw)
            .map_err(|_| TokenError::Unavailable)?;
        let token = URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut tokens = self.lock();
        if tokens.len() >= self.max_outstanding {
            tokens.retain(|_, expires| *expires > now);
            if tokens.len() >= self.max_outstanding {
                return Err(TokenError::Full);
            }
        }
        tokens.insert(digest(&token), now + self.ttl);
        Ok(token)
    }

    /// Consumes `token`: `Ok` exactly once for a valid, unexpired token, `Invalid` otherwise.
    pub fn consume(&self, token: &str) -> Result<(), TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let key = digest(token);
        // Removal under the lock is the atomic step: of racing presenters exactly one gets `Some`.
        let expires = self.lock().remove(&key);
        match expires {
            Some(expires) if Instant::now() < expires => Ok(()),
            _ => Err(TokenError::Invalid),
        }
    }

    /// Tokens minted and neither consumed nor swept yet.
    pub fn outstanding(&self) -> usize {
        self.lock().len()
    }

    /// Drops every expired token; returns how many were dropped.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut tokens = self.lock();
        let before = tokens.len();
        tokens.retain(|_, expires| *expires > now);
        before - tokens.len()
    }

    /// Sweeps expired tokens periodically (every TTL, at most every 30 s) until `stop` is cancelled.
    pub async fn sweep_until(self: Arc<Self>, stop: CancellationToken) {
        let period = self
            .ttl
            .clamp(Duration::from_millis(100), MAX_SWEEP_INTERVAL);
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let swept = self.sweep();
                    if swept > 0 {
                        tracing::debug!(swept, "expired WebSocket tokens swept");
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest32, Instant>> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_token_is_256_bits_base64url_without_padding() {
        let store = TokenStore::new(Duration::from_secs(120));
        let token = store.mint().unwrap();
        assert_eq!(token.len(), 43);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_ne!(token, store.mint().unwrap());
    }

    #[tokio::test]
    async fn token_is_accepted_exactly_once() {
        let store = TokenStore::new(Duration::from_secs(120));
        let token = store.mint().unwrap();
        assert_eq!(store.consume(&token), Ok(()));
        assert_eq!(store.consume(&token), Err(TokenError::Invalid));
        assert_eq!(store.consume(""), Err(TokenError::Invalid));
        assert_eq!(store.consume("nope"), Err(TokenError::Invalid));
        assert_eq!(store.outstanding(), 0);
    }

    #[test]
    fn only_a_digest_is_stored() {
        let store = TokenStore::new(Duration::from_secs(120));
        let token = store.mint().unwrap();
        let dump = format!("{store:?}");
        assert!(!dump.contains(&token));
        assert!(store.lock().contains_key(&digest(&token)));
    }

    #[tokio::test(start_paused = true)]
    async fn token_expires_after_its_ttl() {
        let store = TokenStore::new(Duration::from_secs(120));
        let early = store.mint().unwrap();
        let late = store.mint().unwrap();
        tokio::time::advance(Duration::from_secs(119)).await;
        assert_eq!(store.consume(&early), Ok(()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(store.consume(&late), Err(TokenError::Invalid));
    }

    #[tokio::test(start_paused = true)]
    async fn outstanding_tokens_are_bounded_and_expired_ones_make_room() {
        let store = TokenStore::with_limit(Duration::from_secs(10), 3);
        for _ in 0..3 {
            store.mint().unwrap();
        }
        assert_eq!(store.mint(), Err(TokenError::Full));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(store.mint().is_ok());
        assert_eq!(store.outstanding(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn sweeper_drops_expired_tokens_and_stops_when_cancelled() {
        let store = Arc::new(TokenStore::new(Duration::from_secs(5)));
        store.mint().unwrap();
        let stop = CancellationToken::new();
        let sweeper = tokio::spawn(store.clone().sweep_until(stop.clone()));
        tokio::time::advance(Duration::from_secs(4)).await;
        tokio::task::yield_now().await;
        assert_eq!(store.outstanding(), 1);
        // Virtual time: the ticks at 5 s and 10 s run while this sleeps.
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(store.outstanding(), 0);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), sweeper)
            .await
            .expect("sweeper stops when cancelled")
            .unwrap();
    }

    #[test]
    fn racing_consumers_get_exactly_one_success() {
        let store = Arc::new(TokenStore::new(Duration::from_secs(120)));
        for _ in 0..50 {
            let token = store.mint().unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let wins: usize = (0..8)
                .map(|_| {
                    let (store, token, barrier) = (store.clone(), token.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        store.consume(&token).is_ok()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum();
            assert_eq!(wins, 1);
        }
    }
}
