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
//! The parts, one concern each: [`lines`] (an open file read into complete lines, truncation of the
//! file itself detected by size and first bytes), [`rotation`] (the state machine of the current and
//! draining files), [`resume`] (finding checkpointed files again at start), [`copytruncate`] (the
//! copy of truncated content beside the log), [`generations`] (files rotated away unseen between two
//! looks). This file holds the types they share and the `Follower`'s small public surface.
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
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod copytruncate;
mod generations;
mod lines;
mod resume;
mod rotation;

use lines::OpenFile;
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

/// The lines of one read, in one reused buffer: no allocation per line (the tailer keeps one
/// `Lines` per source for its lifetime).
#[derive(Debug, Default)]
pub struct Lines {
    /// Every line's bytes, one after the other.
    text: Vec<u8>,
    /// Where each line ends in `text` (it starts where the previous one ends), and its origin.
    lines: Vec<LineAt>,
}

#[derive(Debug, Clone, Copy)]
struct LineAt {
    end: usize,
    end_offset: u64,
    file: FileId,
    fragment: bool,
}

/// One line of a [`Lines`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRef<'a> {
    /// The line's bytes without `\n`, without a trailing `\r`, without leading NUL bytes.
    pub bytes: &'a [u8],
    /// The same bytes as text when the whole read they came in is valid UTF-8 (checked once
    /// per read, [`Lines::iter`]); `None` says nothing about the line itself.
    pub text: Option<&'a str>,
    /// Offset just after the line's `\n` in the file it came from.
    pub end_offset: u64,
    /// The file it came from.
    pub file: FileId,
    /// True for the unterminated tail of a rotated-away file, emitted after the grace period.
    pub fragment: bool,
}

impl Lines {
    /// Number of lines held.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when no line is held.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes of all lines together.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The lines, in order. Their text is checked for UTF-8 here, once for all of them: one pass
    /// over a whole read costs far less than one per line (a short line is mostly the check's
    /// set-up and its unaligned ends, ~300 instructions per line).
    pub fn iter(&self) -> impl Iterator<Item = LineRef<'_>> {
        let all = std::str::from_utf8(&self.text).ok();
        let mut start = 0;
        self.lines.iter().map(move |l| {
            let bytes = &self.text[start..l.end];
            // Lines end at a `\n` or `\r` (ASCII), so the cut is on a character boundary.
            let text = all.and_then(|t| t.get(start..l.end));
            start = l.end;
            LineRef {
                bytes,
                text,
                end_offset: l.end_offset,
                file: l.file,
                fragment: l.fragment,
            }
        })
    }

    /// Drops every line, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.text.clear();
        self.lines.clear();
    }

    /// Keeps the first `n` lines.
    fn truncate(&mut self, n: usize) {
        self.lines.truncate(n);
        self.text.truncate(self.lines.last().map_or(0, |l| l.end));
    }

    /// Appends `parts` concatenated, cut to `len` bytes, as one line.
    fn push(
        &mut self,
        parts: [&[u8]; 2],
        len: usize,
        end_offset: u64,
        file: FileId,
        fragment: bool,
    ) {
        let start = self.text.len();
        self.text.extend_from_slice(parts[0]);
        self.text.extend_from_slice(parts[1]);
        self.text.truncate(start + len);
        self.lines.push(LineAt {
            end: self.text.len(),
            end_offset,
            file,
            fragment,
        });
    }
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

    /// [`Follower::read_available`] into `out` (cleared first): the tailer's path, which allocates
    /// nothing per line.
    pub fn read_into(&mut self, out: &mut Lines) {
        out.clear();
        self.read_into_at(Instant::now(), out);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_their_text_only_when_the_whole_read_is_utf8() {
        let id = FileId { dev: 1, ino: 2 };
        let mut lines = Lines::default();
        // The `\r` is cut off by the length, as `consume` does.
        lines.push([b"caf\xc3\xa9 ", b"ok\r"], 8, 10, id, false);
        lines.push([b"plain", b""], 5, 16, id, false);
        let got: Vec<_> = lines.iter().map(|l| (l.bytes, l.text)).collect();
        assert_eq!(
            got,
            [
                (&b"caf\xc3\xa9 ok"[..], Some("café ok")),
                (&b"plain"[..], Some("plain"))
            ]
        );
        // One line that is not UTF-8: no line has its text, each is checked by the parser.
        lines.push([b"bad \xff", b""], 5, 22, id, false);
        assert!(lines.iter().all(|l| l.text.is_none()));
        assert_eq!(lines.iter().nth(1).map(|l| l.bytes), Some(&b"plain"[..]));
    }
}
