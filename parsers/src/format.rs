//! [`Format`]: the one value the daemon holds to parse its log — a built-in Squid writer, a
//! compiled custom `logformat`, or a user regex.
use crate::httpd;
use crate::logformat::LogFormat;
use crate::regex_format::RegexFormat;
use crate::squid;
use crate::{Entry, FormatError, ParseError};
use std::sync::Arc;

/// The names [`Format::builtin`] knows, in squid-logs.md §1 order.
pub const BUILTIN_NAMES: [&str; 5] = ["squid", "common", "combined", "referrer", "useragent"];

/// How the lines of one log are parsed. Cheap to clone (compiled formats are shared).
#[derive(Debug, Clone)]
pub struct Format {
    /// Which parser, and its compiled state.
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `squid`, hand-written (`squid.rs`).
    Native,
    /// `common` (`httpd.rs`).
    Common,
    /// `combined` (`httpd.rs`).
    Combined,
    /// `referrer` (`httpd.rs`).
    Referrer,
    /// `useragent` (`httpd.rs`).
    UserAgent,
    /// A compiled custom `logformat`, shared by clones.
    Custom(Arc<LogFormat>),
    /// A compiled user regex, shared by clones.
    Regex(Arc<RegexFormat>),
}

impl Format {
    /// A built-in Squid format by name: `squid`, `common`, `combined`, `referrer`, `useragent`.
    /// These are Squid's hard-coded writers, not the custom format with the same string (§1.6).
    pub fn builtin(name: &str) -> Option<Format> {
        let kind = match name {
            "squid" => Kind::Native,
            "common" => Kind::Common,
            "combined" => Kind::Combined,
            "referrer" => Kind::Referrer,
            "useragent" => Kind::UserAgent,
            _ => return None,
        };
        Some(Format { kind })
    }

    /// Compiles a custom `logformat` definition (the text after the format's name), once.
    pub fn from_logformat(definition: &str) -> Result<Format, FormatError> {
        Ok(Format {
            kind: Kind::Custom(Arc::new(LogFormat::compile(definition)?)),
        })
    }

    /// A user regex with named groups (see the crate README and `regex_format.rs` for the group
    /// names and an nginx / HAProxy example).
    pub fn regex(pattern: &str) -> Result<Format, FormatError> {
        Ok(Format {
            kind: Kind::Regex(Arc::new(RegexFormat::compile(pattern)?)),
        })
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored).
    pub fn parse<'a>(&self, line: &'a [u8]) -> Result<Entry<'a>, ParseError> {
        match &self.kind {
            Kind::Native => squid::parse_native(line),
            Kind::Common => httpd::parse_httpd(line, false),
            Kind::Combined => httpd::parse_httpd(line, true),
            Kind::Referrer => httpd::parse_referrer(line),
            Kind::UserAgent => httpd::parse_useragent(line),
            Kind::Custom(f) => f.parse(line),
            Kind::Regex(r) => r.parse(line),
        }
    }

    /// For a Squid ≤ 5 line that holds two records (§6.3), the second record, to be parsed as a
    /// line of its own after [`Format::parse`] returned the first. Only the native format is
    /// detected; `None` otherwise.
    pub fn glued_record<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Native => squid::glued_record(line),
            _ => None,
        }
    }

    /// [`Format::parse`] and [`Format::glued_record`] of one line at once (the native format
    /// looks for the cut once, not twice): the first record's entry, and the second record of a
    /// glued line, to be handed to this again.
    pub fn parse_glued<'a>(
        &self,
        line: &'a [u8],
    ) -> (Result<Entry<'a>, ParseError>, Option<&'a [u8]>) {
        match self.kind {
            Kind::Native => squid::parse_native_glued(line),
            _ => (self.parse(line), None),
        }
    }

    /// [`Format::parse_glued`] of a line the caller has already checked to be UTF-8 (the daemon
    /// checks a whole read at once): the native format does not check it again.
    pub fn parse_glued_text<'a>(
        &self,
        line: &'a str,
    ) -> (Result<Entry<'a>, ParseError>, Option<&'a [u8]>) {
        match self.kind {
            Kind::Native => squid::parse_native_glued_text(line),
            _ => self.parse_glued(line.as_bytes()),
        }
    }

    /// A short description for logs: the built-in name, `logformat <definition>` or
    /// `regex <pattern>`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Native => "squid".into(),
            Kind::Common => "common".into(),
            Kind::Combined => "combined".into(),
            Kind::Referrer => "referrer".into(),
            Kind::UserAgent => "useragent".into(),
            Kind::Custom(f) => format!("logformat {}", f.definition),
            Kind::Regex(r) => format!("regex {}", r.pattern()),
        }
    }
}

impl Default for Format {
    /// Squid's default, the native format.
    fn default() -> Self {
        Format { kind: Kind::Native }
    }
}

/// Parses `line` with `format` (the same as [`Format::parse`]).
pub fn parse_line<'a>(format: &Format, line: &'a [u8]) -> Result<Entry<'a>, ParseError> {
    format.parse(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}

    #[test]
    fn format_is_shareable() {
        assert_traits::<Format>();
    }

    #[test]
    fn builtins_by_name() {
        for n in BUILTIN_NAMES {
            assert_eq!(Format::builtin(n).unwrap().describe(), n);
        }
        assert!(Format::builtin("icap_squid").is_none());
    }

    #[test]
    fn regex_needs_named_groups() {
        assert_eq!(Format::regex("(a)").unwrap_err(), FormatError::NoNamedGroup);
        assert!(matches!(
            Format::regex("(?P<x>"),
            Err(FormatError::BadRegex(_))
        ));
    }
}
