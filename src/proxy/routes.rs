//! `ANY /api/proxy/{*path}`: the browser's API calls, forwarded to `UPSTREAM_API_URL`
//! with the login's access token (refreshed first when it is about to expire).
//!
//! Contract: a browser's request must carry `X-CSRF: 1` (every method, GET included)
//! and its session cookie; a native app's carries `Authorization: Bearer <our access
//! token>` instead (no ambient credential, so no `X-CSRF`). Errors are JSON `{"error": code}`: 403 `missing_csrf_header`,
//! 401 `not_signed_in`, 401 `session_expired` (the refresh token was refused; the
//! session is ended), 403 `logi_sign_in_required` (signed in without logi), 400
//! `invalid_proxy_path`, 413 `body_too_large`, 502 `token_refresh_failed`, 502
//! `upstream_unreachable`, 504 `upstream_timeout`, 503 `proxy_not_configured`.

use super::upstream::{Upstream, UpstreamError};
use super::{target, CSRF_HEADER};
use crate::login::tokens::CustodyError;
use crate::login::{ApiLogin, EndReason, Login, Logins};
use crate::server::http::error_chain;
use crate::server::request_id::{RequestId, X_REQUEST_ID};
use crate::server::{json_error, AppError, Failure};
use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

const PREFIX: &str = "/api/proxy/";
/// Largest request body forwarded (checked against Content-Length and while streaming).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn routes<S>() -> Router<S>
where
    Arc<Logins>: FromRef<S>,
    Option<Arc<Upstream>>: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/api/proxy/{*path}", any(proxy))
}

#[derive(Debug, PartialEq, Eq)]
enum ProxyError {
    MissingCsrfHeader,
    NotConfigured,
    NotSignedIn,
    SessionExpired,
    LogiSignInRequired,
    InvalidPath,
    BodyTooLarge,
    TokenRefreshFailed,
    UpstreamUnreachable,
    UpstreamTimeout,
    Failed(Failure),
}

impl ProxyError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MissingCsrfHeader => (StatusCode::FORBIDDEN, "missing_csrf_header"),
            Self::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "proxy_not_configured"),
            Self::NotSignedIn => (StatusCode::UNAUTHORIZED, "not_signed_in"),
            Self::SessionExpired => (StatusCode::UNAUTHORIZED, "session_expired"),
            Self::LogiSignInRequired => (StatusCode::FORBIDDEN, "logi_sign_in_required"),
            Self::InvalidPath => (StatusCode::BAD_REQUEST, "invalid_proxy_path"),
            Self::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::TokenRefreshFailed => (StatusCode::BAD_GATEWAY, "token_refresh_failed"),
            Self::UpstreamUnreachable => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            Self::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            Self::Failed(failure) => (failure.status(), failure.code()),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        match self {
            Self::Failed(failure) => failure.into_response(),
            other => {
                let (status, code) = other.status_and_code();
                json_error(status, code)
            }
        }
    }
}

impl From<AppError> for ProxyError {
    fn from(error: AppError) -> Self {
        Self::Failed(error.logged())
    }
}

async fn proxy(State(logins): State<Arc<Logins>>, State(upstream): State<Option<Arc<Upstream>>>, found: ApiLogin, request: Request) -> Response {
    let bearer = found.is_bearer();
    match forward(&logins, upstream.as_deref(), found, request).await {
        Ok(response) => response,
        // A device whose logi session was refused gets the bearer challenge too.
        Err(ProxyError::SessionExpired) if bearer => crate::login::invalid_token("session_expired"),
        Err(error) => error.into_response(),
    }
}

