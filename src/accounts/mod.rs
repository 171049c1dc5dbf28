//! Local users and the identities linked to them (server only).

use crate::auth::User;
use crate::server::{sessions, AppError, AppState};
use sqlx::SqlitePool;
use tower_sessions::Session;

/// The user signed in on this session, if any (enforcing the session's absolute lifetime).
pub async fn signed_in_user(state: &AppState, session: &Session) -> Result<Option<User>, AppError> {
    match sessions::signed_in_user(session, state.config.session_absolute_timeout).await? {
        Some(user_id) => find(&state.pool, user_id).await,
        None => Ok(None),
    }
}

/// Loads a user with the subject of its logi identity, if one is linked.
pub async fn find(pool: &SqlitePool, user_id: i64) -> Result<Option<User>, AppError> {
    let row: Option<(Option<String>, bool, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT (SELECT subject FROM identities WHERE user_id = users.id ORDER BY linked_at LIMIT 1),
                anonymous, email, name
           FROM users WHERE id = ?",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(sub, anonymous, email, name)| User { sub, anonymous, email, name }))
}
