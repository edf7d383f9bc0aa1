//! RELIABILITY 73: every key of the filter grammar, negation, OR on a repeated key, quoting and
//! bare words select exactly the entries a naive reference evaluation selects, over 10,000
//! generated entries (deterministic seed). Each filter is written twice: as an expression for
//! [`Filter::parse`] and as a plain Rust predicate over the generated data, built from helpers that
//! share no code with `src/filter.rs` (a backtracking glob, string-split host, bitwise CIDR).
//! The stored entries also go through the pre-check replay from disk makes on the JSON text
//! ([`Filter::may_match_json`]): it must never reject a match, and must reject most of the rest.
//! Plus: `Filter::parse` never panics, whatever the input.
use parsers::Entry;
use proptest::prelude::*;
use proxytail::filter::{Fields, Filter};
use std::borrow::Cow;
use std::net::IpAddr;

/// One generated entry, as plain data the reference reads.
#[derive(Debug, Clone)]
struct Model {
    client_ip: Option<String>,
    method: Option<String>,
    destination: Option<String>,
    code: Option<u16>,
    result: Option<String>,
    user: Option<String>,
    bytes: Option<u64>,
    elapsed: Option<u64>,
    content_type: Option<String>,
    user_agent: Option<String>,
    source: Option<String>,
    node: Option<String>,
}

impl Model {
    fn entry(&self) -> Entry<'static> {
        let own = |v: &Option<String>| v.clone().map(Cow::Owned);
        let mut extra = vec![(Cow::Borrowed("user_agent"), own(&self.user_agent))];
        if let Some(n) = &self.node {
            extra.push((Cow::Borrowed("node"), Some(Cow::Owned(n.clone()))));
        }
        Entry {
            client_ip: own(&self.client_ip),
            method: own(&self.method),
            destination: own(&self.destination),
            code: self.code,
            result: own(&self.result),
            user: own(&self.user),
            bytes: self.bytes,
            elapsed_ms: self.elapsed,
            content_type: own(&self.content_type),
            extra,
            ..Entry::default()
        }
    }

    /// Every text field, for bare words.
    fn texts(&self) -> Vec<&str> {
        [
            &self.client_ip,
            &self.method,
            &self.destination,
            &self.result,
            &self.user,
            &self.content_type,
            &self.user_agent,
            &self.source,
            &self.node,
        ]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .collect()
    }
}

/// xorshift64*: a fixed seed gives the same 10,000 entries on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

