//! Small byte-level building blocks shared by the hand-written parsers: a space-separated token
//! cursor, number and time parsing, and the trailing `log_mime_hdrs` blocks.
use crate::{Entry, ParseError, ParseErrorKind, Timestamp};
use std::borrow::Cow;

/// Walks a line token by token, tokens separated by runs of spaces.
pub(crate) struct Cursor<'a> {
    /// The line being walked.
    pub(crate) b: &'a [u8],
    /// Offset of the next unread byte.
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, pos: 0 }
    }

    /// Skips spaces, then returns the start and the bytes of the next token, or `MissingField`.
    #[inline]
    pub(crate) fn token(&mut self) -> Result<(usize, &'a [u8]), ParseError> {
        // Tokens are short: eight bytes at a time beats memchr's SIMD set-up here.
        self.token_ending(find_space)
    }

    /// [`Cursor::token`] for a token that may be long (a URL): the end is found with `memchr`.
    #[inline]
    pub(crate) fn long_token(&mut self) -> Result<(usize, &'a [u8]), ParseError> {
        self.token_ending(|rest| memchr::memchr(b' ', rest))
    }

    /// Skips spaces, then the next token, whose end (the next space) `find` looks for.
    #[inline(always)]
    fn token_ending(
        &mut self,
        find: impl Fn(&[u8]) -> Option<usize>,
    ) -> Result<(usize, &'a [u8]), ParseError> {
        while self.pos < self.b.len() && self.b[self.pos] == b' ' {
            self.pos += 1;
        }
        let start = self.pos;
        if start >= self.b.len() {
            return Err(ParseError::new(ParseErrorKind::MissingField, start));
        }
        let end = find(&self.b[start..]).map_or(self.b.len(), |i| start + i);
        self.pos = end;
        Ok((start, &self.b[start..end]))
    }

    /// The unread rest of the line.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.b[self.pos.min(self.b.len())..]
    }
}

/// The high bit of each byte of `w` that is a space (exactly those: no borrow crosses bytes).
#[inline(always)]
fn space_bits(w: [u8; 8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Spaces become zero bytes; a byte's high bit ends up set exactly when it is zero.
    let x = u64::from_le_bytes(w) ^ (ONES * u64::from(b' '));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The eight bytes at `c` (exactly eight long).
#[inline(always)]
fn word(c: &[u8]) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    w
}

/// The first space of `b`, looking at eight bytes at a time (then the last few one by one): the
/// head's tokens are 3–14 bytes, where a loop over bytes cost ~15 instructions per byte
/// (callgrind, BENCHMARKS §24) and memchr's set-up more than the search.
#[inline]
pub(crate) fn find_space(b: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(c) = b.get(at..at + 8) {
        let spaces = space_bits(word(c));
        if spaces != 0 {
            // Little-endian: the lowest set bit is the first byte.
            return Some(at + (spaces.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    b[at..].iter().position(|&c| c == b' ').map(|i| at + i)
}

/// The last space of `b`, eight bytes at a time from the end (the native format's right-hand
/// fields are found from the right).
#[inline]
pub(crate) fn rfind_space(b: &[u8]) -> Option<usize> {
    let mut end = b.len();
    while end >= 8 {
        let spaces = space_bits(word(&b[end - 8..end]));
        if spaces != 0 {
            // Little-endian: the highest set bit is the last byte.
            return Some(end - 1 - (spaces.leading_zeros() / 8) as usize);
        }
        end -= 8;
    }
    b[..end].iter().rposition(|&c| c == b' ')
}

/// Strips a trailing `\n` and `\r` (CRLF files, or a caller that kept the newline).
#[inline]
pub(crate) fn trim_eol(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = b {
        b = rest;
    }
    b
}

/// Strips spaces on both sides.
#[inline]
pub(crate) fn trim_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' '] = b {
        b = rest;
    }
    b
}

/// True when the line holds nothing but whitespace.
pub(crate) fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|c| c.is_ascii_whitespace())
}

/// A decimal integer made only of digits (at most 19, so it fits), or `None`.
#[inline]
pub(crate) fn uint(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// A number field: `-` is `Ok(None)`; digits optionally followed by `.fraction` (Squid's `%.3tr`
/// precision form; the fraction is dropped); anything else is `BadNumber` at `col`.
#[inline]
pub(crate) fn opt_uint(b: &[u8], col: usize) -> Result<Option<u64>, ParseError> {
    if b == b"-" {
        return Ok(None);
    }
    // A plain loop: these tokens are a few bytes, shorter than `memchr`'s set-up.
    let int = match b.iter().position(|&c| c == b'.') {
        Some(i) if b[i + 1..].iter().all(u8::is_ascii_digit) => &b[..i],
        _ => b,
    };
    uint(int)
        .map(Some)
        .ok_or(ParseError::new(ParseErrorKind::BadNumber, col))
}

/// An HTTP status: `-` is `None`, `000` is `Some(0)`.
#[inline]
pub(crate) fn opt_status(b: &[u8], col: usize) -> Result<Option<u16>, ParseError> {
    match opt_uint(b, col)? {
        None => Ok(None),
        Some(v) => u16::try_from(v)
            .map(Some)
            .map_err(|_| ParseError::new(ParseErrorKind::BadNumber, col)),
    }
}

/// `secs.mmm` (Squid `%ts.%03tu`) as a timestamp; 1–3 fraction digits are milliseconds scaled,
/// more are cut to milliseconds. No fraction is whole seconds.
#[inline]
pub(crate) fn epoch(b: &[u8]) -> Option<Timestamp> {
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b""[..]),
    };
    if int.len() > 12 {
        return None;
    }
    let secs = uint(int)?;
    let mut ms = 0u32;
    for i in 0..3 {
        ms *= 10;
        if let Some(&c) = frac.get(i) {
            if !c.is_ascii_digit() {
                return None;
            }
            ms += u32::from(c - b'0');
        }
    }
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(Timestamp::new(secs as i64, ms))
}

