//! Property tests against reference models on arbitrary request traces.
//!
//! - The exact log makes exactly the decisions of a brute-force model, and never admits more
//!   than the limit in any window of one period.
//! - The sliding-window counter makes exactly the decisions of an independent model of the
//!   weighted two-window rule, never admits more than the limit in any fixed window, and never
//!   more than twice the limit in any sliding window (its documented worst case).
//! - A denial's retry-after is exact: the same request is refused just before it and admitted at
//!   it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use core::time::Duration;

use palisade_core::time::UnixTime;
use palisade_ratelimit::{Algorithm, MemoryLimiter, Quota};
use proptest::prelude::*;

const PERIOD_MS: u64 = 1_000;
const BASE_MS: u64 = 1_700_000_000_000;

fn trace() -> impl Strategy<Value = (u64, Vec<(u64, u64)>)> {
    (
        1u64..12,
        prop::collection::vec((0u64..400, 1u64..4), 1..300),
    )
        .prop_map(|(limit, steps)| {
            let mut t = BASE_MS;
            let events = steps
                .into_iter()
                .map(|(gap, cost)| {
                    t += gap;
                    (t, cost)
                })
                .collect();
            (limit, events)
        })
}

/// Sum of admitted cost in the window (t - period, t].
fn in_window(admitted: &[(u64, u64)], t: u64) -> u64 {
    admitted
        .iter()
        .filter(|&&(a, _)| a + PERIOD_MS > t && a <= t)
        .map(|&(_, c)| c)
        .sum()
}

/// The counter rule, written independently: ceil(prev * (P - e) / P) + cur + cost <= limit.
struct CounterModel {
    limit: u64,
    window: u64,
    cur: u64,
    prev: u64,
}

impl CounterModel {
    fn check(&mut self, t: u64, cost: u64) -> bool {
        let w = t / PERIOD_MS;
        if w == self.window + 1 {
            self.prev = self.cur;
            self.cur = 0;
        } else if w > self.window + 1 {
            self.prev = 0;
            self.cur = 0;
        }
        self.window = w;
        let elapsed = t % PERIOD_MS;
        let weighted = (self.prev * (PERIOD_MS - elapsed)).div_ceil(PERIOD_MS);
        let ok = weighted + self.cur + cost <= self.limit;
        if ok {
            self.cur += cost;
        }
        ok
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_log_is_exact((limit, events) in trace()) {
        let quota = Quota::new(limit, Duration::from_millis(PERIOD_MS)).unwrap()
            .with_algorithm(Algorithm::ExactLog).unwrap();
        let limiter = MemoryLimiter::new(quota);
        let mut admitted = Vec::new();
        for &(t, cost) in &events {
            let d = limiter.check_at(b"k", cost, UnixTime::from_millis(t)).unwrap();
            let model = in_window(&admitted, t) + cost <= limit;
            prop_assert_eq!(d.is_allowed(), model, "at {} cost {}", t, cost);
            if d.is_allowed() {
                admitted.push((t, cost));
                prop_assert!(in_window(&admitted, t) <= limit);
                prop_assert_eq!(d.remaining(), limit - in_window(&admitted, t));
            }
        }
        // No window of one period, wherever it starts, holds more than the limit.
        for &(t, _) in &admitted {
            prop_assert!(in_window(&admitted, t + PERIOD_MS - 1) <= limit);
        }
    }

    #[test]
    fn the_counter_follows_its_rule_and_bounds((limit, events) in trace()) {
        let limiter = MemoryLimiter::new(Quota::new(limit, Duration::from_millis(PERIOD_MS)).unwrap());
        let mut model = CounterModel { limit, window: 0, cur: 0, prev: 0 };
        let mut admitted = Vec::new();
        for &(t, cost) in &events {
            let d = limiter.check_at(b"k", cost, UnixTime::from_millis(t)).unwrap();
            prop_assert_eq!(d.is_allowed(), model.check(t, cost), "at {} cost {}", t, cost);
            if d.is_allowed() {
                admitted.push((t, cost));
            }
        }
        for &(t, _) in &admitted {
            let fixed: u64 = admitted.iter()
                .filter(|&&(a, _)| a / PERIOD_MS == t / PERIOD_MS)
                .map(|&(_, c)| c).sum();
            prop_assert!(fixed <= limit, "fixed window over the limit");
            prop_assert!(in_window(&admitted, t + PERIOD_MS - 1) <= 2 * limit);
        }
    }

    #[test]
    fn retry_after_is_exact(
        algorithm in prop_oneof![Just(Algorithm::SlidingWindow), Just(Algorithm::ExactLog)],
        (limit, events) in trace(),
        cost in 1u64..4,
    ) {
        let quota = Quota::new(limit, Duration::from_millis(PERIOD_MS)).unwrap()
            .with_algorithm(algorithm).unwrap();
        let limiter = MemoryLimiter::new(quota);
        let mut last = BASE_MS;
        for &(t, c) in &events {
            let _ = limiter.check_at(b"k", c, UnixTime::from_millis(t)).unwrap();
            last = t;
        }
        let now = UnixTime::from_millis(last);
        let d = limiter.check_at(b"k", cost, now).unwrap();
        if !d.is_allowed() && cost <= limit {
            let retry = d.retry_after().unwrap();
            let at = now.saturating_add(retry);
            let before = at.saturating_sub(Duration::from_nanos(1));
            // Probes in time order: refused just before retry-after, admitted at it.
            if before > now {
                let early = limiter.check_at(b"k", cost, before).unwrap();
                prop_assert!(!early.is_allowed(), "admitted before retry-after ({:?})", retry);
            }
            let on_time = limiter.check_at(b"k", cost, at).unwrap();
            prop_assert!(on_time.is_allowed(), "refused at retry-after ({:?})", retry);
        }
    }
}
