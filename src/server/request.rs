//! What a handler or server function may know about the request it serves.

use super::client_ip::ClientIp;
use axum::http::{header, request::Parts, Extensions, HeaderMap};
use leptos::prelude::use_context;

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
