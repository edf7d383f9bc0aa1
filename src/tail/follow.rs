//! `Follower`: one log path followed across rotations and truncations, turning appended bytes into
//! complete lines with their end offsets. Plain `std::io`, no runtime, no watcher: the caller decides
//! when to look (a wake from `watch`, a safety tick, or a test calling [`Follower::read_available`]).
//!
//! The state machine, per configured path:
//! - the *current* file is the one the path names; it is read from its offset to its end;
//! - when the path disappears or names another file (rename + create, delete + recreate), the open
//!   handle moves to the *draining* list and is read to its end until it has not grown for a grace
//!   period, then closed (a trailing fragment without newline is emitted once, flagged);
//! - when the current file shrinks below the read offset, or its first bytes change (truncate and
//!   refill, NUL-filled hole), it is read again from 0; a copy of the old content placed beside it
//!   (`copytruncate`) is found by its first bytes and drained from the old offset first.
//!
//! Known limits: a truncate-and-refill whose new first bytes equal the old ones is not seen until
//! the file shrinks below the offset (content fingerprints cannot tell such files apart; Squid
//! lines start with a millisecond timestamp, so this needs a refill within the same millisecond);
//! two rotations between two looks are recovered only where the file system reports creation
//! times (ext4, xfs, btrfs, tmpfs on recent kernels); a file deleted before it was ever opened is
//! lost (nothing can read it).
use memchr::memchr;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How many leading bytes identify a file's content (besides its device and inode).
pub const FINGERPRINT_BYTES: usize = 1024;
/// Default bytes read per [`Follower::read_available`] call before returning (bounded batches).
pub const DEFAULT_BATCH_BYTES: usize = 1 << 20;
/// Default time a rotated-away file must stay unchanged before it is closed (and a trailing
/// fragment without newline emitted): Squid may keep writing to the renamed file for a few
/// seconds before it reopens the log.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(5);

/// A file's identity on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device number (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub ino: u64,
}

impl FileId {
    fn of(m: &Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// Where a file was left: what the checkpoint stores for each open file of a source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilePosition {
    /// Device number, with `ino` the identity that survives renames.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Length of the content prefix the fingerprint covers (inode numbers get reused).
    pub fp_len: u64,
    /// SHA-256 of those first `fp_len` bytes, hex.
    pub fp: String,
    /// Offset just after the last line taken (or skipped).
    pub offset: u64,
    /// `(fp_len, fp)` of content this file held before it was truncated: copies of it
    /// (`copytruncate`) are never taken for new generations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past: Vec<(u64, String)>,
    /// Creation time `(secs, nanos)` since the epoch, where the file system reports it: after a
    /// restart, generations created after it and rotated away meanwhile are read too; and part of
    /// the identity on resume (a file deleted while stopped frees its inode number for the next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<(u64, u32)>,
    /// A file read to its end and closed, remembered (bounded) so that it is never taken for a
    /// new generation later; not reopened on resume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
}

/// How many closed files are remembered as already read.
const RETIRED_KEPT: usize = 16;

fn to_pair(t: std::time::SystemTime) -> Option<(u64, u32)> {
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some((d.as_secs(), d.subsec_nanos()))
}

fn from_pair((secs, nanos): (u64, u32)) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::new(secs, nanos)
}

/// What the follower is doing, for health reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowState {
    /// The path does not exist (yet); nothing is wrong.
    Waiting,
    /// A file is open and being read.
    Following,
    /// The path exists but cannot be opened or read; retried on the next call.
    Error(String),
}

/// Counters a follower keeps over its lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStats {
    /// Lines returned.
    pub lines: u64,
    /// Lines longer than the bound, skipped without being buffered.
    pub skipped_long: u64,
    /// Truncations detected (size below the offset, or first bytes changed).
    pub truncations: u64,
    /// Truncations for which no copy of the old content was found: lines written between the last
    /// read and the truncation may be lost (the `copytruncate` window).
    pub unrecovered_truncations: u64,
    /// Rotations detected (the path named another file or disappeared).
    pub rotations: u64,
    /// Fragments without newline emitted at the end of a rotated-away file.
    pub fragments: u64,
}

