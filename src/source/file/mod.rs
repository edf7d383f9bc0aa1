//! The tailer: follows each configured log, parses complete lines, assigns ids, journals and
//! checkpoints each batch, then publishes it to the hub.
//!
//! Per batch the order is fixed: read lines (`follow`) → parse → ids → append to the journal →
//! replace the checkpoint → `hub.publish`. A batch is never published before the checkpoint that
//! covers it is on disk (renamed into place), so an id never names two different lines whatever
//! moment the process is killed. Reads are plain blocking `std::io` on local files, in bounded
//! chunks (about 1 MiB per source per step), yielding to the runtime between chunks.
//!
//! Start-up, in order: lock the state directory (a second instance fails here, touching nothing);
//! load the checkpoint; open the journal, cutting records the checkpoint does not cover, and
//! preload the hub's history from it; place every source:
//! - in the checkpoint: resume each of its files by identity + fingerprint (a file rotated while
//!   stopped is found beside the log and drained first; one truncated while stopped is read from 0,
//!   its copy drained from the old offset);
//! - not in it (fresh state): from the start with `from_start`, else from the end;
//! - checkpoint corrupt (empty, NULs, bad JSON): `tracing::error!`, ids continue after the
//!   journal's last record, files are read from their end (nothing sent twice; lines written while
//!   the daemon was down are skipped). Never a crash loop.
//!
//! Sources: every `--access-log` with `--format`, plus each log a `--squid-conf` writes, with the
//! format its `access_log` line names. They share one id sequence; with more than one source each
//! entry carries an extra `source` field (the path).
pub mod checkpoint;
mod encode;
pub mod follow;
pub mod syncer;
pub mod watch;

use crate::config::Config;
use crate::error::StartupError;
use crate::hub::Hub;
use crate::notify::Watchdog;
use crate::privacy::Privacy;
use crate::store::journal::{self, Journal};
use checkpoint::{Checkpoint, Loaded, SourceCheckpoint, StateDir};
use encode::{Batch, Encoder};
use follow::{FollowOptions, FollowState, Follower, Lines, StartAt};
use parsers::{Format, ParseError};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use syncer::{Syncer, SYNC_EVERY};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use watch::Watch;

/// At most one parse-error warning per source per this period (the rest are counted).
const WARN_EVERY: Duration = Duration::from_secs(1);

/// Health of one source.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceHealth {
    /// The configured path.
    pub path: String,
    /// `following`, `waiting` or `error`.
    pub state: &'static str,
    /// The error, when `state` is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Complete lines read.
    pub lines: u64,
    /// Lines that did not parse (they took no id).
    pub parse_errors: u64,
    /// Lines over the length bound, skipped.
    pub skipped_long_lines: u64,
    /// Truncations detected.
    pub truncations: u64,
    /// Truncations with no copy of the old content found (lines may be lost in that window).
    pub unrecovered_truncations: u64,
    /// Rotations followed.
    pub rotations: u64,
    /// Unterminated fragments emitted at the end of rotated-away files.
    pub fragments: u64,
}

/// Per-source counters and state for `/api/health`.
#[derive(Debug, Default)]
pub struct TailHealth {
    /// Updated by the tailer after every step, read by the health endpoint.
    inner: Mutex<HealthInner>,
    /// The fleet side (an edge's publisher or a central's streams), shown under `fleet`.
    fleet: std::sync::OnceLock<Arc<crate::source::nats::Status>>,
}

/// What [`TailHealth`] holds.
#[derive(Debug, Default, Clone)]
struct HealthInner {
    /// One per configured source, in order.
    sources: Vec<SourceHealth>,
    /// The id the next line gets.
    next_id: u64,
    /// True when no inotify watch is active.
    polling: bool,
    /// Checkpoint or journal writes that failed (publishing waits for them to succeed).
    state_write_errors: u64,
    /// Entries made since start (for `/metrics`).
    entries: u64,
    /// Per source, `(dev, ino, offset)` of each file in the last checkpoint written: with the
    /// file's size, the lag `/metrics` reports.
    positions: Vec<Vec<(u64, u64, u64)>>,
}

impl TailHealth {
    /// A JSON snapshot: per source its state, lines taken, parse errors and skipped long lines.
    pub fn snapshot(&self) -> serde_json::Value {
        let h = self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut v = serde_json::json!({
            "sources": h.sources,
            "next_id": h.next_id,
            "polling": h.polling,
            "state_write_errors": h.state_write_errors,
        });
        if let (Some(fleet), Some(obj)) = (self.fleet(), v.as_object_mut()) {
            obj.insert("fleet".into(), serde_json::json!(fleet));
        }
        v
    }

