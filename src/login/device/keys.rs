//! The P-256 keys that sign our access tokens, kept sealed in the database so every
//! replica signs and verifies with the same ones, and published as a JWKS.
//!
//! The newest unretired key signs. It is replaced after [`MAX_AGE_SECS`]; the key it
//! replaces is retired but stays published (and trusted) for [`RETIRED_KEPT_SECS`],
//! longer than any token it signed can live. A key that does not open (the
//! `SESSION_SECRET` changed) is skipped, and a new one is made if none is left.

use super::store::{self, KeyRow as StoredKey};
use crate::server::crypto::{sha256, CompactJws, Sealer};
use crate::server::db::{Db, Tx};
use crate::server::AppError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const LABEL: &str = "logi-bff/native-signing-keys/v1";
/// Replicas making or rotating keys at once take turns.
const LOCK: &str = "signing-keys";
const MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// Longer than the longest access token (60 minutes) plus leeway and reload intervals.
const RETIRED_KEPT_SECS: i64 = 2 * 3600;
/// An unknown `kid` rereads the keys at most this often (another replica may have rotated).
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

pub struct SigningKeys {
    sealer: Sealer,
    ring: RwLock<Arc<Ring>>,
    last_reload: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Ring {
    signing: Option<(String, SigningKey)>,
    verifying: HashMap<String, VerifyingKey>,
    jwks: String,
}

#[derive(serde::Deserialize)]
struct JwsHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    /// Extensions we would have to understand: there are none, so any is refused.
    crit: Option<serde::de::IgnoredAny>,
}

struct KeyRow {
    kid: String,
    key: SigningKey,
    created_at: i64,
    retired: bool,
}

impl SigningKeys {
    pub fn new(session_secret: &SecretString) -> Self {
        Self { sealer: Sealer::new(session_secret, LABEL), ring: RwLock::default(), last_reload: Mutex::default() }
    }

    /// Makes sure a young signing key exists (creating or rotating one), deletes keys no
    /// token can need any more, and loads the rest. At startup and periodically.
    pub async fn maintain(&self, db: &Db, now: i64) -> Result<(), AppError> {
        store::delete_keys_retired_before(db, now - RETIRED_KEPT_SECS).await?;
        let mut tx = db.begin_locked(LOCK).await?;
        let rows = store::signing_keys(&mut tx).await?;
        let young = self.open_rows(rows).iter().any(|row| !row.retired && row.created_at > now - MAX_AGE_SECS);
        if !young {
            self.insert_new(&mut tx, now).await?;
        }
        tx.commit().await?;
        self.reload(db).await
    }

    /// Replaces the signing key now; the old one stays published while its tokens live.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn rotate(&self, db: &Db, now: i64) -> Result<(), AppError> {
        let mut tx = db.begin_locked(LOCK).await?;
        self.insert_new(&mut tx, now).await?;
        tx.commit().await?;
        self.reload(db).await
    }

    async fn insert_new(&self, tx: &mut Tx, now: i64) -> Result<(), AppError> {
        let key = generate();
        let kid = thumbprint(key.verifying_key());
        let sealed = self.sealer.seal(kid.as_bytes(), &key.to_bytes());
        store::insert_signing_key(tx, &kid, &sealed, now).await?;
        tracing::info!(kid, "new signing key for native access tokens");
        Ok(())
    }

    /// Every stored key that opens, oldest first.
    fn open_rows(&self, rows: Vec<StoredKey>) -> Vec<KeyRow> {
        rows.into_iter()
            .filter_map(|(kid, sealed, created_at, retired_at)| {
                let opened = self.sealer.open(kid.as_bytes(), &sealed).and_then(|scalar| SigningKey::from_slice(scalar.expose_secret()).ok());
                if opened.is_none() {
                    tracing::warn!(kid, "a signing key does not open (SESSION_SECRET changed?); skipping it");
                }
                Some(KeyRow { key: opened?, kid, created_at, retired: retired_at.is_some() })
            })
            .collect()
    }

    /// Reads the keys again and swaps them in.
    pub async fn reload(&self, db: &Db) -> Result<(), AppError> {
        *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let rows = self.open_rows(store::signing_keys(db).await?);
        let signing = rows.iter().rev().find(|row| !row.retired).map(|row| (row.kid.clone(), row.key.clone()));
        let verifying: HashMap<String, VerifyingKey> = rows.iter().map(|row| (row.kid.clone(), *row.key.verifying_key())).collect();
        let jwks = serde_json::json!({ "keys": rows.iter().map(|row| jwk(&row.kid, row.key.verifying_key())).collect::<Vec<_>>() }).to_string();
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Ring { signing, verifying, jwks });
        Ok(())
    }

    fn ring(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `{"keys":[…]}`: every key a live token may be signed with.
    pub fn jwks(&self) -> String {
        self.ring().jwks.clone()
    }

    /// A compact JWS of `payload`, `{"alg":"ES256","typ":typ,"kid":…}`, signed with the current key.
    pub fn sign_jws(&self, typ: &str, payload: &[u8]) -> Option<String> {
        let ring = self.ring();
        let (kid, key) = ring.signing.as_ref()?;
        let header = serde_json::json!({ "alg": "ES256", "typ": typ, "kid": kid }).to_string();
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let signature: Signature = key.sign(input.as_bytes());
        Some(format!("{input}.{}", B64.encode(signature.to_bytes())))
    }

    /// The payload of a compact JWS signed with one of our published keys: `alg` exactly
    /// ES256, `typ` one of `types` (case-insensitive), no `crit`, a known `kid`, a good
    /// signature. An unknown `kid` rereads the keys first, at most once a second.
    /// `Err` carries the reason, for the log only.
    pub async fn verify_jws(&self, db: &Db, token: &str, types: &[&str]) -> Result<Result<Vec<u8>, &'static str>, AppError> {
        let Some(jws) = CompactJws::split(token) else { return Ok(Err("not a compact JWS of base64url parts")) };
        let Ok(header_fields) = serde_json::from_slice::<JwsHeader>(&jws.header) else { return Ok(Err("malformed header")) };
        if header_fields.alg != "ES256" || header_fields.crit.is_some() {
            return Ok(Err("algorithm"));
        }
        if !header_fields.typ.as_deref().is_some_and(|typ| types.iter().any(|t| typ.eq_ignore_ascii_case(t))) {
            return Ok(Err("typ"));
        }
        let (Some(kid), Ok(signature)) = (header_fields.kid, Signature::from_slice(&jws.signature)) else { return Ok(Err("kid or signature")) };
        let mut key = self.ring().verifying.get(&kid).copied();
        if key.is_none() && self.may_reload() {
            self.reload(db).await?;
            key = self.ring().verifying.get(&kid).copied();
        }
        match key {
            Some(key) if key.verify(jws.signing_input.as_bytes(), &signature).is_ok() => Ok(Ok(jws.payload)),
            Some(_) => Ok(Err("signature")),
            None => Ok(Err("unknown kid")),
        }
    }

    fn may_reload(&self) -> bool {
        self.last_reload.lock().unwrap_or_else(|p| p.into_inner()).is_none_or(|at| at.elapsed() >= RELOAD_INTERVAL)
    }
}

