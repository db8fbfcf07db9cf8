//! The keyed in-memory limiter: synchronous, sharded, bounded, for one process.
//!
//! [`MemoryLimiter`] checks keys (user ids, IP addresses, API keys, composites as bytes) against
//! a quota chosen per key by a [`QuotaResolver`]. Its state lives in a
//! [`MemoryRateStore`]: 64 independently locked shards (no global lock on the hot path), a
//! randomly seeded hasher, idle keys swept as the table grows, and a hard cap on keys (default
//! one million) kept by evicting expired, then least-recently-used keys, so a flood of new keys
//! can neither grow it without bound nor lock newcomers out. The bytes per key are documented on
//! [`MemoryRateStore`]: 20 to 39 bytes of table for a counter key of any length (a 16-byte
//! slot, four to a cache line; 38 to 75 once a window's cost passes 65 535), 55 to 110 for a
//! log key plus 8 bytes per entry, and 8 to 16 bytes of eviction order.
//!
//! # Errors
//! None today: a full table makes room. Should a store fail, [`RateLimitError::Unavailable`]
//! carries a [`fallback`](RateLimitError::fallback) that follows the [`FailPolicy`] (closed by
//! default).
//!
//! # Security
//! Every check is one atomic operation on the key's state, so concurrent callers never admit
//! more than the limit together.

use core::fmt;
use std::sync::Arc;

use palisade_core::audit::AuditSink;
use palisade_core::rate::RateOp;
use palisade_core::time::{Clock, UnixTime};

use crate::FastClock;
use crate::RateLimitError;
use crate::decision::{Decision, counter_decision_at, decide};
use crate::limiter::{FailPolicy, Reporter};
use crate::quota::{Algorithm, Quota, QuotaResolver, SharedQuota};
use crate::store::MemoryRateStore;

/// A keyed, sharded, bounded in-process rate limiter.
///
/// ```
/// use palisade_ratelimit::{MemoryLimiter, Quota};
///
/// let limiter = MemoryLimiter::new(Quota::per_minute(2));
/// assert!(limiter.check(b"203.0.113.9").unwrap().is_allowed());
/// assert!(limiter.check(b"203.0.113.9").unwrap().is_allowed());
/// let third = limiter.check(b"203.0.113.9").unwrap();
/// assert!(!third.is_allowed());
/// assert!(third.retry_after().is_some());
/// ```
pub struct MemoryLimiter<C = FastClock> {
    store: MemoryRateStore<C, foldhash::fast::RandomState>,
    resolver: Arc<dyn QuotaResolver>,
    shared: Option<Arc<SharedQuota>>,
    fail: FailPolicy,
    reporter: Reporter,
}

impl MemoryLimiter<FastClock> {
    /// A limiter applying `quota` to every key, on a [`FastClock`].
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, FastClock::new())
    }

    /// A limiter asking `resolver` for each key's quota, on a [`FastClock`].
    pub fn with_resolver(resolver: impl QuotaResolver + 'static) -> Self {
        Self::with_resolver_and_clock(resolver, FastClock::new())
    }
}

