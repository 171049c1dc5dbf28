//! The in-process caches of logins: bounded (quick_cache's S3-FIFO evicts the least
//! useful entries past capacity) and expiring (an entry older than its time to live
//! reads as absent). Chosen over moka after measuring `/api/auth/me`: moka's
//! bookkeeping per read cost ~7 % of the throughput of that route on two cores.

use quick_cache::sync::Cache;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Login rows, users, session records and opened tokens are served from memory for at
/// most this long; every change this process makes drops its entries at once, and a
/// change another replica makes is seen within this time.
pub const CACHE_TTL: Duration = Duration::from_millis(500);

pub struct Expiring<K, V> {
    entries: Cache<K, (Instant, V)>,
    ttl: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> Expiring<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { entries: Cache::new(capacity), ttl }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.entries.get(key).filter(|(stored, _)| stored.elapsed() < self.ttl).map(|(_, value)| value)
    }

    pub fn insert(&self, key: K, value: V) {
        self.entries.insert(key, (Instant::now(), value));
    }

    pub fn remove(&self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops every entry for which `keep` is false.
    pub fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        self.entries.retain(|key, (_, value)| keep(key, value));
    }

    /// Drops the expired entries. Without it they stay until capacity evicts them: the soak
    /// saw RSS creep (~0.3 MB a minute) with the entries of logins long ended.
    pub fn purge_expired(&self) {
        self.entries.retain(|_, (stored, _)| stored.elapsed() < self.ttl);
    }

    /// Entries held, expired ones included until they are evicted or replaced.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_can_be_removed_by_value_and_stay_bounded() {
        let cache = Expiring::new(100, Duration::from_millis(50));
        cache.insert("a", 1);
        cache.insert("b", 2);
        assert_eq!((cache.get(&"a"), cache.get(&"b")), (Some(1), Some(2)));
        cache.retain(|_, v| *v != 2);
        assert_eq!(cache.get(&"b"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&"a"), None);
        cache.insert("c", 3);
        cache.purge_expired();
        assert_eq!((cache.len(), cache.get(&"c")), (1, Some(3)), "the expired entry is still held");

        let small = Expiring::new(10, Duration::from_secs(60));
        for n in 0..1000 {
            small.insert(n, n);
        }
        assert!(small.len() <= 20, "{}", small.len());
    }
}
