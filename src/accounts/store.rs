//! Users, their password and their linked logi identity (server only).
//! Every change that checks something and then writes does both in one locked write
//! transaction ([`begin`]), so concurrent requests (and replicas) cannot interleave.

use super::passwords::Email;
use super::AccountError;
use crate::activity::{Event, Events, Occurrence};
use crate::ids::{Issuer, Subject, UserId};
use crate::login::Login;
use crate::server::db::{query, Db, Exec, Tx};
use crate::server::unix_now as now;
use crate::server::AppError;

/// The profile kept from logi for a user signed in with it (see `auth::profile` for logi's rules).
#[derive(Debug, PartialEq, Eq)]
pub struct Profile {
    pub anonymous: bool,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Every check-then-write of users, identities and passwords holds this lock (on SQLite
/// the database's write lock; on Postgres an advisory lock shared by all replicas).
const LOCK: &str = "accounts";

/// Finds the user linked to `(issuer, subject)` or creates one; all in one transaction,
/// so a failure leaves no half-written rows. The profile is refreshed from logi unless
/// the user has a password: a local account keeps the profile it was created with.
pub async fn sign_in_with_identity(db: &Db, issuer: &Issuer, subject: &Subject, profile: &Profile) -> Result<UserId, AppError> {
    // The lock is taken up front: two first sign-ins of one subject serialise.
    let mut tx = begin(db).await?;
    let user_id = user_for_identity(&mut tx, issuer, subject, profile).await?;
    tx.commit().await?;
    Ok(user_id)
}

/// The locked write transaction every change here runs in; callers that write more in
/// the same transaction (the native exchange) start it with this too.
pub async fn begin(db: &Db) -> Result<Tx, AppError> {
    Ok(db.begin_locked(LOCK).await?)
}

/// [`sign_in_with_identity`] inside the caller's transaction (from [`begin`]), so what
/// the caller writes next commits with the user or not at all.
pub async fn user_for_identity(tx: &mut Tx, issuer: &Issuer, subject: &Subject, profile: &Profile) -> Result<UserId, AppError> {
    let linked: Option<UserId> = query(OWNER).bind(issuer).bind(subject).scalar_optional(&mut *tx).await?;
    let user_id = match linked {
        Some(user_id) => {
            let sql = "UPDATE users SET email = $1, name = $2, anonymous = $3, updated_at = $4
                        WHERE id = $5 AND NOT EXISTS (SELECT 1 FROM passwords WHERE user_id = users.id)";
            let Profile { email, name, anonymous } = profile;
            query(sql).bind(email).bind(name).bind(anonymous).bind(now()).bind(user_id).execute(&mut *tx).await?;
            user_id
        }
        None => {
            let sql = "INSERT INTO users (email, name, anonymous) VALUES ($1, $2, $3) RETURNING id";
            let Profile { email, name, anonymous } = profile;
            let user_id: UserId = query(sql).bind(email).bind(name).bind(anonymous).scalar(&mut *tx).await?;
            query(LINK).bind(user_id).bind(issuer).bind(subject).execute(&mut *tx).await?;
            user_id
        }
    };
    Ok(user_id)
}

const OWNER: &str = "SELECT user_id FROM identities WHERE issuer = $1 AND subject = $2";
const LINK: &str = "INSERT INTO identities (user_id, issuer, subject) VALUES ($1, $2, $3)";

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A user's password sign-in.
#[derive(sqlx::FromRow)]
pub struct PasswordRecord {
    pub user_id: UserId,
    pub email: String,
    pub hash: String,
}

/// The password of this login email, compared without regard to ASCII case (as the
/// unique index is).
pub async fn password_by_email(db: &Db, email: &Email) -> Result<Option<PasswordRecord>, AppError> {
    let sql = "SELECT user_id, email, hash FROM passwords WHERE lower(email) = lower($1)";
    Ok(query(sql).bind(email.as_str()).fetch_optional(db).await?)
}

pub async fn password_of_user(db: &Db, user_id: UserId) -> Result<Option<PasswordRecord>, AppError> {
    let sql = "SELECT user_id, email, hash FROM passwords WHERE user_id = $1";
    Ok(query(sql).bind(user_id).fetch_optional(db).await?)
}

/// Creates a local account: the user and its password, or neither.
pub async fn create_password_user(db: &Db, email: &Email, name: Option<&str>, hash: &str) -> Result<UserId, AccountError> {
    let mut tx = begin(db).await?;
    let sql = "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id";
    let user_id: UserId = query(sql).bind(email.as_str()).bind(name).scalar(&mut tx).await.map_err(AppError::from)?;
    insert_password(&mut tx, user_id, email, hash).await?;
    tx.commit().await.map_err(AppError::from)?;
    Ok(user_id)
}

/// Gives an account without a password one (a logi-only user setting a password, signed
/// in as `login`).
pub async fn add_password(db: &Db, login: &Login, email: &Email, hash: &str) -> Result<(), AccountError> {
    let mut tx = begin(db).await?;
    if password_exists(&mut tx, login.user_id).await? {
        return Err(AccountError::PasswordAlreadySet);
    }
    insert_password(&mut tx, login.user_id, email, hash).await?;
    let mut events = Events::default();
    events.record(&mut tx, Occurrence::by(login.user_id, &login.id, Event::PasswordSet)).await?;
    events.commit(tx).await?;
    Ok(())
}

async fn insert_password(tx: &mut Tx, user_id: UserId, email: &Email, hash: &str) -> Result<(), AccountError> {
    let sql = "INSERT INTO passwords (user_id, email, hash) VALUES ($1, $2, $3)";
    let inserted = query(sql).bind(user_id).bind(email.as_str()).bind(hash).execute(&mut *tx).await;
    match inserted {
        Ok(_) => Ok(()),
        Err(error) if is_unique_violation(&error) => Err(AccountError::EmailTaken),
        Err(error) => Err(AppError::from(error).into()),
    }
}

async fn password_exists(tx: &mut Tx, user_id: UserId) -> Result<bool, AppError> {
    let sql = "SELECT EXISTS (SELECT 1 FROM passwords WHERE user_id = $1)";
    Ok(query(sql).bind(user_id).scalar(&mut *tx).await?)
}

/// The same password hashed again (its parameters changed): no event.
pub async fn rehash_password(db: &Db, user_id: UserId, hash: &str) -> Result<(), AppError> {
    replace_hash(db, user_id, hash).await
}

/// A new password, chosen by the user signed in as `login`: written in a transaction with
/// its event, which the caller commits together with the logins the change ends.
pub async fn change_password(db: &Db, login: &Login, hash: &str) -> Result<(Tx, Events), AppError> {
    let mut tx = db.begin().await?;
    replace_hash(&mut tx, login.user_id, hash).await?;
    let mut events = Events::default();
    events.record(&mut tx, Occurrence::by(login.user_id, &login.id, Event::PasswordChanged)).await?;
    Ok((tx, events))
}

async fn replace_hash<'c>(on: impl Into<Exec<'c>>, user_id: UserId, hash: &str) -> Result<(), AppError> {
    let sql = "UPDATE passwords SET hash = $1, updated_at = $2 WHERE user_id = $3";
    query(sql).bind(hash).bind(now()).bind(user_id).execute(on).await?;
    Ok(())
}

/// A logi identity as the account page shows it.
#[derive(sqlx::FromRow)]
pub struct LinkedIdentity {
    pub subject: String,
    pub linked_at: i64,
}

pub async fn identity_of_user(db: &Db, user_id: UserId, issuer: &Issuer) -> Result<Option<LinkedIdentity>, AppError> {
    let sql = "SELECT subject, linked_at FROM identities WHERE user_id = $1 AND issuer = $2";
    Ok(query(sql).bind(user_id).bind(issuer).fetch_optional(db).await?)
}

/// The user this identity is linked to, if any.
pub async fn user_of_identity(db: &Db, issuer: &Issuer, subject: &Subject) -> Result<Option<UserId>, AppError> {
    let sql = "SELECT user_id FROM identities WHERE issuer = $1 AND subject = $2";
    Ok(query(sql).bind(issuer).bind(subject).scalar_optional(db).await?)
}

#[derive(Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    /// This identity was already linked to this user: nothing to do.
    AlreadyLinked,
    /// The identity belongs to another user; nothing changed.
    LinkedToAnotherUser,
    /// The user already has a different identity from this issuer; nothing changed.
    OtherIdentityLinked,
}

