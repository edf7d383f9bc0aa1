//! Dashboard sessions (CONTRACT §11, RELIABILITY 72) through the real HTTP interface: `POST
//! /api/session` with Basic credentials sets an `HttpOnly; SameSite=Strict` cookie, `/api/ws-token`
//! mints from it without another Argon2 check, sign-out, expiry, a foreign `Origin`, `Secure`
//! behind a trusted HTTPS proxy, and (on the real binary) SIGHUP removing the user or changing the
//! password, and a restart that keeps the session; a token minted from a session carries the
//! user's view as reloaded, not as it was at sign-in.
mod common;

use common::process::{LogTail, Proc};
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// `method /api/session` with `headers`.
async fn session(addr: SocketAddr, method: &str, headers: &[(&str, &str)]) -> HttpResponse {
    common::http::request_within(addr, method, "/api/session", headers, WAIT).await
}

/// Signs in as [`USER`] and returns the response and the `name=value` pair to send back.
async fn sign_in(addr: SocketAddr) -> (HttpResponse, String) {
    let credentials = basic(USER, PASSWORD);
    let r = session(addr, "POST", &[("authorization", credentials.as_str())]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    (r, cookie)
}

/// `GET /api/ws-token` sending only `cookie`.
async fn token_with(addr: SocketAddr, cookie: &str) -> HttpResponse {
    http_get(addr, "/api/ws-token", &[("cookie", cookie)]).await
}

/// The attributes of a `Set-Cookie` value after its `name=value`, lower-cased and trimmed.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_that_mints_tokens_without_argon2() {
    let srv = Server::start(TestConfig::with_users(&[])).await;
    let (r, cookie) = sign_in(srv.addr).await;
    assert_eq!(r.json()["user"], USER);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let attrs = attributes(r.header("set-cookie").expect("set-cookie"));
    for want in ["httponly", "samesite=strict", "path=/", "max-age=43200"] {
        assert!(attrs.iter().any(|a| a == want), "{want} in {attrs:?}");
    }
    assert!(
        !attrs.iter().any(|a| a == "secure"),
        "plain HTTP: {attrs:?}"
    );
    let (name, id) = cookie.split_once('=').expect("name=value");
    assert_eq!(name, "proxytail_session");
    assert_eq!(id.len(), 43, "32 random bytes, base64url");
    assert_eq!(srv.state.auth.verifier().started(), 1, "one Argon2 check");

    let who = session(srv.addr, "GET", &[("cookie", cookie.as_str())]).await;
    assert_eq!((who.status, who.json()["user"].clone()), (200, USER.into()));
    let t = token_with(srv.addr, &cookie).await;
    assert_eq!(t.status, 200, "{t:?}");
    let token = t.json()["token"].as_str().expect("token").to_owned();
    srv.publish(1..=1, 1);
    let mut ws = srv.connect(&format!("token={token}&since=0")).await;
    assert_eq!(read_ids(&mut ws, 1).await, vec![1], "the token streams");
    for _ in 0..3 {
        assert_eq!(token_with(srv.addr, &cookie).await.status, 200);
    }
    assert_eq!(
        srv.state.auth.verifier().started(),
        1,
        "tokens from the cookie cost no Argon2 check"
    );
    // A cookie that names no session is no credential.
    let forged = format!("proxytail_session={}", "A".repeat(43));
    let r = token_with(srv.addr, &forged).await;
    assert_eq!(r.status, 401);
    // A browser script gets no password prompt (no challenge); other clients keep it (CONTRACT §1).
    assert!(r.header("www-authenticate").is_some());
    let scripted = http_get(
        srv.addr,
        "/api/ws-token",
        &[("cookie", forged.as_str()), ("sec-fetch-mode", "cors")],
    )
    .await;
    assert_eq!(scripted.status, 401);
    assert_eq!(scripted.header("www-authenticate"), None);
    srv.stop().await;
}

