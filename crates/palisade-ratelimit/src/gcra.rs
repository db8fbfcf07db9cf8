//! GCRA (the generic cell rate algorithm) through [`governor`], behind the same [`Decision`].
//!
//! GCRA paces requests smoothly (one every `period / limit`, with bursts up to `limit`), which
//! suits per-second pacing of an API client better than "N per minute" windows. This module
//! runs governor's keyed limiter on a Palisade [`Clock`] and answers with [`Decision`], so the
//! HTTP headers and the calling code are the same for all three algorithms.
//!
//! Governor keeps every key until [`GcraLimiter::retain_recent`] is called (its design); use
//! [`MemoryLimiter`](crate::MemoryLimiter) where memory must be bounded without a cleanup task.
//! GCRA has no `peek` or `refund`.
//!
//! # Errors and panics
//! None: a cost above the burst is a denial.

use core::fmt;
use core::hash::Hash;
use core::num::NonZeroU32;
use core::time::Duration;

use governor::clock::Reference as _;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use palisade_core::time::Clock;

use crate::FastClock;

use crate::RateLimitError;
use crate::decision::Decision;
use crate::quota::Quota;

/// A Palisade [`Clock`] as a governor clock.
#[derive(Debug, Clone)]
struct GovernorClock<C>(C);

impl<C: Clock> governor::clock::Clock for GovernorClock<C> {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::new(self.0.now().as_nanos())
    }
}

type Inner<K, C> = governor::RateLimiter<
    K,
    DashMapStateStore<K, foldhash::fast::RandomState>,
    GovernorClock<C>,
    StateInformationMiddleware,
>;

/// A keyed GCRA limiter: `limit` per `period`, replenished one unit every `period / limit`.
///
/// ```
/// use palisade_ratelimit::{GcraLimiter, Quota};
///
/// let limiter = GcraLimiter::new(Quota::per_second(2)).unwrap();
/// assert!(limiter.check(&"client-7").is_allowed());
/// assert!(limiter.check(&"client-7").is_allowed());
/// assert!(!limiter.check(&"client-7").is_allowed());
/// ```
pub struct GcraLimiter<K: Hash + Eq + Clone, C: Clock + Clone = FastClock> {
    inner: Inner<K, C>,
    limit: u64,
    interval: Duration,
}

impl<K: Hash + Eq + Clone> GcraLimiter<K, FastClock> {
    /// A GCRA limiter for `quota` on a [`FastClock`].
    ///
    /// # Errors
    /// [`RateLimitError::InvalidQuota`] for a limit of zero or above `u32::MAX`.
    pub fn new(quota: Quota) -> Result<Self, RateLimitError> {
        Self::with_clock(quota, FastClock::new())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> GcraLimiter<K, C> {
    /// A GCRA limiter for `quota` reading `clock`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidQuota`] for a limit of zero or above `u32::MAX`.
    pub fn with_clock(quota: Quota, clock: C) -> Result<Self, RateLimitError> {
        let burst = u32::try_from(quota.limit())
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or(RateLimitError::InvalidQuota(
                "a gcra limit is between 1 and 4294967295",
            ))?;
        let gquota = quota
            .period()
            .checked_div(burst.get())
            .and_then(governor::Quota::with_period)
            .ok_or(RateLimitError::InvalidQuota("a gcra period is not zero"))?
            .allow_burst(burst);
        let inner = governor::RateLimiter::dashmap_with_clock_and_hasher(
            gquota,
            GovernorClock(clock),
            foldhash::fast::RandomState::default(),
        )
        .with_middleware::<StateInformationMiddleware>();
        Ok(Self {
            inner,
            limit: quota.limit(),
            interval: gquota.replenish_interval(),
        })
    }

    /// Spends one unit for `key`.
    pub fn check(&self, key: &K) -> Decision {
        self.check_n(key, 1)
    }

    /// Spends `cost` units for `key`, all or none.
    pub fn check_n(&self, key: &K, cost: u64) -> Decision {
        let Some(n) = u32::try_from(cost).ok().and_then(NonZeroU32::new) else {
            return if cost == 0 {
                Decision::allowed(self.limit, self.limit, Duration::ZERO)
            } else {
                self.too_big()
            };
        };
        match self.inner.check_key_n(key, n) {
            Ok(Ok(snapshot)) => {
                let remaining = u64::from(snapshot.remaining_burst_capacity());
                let used = u32::try_from(self.limit.saturating_sub(remaining)).unwrap_or(u32::MAX);
                Decision::allowed(self.limit, remaining, self.interval.saturating_mul(used))
            }
            Ok(Err(not_until)) => {
                let now = governor::clock::Clock::now(self.inner.clock());
                let wait = not_until.wait_time_from(now);
                let full = not_until.earliest_possible().duration_since(now);
                let reset = Duration::from_nanos(full.as_u64()).saturating_add(
                    self.interval
                        .saturating_mul(u32::try_from(self.limit).unwrap_or(u32::MAX)),
                );
                Decision::denied(self.limit, reset, wait)
            }
            Err(_) => self.too_big(),
        }
    }

    fn too_big(&self) -> Decision {
        let period = self
            .interval
            .saturating_mul(u32::try_from(self.limit).unwrap_or(u32::MAX));
        Decision::denied(self.limit, period, period)
    }

    /// Drops keys whose state has fully replenished (governor's cleanup; call it periodically).
    pub fn retain_recent(&self) {
        self.inner.retain_recent();
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> fmt::Debug for GcraLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcraLimiter")
            .field("limit", &self.limit)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::time::{FakeClock, UnixTime};

    #[test]
    fn paces_and_tells_when_to_retry() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000));
        let limiter = GcraLimiter::with_clock(Quota::per_second(4), clock.clone()).unwrap();
        for left in (0..4).rev() {
            let d = limiter.check(&1u32);
            assert!(d.is_allowed());
            assert_eq!(d.remaining(), left);
        }
        let d = limiter.check(&1u32);
        assert!(!d.is_allowed());
        assert_eq!(d.retry_after(), Some(Duration::from_millis(250)));
        clock.advance(Duration::from_millis(250));
        assert!(limiter.check(&1u32).is_allowed());
        assert!(!limiter.check_n(&2u32, 5).is_allowed(), "above the burst");
        assert!(limiter.check_n(&2u32, 4).is_allowed());
        assert_eq!(limiter.len(), 2);
    }
}
