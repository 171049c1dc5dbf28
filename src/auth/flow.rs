//! The browser's sign-in flow with logi, behind the server functions `login` and
//! `callback` and the `link` form: start an authorization (the pending login goes
//! into a sealed cookie), then check the callback and sign in, or link the identity.
//! Every outcome is a redirect; failures carry an `auth_error` code.

use super::errors::AuthError;
use super::oidc::{AuthorizationRequest, Provider, VerifiedIdToken};
use super::profile;
use crate::accounts::store::{self as accounts, LinkOutcome};
use crate::ids::{LoginId, UserId};
use crate::login::pending::{PendingError, PendingLogin};
use crate::login::return_to::sanitize_return_to;
use crate::login::step_up::Requirement;
use crate::login::tokens::TokenSet;
use crate::login::{Login, Logins, MaybeLogin, Method};
use crate::server::config::Config;
use crate::server::db::Db;
use crate::server::request::user_agent_of;
use crate::server::AppError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use std::convert::Infallible;
use std::sync::Arc;

pub const ACCOUNT_PAGE: &str = "/account";
const ALLOWED_PROMPTS: [&str; 4] = ["none", "login", "consent", "select_account"];
const MAX_LOGIN_HINT_BYTES: usize = 256;

/// What the sign-in flow works with.
pub struct Auth {
    pub logins: Arc<Logins>,
    pub logi: Option<Arc<Provider>>,
    pub config: Arc<Config>,
    pub db: Db,
}

impl Auth {
    /// In a server function: the services the composition root provided as context.
    pub fn from_context() -> Result<Self, AppError> {
        use crate::server::request::from_context;
        Ok(Self { logins: from_context()?, logi: from_context()?, config: from_context()?, db: from_context()? })
    }

    fn provider(&self) -> Result<&Provider, AuthError> {
        self.logi.as_deref().ok_or(AuthError::NotConfigured)
    }
}

impl<S> FromRequestParts<S> for Auth
where
    Arc<Logins>: FromRef<S>,
    Option<Arc<Provider>>: FromRef<S>,
    Arc<Config>: FromRef<S>,
    Db: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(_: &mut Parts, state: &S) -> Result<Self, Infallible> {
        Ok(Self { logins: FromRef::from_ref(state), logi: FromRef::from_ref(state), config: FromRef::from_ref(state), db: FromRef::from_ref(state) })
    }
}

/// Where the browser goes next, and the pending-login cookie to set on the way.
pub struct Redirect {
    location: String,
    cookie: Option<HeaderValue>,
}

impl Redirect {
    fn to(location: impl Into<String>) -> Self {
        Self { location: location.into(), cookie: None }
    }

    fn failed(page: &str, error: &AuthError) -> Self {
        tracing::info!(code = %error.code(), "sign-in failed");
        ::metrics::counter!("logi_bff_auth_errors_total", "code" => error.label()).increment(1);
        let code: String = form_urlencoded::byte_serialize(error.code().as_bytes()).collect();
        Self::to(format!("{page}?auth_error={code}"))
    }

    fn with_cookie(mut self, cookie: Option<HeaderValue>) -> Self {
        self.cookie = cookie;
        self
    }

    /// `303 See Other`, never cached.
    pub fn into_response(self) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        self.write(response.headers_mut());
        response
    }

    /// The same answer from a server function: status and headers through `ResponseOptions`.
    /// (Returning `Err` would make leptos redirect to the `Referer`, logi's page.)
    pub fn send_from_server_fn(self) {
        // No options: the request has ended, and nobody is waiting for this answer.
        let Ok(options) = crate::server::request::from_context::<leptos_axum::ResponseOptions>() else { return };
        let mut headers = HeaderMap::new();
        self.write(&mut headers);
        options.set_status(StatusCode::SEE_OTHER);
        for (name, value) in &headers {
            options.append_header(name.clone(), value.clone());
        }
    }

    fn write(self, headers: &mut HeaderMap) {
        let location = HeaderValue::from_str(&self.location).unwrap_or_else(|_| HeaderValue::from_static("/"));
        headers.insert(header::LOCATION, location);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(cookie) = self.cookie {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
}

/// What a sign-in may ask logi for.
pub struct LoginParams {
    pub login_hint: Option<String>,
    pub prompt: Option<String>,
    pub return_to: Option<String>,
    /// A step-up's requirement, already checked by [`step_up_of`].
    pub step_up: Option<Requirement>,
}

/// The step-up a sign-in asks for with `acr_values` and `max_age`: only values some API
/// declares (a link from anywhere cannot make logi ask for anything else); `Err` names
/// the parameter that is malformed or undeclared.
pub fn step_up_of(auth: &Auth, acr_values: Option<&str>, max_age: Option<&str>) -> Result<Option<Requirement>, &'static str> {
    let requirement = Requirement::parse(acr_values, max_age)?;
    if let Some(requirement) = &requirement {
        requirement.check_declared(&auth.logins.api_consent().step_ups)?;
    }
    Ok(requirement)
}