fn two(b: &[u8]) -> Option<u32> {
    match b {
        [h, l] if h.is_ascii_digit() && l.is_ascii_digit() => {
            Some(u32::from(h - b'0') * 10 + u32::from(l - b'0'))
        }
        _ => None,
    }
}

fn month(b: &[u8]) -> Option<u32> {
    const M: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    M.iter().position(|m| m[..] == *b).map(|i| i as u32 + 1)
}

/// Days from 1970-01-01 to the given civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of a civil date and time (in whatever zone they were written).
fn civil_secs(year: i64, mon: u32, day: u32, h: u32, mi: u32, s: u32) -> i64 {
    days_from_civil(year, mon, day) * 86_400 + i64::from(h * 3600 + mi * 60 + s)
}

/// A zone's `±hh mm` as seconds east of UTC.
fn zone_offset(sign: u8, hh: u32, mm: u32) -> i64 {
    let v = i64::from(hh * 3600 + mm * 60);
    if sign == b'-' {
        -v
    } else {
        v
    }
}

/// Squid's httpd time `dd/Mon/yyyy:HH:MM:SS +hhmm` (`%tl`; `%tg` has no zone and is UTC) as the
/// UTC instant. Also takes the odd `-03-30` a negative half-hour offset prints as (§1.2).
pub(crate) fn httpd_time(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let day = two(&b[0..2])?;
    let mon = month(&b[3..6])?;
    let year = i64::from(two(&b[7..9])? * 100 + two(&b[9..11])?);
    if b[14] != b':' || b[17] != b':' {
        return None;
    }
    let (h, mi, s) = (two(&b[12..14])?, two(&b[15..17])?, two(&b[18..20])?);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let zone = &b[20..];
    let offset_secs = match zone {
        [] => 0,
        [b' ', sign @ (b'+' | b'-'), z @ ..] => {
            let (hh, mm) = match z {
                [a, b, c, d] => (two(&[*a, *b])?, two(&[*c, *d])?),
                [a, b, b'-', c, d] => (two(&[*a, *b])?, two(&[*c, *d])?),
                _ => return None,
            };
            zone_offset(*sign, hh, mm)
        }
        _ => return None,
    };
    let local = civil_secs(year, mon, day, h, mi, s);
    Some(Timestamp::new(local - offset_secs, 0))
}

