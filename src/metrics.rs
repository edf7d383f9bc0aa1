//! The daemon's counters in one place, and their Prometheus text exposition (`GET /metrics`).
//!
//! [`Metrics`] is owned by `app` and handed to each part: the HTTP side counts token outcomes,
//! entries sent and subscribers closed by close code into it as they happen. What other parts already keep (the
//! tailer's per-source counters, the hub's ids and subscribers) is read from them at scrape time
//! rather than copied here, so each fact has one home. A scrape builds a fresh registry around the
//! live families plus a snapshot of the rest: nothing is registered twice and nothing goes stale.
//!
//! Names follow the Prometheus rules: `proxytail_` prefix, base units (`_bytes`), `_total` only on
//! counters. Labels are a source path, a close code or a token outcome: never an address, a user
//! name or a token.
use crate::hub::Hub;
use crate::source::file::TailHealth;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

/// The `Content-Type` of [`Metrics::render`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A counter of `u64` (the default is also `u64`; spelled out so gauges match).
type U64Counter = Counter<u64, AtomicU64>;
/// A gauge of `u64`.
type U64Gauge = Gauge<u64, AtomicU64>;

/// Label of per-source metrics: the configured log path.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

/// Label of subscriber closes: the WebSocket close code the server sent.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

/// Label of token requests: what became of the request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// How a token request (or a scrape, which authenticates the same way) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutcome {
    /// A token was issued.
    Issued,
    /// 401: no or wrong credential.
    Unauthorized,
    /// 429: the address is locked out for a while.
    Throttled,
    /// 503: the verification cap or the token store is full.
    Unavailable,
}

impl TokenOutcome {
    fn label(self) -> &'static str {
        match self {
            TokenOutcome::Issued => "issued",
            TokenOutcome::Unauthorized => "unauthorized",
            TokenOutcome::Throttled => "throttled",
            TokenOutcome::Unavailable => "unavailable",
        }
    }

    /// The outcome an HTTP status stands for, for handlers that decide by status.
    pub fn of_status(status: warp::http::StatusCode) -> TokenOutcome {
        match status.as_u16() {
            200..=299 => TokenOutcome::Issued,
            429 => TokenOutcome::Throttled,
            401 | 403 => TokenOutcome::Unauthorized,
            _ => TokenOutcome::Unavailable,
        }
    }
}

/// Counters that exist only because something happened on the HTTP side; the rest is read from
/// its owner at scrape time.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Token requests by outcome.
    token_requests: Family<OutcomeLabel, U64Counter>,
    /// Subscribers the server closed, by close code (4008 = too slow: an alert rule watches it).
    subscribers_closed: Family<CodeLabel, U64Counter>,
    /// Entries handed to WebSocket subscribers' sockets, all subscribers together.
    entries_sent: U64Counter,
}

