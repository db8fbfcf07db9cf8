//! A local cache of keys known to be over their limit until their retry-after, so a limiter in
//! front of a remote store answers repeated denials without a round trip.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

use palisade_core::time::UnixTime;

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<Box<[u8]>, (UnixTime, u64), foldhash::fast::RandomState>>;

/// Keys denied until an instant. Bounded: a full shard drops its expired entries, then stops
/// caching (a cache miss only costs a round trip).
#[derive(Debug)]
pub(crate) struct DenyCache {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    max_per_shard: usize,
}

impl DenyCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        let hasher = foldhash::fast::RandomState::default();
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(hasher.clone())))
                .collect(),
            hasher,
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &[u8]) -> Option<&Shard> {
        let index = usize::try_from((self.hasher.hash_one(key) >> 40) % SHARDS as u64).ok()?;
        self.shards.get(index)
    }

    /// Until when `key` is denied, with the limit it was denied under, if it is still.
    pub(crate) fn denied_until(&self, key: &[u8], now: UnixTime) -> Option<(UnixTime, u64)> {
        let shard = self.shard(key)?;
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(key) {
            Some(&(until, limit)) if until > now => Some((until, limit)),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn insert(&self, key: &[u8], until: UnixTime, limit: u64, now: UnixTime) {
        let Some(shard) = self.shard(key) else { return };
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max_per_shard {
            map.retain(|_, (u, _)| *u > now);
            if map.len() >= self.max_per_shard {
                return;
            }
        }
        map.insert(key.into(), (until, limit));
    }

    pub(crate) fn remove(&self, key: &[u8]) {
        if let Some(shard) = self.shard(key) {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
        }
    }
}
