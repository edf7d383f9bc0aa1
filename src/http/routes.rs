//! Every route of the daemon: one module per endpoint, each exposing `route(state)`.
use super::{health, metrics, reject, session, token, web, ws, AppState};
use warp::filters::BoxedFilter;
use warp::Filter;

/// All endpoints, with leftover rejections mapped by [`reject::recover`].
pub fn routes(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    token::route(state.clone())
        .or(ws::route(state.clone()))
        .unify()
        .or(session::route(state.clone()))
        .unify()
        .or(health::route(state.clone()))
        .unify()
        .or(metrics::route(state.clone()))
        .unify()
        .or(web::route(state))
        .unify()
        .recover(reject::recover)
        .unify()
        .boxed()
}
