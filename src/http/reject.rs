//! The one place that maps rejections left over by the routes to status codes and JSON bodies.
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

/// A JSON error reply `{"status":"error","message":...}` with `Cache-Control: no-store`.
pub fn json_error(status: StatusCode, message: &str) -> warp::reply::Response {
    let body = serde_json::json!({ "status": "error", "message": message });
    let reply = warp::reply::with_status(warp::reply::json(&body), status);
    warp::reply::with_header(reply, "cache-control", "no-store").into_response()
}

/// Maps warp's own rejections (no route, wrong method, bad query …) to JSON errors.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        (StatusCode::BAD_REQUEST, "invalid query")
    } else if rejection.find::<warp::reject::InvalidHeader>().is_some() {
        (StatusCode::BAD_REQUEST, "invalid header")
    } else {
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(json_error(status, message))
}
