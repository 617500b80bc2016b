//! API key records this instance reuses for creates (Redis store).
//!
//! A create needs its key's record (PID, quota) before its script runs; read
//! from Redis, that is a round trip of its own. An instance serves many
//! requests (Spin reuses instances), so it keeps the records of the keys it
//! has seen, each with the key's *mark* (`keys::key_mark`), and a create
//! with a cached record passes that mark to its script, which creates only
//! while the mark is unchanged: a revoked key (marked before its record is
//! deleted) or a changed one (its quota; marked after the record is written)
//! creates nothing, and the caller reads the record again. Revocation is
//! therefore as immediate as without the cache.
//!
//! A record is remembered only when it was read, then a create's script saw
//! the mark, then the record was read again unchanged: a change that lands
//! between the first read and the script shows in the second read; one after
//! the script changes the mark the entry carries. That second read is paid
//! only by an instance's second create with a key: the first one only notes
//! the key, so an instance that serves one create (low traffic: idle
//! instances are retired after a second) costs what it did without a cache.
//!
//! Entries live `key_cache_seconds` (a bound on what an instance keeps, not a
//! correctness window) and at most [`CAPACITY`] keys are kept, the one that
//! expires first giving way. Only hashes of secrets are keys here.

use std::cell::RefCell;

use dock_core::Timestamp;
use dock_core::wire::KeyRecord;

/// Most keys one instance remembers.
pub const CAPACITY: usize = 64;

/// A remembered key: its record and the mark it was checked at (or, after
/// one create, nothing yet), and until when.
#[derive(Debug, Clone)]
struct Entry {
    hash: String,
    cached: Option<(KeyRecord, String)>,
    until: Timestamp,
}

/// Remembered key records, by the hash of their secret.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Vec<Entry>,
}

impl KeyCache {
    /// The record and mark of `hash`, if remembered and not expired at `now`.
    pub fn get(&self, hash: &str, now: Timestamp) -> Option<(KeyRecord, String)> {
        self.entries
            .iter()
            .find(|e| e.hash == hash && now < e.until)
            .and_then(|e| e.cached.clone())
    }

    /// After a create that read `hash`'s record: true if an earlier one
    /// (unexpired) already did, so the record is worth caching; else notes
    /// this one until `until`.
    pub fn seen_again(&mut self, hash: &str, now: Timestamp, until: Timestamp) -> bool {
        if self.entries.iter().any(|e| e.hash == hash && now < e.until) {
            return true;
        }
        self.insert(hash, None, now, until);
        false
    }

    /// Remembers `record` at `mark` until `until`, replacing what `hash` had.
    pub fn put(
        &mut self,
        hash: &str,
        record: KeyRecord,
        mark: String,
        now: Timestamp,
        until: Timestamp,
    ) {
        self.insert(hash, Some((record, mark)), now, until);
    }

    /// Replaces `hash`'s entry; when full, expired entries go first, then
    /// the one expiring first.
    fn insert(
        &mut self,
        hash: &str,
        cached: Option<(KeyRecord, String)>,
        now: Timestamp,
        until: Timestamp,
    ) {
        self.entries.retain(|e| e.hash != hash && now < e.until);
        if self.entries.len() >= CAPACITY
            && let Some(i) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].until)
        {
            self.entries.swap_remove(i);
        }
        self.entries.push(Entry {
            hash: hash.to_owned(),
            cached,
            until,
        });
    }

    /// Forgets `hash` (its key changed or was revoked).
    pub fn remove(&mut self, hash: &str) {
        self.entries.retain(|e| e.hash != hash);
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

thread_local! {
    /// This instance's cache (a Wasm instance is one thread; requests that
    /// share it interleave only at awaits, and no borrow spans one).
    static CACHE: RefCell<KeyCache> = RefCell::new(KeyCache::default());
}

/// [`KeyCache::get`] on this instance's cache.
pub fn get(hash: &str, now: Timestamp) -> Option<(KeyRecord, String)> {
    CACHE.with(|c| c.borrow().get(hash, now))
}

/// [`KeyCache::seen_again`] on this instance's cache, noting for `secs`.
pub fn seen_again(hash: &str, now: Timestamp, secs: u64) -> bool {
    CACHE.with(|c| c.borrow_mut().seen_again(hash, now, now.plus_secs(secs)))
}

/// [`KeyCache::put`] on this instance's cache, for `secs` from `now`.
pub fn put(hash: &str, record: KeyRecord, mark: String, now: Timestamp, secs: u64) {
    CACHE.with(|c| {
        c.borrow_mut()
            .put(hash, record, mark, now, now.plus_secs(secs))
    });
}

/// [`KeyCache::remove`] on this instance's cache.
pub fn remove(hash: &str) {
    CACHE.with(|c| c.borrow_mut().remove(hash));
}

#[cfg(test)]
mod tests {
    use super::*;
    use dock_core::quota::Quota;
    use dock_core::{KeyId, Pid};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + secs * 1000)
    }

    fn record(n: u8) -> KeyRecord {
        KeyRecord {
            key_id: KeyId::from_entropy([n; 16]),
            pid: Pid::parse("app").unwrap(),
            quota: Quota {
                limit: u64::from(n),
                window_secs: 60,
            },
            created_at: at(0),
        }
    }

    #[test]
    fn an_entry_is_found_until_it_expires_and_replaced_by_a_newer_one() {
        let mut c = KeyCache::default();
        assert!(c.get("h1", at(0)).is_none());
        c.put("h1", record(1), "3".into(), at(0), at(60));
        assert_eq!(c.get("h1", at(59)), Some((record(1), "3".into())));
        assert!(c.get("h1", at(60)).is_none(), "expired at `until`");
        assert!(c.get("h2", at(1)).is_none());
        c.put("h1", record(2), "4".into(), at(1), at(61));
        assert_eq!(c.get("h1", at(2)), Some((record(2), "4".into())));
        assert_eq!(c.len(), 1);
        c.remove("h1");
        assert!(c.get("h1", at(2)).is_none());
    }

    #[test]
    fn a_key_is_worth_caching_from_its_second_create() {
        let mut c = KeyCache::default();
        assert!(!c.seen_again("h", at(0), at(60)), "first: only noted");
        assert!(c.get("h", at(1)).is_none(), "a note is no record");
        assert!(c.seen_again("h", at(1), at(61)));
        assert!(!c.seen_again("other", at(1), at(61)));
        // A note that expired counts as never seen.
        assert!(!c.seen_again("h", at(70), at(130)));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_one_expiring_first() {
        let mut c = KeyCache::default();
        for i in 0..CAPACITY {
            // Entry i expires at 100 + i seconds.
            c.put(
                &format!("h{i}"),
                record(1),
                String::new(),
                at(0),
                at(100 + i as u64),
            );
        }
        assert_eq!(c.len(), CAPACITY);
        c.put("new", record(2), String::new(), at(1), at(500));
        assert_eq!(c.len(), CAPACITY);
        assert!(
            c.get("h0", at(1)).is_none(),
            "the one expiring first gave way"
        );
        assert!(c.get("h1", at(1)).is_some());
        assert!(c.get("new", at(1)).is_some());
        // At 110 s h1…h10 have expired (h0 is gone): a put drops all ten.
        c.put("later", record(3), String::new(), at(110), at(600));
        assert_eq!(c.len(), CAPACITY - 10 + 1);
        assert!(c.get("h10", at(109)).is_none() && c.get("h11", at(110)).is_some());
    }
}
