//! One open file and the reading state in it: reads from the offset into complete lines (a partial
//! last line kept for the next read, over-long lines skipped), notices when the file itself was
//! truncated or refilled (size below the offset, other first bytes), and reports its position.
use super::*;

/// One open file and the reading state in it.
#[derive(Debug)]
pub(super) struct OpenFile {
    /// The handle: it keeps a renamed or deleted file readable to its end.
    pub(super) file: File,
    /// Identity, to notice the path naming another file.
    pub(super) id: FileId,
    /// The first bytes seen (up to `FINGERPRINT_BYTES`): a change means truncate-and-refill.
    pub(super) fp: Vec<u8>,
    /// The hex SHA-256 of `fp`, made when a checkpoint first asks for it: a checkpoint is saved
    /// after every batch, which on a quiet log is every line, and hashing the prefix each time
    /// cost more than the line itself. Every change of `fp` goes through `set_fp`, which clears it.
    fp_hex: std::cell::OnceCell<String>,
    /// Bytes of the file consumed into lines or `partial`.
    pub(super) read_pos: u64,
    /// Offset after the last line returned or skipped: the position a checkpoint may store.
    pub(super) committed: u64,
    /// The start of a line whose `\n` has not arrived yet.
    pub(super) partial: Vec<u8>,
    /// Inside a line over the bound: bytes are dropped until the next `\n`.
    pub(super) discarding: bool,
    /// Last time this (rotated-away) file grew; it is closed `drain_grace` after.
    pub(super) last_growth: Instant,
    /// Wall-clock time of the last look at this file: a truncation noticed now may hide several
    /// `copytruncate` cycles, whose copies were all created since.
    pub(super) last_look: std::time::SystemTime,
    /// Fingerprints this file had before it was truncated (bounded): a copy of old content made by
    /// `copytruncate` is recognised by them and never taken for a new generation.
    pub(super) past_fps: Vec<(u64, String)>,
    /// Creation time (statx btime) where the file system reports it: a generation created after
    /// this file and rotated away before we looked is found by it (two rotations in one batch).
    pub(super) born: Option<std::time::SystemTime>,
    /// The look after the last read found the file neither shrunk nor refilled (at `last_look`):
    /// the next read of the current file needs no look before it, because the look after it
    /// sees a truncation made at any time since, and rolls that read back (one look per read
    /// instead of two: on a quiet log that is every line).
    pub(super) verified: bool,
}

