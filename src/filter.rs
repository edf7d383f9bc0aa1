//! Server-side filters (CONTRACT §6): an expression compiled once per subscription, matched against
//! the compact [`Fields`] kept beside each record, so matching never parses JSON.
//!
//! Matching allocates nothing and stays linear in the entry's size: globs know only `*` and are
//! matched segment by segment with `memmem` (leftmost-first is exact for `*`-only globs), bare
//! words search one lower-cased haystack built once per entry, addresses are pre-parsed.
//!
//! Decisions where the contract is silent: `domain:` and bare words ignore case (as specified),
//! `method:` compares ASCII case-insensitively (no glob), every other glob is case-sensitive; an
//! IPv4-mapped IPv6 client (`::ffff:10.1.2.3`) is the IPv4 client it stands for; bare words search
//! every text field of the entry except the derived `timestamp` and `status` texts.
use memchr::memmem;
use parsers::Entry;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

/// Longest accepted expression, in bytes.
const MAX_BYTES: usize = 1024;
/// Most terms in one expression.
const MAX_TERMS: usize = 32;
/// Separates the text fields in [`Fields::text`]; a bare word never holds it (refused at parse),
/// so a word cannot match across two fields.
const SEP: char = '\0';

/// The fields of one entry that filters look at, owned and compact, built once when the entry is made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    /// `client_ip` as written in the entry.
    pub client_ip: Option<Box<str>>,
    /// `method`.
    pub method: Option<Box<str>>,
    /// `destination` (URL, or `host:port` for CONNECT).
    pub destination: Option<Box<str>>,
    /// `code`.
    pub code: Option<u16>,
    /// `result`.
    pub result: Option<Box<str>>,
    /// `user`.
    pub user: Option<Box<str>>,
    /// `bytes`.
    pub bytes: Option<u64>,
    /// `elapsed_ms`.
    pub elapsed_ms: Option<u64>,
    /// `content_type`.
    pub content_type: Option<Box<str>>,
    /// `source` (the log file an entry came from, when several are followed).
    pub source: Option<Box<str>>,
    /// `node` (the edge an entry came from, on a fleet central).
    pub node: Option<Box<str>>,
    /// `client_ip` parsed (IPv4-mapped IPv6 as IPv4), so `client:` compares addresses, not text.
    client_addr: Option<IpAddr>,
    /// The destination's host, lower-cased, without userinfo or port, for `domain:`.
    host: Option<Box<str>>,
    /// Every text field, lower-cased and joined by [`SEP`]: one haystack for bare words.
    text: Box<str>,
}

/// Collects the text fields for bare words while a [`Fields`] is being built.
#[derive(Default)]
struct TextBuilder(String);

impl TextBuilder {
    fn push(&mut self, value: &str) {
        if !self.0.is_empty() {
            self.0.push(SEP);
        }
        // Log fields are nearly always ASCII: copy and lower-case in place.
        if value.is_ascii() && !value.contains(SEP) {
            let start = self.0.len();
            self.0.push_str(value);
            self.0[start..].make_ascii_lowercase();
            return;
        }
        for c in value.chars() {
            // A separator inside a value would let a word straddle fields; it cannot be searched.
            if c != SEP {
                self.0.extend(c.to_lowercase());
            }
        }
    }
}

impl Fields {
    /// The destination's host as `domain:` matches it.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The fields of a freshly parsed entry (after the privacy policy has been applied to it).
    pub fn from_entry(entry: &Entry<'_>, source: Option<&str>) -> Fields {
        let text = |v: &Option<Cow<'_, str>>| v.as_deref().map(Box::from);
        let mut words = TextBuilder(String::with_capacity(256));
        let standard = [
            &entry.client_ip,
            &entry.method,
            &entry.destination,
            &entry.result,
            &entry.user,
            &entry.hierarchy,
            &entry.peer,
            &entry.content_type,
        ];
        for v in standard.into_iter().flatten() {
            words.push(v);
        }
        let mut node = None;
        let mut extra_source = None;
        for (k, v) in &entry.extra {
            if let Some(v) = v {
                words.push(v);
                match &**k {
                    "node" => node = Some(&**v),
                    "source" => extra_source = Some(&**v),
                    _ => {}
                }
            }
        }
        // The tailer passes the source it also appends as an extra; count it once.
        let source = source.or(extra_source);
        if let Some(s) = source.filter(|_| extra_source.is_none()) {
            words.push(s);
        }
        Fields {
            client_ip: text(&entry.client_ip),
            method: text(&entry.method),
            destination: text(&entry.destination),
            code: entry.code,
            result: text(&entry.result),
            user: text(&entry.user),
            bytes: entry.bytes,
            elapsed_ms: entry.elapsed_ms,
            content_type: text(&entry.content_type),
            source: source.map(Box::from),
            node: node.map(Box::from),
            client_addr: entry.client_ip.as_deref().and_then(parse_addr),
            host: entry.destination.as_deref().map(host_of),
            text: words.0.into(),
        }
    }

    /// The fields of an entry read back as JSON (journal at start-up, replay from disk). Reads the
    /// object in one pass, borrowing strings where they hold no escapes; `None` if it is not a
    /// JSON object.
    pub fn from_json(json: &[u8]) -> Option<Fields> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let fields = de.deserialize_map(FieldsVisitor).ok()?;
        de.end().ok()?;
        Some(fields)
    }
}

/// A JSON value as far as filters care: a string, an unsigned number, or anything else (skipped).
enum Value<'a> {
    Text(Cow<'a, str>),
    Number(u64),
    Other,
}

