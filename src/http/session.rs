//! `/api/session`: the dashboard's sign-in (CONTRACT §11). `POST` with Basic credentials (the same
//! check and throttling as `/api/ws-token`, one Argon2 verification) opens a session and sets the
//! `proxytail_session` cookie (`HttpOnly; SameSite=Strict; Path=/`, `Secure` behind HTTPS); `GET`
//! says who the cookie belongs to; `DELETE` (sign-out) ends the session and clears the cookie.
//! `/api/ws-token` then mints tokens from the cookie with no password check ([`principal`]).
//!
//! Against cross-site requests: `SameSite=Strict` keeps the browser from sending the cookie from
//! another site, and `POST`/`DELETE` with a foreign `Origin` are refused (403) before anything else.
//! A 401 here never carries `WWW-Authenticate`: the browser would answer a script's 401 with its own
//! password prompt, and the dashboard has its own form.
use super::{reject, token, AppState};
use crate::auth::{AuthError, Principal};
use std::net::SocketAddr;
use std::time::Duration;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderMap, HeaderValue, AUTHORIZATION, HOST, ORIGIN, SET_COOKIE};
use warp::http::{Method, StatusCode};
use warp::{Filter, Reply};

/// The session cookie's name.
pub const COOKIE: &str = "proxytail_session";

/// The `session` route: `GET`, `POST` and `DELETE /api/session`.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    warp::path!("api" / "session")
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(super::client::remote())
        .and(warp::any().map(move || state.clone()))
        .and_then(
            |method: Method, headers: HeaderMap, remote: Option<SocketAddr>, state: AppState| async move {
                let reply = match method {
                    Method::GET => who(&headers, &state),
                    Method::POST => sign_in(headers, remote, state).await,
                    Method::DELETE => sign_out(headers, remote, state).await,
                    _ => reject::json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
                };
                Ok::<_, warp::Rejection>(reply)
            },
        )
        .boxed()
}

/// The principal of the request's session cookie, if it names an open session whose user still
/// exists with the password hash they signed in with. (The reload ends such sessions right after
/// swapping the users; checking here too closes the moment in between.)
pub fn principal(headers: &HeaderMap, state: &AppState) -> Option<Principal> {
    let id = token::find_cookie(headers, COOKIE)?;
    let (user, credential) = state.sessions.lookup(&id)?;
    // The view is read now, not at sign-in: a view changed since (and reloaded) applies to the
    // next token.
    (state.auth.credential_of(&user) == Some(credential)).then(|| Principal {
        view: state.auth.view_of(&user),
        name: user,
    })
}

/// Drops the `WWW-Authenticate` challenge from a 401 answered to a browser script that sent no
/// `Authorization` (it relied on the session cookie): a challenge would make the browser prompt
/// for a password over the dashboard. A navigation or a non-browser client keeps it.
pub fn no_prompt_for_scripts(
    headers: &HeaderMap,
    mut response: warp::reply::Response,
) -> warp::reply::Response {
    let script = headers
        .get("sec-fetch-mode")
        .is_some_and(|m| m.as_bytes() != b"navigate");
    if script && headers.get(AUTHORIZATION).is_none() {
        response
            .headers_mut()
            .remove(warp::http::header::WWW_AUTHENTICATE);
    }
    response
}

/// `GET`: who the cookie signs in, or 401.
fn who(headers: &HeaderMap, state: &AppState) -> warp::reply::Response {
    match principal(headers, state) {
        Some(p) => success(&p.name),
        None => unauthorized(AuthError::Missing),
    }
}

