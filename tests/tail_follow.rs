//! `Follower` driven directly on real files: write, `read_available`, assert (no watcher, no
//! sleeps; the drain grace period is crossed with an explicit clock). Numbers refer to the cases
//! in RELIABILITY.md.
use proxytail::source::file::follow::{FollowOptions, FollowState, Follower, Line, StartAt};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn squid(seq: u64) -> String {
    format!(
        "1795835993.065      2 ::1 TCP_MISS/200 353 GET http://h/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain"
    )
}

fn append(path: &Path, data: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}

fn append_lines(path: &Path, seqs: impl IntoIterator<Item = u64>) {
    let mut s = String::new();
    for i in seqs {
        s.push_str(&squid(i));
        s.push('\n');
    }
    append(path, s.as_bytes());
}

/// Truncates `path` to 0 in place, as `copytruncate` or a writer without `O_APPEND` would.
fn truncate(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn texts(lines: &[Line]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
        .collect()
}

fn seqs(lines: &[Line]) -> Vec<u64> {
    texts(lines)
        .iter()
        .map(|t| {
            let url = t.split(' ').find(|w| w.starts_with("http://h/x/")).unwrap();
            url["http://h/x/".len()..].parse().unwrap()
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        Fixture { _dir: dir, log }
    }
    fn sibling(&self, name: &str) -> PathBuf {
        self.log.with_file_name(name)
    }
    fn follower(&self) -> Follower {
        Follower::new(&self.log, FollowOptions::default(), StartAt::Beginning)
    }
}

#[test]
fn reads_complete_lines_with_end_offsets() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=3);
    let mut f = fx.follower();
    let lines = f.read_available();
    assert_eq!(seqs(&lines), vec![1, 2, 3]);
    let len = fs::metadata(&fx.log).unwrap().len();
    assert_eq!(lines[2].end_offset, len);
    assert!(f.read_available().is_empty());
    assert_eq!(f.positions().last().unwrap().offset, len);
}

#[test]
fn start_at_end_skips_existing_content_and_a_trailing_fragment() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=3);
    append(&fx.log, b"1795835993.065 half");
    let mut f = Follower::new(&fx.log, FollowOptions::default(), StartAt::End);
    assert!(f.read_available().is_empty());
    append(&fx.log, b" a line\n");
    append_lines(&fx.log, [4]);
    let lines = f.read_available();
    assert_eq!(texts(&lines)[0], "1795835993.065 half a line");
    assert_eq!(seqs(&lines[1..]), vec![4]);
}

// 1
#[test]
fn rename_and_create_delivers_both_lines_once() {
    let fx = Fixture::new();
    append_lines(&fx.log, [1]);
    let mut f = fx.follower();
    assert_eq!(seqs(&f.read_available()), vec![1]);
    fs::rename(&fx.log, fx.sibling("access.log.1")).unwrap();
    File::create(&fx.log).unwrap();
    append_lines(&fx.sibling("access.log.1"), [2]);
    append_lines(&fx.log, [3]);
    assert_eq!(seqs(&f.read_available()), vec![2, 3]);
    assert!(f.read_available().is_empty());
    assert_eq!(f.stats().rotations, 1);
}

// 2
#[test]
fn late_writes_to_the_renamed_file_are_delivered_then_it_is_closed() {
    let fx = Fixture::new();
    let opts = FollowOptions {
        drain_grace: Duration::from_secs(3),
        ..FollowOptions::default()
    };
    append_lines(&fx.log, [1]);
    let mut f = Follower::new(&fx.log, opts, StartAt::Beginning);
    let t0 = Instant::now();
    assert_eq!(seqs(&f.read_available_at(t0)), vec![1]);
    // Squid keeps its descriptor: simulate with a handle opened before the rename.
    let mut squid_fd = OpenOptions::new().append(true).open(&fx.log).unwrap();
    fs::rename(&fx.log, fx.sibling("access.log.1")).unwrap();
    append_lines(&fx.log, [10]);
    assert_eq!(seqs(&f.read_available_at(t0)), vec![10]);
    for (i, seq) in (2..=4).enumerate() {
        writeln!(squid_fd, "{}", squid(seq)).unwrap();
        let now = t0 + Duration::from_secs(i as u64 + 1);
        assert_eq!(seqs(&f.read_available_at(now)), vec![seq]);
        assert_eq!(f.positions().len(), 2, "old file still open");
    }
    // No growth for the grace period: closed.
    assert!(f.read_available_at(t0 + Duration::from_secs(10)).is_empty());
    let open: Vec<_> = f.positions().into_iter().filter(|p| !p.retired).collect();
    assert_eq!(open.len(), 1);
}