impl<'de> serde::Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
                Ok(Value::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
                Ok(Value::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
                Ok(Value::Number(v))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Value<'de>, E> {
                Ok(Value::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Value<'de>, E> {
                Ok(Value::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Value<'de>, E> {
                Ok(Value::Other)
            }
            fn visit_unit<E>(self) -> Result<Value<'de>, E> {
                Ok(Value::Other)
            }
            fn visit_none<E>(self) -> Result<Value<'de>, E> {
                Ok(Value::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Value<'de>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Value::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value<'de>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Value::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// An object key, borrowed from the JSON text unless it holds an escape (`Cow`'s own
/// `Deserialize` always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Builds [`Fields`] from the entries of a JSON object, in whatever order they come.
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut f = Fields::default();
        let mut words = TextBuilder(String::with_capacity(256));
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: Value<'de> = map.next_value()?;
            match value {
                Value::Number(n) => match &*key {
                    "code" => f.code = u16::try_from(n).ok(),
                    "bytes" => f.bytes = Some(n),
                    "elapsed_ms" => f.elapsed_ms = Some(n),
                    _ => {}
                },
                Value::Text(s) => {
                    // Derived texts are not searched (a year would match every entry).
                    if matches!(&*key, "timestamp" | "status") {
                        continue;
                    }
                    words.push(&s);
                    let slot = match &*key {
                        "client_ip" => &mut f.client_ip,
                        "method" => &mut f.method,
                        "destination" => &mut f.destination,
                        "result" => &mut f.result,
                        "user" => &mut f.user,
                        "content_type" => &mut f.content_type,
                        "source" => &mut f.source,
                        "node" => &mut f.node,
                        _ => continue,
                    };
                    *slot = Some(s.into());
                }
                Value::Other => {}
            }
        }
        f.client_addr = f.client_ip.as_deref().and_then(parse_addr);
        f.host = f.destination.as_deref().map(host_of);
        f.text = words.0.into();
        Ok(f)
    }
}

/// An address as `client:` compares it: IPv4-mapped IPv6 is the IPv4 address.
fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// The host of a destination, lower-cased: the authority of a URL (`scheme://[user@]host[:port]/…`)
/// or of CONNECT's `host:port`, without userinfo or port; IPv6 brackets are kept.
pub(crate) fn host_of(destination: &str) -> Box<str> {
    let rest = match destination.find("://") {
        Some(i) => &destination[i + 3..],
        None => destination,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let host = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => &hostport[..=i],
            None => hostport,
        }
    } else {
        match hostport.rfind(':') {
            Some(i) => &hostport[..i],
            None => hostport,
        }
    };
    host.to_lowercase().into()
}

/// Why an expression was refused; the text names the problem (it becomes the 1008 close reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

/// At most 40 bytes of user input (cut on a character boundary), so an error stays a valid
/// WebSocket close reason (at most 123 bytes).
fn short(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn err(message: String) -> FilterError {
    FilterError(message)
}

/// A compiled filter. The default filter matches every entry.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Filters that must all match (a view ANDed with a request gives two).
    all_of: Vec<Compiled>,
}

/// One compiled expression: every group must have a matching term, no excluded term may match.
#[derive(Debug, Clone)]
struct Compiled {
    /// ANDed groups of ORed positive terms: one group per key, one per bare word.
    groups: Vec<Vec<Term>>,
    /// `-term`s: any match rejects the entry.
    excluded: Vec<Term>,
    /// For each group whose every term can be pre-checked on the JSON text: per term, what it
    /// needs (all of it). See [`Filter::may_match_json`].
    needs: Vec<Vec<Vec<Need>>>,
}

