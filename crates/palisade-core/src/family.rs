//! The refresh-token family store: remember revoked token families until they expire.
//!
//! Refresh-token rotation (`palisade-token`) revokes a whole *family* (the chain of tokens
//! descending from one sign-in) when one of its tokens is presented twice. [`FamilyStore`] keeps
//! those revocations, and records each token's rotation once ([`FamilyStore::rotate`]) with the
//! time it happened, so that a second redemption can be told apart as a benign race (inside the
//! reuse interval) or a reuse. [`MemoryFamilyStore`] serves one process, `palisade-redis` has a
//! store that serves several. Every backend should pass [`conformance::family_store`].
//!
//! # Errors
//! [`StoreError`]: the backend is unreachable, or (memory) full. Callers should fail closed.

use core::fmt;
use core::future::Future;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::StoreError;
use crate::time::{Clock, SystemClock, UnixTime};

/// A token family: the chain of refresh tokens that descends from one sign-in. Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenFamily([u8; 16]);

impl TokenFamily {
    /// The family's 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A family from its bytes (as kept by the application, to revoke it at sign-out).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for TokenFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TokenFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenFamily({self})")
    }
}

/// The answer to [`FamilyStore::rotate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Rotation {
    /// This caller is the first to rotate the token: it was recorded at the given time.
    First,
    /// The token was rotated before, at `first_at` (the time the first caller passed).
    Again {
        /// When the first rotation was recorded.
        first_at: UnixTime,
    },
}

