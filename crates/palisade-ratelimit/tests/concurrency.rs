//! Concurrent callers on one key never admit more than the limit together, nor fewer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palisade_ratelimit::{Algorithm, MemoryLimiter, Quota};

#[test]
fn threads_on_one_key_admit_exactly_the_limit() {
    for algorithm in [Algorithm::SlidingWindow, Algorithm::ExactLog] {
        for threads in [2, 4, 8] {
            let quota = Quota::per_hour(5_000).with_algorithm(algorithm).unwrap();
            let limiter = Arc::new(MemoryLimiter::new(quota));
            let admitted = Arc::new(AtomicU64::new(0));
            let barrier = Arc::new(std::sync::Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (limiter, admitted, barrier) =
                        (limiter.clone(), admitted.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        for _ in 0..10_000 / threads {
                            if limiter.check(b"hot-key").unwrap().is_allowed() {
                                admitted.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(
                admitted.load(Ordering::Relaxed),
                5_000,
                "{algorithm:?} with {threads} threads"
            );
        }
    }
}

#[test]
fn weighted_costs_never_overshoot_under_concurrency() {
    let limiter = Arc::new(MemoryLimiter::new(Quota::per_hour(1_000)));
    let spent = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (1..=4u64)
        .map(|cost| {
            let (limiter, spent) = (limiter.clone(), spent.clone());
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    if limiter.check_n(b"k", cost).unwrap().is_allowed() {
                        spent.fetch_add(cost, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let spent = spent.load(Ordering::Relaxed);
    assert!(spent <= 1_000, "{spent}");
    assert!(
        spent >= 997,
        "the window fills up to within the largest cost: {spent}"
    );
}