// 3
#[test]
fn rename_without_new_file_waits_quietly_then_reads_new_file_from_zero() {
    let fx = Fixture::new();
    append_lines(&fx.log, [1]);
    let mut f = fx.follower();
    f.read_available();
    fs::rename(&fx.log, fx.sibling("access.log.1")).unwrap();
    append_lines(&fx.sibling("access.log.1"), [2]);
    let t = Instant::now();
    assert_eq!(seqs(&f.read_available_at(t)), vec![2]);
    for k in 1..=30 {
        assert!(f.read_available_at(t + Duration::from_secs(k)).is_empty());
        assert_eq!(f.state(), &FollowState::Waiting);
    }
    append_lines(&fx.log, [3, 4]);
    assert_eq!(seqs(&f.read_available()), vec![3, 4]);
    assert_eq!(f.state(), &FollowState::Following);
}

// 4
#[test]
fn two_rotations_between_reads_deliver_all_generations() {
    let fx = Fixture::new();
    append_lines(&fx.log, [1]);
    let mut f = fx.follower();
    f.read_available();
    append_lines(&fx.log, [2]);
    fs::rename(&fx.log, fx.sibling("access.log.1")).unwrap();
    append_lines(&fx.log, [3]);
    fs::rename(fx.sibling("access.log.1"), fx.sibling("access.log.2")).unwrap();
    fs::rename(&fx.log, fx.sibling("access.log.1")).unwrap();
    append_lines(&fx.log, [4]);
    // The middle generation was never opened: it is found by its creation time.
    assert_eq!(seqs(&f.read_available()), vec![2, 3, 4]);
    assert!(f.read_available().is_empty());
}

// 5
#[test]
fn delete_with_unread_bytes_drains_the_open_handle_then_reads_new_file() {
    let fx = Fixture::new();
    append_lines(&fx.log, [1]);
    let mut f = fx.follower();
    f.read_available();
    append_lines(&fx.log, [2, 3]);
    fs::remove_file(&fx.log).unwrap();
    append_lines(&fx.log, [4]);
    assert_eq!(seqs(&f.read_available()), vec![2, 3, 4]);
}

// 6
#[test]
fn same_inode_different_content_on_resume_is_read_from_zero() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=5);
    let mut f = fx.follower();
    f.read_available();
    let saved = f.positions();
    drop(f);
    // Rewrite in place: same inode, new content shorter than the saved offset is not needed —
    // the fingerprint differs.
    let mut new = String::new();
    for i in 100..=110 {
        new.push_str(&squid(i));
        new.push('\n');
    }
    fs::write(&fx.log, new).unwrap();
    let mut f = Follower::resume(&fx.log, FollowOptions::default(), &saved);
    assert_eq!(seqs(&f.read_available()), (100..=110).collect::<Vec<_>>());
}

// 7: with the copy beside it, nothing is lost.
#[test]
fn copytruncate_recovers_unread_lines_from_the_copy() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=2);
    let mut f = fx.follower();
    assert_eq!(seqs(&f.read_available()), vec![1, 2]);
    append_lines(&fx.log, 3..=4);
    fs::copy(&fx.log, fx.sibling("access.log.1")).unwrap();
    truncate(&fx.log);
    append_lines(&fx.log, [5]);
    assert_eq!(seqs(&f.read_available()), vec![3, 4, 5]);
    assert_eq!(f.stats().truncations, 1);
    assert_eq!(f.stats().unrecovered_truncations, 0);
}