impl<C: Clock> MemoryLimiter<C> {
    /// A limiter applying `quota` to every key, reading `clock`.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let shared = Arc::new(SharedQuota::new(quota));
        let mut limiter = Self::with_resolver_and_clock(shared.clone(), clock);
        limiter.shared = Some(shared);
        limiter
    }

    /// A limiter asking `resolver` for each key's quota, reading `clock`.
    pub fn with_resolver_and_clock(resolver: impl QuotaResolver + 'static, clock: C) -> Self {
        Self {
            store: MemoryRateStore::with_clock_and_hasher(
                clock,
                foldhash::fast::RandomState::default(),
            ),
            resolver: Arc::new(resolver),
            shared: None,
            fail: FailPolicy::Closed,
            reporter: Reporter::none(),
        }
    }

    /// Caps the number of keys tracked (default one million).
    #[must_use]
    pub fn max_keys(mut self, max: usize) -> Self {
        self.store = self.store.max_keys(max);
        self
    }

    /// What to decide should the store fail (default [`FailPolicy::Closed`]); a full table is
    /// not a failure: it makes room.
    #[must_use]
    pub fn fail_policy(mut self, fail: FailPolicy) -> Self {
        self.fail = fail;
        self
    }

    /// Records each denial as [`Action::RateLimitExceeded`](palisade_core::audit::Action) in
    /// `sink`, naming the policy `policy`.
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>, policy: &str) -> Self {
        self.reporter = Reporter::new(sink, policy);
        self
    }

    /// Replaces the quota of a limiter built with one quota (returns false, changing nothing,
    /// for a limiter built with a resolver, whose resolver decides).
    pub fn set_quota(&self, quota: Quota) -> bool {
        self.shared.as_ref().map(|s| s.set(quota)).is_some()
    }

    /// Spends one unit for `key` now.
    ///
    /// # Errors
    /// None today: a full table makes room (see [`MemoryRateStore`]); the `Result` is the
    /// shape of every limiter, should a store ever fail.
    pub fn check(&self, key: &[u8]) -> Result<Decision, RateLimitError> {
        self.check_n(key, 1)
    }

    /// Spends `cost` for `key` now.
    ///
    /// # Errors
    /// None today: a full table makes room (see [`MemoryRateStore`]); the `Result` is the
    /// shape of every limiter, should a store ever fail.
    pub fn check_n(&self, key: &[u8], cost: u64) -> Result<Decision, RateLimitError> {
        self.check_at(key, cost, self.store.clock().now())
    }

    /// Spends `cost` for `key` at `now`: the hot path.
    ///
    /// # Errors
    /// None today: a full table makes room (see [`MemoryRateStore`]); the `Result` is the
    /// shape of every limiter, should a store ever fail.
    pub fn check_at(
        &self,
        key: &[u8],
        cost: u64,
        now: UnixTime,
    ) -> Result<Decision, RateLimitError> {
        let result = self.apply(key, RateOp::Acquire(cost), cost, now);
        if let Ok(decision) = &result
            && !decision.is_allowed()
        {
            self.reporter.exceeded(key, decision, now);
        }
        result
    }

    /// Whether `cost` would be admitted for `key` now, spending nothing.
    ///
    /// # Errors
    /// None today: a full table makes room (see [`MemoryRateStore`]); the `Result` is the
    /// shape of every limiter, should a store ever fail.
    pub fn peek(&self, key: &[u8], cost: u64) -> Result<Decision, RateLimitError> {
        self.apply(key, RateOp::Peek(cost), cost, self.store.clock().now())
    }

    /// Gives back `cost` spent in the current window (for a request that turned out not to
    /// count, such as one answered from a cache).
    ///
    /// # Errors
    /// None today: a full table makes room (see [`MemoryRateStore`]); the `Result` is the
    /// shape of every limiter, should a store ever fail.
    pub fn refund(&self, key: &[u8], cost: u64) -> Result<Decision, RateLimitError> {
        self.apply(key, RateOp::Refund(cost), 0, self.store.clock().now())
    }

    /// Forgets `key`'s usage.
    ///
    /// # Errors
    /// None today: a full table makes room (see [`MemoryRateStore`]); the `Result` is the
    /// shape of every limiter, should a store ever fail.
    pub fn reset(&self, key: &[u8]) -> Result<(), RateLimitError> {
        self.apply(key, RateOp::Clear, 0, self.store.clock().now())
            .map(|_| ())
    }

    /// The number of keys held (swept lazily).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    fn apply(
        &self,
        key: &[u8],
        op: RateOp,
        cost: u64,
        now: UnixTime,
    ) -> Result<Decision, RateLimitError> {
        // One quota for every key: read it directly, without the resolver's dynamic call.
        let quota = match &self.shared {
            Some(shared) => match shared.raw() {
                (limit, period, false) => {
                    return self.apply_counter(limit, period, key, op, cost, now);
                }
                _ => shared.get(),
            },
            None => match self.resolver.quota(key) {
                Some(quota) => quota,
                None => return Ok(Decision::unlimited()),
            },
        };
        if quota.algorithm() == Algorithm::SlidingWindow {
            let period = u64::try_from(quota.period().as_nanos()).unwrap_or(u64::MAX);
            return self.apply_counter(quota.limit(), period, key, op, cost, now);
        }
        match self.store.apply_at(key, quota.request(op), now) {
            Ok(counts) => Ok(decide(&quota, cost, &counts)),
            Err(source) => Err(self.fail.error(quota.limit(), source)),
        }
    }

    /// [`apply`](Self::apply) for a sliding-window counter: the store returns only what the
    /// decision reads, and the decision is made without a `Quota` or `RateCounts`; the same
    /// answers as `decide` over `apply_at`.
    #[inline]
    fn apply_counter(
        &self,
        limit: u64,
        period_nanos: u64,
        key: &[u8],
        op: RateOp,
        cost: u64,
        now: UnixTime,
    ) -> Result<Decision, RateLimitError> {
        let period = period_nanos.max(1_000);
        match self.store.apply_counter_at(key, op, limit, period, now) {
            Ok(seen) => Ok(counter_decision_at(limit, period, cost, now, &seen)),
            Err(source) => Err(self.fail.error(limit, source)),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for MemoryLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLimiter")
            .field("store", &self.store)
            .field("fail", &self.fail)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::time::FakeClock;

    #[test]
    fn set_quota_reaches_the_shared_quota_path() {
        let clock = FakeClock::new(UnixTime::from_secs(6_000));
        let limiter = MemoryLimiter::with_clock(Quota::per_minute(1), clock);
        assert!(limiter.check(b"k").unwrap().is_allowed());
        assert!(!limiter.check(b"k").unwrap().is_allowed());
        assert!(limiter.set_quota(Quota::per_minute(2)));
        let d = limiter.check(b"k").unwrap();
        assert!(d.is_allowed());
        assert_eq!((d.limit(), d.remaining()), (2, 0));
        assert!(!limiter.check(b"k").unwrap().is_allowed());
    }

    #[test]
    fn a_resolver_still_decides_per_key() {
        let limiter = MemoryLimiter::with_resolver(|key: &[u8]| {
            (key != b"free").then_some(Quota::per_minute(1))
        });
        assert!(!limiter.set_quota(Quota::per_minute(5)));
        for _ in 0..3 {
            assert!(limiter.check(b"free").unwrap().is_allowed());
        }
        assert!(limiter.check(b"k").unwrap().is_allowed());
        assert!(!limiter.check(b"k").unwrap().is_allowed());
    }
}
