//! The file-system watcher: the only module that names `notify`. It watches the *parent directory*
//! of each log (non-recursively, so renames, creations and deletions of the log are seen) and turns
//! every event into a "something changed" wake on a channel of capacity 1 (`try_send`: bursts
//! coalesce into one wake). It never says *what* changed: the tailer looks for itself.
//!
//! Failure modes: a directory that does not exist yet is replaced by its nearest existing ancestor
//! and re-targeted on [`Watch::refresh`] (also after the directory was removed and recreated); an
//! overflow/rescan event is just a wake; when inotify cannot be set up at all (no inotify, watch
//! limit reached) the watcher degrades to polling with a warning, as it does when polling is
//! configured. In polling mode no wake is ever sent and the tailer's poll interval drives reads.
//!
//! The one thing read from an event is whether it can concern a watched directory itself: a
//! wake from an event that only says a file's content changed or that it was opened or closed
//! does not re-check the directories ([`Watch::refresh_after_wake`]); any other event, an
//! overflow or an error does, and so does every safety tick.
use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the tailer re-checks the files in polling mode.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the tailer re-checks the files when events drive it (a safety net for lost events).
pub const SAFETY_INTERVAL: Duration = Duration::from_secs(1);

/// Why a watch could not be established.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// notify refused to watch a directory.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// notify's error.
        source: notify::Error,
    },
    /// The inotify instance could not be created.
    #[error("cannot start the file watcher: {0}")]
    Init(notify::Error),
}

/// One directory we want to watch and what is actually watched for it.
#[derive(Debug)]
struct Target {
    /// The log's parent directory.
    want: PathBuf,
    /// The directory watched now (`want`, or its nearest existing ancestor while it is missing),
    /// with its inode, so a removed-and-recreated directory is noticed and watched again.
    watched: Option<(PathBuf, u64)>,
}

/// Watches the parent directories of the logs and sends wakes.
pub struct Watch {
    /// The inotify watcher, `None` in polling mode (configured, or fallen back to).
    inner: Option<RecommendedWatcher>,
    /// The directories to keep watched.
    targets: Vec<Target>,
    /// Kept so the wake channel never closes in polling mode (the receiver then just never fires).
    _tx: mpsc::Sender<()>,
    /// Set (before its wake is sent) by an event that may concern a directory: created, removed,
    /// renamed, an overflow, an error. Wakes coalesce, this flag does too, and it stays set until
    /// a refresh has looked: on a log's own writes (one event per line) the directories are not
    /// looked at.
    retarget: Arc<AtomicBool>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("polling", &self.inner.is_none())
            .field("targets", &self.targets)
            .finish()
    }
}

impl Watch {
    /// Watches the parent directories of `logs` (or nothing when `poll`). Returns once every
    /// watch is established, with the receiver of wakes. Falls back to polling, with a warning,
    /// when inotify is unavailable.
    pub fn new(logs: &[PathBuf], poll: bool) -> (Watch, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(1);
        let mut dirs: Vec<PathBuf> = Vec::new();
        for log in logs {
            let dir = parent_dir(log);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        let targets = dirs
            .into_iter()
            .map(|want| Target {
                want,
                watched: None,
            })
            .collect();
        let mut w = Watch {
            inner: None,
            targets,
            _tx: tx.clone(),
            retarget: Arc::new(AtomicBool::new(false)),
        };
        if poll {
            tracing::info!("polling the logs every {POLL_INTERVAL:?} (inotify not used)");
            return (w, rx);
        }
        match Watch::start(tx, w.retarget.clone()) {
            Ok(inner) => {
                w.inner = Some(inner);
                if let Err(e) = w.try_refresh() {
                    tracing::warn!(error = %e, "inotify watch failed; falling back to polling every {POLL_INTERVAL:?}");
                    w.inner = None;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; falling back to polling every {POLL_INTERVAL:?}");
            }
        }
        (w, rx)
    }

    fn start(
        tx: mpsc::Sender<()>,
        retarget: Arc<AtomicBool>,
    ) -> Result<RecommendedWatcher, WatchError> {
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Any event, a rescan request (queue overflow, possibly without paths) or an error
            // is a reason to look; a full channel means a wake is already pending.
            if let Err(e) = &res {
                tracing::debug!(error = %e, "watcher error; re-checking the logs");
            }
            // Content written, a file opened or closed: nothing a directory watch depends on.
            let content_only = res.as_ref().is_ok_and(|ev| {
                !ev.need_rescan()
                    && matches!(
                        ev.kind,
                        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Access(_)
                    )
            });
            if !content_only {
                retarget.store(true, Ordering::Release);
            }
            let _ = tx.try_send(());
        })
        .map_err(WatchError::Init)
    }

    /// True when no inotify watch is active and the tailer must poll.
    pub fn polling(&self) -> bool {
        self.inner.is_none()
    }

    /// How often the tailer should re-check without a wake.
    pub fn interval(&self) -> Duration {
        if self.polling() {
            POLL_INTERVAL
        } else {
            SAFETY_INTERVAL
        }
    }

    /// Re-targets watches whose directory appeared, disappeared or was recreated. Cheap (a `stat`
    /// per directory); the tailer calls it on every tick, and after a wake through
    /// [`Watch::refresh_after_wake`]. Returns true when a watch moved
    /// (the caller should look at the files at once: events may have been missed meanwhile).
    pub fn refresh(&mut self) -> bool {
        match self.try_refresh() {
            Ok(moved) => moved,
            Err(e) => {
                tracing::warn!(error = %e, "re-establishing a watch failed; falling back to polling every {POLL_INTERVAL:?}");
                self.inner = None;
                true
            }
        }
    }

    /// [`Watch::refresh`] after a wake: only when an event since the last refresh may concern a
    /// directory (a removed or renamed directory's watch reports it; a wake from a write into a
    /// log does not). Returns false otherwise.
    pub fn refresh_after_wake(&mut self) -> bool {
        if !self.retarget.load(Ordering::Acquire) {
            return false;
        }
        self.refresh()
    }

    fn try_refresh(&mut self) -> Result<bool, WatchError> {
        // Cleared before looking: an event after this sets it again, and its wake follows it.
        self.retarget.store(false, Ordering::Release);
        let Some(inner) = &mut self.inner else {
            return Ok(false);
        };
        let mut moved = false;
        for t in &mut self.targets {
            let Some((path, ino)) = nearest_existing(&t.want) else {
                continue;
            };
            if t.watched.as_ref() == Some(&(path.clone(), ino)) {
                continue;
            }
            if let Some((old, _)) = t.watched.take() {
                // The old directory may be gone already; nothing to undo then.
                let _ = inner.unwatch(&old);
            }
            inner
                .watch(&path, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch {
                    path: path.clone(),
                    source,
                })?;
            if path != t.want {
                tracing::info!(want = %t.want.display(), watching = %path.display(), "log directory missing; watching its nearest ancestor");
            }
            t.watched = Some((path, ino));
            moved = true;
        }
        Ok(moved)
    }
}

/// The directory holding `log` (`.` for a bare file name).
fn parent_dir(log: &Path) -> PathBuf {
    match log.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `dir` or its nearest existing ancestor, with its inode.
fn nearest_existing(dir: &Path) -> Option<(PathBuf, u64)> {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if let Ok(m) = std::fs::metadata(d) {
            if m.is_dir() {
                return Some((d.to_owned(), m.ino()));
            }
        }
        cur = d.parent();
    }
    None
}
