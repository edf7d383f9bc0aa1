//! The Squid native format (`logformat squid`), hand-written over bytes, and the Squid ≤ 5
//! "glued record" detection (squid-logs.md §1.1, §6.3).
//!
//! Layout: `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`, optionally followed by
//! the ` [request headers] [reply headers]` of `log_mime_hdrs on`. The first seven fields are
//! split from the left on runs of spaces, `%Sh/%<a` and `%mt` from the right, and the user name is
//! whatever lies between (it may contain spaces).
//!
//! Decisions where the reference leaves a choice:
//! * Squid 4's method `NONE` means "no method parsed", exactly what Squid 5+ writes as `-`, so both
//!   give `method: null`. The result tag `NONE` / `NONE_NONE` is kept verbatim.
//! * A glued line (a record cut at 8191 bytes with the next record appended, §6.3) parses as its
//!   *first* record: the fields up to the cut, with an extra field `truncated` = `"true"`; fields
//!   lost in the cut are `null`. [`glued_record`] hands the second record to the caller, who
//!   parses it as a line of its own, so neither record is lost.
use crate::decode::Src;
use crate::scan::{self, Cursor};
use crate::{Entry, ParseError, ParseErrorKind, Timestamp};
use std::borrow::Cow;

/// Squid ≤ 5 formats a record into an 8192-byte buffer and keeps 8191 bytes of a longer one.
pub const SQUID5_RECORD_LIMIT: usize = 8191;

/// Parses one line of Squid's native format:
/// `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`.
///
/// A trailing `\r` is ignored. Valid UTF-8 input is not copied (fields borrow from `line`).
pub fn parse_native(line: &[u8]) -> Result<Entry<'_>, ParseError> {
    let line = scan::trim_eol(line);
    parse_up_to(line, None, cut_point(line))
}

/// For a glued line (§6.3), the bytes of the second record, which the caller should parse as a
/// line of its own (it may itself be glued); `None` for an ordinary line.
pub fn glued_record(line: &[u8]) -> Option<&[u8]> {
    let line = scan::trim_eol(line);
    second_record(line, cut_point(line))
}

/// [`parse_native`] and [`glued_record`] of one line, which look for the cut (a scan of the whole
/// line for a NUL) once instead of twice: the daemon's per-line call.
pub(crate) fn parse_native_glued(line: &[u8]) -> (Result<Entry<'_>, ParseError>, Option<&[u8]>) {
    let line = scan::trim_eol(line);
    let cut = cut_point(line);
    (parse_up_to(line, None, cut), second_record(line, cut))
}

/// [`parse_native_glued`] of a line the caller already knows to be text: it is not checked
/// for UTF-8 again.
pub(crate) fn parse_native_glued_text(
    line: &str,
) -> (Result<Entry<'_>, ParseError>, Option<&[u8]>) {
    let bytes = scan::trim_eol(line.as_bytes());
    // Only ASCII `\r` and `\n` were trimmed: the cut is on a character boundary.
    let text = line.get(..bytes.len());
    let cut = cut_point(bytes);
    (parse_up_to(bytes, text, cut), second_record(bytes, cut))
}

/// The first record of `line` (without its end of line), which ends at `cut` if there is one;
/// `text` is the line as text when the caller checked it already.
#[inline]
fn parse_up_to<'a>(
    line: &'a [u8],
    text: Option<&'a str>,
    cut: Option<(usize, usize)>,
) -> Result<Entry<'a>, ParseError> {
    if scan::is_blank(line) {
        return Err(ParseError::new(ParseErrorKind::Empty, 0));
    }
    match cut {
        None => parse_record(line, text),
        // A cut at 8191 bytes may fall inside a character: then the record's text is checked.
        Some((cut, _)) => parse_truncated(&line[..cut], text.and_then(|t| t.get(..cut))),
    }
}

/// What follows the cut, when it starts like a record.
#[inline]
fn second_record(line: &[u8], cut: Option<(usize, usize)>) -> Option<&[u8]> {
    let (_, next) = cut?;
    let rest = &line[next..];
    looks_like_record_start(rest).then_some(rest)
}

/// Where the first record of a glued or NUL-cut line ends, and where what follows starts.
fn cut_point(line: &[u8]) -> Option<(usize, usize)> {
    // stdio writers leave the NUL that ended the 8 KiB buffer (and a NUL in a value ends the
    // record the same way in the daemon helper's fprintf).
    if let Some(nul) = memchr::memchr(0, line) {
        return Some((nul, nul + 1));
    }
    if line.len() <= SQUID5_RECORD_LIMIT {
        return None;
    }
    if looks_like_record_start(&line[SQUID5_RECORD_LIMIT..]) {
        return Some((SQUID5_RECORD_LIMIT, SQUID5_RECORD_LIMIT));
    }
    None
}

