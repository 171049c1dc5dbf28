//! Token custody: logi's tokens for each login, sealed at rest, and the single-flight
//! refresh that keeps the access token fresh.
//!
//! The key is derived from `SESSION_SECRET` with its own HKDF label. A row that does
//! not decrypt (the secret was rotated, the row was tampered with) reads as "no
//! tokens": that client must sign in again, nothing crashes.
//!
//! logi rotates refresh tokens and revokes the whole family when an old one is used
//! again, so two refreshes of one login must never race: each login has a lock, the
//! refresh happens under it, and the rotated tokens are stored before it is released.
//! Requests that waited reread the row and use the fresh access token. The refresh runs
//! in its own task, so it completes (and stores the rotated tokens) even when the
//! request that started it is dropped.

use super::cache::{Expiring, CACHE_TTL};
use super::store::{self, SealedTokens};
use crate::ids::LoginId;
use crate::server::crypto::Sealer;
use crate::server::db::{Db, Exec};
use crate::server::unix_now as now;
use crate::server::{AppError, Failure};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use zeroize::Zeroizing;

/// How long a refresh waits for another replica's refresh of the same login (Postgres'
/// row lock); longer than logi's timeout, and a replica that dies frees the lock.
const ROW_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Assumed access-token lifetime when the provider does not say (`expires_in`).
const DEFAULT_LIFETIME_SECS: i64 = 300;

/// A token endpoint response, held as secrets (never printed or serialised).
#[derive(Clone, Deserialize)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub token_type: String,
    pub id_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// Lifetime of the access token in seconds.
    pub expires_in: Option<u64>,
    /// The scope granted, when it differs from the one asked for (RFC 6749 §5.1).
    #[serde(default)]
    pub scope: Option<String>,
}

/// Why a token request failed.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// The provider answered with this status and OAuth `error` code.
    Refused {
        status: u16,
        error: String,
    },
    /// The provider answered 2xx with something that is not a bearer token set.
    Malformed(u16),
    Unreachable,
    NoClientSecret,
}

/// Why a revocation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("no client secret to authenticate with")]
    NoClientSecret,
    #[error("logi's endpoints are unknown (discovery failed)")]
    NoEndpoints,
    #[error("{0}")]
    Unreachable(String),
    #[error("revocation answered {0}")]
    Refused(u16),
}

/// What custody needs from the provider: refresh grants and revocation (and the proxy, the
/// app's own client-credentials token). Implemented
/// by the logi client in `auth`, so this module does not depend on the protocol code.
#[async_trait]
pub trait TokenAuthority: Send + Sync {
    /// Trades a refresh token for a new token set (logi rotates the refresh token); with an
    /// audience that names a resource or scopes, for that resource and those scopes.
    async fn refresh(&self, refresh_token: &SecretString, audience: &Audience) -> Result<TokenSet, TokenError>;
    /// Revokes a refresh token (RFC 7009); true when the provider did, false when it
    /// offers no revocation.
    async fn revoke(&self, refresh_token: &SecretString) -> Result<bool, RevocationError>;
    /// Our own access token (the client-credentials grant), for APIs called as the app.
    async fn client_credentials(&self, audience: &Audience) -> Result<TokenSet, TokenError>;
}

/// What a declared API's token is for: an RFC 8707 resource, and the scopes the API needs.
/// Without a resource the API takes the login's own access token, whose granted scope must
/// still cover the scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Audience {
    pub resource: Option<String>,
    pub scopes: Vec<String>,
}

impl Audience {
    /// The `scope` parameter of a grant for this audience (`None`: ask for the grant's own).
    pub fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(" "))
    }
}

/// What every sign-in asks logi for on behalf of the declared APIs that take a user's
/// token, so one consent covers them all: their resources (RFC 8707 §2.1) and scopes; and
/// what a step-up may ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiConsent {
    pub resources: Vec<String>,
    pub scopes: Vec<String>,
    /// The step-up requirements the APIs declare: the only ones a sign-in may ask for.
    pub step_ups: Vec<super::step_up::Requirement>,
}

/// One access token and what is known about it.
#[derive(Clone)]
pub struct AccessToken {
    pub secret: SecretString,
    /// Unix time it expires.
    pub expires_at: i64,
    /// How long it lived when it was issued (`expires_in`).
    pub lifetime_secs: i64,
    /// The scope granted; `None` when logi did not say (then it is the one asked for).
    pub scope: Option<String>,
}