/// Links a verified `(issuer, subject)` to the user signed in as `login`, never moving it
/// from another user.
pub async fn link_identity(db: &Db, login: &Login, issuer: &Issuer, subject: &Subject) -> Result<LinkOutcome, AppError> {
    let user_id = login.user_id;
    let mut tx = begin(db).await?;
    let mut events = Events::default();
    let owner: Option<UserId> = query(OWNER).bind(issuer).bind(subject).scalar_optional(&mut tx).await?;
    let outcome = match owner {
        Some(owner) if owner == user_id => LinkOutcome::AlreadyLinked,
        Some(_) => LinkOutcome::LinkedToAnotherUser,
        None => {
            let sql = "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id = $1 AND issuer = $2)";
            let has_one: bool = query(sql).bind(user_id).bind(issuer).scalar(&mut tx).await?;
            if has_one {
                LinkOutcome::OtherIdentityLinked
            } else {
                query(LINK).bind(user_id).bind(issuer).bind(subject).execute(&mut tx).await?;
                events.record(&mut tx, Occurrence::by(login.user_id, &login.id, Event::IdentityLinked)).await?;
                LinkOutcome::Linked
            }
        }
    };
    events.commit(tx).await?;
    Ok(outcome)
}

/// Unlinks the identity from `issuer` of the user signed in as `login`, unless it is the
/// last way to sign in.
pub async fn unlink_identity(db: &Db, login: &Login, issuer: &Issuer) -> Result<(), AccountError> {
    let user_id = login.user_id;
    let mut tx = begin(db).await?;
    if !password_exists(&mut tx, user_id).await? {
        let sql = "SELECT count(*) FROM identities WHERE user_id = $1";
        let identities: i64 = query(sql).bind(user_id).scalar(&mut tx).await.map_err(AppError::from)?;
        if identities <= 1 {
            return Err(AccountError::LastSignInMethod);
        }
    }
    let sql = "DELETE FROM identities WHERE user_id = $1 AND issuer = $2";
    let removed = query(sql).bind(user_id).bind(issuer).execute(&mut tx).await.map_err(AppError::from)?;
    if removed == 0 {
        return Err(AccountError::NotLinked);
    }
    let mut events = Events::default();
    events.record(&mut tx, Occurrence::by(login.user_id, &login.id, Event::IdentityUnlinked)).await?;
    events.commit(tx).await?;
    Ok(())
}

