//! The browser dashboard: the static files under `web/`, embedded in the binary at build time and
//! served at `/`, `/app.js`, `/style.css`, … with their content type, caching headers (`no-cache`
//! for the page, an ETag plus a short max-age for assets) and a strict Content-Security-Policy.
//!
//! Nothing here touches the state: the files are constants, their ETags are computed once.
use super::AppState;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use warp::filters::BoxedFilter;
use warp::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::Filter;

/// The policy every dashboard response carries: only this origin's scripts, styles and sockets,
/// never framed, no `<base>`, forms post only here.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Cache policy of the assets (scripts, styles): reused for a minute, then revalidated by ETag.
const ASSET_CACHE: &str = "public, max-age=60, must-revalidate";
/// Cache policy of the page itself: always revalidated, so a new daemon brings a new dashboard.
const PAGE_CACHE: &str = "no-cache";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Request path it answers (`/` for the page).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its `Cache-Control`.
    pub cache: &'static str,
    /// The bytes, embedded at build time.
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:literal, $cache:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            cache: $cache,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
        }
    };
}

/// Every file of the dashboard. Adding a file under `web/` means adding a line here.
pub static ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8", PAGE_CACHE),
    asset!(
        "/index.html",
        "index.html",
        "text/html; charset=utf-8",
        PAGE_CACHE
    ),
    asset!(
        "/style.css",
        "style.css",
        "text/css; charset=utf-8",
        ASSET_CACHE
    ),
    asset!(
        "/app.js",
        "app.js",
        "text/javascript; charset=utf-8",
        ASSET_CACHE
    ),
    asset!(
        "/stream.js",
        "stream.js",
        "text/javascript; charset=utf-8",
        ASSET_CACHE
    ),
    asset!(
        "/view.js",
        "view.js",
        "text/javascript; charset=utf-8",
        ASSET_CACHE
    ),
    asset!(
        "/stats.js",
        "stats.js",
        "text/javascript; charset=utf-8",
        ASSET_CACHE
    ),
    asset!(
        "/entry.js",
        "entry.js",
        "text/javascript; charset=utf-8",
        ASSET_CACHE
    ),
    asset!(
        "/range.js",
        "range.js",
        "text/javascript; charset=utf-8",
        ASSET_CACHE
    ),
    asset!("/favicon.svg", "favicon.svg", "image/svg+xml", ASSET_CACHE),
];

/// Strong ETags, one per entry of [`ASSETS`] (same index): a hash of the bytes, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            // Hex digits and quotes are always a valid header value.
            HeaderValue::from_str(&format!("\"{hex}\""))
                .unwrap_or(HeaderValue::from_static("\"0\""))
        })
        .collect()
});

/// The `web` route: `GET`/`HEAD` of one of [`ASSETS`]; anything else is left to the other routes.
pub fn route(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    let _ = state;
    files()
}

/// The dashboard files without any state (what [`route`] serves; tests use it directly).
pub fn files() -> BoxedFilter<(warp::reply::Response,)> {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(
            |method: Method, path: warp::path::FullPath, headers: HeaderMap| async move {
                if method != Method::GET && method != Method::HEAD {
                    return Err(warp::reject::not_found());
                }
                match ASSETS.iter().position(|a| a.path == path.as_str()) {
                    Some(i) => Ok(respond(i, &headers, method == Method::HEAD)),
                    None => Err(warp::reject::not_found()),
                }
            },
        )
        .boxed()
}

/// Builds the reply for `ASSETS[i]`: 304 when the client's `If-None-Match` names its ETag.
fn respond(i: usize, request: &HeaderMap, head: bool) -> warp::reply::Response {
    let asset = &ASSETS[i];
    let etag = ETAGS[i].clone();
    let fresh = request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag.to_str().unwrap_or("")
        });
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if head {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(asset.body))
    };
    let mut response = warp::reply::Response::new(body.into());
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(asset.cache));
    h.insert(ETAG, etag);
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // For browsers older than `frame-ancestors`.
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(path: &str) -> warp::http::Response<Bytes> {
        warp::test::request().path(path).reply(&files()).await
    }

    #[tokio::test]
    async fn page_is_served_with_strict_headers_and_no_cache() {
        let r = get("/").await;
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[CACHE_CONTROL], "no-cache");
        assert_eq!(h[CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[REFERRER_POLICY], "no-referrer");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ] {
            assert!(CSP.split("; ").any(|d| d == directive), "{directive}");
        }
        let body = std::str::from_utf8(r.body()).unwrap();
        assert!(body.contains("<script type=\"module\" src=\"app.js\">"));
        assert!(
            !body.contains("style=\""),
            "inline styles would break the CSP"
        );
    }

    #[tokio::test]
    async fn every_asset_has_its_type_an_etag_and_a_short_max_age() {
        for (path, ty) in [
            ("/app.js", "text/javascript; charset=utf-8"),
            ("/stream.js", "text/javascript; charset=utf-8"),
            ("/style.css", "text/css; charset=utf-8"),
            ("/favicon.svg", "image/svg+xml"),
        ] {
            let r = get(path).await;
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(r.headers()[CONTENT_TYPE], ty, "{path}");
            assert_eq!(r.headers()[CACHE_CONTROL], ASSET_CACHE, "{path}");
            assert_eq!(r.headers()[CONTENT_SECURITY_POLICY], CSP, "{path}");
            assert!(r.headers()[ETAG].to_str().unwrap().starts_with('"'));
            assert!(!r.body().is_empty());
        }
    }

    #[tokio::test]
    async fn every_module_the_page_imports_is_served() {
        // Each `from "./x.js"` in a served script must name a served file, or the page breaks.
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for part in text.split("from \"./").skip(1) {
                let name = &part[..part.find('"').unwrap()];
                let r = get(&format!("/{name}")).await;
                assert_eq!(r.status(), 200, "{} imports {name}", asset.path);
            }
        }
    }

    #[tokio::test]
    async fn matching_etag_gives_304_without_body() {
        let first = get("/app.js").await;
        let etag = first.headers()[ETAG].clone();
        let r = warp::test::request()
            .path("/app.js")
            .header("if-none-match", etag.clone())
            .reply(&files())
            .await;
        assert_eq!(r.status(), 304);
        assert!(r.body().is_empty());
        assert_eq!(r.headers()[ETAG], etag);
        let stale = warp::test::request()
            .path("/app.js")
            .header("if-none-match", "\"other\"")
            .reply(&files())
            .await;
        assert_eq!(stale.status(), 200);
    }

    #[tokio::test]
    async fn head_has_headers_but_no_body() {
        let r = warp::test::request()
            .method("HEAD")
            .path("/style.css")
            .reply(&files())
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        assert!(r.body().is_empty());
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_left_to_other_routes() {
        for (method, path) in [
            ("GET", "/nope.js"),
            ("GET", "/api/ws-token"),
            ("POST", "/"),
            ("GET", "/../Cargo.toml"),
        ] {
            let answer = warp::test::request()
                .method(method)
                .path(path)
                .filter(&files())
                .await;
            assert!(answer.is_err(), "{method} {path} is not ours");
        }
    }
}
