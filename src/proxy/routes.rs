//! `ANY /api/{*path}`: calls to the declared APIs (`super::apis`), each forwarded to its
//! upstream with the token its policy names (the login's logi access token, refreshed first
//! when it is about to expire, or none).
//!
//! Contract: a request that carries our session cookie must carry `X-CSRF: 1` (every method,
//! GET included); a native app's carries `Authorization: Bearer <our access token>` instead
//! (no ambient credential, so no `X-CSRF`); a caller with neither needs none (it is anonymous).
//! Errors are JSON `{"error": code}`: 404 `not_found` (no API at that path), 405
//! `method_not_allowed` (with `Allow`), 403 `missing_csrf_header`, 401 `not_signed_in`, 401
//! `session_expired` (the refresh token was refused; the session is ended), 403
//! `logi_sign_in_required` (signed in without logi), 403 `resource_not_granted` (the
//! login's grant does not cover the API's `resource`; sign in again), 403
//! `insufficient_scope` (the token's scope lacks one the API needs), 403 `bad_origin` (a
//! WebSocket upgrade with our cookie from another origin), 400 `invalid_upgrade` (a
//! malformed WebSocket handshake), 401 `step_up_required` (the API requires a stronger or
//! more recent sign-in, or its upstream asked for one: `super::step_up`), 400 `invalid_proxy_path`, 413
//! `body_too_large`, 502 `token_refresh_failed`, 502 `client_token_failed`, 502 `upstream_unreachable`, 504
//! `upstream_timeout`, 503 `proxy_not_configured` (`/api/proxy/` without `UPSTREAM_API_URL`).

use super::apis::{Api, Apis, TokenPolicy, DEFAULT_PATH};
use super::client_token::{ClientToken, ClientTokenError};
use super::socket::{self, Relay, SocketError, Upgrade};
use super::step_up::{self, StepUp};
use super::upstream::UpstreamError;
use super::{target, CSRF_HEADER};
use crate::login::session::has_session_cookie;
use crate::login::tokens::CustodyError;
use crate::login::{ApiLogin, EndReason, Login, Logins};
use crate::server::http::error_chain;
use crate::server::request_id::{RequestId, X_REQUEST_ID};
use crate::server::{json_error, AppError, Failure};
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// Largest request body forwarded (checked against Content-Length and while streaming).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn routes<S>() -> Router<S>
where
    Arc<Logins>: FromRef<S>,
    Arc<Apis>: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    // Below every route of our own: axum prefers a static path to a catch-all.
    Router::new().route("/api/{*path}", any(proxy))
}

#[derive(Debug, PartialEq, Eq)]
enum ProxyError {
    NotFound,
    MethodNotAllowed(String),
    MissingCsrfHeader,
    NotConfigured,
    NotSignedIn,
    SessionExpired,
    LogiSignInRequired,
    ResourceNotGranted,
    InsufficientScope,
    BadOrigin,
    InvalidUpgrade,
    InvalidPath,
    BodyTooLarge,
    TokenRefreshFailed,
    ClientTokenFailed,
    UpstreamUnreachable,
    UpstreamTimeout,
    StepUpRequired(Box<StepUp>),
    Failed(Failure),
}

