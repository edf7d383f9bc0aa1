//! Reading the shared `testdata/` corpus for the parser benchmarks: the `parse` bench and the
//! `throughput` example both include this file (`#[path]`), so the two measure the same lines.
//! Not a bench target itself (Cargo only discovers `benches/*.rs` and `benches/*/main.rs`).

use std::path::{Path, PathBuf};

/// `testdata/{rel}` of the workspace.
fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel)
}

/// The non-empty lines of `testdata/{rel}`, as bytes.
pub fn lines(rel: &str) -> Vec<Vec<u8>> {
    let p = testdata(rel);
    let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// A sidecar file's single line (a logformat definition or a regex), without its line end.
pub fn sidecar(rel: &str) -> String {
    let p = testdata(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.trim_end_matches(['\n', '\r']).to_owned()
}
