//! `proxytail check-config` through the real binary: every problem in one run, each with the file and
//! line (or flag) it comes from, exit 1 on any error and 0 on a clean configuration; and the shipped
//! `packaging/proxytail.toml` parses.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn check_config(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proxytail"))
        .arg("check-config")
        .args(args)
        .output()
        .expect("run proxytail")
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2+JtO1vq0WwzIm5v2r1PUmRTh3tdr6ZBqHw0mP0OYvE";

#[test]
fn every_problem_is_reported_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    write(&dir.path().join("access.log"), "", 0o644);
    write(
        &dir.path().join("users"),
        &format!("# users\nalice:{HASH}\nbob:plaintext\n"),
        0o644,
    );
    write(&dir.path().join("jwt"), "too short\n", 0o600);
    let config = dir.path().join("proxytail.toml");
    write(
        &config,
        &format!(
            "# test\nlisten = \"0.0.0.0:5001\"\naccess-log = [\"{d}/access.log\", \"{d}/no-such-dir/access.log\"]\n\
             users = \"{d}/users\"\njwt-secret-file = \"{d}/jwt\"\nstate-dir = \"{d}\"\ntoken-ttl = 0\n"
        ),
        0o644,
    );
    let out = check_config(&["--config", config.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let c = config.display();
    for expected in [
        format!("error: {c}:2: listen address 0.0.0.0:5001 is not loopback"),
        format!("error: {c}:7: token-ttl must be at least 1 second"),
        format!("ok: {c}:3: {d}/access.log is readable"),
        format!(
            "warning: {c}:3: {d}/no-such-dir/access.log does not exist yet; it will be waited for"
        ),
        format!("error: {d}/users: mode 0644 is wider than 0640"),
        format!("error: {d}/users:3: user \"bob\": not an Argon2 PHC string"),
        format!("error: {d}/jwt: weak JWT secret: 9 bytes, at least 32 needed"),
        "5 error(s), 1 warning(s)".to_string(),
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&expected)),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn a_toml_error_is_reported_with_its_line_and_flags_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxytail.toml");
    write(
        &config,
        "listen = \"127.0.0.1:5001\"\n\nno-such-key = 1\n",
        0o644,
    );
    let out = check_config(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--history",
        "0",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "error: {}:3: unknown field `no-such-key`",
            config.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: --history (or PROXYTAIL_HISTORY): history must be at least 1"),
        "{stdout}"
    );
    assert!(stdout.contains("no access log configured"), "{stdout}");
}

#[test]
fn a_port_the_packaged_unit_cannot_bind_is_pointed_out() {
    let out = check_config(&["--listen", "127.0.0.1:8080", "--access-log", "/dev/null"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("warning: --listen (or PROXYTAIL_LISTEN): port 8080 is not 5001"),
        "{stdout}"
    );
}

#[test]
fn a_clean_configuration_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    write(&dir.path().join("access.log"), "", 0o640);
    write(&dir.path().join("users"), &format!("alice:{HASH}\n"), 0o640);
    write(
        &dir.path().join("jwt"),
        &format!("{}\n", "k".repeat(32)),
        0o640,
    );
    let config = dir.path().join("proxytail.toml");
    write(
        &config,
        &format!(
            "access-log = [\"{d}/access.log\"]\nusers = \"{d}/users\"\njwt-secret-file = \"{d}/jwt\"\nstate-dir = \"{d}\"\n"
        ),
        0o644,
    );
    let out = check_config(&["--config", config.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.ends_with("0 error(s), 0 warning(s)\n"), "{stdout}");
}

#[test]
fn the_shipped_configuration_parses_with_only_expected_findings() {
    // The package's /etc/proxytail/proxytail.toml with the paths pointed at temporary files.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/proxytail.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    write(&dir.path().join("access.log"), "", 0o640);
    write(&dir.path().join("users"), "# no users yet\n", 0o640);
    let d = dir.path();
    let out = check_config(&[
        "--config",
        shipped.to_str().expect("utf-8"),
        "--access-log",
        d.join("access.log").to_str().expect("utf-8"),
        "--users",
        d.join("users").to_str().expect("utf-8"),
        "--state-dir",
        d.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("configuration file parsed"), "{stdout}");
    assert!(
        stdout.contains("listening on loopback 127.0.0.1:5001"),
        "{stdout}"
    );
    assert!(stdout.contains("no users yet"), "{stdout}");
}
