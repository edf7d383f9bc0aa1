//! The `health` endpoint (placeholder until it lands).
use super::AppState;
use warp::filters::BoxedFilter;
use warp::Filter;

/// The `health` route.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    let _ = state;
    warp::any()
        .and_then(|| async { Err::<warp::reply::Response, _>(warp::reject::not_found()) })
        .boxed()
}
