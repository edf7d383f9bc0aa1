//! Writes the man pages, generated from the clap definitions, into the directory given as the first
//! argument (default `packaging/man`): `proxytail.1` and one `proxytail-<subcommand>.1` per
//! subcommand (which `proxytail.1` refers to). The pages are kept in the repository so that
//! `cargo deb` works on a fresh clone (it gzips them itself); `tests/man_pages.rs` fails when they
//! differ from what this writes. After changing a flag: `cargo run --example man`.
use clap::CommandFactory;
use proxytail::config::Cli;
use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "packaging/man".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Cli::command();
    cmd.build();
    render(&dir, &cmd, "proxytail")
}

/// Writes `name.1` for `cmd`, then recurses into its visible subcommands as `name-sub.1`.
pub fn render(dir: &Path, cmd: &clap::Command, name: &str) -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name)
        .render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page)?;
    println!("{}", path.display());
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        render(dir, sub, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(())
}
