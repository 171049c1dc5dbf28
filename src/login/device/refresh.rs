//! Our refresh tokens: 256 random bits, stored only as their SHA-256, one family per
//! device login. Each use rotates: the presented token is marked rotated (remembering
//! its successor) and a new one becomes the family's only valid token.
//!
//! A rotated token presented again within [`LOST_RESPONSE_GRACE_SECS`], while its
//! successor has not been used, is a client that lost the response: the successor is
//! dropped and a new pair issued. Any other reuse of a rotated token means two parties
//! hold the family, and the caller ends it.

use super::store::{self, RefreshTokenRow};
use crate::ids::LoginId;
use crate::server::crypto::sha256;
use crate::server::db::{Db, Tx};
use crate::server::AppError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

pub const LOST_RESPONSE_GRACE_SECS: i64 = 10;
/// Longest token we look at: 256 bits in unpadded base64url are 43 characters.
const TOKEN_CHARS: usize = 43;

/// What presenting a refresh token led to.
pub enum Rotation {
    /// A new token for the family of this login.
    Rotated { login_id: LoginId, token: SecretString },
    /// A rotated token used again outside the lost-response case: end the family.
    Reused { login_id: LoginId },
    /// Not a token of any family (never issued, or its family ended).
    Unknown,
}

fn new_token() -> (SecretString, Vec<u8>) {
    let token = SecretString::from(B64.encode(rand::random::<[u8; 32]>()));
    let hash = sha256(token.expose_secret().as_bytes()).to_vec();
    (token, hash)
}

/// The stored form of a presented token; `None` when it cannot be one of ours.
fn hash_of(presented: &str) -> Option<Vec<u8>> {
    let well_formed = presented.len() == TOKEN_CHARS && presented.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| sha256(presented.as_bytes()).to_vec())
}

/// Starts the family of a new device login.
pub async fn start_family(tx: &mut Tx, login_id: &LoginId, now: i64) -> Result<SecretString, AppError> {
    let (token, hash) = new_token();
    store::insert_refresh_token(tx, &hash, login_id, now).await?;
    Ok(token)
}

/// Rotates the presented token, in one locked write transaction (two uses of one token
/// cannot interleave, on one replica or several).
pub async fn rotate(db: &Db, presented: &str, now: i64) -> Result<Rotation, AppError> {
    let Some(hash) = hash_of(presented) else { return Ok(Rotation::Unknown) };
    let mut tx = db.begin_locked("device-refresh-tokens").await?;
    let Some(RefreshTokenRow { login_id, rotated_at, successor }) = store::find_refresh_token(&mut tx, &hash).await? else { return Ok(Rotation::Unknown) };
    match (rotated_at, successor.as_deref()) {
        (None, _) => {}
        (Some(rotated_at), Some(successor)) if now - rotated_at < LOST_RESPONSE_GRACE_SECS && store::is_current(&mut tx, successor).await? => {
            // The successor never reached the client: it stops working, and is no one's successor.
            store::mark_rotated(&mut tx, successor, None, now).await?;
        }
        (Some(_), _) => return Ok(Rotation::Reused { login_id }),
    }
    let (token, next) = new_token();
    store::mark_rotated(&mut tx, &hash, Some(&next), now).await?;
    store::insert_refresh_token(&mut tx, &next, &login_id, now).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated { login_id, token })
}

/// The device login a token (current or rotated) belongs to.
pub async fn family_of(db: &Db, presented: &str) -> Result<Option<LoginId>, AppError> {
    let Some(hash) = hash_of(presented) else { return Ok(None) };
    store::family_of(db, &hash).await
}

