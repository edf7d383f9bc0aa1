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
use std::io::{self, Write};
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
        Ok(StateDir {
            dir: dir.to_owned(),
            _lock: lock,
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
    pub fn save(&self, cp: &Checkpoint, sync: bool) -> io::Result<()> {
        let bytes = serde_json::to_vec(cp).map_err(io::Error::other)?;
        self.save_file(CHECKPOINT_FILE, bytes, sync)
    }

    /// Replaces `name` in the state directory with JSON `bytes` the way [`StateDir::save`] does
    /// (the fleet central's checkpoint uses it too).
    pub fn save_file(&self, name: &str, mut bytes: Vec<u8>, sync: bool) -> io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let dst = self.dir.join(name);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&tmp)?;
        let old_len = usize::try_from(f.metadata()?.len()).unwrap_or(usize::MAX);
        if old_len > bytes.len() && old_len <= bytes.len() + PAD_LIMIT {
            bytes.resize(old_len, b' ');
        } else if old_len > bytes.len() {
            // Far larger than needed (an old history of many files): start small again.
            f.set_len(0)?;
        }
        f.write_all(&bytes)?;
        if sync {
            f.sync_data()?;
        }
        drop(f);
        exchange_or_rename(&tmp, &dst)?;
        if sync {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// How much longer than its content the checkpoint file may stay (space padding) before it is
/// truncated.
const PAD_LIMIT: usize = 64 * 1024;

/// Swaps `tmp` and `dst` atomically; a plain rename when `dst` does not exist yet or the file
/// system cannot exchange.
fn exchange_or_rename(tmp: &Path, dst: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, tmp, CWD, dst, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        Err(e) if [Errno::NOENT, Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP].contains(&e) => {
            std::fs::rename(tmp, dst)
        }
        Err(e) => Err(e.into()),
    }
}
