//! Native apps, the seed's "Confidential + BFF" exchange: the app runs PKCE against
//! logi itself and sends us the code; we redeem it with our client secret, check it as
//! for a browser, start a device login and answer with **our** tokens. Also our token
//! endpoint (refresh rotation), revocation, the JWKS that verifies our tokens, and the
//! parameters the app's authorization request must carry.
//!
//! These routes sit outside the session and cross-site layers: they ignore cookies
//! entirely and carry no ambient credential. Errors use the RFC 6749 §5.2 shape.

use super::flow::{Auth, Upgrade};
use super::oidc::Provider;
use super::oidc::VerifiedIdToken;
use super::profile;
use crate::accounts::{store as accounts, throttle};
use crate::login::device::DeviceTokens;
use crate::login::step_up::Requirement;
use crate::login::tokens::{TokenError, TokenSet};
use crate::login::{Login, Logins, User};
use crate::server::request::{self, client_address_in};
use crate::server::{no_store, oauth_error, AppError, Failure};
use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

pub const EXCHANGE: &str = "/api/auth/logi/exchange";
pub const TOKEN: &str = "/api/auth/token";
pub const REVOKE: &str = "/api/auth/revoke";
pub const JWKS: &str = "/.well-known/jwks.json";
pub const AUTHORIZE_PARAMS: &str = "/api/auth/logi/authorize-params";
const MAX_CODE_BYTES: usize = 2048;
const MAX_NONCE_BYTES: usize = 512;
const MAX_DEVICE_NAME_CHARS: usize = 200;

pub fn routes<S>() -> Router<S>
where
    Arc<Logins>: FromRef<S>,
    Option<Arc<Provider>>: FromRef<S>,
    Arc<crate::server::config::Config>: FromRef<S>,
    crate::server::db::Db: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(EXCHANGE, post(exchange))
        .route(TOKEN, post(token))
        .route(REVOKE, post(revoke))
        .route(JWKS, get(jwks))
        .route(AUTHORIZE_PARAMS, get(authorize_params))
}

/// Every error of these routes, as `{"error", "error_description"}`.
#[derive(Debug, PartialEq, Eq)]
enum NativeError {
    /// `NATIVE_REDIRECT_URIS` is not set: native apps are off.
    NotEnabled,
    InvalidRequest(&'static str),
    InvalidGrant,
    UnsupportedGrantType,
    InvalidIdToken,
    UserinfoFailed,
    ProviderUnavailable,
    SlowDown {
        retry_after_secs: i64,
    },
    LogiNotConfigured,
    /// An upgrade's bearer token is not a live device login's (`401`).
    InvalidToken,
    /// An upgrade whose new sign-in does not meet the requirement, or is another logi account.
    StepUpFailed,
    DatabaseUnavailable,
    ServerBusy,
    Internal,
}

impl NativeError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::NotEnabled => (StatusCode::NOT_FOUND, "not_found", "Native apps are not enabled on this server."),
            Self::InvalidRequest(why) => (StatusCode::BAD_REQUEST, "invalid_request", why),
            Self::InvalidGrant => (StatusCode::BAD_REQUEST, "invalid_grant", "The grant is invalid, expired, revoked or was already used."),
            Self::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type", "Only grant_type=refresh_token is supported here."),
            Self::InvalidIdToken => (StatusCode::BAD_REQUEST, "invalid_id_token", "logi's id_token failed verification."),
            Self::UserinfoFailed => (StatusCode::BAD_REQUEST, "userinfo_failed", "logi's userinfo could not be read or did not match."),
            Self::ProviderUnavailable => (StatusCode::BAD_GATEWAY, "provider_unavailable", "logi could not be reached or did not answer properly."),
            Self::SlowDown { .. } => (StatusCode::TOO_MANY_REQUESTS, "slow_down", "Too many exchanges from this address; retry later."),
            Self::LogiNotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "logi_not_configured", "logi sign-in is not configured on this server."),
            Self::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token", "The bearer token is not a live device login's; sign in again."),
            Self::StepUpFailed => {
                (StatusCode::BAD_REQUEST, "step_up_failed", "The new sign-in does not meet acr_values or max_age, or is another logi account; nothing changed.")
            }
            Self::DatabaseUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "Our database is unavailable; retry shortly."),
            Self::ServerBusy => (StatusCode::SERVICE_UNAVAILABLE, "server_busy", "The server is busy; retry shortly."),
            // RFC 6749's name for our own failure (the other routes say `internal_error`).
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", "Something went wrong on our side."),
        }
    }
}

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        let (status, error, description) = self.parts();
        let mut response = oauth_error(status, error, description);
        match self {
            Self::SlowDown { retry_after_secs } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
            Self::InvalidToken => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#));
                response
            }
            Self::DatabaseUnavailable => Failure::DatabaseUnavailable.with_retry_after(response),
            Self::ServerBusy => Failure::Busy.with_retry_after(response),
            _ => response,
        }
    }
}

