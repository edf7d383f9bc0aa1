//! Credentials: Basic against an Argon2 users file, Bearer JWTs (header or cookie); brute-force
//! throttling and a cap on concurrent Argon2 work; reloadable on SIGHUP. No warp types here: the
//! checks return domain errors that `http::token` turns into responses.
//!
//! Policies (where the contract leaves a number open):
//! - Argon2 runs on the blocking pool under a cap of one permit per core (at most 2), each hash in a
//!   work area mapped for it (handed on within a burst, unmapped after), with a queue of
//!   `--sign-in-queue` (default 128) waiting at most 10 s; beyond either the answer is 503 with a
//!   `Retry-After` of the estimated time for the queue ahead to drain ([`verify`]).
//! - 10 failures from one address (an IPv6 /64) within 60 s lock it out for 300 s: 429 with
//!   `Retry-After` ([`throttle`]); a success clears the count; "busy" and "no credentials" do not count.
//! - Credentials over [`MAX_HEADER_BYTES`], user names over 256 bytes and passwords over 1 KiB are
//!   refused (401) without hashing; unknown users verify against a dummy hash made at load with the
//!   first user's parameters.
//! - JWT leeway is 1 s ([`jwt::LEEWAY_SECS`]), so a token expired 2 s ago is refused.
//!
//! Secrets never reach the logs: neither passwords, hashes, JWTs nor attempted user names (people
//! type passwords into the user field) are ever given to `tracing`.
pub mod jwt;
pub mod throttle;
pub mod users;
pub mod verify;

use crate::config::Config;
use crate::error::StartupError;
use crate::filter::Filter;
use base64::Engine;
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

pub use users::{hash_password, HashError};

/// Longest accepted `Authorization` header (or JWT cookie), in bytes; longer is refused unhashed.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or unusable credentials.
    #[error("authentication required")]
    Missing,
    /// Wrong user, wrong password, bad JWT: one message for all, nothing to enumerate.
    #[error("invalid credentials")]
    Invalid,
    /// A valid JWT whose `proxytail_view` claim is not a filter expression: the issuer's mistake,
    /// named so it can be fixed (401; not counted as a failed guess).
    #[error("invalid proxytail_view claim: {0}")]
    BadView(String),
    /// Too many failures from this address.
    #[error("too many failed attempts; retry later")]
    Throttled {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// Too many verifications in flight.
    #[error("server busy; retry later")]
    Busy {
        /// Seconds until the verifications ahead are likely done.
        retry_after: u64,
    },
}

/// Who was authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User name or JWT subject.
    pub name: String,
    /// What they may see (a users-file view or the JWT's `proxytail_view` claim); matches
    /// everything when they have none. It travels with their tokens to their subscriptions.
    pub view: Filter,
}

/// Users and keys as loaded from their files; replaced as a whole on reload.
struct Credentials {
    /// User name → Argon2 PHC string.
    users: HashMap<String, Arc<str>>,
    /// User name → their view, for users that have one.
    views: HashMap<String, Filter>,
    /// A hash of a random password with the first user's parameters, verified for unknown users so
    /// that they cost the same as a wrong password. `None` when there are no users.
    dummy: Option<Arc<str>>,
    /// JWT keys, when configured.
    jwt: Option<jwt::JwtVerifier>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are never printed.
        f.debug_struct("Credentials")
            .field("users", &self.users.len())
            .field("jwt", &self.jwt)
            .finish()
    }
}