#[tokio::test]
async fn wrong_password_or_no_basic_opens_no_session() {
    let srv = Server::start(TestConfig::with_users(&[])).await;
    let wrong = basic(USER, "wrong");
    let r = session(srv.addr, "POST", &[("authorization", wrong.as_str())]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(r.header("www-authenticate"), None, "no browser prompt");
    let r = session(srv.addr, "POST", &[]).await;
    assert_eq!(r.status, 401);
    let r = session(srv.addr, "POST", &[("authorization", "Bearer a.b.c")]).await;
    assert_eq!(r.status, 401, "only a password opens a session");
    assert!(srv.state.sessions.is_empty());
    assert_eq!(session(srv.addr, "PUT", &[]).await.status, 405);
    srv.stop().await;
}

#[tokio::test]
async fn sign_out_ends_the_session_and_clears_the_cookie() {
    let srv = Server::start(TestConfig::with_users(&[])).await;
    let (_, cookie) = sign_in(srv.addr).await;
    let (_, other) = sign_in(srv.addr).await;
    assert_eq!(token_with(srv.addr, &cookie).await.status, 200);
    let out = session(srv.addr, "DELETE", &[("cookie", cookie.as_str())]).await;
    assert_eq!(out.status, 204, "{out:?}");
    let cleared = out.header("set-cookie").expect("the cookie is cleared");
    assert!(cleared.starts_with("proxytail_session=;"), "{cleared}");
    assert!(attributes(cleared).iter().any(|a| a == "max-age=0"));
    assert_eq!(token_with(srv.addr, &cookie).await.status, 401);
    assert_eq!(
        session(srv.addr, "GET", &[("cookie", cookie.as_str())])
            .await
            .status,
        401
    );
    assert_eq!(
        token_with(srv.addr, &other).await.status,
        200,
        "another sign-in (another tab or device) is its own session"
    );
    // Signing out twice, or without a session, is harmless.
    let again = session(srv.addr, "DELETE", &[("cookie", cookie.as_str())]).await;
    assert_eq!(again.status, 204);
    srv.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_can_neither_sign_in_nor_sign_out() {
    let srv = Server::start(TestConfig::with_users(&[])).await;
    let credentials = basic(USER, PASSWORD);
    let evil = [
        ("authorization", credentials.as_str()),
        ("origin", "http://evil.example"),
    ];
    let r = session(srv.addr, "POST", &evil).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(
        srv.state.auth.verifier().started(),
        0,
        "refused before any password check"
    );
    let own = format!("http://{}", srv.addr);
    let r = session(
        srv.addr,
        "POST",
        &[
            ("authorization", credentials.as_str()),
            ("origin", own.as_str()),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "the daemon's own origin signs in");
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap();
    let r = session(
        srv.addr,
        "DELETE",
        &[("cookie", cookie), ("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(token_with(srv.addr, cookie).await.status, 200, "still open");
    srv.stop().await;
}

#[tokio::test]
async fn secure_only_when_a_trusted_proxy_says_https() {
    let trusted = Server::start(TestConfig::with_users(&["--trust-forwarded-for"])).await;
    let untrusted = Server::start(TestConfig::with_users(&[])).await;
    let credentials = basic(USER, PASSWORD);
    for (srv, proto, secure) in [
        (&trusted, "https", true),
        (&trusted, "http", false),
        (&untrusted, "https", false),
    ] {
        let r = session(
            srv.addr,
            "POST",
            &[
                ("authorization", credentials.as_str()),
                ("x-forwarded-proto", proto),
            ],
        )
        .await;
        assert_eq!(r.status, 200);
        let attrs = attributes(r.header("set-cookie").unwrap());
        assert_eq!(
            attrs.iter().any(|a| a == "secure"),
            secure,
            "{proto}: {attrs:?}"
        );
    }
    trusted.stop().await;
    untrusted.stop().await;
    // Behind a TLS proxy published as an https public URL: its Host means the browser used TLS.
    let public = Server::start(TestConfig::with_users(&[
        "--public-url",
        "https://proxy.example/",
    ]))
    .await;
    for (host, secure) in [("proxy.example", true), ("127.0.0.1", false)] {
        let r = session(
            public.addr,
            "POST",
            &[("authorization", credentials.as_str()), ("host", host)],
        )
        .await;
        assert_eq!(r.status, 200, "{host}: {r:?}");
        let attrs = attributes(r.header("set-cookie").unwrap());
        assert_eq!(
            attrs.iter().any(|a| a == "secure"),
            secure,
            "{host}: {attrs:?}"
        );
    }
    public.stop().await;
}

#[tokio::test]
async fn a_session_expires_after_the_configured_ttl() {
    let srv = Server::start(TestConfig::with_users(&["--session-ttl", "1"])).await;
    let (r, cookie) = sign_in(srv.addr).await;
    assert!(attributes(r.header("set-cookie").unwrap())
        .iter()
        .any(|a| a == "max-age=1"));
    assert_eq!(token_with(srv.addr, &cookie).await.status, 200);
    // The passage of time is what is tested here: there is no event to await instead.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(token_with(srv.addr, &cookie).await.status, 401);
    assert_eq!(srv.state.sessions.sweep(), 1, "swept once expired");
    srv.stop().await;
}

/// The real binary's arguments for a daemon on `dir` (users file `users`, state dir `state`).
fn daemon_args(dir: &std::path::Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    [
        "--listen",
        "127.0.0.1:0",
        "--access-log",
        &path("access.log"),
        "--users",
        &path("users"),
        "--state-dir",
        &path("state"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_and_end_when_sighup_removes_the_user_or_changes_the_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("state")).expect("state dir");
    common::users::write_users(dir.path(), &[(USER, PASSWORD), ("bob", "bobs password")]);
    let log = LogTail::default();
    let mut daemon = Proc::start(&daemon_args(dir.path()), &log, WAIT);
    let (_, alice) = sign_in(daemon.addr).await;
    let bob_basic = basic("bob", "bobs password");
    let r = session(
        daemon.addr,
        "POST",
        &[("authorization", bob_basic.as_str())],
    )
    .await;
    let bob = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // A restart keeps both sessions (their digests are in the state dir, mode 0600).
    let status = daemon.terminate(WAIT);
    assert!(status.success(), "{status}");
    let mut daemon = Proc::start(&daemon_args(dir.path()), &log, WAIT);
    assert_eq!(token_with(daemon.addr, &alice).await.status, 200);
    assert_eq!(token_with(daemon.addr, &bob).await.status, 200);

    // alice gets a new password, bob is removed; SIGHUP ends both sessions.
    common::users::write_users(dir.path(), &[(USER, "a new password")]);
    daemon.signal("-HUP");
    daemon.await_line("reloaded users and keys", WAIT);
    assert_eq!(token_with(daemon.addr, &alice).await.status, 401);
    assert_eq!(token_with(daemon.addr, &bob).await.status, 401);
    let status = daemon.terminate(WAIT);
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_session_mints_with_the_users_current_view_not_the_one_at_sign_in() {
    // CONTRACT §6 views: the session carries the user, and the view is read at each mint.
    let srv = Server::start(TestConfig::with_users(&[])).await;
    let users = srv.files.dir.path().join("users");
    let (_, cookie) = sign_in(srv.addr).await;
    // Odd ids GET, even ids POST.
    let records = (1..=6).map(|id| {
        let method = if id % 2 == 1 { "GET" } else { "POST" };
        let mut entry = parsers::Entry {
            method: Some(method.into()),
            destination: Some(format!("http://example.com/{id}").into()),
            ..Default::default()
        };
        proxytail::hub::Record::new(id, &mut entry)
    });
    srv.state.hub.publish(records.collect());
    let stream = |cookie: String| {
        let addr = srv.addr;
        async move {
            let t = token_with(addr, &cookie).await;
            assert_eq!(t.status, 200, "{t:?}");
            let token = t.json()["token"].as_str().expect("token").to_owned();
            connect(&format!("ws://{addr}/api/ws/logs?token={token}&since=0")).await
        }
    };
    let mut before = stream(cookie.clone()).await;
    assert_eq!(read_ids(&mut before, 6).await, vec![1, 2, 3, 4, 5, 6]);
    // Same password hash (the session stays open), a view added, reloaded as SIGHUP does.
    // alice's line is the file's last.
    let text = std::fs::read_to_string(&users).expect("users");
    let text = format!("{}:method:POST\n", text.trim_end());
    std::fs::write(&users, text).expect("users");
    srv.state.auth.reload().expect("reload");
    let mut after = stream(cookie).await;
    assert_eq!(read_ids(&mut after, 3).await, vec![2, 4, 6]);
    assert_quiet(&mut after).await;
}
