//! PKCE (RFC 7636) bound to the OAuth state: the callback's one claim returns the verifier, a
//! code stolen without it cannot be redeemed, and nothing but a valid, fresh, first use of the
//! state yields a verifier.

// Test helpers may unwrap and index like the tests themselves: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::once::MemoryOneTimeStore;
use palisade_core::random::SystemRandom;
use palisade_core::secret::SecretBytes;
use palisade_core::time::{FakeClock, UnixTime};
use palisade_token::oauth::{OAuthStates, PkceStateCheck, StateRejection};
use palisade_token::pkce::{PkceChallenge, PkceCheck, PkcePolicy, PkceVerifier};

const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

fn block_on<T>(f: impl core::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn states() -> OAuthStates<MemoryOneTimeStore<FakeClock>> {
    let ring = Keyring::single(KeyId::new("s1").unwrap(), SecretBytes::new(vec![0x44; 32]));
    let store = MemoryOneTimeStore::with_clock(FakeClock::new(NOW));
    OAuthStates::new(Arc::new(ring), store).unwrap()
}

/// The authorization server's side: the challenge it stored with the code.
fn server_accepts(challenge: &PkceChallenge, verifier: &str) -> bool {
    let Ok(verifier) = PkceVerifier::parse(verifier) else {
        return false;
    };
    let stored =
        PkceChallenge::parse(challenge.as_str(), Some(challenge.method().as_str())).unwrap();
    stored.verify(&verifier, PkcePolicy::new()) == PkceCheck::Valid
}

#[test]
fn the_state_claim_returns_the_verifier_once() {
    let s = states();
    let (state, challenge) = s.issue_pkce("sess-1", NOW).unwrap();
    assert_eq!(challenge.method().as_str(), "S256");
    let PkceStateCheck::Valid(verifier) = block_on(s.check_pkce(&state, "sess-1", NOW)).unwrap()
    else {
        panic!("a fresh state is valid")
    };
    assert!(server_accepts(&challenge, verifier.expose_secret()));
    // The state again: no second verifier.
    assert!(matches!(
        block_on(s.check_pkce(&state, "sess-1", NOW)).unwrap(),
        PkceStateCheck::Rejected(StateRejection::Replayed)
    ));
}

#[test]
fn a_stolen_code_without_its_verifier_is_refused() {
    let s = states();
    let (_, challenge) = s.issue_pkce("victim", NOW).unwrap();
    // The attacker runs their own flows and tries their verifiers, and random ones.
    let mut accepted = 0;
    for i in 0..50 {
        let (own_state, _) = s.issue_pkce("attacker", NOW).unwrap();
        if let PkceStateCheck::Valid(own) =
            block_on(s.check_pkce(&own_state, "attacker", NOW)).unwrap()
        {
            accepted += usize::from(server_accepts(&challenge, own.expose_secret()));
        }
        let guess = PkceVerifier::generate(&SystemRandom).unwrap();
        accepted += usize::from(server_accepts(&challenge, guess.expose_secret()));
        // The challenge itself, and truncations, as verifiers.
        accepted += usize::from(server_accepts(&challenge, challenge.as_str()));
        accepted += usize::from(server_accepts(&challenge, &"A".repeat(43 + i)));
    }
    assert_eq!(accepted, 0, "{accepted} of 200 wrong verifiers accepted");
}

#[test]
fn no_verifier_for_a_foreign_session_or_an_altered_state() {
    let s = states();
    let (state, _) = s.issue_pkce("sess-1", NOW).unwrap();
    assert!(matches!(
        block_on(s.check_pkce(&state, "sess-2", NOW)).unwrap(),
        PkceStateCheck::Rejected(StateRejection::Tampered)
    ));
    let mut altered = state.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    assert!(matches!(
        block_on(s.check_pkce(core::str::from_utf8(&altered).unwrap(), "sess-1", NOW)).unwrap(),
        PkceStateCheck::Rejected(StateRejection::Tampered | StateRejection::Malformed)
    ));
    let later = NOW.saturating_add(core::time::Duration::from_secs(601));
    assert!(matches!(
        block_on(s.check_pkce(&state, "sess-1", later)).unwrap(),
        PkceStateCheck::Rejected(StateRejection::Expired)
    ));
    // None of those used the state up.
    assert!(matches!(
        block_on(s.check_pkce(&state, "sess-1", NOW)).unwrap(),
        PkceStateCheck::Valid(_)
    ));
}

#[test]
fn concurrent_callbacks_get_one_verifier() {
    let s = Arc::new(states());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let mut extra = 0;
    runtime.block_on(async {
        for _ in 0..20 {
            let (state, _) = s.issue_pkce("sess", NOW).unwrap();
            let state: Arc<str> = state.into();
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let (s, state) = (s.clone(), state.clone());
                    tokio::spawn(async move { s.check_pkce(&state, "sess", NOW).await.unwrap() })
                })
                .collect();
            let mut valid = 0;
            for h in handles {
                valid += usize::from(matches!(h.await.unwrap(), PkceStateCheck::Valid(_)));
            }
            assert!(valid >= 1);
            extra += valid - 1;
        }
    });
    assert_eq!(extra, 0, "{extra} extra verifiers handed out in 20 races");
}
