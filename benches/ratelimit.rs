//! Benches of palisade-ratelimit beside their peers, in one run.
//!
//! - `ratelimit_memory`: governor's keyed GCRA check (the peer) and Palisade's in-memory
//!   sliding-window check, each allowing and denying, on 1 key and on 100k keys.
//! - `ratelimit_memory_flood`: a check of a key never seen, in a table below its cap (500k of
//!   64M keys) and in a table filled to its one-million cap, where each new key evicts one.
//! - `ratelimit_memory_2threads`: the same with 2 threads on 10k keys (time per check, wall).
//! - `ratelimit_redis` (when `PALISADE_REDIS_URL` is set): the Redis check, sequential and with
//!   50 concurrent tasks pipelined on one connection, allowing and denying, 1 key and 100k
//!   keys, plus a denial answered by the local deny cache. Compare with `redis-benchmark`
//!   running the same script (`crates/palisade-ratelimit/scripts/redis-benchmark.sh`). The
//!   sequential checks run on a current-thread runtime, whose connection task runs on the
//!   calling thread: like `redis-benchmark -c 1`, one thread waits for each answer (a
//!   multi-threaded runtime's `block_on` would hand every check to a worker and back).

use core::num::NonZeroU32;
use core::time::Duration;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use palisade_ratelimit::{Limiter, MemoryLimiter, Quota};

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

fn redis(c: &mut Criterion) {
    let Ok(url) = std::env::var("PALISADE_REDIS_URL") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let seq_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = format!("palisade-bench:{}", std::process::id());
    // Each runtime drives its own connection (made lazily, on the runtime of its first call).
    let connect = || {
        let redis = palisade_redis::Redis::open(&url).expect("redis url");
        palisade_redis::RedisRateStore::new(redis.with_prefix(&prefix).expect("prefix"))
    };
    let (store, seq_store) = (connect(), connect());
    let mut group = c.benchmark_group("ratelimit_redis");
    for (keys, label) in [(1u64, "1key"), (MANY, "100k_keys")] {
        for allow in [true, false] {
            let mode = if allow { "allow" } else { "deny" };
            let id = format!("{mode}/{label}");
            // Allow: a limit never reached; deny: one per hour, already spent. The keys expire
            // two periods after their last write.
            let quota = if allow {
                Quota::new(1 << 50, Duration::from_secs(60)).expect("quota")
            } else {
                Quota::new(1, Duration::from_secs(60)).expect("quota")
            };
            let limiter = Arc::new(Limiter::new(store.clone(), quota));
            let sequential = Limiter::new(seq_store.clone(), quota);
            if !allow {
                // Spend every key's one unit, 50 at a time.
                rt.block_on(async {
                    let handles: Vec<_> = (0..50u64)
                        .map(|t| {
                            let limiter = limiter.clone();
                            tokio::spawn(async move {
                                for k in (t..keys).step_by(50) {
                                    let _ = limiter.check(&k.to_be_bytes(), 1).await;
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        let _ = h.await;
                    }
                });
            }
            let mut i = 0u64;
            group.bench_function(BenchmarkId::new("palisade_sequential", &id), |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    let key = key_index(i, keys).to_be_bytes();
                    seq_rt
                        .block_on(sequential.check(&key, 1))
                        .map(|d| d.is_allowed())
                })
            });
            group.bench_function(BenchmarkId::new("palisade_50_concurrent", &id), |b| {
                b.iter_custom(|iters| {
                    let tasks = 50u64;
                    let per_task = iters.div_ceil(tasks);
                    rt.block_on(async {
                        let start = Instant::now();
                        let handles: Vec<_> = (0..tasks)
                            .map(|t| {
                                let limiter = limiter.clone();
                                tokio::spawn(async move {
                                    for i in 0..per_task {
                                        let key = key_index(i * tasks + t, keys).to_be_bytes();
                                        let _ = black_box(limiter.check(&key, 1).await);
                                    }
                                })
                            })
                            .collect();
                        for h in handles {
                            let _ = h.await;
                        }
                        start.elapsed()
                    })
                })
            });
            if !allow && keys == 1 {
                let cached = Limiter::new(seq_store.clone(), quota).deny_cache(200_000);
                let mut i = 0u64;
                group.bench_function(BenchmarkId::new("palisade_deny_cache", &id), |b| {
                    b.iter(|| {
                        i = i.wrapping_add(1);
                        let key = key_index(i, keys).to_be_bytes();
                        seq_rt
                            .block_on(cached.check(&key, 1))
                            .map(|d| d.is_allowed())
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, memory, memory_flood, memory_threads, redis);
criterion_main!(benches);
