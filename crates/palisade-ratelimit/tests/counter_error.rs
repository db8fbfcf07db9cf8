//! The sliding-window counter's error against the exact log, measured on a synthetic trace.
//!
//! One key, limit 100 per 60 s. Poisson arrivals at 0.5, 1, 1.5 and 3 times the limit per
//! window, and an on/off burst trace (10 s bursts at 10 times the limit, 50 s idle), 200 000
//! requests each. The log and the counter each decide the whole trace; we count the requests
//! they decide differently, the counter's decisions that break the exact rule on its own
//! history, and the most either admits in any sliding window. Run with
//! `--nocapture` to see the figures recorded in the README.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use core::time::Duration;
use std::collections::VecDeque;

use palisade_core::time::UnixTime;
use palisade_ratelimit::{Algorithm, MemoryLimiter, Quota};

const LIMIT: u64 = 100;
const PERIOD_NS: u64 = 60_000_000_000;
const REQUESTS: usize = 200_000;
const START_NS: u64 = 1_700_000_040_000_000_000;

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

fn poisson(rate_per_window: f64, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix(seed);
    let mean_gap = PERIOD_NS as f64 / rate_per_window;
    let mut t = START_NS as f64;
    (0..REQUESTS)
        .map(|_| {
            t += -rng.unit().ln() * mean_gap;
            t as u64
        })
        .collect()
}

fn bursts(seed: u64) -> Vec<u64> {
    let mut rng = SplitMix(seed);
    let burst_rate = LIMIT as f64 * 10.0 / PERIOD_NS as f64 * 6.0; // per ns, during 10 s of 60 s
    let mut t = START_NS as f64;
    let mut out = Vec::with_capacity(REQUESTS);
    while out.len() < REQUESTS {
        t += -rng.unit().ln() / burst_rate;
        let phase = (t as u64 - START_NS) % PERIOD_NS;
        if phase > 10_000_000_000 {
            // Idle for the rest of the minute, then burst again at a random offset.
            t += (PERIOD_NS - phase) as f64 + rng.unit() * 7e9;
        }
        out.push(t as u64);
    }
    out
}

/// The most admitted in any window (t - period, t].
fn max_in_window(admitted: &[u64]) -> usize {
    let mut window = VecDeque::new();
    let mut max = 0;
    for &t in admitted {
        window.push_back(t);
        while window.front().is_some_and(|&f| f + PERIOD_NS <= t) {
            window.pop_front();
        }
        max = max.max(window.len());
    }
    max
}

struct Report {
    admitted_log: usize,
    admitted_counter: usize,
    false_allow: usize,
    false_deny: usize,
    max_log: usize,
    max_counter: usize,
    /// Against the exact rule on the counter's own history: admitted past the limit.
    wrong_allow: usize,
    /// Against the exact rule on the counter's own history: denied with room left.
    wrong_deny: usize,
}

fn run(trace: &[u64]) -> Report {
    let period = Duration::from_nanos(PERIOD_NS);
    let quota = Quota::new(LIMIT, period).unwrap();
    let log = MemoryLimiter::new(quota.with_algorithm(Algorithm::ExactLog).unwrap());
    let counter = MemoryLimiter::new(quota);
    let (mut a_log, mut a_counter) = (Vec::new(), Vec::new());
    let (mut false_allow, mut false_deny) = (0, 0);
    let (mut wrong_allow, mut wrong_deny) = (0, 0);
    let mut own = VecDeque::new();
    for &t in trace {
        while own.front().is_some_and(|&f: &u64| f + PERIOD_NS <= t) {
            own.pop_front();
        }
        let exact_on_own = (own.len() as u64) < LIMIT;
        let now = UnixTime::from_nanos(t);
        let l = log.check_at(b"k", 1, now).unwrap().is_allowed();
        let c = counter.check_at(b"k", 1, now).unwrap().is_allowed();
        if l {
            a_log.push(t);
        }
        if c {
            a_counter.push(t);
            own.push_back(t);
        }
        match (exact_on_own, c) {
            (false, true) => wrong_allow += 1,
            (true, false) => wrong_deny += 1,
            _ => {}
        }
        match (l, c) {
            (false, true) => false_allow += 1,
            (true, false) => false_deny += 1,
            _ => {}
        }
    }
    Report {
        admitted_log: a_log.len(),
        admitted_counter: a_counter.len(),
        false_allow,
        false_deny,
        max_log: max_in_window(&a_log),
        max_counter: max_in_window(&a_counter),
        wrong_allow,
        wrong_deny,
    }
}

#[test]
fn counter_error_against_the_exact_log() {
    let traces: Vec<(&str, Vec<u64>)> = vec![
        ("poisson 0.5x", poisson(LIMIT as f64 * 0.5, 1)),
        ("poisson 1x", poisson(LIMIT as f64, 2)),
        ("poisson 1.5x", poisson(LIMIT as f64 * 1.5, 3)),
        ("poisson 3x", poisson(LIMIT as f64 * 3.0, 4)),
        ("bursts 10x", bursts(5)),
    ];
    eprintln!(
        "| trace | admitted: log / counter | differing decisions (independent runs) | wrong vs exact rule on the counter's own history: allowed / denied | most admitted in one sliding window: log / counter |"
    );
    eprintln!("|---|---|---|---|---|");
    for (name, trace) in &traces {
        let r = run(trace);
        let differing = r.false_allow + r.false_deny;
        let pct = |n: usize| n as f64 * 100.0 / REQUESTS as f64;
        eprintln!(
            "| {name} | {} / {} | {:.3}% | {:.3}% / {:.3}% | {} / {} |",
            r.admitted_log,
            r.admitted_counter,
            pct(differing),
            pct(r.wrong_allow),
            pct(r.wrong_deny),
            r.max_log,
            r.max_counter,
        );
        assert!(r.max_log <= LIMIT as usize, "{name}: the log is exact");
        assert!(
            r.max_counter <= 2 * LIMIT as usize,
            "{name}: the counter stays within twice the limit"
        );
        if r.max_log < LIMIT as usize {
            assert_eq!(
                differing, 0,
                "{name}: under the limit both admit everything"
            );
        }
    }
}
