//! Restarts and crashes: graceful stop and start, a crash (task aborted, no final checkpoint), an
//! older checkpoint restored (lines read again get the ids they had), copytruncate then crash,
//! corrupt checkpoints, a half-written temp file, a second instance, the history rebuilt at start.
mod tail_support;

use futures_util::FutureExt;
use proxytail::filter::Filter;
use proxytail::hub::{Hub, Next, Start, Subscription};
use proxytail::source::file::Tailer;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::sync::Arc;
use tail_support::*;

fn ids_of(hub: &Arc<Hub>) -> Vec<u64> {
    // Everything held is ready at once: a subscription from 0 returns it on its first poll.
    let mut sub = Subscription::new(hub.clone(), Start::Since(0), Filter::default(), usize::MAX);
    match sub.next().now_or_never() {
        Some(Next::Entries(r)) => r.iter().map(|r| r.id).collect(),
        None => Vec::new(),
        Some(other) => panic!("history: {other:?}"),
    }
}

// 21, 61 (history rebuilt)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_resends_nothing_and_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let state = dir.path().join("state");
    append(&log, lines(1..=100).as_bytes());
    let cfg = config(&[&log], &state, &["--from-start", "--history", "1000"]);
    let mut run = start(&cfg);
    assert_exact(&run.collect(100).await, 1, 1..=100);
    run.stop().await;

    append(&log, lines(101..=150).as_bytes());
    let mut run = start(&cfg);
    // The history reaches back across the restart.
    assert_eq!(ids_of(&run.hub)[..100], (1..=100).collect::<Vec<_>>()[..]);
    let got = run.collect(50).await;
    assert_exact(&got, 101, 101..=150);
    assert_eq!(ids_of(&run.hub), (1..=150).collect::<Vec<_>>());
    run.stop().await;

    // No change while stopped: nothing at all is sent.
    let run = start(&cfg);
    append(&log, lines([151]).as_bytes());
    let mut run = run;
    assert_exact(&run.collect(1).await, 151, [151]);
    run.stop().await;
}

// 22: a crash (the task is aborted: no final checkpoint, no shutdown path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_then_restart_loses_nothing_and_repeats_nothing() {
    let (_dir, log, _state, cfg) = scratch(&[]);
    let mut run = start(&cfg);
    append(&log, lines(1..=500).as_bytes());
    assert_exact(&run.collect(500).await, 1, 1..=500);
    run.kill().await;
    append(&log, lines(501..=600).as_bytes());
    let mut run = start(&cfg);
    // 61: a subscriber far behind at the crash still finds every entry in the rebuilt history
    // (and, if the restarted tailer was quick, the first re-read lines after them).
    let held = ids_of(&run.hub);
    assert!(held.len() >= 500, "history rebuilt: {held:?}");
    assert_eq!(held, (1..=held.len() as u64).collect::<Vec<_>>());
    assert_exact(&run.collect(100).await, 501, 501..=600);
    run.stop().await;
}

// 22: an older checkpoint (as if killed right after reading, before checkpointing): lines read
// again get exactly the ids they had, and the rebuilt history holds no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_read_again_after_an_older_checkpoint_get_the_same_ids() {
    let (_dir, log, state, cfg) = scratch(&[]);
    let mut run = start(&cfg);
    append(&log, lines(1..=50).as_bytes());
    run.collect(50).await;
    let old = fs::read(state.join("checkpoint.json")).unwrap();
    append(&log, lines(51..=120).as_bytes());
    let before: HashMap<u64, bytes::Bytes> = run
        .collect(70)
        .await
        .into_iter()
        .map(|r| (r.id, r.json))
        .collect();
    run.kill().await;
    fs::write(state.join("checkpoint.json"), old).unwrap();

    let mut run = start(&cfg);
    // History cut back to the checkpoint: `run.rx` went live at the last preloaded id before the
    // tailer ran, and gets 51 next. (`hub.last_id()` here raced with the running tailer.)
    let again = run.collect(70).await;
    assert_exact(&again, 51, 51..=120);
    for r in &again {
        assert_eq!(before[&r.id], r.json, "id {} names the same line", r.id);
    }
    assert_eq!(ids_of(&run.hub), (1..=120).collect::<Vec<_>>());
    run.stop().await;
}

// 62: copytruncate, then a crash before any periodic checkpoint, then restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_then_crash_never_gives_an_id_to_another_line() {
    let (_dir, log, _state, cfg) = scratch(&[]);
    let mut run = start(&cfg);
    append(&log, lines(1..=30).as_bytes());
    let mut seen: HashMap<u64, bytes::Bytes> = HashMap::new();
    seen.extend(run.collect(30).await.into_iter().map(|r| (r.id, r.json)));
    fs::copy(&log, rotated(&log, 1)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, lines(31..=40).as_bytes());
    seen.extend(run.collect(10).await.into_iter().map(|r| (r.id, r.json)));
    run.kill().await;
    append(&log, lines(41..=45).as_bytes());
    let mut run = start(&cfg);
    let after = run.collect(5).await;
    assert_exact(&after, 41, 41..=45);
    for r in &after {
        if let Some(old) = seen.get(&r.id) {
            assert_eq!(old, &r.json, "id {} reused for another line", r.id);
        }
    }
    run.stop().await;
}

