//! The journal: the serialized records of every batch, appended (one write per batch) before the
//! batch is published, so the hub's history can be rebuilt after a restart or a crash.
//!
//! It is segmented: `journal.<seq>.ndjson` files, one record per line; a new segment starts when the
//! active one holds `segment_records` (≥ the history size) records, and only the two newest are
//! kept, so together they always hold the last `history` records. On open, records at or beyond the
//! checkpoint's next id (appended, but the checkpoint covering them was never written) are cut off:
//! their lines will be read again and get the same ids. A torn last line is cut off too.
use crate::hub::Record;
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The active segment and how to rotate it.
#[derive(Debug)]
pub struct Journal {
    /// The state directory.
    dir: PathBuf,
    /// The segment appended to.
    active: File,
    /// Its sequence number (in its name).
    active_seq: u64,
    /// Records in it, to know when to start the next one.
    active_records: usize,
    /// Records per segment before rotating.
    segment_records: usize,
    /// Records were appended since the last `sync` (an idle journal is not synced again).
    unsynced: bool,
    /// Segments rotated away since the last sync, still to be made durable (their `fsync` is
    /// not done on the tailer's path: see `syncer`).
    rotated: Vec<File>,
}

/// What [`Journal::open`] found.
#[derive(Debug)]
pub struct Recovered {
    /// The consecutive run of records ending just before the checkpoint's next id (or, with no
    /// usable checkpoint, the journal's last consecutive run), oldest first.
    pub records: Vec<Record>,
    /// Id of the last record in the journal (after cutting), 0 if none.
    pub last_id: u64,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal.{seq}.ndjson"))
}

