//! Finding the login of a request: extractors for axum handlers and one helper for
//! server functions. Browsers are found by their session cookie ([`MaybeLogin`], and
//! [`RequiredLogin`] where signing in is a must); the API routes that native apps call
//! also take our bearer access token ([`ApiLogin`]). Everything after the lookup is shared.

use super::session::has_session_cookie;
use super::{BrowserSession, Login, Logins};
use crate::server::request::bearer_token;
use crate::server::{json_error, AppError};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The request's login, if it has a live one, and its browser session.
pub struct MaybeLogin {
    pub login: Option<Login>,
    pub session: BrowserSession,
}

impl MaybeLogin {
    /// The login, when the request has one.
    pub fn required(self) -> Option<RequiredLogin> {
        Some(RequiredLogin { login: self.login?, session: self.session })
    }
}

/// A request's live login, for what only a signed-in browser may do.
pub struct RequiredLogin {
    pub login: Login,
    pub session: BrowserSession,
}

/// The request's live login, found by its session cookie or its bearer access token.
pub struct ApiLogin {
    pub login: Option<Login>,
    /// The browser session, for a cookie request; `None` when a bearer token spoke (no
    /// ambient credential).
    pub session: Option<BrowserSession>,
}

impl ApiLogin {
    pub fn is_bearer(&self) -> bool {
        self.session.is_none()
    }
}

pub enum LoginRejection {
    /// A session cookie and a bearer token on one request: which one speaks is ambiguous.
    CookieAndBearer,
    /// `401` with `WWW-Authenticate: Bearer error="invalid_token"`.
    InvalidToken,
    Failed(AppError),
}

impl IntoResponse for LoginRejection {
    fn into_response(self) -> Response {
        match self {
            Self::CookieAndBearer => json_error(StatusCode::BAD_REQUEST, "invalid_request"),
            Self::InvalidToken => invalid_token("invalid_token"),
            Self::Failed(error) => error.into_response(),
        }
    }
}

/// `401 {"error": code}` with the challenge RFC 6750 asks for.
pub fn invalid_token(code: &str) -> Response {
    let mut response = json_error(StatusCode::UNAUTHORIZED, code);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#));
    response
}

impl<S> FromRequestParts<S> for ApiLogin
where
    Arc<Logins>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = LoginRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer_token(&parts.headers).map(str::to_owned) else {
            let MaybeLogin { login, session } = MaybeLogin::from_request_parts(parts, state).await.map_err(LoginRejection::Failed)?;
            return Ok(Self { login, session: Some(session) });
        };
        if has_session_cookie(&parts.headers) {
            return Err(LoginRejection::CookieAndBearer);
        }
        match Arc::<Logins>::from_ref(state).bearer(&token).await.map_err(LoginRejection::Failed)? {
            Ok(login) => Ok(Self { login: Some(login), session: None }),
            Err(why) => {
                tracing::info!(why, "refused a bearer token");
                Err(LoginRejection::InvalidToken)
            }
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

/// For server functions: the login service (from context) and this request's login and session.
pub async fn from_server_fn() -> Result<(Arc<Logins>, MaybeLogin), AppError> {
    let logins = crate::server::request::from_context::<Arc<Logins>>()?;
    let found = leptos_axum::extract_with_state::<MaybeLogin, _>(&logins).await.map_err(|error| AppError::Internal(format!("login lookup: {error}")))?;
    Ok((logins, found))
}
