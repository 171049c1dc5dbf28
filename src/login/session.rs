//! The browser's server-side session (tower-sessions) and the typed wrapper that is
//! the only code knowing its keys.
//!
//! The browser holds only an opaque random id in a signed, HttpOnly, SameSite=Lax
//! cookie; the session holds only the id of its `logins` row. A session is created
//! only when a browser signs in: nothing an anonymous request does writes one.

use super::cache::Expiring;
use crate::ids::LoginId;
use crate::server::config::Config;
use crate::server::crypto::derive_key;
use crate::server::db::Db;
use crate::server::AppError;
use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tower_sessions::cookie::{Key, SameSite};
use tower_sessions::service::SignedCookie;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::ExpiredDeletion;
use tower_sessions::{CachingSessionStore, Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

pub const COOKIE_NAME: &str = "logi_bff_session";
/// `__Host-` requires Secure, Path=/ and no Domain, which pins the cookie to this origin.
pub const SECURE_COOKIE_NAME: &str = "__Host-logi_bff_session";
const LOGIN_ID: &str = "login_id";
/// Session records kept in memory at most; beyond that the least used are read again.
const SESSION_CACHE_CAPACITY: usize = 100_000;
/// A cached record is read again from the store after this long: a session renewed or
/// ended by another replica is seen as soon as the login rows are.
const SESSION_CACHE_TTL: Duration = super::cache::CACHE_TTL;

pub type SessionLayer = SessionManagerLayer<CachingSessionStore<SessionCache, SessionRecords>, SignedCookie>;

pub fn layer(config: &Config, cache: SessionCache, store: SessionRecords) -> SessionLayer {
    let secure = config.secure_cookies();
    let key = derive_key::<64>(&config.session_secret, "logi-bff/session-cookie-signing/v1");
    SessionManagerLayer::new(CachingSessionStore::new(cache, store))
        .with_name(if secure { SECURE_COOKIE_NAME } else { COOKIE_NAME })
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::try_from(config.session_idle_timeout).unwrap_or(time::Duration::DAY)))
        .with_signed(Key::from(key.expose_secret()))
}

/// True when the request carries one of our session cookies (valid or not).
pub fn has_session_cookie(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()))
        .any(|name| name == COOKIE_NAME || name == SECURE_COOKIE_NAME)
}

/// This browser's session, as logins use it.
#[derive(Clone)]
pub struct BrowserSession(Session);

impl BrowserSession {
    pub async fn login_id(&self) -> Result<Option<LoginId>, AppError> {
        Ok(self.0.get(LOGIN_ID).await?)
    }

    /// A new session id (no fixation), then the new login's id, stored now: a store that
    /// fails answers here (`503` when the database is out), not as the session layer's
    /// empty `500` after the response is made.
    pub(super) async fn start(&self, login: &LoginId) -> Result<(), AppError> {
        self.0.cycle_id().await?;
        self.0.insert(LOGIN_ID, login).await?;
        Ok(self.0.save().await?)
    }

    /// Renews the session id, keeping its login (after a password change).
    pub async fn renew_id(&self) -> Result<(), AppError> {
        self.0.cycle_id().await?;
        Ok(self.0.save().await?)
    }

    /// Deletes the session; the browser's cookie stops working.
    pub(super) async fn end(&self) -> Result<(), AppError> {
        Ok(self.0.flush().await?)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BrowserSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await.map_err(|(_, why)| AppError::Internal(format!("session layer: {why}")))?;
        Ok(Self(session))
    }
}

/// The stored half of the sessions: tower-sessions' own store of this backend (its
/// table is created by our migrations).
#[derive(Clone, Debug)]
pub enum SessionRecords {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SessionRecords {
    pub fn new(db: &Db) -> Self {
        match db {
            Db::Sqlite(pool) => Self::Sqlite(SqliteStore::new(pool.clone())),
            Db::Postgres(pool) => Self::Postgres(PostgresStore::new(pool.clone())),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            SessionRecords::Sqlite($store) => $call,
            SessionRecords::Postgres($store) => $call,
        }
    };
}

#[async_trait]
impl SessionStore for SessionRecords {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        delegate!(self, store => store.create(record).await)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        delegate!(self, store => store.save(record).await)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        delegate!(self, store => store.load(id).await)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        delegate!(self, store => store.delete(id).await)
    }
}

#[async_trait]
impl ExpiredDeletion for SessionRecords {
    async fn delete_expired(&self) -> session_store::Result<()> {
        delegate!(self, store => store.delete_expired().await)
    }
}

/// The in-memory half of tower-sessions' `CachingSessionStore` in front of the stored
/// records: a record read once is served from memory until it expires. It only ever
/// holds records the store has (created, saved or found there), and is bounded.
#[derive(Clone)]
pub struct SessionCache(Arc<Expiring<Id, Record>>);

impl Default for SessionCache {
    fn default() -> Self {
        Self(Arc::new(Expiring::new(SESSION_CACHE_CAPACITY, SESSION_CACHE_TTL)))
    }
}

impl SessionCache {
    /// How many records are held (tests and the benchmark check it stays flat).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn purge_expired(&self) {
        self.0.purge_expired();
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCache")
    }
}

#[async_trait]
impl SessionStore for SessionCache {
    /// The store has already created the record with a unique id; keep a copy.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.save(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.0.insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.0.get(id).filter(|record| record.expiry_date > OffsetDateTime::now_utc()))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.remove(id);
        Ok(())
    }
}