impl From<AppError> for NativeError {
    fn from(error: AppError) -> Self {
        match error.logged() {
            Failure::DatabaseUnavailable => Self::DatabaseUnavailable,
            Failure::Busy => Self::ServerBusy,
            Failure::Internal => Self::Internal,
        }
    }
}

/// The token response: our tokens only. `user` only after an exchange.
#[derive(Serialize)]
struct TokenResponse<'a> {
    token_type: &'static str,
    access_token: &'a str,
    expires_in: i64,
    refresh_token: &'a str,
    refresh_expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User>,
}

fn token_response(tokens: &DeviceTokens, user: Option<User>) -> Response {
    let body = TokenResponse {
        token_type: "Bearer",
        access_token: tokens.access_token.expose_secret(),
        expires_in: tokens.expires_in,
        refresh_token: tokens.refresh_token.expose_secret(),
        refresh_expires_in: tokens.refresh_expires_in,
        user,
    };
    no_store(Json(body).into_response())
}

/// `POST /api/auth/logi/exchange`.
async fn exchange(auth: Auth, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let redeemed = redeem(&auth, &parts, body).await;
    crate::server::metrics::sign_in("native", redeemed.is_ok());
    redeemed.unwrap_or_else(IntoResponse::into_response)
}

async fn redeem(auth: &Auth, parts: &Parts, body: Body) -> Result<Response, NativeError> {
    let native = &auth.config.native;
    if !native.enabled() {
        return Err(NativeError::NotEnabled);
    }
    let address = client_address_in(&parts.extensions);
    let headers = &parts.headers;
    if let Err(retry_after_secs) = throttle::take(&auth.db, &format!("exchange:{address}"), native.exchanges_per_minute.into(), 60).await? {
        return Err(NativeError::SlowDown { retry_after_secs });
    }
    if !request::is_media_type(headers, request::JSON) {
        return Err(NativeError::InvalidRequest("The body must be JSON (Content-Type: application/json)."));
    }
    let request = ExchangeRequest::parse(&read_body(body).await?)?;
    let provider = auth.logi.as_deref().ok_or(NativeError::LogiNotConfigured)?;
    if !native.redirect_uris.contains(&request.redirect_uri) {
        return Err(NativeError::InvalidRequest("redirect_uri is not one of this server's native redirect URIs."));
    }
    let step_up = super::flow::step_up_of(auth, request.acr_values.as_deref(), request.max_age.map(|secs| secs.to_string()).as_deref())
        .map_err(|_| NativeError::InvalidRequest("acr_values or max_age is malformed or names a value no API declares."))?;
    let upgrading = match request::bearer_token(headers) {
        Some(token) => Some(auth.logins.bearer(token).await?.map_err(|_| NativeError::InvalidToken)?),
        None => None,
    };
    if upgrading.is_some() && step_up.is_none() {
        return Err(NativeError::InvalidRequest("An upgrade (a request with a bearer token) names acr_values or max_age."));
    }
    let grant = provider.exchange_code(&request.code, &request.code_verifier, &request.redirect_uri).await.map_err(refused_code)?;
    let finished = match &upgrading {
        Some(login) => upgrade(auth, provider, &request, login, grant.clone(), step_up.as_ref()).await,
        None => sign_in(auth, provider, &request, &grant, step_up.as_ref()).await,
    };
    match finished {
        Ok(response) => Ok(response),
        // A refused upgrade's grant may be the device's own grant continued (see `Logins::upgrade`).
        Err(error) if upgrading.is_some() => Err(error),
        Err(error) => {
            // The app will not get these tokens: logi's refresh token must not outlive the failure.
            auth.logins.revoke_in_background(grant.refresh_token.into_iter().collect());
            Err(error)
        }
    }
}