impl AccessToken {
    /// The access token of a grant; `asked` is the scope requested, which a response
    /// without `scope` was granted (RFC 6749 §5.1).
    pub fn granted(tokens: &TokenSet, asked: Option<String>) -> Self {
        let lifetime_secs = lifetime(tokens.expires_in);
        Self { secret: tokens.access_token.clone(), expires_at: now() + lifetime_secs, lifetime_secs, scope: tokens.scope.clone().or(asked) }
    }

    /// True unless it expires within `skew_secs` — capped at half its own lifetime, so a
    /// provider issuing tokens shorter than the skew does not turn every call into a grant.
    pub fn is_fresh(&self, skew_secs: i64) -> bool {
        self.expires_at - skew_secs.min(self.lifetime_secs / 2) > now()
    }

    /// Its secret, if its granted scope holds every one of `scopes` (an unknown scope is
    /// taken as granted: logi was asked for them and answered without narrowing it).
    pub fn secret_for(&self, scopes: &[String]) -> Option<SecretString> {
        let covered = self.scope.as_ref().is_none_or(|granted| scopes.iter().all(|wanted| granted.split(' ').any(|scope| scope == wanted)));
        covered.then(|| self.secret.clone())
    }
}

/// The tokens of one login, in memory while a request needs them (and for half a second in
/// the custody's cache, so a burst of API calls decrypts once): logi's refresh and id token,
/// the login's own access token, and one access token per declared API with a `resource`.
#[derive(Clone)]
pub struct HeldTokens {
    pub access: AccessToken,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    /// By API name, each with the audience it was granted for.
    pub for_apis: BTreeMap<String, (Audience, AccessToken)>,
}

impl HeldTokens {
    pub fn from_grant(tokens: TokenSet) -> Self {
        Self { access: AccessToken::granted(&tokens, None), refresh_token: tokens.refresh_token, id_token: tokens.id_token, for_apis: BTreeMap::new() }
    }

    /// The access token kept for this API's audience (the login's own without a resource).
    fn token_for(&self, api: &str, audience: &Audience) -> Option<&AccessToken> {
        if audience.resource.is_none() {
            return Some(&self.access);
        }
        self.for_apis.get(api).filter(|(granted_for, _)| granted_for == audience).map(|(_, token)| token)
    }

    /// The fresh token for this API, if there is one; refused when its scope falls short.
    fn fresh_for(&self, api: &str, audience: &Audience, skew_secs: i64) -> Result<Option<SecretString>, CustodyError> {
        let fresh = self.token_for(api, audience).filter(|token| token.is_fresh(skew_secs));
        fresh.map(|token| token.secret_for(&audience.scopes).ok_or(CustodyError::InsufficientScope)).transpose()
    }

    /// The tokens after a refresh grant for this API's audience: a response without a new
    /// refresh token keeps the old one; the id token is the sign-in's.
    fn refreshed(mut self, tokens: TokenSet, api: &str, audience: &Audience) -> Self {
        if let Some(rotated) = tokens.refresh_token.clone() {
            self.refresh_token = Some(rotated);
        }
        if audience.resource.is_none() {
            // Without `scope` in the answer, a refresh keeps the grant's scope.
            let scope = self.access.scope.take();
            self.access = AccessToken::granted(&tokens, scope);
        } else {
            self.for_apis.insert(api.to_owned(), (audience.clone(), AccessToken::granted(&tokens, audience.scope_param())));
        }
        self
    }
}

/// What a refused grant means for the login. Only logi's word that the grant is dead
/// (`invalid_grant`: expired, revoked, family revoked) ends it; a resource or scope it will
/// not grant refuses the one API; anything else (our client, throttling, a page that is not
/// logi's, garbage) is logi's trouble, and the login is kept.
fn refusal(error: TokenError, audience: &Audience) -> CustodyError {
    match error {
        TokenError::Refused { status, .. } if status >= 500 => CustodyError::ProviderUnavailable,
        TokenError::Refused { error, .. } if error == "invalid_grant" => CustodyError::Expired,
        TokenError::Refused { error, .. } if error == "invalid_target" && audience.resource.is_some() => CustodyError::ResourceNotGranted,
        TokenError::Refused { error, .. } if error == "invalid_scope" && !audience.scopes.is_empty() => CustodyError::InsufficientScope,
        TokenError::Refused { .. } | TokenError::Malformed(_) | TokenError::Unreachable => CustodyError::ProviderUnavailable,
        TokenError::NoClientSecret => CustodyError::Failed(Failure::Internal),
    }
}

