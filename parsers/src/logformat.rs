//! Custom `logformat` definitions: compiled once into a sequence of literal and field matchers,
//! then matched against each line (squid-logs.md §4, §8).
//!
//! Compilation follows Squid's `Format::parse` / `Token::parse`: a `%` code is
//! `% [encoding] [-] [0][min][.max] [{arg}] code [{arg}]`, codes are matched by longest known
//! prefix (so `%Ss/%03>Hs` and `%>a:%>p` work), `http::` may prefix any code, `%%` is a literal
//! `%`, and `%byte{n}` a literal byte. Literal text sets the default encoding of the codes after
//! it: a `"` toggles quoted-string escaping, a `[` switches to mime-blob escaping until a `]`.
//!
//! Matching: each field gets a value class from its code and encoding (number, tag, token,
//! quoted, mime blob, fixed-width time, anything). When every field's end is decided by the next
//! literal's first byte (a byte the class cannot contain), the line is matched by hand in one
//! pass; otherwise (IPv6 `%>a:%>p`, a raw user name with spaces in the middle …) the compiled
//! sequence is turned into a byte regex once and that is used instead.
//!
//! Known codes fill entry fields (`ts`+`tu`, `tl`/`tg` (default layout, or a strftime layout
//! with a zone — `tg`, or `tl` with `%z` — that `flexible_time` reads), `tS` → time, `tr`, `>a`, `rm`, `ru`,
//! `>Hs`, `<st`, `Ss`, `Sh`, `<a`, `mt`, `un`/`ul`/`ue`/`ui` → user, in that priority); every other
//! code becomes an extra field: `>h{Referer}` → `referer`, `>h{User-Agent}` → `user_agent`, other
//! request headers → `request_header_<name>`, reply headers → `response_header_<name>` (name
//! lower-cased, `-` → `_`), bare `>h`/`<h` → `request_headers`/`response_headers`, anything else →
//! the code text (with `{arg}` when it has one). Unknown codes are extra fields too.
use crate::decode::{opt_decode, Encoding};
use crate::scan;
use crate::{Entry, FormatError, ParseError, ParseErrorKind, Timestamp};
use std::borrow::Cow;

/// The shape a field's value can take, which decides where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `-` or digits with an optional `.fraction`, possibly space-padded.
    Number,
    /// `-` or `[A-Za-z0-9_]+` (result tags, hierarchy codes, error codes).
    Tag,
    /// Anything but a space.
    Token,
    /// Quoted-string escaped: ends at the first unescaped `"`.
    Quoted,
    /// Mime-blob escaped: cannot hold `[` or `]`.
    Mime,
    /// Exactly this many bytes (default `tl`/`tg` time), or `-`.
    Fixed(usize),
    /// Anything, spaces included.
    Any,
}

