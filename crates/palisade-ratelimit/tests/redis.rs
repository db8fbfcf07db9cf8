//! The Redis store against real servers: the shared one (`PALISADE_REDIS_URL`) for conformance
//! and concurrency, a private `redis-server` on a free port for the fault test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]
#![allow(clippy::print_stderr)]

use core::time::Duration;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use palisade_core::StoreError;
use palisade_core::rate::conformance;
use palisade_ratelimit::redis::RedisRateStore;
use palisade_ratelimit::{
    Algorithm, FailPolicy, Limiter, Lockout, LockoutPolicy, Quota, RateLimitError,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn shared_url() -> Option<String> {
    let url = std::env::var("PALISADE_REDIS_URL").ok();
    if url.is_none() {
        eprintln!("skipped: PALISADE_REDIS_URL is not set");
    }
    url
}

fn unique_prefix(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("palisade-test:{what}:{}:{nanos}", std::process::id())
}

/// A store on `url` under a fresh prefix naming `what`.
async fn store(url: &str, what: &str) -> RedisRateStore {
    RedisRateStore::connect(url)
        .await
        .unwrap()
        .prefix(unique_prefix(what))
}

/// Runs `cmd`, expecting an integer.
async fn int(conn: &mut redis::aio::MultiplexedConnection, cmd: &redis::Cmd) -> i64 {
    cmd.query_async(conn).await.unwrap()
}

#[test]
fn redis_store_passes_conformance() {
    let Some(url) = shared_url() else { return };
    runtime().block_on(async {
        let store = store(&url, "conformance").await;
        conformance::rate_store(&store).await;
    });
}

#[test]
fn several_clients_admit_exactly_the_limit_together() {
    let Some(url) = shared_url() else { return };
    let rt = runtime();
    for algorithm in [Algorithm::SlidingWindow, Algorithm::ExactLog] {
        let prefix = unique_prefix("concurrency");
        let quota = Quota::per_hour(300).with_algorithm(algorithm).unwrap();
        let admitted = rt.block_on(async {
            // Four instances, each with its own connection, all on one key.
            let mut limiters = Vec::new();
            for _ in 0..4 {
                let store = RedisRateStore::connect(&url)
                    .await
                    .unwrap()
                    .prefix(prefix.clone());
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
    let Some(url) = shared_url() else { return };
    runtime().block_on(async {
        let prefix = unique_prefix("lockout");
        let ip = "203.0.113.50".parse().unwrap();
        let a = Lockout::new(
            RedisRateStore::connect(&url)
                .await
                .unwrap()
                .prefix(prefix.clone()),
            LockoutPolicy::default(),
        )
        .unwrap();
        let b = Lockout::new(
            RedisRateStore::connect(&url)
                .await
                .unwrap()
                .prefix(prefix.clone()),
            LockoutPolicy::default(),
        )
        .unwrap();
        for i in 0..5 {
            // Alternate instances: they share one count.
            let l = if i % 2 == 0 { &a } else { &b };
            let _ = l.record_failure("erin", ip).await.unwrap();
        }
        assert!(b.check("erin", ip).await.unwrap().is_locked());
        a.unlock("erin", Some(ip)).await.unwrap();
        assert!(!b.check("erin", ip).await.unwrap().is_locked());
        a.record_success("erin", ip).await.unwrap();
    });
}

#[test]
fn keys_get_ttls() {
    let Some(url) = shared_url() else { return };
    runtime().block_on(async {
        let prefix = unique_prefix("ttl");
        let store = RedisRateStore::connect(&url).await.unwrap().prefix(prefix);
        let limiter = Limiter::new(store.clone(), Quota::per_minute(10));
        assert!(limiter.check(b"k", 1).await.unwrap().is_allowed());
        let exact = Quota::per_minute(10)
            .with_algorithm(Algorithm::ExactLog)
            .unwrap();
        let log = Limiter::new(store.clone(), exact);
        assert!(log.check(b"k", 1).await.unwrap().is_allowed());
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        for kind in [
            palisade_core::rate::WindowKind::Counter,
            palisade_core::rate::WindowKind::Log,
        ] {
            let key = store.redis_key(b"k", kind);
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(ttl > 0 && ttl <= 120_001, "{kind:?}: {ttl}");
            let _: i64 = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
}

#[test]
fn a_denial_in_the_same_window_writes_nothing() {
    let Some(url) = shared_url() else { return };
    runtime().block_on(async {
        let store = store(&url, "deny-write").await;
        // A day-long window, so the checks below share it (unless they straddle midnight UTC).
        let day = Quota::new(1, core::time::Duration::from_secs(86_400)).unwrap();
        let limiter = Limiter::new(store.clone(), day);
        assert!(limiter.check(b"k", 1).await.unwrap().is_allowed());
        let key = store.redis_key(b"k", palisade_core::rate::WindowKind::Counter);
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
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

/// A private `redis-server` on a free port, stopped when dropped.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("/usr/bin/redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = Self { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn redis_down_gives_the_fail_policy_and_limiting_resumes() {
    if !std::path::Path::new("/usr/bin/redis-server").exists() {
        eprintln!("skipped: /usr/bin/redis-server is not installed");
        return;
    }
    let port = free_port();
    let Some(server) = PrivateRedis::start(port) else {
        eprintln!("skipped: could not start a private redis-server");
        return;
    };
    let url = format!("redis://127.0.0.1:{}", server.port);
    let rt = runtime();
    rt.block_on(async {
        let store = RedisRateStore::connect(&url).await.unwrap();
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

        let _server = PrivateRedis::start(port).expect("restart redis-server");
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