impl Metrics {
    /// Counts one `GET /api/ws-token` outcome.
    pub fn token_request(&self, outcome: TokenOutcome) {
        self.token_requests
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts one subscriber closed by the server with `code`.
    pub fn subscriber_closed(&self, code: u16) {
        self.subscribers_closed
            .get_or_create(&CodeLabel { code })
            .inc();
    }

    /// Counts `n` entries handed to one subscriber's socket.
    pub fn entries_sent(&self, n: usize) {
        self.entries_sent.inc_by(n as u64);
    }

    /// The exposition: the live families plus a snapshot of the tailer, the hub and the journal.
    pub fn render(&self, hub: &Hub, tail: &TailHealth) -> String {
        let mut registry = Registry::with_prefix("proxytail");
        registry.register(
            "token_requests",
            "WebSocket token requests by outcome",
            self.token_requests.clone(),
        );
        registry.register(
            "subscribers_closed",
            "WebSocket subscribers closed by the server, by close code",
            self.subscribers_closed.clone(),
        );
        registry.register(
            "entries_sent",
            "Entries handed to WebSocket subscribers (one per entry per subscriber)",
            self.entries_sent.clone(),
        );
        register_gauge(
            &mut registry,
            "last_id",
            "Id of the newest entry",
            None,
            hub.last_id(),
        );
        register_gauge(
            &mut registry,
            "subscribers",
            "WebSocket subscribers connected now",
            None,
            hub.subscriber_count(),
        );
        let retained = hub
            .oldest_id()
            .map_or(0, |oldest| hub.last_id().saturating_sub(oldest) + 1);
        register_gauge(
            &mut registry,
            "history_entries",
            "Entries held in memory for since/backlog replay",
            None,
            retained,
        );
        // The journal's retention (CONTRACT §8), as the store reports it.
        let journal = hub.store().map(|s| s.stats()).unwrap_or_default();
        register_gauge(
            &mut registry,
            "journal",
            "Bytes of journal on disk in the state directory",
            Some(Unit::Bytes),
            journal.bytes,
        );
        register_gauge(
            &mut registry,
            "journal_oldest_id",
            "Oldest id kept in the journal (0 when empty)",
            None,
            journal.oldest_id,
        );
        let kept = match journal.oldest_id {
            0 => 0,
            oldest => journal.last_id.saturating_sub(oldest) + 1,
        };
        register_gauge(
            &mut registry,
            "journal_entries",
            "Entries kept in the journal (since replay from disk)",
            None,
            kept,
        );
        register_gauge(
            &mut registry,
            "journal_oldest_timestamp",
            "Timestamp of the oldest entry kept in the journal (0 when unknown)",
            Some(Unit::Seconds),
            journal
                .oldest_ts_ms
                .map_or(0, |ms| u64::try_from(ms / 1000).unwrap_or(0)),
        );
        let snap = tail.metrics_snapshot();
        let entries = U64Counter::default();
        entries.inc_by(snap.entries);
        registry.register(
            "entries",
            "Entries made (lines parsed and given an id) since start",
            entries,
        );
        let write_errors = U64Counter::default();
        write_errors.inc_by(snap.state_write_errors);
        registry.register(
            "state_write_errors",
            "Journal or checkpoint writes that failed (publishing waits for them)",
            write_errors,
        );
        let counter = |name: &str, help: &str, get: fn(&SourceSnapshot) -> u64| {
            let family = Family::<SourceLabel, U64Counter>::default();
            for s in &snap.sources {
                family.get_or_create(&s.label()).inc_by(get(s));
            }
            (name.to_owned(), help.to_owned(), family)
        };
        for (name, help, family) in [
            counter("lines_read", "Complete lines read, per source", |s| s.lines),
            counter(
                "parse_errors",
                "Lines that did not parse (no id), per source",
                |s| s.parse_errors,
            ),
            counter(
                "skipped_lines",
                "Lines over max-line-bytes, skipped, per source",
                |s| s.skipped_long_lines,
            ),
            counter("rotations", "Rotations followed, per source", |s| {
                s.rotations
            }),
            counter("truncations", "Truncations detected, per source", |s| {
                s.truncations
            }),
        ] {
            registry.register(name, help, family);
        }
        let size = Family::<SourceLabel, U64Gauge>::default();
        let offset = Family::<SourceLabel, U64Gauge>::default();
        for s in &snap.sources {
            // The file the path names now, and how far into that very file the tailer has read:
            // `size - offset` is the lag. A file not (yet) read has offset 0.
            if let Ok(meta) = std::fs::metadata(&s.path) {
                use std::os::unix::fs::MetadataExt;
                size.get_or_create(&s.label()).set(meta.len());
                let read = s
                    .files
                    .iter()
                    .find(|f| f.0 == meta.dev() && f.1 == meta.ino())
                    .map_or(0, |f| f.2);
                offset.get_or_create(&s.label()).set(read);
            }
        }
        registry.register_with_unit(
            "file_size",
            "Size of the file the source path names",
            Unit::Bytes,
            size,
        );
        registry.register_with_unit(
            "read_offset",
            "Offset read up to in that file (size minus offset is the lag)",
            Unit::Bytes,
            offset,
        );
        // Fleet (CONTRACT §10): an edge's publishing, a central's consuming.
        if let Some(f) = tail.fleet() {
            for (name, help, v) in [
                (
                    "fleet_published",
                    "Entries acknowledged by JetStream (edge)",
                    f.published,
                ),
                (
                    "fleet_failed",
                    "Publish attempts that failed and were retried (edge)",
                    f.failed,
                ),
                (
                    "fleet_consumed",
                    "Stream messages given an id (central)",
                    f.consumed,
                ),
                (
                    "fleet_skipped",
                    "Stream messages that were not an edge's entry, skipped (central)",
                    f.skipped,
                ),
                (
                    "fleet_gaps",
                    "Gaps in a node's ids: its journal lost entries before they were published",
                    f.gaps,
                ),
                (
                    "fleet_lost",
                    "Entries in those gaps, never published (edge) or received (central)",
                    f.lost,
                ),
            ] {
                let c = U64Counter::default();
                c.inc_by(v);
                registry.register(name, help, c);
            }
            register_gauge(
                &mut registry,
                "fleet_pending",
                "Entries made that the edge's stream does not hold yet",
                None,
                f.pending,
            );
            register_gauge(
                &mut registry,
                "fleet_connected",
                "1 when connected to a NATS server",
                None,
                u64::from(f.connected),
            );
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

fn register_gauge(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>, v: u64) {
    let gauge = U64Gauge::default();
    gauge.set(v);
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, gauge),
        None => registry.register(name, help, gauge),
    }
}

/// What the tailer reports for metrics, copied out under its lock.
#[derive(Debug, Default, Clone)]
pub struct TailSnapshot {
    /// Entries made since start.
    pub entries: u64,
    /// Failed journal/checkpoint writes.
    pub state_write_errors: u64,
    /// One per configured source.
    pub sources: Vec<SourceSnapshot>,
}

/// One source's counters and positions.
#[derive(Debug, Default, Clone)]
pub struct SourceSnapshot {
    /// The configured path.
    pub path: PathBuf,
    /// Complete lines read.
    pub lines: u64,
    /// Lines that did not parse.
    pub parse_errors: u64,
    /// Lines over the bound.
    pub skipped_long_lines: u64,
    /// Rotations followed.
    pub rotations: u64,
    /// Truncations detected.
    pub truncations: u64,
    /// `(dev, ino, offset)` of each file the last checkpoint holds for this source.
    pub files: Vec<(u64, u64, u64)>,
}

impl SourceSnapshot {
    fn label(&self) -> SourceLabel {
        SourceLabel {
            source: self.path.to_string_lossy().into_owned(),
        }
    }
}
