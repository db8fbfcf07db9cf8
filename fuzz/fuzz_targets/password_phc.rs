#![no_main]
//! Stored PHC strings are read from a database that may hold anything: parsing, the rehash
//! check and verification (under tight cost limits, so each run stays cheap) must return a
//! value or a typed error, never panic. A string that parses must round-trip unchanged.

use libfuzzer_sys::fuzz_target;
use palisade_password::{CostLimits, Hasher, Params, PasswordHash, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = Params::new(8, 1, 1) else {
        return;
    };
    let Ok(limits) = CostLimits::new(64, 2, 2) else {
        return;
    };
    let hasher = Hasher::new(params).with_cost_limits(limits);

    let parsed = PasswordHash::parse(s);
    let rehash = hasher.needs_rehash(s);
    assert_eq!(parsed.is_ok(), rehash.is_ok());
    if let Ok(hash) = parsed {
        assert_eq!(hash.as_str(), s);
        assert_eq!(PasswordHash::parse(hash.as_str()).ok(), Some(hash.clone()));
        let _ = format!("{hash:?}");
        let _ = hasher.verify_hash(&hash, "password");
    }
    let _ = hasher.verify(s, "password");
    // The same bytes as a candidate password: normalisation and the policy must not panic.
    let _ = Policy::default().check_with_context(s, &["password", s]);
});
