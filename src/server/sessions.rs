//! Server-side sessions: tower-sessions over the SQLite store, plus one `logins` row
//! per signed-in browser.
//!
//! The browser holds only an opaque random id in a signed, HttpOnly, SameSite=Lax
//! cookie. The session holds only the id of its `logins` row, and every read checks
//! that row: deleting it (end this session, sign out everywhere, user deleted) signs
//! that browser out at once. Idle and absolute lifetimes are enforced on the row.

use super::cache::{SessionCache, TtlCache};
use super::config::Config;
use super::AppError;
use hkdf::Hkdf;
use secrecy::ExposeSecret;
use sha2::Sha256;
use sqlx::SqlitePool;
use std::sync::LazyLock;
use std::time::Duration;
use time::OffsetDateTime;
use tower_sessions::cookie::{Key, SameSite};
use tower_sessions::service::SignedCookie;
use tower_sessions::{CachingSessionStore, Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;

pub const COOKIE_NAME: &str = "logi_bff_session";
/// `__Host-` requires Secure, Path=/ and no Domain, which pins the cookie to this origin.
pub const SECURE_COOKIE_NAME: &str = "__Host-logi_bff_session";
const LOGIN_ID: &str = "login_id";
/// `last_seen_at` is written at most this often: a read per request, a write per minute.
const TOUCH_INTERVAL_SECS: i64 = 60;
const MAX_USER_AGENT_CHARS: usize = 200;

pub type SessionLayer = SessionManagerLayer<CachingSessionStore<SessionCache, SqliteStore>, SignedCookie>;

pub fn layer(config: &Config, store: SqliteStore) -> SessionLayer {
    let secure = config.secure_cookies();
    SessionManagerLayer::new(CachingSessionStore::new(SessionCache::default(), store))
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

/// How a login was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Password,
    Logi,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Logi => "logi",
        }
    }
}

/// The signed-in browser this request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub id: String,
    pub user_id: i64,
}

/// A login as listed on the account page.
#[derive(Debug, sqlx::FromRow)]
pub struct LoginRecord {
    pub id: String,
    pub method: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A login row as last read; served for at most a second, dropped when the login ends.
#[derive(Clone)]
struct CachedLogin {
    user_id: i64,
    created_at: i64,
    last_seen_at: i64,
}

/// Keyed by login id (random, so distinct databases in one process never collide).
static LOGINS: LazyLock<TtlCache<String, CachedLogin>> = LazyLock::new(|| TtlCache::new(Duration::from_secs(1), 100_000));

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The idle and absolute lifetimes, in seconds, for SQL.
fn lifetimes(config: &Config) -> (i64, i64) {
    (config.session_idle_timeout.as_secs() as i64, config.session_absolute_timeout.as_secs() as i64)
}

/// Signs `user_id` in: the browser's previous login ends, the session id is renewed
/// (no fixation) and a new login row is written.
pub async fn sign_in(pool: &SqlitePool, session: &Session, user_id: i64, method: Method, user_agent: &str) -> Result<Login, AppError> {
    if let Some(previous) = session.get::<String>(LOGIN_ID).await? {
        forget(pool, &previous).await?;
    }
    session.cycle_id().await?;
    let id = random_id();
    let user_agent: String = user_agent.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT_CHARS).collect();
    sqlx::query("INSERT INTO logins (id, user_id, method, user_agent) VALUES (?, ?, ?, ?)")
        .bind(&id)
        .bind(user_id)
        .bind(method.as_str())
        .bind(user_agent)
        .execute(pool)
        .await?;
    session.insert(LOGIN_ID, &id).await?;
    Ok(Login { id, user_id })
}

