//! Our refresh tokens: 256 random bits, stored only as their SHA-256, one family per
//! device login. Each use rotates: the presented token is marked rotated (remembering
//! its successor) and a new one becomes the family's only valid token.
//!
//! A rotated token presented again within [`LOST_RESPONSE_GRACE_SECS`], while its
//! successor has not been used, is a client that lost the response: the successor is
//! dropped and a new pair issued. Any other reuse of a rotated token means two parties
//! hold the family, and the caller ends it.

use crate::ids::LoginId;
use crate::server::crypto::sha256;
use crate::server::AppError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqlitePool;

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
pub async fn start_family(db: impl sqlx::SqliteExecutor<'_>, login_id: &LoginId, now: i64) -> Result<SecretString, AppError> {
    let (token, hash) = new_token();
    sqlx::query("INSERT INTO device_refresh_tokens (hash, login_id, issued_at) VALUES ($1, $2, $3)").bind(hash).bind(login_id).bind(now).execute(db).await?;
    Ok(token)
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    login_id: LoginId,
    rotated_at: Option<i64>,
    successor: Option<Vec<u8>>,
}

/// Rotates the presented token, in one write transaction (two uses of one token cannot interleave).
pub async fn rotate(pool: &SqlitePool, presented: &str, now: i64) -> Result<Rotation, AppError> {
    let Some(hash) = hash_of(presented) else { return Ok(Rotation::Unknown) };
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let found: Option<TokenRow> =
        sqlx::query_as("SELECT login_id, rotated_at, successor FROM device_refresh_tokens WHERE hash = $1").bind(&hash).fetch_optional(&mut *tx).await?;
    let Some(row) = found else { return Ok(Rotation::Unknown) };
    match row.rotated_at {
        None => {}
        Some(rotated_at) if now - rotated_at < LOST_RESPONSE_GRACE_SECS && is_current(&mut tx, row.successor.as_deref()).await? => {
            // The successor never reached the client: it stops working, and is no one's successor.
            sqlx::query("UPDATE device_refresh_tokens SET rotated_at = $1, successor = NULL WHERE hash = $2")
                .bind(now)
                .bind(&row.successor)
                .execute(&mut *tx)
                .await?;
        }
        Some(_) => return Ok(Rotation::Reused { login_id: row.login_id }),
    }
    let (token, successor) = new_token();
    sqlx::query("UPDATE device_refresh_tokens SET rotated_at = COALESCE(rotated_at, $1), successor = $2 WHERE hash = $3")
        .bind(now)
        .bind(&successor)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO device_refresh_tokens (hash, login_id, issued_at) VALUES ($1, $2, $3)")
        .bind(&successor)
        .bind(&row.login_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated { login_id: row.login_id, token })
}

async fn is_current(tx: &mut sqlx::SqliteConnection, hash: Option<&[u8]>) -> Result<bool, AppError> {
    let Some(hash) = hash else { return Ok(false) };
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM device_refresh_tokens WHERE hash = $1 AND rotated_at IS NULL)").bind(hash).fetch_one(tx).await?)
}

/// The device login a token (current or rotated) belongs to.
pub async fn family_of(pool: &SqlitePool, presented: &str) -> Result<Option<LoginId>, AppError> {
    let Some(hash) = hash_of(presented) else { return Ok(None) };
    Ok(sqlx::query_scalar("SELECT login_id FROM device_refresh_tokens WHERE hash = $1").bind(hash).fetch_optional(pool).await?)
}