// 26: rotation while stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_while_stopped_drains_the_rotated_file_first() {
    let (_dir, log, _state, cfg) = scratch(&[]);
    let mut run = start(&cfg);
    append(&log, lines(1..=10).as_bytes());
    run.collect(10).await;
    run.stop().await;
    append(&log, lines(11..=20).as_bytes());
    fs::rename(&log, log.with_file_name("access.log.0")).unwrap();
    append(&log, lines(21..=30).as_bytes());
    let mut run = start(&cfg);
    assert_exact(&run.collect(20).await, 11, 11..=30);
    run.stop().await;
}

// 23: a half-written temp file beside a complete checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_written_temp_checkpoint_is_ignored() {
    let (_dir, log, state, cfg) = scratch(&[]);
    let mut run = start(&cfg);
    append(&log, lines(1..=5).as_bytes());
    run.collect(5).await;
    run.stop().await;
    fs::write(
        state.join("checkpoint.json.tmp"),
        b"{\"version\":1,\"next_id\":99",
    )
    .unwrap();
    append(&log, lines(6..=7).as_bytes());
    let mut run = start(&cfg);
    assert_exact(&run.collect(2).await, 6, 6..=7);
    run.stop().await;
}

// 24: empty, NUL-filled or invalid checkpoints: error logged, ids continue after the journal,
// files read from their end (nothing sent twice), no crash loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_checkpoint_falls_back_to_documented_policy() {
    for (name, garbage) in [
        ("empty", Vec::new()),
        ("nuls", vec![0u8; 4096]),
        ("json", b"{\"version\":1,\"next_id\":\"x\"}".to_vec()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let state = dir.path().join("state");
        File::create(&log).unwrap();
        let cfg = config(&[&log], &state, &[]);
        let mut run = start(&cfg);
        append(&log, lines(1..=5).as_bytes());
        run.collect(5).await;
        run.stop().await;
        fs::write(state.join("checkpoint.json"), garbage).unwrap();
        append(&log, lines(6..=7).as_bytes()); // written while down: skipped by the policy
        let mut run = start(&cfg);
        append(&log, lines([8]).as_bytes());
        let got = run.collect(1).await;
        assert_eq!(got[0].id, 6, "{name}: ids continue after the journal");
        assert_eq!(seq_of(&got[0]), 8, "{name}: read from the end");
        run.stop().await;
        // The next start is clean again.
        let run = start(&cfg);
        run.stop().await;
    }
}

// 29: a second instance on the same state directory refuses to start and touches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_on_the_same_state_dir_refuses_to_start() {
    let (_dir, log, state, cfg) = scratch(&[]);
    let mut run = start(&cfg);
    append(&log, lines(1..=3).as_bytes());
    run.collect(3).await;
    let before = fs::read(state.join("checkpoint.json")).unwrap();
    let err = Tailer::new(&cfg, Arc::new(Hub::new(10))).unwrap_err();
    assert!(
        matches!(err, proxytail::error::StartupError::State { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("another proxytail instance"),
        "{err}"
    );
    assert_eq!(fs::read(state.join("checkpoint.json")).unwrap(), before);
    run.stop().await;
    // Once the first one stopped, a new one starts.
    let run = start(&cfg);
    run.stop().await;
}

// Fresh state: start at the end of an existing file unless `from_start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_begins_at_the_end_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, lines(1..=10).as_bytes());
    let cfg = config(&[&log], &dir.path().join("state"), &[]);
    let mut run = start(&cfg);
    append(&log, lines([11]).as_bytes());
    assert_exact(&run.collect(1).await, 1, [11]);
    run.stop().await;
}

// 30: the checkpoint on disk covers every published batch at once, and is not rewritten idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_covers_each_published_batch() {
    let (_dir, log, state, cfg) = scratch(&[]);
    let mut run = start(&cfg);
    for k in 1..=5u64 {
        append(&log, lines([k]).as_bytes());
        run.collect(1).await;
        let cp: serde_json::Value =
            serde_json::from_slice(&fs::read(state.join("checkpoint.json")).unwrap()).unwrap();
        assert_eq!(cp["next_id"], k + 1);
        assert_eq!(
            cp["sources"][0]["files"][0]["offset"],
            fs::metadata(&log).unwrap().len()
        );
    }
    run.stop().await;
}