/// One complete line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line's bytes without `\n`, without a trailing `\r`, without leading NUL bytes.
    pub bytes: Vec<u8>,
    /// Offset just after the line's `\n` in the file it came from.
    pub end_offset: u64,
    /// The file it came from.
    pub file: FileId,
    /// True for the unterminated tail of a rotated-away file, emitted after the grace period.
    pub fragment: bool,
}

/// Tunables of a [`Follower`].
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Lines longer than this (without `\n`) are skipped and counted.
    pub max_line_bytes: usize,
    /// Bytes read per call at most (a line in progress may exceed it slightly).
    pub batch_bytes: usize,
    /// A rotated-away file unchanged this long is closed.
    pub drain_grace: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            max_line_bytes: 64 * 1024,
            batch_bytes: DEFAULT_BATCH_BYTES,
            drain_grace: DEFAULT_DRAIN_GRACE,
        }
    }
}

/// Where to start reading a file seen for the first time (no checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Read existing content.
    Beginning,
    /// Skip existing content (from the end of its last complete line).
    End,
}

/// Bytes read from a file per `read` call.
const READ_BUF_BYTES: usize = 64 * 1024;

/// One open file and the reading state in it.
#[derive(Debug)]
struct OpenFile {
    /// The handle: it keeps a renamed or deleted file readable to its end.
    file: File,
    /// Identity, to notice the path naming another file.
    id: FileId,
    /// The first bytes seen (up to `FINGERPRINT_BYTES`): a change means truncate-and-refill.
    fp: Vec<u8>,
    /// Bytes of the file consumed into lines or `partial`.
    read_pos: u64,
    /// Offset after the last line returned or skipped: the position a checkpoint may store.
    committed: u64,
    /// The start of a line whose `\n` has not arrived yet.
    partial: Vec<u8>,
    /// Inside a line over the bound: bytes are dropped until the next `\n`.
    discarding: bool,
    /// Last time this (rotated-away) file grew; it is closed `drain_grace` after.
    last_growth: Instant,
    /// Wall-clock time of the last look at this file: a truncation noticed now may hide several
    /// `copytruncate` cycles, whose copies were all created since.
    last_look: std::time::SystemTime,
    /// Fingerprints this file had before it was truncated (bounded): a copy of old content made by
    /// `copytruncate` is recognised by them and never taken for a new generation.
    past_fps: Vec<(u64, String)>,
    /// Creation time (statx btime) where the file system reports it: a generation created after
    /// this file and rotated away before we looked is found by it (two rotations in one batch).
    born: Option<std::time::SystemTime>,
}

