//! Reading the journal back: from an id or a time, in batches of bounded size, while the writer
//! appends and retention removes old segments.
//!
//! A reader holds one segment open at a time and never reads past the bytes the writer has
//! completed (the catalog's `len`), so it never sees half a batch. A segment removed while it is
//! being read stays readable through the open handle (Linux keeps its data until closed); when
//! the *next* segment is gone before the reader gets to it, the reader says so once
//! ([`Chunk::Gone`]) and carries on from the oldest segment kept. Memory per reader is one batch
//! (about [`BATCH_BYTES`]) plus what the consumer still holds of earlier ones.
use super::journal::{Catalog, Segment, MAX_RECORD_BYTES};
use super::{record_id, record_ts};
use crate::filter::Filter;
use crate::hub::Record;
use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// Bytes read from disk per batch (a batch holds the whole records that fit).
pub const BATCH_BYTES: usize = 256 << 10;

/// What one read yields.
#[derive(Debug)]
pub enum Chunk {
    /// The next records in id order. Never empty, except from a [`Reader::filtered`] that has
    /// a filter: it returns after each read from disk, matches or not, so that one call's work
    /// stays bounded when few records match.
    Records(Vec<Record>),
    /// Everything written so far was read; a later call yields what is appended meanwhile.
    CaughtUp,
    /// Retention removed segments before this reader got to them: ids after `after` up to
    /// `oldest` - 1 are gone. The next call continues at `oldest`.
    Gone {
        /// The last id this reader yielded (or its starting `since`).
        after: u64,
        /// The oldest id kept now.
        oldest: u64,
    },
}

/// Where the reader starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// The first record with an id greater than this.
    AfterId(u64),
    /// The first record whose `ts` (milliseconds) is at or after this.
    AtTime(i64),
    /// Started: every following record is yielded.
    Started,
}

/// The segment being read.
#[derive(Debug)]
struct Current {
    /// Its sequence number, to find its successor and its committed length in the catalog.
    seq: u64,
    /// Kept open: the data stays readable if retention removes the file.
    file: File,
    /// Next byte to read.
    pos: u64,
    /// Committed length when last looked up.
    end: u64,
}

/// The reading state, moved into a blocking thread for each batch.
#[derive(Debug)]
struct Inner {
    /// The writer's catalog.
    catalog: Arc<Mutex<Catalog>>,
    /// The segment being read; `None` before the first and between segments.
    current: Option<Current>,
    /// Sequence number of the last segment finished, to find the next one.
    finished_seq: Option<u64>,
    /// Start condition, applied until the first record that meets it.
    start: Start,
    /// Last id yielded (or the starting `since`): records at or before it are skipped.
    last: u64,
    /// Set by [`Reader::filtered`]: only matching records are yielded.
    filter: Option<Filter>,
    /// Scratch for the filter's pre-check, reused from record to record.
    lowered: Vec<u8>,
}

/// Streams records from the journal. Obtained from [`super::Store::read_after`] or
/// [`super::Store::read_from`].
#[derive(Debug)]
pub struct Reader {
    /// `None` while a read is in flight (the state is on the blocking thread).
    inner: Option<Inner>,
    /// The read in flight, kept across a cancelled [`Reader::next_batch`] so the next call
    /// collects it.
    inflight: Option<tokio::task::JoinHandle<(Inner, io::Result<Chunk>)>>,
    /// Ids missing between the `since` asked for and the oldest kept at open: (after, before).
    missing: Option<(u64, u64)>,
}

impl Reader {
    pub(crate) fn after_id(catalog: Arc<Mutex<Catalog>>, since: u64) -> Reader {
        let oldest = {
            let c = catalog.lock().unwrap_or_else(|p| p.into_inner());
            c.segments.front().map(|s| s.first_id)
        };
        Reader {
            missing: oldest
                .filter(|&o| since.saturating_add(1) < o)
                .map(|o| (since, o)),
            inflight: None,
            inner: Some(Inner {
                catalog,
                current: None,
                finished_seq: None,
                start: Start::AfterId(since),
                last: since,
                filter: None,
                lowered: Vec::new(),
            }),
        }
    }

