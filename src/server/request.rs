//! What a handler or server function may know about the request it serves.

use axum::extract::ConnectInfo;
use axum::http::{header, request::Parts, HeaderMap};
use leptos::prelude::use_context;
use std::net::SocketAddr;

/// The peer address of the connection (the key for per-address throttling).
pub fn client_address() -> String {
    use_context::<Parts>()
        .and_then(|parts| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
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