impl OpenFile {
    /// Opens `path` (a symlink is followed) only if it is a regular file. The open never blocks:
    /// `O_NONBLOCK` makes opening a FIFO with no writer return at once (a plain open would wait
    /// for a writer forever, on the tailer's thread), and the type is checked on the opened handle,
    /// so nothing swapped in between a check and the open gets through. On a regular file
    /// `O_NONBLOCK` changes nothing.
    fn open(path: &Path, offset: u64, now: Instant) -> io::Result<OpenFile> {
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
            read_pos: 0,
            committed: 0,
            partial: Vec::new(),
            discarding: false,
            last_growth: now,
        };
        f.fp = f.read_prefix(meta.len())?;
        let offset = if offset > meta.len() { 0 } else { offset };
        f.read_pos = offset;
        f.committed = offset;
        Ok(f)
    }

    /// The first `min(len, FINGERPRINT_BYTES)` bytes.
    fn read_prefix(&self, len: u64) -> io::Result<Vec<u8>> {
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
    fn check_truncated(&mut self) -> io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len < self.read_pos {
            return Ok(true);
        }
        let now = self.read_prefix(len)?;
        if now.len() < self.fp.len() || now[..self.fp.len()] != self.fp[..] {
            return Ok(true);
        }
        if now.len() > self.fp.len() {
            self.fp = now;
        }
        Ok(false)
    }

    fn reset_to_start(&mut self) -> io::Result<()> {
        if strong(&self.fp) {
            if self.past_fps.len() >= 8 {
                self.past_fps.remove(0);
            }
            let fp = std::mem::take(&mut self.fp);
            self.past_fps.push((fp.len() as u64, fingerprint_hex(&fp)));
        }
        self.read_pos = 0;
        self.committed = 0;
        self.partial.clear();
        self.discarding = false;
        let len = self.file.metadata()?.len();
        self.fp = self.read_prefix(len)?;
        Ok(())
    }

    fn position(&self) -> FilePosition {
        FilePosition {
            dev: self.id.dev,
            ino: self.id.ino,
            fp_len: self.fp.len() as u64,
            fp: fingerprint_hex(&self.fp),
            offset: self.committed,
            past: self.past_fps.clone(),
            born: self.born.and_then(to_pair),
            retired: false,
        }
    }

    /// Reads from `read_pos` to the end (or until `budget` bytes were read), appending complete
    /// lines to `out`. Returns the number of bytes read.
    fn read_lines(
        &mut self,
        opts: &FollowOptions,
        budget: usize,
        out: &mut Vec<Line>,
        stats: &mut FollowStats,
        buf: &mut Vec<u8>,
    ) -> io::Result<usize> {
        if buf.len() < READ_BUF_BYTES {
            buf.resize(READ_BUF_BYTES, 0);
        }
        let mut total = 0;
        self.file.seek(SeekFrom::Start(self.read_pos))?;
        while total < budget {
            let n = match self.file.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n;
            self.consume(&buf[..n], opts, out, stats);
        }
        Ok(total)
    }

    /// Splits `chunk` (the bytes at `read_pos`) into lines.
    fn consume(
        &mut self,
        mut chunk: &[u8],
        opts: &FollowOptions,
        out: &mut Vec<Line>,
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
                            let mut bytes = std::mem::take(&mut self.partial);
                            bytes.extend_from_slice(head);
                            bytes.truncate(content);
                            if !bytes.is_empty() {
                                stats.lines += 1;
                                out.push(Line {
                                    bytes,
                                    end_offset: self.read_pos,
                                    file: self.id,
                                    fragment: false,
                                });
                            }
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
    fn finish(&mut self, out: &mut Vec<Line>, stats: &mut FollowStats) {
        if !self.discarding && !self.partial.is_empty() {
            let mut bytes = std::mem::take(&mut self.partial);
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            stats.fragments += 1;
            stats.lines += 1;
            out.push(Line {
                bytes,
                end_offset: self.read_pos,
                file: self.id,
                fragment: true,
            });
        }
        self.committed = self.read_pos;
    }
}

/// True when a content prefix is long enough to tell files apart: it holds a complete first line
/// (Squid lines start with a millisecond timestamp) or 128 bytes. A few bytes of a partial first
/// line would match every file written in the same second.
fn strong(prefix: &[u8]) -> bool {
    prefix.len() >= 128 || memchr(b'\n', prefix).is_some()
}

/// [`strong`] for a saved fingerprint (only its length and hash are kept): 128 bytes, or it covers
/// the offset of a complete line.
fn strong_saved(pos: &FilePosition) -> bool {
    pos.fp_len >= 128 || (pos.offset > 0 && pos.fp_len >= pos.offset)
}

