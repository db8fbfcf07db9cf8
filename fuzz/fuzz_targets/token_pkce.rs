#![no_main]
//! PKCE parsing: never panics; a verifier or challenge that parses is 43 to 128 unreserved
//! characters and keeps its text; a parsed verifier matches its own S256 challenge and never
//! the input taken as an S256 challenge of something else.

use libfuzzer_sys::fuzz_target;
use palisade_token::pkce::{
    MAX_VERIFIER_LEN, MIN_VERIFIER_LEN, PkceChallenge, PkceCheck, PkcePolicy, PkceVerifier,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let (method, rest) = match text.split_once('\n') {
        Some((m, r)) => (Some(m), r),
        None => (None, text),
    };
    if let Ok(challenge) = PkceChallenge::parse(rest, method) {
        assert_eq!(challenge.as_str(), rest);
        assert!(matches!(challenge.method().as_str(), "S256" | "plain"));
    }
    let Ok(verifier) = PkceVerifier::parse(rest) else {
        return;
    };
    assert!((MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&rest.len()));
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    );
    assert_eq!(verifier.expose_secret(), rest);
    let own = verifier.challenge();
    assert_eq!(own.verify(&verifier, PkcePolicy::new()), PkceCheck::Valid);
    if let Ok(as_challenge) = PkceChallenge::parse(rest, Some("S256")) {
        if as_challenge != own {
            assert_eq!(
                as_challenge.verify(&verifier, PkcePolicy::new()),
                PkceCheck::Mismatch
            );
        }
    }
});
