//! `GET /api/ws-token`: authenticate (Basic, Bearer, the JWT cookie or a dashboard session), mint a single-use WebSocket
//! token, and answer JSON with `Cache-Control: no-store` and never any CORS header.
use super::{reject, session, AppState};
use crate::auth::AuthError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use warp::filters::BoxedFilter;
use warp::http::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, COOKIE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use warp::http::StatusCode;
use warp::{Filter, Reply};

/// The challenge sent with every 401.
const CHALLENGE: &str = r#"Basic realm="proxytail", charset="UTF-8""#;

/// The `token` route.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    warp::path!("api" / "ws-token")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::any().map(move || state.clone()))
        .then(handle)
        .boxed()
}

async fn handle(
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    state: AppState,
) -> warp::reply::Response {
    let peer = client_addr(&headers, remote, state.config.trust_forwarded_for);
    // A header that is not visible ASCII cannot hold valid credentials: it is checked (and fails)
    // like any other unusable scheme rather than being ignored.
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let cookie = state
        .config
        .jwt_cookie
        .as_deref()
        .and_then(|name| find_cookie(&headers, name));
    // A dashboard session (no Authorization header) signs in without a password check.
    let from_session = authorization
        .is_none()
        .then(|| session::principal(&headers, &state))
        .flatten();
    let result = match from_session {
        Some(principal) => Ok(principal),
        None => {
            state
                .auth
                .authenticate(authorization, cookie.as_deref(), peer)
                .await
        }
    };
    let response = match result {
        Ok(principal) => match state.tokens.mint() {
            Ok(token) => {
                tracing::info!(user = %principal.name, %peer, "issued a WebSocket token");
                let body = serde_json::json!({ "status": "success", "token": token });
                let reply = warp::reply::json(&body);
                warp::reply::with_header(reply, "cache-control", "no-store").into_response()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot mint a WebSocket token");
                with_retry_after(
                    reject::json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
                    1,
                )
            }
        },
        Err(e) => session::no_prompt_for_scripts(&headers, auth_error(e)),
    };
    state
        .metrics
        .token_request(crate::metrics::TokenOutcome::of_status(response.status()));
    response
}

/// Maps an authentication failure to its status, body and headers (also for `/metrics`).
pub(super) fn auth_error(e: AuthError) -> warp::reply::Response {
    let message = e.to_string();
    match e {
        AuthError::Missing | AuthError::Invalid => {
            let mut response = reject::json_error(StatusCode::UNAUTHORIZED, &message);
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
            response
        }
        AuthError::Throttled { retry_after } => with_retry_after(
            reject::json_error(StatusCode::TOO_MANY_REQUESTS, &message),
            retry_after,
        ),
        AuthError::Busy => with_retry_after(
            reject::json_error(StatusCode::SERVICE_UNAVAILABLE, &message),
            1,
        ),
    }
}

fn with_retry_after(mut response: warp::reply::Response, secs: u64) -> warp::reply::Response {
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// The address failures are counted against: the TCP peer, or — only when configured and only
/// from a loopback peer (the local reverse proxy) — the last address of `X-Forwarded-For`, the one
/// that proxy appended itself. Without a peer address (not the case with a TCP listener) all such
/// requests share one bucket.
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

/// The value of cookie `name` from the `Cookie` header(s), surrounding quotes removed.
pub(super) fn find_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
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
    fn cookie_found_among_others() {
        let h = headers(&[("cookie", "a=1; jwt=\"abc.def.ghi\"; b=2")]);
        assert_eq!(find_cookie(&h, "jwt").as_deref(), Some("abc.def.ghi"));
        assert_eq!(find_cookie(&h, "nope"), None);
    }
}