/// How many bytes `value` takes as JSON, counted without writing them anywhere.
fn json_len(value: &impl Serialize) -> Result<usize, serde_json::Error> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value)?;
    Ok(count.0)
}

fn lifetime(expires_in: Option<u64>) -> i64 {
    expires_in.map_or(DEFAULT_LIFETIME_SECS, |secs| secs.min(i64::MAX as u64 / 4) as i64)
}

/// The plaintext inside a sealed row; it only ever exists in a buffer sized up front
/// (so it is never copied by a reallocation) and wiped when dropped.
#[derive(Serialize)]
struct PlainOut<'a> {
    access_token: &'a str,
    refresh_token: Option<&'a str>,
    id_token: Option<&'a str>,
    expires_at: i64,
    lifetime_secs: i64,
    scope: Option<&'a str>,
    apis: Vec<PlainApiOut<'a>>,
}

#[derive(Serialize)]
struct PlainApiOut<'a> {
    api: &'a str,
    resource: Option<&'a str>,
    scopes: &'a [String],
    access_token: &'a str,
    expires_at: i64,
    lifetime_secs: i64,
    scope: Option<&'a str>,
}

#[derive(Deserialize)]
struct PlainIn {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    id_token: Option<SecretString>,
    expires_at: i64,
    /// Absent in rows sealed before it was kept.
    lifetime_secs: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    apis: Vec<PlainApiIn>,
}

#[derive(Deserialize)]
struct PlainApiIn {
    api: String,
    resource: Option<String>,
    scopes: Vec<String>,
    access_token: SecretString,
    expires_at: i64,
    lifetime_secs: i64,
    scope: Option<String>,
}

/// Why no fresh access token could be had.
#[derive(Debug, PartialEq, Eq)]
pub enum CustodyError {
    /// This login holds no logi tokens (a password sign-in, or they did not decrypt).
    NoTokens,
    /// The refresh token was refused (expired, revoked, family revoked): sign in again.
    Expired,
    /// logi could not be asked; the session is kept.
    ProviderUnavailable,
    /// logi refused the API's resource (`invalid_target`): the login's grant does not cover
    /// it (the API was declared after the sign-in). The login is kept.
    ResourceNotGranted,
    /// The token's granted scope lacks one the API needs (or logi refused to grant it).
    InsufficientScope,
    Failed(Failure),
}

impl From<AppError> for CustodyError {
    fn from(error: AppError) -> Self {
        Self::Failed(error.logged())
    }
}

/// The logi user and logi session (`sid`, when logi sent one) a grant was issued in:
/// what a back-channel logout names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogiSession {
    pub sub: String,
    pub sid: Option<String>,
}

pub struct Custody {
    sealer: Sealer,
    refresh_locks: Mutex<HashMap<LoginId, Weak<tokio::sync::Mutex<()>>>>,
    /// Opened rows by login id; written through by [`Custody::keep`]. An ended login is
    /// refused before its tokens are looked up, so a stale entry is never used.
    opened: Expiring<LoginId, HeldTokens>,
    /// Refreshes in flight, which shutdown lets finish.
    refreshes: tokio_util::task::TaskTracker,
}

impl Custody {
    pub fn new(session_secret: &SecretString) -> Self {
        Self {
            sealer: Sealer::new(session_secret, "logi-bff/token-custody/v1"),
            refresh_locks: Mutex::default(),
            opened: Expiring::new(100_000, CACHE_TTL),
            refreshes: tokio_util::task::TaskTracker::new(),
        }
    }

    pub fn purge_expired(&self) {
        self.opened.purge_expired();
    }

    /// Waits up to `bound` for the refreshes in flight (a refresh cut short after logi
    /// rotated the refresh token would lose the login's token family); true when all ended.
    pub async fn finish_refreshes(&self, bound: std::time::Duration) -> bool {
        self.refreshes.close();
        tokio::time::timeout(bound, self.refreshes.wait()).await.is_ok()
    }

