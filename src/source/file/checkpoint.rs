//! The state directory: its exclusive lock and the checkpoint file.
//!
//! The checkpoint records, for every source, where each of its open files was left (identity,
//! fingerprint, offset after the last line taken) and the next id to assign. It is replaced
//! atomically (rewrite a temp file, swap it with `checkpoint.json`) *before* the batch it covers is
//! published, so after a SIGKILL at any moment the daemon never gives an id to a different line.
//! `fsync` (file and directory) happens at most about once a second and at shutdown: a rename
//! survives a process crash without it; only a power cut can lose the last second.
//!
//! Policy for a missing or unreadable checkpoint: a missing one is a fresh start; a corrupt one
//! (empty, NULs, bad JSON, unknown version) is logged as an error and treated as absent, except
//! that the next id continues after the journal's last record (ids are never reused) and existing
//! files are read from their end (nothing is sent twice). A half-written temp file is ignored.
use crate::source::file::follow::FilePosition;
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// File name of the checkpoint inside the state directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
/// File name of the lock inside the state directory.
pub const LOCK_FILE: &str = "lock";
/// Version written into the checkpoint; other versions are refused as corrupt.
const VERSION: u32 = 1;

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory could not be created or a file in it opened.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Another process holds the lock.
    #[error("{path} is locked: another proxytail instance uses this state directory")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

/// Where one source was left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCheckpoint {
    /// The configured path (sources are matched by it on start).
    pub path: PathBuf,
    /// Open files, oldest (rotated away, still draining) first, the file the path names last.
    pub files: Vec<FilePosition>,
}

/// The whole checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// The id the next parsed line gets.
    pub next_id: u64,
    /// Per source positions.
    pub sources: Vec<SourceCheckpoint>,
}

impl Checkpoint {
    /// A checkpoint with `next_id` and `sources`.
    pub fn new(next_id: u64, sources: Vec<SourceCheckpoint>) -> Checkpoint {
        Checkpoint {
            version: VERSION,
            next_id,
            sources,
        }
    }
}

/// What was found in the state directory at start.
#[derive(Debug)]
pub enum Loaded {
    /// No checkpoint: a fresh state.
    Missing,
    /// A valid checkpoint.
    Found(Checkpoint),
    /// A checkpoint that could not be used, and why.
    Corrupt(String),
}

/// The locked state directory.
#[derive(Debug)]
pub struct StateDir {
    /// The directory.
    dir: PathBuf,
    /// Holds the exclusive `flock` for as long as the daemon runs.
    _lock: File,
    /// The directory itself, opened once: saves name their files relative to it (no walk of the
    /// whole path twice per save) and `fsync` it without opening it each time.
    dir_fd: File,
    /// The two files of the last name saved, kept open from one save to the next: a save is then
    /// a write and a swap, without opening, inspecting and closing the temp file each time (on a
    /// quiet log a checkpoint is saved for every line).
    kept: Option<Kept>,
}

/// The two files [`StateDir::save_file`] swaps, as last left.
#[derive(Debug)]
struct Kept {
    /// The name saved (`checkpoint.json`); its temp file is `<name>.tmp`.
    name: String,
    /// The file named `<name>.tmp` now: the next save writes into it. `None` after a plain
    /// rename (nothing is named so then) or before the first exchange.
    tmp: Option<File>,
    /// The file named `<name>` now: the exchange makes it the next temp file.
    dst: Option<File>,
}

