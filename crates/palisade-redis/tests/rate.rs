//! The Redis rate store against real servers: the shared node (`PALISADE_REDIS_URL`) and the
//! local cluster (`PALISADE_REDIS_CLUSTER_URLS`) for conformance and concurrency, a private
//! `redis-server` on a free port for the fault tests. Each is skipped, with a message, when
//! not configured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use core::time::Duration;
use std::sync::Arc;

use common::{PrivateRedis, free_port, runtime};
use palisade_core::StoreError;
use palisade_core::rate::conformance;
use palisade_ratelimit::{
    Algorithm, Begin, FailPolicy, Limiter, Lockout, LockoutPolicy, Quota, RateLimitError,
};
use palisade_redis::{Redis, RedisRateStore};

/// Runs `cmd`, expecting an integer.
async fn int(conn: &mut redis::aio::MultiplexedConnection, cmd: &redis::Cmd) -> i64 {
    cmd.query_async(conn).await.unwrap()
}

/// A store on the shared node under a fresh prefix naming `what`.
fn store(what: &str) -> Option<RedisRateStore> {
    common::single(what).map(RedisRateStore::new)
}

#[test]
fn redis_store_passes_conformance() {
    for (name, redis) in common::backends("rate-conformance") {
        runtime().block_on(conformance::rate_store(&RedisRateStore::new(redis)));
        eprintln!("{name}: passed");
    }
}

#[test]
fn several_clients_admit_exactly_the_limit_together() {
    let Some(url) = common::single_url() else {
        return;
    };
    let rt = runtime();
    for algorithm in [Algorithm::SlidingWindow, Algorithm::ExactLog] {
        let prefix = common::unique_prefix("concurrency");
        let quota = Quota::per_hour(300).with_algorithm(algorithm).unwrap();
        let admitted = rt.block_on(async {
            // Four instances, each with its own connection, all on one key.
            let mut limiters = Vec::new();
            for _ in 0..4 {
                let redis = Redis::open(&url).unwrap().with_prefix(&prefix).unwrap();
                let store = RedisRateStore::new(redis);
                limiters.push(Arc::new(Limiter::new(store, quota)));
            }
            let mut tasks = Vec::new();
            for limiter in &limiters {
                for _ in 0..4 {
                    let limiter = limiter.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut n = 0u64;
                        for _ in 0..50 {
                            if limiter.check(b"hot", 1).await.unwrap().is_allowed() {
                                n += 1;
                            }
                        }
                        n
                    }));
                }
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            limiters[0].reset(b"hot").await.unwrap();
            total
        });
        assert_eq!(
            admitted, 300,
            "{algorithm:?}: 800 attempts on a limit of 300"
        );
    }
}

#[test]
fn lockout_state_lives_in_redis() {
    let Some(url) = common::single_url() else {
        return;
    };
    runtime().block_on(async {
        let prefix = common::unique_prefix("lockout");
        let fresh = || {
            let redis = Redis::open(&url).unwrap().with_prefix(&prefix).unwrap();
            RedisRateStore::new(redis)
        };
        let ip = "203.0.113.50".parse().unwrap();
        let mut policy = LockoutPolicy::default();
        policy.delay_after = 100;
        let a = Lockout::new(fresh(), policy).unwrap();
        let b = Lockout::new(fresh(), policy).unwrap();
        for i in 0..5 {
            // Alternate instances: they share one count.
            let l = if i % 2 == 0 { &a } else { &b };
            let Begin::Proceed(attempt) = l.begin("erin", ip).await.unwrap() else {
                panic!("attempt {i} refused");
            };
            let _ = attempt.failed();
        }
        assert!(b.check("erin", ip).await.unwrap().is_locked());
        assert!(matches!(
            a.begin("erin", ip).await.unwrap(),
            Begin::Locked(_)
        ));
        a.unlock("erin", Some(ip)).await.unwrap();
        assert!(!b.check("erin", ip).await.unwrap().is_locked());
        let Begin::Proceed(attempt) = b.begin("erin", ip).await.unwrap() else {
            panic!("unlocked");
        };
        attempt.succeeded().await.unwrap();
    });
}

