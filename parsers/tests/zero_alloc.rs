//! The native format allocates nothing for valid UTF-8 lines (every field borrows from the
//! line), checked with a counting global allocator over the observed Squid lines.
mod support {
    pub mod counting_alloc;
}
use support::counting_alloc::allocations_during;

#[test]
fn native_parse_of_valid_utf8_does_not_allocate() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/squid/observed.log");
    let data = std::fs::read(path).unwrap();
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let format = parsers::Format::builtin("squid").unwrap();
    let mut parsed = 0;
    let n = allocations_during(|| {
        for l in &lines {
            if let Ok(e) = format.parse(l) {
                parsed += 1;
                std::hint::black_box(&e);
            }
        }
    });
    assert_eq!(parsed, lines.len());
    assert_eq!(n, 0, "allocations while parsing {} lines", lines.len());
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let n = allocations_during(|| {
        std::hint::black_box(vec![1u8; 16]);
    });
    assert!(n >= 1);
    // A percent-encoded user name must be decoded into an owned string.
    let line = b"1795835342.930      3 127.0.0.1 TCP_MISS/200 353 GET http://h/u zo%c3%ab HIER_DIRECT/127.0.0.1 text/plain";
    let format = parsers::Format::builtin("squid").unwrap();
    let n = allocations_during(|| {
        std::hint::black_box(&format.parse(line));
    });
    assert!(n >= 1);
}
