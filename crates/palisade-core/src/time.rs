//! Time: the [`Clock`] seam and the [`UnixTime`] instant every crate works in.
//!
//! Algorithms in Palisade take `now: UnixTime` as an argument so that they are pure and testable;
//! only convenience wrappers read a [`Clock`]. Tests use [`FakeClock`] and move time by hand.
//!
//! # Errors and panics
//! Nothing here fails or panics: arithmetic saturates or is checked.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// An instant, as nanoseconds since the Unix epoch (1970-01-01T00:00:00Z).
///
/// Nanoseconds in a `u64` last until the year 2554; instants before the epoch are not
/// represented (a clock set before 1970 reads as the epoch).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// An instant `secs` seconds after the epoch (saturating at the largest instant).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000_000))
    }

    /// An instant `millis` milliseconds after the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000_000))
    }

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// Whole milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The time since the epoch as a [`Duration`].
    pub const fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self + d`, or `None` past the largest instant.
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let nanos = u64::try_from(d.as_nanos()).ok()?;
        self.0.checked_add(nanos).map(Self)
    }

    /// `self + d`, saturating at the largest instant.
    pub fn saturating_add(self, d: Duration) -> Self {
        self.checked_add(d).unwrap_or(Self(u64::MAX))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(nanos))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UnixTime({}.{:09})",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

impl From<SystemTime> for UnixTime {
    fn from(t: SystemTime) -> Self {
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Self(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A source of the current time.
///
/// # Implementing
/// ```
/// use palisade_core::time::{Clock, UnixTime};
///
/// /// A clock that reads a time kept elsewhere, for example a database server's.
/// #[derive(Debug)]
/// struct Frozen(UnixTime);
///
/// impl Clock for Frozen {
///     fn now(&self) -> UnixTime {
///         self.0
///     }
/// }
///
/// assert_eq!(Frozen(UnixTime::from_secs(5)).now().as_secs(), 5);
/// ```
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> UnixTime;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> UnixTime {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> UnixTime {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> UnixTime {
        (**self).now()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime::from(SystemTime::now())
    }
}

/// A clock for tests: it stands still until told to move.
///
/// Clones share one time, so a test can keep a handle and advance the clock that a component
/// under test reads.
///
/// ```
/// use core::time::Duration;
/// use palisade_core::time::{Clock, FakeClock, UnixTime};
///
/// let clock = FakeClock::new(UnixTime::from_secs(1_000));
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(30));
/// assert_eq!(clock.now().as_secs(), 1_030);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    nanos: Arc<AtomicU64>,
}

impl FakeClock {
    /// A fake clock that reads `start`.
    pub fn new(start: UnixTime) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(start.as_nanos())),
        }
    }

    /// Moves the clock forward by `d` (saturating at the largest instant).
    pub fn advance(&self, d: Duration) {
        let step = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(step))
            });
    }

    /// Sets the clock to `t`, which may be earlier than now (to test clocks that step back).
    pub fn set(&self, t: UnixTime) {
        self.nanos.store(t.as_nanos(), Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_conversions_agree() {
        let t = UnixTime::from_secs(1_700_000_000);
        assert_eq!(t.as_secs(), 1_700_000_000);
        assert_eq!(t.as_millis(), 1_700_000_000_000);
        assert_eq!(UnixTime::from_millis(1_500).as_secs(), 1);
        assert_eq!(
            format!("{:?}", UnixTime::from_millis(1_500)),
            "UnixTime(1.500000000)"
        );
    }

    #[test]
    fn arithmetic_saturates() {
        let max = UnixTime::from_nanos(u64::MAX);
        assert_eq!(max.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(max.saturating_add(Duration::from_secs(1)), max);
        assert_eq!(
            UnixTime::EPOCH.saturating_sub(Duration::from_secs(1)),
            UnixTime::EPOCH
        );
        assert_eq!(
            UnixTime::from_secs(2).saturating_duration_since(UnixTime::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(
            UnixTime::from_secs(5).saturating_duration_since(UnixTime::from_secs(2)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > UnixTime::from_secs(1_577_836_800));
    }

    #[test]
    fn fake_clock_clones_share_time() {
        let a = FakeClock::new(UnixTime::from_secs(10));
        let b = a.clone();
        b.advance(Duration::from_millis(1_500));
        assert_eq!(a.now(), UnixTime::from_millis(11_500));
        a.set(UnixTime::from_secs(3));
        assert_eq!(b.now().as_secs(), 3);
        a.advance(Duration::MAX);
        assert_eq!(b.now(), UnixTime::from_nanos(u64::MAX));
    }
}
