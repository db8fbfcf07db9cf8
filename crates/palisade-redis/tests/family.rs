//! The Redis family store against real servers (single node and cluster, each skipped with a
//! message when not configured).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use core::time::Duration;

use palisade_core::family::{FamilyStore, TokenFamily, conformance};
use palisade_core::time::{Clock, SystemClock};
use palisade_redis::RedisFamilyStore;

#[test]
fn redis_store_passes_conformance() {
    for (name, redis) in common::backends("family-conformance") {
        common::runtime().block_on(async {
            let store = RedisFamilyStore::new(redis);
            conformance::family_store(&store, SystemClock.now()).await;
        });
        eprintln!("{name}: passed");
    }
}

#[test]
fn a_second_revocation_never_shortens_the_first() {
    let Some(url) = common::single_url() else {
        return;
    };
    let redis = common::single("family-ttl").unwrap();
    common::runtime().block_on(async {
        let store = RedisFamilyStore::new(redis);
        let family = TokenFamily::from_bytes([0x5a; 16]);
        let now = SystemClock.now();
        store
            .revoke(&family, now.saturating_add(Duration::from_secs(600)))
            .await
            .unwrap();
        store
            .revoke(&family, now.saturating_add(Duration::from_secs(5)))
            .await
            .unwrap();
        let ttl = common::pttl_then_delete(&url, &store.redis_key(&family)).await;
        assert!(ttl > 500_000 && ttl <= 600_000, "{ttl}");
    });
}