// 7: without a copy, the window is counted.
#[test]
fn truncation_without_copy_resets_to_zero_and_is_counted() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=3);
    let mut f = fx.follower();
    f.read_available();
    truncate(&fx.log);
    append_lines(&fx.log, [4]);
    assert_eq!(seqs(&f.read_available()), vec![4]);
    assert_eq!(f.stats().truncations, 1);
    assert_eq!(f.stats().unrecovered_truncations, 1);
}

// 8
#[test]
fn truncate_and_refill_beyond_offset_is_detected_by_fingerprint() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=2);
    let mut f = fx.follower();
    assert_eq!(seqs(&f.read_available()), vec![1, 2]);
    let mut refill = String::new();
    for i in 10..=20 {
        refill.push_str(&squid(i));
        refill.push('\n');
    }
    fs::write(&fx.log, refill).unwrap(); // O_TRUNC then write: same inode, longer than before
    assert_eq!(seqs(&f.read_available()), (10..=20).collect::<Vec<_>>());
}

// 9
#[test]
fn nul_hole_after_truncation_is_not_emitted() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=3);
    let mut f = fx.follower();
    f.read_available();
    let old_len = fs::metadata(&fx.log).unwrap().len();
    // A writer without O_APPEND keeps its offset: truncate, then write at the old offset.
    let w = OpenOptions::new().write(true).open(&fx.log).unwrap();
    w.set_len(0).unwrap();
    use std::os::unix::fs::FileExt;
    w.write_all_at(format!("{}\n", squid(4)).as_bytes(), old_len)
        .unwrap();
    let lines = f.read_available();
    assert_eq!(seqs(&lines), vec![4]);
    assert!(!lines[0].bytes.contains(&0));
}

// 10
#[test]
fn empty_file_at_start_is_followed_quietly() {
    let fx = Fixture::new();
    File::create(&fx.log).unwrap();
    let mut f = fx.follower();
    for _ in 0..3 {
        assert!(f.read_available().is_empty());
    }
    assert_eq!(f.state(), &FollowState::Following);
    append_lines(&fx.log, [1]);
    assert_eq!(seqs(&f.read_available()), vec![1]);
    assert_eq!(f.stats().truncations, 0);
}

// 11, 12
#[test]
fn copies_and_rotated_files_are_never_read_as_new_files() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=2);
    let mut f = fx.follower();
    assert_eq!(seqs(&f.read_available()), vec![1, 2]);
    fs::copy(&fx.log, fx.sibling("access.log.copy")).unwrap();
    fs::copy(&fx.log, fx.sibling("access.log.1")).unwrap();
    append_lines(&fx.sibling("access.log.1"), [7]);
    append_lines(&fx.log, [3]);
    assert_eq!(seqs(&f.read_available()), vec![3]);
    assert!(f.read_available().is_empty());
}

// 13 (at the follower level; the watcher side is in tail_run.rs)
#[test]
fn directory_removed_and_recreated_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("squid");
    fs::create_dir(&logdir).unwrap();
    let log = logdir.join("access.log");
    append_lines(&log, [1]);
    let mut f = Follower::new(&log, FollowOptions::default(), StartAt::Beginning);
    assert_eq!(seqs(&f.read_available()), vec![1]);
    fs::remove_dir_all(&logdir).unwrap();
    let t = Instant::now();
    assert!(f.read_available_at(t).is_empty());
    assert!(f.read_available_at(t + Duration::from_secs(60)).is_empty());
    assert_eq!(f.state(), &FollowState::Waiting);
    fs::create_dir(&logdir).unwrap();
    append_lines(&log, [2]);
    assert_eq!(seqs(&f.read_available()), vec![2]);
}

