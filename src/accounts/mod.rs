//! Local accounts: sign-up and sign-in with email and password, the account page's
//! data, linking and unlinking logi, passwords, and the user's sessions.
//!
//! Shared by both builds: the browser-safe types, the error codes and the server
//! functions (whose bodies exist only in the `ssr` build).

mod errors;
#[cfg(feature = "ssr")]
pub mod passwords;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub(crate) mod throttle;

pub use errors::AccountError;

use crate::auth::User;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Everything the account page shows. No token or hash fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub user: User,
    /// The login email, when the account has a password.
    pub password_email: Option<String>,
    pub logi: Option<LinkedLogi>,
    /// False when `ONE_PASS_URL` is not configured.
    pub logi_enabled: bool,
    pub sessions: Vec<ActiveSession>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedLogi {
    pub sub: String,
    pub linked_at: String,
}

/// One signed-in browser of the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSession {
    pub id: String,
    /// `password` or `logi`.
    pub method: String,
    pub user_agent: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub this_device: bool,
}

/// Creates a local account and signs it in.
#[server(endpoint = "sign_up")]
pub async fn sign_up(email: String, name: String, password: String, return_to: String) -> Result<(), AccountError> {
    use ssr::*;
    let (state, session) = request::context().await?;
    let email = Email::parse(&email)?;
    let name = parse_name(&name)?;
    let password = NewPassword::parse(password, &email)?;
    let hash = passwords::hash(password.secret()).await?;
    let user_id = store::create_password_user(&state.pool, &email, name.as_deref(), &hash).await?;
    finish_sign_in(&state, &session, user_id, &return_to).await
}

/// Signs in with email and password (throttled; one answer for unknown email and wrong password).
#[server(endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String, return_to: String) -> Result<(), AccountError> {
    use ssr::*;
    let (state, session) = request::context().await?;
    let email = Email::parse(&email).map_err(|_| AccountError::InvalidCredentials)?;
    let user_id = check_password(&state, &email, password, AccountError::InvalidCredentials).await?;
    finish_sign_in(&state, &session, user_id, &return_to).await
}

/// The account page's data; `None` when signed out.
#[server(endpoint = "account")]
pub async fn load_account() -> Result<Option<Account>, AccountError> {
    use ssr::*;
    let (state, session) = request::context().await?;
    let Some(login) = sessions::current_login(&state.pool, &session, &state.config).await? else { return Ok(None) };
    let user = store::find(&state.pool, login.user_id).await?.ok_or(AccountError::NotSignedIn)?;
    let password_email = store::password_of_user(&state.pool, login.user_id).await?.map(|record| record.email);
    let logi = match &state.logi {
        Some(provider) => store::identity_of_user(&state.pool, login.user_id, provider.issuer()).await?,
        None => None,
    };
    let sessions = sessions::list(&state.pool, login.user_id, &state.config).await?;
    Ok(Some(Account {
        user,
        password_email,
        logi: logi.map(|identity| LinkedLogi { sub: identity.subject, linked_at: format_utc(identity.linked_at) }),
        logi_enabled: state.logi.is_some(),
        sessions: sessions.into_iter().map(|record| active_session(record, &login.id)).collect(),
    }))
}

/// Gives a logi-only account a password (and a login email).
#[server(endpoint = "set_password")]
pub async fn set_password(email: String, password: String) -> Result<(), AccountError> {
    use ssr::*;
    let (state, session) = request::context().await?;
    let login = require_login(&state, &session).await?;
    let email = Email::parse(&email)?;
    let password = NewPassword::parse(password, &email)?;
    let hash = passwords::hash(password.secret()).await?;
    store::add_password(&state.pool, login.user_id, &email, &hash).await?;
    leptos_axum::redirect("/account?notice=password_set");
    Ok(())
}

/// Changes the password (the current one is required) and ends every other session.
#[server(endpoint = "change_password")]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), AccountError> {
    use ssr::*;
    let (state, session) = request::context().await?;
    let login = require_login(&state, &session).await?;
    let record = store::password_of_user(&state.pool, login.user_id).await?.ok_or(AccountError::NoPassword)?;
    let email = Email::parse(&record.email)?;
    check_password(&state, &email, current_password, AccountError::WrongCurrentPassword).await?;
    let password = NewPassword::parse(new_password, &email)?;
    let hash = passwords::hash(password.secret()).await?;
    store::replace_password_hash(&state.pool, login.user_id, &hash).await?;
    end_logins(&state, login.user_id, Some(&login.id)).await?;
    session.cycle_id().await.map_err(AppError::from)?;
    leptos_axum::redirect("/account?notice=password_changed");
    Ok(())
}

