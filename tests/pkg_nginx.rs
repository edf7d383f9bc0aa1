//! The shipped nginx snippets in front of a real daemon: Debian's nginx runs as a child with its own
//! prefix, config, pid and logs in a temporary directory on 127.0.0.1 (never the system service),
//! `packaging/nginx/proxytail-locations.conf` included verbatim, and the token + WebSocket flow runs
//! through it, close codes included. Skipped with a message when `/usr/sbin/nginx` is absent and `CI`
//! is unset; in CI its absence is a failure.
mod pkg_support;

use pkg_support::{
    assert_token_not_logged, available, flow, free_port, prefix, run_ok, shipped, Daemon,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

const NGINX: &str = "/usr/sbin/nginx";

/// An nginx master started for this test only; stopped through its own pid file on drop.
struct Nginx {
    /// The prefix: config, pid file, logs, temp paths; removed after nginx stops.
    dir: tempfile::TempDir,
    /// Where nginx listens.
    addr: SocketAddr,
}

impl Nginx {
    fn command(&self) -> Command {
        let mut cmd = Command::new(NGINX);
        let p = self.dir.path().display();
        cmd.args(["-p", &format!("{p}/"), "-c", &format!("{p}/nginx.conf")]);
        cmd
    }

    /// Starts nginx in front of `backend`: the `proxytail` upstream points at it, and the shipped
    /// locations snippet is included as is.
    fn start(backend: SocketAddr) -> Nginx {
        let dir = prefix();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let p = dir.path().display();
        let conf = format!(
            r#"
worker_processes 1;
error_log {p}/error.log info;
pid {p}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    upstream proxytail {{ server {backend}; keepalive 8; }}
    server {{
        listen {addr};
        server_name localhost;
        include {snippet};
    }}
}}
"#,
            snippet = shipped("nginx/proxytail-locations.conf").display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let nginx = Nginx { dir, addr };
        // Daemon mode: the command returns once the listening socket is bound (or failed).
        run_ok(&mut nginx.command(), &nginx.path("error.log"));
        nginx
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.command().args(["-s", "stop"]).status();
    }
}

#[test]
fn the_shipped_upstream_snippet_names_the_default_backend() {
    let text = std::fs::read_to_string(shipped("nginx/proxytail-upstream.conf")).expect("read");
    assert!(text.contains("upstream proxytail {"), "{text}");
    assert!(text.contains("server 127.0.0.1:5001;"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_websocket_flow_through_the_shipped_nginx_snippet() {
    if !available(NGINX, "nginx") {
        return;
    }
    let daemon = Daemon::start().await;
    let nginx = Nginx::start(daemon.addr);
    let token = flow(nginx.addr, daemon).await;
    // The single-use token travels in the query string: the snippet keeps it out of nginx's log.
    assert_token_not_logged(&nginx.path("access.log"), &token, "nginx");
}
