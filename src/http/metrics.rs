//! `GET /metrics`: the Prometheus exposition of [`crate::metrics::Metrics`], behind the same
//! credential check as `/api/ws-token` (a users-file login or a JWT), so a wrong credential is a
//! 401 through the same throttle and costs no Argon2 work beyond what a token request would.
use super::{token, AppState};
use std::net::SocketAddr;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderMap, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use warp::{Filter, Reply};

/// The `GET /metrics` route.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(super::client::remote())
        .and(warp::any().map(move || state.clone()))
        .then(handle)
        .boxed()
}

async fn handle(
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    state: AppState,
) -> warp::reply::Response {
    let peer = super::client::client_addr(&headers, remote, state.config.trust_forwarded_for);
    // Not visible ASCII: cannot be a valid credential, so it fails like one (as for tokens).
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    if let Err(e) = state.auth.authenticate(authorization, None, peer).await {
        return token::auth_error(e);
    }
    let body = state.metrics.render(&state.hub, &state.health);
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        warp::http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    h.insert(
        CACHE_CONTROL,
        warp::http::HeaderValue::from_static("no-store"),
    );
    response
}