/// Unlinks logi, unless it is the account's only way to sign in.
#[server(endpoint = "unlink_logi")]
pub async fn unlink_logi() -> Result<(), AccountError> {
    use ssr::*;
    let (state, session) = request::context().await?;
    let login = require_login(&state, &session).await?;
    let provider = state.logi.as_ref().ok_or(AccountError::NotLinked)?;
    store::unlink_identity(&state.pool, login.user_id, provider.issuer()).await?;
    forget_cached_user(login.user_id);
    leptos_axum::redirect("/account?notice=logi_unlinked");
    Ok(())
}

/// Ends one of the user's sessions (this one included: that is signing out).
#[server(endpoint = "end_session")]
pub async fn end_session(id: String) -> Result<(), AccountError> {
    use ssr::*;
    let (state, session) = request::context().await?;
    let login = require_login(&state, &session).await?;
    if id == login.id {
        sign_out_and_revoke(&state, &session).await?;
        leptos_axum::redirect("/");
        return Ok(());
    }
    let doomed = state.custody.load(&state.pool, &id).await?.and_then(|held| held.refresh_token);
    if !sessions::end(&state.pool, login.user_id, &id).await? {
        return Err(AccountError::SessionNotFound);
    }
    revoke_at_logi(&state, doomed.into_iter().collect()).await;
    leptos_axum::redirect("/account?notice=session_ended");
    Ok(())
}

