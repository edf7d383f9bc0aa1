//! The entry: one parsed log line, serialized in the field order CONTRACT.md section 3 fixes.
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::borrow::Cow;

/// An instant with millisecond precision, as Squid's `%ts.%03tu` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch (UTC).
    pub millis: i64,
}

impl Timestamp {
    /// Builds a timestamp from whole seconds and milliseconds.
    pub fn new(secs: i64, millis: u32) -> Self {
        Self {
            millis: secs * 1000 + i64::from(millis),
        }
    }

    /// `YYYY-MM-DD HH:MM:SS` in UTC (the `timestamp` field), without allocating.
    pub fn utc_text(&self) -> [u8; 19] {
        self.text_at_offset(0)
    }

    /// `YYYY-MM-DD HH:MM:SS` in the zone `offset_secs` east of UTC.
    pub fn text_at_offset(&self, offset_secs: i32) -> [u8; 19] {
        let secs = self.millis.div_euclid(1000) + i64::from(offset_secs);
        // Consecutive lines mostly fall in the same second: the last text is kept per thread.
        thread_local! {
            static LAST: std::cell::Cell<(i64, [u8; 19])> =
                const { std::cell::Cell::new((i64::MIN, [0; 19])) };
        }
        let (last, text) = LAST.get();
        if last == secs {
            return text;
        }
        let text = Self::civil_text(secs);
        LAST.set((secs, text));
        text
    }

    /// `YYYY-MM-DD HH:MM:SS` of `secs` seconds since the epoch.
    fn civil_text(secs: i64) -> [u8; 19] {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut out = *b"0000-00-00 00:00:00";
        let y = y.clamp(0, 9999) as u32;
        put2(&mut out[0..2], y / 100);
        put2(&mut out[2..4], y % 100);
        put2(&mut out[5..7], m);
        put2(&mut out[8..10], d);
        put2(&mut out[11..13], (sod / 3600) as u32);
        put2(&mut out[14..16], (sod / 60 % 60) as u32);
        put2(&mut out[17..19], (sod % 60) as u32);
        out
    }

    /// Epoch seconds with milliseconds (the `ts` field).
    pub fn epoch_seconds(&self) -> f64 {
        self.millis as f64 / 1000.0
    }
}

fn put2(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 10 % 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// One parsed log line. Text fields borrow from the line where they can (no allocation on the hot
/// path); `None` serializes as `null` (a value the line does not carry, or carries as `-`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry<'a> {
    /// Consecutive id, assigned by the daemon after parsing (0 until then).
    pub id: u64,
    /// Request time (`%ts.%03tu`); `timestamp` and `ts` are both derived from it.
    pub time: Option<Timestamp>,
    /// Client address (`%>a`).
    pub client_ip: Option<Cow<'a, str>>,
    /// Request method (`%rm`).
    pub method: Option<Cow<'a, str>>,
    /// Request URL as logged (`%ru`); `host:port` for CONNECT.
    pub destination: Option<Cow<'a, str>>,
    /// HTTP status sent to the client (`%>Hs`); 0 is Squid's `000`, "no reply".
    pub code: Option<u16>,
    /// Bytes sent to the client (`%<st`).
    pub bytes: Option<u64>,
    /// Response time in milliseconds (`%tr`).
    pub elapsed_ms: Option<u64>,
    /// Squid's result tag (`%Ss`), e.g. `TCP_MISS`.
    pub result: Option<Cow<'a, str>>,
    /// User name (`%un`), decoded.
    pub user: Option<Cow<'a, str>>,
    /// Hierarchy code (`%Sh`), e.g. `HIER_DIRECT`.
    pub hierarchy: Option<Cow<'a, str>>,
    /// Server or peer address (`%<a`).
    pub peer: Option<Cow<'a, str>>,
    /// Reply content type (`%mt`).
    pub content_type: Option<Cow<'a, str>>,
    /// Fields a format carries beyond the standard ones (referer, user agent, headers, source …),
    /// serialized after them in this order. Names never repeat a standard field's name.
    pub extra: Vec<(Cow<'a, str>, Option<Cow<'a, str>>)>,
    /// Seconds east of UTC in which `timestamp` is written (0: UTC, the default); `ts` is always
    /// the exact instant.
    pub utc_offset_secs: i32,
}

