//! Decisions, and the pure functions that make them from a store's counts and `now`.
//!
//! A store ([`palisade_core::rate::RateStore`]) admits or refuses atomically and returns what it
//! saw ([`RateCounts`]); [`decide`] turns that into everything an HTTP answer needs: allowed or
//! denied, limit, remaining, reset and retry-after. It is a pure function of the counts, the
//! quota and the cost, so it is the same for every store.
//!
//! # The sliding-window counter's error
//! The counter assumes the previous fixed window's requests were spread evenly over it, so it
//! can differ from the exact log in both directions:
//! - it never admits more than the limit in any *fixed* window, and never more than twice the
//!   limit in any sliding window (the worst case: a burst at the very end of one window, then a
//!   steady stream through the next);
//! - on the synthetic trace of `tests/counter_error.rs` (Poisson arrivals at 1.0, 1.5 and 3
//!   times the limit per window, with bursts, 200 000 requests per rate), the decisions that
//!   differ from the exact log's are reported by `cargo test -p palisade-ratelimit --test
//!   counter_error -- --nocapture`; the figures are in the README.
//!
//! # Errors and panics
//! None: the arithmetic saturates.

use core::time::Duration;

use palisade_core::rate::{RateCounts, weighted_previous};
use palisade_core::time::UnixTime;

use crate::store::CounterCounts;

use crate::quota::{Algorithm, Quota};

/// The answer to a rate-limit check: everything the `RateLimit-*` and `Retry-After` headers
/// need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct Decision {
    allowed: bool,
    shadow_denied: bool,
    limit: u64,
    remaining: u64,
    /// Nanoseconds, as the hot path computes them: a `Duration` is made only when asked for
    /// (no division by 10^9 per decision, and a smaller value to return).
    reset: u64,
    retry_after: u64,
}

impl Decision {
    /// An admission.
    pub const fn allowed(limit: u64, remaining: u64, reset: Duration) -> Self {
        Self::allowed_nanos(limit, remaining, saturating_nanos(reset))
    }

    /// [`Decision::allowed`] from nanoseconds.
    #[inline]
    const fn allowed_nanos(limit: u64, remaining: u64, reset: u64) -> Self {
        Self {
            allowed: true,
            shadow_denied: false,
            limit,
            remaining,
            reset,
            retry_after: 0,
        }
    }

    /// A denial; `retry_after` is raised to at least a microsecond.
    pub const fn denied(limit: u64, reset: Duration, retry_after: Duration) -> Self {
        Self::denied_nanos(
            limit,
            saturating_nanos(reset),
            saturating_nanos(retry_after),
        )
    }

    /// [`Decision::denied`] from nanoseconds.
    #[inline]
    const fn denied_nanos(limit: u64, reset: u64, retry_after: u64) -> Self {
        let retry_after = if retry_after < 1_000 {
            1_000
        } else {
            retry_after
        };
        Self {
            allowed: false,
            shadow_denied: false,
            limit,
            remaining: 0,
            reset: if reset > retry_after {
                reset
            } else {
                retry_after
            },
            retry_after,
        }
    }

    /// An admission for a key that has no quota (allowlisted, or its resolver said none).
    pub const fn unlimited() -> Self {
        Self::allowed(u64::MAX, u64::MAX, Duration::ZERO)
    }

    /// This denial turned into an admission, remembering that it would have denied (shadow
    /// mode).
    pub const fn into_shadow(mut self) -> Self {
        if !self.allowed {
            self.allowed = true;
            self.shadow_denied = true;
        }
        self
    }

    /// Whether to let the request through.
    pub const fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Whether the request would have been denied, but shadow mode let it through.
    pub const fn is_shadow_denied(&self) -> bool {
        self.shadow_denied
    }

    /// The quota's limit per period.
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// The cost that could still be spent now.
    pub const fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The time until the whole quota is available again.
    pub const fn reset(&self) -> Duration {
        Duration::from_nanos(self.reset)
    }

    /// For a denial, the time until the same request would be admitted (if nothing else is
    /// spent meanwhile); `None` for an admission.
    pub const fn retry_after(&self) -> Option<Duration> {
        if self.allowed && !self.shadow_denied {
            None
        } else {
            Some(Duration::from_nanos(self.retry_after))
        }
    }
}

