//! Regressions found by the torture test, each replayed deterministically on a `Follower`.
mod tail_support;

use proxytail::tail::follow::{FollowOptions, Follower, StartAt};
use tail_support::{append, lines};

fn seqs(lines: &[proxytail::tail::follow::Line]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            let t = String::from_utf8_lossy(&l.bytes);
            let url = t
                .split(' ')
                .find(|w| w.starts_with("http://h/x/"))
                .unwrap()
                .to_owned();
            url["http://h/x/".len()..].parse().unwrap()
        })
        .collect()
}

/// Delete + recreate, then — before the follower looked again — the recreated file renamed to
/// `.1` and a third one created: the middle generation was never opened and its lines were lost.
#[test]
fn delete_recreate_then_rename_before_a_look_loses_no_generation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, lines(1..=3).as_bytes());
    let mut f = Follower::new(&log, FollowOptions::default(), StartAt::Beginning);
    assert_eq!(seqs(&f.read_available()), vec![1, 2, 3]);

    append(&log, lines(4..=5).as_bytes());
    std::fs::remove_file(&log).unwrap();
    // The follower looks while the path is gone: it drains the deleted file through its handle.
    assert_eq!(seqs(&f.read_available()), vec![4, 5]);

    append(&log, lines(6..=8).as_bytes());
    std::fs::rename(&log, log.with_extension("log.1")).unwrap();
    append(&log, lines(9..=10).as_bytes());
    assert_eq!(seqs(&f.read_available()), vec![6, 7, 8, 9, 10]);
}
