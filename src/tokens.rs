//! Single-use WebSocket tokens: 32 bytes from the OS random source, base64url without padding,
//! valid for a TTL, consumed atomically by the first connection that presents them.
//!
//! Only a SHA-256 digest of each token is kept (a memory dump or a debug print of the store reveals
//! no usable token). Expiry uses [`tokio::time::Instant`] so tests can pause and advance the clock.
//!
//! A token carries the view of the principal that minted it (CONTRACT §6): consuming it hands the
//! view to the WebSocket session, so a subscription is narrowed by whoever asked for the token.
//!
//! Outstanding tokens are bounded in total and per principal (user name or JWT subject): one
//! principal minting as fast as it can fills its own quota, not everyone's (issue 9).
use crate::filter::Filter;
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
/// Outstanding tokens one principal may hold; beyond it [`TokenError::Quota`]. A dashboard holds one
/// per connection attempt for a few milliseconds, so 100 is far above honest use.
pub const MAX_PER_PRINCIPAL: usize = 100;

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
    /// Too many outstanding tokens in total; the oldest expires after `retry_after`.
    #[error("too many outstanding tokens")]
    Full {
        /// Until the oldest outstanding token expires.
        retry_after: Duration,
    },
    /// This principal holds its quota of outstanding tokens; its oldest expires after `retry_after`.
    #[error("too many outstanding tokens for this user")]
    Quota {
        /// Until the principal's oldest outstanding token expires.
        retry_after: Duration,
    },
    /// The OS random source failed; no token can be minted safely.
    #[error("the OS random source is unavailable")]
    Unavailable,
}

/// SHA-256 of a token's text: the only form in which a token is stored.
/// A SHA-256 digest: what the token and session stores keep instead of the secret itself.
pub type Digest32 = [u8; 32];

/// The outstanding tokens.
#[derive(Debug)]
pub struct TokenStore {
    /// How long a minted token stays valid.
    ttl: Duration,
    /// Bound on outstanding tokens, so a flood of mint requests cannot grow memory without limit.
    max_outstanding: usize,
    /// Bound per principal, so one cannot use up `max_outstanding` for everyone else.
    max_per_principal: usize,
    /// One lock: `remove` is the atomic "first presenter wins" step.
    tokens: Mutex<Outstanding>,
}

/// The outstanding tokens and how many each principal holds.
#[derive(Debug, Default)]
struct Outstanding {
    /// Digest of each outstanding token → when it expires and whose it is.
    by_digest: HashMap<Digest32, Minted>,
    /// Principal → its entries in `by_digest` (absent when none).
    per_principal: HashMap<Arc<str>, usize>,
}

#[derive(Debug)]
struct Minted {
    /// When the token stops being accepted.
    expires: Instant,
    /// Who minted it, for the per-principal count.
    principal: Arc<str>,
    /// The minter's view, for the subscription the token opens.
    view: Filter,
}

impl Outstanding {
    fn held_by(&self, principal: &str) -> usize {
        self.per_principal.get(principal).copied().unwrap_or(0)
    }

    fn insert(&mut self, key: Digest32, expires: Instant, principal: &str, view: Filter) {
        let principal = match self.per_principal.get_key_value(principal) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(principal),
        };
        *self.per_principal.entry(principal.clone()).or_default() += 1;
        self.by_digest.insert(
            key,
            Minted {
                expires,
                principal,
                view,
            },
        );
    }

    fn remove(&mut self, key: &Digest32) -> Option<Minted> {
        let minted = self.by_digest.remove(key)?;
        self.uncount(&minted.principal);
        Some(minted)
    }

    fn uncount(&mut self, principal: &str) {
        if let Some(n) = self.per_principal.get_mut(principal) {
            *n -= 1;
            if *n == 0 {
                self.per_principal.remove(principal);
            }
        }
    }

    /// Drops the tokens expired at `now`; returns how many.
    fn drop_expired(&mut self, now: Instant) -> usize {
        let before = self.by_digest.len();
        let mut gone = Vec::new();
        self.by_digest.retain(|_, m| {
            let keep = m.expires > now;
            if !keep {
                gone.push(m.principal.clone());
            }
            keep
        });
        for principal in gone {
            self.uncount(&principal);
        }
        before - self.by_digest.len()
    }

    /// Time from `now` until the first of the matching tokens expires (at least 1 s, the smallest
    /// `Retry-After`).
    fn first_expiry(&self, now: Instant, principal: Option<&str>) -> Duration {
        self.by_digest
            .values()
            .filter(|m| principal.is_none_or(|p| *m.principal == *p))
            .map(|m| m.expires.saturating_duration_since(now))
            .min()
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }
}

