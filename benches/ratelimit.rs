//! Benches of palisade-ratelimit beside their peers, in one run.
//!
//! - `ratelimit_memory`: governor's keyed GCRA check (the peer) and Palisade's in-memory
//!   sliding-window check, each allowing and denying, on 1 key and on 100k keys.
//! - `ratelimit_memory_flood`: a check of a key never seen, in a table below its cap (500k of
//!   64M keys) and in a table filled to its one-million cap, where each new key evicts one.
//! - `ratelimit_memory_2threads`: the same with 2 threads on 10k keys (time per check, wall).
//!
//! The Redis decisions are in `redis.rs`.

use core::num::NonZeroU32;
use core::time::Duration;
use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use palisade_ratelimit::{MemoryLimiter, Quota};

const MANY: u64 = 100_000;

fn key_index(i: u64, keys: u64) -> u64 {
    // A stride through the keys, so successive checks do not share a cache line.
    i.wrapping_mul(0x9E37_79B9) % keys
}

fn governor_limiter(allow: bool) -> DefaultKeyedRateLimiter<u64> {
    let quota = if allow {
        governor::Quota::per_second(NonZeroU32::MAX)
    } else {
        governor::Quota::per_hour(NonZeroU32::MIN)
    };
    RateLimiter::keyed(quota)
}

fn palisade_limiter(allow: bool) -> MemoryLimiter {
    let quota = if allow {
        Quota::per_hour(u64::MAX / 2)
    } else {
        Quota::per_hour(1)
    };
    MemoryLimiter::new(quota)
}

fn memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit_memory");
    for (keys, label) in [(1u64, "1key"), (MANY, "100k_keys")] {
        for allow in [true, false] {
            let mode = if allow { "allow" } else { "deny" };
            let id = format!("{mode}/{label}");

            let gov = governor_limiter(allow);
            for k in 0..keys {
                let _ = gov.check_key(&k);
            }
            let mut i = 0u64;
            group.bench_function(BenchmarkId::new("governor_keyed", &id), |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    black_box(gov.check_key(&key_index(i, keys)).is_ok())
                })
            });

            let pal = palisade_limiter(allow);
            for k in 0..keys {
                let _ = pal.check(&k.to_be_bytes());
            }
            let mut i = 0u64;
            group.bench_function(BenchmarkId::new("palisade_sliding_window", &id), |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    let key = key_index(i, keys).to_be_bytes();
                    black_box(pal.check(&key).map(|d| d.is_allowed()))
                })
            });
        }
    }
    group.finish();
}

fn memory_flood(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit_memory_flood");
    for (held, cap, label) in [
        (500_000u64, 64_000_000usize, "below_cap"),
        (1_000_000, 1_000_000, "at_cap"),
    ] {
        // An hour's window: nothing expires during the run, so the full table must evict.
        let pal = MemoryLimiter::new(Quota::per_hour(5)).max_keys(cap);
        for k in 0..held {
            let _ = pal.check(&k.to_be_bytes());
        }
        let mut i = held;
        group.bench_function(BenchmarkId::new("palisade_fresh_key", label), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(pal.check(&i.to_be_bytes()).map(|d| d.is_allowed()))
            })
        });
    }
    group.finish();
}

/// Wall time per check with `threads` threads sharing the work.
fn threaded(iters: u64, threads: u64, check: &(dyn Fn(u64) -> bool + Sync)) -> Duration {
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut ok = 0u64;
                for i in 0..per_thread {
                    ok += u64::from(check(i.wrapping_mul(threads) + t));
                }
                black_box(ok);
            });
        }
    });
    start.elapsed()
}

fn memory_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit_memory_2threads");
    let keys = 10_000u64;
    for allow in [true, false] {
        let mode = if allow { "allow" } else { "deny" };
        let id = format!("{mode}/10k_keys");
        let gov = governor_limiter(allow);
        for k in 0..keys {
            let _ = gov.check_key(&k);
        }
        group.bench_function(BenchmarkId::new("governor_keyed", &id), |b| {
            b.iter_custom(|iters| {
                threaded(iters, 2, &|i| gov.check_key(&key_index(i, keys)).is_ok())
            })
        });
        let pal = palisade_limiter(allow);
        for k in 0..keys {
            let _ = pal.check(&k.to_be_bytes());
        }
        group.bench_function(BenchmarkId::new("palisade_sliding_window", &id), |b| {
            b.iter_custom(|iters| {
                threaded(iters, 2, &|i| {
                    pal.check(&key_index(i, keys).to_be_bytes())
                        .is_ok_and(|d| d.is_allowed())
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, memory, memory_flood, memory_threads);
criterion_main!(benches);
