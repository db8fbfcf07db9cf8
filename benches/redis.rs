//! Benches of palisade-redis: rate-limit decisions per second through `Limiter` over
//! `RedisRateStore`, on the single node (`PALISADE_REDIS_URL`) and on the local cluster
//! (`PALISADE_REDIS_CLUSTER_URLS`), same script, same concurrency, side by side:
//!
//! - `redis_rate/<backend>_sequential/<allow|deny>/<1key|100k_keys>`: one decision at a time
//!   on a current-thread runtime, whose connection task runs on the calling thread: like
//!   `redis-benchmark -c 1`, one thread waits for each answer;
//! - `redis_rate/<backend>_50_concurrent/...`: 50 tasks on one multiplexed handle (pipelined);
//! - `redis_rate/single_deny_cache/deny/1key`: a denial answered by the local deny cache.
//!
//! Compare with `redis-benchmark` running the same script
//! (`crates/palisade-redis/scripts/redis-benchmark.sh`, `--cluster` for the cluster).
//! Each backend is skipped when its variable is not set.

use core::time::Duration;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use palisade_ratelimit::{Limiter, Quota};
use palisade_redis::{Redis, RedisRateStore};

const MANY: u64 = 100_000;

fn key_index(i: u64, keys: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9) % keys
}

/// A fresh handle on the backend `name`, under this run's prefix.
fn open(name: &str, prefix: &str) -> Option<Redis> {
    let redis = match name {
        "single" => Redis::open(&std::env::var("PALISADE_REDIS_URL").ok()?).ok()?,
        _ => {
            let urls = std::env::var("PALISADE_REDIS_CLUSTER_URLS").ok()?;
            Redis::open_cluster(urls.split(',')).ok()?
        }
    };
    redis.with_prefix(prefix).ok()
}

fn redis_rate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let seq_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = format!("palisade-bench-{}", std::process::id());
    let mut group = c.benchmark_group("redis_rate");
    for backend in ["single", "cluster"] {
        // Each runtime drives its own connection (made on the runtime of its first call).
        let (Some(shared), Some(seq)) = (open(backend, &prefix), open(backend, &prefix)) else {
            continue;
        };
        let (store, seq_store) = (RedisRateStore::new(shared), RedisRateStore::new(seq));
        for (keys, label) in [(1u64, "1key"), (MANY, "100k_keys")] {
            for allow in [true, false] {
                let mode = if allow { "allow" } else { "deny" };
                let id = format!("{mode}/{label}");
                // Allow: a limit never reached; deny: one per minute, already spent. The keys
                // expire two periods after their last write.
                let limit = if allow { 1 << 50 } else { 1 };
                let quota = Quota::new(limit, Duration::from_secs(60)).expect("quota");
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
                let name = format!("{backend}_sequential");
                group.bench_function(BenchmarkId::new(name, &id), |b| {
                    b.iter(|| {
                        i = i.wrapping_add(1);
                        let key = key_index(i, keys).to_be_bytes();
                        seq_rt
                            .block_on(sequential.check(&key, 1))
                            .map(|d| d.is_allowed())
                    })
                });
                let name = format!("{backend}_50_concurrent");
                group.bench_function(BenchmarkId::new(name, &id), |b| {
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
                if backend == "single" && !allow && keys == 1 {
                    let cached = Limiter::new(seq_store.clone(), quota).deny_cache(200_000);
                    let mut i = 0u64;
                    group.bench_function(BenchmarkId::new("single_deny_cache", &id), |b| {
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
    }
    group.finish();
}

criterion_group!(benches, redis_rate);
criterion_main!(benches);
