#![no_main]
//! The Fernet decoder on arbitrary input: decryption (with and without a TTL), timestamp
//! reading and key parsing never panic; a token this key made round-trips.

use libfuzzer_sys::fuzz_target;
use palisade_core::random::SystemRandom;
use palisade_core::time::UnixTime;
use palisade_field::fernet::{Fernet, FernetKey};

fuzz_target!(|data: &[u8]| {
    let Ok(key) = FernetKey::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=") else {
        return;
    };
    let fernet = Fernet::new(key);
    let now = UnixTime::from_secs(499_162_801);
    let _ = fernet.decrypt(data, None, now);
    let _ = fernet.decrypt(data, Some(std::time::Duration::from_secs(60)), now);
    let _ = Fernet::timestamp(data);
    let _ = Fernet::looks_like_token(data);
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = FernetKey::from_base64(text);
        let _ = Fernet::from_keys(text);
    }
    if let Ok(token) = fernet.encrypt(data, now, &SystemRandom) {
        assert_eq!(
            fernet.decrypt(&token, None, now).ok().map(|p| p.to_vec()),
            Some(data.to_vec())
        );
    }
});