/// A new key from the operating system's CSPRNG (a scalar out of range is drawn again).
fn generate() -> SigningKey {
    loop {
        let scalar = secrecy::SecretBox::new(Box::new(rand::random::<[u8; 32]>()));
        if let Ok(key) = SigningKey::from_slice(scalar.expose_secret()) {
            return key;
        }
    }
}

fn coordinates(key: &VerifyingKey) -> (String, String) {
    let point = key.to_sec1_point(false);
    let bytes = point.as_bytes();
    (B64.encode(&bytes[1..33]), B64.encode(&bytes[33..65]))
}

/// The key id: the key's JWK thumbprint (RFC 7638).
fn thumbprint(key: &VerifyingKey) -> String {
    let (x, y) = coordinates(key);
    B64.encode(sha256(format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#).as_bytes()))
}

fn jwk(kid: &str, key: &VerifyingKey) -> serde_json::Value {
    let (x, y) = coordinates(key);
    serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::temp_pool;

    fn keys(secret: &str) -> SigningKeys {
        SigningKeys::new(&SecretString::from(secret.to_owned()))
    }

    const SECRET: &str = "signing-keys-test-secret-0123456789abcdef";

    fn kid_of(token: &str) -> String {
        let header: serde_json::Value = serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("ES256"), Some("at+jwt")));
        header["kid"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn keys_are_sealed_shared_through_the_database_and_rotated_with_overlap() {
        let (_dir, pool) = temp_pool().await;
        let first = keys(SECRET);
        first.maintain(&pool, 1_000).await.unwrap();
        let token = first.sign_jws("at+jwt", b"{}").unwrap();
        let kid = kid_of(&token);
        assert_eq!(pool.count("SELECT CAST(length(sealed) AS BIGINT) FROM signing_keys").await.unwrap(), 24 + 32 + 16, "nonce, scalar, tag");

        // Another replica (same secret) verifies; a second maintain keeps the young key.
        let second = keys(SECRET);
        second.maintain(&pool, 2_000).await.unwrap();
        assert_eq!(second.verify_jws(&pool, &token, &["at+jwt"]).await.unwrap(), Ok(b"{}".to_vec()));
        assert_eq!(second.verify_jws(&pool, &token, &["jwt"]).await.unwrap(), Err("typ"));
        let tampered = token.replacen(".e30.", ".e30K.", 1);
        assert_eq!(second.verify_jws(&pool, &tampered, &["at+jwt"]).await.unwrap(), Err("signature"));
        assert_eq!(kid_of(&second.sign_jws("at+jwt", b"{}").unwrap()), kid);

        // Rotation: the old key still verifies and is published until its tokens are gone.
        second.rotate(&pool, 3_000).await.unwrap();
        let new_kid = kid_of(&second.sign_jws("at+jwt", b"{}").unwrap());
        assert_ne!(new_kid, kid);
        assert!(second.verify_jws(&pool, &token, &["at+jwt"]).await.unwrap().is_ok());
        assert_eq!(serde_json::from_str::<serde_json::Value>(&second.jwks()).unwrap()["keys"].as_array().unwrap().len(), 2);
        second.maintain(&pool, 3_000 + RETIRED_KEPT_SECS + 1).await.unwrap();
        assert!(!second.jwks().contains(&kid), "the retired key outlived its tokens");

        // A signing key older than its maximum age is replaced.
        second.maintain(&pool, 3_000 + MAX_AGE_SECS + 1).await.unwrap();
        assert_ne!(kid_of(&second.sign_jws("at+jwt", b"{}").unwrap()), new_kid);
    }

    #[tokio::test]
    async fn keys_that_do_not_open_are_replaced() {
        let (_dir, pool) = temp_pool().await;
        keys(SECRET).maintain(&pool, 1_000).await.unwrap();
        let other = keys("another-secret-0123456789abcdef0123456789");
        other.maintain(&pool, 1_001).await.unwrap();
        let token = other.sign_jws("at+jwt", b"{}").unwrap();
        assert!(other.verify_jws(&pool, &token, &["at+jwt"]).await.unwrap().is_ok());
        assert_eq!(serde_json::from_str::<serde_json::Value>(&other.jwks()).unwrap()["keys"].as_array().unwrap().len(), 1);
    }
}