    pub(crate) fn at_time(catalog: Arc<Mutex<Catalog>>, from_ms: i64) -> Reader {
        Reader {
            missing: None,
            inflight: None,
            inner: Some(Inner {
                catalog,
                current: None,
                finished_seq: None,
                start: Start::AtTime(from_ms),
                last: 0,
                filter: None,
                lowered: Vec::new(),
            }),
        }
    }

    /// Yields only the records that match `filter`, for a subscription that has applied it: a
    /// record's fields are built only when the filter's pre-check on its JSON text
    /// ([`Filter::may_match_json`]) passes, and not at all when the filter matches everything
    /// (its records then carry empty fields). Without this call every record is yielded with
    /// its fields (the history rebuilt at start needs them).
    pub fn filtered(mut self, filter: Filter) -> Reader {
        if let Some(inner) = self.inner.as_mut() {
            inner.filter = Some(filter);
        }
        self
    }

    /// For a reader opened with `since`: `(since, oldest)` when retention had already removed
    /// ids `since + 1 ..= oldest - 1` (CONTRACT §8: the replay starts at the oldest kept and the
    /// subscriber is told, as a `gap` or by the id jump).
    pub fn missing(&self) -> Option<(u64, u64)> {
        self.missing
    }

    /// The last id read past (yielded, or skipped by a `from` start); None while a read is in
    /// flight.
    pub fn position(&self) -> Option<u64> {
        self.inner.as_ref().map(|i| i.last)
    }

    /// The next batch, read on a blocking thread so the runtime's workers never wait on the disk.
    /// Cancel-safe: a call dropped before it completes leaves the read in flight, and the next
    /// call returns its result.
    pub async fn next_batch(&mut self) -> io::Result<Chunk> {
        if self.inflight.is_none() {
            let mut inner = self
                .inner
                .take()
                .ok_or_else(|| io::Error::other("journal reader lost by a failed read"))?;
            self.inflight = Some(tokio::task::spawn_blocking(move || {
                let r = inner.read();
                (inner, r)
            }));
        }
        let Some(handle) = self.inflight.as_mut() else {
            return Err(io::Error::other("journal reader lost by a failed read"));
        };
        let joined = handle.await;
        self.inflight = None;
        let (inner, result) = joined.map_err(io::Error::other)?;
        self.inner = Some(inner);
        result
    }

    /// The next batch, on the calling thread (start-up, tools, benchmarks).
    pub fn next_batch_blocking(&mut self) -> io::Result<Chunk> {
        match self.inner.as_mut() {
            Some(inner) => inner.read(),
            None => Err(io::Error::other(
                "journal reader busy with an asynchronous read",
            )),
        }
    }
}

