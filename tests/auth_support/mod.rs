//! Shared helpers of the `auth_*` tests: an in-process server on 127.0.0.1:0 around a real
//! `AppState` (stopped on drop), configs from arguments, and the token endpoint's common header
//! checks. The routes-only server, cheap Argon2 hashes, users files, the raw HTTP/1.1 client and the
//! tracing capture are `tests/common`'s leaf modules, included here (not the whole harness, which
//! `torture` does not want) and re-exported.
#![allow(dead_code)]

#[path = "../common/capture.rs"]
mod capture;
#[path = "../common/http.rs"]
mod http;
#[path = "../common/server.rs"]
mod server;
#[path = "../common/users.rs"]
mod users;

#[allow(unused_imports)]
pub use self::capture::Capture;
#[allow(unused_imports)]
pub use self::http::{basic, parse_response, request_bytes, HttpResponse};
#[allow(unused_imports)]
pub use self::users::{cheap_hash, cheap_params, hash_params, write_users};

use proxytail::auth::Authenticator;
use proxytail::config::Config;
use proxytail::http::AppState;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Upper bound on any single HTTP exchange in these tests (a failure bound, not a delay).
pub const IO_BOUND: Duration = Duration::from_secs(30);

/// A parsed HTTP response (the shared client's).
pub type Reply = HttpResponse;

/// A validated config from command-line style `args` (program name added).
pub fn config(args: &[&str]) -> Config {
    let mut argv = vec!["proxytail"];
    argv.extend_from_slice(args);
    Config::from_args(argv).unwrap().1
}

/// A server bound to 127.0.0.1:0 serving every route; stopped when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The state its routes use (authenticator counters, token store).
    pub state: AppState,
    /// Cancels the server on drop.
    stop: CancellationToken,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts a server with the authenticator loaded from `config`.
pub async fn serve(config: Config) -> TestServer {
    let auth = Authenticator::load(&config).unwrap();
    serve_with(config, auth).await
}

/// Starts a server around `auth`.
pub async fn serve_with(config: Config, auth: Authenticator) -> TestServer {
    let state = self::server::serve_routes(config, auth);
    TestServer {
        addr: state.local_addr,
        stop: state.shutdown.clone(),
        state,
    }
}

/// `GET path` with `headers` over a fresh connection (`Connection: close`), within [`IO_BOUND`].
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    self::http::get_within(addr, path, headers, IO_BOUND).await
}

/// Asserts the headers every token-endpoint reply carries, and that no CORS header is present.
pub fn assert_common_headers(reply: &Reply) {
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    assert!(
        !reply
            .headers
            .iter()
            .any(|(n, _)| n.starts_with("access-control-")),
        "no CORS header: {reply:?}"
    );
}
