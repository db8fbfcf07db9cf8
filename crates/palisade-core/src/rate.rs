//! The rate-counter store: one atomic "check and add cost against a limit" per key and window.
//!
//! Rate limiting and login lockout need shared counters that several requests update at once.
//! [`RateStore::apply`] is the one atomic operation they build on: for one key it rolls the
//! window forward to the store's `now`, decides whether `cost` more fits under `limit`, adds it
//! only if it does, and returns the counts it saw. What to answer a client (remaining, reset,
//! retry-after, lockout delays) is a pure function of those counts, kept in the domain crate.
//!
//! Two kinds of window share the primitive ([`WindowKind`]):
//! - [`WindowKind::Counter`]: two fixed windows, the previous one weighted by how much of it the
//!   sliding window still overlaps (O(1) memory per key). Admits iff
//!   [`weighted_previous`]` + current + cost <= limit`.
//! - [`WindowKind::Log`]: every admitted unit's timestamp, kept for one period (exact; memory
//!   grows with the limit). Admits iff `entries + cost <= limit`.
//!
//! The in-memory table (`MemoryRateStore`) lives in `palisade-ratelimit` beside its limiter, the
//! Redis store in `palisade-redis`. Every backend should pass [`conformance::rate_store`].
//!
//! # Errors
//! [`StoreError`]: the backend is unreachable, or (memory) full. Callers choose to fail open or
//! closed.
//!
//! # Security
//! Keys are attacker-influenced (IP addresses, user names): a backend must bound what a flood
//! of new keys costs it, and must never admit past a limit to make room.

use core::fmt;
use core::future::Future;
use core::time::Duration;

use crate::StoreError;
use crate::time::UnixTime;

/// How a key's window is kept.
///
/// Exhaustive on purpose: every backend matches on it, and a new kind must fail to compile in
/// each backend rather than be handled by a catch-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// Sliding-window counter: current and previous fixed windows, the previous weighted.
    Counter,
    /// Sliding-window log: one timestamp per admitted unit of cost, exact.
    Log,
}

/// What [`RateStore::apply`] does to a key.
///
/// Exhaustive on purpose, as [`WindowKind`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateOp {
    /// Add this cost if it fits under the limit; `admitted` tells whether it did.
    Acquire(u64),
    /// Tell whether this cost would fit, changing nothing.
    Peek(u64),
    /// Take back this much of the current window's cost (saturating at zero; for a log, the
    /// newest entries). Always `admitted`.
    Refund(u64),
    /// Forget the key. Always `admitted`.
    Clear,
}

/// One call to [`RateStore::apply`]: the window, the limit, the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateRequest {
    /// How the window is kept. A key is meant to be used with one kind only.
    pub kind: WindowKind,
    /// The window's length; at least one microsecond (shorter periods are raised to it).
    pub period: Duration,
    /// The most cost the window admits.
    pub limit: u64,
    /// The operation.
    pub op: RateOp,
}

impl RateRequest {
    /// A request of `kind` over `period` with `limit`, doing `op`.
    pub const fn new(kind: WindowKind, period: Duration, limit: u64, op: RateOp) -> Self {
        Self {
            kind,
            period,
            limit,
            op,
        }
    }

    /// The period in nanoseconds, at least one microsecond.
    #[inline]
    pub fn period_nanos(&self) -> u64 {
        u64::try_from(self.period.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1_000)
    }
}

/// What the store saw, after the operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RateCounts {
    /// The store's time when it applied the operation (a Redis store reads the server's clock,
    /// so instances with skewed clocks agree).
    pub now: UnixTime,
    /// Whether the cost was added (`Acquire`), would be (`Peek`); always true otherwise.
    pub admitted: bool,
    /// Counter: the current fixed window's cost. Log: the number of entries in the window.
    pub current: u64,
    /// Counter: the previous fixed window's cost (unweighted). Log: zero.
    pub previous: u64,
    /// Counter: when the current fixed window began. Log: the epoch.
    pub window_start: UnixTime,
    /// Log: the timestamps of the entries still in the window, oldest first. Counter: empty.
    pub log: Vec<UnixTime>,
}

impl RateCounts {
    /// A counter answer.
    pub fn counter(
        now: UnixTime,
        admitted: bool,
        current: u64,
        previous: u64,
        window_start: UnixTime,
    ) -> Self {
        Self {
            now,
            admitted,
            current,
            previous,
            window_start,
            log: Vec::new(),
        }
    }

