//! `GET /api/ws-token` with Basic credentials over real HTTP: the 200/401/429 shapes, identical
//! answers for unknown user and wrong password, oversized credentials refused before hashing,
//! per-address throttling (and `X-Forwarded-For` only when trusted), no CORS headers (RELIABILITY
//! 35, 36, 39, 44).
mod auth_support;

use auth_support::*;

const PATH: &str = "/api/ws-token";

async fn server(extra: &[&str]) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let users = write_users(
        dir.path(),
        &[("alice", "correct horse"), ("bob", "battery")],
    );
    let mut args = vec!["--users", users.to_str().unwrap()];
    args.extend_from_slice(extra);
    (serve(config(&args)).await, dir)
}

#[tokio::test]
async fn no_credentials_is_401_with_challenge_and_no_token() {
    let (srv, _dir) = server(&[]).await;
    let reply = get(srv.addr, PATH, &[]).await;
    assert_eq!(reply.status, 401);
    assert_common_headers(&reply);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Basic realm="proxytail", charset="UTF-8""#)
    );
    let body = reply.json();
    assert_eq!(body["status"], "error");
    assert!(body["message"].is_string());
    assert!(body.get("token").is_none());
}

#[tokio::test]
async fn correct_password_gets_a_token() {
    let (srv, _dir) = server(&[]).await;
    let reply = get(
        srv.addr,
        PATH,
        &[
            ("Authorization", &basic("alice", "correct horse")),
            ("Origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_common_headers(&reply);
    let body = reply.json();
    assert_eq!(body["status"], "success");
    let token = body["token"].as_str().unwrap();
    // 32 bytes, base64url without padding.
    assert_eq!(token.len(), 43);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(srv.state.tokens.consume(token).is_ok());
}

#[tokio::test]
async fn wrong_password_and_unknown_user_answer_identically() {
    let (srv, _dir) = server(&[]).await;
    let started = srv.state.auth.verifier().started();
    let wrong = get(
        srv.addr,
        PATH,
        &[("Authorization", &basic("alice", "wrong"))],
    )
    .await;
    let unknown = get(
        srv.addr,
        PATH,
        &[("Authorization", &basic("mallory", "correct horse"))],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    let strip_date = |r: &Reply| {
        r.headers
            .iter()
            .filter(|(n, _)| n != "date")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(strip_date(&wrong), strip_date(&unknown));
    assert_common_headers(&wrong);
    // Both paths ran Argon2 (the unknown user against the dummy hash).
    assert_eq!(srv.state.auth.verifier().started(), started + 2);
}

#[tokio::test]
async fn oversized_credentials_are_refused_before_hashing() {
    let (srv, _dir) = server(&[]).await;
    let before = srv.state.auth.verifier().started();
    let long_password = "p".repeat(10_000);
    let long_user = "u".repeat(300);
    let huge_header = format!("Basic {}", "A".repeat(64 * 1024));
    let cases = [
        basic("alice", &long_password),
        basic(&long_user, "correct horse"),
        basic("alice", &"x".repeat(1025)),
    ];
    for auth in &cases {
        let reply = get(srv.addr, PATH, &[("Authorization", auth)]).await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert_common_headers(&reply);
    }
    // A 64 KiB header is refused too: by us (401) or by the HTTP layer (431/400), never hashed.
    let reply = get(srv.addr, PATH, &[("Authorization", &huge_header)]).await;
    assert!(
        [400, 401, 431].contains(&reply.status),
        "status {}",
        reply.status
    );
    assert_eq!(
        srv.state.auth.verifier().started(),
        before,
        "no argon2 call"
    );
    // A 4 KiB + 1 header that hyper accepts reaches us and is refused unhashed.
    let just_over = format!("Basic {}", "A".repeat(4096));
    let reply = get(srv.addr, PATH, &[("Authorization", &just_over)]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        srv.state.auth.verifier().started(),
        before,
        "no argon2 call"
    );
}

#[tokio::test]
async fn malformed_basic_and_unknown_schemes_are_401() {
    let (srv, _dir) = server(&[]).await;
    for auth in [
        "Basic !!!not-base64!!!",
        "Basic bm9jb2xvbg==", // "nocolon"
        "Digest username=alice",
        "Bearer not.a.jwt",
    ] {
        let reply = get(srv.addr, PATH, &[("Authorization", auth)]).await;
        assert_eq!(reply.status, 401, "{auth}: {reply:?}");
        assert!(reply.header("www-authenticate").is_some());
    }
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let (srv, _dir) = server(&[]).await;
    for _ in 0..10 {
        let reply = get(
            srv.addr,
            PATH,
            &[("Authorization", &basic("alice", "nope"))],
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    // Locked out now: even the right password is refused, without hashing.
    let before = srv.state.auth.verifier().started();
    let reply = get(
        srv.addr,
        PATH,
        &[("Authorization", &basic("alice", "correct horse"))],
    )
    .await;
    assert_eq!(reply.status, 429, "{reply:?}");
    assert_common_headers(&reply);
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry), "retry-after {retry}");
    assert_eq!(reply.json()["status"], "error");
    assert_eq!(srv.state.auth.verifier().started(), before);
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_trusted() {
    // Not trusted: X-Forwarded-For does not spread failures over fake addresses.
    let (srv, _dir) = server(&[]).await;
    for i in 0..10 {
        let xff = format!("198.51.100.{i}");
        let auth = basic("alice", "nope");
        let reply = get(
            srv.addr,
            PATH,
            &[("Authorization", &auth), ("X-Forwarded-For", &xff)],
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    let reply = get(srv.addr, PATH, &[("X-Forwarded-For", "198.51.100.99")]).await;
    assert_eq!(reply.status, 429, "the loopback peer itself is locked out");
}

#[tokio::test]
async fn forwarded_for_keys_throttling_when_trusted_from_loopback() {
    let (srv, _dir) = server(&["--trust-forwarded-for"]).await;
    let auth = basic("alice", "nope");
    for _ in 0..10 {
        let reply = get(
            srv.addr,
            PATH,
            &[
                ("Authorization", &auth),
                ("X-Forwarded-For", "203.0.113.1, 198.51.100.1"),
            ],
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    // The last hop (what our proxy saw) is locked out …
    let locked = get(srv.addr, PATH, &[("X-Forwarded-For", "198.51.100.1")]).await;
    assert_eq!(locked.status, 429);
    // … another client behind the same proxy is not.
    let other = get(
        srv.addr,
        PATH,
        &[
            ("Authorization", &basic("alice", "correct horse")),
            ("X-Forwarded-For", "198.51.100.2"),
        ],
    )
    .await;
    assert_eq!(other.status, 200, "{other:?}");
}

#[tokio::test]
async fn no_cors_headers_on_any_answer_whatever_the_origin() {
    let (srv, _dir) = server(&[]).await;
    for auth in [basic("alice", "wrong"), String::new()] {
        let mut headers = vec![("Origin", "https://attacker.example")];
        if !auth.is_empty() {
            headers.push(("Authorization", &auth));
        }
        let reply = get(srv.addr, PATH, &headers).await;
        assert_eq!(reply.status, 401);
        assert_common_headers(&reply);
    }
}