fn generate(n: usize) -> Vec<Model> {
    let mut r = Rng(0x5EED_F11E_7E5E_ED01);
    let s = |v: &str| Some(v.to_owned());
    (0..n)
        .map(|_| {
            let client_ip = match r.below(8) {
                0..=2 => Some(format!(
                    "10.{}.{}.{}",
                    r.below(3) + 1,
                    r.below(4),
                    r.below(256)
                )),
                3 => Some(format!("192.168.0.{}", r.below(256))),
                4 => Some(format!("2001:db8:{:x}::{:x}", r.below(3), r.below(16))),
                5 => Some(format!("2001:0db8:000{}::{:x}", r.below(3), r.below(16))),
                6 => Some(format!("::ffff:10.1.{}.{}", r.below(4), r.below(256))),
                _ => r.pick(&[None, s("proxy-host")]),
            };
            let method = r.pick(&[s("GET"), s("GET"), s("POST"), s("CONNECT"), s("HEAD"), None]);
            let host = r.pick(&[
                "www.example.com",
                "Example.COM",
                "a.b.example.com",
                "example.org",
                "cdn.example.net",
                "[2001:db8::1]",
            ]);
            let destination = if method.as_deref() == Some("CONNECT") {
                Some(format!("{host}:{}", r.pick(&[443, 8443])))
            } else if r.below(20) == 0 {
                None
            } else {
                let userinfo = r.pick(&["", "", "", "bob@", "u:pw@"]);
                let port = r.pick(&["", "", ":8080"]);
                let path = r.pick(&["/", "/index.html", "/img/logo.png", "/api/v1?x=1"]);
                let scheme = r.pick(&["http", "https", "ftp"]);
                Some(format!("{scheme}://{userinfo}{host}{port}{path}"))
            };
            let code = r.pick(&[
                Some(200),
                Some(200),
                Some(204),
                Some(301),
                Some(304),
                Some(403),
                Some(404),
                Some(407),
                Some(500),
                Some(502),
                Some(503),
                Some(0),
                None,
            ]);
            let result = r.pick(&[
                s("TCP_MISS"),
                s("TCP_HIT"),
                s("TCP_DENIED"),
                s("TCP_DENIED_REPLY"),
                s("TCP_TUNNEL"),
                s("NONE_NONE"),
                None,
            ]);
            let user = r.pick(&[
                None,
                None,
                s("alice"),
                s("bob"),
                s("john doe"),
                s("backup"),
                s("ALICE"),
            ]);
            let bytes = (r.below(10) != 0).then(|| r.below(2_000_000));
            let elapsed = (r.below(10) != 0).then(|| r.below(5_000));
            let content_type =
                r.pick(&[s("text/html"), s("image/png"), s("application/json"), None]);
            let user_agent = r.pick(&[s("Mozilla Firefox"), s("curl/8.0"), None]);
            let source = r.pick(&[s("/var/log/squid/a.log"), s("/var/log/squid/b.log"), None]);
            let node = r.pick(&[s("edge-1"), s("edge-2"), s("central"), None]);
            Model {
                client_ip,
                method,
                destination,
                code,
                result,
                user,
                bytes,
                elapsed,
                content_type,
                user_agent,
                source,
                node,
            }
        })
        .collect()
}

/// Reference glob: backtracking over characters, `*` any run.
fn glob(p: &[char], v: &[char]) -> bool {
    match p.split_first() {
        None => v.is_empty(),
        Some(('*', rest)) => (0..=v.len()).any(|i| glob(rest, &v[i..])),
        Some((c, rest)) => v.first() == Some(c) && glob(rest, &v[1..]),
    }
}

fn g(pattern: &str, value: &Option<String>) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    value
        .as_deref()
        .is_some_and(|v| glob(&p, &v.chars().collect::<Vec<_>>()))
}

/// Reference host: drop `scheme://`, keep up to the first `/`, drop `...@`, drop `:port`.
fn host(dest: &str) -> String {
    let no_scheme = dest.splitn(2, "://").last().unwrap_or(dest);
    let authority: String = no_scheme
        .chars()
        .take_while(|c| *c != '/' && *c != '?')
        .collect();
    let after_at = match authority.rfind('@') {
        Some(i) => authority[i + 1..].to_owned(),
        None => authority,
    };
    let h = if let Some(end) = after_at.strip_prefix('[').and_then(|r| r.find(']')) {
        after_at[..end + 2].to_owned()
    } else {
        after_at.split(':').next().unwrap_or("").to_owned()
    };
    h.to_lowercase()
}

fn domain(pattern: &str, m: &Model) -> bool {
    g(&pattern.to_lowercase(), &m.destination.as_deref().map(host))
}

/// Reference CIDR: the first `prefix` bits of both addresses as integers, mapped IPv6 as IPv4.
fn in_net(net: &str, prefix: u32, client: &Option<String>) -> bool {
    fn bits(a: IpAddr) -> (bool, u128) {
        match a {
            IpAddr::V4(v) => (true, u128::from(u32::from(v))),
            IpAddr::V6(v) => match v.to_ipv4_mapped() {
                Some(v4) => (true, u128::from(u32::from(v4))),
                None => (false, u128::from(v)),
            },
        }
    }
    let Some(Ok(c)) = client.as_deref().map(str::parse::<IpAddr>) else {
        return false;
    };
    let (v4n, n) = bits(net.parse().expect("test network"));
    let (v4c, c) = bits(c);
    let width = if v4n { 32 } else { 128 };
    v4n == v4c && (prefix == 0 || (n >> (width - prefix)) == (c >> (width - prefix)))
}

