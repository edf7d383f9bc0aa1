//! Cost of `Filter::matches` per entry (the hot path: every subscriber's filter runs on every
//! line), over the observed Squid lines of `testdata/`. Criterion's `Throughput::Elements` gives
//! matches per second; its time per iteration divided by the batch size is ns per match.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use proxytail::filter::{Fields, Filter};

fn fields() -> Vec<Fields> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/squid/observed.log");
    let data = std::fs::read(path).expect("testdata");
    let format = parsers::Format::builtin("squid").expect("squid format");
    data.split(|&b| b == b'\n')
        .filter_map(|l| format.parse(l).ok())
        .map(|e| Fields::from_entry(&e, None))
        .collect()
}

fn benches(c: &mut Criterion) {
    let batch = fields();
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
    let json: Vec<Vec<u8>> = batch
        .iter()
        .map(|f| {
            serde_json::to_vec(&serde_json::json!({
                "id": 1, "client_ip": f.client_ip, "method": f.method,
                "destination": f.destination, "code": f.code, "result": f.result,
                "user": f.user, "bytes": f.bytes, "elapsed_ms": f.elapsed_ms,
                "content_type": f.content_type,
            }))
            .expect("json")
        })
        .collect();
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