impl Credentials {
    /// Reads the users file and JWT keys named by `config`.
    fn load(config: &Config) -> Result<Credentials, StartupError> {
        let mut users = HashMap::new();
        let mut views = HashMap::new();
        let mut dummy = None;
        if let Some(path) = &config.users {
            let file =
                users::UsersFile::load(path).map_err(|e| StartupError::Auth(e.to_string()))?;
            for (name, hash) in file.users() {
                if dummy.is_none() {
                    let params = users::check_hash(hash).map_err(StartupError::Auth)?;
                    let mut random = [0u8; 24];
                    rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
                    let password = base64::engine::general_purpose::STANDARD_NO_PAD.encode(random);
                    let hash = users::hash_password_with(&password, &params)
                        .map_err(|e| StartupError::Auth(format!("dummy hash: {e}")))?;
                    dummy = Some(Arc::from(hash));
                }
                users.insert(name.to_owned(), Arc::from(hash));
            }
            for (name, view) in file.views() {
                // Checked when the file was parsed; a failure here would be a grammar change.
                let view = Filter::parse(view)
                    .map_err(|e| StartupError::Auth(format!("user {name}: view: {e}")))?;
                views.insert(name.to_owned(), view);
            }
            if users.is_empty() {
                tracing::warn!(path = %path.display(), "the users file lists no user");
            }
        }
        let jwt = jwt::JwtVerifier::load(config).map_err(StartupError::Auth)?;
        if config.users.is_none() && jwt.is_none() {
            tracing::warn!("neither a users file nor a JWT key is configured: every token request will be refused");
        }
        Ok(Credentials {
            users,
            views,
            dummy,
            jwt,
        })
    }
}

/// Checks credentials.
#[derive(Debug)]
pub struct Authenticator {
    /// The configuration the files were named by, re-read on reload.
    config: Config,
    /// The current users and keys; a reload swaps the `Arc` in one step.
    current: RwLock<Arc<Credentials>>,
    /// Argon2 under a concurrency cap.
    verifier: verify::Verifier,
    /// Failures per client address.
    throttle: throttle::Throttle,
}

impl Authenticator {
    /// Loads users and keys named by `config`.
    pub fn load(config: &Config) -> Result<Authenticator, StartupError> {
        Authenticator::load_with(
            config,
            verify::Verifier::for_this_machine(config.sign_in_queue),
            throttle::ThrottleLimits::default(),
        )
    }

    /// Like [`Authenticator::load`] with an explicit verification cap and throttle limits.
    pub fn load_with(
        config: &Config,
        verifier: verify::Verifier,
        limits: throttle::ThrottleLimits,
    ) -> Result<Authenticator, StartupError> {
        let credentials = Credentials::load(config)?;
        Ok(Authenticator {
            config: config.clone(),
            current: RwLock::new(Arc::new(credentials)),
            verifier,
            throttle: throttle::Throttle::new(limits),
        })
    }