/// The decision for spending `cost` under `quota`, from the counts a store returned for that
/// request (after an `Acquire` or a `Peek` of `cost`, or a `Refund` with cost 0).
pub fn decide(quota: &Quota, cost: u64, counts: &RateCounts) -> Decision {
    match quota.algorithm() {
        Algorithm::SlidingWindow => counter_decision(quota, cost, counts),
        Algorithm::ExactLog => log_decision(quota, cost, counts),
        #[allow(unreachable_patterns)]
        _ => counter_decision(quota, cost, counts),
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX` (584 years).
const fn saturating_nanos(d: Duration) -> u64 {
    let n = d.as_nanos();
    if n > u64::MAX as u128 {
        u64::MAX
    } else {
        // In range: checked on the line above.
        #[allow(clippy::cast_possible_truncation)]
        let n = n as u64;
        n
    }
}

/// The sliding-window counter's decision.
pub fn counter_decision(quota: &Quota, cost: u64, counts: &RateCounts) -> Decision {
    let seen = CounterCounts {
        admitted: counts.admitted,
        current: counts.current,
        previous: counts.previous,
        window_start: counts.window_start,
    };
    let period = saturating_nanos(quota.period()).max(1_000);
    counter_decision_at(quota.limit(), period, cost, counts.now, &seen)
}

/// The sliding-window counter's decision for spending `cost` under `limit` per `period_nanos`
/// (at least a microsecond), from what the store saw at `now`: [`counter_decision`] without a
/// [`Quota`] or a [`RateCounts`] (the in-memory limiter's hot path, over
/// `MemoryRateStore::apply_counter_at`).
#[inline]
pub(crate) fn counter_decision_at(
    limit: u64,
    period_nanos: u64,
    cost: u64,
    now: UnixTime,
    seen: &CounterCounts,
) -> Decision {
    let period = period_nanos;
    let now = now.as_nanos();
    let start = seen.window_start.as_nanos();
    let elapsed = now.saturating_sub(start);
    let end = start.saturating_add(period);
    let weighted = weighted_previous(seen.previous, elapsed, period);
    let used = weighted.saturating_add(seen.current);
    let reset = if seen.current > 0 {
        end.saturating_add(period).saturating_sub(now)
    } else if weighted > 0 {
        end.saturating_sub(now)
    } else {
        0
    };
    if seen.admitted {
        let remaining = limit.saturating_sub(used);
        return Decision::allowed_nanos(limit, remaining, reset);
    }
    if cost > limit {
        return Decision::denied_nanos(limit, reset, period);
    }
    // Within this window: wait until the previous window's weight has shrunk enough.
    let retry_at = match limit.checked_sub(seen.current.saturating_add(cost)) {
        Some(budget) if seen.previous > 0 => {
            let keep = mul_div(budget, period, seen.previous);
            start.saturating_add(period.saturating_sub(keep))
        }
        Some(_) => now,
        // Past this window: this window becomes the previous one, weighted down over the next.
        None if seen.current > 0 => {
            let keep = mul_div(limit - cost, period, seen.current);
            end.saturating_add(period.saturating_sub(keep))
        }
        None => end,
    };
    Decision::denied_nanos(limit, reset, retry_at.saturating_sub(now))
}

/// `floor(a * b / c)`, saturating; `c > 0`.
#[inline]
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let c = c.max(1);
    match a.checked_mul(b) {
        // A spent window (`a == 0`) is the common denial: no division at all.
        Some(0) => 0,
        // The common case, without a 128-bit division.
        Some(product) => product / c,
        None => u64::try_from(u128::from(a) * u128::from(b) / u128::from(c)).unwrap_or(u64::MAX),
    }
}

/// The exact log's decision.
pub fn log_decision(quota: &Quota, cost: u64, counts: &RateCounts) -> Decision {
    let limit = quota.limit();
    let period = quota.period();
    let now = counts.now;
    let n = counts.log.len();
    let expiry = |t: UnixTime| t.saturating_add(period).saturating_duration_since(now);
    let reset = counts.log.last().map_or(Duration::ZERO, |&t| expiry(t));
    if counts.admitted {
        let used = u64::try_from(n).unwrap_or(u64::MAX);
        return Decision::allowed(limit, limit.saturating_sub(used), reset);
    }
    if cost > limit {
        return Decision::denied(limit, reset, period);
    }
    // Entries oldest first: once entry `j` expires, `n - j - 1` remain, and `cost` fits when
    // `n - j - 1 + cost <= limit`.
    let cost = usize::try_from(cost).unwrap_or(usize::MAX);
    let limit_n = usize::try_from(limit).unwrap_or(usize::MAX);
    let j = n
        .saturating_add(cost)
        .saturating_sub(limit_n)
        .saturating_sub(1);
    let retry = counts.log.get(j).map_or(period, |&t| expiry(t));
    Decision::denied(limit, reset, retry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryRateStore;
    use palisade_core::rate::RateOp;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn log_retry_after_is_when_enough_entries_expire() {
        let q = Quota::per_minute(3)
            .with_algorithm(Algorithm::ExactLog)
            .unwrap();
        let s = MemoryRateStore::new();
        for t in [0, 10, 20] {
            let c = s
                .apply_at(b"k", q.request(RateOp::Acquire(1)), UnixTime::from_secs(t))
                .unwrap();
            assert!(decide(&q, 1, &c).is_allowed());
        }
        let now = UnixTime::from_secs(30);
        let c = s
            .apply_at(b"k", q.request(RateOp::Acquire(2)), now)
            .unwrap();
        let d = decide(&q, 2, &c);
        assert!(!d.is_allowed());
        // Two must expire: the one at 10 s, at 70 s.
        assert_eq!(d.retry_after(), Some(Duration::from_secs(40)));
        assert_eq!(d.reset(), Duration::from_secs(50));
        let later = UnixTime::from_secs(70);
        let c = s
            .apply_at(b"k", q.request(RateOp::Acquire(2)), later)
            .unwrap();
        assert!(decide(&q, 2, &c).is_allowed());
    }

    #[test]
    fn counter_retry_after_is_exact() {
        let q = Quota::per_minute(10);
        let s = MemoryRateStore::new();
        let t0 = UnixTime::from_secs(600);
        let c = s
            .apply_at(b"k", q.request(RateOp::Acquire(10)), t0)
            .unwrap();
        let d = decide(&q, 1, &c);
        assert!(d.is_allowed());
        assert_eq!(d.remaining(), 0);
        let t1 = UnixTime::from_secs(630);
        let c = s.apply_at(b"k", q.request(RateOp::Acquire(1)), t1).unwrap();
        let d = decide(&q, 1, &c);
        assert!(!d.is_allowed());
        let retry = d.retry_after().unwrap();
        // Next window starts at 660 s; 10 carried over, 9 may remain: at 666 s.
        assert_eq!(retry, Duration::from_secs(36));
        let almost = t1
            .saturating_add(retry)
            .saturating_sub(Duration::from_nanos(1));
        assert!(
            !s.apply_at(b"k", q.request(RateOp::Peek(1)), almost)
                .unwrap()
                .admitted
        );
        let at = t1.saturating_add(retry);
        assert!(
            s.apply_at(b"k", q.request(RateOp::Acquire(1)), at)
                .unwrap()
                .admitted
        );
    }

    #[test]
    fn costs_above_the_limit_are_denied_for_a_period() {
        let q = Quota::per_minute(3);
        let c = RateCounts::counter(UnixTime::from_secs(1), false, 0, 0, UnixTime::EPOCH);
        assert_eq!(decide(&q, 4, &c).retry_after(), Some(MIN));
    }

    #[test]
    fn a_spent_window_waits_until_it_has_fully_slid_past() {
        // Limit 1, spent 30 s into the window at 600 s: the unit weighs until 720 s.
        let q = Quota::per_minute(1);
        let start = UnixTime::from_secs(600);
        let c = RateCounts::counter(UnixTime::from_secs(630), false, 1, 0, start);
        let d = decide(&q, 1, &c);
        assert_eq!(d.retry_after(), Some(Duration::from_secs(90)));
        assert_eq!(mul_div(0, 60, 7), 0);
        assert_eq!(mul_div(3, 60, 7), 25);
    }

    #[test]
    fn durations_round_trip_and_saturate() {
        let d = Decision::denied(5, Duration::from_millis(1_500), Duration::from_nanos(10));
        assert_eq!(d.retry_after(), Some(Duration::from_micros(1)));
        assert_eq!(d.reset(), Duration::from_millis(1_500));
        let d = Decision::denied(5, Duration::ZERO, Duration::from_secs(7));
        assert_eq!(
            d.reset(),
            Duration::from_secs(7),
            "reset is at least the retry"
        );
        // Past 584 years the nanoseconds saturate.
        let d = Decision::denied(5, Duration::MAX, Duration::MAX);
        assert_eq!(d.retry_after(), Some(Duration::from_nanos(u64::MAX)));
        let a = Decision::allowed(5, 4, Duration::from_nanos(123_456_789_012));
        assert_eq!(a.reset(), Duration::from_nanos(123_456_789_012));
        assert_eq!(a.retry_after(), None);
    }

    #[test]
    fn shadow_keeps_the_retry() {
        let d = Decision::denied(5, MIN, MIN).into_shadow();
        assert!(d.is_allowed() && d.is_shadow_denied());
        assert_eq!(d.retry_after(), Some(MIN));
        assert_eq!(Decision::unlimited().retry_after(), None);
    }
}