/// Something the JSON text of an entry must show for a term to match it.
#[derive(Debug, Clone)]
enum Need {
    /// This text (case-sensitive terms: globs' literal pieces).
    Exact(memmem::Finder<'static>),
    /// This ASCII text, lower-cased, in the lower-cased JSON (words, `domain:`, `method:`).
    Folded(memmem::Finder<'static>),
    /// A top-level `code` in this range.
    Code(u16, u16),
    /// A top-level `bytes` that compares so.
    Bytes(Cmp),
    /// A top-level `elapsed_ms` that compares so.
    Elapsed(Cmp),
    /// A top-level `client_ip` in this network.
    Client(Net),
}

/// One term, its value compiled.
#[derive(Debug, Clone)]
enum Term {
    Client(Net),
    Method(Box<str>),
    /// Inclusive code range (a single code, a class or a range).
    Status(u16, u16),
    Result(Glob),
    Domain(Glob),
    Url(Glob),
    /// `None`: `user:-`, the entry has no user.
    User(Option<Glob>),
    Bytes(Cmp),
    Elapsed(Cmp),
    Type(Glob),
    Source(Glob),
    Node(Glob),
    /// Lower-cased bare word, its searcher built once (boxed: a searcher is large).
    Word(Box<memmem::Finder<'static>>),
}

/// The key of a term, to group ORs; `None` for bare words (always ANDed).
fn key_of(t: &Term) -> Option<u8> {
    Some(match t {
        Term::Client(_) => 0,
        Term::Method(_) => 1,
        Term::Status(..) => 2,
        Term::Result(_) => 3,
        Term::Domain(_) => 4,
        Term::Url(_) => 5,
        Term::User(_) => 6,
        Term::Bytes(_) => 7,
        Term::Elapsed(_) => 8,
        Term::Type(_) => 9,
        Term::Source(_) => 10,
        Term::Node(_) => 11,
        Term::Word(_) => return None,
    })
}

impl Term {
    /// What this term needs to see in an entry's JSON text to match it; `None` when it has no
    /// such test (`user:-`, an empty glob or word).
    fn needs(&self) -> Option<Vec<Need>> {
        let exact = |g: &Glob| {
            let v: Vec<Need> = g.pieces.iter().map(|p| Need::Exact(p.clone())).collect();
            (!v.is_empty()).then_some(v)
        };
        // Case-insensitive needles only when ASCII: Unicode lower-casing can map a non-ASCII
        // character to an ASCII one (the Kelvin sign to `k`), which an ASCII fold would miss.
        let folded = |needles: Vec<&[u8]>| {
            let ascii = needles.iter().all(|n| !n.is_empty() && n.is_ascii());
            (ascii && !needles.is_empty()).then(|| {
                needles
                    .into_iter()
                    .map(|n| {
                        let n = n.to_ascii_lowercase();
                        Need::Folded(memmem::Finder::new(&n).into_owned())
                    })
                    .collect()
            })
        };
        match self {
            Term::Client(net) => Some(vec![Need::Client(*net)]),
            Term::Status(lo, hi) => Some(vec![Need::Code(*lo, *hi)]),
            Term::Bytes(c) => Some(vec![Need::Bytes(*c)]),
            Term::Elapsed(c) => Some(vec![Need::Elapsed(*c)]),
            Term::User(None) => None,
            Term::Method(m) => folded(vec![m.as_bytes()]),
            Term::Word(w) => folded(vec![w.needle()]),
            Term::Domain(g) => folded(g.pieces.iter().map(|p| p.needle()).collect()),
            Term::Result(g)
            | Term::Url(g)
            | Term::User(Some(g))
            | Term::Type(g)
            | Term::Source(g)
            | Term::Node(g) => exact(g),
        }
    }

    fn matches(&self, f: &Fields) -> bool {
        let glob = |g: &Glob, v: &Option<Box<str>>| v.as_deref().is_some_and(|v| g.matches(v));
        match self {
            Term::Client(net) => f.client_addr.is_some_and(|a| net.contains(a)),
            Term::Method(m) => f
                .method
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case(m)),
            Term::Status(lo, hi) => f.code.is_some_and(|c| (*lo..=*hi).contains(&c)),
            Term::Result(g) => glob(g, &f.result),
            Term::Domain(g) => glob(g, &f.host),
            Term::Url(g) => glob(g, &f.destination),
            Term::User(None) => f.user.is_none(),
            Term::User(Some(g)) => glob(g, &f.user),
            Term::Bytes(c) => f.bytes.is_some_and(|v| c.matches(v)),
            Term::Elapsed(c) => f.elapsed_ms.is_some_and(|v| c.matches(v)),
            Term::Type(g) => glob(g, &f.content_type),
            Term::Source(g) => glob(g, &f.source),
            Term::Node(g) => glob(g, &f.node),
            Term::Word(w) => w.find(f.text.as_bytes()).is_some(),
        }
    }
}

/// Hosts an entry must have one of to pass a filter ([`Filter::required_hosts`]): a check the
/// publisher makes per subscription and batch instead of the filter's whole match (issue 14).
#[derive(Debug)]
pub struct Hosts(Box<[Box<str>]>);

impl Hosts {
    /// Whether an entry with this host ([`Fields::host`]) has one of them (as `domain:` compares).
    pub fn admit(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| self.0.iter().any(|k| **k == *h))
    }
}

/// An address or a network (`client:`), its host bits zeroed.
#[derive(Debug, Clone, Copy)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Result<Net, FilterError> {
        let bad = || err(format!("malformed address or CIDR '{}'", short(s)));
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        // An IPv4-mapped network is the IPv4 network (clients are compared the same way).
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        Ok(Net {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && mask(a, self.prefix) == self.addr
    }
}

/// `a` with all but its first `prefix` bits zeroed.
pub(crate) fn mask(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// A numeric comparison (`bytes:`, `elapsed:`).
#[derive(Debug, Clone, Copy)]
enum Cmp {
    Gt(u64),
    Ge(u64),
    Lt(u64),
    Le(u64),
    Eq(u64),
}

impl Cmp {
    fn parse(s: &str) -> Result<Cmp, FilterError> {
        let (ctor, n): (fn(u64) -> Cmp, &str) = if let Some(n) = s.strip_prefix(">=") {
            (Cmp::Ge, n)
        } else if let Some(n) = s.strip_prefix("<=") {
            (Cmp::Le, n)
        } else if let Some(n) = s.strip_prefix('>') {
            (Cmp::Gt, n)
        } else if let Some(n) = s.strip_prefix('<') {
            (Cmp::Lt, n)
        } else if let Some(n) = s.strip_prefix('=') {
            (Cmp::Eq, n)
        } else {
            (Cmp::Eq, s)
        };
        match n.bytes().all(|b| b.is_ascii_digit()).then(|| n.parse()) {
            Some(Ok(n)) => Ok(ctor(n)),
            _ => Err(err(format!("malformed comparison '{}'", short(s)))),
        }
    }

    fn matches(self, v: u64) -> bool {
        match self {
            Cmp::Gt(n) => v > n,
            Cmp::Ge(n) => v >= n,
            Cmp::Lt(n) => v < n,
            Cmp::Le(n) => v <= n,
            Cmp::Eq(n) => v == n,
        }
    }
}

/// A glob where `*` matches any run of characters and everything else itself; it matches the
/// whole value. Hand-written rather than `globset` (which compiles to a regex): with `*` alone,
/// matching the literal segments leftmost-first is exact, linear and allocation-free.
#[derive(Debug, Clone)]
struct Glob {
    /// The literal pieces between stars, in order (empty pieces removed), each with its
    /// searcher built once.
    pieces: Vec<memmem::Finder<'static>>,
    /// No leading `*`: the first piece is a prefix.
    anchored_start: bool,
    /// No trailing `*`: the last piece is a suffix.
    anchored_end: bool,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        Glob {
            pieces: pattern
                .split('*')
                .filter(|p| !p.is_empty())
                .map(|p| memmem::Finder::new(p).into_owned())
                .collect(),
            anchored_start: !pattern.starts_with('*'),
            anchored_end: !pattern.ends_with('*') || pattern.is_empty(),
        }
    }

    /// The one value this glob matches, when it has no `*` (and is not empty).
    fn exact(&self) -> Option<&str> {
        match &self.pieces[..] {
            [only] if self.anchored_start && self.anchored_end => {
                std::str::from_utf8(only.needle()).ok()
            }
            _ => None,
        }
    }

    fn matches(&self, value: &str) -> bool {
        let mut v = value.as_bytes();
        let mut pieces = &self.pieces[..];
        if pieces.is_empty() {
            // `` matches only the empty value, `*` (or `**`) anything.
            return !self.anchored_start || v.is_empty();
        }
        if self.anchored_start {
            let first = pieces[0].needle();
            if !v.starts_with(first) {
                return false;
            }
            v = &v[first.len()..];
            pieces = &pieces[1..];
            if pieces.is_empty() {
                return !self.anchored_end || v.is_empty();
            }
        }
        let (middle, last) = if self.anchored_end {
            let (last, middle) = pieces.split_last().unwrap_or((&pieces[0], &[]));
            (middle, Some(last))
        } else {
            (pieces, None)
        };
        for piece in middle {
            match piece.find(v) {
                Some(i) => v = &v[i + piece.needle().len()..],
                None => return false,
            }
        }
        match last {
            Some(last) => v.ends_with(last.needle()),
            None => true,
        }
    }
}

/// Splits `expr` into terms: whitespace separates them except inside `"..."`; quotes are removed.
/// Each token is (negated, key if any, value).
fn tokenize(expr: &str) -> Result<Vec<(bool, Option<String>, String)>, FilterError> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let negated = first == '-';
        if negated {
            chars.next();
        }
        let mut key = None;
        let mut value = String::new();
        let mut quoted_any = false;
        let mut in_quote = false;
        while let Some(c) = chars.peek().copied() {
            if !in_quote && c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' => {
                    in_quote = !in_quote;
                    quoted_any = true;
                }
                ':' if !in_quote && key.is_none() && !quoted_any && is_key(&value) => {
                    key = Some(std::mem::take(&mut value));
                }
                _ => value.push(c),
            }
        }
        if in_quote {
            return Err(err("unbalanced quote".into()));
        }
        if value.is_empty() && !quoted_any {
            return Err(match key {
                Some(k) => err(format!("empty value for '{}'", short(&k))),
                None => err("'-' with nothing after it".into()),
            });
        }
        out.push((negated, key, value));
        if out.len() > MAX_TERMS {
            return Err(err(format!("more than {MAX_TERMS} terms")));
        }
    }
    Ok(out)
}

