//! Regressions found by the torture test, each replayed deterministically on a `Follower`.
mod tail_support;

use proxytail::source::file::follow::{FollowOptions, Follower, StartAt};
use tail_support::{append, lines};

fn seqs(lines: &[proxytail::source::file::follow::Line]) -> Vec<u64> {
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

/// Torture (long form, second kill): the checkpoint still held a drained file whose inode number
/// the file system then gave to the log recreated while the daemon was down. On resume that stale
/// entry was taken for "the log, truncated while stopped" (same inode, other content), so the path
/// counted as found and the search for generations rotated away while stopped was skipped: the
/// two files in between (`.2`, `.1`) were never read. A saved file is the same file only if its
/// creation time matches too.
#[test]
fn resume_with_a_stale_entry_whose_inode_the_new_log_reuses_reads_every_generation() {
    use proxytail::source::file::follow::{fingerprint_hex, FilePosition};
    use std::os::unix::fs::MetadataExt;

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let one = log.with_extension("log.1");
    let two = log.with_extension("log.2");
    append(&log, lines(1..=3).as_bytes());
    let mut f = Follower::new(&log, FollowOptions::default(), StartAt::Beginning);
    assert_eq!(seqs(&f.read_available()), vec![1, 2, 3]);
    let mut saved = f.positions();
    let born = saved.last().unwrap().born;
    if born.is_none() {
        eprintln!("no creation times on this file system: nothing to tell reused inodes apart by");
        return;
    }
    drop(f);

    // While stopped: more lines, two rename rotations, a new log.
    append(&log, lines(4..=5).as_bytes());
    std::fs::rename(&log, &one).unwrap();
    append(&log, lines(6..=8).as_bytes());
    std::fs::rename(&one, &two).unwrap();
    std::fs::rename(&log, &one).unwrap();
    append(&log, lines(9..=10).as_bytes());

    // The checkpoint also held an older file, long gone, whose inode number the new log now has
    // (the file system reuses freed inode numbers): other content, other creation time.
    let now = std::fs::metadata(&log).unwrap();
    let (secs, nanos) = born.unwrap();
    let stale = FilePosition {
        dev: now.dev(),
        ino: now.ino(),
        fp_len: 1024,
        fp: fingerprint_hex(lines(100..=120).as_bytes()[..1024].as_ref()),
        offset: 3_050_000,
        past: Vec::new(),
        born: Some((secs.saturating_sub(2), nanos)),
        retired: false,
    };
    saved.insert(0, stale);

    let mut f = Follower::resume(&log, FollowOptions::default(), &saved);
    assert_eq!(seqs(&f.read_available()), (4..=10).collect::<Vec<_>>());
}

/// Two `copytruncate` cycles while stopped: the copy of the content the checkpoint covered is
/// drained from the saved offset, but the second copy (content written between the two
/// truncations, found nowhere else) was never searched for, because the log itself was found
/// (same file, refilled) — the search for skipped generations ran only when it was not.
#[test]
fn two_copytruncates_while_stopped_lose_no_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let one = log.with_extension("log.1");
    let two = log.with_extension("log.2");
    append(&log, lines(1..=12).as_bytes());
    let mut f = Follower::new(&log, FollowOptions::default(), StartAt::Beginning);
    assert_eq!(seqs(&f.read_available()), (1..=12).collect::<Vec<_>>());
    let saved = f.positions();
    if saved.last().unwrap().born.is_none() {
        eprintln!("no creation times on this file system: skipped cycles cannot be ordered");
        return;
    }
    drop(f);

    let copytruncate = || {
        if one.exists() {
            std::fs::rename(&one, &two).unwrap();
        }
        std::fs::copy(&log, &one).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
    };
    append(&log, lines(13..=15).as_bytes());
    copytruncate();
    append(&log, lines(16..=27).as_bytes());
    copytruncate();
    append(&log, lines(28..=30).as_bytes());

    let mut f = Follower::resume(&log, FollowOptions::default(), &saved);
    assert_eq!(seqs(&f.read_available()), (13..=30).collect::<Vec<_>>());
}
