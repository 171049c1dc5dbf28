//! Token custody: logi's tokens for each login, sealed at rest, and the single-flight
//! refresh that keeps the access token fresh (server only).
//!
//! The key is derived from `SESSION_SECRET` with its own HKDF label. A row that does
//! not decrypt (the secret was rotated, the row was tampered with) reads as "no
//! tokens": that browser must sign in again, nothing crashes.
//!
//! logi rotates refresh tokens and revokes the whole family when an old one is used
//! again, so two refreshes of one login must never race: each login has a lock, the
//! refresh happens under it, and the rotated tokens are stored before it is released.
//! Requests that waited reread the row and use the fresh access token.

use crate::auth::oidc::{Provider, TokenError, TokenSet};
use crate::server::cache::TtlCache;
use crate::server::AppError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use time::OffsetDateTime;

const NONCE_LEN: usize = 24;
/// Assumed access-token lifetime when the provider does not say (`expires_in`).
const DEFAULT_LIFETIME_SECS: i64 = 300;

/// The tokens of one login, in memory while a request needs them (and for a second in
/// the custody's cache, so a burst of API calls decrypts once).
#[derive(Clone)]
pub struct HeldTokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    /// Unix time the access token expires.
    pub expires_at: i64,
}

impl HeldTokens {
    pub fn from_login(tokens: TokenSet) -> Self {
        Self {
            expires_at: expiry(tokens.expires_in),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            id_token: tokens.id_token,
        }
    }

    /// The tokens after a refresh: a response without a new refresh token (or id_token)
    /// keeps the old one.
    fn refreshed(self, tokens: TokenSet) -> Self {
        Self {
            expires_at: expiry(tokens.expires_in),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token.or(self.refresh_token),
            id_token: self.id_token,
        }
    }

    fn is_fresh(&self, skew_secs: i64) -> bool {
        self.expires_at - skew_secs > now()
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn expiry(expires_in: Option<u64>) -> i64 {
    now() + expires_in.map_or(DEFAULT_LIFETIME_SECS, |secs| secs.min(i64::MAX as u64 / 2) as i64)
}

/// The plaintext inside a sealed row; it only ever exists inside a zeroised buffer.
#[derive(Serialize)]
struct PlainOut<'a> {
    access_token: &'a str,
    refresh_token: Option<&'a str>,
    id_token: Option<&'a str>,
    expires_at: i64,
}

#[derive(Deserialize)]
struct PlainIn {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    id_token: Option<SecretString>,
    expires_at: i64,
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
    Internal,
}

impl From<AppError> for CustodyError {
    fn from(error: AppError) -> Self {
        error.logged();
        Self::Internal
    }
}

pub struct Custody {
    cipher: XChaCha20Poly1305,
    refresh_locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Opened rows by login id; written through by [`Custody::keep`]. An ended login is
    /// refused before its tokens are looked up, so a stale entry is never used.
    opened: TtlCache<String, HeldTokens>,
}

impl Custody {
    pub fn new(session_secret: &SecretString) -> Self {
        let mut key = SecretBox::new(Box::new([0u8; 32]));
        Hkdf::<Sha256>::new(None, session_secret.expose_secret().as_bytes())
            .expand(b"logi-bff/token-custody/v1", key.expose_secret_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            cipher: XChaCha20Poly1305::new(key.expose_secret().into()),
            refresh_locks: Mutex::default(),
            opened: TtlCache::new(std::time::Duration::from_secs(1), 100_000),
        }
    }

    /// Keeps the tokens of a new login (or replaces them).
    pub async fn keep(&self, pool: &SqlitePool, login_id: &str, tokens: &HeldTokens) -> Result<(), AppError> {
        let sealed = self.seal(login_id, tokens)?;
        sqlx::query(
            "INSERT INTO login_tokens (login_id, sealed) VALUES (?, ?)
             ON CONFLICT (login_id) DO UPDATE SET sealed = excluded.sealed, updated_at = unixepoch()",
        )
        .bind(login_id)
        .bind(sealed)
        .execute(pool)
        .await?;
        self.opened.insert(login_id.to_owned(), tokens.clone());
        Ok(())
    }

    /// The login's tokens; `None` when there are none or they do not decrypt.
    pub async fn load(&self, pool: &SqlitePool, login_id: &str) -> Result<Option<HeldTokens>, AppError> {
        if let Some(held) = self.opened.get(login_id) {
            return Ok(Some(held));
        }
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM login_tokens WHERE login_id = ?").bind(login_id).fetch_optional(pool).await?;
        let opened = sealed.and_then(|sealed| {
            let opened = self.open(login_id, &sealed);
            if opened.is_none() {
                tracing::warn!("stored tokens do not decrypt (SESSION_SECRET rotated?); treating the login as signed out of logi");
            }
            opened
        });
        if let Some(held) = &opened {
            self.opened.insert(login_id.to_owned(), held.clone());
        }
        Ok(opened)
    }

