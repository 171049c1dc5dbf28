//! Native apps' devices: a device is a login like a browser's, holding logi's tokens
//! the same way, but it proves itself with our own tokens instead of a cookie: a short
//! ES256 access token (RFC 9068) and a rotating refresh token (one family per device).
//! logi's tokens never leave the server.

mod keys;
pub mod refresh;

use super::cache::Expiring;
use super::service::{Login, Logins};
use super::store::{self, Client, Method};
use super::tokens::{HeldTokens, LogiSession, TokenSet};
use crate::ids::{LoginId, UserId};
use crate::server::config::Config;
use crate::server::crypto::sha256;
use crate::server::db::{Db, Tx};
use crate::server::AppError;
use keys::SigningKeys;
use refresh::Rotation;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `exp` and `iat` are checked with this much clock skew allowed.
const LEEWAY_SECS: i64 = 60;
/// Longer than any access token we issue; a longer bearer is refused before parsing.
const MAX_BEARER_BYTES: usize = 4096;
const UNNAMED_DEVICE: &str = "Native app";
/// A verified token is trusted from memory this long (its `exp` is still checked at each
/// use): an ES256 verification costs ~10× a whole cookie-authenticated request.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_CAPACITY: usize = 100_000;

/// What a device receives: our tokens, never logi's.
pub struct DeviceTokens {
    pub access_token: SecretString,
    pub expires_in: i64,
    pub refresh_token: SecretString,
    pub refresh_expires_in: i64,
}

/// Our access tokens: issued for device logins, checked on every bearer request.
pub struct Devices {
    /// False without `NATIVE_REDIRECT_URIS`: no keys are made and no bearer is accepted.
    enabled: bool,
    keys: SigningKeys,
    issuer: String,
    audience: String,
    client_id: String,
    access_lifetime_secs: i64,
    /// SHA-256 of tokens that passed every check → what they stand for and their `exp`.
    /// Only valid tokens get in, so garbage bearers cannot grow it.
    verified: Expiring<[u8; 32], (Login, i64)>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    sid: &'a str,
    client_id: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// The claims a presented token must carry (RFC 9068 §2.2), all required.
#[derive(Deserialize)]
struct PresentedClaims {
    iss: String,
    aud: Audience,
    sub: String,
    sid: String,
    client_id: String,
    iat: i64,
    exp: i64,
    #[serde(rename = "jti")]
    _jti: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|one| one == audience),
        }
    }
}

impl Devices {
    pub fn new(config: &Config) -> Self {
        Self {
            enabled: config.native.enabled(),
            keys: SigningKeys::new(&config.session_secret),
            issuer: config.issuer(),
            audience: config.native.audience.clone(),
            client_id: config.logi.as_ref().map(|logi| logi.client_id.clone()).unwrap_or_default(),
            access_lifetime_secs: config.native.access_token_lifetime.as_secs() as i64,
            verified: Expiring::new(VERIFIED_CAPACITY, VERIFIED_TTL),
        }
    }

    /// Loads the signing keys, creating or rotating them as needed (startup and sweeps).
    pub async fn maintain_keys(&self, db: &Db, now: i64) -> Result<(), AppError> {
        if !self.enabled {
            return Ok(());
        }
        self.keys.maintain(db, now).await
    }

    /// Replaces the signing key now (the old one stays published while its tokens live).
    pub async fn rotate_keys(&self, db: &Db, now: i64) -> Result<(), AppError> {
        self.keys.rotate(db, now).await
    }

    /// `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> String {
        self.keys.jwks()
    }

    pub(super) fn cached_entries(&self) -> usize {
        self.verified.len()
    }

    fn access_token(&self, login: &Login, now: i64) -> Result<SecretString, AppError> {
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: login.user_id.0.to_string(),
            sid: login.id.as_str(),
            client_id: &self.client_id,
            iat: now,
            exp: now + self.access_lifetime_secs,
            jti: hex::encode(rand::random::<[u8; 16]>()),
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| AppError::Internal(format!("access token claims: {e}")))?;
        let token = self.keys.sign_jws("at+jwt", &payload).ok_or_else(|| AppError::Internal("no signing key loaded".into()))?;
        Ok(SecretString::from(token))
    }

    /// The login a bearer access token names, if the token is ours and valid now: ES256
    /// exactly, `typ` at+jwt, a published `kid`, a good signature, our `iss`, our
    /// `aud`, `exp` not passed and `iat` not ahead (60 s leeway). Whether the login is
    /// still live is the caller's check.
    async fn verify(&self, db: &Db, token: &str, now: i64) -> Result<Result<Login, &'static str>, AppError> {
        if !self.enabled {
            return Ok(Err("native apps are not enabled"));
        }
        if token.len() > MAX_BEARER_BYTES {
            return Ok(Err("too long"));
        }
        let digest = sha256(token.as_bytes());
        if let Some((login, exp)) = self.verified.get(&digest) {
            return Ok(if now <= exp + LEEWAY_SECS { Ok(login) } else { Err("expired") });
        }
        let payload = match self.keys.verify_jws(db, token, &["at+jwt", "application/at+jwt"]).await? {
            Ok(payload) => payload,
            Err(why) => return Ok(Err(why)),
        };
        let Ok(claims) = serde_json::from_slice::<PresentedClaims>(&payload) else { return Ok(Err("bad claims")) };
        let checks = [
            (claims.iss == self.issuer, "iss"),
            (claims.aud.contains(&self.audience), "aud"),
            (claims.client_id == self.client_id, "client_id"),
            (now <= claims.exp + LEEWAY_SECS, "expired"),
            (claims.iat <= now + LEEWAY_SECS, "issued in the future"),
        ];
        if let Some((_, failed)) = checks.iter().find(|(passed, _)| !passed) {
            return Ok(Err(failed));
        }
        let Ok(user_id) = claims.sub.parse::<i64>() else { return Ok(Err("sub")) };
        let login = Login { id: LoginId::from_untrusted(&claims.sid), user_id: UserId(user_id) };
        self.verified.insert(digest, (login.clone(), claims.exp));
        Ok(Ok(login))
    }
}