impl Inner {
    /// Opens the segment to read next, positioned by the start condition and the index.
    /// `Ok(None)`: nothing to read yet.
    fn open_next(&mut self) -> io::Result<Result<Option<Current>, Chunk>> {
        let c = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let segs = &c.segments;
        let pick: Option<(&Segment, u64)> = match (self.finished_seq, self.start) {
            (Some(done), _) => {
                let next = segs.iter().find(|s| s.seq > done);
                if let Some(s) = next {
                    // Removed under us before we got to it: say so once, then go on.
                    let front = segs.front().is_some_and(|f| f.seq == s.seq);
                    if front && s.first_id > self.last.saturating_add(1) && s.seq > done + 1 {
                        let gone = Chunk::Gone {
                            after: self.last,
                            oldest: s.first_id,
                        };
                        self.finished_seq = Some(s.seq - 1);
                        return Ok(Err(gone));
                    }
                }
                next.map(|s| (s, s.data_start))
            }
            (None, Start::AfterId(since)) => {
                let target = since.saturating_add(1);
                let i = segs.iter().rposition(|s| s.first_id <= target).unwrap_or(0);
                segs.get(i).map(|s| {
                    let at = s.points.iter().rev().find(|p| p.id <= target);
                    (s, at.map_or(s.data_start, |p| p.offset))
                })
            }
            (None, Start::AtTime(_)) | (None, Start::Started) => {
                let from = match self.start {
                    Start::AtTime(f) => f,
                    _ => i64::MIN,
                };
                // Ts is taken as rising with the id (a log is written in time order), so the
                // start is in the last segment (and after the last point) that begins earlier.
                let i = segs
                    .iter()
                    .rposition(|s| s.first_ts_ms.is_some_and(|t| t < from))
                    .unwrap_or(0);
                segs.get(i).map(|s| {
                    let at = s
                        .points
                        .iter()
                        .rev()
                        .find(|p| p.ts_ms.is_some_and(|t| t < from));
                    (s, at.map_or(s.data_start, |p| p.offset))
                })
            }
        };
        let Some((seg, pos)) = pick else {
            return Ok(Ok(None));
        };
        // Opened under the lock: retention takes a segment out of the catalog before deleting
        // its file, so the file is still there.
        let file = File::open(&seg.path)?;
        Ok(Ok(Some(Current {
            seq: seg.seq,
            file,
            pos,
            end: seg.len,
        })))
    }

    fn read(&mut self) -> io::Result<Chunk> {
        loop {
            if self.current.is_none() {
                match self.open_next()? {
                    Err(gone) => return Ok(gone),
                    Ok(None) => return Ok(Chunk::CaughtUp),
                    Ok(Some(cur)) => self.current = Some(cur),
                }
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            // Its committed length now, and whether a newer segment exists (then it is sealed).
            let sealed = {
                let c = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(s) = c.segments.iter().find(|s| s.seq == cur.seq) {
                    cur.end = s.len;
                }
                c.segments.back().is_some_and(|s| s.seq > cur.seq)
                    || !c.segments.iter().any(|s| s.seq == cur.seq)
            };
            if cur.pos >= cur.end {
                if sealed {
                    self.finished_seq = Some(cur.seq);
                    self.current = None;
                    continue;
                }
                return Ok(Chunk::CaughtUp);
            }
            let mut want = BATCH_BYTES;
            let (buf, used) = loop {
                let n = want.min((cur.end - cur.pos) as usize);
                let mut buf = vec![0u8; n];
                cur.file.read_exact_at(&mut buf, cur.pos)?;
                match memchr::memrchr(b'\n', &buf) {
                    Some(last) => break (buf, last + 1),
                    None if n == want && want < MAX_RECORD_BYTES => want *= 2,
                    // A torn tail (only after a failed cut): nothing more here.
                    None => break (buf, n),
                }
            };
            cur.pos += used as u64;
            let buf = Bytes::from(buf);
            let mut out = Vec::new();
            let mut at = 0;
            while let Some(nl) = memchr::memchr(b'\n', &buf[at..used]) {
                let line = &buf[at..at + nl];
                let (start, end) = (at, at + nl);
                at += nl + 1;
                let Some(id) = record_id(line) else { continue };
                if id <= self.last {
                    continue;
                }
                if let Start::AtTime(from) = self.start {
                    if record_ts(line).is_none_or(|t| t < from) {
                        // Read past: a subscription that finds nothing here continues after it.
                        self.last = id;
                        continue;
                    }
                }
                self.start = Start::Started;
                self.last = id;
                let json = buf.slice(start..end);
                // Records build their filter fields lazily: an unfiltered replay never builds them.
                let record = match &self.filter {
                    Some(f) if !f.is_all() => {
                        if !f.may_match_json(&json, &mut self.lowered) {
                            continue;
                        }
                        let r = super::record(id, json);
                        if !f.matches(r.fields()) {
                            continue;
                        }
                        r
                    }
                    _ => super::record(id, json),
                };
                out.push(record);
            }
            let filtering = self.filter.as_ref().is_some_and(|f| !f.is_all());
            if !out.is_empty() || filtering {
                return Ok(Chunk::Records(out));
            }
        }
    }
}
