//! OAuth state and OIDC nonce through the public API: expiry, replay, tampering and session
//! binding, each refusal audited (replay across instances sharing Redis: palisade-redis).

// Test helpers may unwrap and index like the tests themselves: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use core::time::Duration;
use std::sync::Arc;

use palisade_core::audit::{Action, MemorySink};
use palisade_core::keyring::{Key, KeyId, KeyState, Keyring};
use palisade_core::once::MemoryOneTimeStore;
use palisade_core::secret::SecretBytes;
use palisade_core::time::{Clock, FakeClock, UnixTime};
use palisade_token::oauth::{OAuthStates, Purpose, StateCheck, StateRejection};

fn block_on<T>(f: impl core::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn ring() -> Arc<Keyring> {
    Arc::new(Keyring::single(
        KeyId::new("s1").unwrap(),
        SecretBytes::new(vec![0x33; 32]),
    ))
}

fn setup() -> (
    FakeClock,
    Arc<MemorySink>,
    OAuthStates<MemoryOneTimeStore<FakeClock>>,
) {
    let clock = FakeClock::new(UnixTime::from_secs(1_700_000_000));
    let sink = Arc::new(MemorySink::new());
    let states = OAuthStates::new(ring(), MemoryOneTimeStore::with_clock(clock.clone()))
        .unwrap()
        .audit(sink.clone());
    (clock, sink, states)
}

#[test]
fn valid_once_then_replayed() {
    let (clock, sink, states) = setup();
    let state = states.issue(Purpose::State, "sess-1", clock.now()).unwrap();
    assert!(
        state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe"
    );
    block_on(async {
        assert_eq!(
            states
                .check(Purpose::State, &state, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Valid
        );
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            states
                .check(Purpose::State, &state, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Rejected(StateRejection::Replayed)
        );
    });
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, Action::OAuthStateRejected);
    assert_eq!(events[0].metadata["reason"], "replayed");
    assert!(!serde_json::to_string(&events).unwrap().contains(&state));
}

#[test]
fn expires_after_ten_minutes() {
    let (clock, sink, states) = setup();
    let early = states.issue(Purpose::State, "sess-1", clock.now()).unwrap();
    let late = states.issue(Purpose::State, "sess-1", clock.now()).unwrap();
    block_on(async {
        clock.advance(Duration::from_secs(599));
        assert_eq!(
            states
                .check(Purpose::State, &early, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Valid
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            states
                .check(Purpose::State, &late, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Rejected(StateRejection::Expired)
        );
    });
    assert_eq!(sink.events()[0].metadata["reason"], "expired");
}

#[test]
fn another_session_or_purpose_is_tampering() {
    let (clock, sink, states) = setup();
    let state = states.issue(Purpose::State, "sess-1", clock.now()).unwrap();
    block_on(async {
        assert_eq!(
            states
                .check(Purpose::State, &state, "sess-2", clock.now())
                .await
                .unwrap(),
            StateCheck::Rejected(StateRejection::Tampered)
        );
        assert_eq!(
            states
                .check(Purpose::Nonce, &state, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Rejected(StateRejection::Tampered),
            "a state is not a nonce"
        );
        // Session ids that differ only in where one ends and the next field begins.
        assert_eq!(
            states
                .check(Purpose::State, &state, "sess-1\0", clock.now())
                .await
                .unwrap(),
            StateCheck::Rejected(StateRejection::Tampered)
        );
        // Refusals did not use the state up.
        assert_eq!(
            states
                .check(Purpose::State, &state, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Valid
        );
    });
    assert_eq!(
        sink.events()
            .iter()
            .filter(|e| e.metadata["reason"] == "tampered")
            .count(),
        3
    );
}

#[test]
fn a_state_cannot_extend_its_own_life() {
    // Re-encoding the expiry field to a later time breaks the tag.
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (clock, _, states) = setup();
    let state = states.issue(Purpose::State, "sess-1", clock.now()).unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(&state).unwrap();
    // version (1) + kid length (1) + "s1" (2), then the 8-byte expiry.
    let expiry_at = 4;
    let later = u64::from_be_bytes(raw[expiry_at..expiry_at + 8].try_into().unwrap()) + 3600;
    raw[expiry_at..expiry_at + 8].copy_from_slice(&later.to_be_bytes());
    let forged = URL_SAFE_NO_PAD.encode(&raw);
    clock.advance(Duration::from_secs(700));
    assert_eq!(
        block_on(states.check(Purpose::State, &forged, "sess-1", clock.now())).unwrap(),
        StateCheck::Rejected(StateRejection::Tampered)
    );
}

#[test]
fn nonces_work_the_same_way_and_keys_rotate() {
    let clock = FakeClock::new(UnixTime::from_secs(1_700_000_000));
    let store = Arc::new(MemoryOneTimeStore::with_clock(clock.clone()));
    let mut keyring = Keyring::single(KeyId::new("s1").unwrap(), SecretBytes::new(vec![0x33; 32]));
    let dup = |ring: &Keyring| {
        let mut out = Keyring::new();
        for k in ring.keys() {
            out.insert(k.duplicate()).unwrap();
        }
        Arc::new(out)
    };
    let before = OAuthStates::new(dup(&keyring), store.clone()).unwrap();
    let nonce = before.issue(Purpose::Nonce, "sess-1", clock.now()).unwrap();
    let state = before.issue(Purpose::State, "sess-1", clock.now()).unwrap();
    keyring
        .insert(Key::new(
            KeyId::new("s2").unwrap(),
            KeyState::DecryptOnly,
            SecretBytes::new(vec![0x44; 32]),
        ))
        .unwrap();
    keyring
        .set_state(&KeyId::new("s2").unwrap(), KeyState::Active)
        .unwrap();
    let after = OAuthStates::new(dup(&keyring), store.clone()).unwrap();
    block_on(async {
        assert_eq!(
            after
                .check(Purpose::Nonce, &nonce, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Valid
        );
        assert_eq!(
            after
                .check(Purpose::Nonce, &nonce, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Rejected(StateRejection::Replayed)
        );
        keyring
            .set_state(&KeyId::new("s1").unwrap(), KeyState::Retired)
            .unwrap();
        let retired = OAuthStates::new(dup(&keyring), store.clone()).unwrap();
        assert_eq!(
            retired
                .check(Purpose::State, &state, "sess-1", clock.now())
                .await
                .unwrap(),
            StateCheck::Rejected(StateRejection::Tampered)
        );
    });
}
