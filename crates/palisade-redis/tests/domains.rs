//! The domain crates over the Redis stores, as an application wires them: refresh-token
//! rotation, OAuth state and TOTP replay protection, each with two service instances (two
//! connections) racing on one value. Single node and cluster, each skipped with a message when
//! not configured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use core::time::Duration;
use std::sync::Arc;

use palisade_core::family::FamilyStore;
use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::random::SystemRandom;
use palisade_core::secret::SecretBytes;
use palisade_core::time::{Clock, SystemClock};
use palisade_otp::recovery::{RecoveryCodes, RecoveryOutcome};
use palisade_otp::{Algorithm, OtpSecret, Rejection, Totp, TotpParams};
use palisade_redis::{Redis, RedisFamilyStore, RedisOneTimeStore};
use palisade_token::oauth::{OAuthStates, Purpose, StateCheck, StateRejection};
use palisade_token::refresh::{RefreshConfig, RefreshOutcome, RefreshTokens};

fn ring() -> Arc<Keyring> {
    Arc::new(Keyring::single(
        KeyId::new("r1").unwrap(),
        SecretBytes::new(vec![0x11; 32]),
    ))
}

/// A second handle on the same server or cluster, under the same prefix: another instance.
fn another(redis: &Redis) -> Redis {
    let fresh = if redis.is_cluster() {
        let urls = common::cluster_urls().unwrap();
        Redis::open_cluster(urls.iter().map(String::as_str)).unwrap()
    } else {
        Redis::open(&common::single_url().unwrap()).unwrap()
    };
    fresh.with_prefix(redis.prefix()).unwrap()
}

/// Redeems one token from `tasks` tasks at once, `rounds` times: exactly one rotates.
async fn race<F>(tokens: Arc<RefreshTokens<F>>, tasks: usize, rounds: usize)
where
    F: FamilyStore + 'static,
{
    for round in 0..rounds {
        let token = tokens.issue("racer", SystemClock.now()).unwrap();
        let text: Arc<str> = token.expose_secret().into();
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
        let mut rotated = 0;
        for h in handles {
            match h.await.unwrap() {
                RefreshOutcome::Rotated { .. } => rotated += 1,
                RefreshOutcome::ReuseDetected { .. } | RefreshOutcome::Revoked => {}
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(
            rotated, 1,
            "round {round}: {tasks} redemptions of one token"
        );
    }
}

#[test]
fn concurrent_refresh_redemption_has_one_winner() {
    for (name, redis) in common::backends("domains-refresh") {
        common::runtime().block_on(async {
            // Short lifetimes: every key written expires by itself within two minutes.
            let config = RefreshConfig::default()
                .ttl(Duration::from_secs(120))
                .family_lifetime(Duration::from_secs(120));
            let tokens = Arc::new(
                RefreshTokens::new(ring(), RedisFamilyStore::new(another(&redis)), config).unwrap(),
            );
            race(tokens.clone(), 8, 10).await;
            let t0 = tokens.issue("dave", SystemClock.now()).unwrap();
            let first = tokens.redeem(t0.expose_secret(), SystemClock.now()).await;
            assert!(
                matches!(first, Ok(RefreshOutcome::Rotated { .. })),
                "{name}"
            );
            let again = tokens.redeem(t0.expose_secret(), SystemClock.now()).await;
            assert!(
                matches!(again, Ok(RefreshOutcome::ReuseDetected { .. })),
                "{name}"
            );
        });
    }
}

#[test]
fn oauth_state_replay_is_refused_across_instances() {
    for (name, redis) in common::backends("domains-oauth") {
        common::runtime().block_on(async {
            let a = OAuthStates::new(ring(), RedisOneTimeStore::new(redis.clone())).unwrap();
            let b = OAuthStates::new(ring(), RedisOneTimeStore::new(another(&redis))).unwrap();
            let now = SystemClock.now();
            let state = a.issue(Purpose::State, "sess-1", now).unwrap();
            let (x, y) = tokio::join!(
                a.check(Purpose::State, &state, "sess-1", now),
                b.check(Purpose::State, &state, "sess-1", now)
            );
            let mut answers = [x.unwrap(), y.unwrap()];
            answers.sort_by_key(|v| matches!(v, StateCheck::Valid));
            assert_eq!(
                answers,
                [
                    StateCheck::Rejected(StateRejection::Replayed),
                    StateCheck::Valid
                ],
                "{name}"
            );
        });
    }
}

#[test]
fn totp_codes_racing_on_two_instances_have_one_winner() {
    for (name, redis) in common::backends("domains-totp") {
        common::runtime().block_on(async {
            let (a, b) = (
                RedisOneTimeStore::new(redis.clone()),
                RedisOneTimeStore::new(another(&redis)),
            );
            for round in 0..20 {
                let secret = OtpSecret::generate(Algorithm::Sha1, &SystemRandom).unwrap();
                let totp = Arc::new(Totp::new(&secret, TotpParams::new()));
                let now = SystemClock.now();
                let code: Arc<str> = totp.generate(now).unwrap().expose_secret().into();
                let scope: Arc<str> = format!("race-{round}").into();
                let barrier = Arc::new(tokio::sync::Barrier::new(2));
                let contender = |store: RedisOneTimeStore| {
                    let (totp, code, scope, barrier) =
                        (totp.clone(), code.clone(), scope.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        totp.verify_claimed(&store, &scope, &code, now, None)
                            .await
                            .unwrap()
                    })
                };
                let (ha, hb) = (contender(a.clone()), contender(b.clone()));
                let (ra, rb) = (ha.await.unwrap(), hb.await.unwrap());
                let wins = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
                assert_eq!(wins, 1, "{name} round {round}: {ra:?} {rb:?}");
                assert!(ra == Err(Rejection::Replayed) || rb == Err(Rejection::Replayed));
            }
        });
    }
}

#[test]
fn a_recovery_code_is_accepted_once_across_two_instances() {
    for (name, redis) in common::backends("domains-recovery") {
        common::runtime().block_on(async {
            let ring = ring();
            let (a, b) = (
                RedisOneTimeStore::new(redis.clone()),
                RedisOneTimeStore::new(another(&redis)),
            );
            let mut double_spends = 0;
            for round in 0..50 {
                let (codes, stored) = RecoveryCodes::new()
                    .generate(&ring, &SystemRandom)
                    .unwrap()
                    .into_parts();
                let code: Arc<str> = codes[round % codes.len()]
                    .expose_formatted()
                    .as_str()
                    .into();
                let barrier = Arc::new(tokio::sync::Barrier::new(2));
                // Each instance loaded its own copy of the user's stored set.
                let contender = |store: RedisOneTimeStore| {
                    let (ring, code, barrier) = (ring.clone(), code.clone(), barrier.clone());
                    let mut copy = stored.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        copy.consume_claimed(&ring, &store, &code, SystemClock.now())
                            .await
                            .unwrap()
                    })
                };
                let (ha, hb) = (contender(a.clone()), contender(b.clone()));
                let accepted = [ha.await.unwrap(), hb.await.unwrap()]
                    .iter()
                    .filter(|o| matches!(o, RecoveryOutcome::Accepted { .. }))
                    .count();
                assert!(
                    accepted >= 1,
                    "{name} round {round}: the genuine code was refused"
                );
                double_spends += accepted - 1;
            }
            assert_eq!(
                double_spends, 0,
                "{name}: {double_spends} of 50 codes accepted twice"
            );
        });
    }
}

