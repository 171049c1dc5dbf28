//! Local accounts: sign-up and sign-in with email and password, the account page's
//! data, linking and unlinking logi, passwords, and the user's logins.
//!
//! Shared by both builds: the browser-safe types, the error codes and the server
//! functions (whose bodies exist only in the `ssr` build).

pub mod activity;
mod errors;
#[cfg(feature = "ssr")]
pub mod passwords;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub(crate) mod throttle;

#[cfg(feature = "ssr")]
pub use errors::server_fn_error_status;
pub use errors::AccountError;

use crate::login::User;
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
    /// The last events of the account, newest first.
    pub activity: Vec<activity::ActivityEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedLogi {
    pub sub: String,
    pub linked_at: String,
}

/// One signed-in browser or native-app device of the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSession {
    pub id: String,
    /// `password` or `logi`.
    pub method: String,
    /// A readable device: "Chrome on Linux", else the raw user agent, else "Unknown
    /// browser"; for a native app, the `device_name` it sent.
    pub device: String,
    /// A native app's device (our bearer tokens) rather than a browser.
    pub app: bool,
    pub created_at: String,
    pub last_seen_at: String,
    pub this_device: bool,
}

/// Creates a local account and signs it in.
#[server(endpoint = "sign_up")]
pub async fn sign_up(email: String, name: String, password: String, return_to: String) -> Result<(), AccountError> {
    use ssr::*;
    let (pool, logins, found) = context().await?;
    let email = Email::parse(&email)?;
    let name = parse_name(&name)?;
    let password = NewPassword::parse(password, &email)?;
    let hash = passwords::hash(password.secret()).await?;
    let user_id = store::create_password_user(&pool, &email, name.as_deref(), &hash).await?;
    finish_sign_in(&logins, &found.session, user_id, &return_to).await
}

/// Signs in with email and password (throttled; one answer for unknown email and wrong password).
#[server(endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String, return_to: String) -> Result<(), AccountError> {
    use ssr::*;
    let (pool, logins, found) = context().await?;
    let signed_in = async {
        let email = Email::parse(&email).map_err(|_| AccountError::InvalidCredentials)?;
        let user_id = check_password(&pool, &email, password, AccountError::InvalidCredentials).await?;
        finish_sign_in(&logins, &found.session, user_id, &return_to).await
    }
    .await;
    crate::server::metrics::sign_in("password", signed_in.is_ok());
    signed_in
}

/// The account page's data; `None` when signed out.
#[server(endpoint = "account")]
pub async fn load_account() -> Result<Option<Account>, AccountError> {
    use ssr::*;
    let (pool, logins, found) = context().await?;
    let Some(login) = found.login else { return Ok(None) };
    let user = logins.user(&login).await?.ok_or(AccountError::NotSignedIn)?;
    let password_email = store::password_of_user(&pool, login.user_id).await?.map(|record| record.email);
    let issuer = logi_issuer()?;
    let logi = match &issuer {
        Some(issuer) => store::identity_of_user(&pool, login.user_id, issuer).await?,
        None => None,
    };
    let sessions = logins.list(login.user_id).await?;
    let activity = activity::page(&pool, login.user_id, None, activity::RECENT).await?;
    Ok(Some(Account {
        activity,
        user,
        password_email,
        logi: logi.map(|identity| LinkedLogi { sub: identity.subject, linked_at: format_utc(identity.linked_at) }),
        logi_enabled: issuer.is_some(),
        sessions: sessions.into_iter().map(|record| active_session(record, &login.id)).collect(),
    }))
}

/// Gives a logi-only account a password (and a login email).
#[server(endpoint = "set_password")]
pub async fn set_password(email: String, password: String) -> Result<(), AccountError> {
    use ssr::*;
    let (pool, _, RequiredLogin { login, .. }) = signed_in().await?;
    let email = Email::parse(&email)?;
    let password = NewPassword::parse(password, &email)?;
    let hash = passwords::hash(password.secret()).await?;
    store::add_password(&pool, &login, &email, &hash).await?;
    leptos_axum::redirect("/account?notice=password_set");
    Ok(())
}