    /// Re-reads users and keys; on error the previous ones stay.
    pub fn reload(&self) -> Result<(), StartupError> {
        let fresh = Arc::new(Credentials::load(&self.config)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// A digest of `user`'s current password hash, or `None` when the users file no longer lists
    /// them: a dashboard session holds the digest it was opened with, and ends when they differ.
    pub fn credential_of(&self, user: &str) -> Option<crate::sessions::Digest32> {
        let credentials = self.current.read().unwrap_or_else(|e| e.into_inner());
        credentials
            .users
            .get(user)
            .map(|hash| crate::sessions::digest(hash))
    }

    /// `user`'s view as the users file says now (matches everything when they have none): a
    /// dashboard session takes it when it mints a token, so a changed view applies to the next one.
    pub fn view_of(&self, user: &str) -> Filter {
        let credentials = self.current.read().unwrap_or_else(|e| e.into_inner());
        credentials.views.get(user).cloned().unwrap_or_default()
    }

    /// The Argon2 verifier, whose counters tests and health read.
    pub fn verifier(&self) -> &verify::Verifier {
        &self.verifier
    }

    /// Checks an `Authorization` header value (or a JWT cookie) from `peer`. A header, when present,
    /// wins over the cookie. `peer` is the throttling key (already resolved from `X-Forwarded-For`
    /// where that is trusted).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        cookie_jwt: Option<&str>,
        peer: IpAddr,
    ) -> Result<Principal, AuthError> {
        if let Err(retry_after) = self.throttle.check(peer) {
            return Err(AuthError::Throttled { retry_after });
        }
        let credentials = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let result = match (authorization, cookie_jwt) {
            (Some(header), _) => self.check_header(&credentials, header).await,
            (None, Some(jwt)) => check_jwt(&credentials, jwt),
            (None, None) => Err(AuthError::Missing),
        };
        match &result {
            Ok(principal) => {
                self.throttle.record_success(peer);
                // A JWT subject is client text: escaped, never raw in the log.
                let user = principal.name.escape_debug();
                tracing::debug!(%user, %peer, "authenticated");
            }
            Err(AuthError::Invalid) => match self.throttle.record_failure(peer) {
                Some(secs) => {
                    tracing::warn!(%peer, lockout_secs = secs, "authentication failed; address locked out")
                }
                None => tracing::info!(%peer, "authentication failed"),
            },
            Err(AuthError::Busy { .. }) => {
                tracing::warn!(%peer, "password verification cap reached")
            }
            Err(_) => {}
        }
        result
    }

    async fn check_header(
        &self,
        credentials: &Credentials,
        header: &str,
    ) -> Result<Principal, AuthError> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(AuthError::Invalid);
        }
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) = parse_basic(rest).ok_or(AuthError::Invalid)?;
            self.check_password(credentials, &user, password).await
        } else if scheme.eq_ignore_ascii_case("bearer") {
            check_jwt(credentials, rest)
        } else {
            Err(AuthError::Invalid)
        }
    }

    async fn check_password(
        &self,
        credentials: &Credentials,
        user: &str,
        password: String,
    ) -> Result<Principal, AuthError> {
        let known = credentials.users.get(user);
        // Unknown users verify against the dummy hash: same parameters, same work, same answer.
        let Some(hash) = known.or(credentials.dummy.as_ref()) else {
            return Err(AuthError::Invalid);
        };
        let ok = self
            .verifier
            .verify(hash.clone(), password)
            .await
            .map_err(|verify::Busy { retry_after }| AuthError::Busy { retry_after })?;
        if ok && known.is_some() {
            Ok(Principal {
                name: user.to_owned(),
                view: credentials.views.get(user).cloned().unwrap_or_default(),
            })
        } else {
            Err(AuthError::Invalid)
        }
    }
}

/// Decodes `base64(user:password)` (UTF-8) and refuses oversized parts before any hashing.
fn parse_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty()
        || user.len() > users::MAX_USER_BYTES
        || password.is_empty()
        || password.len() > users::MAX_PASSWORD_BYTES
    {
        return None;
    }
    Some((user.to_owned(), password.to_owned()))
}

fn check_jwt(credentials: &Credentials, token: &str) -> Result<Principal, AuthError> {
    if token.is_empty() || token.len() > MAX_HEADER_BYTES {
        return Err(AuthError::Invalid);
    }
    let verifier = credentials.jwt.as_ref().ok_or(AuthError::Invalid)?;
    match verifier.verify(token) {
        Ok(claims) => {
            let view = match claims.view.as_deref().map(Filter::parse) {
                None => Filter::default(),
                Some(Ok(view)) => view,
                Some(Err(e)) => return Err(AuthError::BadView(e.to_string())),
            };
            Ok(Principal {
                name: claims.sub.unwrap_or_else(|| "jwt".to_owned()),
                view,
            })
        }
        Err(reason) => {
            // The reason is a fixed phrase; nothing of the token is logged.
            tracing::debug!(%reason, "JWT refused");
            Err(AuthError::Invalid)
        }
    }
}

/// Reads a password from the terminal (no echo, asked twice) or one line of stdin, and returns its
/// Argon2id PHC hash.
pub fn hash_password_from_stdin() -> Result<String, HashError> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            return Err(HashError::Mismatch);
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        strip_newline(&mut line);
        line
    };
    hash_password(&password)
}

/// Removes one trailing `\n` or `\r\n`.
fn strip_newline(line: &mut String) {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
}
