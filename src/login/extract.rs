//! Finding the login of a request: extractors for axum handlers and one helper for
//! server functions. A second kind of client (a bearer token) is one more way to find
//! a [`Login`]; everything after the lookup is shared.

use super::{BrowserSession, Login, Logins};
use crate::server::{json_error, AppError};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use leptos::prelude::expect_context;
use std::sync::Arc;

/// The request's login, if it has a live one, and its session.
pub struct MaybeLogin {
    pub login: Option<Login>,
    pub session: BrowserSession,
}

/// The request's live login; answers `401 {"error":"not_signed_in"}` without one.
pub struct CurrentLogin {
    pub login: Login,
    pub session: BrowserSession,
}

pub enum LoginRejection {
    NotSignedIn,
    Failed(AppError),
}

impl IntoResponse for LoginRejection {
    fn into_response(self) -> Response {
        match self {
            Self::NotSignedIn => json_error(StatusCode::UNAUTHORIZED, "not_signed_in"),
            Self::Failed(error) => error.into_response(),
        }
    }
}

impl<S> FromRequestParts<S> for MaybeLogin
where
    Arc<Logins>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(found) = parts.extensions.get::<FoundLogin>() {
            return Ok(Self { login: found.0.clone(), session: found.1.clone() });
        }
        let session = BrowserSession::from_request_parts(parts, state).await?;
        let login = Arc::<Logins>::from_ref(state).current(&session).await?;
        // Later extractors of the same request reuse the answer.
        parts.extensions.insert(FoundLogin(login.clone(), session.clone()));
        Ok(Self { login, session })
    }
}

#[derive(Clone)]
struct FoundLogin(Option<Login>, BrowserSession);

impl<S> FromRequestParts<S> for CurrentLogin
where
    Arc<Logins>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = LoginRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let MaybeLogin { login, session } = MaybeLogin::from_request_parts(parts, state).await.map_err(LoginRejection::Failed)?;
        let login = login.ok_or(LoginRejection::NotSignedIn)?;
        Ok(Self { login, session })
    }
}

/// For server functions: the login service (from context) and this request's login and session.
pub async fn from_server_fn() -> Result<(Arc<Logins>, MaybeLogin), AppError> {
    let logins = expect_context::<Arc<Logins>>();
    let found = leptos_axum::extract_with_state::<MaybeLogin, _>(&logins).await.map_err(|error| AppError::Internal(format!("login lookup: {error}")))?;
    Ok((logins, found))
}