/// Remembers revoked token families and the rotation of each token.
///
/// # Implementing
/// Three operations, each one atomic step. `revoke` must be durable for as long as `until`
/// (afterwards every token of the family has expired anyway); so must `rotate`'s record.
pub trait FamilyStore: fmt::Debug + Send + Sync {
    /// Records that `token` (a token's 16-byte id within `family`) was rotated at `at`, unless
    /// a rotation is already recorded: then answers when that first one was. One atomic
    /// "insert if absent, else read", kept until `until`.
    ///
    /// # Errors
    /// [`StoreError`] when the backend cannot answer.
    fn rotate(
        &self,
        family: &TokenFamily,
        token: &[u8; 16],
        at: UnixTime,
        until: UnixTime,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;

    /// Marks `family` revoked until `until`.
    ///
    /// # Errors
    /// [`StoreError`] when the backend cannot answer.
    fn revoke(
        &self,
        family: &TokenFamily,
        until: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether `family` is revoked.
    ///
    /// # Errors
    /// [`StoreError`] when the backend cannot answer.
    fn is_revoked(
        &self,
        family: &TokenFamily,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<S: FamilyStore + ?Sized> FamilyStore for Arc<S> {
    fn rotate(
        &self,
        family: &TokenFamily,
        token: &[u8; 16],
        at: UnixTime,
        until: UnixTime,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send {
        (**self).rotate(family, token, at, until)
    }

    fn revoke(
        &self,
        family: &TokenFamily,
        until: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).revoke(family, until)
    }

    fn is_revoked(
        &self,
        family: &TokenFamily,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).is_revoked(family)
    }
}

/// An in-process [`FamilyStore`]; expired entries are swept as new ones arrive. Bounded by
/// `max_entries` (default 1,000,000) revocations and as many rotation records: when full even
/// after a sweep, `revoke` and `rotate` fail with [`StoreError::Full`] (and redemption fails
/// closed).
#[derive(Debug)]
pub struct MemoryFamilyStore<C = SystemClock> {
    revoked: Mutex<HashMap<TokenFamily, UnixTime>>,
    rotations: Mutex<HashMap<(TokenFamily, [u8; 16]), RotationRecord>>,
    clock: C,
    max_entries: usize,
}

/// A token's first rotation and when its record may be forgotten.
#[derive(Debug, Clone, Copy)]
struct RotationRecord {
    first_at: UnixTime,
    until: UnixTime,
}

impl MemoryFamilyStore<SystemClock> {
    /// A store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }
}

impl Default for MemoryFamilyStore<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MemoryFamilyStore<C> {
    /// A store that reads `clock` to forget revocations past their end.
    pub fn with_clock(clock: C) -> Self {
        Self {
            revoked: Mutex::new(HashMap::new()),
            rotations: Mutex::new(HashMap::new()),
            clock,
            max_entries: 1_000_000,
        }
    }

    /// Caps the number of revoked families held (and of rotation records).
    #[must_use]
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// The synchronous revoke.
    ///
    /// # Errors
    /// [`StoreError::Full`].
    pub fn revoke_now(&self, family: &TokenFamily, until: UnixTime) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut map = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max_entries {
            map.retain(|_, end| *end > now);
        }
        if map.len() >= self.max_entries && !map.contains_key(family) {
            return Err(StoreError::Full);
        }
        let end = map.entry(*family).or_insert(until);
        *end = (*end).max(until);
        Ok(())
    }

    /// The synchronous rotation record.
    ///
    /// # Errors
    /// [`StoreError::Full`].
    pub fn rotate_now(
        &self,
        family: &TokenFamily,
        token: &[u8; 16],
        at: UnixTime,
        until: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let now = self.clock.now();
        let mut map = self
            .rotations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (*family, *token);
        if let Some(record) = map.get(&key).filter(|r| r.until > now) {
            return Ok(Rotation::Again {
                first_at: record.first_at,
            });
        }
        if map.len() >= self.max_entries {
            map.retain(|_, r| r.until > now);
        }
        if map.len() >= self.max_entries {
            return Err(StoreError::Full);
        }
        map.insert(
            key,
            RotationRecord {
                first_at: at,
                until,
            },
        );
        Ok(Rotation::First)
    }

    /// The synchronous check.
    pub fn is_revoked_now(&self, family: &TokenFamily) -> bool {
        let now = self.clock.now();
        self.revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(family)
            .is_some_and(|end| *end > now)
    }
}

impl<C: Clock> FamilyStore for MemoryFamilyStore<C> {
    fn rotate(
        &self,
        family: &TokenFamily,
        token: &[u8; 16],
        at: UnixTime,
        until: UnixTime,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send {
        core::future::ready(self.rotate_now(family, token, at, until))
    }

    fn revoke(
        &self,
        family: &TokenFamily,
        until: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        core::future::ready(self.revoke_now(family, until))
    }

    fn is_revoked(
        &self,
        family: &TokenFamily,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        core::future::ready(Ok(self.is_revoked_now(family)))
    }
}

/// The conformance suite every [`FamilyStore`] backend must pass.
pub mod conformance {
    use super::{FamilyStore, Rotation, TokenFamily};
    use crate::random::{SecureRandom, SystemRandom};
    use crate::time::UnixTime;
    use core::time::Duration;

    /// Checks the contract of [`FamilyStore`] on `store`, whose clock reads about `now`.
    ///
    /// Uses fresh random families, so it is safe against a shared server.
    ///
    /// # Panics
    /// When the store breaks the contract: that is the point of a conformance test.
    #[allow(clippy::panic, clippy::missing_panics_doc)]
    pub async fn family_store<S: FamilyStore + ?Sized>(store: &S, now: UnixTime) {
        let family = || {
            let mut bytes = [0u8; 16];
            SystemRandom.fill(&mut bytes).unwrap_or_default();
            TokenFamily::from_bytes(bytes)
        };
        let (a, b) = (family(), family());
        let later = now.saturating_add(Duration::from_secs(60));
        assert_eq!(
            store.is_revoked(&a).await.ok(),
            Some(false),
            "a family is not revoked until revoked"
        );
        assert!(store.revoke(&a, later).await.is_ok(), "revoke answers");
        assert_eq!(store.is_revoked(&a).await.ok(), Some(true), "revoked");
        assert_eq!(
            store.is_revoked(&b).await.ok(),
            Some(false),
            "families are independent"
        );
        // Revoking again, even with an earlier end, keeps it revoked.
        assert!(
            store
                .revoke(&a, now.saturating_add(Duration::from_secs(1)))
                .await
                .is_ok()
        );
        assert_eq!(store.is_revoked(&a).await.ok(), Some(true), "still revoked");

        // Rotation records: the first caller records its time, later ones read it back.
        let token = [0x5a; 16];
        let first = UnixTime::from_millis(now.as_millis().saturating_sub(1_234));
        assert_eq!(
            store.rotate(&b, &token, first, later).await.ok(),
            Some(Rotation::First),
            "the first rotation is recorded"
        );
        assert_eq!(
            store.rotate(&b, &token, now, later).await.ok(),
            Some(Rotation::Again { first_at: first }),
            "a second rotation reads the first one's time, to the millisecond"
        );
        assert_eq!(
            store.rotate(&a, &token, now, later).await.ok(),
            Some(Rotation::First),
            "records are per family"
        );
        assert_eq!(
            store.rotate(&b, &[0xa5; 16], now, later).await.ok(),
            Some(Rotation::First),
            "records are per token"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;
    use crate::time::FakeClock;
    use core::time::Duration;

    #[test]
    fn memory_store_passes_conformance() {
        let store = MemoryFamilyStore::new();
        block_on(conformance::family_store(&store, SystemClock.now()));
    }

    #[test]
    fn memory_family_store_forgets_after_the_end() {
        let clock = FakeClock::new(UnixTime::from_secs(10));
        let store = MemoryFamilyStore::with_clock(clock.clone()).max_entries(1);
        let a = TokenFamily::from_bytes([1; 16]);
        store.revoke_now(&a, UnixTime::from_secs(20)).unwrap();
        assert!(store.is_revoked_now(&a));
        assert!(matches!(
            store.revoke_now(&TokenFamily::from_bytes([2; 16]), UnixTime::from_secs(20)),
            Err(StoreError::Full)
        ));
        clock.advance(Duration::from_secs(10));
        assert!(!store.is_revoked_now(&a));
        store
            .revoke_now(&TokenFamily::from_bytes([2; 16]), UnixTime::from_secs(40))
            .unwrap();
    }
}
