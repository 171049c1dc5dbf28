//! [`Logins`]: the one service that finds, starts and ends logins. Held once in the
//! app state; its caches are fields, so two apps in one process never share them.

use super::cache::Expiring;
use super::device::Devices;
use super::pending::{PendingCookie, PendingError, PendingLogin, LIFETIME_SECS};
use super::session::{BrowserSession, SessionCache};
use super::store::{self, Client, Lifetimes, LoginLifetimes, LoginRecord, LoginRow, Method};
use super::tokens::{self, Custody, CustodyError, HeldTokens, LogiSession, TokenAuthority, TokenSet};
use super::User;
use crate::ids::{LoginId, UserId};
use crate::server::config::Config;
use crate::server::db::{Db, Tx};
use crate::server::unix_now as now;
use crate::server::AppError;
use crate::with_db;
use axum::http::{HeaderMap, HeaderValue};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// `last_seen_at` is written at most this often: a read per request, a write per minute.
const TOUCH_INTERVAL_SECS: i64 = 60;
/// Rows and users are served from memory for at most this long; every change this
/// process makes drops its entries at once, and a change another replica makes is seen
/// within this time (so within a second, with margin).
pub(super) const CACHE_TTL: Duration = Duration::from_millis(500);
const CACHE_CAPACITY: usize = 100_000;

/// The signed-in client a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub id: LoginId,
    pub user_id: UserId,
}

pub struct Logins {
    pub(super) db: Db,
    pub(super) lifetimes: LoginLifetimes,
    refresh_skew_secs: i64,
    rows: Expiring<LoginId, LoginRow>,
    users: Expiring<LoginId, (UserId, User)>,
    pub(super) tokens: Arc<Custody>,
    /// logi, for refresh grants and revocation; `None` when logi is not configured.
    authority: Option<Arc<dyn TokenAuthority>>,
    pending: PendingCookie,
    sessions: SessionCache,
    pub(super) devices: Devices,
}

fn cache<V: Clone>() -> Expiring<LoginId, V> {
    Expiring::new(CACHE_CAPACITY, CACHE_TTL)
}

impl Logins {
    pub fn new(db: Db, config: &Config, authority: Option<Arc<dyn TokenAuthority>>, sessions: SessionCache) -> Self {
        let lifetimes = |idle: Duration, absolute: Duration| Lifetimes { idle_secs: idle.as_secs() as i64, absolute_secs: absolute.as_secs() as i64 };
        Self {
            db,
            lifetimes: LoginLifetimes {
                browser: lifetimes(config.session_idle_timeout, config.session_absolute_timeout),
                device: lifetimes(config.native.refresh_idle, config.native.refresh_absolute),
            },
            refresh_skew_secs: config.token_refresh_skew_secs,
            rows: cache(),
            users: cache(),
            tokens: Arc::new(Custody::new(&config.session_secret)),
            authority,
            pending: PendingCookie::new(config),
            sessions,
            devices: Devices::new(config),
        }
    }

    /// Signs `user_id` in on this browser: its previous login ends, the session id is
    /// renewed (no fixation) and a new login row is written.
    pub async fn sign_in(&self, session: &BrowserSession, user_id: UserId, method: Method, user_agent: &str) -> Result<Login, AppError> {
        if let Some(previous) = session.login_id().await? {
            self.forget(&previous).await?;
        }
        let id = LoginId::random();
        let mut tx = self.db.begin().await?;
        store::insert(&mut tx, &id, user_id, (method, Client::Browser), &store::sanitized_user_agent(user_agent), now()).await?;
        tx.commit().await?;
        session.start(&id).await?;
        Ok(Login { id, user_id })
    }

    /// The live login of this session. A login that was ended or outlived its idle or
    /// absolute lifetime reads as signed out, and the session is deleted.
    pub async fn current(&self, session: &BrowserSession) -> Result<Option<Login>, AppError> {
        let Some(id) = session.login_id().await? else { return Ok(None) };
        let Some(row) = self.live(&id, Client::Browser, now()).await? else {
            session.end().await?;
            return Ok(None);
        };
        Ok(Some(Login { id, user_id: row.user_id }))
    }

