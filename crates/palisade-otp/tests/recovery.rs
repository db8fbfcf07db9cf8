//! Recovery codes used from two copies of one stored set at once (two service instances that
//! each loaded the user's row): a code must be accepted once in total, not once per copy.
//! The same race across two Redis connections runs in palisade-redis.

// Test helpers may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Barrier};

use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::once::MemoryOneTimeStore;
use palisade_core::random::SystemRandom;
use palisade_core::secret::SecretBytes;
use palisade_core::time::{Clock, SystemClock};
use palisade_otp::recovery::{RecoveryCodes, RecoveryOutcome};

fn ring() -> Arc<Keyring> {
    Arc::new(Keyring::single(
        KeyId::new("rc1").unwrap(),
        SecretBytes::new(vec![0x42; 32]),
    ))
}

const ROUNDS: usize = 50;

#[test]
fn two_copies_of_a_set_accept_one_code_once() {
    let ring = ring();
    let store = Arc::new(MemoryOneTimeStore::new());
    let mut double_spends = 0;
    for _ in 0..ROUNDS {
        let (codes, stored) = RecoveryCodes::new()
            .generate(&ring, &SystemRandom)
            .unwrap()
            .into_parts();
        let code: Arc<str> = codes[0].expose_formatted().as_str().into();
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (ring, store, code, barrier) =
                    (ring.clone(), store.clone(), code.clone(), barrier.clone());
                let mut copy = stored.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    barrier.wait();
                    rt.block_on(copy.consume_claimed(&ring, &*store, &code, SystemClock.now()))
                        .unwrap()
                })
            })
            .collect();
        let accepted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|o| matches!(o, RecoveryOutcome::Accepted { .. }))
            .count();
        assert!(accepted >= 1, "the genuine code was refused by both copies");
        double_spends += accepted - 1;
    }
    assert_eq!(
        double_spends, 0,
        "{double_spends} of {ROUNDS} codes accepted twice"
    );
}