fn word(w: &str, m: &Model) -> bool {
    let w = w.to_lowercase();
    m.texts().iter().any(|t| t.to_lowercase().contains(&w))
}

type Reference = fn(&Model) -> bool;

/// Each filter with its reference predicate.
fn cases() -> Vec<(&'static str, Reference)> {
    vec![
        ("client:10.1.0.0/16", |m| {
            in_net("10.1.0.0", 16, &m.client_ip)
        }),
        ("client:10.2.3.0/24", |m| {
            in_net("10.2.3.0", 24, &m.client_ip)
        }),
        ("client:2001:db8:1::/48", |m| {
            in_net("2001:db8:1::", 48, &m.client_ip)
        }),
        ("client:2001:db8::5", |m| {
            in_net("2001:db8::5", 128, &m.client_ip)
        }),
        ("client:0.0.0.0/0", |m| in_net("0.0.0.0", 0, &m.client_ip)),
        ("-client:10.0.0.0/8", |m| {
            !in_net("10.0.0.0", 8, &m.client_ip)
        }),
        ("client:10.1.0.0/16 client:192.168.0.0/24", |m| {
            in_net("10.1.0.0", 16, &m.client_ip) || in_net("192.168.0.0", 24, &m.client_ip)
        }),
        ("method:GET", |m| m.method.as_deref() == Some("GET")),
        ("method:post method:HEAD", |m| {
            matches!(m.method.as_deref(), Some("POST" | "HEAD"))
        }),
        ("-method:GET", |m| m.method.as_deref() != Some("GET")),
        ("status:404", |m| m.code == Some(404)),
        ("status:5xx", |m| {
            m.code.is_some_and(|c| (500..600).contains(&c))
        }),
        ("status:4xx -status:404", |m| {
            m.code.is_some_and(|c| (400..500).contains(&c) && c != 404)
        }),
        ("status:500-502", |m| {
            m.code.is_some_and(|c| (500..=502).contains(&c))
        }),
        ("status:000", |m| m.code == Some(0)),
        ("status:2xx status:3xx", |m| {
            m.code.is_some_and(|c| (200..400).contains(&c))
        }),
        ("result:TCP_DENIED*", |m| g("TCP_DENIED*", &m.result)),
        ("result:*_HIT", |m| g("*_HIT", &m.result)),
        ("domain:*.example.com", |m| domain("*.example.com", m)),
        ("domain:example.com", |m| domain("example.com", m)),
        ("domain:EXAMPLE.*", |m| domain("example.*", m)),
        ("domain:[2001:db8::1]", |m| domain("[2001:db8::1]", m)),
        ("-domain:*example.com", |m| !domain("*example.com", m)),
        ("url:https://*", |m| g("https://*", &m.destination)),
        ("url:*?x=1", |m| g("*?x=1", &m.destination)),
        ("url:*:443", |m| g("*:443", &m.destination)),
        ("user:alice", |m| m.user.as_deref() == Some("alice")),
        ("user:-", |m| m.user.is_none()),
        ("-user:-", |m| m.user.is_some()),
        ("user:\"john doe\"", |m| {
            m.user.as_deref() == Some("john doe")
        }),
        ("user:b*", |m| g("b*", &m.user)),
        ("-user:alice -user:bob", |m| {
            !matches!(m.user.as_deref(), Some("alice" | "bob"))
        }),
        ("bytes:>1000000", |m| m.bytes.is_some_and(|b| b > 1_000_000)),
        ("bytes:<=1000", |m| m.bytes.is_some_and(|b| b <= 1000)),
        ("elapsed:>=2500", |m| m.elapsed.is_some_and(|e| e >= 2500)),
        ("elapsed:<100", |m| m.elapsed.is_some_and(|e| e < 100)),
        ("type:image/*", |m| g("image/*", &m.content_type)),
        ("source:*/a.log", |m| g("*/a.log", &m.source)),
        ("node:edge-*", |m| g("edge-*", &m.node)),
        ("-node:edge-1", |m| m.node.as_deref() != Some("edge-1")),
        ("firefox", |m| word("firefox", m)),
        ("\"john doe\"", |m| word("john doe", m)),
        ("alice example", |m| word("alice", m) && word("example", m)),
        ("-curl", |m| !word("curl", m)),
        ("2001:db8", |m| word("2001:db8", m)),
        ("method:GET status:2xx -user:- domain:*.example.com", |m| {
            m.method.as_deref() == Some("GET")
                && m.code.is_some_and(|c| (200..300).contains(&c))
                && m.user.is_some()
                && domain("*.example.com", m)
        }),
        (
            "client:10.0.0.0/8 status:403 status:407 result:TCP_DENIED* -user:backup bytes:<500000",
            |m| {
                in_net("10.0.0.0", 8, &m.client_ip)
                    && matches!(m.code, Some(403 | 407))
                    && g("TCP_DENIED*", &m.result)
                    && m.user.as_deref() != Some("backup")
                    && m.bytes.is_some_and(|b| b < 500_000)
            },
        ),
    ]
}

