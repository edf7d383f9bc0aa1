//! `GET /api/health`: a JSON snapshot of the hub (ids, subscribers) and of each source the tailer
//! follows. Without credentials it holds status and counts only (CONTRACT §9, §11): no file path
//! and no OS error text, which tell a stranger where things live. With a credential (Basic or
//! Bearer, checked and throttled exactly as for `/api/ws-token`) it adds each source's path and
//! error; a wrong credential is 401.
use super::{client, token, AppState};
use std::net::IpAddr;
use warp::filters::BoxedFilter;
use warp::http::header::AUTHORIZATION;
use warp::http::HeaderMap;
use warp::{Filter, Reply};

/// Per-source fields shown only to an authenticated caller.
const DETAIL: [&str; 2] = ["path", "error"];

/// The `GET /api/health` route.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    warp::path!("api" / "health")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(client::address(state.config.trust_forwarded_for))
        .and(warp::any().map(move || state.clone()))
        .then(handle)
        .boxed()
}

async fn handle(headers: HeaderMap, peer: IpAddr, state: AppState) -> warp::reply::Response {
    let detail = match headers.get(AUTHORIZATION) {
        None => false,
        Some(value) => {
            let value = value.to_str().unwrap_or("invalid");
            match state.auth.authenticate(Some(value), None, peer).await {
                Ok(_) => true,
                Err(e) => return token::auth_error(e),
            }
        }
    };
    health(&state, detail)
}

fn health(state: &AppState, detail: bool) -> warp::reply::Response {
    let hub = &state.hub;
    let mut body = serde_json::json!({
        "status": "ok",
        "last_id": hub.last_id(),
        "oldest_id": hub.oldest_id(),
        "subscribers": hub.subscriber_count(),
    });
    let mut tail = state.health.snapshot();
    if detail {
        // What the journal keeps for replays older than the history (CONTRACT §8).
        if let (Some(store), Some(top)) = (hub.store(), body.as_object_mut()) {
            let s = store.stats();
            let journal = serde_json::json!({
                "oldest_id": s.oldest_id,
                "oldest_ts": s.oldest_ts_ms.map(|ms| ms as f64 / 1000.0),
                "last_id": s.last_id,
                "bytes": s.bytes,
                "segments": s.segments,
            });
            top.insert("journal".into(), journal);
        }
    } else {
        if let Some(sources) = tail.get_mut("sources").and_then(|s| s.as_array_mut()) {
            for source in sources.iter_mut().filter_map(|s| s.as_object_mut()) {
                for field in DETAIL {
                    source.remove(field);
                }
            }
        }
    }
    // The tailer's own fields (`sources`, `next_id`, …) sit beside the hub's, not nested.
    if let (Some(top), serde_json::Value::Object(tail)) = (body.as_object_mut(), tail) {
        top.extend(tail);
    }
    warp::reply::with_header(warp::reply::json(&body), "cache-control", "no-store").into_response()
}
