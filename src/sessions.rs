//! Dashboard sessions (CONTRACT §11): signing in once with a password yields a session id (32 bytes
//! from the OS random source, base64url without padding) carried in an `HttpOnly` cookie, from which
//! WebSocket tokens are minted without another Argon2 check.
//!
//! Policies where the contract leaves them open:
//! - Expiry is absolute: a session ends `ttl` after sign-in however much it is used, so a stolen
//!   cookie cannot be kept alive forever by a script.
//! - Each session remembers a digest of the password hash the user signed in with; the HTTP layer
//!   ends a session whose user is gone or whose hash changed (a SIGHUP reload, [`SessionStore::retain`]).
//! - At most `--max-sessions-per-user` sessions per user (default 16) and `--max-sessions` in all
//!   (default 4096); a new one evicts the user's oldest, then the oldest of all, so a flood of
//!   sign-ins costs bounded memory and ends the flooder's own sessions first.
//! - Sessions survive a daemon restart: their digests are written to `sessions` in the state
//!   directory (mode 0600, write and rename) whenever the set changes, so a dashboard reconnects to a
//!   restarted daemon without asking for the password again.
//!
//! Only a SHA-256 digest of each session id is kept, in memory and on disk (as for tokens), so
//! neither a memory dump nor the state file yields a usable cookie. Expiry uses
//! [`tokio::time::Instant`] so tests can pause and advance the clock.
use crate::config::Config;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest cookie value worth hashing; a session id is 43 characters.
const MAX_ID_LEN: usize = 128;
/// Longest pause between two sweeps of expired sessions.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// The file in the state directory that keeps sessions across restarts.
const FILE_NAME: &str = "sessions";

// Session ids and password hashes are kept as SHA-256 digests, as tokens are.
pub use crate::tokens::{digest, Digest32};
use crate::tokens::{random_secret, sweep_periodically};

/// Why no session was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The OS random source failed; no session id can be made safely.
    #[error("the OS random source is unavailable")]
    Unavailable,
}

/// One session, under the digest of its id.
#[derive(Debug, Clone)]
struct Session {
    /// Who signed in.
    user: String,
    /// Digest of the password hash they signed in with: a changed password ends the session.
    credential: Digest32,
    /// When it ends (absolute expiry).
    expires: Instant,
}

/// A session as written to the state file.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// base64url digest of the session id.
    id: String,
    /// Who signed in.
    user: String,
    /// base64url digest of the password hash.
    credential: String,
    /// Expiry, seconds since the Unix epoch (an `Instant` does not survive a restart).
    expires: u64,
}

/// How long sessions last and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Lifetime from sign-in (absolute).
    pub ttl: Duration,
    /// Sessions one user may hold at once (browsers, devices), at least 1.
    pub per_user: usize,
    /// Sessions held at once in all, at least 1: bounds memory and the state file.
    pub total: usize,
}

impl SessionLimits {
    /// The limits `config` sets.
    pub fn of(config: &Config) -> SessionLimits {
        SessionLimits {
            ttl: config.session_ttl,
            per_user: config.max_sessions_per_user,
            total: config.max_sessions,
        }
    }
}

/// The open sessions.
#[derive(Debug)]
pub struct SessionStore {
    /// How long a session lasts and how many may be open.
    limits: SessionLimits,
    /// Where the sessions are kept across restarts; `None` keeps them in memory only.
    file: Option<PathBuf>,
    /// Digest of each session id → the session.
    sessions: Mutex<HashMap<Digest32, Session>>,
    /// Serialises writes of the file, so that the last writer always writes the latest set.
    writing: Mutex<()>,
}