    /// A source other than files (a fleet central) made `made` entries; the next id is `next_id`.
    pub fn entries_made(&self, made: u64, next_id: u64) {
        let mut h = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        h.entries += made;
        h.next_id = next_id;
    }

    /// Shows the fleet side's status with the sources' (set once at start-up).
    pub fn attach_fleet(&self, status: Arc<crate::source::nats::Status>) {
        let _ = self.fleet.set(status);
    }

    /// The fleet side's figures, when this daemon is an edge or a central.
    pub fn fleet(&self) -> Option<crate::source::nats::Snapshot> {
        self.fleet.get().map(|s| s.snapshot())
    }

    /// The counters and positions `/metrics` exposes.
    pub fn metrics_snapshot(&self) -> crate::metrics::TailSnapshot {
        let h = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        crate::metrics::TailSnapshot {
            entries: h.entries,
            state_write_errors: h.state_write_errors,
            sources: h
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| crate::metrics::SourceSnapshot {
                    path: PathBuf::from(&s.path),
                    lines: s.lines,
                    parse_errors: s.parse_errors,
                    skipped_long_lines: s.skipped_long_lines,
                    rotations: s.rotations,
                    truncations: s.truncations,
                    files: h.positions.get(i).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// The configured sources: each path with its format (`--access-log` with `--format`, then the
/// logs a `squid.conf` writes, each in its own format; a path is taken once).
fn sources_of(config: &Config) -> Result<Vec<(PathBuf, Format)>, StartupError> {
    let format = config.log_format.clone();
    let mut out: Vec<(PathBuf, Format)> = config
        .access_logs
        .iter()
        .map(|p| (p.clone(), format.clone()))
        .collect();
    if let Some(conf) = &config.squid_conf {
        let found = discover_squid_conf(conf)?;
        for note in &found.notes {
            tracing::info!(squid_conf = %conf.display(), "{note}");
        }
        for src in found.sources {
            if !out.iter().any(|(p, _)| p == &src.path) {
                tracing::info!(path = %src.path.display(), format = %src.format_name, "log found in squid.conf");
                out.push((src.path, src.format));
            }
        }
    }
    Ok(out)
}

/// Seconds east of UTC of the machine's time zone (the `TZ` variable or /etc/localtime) at `time`.
fn local_offset(time: Option<parsers::Timestamp>) -> i32 {
    use chrono::{Offset, TimeZone};
    let Some(t) = time else { return 0 };
    chrono::Local
        .timestamp_millis_opt(t.millis)
        .single()
        .map_or(0, |dt| dt.offset().fix().local_minus_utc())
}

/// Reads `conf` (and its `include` files) and finds every access log it writes, with its format.
pub fn discover_squid_conf(conf: &Path) -> Result<parsers::Discovery, StartupError> {
    let text = std::fs::read_to_string(conf).map_err(|source| {
        StartupError::Config(crate::error::ConfigError::Read {
            path: conf.to_owned(),
            source,
        })
    })?;
    parsers::discover_with_notes(&text, conf, &mut read_include)
        .map_err(|e| StartupError::Other(format!("{}: {e}", conf.display())))
}

/// `include` of a squid.conf: the files matching the (absolute) pattern, with their text.
fn read_include(pattern: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let text = pattern.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return std::fs::read_to_string(pattern)
            .map(|t| vec![(pattern.to_owned(), t)])
            .map_err(|e| format!("{}: {e}", pattern.display()));
    }
    // Globs in the file name only (the common `include /etc/squid/conf.d/*.conf`).
    let dir = pattern.parent().unwrap_or(Path::new("/"));
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| parsers::glob_match(&text, &p.to_string_lossy()))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            std::fs::read_to_string(&p)
                .map(|t| (p.clone(), t))
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

/// One followed log.
#[derive(Debug)]
struct Source {
    /// Reads its lines across rotations.
    follower: Follower,
    /// The lines of the last read (reused: no allocation per line).
    lines: Lines,
    /// How its lines are parsed.
    format: Format,
    /// The path as text, for the `source` field and logs.
    label: String,
    /// Lines that failed to parse.
    parse_errors: u64,
    /// When the last parse warning was logged (rate limit).
    last_warn: Option<Instant>,
    /// Parse errors not logged since the last warning.
    suppressed: u64,
}

impl Source {
    /// Counts a line that did not parse and warns at a bounded rate (path and byte offset of
    /// the line, never its content).
    fn parse_failed(&mut self, e: &ParseError, offset: u64) {
        self.parse_errors += 1;
        let now = Instant::now();
        if self
            .last_warn
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
        {
            tracing::warn!(
                path = %self.label,
                offset,
                error = %e,
                suppressed = self.suppressed,
                "unparseable line skipped"
            );
            self.last_warn = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }
}

/// Follows the configured sources and feeds the hub.
#[derive(Debug)]
pub struct Tailer {
    /// Where batches go.
    hub: Arc<Hub>,
    /// Shared with `/api/health`.
    health: Arc<TailHealth>,
    /// The logs, sharing one id sequence.
    sources: Vec<Source>,
    /// The next id to assign.
    next_id: u64,
    /// Locked state directory (checkpoint); the lock lives as long as the tailer.
    state: StateDir,
    /// Records of each batch, for the history after a restart.
    journal: Journal,
    /// Serializes each batch's entries into records.
    encoder: Encoder,
    /// What the checkpoint on disk says, to write only when something changed.
    saved: Option<Checkpoint>,
    /// A batch whose journal/checkpoint write failed, and whether it is already journaled:
    /// retried before reading more.
    pending: Option<(Batch, bool)>,
    /// The checkpoint was replaced since the last `fsync`.
    dirty: bool,
    /// Last `fsync` of journal and checkpoint (handed to `syncer`).
    last_sync: Instant,
    /// Runs the periodic `fsync` off this task, so a slow disk never holds lines back.
    syncer: Syncer,
    /// File-system watcher (or polling) and its wakes.
    watch: Watch,
    /// Wakes from `watch`.
    wakes: mpsc::Receiver<()>,
    /// Write `timestamp` in the machine's local time zone (`--local-time`) instead of UTC.
    local_time: bool,
    /// The privacy policy, applied before an entry gets its record; `None` when it keeps all.
    privacy: Option<Privacy>,
    /// systemd keep-alives, sent from this loop itself so that a stuck tailer stops them.
    watchdog: Option<Watchdog>,
}

impl Tailer {
    /// Locks the state directory, loads the checkpoint, rebuilds the history into `hub` from the
    /// journal and prepares every source. A second instance on the same state directory fails
    /// with [`StartupError::State`] without touching the checkpoint.
    pub fn new(config: &Config, hub: Arc<Hub>) -> Result<Tailer, StartupError> {
        let state_err = |message: String| StartupError::State {
            path: config.state_dir.clone(),
            message,
        };
        let configured = sources_of(config)?;
        let state = StateDir::open(&config.state_dir).map_err(|e| state_err(e.to_string()))?;
        let loaded = state.load();
        let (checkpoint, corrupt) = match loaded {
            Loaded::Found(c) => (Some(c), false),
            Loaded::Missing => (None, false),
            Loaded::Corrupt(why) => {
                tracing::error!(
                    %why,
                    "checkpoint unusable; ids continue after the journal and logs are read from their end"
                );
                (None, true)
            }
        };
        let (journal, recovered) = Journal::open(
            state.path(),
            &journal::Options::from_config(config),
            checkpoint.as_ref().map(|c| c.next_id),
        )
        .map_err(|e| state_err(format!("journal: {e}")))?;
        let next_id = match &checkpoint {
            Some(c) => c.next_id,
            None => recovered.last_id + 1,
        };
        hub.preload(recovered.records);

        let opts = FollowOptions {
            max_line_bytes: config.max_line_bytes,
            ..FollowOptions::default()
        };
        // With no checkpoint at all, `from_start` decides; after a lost checkpoint or for a
        // source new to it, the end (nothing is sent twice).
        let first_start = if config.from_start && !corrupt && recovered.last_id == 0 {
            StartAt::Beginning
        } else {
            StartAt::End
        };
        let paths: Vec<PathBuf> = configured.iter().map(|(p, _)| p.clone()).collect();
        let sources = configured
            .into_iter()
            .map(|(path, format)| {
                let saved = checkpoint
                    .as_ref()
                    .and_then(|c| c.sources.iter().find(|s| s.path == path));
                let follower = match saved {
                    Some(s) => Follower::resume(path.clone(), opts.clone(), &s.files),
                    None => Follower::new(path.clone(), opts.clone(), first_start),
                };
                Source {
                    follower,
                    lines: Lines::default(),
                    format,
                    label: path.to_string_lossy().into_owned(),
                    parse_errors: 0,
                    last_warn: None,
                    suppressed: 0,
                }
            })
            .collect();
        let (watch, wakes) = Watch::new(&paths, config.poll);
        let mut tailer = Tailer {
            hub,
            health: Arc::default(),
            sources,
            next_id,
            state,
            journal,
            encoder: Encoder::default(),
            saved: checkpoint,
            pending: None,
            dirty: false,
            last_sync: Instant::now(),
            syncer: Syncer::new(),
            watch,
            wakes,
            local_time: config.local_time,
            privacy: Privacy::new(config.privacy),
            watchdog: None,
        };
        // Record where we start (expired entries dropped, positions chosen) before anything runs.
        tailer.save_checkpoint(true);
        tailer.update_health();
        Ok(tailer)
    }

    /// Shared health counters.
    pub fn health(&self) -> Arc<TailHealth> {
        self.health.clone()
    }

    /// Sends systemd's watchdog keep-alives (and `STATUS=`) from [`Tailer::run`]'s loop.
    pub fn set_watchdog(&mut self, watchdog: Option<Watchdog>) {
        self.watchdog = watchdog;
    }

    /// A keep-alive if one is owed: called on every turn of the loop, busy or idle.
    fn kick(&mut self) {
        if let Some(w) = &mut self.watchdog {
            let hub = &self.hub;
            w.kick(|| crate::notify::status_line(hub.last_id(), hub.subscriber_count()));
        }
    }

    /// The journal on disk, for replay from it and its figures (oldest id and ts, bytes).
    pub fn store(&self) -> crate::store::Store {
        self.journal.store()
    }

    /// Follows until `token` is cancelled, then writes the checkpoint and returns.
    pub async fn run(mut self, token: CancellationToken) {
        let mut tick = tokio::time::interval(self.watch.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Read until nothing is left, yielding between bounded chunks.
            while self.step() && !token.is_cancelled() {
                self.kick();
                tokio::task::yield_now().await;
            }
            self.kick();
            let due = self.watchdog.as_ref().map(Watchdog::due);
            let keep_alive = async move {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let woken = tokio::select! {
                biased;
                _ = token.cancelled() => break,
                Some(()) = self.wakes.recv() => true,
                _ = tick.tick() => false,
                _ = keep_alive => false,
            };
            let moved = match woken {
                true => self.watch.refresh_after_wake(),
                false => self.watch.refresh(),
            };
            if moved {
                tick = tokio::time::interval(self.watch.interval());
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
        }
        self.shutdown();
    }

    /// Stops: makes the journal and the checkpoint durable.
    fn shutdown(&mut self) {
        self.syncer.finish();
        if let Err(e) = self.journal.sync() {
            tracing::error!(error = %e, "journal sync at shutdown failed");
        }
        if self.pending.is_some() {
            // Its checkpoint never made it to disk: keep the older one, so the batch is read
            // again (with the same ids) on the next start.
            tracing::warn!("stopping with an unpublished batch; it will be read again at start");
        } else {
            self.save_checkpoint(true);
        }
        tracing::info!(next_id = self.next_id, "tailer stopped; checkpoint written");
    }

    /// One round over every source: read, parse, journal, checkpoint, publish. Returns true when
    /// more data is ready (a chunk bound was hit) or a failed write must be retried.
    fn step(&mut self) -> bool {
        if let Some((batch, journaled)) = self.pending.take() {
            if !self.commit(batch, journaled) {
                return false;
            }
        }
        let multi = self.sources.len() > 1;
        let mut more = false;
        let mut made = 0;
        for src in &mut self.sources {
            // Taken out while its lines are borrowed, put back for the next read.
            let mut lines = std::mem::take(&mut src.lines);
            src.follower.read_into(&mut lines);
            more |= src.follower.has_more();
            // About what `json_size_hint` adds to a line's text.
            self.encoder
                .begin(lines.len(), lines.text_len() + 256 * lines.len());
            for line in lines.iter() {
                // A Squid <= 5 line may hold a second record glued to the first (cut at 8191
                // bytes): each record is an entry of its own.
                // The line as checked text (the whole read's check), for the first record.
                let mut checked = line.text;
                let mut next: Option<&[u8]> = Some(line.bytes);
                while let Some(text) = next {
                    let (parsed, glued) = match checked.take() {
                        Some(t) => src.format.parse_glued_text(t),
                        None => src.format.parse_glued(text),
                    };
                    next = glued;
                    match parsed {
                        Ok(mut entry) => {
                            if multi {
                                entry.extra.push((
                                    Cow::Borrowed("source"),
                                    Some(Cow::Borrowed(&src.label)),
                                ));
                            }
                            if self.local_time {
                                entry.utc_offset_secs = local_offset(entry.time);
                            }
                            if let Some(privacy) = &mut self.privacy {
                                privacy.apply(&mut entry);
                            }
                            self.encoder.push(self.next_id, &mut entry);
                            self.next_id += 1;
                            made += 1;
                        }
                        Err(e) => src.parse_failed(
                            &e,
                            line.end_offset.saturating_sub(line.bytes.len() as u64 + 1),
                        ),
                    }
                }
            }
            src.lines = lines;
        }
        // Health first: whoever sees the batch published sees counters that include it.
        self.health
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries += made;
        self.update_health();
        let batch = self.encoder.finish();
        let committed = self.commit(batch, false);
        more || !committed
    }

    /// Journals `records`, writes the checkpoint, then publishes. On a write failure keeps the
    /// batch pending (nothing published) and returns false.
    fn commit(&mut self, batch: Batch, journaled: bool) -> bool {
        if !journaled {
            if let Err(e) = self.journal.append_text(&batch.records, &batch.text) {
                tracing::error!(error = %e, "journal write failed; holding the batch");
                self.note_write_error();
                self.pending = Some((batch, false));
                return false;
            }
        }
        // Replaced (write + rename, which survives SIGKILL) before the batch is published; the
        // `fsync` against power loss follows in the background (`sync_in_background`).
        if !self.save_checkpoint(false) {
            // The journal may now hold records past the checkpoint: they are cut on the next
            // start (their lines are read again with the same ids).
            self.pending = Some((batch, true));
            return false;
        }
        self.hub.publish(batch.records);
        self.sync_in_background();
        true
    }

    /// At most once per [`SYNC_EVERY`], hands the journal segments and the checkpoint written
    /// since the last sync to the syncer thread (skipped while a sync still runs).
    fn sync_in_background(&mut self) {
        if self.last_sync.elapsed() < SYNC_EVERY || self.syncer.busy() {
            return;
        }
        let checkpoint = self
            .dirty
            .then(|| self.state.path().join(checkpoint::CHECKPOINT_FILE));
        self.last_sync = Instant::now();
        self.dirty = false;
        self.syncer.submit_written(&mut self.journal, checkpoint);
    }

    fn note_write_error(&self) {
        self.health
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state_write_errors += 1;
    }

    /// Writes the checkpoint if it changed; true when it is on disk.
    fn save_checkpoint(&mut self, sync: bool) -> bool {
        let cp = Checkpoint::new(
            self.next_id,
            self.sources
                .iter()
                .map(|s| SourceCheckpoint {
                    path: PathBuf::from(s.follower.path()),
                    files: s.follower.positions(),
                })
                .collect(),
        );
        // Where each source has read to, for the lag `/metrics` shows.
        self.health
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .positions = cp
            .sources
            .iter()
            .map(|s| s.files.iter().map(|f| (f.dev, f.ino, f.offset)).collect())
            .collect();
        if self.saved.as_ref() == Some(&cp) && !(sync && self.dirty) {
            return true;
        }
        match self.state.save(&cp, sync) {
            Ok(()) => {
                self.saved = Some(cp);
                self.dirty = !sync;
                if sync {
                    self.last_sync = Instant::now();
                }
                true
            }
            Err(e) => {
                tracing::error!(dir = %self.state.path().display(), error = %e, "checkpoint write failed; holding the batch");
                self.note_write_error();
                false
            }
        }
    }

    fn update_health(&self) {
        let mut h = self.health.inner.lock().unwrap_or_else(|p| p.into_inner());
        h.next_id = self.next_id;
        h.polling = self.watch.polling();
        h.sources = self
            .sources
            .iter()
            .map(|s| {
                let st = s.follower.stats();
                let (state, error) = match s.follower.state() {
                    FollowState::Following => ("following", None),
                    FollowState::Waiting => ("waiting", None),
                    FollowState::Error(e) => ("error", Some(e.clone())),
                };
                SourceHealth {
                    path: s.label.clone(),
                    state,
                    error,
                    lines: st.lines,
                    parse_errors: s.parse_errors,
                    skipped_long_lines: st.skipped_long,
                    truncations: st.truncations,
                    unrecovered_truncations: st.unrecovered_truncations,
                    rotations: st.rotations,
                    fragments: st.fragments,
                }
            })
            .collect();
    }
}
