//! The BFF's sign-in routes, as thin axum handlers over the flow below. They are
//! plain handlers rather than server functions because they answer with redirects
//! and are reached by top-level navigations (from the page and from logi).
//!
//! `GET /api/auth/login`, `GET /api/auth/callback`, `GET /api/auth/me`,
//! `POST|GET /api/auth/logout`.

use super::errors::AuthError;
use super::oidc::{AuthorizationRequest, Provider};
use super::return_to::sanitize_return_to;
use crate::accounts::{self, LogiProfile};
use crate::server::{csrf, sessions, AppError, AppState};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::OffsetDateTime;
use tower_sessions::Session;

/// A login may take this long from `/api/auth/login` to the callback.
const LOGIN_LIFETIME_SECS: i64 = 600;
/// Pending logins kept per browser (several tabs may start one); the oldest is dropped.
const MAX_PENDING_LOGINS: usize = 3;
const PENDING_LOGINS: &str = "pending_logins";
const ALLOWED_PROMPTS: [&str; 4] = ["none", "login", "consent", "select_account"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", get(login))
        .route("/api/auth/callback", get(callback))
        .route("/api/auth/me", get(me))
        .route("/api/auth/logout", get(logout_and_redirect).post(logout))
}

/// One login in flight, kept server-side in this browser's session, used once.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    state: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
    started_at: i64,
}

fn query_map(query: Option<String>) -> HashMap<String, String> {
    // The first value wins; repeated parameters cannot override a checked one.
    let mut map = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        map.entry(key.into_owned()).or_insert_with(|| value.into_owned());
    }
    map
}