impl SessionStore {
    /// A store with `limits`, kept in `state_dir` (loaded from there now; an unreadable or malformed
    /// file is reported and starts an empty set — its users sign in again).
    pub fn load(limits: SessionLimits, state_dir: &Path) -> SessionStore {
        let file = state_dir.join(FILE_NAME);
        let store = SessionStore {
            limits,
            file: Some(file.clone()),
            sessions: Mutex::new(HashMap::new()),
            writing: Mutex::new(()),
        };
        match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<Vec<Stored>>(&bytes) {
                Ok(stored) => store.restore(stored),
                Err(e) => {
                    tracing::warn!(path = %file.display(), error = %e, "ignoring a malformed sessions file")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %file.display(), error = %e, "cannot read the sessions file")
            }
        }
        store
    }

    /// A store kept in memory only (tests of the HTTP routes alone).
    pub fn in_memory(limits: SessionLimits) -> SessionStore {
        SessionStore {
            limits,
            file: None,
            sessions: Mutex::new(HashMap::new()),
            writing: Mutex::new(()),
        }
    }

    /// How long a new session lasts (the cookie's `Max-Age`).
    pub fn ttl(&self) -> Duration {
        self.limits.ttl
    }

    /// Opens a session for `user`, who signed in with the password hash whose digest is
    /// `credential`; returns the id for the cookie. Evicts the user's oldest session beyond
    /// the per-user limit and the oldest of all beyond the total.
    pub fn create(&self, user: &str, credential: Digest32) -> Result<String, SessionError> {
        let id = random_secret().ok_or(SessionError::Unavailable)?;
        let now = Instant::now();
        {
            let mut sessions = self.lock();
            sessions.retain(|_, s| s.expires > now);
            let SessionLimits {
                per_user, total, ..
            } = self.limits;
            while sessions.values().filter(|s| s.user == user).count() >= per_user.max(1) {
                evict_oldest(&mut sessions, |s| s.user == user);
            }
            while sessions.len() >= total.max(1) {
                evict_oldest(&mut sessions, |_| true);
            }
            sessions.insert(
                digest(&id),
                Session {
                    user: user.to_owned(),
                    credential,
                    expires: now + self.limits.ttl,
                },
            );
        }
        self.persist();
        Ok(id)
    }

    /// The user and credential digest of the live session `id`, if any.
    pub fn lookup(&self, id: &str) -> Option<(String, Digest32)> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return None;
        }
        let sessions = self.lock();
        sessions
            .get(&digest(id))
            .filter(|s| Instant::now() < s.expires)
            .map(|s| (s.user.clone(), s.credential))
    }

    /// Ends session `id` (sign-out); true if it was open.
    pub fn end(&self, id: &str) -> bool {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return false;
        }
        let ended = self.lock().remove(&digest(id)).is_some();
        if ended {
            self.persist();
        }
        ended
    }

    /// Keeps only the sessions for which `keep(user, credential)` holds (after a reload: the user
    /// still exists with the same password hash); returns how many ended.
    pub fn retain(&self, mut keep: impl FnMut(&str, &Digest32) -> bool) -> usize {
        self.retain_where(|s| keep(&s.user, &s.credential))
    }

    /// Open sessions (expired ones count until swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired session; returns how many were dropped.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        self.retain_where(|s| s.expires > now)
    }

    /// Sweeps expired sessions periodically (every TTL, at most every minute) until `stop` is
    /// cancelled.
    pub async fn sweep_until(self: Arc<Self>, stop: CancellationToken) {
        let period = self.limits.ttl.min(MAX_SWEEP_INTERVAL);
        sweep_periodically(period, stop, "expired sessions swept", || {
            // A sweep that drops something rewrites the state file: off the runtime's threads.
            let store = self.clone();
            async move {
                tokio::task::spawn_blocking(move || store.sweep())
                    .await
                    .unwrap_or(0)
            }
        })
        .await;
    }

    fn retain_where(&self, mut keep: impl FnMut(&Session) -> bool) -> usize {
        let ended = {
            let mut sessions = self.lock();
            let before = sessions.len();
            sessions.retain(|_, s| keep(s));
            before - sessions.len()
        };
        if ended > 0 {
            self.persist();
        }
        ended
    }

    /// Adds the unexpired sessions read from the file.
    fn restore(&self, stored: Vec<Stored>) {
        let now_unix = unix_now();
        let now = Instant::now();
        let mut sessions = self.lock();
        for s in stored {
            let (Some(id), Some(credential)) = (decode32(&s.id), decode32(&s.credential)) else {
                continue;
            };
            // A session never outlives the ttl now configured, however it was stored.
            let left = Duration::from_secs(s.expires.saturating_sub(now_unix)).min(self.limits.ttl);
            if left.is_zero() || sessions.len() >= self.limits.total {
                continue;
            }
            sessions.insert(
                id,
                Session {
                    user: s.user,
                    credential,
                    expires: now + left,
                },
            );
        }
    }

    /// Writes the current set to the state file (0600, write then rename), if there is one. A
    /// failure is logged: sessions then end at the next restart, nothing else breaks.
    fn persist(&self) {
        let Some(file) = &self.file else { return };
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let now_unix = unix_now();
        let stored: Vec<Stored> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.expires > now)
            .map(|(id, s)| Stored {
                id: URL_SAFE_NO_PAD.encode(id),
                user: s.user.clone(),
                credential: URL_SAFE_NO_PAD.encode(s.credential),
                expires: now_unix + (s.expires - now).as_secs(),
            })
            .collect();
        if let Err(e) = write_atomically(file, &stored) {
            tracing::warn!(path = %file.display(), error = %e, "cannot write the sessions file");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest32, Session>> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes the session that expires first among those `pick` selects.
fn evict_oldest(sessions: &mut HashMap<Digest32, Session>, pick: impl Fn(&Session) -> bool) {
    let oldest = sessions
        .iter()
        .filter(|(_, s)| pick(s))
        .min_by_key(|(_, s)| s.expires)
        .map(|(id, _)| *id);
    if let Some(id) = oldest {
        sessions.remove(&id);
    }
}

fn write_atomically(file: &Path, stored: &[Stored]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = file.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    out.write_all(&serde_json::to_vec(stored).map_err(std::io::Error::other)?)?;
    out.sync_data()?;
    std::fs::rename(&tmp, file)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn decode32(text: &str) -> Option<Digest32> {
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRED: Digest32 = [7; 32];
    const PER_USER: usize = 3;
    const TOTAL: usize = 8;

    fn limits(ttl_secs: u64) -> SessionLimits {
        SessionLimits {
            ttl: Duration::from_secs(ttl_secs),
            per_user: PER_USER,
            total: TOTAL,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn session_expires_after_its_ttl_however_used() {
        let store = SessionStore::in_memory(limits(60));
        let id = store.create("alice", CRED).unwrap();
        assert_eq!(id.len(), 43);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(store.lookup(&id), Some(("alice".to_owned(), CRED)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(store.lookup(&id), None, "absolute expiry, not sliding");
        assert_eq!(store.sweep(), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn only_a_digest_is_kept_and_sign_out_ends_it() {
        let store = SessionStore::in_memory(limits(60));
        let id = store.create("alice", CRED).unwrap();
        assert!(!format!("{store:?}").contains(&id));
        assert!(store.end(&id));
        assert!(!store.end(&id));
        assert_eq!(store.lookup(&id), None);
        assert_eq!(store.lookup(""), None);
    }

    #[tokio::test(start_paused = true)]
    async fn per_user_cap_evicts_that_users_oldest() {
        let store = SessionStore::in_memory(limits(600));
        let bob = store.create("bob", CRED).unwrap();
        let first = store.create("alice", CRED).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let rest: Vec<String> = (1..PER_USER)
            .map(|_| store.create("alice", CRED).unwrap())
            .collect();
        assert!(store.lookup(&first).is_some());
        store.create("alice", CRED).unwrap();
        assert_eq!(store.lookup(&first), None, "the oldest of alice's went");
        assert!(rest.iter().all(|id| store.lookup(id).is_some()));
        assert!(store.lookup(&bob).is_some(), "bob keeps his");
        assert_eq!(store.len(), PER_USER + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn total_cap_evicts_the_oldest_of_all() {
        let store = SessionStore::in_memory(limits(600));
        let first = store.create("user0", CRED).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        for i in 1..TOTAL {
            store.create(&format!("user{i}"), CRED).unwrap();
        }
        assert!(store.lookup(&first).is_some());
        let newest = store.create("late", CRED).unwrap();
        assert_eq!(store.len(), TOTAL);
        assert_eq!(store.lookup(&first), None);
        assert!(store.lookup(&newest).is_some());
    }

    #[test]
    fn retain_ends_sessions_of_removed_or_changed_users() {
        let store = SessionStore::in_memory(limits(60));
        let a = store.create("alice", CRED).unwrap();
        let b = store.create("bob", CRED).unwrap();
        assert_eq!(
            store.retain(|user, cred| user == "alice" && *cred == CRED),
            1
        );
        assert!(store.lookup(&a).is_some());
        assert_eq!(store.lookup(&b), None);
    }

    #[tokio::test]
    async fn sessions_survive_a_restart_in_a_0600_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::load(limits(600), dir.path());
        let kept = store.create("alice", CRED).unwrap();
        let ended = store.create("alice", CRED).unwrap();
        store.end(&ended);
        let path = dir.path().join(FILE_NAME);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&kept), "only digests on disk");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SessionStore::load(limits(600), dir.path());
        assert_eq!(again.lookup(&kept), Some(("alice".to_owned(), CRED)));
        assert_eq!(again.lookup(&ended), None);
        std::fs::write(&path, "not json").unwrap();
        assert!(SessionStore::load(limits(600), dir.path()).is_empty());
    }
}