/// Whether the text before a `:` is a key (letters only), so `2001:db8::1` stays a bare word.
fn is_key(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Compiles one `key:value` term (key `None`: a bare word).
fn term(key: Option<&str>, value: &str) -> Result<Term, FilterError> {
    let Some(key) = key else {
        if value.contains(SEP) {
            return Err(err("NUL character in filter".into()));
        }
        let word = value.to_lowercase();
        return Ok(Term::Word(Box::new(
            memmem::Finder::new(&word).into_owned(),
        )));
    };
    Ok(match key {
        "client" => Term::Client(Net::parse(value)?),
        "method" => Term::Method(value.into()),
        "status" => {
            let (lo, hi) = status_range(value)
                .ok_or_else(|| err(format!("malformed status '{}'", short(value))))?;
            Term::Status(lo, hi)
        }
        "result" => Term::Result(Glob::new(value)),
        "domain" => Term::Domain(Glob::new(&value.to_lowercase())),
        "url" => Term::Url(Glob::new(value)),
        "user" if value == "-" => Term::User(None),
        "user" => Term::User(Some(Glob::new(value))),
        "bytes" => Term::Bytes(Cmp::parse(value)?),
        "elapsed" => Term::Elapsed(Cmp::parse(value)?),
        "type" => Term::Type(Glob::new(value)),
        "source" => Term::Source(Glob::new(value)),
        "node" => Term::Node(Glob::new(value)),
        other => return Err(err(format!("unknown key '{}'", short(other)))),
    })
}

/// `404` → (404, 404), `5xx` → (500, 599), `500-503` → (500, 503).
fn status_range(s: &str) -> Option<(u16, u16)> {
    fn code(s: &str) -> Option<u16> {
        (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }
    let b = s.as_bytes();
    if b.len() == 3 && b[0].is_ascii_digit() && b[1..].eq_ignore_ascii_case(b"xx") {
        let lo = u16::from(b[0] - b'0') * 100;
        return Some((lo, lo + 99));
    }
    if let Some((a, z)) = s.split_once('-') {
        let (a, z) = (code(a)?, code(z)?);
        return (a <= z).then_some((a, z));
    }
    code(s).map(|c| (c, c))
}

impl Compiled {
    fn parse(expr: &str) -> Result<Compiled, FilterError> {
        let mut groups: Vec<(Option<u8>, Vec<Term>)> = Vec::new();
        let mut excluded = Vec::new();
        for (negated, key, value) in tokenize(expr)? {
            let t = term(key.as_deref(), &value)?;
            if negated {
                excluded.push(t);
                continue;
            }
            let k = key_of(&t);
            match groups.iter_mut().find(|(g, _)| k.is_some() && *g == k) {
                Some((_, terms)) => terms.push(t),
                None => groups.push((k, vec![t])),
            }
        }
        let groups: Vec<Vec<Term>> = groups.into_iter().map(|(_, terms)| terms).collect();
        let needs = groups
            .iter()
            .filter_map(|g| g.iter().map(Term::needs).collect::<Option<Vec<_>>>())
            .collect();
        Ok(Compiled {
            groups,
            excluded,
            needs,
        })
    }

    /// False when some group cannot match: none of its terms finds all it needs in the text.
    fn may_match(&self, text: &mut JsonText<'_>) -> bool {
        self.needs
            .iter()
            .all(|group| group.iter().any(|lits| lits.iter().all(|l| text.holds(l))))
    }

    fn matches(&self, f: &Fields) -> bool {
        self.groups
            .iter()
            .all(|group| group.iter().any(|t| t.matches(f)))
            && !self.excluded.iter().any(|t| t.matches(f))
    }
}

impl Filter {
    /// Compiles `expr`; the empty (or blank) expression matches everything.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        if expr.len() > MAX_BYTES {
            return Err(err(format!("filter longer than {MAX_BYTES} bytes")));
        }
        if expr.trim().is_empty() {
            return Ok(Filter::default());
        }
        Ok(Filter {
            all_of: vec![Compiled::parse(expr)?],
        })
    }

    /// The hosts an entry must have one of to pass, when some group of the filter is nothing but
    /// `domain:` terms without `*` (exact hosts); the smallest such group. `None` when entries of
    /// any host may pass.
    pub fn required_hosts(&self) -> Option<Hosts> {
        self.all_of
            .iter()
            .flat_map(|c| &c.groups)
            .filter_map(|group| {
                group
                    .iter()
                    .map(|t| match t {
                        Term::Domain(g) => g.exact().map(Box::from),
                        _ => None,
                    })
                    .collect::<Option<Box<[Box<str>]>>>()
            })
            .filter(|hosts| !hosts.is_empty())
            .min_by_key(|hosts| hosts.len())
            .map(Hosts)
    }

    /// Whether this filter matches every entry (no need to look at fields at all).
    pub fn is_all(&self) -> bool {
        self.all_of.is_empty()
    }

    /// Both filters must match (a user's view AND what the subscriber asked for).
    pub fn and(&self, other: &Filter) -> Filter {
        let mut all_of = self.all_of.clone();
        all_of.extend(other.all_of.iter().cloned());
        Filter { all_of }
    }

    /// Whether the entry with these fields passes.
    pub fn matches(&self, fields: &Fields) -> bool {
        self.all_of.iter().all(|c| c.matches(fields))
    }

    /// A pre-check on an entry's JSON text, before its [`Fields`] are built (replay and search
    /// from disk): false only when [`Filter::matches`] would be false on the fields built from
    /// `json`; true says nothing. `lowered` is scratch space, reused across calls.
    ///
    /// Why it never rejects a match: when the text holds no `\` (no JSON escape), every string
    /// value appears in it verbatim, and a positive term can only match a value that contains
    /// its literals (a glob's pieces, a word, a method); case-insensitive ones are searched in
    /// the lower-cased text, and only when it is ASCII (then Unicode and ASCII lower-casing
    /// agree). Numeric terms and `client:` read their top-level value the way the fields are
    /// built ([`scan_top`]), or pass when the object is not flat. If the text is not valid JSON,
    /// its fields are empty, and no term with a need matches empty fields. Excluded terms are
    /// left to `matches`.
    pub fn may_match_json(&self, json: &[u8], lowered: &mut Vec<u8>) -> bool {
        if self.all_of.iter().all(|c| c.needs.is_empty()) {
            return true;
        }
        if memchr::memchr(b'\\', json).is_some() {
            return true;
        }
        let mut text = JsonText {
            raw: json,
            ascii: json.is_ascii(),
            lowered,
            is_lowered: false,
            top: None,
        };
        self.all_of.iter().all(|c| c.may_match(&mut text))
    }
}

