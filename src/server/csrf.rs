//! Cross-site request defence for state-changing requests.
//!
//! A mutating request must come from our own origin: its `Origin` header must equal
//! `APP_URL`'s origin, or, when a browser omits `Origin` or sends the opaque `null`,
//! `Sec-Fetch-Site` (which pages cannot set) must say `same-origin`. A request with
//! neither is refused (fail closed). Together with the
//! SameSite=Lax session cookie this stops forged cross-site form posts.
//!
//! A request that presents `Authorization: Bearer` is exempt: its credential is not
//! ambient, and a page on another site cannot add that header without a CORS preflight,
//! which this server never grants. (Routes that accept a bearer refuse a request that
//! carries a session cookie too.)

use super::config::Config;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use url::Url;

/// Middleware for the whole app: every request that may change state (anything but
/// GET, HEAD and OPTIONS), server functions included, must be same-origin. One check
/// in front of every route, so a new route cannot forget it.
pub async fn reject_cross_site_mutations(State(config): State<Arc<Config>>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && super::request::bearer_token(request.headers()).is_none() {
        if let Err(rejection) = require_same_origin(request.headers(), &config.app_url) {
            return rejection.into_response();
        }
    }
    next.run(request).await
}

pub struct CrossSiteRejection;

impl IntoResponse for CrossSiteRejection {
    fn into_response(self) -> Response {
        super::json_error(StatusCode::FORBIDDEN, "cross_site_request")
    }
}

pub fn require_same_origin(headers: &HeaderMap, app_url: &Url) -> Result<(), CrossSiteRejection> {
    let same_origin = match headers.get(header::ORIGIN).filter(|origin| origin.as_bytes() != b"null") {
        Some(origin) => is_our_origin(origin, app_url),
        None => fetch_site(headers) == Some("same-origin"),
    };
    if same_origin {
        Ok(())
    } else {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), fetch_site = ?fetch_site(headers), "refused a cross-site request");
        Err(CrossSiteRejection)
    }
}

/// For GET navigations that change state: true when another site triggered it.
pub fn is_cross_site_navigation(headers: &HeaderMap, app_url: &Url) -> bool {
    match fetch_site(headers) {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => headers.get(header::ORIGIN).is_some_and(|origin| !is_our_origin(origin, app_url)),
    }
}

fn is_our_origin(origin: &HeaderValue, app_url: &Url) -> bool {
    origin.as_bytes() == app_url.origin().ascii_serialization().as_bytes()
}

fn fetch_site(headers: &HeaderMap) -> Option<&str> {
    headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    fn app() -> Url {
        Url::parse("https://app.example.com").unwrap()
    }

    #[test]
    fn same_origin_requests_pass() {
        assert!(require_same_origin(&headers(&[("origin", "https://app.example.com")]), &app()).is_ok());
        assert!(require_same_origin(&headers(&[("sec-fetch-site", "same-origin")]), &app()).is_ok());
        assert!(require_same_origin(&headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]), &app()).is_ok());
    }

    #[test]
    fn cross_site_and_unattributed_requests_are_refused() {
        for case in [
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "https://app.example.com.evil.example")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[]),
        ] {
            assert!(require_same_origin(&case, &app()).is_err(), "{case:?}");
        }
    }

    #[test]
    fn cross_site_navigations_are_recognised() {
        assert!(is_cross_site_navigation(&headers(&[("sec-fetch-site", "cross-site")]), &app()));
        assert!(!is_cross_site_navigation(&headers(&[("sec-fetch-site", "none")]), &app()));
        assert!(!is_cross_site_navigation(&headers(&[("sec-fetch-site", "same-origin")]), &app()));
        assert!(!is_cross_site_navigation(&headers(&[]), &app()));
    }
}
