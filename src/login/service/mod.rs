//! [`Logins`]: the one service that starts, finds and ends logins, of both kinds of
//! client ([`browser`], [`device`]). Held once in the app state; its caches are fields,
//! so two apps in one process never share them.

mod browser;
mod device;

use super::cache::{Expiring, CACHE_TTL};
use super::device::Devices;
use super::pending::PendingCookie;
use super::revocation::Revocations;
use super::session::SessionCache;
use super::step_up::Authentication;
use super::store::{self, Client, Lifetimes, Login, LoginLifetimes, LoginRecord, LoginRow};
use super::tokens::{ApiConsent, Audience, Custody, CustodyError, HeldTokens, LogiSession, TokenAuthority, TokenSet};
use super::User;
use crate::activity::{Event, Events, Occurrence};
use crate::ids::{LoginId, UserId};
use crate::server::config::Config;
use crate::server::db::{Db, Tx};
use crate::server::unix_now as now;
use crate::server::AppError;
use secrecy::SecretString;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// `last_seen_at` is written at most this often: a read per request, a write per minute.
const TOUCH_INTERVAL_SECS: i64 = 60;
const CACHE_CAPACITY: usize = 100_000;
/// Expired logins ended per sweep: each may cost a revocation at logi.
const SWEEP_BATCH: i64 = 1000;

pub use crate::activity::EndReason;

/// What [`Logins::end`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Logins deleted.
    pub logins: u64,
    /// How many of them held logi's tokens.
    pub holding_logi_tokens: usize,
}

