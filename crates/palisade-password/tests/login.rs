//! The login flows the crate exists for: upgrade on login, and missing users.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too: a panic is a failed test

use std::collections::HashMap;

use palisade_password::{Hasher, Params, Policy, Verdict, Verification, Violation};

/// TEST-ONLY parameters (tiny, fast; not a preset).
fn cheap(m: u32) -> Params {
    Params::new(m, 1, 1).unwrap()
}

#[test]
fn login_upgrades_old_hashes() {
    let mut db: HashMap<&str, String> = HashMap::new();
    let v1 = Hasher::new(cheap(16));
    db.insert(
        "alice",
        v1.hash("alice's long passphrase").unwrap().into_string(),
    );

    // The service raises its cost; existing hashes still verify and get replaced.
    let v2 = Hasher::new(cheap(32));
    let stored = db["alice"].clone();
    match v2.verify(&stored, "alice's long passphrase").unwrap() {
        Verification::Match(verified) if verified.needs_rehash() => {
            db.insert(
                "alice",
                v2.hash("alice's long passphrase").unwrap().into_string(),
            );
        }
        other => panic!("expected an outdated match, got {other:?}"),
    }
    assert!(db["alice"].contains("m=32,"));
    assert!(!v2.needs_rehash(&db["alice"]).unwrap());
    match v2.verify(&db["alice"], "alice's long passphrase").unwrap() {
        Verification::Match(verified) => assert!(!verified.needs_rehash()),
        Verification::Mismatch => panic!("upgraded hash does not verify"),
    }
}

#[test]
fn missing_and_wrong_look_alike() {
    let hasher = Hasher::new(cheap(16));
    let mut db: HashMap<&str, String> = HashMap::new();
    db.insert(
        "alice",
        hasher
            .hash("alice's long passphrase")
            .unwrap()
            .into_string(),
    );

    let login = |user: &str, pw: &str| {
        hasher
            .verify_or_dummy(db.get(user).map(String::as_str), pw)
            .unwrap()
    };
    assert!(login("alice", "alice's long passphrase").is_match());
    // A wrong password and an unknown user give the same answer.
    assert_eq!(login("alice", "guess"), Verification::Mismatch);
    assert_eq!(login("mallory", "guess"), Verification::Mismatch);
    assert_eq!(
        login("mallory", "alice's long passphrase"),
        Verification::Mismatch
    );
}

#[test]
fn enrolment_checks_policy_then_hashes() {
    let policy = Policy::default();
    let hasher = Hasher::new(cheap(16));
    let enrol = |pw: &str| match policy.check_with_context(pw, &["alice", "example"]) {
        Verdict::Accept => Ok(hasher.hash(pw).unwrap()),
        Verdict::Reject(why) => Err(why),
    };
    assert!(enrol("a sentence only alice would write").is_ok());
    assert_eq!(
        enrol("password").unwrap_err(),
        Violation::TooShort {
            min_chars: 15,
            actual_chars: 8
        }
    );
    assert_eq!(
        enrol("alice-example-2024").unwrap_err(),
        Violation::ContextSpecific
    );
}

#[test]
fn presets_are_distinct_and_documented_values() {
    assert_eq!(Params::default(), Params::OWASP_19_MIB);
    let all = [
        Params::OWASP_19_MIB,
        Params::OWASP_46_MIB,
        Params::RFC9106_64_MIB,
    ];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

/// Guessers try repeats, sequences and keyboard runs early; length alone let them through.
#[test]
fn the_default_policy_refuses_patterned_passwords() {
    use palisade_password::{Policy, Verdict, Violation};
    let weak = [
        "1234567890123456",
        "aaaaaaaaaaaaaaaaaaaa",
        "passwordpassword",
        "qwertyuiopasdfgh",
        "abcdefghijklmnopqrstuvwxyz",
        "monkeymonkeymonkey",
        "hunter2hunter2hunter2",
        "0987654321098765",
        "QWERTYqwertyQWERTY",
    ];
    let accepted: Vec<_> = weak
        .iter()
        .filter(|p| Policy::default().check(p) != Verdict::Reject(Violation::Predictable))
        .collect();
    assert!(
        accepted.is_empty(),
        "{} of {} accepted: {accepted:?}",
        accepted.len(),
        weak.len()
    );
    for good in [
        "correct horse battery staple",
        "purple monkey dishwasher",
        "the quick brown fox jumps",
        "Tr0ub4dor&3 with extra words",
    ] {
        assert_eq!(Policy::default().check(good), Verdict::Accept, "{good}");
    }
    // Configurable: off, or stricter.
    let off = Policy::default().with_min_unpredictable_chars(0);
    assert_eq!(off.check("passwordpassword"), Verdict::Accept);
    assert_eq!(
        Policy::MULTI_FACTOR
            .with_min_unpredictable_chars(30)
            .check("correct horse battery staple"),
        Verdict::Reject(Violation::Predictable)
    );
}