/// `ddddddddd[d].ddd +d+ ` — the start of a native record.
fn looks_like_record_start(b: &[u8]) -> bool {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(9..=10).contains(&digits) || b.get(digits) != Some(&b'.') {
        return false;
    }
    let ms = &b[digits + 1..];
    if ms.len() < 5 || !ms[..3].iter().all(u8::is_ascii_digit) || ms[3] != b' ' {
        return false;
    }
    let after = &ms[3..];
    let spaces = after.iter().take_while(|&&c| c == b' ').count();
    let elapsed = after[spaces..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    elapsed > 0 && after.get(spaces + elapsed) == Some(&b' ')
}

/// The seven left-hand fields, common to whole and truncated records, as slices and numbers
/// (the entry is built once, at the end).
struct Head<'a> {
    time: Timestamp,
    elapsed_ms: Option<u64>,
    client: &'a [u8],
    result: &'a [u8],
    code: Option<u16>,
    bytes: Option<u64>,
    method: &'a [u8],
    /// Offset just after the method.
    end: usize,
}

#[inline]
fn parse_head(line: &[u8]) -> Result<Head<'_>, ParseError> {
    let mut c = Cursor::new(line);
    let (col, t) = c.token()?;
    let time = scan::epoch(t).ok_or(ParseError::new(ParseErrorKind::BadNumber, col))?;
    let (col, t) = c.token()?;
    let elapsed_ms = scan::opt_uint(t, col)?;
    let (_, client) = c.token()?;
    let (col, t) = c.token()?;
    let slash = t
        .iter()
        .rposition(|&c| c == b'/')
        .ok_or(ParseError::new(ParseErrorKind::BadField, col))?;
    let code = scan::opt_status(&t[slash + 1..], col + slash + 1)?;
    let result = &t[..slash];
    let (col, by) = c.token()?;
    let bytes = scan::opt_uint(by, col)?;
    let (_, method) = c.token()?;
    Ok(Head {
        time,
        elapsed_ms,
        client,
        result,
        code,
        bytes,
        method,
        end: c.pos,
    })
}

impl<'a> Head<'a> {
    /// Writes the head's fields into `e` (in place: the entry is large, moves cost).
    #[inline]
    fn fill(&self, e: &mut Entry<'a>, src: &Src<'a>) {
        e.time = Some(self.time);
        e.client_ip = src.opt(self.client);
        // Squid 4 wrote `NONE` where Squid 5+ writes `-`.
        e.method = if self.method == b"NONE" {
            None
        } else {
            src.opt(self.method)
        };
        e.code = self.code;
        e.bytes = self.bytes;
        e.elapsed_ms = self.elapsed_ms;
        e.result = src.opt(self.result);
    }
}

#[inline]
fn parse_record<'a>(line: &'a [u8], text: Option<&'a str>) -> Result<Entry<'a>, ParseError> {
    let head = parse_head(line)?;
    let mut cursor = Cursor {
        b: line,
        pos: head.end,
    };
    let (_, url) = cursor.long_token()?;
    let rest_start = cursor.pos;
    let mut rest = scan::trim_spaces(cursor.rest());
    let mut mime = None;
    if rest.last() == Some(&b']') {
        if let Some((h, req, resp)) = scan::split_mime(rest) {
            rest = scan::trim_spaces(h);
            mime = Some((req, resp));
        }
    }
    // From the right: content type, then HIER/peer; the user is what lies between.
    let sp = scan::rfind_space(rest).ok_or(ParseError::new(
        ParseErrorKind::MissingField,
        rest_start + rest.len(),
    ))?;
    let mt = &rest[sp + 1..];
    let before = scan::trim_spaces(&rest[..sp]);
    let (user, hier) = match scan::rfind_space(before) {
        Some(i) => (scan::trim_spaces(&before[..i]), &before[i + 1..]),
        None => (&b""[..], before),
    };
    let slash = hier
        .iter()
        .position(|&c| c == b'/')
        .ok_or(ParseError::new(ParseErrorKind::BadField, rest_start))?;
    let src = Src::of(line, text);
    let mut entry = Entry::default();
    head.fill(&mut entry, &src);
    entry.destination = src.opt(url);
    entry.user = src.opt_mime(user);
    entry.hierarchy = src.opt(&hier[..slash]);
    entry.peer = src.opt(&hier[slash + 1..]);
    entry.content_type = src.opt(mt);
    if let Some(blocks) = mime {
        scan::push_mime(&mut entry, blocks);
    }
    Ok(entry)
}

