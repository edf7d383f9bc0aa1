//! Property tests: no format panics on any bytes, the logformat compiler never panics on any
//! definition, and native lines written the way Squid writes them parse back to their fields.
use parsers::{Format, BUILTIN_NAMES};
use proptest::prelude::*;

/// Compiled once: the properties run thousands of cases.
fn formats() -> &'static [Format] {
    static ALL: std::sync::OnceLock<Vec<Format>> = std::sync::OnceLock::new();
    ALL.get_or_init(build_formats)
}

fn build_formats() -> Vec<Format> {
    let mut v: Vec<Format> = BUILTIN_NAMES
        .iter()
        .map(|n| Format::builtin(n).unwrap())
        .collect();
    for def in [
        "%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt",
        r#"%>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh"#,
        "%tg %>a:%>p %-5tr|%/un|%#ru %{Cookie:;sid}>h %err_code",
    ] {
        v.push(Format::from_logformat(def).unwrap());
    }
    v.push(Format::regex(r"^(?P<client_ip>\S+) (?P<time>\S+) (?P<code>\d+) (?P<x>.*)$").unwrap());
    v
}

const SEED: &[u8] = br#"1795835993.959     49 127.0.0.1 TCP_MISS/200 353 GET http://127.0.0.1:48839/auth/r71 john doe HIER_DIRECT/127.0.0.1 text/plain [A: b\r\n] []"#;
const SEED2: &[u8] = br#"127.0.0.1 - john doe [28/Nov/2026:03:08:35 +0000] "GET http://h/ HTTP/1.1" 404 604 "http://r/x y" "Mozilla "q" UA" TCP_MISS:HIER_DIRECT"#;

/// A real line with a few bytes replaced, inserted or removed: reaches deeper than noise.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::bool::ANY,
        prop::collection::vec((0usize..200, any::<u8>(), 0u8..3), 1..6),
    )
        .prop_map(|(which, edits)| {
            let mut v = if which { SEED.to_vec() } else { SEED2.to_vec() };
            for (at, byte, op) in edits {
                let at = at % (v.len() + 1);
                match op {
                    0 if at < v.len() => v[at] = byte,
                    1 => v.insert(at, byte),
                    _ if at < v.len() => {
                        v.remove(at);
                    }
                    _ => {}
                }
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_line_never_panics(line in prop::collection::vec(any::<u8>(), 0..400)) {
        for f in formats() {
            let _ = f.parse(&line);
            let _ = f.glued_record(&line);
        }
    }

    #[test]
    fn parse_line_never_panics_on_mutated_lines(line in mutated()) {
        for f in formats() {
            let _ = f.parse(&line);
        }
    }

    /// The daemon's one call per line gives what the two calls give (the mutations insert NULs,
    /// so cut and glued records are reached).
    #[test]
    fn parse_glued_is_parse_and_glued_record(line in mutated(), nul in 0usize..300) {
        let mut with_nul = line.clone();
        with_nul.insert(nul % (line.len() + 1), 0);
        for line in [line, with_nul] {
            for f in formats() {
                prop_assert_eq!(f.parse_glued(&line), (f.parse(&line), f.glued_record(&line)));
                if let Ok(text) = std::str::from_utf8(&line) {
                    prop_assert_eq!(f.parse_glued_text(text), f.parse_glued(&line));
                }
            }
        }
    }

    #[test]
    fn logformat_compiler_never_panics(def in "[ -~]{0,60}", line in prop::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(f) = Format::from_logformat(&def) {
            let _ = f.parse(&line);
        }
    }

    #[test]
    fn logformat_compiler_never_panics_on_percent_soup(def in r#"(%[-"\[#/'0-9.{}a-zA-Z<>:]{0,6}|[ "\[\]/:]){0,12}"#) {
        if let Ok(f) = Format::from_logformat(&def) {
            let _ = f.parse(b"1795835993.959     49 ::1 TCP_MISS/200 353 GET http://h/ - HIER_DIRECT/::1 -");
        }
    }

    #[test]
    fn native_lines_round_trip(
        secs in 100_000_000i64..9_999_999_999,
        ms in 0u32..1000,
        elapsed in 0u64..100_000_000,
        client in "(-|[0-9]{1,3}(\\.[0-9]{1,3}){3}|[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7})",
        tag in "(NONE_NONE|TCP_[A-Z_]{1,20})",
        status in 0u16..1000,
        bytes in 0u64..u64::MAX / 2,
        method in "(-|[A-Z]{1,10})",
        url in "[!-~]{1,80}",
        user in "(-|[a-z]{1,8}( [a-zA-Z.]{1,8}){0,3})",
        hier in "(HIER_NONE|HIER_DIRECT|TIMEOUT_[A-Z_]{1,10})",
        peer in "(-|[0-9.]{7,15}|[0-9a-f:]{2,20})",
        mt in "(-|[a-z]{1,10}/[a-z0-9.+-]{1,20})",
    ) {
        prop_assume!(method != "NONE");
        let line = format!(
            "{secs}.{ms:03} {elapsed:>6} {client} {tag}/{status:03} {bytes} {method} {url} {user} {hier}/{peer} {mt}"
        );
        let e = Format::builtin("squid").unwrap().parse(line.as_bytes()).unwrap();
        let some = |s: &str| (s != "-").then(|| s.to_owned());
        prop_assert_eq!(e.time.map(|t| t.millis), Some(secs * 1000 + i64::from(ms)));
        prop_assert_eq!(e.elapsed_ms, Some(elapsed));
        prop_assert_eq!(e.client_ip.map(|c| c.into_owned()), some(&client));
        prop_assert_eq!(e.result.map(|c| c.into_owned()), Some(tag));
        prop_assert_eq!(e.code, Some(status));
        prop_assert_eq!(e.bytes, Some(bytes));
        prop_assert_eq!(e.method.map(|c| c.into_owned()), some(&method));
        prop_assert_eq!(e.destination.map(|c| c.into_owned()), some(&url));
        prop_assert_eq!(e.user.map(|c| c.into_owned()), some(&user));
        prop_assert_eq!(e.hierarchy.map(|c| c.into_owned()), Some(hier));
        prop_assert_eq!(e.peer.map(|c| c.into_owned()), some(&peer));
        prop_assert_eq!(e.content_type.map(|c| c.into_owned()), some(&mt));
    }
}
