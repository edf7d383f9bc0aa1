//! `GET /api/health`: a JSON snapshot of the hub (ids, subscribers) and of each source the tailer
//! follows. It carries no secret, no credential and no path beyond what the tailer reports.
use super::AppState;
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

/// The `GET /api/health` route.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    warp::path!("api" / "health")
        .and(warp::get())
        .map(move || health(&state))
        .boxed()
}

fn health(state: &AppState) -> warp::reply::Response {
    let hub = &state.hub;
    let mut body = serde_json::json!({
        "status": "ok",
        "last_id": hub.last_id(),
        "oldest_id": hub.oldest_id(),
        "subscribers": hub.subscriber_count(),
    });
    // The tailer's own fields (`sources`, `next_id`, …) sit beside the hub's, not nested.
    if let (Some(top), serde_json::Value::Object(tail)) =
        (body.as_object_mut(), state.health.snapshot())
    {
        top.extend(tail);
    }
    warp::reply::with_header(warp::reply::json(&body), "cache-control", "no-store").into_response()
}
