//! Parse throughput per format, in lines per second (criterion `Throughput::Elements`).
//! Each benchmark parses a batch of realistic lines from `testdata/` once per iteration.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use parsers::Format;

mod support;
use support::{lines, sidecar};

fn bench_format(c: &mut Criterion, name: &str, format: &Format, batch: &[Vec<u8>]) {
    // Only lines the format accepts: the figure is for the hot path, not for error returns.
    let batch: Vec<&Vec<u8>> = batch.iter().filter(|l| format.parse(l).is_ok()).collect();
    assert!(!batch.is_empty(), "{name}: no parseable line");
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            for l in &batch {
                black_box(&format.parse(black_box(l)));
            }
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let builtin = |n: &str| Format::builtin(n).unwrap();
    bench_format(c, "squid", &builtin("squid"), &lines("squid/observed.log"));
    bench_format(c, "common", &builtin("common"), &lines("common/common.log"));
    bench_format(
        c,
        "combined",
        &builtin("combined"),
        &lines("combined/combined.log"),
    );
    bench_format(
        c,
        "referrer",
        &builtin("referrer"),
        &lines("referrer/referrer.log"),
    );
    bench_format(
        c,
        "useragent",
        &builtin("useragent"),
        &lines("useragent/useragent.log"),
    );
    // A custom format the hand matcher takes (no spaced field), on the observed lines with
    // their user field dropped, and one that needs the regex fallback.
    let hand =
        Format::from_logformat("%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %Sh/%<a %mt").unwrap();
    let no_user: Vec<Vec<u8>> = lines("squid/observed.log")
        .iter()
        .map(|l| {
            let s = String::from_utf8_lossy(l);
            let mut f: Vec<&str> = s.split_whitespace().collect();
            f.remove(f.len() - 3);
            let (head, tail) = f.split_at(2);
            format!("{} {:>6} {}", head[0], head[1], tail.join(" ")).into_bytes()
        })
        .filter(|l| !l.windows(4).any(|w| w == b"john"))
        .collect();
    bench_format(c, "logformat_hand", &hand, &no_user);
    let fallback = Format::from_logformat(&sidecar("custom/squidlike.logformat")).unwrap();
    bench_format(
        c,
        "logformat_regex",
        &fallback,
        &lines("custom/squidlike.log"),
    );
    let nginx = Format::regex(&sidecar("regex/nginx.regex")).unwrap();
    bench_format(c, "regex_nginx", &nginx, &lines("regex/nginx.log"));
}

criterion_group!(parse, benches);
criterion_main!(parse);
