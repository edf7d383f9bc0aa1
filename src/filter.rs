//! Server-side filters (CONTRACT §6): an expression compiled once per subscription, matched against
//! the compact [`Fields`] kept beside each record, so matching never parses JSON.
//!
//! This is the interface the hub and the WebSocket code build on; the grammar itself is filled in
//! separately. Until then only the empty expression (match everything) is accepted.
use parsers::Entry;
use std::fmt;

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
}

impl Fields {
    /// The fields of a freshly parsed entry (after the privacy policy has been applied to it).
    pub fn from_entry(entry: &Entry<'_>, source: Option<&str>) -> Fields {
        let text = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().map(Box::from);
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
            node: None,
        }
    }

    /// The fields of an entry read back as JSON (journal at start-up, replay from disk).
    pub fn from_json(json: &[u8]) -> Option<Fields> {
        let v: serde_json::Value = serde_json::from_slice(json).ok()?;
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(Box::from);
        let num = |k: &str| v.get(k).and_then(|x| x.as_u64());
        Some(Fields {
            client_ip: text("client_ip"),
            method: text("method"),
            destination: text("destination"),
            code: num("code").and_then(|c| u16::try_from(c).ok()),
            result: text("result"),
            user: text("user"),
            bytes: num("bytes"),
            elapsed_ms: num("elapsed_ms"),
            content_type: text("content_type"),
            source: text("source"),
            node: text("node"),
        })
    }
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

/// A compiled filter. The default filter matches every entry.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Filters that must all match (a view ANDed with a request gives two).
    all_of: Vec<Compiled>,
}

/// One compiled expression.
#[derive(Debug, Clone)]
struct Compiled;

impl Filter {
    /// Compiles `expr`; the empty (or blank) expression matches everything.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        if expr.trim().is_empty() {
            return Ok(Filter::default());
        }
        let _ = Compiled;
        Err(FilterError("filters are not supported yet".into()))
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
    pub fn matches(&self, _fields: &Fields) -> bool {
        self.all_of.is_empty()
    }
}
