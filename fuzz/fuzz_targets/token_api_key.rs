#![no_main]
//! API key parsing: never panics; whatever parses re-assembles to the input, has the
//! documented part lengths, and verifies as a mismatch against an unrelated record.

use libfuzzer_sys::fuzz_target;
use palisade_core::time::UnixTime;
use palisade_token::api_key::{ID_LEN, SECRET_LEN};
use palisade_token::{ApiKeyConfig, ApiKeyHasher, ApiKeyVerdict, ApiKeys, ParsedApiKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = ParsedApiKey::parse(text) else {
        return;
    };
    assert_eq!(parsed.id().len(), ID_LEN);
    assert!(text.starts_with(parsed.prefix()));
    assert_eq!(
        text.len(),
        parsed.prefix().len() + 1 + ID_LEN + 1 + SECRET_LEN + 1 + 6
    );
    assert_eq!(parsed.key_id().as_str(), parsed.id());
    // A fresh record never matches a key someone made up.
    let keys = ApiKeys::new(ApiKeyConfig::default(), ApiKeyHasher::Sha256).unwrap();
    let (_, record) = keys.issue("fuzz", UnixTime::EPOCH).unwrap();
    assert_eq!(
        keys.verify(&parsed, &record, UnixTime::EPOCH),
        ApiKeyVerdict::Mismatch
    );
});
