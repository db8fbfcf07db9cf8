//! Refresh-token rotation through the public API: reuse detection, sign-out, key rotation, and
//! concurrent redemption of one token (exactly one wins) in memory (in Redis: palisade-redis).

// Test helpers may unwrap and index like the tests themselves: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use core::time::Duration;
use std::sync::Arc;

use palisade_core::audit::{Action, MemorySink, Severity};
use palisade_core::keyring::{Key, KeyId, KeyState, Keyring};
use palisade_core::secret::SecretBytes;
use palisade_core::time::{Clock, FakeClock, SystemClock, UnixTime};
use palisade_token::refresh::{
    FamilyStore, MemoryFamilyStore, RefreshConfig, RefreshOutcome, RefreshTokens,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn ring() -> Arc<Keyring> {
    Arc::new(Keyring::single(
        KeyId::new("r1").unwrap(),
        SecretBytes::new(vec![0x11; 32]),
    ))
}

#[test]
fn reuse_revokes_the_family_and_is_audited() {
    let clock = FakeClock::new(UnixTime::from_secs(1_700_000_000));
    let sink = Arc::new(MemorySink::new());
    let tokens = RefreshTokens::new(
        ring(),
        MemoryFamilyStore::with_clock(clock.clone()),
        RefreshConfig::default(),
    )
    .unwrap()
    .audit(sink.clone());
    runtime().block_on(async {
        let t0 = tokens.issue("alice", clock.now()).unwrap();
        let other_family = tokens.issue("alice", clock.now()).unwrap();
        let RefreshOutcome::Rotated { token: t1, subject } = tokens
            .redeem(t0.expose_secret(), clock.now())
            .await
            .unwrap()
        else {
            panic!("first use rotates")
        };
        assert_eq!(subject, "alice");
        assert_eq!(t1.family(), t0.family());
        assert_eq!(t1.generation(), 1);
        clock.advance(Duration::from_secs(60));
        let RefreshOutcome::Rotated { token: t2, .. } = tokens
            .redeem(t1.expose_secret(), clock.now())
            .await
            .unwrap()
        else {
            panic!("second use rotates")
        };

        // An attacker replays t0 (or the client does, after the attacker used it).
        let outcome = tokens
            .redeem(t0.expose_secret(), clock.now())
            .await
            .unwrap();
        assert!(
            matches!(outcome, RefreshOutcome::ReuseDetected { family } if family == t0.family())
        );
        // The whole family is dead: the newest token too, and replays of old ones.
        assert!(matches!(
            tokens
                .redeem(t2.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::Revoked
        ));
        assert!(matches!(
            tokens
                .redeem(t1.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::Revoked
        ));
        // Other families are untouched.
        assert!(matches!(
            tokens
                .redeem(other_family.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::Rotated { .. }
        ));

        let events: Vec<_> = sink
            .events()
            .into_iter()
            .filter(|e| e.action == Action::TokenReuseDetected)
            .collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].user_id.as_deref(), Some("alice"));
        assert_eq!(events[0].severity, Severity::Critical);
        assert_eq!(events[0].metadata["family"], t0.family().to_string());
        assert_eq!(events[0].metadata["generation"], "0");
        let json = serde_json::to_string(&sink.events()).unwrap();
        assert!(!json.contains(t0.expose_secret()));
    });
}

#[test]
fn sign_out_revokes_the_family() {
    let clock = FakeClock::new(UnixTime::from_secs(1_700_000_000));
    let tokens = RefreshTokens::new(
        ring(),
        MemoryFamilyStore::with_clock(clock.clone()),
        RefreshConfig::default(),
    )
    .unwrap();
    runtime().block_on(async {
        let t0 = tokens.issue("bob", clock.now()).unwrap();
        tokens
            .revoke_family(
                &t0.family(),
                clock.now().saturating_add(Duration::from_secs(90 * 86_400)),
            )
            .await
            .unwrap();
        assert!(matches!(
            tokens
                .redeem(t0.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::Revoked
        ));
    });
}

#[test]
fn expired_tokens_and_rotated_keys() {
    let clock = FakeClock::new(UnixTime::from_secs(1_700_000_000));
    let mut keyring = Keyring::single(KeyId::new("r1").unwrap(), SecretBytes::new(vec![0x11; 32]));
    let config = RefreshConfig::default().ttl(Duration::from_secs(3600));
    let make = |ring: Keyring| {
        RefreshTokens::new(
            Arc::new(ring),
            MemoryFamilyStore::with_clock(clock.clone()),
            config.clone(),
        )
        .unwrap()
    };
    let dup = |ring: &Keyring| {
        let mut out = Keyring::new();
        for k in ring.keys() {
            out.insert(k.duplicate()).unwrap();
        }
        out
    };
    runtime().block_on(async {
        let before = make(dup(&keyring));
        let old = before.issue("carol", clock.now()).unwrap();
        let stale = before.issue("carol", clock.now()).unwrap();
        // A new active key: tokens under the old, now decrypt-only, key still redeem.
        keyring
            .insert(Key::new(
                KeyId::new("r2").unwrap(),
                KeyState::DecryptOnly,
                SecretBytes::new(vec![0x22; 32]),
            ))
            .unwrap();
        keyring
            .set_state(&KeyId::new("r2").unwrap(), KeyState::Active)
            .unwrap();
        let after = make(dup(&keyring));
        assert!(matches!(
            after
                .redeem(old.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::Rotated { .. }
        ));
        // Once retired, they are invalid.
        keyring
            .set_state(&KeyId::new("r1").unwrap(), KeyState::Retired)
            .unwrap();
        let retired = make(dup(&keyring));
        assert!(matches!(
            retired
                .redeem(stale.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::Invalid
        ));
        // Past the token's lifetime: expired.
        let fresh = retired.issue("carol", clock.now()).unwrap();
        clock.advance(Duration::from_secs(3600));
        assert!(matches!(
            retired
                .redeem(fresh.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::Expired
        ));
    });
}

/// Redeems `text` from `tasks` tasks released together by a barrier.
async fn redeem_at_once<F>(
    tokens: &Arc<RefreshTokens<F>>,
    text: &str,
    tasks: usize,
) -> Vec<RefreshOutcome>
where
    F: FamilyStore + 'static,
{
    let text: Arc<str> = text.into();
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (tokens, text, barrier) = (tokens.clone(), text.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                tokens.redeem(&text, SystemClock.now()).await.unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks);
    for h in handles {
        outcomes.push(h.await.unwrap());
    }
    outcomes
}

/// Redeems one token from `tasks` tasks at once, `rounds` times. Exactly one must rotate; the
/// others see the reuse (the first of them revokes the family, later ones may find it revoked).
async fn race<F>(tokens: Arc<RefreshTokens<F>>, tasks: usize, rounds: usize)
where
    F: FamilyStore + 'static,
{
    for round in 0..rounds {
        let token = tokens.issue("racer", SystemClock.now()).unwrap();
        let mut rotated = Vec::new();
        let mut reused = 0;
        for outcome in redeem_at_once(&tokens, token.expose_secret(), tasks).await {
            match outcome {
                RefreshOutcome::Rotated { token, .. } => rotated.push(token),
                RefreshOutcome::ReuseDetected { .. } => reused += 1,
                RefreshOutcome::Revoked => {}
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(rotated.len(), 1, "round {round}: exactly one winner");
        assert!(reused >= 1, "round {round}: the duplicate was not detected");
        // The concurrent duplicate is indistinguishable from theft, so the family is revoked,
        // the winner's new token included.
        let winner = rotated.pop().unwrap();
        assert!(matches!(
            tokens
                .redeem(winner.expose_secret(), SystemClock.now())
                .await
                .unwrap(),
            RefreshOutcome::Revoked
        ));
    }
}

#[test]
fn concurrent_redemption_in_memory_has_one_winner() {
    let tokens = Arc::new(
        RefreshTokens::new(ring(), MemoryFamilyStore::new(), RefreshConfig::default()).unwrap(),
    );
    runtime().block_on(race(tokens, 16, 50));
}

/// Stores that never answer, as a backend that is down.
#[derive(Debug)]
struct Down;

fn down() -> palisade_core::StoreError {
    palisade_core::StoreError::unavailable(std::io::Error::other("connection refused"))
}

impl FamilyStore for Down {
    async fn rotate(
        &self,
        _: &palisade_token::TokenFamily,
        _: &[u8; 16],
        _: UnixTime,
        _: UnixTime,
    ) -> Result<palisade_token::refresh::Rotation, palisade_core::StoreError> {
        Err(down())
    }
    async fn revoke(
        &self,
        _: &palisade_token::TokenFamily,
        _: UnixTime,
    ) -> Result<(), palisade_core::StoreError> {
        Err(down())
    }
    async fn is_revoked(
        &self,
        _: &palisade_token::TokenFamily,
    ) -> Result<bool, palisade_core::StoreError> {
        Err(down())
    }
}

#[test]
fn a_store_that_is_down_fails_closed() {
    let now = SystemClock.now();
    runtime().block_on(async {
        // Family store down: no successor is issued.
        let tokens = RefreshTokens::new(ring(), Down, RefreshConfig::default()).unwrap();
        let t0 = tokens.issue("erin", now).unwrap();
        assert!(matches!(
            tokens.redeem(t0.expose_secret(), now).await,
            Err(palisade_token::TokenError::Store(_))
        ));
        // A forged token is still just invalid: no store is asked.
        assert!(matches!(
            tokens.redeem("palrt_AAAA", now).await,
            Ok(RefreshOutcome::Invalid)
        ));
    });
}

/// Two tabs, or a retry after a lost response: `tasks` redemptions of one token at once, 100
/// times. Inside the reuse interval every one gets the same successor and the family lives on.
#[test]
fn concurrent_refresh_inside_the_reuse_interval_keeps_the_family() {
    let config = RefreshConfig::default().reuse_interval(Duration::from_secs(30));
    let tokens = Arc::new(RefreshTokens::new(ring(), MemoryFamilyStore::new(), config).unwrap());
    let (tasks, rounds) = (50, 100);
    let mut signed_out = 0;
    let mut split = 0;
    runtime().block_on(async {
        for _ in 0..rounds {
            let token = tokens.issue("tabs", SystemClock.now()).unwrap();
            let mut successors = std::collections::HashSet::new();
            for outcome in redeem_at_once(&tokens, token.expose_secret(), tasks).await {
                if let RefreshOutcome::Rotated { token, .. } = outcome {
                    successors.insert(token.expose_secret().to_owned());
                }
            }
            split += usize::from(successors.len() > 1);
            let Some(next) = successors.into_iter().next() else {
                signed_out += 1;
                continue;
            };
            let after = tokens.redeem(&next, SystemClock.now()).await.unwrap();
            signed_out += usize::from(!matches!(after, RefreshOutcome::Rotated { .. }));
        }
    });
    assert_eq!(
        signed_out, 0,
        "{signed_out} of {rounds} races revoked the family"
    );
    assert_eq!(
        split, 0,
        "{split} of {rounds} races handed out different successors"
    );
}

/// Outside the reuse interval a second redemption is a reuse, as without one: the family ends.
#[test]
fn reuse_after_the_interval_revokes_the_family() {
    let clock = FakeClock::new(UnixTime::from_secs(1_700_000_000));
    let tokens = RefreshTokens::new(
        ring(),
        MemoryFamilyStore::with_clock(clock.clone()),
        RefreshConfig::default().reuse_interval(Duration::from_secs(10)),
    )
    .unwrap();
    runtime().block_on(async {
        let t0 = tokens.issue("frank", clock.now()).unwrap();
        let RefreshOutcome::Rotated { token: t1, .. } = tokens
            .redeem(t0.expose_secret(), clock.now())
            .await
            .unwrap()
        else {
            panic!("first use rotates")
        };
        // 9.999 s later: the same successor, to the byte.
        clock.advance(Duration::from_millis(9_999));
        let RefreshOutcome::Rotated { token: again, .. } = tokens
            .redeem(t0.expose_secret(), clock.now())
            .await
            .unwrap()
        else {
            panic!("a redemption inside the interval rotates")
        };
        assert_eq!(again.expose_secret(), t1.expose_secret());
        // 10 s after the first: reuse.
        clock.advance(Duration::from_millis(1));
        assert!(matches!(
            tokens
                .redeem(t0.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::ReuseDetected { .. }
        ));
        assert!(matches!(
            tokens
                .redeem(t1.expose_secret(), clock.now())
                .await
                .unwrap(),
            RefreshOutcome::Revoked
        ));
    });
}
