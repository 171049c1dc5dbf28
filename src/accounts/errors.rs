//! What can go wrong with an account action, as stable codes and readable messages.
//! Shared: the server returns these from server functions, the page shows them.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum AccountError {
    InvalidEmail,
    InvalidName,
    EmailTaken,
    PasswordTooShort,
    PasswordTooLong,
    PasswordIsEmail,
    PasswordTooCommon,
    /// Unknown email or wrong password: one answer for both.
    InvalidCredentials,
    WrongCurrentPassword,
    Throttled {
        retry_after_minutes: u32,
    },
    NotSignedIn,
    /// The change would leave the account with no way to sign in.
    LastSignInMethod,
    NotLinked,
    PasswordAlreadySet,
    NoPassword,
    SessionNotFound,
    /// A form field was missing or malformed.
    InvalidRequest,
    /// The server could not be reached (only produced in the browser).
    ServerUnreachable,
    /// Our database could not be reached or written; nothing was changed.
    DatabaseUnavailable,
    /// Too many password checks at once; try again.
    ServerBusy,
    Internal,
}

impl AccountError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidEmail => "invalid_email",
            Self::InvalidName => "invalid_name",
            Self::EmailTaken => "email_taken",
            Self::PasswordTooShort => "password_too_short",
            Self::PasswordTooLong => "password_too_long",
            Self::PasswordIsEmail => "password_is_email",
            Self::PasswordTooCommon => "password_too_common",
            Self::InvalidCredentials => "invalid_credentials",
            Self::WrongCurrentPassword => "wrong_current_password",
            Self::Throttled { .. } => "throttled",
            Self::NotSignedIn => "not_signed_in",
            Self::LastSignInMethod => "last_sign_in_method",
            Self::NotLinked => "not_linked",
            Self::PasswordAlreadySet => "password_already_set",
            Self::NoPassword => "no_password",
            Self::SessionNotFound => "session_not_found",
            Self::InvalidRequest => "invalid_request",
            Self::ServerUnreachable => "server_unreachable",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::ServerBusy => "server_busy",
            Self::Internal => "internal_error",
        }
    }
}

impl AccountError {
    /// The HTTP status a server function answers this error with ([`server_fn_error_status`]).
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidEmail
            | Self::InvalidName
            | Self::PasswordTooShort
            | Self::PasswordTooLong
            | Self::PasswordIsEmail
            | Self::PasswordTooCommon
            | Self::InvalidRequest => 400,
            Self::InvalidCredentials | Self::NotSignedIn => 401,
            Self::WrongCurrentPassword => 403,
            Self::SessionNotFound => 404,
            Self::EmailTaken | Self::LastSignInMethod | Self::NotLinked | Self::PasswordAlreadySet | Self::NoPassword => 409,
            Self::Throttled { .. } => 429,
            Self::DatabaseUnavailable | Self::ServerBusy => 503,
            Self::ServerUnreachable | Self::Internal => 500,
        }
    }
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEmail => f.write_str("Enter a valid email address."),
            Self::InvalidName => f.write_str("Names are at most 100 characters, without control characters."),
            Self::EmailTaken => f.write_str("An account with this email already exists. Sign in instead."),
            Self::PasswordTooShort => f.write_str("Use at least 12 characters for your password."),
            Self::PasswordTooLong => f.write_str("Use at most 128 characters for your password."),
            Self::PasswordIsEmail => f.write_str("Your password must not be your email address."),
            Self::PasswordTooCommon => f.write_str("This password is too common. Choose another one."),
            Self::InvalidCredentials => f.write_str("That email and password do not match an account."),
            Self::WrongCurrentPassword => f.write_str("Your current password is not correct."),
            Self::Throttled { retry_after_minutes } => {
                let unit = if *retry_after_minutes == 1 { "minute" } else { "minutes" };
                write!(f, "Too many failed attempts. Try again in {retry_after_minutes} {unit}.")
            }
            Self::NotSignedIn => f.write_str("You are not signed in. Sign in and try again."),
            Self::LastSignInMethod => f.write_str("This would leave your account with no way to sign in. Set a password first."),
            Self::NotLinked => f.write_str("No logi account is linked."),
            Self::PasswordAlreadySet => f.write_str("Your account already has a password. Change it instead."),
            Self::NoPassword => f.write_str("Your account has no password yet."),
            Self::SessionNotFound => f.write_str("That session has already ended."),
            Self::InvalidRequest => f.write_str("The form was incomplete. Reload the page and try again."),
            Self::ServerUnreachable => f.write_str("The server could not be reached. Check your connection and try again."),
            Self::DatabaseUnavailable => f.write_str("Our database is briefly unavailable, so nothing was changed. Try again in a moment."),
            Self::ServerBusy => f.write_str("We are very busy right now. Try again in a moment."),
            Self::Internal => f.write_str("Something went wrong on our side. Please try again."),
        }
    }
}

impl FromServerFnError for AccountError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(error: ServerFnErrorErr) -> Self {
        match error {
            // On the server these mean the request could not be decoded (a malformed form).
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::Deserialization(_)
            | ServerFnErrorErr::UnsupportedRequestMethod(_) => Self::InvalidRequest,
            ServerFnErrorErr::Request(_) => Self::ServerUnreachable,
            _ => Self::Internal,
        }
    }
}

/// leptos answers every server-function error with 500, and a malformed form is refused
/// before the function runs, so the status is given here, on the way out: the body is
/// `{"error": code, ...}` and [`AccountError::status`] gives the code's status (400, 401,
/// 403, 404, 409, 429), so clients and logs can tell bad input from our failures.
#[cfg(feature = "ssr")]
pub async fn server_fn_error_status(response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(crate::server::request::JSON.as_bytes()));
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return crate::server::AppError::Internal("a server-function error body too large to read".into()).into_response();
    };
    let error = serde_json::from_slice::<AccountError>(&bytes).ok();
    if let Some(error) = &error {
        parts.status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let response = axum::response::Response::from_parts(parts, axum::body::Body::from(bytes));
    match error {
        Some(AccountError::DatabaseUnavailable) => crate::server::Failure::DatabaseUnavailable.with_retry_after(response),
        Some(AccountError::ServerBusy) => crate::server::Failure::Busy.with_retry_after(response),
        _ => response,
    }
}

#[cfg(feature = "ssr")]
impl From<crate::server::AppError> for AccountError {
    /// Internal causes are logged and never shown.
    fn from(error: crate::server::AppError) -> Self {
        match error.logged() {
            crate::server::Failure::DatabaseUnavailable => Self::DatabaseUnavailable,
            crate::server::Failure::Busy => Self::ServerBusy,
            crate::server::Failure::Internal => Self::Internal,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AccountError {
    fn from(error: sqlx::Error) -> Self {
        crate::server::AppError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_says_when_to_try_again() {
        assert_eq!(AccountError::Throttled { retry_after_minutes: 1 }.to_string(), "Too many failed attempts. Try again in 1 minute.");
        assert_eq!(AccountError::Throttled { retry_after_minutes: 14 }.to_string(), "Too many failed attempts. Try again in 14 minutes.");
    }

    #[test]
    fn errors_travel_as_tagged_json() {
        let error = AccountError::Throttled { retry_after_minutes: 3 };
        let json = serde_json::to_string(&error).unwrap();
        assert_eq!(json, r#"{"error":"throttled","retry_after_minutes":3}"#);
        assert_eq!(serde_json::from_str::<AccountError>(&json).unwrap(), error);
    }
}
