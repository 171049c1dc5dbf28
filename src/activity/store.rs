//! The SQL of `account_events`.

use super::Occurrence;
use crate::ids::UserId;
use crate::server::db::{query, Db, Tx};
use crate::server::AppError;

pub async fn insert(tx: &mut Tx, occurrence: &Occurrence<'_>, client_ip: Option<&str>, now: i64) -> Result<(), AppError> {
    // Without a device of its own, an event names its login's (the client that caused it).
    let sql = "INSERT INTO account_events (user_id, login_id, kind, at, client_ip, device, detail)
               VALUES ($1, $2, $3, $4, $5, COALESCE($6, (SELECT user_agent FROM logins WHERE id = $2)), $7)";
    query(sql)
        .bind(occurrence.user_id)
        .bind(occurrence.login_id)
        .bind(occurrence.event.kind())
        .bind(now)
        .bind(client_ip)
        .bind(occurrence.device)
        .bind(occurrence.event.detail())
        .execute(tx)
        .await?;
    Ok(())
}

/// One recorded event as its user reads it.
#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub kind: String,
    pub at: i64,
    pub client_ip: Option<String>,
    pub device: Option<String>,
    pub detail: String,
}

/// The user's events, newest first: up to `limit` of those older than `before` (an id).
pub async fn page(db: &Db, user_id: UserId, before: Option<i64>, limit: i64) -> Result<Vec<EventRow>, AppError> {
    let sql = "SELECT id, kind, at, client_ip, device, detail FROM account_events
                WHERE user_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3";
    Ok(query(sql).bind(user_id).bind(before).bind(limit).fetch_all(db).await?)
}

/// Deletes the events recorded before `cutoff`; how many.
pub async fn delete_older_than(db: &Db, cutoff: i64) -> Result<u64, AppError> {
    Ok(query("DELETE FROM account_events WHERE at < $1").bind(cutoff).execute(db).await?)
}
