//! The in-memory limiter's counter fast path (`MemoryRateStore::apply_counter_at` and
//! `counter_decision_at`) against the general path (`MemoryRateStore::apply_at` and `decide`)
//! on arbitrary traces: every decision identical (allowed or denied, limit, remaining, reset,
//! retry-after), for spends, peeks, refunds and resets, weighted costs, several keys, a clock
//! that sometimes steps back, and quotas replaced mid-trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use core::time::Duration;

use palisade_core::rate::RateOp;
use palisade_core::time::{Clock, FakeClock, UnixTime};
use palisade_ratelimit::MemoryRateStore;
use palisade_ratelimit::decision::decide;
use palisade_ratelimit::{MemoryLimiter, Quota};
use proptest::prelude::*;

const BASE_MS: u64 = 1_700_000_000_000;

#[derive(Debug, Clone, Copy)]
enum Step {
    Check(u64),
    Peek(u64),
    Refund(u64),
    Reset,
    /// Switch to the other quota.
    Requota,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u64..6).prop_map(Step::Check),
        1 => (0u64..6).prop_map(Step::Peek),
        1 => (0u64..4).prop_map(Step::Refund),
        1 => Just(Step::Reset),
        1 => Just(Step::Requota),
    ]
}

/// Two quotas (limit, period in ms) and steps of (time gap in ms, backwards?, key, step).
type Trace = ((u64, u64), (u64, u64), Vec<(u64, bool, u8, Step)>);

fn trace() -> impl Strategy<Value = Trace> {
    let quota = (0u64..12, 1u64..2_000);
    (
        quota.clone(),
        quota,
        prop::collection::vec(
            (0u64..700, prop::bool::weighted(0.05), 0u8..3, step()),
            1..300,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_fast_path_decides_as_the_general_path((a, b, steps) in trace()) {
        let quotas = [a, b].map(|(limit, ms)| Quota::new(limit, Duration::from_millis(ms)).unwrap());
        let mut which = 0;
        let clock = FakeClock::new(UnixTime::from_millis(BASE_MS));
        let shared = MemoryLimiter::with_clock(quotas[0], clock.clone());
        // A resolver reads the quota per call: the same fast path, reached another way.
        let current = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = current.clone();
        let resolved = MemoryLimiter::with_resolver_and_clock(
            move |_: &[u8]| quotas.get(seen.load(std::sync::atomic::Ordering::Relaxed)).copied(),
            clock.clone(),
        );
        let store = MemoryRateStore::with_clock(clock.clone());
        for (gap, back, key, step) in steps {
            let gap = Duration::from_millis(gap);
            if back {
                clock.set(clock.now().saturating_sub(gap));
            } else {
                clock.advance(gap);
            }
            let now = clock.now();
            let key = [key];
            let quota = quotas[which];
            let general = |op, cost| decide(&quota, cost, &store.apply_at(&key, quota.request(op), now).unwrap());
            let (expected, fast) = match step {
                Step::Check(cost) => (
                    general(RateOp::Acquire(cost), cost),
                    [shared.check_at(&key, cost, now), resolved.check_at(&key, cost, now)],
                ),
                Step::Peek(cost) => (
                    general(RateOp::Peek(cost), cost),
                    [shared.peek(&key, cost), resolved.peek(&key, cost)],
                ),
                Step::Refund(cost) => (
                    general(RateOp::Refund(cost), 0),
                    [shared.refund(&key, cost), resolved.refund(&key, cost)],
                ),
                Step::Reset => {
                    let _ = general(RateOp::Clear, 0);
                    shared.reset(&key).unwrap();
                    resolved.reset(&key).unwrap();
                    (
                        general(RateOp::Peek(1), 1),
                        [shared.peek(&key, 1), resolved.peek(&key, 1)],
                    )
                }
                Step::Requota => {
                    which = 1 - which;
                    assert!(shared.set_quota(quotas[which]));
                    current.store(which, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
            };
            for decision in fast {
                prop_assert_eq!(decision.unwrap(), expected, "{:?} at {:?}", step, now);
            }
        }
    }
}
