//! Bearer JWTs: HS256 from a secret file, RS256/ES256/EdDSA public keys pinned by configuration;
//! `alg: none`, wrong keys, HS/RS confusion, key-source headers, `exp`/`nbf`/`iss`/`aud` (RELIABILITY
//! 41, 42); the cookie; and load-time refusal of short secrets and mismatched keys. The PEM files
//! under `tests/data/jwt/` are throw-away keys generated with openssl for these tests only.
mod auth_support;

use auth_support::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use proxytail::auth::{AuthError, Authenticator};
use serde_json::json;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const SECRET: &str = "an-hs256-secret-that-is-at-least-32-bytes-long";
const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/jwt")
        .join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

struct Setup {
    auth: Authenticator,
    _dir: tempfile::TempDir,
}

/// An authenticator with the HS256 secret (newline-terminated, as editors save it) and `extra` args.
fn setup(extra: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut args = vec!["--jwt-secret-file", secret.to_str().unwrap()];
    args.extend_from_slice(extra);
    let auth = Authenticator::load(&config(&args)).unwrap();
    Setup { auth, _dir: dir }
}

fn now() -> i64 {
    get_current_timestamp() as i64
}

fn hs256(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A token with a hand-written header, signed with `key` under `alg`.
fn forge(
    header: serde_json::Value,
    claims: serde_json::Value,
    key: &EncodingKey,
    alg: Algorithm,
) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).unwrap();
    format!("{signing_input}.{signature}")
}

async fn bearer(auth: &Authenticator, token: &str) -> Result<String, AuthError> {
    auth.authenticate(Some(&format!("Bearer {token}")), None, PEER)
        .await
        .map(|p| p.name)
}

#[tokio::test]
async fn valid_hs256_is_accepted_with_its_subject() {
    let s = setup(&[]);
    let token = hs256(json!({ "sub": "dashboard", "exp": now() + 60 }));
    assert_eq!(bearer(&s.auth, &token).await.unwrap(), "dashboard");
    // The scheme is case-insensitive.
    let lower = s
        .auth
        .authenticate(Some(&format!("bearer {token}")), None, PEER)
        .await;
    assert!(lower.is_ok());
}

#[tokio::test]
async fn alg_none_is_refused() {
    let s = setup(&[]);
    let claims = json!({ "sub": "x", "exp": now() + 60 });
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert!(matches!(
        bearer(&s.auth, &token).await,
        Err(AuthError::Invalid)
    ));
    // Also with a signature copied from a valid token.
    let valid = hs256(claims.clone());
    let sig = valid.rsplit('.').next().unwrap();
    assert!(bearer(&s.auth, &format!("{token}{sig}")).await.is_err());
}

#[tokio::test]
async fn wrong_hs256_key_is_refused() {
    let s = setup(&[]);
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "exp": now() + 60 }),
        &EncodingKey::from_secret(b"another-secret-of-enough-length-0123456789"),
    )
    .unwrap();
    assert!(matches!(
        bearer(&s.auth, &token).await,
        Err(AuthError::Invalid)
    ));
}