/// logi's id_token, verified, and meeting the step-up's requirement when there is one.
async fn verified(provider: &Provider, request: &ExchangeRequest, grant: &TokenSet, step_up: Option<&Requirement>) -> Result<VerifiedIdToken, NativeError> {
    let id_token = grant.id_token.as_ref().ok_or(NativeError::InvalidIdToken)?;
    let verified = provider.verify_id_token(id_token, request.nonce.as_deref(), &grant.access_token).await.map_err(from_auth_error)?;
    if step_up.is_some_and(|requirement| !requirement.is_met_by(&verified.authentication, crate::server::unix_now())) {
        return Err(NativeError::StepUpFailed);
    }
    Ok(verified)
}

/// Verified id_token → userinfo → the user, the device login, its tokens: one transaction.
async fn sign_in(
    auth: &Auth,
    provider: &Provider,
    request: &ExchangeRequest,
    grant: &TokenSet,
    step_up: Option<&Requirement>,
) -> Result<Response, NativeError> {
    let verified = verified(provider, request, grant, step_up).await?;
    let info = provider.userinfo(&grant.access_token, &verified.subject).await.map_err(from_auth_error)?;
    let mut tx = accounts::begin(&auth.db).await?;
    let user_id = accounts::user_for_identity(&mut tx, provider.issuer(), &verified.subject, &profile::from_userinfo(&info)).await?;
    let logi = (&verified.session, &verified.authentication);
    let (login, tokens, events) = auth.logins.start_device(&mut tx, user_id, request.device_name.as_deref(), grant, logi).await?;
    events.commit(tx).await?;
    auth.logins.user_changed(user_id);
    tracing::info!(login = %login.id, "native app signed in");
    let user = auth.logins.user(&login).await?;
    Ok(token_response(&tokens, user))
}

/// A device's step-up: the bearer's login is upgraded in place (`Logins::upgrade`) when
/// the new sign-in meets the requirement and is the login's own logi account. The app keeps
/// its tokens: the same access token now meets the requirement, the refresh family goes on.
async fn upgrade(
    auth: &Auth,
    provider: &Provider,
    request: &ExchangeRequest,
    login: &Login,
    grant: TokenSet,
    step_up: Option<&Requirement>,
) -> Result<Response, NativeError> {
    let verified = verified(provider, request, &grant, step_up).await?;
    match super::flow::upgrade(auth, provider, login, &verified, grant).await? {
        Upgrade::Done => {}
        Upgrade::AnotherAccount => return Err(NativeError::StepUpFailed),
        Upgrade::LoginEnded => return Err(NativeError::InvalidToken),
    }
    tracing::info!(login = %login.id, "native app stepped up");
    let body = Upgraded { upgraded: true, acr: verified.authentication.acr.as_deref(), auth_time: verified.authentication.auth_time };
    Ok(no_store(Json(body).into_response()))
}

/// The answer to an upgrade: how the login's person has now authenticated.
#[derive(Serialize)]
struct Upgraded<'a> {
    upgraded: bool,
    acr: Option<&'a str>,
    auth_time: Option<i64>,
}

/// logi refused the code: the app's fault (`invalid_grant`) unless logi failed or refused us.
fn refused_code(error: TokenError) -> NativeError {
    match error {
        TokenError::Refused { status, .. } if status >= 500 => NativeError::ProviderUnavailable,
        TokenError::Refused { error, .. } if error == "invalid_client" => {
            tracing::error!("logi refused our client credentials (check ONE_PASS_CLIENT_ID / ONE_PASS_CLIENT_SECRET)");
            NativeError::ProviderUnavailable
        }
        TokenError::Refused { .. } => NativeError::InvalidGrant,
        TokenError::Malformed(_) | TokenError::Unreachable => NativeError::ProviderUnavailable,
        TokenError::NoClientSecret => NativeError::LogiNotConfigured,
    }
}

fn from_auth_error(error: super::errors::AuthError) -> NativeError {
    use super::errors::AuthError;
    match error {
        AuthError::IdTokenInvalid | AuthError::NoSubjectInIdToken => NativeError::InvalidIdToken,
        AuthError::UserinfoFailed | AuthError::UserinfoSubMismatch => NativeError::UserinfoFailed,
        AuthError::ProviderUnreachable => NativeError::ProviderUnavailable,
        other => {
            tracing::error!(code = %other.code(), "unexpected sign-in error in the native exchange");
            NativeError::Internal
        }
    }
}

/// The exchange's JSON body, checked field by field.
struct ExchangeRequest {
    code: String,
    code_verifier: String,
    redirect_uri: String,
    nonce: Option<String>,
    device_name: Option<String>,
    /// A step-up's requirement, as the app's authorization request sent it to logi.
    acr_values: Option<String>,
    max_age: Option<i64>,
}