/// The attacker's race: 50 concurrent wrong guesses on one account from one address, spread
/// over four instances, against a limit of 5 per (account, IP).
#[test]
fn fifty_concurrent_guesses_reach_the_verifier_at_most_five_times() {
    let Some(url) = common::single_url() else {
        return;
    };
    let rt = runtime();
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let prefix = common::unique_prefix("lockout-race");
    rt.block_on(async {
        // No doubling delay: the window's limit is what stands in the way.
        let mut policy = LockoutPolicy::default();
        policy.delay_after = 100;
        let mut instances = Vec::new();
        for _ in 0..4 {
            let redis = Redis::open(&url).unwrap().with_prefix(&prefix).unwrap();
            instances.push(Arc::new(
                Lockout::new(RedisRateStore::new(redis), policy).unwrap(),
            ));
        }
        let ip: std::net::IpAddr = "203.0.113.77".parse().unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let (lockout, calls) = (instances[i % 4].clone(), calls.clone());
                tokio::spawn(async move {
                    let Begin::Proceed(attempt) = lockout.begin("mallory", ip).await.unwrap()
                    else {
                        return;
                    };
                    // The password check: slow, as a real hash is, and wrong.
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = attempt.failed();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        instances[0].unlock("mallory", Some(ip)).await.unwrap();
    });
    let n = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n <= 5, "{n} of 50 guesses reached verification");
    eprintln!("{n} of 50 guesses reached verification");
}

#[test]
fn keys_get_ttls() {
    let Some(url) = common::single_url() else {
        return;
    };
    runtime().block_on(async {
        let store = store("ttl").unwrap();
        let limiter = Limiter::new(store.clone(), Quota::per_minute(10));
        assert!(limiter.check(b"k", 1).await.unwrap().is_allowed());
        let exact = Quota::per_minute(10)
            .with_algorithm(Algorithm::ExactLog)
            .unwrap();
        let log = Limiter::new(store.clone(), exact);
        assert!(log.check(b"k", 1).await.unwrap().is_allowed());
        for kind in [
            palisade_core::rate::WindowKind::Counter,
            palisade_core::rate::WindowKind::Log,
        ] {
            let ttl = common::pttl_then_delete(&url, &store.redis_key(b"k", kind)).await;
            assert!(ttl > 0 && ttl <= 120_001, "{kind:?}: {ttl}");
        }
    });
}

#[test]
fn a_denial_in_the_same_window_writes_nothing() {
    let Some(url) = common::single_url() else {
        return;
    };
    runtime().block_on(async {
        let store = store("deny-write").unwrap();
        // A day-long window, so the checks below share it (unless they straddle midnight UTC).
        let day = Quota::new(1, core::time::Duration::from_secs(86_400)).unwrap();
        let limiter = Limiter::new(store.clone(), day);
        assert!(limiter.check(b"k", 1).await.unwrap().is_allowed());
        let key = store.redis_key(b"k", palisade_core::rate::WindowKind::Counter);
        let mut conn = common::inspect(&url).await;
        // A TTL no write of the script would set: a denial that wrote would replace it.
        let marker: i64 = 10 * 86_400_000;
        int(&mut conn, redis::cmd("PEXPIRE").arg(&key).arg(marker)).await;
        for _ in 0..3 {
            assert!(!limiter.check(b"k", 1).await.unwrap().is_allowed());
        }
        let ttl = int(&mut conn, redis::cmd("PTTL").arg(&key)).await;
        assert!(ttl > 2 * 86_400_000, "a denial rewrote the key: {ttl}");
        let current = int(&mut conn, redis::cmd("HGET").arg(&key).arg("c")).await;
        assert_eq!(current, 1, "the denials added nothing");
        // A refund still writes.
        assert!(limiter.refund(b"k", 1).await.unwrap().is_allowed());
        let ttl = int(&mut conn, redis::cmd("PTTL").arg(&key)).await;
        assert!(ttl > 0 && ttl <= 2 * 86_400_000 + 1, "{ttl}");
        assert!(limiter.check(b"k", 1).await.unwrap().is_allowed());
        int(&mut conn, redis::cmd("DEL").arg(&key)).await;
    });
}

#[test]
fn redis_down_gives_the_fail_policy_and_limiting_resumes() {
    if !common::have_redis_server() {
        return;
    }
    let port = free_port();
    let Some(server) = PrivateRedis::start(port, &[]) else {
        eprintln!("skipped: could not start a private redis-server");
        return;
    };
    let url = server.url();
    let rt = runtime();
    rt.block_on(async {
        let store = RedisRateStore::new(Redis::open(&url).unwrap());
        let closed = Limiter::new(store.clone(), Quota::per_hour(3));
        let open = Limiter::new(store.clone(), Quota::per_hour(3)).fail_policy(FailPolicy::Open);
        assert!(closed.check(b"k", 1).await.unwrap().is_allowed());

        server.stop();
        let err = closed.check(b"k", 1).await.unwrap_err();
        assert!(
            matches!(
                err,
                RateLimitError::Unavailable {
                    source: StoreError::Unavailable { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.fallback().is_allowed(), "fail closed denies");
        let err = open.check(b"k", 1).await.unwrap_err();
        assert!(err.fallback().is_allowed(), "fail open allows");

        let _server = PrivateRedis::start(port, &[]).expect("restart redis-server");
        // The connection manager reconnects by itself; give it a few tries.
        let mut resumed = None;
        for _ in 0..50 {
            match closed.check(b"k", 1).await {
                Ok(d) => {
                    resumed = Some(d);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let first = resumed.expect("limiting resumes once redis is back");
        assert!(first.is_allowed(), "a fresh server starts a fresh window");
        assert!(closed.check(b"k", 1).await.unwrap().is_allowed());
        assert!(closed.check(b"k", 1).await.unwrap().is_allowed());
        assert!(
            !closed.check(b"k", 1).await.unwrap().is_allowed(),
            "and limits again"
        );
    });
}

/// The calls of each command since the last `CONFIG RESETSTAT`, from `INFO commandstats`.
async fn command_calls(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// A login decision (the five lockout windows checked and the attempt reserved) is one
/// `EVALSHA` on one node, whether it admits or refuses, counted by the server itself (it was
/// five, one per window, before the store answered batches).
#[test]
fn a_login_decision_is_one_evalsha() {
    if !common::have_redis_server() {
        return;
    }
    let Some(server) = PrivateRedis::start(free_port(), &[]) else {
        eprintln!("skipped: could not start a private redis-server");
        return;
    };
    let url = server.url();
    runtime().block_on(async {
        let mut policy = LockoutPolicy::default();
        policy.delay_after = 100;
        let lockout =
            Lockout::new(RedisRateStore::new(Redis::open(&url).unwrap()), policy).unwrap();
        let mut conn = common::inspect(&url).await;
        // The first call loads the script.
        let ip = "203.0.113.80".parse().unwrap();
        let _ = lockout.check("warm", ip).await.unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut conn)
            .await
            .unwrap();
        let (mut admitted, mut refused) = (0, 0);
        for _ in 0..10 {
            match lockout.begin("oscar", ip).await.unwrap() {
                Begin::Proceed(attempt) => {
                    admitted += 1;
                    let _ = attempt.failed();
                }
                Begin::Locked(_) => refused += 1,
            }
        }
        assert_eq!((admitted, refused), (5, 5));
        let calls = command_calls(&mut conn).await;
        // The server counts the commands a script runs as well; the client sends none of them.
        let inside_the_script = [
            "time",
            "hmget",
            "hset",
            "del",
            "pexpire",
            "zremrangebyscore",
            "zcard",
            "zrange",
            "zadd",
            "zpopmax",
        ];
        let other: u64 = calls
            .iter()
            .filter(|(name, _)| {
                !["evalsha", "info", "config|resetstat"].contains(&name.as_str())
                    && !inside_the_script.contains(&name.as_str())
            })
            .map(|(_, n)| n)
            .sum();
        let evalsha = calls
            .iter()
            .find(|(name, _)| name == "evalsha")
            .map_or(0, |(_, n)| *n);
        eprintln!("10 login decisions: {evalsha} EVALSHA, {other} other client commands");
        assert_eq!(evalsha, 10, "{calls:?}");
        assert_eq!(other, 0, "{calls:?}");
    });
    server.stop();
}