/// Failed sign-in attempts under `key` since `since`: how many, and the oldest's time.
pub async fn attempts_since(tx: &mut Tx, key: &str, since: i64) -> Result<(i64, Option<i64>), AppError> {
    let sql = "SELECT count(*), min(at) FROM sign_in_attempts WHERE key = $1 AND at > $2";
    Ok(query(sql).bind(key).bind(since).fetch_one(tx).await?)
}

/// Records an attempt; its id.
pub async fn insert_attempt(tx: &mut Tx, key: &str, now: i64) -> Result<i64, AppError> {
    Ok(query("INSERT INTO sign_in_attempts (key, at) VALUES ($1, $2) RETURNING id").bind(key).bind(now).scalar(tx).await?)
}

pub async fn delete_attempt(tx: &mut Tx, id: i64) -> Result<(), AppError> {
    query("DELETE FROM sign_in_attempts WHERE id = $1").bind(id).execute(tx).await?;
    Ok(())
}

pub async fn delete_attempts_of(tx: &mut Tx, key: &str) -> Result<(), AppError> {
    query("DELETE FROM sign_in_attempts WHERE key = $1").bind(key).execute(tx).await?;
    Ok(())
}

pub async fn delete_attempts_until(db: &Db, until: i64) -> Result<u64, AppError> {
    Ok(query("DELETE FROM sign_in_attempts WHERE at <= $1").bind(until).execute(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::LoginId;
    use crate::login::store::find_user as find;

    /// A login of `user_id`, as the server functions pass it.
    fn signed(user_id: UserId) -> Login {
        Login { id: LoginId::random(), user_id }
    }

    fn logi() -> Issuer {
        Issuer::new("https://logi")
    }

    fn sub(subject: &str) -> Subject {
        Subject::new(subject)
    }

    use crate::server::db::temp_pool as pool;

    fn profile(email: &str) -> Profile {
        Profile { anonymous: false, email: Some(email.into()), name: None }
    }

    #[tokio::test]
    async fn the_same_subject_signs_into_the_same_user_and_refreshes_the_profile() {
        let (_dir, pool) = pool().await;
        let first = sign_in_with_identity(&pool, &logi(), &sub("sub-1"), &profile("old@example.com")).await.unwrap();
        let again = sign_in_with_identity(&pool, &logi(), &sub("sub-1"), &profile("new@example.com")).await.unwrap();
        assert_eq!(first, again);
        let user = find(&pool, first).await.unwrap().unwrap();
        assert_eq!((user.sub.as_deref(), user.email.as_deref()), (Some("sub-1"), Some("new@example.com")));
    }

    #[tokio::test]
    async fn users_are_never_linked_by_email() {
        let (_dir, pool) = pool().await;
        let a = sign_in_with_identity(&pool, &logi(), &sub("sub-a"), &profile("same@example.com")).await.unwrap();
        let b = sign_in_with_identity(&pool, &logi(), &sub("sub-b"), &profile("same@example.com")).await.unwrap();
        let other_issuer = sign_in_with_identity(&pool, &Issuer::new("https://other"), &sub("sub-a"), &profile("same@example.com")).await.unwrap();
        assert!(a != b && a != other_issuer && b != other_issuer);
    }

    #[tokio::test]
    async fn concurrent_first_sign_ins_of_one_subject_make_one_user() {
        let (_dir, pool) = pool().await;
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { sign_in_with_identity(&pool, &logi(), &sub("sub-race"), &profile("r@example.com")).await.unwrap() })
            })
            .collect();
        let mut ids = Vec::new();
        for handle in handles {
            ids.push(handle.await.unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let users = pool.count("SELECT count(*) FROM users").await.unwrap();
        assert_eq!(users, 1);
    }

    async fn local_user(pool: &Db, email: &str) -> UserId {
        create_password_user(pool, &Email::parse(email).unwrap(), Some("Local"), "$argon2id$test").await.unwrap()
    }

    #[tokio::test]
    async fn emails_of_local_accounts_are_unique_regardless_of_case() {
        let (_dir, pool) = pool().await;
        local_user(&pool, "ada@example.com").await;
        let again = create_password_user(&pool, &Email::parse("ADA@example.com").unwrap(), None, "h").await;
        assert_eq!(again, Err(AccountError::EmailTaken));
        let users = pool.count("SELECT count(*) FROM users").await.unwrap();
        assert_eq!(users, 1, "a half-written user was left behind");
    }

    #[tokio::test]
    async fn linking_attaches_an_identity_once_and_never_steals_one() {
        let (_dir, pool) = pool().await;
        let local = local_user(&pool, "ada@example.com").await;
        let other = sign_in_with_identity(&pool, &logi(), &sub("sub-other"), &profile("ada@example.com")).await.unwrap();
        assert_eq!(link_identity(&pool, &signed(local), &logi(), &sub("sub-other")).await.unwrap(), LinkOutcome::LinkedToAnotherUser);
        assert_eq!(link_identity(&pool, &signed(local), &logi(), &sub("sub-ada")).await.unwrap(), LinkOutcome::Linked);
        assert_eq!(link_identity(&pool, &signed(local), &logi(), &sub("sub-ada")).await.unwrap(), LinkOutcome::AlreadyLinked);
        assert_eq!(link_identity(&pool, &signed(local), &logi(), &sub("sub-second")).await.unwrap(), LinkOutcome::OtherIdentityLinked);
        let sql = "SELECT subject, user_id FROM identities ORDER BY subject";
        let owners: Vec<(String, UserId)> = query(sql).fetch_all(&pool).await.unwrap();
        assert_eq!(owners, vec![("sub-ada".into(), local), ("sub-other".into(), other)]);
        assert_eq!(sign_in_with_identity(&pool, &logi(), &sub("sub-ada"), &profile("x@y.z")).await.unwrap(), local);
    }

    #[tokio::test]
    async fn logi_does_not_overwrite_a_local_accounts_profile() {
        let (_dir, pool) = pool().await;
        let local = local_user(&pool, "ada@example.com").await;
        link_identity(&pool, &signed(local), &logi(), &sub("sub-ada")).await.unwrap();
        sign_in_with_identity(&pool, &logi(), &sub("sub-ada"), &profile("logi@example.com")).await.unwrap();
        let user = find(&pool, local).await.unwrap().unwrap();
        assert_eq!((user.email.as_deref(), user.name.as_deref()), (Some("ada@example.com"), Some("Local")));
    }

    #[tokio::test]
    async fn the_last_way_to_sign_in_cannot_be_unlinked() {
        let (_dir, pool) = pool().await;
        let logi_only = sign_in_with_identity(&pool, &logi(), &sub("sub-1"), &profile("a@example.com")).await.unwrap();
        assert_eq!(unlink_identity(&pool, &signed(logi_only), &logi()).await, Err(AccountError::LastSignInMethod));
        assert!(identity_of_user(&pool, logi_only, &logi()).await.unwrap().is_some());

        add_password(&pool, &signed(logi_only), &Email::parse("a@example.com").unwrap(), "h").await.unwrap();
        assert_eq!(add_password(&pool, &signed(logi_only), &Email::parse("b@example.com").unwrap(), "h").await, Err(AccountError::PasswordAlreadySet));
        assert_eq!(unlink_identity(&pool, &signed(logi_only), &logi()).await, Ok(()));
        assert_eq!(unlink_identity(&pool, &signed(logi_only), &logi()).await, Err(AccountError::NotLinked));
    }

    #[tokio::test]
    async fn deleting_a_user_deletes_its_identities_and_password() {
        let (_dir, pool) = pool().await;
        let local = local_user(&pool, "ada@example.com").await;
        link_identity(&pool, &signed(local), &logi(), &sub("sub-ada")).await.unwrap();
        pool.execute(&format!("DELETE FROM users WHERE id = {}", local.0)).await.unwrap();
        let left = pool.count("SELECT (SELECT count(*) FROM identities) + (SELECT count(*) FROM passwords)").await.unwrap();
        assert_eq!(left, 0);
    }
}