/// An entry's JSON text (with no `\`) as [`Need`]s look at it; lower-cased and scanned on first
/// need.
struct JsonText<'a> {
    raw: &'a [u8],
    /// Case-insensitive searches are made only in ASCII text.
    ascii: bool,
    /// The lower-cased text, once `is_lowered`.
    lowered: &'a mut Vec<u8>,
    is_lowered: bool,
    /// [`scan_top`]'s result, once scanned.
    top: Option<Option<Top<'a>>>,
}

impl JsonText<'_> {
    fn holds(&mut self, need: &Need) -> bool {
        let raw = self.raw;
        let mut top = || *self.top.get_or_insert_with(|| scan_top(raw));
        match need {
            Need::Exact(f) => f.find(self.raw).is_some(),
            Need::Folded(_) if !self.ascii => true,
            Need::Folded(f) => {
                if !self.is_lowered {
                    self.lowered.clear();
                    self.lowered.extend_from_slice(self.raw);
                    self.lowered.make_ascii_lowercase();
                    self.is_lowered = true;
                }
                f.find(self.lowered).is_some()
            }
            // Not a flat object: it says nothing.
            Need::Code(lo, hi) => top().is_none_or(|t| {
                t.code
                    .and_then(|c| u16::try_from(c).ok())
                    .is_some_and(|c| (*lo..=*hi).contains(&c))
            }),
            Need::Bytes(c) => top().is_none_or(|t| t.bytes.is_some_and(|v| c.matches(v))),
            Need::Elapsed(c) => top().is_none_or(|t| t.elapsed_ms.is_some_and(|v| c.matches(v))),
            Need::Client(net) => top().is_none_or(|t| {
                t.client_ip
                    .and_then(parse_addr)
                    .is_some_and(|a| net.contains(a))
            }),
        }
    }
}

/// The top-level values of an entry that numeric terms and `client:` look at, as
/// [`FieldsVisitor`] reads them: a number only when it is an unsigned integer, an address only
/// when it is a string.
#[derive(Debug, Clone, Copy, Default)]
struct Top<'a> {
    code: Option<u64>,
    bytes: Option<u64>,
    elapsed_ms: Option<u64>,
    client_ip: Option<&'a str>,
}

