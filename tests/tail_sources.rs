//! Sources and formats: `--format`, logs discovered in a `squid.conf` (each in its own format),
//! glued Squid ≤ 5 records, the testdata samples end to end, health counters.
mod tail_support;

use proxytail::hub::Hub;
use proxytail::tail::Tailer;
use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;
use tail_support::*;

fn testdata(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_format_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = config(&[&log], &dir.path().join("state"), &["--format", "nope"]);
    let err = Tailer::new(&cfg, Arc::new(Hub::new(10))).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squid_conf_adds_logs_each_with_its_format() {
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("access.log");
    let common = dir.path().join("common.log");
    File::create(&native).unwrap();
    File::create(&common).unwrap();
    let conf = dir.path().join("squid.conf");
    fs::write(
        &conf,
        format!(
            "access_log daemon:{} squid\naccess_log stdio:{} common\n",
            native.display(),
            common.display()
        ),
    )
    .unwrap();
    let cfg = config(
        &[],
        &dir.path().join("state"),
        &["--squid-conf", conf.to_str().unwrap()],
    );
    let mut run = start(&cfg);
    append(&native, lines([1]).as_bytes());
    let a = run.collect(1).await;
    let sample = fs::read(testdata("common/common.log")).unwrap();
    let first = sample.split(|&b| b == b'\n').next().unwrap();
    append(&common, &[first, b"\n"].concat());
    let b = run.collect(1).await;
    let v: serde_json::Value = serde_json::from_slice(&b[0].json).unwrap();
    assert_eq!((a[0].id, b[0].id), (1, 2));
    assert_eq!(v["source"], common.to_str().unwrap());
    assert_eq!(v["client_ip"], "127.0.0.1");
    assert_eq!(v["code"], 200);
    let h = run.health.snapshot();
    assert_eq!(h["sources"].as_array().unwrap().len(), 2, "{h}");
    run.stop().await;
}

/// The shared Squid samples through the whole tailer: every parseable line becomes exactly the
/// expected entry (ids assigned in order), and `malformed.log` lines are counted, not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squid_samples_flow_through_the_tailer_as_expected() {
    for name in ["observed", "edge", "glued"] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        fs::copy(testdata(&format!("squid/{name}.log")), &log).unwrap();
        // One expected entry per physical line; a glued line (Squid <= 5, cut at 8191 bytes)
        // also yields its second record as an entry of its own, right after the first.
        let raw = fs::read(&log).unwrap();
        let mut want = Vec::new();
        for (line, exp) in raw
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .zip(expected(&format!("squid/{name}.expected.json")))
        {
            if exp.get("error").is_some() {
                continue;
            }
            want.push(exp);
            let mut rest = parsers::glued_record(line);
            while let Some(r) = rest {
                let e = parsers::parse_native(r).unwrap();
                want.push(serde_json::to_value(&e).unwrap());
                rest = parsers::glued_record(r);
            }
        }
        assert!(!want.is_empty());
        if name == "glued" {
            let physical = expected("squid/glued.expected.json").len();
            assert!(
                want.len() > physical,
                "the glued sample yields extra records"
            );
        }
        let cfg = config(&[&log], &dir.path().join("state"), &["--from-start"]);
        let mut run = start(&cfg);
        let got = run.collect(want.len()).await;
        for (i, (r, w)) in got.iter().zip(&want).enumerate() {
            let mut v: serde_json::Value = serde_json::from_slice(&r.json).unwrap();
            assert_eq!(v["id"], i as u64 + 1, "{name}");
            v["id"] = w["id"].clone();
            assert_eq!(&v, w, "{name} entry {i}");
        }
        run.stop().await;
    }
}

/// An `*.expected.json` file: one JSON object per line, `{"error": ...}` for a line that fails.
fn expected(rel: &str) -> Vec<serde_json::Value> {
    fs::read_to_string(testdata(rel))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_samples_are_counted_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    fs::copy(testdata("squid/malformed.log"), &log).unwrap();
    let errors_expected = expected("squid/malformed.expected.json")
        .iter()
        .filter(|v| v.get("error").is_some())
        .count();
    // Empty lines are consumed silently by the follower; every other bad line is counted.
    let empty = fs::read(&log)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter(|l| l.is_empty() || *l == b"\r")
        .count()
        - 1; // the split after the final newline
    let good = expected("squid/malformed.expected.json").len() - errors_expected;
    append(&log, lines([1]).as_bytes());
    let cfg = config(&[&log], &dir.path().join("state"), &["--from-start"]);
    let mut run = start(&cfg);
    let got = run.collect(good + 1).await;
    assert_eq!(seq_of(got.last().unwrap()), 1);
    let h = run.health.snapshot();
    assert_eq!(
        h["sources"][0]["parse_errors"].as_u64().unwrap() as usize,
        errors_expected - empty,
        "{h}"
    );
    run.stop().await;
}