/// Starts a sign-in (`link_for` = `None`) or a link: on to logi's authorization endpoint.
pub async fn start(auth: &Auth, headers: &HeaderMap, params: LoginParams, link_for: Option<LoginId>) -> Redirect {
    let error_page = if link_for.is_some() { ACCOUNT_PAGE } else { "/" };
    match authorization(auth, headers, params, link_for).await {
        Ok((url, cookie)) => Redirect::to(url).with_cookie(Some(cookie)),
        Err(error) => Redirect::failed(error_page, &error),
    }
}

async fn authorization(auth: &Auth, headers: &HeaderMap, params: LoginParams, link_for: Option<LoginId>) -> Result<(String, HeaderValue), AuthError> {
    let provider = auth.provider()?;
    let login_hint = params.login_hint.as_deref();
    if login_hint.is_some_and(|hint| hint.len() > MAX_LOGIN_HINT_BYTES || hint.chars().any(char::is_control)) {
        return Err(AuthError::InvalidRequest);
    }
    let prompt = params.prompt.as_deref();
    if prompt.is_some_and(|p| !ALLOWED_PROMPTS.contains(&p)) {
        return Err(AuthError::InvalidRequest);
    }
    let endpoints = provider.endpoints().await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let pending = PendingLogin {
        state: CsrfToken::new_random().secret().clone(),
        nonce: Nonce::new_random().secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        return_to: sanitize_return_to(params.return_to.as_deref(), &auth.config.app_url),
        started_at: crate::server::unix_now(),
        link_for_login: link_for,
        step_up: params.step_up,
    };
    let consent = auth.logins.api_consent();
    let request = AuthorizationRequest {
        state: &pending.state,
        nonce: &pending.nonce,
        code_challenge: challenge.as_str(),
        login_hint,
        prompt,
        consent: &consent,
        step_up: pending.step_up.as_ref(),
    };
    let url = provider.authorization_url(&endpoints, &request);
    Ok((url.into(), auth.logins.start_pending(headers, pending)))
}

/// What logi sent back to the callback.
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Checks the callback and signs in or links; where to go next either way.
pub async fn finish(auth: &Auth, headers: &HeaderMap, found: &MaybeLogin, params: CallbackParams) -> Redirect {
    let (taken, cookie) = match auth.logins.take_pending(headers, params.state.as_deref()).await {
        Ok(taken) => taken,
        Err(error) => return Redirect::failed("/", &internal(error)),
    };
    let pending = match taken {
        Ok(pending) => pending,
        Err(PendingError::Expired) => return Redirect::failed("/", &AuthError::SessionExpired).with_cookie(cookie),
        Err(PendingError::StateMismatch) => return Redirect::failed("/", &AuthError::StateMismatch).with_cookie(cookie),
    };
    let error_page = if pending.link_for_login.is_some() { ACCOUNT_PAGE } else { "/" };
    let redeemed = redeem(auth, headers, found, &params, &pending).await;
    crate::server::metrics::sign_in("logi", redeemed.is_ok());
    let outcome = match redeemed {
        Ok(next) => Redirect::to(next),
        Err(error) => Redirect::failed(error_page, &error),
    };
    outcome.with_cookie(cookie)
}

async fn redeem(auth: &Auth, headers: &HeaderMap, found: &MaybeLogin, params: &CallbackParams, pending: &PendingLogin) -> Result<String, AuthError> {
    let provider = auth.provider()?;
    if let Some(error) = &params.error {
        tracing::info!(error, description = ?params.error_description, "provider returned an error");
        return Err(AuthError::from_provider(error));
    }
    let code = params.code.as_deref().filter(|c| !c.is_empty()).ok_or(AuthError::MissingCode)?;
    // A link attaches to the login that started it, which must still be this session's.
    let linking_login = match &pending.link_for_login {
        Some(id) => Some(found.login.as_ref().filter(|login| &login.id == id).ok_or(AuthError::NotSignedIn)?),
        None => None,
    };
    let tokens = provider.exchange_code(code, &pending.pkce_verifier, provider.redirect_uri()).await?;
    let issued_refresh_token = tokens.refresh_token.clone();
    let stepping_up = found.login.as_ref().filter(|_| pending.step_up.is_some());
    let finished = match (linking_login, stepping_up) {
        (Some(login), _) => link(auth, login, provider, tokens, pending).await,
        (None, Some(login)) => step_up(auth, found, login, provider, tokens, pending).await,
        (None, None) => sign_in_and_keep(auth, headers, found, provider, tokens, pending).await,
    };
    // A refused step-up's grant may be the login's own grant continued (see
    // `Logins::upgrade`): revoking it could end the login it was meant to leave untouched.
    if finished.is_err() && stepping_up.is_none() {
        // logi issued a grant nobody will use: its refresh token must not outlive the failure.
        auth.logins.revoke_in_background(issued_refresh_token.into_iter().collect());
    }
    finished
}

