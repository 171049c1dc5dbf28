//! The SQL of devices' tokens: refresh-token families (`device_refresh_tokens`, hashes
//! only) and the sealed signing keys (`signing_keys`).

use crate::ids::LoginId;
use crate::server::db::{query, Db, Exec, Tx};
use crate::server::AppError;

/// A refresh token as stored: its family's login, and when (and to what) it was rotated.
#[derive(sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub login_id: LoginId,
    pub rotated_at: Option<i64>,
    pub successor: Option<Vec<u8>>,
}

pub async fn insert_refresh_token(tx: &mut Tx, hash: &[u8], login_id: &LoginId, now: i64) -> Result<(), AppError> {
    let sql = "INSERT INTO device_refresh_tokens (hash, login_id, issued_at) VALUES ($1, $2, $3)";
    query(sql).bind(hash).bind(login_id).bind(now).execute(tx).await?;
    Ok(())
}

pub async fn find_refresh_token(tx: &mut Tx, hash: &[u8]) -> Result<Option<RefreshTokenRow>, AppError> {
    let sql = "SELECT login_id, rotated_at, successor FROM device_refresh_tokens WHERE hash = $1";
    Ok(query(sql).bind(hash).fetch_optional(tx).await?)
}

/// True when this token is its family's current one (not rotated away).
pub async fn is_current(tx: &mut Tx, hash: &[u8]) -> Result<bool, AppError> {
    let sql = "SELECT EXISTS (SELECT 1 FROM device_refresh_tokens WHERE hash = $1 AND rotated_at IS NULL)";
    Ok(query(sql).bind(hash).scalar(tx).await?)
}

/// Marks a token rotated at `now` (once: a first rotation time is kept) with this successor.
pub async fn mark_rotated(tx: &mut Tx, hash: &[u8], successor: Option<&[u8]>, now: i64) -> Result<(), AppError> {
    let sql = "UPDATE device_refresh_tokens SET rotated_at = COALESCE(rotated_at, $1), successor = $2 WHERE hash = $3";
    query(sql).bind(now).bind(successor).bind(hash).execute(tx).await?;
    Ok(())
}

/// The login of the family a token (current or rotated) belongs to.
pub async fn family_of(db: &Db, hash: &[u8]) -> Result<Option<LoginId>, AppError> {
    Ok(query("SELECT login_id FROM device_refresh_tokens WHERE hash = $1").bind(hash).scalar_optional(db).await?)
}

pub async fn delete_rotated_before(db: &Db, rotated_before: i64) -> Result<u64, AppError> {
    Ok(query("DELETE FROM device_refresh_tokens WHERE rotated_at < $1").bind(rotated_before).execute(db).await?)
}

/// A signing key as stored: `(kid, sealed scalar, created_at, retired_at)`.
pub type KeyRow = (String, Vec<u8>, i64, Option<i64>);

/// Every stored signing key, oldest first.
pub async fn signing_keys<'c>(on: impl Into<Exec<'c>>) -> Result<Vec<KeyRow>, AppError> {
    Ok(query("SELECT kid, sealed, created_at, retired_at FROM signing_keys ORDER BY created_at, kid").fetch_all(on).await?)
}

/// Retires the current key and makes this one the signing key.
pub async fn insert_signing_key(tx: &mut Tx, kid: &str, sealed: &[u8], now: i64) -> Result<(), AppError> {
    query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL").bind(now).execute(&mut *tx).await?;
    query("INSERT INTO signing_keys (kid, sealed, created_at) VALUES ($1, $2, $3)").bind(kid).bind(sealed).bind(now).execute(tx).await?;
    Ok(())
}

pub async fn delete_keys_retired_before(db: &Db, retired_before: i64) -> Result<u64, AppError> {
    Ok(query("DELETE FROM signing_keys WHERE retired_at < $1").bind(retired_before).execute(db).await?)
}
