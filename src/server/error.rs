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
    /// Too much of this work is queued (names the work); the client retries.
    #[error("server_busy")]
    Busy(&'static str),
}

/// Our own failure as a client sees it: the database is out for now (retry), or a bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// `503 database_unavailable`: down, restarting, full, read-only, or busy past its bound.
    DatabaseUnavailable,
    /// `503 server_busy`: a bounded queue of work (password hashing) stayed full.
    Busy,
    /// `500 internal_error`.
    Internal,
}

/// A client told the database is out retries after this many seconds.
const RETRY_AFTER_SECS: u32 = 2;

impl Failure {
    pub fn code(self) -> &'static str {
        match self {
            Self::DatabaseUnavailable => "database_unavailable",
            Self::Busy => "server_busy",
            Self::Internal => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::DatabaseUnavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `Retry-After` on a `503` (any answer, the OAuth ones too).
    pub fn with_retry_after(self, mut response: Response) -> Response {
        if self != Self::Internal {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        self.with_retry_after(json_error(self.status(), self.code()))
    }
}

impl AppError {
    /// What a client is told: an outage of the database, or our bug.
    pub fn failure(&self) -> Failure {
        match self {
            Self::Busy(_) => Failure::Busy,
            Self::Database(error) if super::db::is_outage(error) => Failure::DatabaseUnavailable,
            // The session store's own errors: its backend is our database.
            Self::Session(tower_sessions::session::Error::Store(tower_sessions::session_store::Error::Backend(_))) => Failure::DatabaseUnavailable,
            Self::Database(_) | Self::Session(_) | Self::Internal(_) => Failure::Internal,
        }
    }

    /// Logs the cause (server side only) and says what the client is told.
    pub fn logged(self) -> Failure {
        let failure = self.failure();
        match failure {
            Failure::DatabaseUnavailable => tracing::warn!(cause = ?self, code = failure.code(), "database unavailable"),
            Failure::Busy => tracing::warn!(cause = ?self, code = failure.code(), "busy"),
            Failure::Internal => tracing::error!(cause = ?self, code = failure.code(), "request failed"),
        }
        failure
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.logged().into_response()
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