impl ProxyError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::MissingCsrfHeader => (StatusCode::FORBIDDEN, "missing_csrf_header"),
            Self::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "proxy_not_configured"),
            Self::NotSignedIn => (StatusCode::UNAUTHORIZED, "not_signed_in"),
            Self::SessionExpired => (StatusCode::UNAUTHORIZED, "session_expired"),
            Self::LogiSignInRequired => (StatusCode::FORBIDDEN, "logi_sign_in_required"),
            Self::ResourceNotGranted => (StatusCode::FORBIDDEN, "resource_not_granted"),
            Self::InsufficientScope => (StatusCode::FORBIDDEN, "insufficient_scope"),
            Self::BadOrigin => (StatusCode::FORBIDDEN, "bad_origin"),
            Self::InvalidUpgrade => (StatusCode::BAD_REQUEST, "invalid_upgrade"),
            Self::InvalidPath => (StatusCode::BAD_REQUEST, "invalid_proxy_path"),
            Self::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::TokenRefreshFailed => (StatusCode::BAD_GATEWAY, "token_refresh_failed"),
            Self::ClientTokenFailed => (StatusCode::BAD_GATEWAY, "client_token_failed"),
            Self::UpstreamUnreachable => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            Self::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            Self::StepUpRequired(_) => (StatusCode::UNAUTHORIZED, "step_up_required"),
            Self::Failed(failure) => (failure.status(), failure.code()),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        match self {
            Self::Failed(failure) => failure.into_response(),
            Self::StepUpRequired(step_up) => step_up.into_response(),
            Self::MethodNotAllowed(allow) => {
                let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
                if let Ok(allow) = HeaderValue::try_from(allow) {
                    response.headers_mut().insert(header::ALLOW, allow);
                }
                response
            }
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

async fn proxy(State(logins): State<Arc<Logins>>, State(apis): State<Arc<Apis>>, request: Request) -> Response {
    let table = apis.current();
    let (api, found, request) = match admit(&logins, &table, request).await {
        Ok(admitted) => admitted,
        Err(rejection) => return rejection,
    };
    let bearer = found.is_bearer();
    let outcome = if api.declaration.websocket && socket::is_upgrade(request.method(), request.headers()) {
        Box::pin(open_socket(&logins, &apis, api, found, request)).await
    } else {
        forward(&logins, &apis, api, found, request).await
    };
    match outcome {
        Ok(response) => response,
        // A device whose logi session was refused gets the bearer challenge too.
        Err(ProxyError::SessionExpired) if bearer => crate::login::invalid_token("session_expired"),
        Err(error) => error.into_response(),
    }
}

/// The API at the request's path, if it takes this method, and the caller's login; what
/// is refused here costs no login lookup.
async fn admit<'t>(logins: &Arc<Logins>, table: &'t super::apis::ApiTable, request: Request) -> Result<(&'t Api, ApiLogin, Request), Response> {
    let path = request.uri().path();
    let Some((api, _)) = table.route(path) else {
        let error = if path.starts_with(DEFAULT_PATH) { ProxyError::NotConfigured } else { ProxyError::NotFound };
        return Err(error.into_response());
    };
    if !api.allows(request.method()) {
        return Err(ProxyError::MethodNotAllowed(api.allow()).into_response());
    }
    let (mut parts, body) = request.into_parts();
    let found = ApiLogin::from_request_parts(&mut parts, logins).await.map_err(IntoResponse::into_response)?;
    Ok((api, found, Request::from_parts(parts, body)))
}

async fn forward(logins: &Logins, apis: &Apis, api: &Api, found: ApiLogin, request: Request) -> Result<Response, ProxyError> {
    if has_session_cookie(request.headers()) && request.headers().get(CSRF_HEADER).is_none_or(|value| value != "1") {
        return Err(ProxyError::MissingCsrfHeader);
    }
    let uri = upstream_uri(api, request.uri())?;
    if declared_length(request.headers()).is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(ProxyError::BodyTooLarge);
    }
    check_step_up(logins, apis, api, &found, request.headers()).await?;
    let access_token = token_for(logins, &apis.client_token, api, &found).await?;
    let (parts, body) = request.into_parts();
    let body = if matches!(parts.method, Method::GET | Method::HEAD) { Body::empty() } else { limited(body) };
    let mut outgoing = Request::new(body);
    *outgoing.headers_mut() = upstream_headers(api, &parts, access_token.as_ref())?;
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = uri;
    let answer = send(api, outgoing).await?;
    upstream_answer(logins, apis, api, answer, &parts.headers)
}

/// Refuses, before anything is sent upstream, a signed-in caller whose login does not
/// meet the API's step-up requirement. (Anonymous callers are refused by the token policy:
/// an API with a requirement takes none.)
async fn check_step_up(logins: &Logins, apis: &Apis, api: &Api, found: &ApiLogin, headers: &HeaderMap) -> Result<(), ProxyError> {
    let (Some(requirement), Some(login)) = (&api.declaration.step_up, &found.login) else { return Ok(()) };
    if requirement.is_met_by(&logins.authentication(login).await?, crate::server::unix_now()) {
        return Ok(());
    }
    Err(ProxyError::StepUpRequired(Box::new(StepUp::new(requirement.clone(), headers, apis.app_origin()))))
}