    /// Keeps the tokens of a login (or replaces them), on the pool or in the caller's
    /// transaction, with the logi session they belong to when they come from a new grant
    /// (`None` for a refresh keeps the stored one).
    pub async fn keep<'c>(&self, on: impl Into<Exec<'c>>, login_id: &LoginId, tokens: &HeldTokens, session: Option<&LogiSession>) -> Result<(), AppError> {
        let sealed = self.seal(login_id, tokens)?;
        let (logi_sub, logi_sid) = session.map_or((None, None), |session| (Some(session.sub.as_str()), session.sid.as_deref()));
        store::keep_tokens(on, login_id, &SealedTokens { sealed: &sealed, logi_sub, logi_sid }, now()).await?;
        self.opened.insert(login_id.clone(), tokens.clone());
        Ok(())
    }

    /// The login's tokens; `None` when there are none or they do not decrypt.
    pub async fn load(&self, db: &Db, login_id: &LoginId) -> Result<Option<HeldTokens>, AppError> {
        if let Some(held) = self.opened.get(login_id) {
            return Ok(Some(held));
        }
        Ok(self.opened_row(login_id, store::sealed_tokens(db, None, login_id).await?))
    }

    /// A stored row opened (and remembered); `None` when absent or it does not decrypt.
    fn opened_row(&self, login_id: &LoginId, sealed: Option<Vec<u8>>) -> Option<HeldTokens> {
        let opened = sealed.and_then(|sealed| {
            let opened = self.open(login_id, &sealed);
            if opened.is_none() {
                tracing::warn!("stored tokens do not decrypt (SESSION_SECRET rotated?); treating the login as signed out of logi");
            }
            opened
        });
        if let Some(held) = &opened {
            self.opened.insert(login_id.clone(), held.clone());
        }
        opened
    }

    /// The refresh tokens sealed for these logins (read before they end).
    pub fn refresh_tokens(&self, sealed: Vec<(LoginId, Vec<u8>)>) -> Vec<SecretString> {
        sealed.into_iter().filter_map(|(login_id, sealed)| self.open(&login_id, &sealed)?.refresh_token).collect()
    }

    /// A fresh access token of the login for this API (the login's own, or the one for its
    /// resource), getting a new one first when it expires within `skew_secs`, at most one
    /// grant per login at a time; refused when its granted scope falls short of the API's.
    pub async fn access_token(
        self: &Arc<Self>,
        db: &Db,
        authority: &Arc<dyn TokenAuthority>,
        login_id: &LoginId,
        skew_secs: i64,
        (api, audience): (&str, &Audience),
    ) -> Result<SecretString, CustodyError> {
        let held = self.load(db, login_id).await?.ok_or(CustodyError::NoTokens)?;
        if let Some(token) = held.fresh_for(api, audience, skew_secs)? {
            return Ok(token);
        }
        // The grant runs in a task of its own: a client that disconnects must not cancel
        // it after logi has rotated the refresh token but before the new one is stored.
        let (custody, db, authority, login_id) = (self.clone(), db.clone(), authority.clone(), login_id.clone());
        let (api, audience) = (api.to_owned(), audience.clone());
        let refresh = self.refreshes.spawn(async move { custody.refresh(&db, authority.as_ref(), &login_id, skew_secs, (&api, &audience)).await });
        refresh.await.unwrap_or_else(|panicked| {
            tracing::error!(%panicked, "the refresh task failed");
            Err(CustodyError::Failed(Failure::Internal))
        })
    }

    /// Under the login's lock: rereads the tokens (whoever held the lock before may have
    /// refreshed already), else trades the refresh token (for the API's resource and scopes,
    /// when it has a resource) and stores the rotated one with the new access token. Every
    /// grant of a login, for any API, takes this one lock: logi rotates the one refresh token
    /// on each. On Postgres the lock is also the row's (`FOR UPDATE`, held across the
    /// provider call), so replicas queue behind one grant and read its committed tokens.
    async fn refresh(
        &self,
        db: &Db,
        authority: &dyn TokenAuthority,
        login_id: &LoginId,
        skew_secs: i64,
        (api, audience): (&str, &Audience),
    ) -> Result<SecretString, CustodyError> {
        let lock = self.refresh_lock(login_id);
        let _refreshing = lock.lock().await;
        let mut row_lock = db.begin_row_locks(ROW_LOCK_TIMEOUT).await.map_err(AppError::from)?;
        let sealed = store::sealed_tokens(db, row_lock.as_mut(), login_id).await?;
        let held = self.opened_row(login_id, sealed).ok_or(CustodyError::NoTokens)?;
        if let Some(token) = held.fresh_for(api, audience, skew_secs)? {
            return Ok(token);
        }
        let refresh_token = held.refresh_token.as_ref().ok_or(CustodyError::Expired)?;
        let answer = authority.refresh(refresh_token, audience).await;
        let outcome = match &answer {
            Ok(_) => "success",
            Err(TokenError::Refused { status, .. }) if *status < 500 => "refused",
            Err(_) => "failed",
        };
        ::metrics::counter!("logi_bff_token_refreshes_total", "outcome" => outcome).increment(1);
        let refreshed = match answer {
            Ok(tokens) => held.refreshed(tokens, api, audience),
            Err(error) => return Err(refusal(error, audience)),
        };
        match row_lock {
            Some(mut tx) => {
                self.keep(&mut tx, login_id, &refreshed, None).await?;
                tx.commit().await.map_err(AppError::from)?;
            }
            None => self.keep(db, login_id, &refreshed, None).await?,
        }
        // Stored first: the rotated refresh token is kept even when the scope falls short.
        let token = refreshed.token_for(api, audience).ok_or(CustodyError::ProviderUnavailable)?;
        token.secret_for(&audience.scopes).ok_or(CustodyError::InsufficientScope)
    }

    pub fn cached_entries(&self) -> usize {
        self.opened.len()
    }

    /// The lock every grant of this login takes in this process.
    pub(in crate::login) fn refresh_lock(&self, login_id: &LoginId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refresh_locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(lock) = locks.get(login_id).and_then(Weak::upgrade) {
            return lock;
        }
        // Locks nobody holds any more are dropped while we are here.
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(login_id.clone(), Arc::downgrade(&lock));
        lock
    }

    fn seal(&self, login_id: &LoginId, tokens: &HeldTokens) -> Result<Vec<u8>, AppError> {
        let apis = tokens
            .for_apis
            .iter()
            .map(|(api, (audience, token))| PlainApiOut {
                api,
                resource: audience.resource.as_deref(),
                scopes: &audience.scopes,
                access_token: token.secret.expose_secret(),
                expires_at: token.expires_at,
                lifetime_secs: token.lifetime_secs,
                scope: token.scope.as_deref(),
            })
            .collect::<Vec<_>>();
        let plain = PlainOut {
            access_token: tokens.access.secret.expose_secret(),
            refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
            id_token: tokens.id_token.as_ref().map(|t| t.expose_secret()),
            expires_at: tokens.access.expires_at,
            lifetime_secs: tokens.access.lifetime_secs,
            scope: tokens.access.scope.as_deref(),
            apis,
        };
        let failed = |e: serde_json::Error| AppError::Internal(format!("seal: {e}"));
        // Sized exactly up front (a first pass only counts), so the buffer never moves.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(json_len(&plain).map_err(failed)?));
        serde_json::to_writer(&mut *plaintext, &plain).map_err(failed)?;
        Ok(self.sealer.seal(login_id.as_str().as_bytes(), &plaintext))
    }

    fn open(&self, login_id: &LoginId, sealed: &[u8]) -> Option<HeldTokens> {
        let plaintext = self.sealer.open(login_id.as_str().as_bytes(), sealed)?;
        let plain: PlainIn = serde_json::from_slice(plaintext.expose_secret()).ok()?;
        let for_apis = plain
            .apis
            .into_iter()
            .map(|api| {
                let token = AccessToken { secret: api.access_token, expires_at: api.expires_at, lifetime_secs: api.lifetime_secs, scope: api.scope };
                (api.api, (Audience { resource: api.resource, scopes: api.scopes }, token))
            })
            .collect();
        Some(HeldTokens {
            access: AccessToken {
                secret: plain.access_token,
                expires_at: plain.expires_at,
                lifetime_secs: plain.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS),
                scope: plain.scope,
            },
            refresh_token: plain.refresh_token,
            id_token: plain.id_token,
            for_apis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_counts_what_serialising_writes() {
        let escaped = serde_json::json!({ "token": "a\"b\\c\u{1}é", "n": 42, "list": ["x", null] });
        assert_eq!(json_len(&escaped).unwrap(), serde_json::to_vec(&escaped).unwrap().len());
    }
}
