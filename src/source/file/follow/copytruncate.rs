//! A truncation (`copytruncate`): the copy of the old content placed beside the log is found by its
//! first bytes and drained from the old offset before the truncated file is read from 0.
use super::*;

impl Follower {
    /// Detects a truncation of `file` (not in `self.current` meanwhile); if so, queues a copy of
    /// the old content found beside it (read from the old offset), then copies of later
    /// `copytruncate` cycles made since the last look (from 0, when `cycles`), and rewinds `file`
    /// to 0.
    pub(super) fn check_truncation(
        &mut self,
        file: &mut OpenFile,
        cycles: bool,
        now: Instant,
    ) -> io::Result<()> {
        let looked = std::time::SystemTime::now();
        // File-system timestamps come from a coarse clock: allow for it.
        let since = file.last_look - Duration::from_millis(100);
        file.last_look = looked;
        let was_empty = file.fp.is_empty();
        if !file.check_truncated()? {
            if cycles && was_empty && !file.fp.is_empty() {
                // Seen empty last time, content now: copies made meanwhile (copytruncate of
                // content never seen) hold lines that are nowhere else.
                let past = file.past_fps.clone();
                let prefix = file.fp.clone();
                self.find_skipped_generations(Some(since), Some(file.id), &past, &prefix, now);
            }
            return Ok(());
        }
        self.stats.truncations += 1;
        // Files already open or read to their end are never a copy to read again (a closed
        // file's inode number may be reused: it is matched with its creation time).
        let mut known: Vec<(FileId, Option<(u64, u32)>)> =
            self.draining.iter().map(|f| (f.id, None)).collect();
        known.extend(self.retired.iter().map(|p| {
            (
                FileId {
                    dev: p.dev,
                    ino: p.ino,
                },
                Some(p.born.unwrap_or_default()),
            )
        }));
        let copy = find_copy(&self.path, &file.fp, file.committed, &known, now);
        tracing::info!(
            path = %self.path.display(),
            offset = file.committed,
            copy_found = copy.is_some(),
            "log truncated; reading it again from the start"
        );
        match copy {
            Some(copy) => self.draining.push_back(copy),
            None => {
                if file.committed > 0 {
                    self.stats.unrecovered_truncations += 1;
                }
            }
        }
        let mut seen = file.past_fps.clone();
        if strong(&file.fp) {
            seen.push((file.fp.len() as u64, fingerprint_hex(&file.fp)));
        }
        if cycles {
            // (The log's content before the truncation is in `seen`; it holds new content now.)
            self.find_skipped_generations(Some(since), Some(file.id), &seen, &[], now);
        }
        file.reset_to_start()
    }
}

/// After a truncation: a sibling holding the old content (a `copytruncate` copy), opened at `offset`.
pub(super) fn find_copy(
    path: &Path,
    fp: &[u8],
    offset: u64,
    known: &[(FileId, Option<(u64, u32)>)],
    now: Instant,
) -> Option<OpenFile> {
    if !strong(fp) {
        return None;
    }
    for sib in rotated_siblings(path) {
        let Ok(meta) = std::fs::metadata(&sib) else {
            continue;
        };
        let id = FileId::of(&meta);
        let born = meta.created().ok().and_then(to_pair).unwrap_or_default();
        if meta.len() < offset
            || known
                .iter()
                .any(|(k, b)| *k == id && b.is_none_or(|b| b == born))
        {
            continue;
        }
        let Ok(mut file) = OpenFile::open(&sib, 0, now) else {
            continue;
        };
        if file.fp.len() >= fp.len() && file.fp[..fp.len()] == *fp {
            file.read_pos = offset;
            file.committed = offset;
            return Some(file);
        }
    }
    None
}