fn auth_error_redirect(error: &AuthError) -> Response {
    let location = format!("/?auth_error={}", url::form_urlencoded::byte_serialize(error.code().as_bytes()).collect::<String>());
    no_store(Redirect::to(&location).into_response())
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

async fn login(State(state): State<AppState>, session: Session, RawQuery(query): RawQuery) -> Response {
    match start_login(&state, &session, query_map(query)).await {
        Ok(url) => no_store(Redirect::to(url.as_str()).into_response()),
        Err(error) => auth_error_redirect(&error),
    }
}

async fn start_login(state: &AppState, session: &Session, params: HashMap<String, String>) -> Result<url::Url, AuthError> {
    let provider = state.logi.as_ref().ok_or(AuthError::NotConfigured)?;
    let login_hint = params.get("login_hint").map(String::as_str);
    if login_hint.is_some_and(|hint| hint.len() > 256 || hint.chars().any(char::is_control)) {
        return Err(AuthError::InvalidRequest);
    }
    let prompt = params.get("prompt").map(String::as_str);
    if prompt.is_some_and(|p| !ALLOWED_PROMPTS.contains(&p)) {
        return Err(AuthError::InvalidRequest);
    }
    let endpoints = provider.endpoints().await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let pending = PendingLogin {
        state: CsrfToken::new_random().secret().clone(),
        nonce: Nonce::new_random().secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        return_to: sanitize_return_to(params.get("return_to").map(String::as_str), &state.config.app_url),
        started_at: OffsetDateTime::now_utc().unix_timestamp(),
    };
    let url = provider.authorization_url(
        &endpoints,
        &AuthorizationRequest { state: &pending.state, nonce: &pending.nonce, code_challenge: challenge.as_str(), login_hint, prompt },
    );
    let mut pending_logins: Vec<PendingLogin> = session.get(PENDING_LOGINS).await.map_err(internal)?.unwrap_or_default();
    pending_logins.push(pending);
    let excess = pending_logins.len().saturating_sub(MAX_PENDING_LOGINS);
    pending_logins.drain(..excess);
    session.insert(PENDING_LOGINS, pending_logins).await.map_err(internal)?;
    Ok(url)
}

async fn callback(State(state): State<AppState>, session: Session, RawQuery(query): RawQuery) -> Response {
    match finish_login(&state, &session, query_map(query)).await {
        Ok(return_to) => no_store(Redirect::to(&return_to).into_response()),
        Err(error) => {
            tracing::info!(code = %error.code(), "sign-in failed");
            discard_signed_out_session(&state, &session).await;
            auth_error_redirect(&error)
        }
    }
}

async fn finish_login(state: &AppState, session: &Session, params: HashMap<String, String>) -> Result<String, AuthError> {
    let provider = state.logi.as_ref().ok_or(AuthError::NotConfigured)?;
    let pending = take_pending_login(session, params.get("state").map(String::as_str)).await?;
    if OffsetDateTime::now_utc().unix_timestamp() - pending.started_at > LOGIN_LIFETIME_SECS {
        return Err(AuthError::SessionExpired);
    }
    if let Some(error) = params.get("error") {
        tracing::info!(error, description = ?params.get("error_description"), "provider returned an error");
        return Err(AuthError::from_provider(error));
    }
    let code = params.get("code").filter(|c| !c.is_empty()).ok_or(AuthError::MissingCode)?;
    let user_id = sign_in_with_code(state, provider, code, &pending).await?;
    sessions::sign_in(session, user_id).await.map_err(internal)?;
    Ok(pending.return_to)
}

/// Removes and returns the pending login this `state` belongs to; every pending login is single-use.
async fn take_pending_login(session: &Session, state: Option<&str>) -> Result<PendingLogin, AuthError> {
    let mut pending: Vec<PendingLogin> = session.get(PENDING_LOGINS).await.map_err(internal)?.unwrap_or_default();
    if pending.is_empty() {
        return Err(AuthError::SessionExpired);
    }
    let position = state.and_then(|state| pending.iter().position(|p| p.state == state)).ok_or(AuthError::StateMismatch)?;
    let found = pending.remove(position);
    if pending.is_empty() {
        session.remove_value(PENDING_LOGINS).await.map_err(internal)?;
    } else {
        session.insert(PENDING_LOGINS, pending).await.map_err(internal)?;
    }
    // Persist now, so a replay racing this request finds the login already used.
    session.save().await.map_err(internal)?;
    Ok(found)
}

/// Code → tokens → verified `sub` → userinfo → local user (one transaction).
async fn sign_in_with_code(state: &AppState, provider: &Provider, code: &str, pending: &PendingLogin) -> Result<i64, AuthError> {
    let tokens = provider.exchange_code(code, &pending.pkce_verifier).await?;
    let id_token = tokens.id_token.as_ref().ok_or(AuthError::NoSubjectInIdToken)?;
    let sub = provider.verify_id_token(id_token, &pending.nonce, &tokens.access_token).await?;
    let info = provider.userinfo(&tokens.access_token, &sub).await?;
    let profile = LogiProfile::from_userinfo(&info);
    accounts::sign_in_with_identity(&state.pool, provider.issuer(), &sub, &profile).await.map_err(internal)
}

/// A browser that is not signed in keeps no session after a failed sign-in.
async fn discard_signed_out_session(state: &AppState, session: &Session) {
    let signed_in = sessions::signed_in_user(session, state.config.session_absolute_timeout).await;
    if matches!(signed_in, Ok(None)) {
        if let Err(error) = sessions::sign_out(session).await {
            tracing::error!(%error, "could not delete the session of a failed sign-in");
        }
    }
}

fn internal(error: impl Into<AppError>) -> AuthError {
    error.into().logged();
    AuthError::Internal
}

#[derive(Serialize)]
struct Me {
    user: Option<super::User>,
}

async fn me(State(state): State<AppState>, session: Session) -> Result<Response, AppError> {
    let user = accounts::signed_in_user(&state, &session).await?;
    Ok(no_store(Json(Me { user }).into_response()))
}

/// `POST /api/auth/logout`: same-origin only. Form posts are sent home; API calls get JSON.
async fn logout(State(state): State<AppState>, session: Session, headers: HeaderMap) -> Result<Response, AppError> {
    if let Err(rejection) = csrf::require_same_origin(&headers, &state.config.app_url) {
        return Ok(rejection.into_response());
    }
    sessions::sign_out(&session).await?;
    let is_form = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    Ok(no_store(if is_form {
        Redirect::to("/").into_response()
    } else {
        (StatusCode::OK, Json(serde_json::json!({ "ok": true }))).into_response()
    }))
}

/// `GET /api/auth/logout`: signs out and goes home, unless a cross-site page triggered it.
async fn logout_and_redirect(State(state): State<AppState>, session: Session, headers: HeaderMap) -> Result<Response, AppError> {
    if csrf::is_cross_site_navigation(&headers, &state.config.app_url) {
        tracing::warn!("ignored a cross-site GET /api/auth/logout");
    } else {
        sessions::sign_out(&session).await?;
    }
    Ok(no_store(Redirect::to("/").into_response()))
}
