//! `proxytail user add|remove|list` through the real binary on real files: the password from stdin,
//! a verifiable Argon2id hash, comments kept, owner and mode kept, no temporary file left behind, and
//! a broken file never rewritten.
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn proxytail(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxytail"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn proxytail");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn user(users: &Path, args: &[&str], stdin: &str) -> Output {
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    let path = users.to_str().expect("utf-8 path");
    all.extend_from_slice(&["--users", path]);
    proxytail(&all, stdin)
}

fn verifies(hash: &str, password: &str) -> bool {
    let phc = PasswordHash::new(hash).expect("phc");
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &phc)
        .is_ok()
}

fn hash_of(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_owned))
}

#[test]
fn add_change_list_remove_keep_comments_mode_and_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    std::fs::write(&users, "# managed by proxytail user\n\n").expect("write");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    // As root (CI), give the file an owner that is not ours: a rewrite must keep it.
    let is_root = std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0);
    if is_root {
        std::os::unix::fs::chown(&users, Some(4242), Some(4343)).expect("chown");
    }
    let before = std::fs::metadata(&users).expect("stat");
    // Held open, the original file keeps its inode, so a new file cannot reuse that number and pass
    // the "replaced by rename" check below by chance.
    let _original = std::fs::File::open(&users).expect("open the original");

    let out = user(&users, &["add", "alice"], "first password\n");
    assert!(out.status.success(), "{out:?}");
    let out = user(&users, &["add", "bob"], "bob's password\r\n");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&users).expect("read");
    assert!(
        text.starts_with("# managed by proxytail user\n\n"),
        "{text}"
    );
    let alice = hash_of(&text, "alice").expect("alice line");
    assert!(alice.starts_with("$argon2id$"), "{alice}");
    assert!(verifies(&alice, "first password"));
    assert!(verifies(
        &hash_of(&text, "bob").expect("bob"),
        "bob's password"
    ));

    // A second add changes the password in place.
    let out = user(&users, &["add", "alice"], "second password\n");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&users).expect("read");
    let alice = hash_of(&text, "alice").expect("alice line");
    assert!(verifies(&alice, "second password"));
    assert!(!verifies(&alice, "first password"));
    assert_eq!(text.matches("alice:").count(), 1);

    let out = user(&users, &["list"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alice\nbob\n");

    let out = user(&users, &["remove", "alice"], "");
    assert!(out.status.success(), "{out:?}");
    let out = user(&users, &["remove", "alice"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user \"alice\""));
    let out = user(&users, &["list"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bob\n");

    let after = std::fs::metadata(&users).expect("stat");
    assert_eq!(after.permissions().mode() & 0o7777, 0o640);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_ne!(
        after.ino(),
        before.ino(),
        "replaced by rename, not rewritten in place"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "users")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_broken_users_file_is_reported_by_line_and_never_rewritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    let broken = "# users\nalice:not-a-hash\nbob\n";
    std::fs::write(&users, broken).expect("write");
    let out = user(&users, &["add", "carol"], "pw\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(std::fs::read_to_string(&users).expect("read"), broken);
}

#[test]
fn bad_names_and_empty_passwords_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    let out = user(&users, &["add", "a:b"], "pw\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid user name"));
    let out = user(&users, &["add", "alice"], "\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password: the password is empty"));
    assert!(!users.exists(), "nothing written on refusal");
    // A first user creates the file, readable by its owner only (the package ships it 0640).
    let out = user(&users, &["add", "alice"], "pw\n");
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&users)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o600);
}

#[test]
fn user_commands_need_a_users_file() {
    let out = proxytail(&["user", "list"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no users file configured"));
}

#[test]
fn views_are_checked_kept_across_a_password_change_listed_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    // A broken view is refused before any password is read; the file is not created.
    let out = user(&users, &["add", "ann", "--view", "stauts:500"], "pw\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--view") && err.contains("stauts"), "{err}");
    assert!(!users.exists());

    let view = "client:10.1.0.0/16 method:GET";
    let out = user(&users, &["add", "ann", "--view", view], "pw\n");
    assert!(out.status.success(), "{out:?}");
    let out = user(&users, &["add", "bob"], "pw\n");
    assert!(out.status.success(), "{out:?}");
    // A new password without --view keeps the view.
    let out = user(&users, &["add", "ann"], "new pw\n");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&users).expect("read");
    let ann = hash_of(&text, "ann").expect("ann line");
    let (hash, kept) = ann.split_once(':').expect("a view field");
    assert!(verifies(hash, "new pw"));
    assert_eq!(kept, view);
    let out = user(&users, &["list"], "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ann\tview: {view}\nbob\n")
    );
    // The daemon's own checker accepts the file it wrote.
    let path = users.to_str().expect("utf-8 path");
    let out = proxytail(&["check-config", "--users", path, "--access-log", path], "");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("2 user(s)"), "{report}");
    // A broken view written by hand: check-config names the file and line.
    let text = std::fs::read_to_string(&users).expect("read");
    let broken = dir.path().join("broken");
    std::fs::write(&broken, format!("{text}carl:{hash}:stauts:500\n")).expect("write");
    let broken = broken.to_str().expect("utf-8 path");
    let out = proxytail(
        &["check-config", "--users", broken, "--access-log", path],
        "",
    );
    assert!(!out.status.success());
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("{broken}:3")) && report.contains("stauts"),
        "{report}"
    );
    // `--view ''` removes it; remove keeps the other lines.
    let out = user(&users, &["add", "ann", "--view", ""], "pw\n");
    assert!(out.status.success(), "{out:?}");
    let out = user(&users, &["remove", "bob"], "");
    assert!(out.status.success(), "{out:?}");
    let out = user(&users, &["list"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ann\n");
}