impl ExchangeRequest {
    fn parse(body: &[u8]) -> Result<Self, NativeError> {
        #[derive(Deserialize)]
        struct Raw {
            code: Option<String>,
            code_verifier: Option<String>,
            redirect_uri: Option<String>,
            nonce: Option<String>,
            device_name: Option<String>,
            acr_values: Option<String>,
            max_age: Option<i64>,
        }
        let raw: Raw =
            serde_json::from_slice(body).map_err(|_| NativeError::InvalidRequest("The body is not a JSON object of string fields (max_age: an integer)."))?;
        let code = raw.code.filter(|code| is_line(code, MAX_CODE_BYTES)).ok_or(NativeError::InvalidRequest("code is missing or malformed."))?;
        let code_verifier = raw
            .code_verifier
            .filter(|verifier| is_pkce_verifier(verifier))
            .ok_or(NativeError::InvalidRequest("code_verifier is missing or malformed (RFC 7636)."))?;
        let redirect_uri = raw.redirect_uri.ok_or(NativeError::InvalidRequest("redirect_uri is missing."))?;
        if raw.nonce.as_deref().is_some_and(|nonce| !is_line(nonce, MAX_NONCE_BYTES)) {
            return Err(NativeError::InvalidRequest("nonce is malformed."));
        }
        if raw.device_name.as_deref().is_some_and(|name| name.chars().count() > MAX_DEVICE_NAME_CHARS) {
            return Err(NativeError::InvalidRequest("device_name is longer than 200 characters."));
        }
        Ok(Self { code, code_verifier, redirect_uri, nonce: raw.nonce, device_name: raw.device_name, acr_values: raw.acr_values, max_age: raw.max_age })
    }
}