/// A time in any of the layouts proxies commonly write, for user regexes: epoch seconds with an
/// optional fraction (`1795835993.065`), httpd time with an optional zone and an optional
/// `.mmm` after the seconds (`28/Nov/2026:03:08:35 +0000`, HAProxy's `06/Feb/2009:12:14:14.655`),
/// or ISO 8601 (`2026-11-28T03:08:35+00:00`, `2026-11-28T03:08:35.123Z`, nginx `$time_iso8601`).
/// A layout without a zone is read as UTC.
pub(crate) fn flexible_time(b: &[u8]) -> Option<Timestamp> {
    if b.first().is_some_and(u8::is_ascii_digit)
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'.')
    {
        return epoch(b);
    }
    if b.len() >= 20 && b[2] == b'/' {
        // Optional `.mmm` after the seconds.
        let frac = b[20..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == b'.')
            .count();
        let ms = millis_of(&b[20..20 + frac]);
        let mut v = b[..20].to_vec();
        v.extend_from_slice(&b[20 + frac..]);
        let t = httpd_time(&v)?;
        return Some(Timestamp {
            millis: t.millis + i64::from(ms?),
        });
    }
    iso8601(b)
}

/// `.ddd` (or empty) as milliseconds.
fn millis_of(frac: &[u8]) -> Option<u32> {
    match frac {
        [] => Some(0),
        [b'.', d @ ..] if !d.is_empty() && d.iter().all(u8::is_ascii_digit) => {
            let mut ms = 0;
            for i in 0..3 {
                ms = ms * 10 + d.get(i).map_or(0, |c| u32::from(c - b'0'));
            }
            Some(ms)
        }
        _ => None,
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fff][Z|±hh:mm|±hhmm]`.
fn iso8601(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = i64::from(two(&b[0..2])? * 100 + two(&b[2..4])?);
    let (mon, day) = (two(&b[5..7])?, two(&b[8..10])?);
    let (h, mi, s) = (two(&b[11..13])?, two(&b[14..16])?, two(&b[17..19])?);
    if !(1..=12).contains(&mon) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let rest = &b[19..];
    let frac = rest
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'.')
        .count();
    let ms = millis_of(&rest[..frac])?;
    let zone = &rest[frac..];
    let zone = zone.strip_prefix(b" ").unwrap_or(zone);
    let offset = match zone {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), z @ ..] => {
            let (hh, mm) = match z {
                [a, b, b':', c, d] | [a, b, c, d] => (two(&[*a, *b])?, two(&[*c, *d])?),
                _ => return None,
            };
            zone_offset(*sign, hh, mm)
        }
        _ => return None,
    };
    let secs = civil_secs(year, mon, day, h, mi, s);
    Some(Timestamp::new(secs - offset, ms))
}

/// Adds the two blocks [`split_mime`] found, decoded, to `entry` as its `request_headers` and
/// `response_headers` extra fields.
pub(crate) fn push_mime<'a>(entry: &mut Entry<'a>, (request, response): (&'a [u8], &'a [u8])) {
    use crate::decode::{decode, Encoding};
    entry.extra.push((
        Cow::Borrowed("request_headers"),
        Some(decode(request, Encoding::MimeBlob)),
    ));
    entry.extra.push((
        Cow::Borrowed("response_headers"),
        Some(decode(response, Encoding::MimeBlob)),
    ));
}

/// Splits off the two ` [request headers] [reply headers]` blocks `log_mime_hdrs on` appends
/// (§5): returns the line before them and the two block contents, still mime-blob encoded.
/// The blocks cannot hold `[` or `]` (the encoding escapes them), so they are found from the end.
pub(crate) fn split_mime(b: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let body = b.strip_suffix(b"]")?;
    let q = memchr::memrchr(b'[', body)?;
    let resp = &body[q + 1..];
    let before = body[..q].strip_suffix(b" ")?.strip_suffix(b"]")?;
    let q2 = memchr::memrchr(b'[', before)?;
    if memchr::memchr(b']', &before[q2 + 1..]).is_some() {
        return None;
    }
    let req = &before[q2 + 1..];
    let head = before[..q2].strip_suffix(b" ")?;
    Some((head, req, resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_scales_fractions() {
        assert_eq!(
            epoch(b"1795835993.065"),
            Some(Timestamp::new(1_795_835_993, 65))
        );
        assert_eq!(epoch(b"1.5"), Some(Timestamp::new(1, 500)));
        assert_eq!(epoch(b"7"), Some(Timestamp::new(7, 0)));
        assert_eq!(epoch(b"1.2345"), Some(Timestamp::new(1, 234)));
        assert_eq!(epoch(b"1.x"), None);
        assert_eq!(epoch(b"-"), None);
    }

    #[test]
    fn httpd_time_converts_to_utc() {
        let t = httpd_time(b"28/Nov/2026:03:08:35 +0000").unwrap();
        assert_eq!(&t.utc_text(), b"2026-11-28 03:08:35");
        let t = httpd_time(b"28/Nov/2026:03:08:35 +0130").unwrap();
        assert_eq!(&t.utc_text(), b"2026-11-28 01:38:35");
        let t = httpd_time(b"28/Nov/2026:03:08:35 -03-30").unwrap();
        assert_eq!(&t.utc_text(), b"2026-11-28 06:38:35");
        let t = httpd_time(b"01/Jan/2000:00:00:00").unwrap();
        assert_eq!(t.millis, 946_684_800_000);
        assert_eq!(httpd_time(b"28/Foo/2026:03:08:35 +0000"), None);
        assert_eq!(httpd_time(b"28/Nov/2026:03:08:35 +00"), None);
    }

    #[test]
    fn flexible_time_reads_common_layouts() {
        let t = |b: &[u8]| flexible_time(b).map(|t| t.millis);
        assert_eq!(t(b"1795835993.065"), Some(1_795_835_993_065));
        assert_eq!(t(b"06/Feb/2009:12:14:14.655"), Some(1_233_922_454_655));
        assert_eq!(t(b"06/Feb/2009:12:14:14 +0100"), Some(1_233_918_854_000));
        assert_eq!(t(b"2009-02-06T12:14:14+01:00"), Some(1_233_918_854_000));
        assert_eq!(t(b"2009-02-06T12:14:14.5Z"), Some(1_233_922_454_500));
        assert_eq!(t(b"2009-02-06 12:14:14"), Some(1_233_922_454_000));
        assert_eq!(t(b"2009-02-06 13:14:14 +0100"), Some(1_233_922_454_000));
        assert_eq!(t(b"yesterday"), None);
    }

    #[test]
    fn find_space_and_rfind_space_find_the_first_and_last_space() {
        // Every length up to three words, the space at every place (or none), around bytes that
        // differ from a space by one bit (0x20 ^ bit) and 0xff / 0x00, which a word trick could
        // mistake for one.
        for len in 0..24 {
            for at in 0..=len {
                for filler in [b'a', 0x21, 0x60, 0xa0, 0x00, 0xff, 0x30] {
                    let mut b = vec![filler; len];
                    if at < len {
                        b[at] = b' ';
                        // A second space later must not be the one found.
                        if at + 3 < len {
                            b[at + 3] = b' ';
                        }
                    }
                    let want = b.iter().position(|&c| c == b' ');
                    assert_eq!(find_space(&b), want, "len {len} at {at} filler {filler:#x}");
                    let last = b.iter().rposition(|&c| c == b' ');
                    assert_eq!(
                        rfind_space(&b),
                        last,
                        "len {len} at {at} filler {filler:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn mime_blocks_split_from_the_end() {
        let (h, a, b) = split_mime(b"x - [A: 1\\r\\n] []").unwrap();
        assert_eq!((h, a, b), (&b"x -"[..], &b"A: 1\\r\\n"[..], &b""[..]));
        assert_eq!(split_mime(b"x [a]"), None);
        assert_eq!(split_mime(b"http://[::1]/ x"), None);
    }
}