/// Reads [`Top`] from the JSON text of a flat object with no `\` (so a string ends at the next
/// `"`), without building anything. `None` when the text is not such an object (a nested
/// value, a syntax it does not know) or one of the keys it reads appears twice: the caller then
/// knows nothing. Invalid JSON it accepts does not matter: its fields are empty.
fn scan_top(raw: &[u8]) -> Option<Top<'_>> {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let skip = |i: &mut usize| {
        while raw.get(*i).is_some_and(ws) {
            *i += 1;
        }
    };
    let mut top = Top::default();
    let mut seen = [false; 4];
    let mut i = 0;
    skip(&mut i);
    if raw.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    skip(&mut i);
    if raw.get(i) == Some(&b'}') {
        return Some(top);
    }
    loop {
        skip(&mut i);
        if raw.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = i + 1 + memchr::memchr(b'"', raw.get(i + 1..)?)?;
        let key = &raw[i + 1..key_end];
        i = key_end + 1;
        skip(&mut i);
        if raw.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        skip(&mut i);
        let start = i;
        let (value, string) = match raw.get(i)? {
            b'"' => {
                let end = i + 1 + memchr::memchr(b'"', raw.get(i + 1..)?)?;
                i = end + 1;
                (&raw[start + 1..end], true)
            }
            b'{' | b'[' => return None,
            _ => {
                while raw
                    .get(i)
                    .is_some_and(|b| !ws(b) && *b != b',' && *b != b'}')
                {
                    i += 1;
                }
                (&raw[start..i], false)
            }
        };
        let slot = match key {
            b"code" => 0,
            b"bytes" => 1,
            b"elapsed_ms" => 2,
            b"client_ip" => 3,
            _ => 4,
        };
        if slot < 4 {
            if std::mem::replace(&mut seen[slot], true) {
                return None;
            }
            // An unsigned integer is all digits (serde_json reads `1.0`, `-1`, `1e3` and
            // integers past u64 as other numbers, which the fields ignore).
            let number = (!string && !value.is_empty() && value.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(value).ok()?.parse::<u64>().ok())
                .flatten();
            match slot {
                0 => top.code = number,
                1 => top.bytes = number,
                2 => top.elapsed_ms = number,
                _ => top.client_ip = string.then(|| std::str::from_utf8(value).ok()).flatten(),
            }
        }
        skip(&mut i);
        match raw.get(i)? {
            b',' => i += 1,
            b'}' => return Some(top),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry from its JSON text (the same path replay from disk takes).
    fn fields(json: &str) -> Fields {
        Fields::from_json(json.as_bytes()).expect("valid entry JSON")
    }

    fn sample() -> Fields {
        fields(
            r#"{"id":7,"timestamp":"2026-12-01 10:00:00","client_ip":"10.1.2.3","method":"GET",
            "destination":"http://Bob:pw@WWW.Example.com:8080/a/b.html?q=1","status":"404 Not Found",
            "bytes":1500,"ts":1.5,"elapsed_ms":250,"result":"TCP_DENIED","code":404,"user":"alice",
            "hierarchy":"HIER_NONE","peer":null,"content_type":"text/html","user_agent":"Mozilla Firefox"}"#,
        )
    }

    fn m(expr: &str, f: &Fields) -> bool {
        Filter::parse(expr).expect(expr).matches(f)
    }

    fn error(expr: &str) -> String {
        let e = Filter::parse(expr).expect_err(expr).to_string();
        assert!(e.len() <= 123, "close reason too long: {e}");
        e
    }

    #[test]
    fn empty_matches_all() {
        assert!(Filter::parse("  ").expect("blank").is_all());
        assert!(m("", &Fields::default()));
        assert!(!Filter::parse("x").expect("word").is_all());
    }

    #[test]
    fn client_compares_parsed_addresses_and_networks() {
        let f = sample();
        assert!(m("client:10.1.2.3", &f));
        assert!(m("client:10.1.0.0/16", &f));
        assert!(!m("client:10.2.0.0/16", &f));
        assert!(m("client:0.0.0.0/0", &f));
        assert!(
            !m("client:::/0", &f),
            "an IPv6 network never holds an IPv4 client"
        );
        let v6 = fields(r#"{"client_ip":"2001:db8::5"}"#);
        assert!(m("client:2001:0db8::5", &v6));
        assert!(m("client:2001:db8::/32", &v6));
        assert!(
            !m("client:0.0.0.0/0", &v6),
            "an IPv4 CIDR never matches an IPv6 client"
        );
        let mapped = fields(r#"{"client_ip":"::ffff:10.1.2.3"}"#);
        assert!(m("client:10.1.0.0/16", &mapped));
        assert!(m("client:::ffff:10.1.0.0/112", &f));
        let none = fields(r#"{"client_ip":null}"#);
        assert!(!m("client:0.0.0.0/0", &none));
        assert!(m("-client:0.0.0.0/0", &none));
    }

    #[test]
    fn method_status_result() {
        let f = sample();
        assert!(m("method:GET", &f) && m("method:get", &f));
        assert!(!m("method:POST", &f));
        assert!(m("method:POST method:GET", &f), "same key ORs");
        assert!(m("status:404", &f) && m("status:4xx", &f) && m("status:400-404", &f));
        assert!(!m("status:5xx", &f) && !m("status:405-499", &f) && !m("status:200", &f));
        assert!(!m("status:4xx -status:404", &f));
        assert!(m("result:TCP_DENIED*", &f) && m("result:*DENIED", &f));
        assert!(!m("result:TCP_MISS", &f) && !m("result:TCP_", &f));
    }

    #[test]
    fn the_hosts_a_filter_requires_are_its_smallest_group_of_exact_domains() {
        let hosts = |expr: &str| {
            let f = Filter::parse(expr).expect("grammar");
            f.required_hosts().map(|h| {
                let mut v: Vec<&str> = h.0.iter().map(|k| &**k).collect();
                v.sort_unstable();
                v.join(",")
            })
        };
        assert_eq!(
            hosts("domain:A.test"),
            Some("a.test".into()),
            "lower-cased as matched"
        );
        assert_eq!(
            hosts("domain:a.test domain:b.test"),
            Some("a.test,b.test".into())
        );
        assert_eq!(hosts("domain:a.test method:GET"), Some("a.test".into()));
        let view = Filter::parse("domain:a.test domain:b.test").expect("grammar");
        let asked = Filter::parse("domain:b.test").expect("grammar");
        let both = view.and(&asked).required_hosts().expect("hosts");
        assert_eq!(&*both.0, &[Box::from("b.test")], "the smallest group");
        for any in [
            "",
            "method:GET",
            "domain:*.test",
            "domain:a.*",
            "-domain:a.test",
            "a.test",
        ] {
            assert_eq!(hosts(any), None, "{any:?}");
        }
    }

    #[test]
    fn domain_is_the_host_without_userinfo_or_port() {
        let f = sample();
        assert!(m("domain:www.example.com", &f));
        assert!(m("domain:*.EXAMPLE.com", &f));
        assert!(!m("domain:example.com", &f));
        assert!(!m("domain:*8080", &f) && !m("domain:bob*", &f));
        let connect = fields(r#"{"method":"CONNECT","destination":"Mail.Example.com:443"}"#);
        assert!(m("domain:*.example.com", &connect));
        assert!(!m("domain:*443", &connect));
        let v6 = fields(r#"{"destination":"http://[2001:db8::1]:8080/x"}"#);
        assert!(m("domain:[2001:db8::1]", &v6));
    }

    #[test]
    fn url_user_type_source_node_globs() {
        let f = sample();
        assert!(m("url:*.html?q=1", &f) && m("url:http://*", &f));
        assert!(!m("url:*.html", &f));
        assert!(m("user:alice", &f) && m("user:al*", &f) && !m("user:-", &f));
        assert!(!m("-user:alice", &f) && !m("-user:bob -user:alice", &f));
        let anon = fields(r#"{"user":null}"#);
        assert!(m("user:-", &anon) && !m("user:*", &anon) && m("-user:alice", &anon));
        assert!(m("type:text/*", &f) && !m("type:image/*", &f));
        let fleet = fields(r#"{"source":"/var/log/squid/a.log","node":"edge-1"}"#);
        assert!(m("source:*/a.log node:edge-*", &fleet));
        assert!(
            !m("node:edge-2", &fleet) && !m("source:*", &f),
            "a null field never matches"
        );
    }

    #[test]
    fn bytes_and_elapsed_compare() {
        let f = sample();
        for (e, want) in [
            ("bytes:>1000", true),
            ("bytes:>1500", false),
            ("bytes:>=1500", true),
            ("bytes:<1500", false),
            ("bytes:<=1500", true),
            ("bytes:=1500", true),
            ("bytes:1500", true),
            ("elapsed:>=250", true),
            ("elapsed:<250", false),
        ] {
            assert_eq!(m(e, &f), want, "{e}");
        }
    }

    #[test]
    fn bare_words_quoting_and_and() {
        let f = sample();
        assert!(m("firefox", &f), "any text field, case-insensitively");
        assert!(m("\"mozilla firefox\" EXAMPLE", &f));
        assert!(!m("firefox chrome", &f), "bare words AND");
        assert!(!m("-firefox", &f));
        assert!(!m("2026", &f), "the derived timestamp is not searched");
        assert!(!m("\"alicetext\"", &f), "a word never spans two fields");
        assert!(m("user:\"alice\"", &f));
        let spaced = fields(r#"{"user":"john doe"}"#);
        assert!(m("user:\"john doe\"", &spaced) && m("user:\"john d\"*", &spaced));
    }

    #[test]
    fn from_entry_and_from_json_agree() {
        let line = b"1700000000.123    250 10.1.2.3 TCP_DENIED/404 1500 GET http://bob@www.example.com:8080/a?q=1 alice HIER_NONE/- text/html";
        let entry = parsers::Format::builtin("squid")
            .expect("squid")
            .parse(line)
            .expect("parses");
        let a = Fields::from_entry(&entry, Some("/var/log/a.log"));
        let mut with_source = entry.clone();
        with_source
            .extra
            .push(("source".into(), Some("/var/log/a.log".into())));
        let json = serde_json::to_vec(&with_source).expect("serializes");
        let b = Fields::from_json(&json).expect("object");
        assert_eq!(a, b);
        assert_eq!(a.host.as_deref(), Some("www.example.com"));
    }

    #[test]
    fn from_json_refuses_non_objects() {
        assert!(Fields::from_json(b"[1]").is_none());
        assert!(Fields::from_json(b"{\"a\":1} x").is_none());
        assert!(Fields::from_json(b"{").is_none());
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(error("stauts:404"), "unknown key 'stauts'");
        let terms = vec!["a"; 33].join(" ");
        assert_eq!(error(&terms), "more than 32 terms");
        assert!(Filter::parse(&vec!["a"; 32].join(" ")).is_ok());
        assert_eq!(error(&"a".repeat(1025)), "filter longer than 1024 bytes");
        assert!(Filter::parse(&"a".repeat(1024)).is_ok());
        assert!(error("client:10.0.0.0/33").contains("malformed address or CIDR"));
        assert!(error("client:10.0.0/8").contains("CIDR"));
        assert!(error("client:10.0.0.0/").contains("CIDR"));
        assert!(error("status:5x").contains("malformed status"));
        assert!(error("status:503-500").contains("malformed status"));
        assert!(error("bytes:>>1").contains("malformed comparison"));
        assert!(error("elapsed:abc").contains("malformed comparison"));
        assert_eq!(error("user:\"bob"), "unbalanced quote");
        assert!(error("status:").contains("empty value"));
        let long_key = format!("{}:1", "k".repeat(200));
        assert!(error(&long_key).starts_with("unknown key"));
    }

    #[test]
    fn and_needs_both() {
        let f = sample();
        let view = Filter::parse("client:10.1.0.0/16").expect("view");
        let asked = Filter::parse("client:10.2.0.0/16").expect("asked");
        assert!(!view.and(&asked).matches(&f));
        assert!(view.and(&Filter::default()).matches(&f));
        assert!(!view.and(&Filter::default()).is_all());
    }

    /// What the replay from disk does: the pre-check, then the fields and the filter.
    fn m_json(expr: &str, json: &str) -> (bool, bool) {
        let f = Filter::parse(expr).expect(expr);
        let pre = f.may_match_json(json.as_bytes(), &mut Vec::new());
        // As a record read back gets them: empty when the text is not an object.
        let full = f.matches(&Fields::from_json(json.as_bytes()).unwrap_or_default());
        assert!(
            pre || !full,
            "{expr} rejected by the pre-check but matches {json}"
        );
        (pre, full)
    }

    #[test]
    fn the_json_pre_check_rejects_what_lacks_a_literal_and_never_a_match() {
        let line = r#"{"id":1,"client_ip":"10.1.2.3","method":"GET","destination":"http://WWW.Example.com/a","code":200,"result":"TCP_MISS","user":"alice","content_type":"text/html","agent":"Mozilla"}"#;
        // Rejected without building fields: a literal the text lacks.
        for expr in [
            "status:503",
            "result:TCP_DENIED*",
            "domain:*.example.org",
            "url:*/b",
            "user:bob",
            "type:image/*",
            "node:edge-*",
            "firefox",
            "method:POST",
            "status:503 status:504",
            "mozilla firefox",
            "client:10.0.0.0/8 status:404",
            "status:5xx",
            "status:1",
            "client:192.168.0.0/16",
            "bytes:>0",
            "elapsed:<5",
        ] {
            assert_eq!(m_json(expr, line), (false, false), "{expr}");
        }
        // Passed on (and matched): literals found, case-insensitively where the term ignores case.
        for expr in [
            "status:200",
            "domain:*.EXAMPLE.com",
            "method:get",
            "MOZILLA",
            "status:503 status:200",
            "result:TCP_*",
            "status:2xx client:10.1.0.0/16",
            "client:192.168.0.0/16 client:10.0.0.0/8",
        ] {
            assert_eq!(m_json(expr, line), (true, true), "{expr}");
        }
        // Passed on, then rejected by the fields: the literal is elsewhere in the text, or the
        // term has no pre-check (`user:-`, an excluded term).
        for expr in ["user:agent", "-user:alice", "user:- status:200", "source:*"] {
            assert_eq!(m_json(expr, line), (true, false), "{expr}");
        }
        // A view ANDed with a request: either one's literal missing rejects.
        let view = Filter::parse("client:10.1.0.0/16").expect("view");
        let asked = Filter::parse("status:404").expect("asked");
        assert!(!view
            .and(&asked)
            .may_match_json(line.as_bytes(), &mut Vec::new()));
    }

    #[test]
    fn the_json_pre_check_reads_top_level_numbers_and_addresses_as_the_fields_do() {
        // Spaces anywhere JSON allows them.
        let spaced = r#" { "code" : 503 , "bytes":10 ,"client_ip" : "::ffff:10.1.2.3" } "#;
        assert_eq!(m_json("status:5xx", spaced), (true, true));
        assert_eq!(m_json("bytes:10 client:10.1.0.0/16", spaced), (true, true));
        // A number that is not an unsigned integer, a string, null, or too large: no value.
        for v in [
            "503.0",
            "-503",
            "5.03e2",
            "\"503\"",
            "null",
            "18446744073709551616",
            "70000",
        ] {
            let json = format!(r#"{{"code":{v}}}"#);
            assert_eq!(m_json("status:0-999", &json), (false, false), "{v}");
        }
        assert_eq!(
            m_json("client:0.0.0.0/0", r#"{"client_ip":null}"#),
            (false, false)
        );
        // A nested value, or a key read twice: the scan says nothing, the fields decide.
        assert_eq!(
            m_json("status:503", r#"{"x":{"code":1},"code":503}"#),
            (true, true)
        );
        assert_eq!(
            m_json("status:503", r#"{"code":1,"code":503}"#),
            (true, true)
        );
        assert_eq!(
            m_json("status:503", r#"{"code":503,"code":null}"#),
            (true, true)
        );
        // Not JSON at all: its fields are empty, so it is rejected either way.
        assert_eq!(m_json("status:503", r#"{"code":503"#), (true, false));
        assert_eq!(m_json("status:503", "nonsense"), (true, false));
    }

    #[test]
    fn the_json_pre_check_passes_escaped_and_non_ascii_text_on() {
        // An escape hides the literal from the raw text: `TCP\u005fDENIED` is TCP_DENIED.
        assert_eq!(
            m_json("result:TCP_DENIED", r#"{"result":"TCP\u005fDENIED"}"#),
            (true, true)
        );
        // The Kelvin sign lower-cases to `k` (Unicode), which an ASCII fold of the text would miss.
        assert_eq!(m_json("k", "{\"user\":\"\u{212a}\"}"), (true, true));
        assert_eq!(
            m_json(
                "domain:k.example.com",
                "{\"destination\":\"http://\u{212a}.example.com/\"}"
            ),
            (true, true)
        );
        // A non-ASCII word or pattern is never pre-checked case-insensitively.
        assert_eq!(m_json("ÉCOLE", r#"{"user":"école"}"#), (true, true));
        // Exact terms still reject non-ASCII text that lacks them.
        assert_eq!(m_json("user:bob", r#"{"user":"école"}"#), (false, false));
    }

    #[test]
    fn glob_edge_cases() {
        let g = |p: &str, v: &str| Glob::new(p).matches(v);
        assert!(g("*", "") && g("*", "x") && g("**", "x"));
        assert!(g("", "") && !g("", "x"));
        assert!(g("a*a", "aa") && !g("a*a", "a"));
        assert!(g("*a*b*c*", "xaybzc") && !g("*a*b*c*", "cba"));
        assert!(g("a*b*c", "abbc") && !g("a*b*c", "abcb"));
    }
}