pub struct Logins {
    db: Db,
    lifetimes: LoginLifetimes,
    refresh_skew_secs: i64,
    rows: Expiring<LoginId, LoginRow>,
    users: Expiring<LoginId, (UserId, User)>,
    tokens: Arc<Custody>,
    /// logi, for refresh grants; `None` when logi is not configured.
    authority: Option<Arc<dyn TokenAuthority>>,
    /// logi's revocation, in the background; `None` when logi is not configured.
    revocations: Option<Revocations>,
    pending: PendingCookie,
    sessions: SessionCache,
    devices: Devices,
    /// What sign-ins ask logi for on behalf of the declared APIs (set by the proxy's table).
    api_consent: RwLock<Arc<ApiConsent>>,
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
            revocations: authority.clone().map(Revocations::start),
            authority,
            pending: PendingCookie::new(config),
            sessions,
            devices: Devices::new(config),
            api_consent: RwLock::default(),
        }
    }

    /// What every sign-in from now on asks logi for on behalf of the declared APIs.
    pub fn set_api_consent(&self, consent: ApiConsent) {
        *self.api_consent.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(consent);
    }

    pub fn api_consent(&self) -> Arc<ApiConsent> {
        self.api_consent.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The login's row if it is a live one of this kind (its last use recorded, once a
    /// minute); a login past its lifetimes ends.
    async fn live(&self, id: &LoginId, client: Client, now: i64) -> Result<Option<LoginRow>, AppError> {
        let Some(row) = self.row(id).await? else { return Ok(None) };
        if row.client != client {
            return Ok(None);
        }
        if !row.is_live(&self.lifetimes, now) {
            self.end(std::slice::from_ref(id), EndReason::Expired).await?;
            return Ok(None);
        }
        if now - row.last_seen_at < TOUCH_INTERVAL_SECS {
            return Ok(Some(row));
        }
        // A record of use, not a change: when the database cannot take it (full, read-only,
        // down for writes), the login keeps working from what is stored, and the next
        // attempt is a minute away.
        if let Err(error) = store::touch(&self.db, id, now).await {
            _ = error.logged();
        }
        let row = LoginRow { last_seen_at: now, ..row };
        self.rows.insert(id.clone(), row.clone());
        Ok(Some(row))
    }

    async fn row(&self, id: &LoginId) -> Result<Option<LoginRow>, AppError> {
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

    /// Call after changing what [`Logins::user`] returns for `user_id` (profile, linked
    /// identity): its cached user views are dropped.
    pub fn user_changed(&self, user_id: UserId) {
        self.users.retain(|_, (cached, _)| *cached != user_id);
    }

    /// Keeps logi's tokens for this login (a sign-in or a link).
    pub async fn keep_tokens(&self, login: &LoginId, grant: TokenSet, session: &LogiSession) -> Result<(), AppError> {
        self.tokens.keep(&self.db, login, &HeldTokens::from_grant(grant), Some(session)).await
    }

    /// How the person behind this login last authenticated at logi (what a step-up
    /// requirement is checked against); nothing known for a login that ended.
    pub async fn authentication(&self, login: &Login) -> Result<Authentication, AppError> {
        Ok(self.row(&login.id).await?.map(|row| row.authentication()).unwrap_or_default())
    }

    /// A step-up: the login now stands for a stronger or more recent sign-in at logi. In
    /// one transaction its authentication is updated, logi's tokens are replaced by the new
    /// grant's (the per-API tokens of the old one go with them) and a `step_up` event is
    /// written. The login keeps its id, its user and, for a device, its refresh family. The
    /// replaced refresh token is not revoked: a new authorization by the same client for the
    /// same account may continue the same grant at logi, and revoking one refresh token may
    /// end every token of its grant (RFC 7009 §2.1), the new ones too. False when the login
    /// ended meanwhile.
    pub async fn upgrade(&self, login: &Login, authentication: &Authentication, grant: TokenSet, session: &LogiSession) -> Result<bool, AppError> {
        // No refresh of the old grant (here, or on Postgres another replica's, which holds the
        // token row until it commits) can store its rotation over the new tokens.
        let lock = self.tokens.refresh_lock(&login.id);
        let _no_grant_meanwhile = lock.lock().await;
        let mut tx = self.db.begin().await?;
        if !store::set_authentication(&mut tx, &login.id, authentication).await? {
            return Ok(false);
        }
        self.tokens.keep(&mut tx, &login.id, &HeldTokens::from_grant(grant), Some(session)).await?;
        let mut events = Events::default();
        events.record(&mut tx, Occurrence::by(login.user_id, &login.id, Event::StepUp)).await?;
        events.commit(tx).await?;
        self.forget_cached(std::slice::from_ref(&login.id));
        Ok(true)
    }

    /// A fresh logi access token of the login for this API (its own, or one for the API's
    /// resource), obtained single-flight when needed. A login that ended meanwhile (its
    /// tokens went with it) is `Expired`, not `NoTokens`.
    pub async fn access_token(&self, login: &Login, api: (&str, &Audience)) -> Result<SecretString, CustodyError> {
        let authority = self.authority.as_ref().ok_or(CustodyError::NoTokens)?;
        match self.tokens.access_token(&self.db, authority, &login.id, self.refresh_skew_secs, api).await {
            Err(CustodyError::NoTokens) if self.row(&login.id).await?.is_none() => Err(CustodyError::Expired),
            other => other,
        }
    }

    /// The ones of these logins still alive (what an open WebSocket checks).
    pub async fn live_among(&self, ids: &[LoginId]) -> Result<Vec<LoginId>, AppError> {
        store::live_among(&self.db, ids, &self.lifetimes, now()).await
    }

    /// Ends these logins: their rows (and with them their tokens and refresh families) are
    /// deleted with an event each on their user's record, their cached copies dropped, and
    /// their logi refresh tokens revoked unless logi already refused them.
    pub async fn end(&self, ids: &[LoginId], reason: EndReason) -> Result<Ended, AppError> {
        self.end_in(self.db.begin().await?, Events::default(), ids, reason).await
    }

    /// [`Logins::end`] in `tx`, the caller's transaction, which may hold the change that
    /// ends them with its `events`: all of it is committed together, or none.
    async fn end_in(&self, mut tx: Tx, events: Events, ids: &[LoginId], reason: EndReason) -> Result<Ended, AppError> {
        // A write first: on SQLite a transaction that read before writing can fail at once
        // (a busy snapshot) when another connection wrote in between.
        let sealed = store::take_sealed_tokens(&mut tx, ids).await?;
        self.forget_cached(ids);
        let logins = self.delete_recording(tx, events, ids, reason).await?;
        let ended = Ended { logins, holding_logi_tokens: sealed.len() };
        self.finish_ending(ids.len(), sealed, reason);
        Ok(ended)
    }

    /// Deletes the logins in `tx` with a `reason` event for each one that existed, and
    /// commits with the `events` already written there; how many logins there were.
    async fn delete_recording(&self, mut tx: Tx, mut events: Events, ids: &[LoginId], reason: EndReason) -> Result<u64, AppError> {
        let deleted = store::delete(&mut tx, ids).await?;
        // A login ended for reuse first records what was seen.
        let seen = (reason == EndReason::Reused).then_some(Event::RefreshReuseDetected);
        for login in &deleted {
            for event in seen.into_iter().chain([Event::LoginEnded(reason)]) {
                events.record(&mut tx, Occurrence { user_id: login.user_id, login_id: Some(&login.id), device: Some(&login.device), event }).await?;
            }
        }
        events.commit(tx).await?;
        Ok(deleted.len() as u64)
    }

    /// One of the user's logins, ended; false when the user has no such login.
    pub async fn end_of_user(&self, user_id: UserId, id: &LoginId, reason: EndReason) -> Result<bool, AppError> {
        let ids = store::ids_of_user(&self.db, user_id, Some(id), None).await?;
        Ok(self.end(&ids, reason).await?.logins == 1)
    }

    /// Every login of the user but `except`, ended.
    pub async fn end_all_of_user(&self, user_id: UserId, except: Option<&LoginId>, reason: EndReason) -> Result<u64, AppError> {
        let ids = store::ids_of_user(&self.db, user_id, None, except).await?;
        Ok(self.end(&ids, reason).await?.logins)
    }

    /// [`Logins::end_all_of_user`] with the change that ends them (a password change), written
    /// with its `events` in `tx` (which has written already): one commit, so neither lands
    /// without the other.
    pub async fn end_all_of_user_with(
        &self,
        mut tx: Tx,
        events: Events,
        user_id: UserId,
        except: Option<&LoginId>,
        reason: EndReason,
    ) -> Result<u64, AppError> {
        let ids = store::ids_of_user(&mut tx, user_id, None, except).await?;
        Ok(self.end_in(tx, events, &ids, reason).await?.logins)
    }

    /// Ends the logins holding tokens of a logi session (its `sid`) or, with `sub` alone,
    /// of a logi user (browsers and devices). Runs in `tx`, which the caller opened (a
    /// back-channel logout records its token there first), and commits it. How many ended.
    pub async fn end_logi_session(&self, mut tx: Tx, sub: Option<&str>, sid: Option<&str>) -> Result<u64, AppError> {
        let sealed = store::sealed_tokens_of_logi_session(&mut tx, sub, sid).await?;
        let ids: Vec<LoginId> = sealed.iter().map(|(id, _)| id.clone()).collect();
        let ended = self.delete_recording(tx, Events::default(), &ids, EndReason::LogiLogout).await?;
        self.forget_cached(&ids);
        self.finish_ending(ids.len(), sealed, EndReason::LogiLogout);
        Ok(ended)
    }

    fn forget_cached(&self, ids: &[LoginId]) {
        for id in ids {
            self.rows.remove(id);
            self.users.remove(id);
        }
    }

    /// Logs the ending and revokes the logi refresh tokens sealed in `sealed` when `reason` calls for it.
    fn finish_ending(&self, count: usize, sealed: Vec<(LoginId, Vec<u8>)>, reason: EndReason) {
        if count > 0 {
            tracing::info!(count, ?reason, "logins ended");
        }
        if reason.revokes() && !sealed.is_empty() {
            self.revoke_in_background(self.tokens.refresh_tokens(sealed));
        }
    }

    /// Queues logi refresh tokens for revocation (RFC 7009) and returns at once; see
    /// [`Revocations`].
    pub fn revoke_in_background(&self, refresh_tokens: Vec<SecretString>) {
        if let Some(revocations) = &self.revocations {
            revocations.revoke(refresh_tokens);
        }
    }

    /// The user's live logins (browsers and devices), most recently used first.
    pub async fn list(&self, user_id: UserId) -> Result<Vec<LoginRecord>, AppError> {
        store::list_live(&self.db, user_id, &self.lifetimes, now()).await
    }

    /// Live logins by client kind (`browser`, `device`), for the metrics.
    pub async fn count_live(&self) -> Result<Vec<(String, i64)>, AppError> {
        store::count_live(&self.db, &self.lifetimes, now()).await
    }

    /// Ends logins past their lifetimes (revoking their logi refresh tokens, at most
    /// [`SWEEP_BATCH`] a run), deletes single-use markers no login can need and old rotated
    /// refresh tokens; rotates the signing key when due (run periodically).
    pub async fn sweep(&self) -> Result<u64, AppError> {
        self.purge_expired_caches();
        let now = now();
        let expired = store::expired(&self.db, &self.lifetimes, now, SWEEP_BATCH).await?;
        let logins = self.end(&expired, EndReason::Expired).await?.logins;
        let markers = store::delete_used_markers(&self.db, now).await?;
        Ok(logins + markers + self.sweep_devices(now).await?)
    }

    /// Drops what the caches hold past its time to live (run by the sweep).
    fn purge_expired_caches(&self) {
        self.rows.purge_expired();
        self.users.purge_expired();
        self.sessions.purge_expired();
        self.tokens.purge_expired();
        self.devices.purge_expired();
    }

    /// Waits up to `bound` for the refreshes in flight; true when all ended (shutdown).
    pub async fn finish_refreshes(&self, bound: Duration) -> bool {
        self.tokens.finish_refreshes(bound).await
    }

    /// Entries held by the in-process caches (session records, login rows, users,
    /// opened tokens, verified bearers): what tests and the benchmark watch stay flat under anonymous load.
    pub fn cached_entries(&self) -> usize {
        self.sessions.len() + self.rows.len() + self.users.len() + self.tokens.cached_entries() + self.devices.cached_entries()
    }
}
