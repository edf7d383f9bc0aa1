//! The shipped Caddy snippet (`packaging/caddy/proxytail.caddy`) in front of a real daemon: Debian's
//! Caddy runs with its own config, pid file and data directories in a temporary directory on
//! 127.0.0.1 (never the system service, admin API off), the snippet imported with only its backend
//! port changed, and the token + WebSocket flow runs through it, close codes included. Skipped with
//! a message when `/usr/bin/caddy` is absent and `CI` is unset; in CI its absence is a failure.
mod pkg_support;

use pkg_support::{available, flow, free_port, prefix, shipped_with_backend, Daemon};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CADDY: &str = "/usr/bin/caddy";

/// A Caddy started for this test only; stopped by the pid it wrote, on drop.
struct Caddy {
    /// Config, pid file, data and config homes; removed after Caddy stops.
    dir: tempfile::TempDir,
    /// Where Caddy listens.
    addr: SocketAddr,
}

impl Caddy {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(backend: SocketAddr) -> Caddy {
        let dir = prefix();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let snippet = shipped_with_backend("caddy/proxytail.caddy", dir.path(), backend);
        let conf = format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n\
             http://{addr} {{\n\timport {}\n}}\n",
            snippet.display()
        );
        std::fs::write(dir.path().join("Caddyfile"), conf).expect("write Caddyfile");
        let caddy = Caddy { dir, addr };
        // `caddy start` returns once the new process has loaded its config and is serving. The
        // background process inherits stdout/stderr: a file, not a pipe that would never close.
        // `timeout` bounds the wait.
        let out = std::fs::File::create(caddy.path("caddy.log")).expect("log file");
        let status = Command::new("timeout")
            .arg("30")
            .arg(CADDY)
            .args(["start", "--adapter", "caddyfile", "--config"])
            .arg(caddy.path("Caddyfile"))
            .arg("--pidfile")
            .arg(caddy.path("caddy.pid"))
            .env("HOME", caddy.dir.path())
            .env("XDG_DATA_HOME", caddy.path("data"))
            .env("XDG_CONFIG_HOME", caddy.path("config"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .status()
            .expect("spawn caddy");
        assert!(
            status.success(),
            "caddy start failed ({status}):\n{}",
            std::fs::read_to_string(caddy.path("caddy.log")).unwrap_or_default()
        );
        caddy
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.path("caddy.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_websocket_flow_through_the_shipped_caddy_snippet() {
    if !available(CADDY, "caddy") {
        return;
    }
    let daemon = Daemon::start().await;
    let caddy = Caddy::start(daemon.addr);
    flow(caddy.addr, daemon).await;
}
