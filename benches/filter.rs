//! Cost of `Filter::matches` per entry (the hot path: every subscriber's filter runs on every
//! line), over the observed Squid lines of `testdata/`. Criterion's `Throughput::Elements` gives
//! matches per second; its time per iteration divided by the batch size is ns per match.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use proxytail::filter::{Fields, Filter};

/// Each observed line's fields and its JSON text (as the journal holds it).
fn entries() -> Vec<(Fields, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/squid/observed.log");
    let data = std::fs::read(path).expect("testdata");
    let format = parsers::Format::builtin("squid").expect("squid format");
    data.split(|&b| b == b'\n')
        .filter_map(|l| format.parse(l).ok())
        .map(|e| {
            let json = serde_json::to_vec(&e).expect("json");
            (Fields::from_entry(&e, None), json)
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let (batch, json): (Vec<Fields>, Vec<Vec<u8>>) = entries().into_iter().unzip();
    assert!(!batch.is_empty());
    let mut g = c.benchmark_group("matches");
    g.throughput(Throughput::Elements(batch.len() as u64));
    for expr in [
        "status:5xx",
        "client:10.0.0.0/8",
        "domain:*.example.com",
        "firefox",
        "method:GET status:2xx -user:- domain:*.example.com bytes:>1000",
    ] {
        let filter = Filter::parse(expr).expect("valid filter");
        g.bench_function(expr, |b| {
            b.iter(|| {
                for f in &batch {
                    black_box(filter.matches(black_box(f)));
                }
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("from_json");
    g.throughput(Throughput::Elements(json.len() as u64));
    g.bench_function("entry", |b| {
        b.iter(|| {
            for j in &json {
                black_box(Fields::from_json(black_box(j)));
            }
        })
    });
    g.finish();
}

criterion_group!(filter, benches);
criterion_main!(filter);