/// The first record of a glued line: its head must be whole; the URL is what survived the cut,
/// and the right-hand fields are kept only if the cut spared them.
fn parse_truncated<'a>(line: &'a [u8], text: Option<&'a str>) -> Result<Entry<'a>, ParseError> {
    let truncated = (Cow::Borrowed("truncated"), Some(Cow::Borrowed("true")));
    if let Ok(mut e) = parse_record(line, text) {
        e.extra.push(truncated);
        return Ok(e);
    }
    let head = parse_head(line)?;
    let src = Src::of(line, text);
    let mut entry = Entry::default();
    head.fill(&mut entry, &src);
    let mut cursor = Cursor {
        b: line,
        pos: head.end,
    };
    if let Ok((_, url)) = cursor.token() {
        entry.destination = src.opt(url);
    }
    entry.extra.push(truncated);
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_observed_line_without_copying() {
        let l = b"1795835993.959     49 127.0.0.1 TCP_MISS/200 353 GET http://127.0.0.1:48839/auth/r71 john doe HIER_DIRECT/127.0.0.1 text/plain";
        let e = parse_native(l).unwrap();
        assert_eq!(e.user.as_deref(), Some("john doe"));
        assert!(matches!(e.user, Some(Cow::Borrowed(_))));
        assert!(matches!(e.destination, Some(Cow::Borrowed(_))));
        assert_eq!(e.elapsed_ms, Some(49));
        assert_eq!(e.code, Some(200));
        assert_eq!(e.hierarchy.as_deref(), Some("HIER_DIRECT"));
        assert_eq!(e.peer.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn rejects_what_is_not_a_record() {
        let k = |l: &[u8]| parse_native(l).unwrap_err().kind;
        assert_eq!(k(b""), ParseErrorKind::Empty);
        assert_eq!(k(b"  \r"), ParseErrorKind::Empty);
        assert_eq!(k(b"hello world"), ParseErrorKind::BadNumber);
        assert_eq!(k(b"1.000 x"), ParseErrorKind::BadNumber);
        assert_eq!(
            k(b"1.000 1 ::1 TCP_MISS200 0 GET / - HIER_NONE/- -"),
            ParseErrorKind::BadField
        );
        assert_eq!(
            k(b"1.000 1 ::1 TCP_MISS/200 0 GET"),
            ParseErrorKind::MissingField
        );
        assert_eq!(
            k(b"1.000 1 ::1 TCP_MISS/200 0 GET /"),
            ParseErrorKind::MissingField
        );
    }

    #[test]
    fn glued_records_give_both_records() {
        let head = b"1795835802.050     10 127.0.0.1 TCP_MISS/200 353 GET ";
        let mut line = head.to_vec();
        line.resize(SQUID5_RECORD_LIMIT, b'o');
        let second = b"1795835802.097     40 127.0.0.1 TCP_MISS/200 353 GET http://h/next - HIER_DIRECT/127.0.0.1 text/plain";
        line.extend_from_slice(second);
        let first = parse_native(&line).unwrap();
        assert_eq!(
            first.destination.as_deref().map(str::len),
            Some(SQUID5_RECORD_LIMIT - head.len())
        );
        assert_eq!(first.hierarchy, None);
        assert_eq!(first.extra, vec![("truncated".into(), Some("true".into()))]);
        assert_eq!(glued_record(&line), Some(&second[..]));
        assert_eq!(parse_native(second).unwrap().elapsed_ms, Some(40));
        assert_eq!(glued_record(second), None);
        for l in [&line[..], second] {
            assert_eq!(parse_native_glued(l), (parse_native(l), glued_record(l)));
            let text = std::str::from_utf8(l).unwrap();
            assert_eq!(parse_native_glued_text(text), parse_native_glued(l));
        }
    }

    #[test]
    fn nul_cut_record_with_mime_tail_is_not_glued() {
        let line = b"1795835802.050     10 127.0.0.1 TCP_MISS/200 353 GET http://h/ab\0 [A: b] []";
        let e = parse_native(line).unwrap();
        assert_eq!(e.destination.as_deref(), Some("http://h/ab"));
        assert_eq!(glued_record(line), None);
    }
}
