//! Bearer JWTs: keys loaded from files (an HS256 secret and/or one asymmetric public key), each pinned
//! to its algorithm by configuration; header screening (`jku`, `jwk`, `x5u`, `x5c`, `crit`); claim
//! checks (`exp` required, `nbf`, `iss`, `aud`) with a small leeway.
use crate::config::Config;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::path::Path;

/// Clock skew tolerated on `exp` and `nbf`, in seconds: small, not the crate's 60 s, so that a token
/// expired 2 s ago is refused (RELIABILITY 42).
pub const LEEWAY_SECS: u64 = 1;
/// Shortest accepted HS256 secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a JWT was refused. Deliberately coarse: nothing of the token is kept, so logging it is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtReject {
    /// The header did not parse (including `alg: none` and unknown algorithms).
    #[error("malformed header")]
    Header,
    /// The header names a key source (`jku`, `jwk`, `x5u`, `x5c`) or critical extensions.
    #[error("forbidden header field")]
    ForbiddenHeader,
    /// No configured key uses the token's algorithm.
    #[error("algorithm not configured")]
    Algorithm,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` missing or passed, `nbf` in the future, wrong `iss` or `aud`, or malformed claims.
    #[error("claims refused")]
    Claims,
}

/// The claims proxytail reads; `exp`, `nbf`, `iss`, `aud` are checked by the crate.
#[derive(Debug, Deserialize)]
pub struct Claims {
    /// The subject, reported as the principal's name.
    pub sub: Option<String>,
    /// The principal's view (a filter expression, CONTRACT §6), checked by the caller.
    #[serde(rename = "proxytail_view")]
    pub view: Option<String>,
}

/// One accepted (algorithm, key) pair with its validation rules.
struct PinnedKey {
    /// The only algorithm this key accepts; a token naming another one never reaches it.
    algorithm: Algorithm,
    /// The verification key.
    key: DecodingKey,
    /// `exp`/`nbf`/`iss`/`aud` rules, with `algorithms` = [`algorithm`].
    validation: Validation,
}

/// Verifies Bearer JWTs against the configured keys.
pub struct JwtVerifier {
    /// At most two keys: the HS256 secret and one asymmetric public key.
    keys: Vec<PinnedKey>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are never printed.
        let algs: Vec<Algorithm> = self.keys.iter().map(|k| k.algorithm).collect();
        f.debug_struct("JwtVerifier")
            .field("algorithms", &algs)
            .finish()
    }
}

impl JwtVerifier {
    /// Loads the keys named by `config`; `None` when no JWT key is configured. Errors name the file
    /// or setting at fault.
    pub fn load(config: &Config) -> Result<Option<JwtVerifier>, String> {
        let mut keys = Vec::new();
        if let Some(path) = &config.jwt_secret_file {
            let secret = read_secret(path)?;
            keys.push(pinned(
                Algorithm::HS256,
                DecodingKey::from_secret(&secret),
                config,
            ));
        }
        match (&config.jwt_public_key_file, &config.jwt_algorithm) {
            (Some(path), Some(name)) => {
                let algorithm = parse_asymmetric(name)?;
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read JWT public key {}: {e}", path.display()))?;
                let key = match algorithm {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    _ => DecodingKey::from_rsa_pem(&pem),
                }
                .map_err(|e| {
                    format!(
                        "JWT public key {} is not a PEM {name} public key: {e}",
                        path.display()
                    )
                })?;
                keys.push(pinned(algorithm, key, config));
            }
            (Some(path), None) => {
                return Err(format!(
                    "jwt-public-key-file {} needs jwt-algorithm (RS256, ES256, EdDSA, …)",
                    path.display()
                ))
            }
            (None, Some(_)) => {
                return Err("jwt-algorithm is set but jwt-public-key-file is not".into())
            }
            (None, None) => {}
        }
        Ok((!keys.is_empty()).then_some(JwtVerifier { keys }))
    }

    /// Verifies `token`; returns the claims proxytail reads.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtReject> {
        let header = decode_header(token).map_err(|_| JwtReject::Header)?;
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(JwtReject::ForbiddenHeader);
        }
        let pinned = self
            .keys
            .iter()
            .find(|k| k.algorithm == header.alg)
            .ok_or(JwtReject::Algorithm)?;
        let data = decode::<Claims>(token, &pinned.key, &pinned.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat => JwtReject::Signature,
                _ => JwtReject::Claims,
            }
        })?;
        Ok(data.claims)
    }
}

/// Builds the key's validation: its algorithm only, `exp` required, `nbf` checked, small leeway,
/// `iss`/`aud` required and checked when configured (and `aud` ignored when not).
fn pinned(algorithm: Algorithm, key: DecodingKey, config: &Config) -> PinnedKey {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(iss) = &config.jwt_issuer {
        validation.set_issuer(&[iss]);
        required.push("iss");
    }
    match &config.jwt_audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    PinnedKey {
        algorithm,
        key,
        validation,
    }
}

/// Reads an HS256 secret: the file's bytes minus one trailing newline (`\n` or `\r\n`), at least
/// [`MIN_SECRET_BYTES`] long.
fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path)
        .map_err(|e| format!("cannot read JWT secret file {}: {e}", path.display()))?;
    let secret = secret_of(&raw);
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "JWT secret file {} holds {} bytes; at least {MIN_SECRET_BYTES} are required",
            path.display(),
            secret.len()
        ));
    }
    Ok(secret.to_vec())
}

/// The HS256 secret a secret file's bytes hold: all of them minus one trailing newline (`\n` or
/// `\r\n`). `check-config` measures the secret with this too, so it judges what the daemon uses.
pub fn secret_of(raw: &[u8]) -> &[u8] {
    match raw.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => raw,
    }
}

/// Parses the configured asymmetric algorithm; HMAC names are refused (the secret file is for HS256).
fn parse_asymmetric(name: &str) -> Result<Algorithm, String> {
    let algorithm: Algorithm = name
        .parse()
        .map_err(|_| format!("jwt-algorithm {name:?} is not a JWT algorithm name"))?;
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Err(format!(
            "jwt-algorithm {name} is symmetric; use jwt-secret-file for HS256"
        )),
        a => Ok(a),
    }
}

#[cfg(test)]
mod tests {
    use super::secret_of;

    #[test]
    fn secret_of_drops_one_line_end_only() {
        assert_eq!(secret_of(b"abc\n"), b"abc");
        assert_eq!(secret_of(b"abc\r\n"), b"abc");
        assert_eq!(secret_of(b"abc"), b"abc");
        assert_eq!(secret_of(b"abc\n\n"), b"abc\n");
        assert_eq!(secret_of(b"abc\r"), b"abc\r");
    }
}
