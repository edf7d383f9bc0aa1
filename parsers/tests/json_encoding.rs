//! `Entry::write_json` (the daemon's per-line encoder) writes byte for byte what `serde_json` makes
//! of the `Serialize` impl, for any entry: strings with every escape, any integer, any time.
use parsers::{Entry, Timestamp};
use proptest::prelude::*;
use std::borrow::Cow;

fn text() -> impl Strategy<Value = Option<Cow<'static, str>>> {
    // Control characters, quotes, backslashes, DEL, non-ASCII: every escaping case.
    prop::option::of(
        prop_oneof![
            "[\\x00-\\x7f]{0,40}",
            "[\"\\\\a-z\u{7f}é€😀\\x00-\\x1f]{0,20}",
            any::<String>(),
        ]
        .prop_map(Cow::Owned),
    )
}

fn millis() -> impl Strategy<Value = i64> {
    prop_oneof![
        // Real log times, with every count of trailing zeros in the milliseconds.
        0i64..4_102_444_800_000,
        (0i64..4_102_444_800).prop_map(|s| s * 1000),
        (0i64..4_102_444_800).prop_map(|s| s * 1000 + 100),
        (0i64..4_102_444_800).prop_map(|s| s * 1000 + 120),
        -10_000_000i64..10_000,
        // Far outside, where the float formatter takes over.
        any::<i64>().prop_map(|m| m / 1000),
        any::<i64>(),
    ]
}

fn entry() -> impl Strategy<Value = Entry<'static>> {
    (
        (any::<u64>(), prop::option::of(millis()), -50_400i32..50_400),
        (text(), text(), text(), text(), text()),
        (text(), text(), text()),
        (
            prop::option::of(prop_oneof![any::<u16>(), 0u16..600]),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u64>()),
        ),
        prop::collection::vec(("[a-z_\"\\\\]{1,12}", text()), 0..4),
    )
        .prop_map(
            |(
                (id, time, offset),
                (client_ip, method, destination, result, user),
                (hierarchy, peer, content_type),
                (code, bytes, elapsed_ms),
                extra,
            )| Entry {
                id,
                time: time.map(|millis| Timestamp { millis }),
                client_ip,
                method,
                destination,
                code,
                bytes,
                elapsed_ms,
                result,
                user,
                hierarchy,
                peer,
                content_type,
                extra: extra.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect(),
                utc_offset_secs: offset,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn write_json_is_serde_json(e in entry()) {
        let mut fast = Vec::new();
        e.write_json(&mut fast);
        let reference = serde_json::to_vec(&e).expect("an entry always serializes");
        prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&reference));
    }
}

#[test]
fn connect_and_unknown_status_and_methods() {
    for (code, method) in [
        (200, "CONNECT"),
        (200, "GET"),
        (0, "GET"),
        (299, "GET"),
        (1234, "GET"),
    ] {
        let e = Entry {
            method: Some(method.into()),
            code: Some(code),
            ..Entry::default()
        };
        let mut fast = Vec::new();
        e.write_json(&mut fast);
        assert_eq!(
            fast,
            serde_json::to_vec(&e).expect("serializes"),
            "{code} {method}"
        );
    }
}
