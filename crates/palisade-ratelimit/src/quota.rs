//! Quotas: how much cost a key may spend per period, and with which algorithm.
//!
//! A [`QuotaResolver`] chooses the quota per key at run time (a paid tier, an allowlisted
//! partner); [`SharedQuota`] is one quota that can be replaced while limiters use it.
//!
//! # Errors
//! [`RateLimitError::InvalidQuota`] for a period under a millisecond or over a year, or an exact
//! log longer than [`MAX_LOG_LIMIT`].

use core::fmt;
use core::time::Duration;
use std::sync::atomic::{AtomicU64, Ordering};

use palisade_core::rate::{RateOp, RateRequest, WindowKind};

use crate::RateLimitError;

/// The longest exact log a quota may ask for: a log keeps 8 bytes per admitted unit.
pub const MAX_LOG_LIMIT: u64 = 10_000;

/// Which algorithm counts a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// Sliding-window counter: two fixed windows, the previous weighted by its overlap with the
    /// sliding window. O(1) memory per key; the default for "N per window". See
    /// [`decision`](crate::decision) for its measured error against the exact log.
    #[default]
    SlidingWindow,
    /// Sliding-window log: exact, memory proportional to the limit. The choice for small limits
    /// on authentication (5 logins per 15 minutes).
    ExactLog,
}

impl Algorithm {
    /// The store's window kind for this algorithm.
    pub const fn window_kind(self) -> WindowKind {
        match self {
            Self::SlidingWindow => WindowKind::Counter,
            Self::ExactLog => WindowKind::Log,
        }
    }
}

/// `limit` units of cost per `period`, counted by an [`Algorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u64,
    period: Duration,
    algorithm: Algorithm,
}

impl Quota {
    /// `limit` per `period`, counted by the sliding-window counter.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidQuota`] for a period under 1 ms or over 366 days.
    pub fn new(limit: u64, period: Duration) -> Result<Self, RateLimitError> {
        if period < Duration::from_millis(1) {
            return Err(RateLimitError::InvalidQuota(
                "the period is under a millisecond",
            ));
        }
        if period > Duration::from_secs(366 * 86_400) {
            return Err(RateLimitError::InvalidQuota("the period is over a year"));
        }
        Ok(Self {
            limit,
            period,
            algorithm: Algorithm::SlidingWindow,
        })
    }

    /// `limit` per second (sliding-window counter).
    pub const fn per_second(limit: u64) -> Self {
        Self::const_new(limit, Duration::from_secs(1))
    }

    /// `limit` per minute (sliding-window counter).
    pub const fn per_minute(limit: u64) -> Self {
        Self::const_new(limit, Duration::from_secs(60))
    }

    /// `limit` per hour (sliding-window counter).
    pub const fn per_hour(limit: u64) -> Self {
        Self::const_new(limit, Duration::from_secs(3_600))
    }

    const fn const_new(limit: u64, period: Duration) -> Self {
        Self {
            limit,
            period,
            algorithm: Algorithm::SlidingWindow,
        }
    }

    /// The same quota counted by `algorithm`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidQuota`] for an exact log above [`MAX_LOG_LIMIT`].
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Result<Self, RateLimitError> {
        if algorithm == Algorithm::ExactLog && self.limit > MAX_LOG_LIMIT {
            return Err(RateLimitError::InvalidQuota(
                "an exact log is limited to 10000 entries",
            ));
        }
        self.algorithm = algorithm;
        Ok(self)
    }

    /// The most cost admitted per period.
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// The window's length.
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// The counting algorithm.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The store request that applies `op` under this quota.
    pub const fn request(&self, op: RateOp) -> RateRequest {
        RateRequest::new(self.algorithm.window_kind(), self.period, self.limit, op)
    }
}