/// Changes the password (the current one is required) and ends every other session.
#[server(endpoint = "change_password")]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), AccountError> {
    use ssr::*;
    let (pool, logins, RequiredLogin { login, session }) = signed_in().await?;
    let record = store::password_of_user(&pool, login.user_id).await?.ok_or(AccountError::NoPassword)?;
    let email = Email::parse(&record.email)?;
    check_password(&pool, &email, current_password, AccountError::WrongCurrentPassword).await?;
    let password = NewPassword::parse(new_password, &email)?;
    let hash = passwords::hash(password.secret()).await?;
    let (change, events) = store::change_password(&pool, &login, &hash).await?;
    logins.end_all_of_user_with(change, events, login.user_id, Some(&login.id), EndReason::PasswordChanged).await?;
    session.renew_id().await?;
    leptos_axum::redirect("/account?notice=password_changed");
    Ok(())
}

/// Unlinks logi, unless it is the account's only way to sign in.
#[server(endpoint = "unlink_logi")]
pub async fn unlink_logi() -> Result<(), AccountError> {
    use ssr::*;
    let (pool, logins, RequiredLogin { login, .. }) = signed_in().await?;
    let issuer = logi_issuer()?.ok_or(AccountError::NotLinked)?;
    store::unlink_identity(&pool, &login, &issuer).await?;
    logins.user_changed(login.user_id);
    leptos_axum::redirect("/account?notice=logi_unlinked");
    Ok(())
}

/// Ends one of the user's logins (this browser's included: that is signing out).
#[server(endpoint = "end_session")]
pub async fn end_session(id: String) -> Result<(), AccountError> {
    use ssr::*;
    let (_, logins, RequiredLogin { login, session }) = signed_in().await?;
    if id == login.id.as_str() {
        logins.sign_out(&session, Some(&login), EndReason::SignedOut).await?;
        leptos_axum::redirect("/");
        return Ok(());
    }
    if !logins.end_of_user(login.user_id, &LoginId::from_untrusted(&id), EndReason::ByUser).await? {
        return Err(AccountError::SessionNotFound);
    }
    leptos_axum::redirect("/account?notice=session_ended");
    Ok(())
}