#[tokio::test]
async fn key_source_headers_are_refused_even_when_signed_correctly() {
    let s = setup(&[]);
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let claims = json!({ "exp": now() + 60 });
    let cases = [
        json!({ "alg": "HS256", "typ": "JWT", "jku": "https://attacker.example/jwks.json" }),
        json!({ "alg": "HS256", "typ": "JWT", "jwk": { "kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET) } }),
        json!({ "alg": "HS256", "typ": "JWT", "x5u": "https://attacker.example/cert.pem" }),
        json!({ "alg": "HS256", "typ": "JWT", "crit": ["exp"] }),
    ];
    // The same forge with a plain header is accepted, so the refusals below are the header's doing.
    let plain = forge(
        json!({ "alg": "HS256", "typ": "JWT" }),
        claims.clone(),
        &key,
        Algorithm::HS256,
    );
    assert!(bearer(&s.auth, &plain).await.is_ok());
    for header in cases {
        let token = forge(header.clone(), claims.clone(), &key, Algorithm::HS256);
        assert!(bearer(&s.auth, &token).await.is_err(), "{header}");
    }
}

#[tokio::test]
async fn exp_nbf_and_leeway() {
    let s = setup(&[]);
    let t = now();
    for (claims, why) in [
        (json!({ "exp": t - 2 }), "expired by 2 s"),
        (json!({ "sub": "x" }), "missing exp"),
        (json!({ "exp": "tomorrow" }), "non-numeric exp"),
        (json!({ "exp": t + 60, "nbf": t + 30 }), "nbf in the future"),
    ] {
        assert!(bearer(&s.auth, &hs256(claims)).await.is_err(), "{why}");
    }
    assert!(
        bearer(&s.auth, &hs256(json!({ "exp": t + 60, "nbf": t - 1 })))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn issuer_and_audience_checked_when_configured() {
    let s = setup(&[
        "--jwt-issuer",
        "https://idp.example",
        "--jwt-audience",
        "proxytail",
    ]);
    let t = now() + 60;
    let ok = json!({ "exp": t, "iss": "https://idp.example", "aud": "proxytail" });
    assert!(bearer(&s.auth, &hs256(ok)).await.is_ok());
    let in_list = json!({ "exp": t, "iss": "https://idp.example", "aud": ["other", "proxytail"] });
    assert!(bearer(&s.auth, &hs256(in_list)).await.is_ok());
    for bad in [
        json!({ "exp": t, "iss": "https://evil.example", "aud": "proxytail" }),
        json!({ "exp": t, "iss": "https://idp.example", "aud": "someone-else" }),
        json!({ "exp": t, "aud": "proxytail" }),
        json!({ "exp": t, "iss": "https://idp.example" }),
    ] {
        assert!(bearer(&s.auth, &hs256(bad.clone())).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn audience_in_token_is_ignored_when_none_configured() {
    let s = setup(&[]);
    let token = hs256(json!({ "exp": now() + 60, "aud": "anything" }));
    assert!(bearer(&s.auth, &token).await.is_ok());
}

fn with_public_key(alg: &str, pub_pem: &str) -> Setup {
    let path = data(pub_pem);
    setup(&[
        "--jwt-public-key-file",
        path.to_str().unwrap(),
        "--jwt-algorithm",
        alg,
    ])
}

#[tokio::test]
async fn asymmetric_keys_verify_their_pinned_algorithm() {
    let claims = json!({ "sub": "svc", "exp": now() + 60 });
    let cases = [
        (
            "RS256",
            "rs256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem("rs256.key.pem")).unwrap(),
        ),
        (
            "ES256",
            "es256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem("es256.key.pem")).unwrap(),
        ),
        (
            "EdDSA",
            "ed25519",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&pem("ed25519.key.pem")).unwrap(),
        ),
    ];
    for (name, file, alg, key) in &cases {
        let s = with_public_key(name, &format!("{file}.pub.pem"));
        let token = encode(&Header::new(*alg), &claims, key).unwrap();
        assert_eq!(bearer(&s.auth, &token).await.unwrap(), "svc", "{name}");
        // The HS256 secret still works beside it.
        assert!(bearer(&s.auth, &hs256(claims.clone())).await.is_ok());
        // Another key type's token is refused: the algorithm is pinned per key.
        for (other, _, other_alg, other_key) in &cases {
            if other != name {
                let token = encode(&Header::new(*other_alg), &claims, other_key).unwrap();
                assert!(
                    bearer(&s.auth, &token).await.is_err(),
                    "{other} token vs {name} key"
                );
            }
        }
    }
}

#[tokio::test]
async fn hs_rs_confusion_is_refused() {
    // The attacker signs HS256 with the server's *public* RSA key as the HMAC secret.
    let s = with_public_key("RS256", "rs256.pub.pem");
    let public = pem("rs256.pub.pem");
    let claims = json!({ "sub": "admin", "exp": now() + 60 });
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert!(matches!(
        bearer(&s.auth, &forged).await,
        Err(AuthError::Invalid)
    ));
    // And a token claiming RS256 but carrying an HMAC signature.
    let forged = forge(
        json!({ "alg": "RS256", "typ": "JWT" }),
        claims,
        &EncodingKey::from_secret(&public),
        Algorithm::HS256,
    );
    assert!(bearer(&s.auth, &forged).await.is_err());
}

#[tokio::test]
async fn only_asymmetric_configured_refuses_hs256() {
    let path = data("rs256.pub.pem");
    let auth = Authenticator::load(&config(&[
        "--jwt-public-key-file",
        path.to_str().unwrap(),
        "--jwt-algorithm",
        "RS256",
    ]))
    .unwrap();
    let token = hs256(json!({ "exp": now() + 60 }));
    assert!(bearer(&auth, &token).await.is_err());
}

#[tokio::test]
async fn cookie_carries_the_jwt_and_the_header_wins() {
    let s = setup(&["--jwt-cookie", "pt_jwt"]);
    let good = hs256(json!({ "sub": "spa", "exp": now() + 60 }));
    let p = s.auth.authenticate(None, Some(&good), PEER).await.unwrap();
    assert_eq!(p.name, "spa");
    let bad_header = s
        .auth
        .authenticate(Some("Bearer nope"), Some(&good), PEER)
        .await;
    assert!(
        bad_header.is_err(),
        "an Authorization header, when present, is what is checked"
    );
    assert!(s
        .auth
        .authenticate(None, Some("garbage"), PEER)
        .await
        .is_err());
}

#[tokio::test]
async fn cookie_over_http_gets_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let srv = serve(config(&[
        "--jwt-secret-file",
        secret.to_str().unwrap(),
        "--jwt-cookie",
        "pt_jwt",
    ]))
    .await;
    let jwt = hs256(json!({ "sub": "spa", "exp": now() + 60 }));
    let cookie = format!("theme=dark; pt_jwt={jwt}");
    let reply = get(srv.addr, "/api/ws-token", &[("Cookie", &cookie)]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_common_headers(&reply);
    let bearer_reply = get(
        srv.addr,
        "/api/ws-token",
        &[("Authorization", &format!("Bearer {jwt}"))],
    )
    .await;
    assert_eq!(bearer_reply.status, 200);
    let expired = hs256(json!({ "exp": now() - 10 }));
    let reply = get(
        srv.addr,
        "/api/ws-token",
        &[("Authorization", &format!("Bearer {expired}"))],
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(reply.header("www-authenticate").is_some());
}

#[test]
fn short_secret_and_bad_key_settings_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.secret");
    // 31 bytes plus the newline that is stripped.
    std::fs::write(&short, format!("{}\n", "s".repeat(31))).unwrap();
    let err =
        Authenticator::load(&config(&["--jwt-secret-file", short.to_str().unwrap()])).unwrap_err();
    assert!(err.to_string().contains(short.to_str().unwrap()), "{err}");
    assert!(err.to_string().contains("32"), "{err}");

    let exactly = dir.path().join("ok.secret");
    std::fs::write(&exactly, format!("{}\n", "s".repeat(32))).unwrap();
    assert!(
        Authenticator::load(&config(&["--jwt-secret-file", exactly.to_str().unwrap()])).is_ok()
    );

    let rsa = data("rs256.pub.pem");
    let ec = data("es256.pub.pem");
    let rsa = rsa.to_str().unwrap();
    let ec = ec.to_str().unwrap();
    for args in [
        vec!["--jwt-public-key-file", rsa],
        vec!["--jwt-algorithm", "RS256"],
        vec!["--jwt-public-key-file", rsa, "--jwt-algorithm", "HS256"],
        vec!["--jwt-public-key-file", rsa, "--jwt-algorithm", "none"],
        vec!["--jwt-public-key-file", ec, "--jwt-algorithm", "RS256"],
        vec![
            "--jwt-public-key-file",
            "/nonexistent/key.pem",
            "--jwt-algorithm",
            "ES256",
        ],
    ] {
        assert!(Authenticator::load(&config(&args)).is_err(), "{args:?}");
    }
}
