//! The Redis one-time store against real servers: the shared node (`PALISADE_REDIS_URL`) and
//! the local cluster (`PALISADE_REDIS_CLUSTER_URLS`); each is skipped, with a message, when
//! its variable is not set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use core::time::Duration;
use std::sync::Arc;

use palisade_core::StoreError;
use palisade_core::once::{Claim, OneTimeStore, conformance};
use palisade_core::time::{Clock, SystemClock};
use palisade_redis::{Redis, RedisOneTimeStore};

#[test]
fn redis_store_passes_conformance() {
    for (name, redis) in common::backends("once-conformance") {
        common::runtime().block_on(async {
            let store = RedisOneTimeStore::new(redis);
            conformance::one_time_store(&store, SystemClock.now()).await;
        });
        eprintln!("{name}: passed");
    }
}

#[test]
fn racing_clients_have_one_winner() {
    for (name, redis) in common::backends("once-race") {
        let prefix = redis.prefix().to_owned();
        let single = !redis.is_cluster();
        common::runtime().block_on(async {
            let until = SystemClock.now().saturating_add(Duration::from_secs(30));
            for round in 0u32..20 {
                // Eight separate connections, as eight service instances would have.
                let stores: Vec<_> = (0..8)
                    .map(|_| {
                        let redis = if single {
                            Redis::open(&common::single_url().unwrap()).unwrap()
                        } else {
                            let urls = common::cluster_urls().unwrap();
                            Redis::open_cluster(urls.iter().map(String::as_str)).unwrap()
                        };
                        Arc::new(RedisOneTimeStore::new(redis.with_prefix(&prefix).unwrap()))
                    })
                    .collect();
                let barrier = Arc::new(tokio::sync::Barrier::new(stores.len()));
                let tasks: Vec<_> = stores
                    .into_iter()
                    .map(|store| {
                        let barrier = barrier.clone();
                        tokio::spawn(async move {
                            barrier.wait().await;
                            store.claim("race", &round.to_be_bytes(), until).await
                        })
                    })
                    .collect();
                let mut winners = 0;
                for t in tasks {
                    if t.await.unwrap().unwrap() == Claim::Claimed {
                        winners += 1;
                    }
                }
                assert_eq!(winners, 1, "{name} round {round}: 8 claims of one token");
            }
        });
    }
}

#[test]
fn every_claim_has_a_ttl() {
    let Some(url) = common::single_url() else {
        return;
    };
    let redis = common::single("once-ttl").unwrap();
    common::runtime().block_on(async {
        let store = RedisOneTimeStore::new(redis);
        let until = SystemClock.now().saturating_add(Duration::from_secs(30));
        assert_eq!(store.claim("s", b"t", until).await.unwrap(), Claim::Claimed);
        let ttl = common::pttl_then_delete(&url, &store.redis_key("s", b"t")).await;
        assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
    });
}

#[test]
fn unreachable_server_is_a_typed_error() {
    // Port 1 on loopback refuses connections.
    let redis = Redis::open("redis://127.0.0.1:1").unwrap();
    let store = RedisOneTimeStore::new(redis);
    let err = common::runtime()
        .block_on(store.claim("s", b"t", SystemClock.now()))
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }));
}

/// An attacker replays a code whose claim the server already sees as expired: the server's
/// clock is ahead of the application's (its `expires_at` is in Redis's past), or the claim
/// arrived late. `SET .. PXAT <past>` stores nothing, so before the fix 2 of 2 claims of one
/// token were `Claimed`; now the claim lives at least a moment and a duplicate is refused.
#[test]
fn a_claim_already_past_its_expiry_still_refuses_a_duplicate() {
    for (name, redis) in common::backends("once-past") {
        common::runtime().block_on(async {
            let store = RedisOneTimeStore::new(redis);
            let past = SystemClock.now().saturating_sub(Duration::from_secs(30));
            let mut claimed = 0;
            for _ in 0..2 {
                if store.claim("totp", b"123456", past).await.unwrap() == Claim::Claimed {
                    claimed += 1;
                }
            }
            assert_eq!(
                claimed, 1,
                "{name}: {claimed} of 2 claims of one token claimed"
            );
        });
    }
}
