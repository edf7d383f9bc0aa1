//! No password, hash, token or JWT ever reaches the logs (CONTRACT §5, RELIABILITY 43): every
//! tracing event of the process, at TRACE level, is captured into a buffer across successful and
//! failed requests of every kind, and searched for the secrets.
mod auth_support;

use auth_support::*;
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};

const SECRET: &str = "logging-test-secret-with-more-than-32-bytes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let capture = Capture::install_global();

    let dir = tempfile::tempdir().unwrap();
    let password = "Tr0ub4dor&3-very-secret";
    let users = dir.path().join("users");
    let hash = cheap_hash(password);
    std::fs::write(&users, format!("alice:{hash}\n")).unwrap();
    let secret_file = dir.path().join("jwt.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let srv = serve(config(&[
        "--users",
        users.to_str().unwrap(),
        "--jwt-secret-file",
        secret_file.to_str().unwrap(),
        "--jwt-cookie",
        "pt_jwt",
    ]))
    .await;

    let claims = serde_json::json!({ "sub": "spa", "exp": get_current_timestamp() + 60 });
    let jwt = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let bad_jwt = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"a-wrong-secret-that-is-long-enough-too"),
    )
    .unwrap();
    let good_basic = basic("alice", password);
    let wrong_password = "Tr0ub4dor&3-wrong-guess";
    let wrong_basic = basic("alice", wrong_password);
    // Someone typing their password into the user field.
    let password_as_user = basic(password, "x");
    let requests: Vec<Vec<(&str, String)>> = vec![
        vec![("Authorization", good_basic.clone())],
        vec![("Authorization", wrong_basic.clone())],
        vec![("Authorization", password_as_user.clone())],
        vec![("Authorization", format!("Bearer {jwt}"))],
        vec![("Authorization", format!("Bearer {bad_jwt}"))],
        vec![("Cookie", format!("pt_jwt={jwt}"))],
        vec![("Cookie", format!("pt_jwt={bad_jwt}"))],
        vec![],
    ];
    let mut tokens = Vec::new();
    for headers in &requests {
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = get(srv.addr, "/api/ws-token?token=query-secret-xyz", &borrowed).await;
        if let Some(token) = reply.json()["token"].as_str() {
            tokens.push(token.to_owned());
        }
    }
    // A failed reload logs nothing secret either (the refused hash is not echoed).
    std::fs::write(
        &users,
        format!("alice:{}\n", hash.replace("m=1024", "m=4194304")),
    )
    .unwrap();
    let reload = srv.state.auth.reload().unwrap_err();
    tracing::error!(error = %reload, "reload failed; keeping the previous users and keys");

    assert_eq!(
        tokens.len(),
        3,
        "Basic, Bearer and cookie each minted a token"
    );
    let logs = capture.text();
    // The capture works: failures were logged, with the peer address.
    assert!(logs.contains("authentication failed"), "{logs}");
    assert!(logs.contains("127.0.0.1"), "{logs}");
    let salt_and_output = hash.rsplit_once("p=1$").unwrap().1;
    let mut secrets = vec![
        password.to_owned(),
        wrong_password.to_owned(),
        hash.clone(),
        salt_and_output.to_owned(),
        good_basic.trim_start_matches("Basic ").to_owned(),
        wrong_basic.trim_start_matches("Basic ").to_owned(),
        password_as_user.trim_start_matches("Basic ").to_owned(),
        jwt.clone(),
        jwt.rsplit('.').next().unwrap().to_owned(),
        bad_jwt.clone(),
        SECRET.to_owned(),
        "query-secret-xyz".to_owned(),
    ];
    secrets.extend(tokens);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}
