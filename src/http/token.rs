//! `GET /api/ws-token`: authenticate (Basic, Bearer, the JWT cookie or a dashboard session), mint a single-use WebSocket
//! token, and answer JSON with `Cache-Control: no-store` and never any CORS header.
use super::{client, reject, session, AppState};
use crate::auth::AuthError;
use crate::tokens::TokenError;
use std::net::IpAddr;
use std::time::Duration;
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
        .and(client::address(state.config.trust_forwarded_for))
        .and(warp::any().map(move || state.clone()))
        .then(handle)
        .boxed()
}

async fn handle(headers: HeaderMap, peer: IpAddr, state: AppState) -> warp::reply::Response {
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
        Ok(principal) => match state.tokens.mint_with_view(&principal.name, principal.view) {
            Ok(token) => {
                // The name comes from the client (a JWT subject): escaped, never raw in the log.
                let user = principal.name.escape_debug();
                tracing::info!(%user, %peer, "issued a WebSocket token");
                let body = serde_json::json!({ "status": "success", "token": token });
                let reply = warp::reply::json(&body);
                warp::reply::with_header(reply, "cache-control", "no-store").into_response()
            }
            Err(e) => {
                let user = principal.name.escape_debug();
                tracing::warn!(%user, %peer, error = %e, "cannot mint a WebSocket token");
                let (status, wait) = match e {
                    TokenError::Quota { retry_after } => {
                        (StatusCode::TOO_MANY_REQUESTS, retry_after)
                    }
                    TokenError::Full { retry_after } => {
                        (StatusCode::SERVICE_UNAVAILABLE, retry_after)
                    }
                    TokenError::Invalid | TokenError::Unavailable => {
                        (StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(1))
                    }
                };
                // Whole seconds, rounded up: a client that waits this long finds a free slot.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                with_retry_after(reject::json_error(status, &e.to_string()), secs)
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
        AuthError::Missing | AuthError::Invalid | AuthError::BadView(_) => {
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
        AuthError::Busy { retry_after } => with_retry_after(
            reject::json_error(StatusCode::SERVICE_UNAVAILABLE, &message),
            retry_after,
        ),
    }
}

fn with_retry_after(mut response: warp::reply::Response, secs: u64) -> warp::reply::Response {
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
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
    use crate::http::client::tests::headers;

    #[test]
    fn cookie_found_among_others() {
        let h = headers(&[("cookie", "a=1; jwt=\"abc.def.ghi\"; b=2")]);
        assert_eq!(find_cookie(&h, "jwt").as_deref(), Some("abc.def.ghi"));
        assert_eq!(find_cookie(&h, "nope"), None);
    }
}