impl Entry<'_> {
    /// Detaches the entry from the line it borrows from.
    pub fn into_owned(self) -> Entry<'static> {
        fn own(v: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            v.map(|c| Cow::Owned(c.into_owned()))
        }
        Entry {
            id: self.id,
            time: self.time,
            client_ip: own(self.client_ip),
            method: own(self.method),
            destination: own(self.destination),
            code: self.code,
            bytes: self.bytes,
            elapsed_ms: self.elapsed_ms,
            result: own(self.result),
            user: own(self.user),
            hierarchy: own(self.hierarchy),
            peer: own(self.peer),
            content_type: own(self.content_type),
            utc_offset_secs: self.utc_offset_secs,
            extra: self
                .extra
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), own(v)))
                .collect(),
        }
    }
}

/// The `status` text for a code: `"<code> <reason>"`, `"200 Connection established"` for a
/// successful CONNECT, the three digits alone when the code has no standard phrase, `"000"` for 0.
pub fn status_text(code: u16, method: Option<&str>) -> StatusText {
    StatusText {
        code,
        connect: method == Some("CONNECT"),
    }
}

/// Lazily formatted `status` value (see [`status_text`]); implements `Display` and `Serialize`.
#[derive(Debug, Clone, Copy)]
pub struct StatusText {
    code: u16,
    connect: bool,
}

impl std::fmt::Display for StatusText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code == 200 && self.connect {
            return f.write_str("200 Connection established");
        }
        match reason_phrase(self.code) {
            Some(p) => write!(f, "{:03} {p}", self.code),
            None => write!(f, "{:03}", self.code),
        }
    }
}

impl Serialize for StatusText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The standard reason phrase of an HTTP status code (RFC 9110 and common registrations).
fn reason_phrase(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => return None,
    })
}

/// One key of an entry as it goes into JSON.
#[derive(Debug, Clone, Copy)]
enum Key<'e> {
    /// A standard field's name (plain ASCII), and the bytes `write_json` writes before its value:
    /// `,"name":` (one copy instead of four small ones per key).
    Plain(&'static str, &'static str),
    /// An extra field's name, escaped when written.
    Text(&'e str),
}

/// A [`Key::Plain`] from the field's name.
macro_rules! plain {
    ($name:literal) => {
        Key::Plain($name, concat!(",\"", $name, "\":"))
    };
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Plain(k, _) => k,
            Key::Text(k) => k,
        }
    }
}

/// One value of an entry as it goes into JSON.
#[derive(Debug, Clone, Copy)]
enum Value<'e> {
    /// `null`.
    Null,
    /// A JSON string (escaped when written).
    Str(&'e str),
    /// `YYYY-MM-DD HH:MM:SS`, digits and separators only.
    Time([u8; 19]),
    /// The `status` text.
    Status(StatusText),
    /// A non-negative integer.
    Uint(u64),
    /// The `ts` number: epoch seconds with milliseconds.
    Seconds(Timestamp),
}

impl<'e> Value<'e> {
    fn text(v: &'e Option<Cow<'_, str>>) -> Value<'e> {
        v.as_deref().map_or(Value::Null, Value::Str)
    }

    fn uint(v: Option<u64>) -> Value<'e> {
        v.map_or(Value::Null, Value::Uint)
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Str(v) => s.serialize_str(v),
            // The buffer holds ASCII digits and separators only.
            Value::Time(t) => {
                s.serialize_str(std::str::from_utf8(t).unwrap_or("0000-00-00 00:00:00"))
            }
            Value::Status(v) => v.serialize(s),
            Value::Uint(v) => s.serialize_u64(*v),
            Value::Seconds(t) => s.serialize_f64(t.epoch_seconds()),
        }
    }
}

/// What [`Entry::visit`] hands every key and value to.
trait Visitor {
    /// Why a visit stops early.
    type Error;
    /// One key and its value.
    fn field(&mut self, key: Key<'_>, value: Value<'_>) -> Result<(), Self::Error>;
}

/// `serde`'s map serializer as a [`Visitor`].
struct SerdeMap<M>(M);

impl<M: SerializeMap> Visitor for SerdeMap<M> {
    type Error = M::Error;
    fn field(&mut self, key: Key<'_>, value: Value<'_>) -> Result<(), M::Error> {
        self.0.serialize_entry(key.as_str(), &value)
    }
}

/// [`Entry::write_json`]'s writer: every field with a comma before it (the first comma becomes
/// the `{`).
struct JsonWriter<'o>(&'o mut Vec<u8>);