/// The upstream's answer for the caller. Its own RFC 9470 challenge becomes our step-up
/// answer when a sign-in may ask for what it names (some API declares those values);
/// otherwise it is not ours to satisfy, and the `401` goes to the caller as it came.
fn upstream_answer(logins: &Logins, apis: &Apis, api: &Api, answer: Response, headers: &HeaderMap) -> Result<Response, ProxyError> {
    match step_up::upstream_requirement(answer.status(), answer.headers()) {
        Some(requirement) if requirement.check_declared(&logins.api_consent().step_ups).is_ok() => {
            Err(ProxyError::StepUpRequired(Box::new(StepUp::new(requirement, headers, apis.app_origin()))))
        }
        Some(_) => {
            tracing::warn!(api = api.name(), "the upstream asked for a step-up no API declares; its 401 goes to the caller as it came");
            Ok(answer_of(answer))
        }
        None => Ok(answer_of(answer)),
    }
}

/// A WebSocket through the API: admitted like any of its requests (a cookie needs our own
/// `Origin` instead of `X-CSRF`), the upstream's handshake first, then the relay (`super::socket`).
async fn open_socket(logins: &Logins, apis: &Arc<Apis>, api: &Api, found: ApiLogin, request: Request) -> Result<Response, ProxyError> {
    let (mut parts, _) = request.into_parts();
    if has_session_cookie(&parts.headers) && !apis.sockets.is_own_origin(&parts.headers) {
        return Err(ProxyError::BadOrigin);
    }
    let upgrade = Upgrade::of(&mut parts).ok_or(ProxyError::InvalidUpgrade)?;
    let uri = upstream_uri(api, &parts.uri)?;
    check_step_up(logins, apis, api, &found, &parts.headers).await?;
    let access_token = token_for(logins, &apis.client_token, api, &found).await?;
    let (handshake, key) = upgrade.upstream_request(uri, upstream_headers(api, &parts, access_token.as_ref())?);
    match socket::upstream_socket(send(api, handshake).await?, &key).await {
        Ok((stream, protocol)) => {
            let relay = Relay { api: api.name().to_owned(), login: found.login.map(|login| login.id), idle: api.declaration.timeout };
            Ok(apis.sockets.accept(upgrade, stream, protocol, relay))
        }
        Err(SocketError::Refused(answer)) => upstream_answer(logins, apis, api, *answer, &parts.headers),
        Err(SocketError::BadUpstreamHandshake) => {
            tracing::warn!(api = api.name(), "the upstream's WebSocket handshake was not valid");
            Err(ProxyError::UpstreamUnreachable)
        }
    }
}

/// Where the request goes at the API's upstream (the same path checks for every API).
fn upstream_uri(api: &Api, uri: &Uri) -> Result<Uri, ProxyError> {
    let rest = uri.path().strip_prefix(api.declaration.path.as_str()).unwrap_or_default();
    let url = target::resolve(&api.upstream.base, rest, uri.query()).ok_or(ProxyError::InvalidPath)?;
    Uri::try_from(url.as_str()).map_err(|_| ProxyError::InvalidPath)
}

/// The forwarded headers (an allow-list), the token, our User-Agent and the request id.
fn upstream_headers(api: &Api, parts: &axum::http::request::Parts, access_token: Option<&SecretString>) -> Result<HeaderMap, ProxyError> {
    let mut headers = target::request_headers(&parts.headers);
    if let Some(token) = access_token {
        headers.insert(header::AUTHORIZATION, bearer_header(token)?);
    }
    headers.insert(header::USER_AGENT, api.upstream.user_agent.clone());
    if let Some(RequestId(id)) = parts.extensions.get::<RequestId>() {
        headers.insert(X_REQUEST_ID, id.clone());
    }
    Ok(headers)
}

