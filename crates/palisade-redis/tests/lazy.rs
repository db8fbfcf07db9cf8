//! Lazy connect, time-outs and recovery, against private `redis-server`s on free ports
//! (started and stopped by PID here) and a listener that never answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use core::time::Duration;
use std::time::Instant;

use common::{PrivateRedis, free_port};
use palisade_core::StoreError;
use palisade_core::rate::{RateOp, RateRequest, RateStore, WindowKind, conformance};
use palisade_redis::{Redis, RedisRateStore};

const TIMEOUT: Duration = Duration::from_millis(300);
/// How soon after the server's return a call must answer correctly.
const RECOVERY: Duration = Duration::from_secs(1);

fn acquire(limit: u64) -> RateRequest {
    RateRequest::new(
        WindowKind::Counter,
        Duration::from_secs(3_600),
        limit,
        RateOp::Acquire(1),
    )
}

/// Calls until one answers, for at most [`RECOVERY`] after `since`; returns the answer.
async fn first_answer(store: &RedisRateStore, since: Instant) -> palisade_core::rate::RateCounts {
    loop {
        match store.apply(b"k", acquire(3)).await {
            Ok(c) => return c,
            Err(e) => assert!(
                since.elapsed() < RECOVERY,
                "no answer within {RECOVERY:?} of the server's return: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every call, connecting included, fails within the time-out while the server is down.
async fn assert_unavailable_in_time(store: &RedisRateStore) {
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.apply(b"k", acquire(3)).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(
            started.elapsed() < TIMEOUT + Duration::from_millis(200),
            "took {:?} with a time-out of {TIMEOUT:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_store_built_while_redis_is_down_recovers_when_it_starts() {
    if !common::have_redis_server() {
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    common::runtime().block_on(async {
        // Built with nothing listening: no error, no connection attempt.
        let store = RedisRateStore::new(Redis::open(&url).unwrap().with_timeout(TIMEOUT));
        assert_unavailable_in_time(&store).await;

        let server = PrivateRedis::start(port, &[]).expect("start redis-server");
        let back = Instant::now();
        let c = first_answer(&store, back).await;
        eprintln!(
            "answered {:?} after the server accepted connections",
            back.elapsed()
        );
        assert!(c.admitted && c.current == 1, "{c:?}");
        assert!(store.apply(b"k", acquire(3)).await.unwrap().admitted);
        assert!(store.apply(b"k", acquire(3)).await.unwrap().admitted);
        assert!(!store.apply(b"k", acquire(3)).await.unwrap().admitted);
        conformance::rate_store(&store).await;
        server.stop();
    });
}

#[test]
fn a_connected_store_fails_fast_while_redis_restarts_and_recovers() {
    if !common::have_redis_server() {
        return;
    }
    let port = free_port();
    let server = PrivateRedis::start(port, &[]).expect("start redis-server");
    let url = server.url();
    common::runtime().block_on(async {
        let store = RedisRateStore::new(Redis::open(&url).unwrap().with_timeout(TIMEOUT));
        assert!(store.apply(b"k", acquire(3)).await.unwrap().admitted);
        server.stop();
        assert_unavailable_in_time(&store).await;

        let _server = PrivateRedis::start(port, &[]).expect("restart redis-server");
        let back = Instant::now();
        let c = first_answer(&store, back).await;
        eprintln!(
            "answered {:?} after the restarted server accepted connections",
            back.elapsed()
        );
        // A restarted server without persistence starts a fresh window.
        assert!(c.admitted && c.current == 1, "{c:?}");
    });
}

#[test]
fn a_server_that_never_answers_is_unavailable_within_the_time_out() {
    // Accepts connections and reads nothing: a stalled server, or a black hole.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    common::runtime().block_on(async {
        let store = RedisRateStore::new(Redis::open(&url).unwrap().with_timeout(TIMEOUT));
        assert_unavailable_in_time(&store).await;
    });
    drop(listener);
}

#[test]
fn a_flushed_script_cache_is_reloaded() {
    if !common::have_redis_server() {
        return;
    }
    let server = PrivateRedis::start(free_port(), &[]).expect("start redis-server");
    let url = server.url();
    common::runtime().block_on(async {
        let store = RedisRateStore::new(Redis::open(&url).unwrap());
        assert!(store.apply(b"k", acquire(3)).await.unwrap().admitted);
        let mut conn = common::inspect(&url).await;
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
        // The next EVALSHA gets NOSCRIPT; the store loads the script and answers.
        let c = store.apply(b"k", acquire(3)).await.unwrap();
        assert!(c.admitted && c.current == 2, "{c:?}");
    });
}

#[test]
fn a_cluster_handle_built_while_every_node_is_down_is_unavailable_in_time() {
    let urls = [free_port(), free_port()].map(|p| format!("redis://127.0.0.1:{p}"));
    common::runtime().block_on(async {
        let redis = Redis::open_cluster(urls.iter().map(String::as_str))
            .unwrap()
            .with_timeout(TIMEOUT);
        assert_unavailable_in_time(&RedisRateStore::new(redis)).await;
    });
}
