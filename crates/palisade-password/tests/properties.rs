//! Property tests through the public API.
//!
//! TEST-ONLY PARAMETERS: the hashes here use `m = 8 KiB, t = 1, p = 1`, Argon2's smallest
//! legal cost, so that hundreds of cases run in seconds. They are not a preset and offer no
//! protection; real code uses `Params::OWASP_19_MIB` or another preset.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too: a panic is a failed test

use palisade_password::{
    Error, Hasher, Normalization, Params, PasswordHash, Policy, Verdict, Verification,
};
use proptest::prelude::*;

fn test_only_params() -> Params {
    Params::new(8, 1, 1).unwrap()
}

fn test_only_hasher() -> Hasher {
    Hasher::new(test_only_params())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip(password in any::<String>()) {
        let hasher = test_only_hasher();
        let stored = hasher.hash(&password).unwrap();
        prop_assert!(stored.as_str().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        match hasher.verify(stored.as_str(), &password).unwrap() {
            Verification::Match(v) => prop_assert!(!v.needs_rehash()),
            Verification::Mismatch => prop_assert!(false, "round trip failed"),
        }
        prop_assert!(!hasher.needs_rehash(stored.as_str()).unwrap());
    }

    #[test]
    fn wrong_password_fails(a in any::<String>(), b in any::<String>()) {
        prop_assume!(a != b);
        // Without normalisation distinct strings are distinct passwords (with NFKC, two
        // spellings of one character are meant to match).
        let hasher = test_only_hasher().with_normalization(Normalization::None);
        let stored = hasher.hash(&a).unwrap();
        prop_assert_eq!(hasher.verify(stored.as_str(), &b).unwrap(), Verification::Mismatch);
    }

    #[test]
    fn needs_rehash_after_parameter_change(
        m in 8u32..64, t in 1u32..3, dm in 0u32..8, dt in 0u32..2,
        password in "[ -~]{0,32}",
    ) {
        let old = Hasher::new(Params::new(m, t, 1).unwrap());
        let new_params = Params::new(m + dm, t + dt, 1).unwrap();
        let new = Hasher::new(new_params);
        let stored = old.hash(&password).unwrap();
        let changed = dm != 0 || dt != 0;
        prop_assert_eq!(new.needs_rehash(stored.as_str()).unwrap(), changed);
        // Old hashes keep verifying under the new hasher, and say they want an upgrade.
        match new.verify(stored.as_str(), &password).unwrap() {
            Verification::Match(v) => prop_assert_eq!(v.needs_rehash(), changed),
            Verification::Mismatch => prop_assert!(false, "old hash stopped verifying"),
        }
        // The upgrade is current.
        let upgraded = new.hash(&password).unwrap();
        prop_assert!(!new.needs_rehash(upgraded.as_str()).unwrap());
        prop_assert_eq!(upgraded.params(), new_params);
    }

    #[test]
    fn parse_never_panics_and_round_trips(s in any::<String>()) {
        if let Ok(h) = PasswordHash::parse(&s) {
            prop_assert_eq!(h.as_str(), s.as_str());
            prop_assert_eq!(PasswordHash::parse(h.as_str()).unwrap(), h);
        }
    }

    #[test]
    fn mangled_hashes_give_typed_errors(password in "[a-z]{1,16}", cut in 0usize..120, byte in any::<u8>()) {
        let stored = test_only_hasher().hash(&password).unwrap().into_string();
        let mut bytes = stored.clone().into_bytes();
        let i = cut % bytes.len();
        bytes[i] = byte;
        let Ok(mangled) = String::from_utf8(bytes) else { return Ok(()) };
        match test_only_hasher().verify(&mangled, &password) {
            Ok(Verification::Match(_)) => prop_assert_eq!(&mangled, &stored),
            Ok(Verification::Mismatch)
            | Err(Error::MalformedHash { .. } | Error::UnsupportedAlgorithm | Error::CostTooHigh { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
        // A truncated string is an error or, when the cut leaves a shorter but legal output,
        // a mismatch (the output length is an input of Argon2): never a match.
        let truncated = &stored[..i];
        prop_assert!(!matches!(
            test_only_hasher().verify(truncated, &password),
            Ok(Verification::Match(_))
        ));
    }

    #[test]
    fn policy_bounds_hold(password in any::<String>()) {
        let policy = Policy::MULTI_FACTOR.with_normalization(Normalization::None);
        let chars = password.chars().count();
        match policy.check(&password) {
            Verdict::Accept => prop_assert!((8..=128).contains(&chars)),
            Verdict::Reject(_) => {}
        }
        if chars < 8 {
            prop_assert!(!policy.check(&password).is_accept());
        }
    }
}