/// Where a field's value goes in the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `ts`: epoch seconds.
    Secs,
    /// `tu`: milliseconds within the second.
    Millis,
    /// `tl`/`tg` in the default httpd layout.
    HttpdTime,
    /// `tS`: `sec.mmm`, used as the time when `ts` is absent.
    StartTime,
    /// `tg{layout}` or `tl{layout with %z}`: the time when the layout is one `flexible_time`
    /// reads (ISO 8601, httpd), else an extra field of this name.
    CustomTime(Cow<'static, str>),
    /// `tr` → `elapsed_ms`.
    Elapsed,
    /// `>a` → `client_ip`.
    Client,
    /// `rm` → `method`.
    Method,
    /// `ru` → `destination`.
    Url,
    /// `>Hs` → `code`.
    Status,
    /// `<st` → `bytes`.
    Bytes,
    /// `Ss` → `result`.
    Result,
    /// `Sh` → `hierarchy`.
    Hierarchy,
    /// `<a` → `peer`.
    Peer,
    /// `mt` → `content_type`.
    ContentType,
    /// A user-name code; the lower the number, the more it is preferred.
    User(u8),
    /// Any other code: an extra field of this name.
    Extra(Cow<'static, str>),
}

/// One `%code` of the definition, compiled.
#[derive(Debug, Clone)]
struct Field {
    /// How the value was encoded (explicit mark, quoting context or code default).
    enc: Encoding,
    /// What the value may look like, for finding its end.
    class: Class,
    /// Entry field it fills.
    target: Target,
    /// `-` modifier with a minimum width: padding spaces follow the value.
    left_pad: usize,
    /// Whether `%XX` in a pass-through-encoded value is undone (not for URLs).
    decode_passthrough: bool,
}

/// One piece of the compiled definition.
#[derive(Debug, Clone)]
enum Item {
    /// Bytes that appear verbatim.
    Lit(Vec<u8>),
    /// A value.
    Field(Field),
}

/// How lines are matched against the items.
#[derive(Debug, Clone)]
enum Matcher {
    /// One left-to-right pass, every field's end decided by the byte that follows it.
    Hand,
    /// Byte regex built from the items; capture group `i + 1` is the `i`-th field.
    Regex(regex::bytes::Regex),
}

/// A compiled custom `logformat`.
#[derive(Debug, Clone)]
pub(crate) struct LogFormat {
    /// The definition it was compiled from, for diagnostics.
    pub(crate) definition: String,
    /// Literals and fields in line order.
    items: Vec<Item>,
    /// The fields alone, in order (regex group `i + 1` ↔ `fields[i]`).
    fields: Vec<Field>,
    /// How a line is matched.
    matcher: Matcher,
}

/// Known codes, longest first once sorted at use (squid-logs.md §8).
const CODES: &[&str] = &[
    "sn",
    "err_code",
    "err_detail",
    "note",
    "master_xaction",
    ">a",
    ">A",
    ">p",
    ">eui",
    ">la",
    ">lp",
    "la",
    "lp",
    ">qos",
    ">nfmark",
    "<qos",
    "<nfmark",
    "<a",
    "<A",
    "<p",
    "<la",
    "<lp",
    "oa",
    ">handshake",
    "ts",
    "tu",
    "tl",
    "tg",
    "tr",
    "tS",
    "dt",
    "busy_time",
    "<pt",
    "<tt",
    "et",
    "ea",
    "un",
    "ul",
    "ue",
    "ui",
    "credentials",
    "rm",
    ">rm",
    "<rm",
    "ru",
    ">ru",
    "<ru",
    ">rs",
    "<rs",
    ">rd",
    "<rd",
    ">rP",
    "<rP",
    ">rp",
    "<rp",
    "rp",
    "rv",
    ">rv",
    "<rv",
    ">v",
    ">h",
    ">ha",
    "<h",
    ">Hs",
    "<Hs",
    "Hs",
    "mt",
    "st",
    ">st",
    "<st",
    ">sh",
    "<sh",
    "<sH",
    "<sS",
    "<bs",
    "request_attempts",
    "Ss",
    "Sh",
    "byte",
    "icap::tt",
    "icap::<A",
    "icap::<service_name",
    "icap::ru",
    "icap::rm",
    "icap::>st",
    "icap::<st",
    "icap::<bs",
    "icap::>h",
    "icap::<h",
    "icap::tr",
    "icap::tio",
    "icap::to",
    "icap::Hs",
    "adapt::<last_h",
    "adapt::sum_trs",
    "adapt::all_trs",
    "ssl::bump_mode",
    "ssl::>sni",
    "ssl::>cert_subject",
    "ssl::>cert_issuer",
    "ssl::<cert_subject",
    "ssl::<cert_issuer",
    "ssl::<cert",
    "ssl::<cert_errors",
    "ssl::>negotiated_version",
    "ssl::<negotiated_version",
    "ssl::>received_hello_version",
    "ssl::<received_hello_version",
    "ssl::>received_supported_version",
    "ssl::<received_supported_version",
    "ssl::>negotiated_cipher",
    "ssl::<negotiated_cipher",
    "proxy_protocol::>h",
    "transport::>connection_id",
    "SRC",
    "SRCPORT",
    "MYADDR",
    "MYPORT",
    "DST",
    "PROTO",
    "PORT",
    "PATH",
    "METHOD",
    "URI",
    "LOGIN",
    "EXT_USER",
    "EXT_LOG",
    "EXT_TAG",
    "TAG",
    "IDENT",
    "ACL",
    "DATA",
    "SRCEUI48",
    "SRCEUI64",
];

/// Codes whose values are numbers.
const NUMERIC: &[&str] = &[
    "sn",
    "master_xaction",
    ">p",
    ">lp",
    "lp",
    "<p",
    "<lp",
    "ts",
    "tu",
    "tr",
    "tS",
    "dt",
    "busy_time",
    "<pt",
    "<tt",
    ">Hs",
    "<Hs",
    "Hs",
    "st",
    ">st",
    "<st",
    ">sh",
    "<sh",
    "<sH",
    "<sS",
    "<bs",
    "request_attempts",
    "icap::tr",
    "icap::tio",
    "icap::tt",
    "icap::>st",
    "icap::<st",
    "icap::<bs",
    "icap::Hs",
    "SRCPORT",
    "MYPORT",
    "PORT",
];

/// Codes Squid marks "quote": pass-through URL encoding unless the format says otherwise.
const QUOTE_BY_DEFAULT: &[&str] = &[
    "rm",
    ">rm",
    "<rm",
    "ru",
    ">ru",
    "<ru",
    ">rs",
    "<rs",
    ">rd",
    "<rd",
    ">rp",
    "<rp",
    "rp",
    ">rP",
    "<rP",
    ">h",
    ">ha",
    "<h",
    "note",
    "et",
    "ea",
    "adapt::<last_h",
    "icap::>h",
    "icap::<h",
    "icap::ru",
    "icap::rm",
    "ssl::>cert_subject",
    "ssl::>cert_issuer",
    "ssl::<cert_subject",
    "ssl::<cert_issuer",
    "proxy_protocol::>h",
];

/// Codes whose raw value may hold spaces.
const SPACEFUL: &[&str] = &[
    "un",
    "ul",
    "ue",
    "ui",
    "credentials",
    "LOGIN",
    "EXT_USER",
    "IDENT",
    "err_detail",
    "ssl::<cert",
];

/// URL-valued codes and headers whose pass-through `%XX` is kept as logged.
fn is_url_like(code: &str, header: Option<&str>) -> bool {
    matches!(
        code,
        "ru" | ">ru" | "<ru" | ">rp" | "<rp" | "rp" | "icap::ru" | "URI" | "PATH"
    ) || header.is_some_and(|h| {
        h.eq_ignore_ascii_case("referer")
            || h.eq_ignore_ascii_case("location")
            || h.eq_ignore_ascii_case("content-location")
    })
}

fn is_header_code(code: &str) -> bool {
    matches!(
        code,
        ">h" | ">ha" | "<h" | "icap::>h" | "icap::<h" | "proxy_protocol::>h"
    )
}

/// A header's field name part: `Name` of `Name`, `Name:sep element` or `Name:element`.
fn header_name(arg: &str) -> &str {
    arg.split(':').next().unwrap_or(arg).trim()
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn target_of(code: &str, arg: Option<&str>) -> Target {
    match code {
        "ts" => Target::Secs,
        "tu" => Target::Millis,
        "tl" | "tg" if arg.is_none() => Target::HttpdTime,
        // A strftime layout: read as a time when it is unambiguous (GMT, or local with `%z`).
        "tg" => Target::CustomTime(extra_name(code, arg)),
        "tl" if arg.is_some_and(|a| a.contains("%z")) => Target::CustomTime(extra_name(code, arg)),
        "tS" => Target::StartTime,
        "tr" => Target::Elapsed,
        ">a" => Target::Client,
        "rm" => Target::Method,
        "ru" => Target::Url,
        ">Hs" | "Hs" => Target::Status,
        "<st" => Target::Bytes,
        "Ss" => Target::Result,
        "Sh" => Target::Hierarchy,
        "<a" => Target::Peer,
        "mt" => Target::ContentType,
        "un" => Target::User(0),
        "ul" => Target::User(1),
        "ue" => Target::User(2),
        "ui" => Target::User(3),
        _ => Target::Extra(extra_name(code, arg)),
    }
}

fn extra_name(code: &str, arg: Option<&str>) -> Cow<'static, str> {
    match (code, arg) {
        (">h" | ">ha", Some(a)) => {
            let name = header_name(a);
            if name.eq_ignore_ascii_case("referer") {
                Cow::Borrowed("referer")
            } else if name.eq_ignore_ascii_case("user-agent") {
                Cow::Borrowed("user_agent")
            } else {
                Cow::Owned(format!("request_header_{}", slug(name)))
            }
        }
        ("<h", Some(a)) => Cow::Owned(format!("response_header_{}", slug(header_name(a)))),
        (">h", None) => Cow::Borrowed("request_headers"),
        ("<h", None) => Cow::Borrowed("response_headers"),
        (">ha", None) => Cow::Borrowed("adapted_request_headers"),
        (c, Some(a)) => Cow::Owned(format!("{c}{{{a}}}")),
        (c, None) => Cow::Owned(c.to_owned()),
    }
}

/// The longest known code at the start of `s`, or an unknown code's extent (letters, digits,
/// `_`, `<`, `>` and `::` namespaces).
fn code_at(s: &str) -> usize {
    let known = CODES
        .iter()
        .filter(|c| s.starts_with(**c))
        .map(|c| c.len())
        .max()
        .unwrap_or(0);
    if known > 0 {
        return known;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' | b'>' if i == 0 || b[i - 1] == b':' => i += 1,
            c if c.is_ascii_alphanumeric() || c == b'_' => i += 1,
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            _ => break,
        }
    }
    i
}

