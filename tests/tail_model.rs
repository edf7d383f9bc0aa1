//! Model-based property test (vector's file-source spirit, RELIABILITY 14): random sequences of
//! write / partial write / rename / copytruncate / truncate / delete / read / restart are applied to
//! a real file followed by a real `Follower`, and to a tiny model of what was written. Delivered
//! lines never repeat and keep their order; at the end they are exactly the written ones when no
//! lossy operation happened, and otherwise sandwiched: everything written minus the lines a lossy
//! operation may destroy ⊆ delivered ⊆ written.
//!
//! Cases: 64 by default (CI), `PROPTEST_CASES=10000` for the full run.
use proptest::prelude::*;
use proxytail::source::file::follow::{FollowOptions, Follower, StartAt};
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` complete lines.
    Write(u8),
    /// Append the first part of the next line (finished by the next op that writes or rotates).
    Partial,
    /// `access.log` → `access.log.N`, new empty `access.log`.
    Rename,
    /// Copy to `access.log.N`, truncate, continue (writer paused across both).
    CopyTruncate,
    /// Truncate with no copy: unread lines are lost (counted, allowed by the model).
    Truncate,
    /// Delete and recreate.
    Delete,
    /// `read_available` after `secs` seconds.
    Read(u8),
    /// Save positions, drop the follower, resume from them.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Write),
        1 => Just(Op::Partial),
        1 => Just(Op::Rename),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Truncate),
        1 => Just(Op::Delete),
        4 => (0u8..4).prop_map(Op::Read),
        1 => Just(Op::Restart),
    ]
}

/// A real Squid native line; its timestamp advances with `seq`, as a live log's does (a content
/// fingerprint cannot tell apart two files whose first bytes are identical).
fn line(seq: u64) -> String {
    format!(
        "{}.065      2 ::1 TCP_MISS/200 353 GET http://h/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain\n",
        1_795_835_993 + seq * 7
    )
}

fn seq_of(bytes: &[u8]) -> u64 {
    let t = std::str::from_utf8(bytes).unwrap();
    let url = t.split(' ').find(|w| w.starts_with("http://h/x/")).unwrap();
    url["http://h/x/".len()..].parse().unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    log: PathBuf,
    /// Next seq to write.
    next: u64,
    /// Bytes of line `next` already written (a partial write), 0 if none.
    partial: usize,
    /// Rotated-name counter.
    gen: u64,
    /// Seqs written to the current file that no read has seen yet.
    unread: BTreeSet<u64>,
    /// Seqs a lossy operation may have destroyed.
    lossy: BTreeSet<u64>,
    /// The current file was created after the last read (the follower never had it open).
    unseen_file: bool,
    /// Unread lines of deleted files: only the follower's open handle still reaches them, so a
    /// restart before the next read loses them.
    deleted_unread: BTreeSet<u64>,
    /// Bytes in the current file (since its creation or last truncation).
    cur_len: usize,
    /// The current file holds a complete line (or 128 bytes): a fingerprint taken now is strong.
    cur_strong: bool,
    /// A read happened while the current file's prefix was strong: the follower has its
    /// fingerprint, so a copy made by copytruncate is recognised (a few bytes of a partial first
    /// line are not enough to tell files apart).
    fingerprinted: bool,
}

impl World {
    fn append(&mut self, data: &[u8]) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        f.write_all(data).unwrap();
        self.cur_len += data.len();
        self.cur_strong |= self.cur_len >= 128 || data.contains(&b'\n');
    }

    fn new_file(&mut self) {
        self.cur_len = 0;
        self.cur_strong = false;
        self.fingerprinted = false;
        self.unread.clear();
    }

    fn finish_partial(&mut self) {
        if self.partial > 0 {
            let l = line(self.next);
            self.append(&l.as_bytes()[self.partial..]);
            self.unread.insert(self.next);
            self.next += 1;
            self.partial = 0;
        }
    }

    fn rotated(&mut self) -> PathBuf {
        self.gen += 1;
        self.log.with_file_name(format!("access.log.{}", self.gen))
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    fs::File::create(&log).unwrap();
    let mut w = World {
        _dir: dir,
        log: log.clone(),
        next: 1,
        partial: 0,
        gen: 0,
        unread: BTreeSet::new(),
        lossy: BTreeSet::new(),
        unseen_file: false,
        cur_len: 0,
        cur_strong: false,
        fingerprinted: false,
        deleted_unread: BTreeSet::new(),
    };
    let opts = FollowOptions::default();
    let mut f = Follower::new(&log, opts.clone(), StartAt::Beginning);
    let t0 = Instant::now();
    let mut now = t0;
    let mut delivered: Vec<u64> = Vec::new();
    let read = |f: &mut Follower, now: Instant, delivered: &mut Vec<u64>| {
        for l in f.read_available_at(now) {
            prop_assert!(
                !l.fragment,
                "no fragment: the writer never leaves one behind"
            );
            delivered.push(seq_of(&l.bytes));
        }
        Ok(())
    };
    for op in ops {
        match op {
            Op::Write(n) => {
                w.finish_partial();
                let mut s = String::new();
                for _ in 0..n {
                    s.push_str(&line(w.next));
                    w.unread.insert(w.next);
                    w.next += 1;
                }
                w.append(s.as_bytes());
            }
            Op::Partial => {
                w.finish_partial();
                w.partial = 30;
                w.append(&line(w.next).as_bytes()[..30]);
            }
            Op::Rename => {
                w.finish_partial();
                let to = w.rotated();
                fs::rename(&log, to).unwrap();
                fs::File::create(&log).unwrap();
                w.unseen_file = true;
                w.new_file();
            }
            Op::CopyTruncate => {
                w.finish_partial();
                let to = w.rotated();
                fs::copy(&log, &to).unwrap();
                OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                if !w.fingerprinted {
                    // The follower saw the file empty: nothing identifies the copy.
                    w.lossy.extend(w.unread.iter().copied());
                }
                w.new_file();
            }
            Op::Truncate => {
                w.finish_partial();
                OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                w.lossy.extend(w.unread.iter().copied());
                w.new_file();
            }
            Op::Delete => {
                w.finish_partial();
                if w.unseen_file {
                    w.lossy.extend(w.unread.iter().copied());
                } else {
                    w.deleted_unread.extend(w.unread.iter().copied());
                }
                fs::remove_file(&log).unwrap();
                fs::File::create(&log).unwrap();
                w.unseen_file = true;
                w.new_file();
            }
            Op::Read(secs) => {
                now += Duration::from_secs(u64::from(secs));
                read(&mut f, now, &mut delivered)?;
                w.unread.clear();
                w.deleted_unread.clear();
                w.unseen_file = false;
                w.fingerprinted |= w.cur_strong;
            }
            Op::Restart => {
                w.lossy.append(&mut w.deleted_unread);
                let saved = f.positions();
                f = Follower::resume(&log, opts.clone(), &saved);
            }
        }
    }
    w.finish_partial();
    // Drain: past every grace period, until nothing more comes.
    for k in 0..4 {
        now += Duration::from_secs(10 * (k + 1));
        read(&mut f, now, &mut delivered)?;
    }
    let mut unique = delivered.clone();
    unique.sort_unstable();
    unique.dedup();
    prop_assert_eq!(
        unique.len(),
        delivered.len(),
        "no duplicate in {:?}",
        delivered
    );
    // Order holds among lines no lossy operation touched (those may come back late, recovered
    // from a copy the follower could not identify at the time).
    let safe: Vec<u64> = delivered
        .iter()
        .copied()
        .filter(|s| !w.lossy.contains(s))
        .collect();
    let mut sorted = safe.clone();
    sorted.sort_unstable();
    prop_assert_eq!(&sorted, &safe, "no reordering");
    let written: BTreeSet<u64> = (1..w.next).collect();
    let got: BTreeSet<u64> = delivered.iter().copied().collect();
    prop_assert!(got.is_subset(&written), "only written lines");
    let must: BTreeSet<u64> = written.difference(&w.lossy).copied().collect();
    let missing: Vec<_> = must.difference(&got).collect();
    prop_assert!(missing.is_empty(), "lost lines {:?}", missing);
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn follower_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
