//! Server-side sessions: tower-sessions over the SQLite store.
//!
//! The browser holds only an opaque random id in a signed, HttpOnly, SameSite=Lax
//! cookie. Idle expiry is tower-sessions' inactivity expiry; absolute expiry is
//! enforced by [`signed_in_user`], the one place a session is read.

use super::config::Config;
use hkdf::Hkdf;
use secrecy::ExposeSecret;
use sha2::Sha256;
use std::time::Duration;
use time::OffsetDateTime;
use tower_sessions::cookie::{Key, SameSite};
use tower_sessions::service::SignedCookie;
use tower_sessions::session::Error as SessionError;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;

pub const COOKIE_NAME: &str = "logi_bff_session";
/// `__Host-` requires Secure, Path=/ and no Domain, which pins the cookie to this origin.
pub const SECURE_COOKIE_NAME: &str = "__Host-logi_bff_session";
const STARTED_AT: &str = "started_at";

pub type SessionLayer = SessionManagerLayer<SqliteStore, SignedCookie>;

pub fn layer(config: &Config, store: SqliteStore) -> SessionLayer {
    let secure = config.secure_cookies();
    SessionManagerLayer::new(store)
        .with_name(if secure { SECURE_COOKIE_NAME } else { COOKIE_NAME })
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::try_from(config.session_idle_timeout).unwrap_or(time::Duration::DAY)))
        .with_signed(cookie_signing_key(config))
}

/// A key for this purpose only, derived from `SESSION_SECRET`.
fn cookie_signing_key(config: &Config) -> Key {
    let mut key = [0u8; 64];
    Hkdf::<Sha256>::new(None, config.session_secret.expose_secret().as_bytes())
        .expand(b"logi-bff/session-cookie-signing/v1", &mut key)
        .expect("64 bytes is a valid HKDF-SHA256 output length");
    Key::from(&key)
}

const USER_ID: &str = "user_id";

/// Signs `user_id` in: a fresh session id (no fixation), the start time for absolute expiry.
pub async fn sign_in(session: &Session, user_id: i64) -> Result<(), SessionError> {
    session.cycle_id().await?;
    session.insert(USER_ID, user_id).await?;
    session.insert(STARTED_AT, OffsetDateTime::now_utc().unix_timestamp()).await?;
    Ok(())
}

/// The signed-in user's id; a session past its absolute lifetime is deleted and reads as signed out.
pub async fn signed_in_user(session: &Session, absolute: Duration) -> Result<Option<i64>, SessionError> {
    let Some(user_id) = session.get::<i64>(USER_ID).await? else { return Ok(None) };
    let started = session.get::<i64>(STARTED_AT).await?.unwrap_or(i64::MIN);
    let age = OffsetDateTime::now_utc().unix_timestamp().saturating_sub(started);
    if !(0..absolute.as_secs() as i64).contains(&age) {
        session.flush().await?;
        return Ok(None);
    }
    Ok(Some(user_id))
}

/// Deletes the session server-side; the cookie is cleared and the old id stops working.
pub async fn sign_out(session: &Session) -> Result<(), SessionError> {
    session.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::Config;
    use axum::{routing::get, Router};

    fn config(app_url: &str) -> Config {
        let vars = [("APP_URL", app_url), ("SESSION_SECRET", "0123456789abcdef0123456789abcdef")];
        Config::from_lookup(|k| vars.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string())).unwrap()
    }

    /// Serves `/login` (signs user 7 in) and `/whoami` on a random port; returns its base URL.
    async fn serve(config: Config) -> String {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::server::db::connect(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap();
        std::mem::forget(dir);
        let absolute = config.session_absolute_timeout;
        let app = Router::new()
            .route("/login", get(|session: Session| async move { sign_in(&session, 7).await.unwrap() }))
            .route("/whoami", get(move |session: Session| async move { format!("{:?}", signed_in_user(&session, absolute).await.unwrap()) }))
            .route("/logout", get(|session: Session| async move { sign_out(&session).await.unwrap() }))
            .layer(layer(&config, SqliteStore::new(pool)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    async fn get_with_cookie(url: String, cookie: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    fn set_cookie(response: &reqwest::Response) -> String {
        response.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_owned()
    }

    async fn whoami(base: &str, cookie: &str) -> String {
        get_with_cookie(format!("{base}/whoami"), Some(cookie)).await.text().await.unwrap()
    }

    #[tokio::test]
    async fn the_session_cookie_is_http_only_lax_and_host_wide() {
        let base = serve(config("http://localhost:3000")).await;
        let cookie = set_cookie(&get_with_cookie(format!("{base}/login"), None).await);
        assert!(cookie.starts_with("logi_bff_session="), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
        }
        assert!(!cookie.contains("Secure") && !cookie.contains("Domain"), "{cookie}");
    }

    #[tokio::test]
    async fn an_https_origin_gets_a_secure_host_prefixed_cookie() {
        let base = serve(config("https://app.example.com")).await;
        let cookie = set_cookie(&get_with_cookie(format!("{base}/login"), None).await);
        assert!(cookie.starts_with("__Host-logi_bff_session="), "{cookie}");
        assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
    }

    #[tokio::test]
    async fn a_session_works_until_signed_out_and_a_tampered_id_never_works() {
        let base = serve(config("http://localhost:3000")).await;
        let cookie = set_cookie(&get_with_cookie(format!("{base}/login"), None).await);
        let pair = cookie.split(';').next().unwrap().to_owned();
        assert_eq!(whoami(&base, &pair).await, "Some(7)");

        let (name, value) = pair.split_once('=').unwrap();
        // Change one fully significant base64 character of the signature.
        let replacement = if value.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{name}={replacement}{}", &value[1..]);
        assert_eq!(whoami(&base, &tampered).await, "None");

        get_with_cookie(format!("{base}/logout"), Some(&pair)).await;
        assert_eq!(whoami(&base, &pair).await, "None", "the old cookie still works after sign-out");
    }

    #[tokio::test]
    async fn sign_in_renews_the_session_id() {
        let base = serve(config("http://localhost:3000")).await;
        let first = set_cookie(&get_with_cookie(format!("{base}/login"), None).await);
        let first = first.split(';').next().unwrap();
        let second = set_cookie(&get_with_cookie(format!("{base}/login"), Some(first)).await);
        assert_ne!(first, second.split(';').next().unwrap());
        assert_eq!(whoami(&base, first).await, "None", "the pre-login id survived sign-in");
    }

    #[tokio::test]
    async fn a_session_past_its_absolute_lifetime_is_signed_out() {
        let mut config = config("http://localhost:3000");
        // Whole seconds: 2 s keeps the first check clear of a second boundary.
        config.session_absolute_timeout = Duration::from_secs(2);
        let base = serve(config).await;
        let cookie = set_cookie(&get_with_cookie(format!("{base}/login"), None).await);
        let pair = cookie.split(';').next().unwrap();
        assert_eq!(whoami(&base, pair).await, "Some(7)");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(whoami(&base, pair).await, "None");
    }
}
