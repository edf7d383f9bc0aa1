//! Journal benchmark: the cost of appending a line to the journal, and the speed of reading it back
//! from disk with the store's reader (the reader alone: no WebSocket, no filter).
//!
//! Both journal formats are driven by the same loop, in batches of `--batch` records of the same
//! realistic entry (about 330 bytes of JSON):
//! - `v2`: this branch's [`Journal::append`] (segments with header and sparse index, retention);
//! - `v1`: the first release's append (main's `src/tail/journal.rs`: one buffer per batch,
//!   `metadata().len()` then `write_all` on an append-mode file, a new file every `--history`
//!   records), reproduced here operation for operation so that both run in one harness.
//!
//! Then a reader opened at id 0 reads all `v2` records back and reports entries/s, and the peak
//! RSS of the process (VmHWM), which stays near one batch however many records are read; then the
//! same with the readers replay and search use (`Reader::filtered`): unfiltered (no fields built)
//! and `status:5xx` (1 % of the records are 503), beside the search as it was (fields built for
//! every record, then the filter). Each with the process's CPU time per record (`/proc/self/stat`),
//! less disturbed by a loaded machine than the wall clock.
//!
//! ```text
//! cargo run --release --example journal_bench -- --count 2000000 --batch 100
//! ```
use bytes::Bytes;
use proxytail::filter::Filter;
use proxytail::hub::Record;
use proxytail::store::journal::{Journal, Options, Retention};
use proxytail::store::reader::{Chunk, Reader};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::{Duration, Instant};

/// Records of about 330 bytes, as the squid parser makes them; one in 100 is a 503.
fn record(id: u64) -> Record {
    let ms = 1_774_449_130_123 + id as i64;
    let (code, status) = if id % 100 == 0 {
        (503, "503 Service Unavailable")
    } else {
        (200, "200 OK")
    };
    let json = format!(
        "{{\"id\":{id},\"timestamp\":\"2026-03-25 14:32:10\",\"client_ip\":\"192.168.1.10\",\
         \"method\":\"GET\",\"destination\":\"http://example.com/assets/app-{id}.js\",\
         \"status\":\"{status}\",\"bytes\":4096,\"ts\":{}.{:03},\"elapsed_ms\":85,\
         \"result\":\"TCP_MISS\",\"code\":{code},\"user\":null,\"hierarchy\":\"HIER_DIRECT\",\
         \"peer\":\"93.184.216.34\",\"content_type\":\"application/javascript\"}}",
        ms / 1000,
        ms % 1000
    );
    Record::from_json(id, Bytes::from(json))
}

/// The first release's writer: main's `Journal::append` and `rotate`, without recovery.
struct V1 {
    dir: std::path::PathBuf,
    active: File,
    seq: u64,
    records: usize,
    per_segment: usize,
}

impl V1 {
    fn append(&mut self, records: &[Record]) -> std::io::Result<()> {
        if self.records >= self.per_segment {
            // main: `rotate()` opens the next segment and removes the one before the active.
            self.seq += 1;
            self.active = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("journal.{}.ndjson", self.seq)))?;
            if self.seq >= 2 {
                let old = self.dir.join(format!("journal.{}.ndjson", self.seq - 2));
                let _ = std::fs::remove_file(old);
            }
            self.records = 0;
        }
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.json.len() + 1).sum());
        for r in records {
            buf.extend_from_slice(&r.json);
            buf.push(b'\n');
        }
        let _before = self.active.metadata()?.len();
        self.active.write_all(&buf)?;
        self.records += records.len();
        Ok(())
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's CPU time (user + system), in seconds, at clock-tick resolution.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Appends `count` records in batches through `append`; returns ns per line. Records are made
/// before the clock starts, in chunks, so only the journal's work is timed.
fn write(count: u64, batch: u64, mut append: impl FnMut(&[Record])) -> f64 {
    let mut spent = Duration::ZERO;
    let chunk = 100_000u64.max(batch);
    let mut id = 1;
    while id <= count {
        let recs: Vec<Record> = (id..(id + chunk).min(count + 1)).map(record).collect();
        let t = Instant::now();
        for b in recs.chunks(batch as usize) {
            append(b);
        }
        spent += t.elapsed();
        id += chunk;
    }
    spent.as_nanos() as f64 / count as f64
}

fn main() -> std::io::Result<()> {
    let count = arg("--count", 1_000_000);
    let batch = arg("--batch", 100).max(1);
    let history = arg("--history", 10_000) as usize;
    let base = tempfile::tempdir()?;
    let (v1_dir, v2_dir) = (base.path().join("v1"), base.path().join("v2"));
    std::fs::create_dir_all(&v1_dir)?;
    std::fs::create_dir_all(&v2_dir)?;

    let mut v1 = V1 {
        active: OpenOptions::new()
            .create(true)
            .append(true)
            .open(v1_dir.join("journal.0.ndjson"))?,
        dir: v1_dir,
        seq: 0,
        records: 0,
        per_segment: history,
    };
    let v1_ns = write(count, batch, |b| v1.append(b).expect("v1 append"));

    let options = Options::new(
        history,
        Retention {
            age: Duration::from_secs(365 * 86_400),
            bytes: 1 << 40,
        },
    );
    let (mut journal, _) = Journal::open(&v2_dir, &options, Some(1))?;
    let v2_ns = write(count, batch, |b| journal.append(b).expect("v2 append"));
    let stats = journal.store().stats();
    println!(
        "write: {count} lines in batches of {batch}: v1 (main) {v1_ns:.0} ns/line, v2 (store) {v2_ns:.0} ns/line; \
         v2 journal {} MiB in {} segments",
        stats.bytes >> 20,
        stats.segments
    );

    let rss_before = peak_rss_kib();
    let store = journal.store();
    let five = Filter::parse("status:5xx").expect("filter");
    // (what, records it yields, how to open it, whether the filter is applied after reading)
    type Mode<'a> = (&'a str, u64, Box<dyn Fn() -> Reader + 'a>, bool);
    let modes: [Mode; 4] = [
        (
            "fields built (history at start)",
            count,
            Box::new(|| store.read_after(0)),
            false,
        ),
        (
            "unfiltered replay (no fields)",
            count,
            Box::new(|| store.read_after(0).filtered(Filter::default())),
            false,
        ),
        (
            "status:5xx search, as before (fields, then filter)",
            count / 100,
            Box::new(|| store.read_after(0)),
            true,
        ),
        (
            "status:5xx search (pre-check, then fields)",
            count / 100,
            Box::new(|| store.read_after(0).filtered(five.clone())),
            false,
        ),
    ];
    for (what, want, open, filter_after) in modes {
        let mut reader = open();
        let (cpu, t) = (cpu_secs(), Instant::now());
        let (mut n, mut last) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match reader.next_batch_blocking()? {
                Chunk::Records(r) => {
                    for r in r {
                        if !filter_after || five.matches(r.fields()) {
                            n += 1;
                            last = r.id;
                        }
                    }
                }
                Chunk::Gone { .. } => {}
                Chunk::CaughtUp => break,
            }
        }
        let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - cpu);
        assert_eq!(
            (n, last),
            (want, count),
            "{what}: every record read back once"
        );
        println!(
            "read, {what}: {count} records in {secs:.2} s = {:.0} records/s, CPU {:.0} ns/record; \
             {n} yielded; peak RSS {} MiB before reading, {} MiB after",
            count as f64 / secs,
            cpu * 1e9 / count as f64,
            rss_before >> 10,
            peak_rss_kib() >> 10
        );
    }
    Ok(())
}
