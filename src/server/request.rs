//! What a handler or server function may know about the request it serves.

use axum::extract::ConnectInfo;
use axum::http::{header, request::Parts, Extensions, HeaderMap};
use leptos::prelude::use_context;
use std::net::SocketAddr;

/// The peer address of this server function's connection (the key for per-address throttling).
pub fn client_address() -> String {
    use_context::<Parts>().map_or_else(|| "unknown".to_owned(), |parts| peer_address(&parts.extensions))
}

/// The peer address of a request's connection, from its extensions.
pub fn peer_address(extensions: &Extensions) -> String {
    extensions.get::<ConnectInfo<SocketAddr>>().map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string())
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
