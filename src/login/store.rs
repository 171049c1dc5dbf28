//! The `logins` table: one row per signed-in client, and the user view a login reads.

use super::User;
use crate::ids::{LoginId, UserId};
use crate::server::AppError;
use sqlx::SqlitePool;

/// How a login was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Password,
    Logi,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Logi => "logi",
        }
    }
}

/// A login row as the lookup needs it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LoginRow {
    pub user_id: UserId,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A login as listed on the account page.
#[derive(Debug, sqlx::FromRow)]
pub struct LoginRecord {
    pub id: LoginId,
    pub method: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

pub async fn insert(pool: &SqlitePool, id: &LoginId, user_id: UserId, method: Method, user_agent: &str, now: i64) -> Result<(), AppError> {
    sqlx::query("INSERT INTO logins (id, user_id, method, user_agent, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $5)")
        .bind(id)
        .bind(user_id)
        .bind(method.as_str())
        .bind(user_agent)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn find(pool: &SqlitePool, id: &LoginId) -> Result<Option<LoginRow>, AppError> {
    Ok(sqlx::query_as("SELECT user_id, created_at, last_seen_at FROM logins WHERE id = $1").bind(id).fetch_optional(pool).await?)
}

pub async fn touch(pool: &SqlitePool, id: &LoginId, now: i64) -> Result<(), AppError> {
    sqlx::query("UPDATE logins SET last_seen_at = $1 WHERE id = $2").bind(now).bind(id).execute(pool).await?;
    Ok(())
}

pub async fn delete(pool: &SqlitePool, id: &LoginId) -> Result<(), AppError> {
    sqlx::query("DELETE FROM logins WHERE id = $1").bind(id).execute(pool).await?;
    Ok(())
}

/// Deletes one of the user's logins; false when the user has no such login.
pub async fn delete_of_user(pool: &SqlitePool, user_id: UserId, id: &LoginId) -> Result<bool, AppError> {
    let done = sqlx::query("DELETE FROM logins WHERE id = $1 AND user_id = $2").bind(id).bind(user_id).execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes every login of the user except `keep`; returns how many ended.
pub async fn delete_all_of_user(pool: &SqlitePool, user_id: UserId, keep: Option<&LoginId>) -> Result<u64, AppError> {
    let done = sqlx::query("DELETE FROM logins WHERE user_id = $1 AND id IS NOT $2").bind(user_id).bind(keep).execute(pool).await?;
    Ok(done.rows_affected())
}

/// The user's logins still within both lifetimes, most recently used first.
pub async fn list_live(pool: &SqlitePool, user_id: UserId, created_after: i64, seen_after: i64) -> Result<Vec<LoginRecord>, AppError> {
    Ok(sqlx::query_as(
        "SELECT id, method, user_agent, created_at, last_seen_at FROM logins
          WHERE user_id = $1 AND created_at > $2 AND last_seen_at > $3
          ORDER BY last_seen_at DESC, created_at DESC",
    )
    .bind(user_id)
    .bind(created_after)
    .bind(seen_after)
    .fetch_all(pool)
    .await?)
}

/// Deletes logins past either lifetime (run periodically).
pub async fn delete_expired(pool: &SqlitePool, created_after: i64, seen_after: i64) -> Result<u64, AppError> {
    let done = sqlx::query("DELETE FROM logins WHERE created_at <= $1 OR last_seen_at <= $2").bind(created_after).bind(seen_after).execute(pool).await?;
    Ok(done.rows_affected())
}

#[derive(sqlx::FromRow)]
struct UserRow {
    sub: Option<String>,
    anonymous: bool,
    email: Option<String>,
    name: Option<String>,
}

/// A user as the browser sees it, with the subject of its logi identity if one is linked.
pub async fn find_user(pool: &SqlitePool, user_id: UserId) -> Result<Option<User>, AppError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT (SELECT subject FROM identities WHERE user_id = users.id ORDER BY linked_at LIMIT 1) AS sub,
                anonymous, email, name
           FROM users WHERE id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|UserRow { sub, anonymous, email, name }| User { sub, anonymous, email, name }))
}