#[test]
fn concurrent_refresh_inside_the_reuse_interval_keeps_the_family() {
    for (name, redis) in common::backends("domains-overlap") {
        common::runtime().block_on(async {
            let config = RefreshConfig::default()
                .ttl(Duration::from_secs(120))
                .family_lifetime(Duration::from_secs(120))
                .reuse_interval(Duration::from_secs(30));
            // Two instances, one connection each, sharing the family store.
            let instances = [
                Arc::new(
                    RefreshTokens::new(
                        ring(),
                        RedisFamilyStore::new(redis.clone()),
                        config.clone(),
                    )
                    .unwrap(),
                ),
                Arc::new(
                    RefreshTokens::new(ring(), RedisFamilyStore::new(another(&redis)), config)
                        .unwrap(),
                ),
            ];
            let (tasks, rounds) = (50, 10);
            let (mut signed_out, mut split) = (0, 0);
            for _ in 0..rounds {
                let token = instances[0].issue("tabs", SystemClock.now()).unwrap();
                let text: Arc<str> = token.expose_secret().into();
                let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
                let handles: Vec<_> = (0..tasks)
                    .map(|i| {
                        let (tokens, text, barrier) =
                            (instances[i % 2].clone(), text.clone(), barrier.clone());
                        tokio::spawn(async move {
                            barrier.wait().await;
                            tokens.redeem(&text, SystemClock.now()).await.unwrap()
                        })
                    })
                    .collect();
                let mut successors = std::collections::HashSet::new();
                for h in handles {
                    if let RefreshOutcome::Rotated { token, .. } = h.await.unwrap() {
                        successors.insert(token.expose_secret().to_owned());
                    }
                }
                split += usize::from(successors.len() > 1);
                let Some(next) = successors.into_iter().next() else {
                    signed_out += 1;
                    continue;
                };
                let after = instances[1].redeem(&next, SystemClock.now()).await.unwrap();
                signed_out += usize::from(!matches!(after, RefreshOutcome::Rotated { .. }));
            }
            assert_eq!(
                signed_out, 0,
                "{name}: {signed_out} of {rounds} races revoked the family"
            );
            assert_eq!(
                split, 0,
                "{name}: {split} of {rounds} races split the family"
            );
        });
    }
}

#[test]
fn reuse_after_the_interval_revokes_the_family() {
    for (name, redis) in common::backends("domains-overlap-end") {
        common::runtime().block_on(async {
            let config = RefreshConfig::default()
                .ttl(Duration::from_secs(120))
                .family_lifetime(Duration::from_secs(120))
                .reuse_interval(Duration::from_secs(5));
            let tokens = RefreshTokens::new(ring(), RedisFamilyStore::new(redis), config).unwrap();
            let start = SystemClock.now();
            let t0 = tokens.issue("grace", start).unwrap();
            let RefreshOutcome::Rotated { token: t1, .. } =
                tokens.redeem(t0.expose_secret(), start).await.unwrap()
            else {
                panic!("{name}: first use rotates")
            };
            // The caller's clock decides the interval; Redis keeps the first rotation's time.
            let inside = start.saturating_add(Duration::from_secs(4));
            let RefreshOutcome::Rotated { token: again, .. } =
                tokens.redeem(t0.expose_secret(), inside).await.unwrap()
            else {
                panic!("{name}: inside the interval rotates")
            };
            assert_eq!(again.expose_secret(), t1.expose_secret(), "{name}");
            let after = start.saturating_add(Duration::from_secs(5));
            assert!(
                matches!(
                    tokens.redeem(t0.expose_secret(), after).await.unwrap(),
                    RefreshOutcome::ReuseDetected { .. }
                ),
                "{name}"
            );
            assert!(
                matches!(
                    tokens.redeem(t1.expose_secret(), after).await.unwrap(),
                    RefreshOutcome::Revoked
                ),
                "{name}"
            );
        });
    }
}
