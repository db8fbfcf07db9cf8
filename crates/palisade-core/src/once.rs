//! The one-time-use store: claim a token once within its lifetime.
//!
//! A TOTP time step, an OAuth `state`, a refresh token: each must be accepted once and only once,
//! even when two requests carrying it arrive at two service instances in the same millisecond.
//! [`OneTimeStore::claim`] is the one atomic operation that guarantees it; what to do with the
//! answer is the caller's policy.
//!
//! [`MemoryOneTimeStore`] serves one process; `palisade-redis` has a store that serves several.
//! Both pass [`conformance::one_time_store`], which a custom backend should run too.
//!
//! # Errors
//! [`StoreError`]: the backend is unreachable, or (memory) full. Callers should fail closed.

use core::fmt;
use core::future::Future;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::StoreError;
use crate::time::{Clock, SystemClock, UnixTime};

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Claim {
    /// This caller is the first: proceed.
    Claimed,
    /// Someone claimed this token before and its claim has not expired: refuse.
    AlreadyUsed,
}

/// Claims tokens atomically, once each, until they expire.
///
/// `scope` separates uses (`"totp:user-42"`, `"oauth-state"`); `token` is the value to claim
/// (a time step, a token's hash). A claim lasts until `expires_at`; after that the store may
/// forget it, so callers must themselves refuse tokens that are past their lifetime.
///
/// # Implementing
/// A backend needs one atomic "insert if absent, with expiry". Run
/// [`conformance::one_time_store`] against it.
///
/// ```
/// use palisade_core::once::{Claim, OneTimeStore};
/// use palisade_core::time::UnixTime;
/// use palisade_core::StoreError;
/// use std::collections::HashSet;
/// use std::sync::Mutex;
///
/// #[derive(Debug, Default)]
/// struct NeverForgets(Mutex<HashSet<(String, Vec<u8>)>>);
///
/// impl OneTimeStore for NeverForgets {
///     async fn claim(&self, scope: &str, token: &[u8], _expires_at: UnixTime)
///         -> Result<Claim, StoreError>
///     {
///         let fresh = self.0.lock().unwrap().insert((scope.to_owned(), token.to_vec()));
///         Ok(if fresh { Claim::Claimed } else { Claim::AlreadyUsed })
///     }
/// }
/// ```
pub trait OneTimeStore: fmt::Debug + Send + Sync {
    /// Claims `token` in `scope` until `expires_at`.
    ///
    /// # Errors
    /// [`StoreError`] when the backend cannot answer; the caller should then refuse the token.
    fn claim(
        &self,
        scope: &str,
        token: &[u8],
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
}

impl<S: OneTimeStore + ?Sized> OneTimeStore for std::sync::Arc<S> {
    fn claim(
        &self,
        scope: &str,
        token: &[u8],
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim(scope, token, expires_at)
    }
}

const SHARDS: usize = 32;
/// How many claims a shard takes between sweeps of its expired entries.
const SWEEP_EVERY: u32 = 1_024;

/// An in-process [`OneTimeStore`]: sharded maps, expired claims swept as new ones arrive.
///
/// Memory is bounded by `max_entries` (default one million, about 100 bytes each plus the
/// token): when a shard is full even after a sweep, claims fail with [`StoreError::Full`]
/// rather than admit a replay.
#[derive(Debug)]
pub struct MemoryOneTimeStore<C = SystemClock> {
    shards: Box<[Shard]>,
    hasher: RandomState,
    clock: C,
    max_per_shard: usize,
}

#[derive(Debug, Default)]
struct Shard {
    map: Mutex<HashMap<Box<[u8]>, UnixTime>>,
    claims: AtomicU32,
}

impl MemoryOneTimeStore<SystemClock> {
    /// A store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }
}

impl Default for MemoryOneTimeStore<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MemoryOneTimeStore<C> {
    /// A store that reads `clock` to decide which claims have expired.
    pub fn with_clock(clock: C) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
            clock,
            max_per_shard: 1_000_000 / SHARDS,
        }
    }

    /// Caps the number of live claims (rounded up to a multiple of the shard count).
    #[must_use]
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_per_shard = max.div_ceil(SHARDS).max(1);
        self
    }

    /// The synchronous claim; [`OneTimeStore::claim`] calls this and is ready at once.
    ///
    /// # Errors
    /// [`StoreError::Full`] when the shard holds `max_entries / 32` live claims.
    pub fn claim_now(
        &self,
        scope: &str,
        token: &[u8],
        expires_at: UnixTime,
    ) -> Result<Claim, StoreError> {
        let key = entry_key(scope, token);
        let shard_index = usize::try_from(self.hasher.hash_one(&key) % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(shard_index) else {
            return Err(StoreError::Full);
        };
        let now = self.clock.now();
        let mut map = shard.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&key).is_some_and(|&until| until > now) {
            return Ok(Claim::AlreadyUsed);
        }
        let claims = shard.claims.fetch_add(1, Ordering::Relaxed);
        if claims % SWEEP_EVERY == 0 || map.len() >= self.max_per_shard {
            map.retain(|_, until| *until > now);
        }
        if map.len() >= self.max_per_shard {
            return Err(StoreError::Full);
        }
        map.insert(key, expires_at);
        Ok(Claim::Claimed)
    }

    /// The number of claims held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.map.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no claim is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<C: Clock> OneTimeStore for MemoryOneTimeStore<C> {
    fn claim(
        &self,
        scope: &str,
        token: &[u8],
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        core::future::ready(self.claim_now(scope, token, expires_at))
    }
}

