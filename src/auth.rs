//! Credentials: Basic against an Argon2 users file, Bearer JWTs; reloadable on SIGHUP.
use crate::config::Config;
use crate::error::StartupError;
use std::net::IpAddr;

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or unusable credentials.
    #[error("authentication required")]
    Missing,
    /// Wrong user, wrong password, bad JWT: one message for all, nothing to enumerate.
    #[error("invalid credentials")]
    Invalid,
    /// Too many failures from this address.
    #[error("too many failed attempts; retry later")]
    Throttled {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// Too many verifications in flight.
    #[error("server busy; retry later")]
    Busy,
}

/// Who was authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User name or JWT subject.
    pub name: String,
}

/// Checks credentials.
#[derive(Debug)]
pub struct Authenticator {}

impl Authenticator {
    /// Loads users and keys named by `config`.
    pub fn load(_config: &Config) -> Result<Authenticator, StartupError> {
        Ok(Authenticator {})
    }

    /// Re-reads users and keys; on error the previous ones stay.
    pub fn reload(&self) -> Result<(), StartupError> {
        Ok(())
    }

    /// Checks an `Authorization` header value (or a JWT cookie) from `peer`.
    pub async fn authenticate(
        &self,
        _authorization: Option<&str>,
        _cookie_jwt: Option<&str>,
        _peer: IpAddr,
    ) -> Result<Principal, AuthError> {
        Err(AuthError::Missing)
    }
}

/// Reads a password from the terminal (no echo) or stdin and returns its Argon2id PHC hash.
pub fn hash_password_from_stdin() -> Result<String, Box<dyn std::error::Error>> {
    Err("not implemented yet".into())
}
