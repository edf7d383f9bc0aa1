//! A user regex with named groups, for other proxies' logs (nginx, HAProxy, Apache …).
//!
//! Groups named after entry fields fill them: `time` (alias `timestamp`; epoch seconds, httpd
//! time with optional `.mmm`, or ISO 8601 — see below), `ts` (epoch seconds), `client_ip`,
//! `method`, `destination` (alias `url`), `code` (alias `status`), `bytes`, `elapsed_ms`,
//! `result`, `user`, `hierarchy`, `peer`, `content_type`. Any other named group becomes an extra
//! field of that name, in the order the groups appear. A group that did not take part in the
//! match, or matched `-` or nothing, is `null`. The regex runs over bytes with Unicode off for
//! `.` and classes (so non-UTF-8 lines still match); values are decoded lossily.
//!
//! Example, nginx's default `combined` log format:
//!
//! ```text
//! ^(?P<client_ip>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<destination>\S+) (?P<protocol>[^"]*)" (?P<code>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)"
//! ```
//!
//! and HAProxy's `option httplog` line (after the syslog prefix):
//!
//! ```text
//! (?P<client_ip>[0-9a-fA-F.:]+):\d+ \[(?P<time>[^\]]+)\] (?P<frontend>\S+) (?P<backend>[^/ ]+)/(?P<peer>\S+) -?\d+/-?\d+/-?\d+/-?\d+/(?P<elapsed_ms>\d+) (?P<code>\d{3}) (?P<bytes>\d+) .* "(?P<method>\S+) (?P<destination>\S+)
//! ```
use crate::decode::opt_text;
use crate::scan;
use crate::{Entry, FormatError, ParseError, ParseErrorKind};
use std::borrow::Cow;

/// Which entry field a named group fills.
#[derive(Debug, Clone)]
enum Slot {
    /// `time`/`timestamp`: any layout `scan::flexible_time` reads.
    Time,
    /// `ts`: epoch seconds.
    Ts,
    /// `client_ip`.
    Client,
    /// `method`.
    Method,
    /// `destination` / `url`.
    Url,
    /// `code` / `status`: a number.
    Code,
    /// `bytes`: a number.
    Bytes,
    /// `elapsed_ms`: a number.
    Elapsed,
    /// `result`.
    Result,
    /// `user`.
    User,
    /// `hierarchy`.
    Hierarchy,
    /// `peer`.
    Peer,
    /// `content_type`.
    ContentType,
    /// Any other group name: an extra field of that name.
    Extra(String),
}

/// A compiled user regex.
#[derive(Debug, Clone)]
pub(crate) struct RegexFormat {
    /// The compiled pattern (bytes, Unicode classes off).
    re: regex::bytes::Regex,
    /// For each named group: its index and the slot it fills.
    slots: Vec<(usize, Slot)>,
}

impl RegexFormat {
    pub(crate) fn compile(pattern: &str) -> Result<Self, FormatError> {
        let re = regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .build()
            .or_else(|_| regex::bytes::Regex::new(pattern))
            .map_err(|e| FormatError::BadRegex(e.to_string()))?;
        let slots: Vec<(usize, Slot)> = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| {
                let n = n?;
                let slot = match n {
                    "time" | "timestamp" => Slot::Time,
                    "ts" => Slot::Ts,
                    "client_ip" => Slot::Client,
                    "method" => Slot::Method,
                    "destination" | "url" => Slot::Url,
                    "code" | "status" => Slot::Code,
                    "bytes" => Slot::Bytes,
                    "elapsed_ms" => Slot::Elapsed,
                    "result" => Slot::Result,
                    "user" => Slot::User,
                    "hierarchy" => Slot::Hierarchy,
                    "peer" => Slot::Peer,
                    "content_type" => Slot::ContentType,
                    other => Slot::Extra(other.to_owned()),
                };
                Some((i, slot))
            })
            .collect();
        if slots.is_empty() {
            return Err(FormatError::NoNamedGroup);
        }
        Ok(Self { re, slots })
    }

    pub(crate) fn pattern(&self) -> &str {
        self.re.as_str()
    }

    pub(crate) fn parse<'a>(&self, line: &'a [u8]) -> Result<Entry<'a>, ParseError> {
        let line = scan::trim_eol(line);
        if scan::is_blank(line) {
            return Err(ParseError::new(ParseErrorKind::Empty, 0));
        }
        let caps = self
            .re
            .captures(line)
            .ok_or(ParseError::new(ParseErrorKind::NoMatch, 0))?;
        let mut e = Entry::default();
        for (i, slot) in &self.slots {
            let m = caps.get(*i);
            let (v, col) = m.map_or((&b""[..], 0), |m| (m.as_bytes(), m.start()));
            let absent = v.is_empty() || v == b"-";
            let bad = |k| ParseError::new(k, col);
            match slot {
                Slot::Time if !absent => {
                    e.time = Some(scan::flexible_time(v).ok_or(bad(ParseErrorKind::BadField))?)
                }
                Slot::Ts if !absent => {
                    e.time = Some(scan::epoch(v).ok_or(bad(ParseErrorKind::BadNumber))?)
                }
                Slot::Time | Slot::Ts => {}
                Slot::Code if !absent => e.code = scan::opt_status(v, col)?,
                Slot::Bytes if !absent => e.bytes = scan::opt_uint(v, col)?,
                Slot::Elapsed if !absent => e.elapsed_ms = scan::opt_uint(v, col)?,
                Slot::Code | Slot::Bytes | Slot::Elapsed => {}
                Slot::Client => e.client_ip = opt_text(v),
                Slot::Method => e.method = opt_text(v),
                Slot::Url => e.destination = opt_text(v),
                Slot::Result => e.result = opt_text(v),
                Slot::User => e.user = opt_text(v),
                Slot::Hierarchy => e.hierarchy = opt_text(v),
                Slot::Peer => e.peer = opt_text(v),
                Slot::ContentType => e.content_type = opt_text(v),
                Slot::Extra(name) => e.extra.push((Cow::Owned(name.clone()), opt_text(v))),
            }
        }
        Ok(e)
    }
}
