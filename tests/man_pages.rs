//! The man pages kept in `packaging/man` (packaged by `cargo deb`) are exactly what
//! `examples/man.rs` renders from today's clap definitions: a flag added without
//! `cargo run --example man` fails here.
#[allow(dead_code)]
#[path = "../examples/man.rs"]
mod man;

#[test]
fn packaged_man_pages_match_the_clap_definitions() {
    use clap::CommandFactory;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = proxytail::config::Cli::command();
    cmd.build();
    man::render(dir.path(), &cmd, "proxytail").expect("render");
    let kept = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/man");
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(dir.path()),
        names(&kept),
        "pages; run `cargo run --example man`"
    );
    for name in names(dir.path()) {
        let fresh = std::fs::read(dir.path().join(&name)).expect("fresh page");
        let old = std::fs::read(kept.join(&name)).expect("kept page");
        assert!(
            fresh == old,
            "packaging/man/{name} is stale: run `cargo run --example man`"
        );
    }
}