/// Ends every session of the user, this one included.
#[server(endpoint = "sign_out_everywhere")]
pub async fn sign_out_everywhere() -> Result<(), AccountError> {
    use ssr::*;
    let (state, session) = request::context().await?;
    let login = require_login(&state, &session).await?;
    end_logins(&state, login.user_id, None).await?;
    sessions::sign_out(&state.pool, &session).await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// The server side of the functions above.
#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    pub use super::passwords::{self, Email, NewPassword, Verification};
    pub use super::store;
    pub use crate::server::{request, sessions, AppError, AppState};
    use super::throttle::{self, Admission, Keys};
    use super::{AccountError, ActiveSession};
    use crate::auth::User;
    use crate::server::cache::TtlCache;
    use secrecy::SecretString;
    use sessions::{Login, LoginRecord, Method};
    use std::sync::LazyLock;
    use std::time::Duration;
    use tower_sessions::Session;

    const MAX_NAME_CHARS: usize = 100;

    /// The user each live login belongs to, for a second (every page asks): keyed by login
    /// id, dropped for a user whenever its sign-in methods or profile change.
    static USERS: LazyLock<TtlCache<String, (i64, User)>> = LazyLock::new(|| TtlCache::new(Duration::from_secs(1), 100_000));

    /// The signed-in user of this session, if any.
    pub async fn signed_in_user(state: &AppState, session: &Session) -> Result<Option<User>, AppError> {
        let Some(login) = sessions::current_login(&state.pool, session, &state.config).await? else { return Ok(None) };
        if let Some((user_id, user)) = USERS.get(&login.id) {
            if user_id == login.user_id {
                return Ok(Some(user));
            }
        }
        let user = store::find(&state.pool, login.user_id).await?;
        if let Some(user) = &user {
            USERS.insert(login.id, (login.user_id, user.clone()));
        }
        Ok(user)
    }

    /// Call after changing what [`signed_in_user`] returns for `user_id`.
    pub fn forget_cached_user(user_id: i64) {
        USERS.remove_where(|_, (cached, _)| *cached == user_id);
    }

    pub async fn require_login(state: &AppState, session: &Session) -> Result<Login, AccountError> {
        sessions::current_login(&state.pool, session, &state.config).await?.ok_or(AccountError::NotSignedIn)
    }

    /// Ends the user's logins (all but `keep`), revoking their refresh tokens at logi.
    pub async fn end_logins(state: &AppState, user_id: i64, keep: Option<&str>) -> Result<(), AppError> {
        let doomed = state.custody.refresh_tokens_of_user(&state.pool, user_id, keep).await?;
        sessions::end_all_except(&state.pool, user_id, keep).await?;
        revoke_at_logi(state, doomed).await;
        Ok(())
    }

    /// Signs this browser out: the login and the session are deleted and the login's
    /// refresh token is revoked at logi. True when the login held logi tokens.
    pub async fn sign_out_and_revoke(state: &AppState, session: &Session) -> Result<bool, AppError> {
        let held = match sessions::current_login(&state.pool, session, &state.config).await? {
            Some(login) => state.custody.load(&state.pool, &login.id).await?,
            None => None,
        };
        sessions::sign_out(&state.pool, session).await?;
        let Some(held) = held else { return Ok(false) };
        revoke_at_logi(state, held.refresh_token.into_iter().collect()).await;
        Ok(true)
    }

    /// Revokes the refresh tokens of logins that just ended (best effort).
    pub async fn revoke_at_logi(state: &AppState, refresh_tokens: Vec<SecretString>) {
        if let Some(provider) = &state.logi {
            crate::proxy::custody::revoke(provider, &refresh_tokens).await;
        }
    }

    /// An optional display name: trimmed, empty means none.
    pub fn parse_name(raw: &str) -> Result<Option<String>, AccountError> {
        let name = raw.trim();
        if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(AccountError::InvalidName);
        }
        Ok(Some(name.to_owned()).filter(|name| !name.is_empty()))
    }

    /// Checks `password` for the account with this login email, throttled; a weak
    /// stored hash is upgraded. Any failure is `wrong`, whether the account exists or not.
    pub async fn check_password(state: &AppState, email: &Email, password: String, wrong: AccountError) -> Result<i64, AccountError> {
        let keys = Keys::new(email.as_str(), &request::client_address());
        let attempt = match throttle::admit(&state.pool, &keys).await? {
            Admission::Allowed(attempt) => attempt,
            Admission::Throttled { retry_after_minutes } => return Err(AccountError::Throttled { retry_after_minutes }),
        };
        let password = SecretString::from(password);
        let record = store::password_by_email(&state.pool, email).await?;
        let verified = passwords::verify(password.clone(), record.as_ref().map(|r| r.hash.clone())).await?;
        let (Some(record), Verification::Valid { needs_rehash }) = (record, verified) else { return Err(wrong) };
        throttle::succeeded(&state.pool, &keys, &attempt).await?;
        if needs_rehash {
            store::replace_password_hash(&state.pool, record.user_id, &passwords::hash(&password).await?).await?;
        }
        Ok(record.user_id)
    }

    /// A new login for this browser, then on to `return_to` (same-origin paths only).
    pub async fn finish_sign_in(state: &AppState, session: &Session, user_id: i64, return_to: &str) -> Result<(), AccountError> {
        sessions::sign_in(&state.pool, session, user_id, Method::Password, &request::user_agent()).await?;
        leptos_axum::redirect(&crate::auth::return_to::sanitize_return_to(Some(return_to), &state.config.app_url));
        Ok(())
    }

    pub fn active_session(record: LoginRecord, current_login_id: &str) -> ActiveSession {
        ActiveSession {
            this_device: record.id == current_login_id,
            id: record.id,
            method: record.method,
            user_agent: record.user_agent,
            created_at: format_utc(record.created_at),
            last_seen_at: format_utc(record.last_seen_at),
        }
    }

    /// `2026-11-22 18:04 UTC`.
    pub fn format_utc(unix: i64) -> String {
        match time::OffsetDateTime::from_unix_timestamp(unix) {
            Ok(t) => format!("{}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute()),
            Err(_) => "unknown".to_owned(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn names_are_optional_trimmed_and_bounded() {
            assert_eq!(parse_name("  Ada  "), Ok(Some("Ada".into())));
            assert_eq!(parse_name("   "), Ok(None));
            assert_eq!(parse_name(&"é".repeat(100)), Ok(Some("é".repeat(100))));
            assert_eq!(parse_name(&"é".repeat(101)), Err(AccountError::InvalidName));
            assert_eq!(parse_name("Ada\u{0}"), Err(AccountError::InvalidName));
        }

        #[test]
        fn times_are_shown_in_utc() {
            assert_eq!(format_utc(1_795_370_640), "2026-11-22 18:04 UTC");
        }
    }
}
#[cfg(feature = "ssr")]
pub use ssr::{forget_cached_user, sign_out_and_revoke, signed_in_user};
