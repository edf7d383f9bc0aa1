//! Logged bytes back to text: lossy UTF-8 that borrows when it can, and the decoders that undo
//! Squid's value encodings (squid-logs.md §4.1).
use std::borrow::Cow;

/// How a value was encoded by Squid, hence how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Bytes as written (`'`, and most codes by default).
    Raw,
    /// `"`: `\"`, `\\`, `\r`, `\n`, `\t` backslash escapes.
    Quoted,
    /// `[`: "mime blob", `\r`, `\n`, `\\` and `%xx`.
    MimeBlob,
    /// `#`: full RFC 1738 escaping, `%XX` (including `%` itself).
    Url,
    /// Default of "quote" codes: RFC 1738 escaping that leaves `%` alone. Decoding `%XX` is
    /// ambiguous (an original `%20` looks the same), so URL-like codes keep it as logged.
    PassThrough,
    /// `/`: shell-like, backslash escapes, wrapped in `"` when the value holds a space.
    Shell,
}

/// Bytes as text: borrowed when valid UTF-8, a lossy owned copy otherwise.
#[inline]
pub(crate) fn text(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// A field value: `-` (Squid's "no value") and the empty slice are `None`.
#[inline]
pub(crate) fn opt_text(b: &[u8]) -> Option<Cow<'_, str>> {
    if b.is_empty() || b == b"-" {
        None
    } else {
        Some(text(b))
    }
}

/// A line whose UTF-8 validity is checked once, so that each field borrows from it without being
/// validated again (the native parser's hot path).
pub(crate) struct Src<'a> {
    /// The whole line.
    bytes: &'a [u8],
    /// The same line as text, when it is valid UTF-8.
    text: Option<&'a str>,
}

impl<'a> Src<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            text: std::str::from_utf8(bytes).ok(),
        }
    }

    /// [`Src::new`], unless `text` (the same line, checked by the caller) spares the check.
    #[inline]
    pub(crate) fn of(bytes: &'a [u8], text: Option<&'a str>) -> Self {
        match text {
            // The same memory: `Src::text` finds fields by their offset from `bytes`.
            Some(t) if std::ptr::eq(t.as_bytes(), bytes) => Self {
                bytes,
                text: Some(t),
            },
            _ => Self::new(bytes),
        }
    }

    /// The text of `part`, a sub-slice of the line: borrowed when the line is valid UTF-8 (the
    /// parsers split at ASCII bytes, so the cut is on a character boundary), else lossy.
    #[inline]
    pub(crate) fn text(&self, part: &'a [u8]) -> Cow<'a, str> {
        if let Some(t) = self.text {
            let off = (part.as_ptr() as usize).wrapping_sub(self.bytes.as_ptr() as usize);
            if let Some(s) = off.checked_add(part.len()).and_then(|end| t.get(off..end)) {
                return Cow::Borrowed(s);
            }
        }
        text(part)
    }

    /// Like [`Src::text`], with `-` and the empty slice as `None`.
    #[inline]
    pub(crate) fn opt(&self, part: &'a [u8]) -> Option<Cow<'a, str>> {
        if part.is_empty() || part == b"-" {
            None
        } else {
            Some(self.text(part))
        }
    }

    /// A mime-blob encoded field (`%[un`): borrowed unless it holds an escape.
    #[inline]
    pub(crate) fn opt_mime(&self, part: &'a [u8]) -> Option<Cow<'a, str>> {
        if memchr::memchr2(b'%', b'\\', part).is_none() {
            self.opt(part)
        } else {
            opt_decode(part, Encoding::MimeBlob)
        }
    }
}

/// Decodes `b` as written with encoding `enc`; borrows when nothing needed decoding.
pub(crate) fn decode(b: &[u8], enc: Encoding) -> Cow<'_, str> {
    match enc {
        Encoding::Raw | Encoding::PassThrough => text(b),
        Encoding::Quoted => unescape(b, false),
        Encoding::MimeBlob => unescape(b, true),
        Encoding::Url => percent(b),
        Encoding::Shell => {
            let inner = match b {
                [b'"', inner @ .., b'"'] => inner,
                _ => b,
            };
            unescape(inner, false)
        }
    }
}

/// `-` is `None`, anything else decoded with `enc`.
pub(crate) fn opt_decode(b: &[u8], enc: Encoding) -> Option<Cow<'_, str>> {
    if b.is_empty() || b == b"-" {
        None
    } else {
        Some(decode(b, enc))
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%xx` at `b[i]` stands for, if it is one.
fn pct_at(b: &[u8], i: usize) -> Option<u8> {
    match (b.get(i + 1), b.get(i + 2)) {
        (Some(&h), Some(&l)) => Some(hex(h)? << 4 | hex(l)?),
        _ => None,
    }
}

fn owned(v: Vec<u8>) -> Cow<'static, str> {
    Cow::Owned(match String::from_utf8(v) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Undoes `%XX`.
pub(crate) fn percent(b: &[u8]) -> Cow<'_, str> {
    if memchr::memchr(b'%', b).is_none() {
        return text(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = pct_at(b, i) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    owned(out)
}

/// Undoes backslash escapes (`\"`, `\\`, `\r`, `\n`, `\t`) and, with `pct`, `%xx` too.
fn unescape(b: &[u8], pct: bool) -> Cow<'_, str> {
    let special = if pct {
        memchr::memchr2(b'\\', b'%', b)
    } else {
        memchr::memchr(b'\\', b)
    };
    if special.is_none() {
        return text(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                out.push(match b[i + 1] {
                    b'r' => b'\r',
                    b'n' => b'\n',
                    b't' => b'\t',
                    other => other,
                });
                i += 2;
            }
            b'%' if pct => match pct_at(b, i) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_when_nothing_to_decode() {
        assert!(matches!(
            decode(b"alice", Encoding::MimeBlob),
            Cow::Borrowed("alice")
        ));
        assert!(matches!(
            decode(b"a b", Encoding::Quoted),
            Cow::Borrowed("a b")
        ));
    }

    #[test]
    fn decodes_each_encoding() {
        assert_eq!(decode(b"zo%c3%ab", Encoding::MimeBlob), "zoë");
        assert_eq!(decode(br"a\r\nb\\c%5b", Encoding::MimeBlob), "a\r\nb\\c[");
        assert_eq!(decode(br#"say \"hi\"\t"#, Encoding::Quoted), "say \"hi\"\t");
        assert_eq!(decode(b"a%20b%25", Encoding::Url), "a b%");
        assert_eq!(decode(br#""a b\"c""#, Encoding::Shell), "a b\"c");
        assert_eq!(decode(b"%zz%4", Encoding::Url), "%zz%4");
        assert_eq!(decode(b"bad\xff", Encoding::Raw), "bad\u{fffd}");
        assert_eq!(decode(b"%ff", Encoding::MimeBlob), "\u{fffd}");
    }

    #[test]
    fn dash_is_none() {
        assert_eq!(opt_text(b"-"), None);
        assert_eq!(opt_decode(b"-", Encoding::Quoted), None);
        assert_eq!(opt_text(b"--").as_deref(), Some("--"));
    }
}
