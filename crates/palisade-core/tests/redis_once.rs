//! The Redis one-time-use store against a real server. Skipped (with a message) when
//! `PALISADE_REDIS_URL` is not set.
#![cfg(feature = "redis")]
#![allow(clippy::print_stderr)]

use core::time::Duration;
use std::sync::Arc;

use palisade_core::StoreError;
use palisade_core::once::{Claim, OneTimeStore, RedisOneTimeStore, conformance};
use palisade_core::time::{Clock, SystemClock};

fn redis_url() -> Option<String> {
    let url = std::env::var("PALISADE_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: PALISADE_REDIS_URL is not set");
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_conformance() {
    let Some(url) = redis_url() else { return };
    let store = RedisOneTimeStore::connect(&url).await.unwrap();
    conformance::one_time_store(&store, SystemClock.now()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_clients_have_one_winner() {
    let Some(url) = redis_url() else { return };
    let token: [u8; 8] =
        palisade_core::random::array(&palisade_core::random::SystemRandom).unwrap();
    let until = SystemClock.now().saturating_add(Duration::from_secs(30));
    // Eight separate connections, as eight service instances would have.
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(Arc::new(RedisOneTimeStore::connect(&url).await.unwrap()));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(stores.len()));
    let tasks: Vec<_> = stores
        .into_iter()
        .map(|store| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.claim("race", &token, until).await.unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() == Claim::Claimed {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn unreachable_server_is_a_typed_error() {
    // Port 1 on loopback refuses connections.
    let err = RedisOneTimeStore::connect("redis://127.0.0.1:1/")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }));
    let err = RedisOneTimeStore::connect("not a url").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }));
}