async fn sign_in_and_keep(
    auth: &Auth,
    headers: &HeaderMap,
    found: &MaybeLogin,
    provider: &Provider,
    tokens: TokenSet,
    pending: &PendingLogin,
) -> Result<String, AuthError> {
    let (user_id, tokens, verified) = sign_in(auth, provider, tokens, pending).await?;
    let method = (Method::Logi, &verified.authentication);
    let login = auth.logins.sign_in(&found.session, user_id, method, user_agent_of(headers)).await.map_err(internal)?;
    auth.logins.keep_tokens(&login.id, tokens, &verified.session).await.map_err(internal)?;
    Ok(pending.return_to.clone())
}

/// A step-up of this browser's login: the new sign-in must meet what was asked and be the
/// login's own logi account; then the same login is upgraded (`Logins::upgrade`) and the
/// browser session gets a new id. Any failure leaves the login as it was.
async fn step_up(auth: &Auth, found: &MaybeLogin, login: &Login, provider: &Provider, tokens: TokenSet, pending: &PendingLogin) -> Result<String, AuthError> {
    let verified = verified_subject(provider, &tokens, pending).await?;
    match upgrade(auth, provider, login, &verified, tokens).await.map_err(internal)? {
        Upgrade::Done => {}
        Upgrade::AnotherAccount => return Err(AuthError::StepUpFailed),
        Upgrade::LoginEnded => return Err(AuthError::SessionExpired),
    }
    found.session.renew_id().await.map_err(internal)?;
    Ok(pending.return_to.clone())
}

/// What became of a step-up whose new sign-in met the requirement.
pub enum Upgrade {
    Done,
    /// logi signed in another account than the login's: nothing changed.
    AnotherAccount,
    /// The login ended meanwhile.
    LoginEnded,
}

/// A step-up of `login` (a browser's or a device's): upgraded in place (`Logins::upgrade`)
/// when the new sign-in is the login's own logi account.
pub async fn upgrade(auth: &Auth, provider: &Provider, login: &Login, verified: &VerifiedIdToken, grant: TokenSet) -> Result<Upgrade, AppError> {
    if accounts::user_of_identity(&auth.db, provider.issuer(), &verified.subject).await? != Some(login.user_id) {
        tracing::info!("step-up refused: logi signed in another account than the login's");
        return Ok(Upgrade::AnotherAccount);
    }
    let upgraded = auth.logins.upgrade(login, &verified.authentication, grant, &verified.session).await?;
    Ok(if upgraded { Upgrade::Done } else { Upgrade::LoginEnded })
}

/// The id_token of logi's answer, verified; for a step-up it must also meet what was asked.
async fn verified_subject(provider: &Provider, tokens: &TokenSet, pending: &PendingLogin) -> Result<VerifiedIdToken, AuthError> {
    let id_token = tokens.id_token.as_ref().ok_or(AuthError::NoSubjectInIdToken)?;
    let verified = provider.verify_id_token(id_token, Some(&pending.nonce), &tokens.access_token).await?;
    match &pending.step_up {
        Some(requirement) if !requirement.is_met_by(&verified.authentication, crate::server::unix_now()) => {
            tracing::info!(acr = ?verified.authentication.acr, auth_time = ?verified.authentication.auth_time, "step-up refused: the new sign-in does not meet the requirement");
            Err(AuthError::StepUpFailed)
        }
        _ => Ok(verified),
    }
}

/// Verified `sub` → userinfo → local user (one transaction).
async fn sign_in(auth: &Auth, provider: &Provider, tokens: TokenSet, pending: &PendingLogin) -> Result<(UserId, TokenSet, VerifiedIdToken), AuthError> {
    let verified = verified_subject(provider, &tokens, pending).await?;
    let info = provider.userinfo(&tokens.access_token, &verified.subject).await?;
    let user_id = accounts::sign_in_with_identity(&auth.db, provider.issuer(), &verified.subject, &profile::from_userinfo(&info)).await.map_err(internal)?;
    // The profile may have changed for the user's other browsers too.
    auth.logins.user_changed(user_id);
    Ok((user_id, tokens, verified))
}

/// Verified `sub` → linked to the account of `login`, the one that started the link.
async fn link(auth: &Auth, login: &Login, provider: &Provider, tokens: TokenSet, pending: &PendingLogin) -> Result<String, AuthError> {
    let VerifiedIdToken { subject, session, .. } = verified_subject(provider, &tokens, pending).await?;
    match accounts::link_identity(&auth.db, login, provider.issuer(), &subject).await.map_err(internal)? {
        LinkOutcome::Linked | LinkOutcome::AlreadyLinked => {
            auth.logins.user_changed(login.user_id);
            // This browser may now call the API with the linked identity.
            auth.logins.keep_tokens(&login.id, tokens, &session).await.map_err(internal)?;
            Ok(format!("{ACCOUNT_PAGE}?notice=logi_linked"))
        }
        LinkOutcome::LinkedToAnotherUser => Err(AuthError::IdentityLinkedElsewhere),
        LinkOutcome::OtherIdentityLinked => Err(AuthError::AnotherLogiAccountLinked),
    }
}

/// The answer when the flow could not even start (the login lookup failed).
pub fn failed_internally(error: AppError) -> Redirect {
    Redirect::failed("/", &internal(error))
}

fn internal(error: AppError) -> AuthError {
    error.logged().into()
}
