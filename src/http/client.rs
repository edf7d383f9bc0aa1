//! The client address: one function for everything that counts per address (the sign-in throttle,
//! the token quota's log lines, the WebSocket per-address cap), so no path can be fooled differently.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use warp::http::HeaderMap;
use warp::Filter;

/// The TCP peer, or — only when `trust_forwarded` and only from a loopback peer (the local reverse
/// proxy) — the last address of the last `X-Forwarded-For` line: the one that proxy appended
/// itself. Earlier lines and earlier addresses come from the client and may be forged. Without a
/// peer address (not the case with a TCP listener) all such requests share one bucket.
pub fn client_addr(
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    trust_forwarded: bool,
) -> IpAddr {
    let peer = remote.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    if !trust_forwarded || !peer.is_loopback() {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').map(str::trim).find(|s| !s.is_empty()))
        .and_then(|s| s.parse().ok())
        .unwrap_or(peer)
}

/// The TCP peer of a connection accepted by [`super::server`], put in each request's extensions
/// (warp's own `addr::remote` is only filled by `warp::serve`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A filter extracting the TCP peer: [`Peer`] under the daemon's server, warp's own remote address
/// under `warp::serve`. Every route asks this, never `warp::addr::remote()` alone (None under the
/// daemon's server).
pub fn remote(
) -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<Peer>()
        .and(warp::addr::remote())
        .map(|peer: Option<Peer>, remote: Option<SocketAddr>| peer.map(|p| p.0).or(remote))
}

/// A filter extracting [`client_addr`] for the request.
pub fn address(
    trust_forwarded: bool,
) -> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::header::headers_cloned().and(remote()).map(
        move |headers: HeaderMap, remote: Option<SocketAddr>| {
            client_addr(&headers, remote, trust_forwarded)
        },
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use warp::http::HeaderValue;

    /// A header map from literal pairs (also used by the token route's tests).
    pub(in crate::http) fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn forwarded_for_only_when_trusted_and_loopback() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        let lo: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let far: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        assert_eq!(
            client_addr(&h, Some(lo), true),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_addr(&h, Some(lo), false), lo.ip());
        assert_eq!(client_addr(&h, Some(far), true), far.ip());
        let junk = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_addr(&junk, Some(lo), true), lo.ip());
    }

    #[test]
    fn the_last_value_of_the_last_line_wins() {
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1, 198.51.100.2"),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        let lo: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(
            client_addr(&h, Some(lo), true),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
    }
}