impl Visitor for JsonWriter<'_> {
    type Error = std::convert::Infallible;
    // Inlined into each of `visit`'s calls, where key and value kind are constants: the keys become
    // fixed-size copies and the `match`es vanish (a call per field with a `memcpy` per key cost
    // ~1,000 instructions per line, BENCHMARKS §18).
    #[inline(always)]
    fn field(&mut self, key: Key<'_>, value: Value<'_>) -> Result<(), Self::Error> {
        let out = &mut *self.0;
        match key {
            Key::Plain(_, json) => out.extend_from_slice(json.as_bytes()),
            Key::Text(k) => {
                out.push(b',');
                write_str(out, k);
                out.push(b':');
            }
        }
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Str(v) => write_str(out, v),
            Value::Time(t) => {
                let mut q = [b'"'; 21];
                q[1..20].copy_from_slice(&t);
                out.extend_from_slice(&q);
            }
            Value::Status(v) => v.write_json(out),
            Value::Uint(v) => write_uint(out, v),
            Value::Seconds(t) => write_seconds(out, t),
        }
        Ok(())
    }
}

impl<'a> Entry<'a> {
    /// Hands every key and value to `f` in the order CONTRACT.md section 3 fixes: the one place
    /// that order is written, for [`Entry::write_json`] and the `Serialize` impl alike.
    #[inline(always)]
    fn visit<V: Visitor>(&self, f: &mut V) -> Result<(), V::Error> {
        let time = self.time;
        f.field(plain!("id"), Value::Uint(self.id))?;
        f.field(
            plain!("timestamp"),
            time.map_or(Value::Null, |t| {
                Value::Time(t.text_at_offset(self.utc_offset_secs))
            }),
        )?;
        f.field(plain!("client_ip"), Value::text(&self.client_ip))?;
        f.field(plain!("method"), Value::text(&self.method))?;
        f.field(plain!("destination"), Value::text(&self.destination))?;
        f.field(
            plain!("status"),
            self.code.map_or(Value::Null, |c| {
                Value::Status(status_text(c, self.method.as_deref()))
            }),
        )?;
        f.field(plain!("bytes"), Value::uint(self.bytes))?;
        f.field(plain!("ts"), time.map_or(Value::Null, Value::Seconds))?;
        f.field(plain!("elapsed_ms"), Value::uint(self.elapsed_ms))?;
        f.field(plain!("result"), Value::text(&self.result))?;
        f.field(plain!("code"), Value::uint(self.code.map(u64::from)))?;
        f.field(plain!("user"), Value::text(&self.user))?;
        f.field(plain!("hierarchy"), Value::text(&self.hierarchy))?;
        f.field(plain!("peer"), Value::text(&self.peer))?;
        f.field(plain!("content_type"), Value::text(&self.content_type))?;
        for (k, v) in &self.extra {
            f.field(Key::Text(k), Value::text(v))?;
        }
        Ok(())
    }

    /// Appends the entry's JSON object to `out`: byte for byte what `serde_json` makes of the
    /// `Serialize` impl (a property test holds them equal), without going through serde. This is
    /// the daemon's per-line encoding, so it writes straight into one buffer.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let Ok(()) = self.visit(&mut JsonWriter(out));
        // The first field (always `id`) was written as `,"id":…`: its comma opens the object.
        if let Some(open) = out.get_mut(start) {
            *open = b'{';
        }
        out.push(b'}');
    }

    /// A guess of the JSON size, for the buffer's capacity: the keys and numbers (about 200 bytes)
    /// plus the text values.
    pub fn json_size_hint(&self) -> usize {
        let text = |v: &Option<Cow<'_, str>>| v.as_deref().map_or(0, str::len);
        let standard = [
            &self.client_ip,
            &self.method,
            &self.destination,
            &self.result,
            &self.user,
            &self.hierarchy,
            &self.peer,
            &self.content_type,
        ];
        let extra: usize = self.extra.iter().map(|(k, v)| k.len() + text(v) + 8).sum();
        240 + standard.into_iter().map(text).sum::<usize>() + extra
    }
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = SerdeMap(s.serialize_map(Some(15 + self.extra.len()))?);
        self.visit(&mut m)?;
        m.0.end()
    }
}

impl StatusText {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        if self.code == 200 && self.connect {
            out.extend_from_slice(b"200 Connection established");
        } else {
            let c = u32::from(self.code);
            if c < 1000 {
                out.extend_from_slice(&[
                    b'0' + (c / 100) as u8,
                    b'0' + (c / 10 % 10) as u8,
                    b'0' + (c % 10) as u8,
                ]);
            } else {
                write_uint(out, u64::from(c));
            }
            if let Some(p) = reason_phrase(self.code) {
                out.push(b' ');
                // Phrases are plain ASCII without quotes or backslashes.
                out.extend_from_slice(p.as_bytes());
            }
        }
        out.push(b'"');
    }
}