/// Forgets tokens rotated away before `rotated_before`: their reuse then reads as unknown
/// (refused, without ending the family). Keeps each family's history bounded.
pub async fn forget_rotated(db: &Db, rotated_before: i64) -> Result<u64, AppError> {
    store::delete_rotated_before(db, rotated_before).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::temp_pool;

    async fn device(db: &Db) -> LoginId {
        db.execute("INSERT INTO users (id) VALUES (1) ON CONFLICT DO NOTHING").await.unwrap();
        let id = LoginId::random();
        db.execute(&format!("INSERT INTO logins (id, user_id, method, client) VALUES ('{id}', 1, 'logi', 'device')")).await.unwrap();
        id
    }

    async fn start(db: &Db, login: &LoginId, now: i64) -> SecretString {
        let mut tx = db.begin().await.unwrap();
        let token = start_family(&mut tx, login, now).await.unwrap();
        tx.commit().await.unwrap();
        token
    }

    fn rotated(rotation: Rotation) -> SecretString {
        match rotation {
            Rotation::Rotated { token, .. } => token,
            _ => panic!("not rotated"),
        }
    }

    async fn rotate_at(pool: &Db, token: &SecretString, now: i64) -> Rotation {
        rotate(pool, token.expose_secret(), now).await.unwrap()
    }

    #[tokio::test]
    async fn each_use_rotates_and_only_the_newest_token_is_valid() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let first = start(&pool, &login, 100).await;
        let second = rotated(rotate_at(&pool, &first, 200).await);
        let third = rotated(rotate_at(&pool, &second, 300).await);
        assert_ne!(second.expose_secret(), third.expose_secret());
        let current = pool.count("SELECT count(*) FROM device_refresh_tokens WHERE rotated_at IS NULL").await.unwrap();
        assert_eq!(current, 1);
        let hashes = pool.count("SELECT count(*) FROM device_refresh_tokens WHERE length(hash) = 32").await.unwrap();
        assert_eq!(hashes, 3, "only hashes are stored");
        assert!(matches!(rotate_at(&pool, &first, 400).await, Rotation::Reused { login_id } if login_id == login));
    }

    #[tokio::test]
    async fn a_lost_response_rotates_again_and_the_lost_successor_dies() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let first = start(&pool, &login, 100).await;
        let lost = rotated(rotate_at(&pool, &first, 200).await);
        let retried = rotated(rotate_at(&pool, &first, 205).await);
        rotated(rotate_at(&pool, &retried, 206).await);
        assert!(matches!(rotate_at(&pool, &lost, 207).await, Rotation::Reused { .. }), "the lost successor still works");
    }

    #[tokio::test]
    async fn no_grace_once_the_successor_was_used_or_after_ten_seconds() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let first = start(&pool, &login, 100).await;
        let second = rotated(rotate_at(&pool, &first, 200).await);
        rotated(rotate_at(&pool, &second, 201).await);
        assert!(matches!(rotate_at(&pool, &first, 202).await, Rotation::Reused { .. }), "the successor had been used");

        let other = device(&pool).await;
        let first = start(&pool, &other, 100).await;
        rotated(rotate_at(&pool, &first, 200).await);
        assert!(matches!(rotate_at(&pool, &first, 200 + LOST_RESPONSE_GRACE_SECS).await, Rotation::Reused { .. }));
    }

    #[tokio::test]
    async fn unknown_malformed_and_ended_tokens_are_unknown() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let token = start(&pool, &login, 100).await;
        for bad in ["", "short", &"a".repeat(44), &format!("{}=", &token.expose_secret()[..42]), &B64.encode([0u8; 32])] {
            assert!(matches!(rotate(&pool, bad, 200).await.unwrap(), Rotation::Unknown), "{bad}");
        }
        assert_eq!(family_of(&pool, token.expose_secret()).await.unwrap(), Some(login.clone()));
        pool.execute(&format!("DELETE FROM logins WHERE id = '{login}'")).await.unwrap();
        assert!(matches!(rotate_at(&pool, &token, 200).await, Rotation::Unknown), "a token outlived its login");
    }

    #[tokio::test]
    async fn concurrent_uses_of_one_token_rotate_it_once_then_see_reuse_or_grace() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let token = start(&pool, &login, 100).await;
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (pool, token) = (pool.clone(), token.expose_secret().to_owned());
                tokio::spawn(async move { rotate(&pool, &token, 200).await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Rotation::Rotated { .. }), "within the grace every retry gets a pair");
        }
        let current = pool.count("SELECT count(*) FROM device_refresh_tokens WHERE rotated_at IS NULL").await.unwrap();
        assert_eq!(current, 1, "two tokens of one family are valid");
    }
}