#[test]
fn every_filter_selects_what_the_reference_selects() {
    let models = generate(10_000);
    let fields: Vec<(Fields, Fields, Vec<u8>)> = models
        .iter()
        .map(|m| {
            let entry = m.entry();
            let live = Fields::from_entry(&entry, m.source.as_deref());
            // The same entry as the journal holds it, read back for replay from disk.
            let mut with_source = entry.clone();
            if let Some(s) = &m.source {
                with_source
                    .extra
                    .push((Cow::Borrowed("source"), Some(Cow::Owned(s.clone()))));
            }
            let json = serde_json::to_vec(&with_source).expect("serializes");
            let stored = Fields::from_json(&json).expect("an object");
            (live, stored, json)
        })
        .collect();
    // Entries the JSON pre-check rejected, and entries not selected, over all cases.
    let (mut pre_rejected, mut unselected) = (0usize, 0usize);
    for (expr, reference) in cases() {
        let filter = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let mut selected = 0;
        let mut lowered = Vec::new();
        for (i, (m, (live, stored, json))) in models.iter().zip(&fields).enumerate() {
            let want = reference(m);
            assert_eq!(filter.matches(live), want, "{expr} on entry {i}: {m:?}");
            assert_eq!(
                filter.matches(stored),
                want,
                "{expr} on stored entry {i}: {m:?}"
            );
            // Replay from disk pre-checks the JSON text before building the fields.
            if !filter.may_match_json(json, &mut lowered) {
                assert!(
                    !want,
                    "{expr}: the pre-check rejected matching entry {i}: {m:?}"
                );
                pre_rejected += 1;
            }
            selected += usize::from(want);
            unselected += usize::from(!want);
        }
        // Each filter splits the set, so a filter that matched all or nothing would show here.
        assert!(
            selected > 0 && selected < models.len(),
            "{expr} selects {selected} of {}",
            models.len()
        );
    }
    // It must do its job: most entries a filter rejects never have their fields built.
    assert!(
        pre_rejected * 10 > unselected * 8,
        "the pre-check rejected {pre_rejected} of {unselected}"
    );
}

proptest! {
    #[test]
    fn parse_never_panics(expr in "\\PC{0,200}") {
        let _ = Filter::parse(&expr);
    }

    #[test]
    fn parse_never_panics_on_grammar_like_input(
        terms in proptest::collection::vec(
            ("-?", "(client|status|bytes|elapsed|domain|user|url|x)?", ":?", "[\"0-9a-fx./:*<>=-]{0,12}"),
            0..40,
        )
    ) {
        let expr: Vec<String> = terms.into_iter().map(|(n, k, c, v)| format!("{n}{k}{c}{v}")).collect();
        let expr = expr.join(" ");
        if let Err(e) = Filter::parse(&expr) {
            prop_assert!(e.to_string().len() <= 123, "{e}");
        }
    }
}
