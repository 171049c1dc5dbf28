//! What a server function may know about the request it serves.

use super::{AppError, AppState};
use axum::extract::ConnectInfo;
use axum::http::{header, request::Parts, HeaderMap};
use leptos::prelude::{expect_context, use_context};
use std::net::SocketAddr;
use tower_sessions::Session;

/// The app state and this browser's session.
pub async fn context() -> Result<(AppState, Session), AppError> {
    let session = leptos_axum::extract::<Session>().await.map_err(|error| AppError::Internal(format!("session extractor: {error:?}")))?;
    Ok((expect_context::<AppState>(), session))
}

/// The peer address of the connection (the key for per-address throttling).
pub fn client_address() -> String {
    use_context::<Parts>()
        .and_then(|parts| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The browser's User-Agent (of this server function's request), as shown in the list of sessions.
pub fn user_agent() -> String {
    use_context::<Parts>().map(|parts| user_agent_of(&parts.headers).to_owned()).unwrap_or_default()
}

/// The User-Agent in these headers; empty when absent or not text.
pub fn user_agent_of(headers: &HeaderMap) -> &str {
    headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok()).unwrap_or_default()
}
