//! Redis Cluster from the attacker's and the operator's side: keys on every slot, eight
//! processes hammering one key, and a master killed mid-run. The shared cluster is
//! `PALISADE_REDIS_CLUSTER_URLS` (started by `.ci/redis-cluster.sh`); the failover test starts
//! a private cluster of its own with the same script, on ports 7110-7115, and stops it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr,
    clippy::print_stdout
)]

mod common;

use core::time::Duration;
use std::process::Command;
use std::time::Instant;

use palisade_core::StoreError;
use palisade_core::rate::{RateOp, RateRequest, RateStore, WindowKind};
use palisade_ratelimit::{Algorithm, Limiter, Quota};
use palisade_redis::{Redis, RedisRateStore};

const HOUR: Duration = Duration::from_secs(3_600);

fn acquire(limit: u64) -> RateRequest {
    RateRequest::new(WindowKind::Counter, HOUR, limit, RateOp::Acquire(1))
}

#[test]
fn keys_on_every_master_answer_through_the_cluster_client() {
    let Some(urls) = common::cluster_urls() else {
        return;
    };
    common::runtime().block_on(async {
        let prefix = common::unique_prefix("cluster-slots");
        // A single-node client on one master: the keys of the other masters' slots are MOVED.
        let one_node =
            RedisRateStore::new(Redis::open(&urls[0]).unwrap().with_prefix(&prefix).unwrap());
        let cluster = RedisRateStore::new(
            Redis::open_cluster(urls.iter().map(String::as_str))
                .unwrap()
                .with_prefix(&prefix)
                .unwrap(),
        );
        let (mut moved, mut failed) = (0, 0);
        for i in 0..50u32 {
            let key = format!("user-{i}");
            if let Err(StoreError::Unavailable { source }) =
                one_node.apply(key.as_bytes(), acquire(10)).await
                && source.to_string().to_ascii_lowercase().contains("moved")
            {
                moved += 1;
            }
            let c = cluster.apply(key.as_bytes(), acquire(10)).await;
            if !c.is_ok_and(|c| c.admitted) {
                failed += 1;
            }
        }
        eprintln!(
            "single-node client: {moved} of 50 keys MOVED; cluster client: {failed} of 50 failed"
        );
        assert!(moved > 0, "the keys spread over several masters");
        assert_eq!(
            failed, 0,
            "{failed} of 50 keys failed through the cluster client"
        );
        for i in 0..50u32 {
            let key = format!("user-{i}");
            let clear = RateRequest::new(WindowKind::Counter, HOUR, 10, RateOp::Clear);
            cluster.apply(key.as_bytes(), clear).await.unwrap();
        }
    });
}

/// The child side of [`eight_processes_admit_exactly_the_limit`]: spends `PALISADE_HAMMER_N`
/// units on one key and prints how many were admitted. Does nothing in a normal run.
#[test]
fn hammer_child() {
    let (Ok(prefix), Ok(n), Some(urls)) = (
        std::env::var("PALISADE_HAMMER_PREFIX"),
        std::env::var("PALISADE_HAMMER_N"),
        std::env::var("PALISADE_HAMMER_ALGORITHM")
            .ok()
            .and(common::cluster_urls()),
    ) else {
        return;
    };
    let n: u64 = n.parse().unwrap();
    let algorithm = match std::env::var("PALISADE_HAMMER_ALGORITHM").unwrap().as_str() {
        "log" => Algorithm::ExactLog,
        _ => Algorithm::SlidingWindow,
    };
    let admitted = common::runtime().block_on(async {
        let redis = Redis::open_cluster(urls.iter().map(String::as_str))
            .unwrap()
            .with_prefix(&prefix)
            .unwrap();
        let quota = Quota::new(300, HOUR)
            .unwrap()
            .with_algorithm(algorithm)
            .unwrap();
        let limiter = std::sync::Arc::new(Limiter::new(RedisRateStore::new(redis), quota));
        // Eight tasks in each process, each with its own share of the attempts.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    let mut admitted = 0u64;
                    for _ in 0..n / 8 {
                        if limiter.check(b"hot", 1).await.unwrap().is_allowed() {
                            admitted += 1;
                        }
                    }
                    admitted
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    println!("admitted={admitted}");
}

#[test]
fn eight_processes_admit_exactly_the_limit() {
    let Some(urls) = common::cluster_urls() else {
        return;
    };
    if std::env::var("PALISADE_HAMMER_PREFIX").is_ok() {
        return;
    }
    for algorithm in ["counter", "log"] {
        let prefix = common::unique_prefix("cluster-hammer");
        // Eight processes (this test binary, re-run as `hammer_child`), 160 attempts each:
        // 1 280 attempts on one key with a limit of 300.
        let children: Vec<_> = (0..8)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "hammer_child",
                        "--nocapture",
                        "--test-threads",
                        "1",
                    ])
                    .env("PALISADE_HAMMER_PREFIX", &prefix)
                    .env("PALISADE_HAMMER_N", "160")
                    .env("PALISADE_HAMMER_ALGORITHM", algorithm)
                    .env("PALISADE_REDIS_CLUSTER_URLS", urls.join(","))
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut total = 0u64;
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            let text = String::from_utf8_lossy(&out.stdout);
            let n: u64 = text
                .split("admitted=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .expect("the child reports its count")
                .parse()
                .unwrap();
            total += n;
        }
        eprintln!("{algorithm}: 8 processes, 1280 attempts, limit 300: {total} admitted");
        assert_eq!(total, 300, "{algorithm}: exactly the limit is admitted");
        common::runtime().block_on(async {
            let redis = Redis::open_cluster(urls.iter().map(String::as_str))
                .unwrap()
                .with_prefix(&prefix)
                .unwrap();
            let store = RedisRateStore::new(redis);
            for kind in [WindowKind::Counter, WindowKind::Log] {
                let clear = RateRequest::new(kind, HOUR, 1, RateOp::Clear);
                store.apply(b"hot", clear).await.unwrap();
            }
        });
    }
}

