//! Every route of the daemon: one module per endpoint, each exposing `route(state)`.
use super::{health, host, metrics, reject, session, token, web, ws, AppState};
use warp::filters::BoxedFilter;
use warp::Filter;

/// All endpoints behind the `Host` allowlist, with leftover rejections mapped by
/// [`reject::recover`].
pub fn routes(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    let endpoints = token::route(state.clone())
        .or(ws::route(state.clone()))
        .unify()
        .or(session::route(state.clone()))
        .unify()
        .or(health::route(state.clone()))
        .unify()
        .or(metrics::route(state.clone()))
        .unify()
        .or(web::route(state.clone()))
        .unify()
        .recover(reject::recover)
        .unify();
    // The guard answers 421 for a foreign Host, or rejects so the endpoints run (they never reject).
    host::guard(&state).or(endpoints).unify().boxed()
}
