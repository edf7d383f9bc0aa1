//! Golden tests: every `testdata/<dir>/*.log` is parsed line by line and compared with the paired
//! `*.expected.json` (one JSON line per input line; `{"error": "..."}` for a rejected line).
//!
//! The format of a log comes from a sidecar file, else from its directory's name:
//! `<stem>.logformat` (a custom `logformat` definition), `<stem>.regex` (a user regex), or the
//! built-in named like the directory (`testdata/squid`, `testdata/combined`, …). So a new format
//! only adds files. Each entry's `id` is its 1-based line number.
//!
//! `PROXYTAIL_BLESS=1 cargo test -p proxytail-parsers --test golden` rewrites the expected files
//! from the current output (review the diff before committing it).
use parsers::Format;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn format_for(log: &Path) -> Format {
    let side = |ext: &str| fs::read_to_string(log.with_extension(ext)).ok();
    if let Some(def) = side("logformat") {
        return Format::from_logformat(def.trim_end_matches(['\n', '\r'])).unwrap();
    }
    if let Some(re) = side("regex") {
        return Format::regex(re.trim_end_matches(['\n', '\r'])).unwrap();
    }
    let dir = log.parent().unwrap().file_name().unwrap().to_str().unwrap();
    Format::builtin(dir)
        .unwrap_or_else(|| panic!("{}: no sidecar and no built-in {dir}", log.display()))
}

/// The JSON line the parser produces for line `n` (1-based), in serialization order.
fn actual(format: &Format, line: &[u8], n: usize) -> String {
    match format.parse(line) {
        Ok(mut e) => {
            e.id = n as u64;
            serde_json::to_string(&e).unwrap()
        }
        Err(err) => serde_json::json!({ "error": err.to_string() }).to_string(),
    }
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

#[test]
fn every_log_matches_its_expected_json() {
    let bless = std::env::var_os("PROXYTAIL_BLESS").is_some();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut dirs_seen = Vec::new();
    for dir in sorted(&testdata()).into_iter().filter(|d| d.is_dir()) {
        dirs_seen.push(dir.file_name().unwrap().to_string_lossy().into_owned());
        for log in sorted(&dir) {
            if log.extension().and_then(|e| e.to_str()) != Some("log") {
                continue;
            }
            let format = format_for(&log);
            let input = fs::read(&log).unwrap();
            let got: Vec<String> = lines(&input)
                .iter()
                .enumerate()
                .map(|(i, l)| actual(&format, l, i + 1))
                .collect();
            let exp_path = log.with_extension("expected.json");
            if bless {
                let text: String = got.iter().map(|v| format!("{v}\n")).collect();
                fs::write(&exp_path, text).unwrap();
                continue;
            }
            let expected = fs::read_to_string(&exp_path)
                .unwrap_or_else(|e| panic!("{}: {e}", exp_path.display()));
            let expected: Vec<Value> = expected
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if expected.len() != got.len() {
                failures.push(format!(
                    "{}: {} lines, {} expected",
                    log.display(),
                    got.len(),
                    expected.len()
                ));
            }
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                checked += 1;
                if serde_json::from_str::<Value>(g).unwrap() != *e {
                    failures.push(format!(
                        "{}:{}\n  got      {g}\n  expected {e}",
                        log.display(),
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for d in [
        "squid",
        "common",
        "combined",
        "referrer",
        "useragent",
        "custom",
        "regex",
    ] {
        assert!(dirs_seen.iter().any(|s| s == d), "testdata/{d} is missing");
    }
    assert!(bless || checked > 90, "only {checked} lines checked");
}

#[test]
fn expected_json_keeps_contract_field_order() {
    // The first fields of every parsed entry come in CONTRACT.md section 3 order.
    let order = [
        "id",
        "timestamp",
        "client_ip",
        "method",
        "destination",
        "status",
        "bytes",
        "ts",
        "elapsed_ms",
        "result",
        "code",
        "user",
        "hierarchy",
        "peer",
        "content_type",
    ];
    let line = fs::read(testdata().join("squid/observed.log")).unwrap();
    let first = lines(&line)[0];
    let e = Format::builtin("squid").unwrap().parse(first).unwrap();
    let json = serde_json::to_string(&e).unwrap();
    let mut at = 0;
    for key in order {
        let i = json[at..].find(&format!("\"{key}\":")).map(|i| at + i);
        at = i.unwrap_or_else(|| panic!("{key} missing or out of order in {json}"));
    }
}
