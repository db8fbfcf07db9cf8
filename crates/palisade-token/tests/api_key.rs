//! API key lifecycle through the public API: every status transition, rotation with a grace
//! period under a fake clock, and the audit trail.

// Test helpers may unwrap and index like the tests themselves: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use core::time::Duration;
use std::sync::Arc;

use palisade_core::audit::{Action, MemorySink, Outcome};
use palisade_core::time::{Clock, FakeClock, UnixTime};
use palisade_token::{
    ApiKeyConfig, ApiKeyHasher, ApiKeyStatus, ApiKeyVerdict, ApiKeys, ParsedApiKey, TokenError,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn setup() -> (FakeClock, Arc<MemorySink>, ApiKeys) {
    let clock = FakeClock::new(UnixTime::from_secs(1_700_000_000));
    let sink = Arc::new(MemorySink::new());
    let keys = ApiKeys::new(ApiKeyConfig::default(), ApiKeyHasher::Sha256)
        .unwrap()
        .audit(sink.clone());
    (clock, sink, keys)
}

fn verdict(
    keys: &ApiKeys,
    text: &str,
    record: &palisade_token::ApiKeyRecord,
    now: UnixTime,
) -> ApiKeyVerdict {
    keys.verify(&ParsedApiKey::parse(text).unwrap(), record, now)
}

#[test]
fn active_then_expiring_then_expired_by_age() {
    let (clock, _, keys) = setup();
    let (key, record) = keys.issue("acct", clock.now()).unwrap();
    assert_eq!(keys.status(&record, clock.now()), ApiKeyStatus::Active);
    // 90-day keys are "expiring" in their last 7 days.
    clock.advance(DAY * 83 - Duration::from_secs(1));
    assert_eq!(keys.status(&record, clock.now()), ApiKeyStatus::Active);
    clock.advance(Duration::from_secs(1));
    assert_eq!(keys.status(&record, clock.now()), ApiKeyStatus::Expiring);
    let ApiKeyVerdict::Valid(v) = verdict(&keys, key.expose_secret(), &record, clock.now()) else {
        panic!("an expiring key is still accepted")
    };
    assert_eq!(v.status(), ApiKeyStatus::Expiring);
    assert_eq!(v.ends_at(), record.expires_at);
    clock.advance(DAY * 7 - Duration::from_secs(1));
    assert!(verdict(&keys, key.expose_secret(), &record, clock.now()).is_valid());
    clock.advance(Duration::from_secs(1));
    assert_eq!(keys.status(&record, clock.now()), ApiKeyStatus::Expired);
    assert_eq!(
        verdict(&keys, key.expose_secret(), &record, clock.now()),
        ApiKeyVerdict::Expired
    );
}

#[test]
fn rotation_keeps_the_predecessor_for_the_grace_period() {
    let (clock, sink, keys) = setup();
    let (old_key, mut old) = keys.issue("acct", clock.now()).unwrap();
    clock.advance(DAY * 30);
    let (new_key, new) = keys.rotate(&mut old, clock.now()).unwrap();

    assert_eq!(new.rotation_count, 1);
    assert_eq!(new.predecessor.as_ref(), Some(&old.id));
    assert_eq!(old.successor.as_ref(), Some(&new.id));
    assert_eq!(new.owner, "acct");
    assert_eq!(new.expires_at, clock.now().saturating_add(DAY * 90));
    assert_eq!(old.grace_until, Some(clock.now().saturating_add(DAY)));

    // During the grace period both keys work; the old one reports that it is ending.
    assert_eq!(keys.status(&old, clock.now()), ApiKeyStatus::Expiring);
    assert_eq!(keys.status(&new, clock.now()), ApiKeyStatus::Active);
    clock.advance(DAY - Duration::from_secs(1));
    assert!(verdict(&keys, old_key.expose_secret(), &old, clock.now()).is_valid());
    assert!(verdict(&keys, new_key.expose_secret(), &new, clock.now()).is_valid());
    // Then only the successor.
    clock.advance(Duration::from_secs(1));
    assert_eq!(keys.status(&old, clock.now()), ApiKeyStatus::Expired);
    assert_eq!(
        verdict(&keys, old_key.expose_secret(), &old, clock.now()),
        ApiKeyVerdict::Expired
    );
    assert!(verdict(&keys, new_key.expose_secret(), &new, clock.now()).is_valid());

    let rotated: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| e.action == Action::ApiKeyRotated)
        .collect();
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].record_id.as_deref(), Some(old.id.as_str()));
    assert_eq!(rotated[0].metadata["successor"], new.id.as_str());
}

#[test]
fn grace_never_outlives_the_key() {
    let (clock, _, keys) = setup();
    let (_, mut old) = keys.issue("acct", clock.now()).unwrap();
    clock.advance(DAY * 90 - Duration::from_secs(3600));
    let _ = keys.rotate(&mut old, clock.now()).unwrap();
    assert_eq!(old.grace_until, Some(old.expires_at));
    assert_eq!(old.ends_at(), old.expires_at);
}

#[test]
fn a_successor_rotates_again_and_counts() {
    let (clock, _, keys) = setup();
    let (_, mut a) = keys.issue("acct", clock.now()).unwrap();
    let (_, mut b) = keys.rotate(&mut a, clock.now()).unwrap();
    let (_, c) = keys.rotate(&mut b, clock.now()).unwrap();
    assert_eq!(c.rotation_count, 2);
    assert_eq!(c.predecessor.as_ref(), Some(&b.id));
}

