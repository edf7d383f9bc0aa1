//! The users file at load and reload: comments and blank lines, refusal (with path and line) of
//! absurd Argon2 parameters, non-Argon2 hashes and plaintext (RELIABILITY 40); SIGHUP-style reload
//! that swaps users atomically and keeps the old ones on error; the atomic rewrite used by
//! `proxytail user add|remove`.
mod auth_support;

use auth_support::*;
use proxytail::auth::users::UsersFile;
use proxytail::auth::{AuthError, Authenticator};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 20));

fn load(path: &std::path::Path) -> Result<Authenticator, String> {
    Authenticator::load(&config(&["--users", path.to_str().unwrap()])).map_err(|e| e.to_string())
}

async fn login(auth: &Authenticator, user: &str, password: &str) -> Result<String, AuthError> {
    auth.authenticate(Some(&basic(user, password)), None, PEER)
        .await
        .map(|p| p.name)
}

/// Runs `proxytail hash-password` with `stdin` piped in and returns its output.
fn hash_password_command(stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxytail"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn comments_blank_lines_and_crlf_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let text = format!(
        "# proxytail users\r\n\r\n   # indented comment\nalice:{}\r\n\nbob:{}   \n",
        cheap_hash("a-pass"),
        cheap_hash("b-pass")
    );
    std::fs::write(&path, text).unwrap();
    let auth = load(&path).unwrap();
    assert_eq!(login(&auth, "alice", "a-pass").await.unwrap(), "alice");
    assert_eq!(login(&auth, "bob", "b-pass").await.unwrap(), "bob");
    assert!(matches!(
        login(&auth, "bob", "a-pass").await,
        Err(AuthError::Invalid)
    ));
}

#[test]
fn bad_lines_are_refused_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = cheap_hash("pw");
    let cases = [
        (good.replace("m=1024", "m=4194304"), "memory"),
        (good.replace("t=1", "t=100"), "time cost"),
        (good.replace("p=1", "p=64"), "parallelism"),
        (
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".to_owned(),
            "not Argon2",
        ),
        (
            "$pbkdf2-sha256$29000$N2bsvVdqDUEIgfA.$dAzdfpl0fUs9EtVb.1zwljb1VNZ3Fj7GS5V3hB/n0lQ"
                .to_owned(),
            "not Argon2",
        ),
        ("hunter2".to_owned(), "PHC"),
    ];
    for (hash, expect) in cases {
        let path = dir.path().join("users");
        std::fs::write(&path, format!("# header\nalice:{good}\n\nmallory:{hash}\n")).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.contains(path.to_str().unwrap()), "path in {err}");
        assert!(err.contains("line 4"), "line in {err}");
        assert!(err.contains(expect), "{expect} in {err}");
        // The refused hash itself is not repeated (error messages end up in logs).
        assert!(!err.contains(&hash), "hash echoed in {err}");
    }
    for (text, expect) in [
        ("no-colon-here\n", "name:HASH"),
        (&*format!("alice:{good}\nalice:{good}\n"), "twice"),
        (&*format!(":{good}\n"), "empty user name"),
    ] {
        let path = dir.path().join("users");
        std::fs::write(&path, text).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.contains(expect), "{expect} in {err}");
    }
    let missing = dir.path().join("absent");
    assert!(load(&missing)
        .unwrap_err()
        .contains(missing.to_str().unwrap()));
}

#[tokio::test]
async fn reload_swaps_users_and_keeps_old_ones_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_users(dir.path(), &[("alice", "old-pass")]);
    let auth = load(&path).unwrap();
    assert!(login(&auth, "alice", "old-pass").await.is_ok());

    // A valid new file takes effect on reload, as a whole.
    write_users(dir.path(), &[("alice", "new-pass"), ("carol", "c-pass")]);
    assert!(
        login(&auth, "alice", "new-pass").await.is_err(),
        "not before reload"
    );
    auth.reload().unwrap();
    assert!(login(&auth, "alice", "new-pass").await.is_ok());
    assert!(login(&auth, "carol", "c-pass").await.is_ok());
    assert!(login(&auth, "alice", "old-pass").await.is_err());

    // A broken file is refused and the previous users stay.
    std::fs::write(
        &path,
        format!("alice:{}\n", cheap_hash("x").replace("m=1024", "m=4194304")),
    )
    .unwrap();
    let err = auth.reload().unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    assert!(login(&auth, "alice", "new-pass").await.is_ok());
    assert!(login(&auth, "carol", "c-pass").await.is_ok());

    // So does a vanished file.
    std::fs::remove_file(&path).unwrap();
    assert!(auth.reload().is_err());
    assert!(login(&auth, "carol", "c-pass").await.is_ok());
}

#[test]
fn atomic_rewrite_keeps_mode_and_comments() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_users(dir.path(), &[("alice", "a")]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut file = UsersFile::load(&path).unwrap();
    assert!(!file.set("bob", &cheap_hash("b"), None).unwrap());
    file.write_atomic(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    let reread = UsersFile::load(&path).unwrap();
    assert_eq!(reread, file);
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("# test users\n\n"));
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["users"]);

    // A file created from scratch is owner-only.
    let fresh = dir.path().join("new-users");
    let mut file = UsersFile::default();
    file.set("alice", &cheap_hash("a"), None).unwrap();
    file.write_atomic(&fresh).unwrap();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert_eq!(UsersFile::load(&fresh).unwrap().users().count(), 1);
}

#[tokio::test]
async fn hash_password_output_is_an_accepted_argon2id_phc_string() {
    let hash = proxytail::auth::hash_password("s3cret pass").unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
    let auth = load(&path).unwrap();
    assert!(login(&auth, "alice", "s3cret pass").await.is_ok());
    assert!(login(&auth, "alice", "s3cret pasS").await.is_err());
}

#[tokio::test]
async fn hash_password_command_reads_one_line_of_stdin() {
    let out = hash_password_command(b"piped pass word\r\nsecond line ignored\n");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let hash = stdout.trim_end();
    assert!(hash.starts_with("$argon2id$"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "only the hash on stdout");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
    let auth = load(&path).unwrap();
    assert!(login(&auth, "alice", "piped pass word").await.is_ok());

    // An empty password is refused with a non-zero exit.
    let out = hash_password_command(b"\n");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}