/// The upstream's answer, measured (`api` label) and mapped to our errors.
async fn send(api: &Api, outgoing: Request) -> Result<Response, ProxyError> {
    let started = std::time::Instant::now();
    let answer = api.upstream.send(outgoing).await;
    let status = answer.as_ref().map_or_else(|error| error.label(), |answer| status_class(answer.status()));
    metrics::histogram!("logi_bff_upstream_duration_seconds", "api" => api.name().to_owned()).record(started.elapsed().as_secs_f64());
    metrics::counter!("logi_bff_upstream_responses_total", "api" => api.name().to_owned(), "status" => status).increment(1);
    answer.map_err(upstream_error)
}

/// The upstream's answer as the caller gets it: its headers filtered, its body streamed.
fn answer_of(answer: Response) -> Response {
    let (mut head, body) = answer.into_parts();
    head.headers = target::response_headers(&head.headers);
    Response::from_parts(head, body)
}

/// The token the API's policy sends (`None`: no `Authorization`), or why the caller may not call.
async fn token_for(logins: &Logins, client_token: &ClientToken, api: &Api, found: &ApiLogin) -> Result<Option<SecretString>, ProxyError> {
    let declaration = &api.declaration;
    let user_token = match (declaration.token, &found.login) {
        (TokenPolicy::None, None) if declaration.public => return Ok(None),
        (TokenPolicy::Client, None) if declaration.public => None,
        (TokenPolicy::UserOrNone, None) => return Ok(None),
        (_, None) => return Err(ProxyError::NotSignedIn),
        (TokenPolicy::None, Some(_)) => return Ok(None),
        (TokenPolicy::Client, Some(_)) => None,
        (TokenPolicy::User | TokenPolicy::UserOrNone | TokenPolicy::UserOrClient, Some(login)) => access_token(logins, found, login, api).await?,
    };
    match (declaration.token, user_token) {
        (_, Some(token)) => Ok(Some(token)),
        (TokenPolicy::User, None) => Err(ProxyError::LogiSignInRequired),
        (TokenPolicy::UserOrNone, None) => Ok(None),
        (_, None) => match client_token.get(&declaration.audience).await {
            Ok(token) => Ok(Some(token)),
            Err(ClientTokenError::InsufficientScope) => Err(ProxyError::InsufficientScope),
            Err(ClientTokenError::Unavailable) => Err(ProxyError::ClientTokenFailed),
        },
    }
}

/// `Bearer <token>`, kept out of debug output. A token that is no header value (logi
/// would have to send one) fails like an unreachable upstream.
fn bearer_header(token: &SecretString) -> Result<HeaderValue, ProxyError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret())).map_err(|_| ProxyError::UpstreamUnreachable)?;
    value.set_sensitive(true);
    Ok(value)
}

/// The login's access token for the API, refreshed if needed; `None` for a login without
/// logi's tokens. A refused refresh (or a login ended meanwhile) ends the login, and signs
/// a browser out.
async fn access_token(logins: &Logins, found: &ApiLogin, login: &Login, api: &Api) -> Result<Option<SecretString>, ProxyError> {
    match logins.access_token(login, (api.name(), &api.declaration.audience)).await {
        Ok(token) => Ok(Some(token)),
        // Boxed: this rare branch would otherwise grow every proxied request's future.
        Err(CustodyError::Expired) => Box::pin(end_refused(logins, found, login)).await,
        Err(CustodyError::NoTokens) => Ok(None),
        Err(CustodyError::ProviderUnavailable) => Err(ProxyError::TokenRefreshFailed),
        Err(CustodyError::ResourceNotGranted) => Err(ProxyError::ResourceNotGranted),
        Err(CustodyError::InsufficientScope) => Err(ProxyError::InsufficientScope),
        Err(CustodyError::Failed(failure)) => Err(ProxyError::Failed(failure)),
    }
}

async fn end_refused(logins: &Logins, found: &ApiLogin, login: &Login) -> Result<Option<SecretString>, ProxyError> {
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