async fn forward(logins: &Logins, upstream: Option<&Upstream>, found: ApiLogin, request: Request) -> Result<Response, ProxyError> {
    if !found.is_bearer() && request.headers().get(CSRF_HEADER).is_none_or(|value| value != "1") {
        return Err(ProxyError::MissingCsrfHeader);
    }
    let upstream = upstream.ok_or(ProxyError::NotConfigured)?;
    let login = found.login.as_ref().ok_or(ProxyError::NotSignedIn)?;
    let raw_path = request.uri().path().strip_prefix(PREFIX).unwrap_or_default();
    let url = target::resolve(&upstream.base, raw_path, request.uri().query()).ok_or(ProxyError::InvalidPath)?;
    if declared_length(request.headers()).is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(ProxyError::BodyTooLarge);
    }
    let uri = Uri::try_from(url.as_str()).map_err(|_| ProxyError::InvalidPath)?;
    let access_token = access_token(logins, &found, login).await?;
    let (parts, body) = request.into_parts();
    let body = if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) { Body::empty() } else { limited(body) };
    let mut outgoing = Request::new(body);
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = uri;
    let headers = outgoing.headers_mut();
    *headers = target::request_headers(&parts.headers);
    headers.insert(header::AUTHORIZATION, bearer_header(&access_token)?);
    headers.insert(header::USER_AGENT, upstream.user_agent.clone());
    if let Some(RequestId(id)) = parts.extensions.get::<RequestId>() {
        headers.insert(X_REQUEST_ID, id.clone());
    }
    let started = std::time::Instant::now();
    let answer = upstream.send(outgoing).await;
    let status = answer.as_ref().map_or_else(|error| error.label(), |answer| status_class(answer.status()));
    metrics::histogram!("logi_bff_upstream_duration_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("logi_bff_upstream_responses_total", "status" => status).increment(1);
    let (mut head, body) = answer.map_err(upstream_error)?.into_parts();
    head.headers = target::response_headers(&head.headers);
    Ok(Response::from_parts(head, body))
}

/// `Bearer <token>`, kept out of debug output. A token that is no header value (logi
/// would have to send one) fails like an unreachable upstream.
fn bearer_header(token: &SecretString) -> Result<HeaderValue, ProxyError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret())).map_err(|_| ProxyError::UpstreamUnreachable)?;
    value.set_sensitive(true);
    Ok(value)
}

/// The login's access token, refreshed if needed. A refused refresh (or a login ended
/// meanwhile) ends the login, and signs a browser out.
async fn access_token(logins: &Logins, found: &ApiLogin, login: &Login) -> Result<SecretString, ProxyError> {
    match logins.access_token(login).await {
        Ok(token) => Ok(token),
        // Boxed: this rare branch would otherwise grow every proxied request's future.
        Err(CustodyError::Expired) => Box::pin(end_refused(logins, found, login)).await,
        Err(CustodyError::NoTokens) => Err(ProxyError::LogiSignInRequired),
        Err(CustodyError::ProviderUnavailable) => Err(ProxyError::TokenRefreshFailed),
        Err(CustodyError::Failed(failure)) => Err(ProxyError::Failed(failure)),
    }
}

async fn end_refused(logins: &Logins, found: &ApiLogin, login: &Login) -> Result<SecretString, ProxyError> {
    tracing::info!("refresh token refused; ending the login");
    match &found.session {
        Some(session) => _ = logins.sign_out(session, Some(login), EndReason::Refused).await?,
        None => _ = logins.end(std::slice::from_ref(&login.id), EndReason::Refused).await?,
    }
    Err(ProxyError::SessionExpired)
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A status's class (`2xx` … `5xx`), the label of upstream answers.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The request body, streamed, failing once it passes [`MAX_BODY_BYTES`].
fn limited(body: Body) -> Body {
    Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES))
}

fn upstream_error(error: UpstreamError) -> ProxyError {
    let error = match error {
        UpstreamError::Timeout => {
            tracing::warn!("upstream request timed out");
            return ProxyError::UpstreamTimeout;
        }
        UpstreamError::Failed(error) => error,
    };
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return ProxyError::BodyTooLarge;
        }
        source = cause.source();
    }
    tracing::warn!(error = %error_chain(&error), "upstream request failed");
    ProxyError::UpstreamUnreachable
}
