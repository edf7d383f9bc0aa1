//! The native format allocates nothing for valid UTF-8 lines (every field borrows from the
//! line), checked with a counting global allocator over the observed Squid lines.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations made by the current thread while `COUNTING` is set.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: the thread-locals may be gone while a thread shuts down.
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
            }
        });
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|a| a.get())
}

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
