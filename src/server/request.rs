//! What a handler or server function may know about the request it serves.

use super::client_ip::ClientIp;
use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, request::Parts, Extensions, HeaderMap};
use leptos::prelude::use_context;

pub const FORM: &str = "application/x-www-form-urlencoded";
pub const JSON: &str = "application/json";
/// Largest body a form or JSON endpoint of ours reads (the native and back-channel routes).
pub const MAX_SMALL_BODY_BYTES: usize = 16 * 1024;

/// The media type of a body (`Content-Type` without parameters, lowercased).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

/// True when the body is of this media type (`FORM`, `JSON`).
pub fn is_media_type(headers: &HeaderMap, expected: &str) -> bool {
    media_type(headers).is_some_and(|essence| essence == expected)
}

/// The whole body, if it is at most [`MAX_SMALL_BODY_BYTES`] and could be read.
pub async fn small_body(body: Body) -> Option<Bytes> {
    to_bytes(body, MAX_SMALL_BODY_BYTES).await.ok()
}

/// The client address of this server function's request (the key for per-address throttling).
pub fn client_address() -> String {
    use_context::<Parts>().map_or_else(|| "unknown".to_owned(), |parts| client_address_in(&parts.extensions))
}

/// The client address of a request (the TCP peer, or behind `TRUSTED_PROXIES` the
/// forwarded client), from its extensions.
pub fn client_address_in(extensions: &Extensions) -> String {
    extensions.get::<ClientIp>().map_or_else(|| "unknown".to_owned(), |ClientIp(address)| address.to_string())
}

/// The headers of this server function's request.
pub fn headers() -> HeaderMap {
    use_context::<Parts>().map(|parts| parts.headers).unwrap_or_default()
}

/// The User-Agent of this server function's request.
pub fn user_agent() -> String {
    user_agent_of(&headers()).to_owned()
}

/// The User-Agent in these headers; empty when absent or not text.
pub fn user_agent_of(headers: &HeaderMap) -> &str {
    headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok()).unwrap_or_default()
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive). An empty
/// token still counts as presenting a bearer; other schemes are not ours to read.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A part of the app the request's context provides: an error, not a panic, once the
/// request is gone (a page's resource still polled after its render was dropped — the
/// fuzzer met it: a client that went away mid-render).
pub fn from_context<T: Clone + 'static>() -> Result<T, super::AppError> {
    use_context::<T>().ok_or_else(|| super::AppError::Internal(format!("{} is not in context (the request has ended)", std::any::type_name::<T>())))
}