    /// A log answer; `log` must be sorted, oldest first.
    pub fn log(now: UnixTime, admitted: bool, log: Vec<UnixTime>) -> Self {
        Self {
            now,
            admitted,
            current: u64::try_from(log.len()).unwrap_or(u64::MAX),
            previous: 0,
            window_start: UnixTime::EPOCH,
            log,
        }
    }
}

/// The previous window's cost still inside the sliding window, rounded up:
/// `ceil(previous * (period - elapsed) / period)`, where `elapsed` is the time since the current
/// fixed window began. The admission rule of [`WindowKind::Counter`] is
/// `weighted_previous + current + cost <= limit`; every backend must use it.
#[inline]
pub fn weighted_previous(previous: u64, elapsed_nanos: u64, period_nanos: u64) -> u64 {
    if previous == 0 || elapsed_nanos >= period_nanos {
        return 0;
    }
    let remaining = period_nanos - elapsed_nanos;
    match previous.checked_mul(remaining) {
        Some(product) => product.div_ceil(period_nanos),
        None => {
            let product = u128::from(previous) * u128::from(remaining);
            u64::try_from(product.div_ceil(u128::from(period_nanos))).unwrap_or(u64::MAX)
        }
    }
}

/// Keeps rate counters and applies one operation to one key atomically.
///
/// # Contract
/// For each call, atomically with respect to every other call on the same key:
/// 1. Roll the key's window forward to the store's `now` (counter: the fixed window containing
///    `now` is `floor(now / period) * period`; the previous window is kept if adjacent, dropped
///    otherwise; a stored window later than `now` is kept as current. Log: drop entries with
///    `t + period <= now`).
/// 2. Apply the [`RateOp`] under the admission rule of the [`WindowKind`].
/// 3. Return the [`RateCounts`] after the operation.
///
/// Stores forget a key once its window has fully passed (counter: two periods; log: one period
/// after its newest entry). Run [`conformance::rate_store`] against every implementation.
///
/// ```
/// use core::time::Duration;
/// use palisade_core::rate::{RateOp, RateRequest, RateStore, WindowKind};
/// use palisade_core::StoreError;
///
/// /// Spends one login attempt for `user`: at most 5 an hour, counted exactly.
/// async fn spend_attempt<S: RateStore>(store: &S, user: &str) -> Result<bool, StoreError> {
///     let hour = Duration::from_secs(3_600);
///     let req = RateRequest::new(WindowKind::Log, hour, 5, RateOp::Acquire(1));
///     Ok(store.apply(user.as_bytes(), req).await?.admitted)
/// }
/// ```
pub trait RateStore: fmt::Debug + Send + Sync {
    /// Applies `request` to `key` atomically.
    ///
    /// # Errors
    /// [`StoreError`] when the backend cannot answer or is full.
    fn apply(
        &self,
        key: &[u8],
        request: RateRequest,
    ) -> impl Future<Output = Result<RateCounts, StoreError>> + Send;

    /// Applies a batch of requests as one decision, one answer per request in order.
    ///
    /// Every [`RateOp::Acquire`] in the batch is added only if all of them fit: when one does
    /// not, none is added, and each `Acquire` answers as a [`RateOp::Peek`] of its cost would
    /// (so at least one answers `admitted == false`). The batch was admitted iff every answer
    /// is `admitted`. Other operations are applied as by [`apply`](Self::apply).
    ///
    /// A backend that can answer the batch in one atomic step should (Redis: one script, one
    /// round trip, on a single node). The provided implementation calls `apply` in order and,
    /// after a refused `Acquire`, refunds the ones it had added: no window ever exceeds its
    /// limit, though a concurrent caller may see a reservation that is about to be refunded.
    ///
    /// # Errors
    /// [`StoreError`] when the backend cannot answer or is full. The provided implementation
    /// then refunds what it had added, as far as the backend lets it.
    fn apply_all(
        &self,
        batch: &[(&[u8], RateRequest)],
    ) -> impl Future<Output = Result<Vec<RateCounts>, StoreError>> + Send {
        apply_in_order(self, batch)
    }
}

