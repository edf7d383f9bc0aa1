//! The watcher on its own: its constructor returns once the watch is established, so a test can
//! write at once and await the wake (the timeout is a failure bound, never a delay).
use proxytail::source::file::watch::Watch;
use std::fs;
use std::time::Duration;
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_write_in_the_log_directory_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (w, mut wakes) = Watch::new(std::slice::from_ref(&log), false);
    assert!(!w.polling());
    fs::write(&log, b"x\n").unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
}

#[tokio::test]
async fn bursts_coalesce_into_one_pending_wake() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (_w, mut wakes) = Watch::new(std::slice::from_ref(&log), false);
    for i in 0..100 {
        fs::write(&log, format!("{i}\n")).unwrap();
    }
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
    // The channel holds at most one wake: after draining it, nothing is queued.
    while wakes.try_recv().is_ok() {}
    assert!(wakes.try_recv().is_err());
}

#[tokio::test]
async fn a_missing_directory_is_watched_through_its_ancestor_then_directly() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("squid");
    let log = logdir.join("access.log");
    let (mut w, mut wakes) = Watch::new(std::slice::from_ref(&log), false);
    fs::create_dir(&logdir).unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
    assert!(w.refresh(), "the watch moves to the new directory");
    while wakes.try_recv().is_ok() {}
    fs::write(&log, b"x\n").unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
    // Removed and recreated: watched again.
    fs::remove_dir_all(&logdir).unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
    w.refresh();
    fs::create_dir(&logdir).unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
    assert!(w.refresh());
    while wakes.try_recv().is_ok() {}
    fs::write(&log, b"y\n").unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
}

#[tokio::test]
async fn poll_mode_uses_no_watch_and_a_short_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (w, _wakes) = Watch::new(std::slice::from_ref(&log), true);
    assert!(w.polling());
    assert!(w.interval() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_removed_and_recreated_directory_is_watched_again_after_the_wakes_it_causes() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("squid");
    fs::create_dir(&logdir).unwrap();
    let log = logdir.join("access.log");
    fs::write(&log, b"x\n").unwrap();
    let (mut w, mut wakes) = Watch::new(std::slice::from_ref(&log), false);
    // A write into the log: nothing to re-target.
    fs::write(&log, b"y\n").unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
    assert!(!w.refresh_after_wake());
    fs::remove_dir_all(&logdir).unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
    assert!(w.refresh_after_wake(), "the watch moves to the ancestor");
    fs::create_dir(&logdir).unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
    assert!(w.refresh_after_wake(), "and back to the directory");
    while wakes.try_recv().is_ok() {}
    fs::write(&log, b"z\n").unwrap();
    timeout(BOUND, wakes.recv()).await.unwrap().unwrap();
}
