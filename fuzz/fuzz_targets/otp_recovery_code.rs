//! Recovery-code parsing: never panics; whatever parses formats and parses back to itself;
//! consuming arbitrary input against a set never panics and never accepts a malformed input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::random::SystemRandom;
use palisade_core::secret::SecretBytes;
use palisade_otp::recovery::{RecoveryCode, RecoveryCodes, RecoveryOutcome};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = RecoveryCode::parse(text);
    if let Ok(code) = &parsed {
        let shown = code.expose_formatted();
        assert_eq!(
            &RecoveryCode::parse(&shown).expect("formatted code parses"),
            code
        );
    }
    let keyring = Keyring::single(
        KeyId::new("fuzz").expect("valid id"),
        SecretBytes::from_slice(&[1; 32]),
    );
    let issued = RecoveryCodes::new()
        .count(2)
        .expect("valid count")
        .generate(&keyring, &SystemRandom)
        .expect("generates");
    let mut stored = issued.stored().clone();
    let outcome = stored.consume(&keyring, text).expect("key present");
    if parsed.is_err() {
        assert_eq!(outcome, RecoveryOutcome::Rejected);
    }
});