/// Scope and token in one unambiguous byte string: the scope's length first.
fn entry_key(scope: &str, token: &[u8]) -> Box<[u8]> {
    let len = u32::try_from(scope.len()).unwrap_or(u32::MAX);
    let mut key = Vec::with_capacity(
        4usize
            .saturating_add(scope.len())
            .saturating_add(token.len()),
    );
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(scope.as_bytes());
    key.extend_from_slice(token);
    key.into_boxed_slice()
}

/// The conformance suite every [`OneTimeStore`] backend must pass.
pub mod conformance {
    use super::{Claim, OneTimeStore};
    use crate::random::{SecureRandom, SystemRandom};
    use crate::time::UnixTime;
    use core::time::Duration;

    /// Checks the claim semantics of `store`, whose clock reads about `now`.
    ///
    /// Uses a fresh random scope on every run, so it is safe against a shared server.
    ///
    /// # Panics
    /// When the store breaks the contract: that is the point of a conformance test.
    #[allow(clippy::panic, clippy::missing_panics_doc)]
    pub async fn one_time_store<S: OneTimeStore + ?Sized>(store: &S, now: UnixTime) {
        let mut run = [0u8; 8];
        SystemRandom.fill(&mut run).unwrap_or_default();
        let scope = format!("conformance-{}", u64::from_be_bytes(run));
        let other_scope = format!("{scope}-other");
        let later = now.saturating_add(Duration::from_secs(60));

        let first = store.claim(&scope, b"123456", later).await;
        assert_eq!(
            first.ok(),
            Some(Claim::Claimed),
            "a fresh token must be claimed"
        );
        let again = store.claim(&scope, b"123456", later).await;
        assert_eq!(
            again.ok(),
            Some(Claim::AlreadyUsed),
            "a claimed token must be refused"
        );
        let other_token = store.claim(&scope, b"654321", later).await;
        assert_eq!(
            other_token.ok(),
            Some(Claim::Claimed),
            "tokens must be independent"
        );
        let other = store.claim(&other_scope, b"123456", later).await;
        assert_eq!(
            other.ok(),
            Some(Claim::Claimed),
            "scopes must be independent"
        );
        // A scope that ends where another's token begins must not collide with it.
        let a = store.claim(&format!("{scope}-x"), b"y1", later).await;
        let b = store.claim(&format!("{scope}-xy"), b"1", later).await;
        assert_eq!(
            (a.ok(), b.ok()),
            (Some(Claim::Claimed), Some(Claim::Claimed))
        );
        let empty = store.claim(&scope, b"", later).await;
        assert_eq!(
            empty.ok(),
            Some(Claim::Claimed),
            "an empty token is a token"
        );
        let binary = store.claim(&scope, &[0, 255, 10, 13], later).await;
        assert_eq!(binary.ok(), Some(Claim::Claimed));
        let binary = store.claim(&scope, &[0, 255, 10, 13], later).await;
        assert_eq!(
            binary.ok(),
            Some(Claim::AlreadyUsed),
            "binary tokens must be kept exactly"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;
    use crate::time::FakeClock;
    use core::time::Duration;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn memory_store_passes_conformance() {
        let store = MemoryOneTimeStore::new();
        block_on(conformance::one_time_store(&store, SystemClock.now()));
    }

    #[test]
    fn claims_expire() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000));
        let store = MemoryOneTimeStore::with_clock(clock.clone());
        let until = UnixTime::from_secs(1_030);
        assert_eq!(store.claim_now("s", b"t", until).unwrap(), Claim::Claimed);
        clock.advance(Duration::from_secs(29));
        assert_eq!(
            store.claim_now("s", b"t", until).unwrap(),
            Claim::AlreadyUsed
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.claim_now("s", b"t", until).unwrap(), Claim::Claimed);
    }

    #[test]
    fn full_store_fails_closed_and_sweeps() {
        let clock = FakeClock::new(UnixTime::from_secs(0));
        let store = MemoryOneTimeStore::with_clock(clock.clone()).max_entries(SHARDS);
        let until = UnixTime::from_secs(10);
        let mut full = 0;
        for i in 0u32..200 {
            match store.claim_now("s", &i.to_be_bytes(), until) {
                Ok(Claim::Claimed) => {}
                Err(StoreError::Full) => full += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(full > 0, "a capped store must refuse once full");
        assert!(store.len() <= SHARDS);
        clock.advance(Duration::from_secs(11));
        // Every old claim has expired, so each shard is swept on its next claim and takes
        // exactly one new claim before it is full again. 2000 keys reach all 32 shards
        // except with probability below 1e-26.
        let later = UnixTime::from_secs(20);
        let mut claimed = 0;
        for i in 1000u32..3000 {
            match store.claim_now("s", &i.to_be_bytes(), later) {
                Ok(Claim::Claimed) => claimed += 1,
                Err(StoreError::Full) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(claimed, SHARDS);
        assert_eq!(store.len(), SHARDS);
    }

    #[test]
    fn concurrent_claims_have_one_winner() {
        let store = Arc::new(MemoryOneTimeStore::new());
        let until = SystemClock.now().saturating_add(Duration::from_secs(60));
        for round in 0u32..50 {
            let winners = Arc::new(AtomicUsize::new(0));
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (store, winners, barrier) =
                        (store.clone(), winners.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        if store
                            .claim_now("race", &round.to_be_bytes(), until)
                            .unwrap()
                            == Claim::Claimed
                        {
                            winners.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(winners.load(Ordering::SeqCst), 1, "round {round}");
        }
    }
}