/// The script that starts and stops local clusters.
fn cluster_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/redis-cluster.sh")
}

/// A private cluster on `base`..`base + 5`, stopped when dropped.
struct PrivateCluster(u16);

impl PrivateCluster {
    fn start(base: u16) -> Option<Self> {
        let ok = Command::new("bash")
            .arg(cluster_script())
            .args(["start", &base.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(base))
    }

    fn urls(&self) -> Vec<String> {
        (self.0..self.0 + 6)
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The PID of the server on `port`, from the pid file the script had it write.
    fn pid(&self, port: u16) -> u32 {
        let dir = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
        let file = format!("{dir}/palisade-redis-cluster-{}/{port}/pid", self.0);
        std::fs::read_to_string(file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(cluster_script())
            .args(["stop", &self.0.to_string()])
            .status();
    }
}

/// The port of the master serving `key`'s slot, asked of the node at `url`.
async fn master_port_of(url: &str, key: &[u8]) -> u16 {
    let mut conn = common::inspect(url).await;
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .unwrap();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if !fields[2].contains("master") || fields[2].contains("fail") {
            continue;
        }
        for range in &fields[8..] {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                && (lo..=hi).contains(&slot)
            {
                let addr = fields[1].split('@').next().unwrap();
                return addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
    }
    panic!("no master serves slot {slot}");
}

/// Kill the master of a hot key mid-run: the cluster promotes its replica, decisions
/// continue (failing closed while no master answers), and the limit is over-admitted by at
/// most the admissions the dead master had not yet replicated.
#[test]
fn decisions_continue_through_a_failover() {
    if !common::have_redis_server() || common::cluster_urls().is_none() {
        return;
    }
    let Some(cluster) = PrivateCluster::start(7110) else {
        eprintln!("skipped: could not start a private cluster on 7110-7115");
        return;
    };
    let urls = cluster.urls();
    common::runtime().block_on(async {
        let redis = Redis::open_cluster(urls.iter().map(String::as_str))
            .unwrap()
            .with_timeout(Duration::from_millis(500));
        let store = RedisRateStore::new(redis);
        let limit = 1_000;
        let key = b"hot";
        let mut admitted = 0u64;
        for _ in 0..300 {
            assert!(store.apply(key, acquire(limit)).await.unwrap().admitted);
            admitted += 1;
        }
        let redis_key = store.redis_key(key, WindowKind::Counter);
        let port = master_port_of(&urls[0], &redis_key).await;
        let pid = cluster.pid(port);
        assert!(
            Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        // Until a replica is promoted each decision fails (the caller's policy: closed).
        let started = Instant::now();
        let mut refused = 0u64;
        let seen_after = loop {
            let peek = RateRequest::new(WindowKind::Counter, HOUR, limit, RateOp::Peek(1));
            match store.apply(key, peek).await {
                Ok(c) => break c.current,
                Err(StoreError::Unavailable { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no replica was promoted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let lost = admitted - seen_after;
        loop {
            match store.apply(key, acquire(limit)).await {
                Ok(c) if c.admitted => admitted += 1,
                Ok(_) => break,
                Err(e) => panic!("after the failover: {e}"),
            }
        }
        eprintln!(
            "failover of 127.0.0.1:{port}: {refused} decisions failed closed while no master \
             answered; the promoted replica had {seen_after} of 300 admissions ({lost} lost); \
             {admitted} admitted in all against a limit of {limit}"
        );
        assert_eq!(
            admitted,
            limit + lost,
            "over-admission is exactly the writes the dead master had not replicated"
        );
        assert!(lost < 300, "the replica had replicated something");
    });
}