/// Quoting context of the literal text seen so far.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    None,
    Quotes,
    Mime,
}

impl LogFormat {
    /// Compiles a `logformat` definition (the text after the format name).
    pub(crate) fn compile(definition: &str) -> Result<Self, FormatError> {
        if definition.trim().is_empty() {
            return Err(FormatError::Empty);
        }
        let mut items: Vec<Item> = Vec::new();
        let mut ctx = Context::None;
        let s = definition;
        let b = s.as_bytes();
        let mut i = 0;
        let push_lit = |items: &mut Vec<Item>, bytes: &[u8]| match items.last_mut() {
            Some(Item::Lit(l)) => l.extend_from_slice(bytes),
            _ => items.push(Item::Lit(bytes.to_vec())),
        };
        while i < b.len() {
            if b[i] != b'%' {
                let end = memchr::memchr(b'%', &b[i..]).map_or(b.len(), |j| i + j);
                for &c in &b[i..end] {
                    ctx = match (c, ctx) {
                        (b'"', Context::None) => Context::Quotes,
                        (b'"', Context::Quotes) => Context::None,
                        (b'[', Context::None) => Context::Mime,
                        (b']', Context::Mime) => Context::None,
                        (_, c) => c,
                    };
                }
                push_lit(&mut items, &b[i..end]);
                i = end;
                continue;
            }
            let start = i;
            i += 1;
            if b.get(i) == Some(&b'%') {
                push_lit(&mut items, b"%");
                i += 1;
                continue;
            }
            let mark = match b.get(i) {
                Some(b'"') => Some(Encoding::Quoted),
                Some(b'[') => Some(Encoding::MimeBlob),
                Some(b'#') => Some(Encoding::Url),
                Some(b'/') => Some(Encoding::Shell),
                Some(b'\'') => Some(Encoding::Raw),
                _ => None,
            };
            if mark.is_some() {
                i += 1;
            }
            let left = b.get(i) == Some(&b'-');
            if left {
                i += 1;
            }
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let min: usize = s[i..i + digits].parse().unwrap_or(0);
            i += digits;
            if b.get(i) == Some(&b'.') {
                i += 1;
                i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            }
            let mut arg = None;
            let read_arg = |i: &mut usize| -> Result<Option<String>, FormatError> {
                if b.get(*i) != Some(&b'{') {
                    return Ok(None);
                }
                let close =
                    memchr::memchr(b'}', &b[*i..]).ok_or(FormatError::UnterminatedArgument(*i))?;
                let a = s[*i + 1..*i + close].to_owned();
                *i += close + 1;
                Ok(Some(a))
            };
            if let Some(a) = read_arg(&mut i)? {
                arg = Some(a);
            }
            if s[i..].starts_with("http::") {
                i += 6;
            }
            let len = code_at(&s[i..]);
            if len == 0 {
                return Err(FormatError::IncompleteCode(start));
            }
            let code = &s[i..i + len];
            i += len;
            if arg.is_none() {
                arg = read_arg(&mut i)?;
            }
            if code == "byte" {
                if let Some(v) = arg.as_deref().and_then(|a| a.trim().parse::<u8>().ok()) {
                    push_lit(&mut items, &[v]);
                    continue;
                }
            }
            let enc = mark.unwrap_or(match ctx {
                Context::Quotes => Encoding::Quoted,
                Context::Mime => Encoding::MimeBlob,
                Context::None if QUOTE_BY_DEFAULT.contains(&code) => Encoding::PassThrough,
                Context::None => Encoding::Raw,
            });
            let header = if is_header_code(code) {
                arg.as_deref().map(header_name)
            } else {
                None
            };
            let class = match enc {
                Encoding::Quoted => Class::Quoted,
                Encoding::MimeBlob => Class::Mime,
                Encoding::Url | Encoding::PassThrough => Class::Token,
                Encoding::Shell => Class::Any,
                Encoding::Raw => match code {
                    c if NUMERIC.contains(&c) => Class::Number,
                    "Ss" | "Sh" | "err_code" => Class::Tag,
                    "tl" if arg.is_none() => Class::Fixed(26),
                    "tg" if arg.is_none() => Class::Fixed(20),
                    c if SPACEFUL.contains(&c) || is_header_code(c) || c == "tl" || c == "tg" => {
                        Class::Any
                    }
                    _ => Class::Token,
                },
            };
            items.push(Item::Field(Field {
                enc,
                class,
                target: target_of(code, arg.as_deref()),
                left_pad: if left { min } else { 0 },
                decode_passthrough: !is_url_like(code, header),
            }));
        }
        let fields: Vec<Field> = items
            .iter()
            .filter_map(|it| match it {
                Item::Field(f) => Some(f.clone()),
                Item::Lit(_) => None,
            })
            .collect();
        let matcher = if hand_matchable(&items) {
            Matcher::Hand
        } else {
            Matcher::Regex(build_regex(&items)?)
        };
        Ok(Self {
            definition: definition.to_owned(),
            items,
            fields,
            matcher,
        })
    }

