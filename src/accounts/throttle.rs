//! Throttling of password checks, per account and per client address, and a plain
//! rate limit ([`take`], the native exchange's), in the database so they survive
//! restarts and are shared by every replica.
//!
//! An attempt is recorded *before* the password is checked, in the same transaction
//! that counts the recent ones, so concurrent guesses cannot slip past the limit. A
//! successful check deletes its attempt and the account's earlier failures; every
//! other attempt stays and counts as a failure until it leaves the window.

use super::store;
use crate::server::db::{Db, Tx};
use crate::server::unix_now as now;
use crate::server::AppError;

pub const WINDOW_SECS: i64 = 15 * 60;
/// Failures allowed per account within the window.
pub const MAX_PER_ACCOUNT: i64 = 5;
/// Failures allowed per client address within the window: higher, because people
/// behind one NAT share an address.
pub const MAX_PER_ADDRESS: i64 = 20;

/// The throttling buckets of one password check.
pub struct Keys {
    account: String,
    address: String,
}

impl Keys {
    /// `account` is the normalised login email (case-folded, as uniqueness is).
    pub fn new(account: &str, address: &str) -> Self {
        Self { account: format!("account:{}", account.to_lowercase()), address: format!("address:{address}") }
    }

    fn with_limits(&self) -> [(&str, i64); 2] {
        [(&self.account, MAX_PER_ACCOUNT), (&self.address, MAX_PER_ADDRESS)]
    }
}

#[derive(Debug)]
pub enum Admission {
    /// Go ahead; the attempt is recorded under these row ids.
    Allowed(Vec<i64>),
    Throttled {
        retry_after_minutes: u32,
    },
}

/// Counting and recording hold this lock (shared by replicas on Postgres).
const LOCK: &str = "sign-in-attempts";

/// Records an attempt unless one of the keys is at its limit.
pub async fn admit(db: &Db, keys: &Keys) -> Result<Admission, AppError> {
    let mut tx = db.begin_locked(LOCK).await?;
    for (key, limit) in keys.with_limits() {
        if let Err(free_in_secs) = room(&mut tx, key, limit, WINDOW_SECS).await? {
            return Ok(Admission::Throttled { retry_after_minutes: ((free_in_secs + 59) / 60).max(1) as u32 });
        }
    }
    let mut ids = Vec::with_capacity(2);
    for (key, _) in keys.with_limits() {
        ids.push(store::insert_attempt(&mut tx, key, now()).await?);
    }
    tx.commit().await?;
    Ok(Admission::Allowed(ids))
}

/// `Ok` when `key` has fewer than `limit` attempts within the window, else
/// `Err(seconds until the oldest leaves it)`.
async fn room(tx: &mut Tx, key: &str, limit: i64, window_secs: i64) -> Result<Result<(), i64>, AppError> {
    let now = now();
    let (count, oldest) = store::attempts_since(tx, key, now - window_secs).await?;
    Ok(if count < limit { Ok(()) } else { Err((oldest.unwrap_or(now) + window_secs - now).max(1)) })
}