impl TokenStore {
    /// A store whose tokens live `ttl`, with the default bounds ([`MAX_OUTSTANDING`],
    /// [`MAX_PER_PRINCIPAL`]).
    pub fn new(ttl: Duration) -> TokenStore {
        TokenStore::with_limits(ttl, MAX_OUTSTANDING, MAX_PER_PRINCIPAL)
    }

    /// A store whose tokens live `ttl`, holding at most `max_outstanding` at once, at most
    /// `max_per_principal` of them for one principal (each at least 1).
    pub fn with_limits(
        ttl: Duration,
        max_outstanding: usize,
        max_per_principal: usize,
    ) -> TokenStore {
        TokenStore {
            ttl,
            max_outstanding: max_outstanding.max(1),
            max_per_principal: max_per_principal.max(1),
            tokens: Mutex::new(Outstanding::default()),
        }
    }

    /// Mints a token for `principal`, who sees everything.
    pub fn mint(&self, principal: &str) -> Result<String, TokenError> {
        self.mint_with_view(principal, Filter::default())
    }

    /// Mints a new token for `principal` with their `view`: 32 bytes from the OS random source,
    /// base64url without padding. Beyond a bound the error says, truthfully, when the first slot
    /// frees up.
    pub fn mint_with_view(&self, principal: &str, view: Filter) -> Result<String, TokenError> {
        let token = random_secret().ok_or(TokenError::Unavailable)?;
        let now = Instant::now();
        let mut tokens = self.lock();
        let over = |t: &Outstanding| {
            t.by_digest.len() >= self.max_outstanding
                || t.held_by(principal) >= self.max_per_principal
        };
        if over(&tokens) {
            tokens.drop_expired(now);
            if tokens.held_by(principal) >= self.max_per_principal {
                let retry_after = tokens.first_expiry(now, Some(principal));
                return Err(TokenError::Quota { retry_after });
            }
            if tokens.by_digest.len() >= self.max_outstanding {
                let retry_after = tokens.first_expiry(now, None);
                return Err(TokenError::Full { retry_after });
            }
        }
        tokens.insert(digest(&token), now + self.ttl, principal, view);
        Ok(token)
    }

    /// Consumes `token`: `Ok` with the minter's view exactly once for a valid, unexpired token,
    /// `Invalid` otherwise.
    pub fn consume(&self, token: &str) -> Result<Filter, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let key = digest(token);
        // Removal under the lock is the atomic step: of racing presenters exactly one gets `Some`.
        let minted = self.lock().remove(&key);
        match minted {
            Some(m) if Instant::now() < m.expires => Ok(m.view),
            _ => Err(TokenError::Invalid),
        }
    }

    /// Tokens minted and neither consumed nor swept yet.
    pub fn outstanding(&self) -> usize {
        self.lock().by_digest.len()
    }

    /// Drops every expired token; returns how many were dropped.
    pub fn sweep(&self) -> usize {
        self.lock().drop_expired(Instant::now())
    }

    /// Sweeps expired tokens periodically (every TTL, at most every 30 s) until `stop` is cancelled.
    pub async fn sweep_until(self: Arc<Self>, stop: CancellationToken) {
        let period = self.ttl.min(MAX_SWEEP_INTERVAL);
        sweep_periodically(period, stop, "expired WebSocket tokens swept", || {
            let swept = self.sweep();
            async move { swept }
        })
        .await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outstanding> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `sweep` every `period` (at least 100 ms) until `stop` is cancelled, logging at debug level
/// how many expired bearers it dropped. One loop for the token and session stores.
pub(crate) async fn sweep_periodically<F, Fut>(
    period: Duration,
    stop: CancellationToken,
    what: &'static str,
    mut sweep: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let period = period.max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let swept = sweep().await;
                if swept > 0 {
                    tracing::debug!(swept, "{what}");
                }
            }
        }
    }
}