    /// The login's row if it is a live one of this kind (its last use recorded, once a
    /// minute); a login past its lifetimes is deleted.
    pub(super) async fn live(&self, id: &LoginId, client: Client, now: i64) -> Result<Option<LoginRow>, AppError> {
        let Some(row) = self.row(id).await? else { return Ok(None) };
        if row.client != client {
            return Ok(None);
        }
        if !row.is_live(&self.lifetimes, now) {
            self.forget(id).await?;
            return Ok(None);
        }
        if now - row.last_seen_at < TOUCH_INTERVAL_SECS {
            return Ok(Some(row));
        }
        store::touch(&self.db, id, now).await?;
        let row = LoginRow { last_seen_at: now, ..row };
        self.rows.insert(id.clone(), row.clone());
        Ok(Some(row))
    }

    pub(super) async fn row(&self, id: &LoginId) -> Result<Option<LoginRow>, AppError> {
        if let Some(row) = self.rows.get(id) {
            return Ok(Some(row));
        }
        let row = store::find(&self.db, id).await?;
        if let Some(row) = &row {
            self.rows.insert(id.clone(), row.clone());
        }
        Ok(row)
    }

    /// The user this login belongs to, as the browser sees it.
    pub async fn user(&self, login: &Login) -> Result<Option<User>, AppError> {
        if let Some((user_id, user)) = self.users.get(&login.id) {
            if user_id == login.user_id {
                return Ok(Some(user));
            }
        }
        let user = store::find_user(&self.db, login.user_id).await?;
        if let Some(user) = &user {
            self.users.insert(login.id.clone(), (login.user_id, user.clone()));
        }
        Ok(user)
    }

    /// Call after changing what [`Logins::user`] returns for `user_id` (profile, linked identity).
    pub fn forget_user(&self, user_id: UserId) {
        self.users.retain(|_, (cached, _)| *cached != user_id);
    }

    /// Keeps logi's tokens for this login (a sign-in or a link).
    pub async fn keep_tokens(&self, login: &LoginId, grant: TokenSet, session: &LogiSession) -> Result<(), AppError> {
        self.tokens.keep(&self.db, login, &HeldTokens::from_grant(grant), Some(session)).await
    }

    /// A fresh logi access token for the login, refreshed single-flight when needed. A
    /// login that ended meanwhile (its tokens went with it) is `Expired`, not `NoTokens`.
    pub async fn access_token(&self, login: &Login) -> Result<SecretString, CustodyError> {
        let authority = self.authority.as_ref().ok_or(CustodyError::NoTokens)?;
        match self.tokens.access_token(&self.db, authority, &login.id, self.refresh_skew_secs).await {
            Err(CustodyError::NoTokens) if self.row(&login.id).await?.is_none() => Err(CustodyError::Expired),
            other => other,
        }
    }

    /// Ends this browser's login and session without asking logi (its tokens are already refused).
    pub async fn sign_out(&self, session: &BrowserSession) -> Result<(), AppError> {
        if let Some(id) = session.login_id().await? {
            self.forget(&id).await?;
        }
        session.end().await
    }

    /// Ends a login whose logi refresh token was refused: a browser's (with its session)
    /// or a device's (its next refresh is `invalid_grant`).
    pub async fn end_refused(&self, login: &Login, session: &BrowserSession) -> Result<(), AppError> {
        self.forget(&login.id).await?;
        if session.login_id().await?.as_ref() == Some(&login.id) {
            session.end().await?;
        }
        Ok(())
    }

    /// Signs this browser out: the login (as the request's extractor found it) and the
    /// session are deleted and the login's refresh token is revoked at logi. True when
    /// the login held logi tokens.
    pub async fn sign_out_and_revoke(&self, session: &BrowserSession, login: Option<&Login>) -> Result<bool, AppError> {
        let held = match login {
            Some(login) => self.tokens.load(&self.db, &login.id).await?,
            None => None,
        };
        self.sign_out(session).await?;
        let Some(held) = held else { return Ok(false) };
        self.revoke(held.refresh_token.into_iter().collect()).await;
        Ok(true)
    }

    /// Ends one of the user's other logins, revoking its refresh token; false when the user has no such login.
    pub async fn end(&self, user_id: UserId, login: &LoginId) -> Result<bool, AppError> {
        let doomed = self.tokens.load(&self.db, login).await?.and_then(|held| held.refresh_token);
        self.rows.remove(login);
        if !store::delete_of_user(&self.db, user_id, login).await? {
            return Ok(false);
        }
        self.revoke(doomed.into_iter().collect()).await;
        Ok(true)
    }