fn random_id() -> String {
    rand::random::<[u8; 16]>().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The live login of this session. A login that was ended or outlived its idle or
/// absolute lifetime reads as signed out, and the session is deleted.
pub async fn current_login(pool: &SqlitePool, session: &Session, config: &Config) -> Result<Option<Login>, AppError> {
    let Some(id) = session.get::<String>(LOGIN_ID).await? else { return Ok(None) };
    let (idle, absolute) = lifetimes(config);
    let now = now();
    let live = cached_login(pool, &id).await?.filter(|login| login.created_at > now - absolute && login.last_seen_at > now - idle);
    let Some(login) = live else {
        forget(pool, &id).await?;
        session.flush().await?;
        return Ok(None);
    };
    if now - login.last_seen_at >= TOUCH_INTERVAL_SECS {
        sqlx::query("UPDATE logins SET last_seen_at = ? WHERE id = ?").bind(now).bind(&id).execute(pool).await?;
        LOGINS.insert(id.clone(), CachedLogin { last_seen_at: now, ..login.clone() });
    }
    Ok(Some(Login { id, user_id: login.user_id }))
}

async fn cached_login(pool: &SqlitePool, id: &str) -> Result<Option<CachedLogin>, AppError> {
    if let Some(login) = LOGINS.get(id) {
        return Ok(Some(login));
    }
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT user_id, created_at, last_seen_at FROM logins WHERE id = ?").bind(id).fetch_optional(pool).await?;
    let login = row.map(|(user_id, created_at, last_seen_at)| CachedLogin { user_id, created_at, last_seen_at });
    if let Some(login) = &login {
        LOGINS.insert(id.to_owned(), login.clone());
    }
    Ok(login)
}

/// Deletes a login row (and its cached copy).
async fn forget(pool: &SqlitePool, id: &str) -> Result<(), AppError> {
    LOGINS.remove(id);
    sqlx::query("DELETE FROM logins WHERE id = ?").bind(id).execute(pool).await?;
    Ok(())
}

/// Ends this browser's login and deletes its session; the old cookie stops working.
pub async fn sign_out(pool: &SqlitePool, session: &Session) -> Result<(), AppError> {
    if let Some(id) = session.get::<String>(LOGIN_ID).await? {
        forget(pool, &id).await?;
    }
    Ok(session.flush().await?)
}

/// Ends one of the user's logins; false when the user has no such login.
pub async fn end(pool: &SqlitePool, user_id: i64, login_id: &str) -> Result<bool, AppError> {
    LOGINS.remove(login_id);
    let done = sqlx::query("DELETE FROM logins WHERE id = ? AND user_id = ?").bind(login_id).bind(user_id).execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every login of the user except `keep`; returns how many ended.
pub async fn end_all_except(pool: &SqlitePool, user_id: i64, keep: Option<&str>) -> Result<u64, AppError> {
    LOGINS.remove_where(|id, login| login.user_id == user_id && Some(id.as_str()) != keep);
    let done = sqlx::query("DELETE FROM logins WHERE user_id = ? AND id IS NOT ?").bind(user_id).bind(keep).execute(pool).await?;
    Ok(done.rows_affected())
}

/// The user's live logins, most recently used first.
pub async fn list(pool: &SqlitePool, user_id: i64, config: &Config) -> Result<Vec<LoginRecord>, AppError> {
    let (idle, absolute) = lifetimes(config);
    Ok(sqlx::query_as(
        "SELECT id, method, user_agent, created_at, last_seen_at FROM logins
          WHERE user_id = ? AND created_at > unixepoch() - ? AND last_seen_at > unixepoch() - ?
          ORDER BY last_seen_at DESC, created_at DESC",
    )
    .bind(user_id)
    .bind(absolute)
    .bind(idle)
    .fetch_all(pool)
    .await?)
}

/// Deletes logins past their idle or absolute lifetime (run periodically).
pub async fn delete_expired_logins(pool: &SqlitePool, config: &Config) -> Result<u64, AppError> {
    let (idle, absolute) = lifetimes(config);
    let done = sqlx::query("DELETE FROM logins WHERE created_at <= unixepoch() - ? OR last_seen_at <= unixepoch() - ?")
        .bind(absolute)
        .bind(idle)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::Config;
    use axum::{extract::State, routing::get, Router};
    use std::sync::Arc;
    use std::time::Duration;

    fn config(app_url: &str) -> Config {
        let vars = [("APP_URL", app_url), ("SESSION_SECRET", "0123456789abcdef0123456789abcdef")];
        Config::from_lookup(|k| vars.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string())).unwrap()
    }

    type TestState = (SqlitePool, Arc<Config>);

    async fn sign_in_user_7(State((pool, _)): State<TestState>, session: Session) -> String {
        sign_in(&pool, &session, 7, Method::Password, "test\u{7}agent").await.unwrap().id
    }

    async fn whoami(State((pool, config)): State<TestState>, session: Session) -> String {
        format!("{:?}", current_login(&pool, &session, &config).await.unwrap().map(|login| login.user_id))
    }

    async fn sign_out_here(State((pool, _)): State<TestState>, session: Session) {
        sign_out(&pool, &session).await.unwrap()
    }

    /// Serves `/login` (signs user 7 in, answers the login id), `/whoami` and `/logout`
    /// on a random port; returns its base URL and the database.
    async fn serve(config: Config) -> (String, SqlitePool) {
        let (dir, pool) = crate::server::db::temp_pool().await;
        std::mem::forget(dir);
        sqlx::query("INSERT INTO users (id, name) VALUES (7, 'Seven')").execute(&pool).await.unwrap();
        let app = Router::new()
            .route("/login", get(sign_in_user_7))
            .route("/whoami", get(whoami))
            .route("/logout", get(sign_out_here))
            .layer(layer(&config, SqliteStore::new(pool.clone())))
            .with_state((pool.clone(), Arc::new(config)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), pool)
    }

    async fn get_with_cookie(url: String, cookie: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// Signs in; returns the `name=value` cookie pair and the login id.
    async fn sign_in_browser(base: &str) -> (String, String) {
        let response = get_with_cookie(format!("{base}/login"), None).await;
        let cookie = set_cookie(&response);
        (cookie.split(';').next().unwrap().to_owned(), response.text().await.unwrap())
    }

    fn set_cookie(response: &reqwest::Response) -> String {
        response.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_owned()
    }

    async fn who(base: &str, cookie: &str) -> String {
        get_with_cookie(format!("{base}/whoami"), Some(cookie)).await.text().await.unwrap()
    }

    #[tokio::test]
    async fn the_session_cookie_is_http_only_lax_and_host_wide() {
        let (base, _) = serve(config("http://localhost:3000")).await;
        let cookie = set_cookie(&get_with_cookie(format!("{base}/login"), None).await);
        assert!(cookie.starts_with("logi_bff_session="), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
        }
        assert!(!cookie.contains("Secure") && !cookie.contains("Domain"), "{cookie}");
    }

    #[tokio::test]
    async fn an_https_origin_gets_a_secure_host_prefixed_cookie() {
        let (base, _) = serve(config("https://app.example.com")).await;
        let cookie = set_cookie(&get_with_cookie(format!("{base}/login"), None).await);
        assert!(cookie.starts_with("__Host-logi_bff_session="), "{cookie}");
        assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
    }

    #[tokio::test]
    async fn a_session_works_until_signed_out_and_a_tampered_id_never_works() {
        let (base, pool) = serve(config("http://localhost:3000")).await;
        let (pair, login_id) = sign_in_browser(&base).await;
        assert_eq!(who(&base, &pair).await, "Some(7)");

        let (name, value) = pair.split_once('=').unwrap();
        // Change one fully significant base64 character of the signature.
        let replacement = if value.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{name}={replacement}{}", &value[1..]);
        assert_eq!(who(&base, &tampered).await, "None");

        get_with_cookie(format!("{base}/logout"), Some(&pair)).await;
        assert_eq!(who(&base, &pair).await, "None", "the old cookie still works after sign-out");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM logins WHERE id = ?").bind(login_id).fetch_one(&pool).await.unwrap();
        assert_eq!(rows, 0, "sign-out left the login row");
    }

    #[tokio::test]
    async fn sign_in_renews_the_session_id_and_replaces_the_previous_login() {
        let (base, pool) = serve(config("http://localhost:3000")).await;
        let (first, _) = sign_in_browser(&base).await;
        let second = set_cookie(&get_with_cookie(format!("{base}/login"), Some(&first)).await);
        assert_ne!(first, second.split(';').next().unwrap());
        assert_eq!(who(&base, &first).await, "None", "the pre-login id survived sign-in");
        let logins: i64 = sqlx::query_scalar("SELECT count(*) FROM logins").fetch_one(&pool).await.unwrap();
        assert_eq!(logins, 1, "the replaced login was kept");
    }

    #[tokio::test]
    async fn an_ended_login_signs_that_browser_out_at_once_and_spares_the_others() {
        let (base, pool) = serve(config("http://localhost:3000")).await;
        let (phone, phone_login) = sign_in_browser(&base).await;
        let (laptop, laptop_login) = sign_in_browser(&base).await;
        let (tablet, _) = sign_in_browser(&base).await;
        assert!(!end(&pool, 8, &phone_login).await.unwrap(), "another user ended user 7's login");
        assert!(end(&pool, 7, &phone_login).await.unwrap());
        assert_eq!((who(&base, &phone).await, who(&base, &laptop).await), ("None".into(), "Some(7)".into()));

        assert_eq!(end_all_except(&pool, 7, Some(&laptop_login)).await.unwrap(), 1);
        assert_eq!((who(&base, &laptop).await, who(&base, &tablet).await), ("Some(7)".into(), "None".into()));
        let listed = list(&pool, 7, &config("http://localhost:3000")).await.unwrap();
        assert_eq!(listed.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [laptop_login.as_str()]);
        assert_eq!(listed[0].user_agent, "testagent", "control characters kept");
    }

    #[tokio::test]
    async fn deleting_the_user_ends_its_sessions() {
        let (base, pool) = serve(config("http://localhost:3000")).await;
        let (pair, _) = sign_in_browser(&base).await;
        assert_eq!(who(&base, &pair).await, "Some(7)");
        sqlx::query("DELETE FROM users WHERE id = 7").execute(&pool).await.unwrap();
        // An out-of-band deletion is seen once the one-second login cache entry expires.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(who(&base, &pair).await, "None");
    }

    #[tokio::test]
    async fn a_session_past_its_absolute_lifetime_is_signed_out() {
        let mut config = config("http://localhost:3000");
        // Whole seconds: 2 s keeps the first check clear of a second boundary.
        config.session_absolute_timeout = Duration::from_secs(2);
        let (base, pool) = serve(config).await;
        let (pair, _) = sign_in_browser(&base).await;
        assert_eq!(who(&base, &pair).await, "Some(7)");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(who(&base, &pair).await, "None");
        let logins: i64 = sqlx::query_scalar("SELECT count(*) FROM logins").fetch_one(&pool).await.unwrap();
        assert_eq!(logins, 0, "the expired login row was kept");
    }

    #[tokio::test]
    async fn an_idle_login_is_signed_out_and_swept() {
        let idle_for_a_minute = || {
            let mut config = config("http://localhost:3000");
            config.session_idle_timeout = Duration::from_secs(60);
            config
        };
        let (base, pool) = serve(idle_for_a_minute()).await;
        let (pair, login_id) = sign_in_browser(&base).await;
        sqlx::query("UPDATE logins SET last_seen_at = last_seen_at - 61 WHERE id = ?").bind(&login_id).execute(&pool).await.unwrap();
        assert_eq!(delete_expired_logins(&pool, &idle_for_a_minute()).await.unwrap(), 1);
        assert_eq!(who(&base, &pair).await, "None");
    }
}
