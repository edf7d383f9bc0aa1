//! warp filters, one function per endpoint.
use super::AppState;
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

/// Every route of the daemon, with rejections mapped by [`super::reject::recover`].
pub fn routes(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    let _ = state;
    warp::any()
        .map(|| {
            warp::reply::with_status("not found", warp::http::StatusCode::NOT_FOUND).into_response()
        })
        .boxed()
}