/// Forgets tokens rotated away before `rotated_before`: their reuse then reads as unknown
/// (refused, without ending the family). Keeps each family's history bounded.
pub async fn forget_rotated(pool: &SqlitePool, rotated_before: i64) -> Result<u64, AppError> {
    let done = sqlx::query("DELETE FROM device_refresh_tokens WHERE rotated_at < $1").bind(rotated_before).execute(pool).await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::temp_pool;

    async fn device(pool: &SqlitePool) -> LoginId {
        sqlx::query("INSERT OR IGNORE INTO users (id) VALUES (1)").execute(pool).await.unwrap();
        let id = LoginId::random();
        sqlx::query("INSERT INTO logins (id, user_id, method, client) VALUES ($1, 1, 'logi', 'device')").bind(&id).execute(pool).await.unwrap();
        id
    }

    fn rotated(rotation: Rotation) -> SecretString {
        match rotation {
            Rotation::Rotated { token, .. } => token,
            _ => panic!("not rotated"),
        }
    }

    async fn rotate_at(pool: &SqlitePool, token: &SecretString, now: i64) -> Rotation {
        rotate(pool, token.expose_secret(), now).await.unwrap()
    }

    #[tokio::test]
    async fn each_use_rotates_and_only_the_newest_token_is_valid() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let first = start_family(&pool, &login, 100).await.unwrap();
        let second = rotated(rotate_at(&pool, &first, 200).await);
        let third = rotated(rotate_at(&pool, &second, 300).await);
        assert_ne!(second.expose_secret(), third.expose_secret());
        let current: i64 = sqlx::query_scalar("SELECT count(*) FROM device_refresh_tokens WHERE rotated_at IS NULL").fetch_one(&pool).await.unwrap();
        assert_eq!(current, 1);
        let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM device_refresh_tokens").fetch_all(&pool).await.unwrap();
        assert!(stored.iter().all(|hash| hash.len() == 32), "only hashes are stored");
        assert!(matches!(rotate_at(&pool, &first, 400).await, Rotation::Reused { login_id } if login_id == login));
    }

    #[tokio::test]
    async fn a_lost_response_rotates_again_and_the_lost_successor_dies() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let first = start_family(&pool, &login, 100).await.unwrap();
        let lost = rotated(rotate_at(&pool, &first, 200).await);
        let retried = rotated(rotate_at(&pool, &first, 205).await);
        rotated(rotate_at(&pool, &retried, 206).await);
        assert!(matches!(rotate_at(&pool, &lost, 207).await, Rotation::Reused { .. }), "the lost successor still works");
    }

    #[tokio::test]
    async fn no_grace_once_the_successor_was_used_or_after_ten_seconds() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let first = start_family(&pool, &login, 100).await.unwrap();
        let second = rotated(rotate_at(&pool, &first, 200).await);
        rotated(rotate_at(&pool, &second, 201).await);
        assert!(matches!(rotate_at(&pool, &first, 202).await, Rotation::Reused { .. }), "the successor had been used");

        let other = device(&pool).await;
        let first = start_family(&pool, &other, 100).await.unwrap();
        rotated(rotate_at(&pool, &first, 200).await);
        assert!(matches!(rotate_at(&pool, &first, 200 + LOST_RESPONSE_GRACE_SECS).await, Rotation::Reused { .. }));
    }

    #[tokio::test]
    async fn unknown_malformed_and_ended_tokens_are_unknown() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let token = start_family(&pool, &login, 100).await.unwrap();
        for bad in ["", "short", &"a".repeat(44), &format!("{}=", &token.expose_secret()[..42]), &B64.encode([0u8; 32])] {
            assert!(matches!(rotate(&pool, bad, 200).await.unwrap(), Rotation::Unknown), "{bad}");
        }
        assert_eq!(family_of(&pool, token.expose_secret()).await.unwrap(), Some(login.clone()));
        sqlx::query("DELETE FROM logins WHERE id = $1").bind(&login).execute(&pool).await.unwrap();
        assert!(matches!(rotate_at(&pool, &token, 200).await, Rotation::Unknown), "a token outlived its login");
    }

    #[tokio::test]
    async fn concurrent_uses_of_one_token_rotate_it_once_then_see_reuse_or_grace() {
        let (_dir, pool) = temp_pool().await;
        let login = device(&pool).await;
        let token = start_family(&pool, &login, 100).await.unwrap();
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (pool, token) = (pool.clone(), token.expose_secret().to_owned());
                tokio::spawn(async move { rotate(&pool, &token, 200).await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Rotation::Rotated { .. }), "within the grace every retry gets a pair");
        }
        let current: i64 = sqlx::query_scalar("SELECT count(*) FROM device_refresh_tokens WHERE rotated_at IS NULL").fetch_one(&pool).await.unwrap();
        assert_eq!(current, 1, "two tokens of one family are valid");
    }
}