/// Chooses each key's quota, at every call; `None` means the key is not limited.
///
/// Closures `Fn(&[u8]) -> Option<Quota>` are resolvers.
///
/// ```
/// use palisade_ratelimit::{MemoryLimiter, Quota};
///
/// let limiter = MemoryLimiter::with_resolver(|key: &[u8]| {
///     if key.starts_with(b"partner:") { None } else { Some(Quota::per_minute(100)) }
/// });
/// assert!(limiter.check(b"partner:acme").unwrap().is_allowed());
/// ```
pub trait QuotaResolver: Send + Sync {
    /// The quota for `key`, or `None` to let it through unlimited.
    fn quota(&self, key: &[u8]) -> Option<Quota>;
}

impl<F: Fn(&[u8]) -> Option<Quota> + Send + Sync> QuotaResolver for F {
    fn quota(&self, key: &[u8]) -> Option<Quota> {
        self(key)
    }
}

/// One quota for every key, replaceable at run time without a lock on the read path.
///
/// The quota is kept in two atomics (limit; period and algorithm): a call racing with
/// [`SharedQuota::set`] may see the new limit with the old period for that one call.
pub struct SharedQuota {
    limit: AtomicU64,
    /// Period in nanoseconds, shifted left by one; the low bit is 1 for the exact log.
    period: AtomicU64,
}

impl SharedQuota {
    /// A shared quota starting at `quota`.
    pub fn new(quota: Quota) -> Self {
        Self {
            limit: AtomicU64::new(quota.limit),
            period: AtomicU64::new(Self::pack(&quota)),
        }
    }

    fn pack(quota: &Quota) -> u64 {
        let nanos = u64::try_from(quota.period.as_nanos()).unwrap_or(u64::MAX >> 1);
        (nanos << 1) | u64::from(quota.algorithm == Algorithm::ExactLog)
    }

    /// Replaces the quota; calls from now on use it.
    pub fn set(&self, quota: Quota) {
        self.period.store(Self::pack(&quota), Ordering::Relaxed);
        self.limit.store(quota.limit, Ordering::Relaxed);
    }

    /// The current limit, period in nanoseconds, and whether the quota is an exact log: the
    /// quota without building a `Duration`.
    #[inline]
    pub(crate) fn raw(&self) -> (u64, u64, bool) {
        let packed = self.period.load(Ordering::Relaxed);
        (
            self.limit.load(Ordering::Relaxed),
            packed >> 1,
            packed & 1 == 1,
        )
    }

    /// The current quota.
    #[inline]
    pub fn get(&self) -> Quota {
        let packed = self.period.load(Ordering::Relaxed);
        Quota {
            limit: self.limit.load(Ordering::Relaxed),
            period: Duration::from_nanos(packed >> 1),
            algorithm: if packed & 1 == 1 {
                Algorithm::ExactLog
            } else {
                Algorithm::SlidingWindow
            },
        }
    }
}

impl fmt::Debug for SharedQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedQuota").field(&self.get()).finish()
    }
}

impl QuotaResolver for SharedQuota {
    fn quota(&self, _key: &[u8]) -> Option<Quota> {
        Some(self.get())
    }
}

impl<R: QuotaResolver + ?Sized> QuotaResolver for std::sync::Arc<R> {
    fn quota(&self, key: &[u8]) -> Option<Quota> {
        (**self).quota(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_validate() {
        assert!(Quota::new(10, Duration::ZERO).is_err());
        assert!(Quota::new(10, Duration::from_secs(400 * 86_400)).is_err());
        assert!(
            Quota::per_minute(MAX_LOG_LIMIT + 1)
                .with_algorithm(Algorithm::ExactLog)
                .is_err()
        );
        let q = Quota::per_minute(5)
            .with_algorithm(Algorithm::ExactLog)
            .unwrap();
        assert_eq!(q.request(RateOp::Peek(1)).kind, WindowKind::Log);
    }

    #[test]
    fn shared_quota_round_trips() {
        let shared = SharedQuota::new(Quota::per_minute(5));
        assert_eq!(shared.get(), Quota::per_minute(5));
        let exact = Quota::per_hour(7)
            .with_algorithm(Algorithm::ExactLog)
            .unwrap();
        shared.set(exact);
        assert_eq!(shared.quota(b"x"), Some(exact));
    }
}
