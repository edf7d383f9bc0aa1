//! The shipped Apache snippet (`packaging/apache/proxytail.conf`) in front of a real daemon: Debian's
//! httpd runs with its own ServerRoot, config, pid and logs in a temporary directory on 127.0.0.1
//! (never the system service), the snippet included with only its backend port changed, and the
//! token + WebSocket flow runs through it, close codes included. Skipped with a message when
//! `/usr/sbin/apache2` is absent and `CI` is unset; in CI its absence is a failure.
mod pkg_support;

use pkg_support::{
    assert_token_not_logged, available, flow, free_port, is_root, prefix, run_ok,
    shipped_with_backend, wait_for_file, Daemon,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

/// An httpd started for this test only; stopped through its own pid file on drop.
struct Apache {
    /// ServerRoot: config, pid file, logs; removed after httpd stops.
    dir: tempfile::TempDir,
    /// Where httpd listens.
    addr: SocketAddr,
}

impl Apache {
    fn command(&self) -> Command {
        let mut cmd = Command::new(APACHE);
        cmd.arg("-f").arg(self.path("httpd.conf"));
        cmd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(backend: SocketAddr) -> Apache {
        let dir = prefix();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let snippet = shipped_with_backend("apache/proxytail.conf", dir.path(), backend);
        let p = dir.path().display();
        let user = if is_root() {
            "User nobody\nGroup nogroup"
        } else {
            ""
        };
        let conf = format!(
            r#"
ServerName localhost
ServerRoot {p}
DefaultRuntimeDir {p}
PidFile {p}/httpd.pid
ErrorLog {p}/error.log
LogLevel warn
{user}
Listen {addr}
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule proxy_module {MODULES}/mod_proxy.so
LoadModule proxy_http_module {MODULES}/mod_proxy_http.so
LoadModule headers_module {MODULES}/mod_headers.so
LoadModule setenvif_module {MODULES}/mod_setenvif.so
Define APACHE_LOG_DIR {p}
LogFormat "%h %l %u %t \"%r\" %>s %O \"%{{Referer}}i\" \"%{{User-Agent}}i\"" combined
<VirtualHost {addr}>
    Include {snippet}
</VirtualHost>
"#,
            snippet = snippet.display()
        );
        std::fs::write(dir.path().join("httpd.conf"), conf).expect("write httpd.conf");
        let apache = Apache { dir, addr };
        let error_log = apache.path("error.log");
        run_ok(apache.command().arg("-t"), &error_log);
        // httpd writes its pid file once its listeners are bound; that file is the readiness signal.
        wait_for_file(&apache.path("httpd.pid"), Duration::from_secs(20), || {
            run_ok(apache.command().args(["-k", "start"]), &error_log)
        });
        apache
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let _ = self.command().args(["-k", "stop"]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_websocket_flow_through_the_shipped_apache_snippet() {
    if !available(APACHE, "apache2") {
        return;
    }
    let daemon = Daemon::start().await;
    let apache = Apache::start(daemon.addr);
    let token = flow(apache.addr, daemon).await;
    // The single-use token travels in the query string: the snippet keeps it out of the access log.
    assert_token_not_logged(&apache.path("access.log"), &token, "httpd");
}