    /// The refresh tokens of the user's logins (except `keep`), read before those logins end.
    pub async fn refresh_tokens_of_user(&self, pool: &SqlitePool, user_id: i64, keep: Option<&str>) -> Result<Vec<SecretString>, AppError> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT t.login_id, t.sealed FROM login_tokens t JOIN logins l ON l.id = t.login_id WHERE l.user_id = ? AND l.id IS NOT ?",
        )
        .bind(user_id)
        .bind(keep)
        .fetch_all(pool)
        .await?;
        Ok(rows.iter().filter_map(|(login_id, sealed)| self.open(login_id, sealed)?.refresh_token).collect())
    }

    /// A fresh access token for the login, refreshing it first when it expires within
    /// `skew_secs`, at most one refresh per login at a time.
    pub async fn access_token(&self, pool: &SqlitePool, provider: &Provider, login_id: &str, skew_secs: i64) -> Result<SecretString, CustodyError> {
        let held = self.load(pool, login_id).await?.ok_or(CustodyError::NoTokens)?;
        if held.is_fresh(skew_secs) {
            return Ok(held.access_token);
        }
        let lock = self.refresh_lock(login_id);
        let _refreshing = lock.lock().await;
        // Whoever held the lock before us may have refreshed already.
        let held = self.load(pool, login_id).await?.ok_or(CustodyError::NoTokens)?;
        if held.is_fresh(skew_secs) {
            return Ok(held.access_token);
        }
        let refresh_token = held.refresh_token.as_ref().ok_or(CustodyError::Expired)?;
        match provider.refresh(refresh_token).await {
            Ok(tokens) => {
                let held = held.refreshed(tokens);
                self.keep(pool, login_id, &held).await?;
                Ok(held.access_token)
            }
            Err(TokenError::Refused { status, .. }) if status >= 500 => Err(CustodyError::ProviderUnavailable),
            Err(TokenError::Unreachable) => Err(CustodyError::ProviderUnavailable),
            // invalid_grant (expired, revoked, family revoked) and anything else refused.
            Err(TokenError::Refused { .. } | TokenError::Malformed(_)) => Err(CustodyError::Expired),
            Err(TokenError::NoClientSecret) => Err(CustodyError::Internal),
        }
    }

    fn refresh_lock(&self, login_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refresh_locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(lock) = locks.get(login_id).and_then(Weak::upgrade) {
            return lock;
        }
        // Locks nobody holds any more are dropped while we are here.
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(login_id.to_owned(), Arc::downgrade(&lock));
        lock
    }

    fn seal(&self, login_id: &str, tokens: &HeldTokens) -> Result<Vec<u8>, AppError> {
        let plain = PlainOut {
            access_token: tokens.access_token.expose_secret(),
            refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
            id_token: tokens.id_token.as_ref().map(|t| t.expose_secret()),
            expires_at: tokens.expires_at,
        };
        let plaintext = SecretString::from(serde_json::to_string(&plain).map_err(|e| AppError::Internal(format!("seal: {e}")))?);
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ciphertext = self
            .cipher
            .encrypt(nonce, Payload { msg: plaintext.expose_secret().as_bytes(), aad: login_id.as_bytes() })
            .map_err(|_| AppError::Internal("seal: encryption failed".into()))?;
        Ok([nonce_bytes.as_slice(), &ciphertext].concat())
    }

    fn open(&self, login_id: &str, sealed: &[u8]) -> Option<HeldTokens> {
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plaintext = self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: login_id.as_bytes() }).ok()?;
        let plaintext = SecretBox::new(plaintext.into_boxed_slice());
        let plain: PlainIn = serde_json::from_slice(plaintext.expose_secret()).ok()?;
        Some(HeldTokens { access_token: plain.access_token, refresh_token: plain.refresh_token, id_token: plain.id_token, expires_at: plain.expires_at })
    }
}

/// Revokes refresh tokens at logi (RFC 7009), best effort: failures are logged and
/// the caller's sign-out goes ahead anyway.
pub async fn revoke(provider: &Provider, refresh_tokens: &[SecretString]) {
    for token in refresh_tokens {
        match provider.revoke_refresh_token(token).await {
            Ok(true) => tracing::info!("refresh token revoked at logi"),
            Ok(false) => tracing::debug!("logi advertises no revocation endpoint"),
            Err(error) => tracing::warn!(%error, "could not revoke a refresh token at logi"),
        }
    }
}

#[cfg(test)]
#[path = "custody_tests.rs"]
mod tests;