/// SHA-256 of a secret: what the stores keep instead of the secret itself.
pub fn digest(secret: &str) -> Digest32 {
    Sha256::digest(secret.as_bytes()).into()
}

/// A bearer secret (WebSocket token, dashboard session id): 32 bytes from the OS random source,
/// base64url without padding; `None` when the OS source fails.
pub fn random_secret() -> Option<String> {
    let mut raw = [0u8; 32];
    OsRng.try_fill_bytes(&mut raw).ok()?;
    Some(URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_token_is_256_bits_base64url_without_padding() {
        let store = TokenStore::new(Duration::from_secs(120));
        let token = store.mint("u").unwrap();
        assert_eq!(token.len(), 43);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_ne!(token, store.mint("u").unwrap());
    }

    #[tokio::test]
    async fn token_is_accepted_exactly_once() {
        let store = TokenStore::new(Duration::from_secs(120));
        let token = store.mint("u").unwrap();
        assert!(store.consume(&token).is_ok());
        assert_eq!(store.consume(&token).err(), Some(TokenError::Invalid));
        assert_eq!(store.consume("").err(), Some(TokenError::Invalid));
        assert_eq!(store.consume("nope").err(), Some(TokenError::Invalid));
        assert_eq!(store.outstanding(), 0);
    }

    #[test]
    fn only_a_digest_is_stored() {
        let store = TokenStore::new(Duration::from_secs(120));
        let token = store.mint("u").unwrap();
        let dump = format!("{store:?}");
        assert!(!dump.contains(&token));
        assert!(store.lock().by_digest.contains_key(&digest(&token)));
    }

    #[tokio::test(start_paused = true)]
    async fn token_expires_after_its_ttl() {
        let store = TokenStore::new(Duration::from_secs(120));
        let early = store.mint("u").unwrap();
        let late = store.mint("u").unwrap();
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(store.consume(&early).is_ok());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(store.consume(&late).err(), Some(TokenError::Invalid));
    }

    #[tokio::test(start_paused = true)]
    async fn outstanding_tokens_are_bounded_and_expired_ones_make_room() {
        let store = TokenStore::with_limits(Duration::from_secs(10), 3, 3);
        for user in ["a", "b", "c"] {
            store.mint(user).unwrap();
        }
        tokio::time::advance(Duration::from_secs(4)).await;
        let full = Err(TokenError::Full {
            retry_after: Duration::from_secs(6),
        });
        assert_eq!(store.mint("d"), full);
        tokio::time::advance(Duration::from_secs(7)).await;
        assert!(store.mint("d").is_ok());
        assert_eq!(store.outstanding(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_principal_fills_only_its_quota_and_is_told_when_it_frees() {
        let store = TokenStore::with_limits(Duration::from_secs(120), 100, 3);
        let first = store.mint("flood").unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        store.mint("flood").unwrap();
        store.mint("flood").unwrap();
        let quota = Err(TokenError::Quota {
            retry_after: Duration::from_secs(90),
        });
        assert_eq!(store.mint("flood"), quota);
        assert!(store.mint("other").is_ok());
        // A consumed token frees its slot at once.
        store.consume(&first).unwrap();
        assert!(store.mint("flood").is_ok());
        assert_eq!(store.lock().held_by("flood"), 3);
        tokio::time::advance(Duration::from_secs(121)).await;
        assert_eq!(store.sweep(), 4);
        assert!(store.lock().per_principal.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn sweeper_drops_expired_tokens_and_stops_when_cancelled() {
        let store = Arc::new(TokenStore::new(Duration::from_secs(5)));
        store.mint("u").unwrap();
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
            let token = store.mint("u").unwrap();
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