/// Hex of the SHA-256 of a fingerprint prefix.
pub fn fingerprint_hex(prefix: &[u8]) -> String {
    let digest = Sha256::digest(prefix);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Follows one configured path.
#[derive(Debug)]
pub struct Follower {
    /// The configured path; only it (and, by identity, its rotated siblings) is ever read.
    path: PathBuf,
    /// Bounds and grace period.
    opts: FollowOptions,
    /// The file the path named when last looked at.
    current: Option<OpenFile>,
    /// Rotated-away files still being read to their end, oldest first.
    draining: VecDeque<OpenFile>,
    /// Files already read to their end and closed (bounded), never to be read again.
    retired: VecDeque<FilePosition>,
    /// Lifetime counters.
    stats: FollowStats,
    /// Current condition, for health.
    state: FollowState,
    /// True when the last call stopped at its byte budget: more data is ready now.
    more: bool,
    /// Read buffer reused by every read, so a wake (one per line at low rates) neither allocates
    /// nor zeroes 64 KiB.
    read_buf: Vec<u8>,
    /// Creation time of the file that was open when the path vanished (deleted or renamed with
    /// nothing in its place yet): generations created after it and rotated away before the path
    /// is seen again are found by it when the path reappears.
    vanished_born: Option<std::time::SystemTime>,
}

impl Follower {
    /// Follows `path` with no saved position: `start` says whether existing content is read.
    pub fn new(path: impl Into<PathBuf>, opts: FollowOptions, start: StartAt) -> Follower {
        let mut f = Follower::empty(path.into(), opts);
        let now = Instant::now();
        match OpenFile::open(&f.path, 0, now) {
            Ok(mut file) => {
                if start == StartAt::End {
                    let end = end_of_last_line(&file.file).unwrap_or(0);
                    file.read_pos = end;
                    file.committed = end;
                }
                f.current = Some(file);
                f.state = FollowState::Following;
            }
            Err(e) => f.note_open_error(e),
        }
        f
    }

    /// Follows `path` resuming from `saved` (oldest first; the last one is the file the path
    /// named). A saved file is found again by identity and fingerprint at the path or among its
    /// rotated siblings (`access.log.0`, `access.log.1`, …) and read from its offset; saved files
    /// found nowhere are dropped. When the path names no saved file it is read from 0.
    pub fn resume(
        path: impl Into<PathBuf>,
        opts: FollowOptions,
        saved: &[FilePosition],
    ) -> Follower {
        let mut f = Follower::empty(path.into(), opts);
        let now = Instant::now();
        let mut candidates = vec![f.path.clone()];
        candidates.extend(rotated_siblings(&f.path));
        let mut found: Vec<(PathBuf, OpenFile)> = Vec::new();
        // Fingerprints of content that is gone from where it was (truncated while stopped).
        let mut lost_fps: Vec<(u64, String)> = Vec::new();
        // Saved files found again with other content (truncated and refilled while stopped).
        let mut refilled: Vec<FileId> = Vec::new();
        for pos in saved.iter().filter(|p| p.retired) {
            // Remembered while the file still exists beside the log.
            let exists = candidates
                .iter()
                .any(|c| std::fs::metadata(c).is_ok_and(|m| is_saved_file(&m, pos)));
            if exists {
                f.retired.push_back(pos.clone());
            }
        }
        let saved: Vec<&FilePosition> = saved.iter().filter(|p| !p.retired).collect();
        for &pos in &saved {
            let hit = candidates.iter().find_map(|c| match_position(c, pos, now));
            match hit {
                Some((p, file)) => {
                    if !found.iter().any(|(_, o)| o.id == file.id) {
                        found.push((p, file));
                    }
                }
                None => {
                    let mut past = pos.past.clone();
                    if strong_saved(pos) {
                        past.push((pos.fp_len, pos.fp.clone()));
                    }
                    lost_fps.extend(past.iter().cloned());
                    // Truncated (copytruncate) while stopped: drain the copy from the offset.
                    if let Some(copy) = find_copy_by_hash(&candidates, pos, now) {
                        tracing::info!(path = %f.path.display(), "log truncated while stopped; reading the rest from its copy");
                        if !found.iter().any(|(_, o)| o.id == copy.id) {
                            found.push((PathBuf::new(), copy));
                        }
                    }
                    // The same file with other content (refilled after a truncation): read it
                    // from 0. A file that merely reused the inode number (another creation time)
                    // is not it: taken for it, the path would count as found and generations
                    // rotated away while stopped would not be searched for.
                    let same_inode = candidates.iter().find_map(|c| {
                        let m = std::fs::metadata(c).ok()?;
                        is_saved_file(&m, pos).then_some(c)
                    });
                    match same_inode.and_then(|c| OpenFile::open(c, 0, now).ok()) {
                        Some(mut file) => {
                            file.past_fps = past;
                            refilled.push(file.id);
                            if !found.iter().any(|(_, o)| o.id == file.id) {
                                found.push((PathBuf::new(), file));
                            }
                        }
                        None => tracing::info!(
                            path = %f.path.display(),
                            ino = pos.ino,
                            "checkpointed file no longer found; its entry expires"
                        ),
                    }
                }
            }
        }
        let path_meta = std::fs::metadata(&f.path).ok();
        let path_id = path_meta.as_ref().map(FileId::of);
        for (_, file) in found {
            if Some(file.id) == path_id {
                f.current = Some(file);
            } else {
                f.draining.push_back(file);
            }
        }
        let newest = saved.iter().filter_map(|p| p.born).max().map(from_pair);
        if let Some(cur) = f.current.as_ref().filter(|c| refilled.contains(&c.id)) {
            // Truncated while stopped, maybe more than once: copies of the later cycles (content
            // written between two truncations) hold lines found nowhere else. Copies of content
            // already taken are told apart by their first bytes.
            let prefix = cur.fp.clone();
            f.find_skipped_generations(newest, path_id, &lost_fps, &prefix, now);
        }
        if f.current.is_none() {
            // Rotated while stopped: generations created after the newest saved file, other than
            // the one the path names now, are read too (from 0).
            f.find_skipped_generations(newest, path_id, &lost_fps, &[], now);
            match OpenFile::open(&f.path, 0, now) {
                Ok(mut file) => {
                    file.past_fps = lost_fps;
                    f.current = Some(file);
                    f.state = FollowState::Following;
                }
                Err(e) => f.note_open_error(e),
            }
        } else {
            f.state = FollowState::Following;
        }
        f
    }

    fn empty(path: PathBuf, opts: FollowOptions) -> Follower {
        Follower {
            path,
            opts,
            current: None,
            draining: VecDeque::new(),
            retired: VecDeque::new(),
            stats: FollowStats::default(),
            state: FollowState::Waiting,
            more: false,
            read_buf: Vec::new(),
            vanished_born: None,
        }
    }

    fn note_open_error(&mut self, e: io::Error) {
        if e.kind() == io::ErrorKind::NotFound {
            self.state = FollowState::Waiting;
        } else {
            let msg = format!("{}: {e}", self.path.display());
            if self.state != FollowState::Error(msg.clone()) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot open the log; will retry");
            }
            self.state = FollowState::Error(msg);
        }
    }

    /// The configured path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lifetime counters.
    pub fn stats(&self) -> &FollowStats {
        &self.stats
    }

    /// What the follower is doing now.
    pub fn state(&self) -> &FollowState {
        &self.state
    }

    /// True when the last read stopped at its byte budget (call again before waiting).
    pub fn has_more(&self) -> bool {
        self.more
    }

    /// Positions to checkpoint: draining files (oldest first), then the current file.
    pub fn positions(&self) -> Vec<FilePosition> {
        self.retired
            .iter()
            .cloned()
            .chain(
                self.draining
                    .iter()
                    .chain(self.current.iter())
                    .map(OpenFile::position),
            )
            .collect()
    }

    fn retire(&mut self, file: OpenFile) {
        let mut pos = file.position();
        pos.retired = true;
        if self.retired.len() >= RETIRED_KEPT {
            self.retired.pop_front();
        }
        self.retired.push_back(pos);
    }

    /// Reads every complete line available now (up to the byte budget).
    pub fn read_available(&mut self) -> Vec<Line> {
        self.read_available_at(Instant::now())
    }

    /// [`Follower::read_available`] with an explicit clock, for the drain grace period.
    pub fn read_available_at(&mut self, now: Instant) -> Vec<Line> {
        let mut out = Vec::new();
        self.more = false;
        self.check_current(now);
        let mut budget = self.opts.batch_bytes;
        // Rotated-away files first, oldest first: their lines were written before the new file's.
        let mut i = 0;
        while i < self.draining.len() {
            let file = &mut self.draining[i];
            let before = out.len();
            match file.read_lines(
                &self.opts,
                budget,
                &mut out,
                &mut self.stats,
                &mut self.read_buf,
            ) {
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
                        return out;
                    }
                    if now.saturating_duration_since(file.last_growth) >= self.opts.drain_grace {
                        file.finish(&mut out, &mut self.stats);
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
            // and the truncation handled on the next call (at once: `more`).
            let snapshot = (
                file.read_pos,
                file.committed,
                file.partial.clone(),
                file.discarding,
                self.stats.clone(),
            );
            match file.read_lines(
                &self.opts,
                budget,
                &mut out,
                &mut self.stats,
                &mut self.read_buf,
            ) {
                Ok(n) if n > 0 && file.check_truncated().unwrap_or(false) => {
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
                    self.state = FollowState::Error(format!("{}: {e}", self.path.display()));
                }
            }
        }
        out
    }

    /// Looks at what the path names now: rotation, deletion, truncation, a new file.
    fn check_current(&mut self, now: Instant) {
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
            if let Err(e) = self.check_truncation(&mut cur, true, now) {
                self.state = FollowState::Error(format!("{}: {e}", self.path.display()));
            }
            self.current = Some(cur);
        }
    }

    /// Detects a truncation of `file` (not in `self.current` meanwhile); if so, queues a copy of
    /// the old content found beside it (read from the old offset), then copies of later
    /// `copytruncate` cycles made since the last look (from 0, when `cycles`), and rewinds `file`
    /// to 0.
    fn check_truncation(
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

impl Follower {
    /// After a rotation: generations created after the file we had open and already rotated away
    /// (`access.log` → `.1` twice between two looks) are opened from 0, oldest first, so their lines
    /// are not lost. Only numbered siblings (`access.log.1`, `access.log.20250101`) qualify, and
    /// only where the file system reports creation times.
    fn find_skipped_generations(
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

/// Offset just after the last `\n` of `file` (0 if none), reading backwards in blocks.
fn end_of_last_line(file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.read_exact_at(&mut buf[..n], start)?;
        if let Some(i) = memchr::memrchr(b'\n', &buf[..n]) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Rotated siblings of `path`: files in its directory named `<name>.<suffix>`, sorted by name.
pub fn rotated_siblings(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = name.as_encoded_bytes().to_vec();
    prefix.push(b'.');
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().as_encoded_bytes().starts_with(&prefix))
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// True if `meta` is the file `pos` was saved for: same device and inode and, where both are
/// known, the same creation time (freed inode numbers are reused at once by ext4 and others).
fn is_saved_file(meta: &Metadata, pos: &FilePosition) -> bool {
    meta.dev() == pos.dev
        && meta.ino() == pos.ino
        && match (pos.born, meta.created().ok().and_then(to_pair)) {
            (Some(saved), Some(now)) => saved == now,
            _ => true,
        }
}

/// Opens `candidate` at `pos.offset` if it is the file `pos` describes (identity and fingerprint).
fn match_position(
    candidate: &Path,
    pos: &FilePosition,
    now: Instant,
) -> Option<(PathBuf, OpenFile)> {
    let meta = std::fs::metadata(candidate).ok()?;
    if !is_saved_file(&meta, pos) {
        return None;
    }
    let mut file = OpenFile::open(candidate, 0, now).ok()?;
    let len = meta.len();
    let prefix = file.read_prefix(pos.fp_len).ok()?;
    if prefix.len() as u64 != pos.fp_len || fingerprint_hex(&prefix) != pos.fp {
        // Same inode number, different content: a new file that reused the inode.
        return None;
    }
    // A stored offset past the end means the file was truncated meanwhile: read it from 0.
    let offset = if pos.offset > len { 0 } else { pos.offset };
    file.read_pos = offset;
    file.committed = offset;
    file.past_fps = pos.past.clone();
    Some((candidate.to_owned(), file))
}

/// After a truncation while stopped: a sibling whose first `fp_len` bytes hash to the saved
/// fingerprint and which reaches the saved offset, opened there.
fn find_copy_by_hash(candidates: &[PathBuf], pos: &FilePosition, now: Instant) -> Option<OpenFile> {
    if !strong_saved(pos) {
        return None;
    }
    for c in candidates {
        let Ok(meta) = std::fs::metadata(c) else {
            continue;
        };
        if meta.len() < pos.offset || meta.len() < pos.fp_len {
            continue;
        }
        let Ok(mut file) = OpenFile::open(c, 0, now) else {
            continue;
        };
        let Ok(prefix) = file.read_prefix(pos.fp_len) else {
            continue;
        };
        if fingerprint_hex(&prefix) == pos.fp {
            file.read_pos = pos.offset;
            file.committed = pos.offset;
            return Some(file);
        }
    }
    None
}

/// After a truncation: a sibling holding the old content (a `copytruncate` copy), opened at `offset`.
fn find_copy(
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