/// A rate limit: records one use of `key` unless it had `limit` uses within the last
/// `window_secs`; then `Err(seconds to wait)`. Check and record are one transaction.
pub async fn take(db: &Db, key: &str, limit: i64, window_secs: i64) -> Result<Result<(), i64>, AppError> {
    let mut tx = db.begin_locked(LOCK).await?;
    if let Err(wait) = room(&mut tx, key, limit, window_secs).await? {
        return Ok(Err(wait));
    }
    store::insert_attempt(&mut tx, key, now()).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// The password was right: forget this attempt and the account's failures.
pub async fn succeeded(db: &Db, keys: &Keys, attempt: &[i64]) -> Result<(), AppError> {
    let mut tx = db.begin().await?;
    for id in attempt {
        store::delete_attempt(&mut tx, *id).await?;
    }
    store::delete_attempts_of(&mut tx, &keys.account).await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes attempts that left the window (run periodically).
pub async fn delete_old_attempts(db: &Db) -> Result<u64, AppError> {
    store::delete_attempts_until(db, now() - WINDOW_SECS).await
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::server::db::temp_pool as pool;

    async fn fail(pool: &Db, keys: &Keys) -> Admission {
        admit(pool, keys).await.unwrap()
    }

    #[tokio::test]
    async fn the_sixth_failure_for_an_account_is_refused_with_a_wait_time() {
        let (_dir, pool) = pool().await;
        for n in 0..MAX_PER_ACCOUNT {
            // A different address each time: the account limit alone must hold.
            assert!(matches!(fail(&pool, &Keys::new("a@x.io", &format!("10.0.0.{n}"))).await, Admission::Allowed(_)));
        }
        let refused = fail(&pool, &Keys::new("A@X.IO", "10.0.0.99")).await;
        assert!(matches!(refused, Admission::Throttled { retry_after_minutes: 15 }), "{refused:?}");
        assert!(matches!(fail(&pool, &Keys::new("b@x.io", "10.0.0.99")).await, Admission::Allowed(_)), "another account was throttled");
    }

    #[tokio::test]
    async fn one_address_guessing_many_accounts_is_refused() {
        let (_dir, pool) = pool().await;
        for n in 0..MAX_PER_ADDRESS {
            assert!(matches!(fail(&pool, &Keys::new(&format!("u{n}@x.io"), "10.1.1.1")).await, Admission::Allowed(_)));
        }
        assert!(matches!(fail(&pool, &Keys::new("fresh@x.io", "10.1.1.1")).await, Admission::Throttled { .. }));
        assert!(matches!(fail(&pool, &Keys::new("fresh@x.io", "10.1.1.2")).await, Admission::Allowed(_)));
    }

    #[tokio::test]
    async fn a_success_clears_the_account_but_not_the_address() {
        let (_dir, pool) = pool().await;
        let keys = Keys::new("a@x.io", "10.2.2.2");
        for _ in 0..MAX_PER_ACCOUNT - 1 {
            fail(&pool, &keys).await;
        }
        let Admission::Allowed(attempt) = fail(&pool, &keys).await else { panic!("throttled too early") };
        succeeded(&pool, &keys, &attempt).await.unwrap();
        let left: Vec<(String,)> = crate::server::db::query("SELECT key FROM sign_in_attempts").fetch_all(&pool).await.unwrap();
        let left: Vec<String> = left.into_iter().map(|(key,)| key).collect();
        assert_eq!(left, vec!["address:10.2.2.2"; 4]);
        assert!(matches!(fail(&pool, &keys).await, Admission::Allowed(_)));
    }

    #[tokio::test]
    async fn concurrent_guesses_cannot_exceed_the_limit() {
        let (_dir, pool) = pool().await;
        let tasks: Vec<_> = (0..12)
            .map(|n| {
                let pool = pool.clone();
                tokio::spawn(async move { admit(&pool, &Keys::new("race@x.io", &format!("10.3.3.{n}"))).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            allowed += matches!(task.await.unwrap(), Admission::Allowed(_)) as i64;
        }
        assert_eq!(allowed, MAX_PER_ACCOUNT);
    }

    #[tokio::test]
    async fn a_rate_limit_counts_per_key_within_its_window() {
        let (_dir, pool) = pool().await;
        for _ in 0..3 {
            assert_eq!(take(&pool, "exchange:10.5.5.5", 3, 60).await.unwrap(), Ok(()));
        }
        let refused = take(&pool, "exchange:10.5.5.5", 3, 60).await.unwrap();
        assert!(matches!(refused, Err(wait) if (1..=60).contains(&wait)), "{refused:?}");
        assert_eq!(take(&pool, "exchange:10.5.5.6", 3, 60).await.unwrap(), Ok(()));
        pool.execute("UPDATE sign_in_attempts SET at = at - 60").await.unwrap();
        assert_eq!(take(&pool, "exchange:10.5.5.5", 3, 60).await.unwrap(), Ok(()), "the window did not move");
    }

    #[tokio::test]
    async fn attempts_leave_the_window_and_are_swept() {
        let (_dir, pool) = pool().await;
        let keys = Keys::new("a@x.io", "10.4.4.4");
        for _ in 0..MAX_PER_ACCOUNT {
            fail(&pool, &keys).await;
        }
        pool.execute(&format!("UPDATE sign_in_attempts SET at = at - {WINDOW_SECS}")).await.unwrap();
        assert_eq!(delete_old_attempts(&pool).await.unwrap(), 2 * MAX_PER_ACCOUNT as u64);
        assert!(matches!(fail(&pool, &keys).await, Admission::Allowed(_)));
    }
}