// 15
#[test]
fn line_in_three_chunks_is_emitted_once_after_its_newline() {
    let fx = Fixture::new();
    File::create(&fx.log).unwrap();
    let mut f = fx.follower();
    let line = squid(1);
    let (a, rest) = line.split_at(10);
    let (b, c) = rest.split_at(20);
    append(&fx.log, a.as_bytes());
    assert!(f.read_available().is_empty());
    append(&fx.log, b.as_bytes());
    assert!(f.read_available().is_empty());
    assert_eq!(
        f.positions()[0].offset,
        0,
        "checkpoint stays at the line start"
    );
    append(&fx.log, format!("{c}\n").as_bytes());
    assert_eq!(texts(&f.read_available()), vec![line]);
}

// 16
#[test]
fn fragment_at_end_of_rotated_file_is_emitted_once_after_grace_never_glued() {
    let fx = Fixture::new();
    let opts = FollowOptions {
        drain_grace: Duration::from_secs(1),
        ..FollowOptions::default()
    };
    append_lines(&fx.log, [1]);
    append(&fx.log, b"1795835993.065 tail-without-newline");
    let mut f = Follower::new(&fx.log, opts, StartAt::Beginning);
    let t = Instant::now();
    assert_eq!(seqs(&f.read_available_at(t)), vec![1]);
    fs::rename(&fx.log, fx.sibling("access.log.1")).unwrap();
    append_lines(&fx.log, [2]);
    let lines = f.read_available_at(t);
    assert_eq!(seqs(&lines), vec![2]);
    let lines = f.read_available_at(t + Duration::from_secs(2));
    assert_eq!(texts(&lines), vec!["1795835993.065 tail-without-newline"]);
    assert!(lines[0].fragment);
    assert_eq!(f.stats().fragments, 1);
    assert!(f.read_available_at(t + Duration::from_secs(3)).is_empty());
}

// 17
#[test]
fn crlf_is_dropped_and_offsets_stay_exact() {
    let fx = Fixture::new();
    append(
        &fx.log,
        format!("{}\r\n{}\r\n", squid(1), squid(2)).as_bytes(),
    );
    let mut f = fx.follower();
    let lines = f.read_available();
    assert_eq!(texts(&lines), vec![squid(1), squid(2)]);
    assert_eq!(lines[0].end_offset, squid(1).len() as u64 + 2);
    assert_eq!(lines[1].end_offset, fs::metadata(&fx.log).unwrap().len());
}

// 18
#[test]
fn ten_mib_line_is_skipped_counted_and_following_lines_delivered() {
    let fx = Fixture::new();
    File::create(&fx.log).unwrap();
    let mut f = fx.follower();
    append_lines(&fx.log, [1]);
    let big = vec![b'x'; 10 << 20];
    // Written in pieces with reads in between: the follower never buffers it.
    for piece in big.chunks(1 << 20) {
        append(&fx.log, piece);
        let _ = f.read_available();
    }
    append(&fx.log, b"\n");
    append_lines(&fx.log, [2]);
    let mut got = Vec::new();
    loop {
        let lines = f.read_available();
        let more = f.has_more();
        got.extend(lines);
        if !more {
            break;
        }
    }
    assert_eq!(seqs(&got), vec![2]);
    assert_eq!(f.stats().skipped_long, 1);
    assert_eq!(f.stats().lines, 2);
}

#[test]
fn line_exactly_at_the_bound_is_kept_and_one_over_is_skipped() {
    let fx = Fixture::new();
    let opts = FollowOptions {
        max_line_bytes: 300,
        ..FollowOptions::default()
    };
    let exact = "a".repeat(300);
    let over = "b".repeat(301);
    append(&fx.log, format!("{exact}\r\n{over}\n{exact}\n").as_bytes());
    let mut f = Follower::new(&fx.log, opts, StartAt::Beginning);
    assert_eq!(texts(&f.read_available()), vec![exact.clone(), exact]);
    assert_eq!(f.stats().skipped_long, 1);
}