/// [`RateStore::apply_all`] one request at a time, taking added costs back on a refusal.
///
/// # Errors
/// The first [`StoreError`], after refunding what was added.
pub async fn apply_in_order<S: RateStore + ?Sized>(
    store: &S,
    batch: &[(&[u8], RateRequest)],
) -> Result<Vec<RateCounts>, StoreError> {
    let mut out = Vec::with_capacity(batch.len());
    let mut refused = false;
    for &(key, request) in batch {
        let request = match request.op {
            RateOp::Acquire(cost) if refused => RateRequest {
                op: RateOp::Peek(cost),
                ..request
            },
            _ => request,
        };
        let counts = match store.apply(key, request).await {
            Ok(counts) => counts,
            Err(e) => {
                if !refused {
                    refund_acquired(store, batch, &out).await;
                }
                return Err(e);
            }
        };
        if matches!(request.op, RateOp::Acquire(_)) && !counts.admitted {
            refused = true;
            refund_acquired(store, batch, &out).await;
            // Answer the earlier `Acquire`s as peeks: what they found, without their cost.
            for (&(key, request), slot) in batch.iter().zip(out.iter_mut()) {
                if let RateOp::Acquire(cost) = request.op {
                    let peek = RateRequest {
                        op: RateOp::Peek(cost),
                        ..request
                    };
                    if let Ok(c) = store.apply(key, peek).await {
                        *slot = c;
                    }
                }
            }
        }
        out.push(counts);
    }
    Ok(out)
}

/// Refunds the `Acquire`s of `batch` whose answers in `done` say they were added. A failed
/// refund leaves the cost counted: the safe side.
async fn refund_acquired<S: RateStore + ?Sized>(
    store: &S,
    batch: &[(&[u8], RateRequest)],
    done: &[RateCounts],
) {
    for (&(key, request), counts) in batch.iter().zip(done) {
        if let RateOp::Acquire(cost) = request.op
            && counts.admitted
        {
            let refund = RateRequest {
                op: RateOp::Refund(cost),
                ..request
            };
            let _ = store.apply(key, refund).await;
        }
    }
}

impl<S: RateStore + ?Sized> RateStore for std::sync::Arc<S> {
    fn apply(
        &self,
        key: &[u8],
        request: RateRequest,
    ) -> impl Future<Output = Result<RateCounts, StoreError>> + Send {
        (**self).apply(key, request)
    }

    fn apply_all(
        &self,
        batch: &[(&[u8], RateRequest)],
    ) -> impl Future<Output = Result<Vec<RateCounts>, StoreError>> + Send {
        (**self).apply_all(batch)
    }
}

/// The conformance suite every [`RateStore`] backend must pass.
pub mod conformance {
    use super::{RateOp, RateRequest, RateStore, WindowKind};
    use crate::random::{SecureRandom, SystemRandom};
    use core::time::Duration;