    /// Whether lines are matched by hand (for tests and benchmarks).
    #[cfg(test)]
    fn is_hand(&self) -> bool {
        matches!(self.matcher, Matcher::Hand)
    }

    /// The same format matched by its regex, to check the hand matcher against it.
    #[cfg(test)]
    fn with_regex(&self) -> Self {
        let mut f = self.clone();
        f.matcher = Matcher::Regex(build_regex(&f.items).unwrap());
        f
    }

    /// Parses one line.
    pub(crate) fn parse<'a>(&self, line: &'a [u8]) -> Result<Entry<'a>, ParseError> {
        let line = scan::trim_eol(line);
        if scan::is_blank(line) {
            return Err(ParseError::new(ParseErrorKind::Empty, 0));
        }
        let mut acc = Acc::default();
        match &self.matcher {
            Matcher::Hand => self.match_hand(line, &mut acc)?,
            Matcher::Regex(re) => {
                let caps = re
                    .captures(line)
                    .ok_or(ParseError::new(ParseErrorKind::NoMatch, 0))?;
                for (i, f) in self.fields.iter().enumerate() {
                    if let Some(m) = caps.get(i + 1) {
                        acc.apply(f, m.as_bytes(), m.start())?;
                    }
                }
            }
        }
        Ok(acc.finish())
    }

    fn match_hand<'a>(&self, line: &'a [u8], acc: &mut Acc<'a>) -> Result<(), ParseError> {
        let mut pos = 0;
        for (idx, item) in self.items.iter().enumerate() {
            match item {
                Item::Lit(l) => {
                    if !line[pos..].starts_with(l) {
                        return Err(ParseError::new(ParseErrorKind::NoMatch, pos));
                    }
                    pos += l.len();
                }
                Item::Field(f) => {
                    let next = match self.items.get(idx + 1) {
                        Some(Item::Lit(l)) => l.first().copied(),
                        _ => None,
                    };
                    let (start, end, after) = field_span(f, line, pos, next)?;
                    acc.apply(f, &line[start..end], start)?;
                    pos = after;
                }
            }
        }
        if pos != line.len() {
            return Err(ParseError::new(ParseErrorKind::NoMatch, pos));
        }
        Ok(())
    }
}

