//! RELIABILITY 82 with the real binary: the journal under a byte retention small enough that
//! segments are removed all the time, the daemon SIGKILLed again and again while it ingests (so
//! while it appends, starts segments and removes old ones). After the last restart the journal on
//! disk reads consistently: ids consecutive from the oldest kept to the last line, each id naming
//! the line it named before the kills, old segments gone, the size within retention.
mod common;

use common::process::{daemon_args, tail_of, LogTail, Proc};
use common::ws::{connect, read_ids};
use common::{fetch_token, write_users};
use proxytail::config::Config;
use proxytail::hub::Hub;
use proxytail::source::file::Tailer;
use proxytail::store::reader::Chunk;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Failure bound on any wait.
const BOUND: Duration = Duration::from_secs(120);
/// Lines per cycle: about 1.4 MB of journal, more than the 1 MiB retention.
const PER_CYCLE: u64 = 4_000;
/// Daemon lifetimes ended by SIGKILL.
const KILLS: u64 = 5;

fn append(path: &Path, seqs: std::ops::RangeInclusive<u64>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut text = String::new();
    for seq in seqs {
        let ms = now.as_millis() as u64 + seq;
        text.push_str(&format!(
            "{}.{:03}      2 ::1 TCP_MISS/200 {seq} GET http://h/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain\n",
            ms / 1000,
            ms % 1000
        ));
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_retention_removes_segments_leaves_a_consistent_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (log, state) = (dir.path().join("access.log"), dir.path().join("state"));
    std::fs::create_dir_all(&state).unwrap();
    let users = write_users(dir.path());
    let args = daemon_args(
        &log,
        &users,
        &state,
        &[
            "--from-start",
            "--history",
            "100",
            "--retention-bytes",
            "1MiB",
        ],
    );
    let tail = LogTail::default();
    let mut written = 0;
    for _ in 0..KILLS {
        let mut daemon = Proc::start(&args, &tail, BOUND);
        append(&log, written + 1..=written + PER_CYCLE);
        written += PER_CYCLE;
        // Killed while it is still reading what was just written, at a different point each time.
        daemon.kill();
    }
    let mut daemon = Proc::start(&args, &tail, BOUND);
    let token = fetch_token(daemon.addr).await;
    let mut ws = connect(&format!(
        "ws://{}/api/ws/logs?token={token}&since={}",
        daemon.addr,
        written - 1
    ))
    .await;
    assert_eq!(
        read_ids(&mut ws, 1).await,
        vec![written],
        "{}",
        tail_of(&tail)
    );
    assert!(daemon.terminate(BOUND).success(), "{}", tail_of(&tail));

    // The daemon's own start-up path (lock, checkpoint, journal recovery), in process.
    let argv = std::iter::once("proxytail".to_string()).chain(args.iter().cloned());
    let (_, config) = Config::from_args(argv).unwrap();
    let hub = Arc::new(Hub::new(config.history));
    let tailer = Tailer::new(&config, hub.clone()).unwrap();
    assert_eq!(
        hub.last_id(),
        written,
        "history rebuilt up to the last line"
    );
    let store = tailer.store();
    let stats = store.stats();
    assert!(stats.oldest_id > 1, "old segments removed: {stats:?}");
    assert!(
        stats.bytes <= (1 << 20) + 2 * (64 << 10),
        "within retention: {stats:?}"
    );
    let mut reader = store.read_after(0);
    let mut expected = stats.oldest_id;
    loop {
        match reader.next_batch_blocking().unwrap() {
            Chunk::Records(records) => {
                for r in records {
                    assert_eq!(r.id, expected, "consecutive ids");
                    let needle = format!("\"destination\":\"http://h/x/{}\"", r.id);
                    assert!(
                        r.text().contains(&needle),
                        "id {} names its line: {}",
                        r.id,
                        r.text()
                    );
                    expected += 1;
                }
            }
            Chunk::Gone { .. } => panic!("nothing is removed while reading"),
            Chunk::CaughtUp => break,
        }
    }
    assert_eq!(expected, written + 1, "read up to the last line");
}
