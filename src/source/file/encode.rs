//! A batch's records serialized many to one allocation: each entry's JSON is written into a shared
//! buffer and its record is a `Bytes` slice of it, and the chunk's records share one table for
//! their filter fields, so a line costs no allocation of its own (one buffer, one table and their
//! reference counts per chunk of records instead). Each record's JSON is followed by `\n` in its
//! chunk, so the chunks are the batch's journal text as they stand: the journal writes them
//! without copying the batch into a buffer of its own.
use crate::filter::Fields;
use crate::hub::Record;
use bytes::Bytes;
use parsers::Entry;

/// Most bytes of JSON one buffer is sized for. A record keeps its whole buffer alive for as long
/// as anything holds it (the history, a subscriber's queue), so this bounds what one record can
/// pin: a slow subscriber whose filter matches one record per chunk holds at most this per record
/// queued (its queue is bounded in JSON bytes), while ~50 typical records share one allocation.
const CHUNK_BYTES: usize = 16 << 10;

/// Makes the records of one batch.
#[derive(Debug, Default)]
pub(super) struct Encoder {
    /// The chunk being filled.
    buf: Vec<u8>,
    /// Bytes of JSON the rest of the batch is expected to need: a chunk is sized to it, so that a
    /// batch of one line (a quiet log) does not pin a whole chunk.
    expected: usize,
    /// Id and span in `buf` of each record of the chunk.
    spans: Vec<(u64, usize, usize)>,
    /// Filter fields built for the chunk's records (by index in `spans`), when a filter wants them.
    fields: Vec<(usize, Fields)>,
    /// Records of the chunks already sealed.
    records: Vec<Record>,
    /// The chunks already sealed: the batch's records, each followed by `\n`.
    chunks: Vec<Bytes>,
}

/// The records of one batch and the same records as journal text.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// In id order.
    pub(super) records: Vec<Record>,
    /// Every record's JSON followed by `\n`, in order, in as few pieces as the encoder made
    /// ([`crate::store::journal::Journal::append_text`]).
    pub(super) text: Vec<Bytes>,
}

impl Encoder {
    /// Starts a batch of about `lines` entries expected to hold about `expected` bytes of JSON.
    pub(super) fn begin(&mut self, lines: usize, expected: usize) {
        self.expected = expected;
        // Sized once: grown by doubling, thousands of records are copied several times.
        self.records.reserve(lines);
    }

    /// Serializes `entry` with `id` set as the batch's next record.
    pub(super) fn push(&mut self, id: u64, entry: &mut Entry<'_>) {
        entry.id = id;
        // The JSON and its `\n`.
        let hint = entry.json_size_hint() + 1;
        if self.buf.len() + hint > self.buf.capacity() {
            self.seal();
            self.buf
                .reserve_exact(self.expected.clamp(hint, CHUNK_BYTES.max(hint)));
        }
        let start = self.buf.len();
        // `write_json` grows the buffer if the hint fell short: still correct, one reallocation.
        entry.write_json(&mut self.buf);
        let end = self.buf.len();
        self.buf.push(b'\n');
        self.expected = self.expected.saturating_sub(self.buf.len() - start);
        if let Some(f) = Record::fields_now(entry) {
            self.fields.push((self.spans.len(), f));
        }
        self.spans.push((id, start, end));
    }

    /// The batch, in order; the encoder is ready for the next batch.
    pub(super) fn finish(&mut self) -> Batch {
        self.seal();
        Batch {
            records: std::mem::take(&mut self.records),
            text: std::mem::take(&mut self.chunks),
        }
    }

    /// Turns the chunk into records sharing it.
    fn seal(&mut self) {
        if self.spans.is_empty() {
            return;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        Record::chunk_into(
            &chunk,
            &self.spans,
            self.fields.drain(..),
            &mut self.records,
        );
        self.chunks.push(chunk);
        self.spans.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn entry(i: usize) -> Entry<'static> {
        Entry {
            // Some far over a chunk, so that one record alone outgrows its buffer.
            destination: Some(Cow::Owned(format!(
                "http://e.test/{i}/{}\"\\",
                "x".repeat(if i % 97 == 0 {
                    3 * CHUNK_BYTES
                } else {
                    i % 300
                })
            ))),
            bytes: Some(i as u64),
            ..Entry::default()
        }
    }

    #[test]
    fn a_batch_encodes_each_entry_as_its_own_record_would() {
        let mut enc = Encoder::default();
        for (batch, n) in [(0, 1), (1, 500), (2, 3)] {
            enc.begin(n, if batch == 1 { 1_000 } else { 50 * n });
            for i in 0..n {
                enc.push(1_000 * batch + i as u64, &mut entry(i));
            }
            let Batch { records, text } = enc.finish();
            assert_eq!(records.len(), n);
            let mut journal_text = Vec::new();
            for (i, r) in records.iter().enumerate() {
                let alone = Record::new(1_000 * batch + i as u64, &mut entry(i));
                assert_eq!(r.id, alone.id);
                assert_eq!(r.json, alone.json, "record {i} of batch {batch}");
                journal_text.extend_from_slice(&alone.json);
                journal_text.push(b'\n');
            }
            assert_eq!(text.concat(), journal_text, "journal text of batch {batch}");
        }
    }

    #[test]
    fn the_records_of_a_chunk_each_have_their_own_fields_in_the_shared_table() {
        let json = [200, 404, 503].map(|code| format!("{{\"id\":{code},\"code\":{code}}}"));
        let chunk = Bytes::from(json.concat());
        let mut spans = Vec::new();
        let mut at = 0;
        for (i, j) in json.iter().enumerate() {
            spans.push((i as u64 + 1, at, at + j.len()));
            at += j.len();
        }
        // Fields given for the middle record only (as while a filtered subscription is open);
        // they differ from its JSON, so the test sees which ones a record has.
        let given = Fields::from_json(b"{\"code\":299}").expect("fields");
        let mut records = Vec::new();
        Record::chunk_into(&chunk, &spans, [(1, given)], &mut records);
        assert_eq!(records.len(), 3);
        assert!(records[1].fields_built());
        assert!(!records[0].fields_built() && !records[2].fields_built());
        assert_eq!(records[1].fields().code, Some(299));
        assert_eq!(records[0].fields().code, Some(200));
        assert!(
            !records[2].fields_built(),
            "building one record's fields built another's"
        );
        // A clone shares its record's cell.
        let clone = records[2].clone();
        assert_eq!(clone.fields().code, Some(503));
        assert!(records[2].fields_built());
        for (r, j) in records.iter().zip(&json) {
            assert_eq!(r.json, j.as_bytes());
        }
    }
}
