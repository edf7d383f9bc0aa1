//! The privacy policy (CONTRACT §7, RELIABILITY 77 and 78) through the whole daemon: what live
//! subscribers, `backlog`, `since` after a restart and the files of the state directory hold.
mod common;

use common::*;
use std::io::Write;
use std::path::Path;

/// Native Squid lines: client, user and destination vary; everything else is fixed.
fn line(client: &str, user: &str, destination: &str) -> String {
    format!(
        "1774449130.123     85 {client} TCP_MISS/200 4096 GET {destination} {user} HIER_DIRECT/93.184.216.34 text/html\n"
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(text.as_bytes()).expect("append");
}

/// Every byte of every file under `dir`, concatenated (the journal, the checkpoint, anything else).
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read state dir") {
        let path = e.expect("dir entry").path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).expect("read state file"));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn field<'a>(e: &'a serde_json::Value, key: &str) -> &'a str {
    e[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is text: {e}"))
}

/// RELIABILITY 77: with `truncate`, no full address reaches a subscriber (live, backlog, since
/// after a restart) nor any file of the state directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_leaves_no_full_address_anywhere() {
    let files = TestConfig::with_users(&["--from-start", "--privacy-client-ip", "truncate"]);
    let log = files.access_log();
    let clients = [
        ("192.168.1.10", "192.168.1.0"),
        ("2001:db8:aaaa:bbbb::1", "2001:db8:aaaa::"),
        ("::ffff:10.9.8.7", "10.9.8.0"),
    ];
    for (raw, _) in &clients {
        append(&log, &line(raw, "-", "http://example.com/"));
    }
    let daemon = Daemon::start(&files).await;
    let mut live = daemon.subscribe("&since=0").await;
    let first = read_entries(&mut live, 3).await;
    // Two more lines while subscribed: the live path proper.
    append(&log, &line("192.168.1.77", "-", "http://example.com/"));
    append(
        &log,
        &line("2001:db8:aaaa:bbbb::2", "-", "http://example.com/"),
    );
    let later = read_entries(&mut live, 2).await;
    let want: Vec<&str> = clients
        .iter()
        .map(|(_, t)| *t)
        .chain(["192.168.1.0", "2001:db8:aaaa::"])
        .collect();
    let got: Vec<&str> = first
        .iter()
        .chain(&later)
        .map(|e| field(e, "client_ip"))
        .collect();
    assert_eq!(got, want, "live");

    let mut backlog = daemon.subscribe("&backlog=5").await;
    let replayed = read_entries(&mut backlog, 5).await;
    let got: Vec<&str> = replayed.iter().map(|e| field(e, "client_ip")).collect();
    assert_eq!(got, want, "backlog");
    drop((live, backlog));
    daemon.stop().await.expect("clean stop");

    let daemon = Daemon::start(&files).await;
    let mut since = daemon.subscribe("&since=0").await;
    let replayed = read_entries(&mut since, 5).await;
    let got: Vec<&str> = replayed.iter().map(|e| field(e, "client_ip")).collect();
    assert_eq!(got, want, "since after a restart");
    drop(since);
    daemon.stop().await.expect("clean stop");

    let state = all_bytes(&files.config.state_dir);
    // The journal holds the entries (so the search below looks at real data) ...
    assert!(
        contains(&state, "2001:db8:aaaa::"),
        "journal holds the entries"
    );
    // ... and never a raw address.
    for raw in [
        "192.168.1.10",
        "192.168.1.77",
        "2001:db8:aaaa:bbbb",
        "10.9.8.7",
    ] {
        assert!(!contains(&state, raw), "{raw} found in the state directory");
    }
}

/// RELIABILITY 78: with `pseudonymize`, one pseudonym per address (and per user), never the raw
/// value on disk; the key lives only in memory, so a restart gives new pseudonyms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonymize_gives_one_pseudonym_per_client_and_never_the_raw_value() {
    let files = TestConfig::with_users(&[
        "--from-start",
        "--privacy-client-ip",
        "pseudonymize",
        "--privacy-user",
        "pseudonymize",
    ]);
    let log = files.access_log();
    append(&log, &line("10.1.2.3", "alice", "http://example.com/"));
    append(&log, &line("10.1.2.4", "bob", "http://example.com/"));
    append(&log, &line("10.1.2.3", "bob", "http://example.com/"));
    append(&log, &line("2001:0db8::5", "-", "http://example.com/"));
    append(&log, &line("2001:db8::5", "-", "http://example.com/"));
    let daemon = Daemon::start(&files).await;
    let mut ws = daemon.subscribe("&since=0").await;
    let e = read_entries(&mut ws, 5).await;
    let ip = |i: usize| field(&e[i], "client_ip");
    let user = |i: usize| field(&e[i], "user");
    for entry in &e {
        let ip = field(entry, "client_ip");
        assert!(ip.starts_with("p-") && ip.len() == 14, "{entry}");
    }
    assert_eq!(ip(0), ip(2), "same client, same pseudonym");
    assert_eq!(ip(3), ip(4), "2001:0db8::5 is 2001:db8::5");
    assert_ne!(ip(0), ip(1));
    assert_ne!(ip(0), ip(3));
    assert_eq!(user(1), user(2), "same user, same pseudonym");
    assert_ne!(user(0), user(1));
    assert!(user(0).starts_with("p-"));
    assert!(e[3]["user"].is_null(), "no user stays null");
    let first_day = ip(0).to_owned();
    drop(ws);
    daemon.stop().await.expect("clean stop");

    // A restart draws a new key: the same client, a pseudonym nobody can link to the old one.
    let daemon = Daemon::start(&files).await;
    let mut ws = daemon.subscribe("&since=5").await;
    append(&log, &line("10.1.2.3", "alice", "http://example.com/"));
    let after = read_entries(&mut ws, 1).await.remove(0);
    assert_ne!(field(&after, "client_ip"), first_day);
    drop(ws);
    daemon.stop().await.expect("clean stop");

    let state = all_bytes(&files.config.state_dir);
    assert!(contains(&state, &first_day), "journal holds the entries");
    for raw in [
        "10.1.2.3",
        "10.1.2.4",
        "2001:0db8::5",
        "2001:db8::5",
        "alice",
        "bob",
    ] {
        assert!(!contains(&state, raw), "{raw} found in the state directory");
    }
}

/// `--privacy-user drop` writes null users; `--privacy-query strip` cuts destinations at `?`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_drop_and_query_strip() {
    let files = TestConfig::with_users(&[
        "--from-start",
        "--privacy-user",
        "drop",
        "--privacy-query",
        "strip",
    ]);
    let log = files.access_log();
    append(
        &log,
        &line("10.1.2.3", "alice", "http://example.com/p?session=s3cr3t"),
    );
    append(&log, &line("10.1.2.3", "-", "http://example.com/q"));
    let daemon = Daemon::start(&files).await;
    let mut ws = daemon.subscribe("&since=0").await;
    let e = read_entries(&mut ws, 2).await;
    assert!(e[0]["user"].is_null() && e[1]["user"].is_null(), "{e:?}");
    assert_eq!(field(&e[0], "destination"), "http://example.com/p");
    assert_eq!(field(&e[1], "destination"), "http://example.com/q");
    assert_eq!(field(&e[0], "client_ip"), "10.1.2.3", "client kept");
    drop(ws);
    daemon.stop().await.expect("clean stop");
    let state = all_bytes(&files.config.state_dir);
    assert!(!contains(&state, "s3cr3t") && !contains(&state, "alice"));
}
