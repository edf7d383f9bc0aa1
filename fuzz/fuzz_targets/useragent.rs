//! Fuzzes the built-in `useragent` format: any bytes, never a panic; what parses also serializes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = parsers::Format::builtin("useragent").expect("built-in format");
    if let Ok(entry) = format.parse(data) {
        serde_json::to_string(&entry).expect("an entry always serializes");
    }
    if let Some(second) = format.glued_record(data) {
        let _ = format.parse(second);
    }
});