    /// Ends the user's logins (all but `keep`), revoking their refresh tokens at logi.
    pub async fn end_all(&self, user_id: UserId, keep: Option<&LoginId>) -> Result<u64, AppError> {
        let doomed = self.tokens.refresh_tokens_of_user(&self.db, user_id, keep).await?;
        self.rows.retain(|id, row| row.user_id != user_id || Some(id) == keep);
        let ended = store::delete_all_of_user(&self.db, user_id, keep).await?;
        self.revoke(doomed).await;
        Ok(ended)
    }

    /// Ends the logins holding tokens of a logi session (its `sid`) or, with `sub` alone,
    /// of a logi user (browsers and devices), revoking their refresh tokens at logi.
    /// Runs in `tx`, which the caller opened (a back-channel logout records its token
    /// there first), and commits it. Returns how many logins ended.
    pub async fn end_logi_session(&self, mut tx: Tx, sub: Option<&str>, sid: Option<&str>) -> Result<usize, AppError> {
        let ended = self.tokens.of_logi_session(&mut tx, sub, sid).await?;
        let ids: Vec<LoginId> = ended.iter().map(|(id, _)| id.clone()).collect();
        store::delete_in(&mut tx, &ids).await?;
        tx.commit().await?;
        for id in &ids {
            self.rows.remove(id);
            self.users.remove(id);
        }
        self.revoke(ended.into_iter().filter_map(|(_, refresh_token)| refresh_token).collect()).await;
        Ok(ids.len())
    }

    /// The user's live logins (browsers and devices), most recently used first.
    pub async fn list(&self, user_id: UserId) -> Result<Vec<LoginRecord>, AppError> {
        store::list_live(&self.db, user_id, &self.lifetimes, now()).await
    }

    /// Deletes a login row (and its cached copies).
    pub(super) async fn forget(&self, id: &LoginId) -> Result<(), AppError> {
        self.rows.remove(id);
        self.users.remove(id);
        store::delete(&self.db, id).await
    }

    pub(super) async fn revoke(&self, refresh_tokens: Vec<SecretString>) {
        if let Some(authority) = &self.authority {
            tokens::revoke(authority.as_ref(), &refresh_tokens).await;
        }
    }

    /// The `Set-Cookie` that remembers one more login in progress (nothing is stored here).
    pub fn start_pending(&self, request: &HeaderMap, login: PendingLogin) -> HeaderValue {
        self.pending.add(request, login, now())
    }

    /// The login in progress this callback's `state` belongs to, used at most once, and
    /// the `Set-Cookie` for the logins still pending in this browser.
    pub async fn take_pending(&self, request: &HeaderMap, state: Option<&str>) -> Result<(Result<PendingLogin, PendingError>, Option<HeaderValue>), AppError> {
        let (taken, rest) = self.pending.take(request, state, now());
        let Ok(login) = taken else { return Ok((taken, rest)) };
        let (marker, expires_at) = (login.used_marker(), login.started_at + LIFETIME_SECS);
        let sql = "INSERT INTO used_logins (marker, expires_at) VALUES ($1, $2) ON CONFLICT (marker) DO NOTHING";
        let first_use = with_db!(&self.db, pool => sqlx::query(sql).bind(&marker).bind(expires_at).execute(pool).await.map(|done| done.rows_affected()))? == 1;
        Ok((if first_use { Ok(login) } else { Err(PendingError::Expired) }, rest))
    }

    /// Live logins by client kind (`browser`, `device`), for the metrics.
    pub async fn count_live(&self) -> Result<Vec<(String, i64)>, AppError> {
        store::count_live(&self.db, &self.lifetimes, now()).await
    }

    /// Deletes logins past their lifetimes, single-use markers no login can need and old
    /// rotated refresh tokens; rotates the signing key when due (run periodically).
    pub async fn sweep(&self) -> Result<u64, AppError> {
        let now = now();
        let logins = store::delete_expired(&self.db, &self.lifetimes, now).await?;
        let markers = with_db!(&self.db, pool => sqlx::query("DELETE FROM used_logins WHERE expires_at < $1").bind(now).execute(pool).await.map(|done| done.rows_affected()))?;
        Ok(logins + markers + self.sweep_devices(now).await?)
    }

    /// Entries held by the in-process caches (session records, login rows, users,
    /// opened tokens, verified bearers): what tests and the benchmark watch stay flat under anonymous load.
    pub fn cached_entries(&self) -> usize {
        self.sessions.len() + self.rows.len() + self.users.len() + self.tokens.cached_entries() + self.devices.cached_entries()
    }
}