/// Where the value of `f` starting at `pos` ends, given the first byte of the literal after it
/// (`None` = end of line): (value start, value end, offset after padding).
fn field_span(
    f: &Field,
    line: &[u8],
    pos: usize,
    next: Option<u8>,
) -> Result<(usize, usize, usize), ParseError> {
    let rest = &line[pos..];
    let find = |c: u8| memchr::memchr(c, rest).map(|i| pos + i);
    let missing = ParseError::new(ParseErrorKind::NoMatch, pos);
    let (start, end) = match (f.class, next) {
        (_, None) => (pos, line.len()),
        (Class::Number, Some(n)) => {
            let s = pos + rest.iter().take_while(|&&c| c == b' ').count();
            let mut e = s;
            if line.get(e) == Some(&b'-') {
                e += 1;
            } else {
                e += line[e..].iter().take_while(|c| c.is_ascii_digit()).count();
                if n != b'.' && line.get(e) == Some(&b'.') {
                    e += 1 + line[e + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                }
            }
            (s, e)
        }
        (Class::Tag, Some(_)) => {
            let n = rest
                .iter()
                .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                .count();
            (pos, pos + n)
        }
        (Class::Token, Some(n)) | (Class::Mime, Some(n)) => (pos, find(n).ok_or(missing)?),
        (Class::Quoted, Some(_)) => {
            let mut i = pos;
            loop {
                match line.get(i) {
                    None => return Err(missing),
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            (pos, i.min(line.len()))
        }
        (Class::Fixed(n), Some(_)) => {
            if rest.first() == Some(&b'-') && rest.get(1).is_none_or(|c| !c.is_ascii_digit()) {
                (pos, pos + 1)
            } else if rest.len() >= n {
                (pos, pos + n)
            } else {
                return Err(missing);
            }
        }
        (Class::Any, Some(n)) => (pos, find(n).ok_or(missing)?),
    };
    let mut after = end;
    if f.left_pad > 0 {
        while after < line.len() && after - start < f.left_pad && line[after] == b' ' {
            after += 1;
        }
    }
    Ok((start, end, after))
}

/// True when every field's end is decided by the byte after it.
fn hand_matchable(items: &[Item]) -> bool {
    items.iter().enumerate().all(|(i, it)| {
        let Item::Field(f) = it else { return true };
        let next = match items.get(i + 1) {
            None => return true,
            Some(Item::Field(_)) => return false,
            Some(Item::Lit(l)) => l[0],
        };
        if f.left_pad > 0 && next == b' ' {
            return false;
        }
        match f.class {
            Class::Number => !next.is_ascii_digit() && next != b'-',
            Class::Tag => !(next.is_ascii_alphanumeric() || next == b'_' || next == b'-'),
            Class::Token => next == b' ',
            Class::Quoted => next == b'"',
            Class::Mime => next == b']' || next == b'[',
            Class::Fixed(_) => true,
            Class::Any => false,
        }
    })
}

/// The regex for a definition the hand matcher cannot do. Fields that may hold spaces are lazy
/// except the last of them, which is greedy: in `%[ui %[un [%tl]` the ident (rarely spaced)
/// stays short and the user name takes the rest, and in `… %[un %Sh/%<a %mt` the user name
/// takes everything up to the last two fields.
fn build_regex(items: &[Item]) -> Result<regex::bytes::Regex, FormatError> {
    let spaceful =
        |it: &Item| matches!(it, Item::Field(f) if matches!(f.class, Class::Any | Class::Mime));
    let last_spaceful = items.iter().rposition(spaceful);
    let mut p = String::from("^");
    for (idx, it) in items.iter().enumerate() {
        let lazy = spaceful(it) && Some(idx) != last_spaceful;
        match it {
            Item::Lit(l) => {
                for &c in l {
                    if c.is_ascii_alphanumeric() || c == b' ' {
                        p.push(c as char);
                    } else {
                        p.push_str(&format!("\\x{c:02x}"));
                    }
                }
            }
            Item::Field(f) => {
                let v = match f.class {
                    Class::Number => " *(-|[0-9]+(?:\\.[0-9]+)?)".to_owned(),
                    Class::Tag => "([A-Za-z0-9_]+|-)".to_owned(),
                    Class::Token => " *([^ ]+)".to_owned(),
                    Class::Quoted => "((?:[^\"\\\\]|\\\\.)*)".to_owned(),
                    Class::Mime if lazy => "([^\\[\\]]*?)".to_owned(),
                    Class::Mime => "([^\\[\\]]*)".to_owned(),
                    Class::Fixed(n) => format!("(.{{{n}}}|-)"),
                    Class::Any if lazy => "(.*?)".to_owned(),
                    Class::Any => "(.*)".to_owned(),
                };
                p.push_str(&v);
                if f.left_pad > 0 {
                    p.push_str(" *");
                }
            }
        }
    }
    p.push('$');
    regex::bytes::RegexBuilder::new(&p)
        .unicode(false)
        .dot_matches_new_line(true)
        .build()
        .map_err(|e| FormatError::BadRegex(e.to_string()))
}

/// Values collected while matching, turned into an entry at the end.
#[derive(Default)]
struct Acc<'a> {
    /// The entry being filled.
    entry: Entry<'a>,
    /// `%ts`: whole seconds; the time is assembled at the end because `%tu` may come later.
    secs: Option<u64>,
    /// `%tu`: the milliseconds that go with `secs`.
    millis: u32,
    /// `%tS`, the fallback time when the format has no `%ts` or `%tl`/`%tg`.
    start_time: Option<Timestamp>,
    /// `%tl`/`%tg`, used when there is no `%ts`.
    httpd_time: Option<Timestamp>,
    /// Rank of the user code that set `entry.user` (`un` beats `ul`, `ue`, `ui`).
    user_rank: u8,
}

impl<'a> Acc<'a> {
    fn apply(&mut self, f: &Field, v: &'a [u8], col: usize) -> Result<(), ParseError> {
        // Numbers may carry width padding, also inside quotes or brackets.
        let numeric = f.class == Class::Number
            || matches!(
                f.target,
                Target::Secs
                    | Target::Millis
                    | Target::StartTime
                    | Target::Elapsed
                    | Target::Status
                    | Target::Bytes
            );
        let v = if numeric { scan::trim_spaces(v) } else { v };
        let enc = match f.enc {
            Encoding::PassThrough if f.decode_passthrough => Encoding::Url,
            e => e,
        };
        let text = || opt_decode(v, enc);
        let e = &mut self.entry;
        let set = |slot: &mut Option<Cow<'a, str>>, extra: &mut Vec<_>, name: &'static str| {
            let t = text();
            if slot.is_none() {
                *slot = t;
            } else {
                extra.push((Cow::Borrowed(name), t));
            }
        };
        match &f.target {
            Target::Secs => {
                if v != b"-" {
                    self.secs =
                        Some(scan::uint(v).ok_or(ParseError::new(ParseErrorKind::BadNumber, col))?);
                }
            }
            Target::Millis => {
                if let Some(ms) = scan::opt_uint(v, col)? {
                    self.millis = (ms % 1000) as u32;
                }
            }
            Target::HttpdTime => {
                if v != b"-" {
                    self.httpd_time = Some(
                        scan::httpd_time(crate::decode::decode(v, enc).as_bytes())
                            .ok_or(ParseError::new(ParseErrorKind::BadField, col))?,
                    );
                }
            }
            Target::CustomTime(name) => {
                let text = crate::decode::decode(v, enc);
                match scan::flexible_time(text.as_bytes()) {
                    Some(t) if v != b"-" => self.httpd_time = Some(t),
                    _ => e.extra.push((name.clone(), opt_decode(v, enc))),
                }
            }
            Target::StartTime => {
                if v != b"-" {
                    self.start_time = Some(
                        scan::epoch(v).ok_or(ParseError::new(ParseErrorKind::BadNumber, col))?,
                    );
                }
            }
            Target::Elapsed => e.elapsed_ms = scan::opt_uint(v, col)?,
            Target::Status => e.code = scan::opt_status(v, col)?,
            Target::Bytes => e.bytes = scan::opt_uint(v, col)?,
            Target::Client => set(&mut e.client_ip, &mut e.extra, ">a"),
            Target::Method => set(&mut e.method, &mut e.extra, "rm"),
            Target::Url => set(&mut e.destination, &mut e.extra, "ru"),
            Target::Result => set(&mut e.result, &mut e.extra, "Ss"),
            Target::Hierarchy => set(&mut e.hierarchy, &mut e.extra, "Sh"),
            Target::Peer => set(&mut e.peer, &mut e.extra, "<a"),
            Target::ContentType => set(&mut e.content_type, &mut e.extra, "mt"),
            Target::User(rank) => {
                if let Some(t) = text() {
                    if e.user.is_none() || *rank < self.user_rank {
                        e.user = Some(t);
                        self.user_rank = *rank;
                    }
                }
            }
            Target::Extra(name) => e.extra.push((name.clone(), text())),
        }
        Ok(())
    }

    fn finish(mut self) -> Entry<'a> {
        self.entry.time = match self.secs {
            Some(s) => Some(Timestamp::new(s as i64, self.millis)),
            None => self.httpd_time.or(self.start_time),
        };
        self.entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lf(d: &str) -> LogFormat {
        LogFormat::compile(d).unwrap()
    }

    #[test]
    fn the_squid_definition_is_hand_matched() {
        let f = lf("%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt");
        // `%[un` is a mime blob followed by a space: spaces inside make that ambiguous.
        assert!(!f.is_hand());
        let f = lf("%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %un %Sh/%<a %mt");
        assert!(!f.is_hand());
        let f = lf("%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %Sh/%<a %mt");
        assert!(f.is_hand());
        let e = f
            .parse(b"1795835993.065      2 ::1 TCP_MISS/200 353 GET http://x/ HIER_DIRECT/127.0.0.1 text/plain")
            .unwrap();
        assert_eq!(e.time, Some(Timestamp::new(1_795_835_993, 65)));
        assert_eq!(e.elapsed_ms, Some(2));
        assert_eq!(e.code, Some(200));
        assert_eq!(e.peer.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn tokenizer_handles_modifiers_and_arguments() {
        let f =
            lf(r#"%>a:%>p %{Referer}>h %>h{User-Agent} %"{X-Foo}>h %% %-5dt| %byte{9}%http::>Hs"#);
        let names: Vec<_> = f.fields.iter().map(|f| format!("{:?}", f.target)).collect();
        assert_eq!(
            names,
            [
                "Client",
                "Extra(\">p\")",
                "Extra(\"referer\")",
                "Extra(\"user_agent\")",
                "Extra(\"request_header_x_foo\")",
                "Extra(\"dt\")",
                "Status"
            ]
        );
        assert!(matches!(f.items.last(), Some(Item::Field(_))));
        assert!(LogFormat::compile("%{Referer>h").is_err());
        assert!(LogFormat::compile("abc %").is_err());
        assert!(LogFormat::compile("   ").is_err());
        assert!(LogFormat::compile("%unknown_code %>a").is_ok());
    }

    #[test]
    fn explicit_encodings_widths_and_literal_percent() {
        let f = lf(r#"%#ru %%%'un|%/>h{X-Note}| %-8.3tr| %http::>a %"{Via}>h"#);
        let e = f
            .parse(br#"http://h/a%20b%25 %john doe|"jane \"j\" doe"| 42.958  | ::1 1.1 a\"b"#)
            .unwrap();
        assert_eq!(e.destination.as_deref(), Some("http://h/a b%"));
        assert_eq!(e.user.as_deref(), Some("john doe"));
        assert_eq!(e.elapsed_ms, Some(42));
        assert_eq!(e.client_ip.as_deref(), Some("::1"));
        let extra: Vec<_> = e.extra.iter().map(|(k, v)| (&**k, v.as_deref())).collect();
        assert_eq!(
            extra,
            [
                ("request_header_x_note", Some(r#"jane "j" doe"#)),
                ("request_header_via", Some(r#"1.1 a"b"#))
            ]
        );
    }

    #[test]
    fn mime_context_and_pass_through_defaults() {
        // `[` context: mime-blob decoding; bare `%>h{..}`: pass-through, `%XX` undone except
        // for URL-like values.
        let f = lf("[%un] %>h{User-Agent} %>h{Referer} %ru");
        assert!(f.is_hand());
        let e = f
            .parse(b"[zo%c3%ab d] curl%2F8%20x http://r/a%20b http://h/%20")
            .unwrap();
        assert_eq!(e.user.as_deref(), Some("zo\u{eb} d"));
        assert_eq!(e.extra[0].1.as_deref(), Some("curl/8 x"));
        assert_eq!(e.extra[1].1.as_deref(), Some("http://r/a%20b"));
        assert_eq!(e.destination.as_deref(), Some("http://h/%20"));
    }

    /// A field of a generated definition and a strategy for the text Squid would print for it.
    fn piece() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            "(-|[0-9a-f:.]{1,15})".prop_map(|v| ("%>a".to_owned(), v)),
            (0u64..10_000_000).prop_map(|v| ("%6tr".to_owned(), format!("{v:>6}"))),
            (0u64..100_000).prop_map(|v| ("%-5tr|".to_owned(), format!("{v:<5}|"))),
            "(NONE_NONE|TCP_[A-Z_]{1,12})".prop_map(|v| ("%Ss".to_owned(), v)),
            (0u16..600).prop_map(|v| ("%03>Hs".to_owned(), format!("{v:03}"))),
            "(-|[0-9]{1,12})".prop_map(|v| ("%<st".to_owned(), v)),
            "[!-~]{1,30}".prop_map(|v| ("%ru".to_owned(), v)),
            r#"([a-zA-Z0-9 ;/.()]|\\\\|\\"){0,30}"#
                .prop_map(|v| ("\"%{User-Agent}>h\"".to_owned(), format!("\"{v}\""))),
            "[a-z %0-9]{0,20}".prop_map(|v| ("[%un]".to_owned(), format!("[{v}]"))),
        ]
    }

    proptest::proptest! {
        #[test]
        fn hand_matcher_agrees_with_the_regex(
            pieces in proptest::collection::vec((piece(), prop_oneof![Just(" "), Just("|"), Just(" - ")]), 1..7)
        ) {
            let mut def = String::new();
            let mut line = String::new();
            for (i, ((code, value), sep)) in pieces.iter().enumerate() {
                if i > 0 {
                    def.push_str(sep);
                    line.push_str(sep);
                }
                def.push_str(code);
                line.push_str(value);
            }
            let f = LogFormat::compile(&def).unwrap();
            let by_regex = f.with_regex().parse(line.as_bytes());
            let by_hand = f.parse(line.as_bytes());
            proptest::prop_assert_eq!(&by_hand, &by_regex, "{} / {}", def, line);
            proptest::prop_assert!(by_regex.is_ok(), "{} / {}", def, line);
        }
    }

    #[test]
    fn strftime_times_are_read_when_unambiguous() {
        let f = lf("%{%Y-%m-%dT%H:%M:%S}tg|%{%Y-%m-%d %H:%M:%S %z}tl|%>a");
        let e = f
            .parse(b"2026-11-28T03:08:35|2026-11-28 04:08:35 +0100|::1")
            .unwrap();
        assert_eq!(e.time.map(|t| t.millis), Some(1_795_835_315_000));
        assert!(e.extra.is_empty());
        // Local time without a zone cannot be placed: kept as text.
        let f = lf("%{%H:%M}tl %{%H:%M}tg %>a");
        let e = f.parse(b"03:08 04:08 ::1").unwrap();
        assert_eq!(e.time, None);
        let extra: Vec<_> = e.extra.iter().map(|(k, v)| (&**k, v.as_deref())).collect();
        assert_eq!(
            extra,
            [("tl{%H:%M}", Some("03:08")), ("tg{%H:%M}", Some("04:08"))]
        );
    }

    #[test]
    fn padded_numbers_inside_quotes() {
        let f = lf(r#"%>a "%6tr" "%-4>Hs""#);
        let e = f.parse(br#"::1 "    42" "200 ""#).unwrap();
        assert_eq!((e.elapsed_ms, e.code), (Some(42), Some(200)));
    }

    #[test]
    fn ipv6_client_and_port_fall_back_to_regex() {
        let f = lf("%>a:%>p %rm");
        assert!(!f.is_hand());
        let e = f.parse(b"::1:3128 GET").unwrap();
        assert_eq!(e.client_ip.as_deref(), Some("::1"));
        assert_eq!(e.extra[0].1.as_deref(), Some("3128"));
    }

    #[test]
    fn quoted_context_decodes() {
        let f = lf(r#"%>a "%{User-Agent}>h" %>Hs"#);
        assert!(f.is_hand());
        let e = f.parse(br#"10.0.0.1 "say \"hi\" \\o/" 0"#).unwrap();
        assert_eq!(e.extra[0].1.as_deref(), Some(r#"say "hi" \o/"#));
        assert_eq!(e.code, Some(0));
    }
}
