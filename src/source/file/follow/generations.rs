//! Generations rotated away between two looks (`access.log` → `.1` twice): found among the numbered
//! siblings by creation time and opened from 0, oldest first.
use super::*;

impl Follower {
    /// After a rotation: generations created after the file we had open and already rotated away
    /// (`access.log` → `.1` twice between two looks) are opened from 0, oldest first, so their lines
    /// are not lost. Only numbered siblings (`access.log.1`, `access.log.20250101`) qualify, and
    /// only where the file system reports creation times.
    pub(super) fn find_skipped_generations(
        &mut self,
        born: Option<std::time::SystemTime>,
        exclude: Option<FileId>,
        extra_past: &[(u64, String)],
        current_prefix: &[u8],
        now: Instant,
    ) {
        let Some(born) = born else {
            return;
        };
        let mut known: Vec<FileId> = self.draining.iter().map(|f| f.id).collect();
        let retired: Vec<&FilePosition> = self.retired.iter().collect();
        known.extend(exclude);
        // Rotated files only grow: their prefix read now is at least as long as when opened.
        let fresh: Vec<Vec<u8>> = self
            .draining
            .iter()
            .map(|f| {
                let len = f.file.metadata().map_or(0, |m| m.len());
                f.read_prefix(len).unwrap_or_else(|_| f.fp.clone())
            })
            .collect();
        // A copy of what the log holds now (a copytruncate in progress) is read from the log.
        let fps: Vec<&[u8]> = fresh
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::once(current_prefix))
            .filter(|fp| strong(fp))
            .collect();
        let past: Vec<&(u64, String)> = self
            .draining
            .iter()
            .flat_map(|f| f.past_fps.iter())
            .chain(extra_past)
            .collect();
        // Oldest first. File-system creation times come from a coarse clock (a few ms): files
        // created within one tick are ordered by their first bytes, which for Squid's native
        // format start with the epoch timestamp (fixed width: lexical order is time order), then
        // by inode number. Names are no guide: `.1` is the newest for logrotate, the oldest for
        // date suffixes.
        type Candidate = (std::time::SystemTime, Vec<u8>, u64, PathBuf);
        let mut missed: Vec<Candidate> = rotated_siblings(&self.path)
            .into_iter()
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                })
            })
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                if known.contains(&FileId::of(&m)) {
                    return None;
                }
                let b = m.created().ok()?;
                if b < born {
                    return None;
                }
                // Already read and closed (the same inode *and* creation time: numbers get reused).
                if retired
                    .iter()
                    .any(|r| r.dev == m.dev() && r.ino == m.ino() && r.born == to_pair(b))
                {
                    return None;
                }
                // A copy of content already seen (copytruncate) is not a generation.
                let head = OpenFile::open(&p, 0, now).ok()?.fp;
                if head.is_empty() {
                    // Nothing to read (or a copy still being written: the log still has it).
                    return None;
                }
                let is_copy = fps.iter().any(|fp| {
                    let n = fp.len().min(head.len());
                    strong(&head[..n]) && fp[..n] == head[..n]
                }) || past.iter().any(|(len, hash)| {
                    let len = *len as usize;
                    head.len() >= len && fingerprint_hex(&head[..len]) == *hash
                });
                (!is_copy).then_some((b, head, m.ino(), p))
            })
            .collect();
        missed.sort();
        for (_, _, _, p) in missed {
            match OpenFile::open(&p, 0, now) {
                Ok(f) => {
                    tracing::info!(path = %p.display(), ino = f.id.ino, "reading a generation rotated away before it was seen");
                    self.stats.rotations += 1;
                    self.draining.push_back(f);
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot open a skipped generation")
                }
            }
        }
    }
}
