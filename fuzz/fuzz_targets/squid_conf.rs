//! Fuzzes `squid.conf` discovery: any text, includes answered from the same text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut include = |p: &Path| -> Result<Vec<(PathBuf, String)>, String> {
        Ok(vec![(p.to_path_buf(), text.to_string())])
    };
    let _ = parsers::discover(&text, Path::new("/etc/squid/squid.conf"), &mut include);
});