/// `POST`: Basic credentials → a new session and its cookie.
async fn sign_in(
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    state: AppState,
) -> warp::reply::Response {
    if let Some(refused) = foreign_origin(&headers, &state) {
        return refused;
    }
    let peer = super::client::client_addr(&headers, remote, state.config.trust_forwarded_for);
    // Only a password opens a session: a JWT already is a session of its issuer's making.
    let basic = headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"))
        .filter(|v| {
            v.trim_start()
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
        });
    let Some(basic) = basic else {
        return unauthorized(AuthError::Missing);
    };
    let principal = match state.auth.authenticate(Some(basic), None, peer).await {
        Ok(p) => p,
        Err(e) => return unauthorized(e),
    };
    // `None` only if a reload removed the user in the meantime.
    let Some(credential) = state.auth.credential_of(&principal.name) else {
        return unauthorized(AuthError::Invalid);
    };
    let sessions = state.sessions.clone();
    let user = principal.name.clone();
    // Opening a session writes the state file: off the runtime's threads.
    match tokio::task::spawn_blocking(move || sessions.create(&user, credential)).await {
        Ok(Ok(id)) => {
            tracing::info!(user = %principal.name, %peer, "opened a dashboard session");
            let mut reply = success(&principal.name);
            set_cookie(
                &mut reply,
                &id,
                state.sessions.ttl(),
                &headers,
                remote,
                &state,
            );
            reply
        }
        Ok(Err(e)) => reject::json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(_) => reject::json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// `DELETE`: ends the cookie's session (if any) and clears the cookie; 204 either way.
async fn sign_out(
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    state: AppState,
) -> warp::reply::Response {
    if let Some(refused) = foreign_origin(&headers, &state) {
        return refused;
    }
    if let Some(id) = token::find_cookie(&headers, COOKIE) {
        let sessions = state.sessions.clone();
        // Ending a session writes the state file: off the runtime's threads.
        let ended = tokio::task::spawn_blocking(move || sessions.end(&id))
            .await
            .unwrap_or(false);
        if ended {
            tracing::info!("ended a dashboard session");
        }
    }
    let mut reply = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
    set_cookie(&mut reply, "", Duration::ZERO, &headers, remote, &state);
    reply
}

/// 403 when the request carries an `Origin` that is neither the daemon's own nor allowed.
fn foreign_origin(headers: &HeaderMap, state: &AppState) -> Option<warp::reply::Response> {
    let origin = headers.get(ORIGIN)?;
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let allowed = origin.to_str().is_ok_and(|o| {
        super::origin_allowed(o, host, state.local_addr, &state.config.allowed_origins)
    });
    (!allowed).then(|| reject::json_error(StatusCode::FORBIDDEN, "origin not allowed"))
}

/// True when the request reached the daemon over HTTPS: its `Host` is that of an `https://`
/// `--public-url`, or the trusted local reverse proxy says so in `X-Forwarded-Proto` (only from a
/// loopback peer, only with `--trust-forwarded-for`).
fn over_https(headers: &HeaderMap, remote: Option<SocketAddr>, state: &AppState) -> bool {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let public_https = !host.is_empty()
        && state
            .config
            .public_urls_https
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host));
    let trusted = state.config.trust_forwarded_for && remote.is_some_and(|a| a.ip().is_loopback());
    public_https
        || trusted
            && headers
                .get_all("x-forwarded-proto")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Adds the session cookie `id` for `max_age` (an empty id and zero age clear it).
fn set_cookie(
    reply: &mut warp::reply::Response,
    id: &str,
    max_age: Duration,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    state: &AppState,
) {
    let secure = if over_https(headers, remote, state) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        max_age.as_secs()
    );
    // The id is base64url: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        reply.headers_mut().insert(SET_COOKIE, value);
    }
}

fn success(user: &str) -> warp::reply::Response {
    let body = serde_json::json!({ "status": "success", "user": user });
    warp::reply::with_header(warp::reply::json(&body), "cache-control", "no-store").into_response()
}

/// The token endpoint's answer for `e`, without its password challenge (see the module docs).
fn unauthorized(e: AuthError) -> warp::reply::Response {
    let mut response = token::auth_error(e);
    response
        .headers_mut()
        .remove(warp::http::header::WWW_AUTHENTICATE);
    response
}
