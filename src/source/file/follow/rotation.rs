//! The rotation state machine: the current file (what the path names) and the draining ones
//! (rotated away, read to their end until quiet for the grace period), looked at on every read.
use super::*;

impl Follower {
    /// [`Follower::read_available`] with an explicit clock, for the drain grace period.
    pub fn read_available_at(&mut self, now: Instant) -> Vec<Line> {
        let mut out = Lines::default();
        self.read_into_at(now, &mut out);
        out.iter()
            .map(|l| Line {
                bytes: l.bytes.to_vec(),
                end_offset: l.end_offset,
                file: l.file,
                fragment: l.fragment,
            })
            .collect()
    }

    /// Appends the lines available now to `out`, with an explicit clock.
    pub(super) fn read_into_at(&mut self, now: Instant, out: &mut Lines) {
        self.more = false;
        self.check_current(now);
        let mut budget = self.opts.batch_bytes;
        // Rotated-away files first, oldest first: their lines were written before the new file's.
        let mut i = 0;
        while i < self.draining.len() {
            let file = &mut self.draining[i];
            let before = out.len();
            match file.read_lines(&self.opts, budget, out, &mut self.stats, &mut self.read_buf) {
                Ok(n) => {
                    tracing::trace!(
                        ino = file.id.ino,
                        lines = out.len() - before,
                        bytes = n,
                        "read rotated file"
                    );
                    budget = budget.saturating_sub(n);
                    if n > 0 {
                        file.last_growth = now;
                    }
                    if budget == 0 {
                        self.more = true;
                        return;
                    }
                    if now.saturating_duration_since(file.last_growth) >= self.opts.drain_grace {
                        file.finish(out, &mut self.stats);
                        if let Some(done) = self.draining.remove(i) {
                            self.retire(done);
                        }
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "reading a rotated file failed; closing it");
                    if let Some(done) = self.draining.remove(i) {
                        self.retire(done);
                    }
                    continue;
                }
            }
            i += 1;
        }
        if let Some(file) = &mut self.current {
            let before = out.len();
            // A truncation while reading would splice old and new content into one read: the
            // lines are kept only if the first bytes are unchanged afterwards, else rolled back
            // and the truncation handled on the next call (at once: `more`), or at once when the
            // read had no look before it.
            let snapshot = (
                file.read_pos,
                file.committed,
                file.partial.clone(),
                file.discarding,
                self.stats.clone(),
            );
            // Without a look before the read (`verified`), the look after it also covers the time
            // before: it happens even when nothing was read (the file may have shrunk).
            let looked_before = !file.verified;
            let read =
                file.read_lines(&self.opts, budget, out, &mut self.stats, &mut self.read_buf);
            let truncated = match read {
                Ok(n) if n > 0 || !looked_before => {
                    let looked = std::time::SystemTime::now();
                    let found = file.check_truncated();
                    file.verified = matches!(found, Ok(false));
                    if file.verified {
                        // Every truncation until this look was seen: copies of later
                        // `copytruncate` cycles are created after it.
                        file.last_look = looked;
                    }
                    found.unwrap_or(false)
                }
                _ => false,
            };
            match read {
                Ok(_) if truncated => {
                    tracing::debug!(
                        ino = file.id.ino,
                        "truncated while being read; reading again"
                    );
                    out.truncate(before);
                    (
                        file.read_pos,
                        file.committed,
                        file.partial,
                        file.discarding,
                        self.stats,
                    ) = snapshot;
                    if !looked_before {
                        // Truncated before this read, maybe long before: handled now, as the look
                        // before the read would have (`verified` is false, so this happens once).
                        return self.read_into_at(now, out);
                    }
                    self.more = true;
                }
                Ok(n) => {
                    tracing::trace!(
                        ino = file.id.ino,
                        lines = out.len() - before,
                        bytes = n,
                        from = file.read_pos - n as u64,
                        "read current file"
                    );
                    if n >= budget {
                        self.more = true;
                    }
                    self.state = FollowState::Following;
                }
                Err(e) => {
                    file.verified = false;
                    self.state = FollowState::Error(format!("{}: {e}", self.path.display()));
                }
            }
        }
    }

    /// Looks at what the path names now: rotation, deletion, truncation, a new file.
    pub(super) fn check_current(&mut self, now: Instant) {
        let path_meta = std::fs::metadata(&self.path);
        let Some(cur) = &mut self.current else {
            match OpenFile::open(&self.path, 0, now) {
                Ok(file) => {
                    if let Some(born) = self.vanished_born.take() {
                        // Delete + recreate, then a rename before we looked: the generation in
                        // between sits beside the path now and is read first.
                        let prefix = file.fp.clone();
                        self.find_skipped_generations(Some(born), Some(file.id), &[], &prefix, now);
                    }
                    self.current = Some(file);
                    self.state = FollowState::Following;
                }
                Err(e) => self.note_open_error(e),
            }
            return;
        };
        let moved = match &path_meta {
            Ok(m) => FileId::of(m) != cur.id,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(_) => false,
        };
        if moved {
            self.stats.rotations += 1;
            // Open what the path names now *before* listing skipped generations: one rotated away
            // between the listing and the open would be missed otherwise.
            let new = match OpenFile::open(&self.path, 0, now) {
                Ok(file) => Some(file),
                Err(e) => {
                    self.note_open_error(e);
                    None
                }
            };
            if let Some(mut old) = self.current.take() {
                old.last_growth = now;
                // It may also have been truncated before it was moved away.
                // (Later generations are found below, after it, by creation time.)
                if let Err(e) = self.check_truncation(&mut old, false, now) {
                    tracing::warn!(path = %self.path.display(), error = %e, "checking a rotated file failed");
                }
                let born = old.born;
                self.draining.push_back(old);
                let exclude = new.as_ref().map(|f| f.id);
                let prefix = new.as_ref().map(|f| f.fp.clone()).unwrap_or_default();
                self.find_skipped_generations(born, exclude, &[], &prefix, now);
            }
            if let Some(file) = new {
                self.current = Some(file);
                self.state = FollowState::Following;
            } else {
                self.vanished_born = self.draining.back().and_then(|f| f.born);
            }
            return;
        }
        if let Some(mut cur) = self.current.take() {
            // Found unchanged after the last read: the look after this read covers the time since
            // (`OpenFile::verified`). A file seen empty is looked at here, where content appearing
            // in it is noticed (`check_truncation`).
            if !cur.verified || cur.fp.is_empty() {
                cur.verified = false;
                if let Err(e) = self.check_truncation(&mut cur, true, now) {
                    self.state = FollowState::Error(format!("{}: {e}", self.path.display()));
                }
            }
            self.current = Some(cur);
        }
    }
}
