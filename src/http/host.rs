//! The `Host` allowlist against DNS rebinding (CONTRACT §11): a page on `evil.example` whose name
//! was re-pointed at 127.0.0.1 reaches the daemon with `Host: evil.example`. Only the daemon's own
//! names are served: loopback names, the listen address, the `--public-url` hosts; anything else
//! gets 421 before any route runs.
use super::{reject, AppState};
use std::net::{IpAddr, SocketAddr};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::Filter;

/// Answers 421 for a request whose `Host` is not allowed; rejects (lets the routes run) otherwise.
pub fn guard(state: &AppState) -> BoxedFilter<(warp::reply::Response,)> {
    let local = state.local_addr;
    let config = state.config.clone();
    warp::header::headers_cloned()
        .and_then(move |headers: warp::http::HeaderMap| {
            // Every `Host` line must pass: a second, foreign one must not ride behind a good one.
            let allowed = headers.get_all(warp::http::header::HOST).iter().all(|h| {
                h.to_str()
                    .is_ok_and(|h| host_allowed(h, local, &config.public_hosts))
            });
            async move {
                if allowed {
                    Err(warp::reject())
                } else {
                    Ok(reject::json_error(
                        StatusCode::MISDIRECTED_REQUEST,
                        "unknown Host: set --public-url to the address clients use",
                    ))
                }
            }
        })
        .boxed()
}

/// True when `host` (a `Host` header: name or address, optional port) names this daemon. A request
/// without `Host` (HTTP/1.0) cannot come from a rebound browser page and is not refused (`all` of
/// no lines is true).
fn host_allowed(host: &str, local: SocketAddr, public_hosts: &[String]) -> bool {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || public_hosts.contains(&name) {
        return true;
    }
    // An address literal cannot be rebound (no DNS): the daemon's own, or loopback, is fine.
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == local.ip() || local.ip().is_unspecified(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_names_pass_and_others_do_not() {
        let local: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let public = ["proxy.example".to_owned()];
        for ok in [
            "localhost",
            "LOCALHOST:5001",
            "127.0.0.1",
            "127.0.0.1:5001",
            "[::1]",
            "[::1]:5001",
            "proxy.example",
            "Proxy.Example:443",
        ] {
            assert!(host_allowed(ok, local, &public), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:5001",
            "localhost.evil.example",
            "10.0.0.1",
            "",
        ] {
            assert!(!host_allowed(bad, local, &public), "{bad}");
        }
        let any: SocketAddr = "0.0.0.0:5001".parse().unwrap();
        assert!(host_allowed("192.0.2.7:5001", any, &[]));
        assert!(!host_allowed("evil.example", any, &[]));
    }
}
