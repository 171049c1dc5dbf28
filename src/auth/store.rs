//! The SQL of the sign-in protocol: the `jti`s of logi's logout tokens already used.

use crate::server::db::{query, Db, Tx};
use crate::server::AppError;

/// Records a logout token's `jti` until `expires_at`; false when it was already used.
pub async fn first_use_of_logout_token(tx: &mut Tx, jti: &str, expires_at: i64) -> Result<bool, AppError> {
    let sql = "INSERT INTO used_logout_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING";
    Ok(query(sql).bind(jti).bind(expires_at).execute(tx).await? == 1)
}

/// Forgets the `jti`s of logout tokens that have expired (the sweeper).
pub async fn delete_expired_logout_tokens(db: &Db, now: i64) -> Result<u64, AppError> {
    Ok(query("DELETE FROM used_logout_tokens WHERE expires_at < $1").bind(now).execute(db).await?)
}
