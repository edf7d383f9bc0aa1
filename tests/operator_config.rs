//! Operator commands on an installed package: with neither `--config` nor `--users` they use the
//! packaged configuration when it exists (so `sudo proxytail user add ops` works as the README
//! shows), the daemon never does; and `check-config` reports the metrics and watchdog settings.
use clap::Parser;
use proxytail::config::{default_config_from, Cli};
use std::process::Command;

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("proxytail").chain(args.iter().copied())).expect("args")
}

#[test]
fn operator_commands_find_the_packaged_configuration_and_the_daemon_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let packaged = dir.path().join("proxytail.toml");
    std::fs::write(&packaged, "users = \"/nonexistent/users\"\n").expect("config");
    for args in [
        &["user", "add", "ops"][..],
        &["user", "list"],
        &["check-config"],
    ] {
        let mut c = cli(args);
        default_config_from(&mut c, &packaged);
        assert_eq!(
            c.settings.config.as_deref(),
            Some(packaged.as_path()),
            "{args:?}"
        );
    }
    // An explicit choice wins, and the daemon (no subcommand) never guesses.
    for args in [
        &["user", "list", "--users", "/tmp/u"][..],
        &["user", "list", "--config", "/tmp/c.toml"],
        &["--access-log", "/tmp/a.log"],
    ] {
        let mut c = cli(args);
        let before = c.settings.config.clone();
        default_config_from(&mut c, &packaged);
        assert_eq!(c.settings.config, before, "{args:?}");
    }
    // No packaged file: nothing changes.
    let mut c = cli(&["user", "list"]);
    default_config_from(&mut c, &dir.path().join("absent.toml"));
    assert_eq!(c.settings.config, None);
}

#[test]
fn check_config_reports_metrics_and_watchdog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").expect("log");
    let users = dir.path().join("users");
    std::fs::write(&users, "").expect("users");
    let run = |watchdog: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxytail"));
        cmd.args(["check-config", "--listen", "127.0.0.1:5001", "--access-log"])
            .arg(&log)
            .arg("--users")
            .arg(&users)
            .arg("--state-dir")
            .arg(dir.path())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_PID");
        match watchdog {
            Some(usec) => cmd.env("WATCHDOG_USEC", usec),
            None => cmd.env_remove("WATCHDOG_USEC"),
        };
        let out = cmd.output().expect("run check-config");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run(Some("10000000"));
    assert!(
        text.contains("ok: metrics: http://127.0.0.1:5001/metrics, with the same credentials"),
        "{text}"
    );
    assert!(
        text.contains(
            "watchdog: WatchdogSec=10000 ms, keep-alive every 5000 ms from the tailing loop"
        ),
        "{text}"
    );
    assert!(text.contains("no NOTIFY_SOCKET"), "{text}");
    let text = run(None);
    assert!(
        text.contains("watchdog: not set for this process"),
        "{text}"
    );
}
