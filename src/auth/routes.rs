//! The BFF's sign-in routes, as thin axum handlers over the flow below. They are
//! plain handlers rather than server functions because they answer with redirects
//! and are reached by top-level navigations (from the page and from logi).
//!
//! `GET /api/auth/login`, `POST /api/auth/link`, `GET /api/auth/callback`,
//! `GET /api/auth/me`, `POST|GET /api/auth/logout`. Every POST has already passed
//! the same-origin check of [`csrf::reject_cross_site_mutations`].

use super::errors::AuthError;
use super::oidc::{AuthorizationRequest, Provider, TokenSet};
use super::return_to::sanitize_return_to;
use crate::accounts;
use crate::accounts::store::{LinkOutcome, LogiProfile};
use crate::proxy::custody::HeldTokens;
use crate::server::sessions::{self, Method};
use crate::server::request::user_agent_of;
use crate::server::{csrf, AppError, AppState};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::OffsetDateTime;
use tower_sessions::Session;
use url::Url;

/// A login may take this long from `/api/auth/login` to the callback.
const LOGIN_LIFETIME_SECS: i64 = 600;
/// Pending logins kept per browser (several tabs may start one); the oldest is dropped.
const MAX_PENDING_LOGINS: usize = 3;
const PENDING_LOGINS: &str = "pending_logins";
const ALLOWED_PROMPTS: [&str; 4] = ["none", "login", "consent", "select_account"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", get(login))
        .route("/api/auth/link", post(link))
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
    /// Set when this is a link, not a sign-in: the login that asked for it.
    #[serde(default)]
    link_for_login: Option<String>,
}

fn query_map(query: Option<String>) -> HashMap<String, String> {
    // The first value wins; repeated parameters cannot override a checked one.
    let mut map = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        map.entry(key.into_owned()).or_insert_with(|| value.into_owned());
    }
    map
}

const ACCOUNT_PAGE: &str = "/account";

