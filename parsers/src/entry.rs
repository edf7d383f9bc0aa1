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

/// `YYYY-MM-DD HH:MM:SS` as a `&str`-serializable value.
struct TimeText([u8; 19]);

impl Serialize for TimeText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The buffer holds ASCII digits and separators only.
        s.serialize_str(std::str::from_utf8(&self.0).unwrap_or("0000-00-00 00:00:00"))
    }
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(15 + self.extra.len()))?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry(
            "timestamp",
            &self
                .time
                .map(|t| TimeText(t.text_at_offset(self.utc_offset_secs))),
        )?;
        m.serialize_entry("client_ip", &self.client_ip)?;
        m.serialize_entry("method", &self.method)?;
        m.serialize_entry("destination", &self.destination)?;
        m.serialize_entry(
            "status",
            &self.code.map(|c| status_text(c, self.method.as_deref())),
        )?;
        m.serialize_entry("bytes", &self.bytes)?;
        m.serialize_entry("ts", &self.time.map(|t| t.epoch_seconds()))?;
        m.serialize_entry("elapsed_ms", &self.elapsed_ms)?;
        m.serialize_entry("result", &self.result)?;
        m.serialize_entry("code", &self.code)?;
        m.serialize_entry("user", &self.user)?;
        m.serialize_entry("hierarchy", &self.hierarchy)?;
        m.serialize_entry("peer", &self.peer)?;
        m.serialize_entry("content_type", &self.content_type)?;
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
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
