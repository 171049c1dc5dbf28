//! The one error type of the server, and the one way an error code reaches a client.
//!
//! `AppError`'s `Display` is only the stable code a client may see, so even an
//! accidental `?` into a server-function error cannot echo internals; the cause is
//! logged once, by [`AppError::logged`]. Feature errors (sign-in, accounts, proxy)
//! are codes with statuses; they all answer through [`json_error`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("internal_error")]
    Database(#[from] sqlx::Error),
    #[error("internal_error")]
    Session(#[from] tower_sessions::session::Error),
    /// Anything else that must not happen (a failed password hash, a panicked blocking task).
    #[error("internal_error")]
    Internal(String),
}

impl AppError {
    pub const CODE: &'static str = "internal_error";

    /// Logs the cause (server side only) and hands the error on.
    pub fn logged(self) -> Self {
        tracing::error!(cause = ?self, code = Self::CODE, "request failed");
        self
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.logged();
        json_error(StatusCode::INTERNAL_SERVER_ERROR, Self::CODE)
    }
}

/// `{"error": code}`, never cached: every error answer of the JSON API.
pub fn json_error(status: StatusCode, code: &str) -> Response {
    error_body(status, code, None)
}

/// `{"error": code, "error_description": description}` (RFC 6749 §5.2), never cached.
pub fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    error_body(status, code, Some(description))
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

fn error_body(status: StatusCode, error: &str, error_description: Option<&str>) -> Response {
    no_store((status, Json(ErrorBody { error, error_description })).into_response())
}

/// The response with `Cache-Control: no-store` and `Pragma: no-cache` (anything about a
/// session or a token; RFC 6749 §5.1 asks for both).
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
