//! Fuzzes the `logformat` compiler: the input's first line is a definition, the rest a log line.
//! Compiling never panics; a compiled format never panics on the line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (def, line) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(def) = std::str::from_utf8(def) else { return };
    if let Ok(format) = parsers::Format::from_logformat(def) {
        if let Ok(entry) = format.parse(line) {
            serde_json::to_string(&entry).expect("an entry always serializes");
        }
    }
});