impl OpenFile {
    /// Opens `path` (a symlink is followed) only if it is a regular file. The open never blocks:
    /// `O_NONBLOCK` makes opening a FIFO with no writer return at once (a plain open would wait
    /// for a writer forever, on the tailer's thread), and the type is checked on the opened handle,
    /// so nothing swapped in between a check and the open gets through. On a regular file
    /// `O_NONBLOCK` changes nothing.
    pub(super) fn open(path: &Path, offset: u64, now: Instant) -> io::Result<OpenFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (a FIFO, device or directory is refused)",
            ));
        }
        let mut f = OpenFile {
            born: meta.created().ok(),
            last_look: std::time::SystemTime::now(),
            past_fps: Vec::new(),
            id: FileId::of(&meta),
            file,
            fp: Vec::new(),
            fp_hex: std::cell::OnceCell::new(),
            read_pos: 0,
            committed: 0,
            partial: Vec::new(),
            discarding: false,
            last_growth: now,
            verified: false,
        };
        let fp = f.read_prefix(meta.len())?;
        f.set_fp(fp);
        let offset = if offset > meta.len() { 0 } else { offset };
        f.read_pos = offset;
        f.committed = offset;
        Ok(f)
    }

    fn set_fp(&mut self, fp: Vec<u8>) {
        self.fp = fp;
        self.fp_hex = std::cell::OnceCell::new();
    }

    fn fp_hex(&self) -> String {
        self.fp_hex
            .get_or_init(|| fingerprint_hex(&self.fp))
            .clone()
    }

    /// The first `min(len, FINGERPRINT_BYTES)` bytes.
    pub(super) fn read_prefix(&self, len: u64) -> io::Result<Vec<u8>> {
        let n = (len as usize).min(FINGERPRINT_BYTES);
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match self.file.read_at(&mut buf[got..], got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// True if the file was truncated (shrunk below what was read, or its first bytes changed).
    /// Extends the fingerprint while the file is shorter than `FINGERPRINT_BYTES`.
    pub(super) fn check_truncated(&mut self) -> io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len < self.read_pos {
            return Ok(true);
        }
        let now = self.read_prefix(len)?;
        if now.len() < self.fp.len() || now[..self.fp.len()] != self.fp[..] {
            return Ok(true);
        }
        if now.len() > self.fp.len() {
            self.set_fp(now);
        }
        Ok(false)
    }

    pub(super) fn reset_to_start(&mut self) -> io::Result<()> {
        if strong(&self.fp) {
            if self.past_fps.len() >= 8 {
                self.past_fps.remove(0);
            }
            let hex = self.fp_hex();
            self.past_fps.push((self.fp.len() as u64, hex));
        }
        self.set_fp(Vec::new());
        self.read_pos = 0;
        self.committed = 0;
        self.partial.clear();
        self.discarding = false;
        let len = self.file.metadata()?.len();
        let fp = self.read_prefix(len)?;
        self.set_fp(fp);
        Ok(())
    }

    pub(super) fn position(&self) -> FilePosition {
        FilePosition {
            dev: self.id.dev,
            ino: self.id.ino,
            fp_len: self.fp.len() as u64,
            fp: self.fp_hex(),
            offset: self.committed,
            past: self.past_fps.clone(),
            born: self.born.and_then(to_pair),
            retired: false,
        }
    }

    /// Reads from `read_pos` to the end (or until `budget` bytes were read), appending complete
    /// lines to `out`. Returns the number of bytes read.
    pub(super) fn read_lines(
        &mut self,
        opts: &FollowOptions,
        budget: usize,
        out: &mut Lines,
        stats: &mut FollowStats,
        buf: &mut Vec<u8>,
    ) -> io::Result<usize> {
        if buf.len() < READ_BUF_BYTES {
            buf.resize(READ_BUF_BYTES, 0);
        }
        let mut total = 0;
        while total < budget {
            let n = match self.file.read_at(buf, self.read_pos) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n;
            // `consume` moves `read_pos` past all `n` bytes.
            self.consume(&buf[..n], opts, out, stats);
            if n < buf.len() && total == n {
                // A regular file reads short only at its end: asking again to be told so costs a
                // system call per wake, and what is written after this read sends a wake of its own.
                // After full reads (a backlog, a busy writer) reading on takes what came meanwhile
                // into this batch.
                break;
            }
        }
        Ok(total)
    }

    /// Splits `chunk` (the bytes at `read_pos`) into lines.
    pub(super) fn consume(
        &mut self,
        mut chunk: &[u8],
        opts: &FollowOptions,
        out: &mut Lines,
        stats: &mut FollowStats,
    ) {
        while !chunk.is_empty() {
            if self.partial.is_empty() && !self.discarding {
                // NUL runs between lines are holes left by a writer without O_APPEND after a
                // truncation: never part of a line.
                let skip = chunk.iter().take_while(|&&b| b == 0).count();
                if skip > 0 {
                    self.read_pos += skip as u64;
                    chunk = &chunk[skip..];
                    self.committed = self.read_pos;
                    continue;
                }
            }
            match memchr(b'\n', chunk) {
                Some(i) => {
                    let (head, rest) = (&chunk[..i], &chunk[i + 1..]);
                    self.read_pos += i as u64 + 1;
                    if self.discarding {
                        self.discarding = false;
                    } else {
                        let total = self.partial.len() + head.len();
                        let ends_cr = head.last().or(self.partial.last()) == Some(&b'\r');
                        let content = total - usize::from(ends_cr);
                        if content > opts.max_line_bytes {
                            stats.skipped_long += 1;
                            self.partial.clear();
                        } else {
                            if content > 0 {
                                stats.lines += 1;
                                out.push(
                                    [&self.partial, head],
                                    content,
                                    self.read_pos,
                                    self.id,
                                    false,
                                );
                            }
                            self.partial.clear();
                        }
                    }
                    self.committed = self.read_pos;
                    chunk = rest;
                }
                None => {
                    self.read_pos += chunk.len() as u64;
                    if !self.discarding {
                        if self.partial.len() + chunk.len() > opts.max_line_bytes + 1 {
                            // Over the bound (+1 leaves room for a `\r`): stop buffering.
                            stats.skipped_long += 1;
                            self.discarding = true;
                            self.partial.clear();
                        } else {
                            self.partial.extend_from_slice(chunk);
                        }
                    }
                    chunk = &[];
                }
            }
        }
    }

    /// Emits the unterminated tail of a file that is being closed, once.
    pub(super) fn finish(&mut self, out: &mut Lines, stats: &mut FollowStats) {
        if !self.discarding && !self.partial.is_empty() {
            let len = self.partial.len() - usize::from(self.partial.last() == Some(&b'\r'));
            out.push([&self.partial, &[]], len, self.read_pos, self.id, true);
            self.partial.clear();
            stats.fragments += 1;
            stats.lines += 1;
        }
        self.committed = self.read_pos;
    }
}