impl StateDir {
    /// Creates `dir` if needed and locks it; fails if another instance holds the lock.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StateError::Io {
                path: lock_path.clone(),
                source,
            })?;
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(StateError::Locked { path: lock_path })
            }
            Err(e) => {
                return Err(StateError::Io {
                    path: lock_path,
                    source: e.into(),
                })
            }
        }
        let dir_fd = File::open(dir).map_err(|source| StateError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(StateDir {
            dir: dir.to_owned(),
            _lock: lock,
            dir_fd,
            kept: None,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads the checkpoint.
    pub fn load(&self) -> Loaded {
        let path = self.dir.join(CHECKPOINT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Missing,
            Err(e) => return Loaded::Corrupt(format!("{}: {e}", path.display())),
        };
        match serde_json::from_slice::<Checkpoint>(&bytes) {
            Ok(c) if c.version == VERSION && c.next_id >= 1 => Loaded::Found(c),
            Ok(c) => Loaded::Corrupt(format!(
                "{}: unsupported version {} or next id {}",
                path.display(),
                c.version,
                c.next_id
            )),
            Err(e) => Loaded::Corrupt(format!("{}: {e}", path.display())),
        }
    }

    /// Replaces the checkpoint atomically; with `sync`, the data and the rename are made durable.
    ///
    /// The temp file is rewritten in place (never truncated: a shorter checkpoint is padded with
    /// spaces, which JSON ignores) and then swapped with `checkpoint.json` (`RENAME_EXCHANGE`), so
    /// no inode is created or freed per save. Creating a fresh temp file and renaming it over the
    /// old checkpoint made ext4 free (and discard) the old inode's block and flush the new one on
    /// every batch: a third of the daemon's CPU at 1,000 lines/s and write-to-receipt tails of tens
    /// of milliseconds (BENCHMARKS.md). Where the exchange is unsupported, a plain rename.
    pub fn save(&mut self, cp: &Checkpoint, sync: bool) -> io::Result<()> {
        let bytes = serde_json::to_vec(cp).map_err(io::Error::other)?;
        self.save_file(CHECKPOINT_FILE, bytes, sync)
    }

    /// Replaces `name` in the state directory with JSON `bytes` the way [`StateDir::save`] does
    /// (the fleet central's checkpoint uses it too).
    ///
    /// The two files stay open between saves: after an exchange the old checkpoint's handle is
    /// the next temp file. Whatever moved them meanwhile, a handle is used only while it still
    /// has a name (a link count above 0), and a save that fails with kept handles is done once
    /// more with both files opened by name, as if nothing had been kept.
    pub fn save_file(&mut self, name: &str, mut bytes: Vec<u8>, sync: bool) -> io::Result<()> {
        let kept = match self.kept.take() {
            Some(k) if k.name == name => k,
            _ => Kept {
                name: name.to_owned(),
                tmp: None,
                dst: None,
            },
        };
        let reused = kept.tmp.is_some();
        match self.replace(kept, &mut bytes, sync) {
            Ok(kept) => {
                self.kept = Some(kept);
                Ok(())
            }
            Err(_) if reused => {
                let fresh = Kept {
                    name: name.to_owned(),
                    tmp: None,
                    dst: None,
                };
                self.kept = Some(self.replace(fresh, &mut bytes, sync)?);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// One save of [`StateDir::save_file`]: writes `bytes` into the temp file (the kept one, or
    /// opened by name) and swaps it into place. Returns the files as they are named afterwards.
    /// `bytes` may be left padded with spaces (still the same JSON, for a second try).
    fn replace(&self, kept: Kept, bytes: &mut Vec<u8>, sync: bool) -> io::Result<Kept> {
        use rustix::fs::{openat, renameat, renameat_with, Mode, OFlags, RenameFlags};
        use rustix::io::Errno;
        use std::os::unix::fs::{FileExt, MetadataExt};
        let tmp_name = format!("{}.tmp", kept.name);
        let linked = |f: File| -> io::Result<Option<(File, u64)>> {
            let meta = f.metadata()?;
            Ok((meta.nlink() > 0).then_some((f, meta.len())))
        };
        let (f, old_len) = match kept.tmp.map(linked).transpose()?.flatten() {
            Some(found) => found,
            None => {
                let fd = openat(
                    &self.dir_fd,
                    tmp_name.as_str(),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )?;
                let f = File::from(fd);
                let len = f.metadata()?.len();
                (f, len)
            }
        };
        let old_len = usize::try_from(old_len).unwrap_or(usize::MAX);
        if old_len > bytes.len() && old_len <= bytes.len() + PAD_LIMIT {
            bytes.resize(old_len, b' ');
        } else if old_len > bytes.len() {
            // Far larger than needed (an old history of many files): start small again.
            f.set_len(0)?;
        }
        f.write_all_at(bytes, 0)?;
        if sync {
            f.sync_data()?;
        }
        let dir = &self.dir_fd;
        let exchanged = match renameat_with(
            dir,
            tmp_name.as_str(),
            dir,
            kept.name.as_str(),
            RenameFlags::EXCHANGE,
        ) {
            Ok(()) => true,
            Err(e) if [Errno::NOENT, Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP].contains(&e) => {
                renameat(dir, tmp_name.as_str(), dir, kept.name.as_str())?;
                false
            }
            Err(e) => return Err(e.into()),
        };
        if sync {
            self.dir_fd.sync_all()?;
        }
        Ok(Kept {
            // After an exchange the old checkpoint is named `<name>.tmp`; after a plain rename
            // nothing is, and the next save creates it.
            tmp: if exchanged { kept.dst } else { None },
            dst: Some(f),
            name: kept.name,
        })
    }
}

/// How much longer than its content the checkpoint file may stay (space padding) before it is
/// truncated.
const PAD_LIMIT: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint whose JSON length varies with `n` (longer and shorter than the one before).
    fn checkpoint(n: u64) -> Checkpoint {
        let files = (0..(n * 7) % 5)
            .map(|i| FilePosition {
                dev: 1,
                ino: 100 + i,
                fp_len: 128,
                fp: format!("{n:064x}"),
                offset: n * 1000 + i,
                past: Vec::new(),
                born: None,
                retired: false,
            })
            .collect();
        Checkpoint::new(
            n + 1,
            vec![SourceCheckpoint {
                path: PathBuf::from("/var/log/squid/access.log"),
                files,
            }],
        )
    }

    fn loaded(state: &StateDir) -> Checkpoint {
        match state.load() {
            Loaded::Found(c) => c,
            other => panic!("checkpoint not loadable: {other:?}"),
        }
    }

    fn parsed(path: &Path) -> Checkpoint {
        let bytes = std::fs::read(path).expect("readable");
        serde_json::from_slice(&bytes).expect("whole JSON")
    }

    #[test]
    fn many_saves_leave_the_newest_whole_and_never_write_the_live_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = StateDir::open(dir.path()).expect("open");
        let live = dir.path().join(CHECKPOINT_FILE);
        let tmp = dir.path().join(format!("{CHECKPOINT_FILE}.tmp"));
        for n in 1..200 {
            state.save(&checkpoint(n), n % 50 == 0).expect("save");
            assert_eq!(loaded(&state), checkpoint(n));
            // The previous checkpoint is the temp file now, whole: a save writes only into the
            // file that is not named `checkpoint.json`, so a kill mid-write leaves that one as is.
            if n > 1 {
                assert_eq!(parsed(&tmp), checkpoint(n - 1));
            }
        }
        assert_eq!(parsed(&live), checkpoint(199));
        // A new process (the lock released first) sees the newest.
        drop(state);
        let state = StateDir::open(dir.path()).expect("reopen");
        assert_eq!(loaded(&state), checkpoint(199));
    }

    #[test]
    fn saves_go_on_whatever_replaced_or_removed_the_files_between_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = StateDir::open(dir.path()).expect("open");
        let live = dir.path().join(CHECKPOINT_FILE);
        let tmp = dir.path().join(format!("{CHECKPOINT_FILE}.tmp"));
        state.save(&checkpoint(1), false).expect("save");
        state.save(&checkpoint(2), false).expect("save");
        // The checkpoint removed: the exchange finds no target and falls back to a plain rename.
        std::fs::remove_file(&live).expect("remove");
        state.save(&checkpoint(3), false).expect("save");
        assert_eq!(loaded(&state), checkpoint(3));
        assert!(!tmp.exists(), "a plain rename leaves no temp file");
        state.save(&checkpoint(4), false).expect("save");
        state.save(&checkpoint(5), false).expect("save");
        assert_eq!(loaded(&state), checkpoint(5));
        // The temp file removed under a kept handle: done again with the files opened by name.
        std::fs::remove_file(&tmp).expect("remove");
        state.save(&checkpoint(6), false).expect("save");
        assert_eq!(loaded(&state), checkpoint(6));
        // The checkpoint replaced by another file: its old handle (the next temp file) is unlinked
        // and never written; the replacement is what gets overwritten and swapped.
        let other = dir.path().join("other");
        std::fs::write(&other, b"{}").expect("write");
        std::fs::rename(&other, &live).expect("rename");
        for n in 7..10 {
            state.save(&checkpoint(n), false).expect("save");
            assert_eq!(loaded(&state), checkpoint(n));
        }
        // A temp file far longer than the content is cut back, not padded.
        std::fs::write(&tmp, vec![b' '; 2 * PAD_LIMIT]).expect("write");
        state.save(&checkpoint(10), false).expect("save");
        assert_eq!(loaded(&state), checkpoint(10));
        assert!(std::fs::metadata(&live).expect("stat").len() < PAD_LIMIT as u64);
    }
}