    /// Checks the contract of [`RateStore`] on `store`, whose clock runs in real time (or stands
    /// still).
    ///
    /// Uses fresh random keys on every run, so it is safe against a shared server, and clears
    /// them at the end.
    ///
    /// # Panics
    /// When the store breaks the contract: that is the point of a conformance test.
    #[allow(
        clippy::panic,
        clippy::missing_panics_doc,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::cast_possible_truncation
    )]
    pub async fn rate_store<S: RateStore + ?Sized>(store: &S) {
        let mut run = [0u8; 8];
        SystemRandom.fill(&mut run).unwrap_or_default();
        let base = format!("conformance-{:016x}", u64::from_be_bytes(run));
        let hour = Duration::from_secs(3_600);
        let log = |limit, op| RateRequest::new(WindowKind::Log, hour, limit, op);

        // The log: exact admission, peek, refund, clear.
        let key = format!("{base}-log").into_bytes();
        let c = store.apply(&key, log(3, RateOp::Acquire(2))).await.unwrap();
        assert!(c.admitted, "a fresh key admits cost within the limit");
        assert_eq!((c.current, c.log.len()), (2, 2));
        assert!(c.log.windows(2).all(|w| w[0] <= w[1]), "log is sorted");
        let c = store.apply(&key, log(3, RateOp::Acquire(2))).await.unwrap();
        assert!(!c.admitted, "cost past the limit is refused");
        assert_eq!(c.current, 2, "a refused cost is not added");
        let c = store.apply(&key, log(3, RateOp::Peek(1))).await.unwrap();
        assert!(c.admitted, "peek tells what fits");
        assert_eq!(c.current, 2, "peek changes nothing");
        let c = store.apply(&key, log(3, RateOp::Acquire(1))).await.unwrap();
        assert!(c.admitted);
        assert_eq!(c.current, 3);
        let c = store.apply(&key, log(3, RateOp::Peek(1))).await.unwrap();
        assert!(!c.admitted, "peek sees the full window");
        let c = store.apply(&key, log(3, RateOp::Refund(2))).await.unwrap();
        assert_eq!(c.current, 1, "refund takes back the newest entries");
        let c = store.apply(&key, log(3, RateOp::Acquire(2))).await.unwrap();
        assert!(c.admitted, "refunded cost can be spent again");
        let c = store.apply(&key, log(3, RateOp::Clear)).await.unwrap();
        assert_eq!(c.current, 0);
        let c = store.apply(&key, log(3, RateOp::Acquire(3))).await.unwrap();
        assert!(c.admitted, "a cleared key starts afresh");
        let c = store.apply(&key, log(3, RateOp::Acquire(4))).await.unwrap();
        assert!(!c.admitted, "a cost above the limit never fits");

        // Keys are independent and binary-safe.
        let other = format!("{base}-log\0x").into_bytes();
        let c = store
            .apply(&other, log(3, RateOp::Acquire(3)))
            .await
            .unwrap();
        assert!(c.admitted, "keys are independent");
        let c = store.apply(&[0xff, 0, 0x0a], log(1, RateOp::Peek(1))).await;
        assert!(c.is_ok(), "binary keys are accepted");

        // The counter, on a day-long window: retried once if a window boundary falls inside.
        let day = Duration::from_secs(86_400);
        let counter = |limit, op| RateRequest::new(WindowKind::Counter, day, limit, op);
        let ckey = format!("{base}-counter").into_bytes();
        for attempt in 0..2 {
            store.apply(&ckey, counter(5, RateOp::Clear)).await.unwrap();
            let a = store
                .apply(&ckey, counter(5, RateOp::Acquire(2)))
                .await
                .unwrap();
            let b = store
                .apply(&ckey, counter(5, RateOp::Acquire(4)))
                .await
                .unwrap();
            let c = store
                .apply(&ckey, counter(5, RateOp::Acquire(3)))
                .await
                .unwrap();
            let d = store
                .apply(&ckey, counter(5, RateOp::Peek(1)))
                .await
                .unwrap();
            let e = store
                .apply(&ckey, counter(5, RateOp::Refund(1)))
                .await
                .unwrap();
            if a.window_start != e.window_start && attempt == 0 {
                continue;
            }
            assert!(a.admitted && a.current == 2 && a.previous == 0);
            assert!(
                a.window_start <= a.now
                    && a.now < a.window_start.saturating_add(day)
                    && a.window_start.as_nanos() % day.as_nanos() as u64 == 0,
                "the counter's window is the fixed window containing now"
            );
            assert!(
                !b.admitted && b.current == 2,
                "counter refuses past the limit"
            );
            assert!(
                c.admitted && c.current == 5,
                "counter admits up to the limit"
            );
            assert!(
                !d.admitted && d.current == 5,
                "counter peek changes nothing"
            );
            assert!(e.admitted && e.current == 4, "counter refund");
            break;
        }
        // A batch: all its acquisitions or none.
        let (ka, kb) = (
            format!("{base}-batch-a").into_bytes(),
            format!("{base}-batch-b").into_bytes(),
        );
        let c = store.apply(&kb, log(2, RateOp::Acquire(2))).await.unwrap();
        assert!(c.admitted);
        let batch = [
            (ka.as_slice(), log(3, RateOp::Acquire(1))),
            (kb.as_slice(), log(2, RateOp::Acquire(1))),
        ];
        let out = store.apply_all(&batch).await.unwrap();
        assert_eq!(out.len(), 2, "one answer per request");
        assert!(!out[1].admitted, "the full window refuses the batch");
        assert_eq!(
            (out[0].current, out[1].current),
            (0, 2),
            "a refused batch answers as peeks"
        );
        let c = store.apply(&ka, log(3, RateOp::Peek(3))).await.unwrap();
        assert!(c.admitted && c.current == 0, "a refused batch adds nothing");
        store.apply(&kb, log(2, RateOp::Refund(1))).await.unwrap();
        let out = store.apply_all(&batch).await.unwrap();
        assert!(
            out.iter().all(|c| c.admitted),
            "a batch that fits is admitted"
        );
        assert_eq!((out[0].current, out[1].current), (1, 2), "and added");
        let out = store
            .apply_all(&[
                (ka.as_slice(), log(3, RateOp::Refund(1))),
                (kb.as_slice(), log(2, RateOp::Clear)),
            ])
            .await
            .unwrap();
        assert_eq!((out[0].current, out[1].current), (0, 0), "refund and clear");

        for k in [key, other, ckey, ka, kb] {
            let _ = store.apply(&k, log(1, RateOp::Clear)).await;
            let _ = store.apply(&k, counter(1, RateOp::Clear)).await;
        }
    }
}