// 19
#[test]
fn invalid_utf8_is_delivered_as_bytes() {
    let fx = Fixture::new();
    append(&fx.log, b"\xff\xfe bad \xc3\x28\n");
    append_lines(&fx.log, [1]);
    let mut f = fx.follower();
    let lines = f.read_available();
    assert_eq!(lines[0].bytes, b"\xff\xfe bad \xc3\x28".to_vec());
    assert_eq!(seqs(&lines[1..]), vec![1]);
}

// 21
#[test]
fn resume_at_saved_position_resends_nothing_and_skips_nothing() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=3);
    let mut f = fx.follower();
    f.read_available();
    let saved = f.positions();
    drop(f);
    append_lines(&fx.log, 4..=5);
    let mut f = Follower::resume(&fx.log, FollowOptions::default(), &saved);
    assert_eq!(seqs(&f.read_available()), vec![4, 5]);
}

// 26
#[test]
fn rotation_while_stopped_drains_rotated_file_then_new_file() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=3);
    let mut f = fx.follower();
    f.read_available();
    let saved = f.positions();
    drop(f);
    append_lines(&fx.log, 4..=5);
    fs::rename(&fx.log, fx.sibling("access.log.0")).unwrap();
    // A decoy with the same first line next to it.
    fs::copy(fx.sibling("access.log.0"), fx.sibling("access.log.copy")).unwrap();
    append_lines(&fx.log, 6..=7);
    let mut f = Follower::resume(&fx.log, FollowOptions::default(), &saved);
    assert_eq!(seqs(&f.read_available()), (4..=7).collect::<Vec<_>>());
    assert_eq!(f.positions().len(), 2);
}

// 27
#[test]
fn stored_offset_past_the_end_reads_from_zero() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=3);
    let mut f = fx.follower();
    f.read_available();
    let mut saved = f.positions();
    drop(f);
    saved[0].offset += 10_000;
    let mut f = Follower::resume(&fx.log, FollowOptions::default(), &saved);
    assert_eq!(seqs(&f.read_available()), vec![1, 2, 3]);
}

// 28
#[test]
fn positions_of_files_gone_while_stopped_expire() {
    let fx = Fixture::new();
    append_lines(&fx.log, 1..=2);
    let mut f = fx.follower();
    f.read_available();
    fs::rename(&fx.log, fx.sibling("access.log.1")).unwrap();
    append_lines(&fx.log, [3]);
    f.read_available();
    let saved = f.positions();
    assert_eq!(saved.len(), 2);
    drop(f);
    fs::remove_file(fx.sibling("access.log.1")).unwrap();
    let f = Follower::resume(&fx.log, FollowOptions::default(), &saved);
    assert_eq!(f.positions().len(), 1);
    assert!(!f.positions()[0].retired);
}

#[test]
fn missing_file_is_waited_for_and_read_from_zero() {
    let fx = Fixture::new();
    let mut f = Follower::new(&fx.log, FollowOptions::default(), StartAt::End);
    assert_eq!(f.state(), &FollowState::Waiting);
    assert!(f.read_available().is_empty());
    append_lines(&fx.log, [1]);
    assert_eq!(seqs(&f.read_available()), vec![1]);
}

// 34 (tests run as root here, so a mode flip cannot be staged: a path that is a directory
// fails the same way, on open/read)
#[test]
fn unreadable_path_is_an_error_state_then_recovers() {
    let fx = Fixture::new();
    fs::create_dir(&fx.log).unwrap();
    let mut f = fx.follower();
    assert!(
        matches!(f.state(), FollowState::Error(_)),
        "{:?}",
        f.state()
    );
    assert!(f.read_available().is_empty());
    assert!(matches!(f.state(), FollowState::Error(_)));
    fs::remove_dir(&fx.log).unwrap();
    append_lines(&fx.log, [1]);
    assert_eq!(seqs(&f.read_available()), vec![1]);
    assert_eq!(f.state(), &FollowState::Following);
}
