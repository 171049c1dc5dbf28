//! Small in-process caches that keep SQLite off the hot path of every request.
//!
//! Everything that changes what they hold goes through this process (one instance per
//! SQLite database), and those code paths update or drop the entries, so a session
//! that is ended stops working at once. Entries also expire after a short time-to-live,
//! which bounds how long an out-of-band change to the database (an administrator
//! deleting a user with `sqlite3`) takes to be seen. Each cache holds at most
//! `capacity` entries; when full, expired entries go, and if that is not enough, all.

use async_trait::async_trait;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let mut entries = self.entries();
        match entries.get(key) {
            Some((stored, value)) if stored.elapsed() < self.ttl => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.entries();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn remove<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: Borrow<Q>,
    {
        self.entries().remove(key);
    }

    /// Drops every entry that matches.
    pub fn remove_where(&self, matches: impl Fn(&K, &V) -> bool) {
        self.entries().retain(|key, (_, value)| !matches(key, value));
    }
}

/// The in-memory half of tower-sessions' `CachingSessionStore` in front of the SQLite
/// store: a session record read once is served from memory until it expires.
#[derive(Clone)]
pub struct SessionCache(Arc<TtlCache<Id, Record>>);

impl Default for SessionCache {
    fn default() -> Self {
        Self(Arc::new(TtlCache::new(Duration::from_secs(300), 100_000)))
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCache")
    }
}

#[async_trait]
impl SessionStore for SessionCache {
    /// The SQLite store has already created the record with a unique id; keep a copy.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.save(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.0.insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let record = self.0.get(id).filter(|record| record.expiry_date > OffsetDateTime::now_utc());
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_removed_by_value() {
        let cache = TtlCache::new(Duration::from_millis(50), 10);
        cache.insert("a", 1);
        cache.insert("b", 2);
        assert_eq!((cache.get(&"a"), cache.get(&"b")), (Some(1), Some(2)));
        cache.remove_where(|_, v| *v == 2);
        assert_eq!(cache.get(&"b"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&"a"), None);
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.insert(1, "one");
        cache.insert(2, "two");
        cache.insert(3, "three");
        assert_eq!(cache.get(&3), Some("three"));
        assert!(cache.entries().len() <= 2);
    }
}