fn auth_error_redirect(page: &str, error: &AuthError) -> Response {
    let code: String = url::form_urlencoded::byte_serialize(error.code().as_bytes()).collect();
    let location = format!("{page}?auth_error={code}");
    no_store(Redirect::to(&location).into_response())
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

async fn login(State(state): State<AppState>, session: Session, RawQuery(query): RawQuery) -> Response {
    match start_login(&state, &session, query_map(query), None).await {
        Ok(url) => no_store(Redirect::to(url.as_str()).into_response()),
        Err(error) => auth_error_redirect("/", &error),
    }
}

/// `POST /api/auth/link` (a form on the account page): a logi login whose callback
/// attaches the identity to the signed-in account instead of signing in. The form
/// may carry `login_hint` and `prompt`, checked as for `/api/auth/login`.
async fn link(State(state): State<AppState>, session: Session, body: Bytes) -> Response {
    let login = match sessions::current_login(&state.pool, &session, &state.config).await {
        Ok(Some(login)) => login,
        Ok(None) => return no_store(Redirect::to("/signin?return_to=%2Faccount").into_response()),
        Err(error) => return auth_error_redirect(ACCOUNT_PAGE, &internal(error)),
    };
    let mut params = query_map(Some(String::from_utf8_lossy(&body).into_owned()));
    params.retain(|key, _| key == "login_hint" || key == "prompt");
    params.insert("return_to".to_owned(), ACCOUNT_PAGE.to_owned());
    match start_login(&state, &session, params, Some(login.id)).await {
        Ok(url) => no_store(Redirect::to(url.as_str()).into_response()),
        Err(error) => auth_error_redirect(ACCOUNT_PAGE, &error),
    }
}

async fn start_login(state: &AppState, session: &Session, params: HashMap<String, String>, link_for_login: Option<String>) -> Result<Url, AuthError> {
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
        link_for_login,
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

async fn callback(State(state): State<AppState>, session: Session, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let params = query_map(query);
    let result = match take_pending_login(&session, params.get("state").map(String::as_str)).await {
        Ok(pending) => {
            let error_page = if pending.link_for_login.is_some() { ACCOUNT_PAGE } else { "/" };
            finish_login(&state, &session, &headers, &params, pending).await.map_err(|error| (error_page, error))
        }
        Err(error) => Err(("/", error)),
    };
    match result {
        Ok(next) => no_store(Redirect::to(&next).into_response()),
        Err((error_page, error)) => {
            tracing::info!(code = %error.code(), "sign-in failed");
            discard_signed_out_session(&state, &session).await;
            auth_error_redirect(error_page, &error)
        }
    }
}

/// Checks the callback and either signs in or links; returns where to go next.
async fn finish_login(state: &AppState, session: &Session, headers: &HeaderMap, params: &HashMap<String, String>, pending: PendingLogin) -> Result<String, AuthError> {
    let provider = state.logi.as_ref().ok_or(AuthError::NotConfigured)?;
    if OffsetDateTime::now_utc().unix_timestamp() - pending.started_at > LOGIN_LIFETIME_SECS {
        return Err(AuthError::SessionExpired);
    }
    if let Some(error) = params.get("error") {
        tracing::info!(error, description = ?params.get("error_description"), "provider returned an error");
        return Err(AuthError::from_provider(error));
    }
    let code = params.get("code").filter(|c| !c.is_empty()).ok_or(AuthError::MissingCode)?;
    match &pending.link_for_login {
        Some(login_id) => link_with_code(state, session, provider, code, &pending, login_id).await,
        None => {
            let (user_id, tokens) = sign_in_with_code(state, provider, code, &pending).await?;
            let login = sessions::sign_in(&state.pool, session, user_id, Method::Logi, user_agent_of(headers)).await.map_err(internal)?;
            state.custody.keep(&state.pool, &login.id, &HeldTokens::from_login(tokens)).await.map_err(internal)?;
            Ok(pending.return_to)
        }
    }
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

/// Code → tokens → verified `sub`.
async fn verified_subject(provider: &Provider, code: &str, pending: &PendingLogin) -> Result<(TokenSet, String), AuthError> {
    let tokens = provider.exchange_code(code, &pending.pkce_verifier).await?;
    let id_token = tokens.id_token.as_ref().ok_or(AuthError::NoSubjectInIdToken)?;
    let sub = provider.verify_id_token(id_token, &pending.nonce, &tokens.access_token).await?;
    Ok((tokens, sub))
}

/// Verified `sub` → userinfo → local user (one transaction); the tokens go into custody.
async fn sign_in_with_code(state: &AppState, provider: &Provider, code: &str, pending: &PendingLogin) -> Result<(i64, TokenSet), AuthError> {
    let (tokens, sub) = verified_subject(provider, code, pending).await?;
    let info = provider.userinfo(&tokens.access_token, &sub).await?;
    let profile = LogiProfile::from_userinfo(&info);
    let user_id = accounts::store::sign_in_with_identity(&state.pool, provider.issuer(), &sub, &profile).await.map_err(internal)?;
    // The profile may have changed for the user's other browsers too.
    accounts::forget_cached_user(user_id);
    Ok((user_id, tokens))
}

/// Verified `sub` → linked to the account of the login that started the link, which
/// must still be this session's login.
async fn link_with_code(state: &AppState, session: &Session, provider: &Provider, code: &str, pending: &PendingLogin, login_id: &str) -> Result<String, AuthError> {
    let login = sessions::current_login(&state.pool, session, &state.config).await.map_err(internal)?;
    let login = login.filter(|login| login.id == login_id).ok_or(AuthError::NotSignedIn)?;
    let (tokens, sub) = verified_subject(provider, code, pending).await?;
    match accounts::store::link_identity(&state.pool, login.user_id, provider.issuer(), &sub).await.map_err(internal)? {
        LinkOutcome::Linked | LinkOutcome::AlreadyLinked => {
            accounts::forget_cached_user(login.user_id);
            // This browser may now call the API with the linked identity.
            state.custody.keep(&state.pool, &login.id, &HeldTokens::from_login(tokens)).await.map_err(internal)?;
            Ok(format!("{ACCOUNT_PAGE}?notice=logi_linked"))
        }
        LinkOutcome::LinkedToAnotherUser => Err(AuthError::IdentityLinkedElsewhere),
        LinkOutcome::OtherIdentityLinked => Err(AuthError::AnotherLogiAccountLinked),
    }
}

/// A browser that is not signed in keeps no session after a failed sign-in.
async fn discard_signed_out_session(state: &AppState, session: &Session) {
    let signed_in = sessions::current_login(&state.pool, session, &state.config).await;
    if matches!(signed_in, Ok(None)) {
        if let Err(error) = sessions::sign_out(&state.pool, session).await {
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

/// `POST /api/auth/logout` (same-origin only, like every POST). Form posts are sent home,
/// or with `?federated=1` on to logi's end-session endpoint; API calls get JSON.
async fn logout(State(state): State<AppState>, session: Session, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, AppError> {
    let had_logi = accounts::sign_out_and_revoke(&state, &session).await?;
    let is_form = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(no_store((StatusCode::OK, Json(serde_json::json!({ "ok": true }))).into_response()));
    }
    Ok(after_logout(&state, had_logi, query).await)
}

/// `GET /api/auth/logout`: signs out and goes home (or to logi with `?federated=1`),
/// unless a cross-site page triggered it.
async fn logout_and_redirect(State(state): State<AppState>, session: Session, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, AppError> {
    if csrf::is_cross_site_navigation(&headers, &state.config.app_url) {
        tracing::warn!("ignored a cross-site GET /api/auth/logout");
        return Ok(no_store(Redirect::to("/").into_response()));
    }
    let had_logi = accounts::sign_out_and_revoke(&state, &session).await?;
    Ok(after_logout(&state, had_logi, query).await)
}

/// Home, or logi's end-session endpoint when `federated=1` was asked for, the login was
/// a logi one and logi advertises the endpoint.
async fn after_logout(state: &AppState, had_logi: bool, query: Option<String>) -> Response {
    let federated = had_logi && query_map(query).get("federated").is_some_and(|v| v == "1");
    let end_session = match (federated, &state.logi) {
        (true, Some(provider)) => {
            let home = state.config.app_url.join("/").expect("a path joins onto an origin");
            provider.end_session_url(home.as_str()).await
        }
        _ => None,
    };
    no_store(Redirect::to(end_session.as_ref().map_or("/", Url::as_str)).into_response())
}
