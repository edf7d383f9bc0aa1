//! The periodic `fsync` of journal and checkpoint, on a thread of its own.
//!
//! The tailer replaces the checkpoint (write + rename, which survives SIGKILL) before it publishes a
//! batch; the `fsync` only guards against power loss and may lag by about a second (CONTRACT.md
//! §3). Done inline it stalled the tailer for as long as the disk took: tens of milliseconds on a
//! busy disk, which every line written meanwhile waited for (`examples/e2e_load`, BENCHMARKS.md).
//! Here the tailer hands over duplicated file handles and carries on; at most one sync runs at a
//! time, and a request made while one runs is refused (the tailer asks again on a later batch).
use crate::store::journal::Journal;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What one sync makes durable.
#[derive(Debug)]
pub struct SyncJob {
    /// Journal segments written since the last sync (duplicated handles), oldest first.
    pub journal: Vec<File>,
    /// The checkpoint file to `fdatasync`, then its directory to `fsync` (the rename), if the
    /// checkpoint was replaced since the last sync.
    pub checkpoint: Option<(PathBuf, PathBuf)>,
}

/// How often written journal segments and checkpoints are made durable (`fsync`) in the
/// background, by every source that keeps a journal.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The background syncing thread.
#[derive(Debug)]
pub struct Syncer {
    /// Requests; dropped to stop the thread.
    tx: Option<mpsc::Sender<SyncJob>>,
    /// Set while a job runs, so the tailer never queues a second one behind a slow disk.
    busy: Arc<AtomicBool>,
    /// The thread, joined at shutdown so no sync is left running.
    thread: Option<JoinHandle<()>>,
}

impl Default for Syncer {
    fn default() -> Self {
        Syncer::new()
    }
}

impl Syncer {
    /// Starts the thread. If it cannot be started, syncs run inline (see [`Syncer::submit`]).
    pub fn new() -> Syncer {
        let (tx, rx) = mpsc::channel::<SyncJob>();
        let busy = Arc::new(AtomicBool::new(false));
        let flag = busy.clone();
        let thread = std::thread::Builder::new()
            .name("proxytail-sync".into())
            .spawn(move || {
                for job in rx {
                    run(job);
                    flag.store(false, Ordering::Release);
                }
            });
        match thread {
            Ok(t) => Syncer {
                tx: Some(tx),
                busy,
                thread: Some(t),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the sync thread; syncing inline");
                Syncer {
                    tx: None,
                    busy,
                    thread: None,
                }
            }
        }
    }

    /// True while a sync is running: the caller should keep what it would hand over for later.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Runs `job` in the background (inline when there is no thread).
    pub fn submit(&self, job: SyncJob) {
        let Some(tx) = &self.tx else {
            return run(job);
        };
        self.busy.store(true, Ordering::Release);
        if let Err(mpsc::SendError(job)) = tx.send(job) {
            self.busy.store(false, Ordering::Release);
            run(job);
        }
    }

    /// Hands the journal segments written since the last sync, and the replaced checkpoint file
    /// `checkpoint` (then its directory, for the rename), to the thread. Retention by age is applied
    /// first: it also applies when no segment fills up (a quiet log). One place for the file
    /// tailer and the fleet central.
    pub fn submit_written(&self, journal: &mut Journal, checkpoint: Option<PathBuf>) {
        journal.enforce_retention();
        let journal = journal.unsynced_handles().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "journal sync failed");
            Vec::new()
        });
        let checkpoint = checkpoint.map(|file| {
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            (file, dir)
        });
        if journal.is_empty() && checkpoint.is_none() {
            return;
        }
        self.submit(SyncJob {
            journal,
            checkpoint,
        });
    }

    /// Waits for a sync in progress and stops the thread.
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run(job: SyncJob) {
    for f in &job.journal {
        if let Err(e) = f.sync_data() {
            tracing::warn!(error = %e, "journal sync failed");
        }
    }
    if let Some((file, dir)) = job.checkpoint {
        let synced = File::open(&file)
            .and_then(|f| f.sync_data())
            .and_then(|()| File::open(&dir))
            .and_then(|d| d.sync_all());
        if let Err(e) = synced {
            tracing::warn!(path = %file.display(), error = %e, "checkpoint sync failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_submitted_job_runs_and_the_syncer_is_idle_after_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"{}").unwrap();
        let mut s = Syncer::new();
        s.submit(SyncJob {
            journal: vec![f.try_clone().unwrap()],
            checkpoint: Some((path, dir.path().to_owned())),
        });
        s.finish();
        assert!(!s.busy());
        // A job after finish runs inline.
        s.submit(SyncJob {
            journal: vec![f],
            checkpoint: None,
        });
        assert!(!s.busy());
    }
}