#[test]
fn revocation_from_every_status() {
    let (clock, sink, keys) = setup();
    // active -> revoked
    let (k1, mut r1) = keys.issue("acct", clock.now()).unwrap();
    assert!(keys.revoke(&mut r1, clock.now()));
    assert_eq!(keys.status(&r1, clock.now()), ApiKeyStatus::Revoked);
    assert_eq!(
        verdict(&keys, k1.expose_secret(), &r1, clock.now()),
        ApiKeyVerdict::Revoked
    );
    assert!(
        !keys.revoke(&mut r1, clock.now()),
        "revoking twice changes nothing"
    );
    // expiring (in grace) -> revoked: a leaked old key can be cut off before its grace ends.
    let (k2, mut r2) = keys.issue("acct", clock.now()).unwrap();
    let _ = keys.rotate(&mut r2, clock.now()).unwrap();
    assert_eq!(keys.status(&r2, clock.now()), ApiKeyStatus::Expiring);
    assert!(keys.revoke(&mut r2, clock.now()));
    assert_eq!(
        verdict(&keys, k2.expose_secret(), &r2, clock.now()),
        ApiKeyVerdict::Revoked
    );
    // expired -> revoked
    let (_, mut r3) = keys.issue("acct", clock.now()).unwrap();
    clock.advance(DAY * 91);
    assert_eq!(keys.status(&r3, clock.now()), ApiKeyStatus::Expired);
    assert!(keys.revoke(&mut r3, clock.now()));
    assert_eq!(keys.status(&r3, clock.now()), ApiKeyStatus::Revoked);
    assert_eq!(
        sink.events()
            .iter()
            .filter(|e| e.action == Action::ApiKeyRevoked)
            .count(),
        3
    );
}

#[test]
fn revoked_expired_and_rotated_keys_do_not_rotate() {
    let (clock, _, keys) = setup();
    let (_, mut revoked) = keys.issue("acct", clock.now()).unwrap();
    keys.revoke(&mut revoked, clock.now());
    assert!(matches!(
        keys.rotate(&mut revoked, clock.now()),
        Err(TokenError::InvalidTransition {
            status: ApiKeyStatus::Revoked,
            ..
        })
    ));
    let (_, mut rotated) = keys.issue("acct", clock.now()).unwrap();
    let _ = keys.rotate(&mut rotated, clock.now()).unwrap();
    assert!(matches!(
        keys.rotate(&mut rotated, clock.now()),
        Err(TokenError::InvalidTransition {
            status: ApiKeyStatus::Expiring,
            ..
        })
    ));
    let (_, mut expired) = keys.issue("acct", clock.now()).unwrap();
    clock.advance(DAY * 90);
    assert!(matches!(
        keys.rotate(&mut expired, clock.now()),
        Err(TokenError::InvalidTransition {
            status: ApiKeyStatus::Expired,
            ..
        })
    ));
}

#[test]
fn status_is_revealed_only_to_the_holder_of_the_secret() {
    let (clock, sink, keys) = setup();
    let (real, mut record) = keys.issue("acct", clock.now()).unwrap();
    keys.revoke(&mut record, clock.now());
    // Same id, different secret (recomputed checksum): a mismatch, not "revoked".
    let text = real.expose_secret();
    let (signed, _) = text.rsplit_once('_').unwrap();
    let (head, secret) = signed.rsplit_once('_').unwrap();
    let forged_signed = format!("{head}_{}", "A".repeat(secret.len()));
    let forged = forge_checksum(&forged_signed);
    assert_eq!(
        verdict(&keys, &forged, &record, clock.now()),
        ApiKeyVerdict::Mismatch
    );
    // Another key's record: a mismatch.
    let (other, _) = keys.issue("acct", clock.now()).unwrap();
    assert_eq!(
        verdict(&keys, other.expose_secret(), &record, clock.now()),
        ApiKeyVerdict::Mismatch
    );
    let used: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| e.action == Action::ApiKeyUsed)
        .collect();
    assert!(used.iter().all(|e| e.outcome == Outcome::Failure));
    assert!(used.iter().all(|e| e.metadata["result"] == "mismatch"));
}

/// A string with a valid checksum over `signed`, the way an attacker who knows the format
/// would build one: the checksum is integrity against typos, not authentication.
fn forge_checksum(signed: &str) -> String {
    let crc = crc32(signed.as_bytes());
    let mut digits = [b'0'; 6];
    let mut v = crc;
    for d in digits.iter_mut().rev() {
        *d = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[(v % 62) as usize];
        v /= 62;
    }
    format!("{signed}_{}", String::from_utf8(digits.to_vec()).unwrap())
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = u32::MAX;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn last_used_is_written_at_most_once_a_minute() {
    let (clock, _, keys) = setup();
    let (_, mut record) = keys.issue("acct", clock.now()).unwrap();
    assert!(record.mark_used(clock.now(), Duration::from_secs(60)));
    clock.advance(Duration::from_secs(59));
    assert!(!record.mark_used(clock.now(), Duration::from_secs(60)));
    clock.advance(Duration::from_secs(1));
    assert!(record.mark_used(clock.now(), Duration::from_secs(60)));
    assert_eq!(record.last_used_at, Some(clock.now()));
}
