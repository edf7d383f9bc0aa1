//! Lines per second per format, measured against this thread's *CPU* time
//! (`/proc/thread-self/schedstat`) as well as wall time, so a busy shared machine does not
//! understate the parser. Linux only. Run:
//! `cargo run --release -p proxytail-parsers --example throughput [FORMAT]`.
use parsers::Format;
use std::hint::black_box;
use std::time::Instant;

#[path = "../benches/support/mod.rs"]
mod support;
use support::{lines, sidecar};

/// Nanoseconds this thread has spent on a CPU.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn measure(name: &str, format: &Format, batch: &[Vec<u8>]) {
    // `throughput NAME` measures one format only (e.g. under `perf record`).
    if std::env::args().nth(1).is_some_and(|only| only != name) {
        return;
    }
    let batch: Vec<&Vec<u8>> = batch.iter().filter(|l| format.parse(l).is_ok()).collect();
    let total = 2_000_000usize;
    // Warm up.
    for l in batch.iter().cycle().take(total / 10) {
        black_box(&format.parse(black_box(l)));
    }
    let (c0, t0) = (cpu_ns(), Instant::now());
    for l in batch.iter().cycle().take(total) {
        black_box(&format.parse(black_box(l)));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_ns().zip(c0).map(|(b, a)| (b - a) as f64 / 1e9);
    let per = |secs: f64| total as f64 / secs / 1e6;
    match cpu {
        Some(c) => println!(
            "{name:16} {:6.2} M lines/s per CPU-second ({:5.0} ns/line), {:6.2} M lines/s wall",
            per(c),
            c * 1e9 / total as f64,
            per(wall)
        ),
        None => println!("{name:16} {:6.2} M lines/s wall", per(wall)),
    }
}

fn main() {
    let b = |n: &str| Format::builtin(n).expect("built-in");
    measure("squid", &b("squid"), &lines("squid/observed.log"));
    measure("common", &b("common"), &lines("common/common.log"));
    measure("combined", &b("combined"), &lines("combined/combined.log"));
    measure("referrer", &b("referrer"), &lines("referrer/referrer.log"));
    measure(
        "useragent",
        &b("useragent"),
        &lines("useragent/useragent.log"),
    );
    let custom = Format::from_logformat(&sidecar("custom/squidlike.logformat")).expect("compiles");
    measure("logformat_regex", &custom, &lines("custom/squidlike.log"));
    let extras =
        Format::from_logformat(&sidecar("custom/combinedlike.logformat")).expect("compiles");
    measure("logformat_comb", &extras, &lines("custom/combinedlike.log"));
    let nginx = Format::regex(&sidecar("regex/nginx.regex")).expect("compiles");
    measure("regex_nginx", &nginx, &lines("regex/nginx.log"));
}
