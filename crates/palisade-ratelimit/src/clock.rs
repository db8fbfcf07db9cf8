//! [`FastClock`]: the wall clock read through the CPU's time-stamp counter.
//!
//! An in-memory check is a few tens of nanoseconds; a `clock_gettime` call can cost as much
//! again. [`FastClock`] reads the system clock once, then adds the time elapsed on a monotonic
//! counter ([`quanta`], the clock governor uses), which is a few nanoseconds to read. It does not
//! follow later steps of the wall clock (NTP adjustments), which is what a rate limiter wants:
//! windows measured on a monotonic clock.
//!
//! # Errors and panics
//! None.

use palisade_core::time::{Clock, SystemClock, UnixTime};

/// The wall clock at creation plus a monotonic counter's elapsed time. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FastClock {
    /// The system clock at creation, in nanoseconds since the epoch.
    base: u64,
    /// The counter's raw reading at creation: a reading is scaled straight to nanoseconds, with
    /// no `Instant` or `Duration` in between.
    start: u64,
    clock: quanta::Clock,
}

impl FastClock {
    /// A clock that starts at the system clock's current time.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        Self {
            base: SystemClock.now().as_nanos(),
            start: clock.raw(),
            clock,
        }
    }
}

impl Default for FastClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for FastClock {
    #[inline]
    fn now(&self) -> UnixTime {
        let elapsed = self.clock.delta_as_nanos(self.start, self.clock.raw());
        UnixTime::from_nanos(self.base.saturating_add(elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_system_clock() {
        let fast = FastClock::new();
        std::thread::sleep(core::time::Duration::from_millis(20));
        let (a, b) = (fast.now(), SystemClock.now());
        let skew = a.max(b).saturating_duration_since(a.min(b));
        assert!(skew < core::time::Duration::from_millis(10), "{skew:?}");
        assert!(fast.now() >= a, "monotonic");
    }
}
