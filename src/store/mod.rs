//! The store: every entry made, kept on disk for the retention the operator sets, and read back
//! from any id or time while the tailer keeps appending.
//!
//! - [`journal`] writes the segments (format documented there), recovers them at start (cutting
//!   what the checkpoint does not cover), and applies retention by age and by size.
//! - [`reader`] streams records from an id or a time, in bounded batches, from a consistent
//!   view that survives appends and the deletion of old segments.
//!
//! Both share one [`journal::Catalog`] (segments, their first ids and sparse indexes), so a reader
//! finds its starting point without scanning from the beginning.
pub mod journal;
pub mod reader;

use crate::hub::Record;
use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// A record read back from disk as the hub's [`Record`]: the one place that builds them, so that
/// a field derived from the JSON (the filter's fields) is added here once.
pub fn record(id: u64, json: Bytes) -> Record {
    Record::from_json(id, json)
}

/// The id at the start of a serialized record (`{"id":123,...`).
pub(crate) fn record_id(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"id\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b',') && rest.get(digits) != Some(&b'}') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// The entry's `ts` (epoch seconds with milliseconds) in milliseconds, `None` when null or absent.
/// `,"ts":` cannot occur inside a JSON string (its quotes would be escaped), so the first match
/// is the field.
pub(crate) fn record_ts(line: &[u8]) -> Option<i64> {
    let at = memchr::memmem::find(line, b",\"ts\":")? + 6;
    let rest = &line[at..];
    let len = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'e' | b'E' | b'+'))
        .count();
    let secs: f64 = std::str::from_utf8(&rest[..len]).ok()?.parse().ok()?;
    Some((secs * 1000.0).round() as i64)
}

/// A handle on the journal for readers and stats; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// The writer's catalog of segments.
    pub(crate) catalog: Arc<Mutex<journal::Catalog>>,
}

impl Store {
    /// Records with id > `since`, oldest first (from the oldest kept if `since` is older).
    pub fn read_after(&self, since: u64) -> reader::Reader {
        reader::Reader::after_id(self.catalog.clone(), since)
    }

    /// Records from the first whose `ts` is at or after `from_ms` (epoch milliseconds).
    pub fn read_from(&self, from_ms: i64) -> reader::Reader {
        reader::Reader::at_time(self.catalog.clone(), from_ms)
    }

    /// Oldest id and ts kept, last id, bytes on disk.
    pub fn stats(&self) -> StoreStats {
        let c = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        StoreStats {
            oldest_id: c.segments.front().map_or(0, |s| s.first_id),
            oldest_ts_ms: c.segments.front().and_then(|s| s.first_ts_ms),
            last_id: c.last_id,
            bytes: c.bytes(),
            segments: c.segments.len(),
        }
    }
}

/// What the journal holds, for `/api/health` detail, `/metrics` and `check-config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Oldest id kept on disk (0 when the journal is empty).
    pub oldest_id: u64,
    /// Its `ts` in epoch milliseconds, when it has one.
    pub oldest_ts_ms: Option<i64>,
    /// Newest id on disk (0 when empty).
    pub last_id: u64,
    /// Bytes of the segments and their index files.
    pub bytes: u64,
    /// Number of segments.
    pub segments: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_reads_the_leading_id() {
        assert_eq!(record_id(b"{\"id\":42,\"a\":1}"), Some(42));
        assert_eq!(record_id(b"{\"id\":4"), None);
        assert_eq!(record_id(b"\0\0\0"), None);
    }

    #[test]
    fn record_ts_reads_the_ts_field_not_a_string_containing_it() {
        let line = br#"{"id":1,"destination":"http://h/,\"ts\":5","ts":1774449130.123,"x":1}"#;
        assert_eq!(record_ts(line), Some(1_774_449_130_123));
        assert_eq!(record_ts(br#"{"id":1,"ts":null}"#), None);
        assert_eq!(record_ts(br#"{"id":1}"#), None);
    }
}