/// Ends every login of the user, this browser's included.
#[server(endpoint = "sign_out_everywhere")]
pub async fn sign_out_everywhere() -> Result<(), AccountError> {
    use ssr::*;
    let (_, logins, RequiredLogin { login, session }) = signed_in().await?;
    logins.end_all_of_user(login.user_id, Some(&login.id), EndReason::Everywhere).await?;
    logins.sign_out(&session, Some(&login), EndReason::Everywhere).await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// The server side of the functions above.
#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    pub use super::passwords::{self, Email, NewPassword, Verification};
    pub use super::store;
    use super::throttle::{self, Admission, Keys};
    use super::{AccountError, ActiveSession};
    pub use crate::activity::{Event, Events, Occurrence};
    pub use crate::ids::{Issuer, LoginId, UserId};
    use crate::login::step_up::Authentication;
    use crate::login::store::LoginRecord;
    use crate::login::{BrowserSession, Client, Logins, MaybeLogin, Method};
    pub use crate::login::{EndReason, RequiredLogin};
    use crate::server::config::Config;
    use crate::server::db::Db;
    use crate::server::request;
    use secrecy::SecretString;
    use std::sync::Arc;

    const MAX_NAME_CHARS: usize = 100;

    /// The database, the login service and this request's login.
    pub async fn context() -> Result<(Db, Arc<Logins>, MaybeLogin), AccountError> {
        let (logins, found) = crate::login::from_server_fn().await?;
        Ok((request::from_context::<Db>()?, logins, found))
    }

    /// [`context`] for what only a signed-in user may do: `not_signed_in` otherwise.
    pub async fn signed_in() -> Result<(Db, Arc<Logins>, RequiredLogin), AccountError> {
        let (db, logins, found) = context().await?;
        Ok((db, logins, found.required().ok_or(AccountError::NotSignedIn)?))
    }

    /// logi's issuer, when logi sign-in is configured.
    pub fn logi_issuer() -> Result<Option<Issuer>, AccountError> {
        Ok(request::from_context::<Arc<Config>>()?.logi.as_ref().map(|logi| logi.issuer()))
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
    pub async fn check_password(pool: &Db, email: &Email, password: String, wrong: AccountError) -> Result<UserId, AccountError> {
        let keys = Keys::new(email.as_str(), &request::client_address());
        let attempt = match throttle::admit(pool, &keys).await? {
            Admission::Allowed(attempt) => attempt,
            Admission::Throttled { retry_after_minutes } => return Err(AccountError::Throttled { retry_after_minutes }),
        };
        let password = SecretString::from(password);
        let record = store::password_by_email(pool, email).await?;
        let verified = passwords::verify(password.clone(), record.as_ref().map(|r| r.hash.clone())).await?;
        let existing = record.as_ref().map(|record| record.user_id);
        let (Some(record), Verification::Valid { needs_rehash }) = (record, verified) else {
            if let Some(user_id) = existing {
                Events::record_alone(pool, Occurrence { user_id, login_id: None, device: None, event: Event::SignInFailed }).await?;
            }
            return Err(wrong);
        };
        throttle::succeeded(pool, &keys, &attempt).await?;
        if needs_rehash {
            store::rehash_password(pool, record.user_id, &passwords::hash(&password).await?).await?;
        }
        Ok(record.user_id)
    }

    /// A new login for this browser, then on to `return_to` (same-origin paths only).
    pub async fn finish_sign_in(logins: &Logins, session: &BrowserSession, user_id: UserId, return_to: &str) -> Result<(), AccountError> {
        logins.sign_in(session, user_id, (Method::Password, &Authentication::default()), &request::user_agent()).await?;
        let config = request::from_context::<Arc<Config>>()?;
        leptos_axum::redirect(&crate::login::return_to::sanitize_return_to(Some(return_to), &config.app_url));
        Ok(())
    }

    pub fn active_session(record: LoginRecord, current_login_id: &LoginId) -> ActiveSession {
        let app = record.client == Client::Device;
        ActiveSession {
            this_device: &record.id == current_login_id,
            id: record.id.as_str().to_owned(),
            method: record.method,
            device: if app { record.user_agent } else { readable_device(&record.user_agent) },
            app,
            created_at: format_utc(record.created_at),
            last_seen_at: format_utc(record.last_seen_at),
        }
    }

    /// What the sessions list calls a user agent: browser and system when woothee knows both,
    /// else the user agent as sent (already stripped of control characters and bounded).
    pub fn readable_device(user_agent: &str) -> String {
        let parsed = woothee::parser::Parser::new().parse(user_agent);
        let known = |value: &str| !value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN;
        match parsed {
            Some(ua) if known(ua.name) && known(ua.os) => format!("{} on {}", ua.name, ua.os),
            _ if user_agent.is_empty() => "Unknown browser".to_owned(),
            _ => user_agent.to_owned(),
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
        fn devices_are_named_by_browser_and_system() {
            let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
            assert_eq!(readable_device(chrome), "Chrome on Linux");
            let safari =
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
            assert_eq!(readable_device(safari), "Safari on iPhone");
            assert_eq!(readable_device("curl/8.5.0"), "curl/8.5.0");
            assert_eq!(readable_device(""), "Unknown browser");
        }

        #[test]
        fn times_are_shown_in_utc() {
            assert_eq!(format_utc(1_795_370_640), "2026-11-22 18:04 UTC");
        }
    }
}
