//! The BFF's plain HTTP routes: `POST /api/auth/link` (a form on the account page),
//! `GET /api/auth/me`, `POST|GET /api/auth/logout`. Login and callback are server
//! functions (`super::login`, `super::callback`); native apps' routes are in `super::native`. Every POST has already passed the
//! same-origin check of [`crate::server::csrf::reject_cross_site_mutations`].

use super::flow::{self, Auth, LoginParams};
use super::query::QueryMap;
use crate::login::{ApiLogin, EndReason, Logins, MaybeLogin, User};
use crate::server::{csrf, no_store, request, AppError};
use axum::body::Bytes;
use axum::extract::{FromRef, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use url::Url;

pub fn routes<S>() -> Router<S>
where
    Arc<Logins>: FromRef<S>,
    Option<Arc<super::oidc::Provider>>: FromRef<S>,
    Arc<crate::server::config::Config>: FromRef<S>,
    crate::server::db::Db: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/api/auth/link", post(link)).route("/api/auth/me", get(me)).route("/api/auth/logout", get(logout_and_redirect).post(logout))
}

/// `POST /api/auth/link`: a logi login whose callback attaches the identity to the
/// signed-in account instead of signing in. The form may carry `login_hint` and
/// `prompt`, checked as for `/api/auth/login`.
async fn link(auth: Auth, found: MaybeLogin, headers: HeaderMap, body: Bytes) -> Response {
    let Some(login) = found.login else { return no_store(Redirect::to("/signin?return_to=%2Faccount").into_response()) };
    let mut form = QueryMap::parse(&String::from_utf8_lossy(&body));
    let params =
        LoginParams { login_hint: form.take("login_hint"), prompt: form.take("prompt"), return_to: Some(flow::ACCOUNT_PAGE.to_owned()), step_up: None };
    flow::start(&auth, &headers, params, Some(login.id)).await.into_response()
}

#[derive(Serialize)]
struct Me {
    user: Option<User>,
}

/// `GET /api/auth/me`, for browsers (session cookie) and native apps (bearer access token).
async fn me(State(logins): State<Arc<Logins>>, found: ApiLogin) -> Result<Response, AppError> {
    let user = match &found.login {
        Some(login) => logins.user(login).await?,
        None => None,
    };
    Ok(no_store(Json(Me { user }).into_response()))
}

/// `POST /api/auth/logout` (same-origin only, like every POST). Form posts are sent home,
/// or with `?federated=1` on to logi's end-session endpoint; API calls get JSON.
async fn logout(auth: Auth, found: MaybeLogin, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, AppError> {
    let had_logi = auth.logins.sign_out(&found.session, found.login.as_ref(), EndReason::SignedOut).await?;
    if !request::is_media_type(&headers, request::FORM) {
        return Ok(no_store((StatusCode::OK, Json(serde_json::json!({ "ok": true }))).into_response()));
    }
    Ok(after_logout(&auth, had_logi, query).await)
}

/// `GET /api/auth/logout`: signs out and goes home (or to logi with `?federated=1`),
/// unless a cross-site page triggered it.
async fn logout_and_redirect(auth: Auth, found: MaybeLogin, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, AppError> {
    if csrf::is_cross_site_navigation(&headers, &auth.config.app_url) {
        tracing::warn!("ignored a cross-site GET /api/auth/logout");
        return Ok(no_store(Redirect::to("/").into_response()));
    }
    let had_logi = auth.logins.sign_out(&found.session, found.login.as_ref(), EndReason::SignedOut).await?;
    Ok(after_logout(&auth, had_logi, query).await)
}

/// Home, or logi's end-session endpoint when `federated=1` was asked for, the login was
/// a logi one and logi advertises the endpoint.
async fn after_logout(auth: &Auth, had_logi: bool, query: Option<String>) -> Response {
    let federated = had_logi && QueryMap::parse(query.as_deref().unwrap_or_default()).take("federated").is_some_and(|v| v == "1");
    let end_session = match (federated, &auth.logi) {
        (true, Some(provider)) => {
            let home = auth.config.app_url.join("/").expect("a path joins onto an origin");
            provider.end_session_url(home.as_str()).await
        }
        _ => None,
    };
    no_store(Redirect::to(end_session.as_ref().map_or("/", Url::as_str)).into_response())
}