/// Segment sequence numbers present in `dir`, ascending.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_prefix("journal.")?
                .strip_suffix(".ndjson")?
                .parse()
                .ok()
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The id at the start of a serialized record (`{"id":123,...`).
fn record_id(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"id\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b',') && rest.get(digits) != Some(&b'}') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

impl Journal {
    /// Opens the journal in `dir`, dropping records with id ≥ `next_id` (when given) and anything
    /// torn, and returns the records it still holds.
    pub fn open(
        dir: &Path,
        segment_records: usize,
        next_id: Option<u64>,
    ) -> io::Result<(Journal, Recovered)> {
        let seqs = segments(dir)?;
        // Older segments than the two newest are leftovers: remove them.
        let keep_from = seqs.len().saturating_sub(2);
        for &seq in &seqs[..keep_from] {
            let _ = std::fs::remove_file(segment_path(dir, seq));
        }
        let kept = &seqs[keep_from..];
        let mut records: Vec<Record> = Vec::new();
        let mut active_seq = kept.last().copied().unwrap_or(0);
        let mut active_records = 0;
        let mut cut = false;
        for &seq in kept {
            let path = segment_path(dir, seq);
            if cut {
                // Everything after the cut point is beyond the checkpoint.
                std::fs::remove_file(&path)?;
                continue;
            }
            let data = std::fs::read(&path)?;
            let mut good_len = 0usize;
            let mut count = 0usize;
            let mut pos = 0usize;
            while let Some(nl) = memchr::memchr(b'\n', &data[pos..]) {
                let line = &data[pos..pos + nl];
                let Some(id) = record_id(line) else {
                    break;
                };
                if next_id.is_some_and(|n| id >= n) {
                    cut = true;
                    break;
                }
                if records.last().is_some_and(|r| r.id + 1 != id) {
                    // A gap (an earlier failure): keep only the run after it.
                    records.clear();
                }
                records.push(Record::from_json(id, Bytes::copy_from_slice(line)));
                count += 1;
                pos += nl + 1;
                good_len = pos;
            }
            if good_len < data.len() {
                // A torn tail or records beyond the checkpoint: cut them off.
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(good_len as u64)?;
                f.sync_all()?;
                cut = true;
            }
            active_seq = seq;
            active_records = count;
        }
        let last_id = records.last().map_or(0, |r| r.id);
        if let Some(n) = next_id {
            if last_id + 1 != n {
                // The journal does not reach the checkpoint: its records cannot be placed.
                records.clear();
            }
        }
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, active_seq))?;
        let journal = Journal {
            dir: dir.to_owned(),
            active,
            active_seq,
            active_records,
            segment_records: segment_records.max(1),
            unsynced: false,
            rotated: Vec::new(),
        };
        Ok((journal, Recovered { records, last_id }))
    }

    /// Appends `records` in one write, starting a new segment first when the active one is full.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.active_records >= self.segment_records {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.json.len() + 1).sum());
        for r in records {
            buf.extend_from_slice(&r.json);
            buf.push(b'\n');
        }
        let before = self.active.metadata()?.len();
        if let Err(e) = self.active.write_all(&buf) {
            // A partial append (disk full) would stay as a torn run in the middle of the journal
            // once the batch is retried: cut it back; shrinking needs no free space.
            if let Err(cut) = self.active.set_len(before) {
                tracing::error!(error = %cut, "cannot cut a partial journal append back");
            }
            return Err(e);
        }
        self.active_records += records.len();
        self.unsynced = true;
        Ok(())
    }

    /// Makes appended records durable.
    pub fn sync(&mut self) -> io::Result<()> {
        for f in self.rotated.drain(..) {
            f.sync_data()?;
        }
        if self.unsynced {
            self.active.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Handles on every segment written since the last sync, for an `fsync` elsewhere (the
    /// syncer thread); the journal counts as synced from now on. Empty when nothing was written.
    pub fn unsynced_handles(&mut self) -> io::Result<Vec<File>> {
        let mut out = std::mem::take(&mut self.rotated);
        if self.unsynced {
            out.push(self.active.try_clone()?);
            self.unsynced = false;
        }
        Ok(out)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let next = self.active_seq + 1;
        let new = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, next))?;
        // The old segment is made durable with the next sync, off the tailer's path.
        let old = std::mem::replace(&mut self.active, new);
        if self.unsynced {
            self.rotated.push(old);
            self.unsynced = false;
        }
        if self.active_seq > 0 {
            let _ = std::fs::remove_file(segment_path(&self.dir, self.active_seq - 1));
        }
        self.active_seq = next;
        self.active_records = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64) -> Record {
        Record::from_json(id, Bytes::from(format!("{{\"id\":{id},\"x\":1}}")))
    }

    #[test]
    fn record_id_reads_the_leading_id() {
        assert_eq!(record_id(b"{\"id\":42,\"a\":1}"), Some(42));
        assert_eq!(record_id(b"{\"id\":4"), None);
        assert_eq!(record_id(b"\0\0\0"), None);
    }

    #[test]
    fn reopen_keeps_last_records_and_cuts_beyond_checkpoint_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut j, rec0) = Journal::open(dir.path(), 3, Some(1)).unwrap();
            assert!(rec0.records.is_empty());
            for id in 1..=8 {
                j.append(&[rec(id)]).unwrap();
            }
        }
        // Two segments are kept: 4..=6 and 7..=8 (1..=3 deleted on rotation).
        let (_, r) = Journal::open(dir.path(), 3, Some(9)).unwrap();
        assert_eq!(
            r.records.iter().map(|r| r.id).collect::<Vec<_>>(),
            (4..=8).collect::<Vec<_>>()
        );
        // A checkpoint older than the journal: records 7.. are cut and stay cut.
        let (mut j, r) = Journal::open(dir.path(), 3, Some(7)).unwrap();
        assert_eq!(r.last_id, 6);
        j.append(&[rec(7)]).unwrap();
        // A torn write at the end is ignored.
        j.active.write_all(b"{\"id\":8,\"x\"").unwrap();
        drop(j);
        let (_, r) = Journal::open(dir.path(), 3, None).unwrap();
        assert_eq!(
            r.records.iter().map(|r| r.id).collect::<Vec<_>>(),
            (4..=7).collect::<Vec<_>>()
        );
    }
}
