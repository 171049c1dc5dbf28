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

#[derive(sqlx::FromRow)]
struct UserRow {
    sub: Option<String>,
    anonymous: bool,
    email: Option<String>,
    name: Option<String>,
}

/// Loads a user with the subject of its logi identity, if one is linked.
pub async fn find(pool: &SqlitePool, user_id: i64) -> Result<Option<User>, AppError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT (SELECT subject FROM identities WHERE user_id = users.id ORDER BY linked_at LIMIT 1) AS sub,
                anonymous, email, name
           FROM users WHERE id = ?",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|UserRow { sub, anonymous, email, name }| User { sub, anonymous, email, name }))
}

/// The profile logi-bff keeps from logi's userinfo, by logi's rules: an anonymous
/// account keeps no email or name; a synthetic `@1pass.internal` email is dropped;
/// `name` falls back to `nickname`. Identity is the id_token's `sub`, never the email.
#[derive(Debug, PartialEq, Eq)]
pub struct LogiProfile {
    pub anonymous: bool,
    pub email: Option<String>,
    pub name: Option<String>,
}

const SYNTHETIC_EMAIL_DOMAIN: &str = "@1pass.internal";

impl LogiProfile {
    pub fn from_userinfo(info: &crate::auth::oidc::UserInfo) -> Self {
        if info.anonymous {
            return Self { anonymous: true, email: None, name: None };
        }
        let email = info.email.clone().filter(|email| !email.to_ascii_lowercase().ends_with(SYNTHETIC_EMAIL_DOMAIN));
        Self { anonymous: false, email, name: info.name.clone().or_else(|| info.nickname.clone()) }
    }
}

/// Finds the user linked to `(issuer, subject)` or creates one, refreshing the profile;
/// all in one transaction, so a failure leaves no half-written rows.
pub async fn sign_in_with_identity(pool: &SqlitePool, issuer: &str, subject: &str, profile: &LogiProfile) -> Result<i64, AppError> {
    // IMMEDIATE takes the write lock up front: two first sign-ins of one subject serialise.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let linked: Option<i64> = sqlx::query_scalar("SELECT user_id FROM identities WHERE issuer = ? AND subject = ?")
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await?;
    let user_id = match linked {
        Some(user_id) => {
            sqlx::query("UPDATE users SET email = ?, name = ?, anonymous = ?, updated_at = unixepoch() WHERE id = ?")
                .bind(&profile.email)
                .bind(&profile.name)
                .bind(profile.anonymous)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            user_id
        }
        None => {
            let user_id: i64 = sqlx::query_scalar("INSERT INTO users (email, name, anonymous) VALUES (?, ?, ?) RETURNING id")
                .bind(&profile.email)
                .bind(&profile.name)
                .bind(profile.anonymous)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO identities (user_id, issuer, subject) VALUES (?, ?, ?)")
                .bind(user_id)
                .bind(issuer)
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            user_id
        }
    };
    tx.commit().await?;
    Ok(user_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::oidc::UserInfo;

    fn info(email: Option<&str>, name: Option<&str>, nickname: Option<&str>, anonymous: bool) -> UserInfo {
        UserInfo { sub: "s".into(), email: email.map(Into::into), name: name.map(Into::into), nickname: nickname.map(Into::into), anonymous }
    }

    #[test]
    fn a_normal_user_keeps_email_and_name() {
        let profile = LogiProfile::from_userinfo(&info(Some("a@example.com"), Some("Alice"), Some("al"), false));
        assert_eq!(profile, LogiProfile { anonymous: false, email: Some("a@example.com".into()), name: Some("Alice".into()) });
    }

    #[test]
    fn an_anonymous_user_keeps_neither_email_nor_name() {
        let profile = LogiProfile::from_userinfo(&info(Some("anon+1@1pass.internal"), Some("x"), None, true));
        assert_eq!(profile, LogiProfile { anonymous: true, email: None, name: None });
    }

    #[test]
    fn a_synthetic_email_is_dropped_even_without_the_anonymous_flag() {
        let profile = LogiProfile::from_userinfo(&info(Some("anon+1@1PASS.internal"), None, Some("nick"), false));
        assert_eq!(profile, LogiProfile { anonymous: false, email: None, name: Some("nick".into()) });
    }

    #[test]
    fn consent_without_email_or_name_leaves_them_empty() {
        assert_eq!(LogiProfile::from_userinfo(&info(None, None, None, false)), LogiProfile { anonymous: false, email: None, name: None });
    }

    async fn pool() -> (tempfile::TempDir, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::server::db::connect(&format!("sqlite://{}", dir.path().join("a.db").display())).await.unwrap();
        (dir, pool)
    }

    fn profile(email: &str) -> LogiProfile {
        LogiProfile { anonymous: false, email: Some(email.into()), name: None }
    }

    #[tokio::test]
    async fn the_same_subject_signs_into_the_same_user_and_refreshes_the_profile() {
        let (_dir, pool) = pool().await;
        let first = sign_in_with_identity(&pool, "https://logi", "sub-1", &profile("old@example.com")).await.unwrap();
        let again = sign_in_with_identity(&pool, "https://logi", "sub-1", &profile("new@example.com")).await.unwrap();
        assert_eq!(first, again);
        let user = find(&pool, first).await.unwrap().unwrap();
        assert_eq!((user.sub.as_deref(), user.email.as_deref()), (Some("sub-1"), Some("new@example.com")));
    }

    #[tokio::test]
    async fn users_are_never_linked_by_email() {
        let (_dir, pool) = pool().await;
        let a = sign_in_with_identity(&pool, "https://logi", "sub-a", &profile("same@example.com")).await.unwrap();
        let b = sign_in_with_identity(&pool, "https://logi", "sub-b", &profile("same@example.com")).await.unwrap();
        let other_issuer = sign_in_with_identity(&pool, "https://other", "sub-a", &profile("same@example.com")).await.unwrap();
        assert!(a != b && a != other_issuer && b != other_issuer);
    }

    #[tokio::test]
    async fn concurrent_first_sign_ins_of_one_subject_make_one_user() {
        let (_dir, pool) = pool().await;
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { sign_in_with_identity(&pool, "https://logi", "sub-race", &profile("r@example.com")).await.unwrap() })
            })
            .collect();
        let mut ids = Vec::new();
        for handle in handles {
            ids.push(handle.await.unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
        assert_eq!(users, 1);
    }
}
