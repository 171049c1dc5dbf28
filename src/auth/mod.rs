//! Signing in with logi: the sign-in state pages read, and the server functions that
//! start a sign-in (`GET /api/auth/login`) and finish it (`GET /api/auth/callback`).
//! Server only: the OIDC protocol client, logi's profile rules, the flow and the
//! plain routes (link, me, logout).

#[cfg(feature = "ssr")]
pub mod backchannel;
pub mod errors;
#[cfg(feature = "ssr")]
pub mod flow;
#[cfg(feature = "ssr")]
pub mod native;
#[cfg(feature = "ssr")]
pub mod oidc;
#[cfg(feature = "ssr")]
pub mod profile;
pub(crate) mod query;
#[cfg(feature = "ssr")]
pub mod routes;
#[cfg(feature = "ssr")]
pub mod store;

use crate::accounts::AccountError;
use crate::login::User;
use leptos::prelude::*;
use query::{first_value_query, FirstValueQuery};
use serde::{Deserialize, Serialize};

/// Everything a page needs to render the sign-in state on first paint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub user: Option<User>,
    /// False when `ONE_PASS_URL` is not configured.
    pub logi_enabled: bool,
}

/// The session's sign-in state, read server-side (during SSR through context, after hydration over HTTP).
#[server(endpoint = "auth_state")]
pub async fn load_auth_state() -> Result<AuthState, AccountError> {
    let (logins, found) = crate::login::from_server_fn().await?;
    let user = match &found.login {
        Some(login) => logins.user(login).await?,
        None => None,
    };
    let logi = crate::server::request::from_context::<Option<std::sync::Arc<oidc::Provider>>>()?;
    Ok(AuthState { user, logi_enabled: logi.is_some() })
}

/// `GET /api/auth/login`: on to logi's authorization endpoint, the login in progress
/// kept in a sealed cookie. Reached by a plain navigation (the sign-in link, or a step-up's
/// `login_url`). Never `Err`: failures are redirects to `/?auth_error=<code>`, except
/// `acr_values` or `max_age` that are malformed or that no API declares: `400` with
/// [`LoginRefused`], and nothing is stored.
#[server(prefix = "/api", endpoint = "auth/login", input = FirstValueQuery, name = StartLogin)]
pub async fn login(
    login_hint: Option<String>,
    prompt: Option<String>,
    return_to: Option<String>,
    acr_values: Option<String>,
    max_age: Option<String>,
) -> Result<Option<LoginRefused>, ServerFnError> {
    let auth = flow::Auth::from_context().map_err(|error| ServerFnError::new(error.logged().code()))?;
    let step_up = match flow::step_up_of(&auth, acr_values.as_deref(), max_age.as_deref()) {
        Ok(step_up) => step_up,
        Err(parameter) => return Ok(Some(LoginRefused::step_up(parameter))),
    };
    let params = flow::LoginParams { login_hint, prompt, return_to, step_up };
    flow::start(&auth, &crate::server::request::headers(), params, None).await.send_from_server_fn();
    Ok(None)
}
first_value_query!(StartLogin { login_hint, prompt, return_to, acr_values, max_age });

/// The body of a `400` from `GET /api/auth/login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRefused {
    pub error: String,
    pub error_description: String,
}

impl LoginRefused {
    /// `step_up_not_declared`: the step-up `parameter` is malformed or names a value no API declares.
    #[cfg(feature = "ssr")]
    fn step_up(parameter: &str) -> Self {
        if let Ok(options) = crate::server::request::from_context::<leptos_axum::ResponseOptions>() {
            options.set_status(http::StatusCode::BAD_REQUEST);
            options.insert_header(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        }
        Self { error: "step_up_not_declared".into(), error_description: format!("{parameter} is malformed or names a value no API declares.") }
    }
}

/// `GET /api/auth/callback`: logi's answer. Checks it and signs in (or links), then on
/// to where the login asked to return. Never `Err`, for the same reason.
#[server(prefix = "/api", endpoint = "auth/callback", input = FirstValueQuery, name = FinishLogin)]
pub async fn callback(code: Option<String>, state: Option<String>, error: Option<String>, error_description: Option<String>) -> Result<(), ServerFnError> {
    let auth = flow::Auth::from_context().map_err(|error| ServerFnError::new(error.logged().code()))?;
    let params = flow::CallbackParams { code, state, error, error_description };
    let outcome = match crate::login::from_server_fn().await {
        Ok((_, found)) => flow::finish(&auth, &crate::server::request::headers(), &found, params).await,
        Err(error) => flow::failed_internally(error),
    };
    outcome.send_from_server_fn();
    Ok(())
}
first_value_query!(FinishLogin { code, state, error, error_description });
