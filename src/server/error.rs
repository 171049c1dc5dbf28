//! The one error type of the server. Its `Display` is only the stable code the
//! browser may see, so even an accidental `?` into a server-function error cannot
//! echo internals; the cause is logged by [`AppError::logged`].

use axum::http::StatusCode;
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
    /// The stable code the browser sees.
    pub fn code(&self) -> &'static str {
        "internal_error"
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// Logs the cause (server side only) and hands the error on.
    pub fn logged(self) -> Self {
        tracing::error!(cause = ?self, code = self.code(), "request failed");
        self
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let error = self.logged();
        (error.status(), Json(serde_json::json!({ "error": error.code() }))).into_response()
    }
}
