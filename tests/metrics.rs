//! `GET /metrics` (CONTRACT section 9, RELIABILITY 84) on the whole daemon: the exposition parses as
//! Prometheus/OpenMetrics text, the lines-read counter equals the lines appended, entries sent equal those read, closes are counted
//! by code, no label holds an address, a user name or a token, and a wrong credential gets 401.
mod common;

use common::*;
use futures_util::SinkExt;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use tokio_tungstenite::tungstenite::Message;

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A strict reader of the text exposition: every line is a `# HELP`/`# TYPE`/`# UNIT` comment, a
/// sample of a declared family, or the final `# EOF`. Panics with the offending line otherwise.
fn parse_exposition(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    fn name_ok(n: &str) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF:\n{text}");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("comment without a name: {line}"));
            assert!(name_ok(name), "bad family name in {line}");
            match kind {
                Some("TYPE") => {
                    let t = parts.next().unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "unknown"].contains(&t),
                        "bad type in {line}"
                    );
                    types.insert(name.to_owned(), t.to_owned());
                }
                Some("HELP") | Some("UNIT") => {}
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (head, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample without a value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line}"));
                    assert!(name_ok(k), "bad label name in {line}");
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (name, labels)
            }
            None => (head, BTreeMap::new()),
        };
        assert!(name_ok(name), "bad sample name in {line}");
        let family = types
            .keys()
            .filter(|f| name == f.as_str() || name.strip_prefix(f.as_str()) == Some("_total"))
            .max_by_key(|f| f.len())
            .unwrap_or_else(|| panic!("sample of an undeclared family: {line}"));
        // `_total` only on counters, and every counter sample is `_total`.
        assert_eq!(
            types[family] == "counter",
            name.ends_with("_total"),
            "_total only on counters: {line}"
        );
        assert!(name.starts_with("proxytail_"), "prefix: {line}");
        samples.push((name.to_owned(), labels, value));
    }
    (types, samples)
}

fn value(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name && label.is_none_or(|(k, v)| l.get(k).map(String::as_str) == Some(v))
        })
        .map(|s| s.2)
}

fn line(seq: u64) -> String {
    format!("1795835993.065      2 10.9.8.7 TCP_MISS/200 353 GET http://h/x/{seq} bob HIER_DIRECT/127.0.0.1 text/plain\n")
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let credentials = basic(USER, PASSWORD);
    let response = http_get(addr, "/metrics", &[("authorization", credentials.as_str())]).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{response:?}"
    );
    response.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_count_lines_and_closes_and_hold_no_address_user_or_token() {
    let files = TestConfig::with_users(&["--from-start"]);
    let log = files.access_log();
    std::fs::write(&log, "").expect("log");
    let daemon = Daemon::start(&files).await;
    let mut ws = daemon.subscribe("&since=0").await;
    const LINES: u64 = 250;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    for seq in 1..=LINES {
        f.write_all(line(seq).as_bytes()).expect("append");
    }
    f.write_all(b"not a squid line\n").expect("append");
    drop(f);
    let ids = read_ids(&mut ws, LINES as usize).await;
    assert_eq!(ids, (1..=LINES).collect::<Vec<_>>());
    // The unparseable line comes after the last good one: once the tailer counted it, the whole
    // append was read. Await it through /metrics itself, bounded.
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let text = scrape(daemon.addr).await;
        let (_, samples) = parse_exposition(&text);
        if value(&samples, "proxytail_parse_errors_total", None) == Some(1.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "parse error not counted:\n{text}"
        );
        tokio::task::yield_now().await;
    };
    let (types, samples) = parse_exposition(&text);
    let source = log.to_string_lossy().into_owned();
    let src = Some(("source", source.as_str()));
    assert_eq!(
        value(&samples, "proxytail_lines_read_total", src),
        Some(LINES as f64 + 1.0)
    );
    assert_eq!(
        value(&samples, "proxytail_entries_total", None),
        Some(LINES as f64)
    );
    assert_eq!(
        value(&samples, "proxytail_last_id", None),
        Some(LINES as f64)
    );
    assert_eq!(value(&samples, "proxytail_subscribers", None), Some(1.0));
    // Counted when handed to the socket, so every entry the subscriber read is in, and no more.
    assert_eq!(
        value(&samples, "proxytail_entries_sent_total", None),
        Some(LINES as f64)
    );
    assert_eq!(types["proxytail_entries_sent"], "counter");
    assert_eq!(types["proxytail_subscribers"], "gauge");
    // Fully read: the lag is zero, and the size is the file's.
    let size = std::fs::metadata(&log).expect("log").len() as f64;
    assert_eq!(
        value(&samples, "proxytail_file_size_bytes", src),
        Some(size)
    );
    assert_eq!(
        value(&samples, "proxytail_read_offset_bytes", src),
        Some(size)
    );
    assert!(value(&samples, "proxytail_journal_bytes", None).is_some_and(|b| b > 0.0));
    assert_eq!(
        value(
            &samples,
            "proxytail_token_requests_total",
            Some(("outcome", "issued"))
        ),
        Some(1.0)
    );

    // A wrong credential: 401 through the token endpoint's path, counted nowhere as a success.
    let wrong = basic(USER, "wrong password");
    let denied = http_get(
        daemon.addr,
        "/metrics",
        &[("authorization", wrong.as_str())],
    )
    .await;
    assert_eq!(denied.status, 401, "{denied:?}");
    assert!(denied.header("www-authenticate").is_some());
    let none = http_get(daemon.addr, "/metrics", &[]).await;
    assert_eq!(none.status, 401, "{none:?}");

    // A subscriber the server closes is counted by its close code (binary message: 1003).
    let token = fetch_token(daemon.addr).await;
    let mut rude = connect(&format!("ws://{}/api/ws/logs?token={token}", daemon.addr)).await;
    rude.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    assert_eq!(expect_close(&mut rude).await.0, 1003);
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let text = scrape(daemon.addr).await;
        let (_, samples) = parse_exposition(&text);
        let closed = value(
            &samples,
            "proxytail_subscribers_closed_total",
            Some(("code", "1003")),
        );
        if closed == Some(1.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "close not counted:\n{text}"
        );
        tokio::task::yield_now().await;
    };

    // No label value is an address, the user or a token.
    let (_, samples) = parse_exposition(&text);
    let label_values: BTreeSet<&str> = samples
        .iter()
        .flat_map(|(_, l, _)| l.values().map(String::as_str))
        .collect();
    for v in &label_values {
        assert!(v.parse::<std::net::IpAddr>().is_err(), "address label {v}");
        assert!(
            !v.contains("127.0.0.1") && !v.contains("10.9.8.7"),
            "address in {v}"
        );
        assert!(!v.contains(USER) && !v.contains("bob"), "user in {v}");
        assert!(!v.contains(&token), "token in {v}");
    }
    assert!(!text.contains(&token));
    drop(ws);
    daemon.stop().await.expect("clean stop");
}
