//! The other hard-coded Squid writers (squid-logs.md §1.2–1.4): `common`, `combined`, `referrer`
//! and `useragent`, parsed by hand over bytes.
//!
//! * `common`: `%>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh`
//! * `combined`: `common` plus `"Referer" "User-Agent"` before `%Ss:%Sh`; both values are raw, so
//!   quotes inside them are not escaped. Rule (§1.3): the referer ends at the first `" "` after
//!   its opening quote, the user agent runs from there to the quote before the last token.
//! * `referrer`: `%ts.%03tu %>a <Referer> %ru` (referer raw, may hold spaces; the URL is last).
//! * `useragent`: `%>a [%tl] "<User-Agent>"`.
//!
//! `common`/`combined` take the ` [..] [..]` `log_mime_hdrs` tail like the native format. The user
//! is `%un` (mime-blob decoded), or the ident field when `%un` is `-`. The `%rv` protocol is not
//! kept (no entry field wants it).
use crate::decode::{opt_decode, opt_text, Encoding};
use crate::scan::{self, Cursor};
use crate::{Entry, ParseError, ParseErrorKind, Timestamp};
use std::borrow::Cow;

fn err(kind: ParseErrorKind, col: usize) -> ParseError {
    ParseError::new(kind, col)
}

fn prepare(line: &[u8]) -> Result<&[u8], ParseError> {
    let line = scan::trim_eol(line);
    if scan::is_blank(line) {
        return Err(err(ParseErrorKind::Empty, 0));
    }
    Ok(line)
}

/// `[time]` starting at `b[at]` (the `[`): the instant and the offset after the `]`.
fn bracket_time(b: &[u8], at: usize) -> Result<(Timestamp, usize), ParseError> {
    if b.get(at) != Some(&b'[') {
        return Err(err(ParseErrorKind::MissingField, at));
    }
    let close = memchr::memchr(b']', &b[at..])
        .map(|i| at + i)
        .ok_or(err(ParseErrorKind::MissingField, at))?;
    let t = scan::httpd_time(&b[at + 1..close]).ok_or(err(ParseErrorKind::BadField, at + 1))?;
    Ok((t, close + 1))
}

/// Finds the `" <status> <bytes>` that closes the quoted request line, searching from `from`:
/// a quote, one space, a status (`-` or digits), one space, a byte count, then a space or the
/// end of the line. Returns (closing quote, status, bytes, offset after the byte count).
fn request_end(
    b: &[u8],
    from: usize,
) -> Result<(usize, Option<u16>, Option<u64>, usize), ParseError> {
    let field = |at: usize| -> Option<(&[u8], usize)> {
        let len = b
            .get(at..)?
            .iter()
            .position(|&c| c == b' ')
            .unwrap_or(b.len() - at);
        (len > 0).then(|| (&b[at..at + len], at + len))
    };
    let mut at = from;
    while let Some(i) = memchr::memchr(b'"', &b[at..]) {
        let q = at + i;
        at = q + 1;
        if b.get(q + 1) != Some(&b' ') {
            continue;
        }
        let Some((st, st_end)) = field(q + 2) else {
            continue;
        };
        if b.get(st_end) != Some(&b' ') {
            continue;
        }
        let Some((by, by_end)) = field(st_end + 1) else {
            continue;
        };
        let (Ok(status), Ok(bytes)) = (scan::opt_status(st, q + 2), scan::opt_uint(by, st_end + 1))
        else {
            continue;
        };
        return Ok((q, status, bytes, by_end));
    }
    Err(err(ParseErrorKind::MissingField, from))
}

