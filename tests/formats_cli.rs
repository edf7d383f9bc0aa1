//! `--format` through the whole daemon: a user regex (for a proxy that is not Squid) and a custom
//! Squid `logformat` given on the command line, each turning real log lines into entries.
mod common;

use common::*;

async fn first_entry(extra: &[&str], line: &str) -> serde_json::Value {
    let mut args = vec!["--from-start"];
    args.extend_from_slice(extra);
    let files = TestConfig::with_users(&args);
    std::fs::write(files.access_log(), format!("{line}\n")).expect("log");
    let daemon = Daemon::start(&files).await;
    let mut ws = daemon.subscribe("&since=0").await;
    let entry = read_entries(&mut ws, 1).await.remove(0);
    daemon.stop().await.expect("clean stop");
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_regex_reads_an_nginx_log() {
    let pattern = std::fs::read_to_string("testdata/regex/nginx.regex").expect("shipped example");
    let line = r#"203.0.113.7 - bob [28/Nov/2026:04:57:25 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/7.88.1""#;
    let e = first_entry(&["--format", "regex", "--regex", pattern.trim()], line).await;
    assert_eq!(e["id"], 1);
    assert_eq!(e["client_ip"], "203.0.113.7");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["destination"], "/index.html");
    assert_eq!(e["status"], "200 OK");
    assert_eq!(e["bytes"], 612);
    assert_eq!(e["user"], "bob");
    assert_eq!(e["timestamp"], "2026-11-28 04:57:25");
    assert_eq!(e["user_agent"], "curl/7.88.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_logformat_from_the_command_line() {
    let def = r#"%ts.%03tu %>a "%rm %ru" %>Hs %<st "%{User-Agent}>h""#;
    let line = r#"1795841845.224 127.0.0.1 "GET http://127.0.0.1:1/denied" 403 3419 "curl/7.88.1""#;
    let e = first_entry(&["--format", "logformat", "--logformat", def], line).await;
    assert_eq!(e["client_ip"], "127.0.0.1");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["destination"], "http://127.0.0.1:1/denied");
    assert_eq!(e["code"], 403);
    assert_eq!(e["bytes"], 3419);
    assert_eq!(e["ts"], 1795841845.224);
    assert_eq!(e["user_agent"], "curl/7.88.1");
}

#[test]
fn format_regex_without_a_pattern_is_a_clear_configuration_error() {
    let err = proxytail::config::Config::from_args(["proxytail", "--format", "regex"]).unwrap_err();
    assert!(err.to_string().contains("--regex"), "{err}");
    let err = proxytail::config::Config::from_args(["proxytail", "--format", "nope"]).unwrap_err();
    assert!(err.to_string().contains("unknown format"), "{err}");
}
