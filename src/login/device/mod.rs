//! Our tokens for native apps' devices: the issuer and verifier of our ES256 access
//! tokens (RFC 9068), the signing keys behind them, and the rotating refresh-token
//! families. A device is a login like a browser's (see `service/device.rs`); logi's
//! tokens never leave the server.

mod keys;
pub mod refresh;
mod store;

use super::cache::Expiring;
use super::store::Login;
use crate::ids::{LoginId, UserId};
use crate::server::config::Config;
use crate::server::crypto::{sha256, Audience, JWT_LEEWAY_SECS as LEEWAY_SECS};
use crate::server::db::Db;
use crate::server::AppError;
use keys::SigningKeys;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longer than any access token we issue; a longer bearer is refused before parsing.
const MAX_BEARER_BYTES: usize = 4096;
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
    #[cfg(any(test, feature = "test-support"))]
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

    pub(super) fn purge_expired(&self) {
        self.verified.purge_expired();
    }

    /// A new access token for the device login, and its lifetime in seconds.
    pub(super) fn access_token(&self, login: &Login, now: i64) -> Result<(SecretString, i64), AppError> {
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
        Ok((SecretString::from(token), self.access_lifetime_secs))
    }

    /// The login a bearer access token names, if the token is ours and valid now: ES256
    /// exactly, `typ` at+jwt, a published `kid`, a good signature, our `iss`, our
    /// `aud`, `exp` not passed and `iat` not ahead (60 s leeway). Whether the login is
    /// still live is the caller's check.
    pub(super) async fn verify(&self, db: &Db, token: &str, now: i64) -> Result<Result<Login, &'static str>, AppError> {
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