/// Non-empty, at most `max` bytes, no control characters.
fn is_line(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && !value.chars().any(char::is_control)
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_pkce_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, NativeError> {
    request::small_body(body).await.ok_or(NativeError::InvalidRequest("The body is larger than 16 KiB or could not be read."))
}

/// The string fields of a form-encoded or JSON body (first value of a repeated key wins).
async fn fields(headers: &HeaderMap, body: Body) -> Result<HashMap<String, String>, NativeError> {
    let bytes = read_body(body).await?;
    match request::media_type(headers).as_deref() {
        Some(request::FORM) => {
            let mut fields = HashMap::new();
            for (key, value) in form_urlencoded::parse(&bytes) {
                fields.entry(key.into_owned()).or_insert_with(|| value.into_owned());
            }
            Ok(fields)
        }
        Some(request::JSON) => {
            let object: HashMap<String, serde_json::Value> =
                serde_json::from_slice(&bytes).map_err(|_| NativeError::InvalidRequest("The body is not a JSON object."))?;
            Ok(object.into_iter().filter_map(|(key, value)| Some((key, value.as_str()?.to_owned()))).collect())
        }
        _ => Err(NativeError::InvalidRequest("The body must be form-encoded or JSON.")),
    }
}

/// `POST /api/auth/token`: `grant_type=refresh_token&refresh_token=…` → a new pair.
async fn token(State(logins): State<Arc<Logins>>, State(config): State<Arc<crate::server::config::Config>>, headers: HeaderMap, body: Body) -> Response {
    refresh(&logins, config.native.enabled(), &headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn refresh(logins: &Logins, enabled: bool, headers: &HeaderMap, body: Body) -> Result<Response, NativeError> {
    if !enabled {
        return Err(NativeError::NotEnabled);
    }
    let mut fields = fields(headers, body).await?;
    match fields.remove("grant_type").as_deref() {
        Some("refresh_token") => {}
        Some(_) => return Err(NativeError::UnsupportedGrantType),
        None => return Err(NativeError::InvalidRequest("grant_type is missing.")),
    }
    let presented = SecretString::from(fields.remove("refresh_token").ok_or(NativeError::InvalidRequest("refresh_token is missing."))?);
    let tokens = logins.refresh_device(presented.expose_secret()).await?.ok_or(NativeError::InvalidGrant)?;
    Ok(token_response(&tokens, None))
}

/// `POST /api/auth/revoke` (RFC 7009): `token=<refresh token>` ends that device login.
/// Always `200` for a well-formed request, whether the token was known or not.
async fn revoke(State(logins): State<Arc<Logins>>, State(config): State<Arc<crate::server::config::Config>>, headers: HeaderMap, body: Body) -> Response {
    let revoked = async {
        if !config.native.enabled() {
            return Err(NativeError::NotEnabled);
        }
        let token = SecretString::from(fields(&headers, body).await?.remove("token").ok_or(NativeError::InvalidRequest("token is missing."))?);
        logins.revoke_device(token.expose_secret()).await?;
        Ok(no_store(StatusCode::OK.into_response()))
    };
    revoked.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /.well-known/jwks.json`: the public keys of our access tokens.
async fn jwks(State(logins): State<Arc<Logins>>, State(config): State<Arc<crate::server::config::Config>>) -> Response {
    if !config.native.enabled() {
        return NativeError::NotEnabled.into_response();
    }
    let mut response = ([(header::CONTENT_TYPE, "application/json")], logins.devices().jwks()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// What an app's authorization request at logi must carry besides its own PKCE, state,
/// nonce and redirect URI: our client id, the scope, and the declared APIs' resources
/// (RFC 8707), so that one consent covers every API the app will call through us.
#[derive(Serialize)]
struct AuthorizeParams<'a> {
    client_id: &'a str,
    scope: String,
    resource: &'a [String],
}

/// `GET /api/auth/logi/authorize-params`: [`AuthorizeParams`]; it changes when the API
/// file is reloaded, so apps read it before each sign-in.
async fn authorize_params(
    State(logins): State<Arc<Logins>>,
    State(logi): State<Option<Arc<Provider>>>,
    State(config): State<Arc<crate::server::config::Config>>,
) -> Response {
    if !config.native.enabled() {
        return NativeError::NotEnabled.into_response();
    }
    let Some(provider) = logi else { return NativeError::LogiNotConfigured.into_response() };
    let consent = logins.api_consent();
    let params = AuthorizeParams { client_id: provider.client_id(), scope: provider.scope_with(&consent.scopes), resource: &consent.resources };
    no_store(Json(params).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "0123456789abcdef0123456789abcdef0123456789a";

    fn parse(body: serde_json::Value) -> Result<ExchangeRequest, NativeError> {
        ExchangeRequest::parse(body.to_string().as_bytes())
    }

    #[test]
    fn exchange_bodies_are_checked_field_by_field() {
        let good = serde_json::json!({ "code": "c", "code_verifier": VERIFIER, "redirect_uri": "com.example.app:/cb" });
        let parsed = parse(good.clone()).unwrap();
        assert_eq!((parsed.code.as_str(), parsed.nonce, parsed.device_name), ("c", None, None));
        let with = |key: &str, value: serde_json::Value| {
            let mut body = good.clone();
            body[key] = value;
            parse(body).err()
        };
        for (key, value) in [
            ("code", serde_json::json!("")),
            ("code", serde_json::json!(42)),
            ("code", serde_json::json!("a".repeat(MAX_CODE_BYTES + 1))),
            ("code", serde_json::json!("a\nb")),
            ("code_verifier", serde_json::json!("short")),
            ("code_verifier", serde_json::json!(format!("{VERIFIER}!"))),
            ("code_verifier", serde_json::json!("a".repeat(129))),
            ("redirect_uri", serde_json::Value::Null),
            ("nonce", serde_json::json!("")),
            ("nonce", serde_json::json!(["n"])),
            ("device_name", serde_json::json!("é".repeat(201))),
        ] {
            assert!(matches!(with(key, value.clone()), Some(NativeError::InvalidRequest(_))), "{key}: {value}");
        }
        assert!(with("device_name", serde_json::json!("é".repeat(200))).is_none());
        for not_an_object in ["", "[]", "null", "{", "\"code\""] {
            assert!(matches!(ExchangeRequest::parse(not_an_object.as_bytes()), Err(NativeError::InvalidRequest(_))), "{not_an_object}");
        }
    }

    #[test]
    fn logi_refusals_map_to_oauth_errors() {
        let refused = |status, error: &str| refused_code(TokenError::Refused { status, error: error.into() });
        assert_eq!(refused(400, "invalid_grant"), NativeError::InvalidGrant);
        assert_eq!(refused(401, "invalid_client"), NativeError::ProviderUnavailable);
        assert_eq!(refused(503, ""), NativeError::ProviderUnavailable);
        assert_eq!(refused_code(TokenError::Malformed(200)), NativeError::ProviderUnavailable);
        assert_eq!(refused_code(TokenError::NoClientSecret), NativeError::LogiNotConfigured);
    }
}
