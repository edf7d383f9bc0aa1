//! Shared helpers of the `tail_*` integration tests: real files, a real `Tailer` with its real
//! watcher, a hub subscriber that collects records with a time bound (never a sleep).
#![allow(dead_code)]
use proxytail::config::Config;
use proxytail::filter::Filter;
use proxytail::hub::{Hub, Next, Record, Start, Subscription};
use proxytail::source::file::Tailer;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for any wait in these tests (a failure bound, not a delay).
pub const BOUND: Duration = Duration::from_secs(30);

/// A real Squid native line whose URL ends in `seq`; its timestamp advances with `seq` (1 ms per
/// line), as a live log's does: content fingerprints rely on first bytes differing.
pub fn squid(seq: u64) -> String {
    let ms = 1_795_835_993_065 + seq;
    format!(
        "{}.{:03}      2 ::1 TCP_MISS/200 353 GET http://h/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain",
        ms / 1000,
        ms % 1000
    )
}

/// Lines `seqs` joined, each with its `\n`.
pub fn lines(seqs: impl IntoIterator<Item = u64>) -> String {
    let mut s = String::new();
    for i in seqs {
        s.push_str(&squid(i));
        s.push('\n');
    }
    s
}

/// Appends `data` to `path` (creating it).
pub fn append(path: &Path, data: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}

/// The seq in a record's `destination`.
pub fn seq_of(r: &Record) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&r.json).unwrap();
    let d = v["destination"].as_str().unwrap();
    d.rsplit('/').next().unwrap().parse().unwrap()
}

/// A config following `logs` with its state in `state`.
pub fn config(logs: &[&Path], state: &Path, extra: &[&str]) -> Config {
    let mut args: Vec<String> = vec!["proxytail".into()];
    for l in logs {
        args.push("--access-log".into());
        args.push(l.display().to_string());
    }
    args.push("--state-dir".into());
    args.push(state.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::from_args(args).unwrap().1
}

/// A started tailer.
pub struct Running {
    pub hub: Arc<Hub>,
    /// Everything published after start-up (an unbounded budget: the checker may lag).
    pub rx: Subscription,
    pub token: CancellationToken,
    pub task: JoinHandle<()>,
    pub health: Arc<proxytail::source::file::TailHealth>,
}

/// Builds a tailer on a fresh hub, subscribes, and runs it.
pub fn start(config: &Config) -> Running {
    // `RUST_LOG=proxytail=debug cargo test ...` shows the tailer's own logs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let hub = Arc::new(Hub::new(config.history));
    let tailer = Tailer::new(config, hub.clone()).unwrap();
    // After `new`, which preloads the history: live from there, as a WebSocket client would be.
    let rx = Subscription::new(hub.clone(), Start::Live, Filter::default(), usize::MAX);
    let health = tailer.health();
    let token = CancellationToken::new();
    let task = tokio::spawn(tailer.run(token.clone()));
    Running {
        hub,
        rx,
        token,
        task,
        health,
    }
}

impl Running {
    /// The next records published (waits without bound: callers bound it).
    pub async fn recv(&mut self) -> Vec<Record> {
        match self.rx.next().await {
            Next::Entries(records) => records,
            other => panic!("subscription: {other:?}"),
        }
    }

    /// Receives records until `n` were collected; panics after [`BOUND`].
    pub async fn collect(&mut self, n: usize) -> Vec<Record> {
        let mut out = Vec::with_capacity(n);
        let deadline = tokio::time::Instant::now() + BOUND;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(batch) => out.extend(batch),
                Err(_) => panic!(
                    "timed out with {} of {n} records; last {:?}",
                    out.len(),
                    out.last().map(|r| r.text().to_owned())
                ),
            }
        }
        out
    }

    /// Graceful stop: cancel and wait for the final checkpoint.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(BOUND, self.task)
            .await
            .unwrap()
            .unwrap();
    }

    /// Crash: abort the task (no final checkpoint) and wait until the tailer is dropped.
    pub async fn kill(self) {
        self.task.abort();
        let _ = tokio::time::timeout(BOUND, self.task).await.unwrap();
    }
}

/// Asserts ids consecutive from `first_id` and seqs exactly `seqs`.
pub fn assert_exact(records: &[Record], first_id: u64, seqs: impl IntoIterator<Item = u64>) {
    let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    let want_ids: Vec<u64> = (first_id..first_id + records.len() as u64).collect();
    assert_eq!(ids, want_ids, "ids consecutive");
    let got: Vec<u64> = records.iter().map(seq_of).collect();
    let want: Vec<u64> = seqs.into_iter().collect();
    if got != want {
        let missing: Vec<_> = want.iter().filter(|s| !got.contains(s)).take(10).collect();
        panic!(
            "lines differ: got {} want {}; first missing {missing:?}; got head {:?}",
            got.len(),
            want.len(),
            &got[..got.len().min(20)]
        );
    }
}

/// A rotated name for generation `g`.
pub fn rotated(log: &Path, g: u64) -> PathBuf {
    log.with_file_name(format!("access.log.{g}"))
}

/// A temporary directory with an empty `access.log` and a `state` directory path, and the
/// configuration following that log with `extra` arguments: the prologue most tailer tests share.
pub fn scratch(extra: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf, Config) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let state = dir.path().join("state");
    std::fs::File::create(&log).expect("create the log");
    let cfg = config(&[&log], &state, extra);
    (dir, log, state, cfg)
}