/// `common` (`combined == false`) and `combined`.
pub(crate) fn parse_httpd(line: &[u8], combined: bool) -> Result<Entry<'_>, ParseError> {
    let mut line = prepare(line)?;
    let mut mime = None;
    if let Some((head, req, resp)) = scan::split_mime(line) {
        line = head;
        mime = Some((req, resp));
    }
    let mut c = Cursor::new(line);
    let (_, client) = c.token()?;
    let (_, ident) = c.token()?;
    let bracket = memchr::memchr(b'[', c.rest())
        .map(|i| c.pos + i)
        .ok_or(err(ParseErrorKind::MissingField, c.pos))?;
    let user = scan::trim_spaces(&line[c.pos..bracket]);
    let (time, after) = bracket_time(line, bracket)?;
    if line.get(after..after + 2) != Some(b" \"") {
        return Err(err(ParseErrorKind::MissingField, after));
    }
    let req_start = after + 2;
    let (q, code, bytes, tail_start) = request_end(line, req_start)?;
    let request = &line[req_start..q];
    let (method, url) = match memchr::memchr(b' ', request) {
        None => (request, &b""[..]),
        Some(i) => {
            let rest = &request[i + 1..];
            let url = match memchr::memrchr(b' ', rest) {
                Some(j) => &rest[..j],
                None => rest,
            };
            (&request[..i], url)
        }
    };
    let tail = scan::trim_spaces(&line[tail_start..]);
    let (quoted, tag_hier) = match memchr::memrchr(b' ', tail) {
        Some(i) => (scan::trim_spaces(&tail[..i]), &tail[i + 1..]),
        None => (&b""[..], tail),
    };
    let colon = memchr::memchr(b':', tag_hier)
        .ok_or(err(ParseErrorKind::BadField, line.len() - tag_hier.len()))?;
    let mut e = Entry {
        time: Some(time),
        client_ip: opt_text(client),
        method: opt_text(method),
        destination: opt_text(url),
        code,
        bytes,
        result: opt_text(&tag_hier[..colon]),
        user: opt_decode(user, Encoding::MimeBlob)
            .or_else(|| opt_decode(ident, Encoding::MimeBlob)),
        hierarchy: opt_text(&tag_hier[colon + 1..]),
        ..Entry::default()
    };
    if combined {
        let col = tail_start;
        let inner = quoted
            .strip_prefix(b"\"")
            .and_then(|r| r.strip_suffix(b"\""))
            .ok_or(err(ParseErrorKind::BadField, col))?;
        let sep =
            memchr::memmem::find(inner, b"\" \"").ok_or(err(ParseErrorKind::BadField, col))?;
        e.extra
            .push((Cow::Borrowed("referer"), opt_text(&inner[..sep])));
        e.extra
            .push((Cow::Borrowed("user_agent"), opt_text(&inner[sep + 3..])));
    } else if !quoted.is_empty() {
        return Err(err(ParseErrorKind::BadField, tail_start));
    }
    if let Some(blocks) = mime {
        scan::push_mime(&mut e, blocks);
    }
    Ok(e)
}

/// `referrer`: time, client, referer (raw, may hold spaces), URL.
pub(crate) fn parse_referrer(line: &[u8]) -> Result<Entry<'_>, ParseError> {
    let line = prepare(line)?;
    let mut c = Cursor::new(line);
    let (col, t) = c.token()?;
    let time = scan::epoch(t).ok_or(err(ParseErrorKind::BadNumber, col))?;
    let (_, client) = c.token()?;
    let rest = scan::trim_spaces(c.rest());
    let sp = memchr::memrchr(b' ', rest).ok_or(err(ParseErrorKind::MissingField, line.len()))?;
    let mut e = Entry {
        time: Some(time),
        client_ip: opt_text(client),
        destination: opt_text(&rest[sp + 1..]),
        ..Entry::default()
    };
    e.extra.push((
        Cow::Borrowed("referer"),
        opt_text(scan::trim_spaces(&rest[..sp])),
    ));
    Ok(e)
}

/// `useragent`: client, `[time]`, `"User-Agent"` (raw).
pub(crate) fn parse_useragent(line: &[u8]) -> Result<Entry<'_>, ParseError> {
    let line = prepare(line)?;
    let mut c = Cursor::new(line);
    let (_, client) = c.token()?;
    let (time, after) = bracket_time(line, c.pos + 1)?;
    if line.get(after..after + 2) != Some(b" \"") {
        return Err(err(ParseErrorKind::MissingField, after));
    }
    let ua = line[after + 2..]
        .strip_suffix(b"\"")
        .ok_or(err(ParseErrorKind::BadField, line.len()))?;
    let mut e = Entry {
        time: Some(time),
        client_ip: opt_text(client),
        ..Entry::default()
    };
    e.extra.push((Cow::Borrowed("user_agent"), opt_text(ua)));
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_with_raw_quotes() {
        let l = br#"127.0.0.1 - - [28/Nov/2026:03:08:35 +0000] "GET http://127.0.0.1:18080/nope HTTP/1.1" 404 604 "http://ref.example/x y" "Mozilla "quoted" UA" TCP_MISS:HIER_DIRECT"#;
        let e = parse_httpd(l, true).unwrap();
        assert_eq!(e.code, Some(404));
        assert_eq!(e.bytes, Some(604));
        assert_eq!(
            e.destination.as_deref(),
            Some("http://127.0.0.1:18080/nope")
        );
        assert_eq!(e.extra[0].1.as_deref(), Some("http://ref.example/x y"));
        assert_eq!(e.extra[1].1.as_deref(), Some("Mozilla \"quoted\" UA"));
        assert_eq!(e.result.as_deref(), Some("TCP_MISS"));
        assert_eq!(e.hierarchy.as_deref(), Some("HIER_DIRECT"));
    }

    #[test]
    fn common_rejects_combined_tail_and_vice_versa() {
        let common = br#"127.0.0.1 - - [28/Nov/2026:03:08:35 +0000] "GET / HTTP/1.1" 200 298 TCP_MISS:HIER_DIRECT"#;
        assert!(parse_httpd(common, false).is_ok());
        assert_eq!(
            parse_httpd(common, true).unwrap_err().kind,
            ParseErrorKind::BadField
        );
    }
}
