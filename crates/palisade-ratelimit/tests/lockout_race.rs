//! The lockout from the attacker's side: concurrent wrong guesses on one account.
#![allow(clippy::unwrap_used)]

use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palisade_ratelimit::{Begin, Lockout, LockoutPolicy, MemoryRateStore};

/// The password check: slow, as a real hash is, and always wrong.
async fn verify(calls: &AtomicU64) -> bool {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    false
}

#[test]
fn fifty_concurrent_guesses_reach_the_verifier_at_most_five_times() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    // No doubling delay, so the window's limit of 5 is what stands in the way.
    let mut policy = LockoutPolicy::default();
    policy.delay_after = 100;
    let lockout = Arc::new(Lockout::new(MemoryRateStore::new(), policy).unwrap());
    let calls = Arc::new(AtomicU64::new(0));
    let ip = "203.0.113.9".parse().unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (lockout, calls) = (lockout.clone(), calls.clone());
                tokio::spawn(async move {
                    let Begin::Proceed(attempt) = lockout.begin("alice", ip).await.unwrap() else {
                        return;
                    };
                    if verify(&calls).await {
                        attempt.succeeded().await.unwrap();
                    } else {
                        let _ = attempt.failed();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let n = calls.load(Ordering::SeqCst);
    eprintln!("{n} of 50 guesses reached verification");
    assert!(n <= 5, "{n} of 50 guesses reached verification");
}
