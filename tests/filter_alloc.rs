//! `Filter::matches` allocates nothing (it runs for every subscriber on every line), checked with
//! a counting global allocator over the observed Squid lines and a filter using every key.
use proxytail::filter::{Fields, Filter};
#[path = "../parsers/tests/support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_during;

#[test]
fn matching_does_not_allocate() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/squid/observed.log");
    let data = std::fs::read(path).expect("testdata");
    let format = parsers::Format::builtin("squid").expect("squid format");
    let fields: Vec<Fields> = data
        .split(|&b| b == b'\n')
        .filter_map(|l| format.parse(l).ok())
        .map(|e| Fields::from_entry(&e, Some("/var/log/squid/access.log")))
        .collect();
    assert!(fields.len() > 10, "enough lines to look at");
    // One filter per key (so every kind of term runs on every entry), plus OR, negation and a view.
    let exprs = [
        "client:10.0.0.0/8 client:127.0.0.0/8 client:::1",
        "method:GET method:CONNECT",
        "status:2xx status:300-399 status:200",
        "result:TCP_*",
        "domain:*.0.1",
        "url:http://*/r*",
        "user:- user:\"john *\"",
        "bytes:>10",
        "elapsed:<=100000",
        "type:text/*",
        "source:*.log",
        "node:*",
        "\"TCP_miss\" -firefox",
    ];
    let view = Filter::parse("-status:404").expect("valid view");
    let filters: Vec<Filter> = exprs
        .iter()
        .map(|e| Filter::parse(e).expect("valid filter").and(&view))
        .collect();
    let mut matched = 0;
    let allocs = allocations_during(|| {
        for filter in &filters {
            for f in &fields {
                matched += usize::from(std::hint::black_box(filter.matches(f)));
            }
        }
    });
    assert_eq!(allocs, 0, "matches allocated");
    assert!(matched > 0, "the filters select something");
}