/// What `serde_json` writes for each byte of a string: 0 = the byte itself, `u` = `\u00XX`,
/// otherwise the letter after a backslash.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// The bytes of `w` that need escaping (below 0x20, `"` or `\\`) have their high bit set; the usual
/// "has a zero byte" bit tricks, exact for the word as a whole (zero when no byte does).
#[inline(always)]
fn escape_bits(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let quote = zero_in(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(w ^ (ONES * u64::from(b'\\')));
    below_space | quote | backslash
}

/// True when a byte of `b` needs escaping. Every word is looked at, without an early exit, so
/// that the loop vectorizes; the tail is the last 8 bytes again (or, under 8, byte by byte).
fn needs_escape(b: &[u8]) -> bool {
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    let mut words = b.chunks_exact(8);
    let mut bits = 0;
    for c in &mut words {
        bits |= escape_bits(word(c));
    }
    if words.remainder().is_empty() {
        bits != 0
    } else if let Some(last) = b.len().checked_sub(8).map(|i| &b[i..]) {
        bits | escape_bits(word(last)) != 0
    } else {
        b.iter().any(|&c| ESCAPE[usize::from(c)] != 0)
    }
}

/// Writes `s` as a JSON string, escaped as `serde_json` escapes it. Log values rarely need
/// escaping: those are checked whole at once and copied in one piece.
fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[usize::from(b)];
        if esc != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if esc == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            } else {
                out.extend_from_slice(&[b'\\', esc]);
            }
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes `v` in decimal.
fn write_uint(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Writes the `ts` number as `serde_json` writes `millis / 1000.0` (the shortest text that reads
/// back as that double): whole seconds, a point, the milliseconds without trailing zeros (`.0` when
/// there are none). Below 10^12 seconds a double is finer than a millisecond, so that text is the
/// shortest; beyond it (never a real log time), the float formatter decides.
fn write_seconds(out: &mut Vec<u8>, t: Timestamp) {
    const FAST_BELOW_MS: u64 = 1_000_000_000_000_000;
    let abs = t.millis.unsigned_abs();
    if abs >= FAST_BELOW_MS {
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &t.epoch_seconds());
        return;
    }
    if t.millis < 0 {
        out.push(b'-');
    }
    write_uint(out, abs / 1000);
    out.push(b'.');
    let ms = (abs % 1000) as u32;
    let digits = [
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ];
    let keep = match (ms % 100, ms % 10) {
        (0, _) => 1,
        (_, 0) => 2,
        _ => 3,
    };
    out.extend_from_slice(&digits[..keep]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_in_a_configured_zone() {
        let t = Timestamp::new(1_774_449_130, 123);
        assert_eq!(&t.text_at_offset(3600), b"2026-03-25 15:32:10");
        assert_eq!(&t.text_at_offset(-5 * 3600 - 1800), b"2026-03-25 09:02:10");
        let e = Entry {
            time: Some(t),
            utc_offset_secs: 7200,
            ..Entry::default()
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["timestamp"], "2026-03-25 16:32:10");
        assert_eq!(json["ts"], 1774449130.123);
    }

    #[test]
    fn utc_text_matches_known_instants() {
        assert_eq!(&Timestamp::new(0, 0).utc_text(), b"1970-01-01 00:00:00");
        assert_eq!(
            &Timestamp::new(1_774_449_130, 123).utc_text(),
            b"2026-03-25 14:32:10"
        );
        assert_eq!(
            &Timestamp::new(951_782_400, 0).utc_text(),
            b"2000-02-29 00:00:00"
        );
    }

    #[test]
    fn status_text_covers_connect_unknown_and_no_reply() {
        assert_eq!(
            status_text(200, Some("CONNECT")).to_string(),
            "200 Connection established"
        );
        assert_eq!(status_text(200, Some("GET")).to_string(), "200 OK");
        assert_eq!(status_text(0, None).to_string(), "000");
        assert_eq!(status_text(299, None).to_string(), "299");
    }

    #[test]
    fn serializes_in_contract_order_with_nulls() {
        let e = Entry {
            id: 7,
            time: Some(Timestamp::new(1_774_449_130, 123)),
            method: Some("CONNECT".into()),
            code: Some(200),
            ..Entry::default()
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"id":7,"timestamp":"2026-03-25 14:32:10","client_ip":null,"method":"CONNECT","destination":null,"status":"200 Connection established","bytes":null,"ts":1774449130.123,"elapsed_ms":null,"result":null,"code":200,"user":null,"hierarchy":null,"peer":null,"content_type":null}"#
        );
    }
}