/// A device's name as the sessions list shows it: one line, bounded, never empty.
fn device_name(raw: Option<&str>) -> String {
    let name = store::sanitized_user_agent(raw.unwrap_or_default().trim());
    if name.trim().is_empty() {
        UNNAMED_DEVICE.to_owned()
    } else {
        name
    }
}

impl Logins {
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// Starts a device login for `user_id` within the caller's transaction: the login row,
    /// logi's tokens sealed under it, and the first refresh token of its family.
    pub async fn start_device(
        &self,
        tx: &mut Tx,
        user_id: UserId,
        name: Option<&str>,
        logi: &TokenSet,
        session: &LogiSession,
    ) -> Result<(Login, DeviceTokens), AppError> {
        let now = crate::server::unix_now();
        let login = Login { id: LoginId::random(), user_id };
        store::insert(tx, &login.id, user_id, (Method::Logi, Client::Device), &device_name(name), now).await?;
        self.tokens.keep_in(tx, &login.id, &HeldTokens::from_grant(logi.clone()), Some(session)).await?;
        let refresh_token = refresh::start_family(tx, &login.id, now).await?;
        let tokens = self.device_tokens(&login, refresh_token, now, now)?;
        Ok((login, tokens))
    }

    fn device_tokens(&self, login: &Login, refresh_token: SecretString, created_at: i64, now: i64) -> Result<DeviceTokens, AppError> {
        let lifetimes = self.lifetimes.device;
        Ok(DeviceTokens {
            access_token: self.devices.access_token(login, now)?,
            expires_in: self.devices.access_lifetime_secs,
            refresh_token,
            refresh_expires_in: lifetimes.idle_secs.min(created_at + lifetimes.absolute_secs - now),
        })
    }

    /// `grant_type=refresh_token`: a new pair for a live device login, or `None`
    /// (`invalid_grant`). Reuse of a rotated token ends the device login.
    pub async fn refresh_device(&self, presented: &str) -> Result<Option<DeviceTokens>, AppError> {
        let now = crate::server::unix_now();
        let (login_id, token) = match refresh::rotate(&self.db, presented, now).await? {
            Rotation::Rotated { login_id, token } => (login_id, token),
            Rotation::Reused { login_id } => {
                tracing::warn!(login = %login_id, "a rotated refresh token was used again; ending the device login");
                self.end_device(&login_id).await?;
                return Ok(None);
            }
            Rotation::Unknown => return Ok(None),
        };
        let Some(row) = self.live(&login_id, Client::Device, now).await? else { return Ok(None) };
        let login = Login { id: login_id, user_id: row.user_id };
        self.device_tokens(&login, token, row.created_at, now).map(Some)
    }

    /// RFC 7009: ends the device login the refresh token belongs to (any token of its
    /// family), revoking its logi refresh token. Unknown tokens are ignored.
    pub async fn revoke_device(&self, presented: &str) -> Result<(), AppError> {
        match refresh::family_of(&self.db, presented).await? {
            Some(login_id) => self.end_device(&login_id).await,
            None => Ok(()),
        }
    }

    async fn end_device(&self, login_id: &LoginId) -> Result<(), AppError> {
        let held = self.tokens.load(&self.db, login_id).await?;
        self.forget(login_id).await?;
        self.revoke(held.and_then(|held| held.refresh_token).into_iter().collect()).await;
        Ok(())
    }

    /// The live device login a bearer access token stands for; `Err` with the reason
    /// (for the log) when the token is not valid or its login ended.
    pub async fn bearer(&self, token: &str) -> Result<Result<Login, &'static str>, AppError> {
        let now = crate::server::unix_now();
        let claimed = match self.devices.verify(&self.db, token, now).await? {
            Ok(claimed) => claimed,
            Err(why) => return Ok(Err(why)),
        };
        match self.live(&claimed.id, Client::Device, now).await? {
            Some(row) if row.user_id == claimed.user_id => Ok(Ok(claimed)),
            _ => Ok(Err("the device login ended")),
        }
    }

    /// Forgets rotated refresh tokens older than a device's idle lifetime (run periodically).
    pub(super) async fn sweep_devices(&self, now: i64) -> Result<u64, AppError> {
        self.devices.maintain_keys(&self.db, now).await?;
        refresh::forget_rotated(&self.db, now - self.lifetimes.device.idle_secs).await
    }
}
