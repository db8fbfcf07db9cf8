#![no_main]
//! The envelope decoder on arbitrary bytes: header parsing, the text form, inspection,
//! rotation checks and decryption never panic; a value that decrypts re-encrypts and decrypts
//! back to the same plaintext.

use libfuzzer_sys::fuzz_target;
use palisade_core::keyring::Keyring;
use palisade_field::envelope::{self, Header};
use palisade_field::{Context, Encrypted, FieldCipher};

fuzz_target!(|data: &[u8]| {
    let Ok(ring) = Keyring::parse(
        "k1:active:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=,\
         k0:retired:ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8=",
    ) else {
        return;
    };
    let Ok(cipher) = FieldCipher::new(&ring) else {
        return;
    };
    let ctx = Context::new("t", "c", 1);

    if let Ok(h) = Header::parse(data) {
        assert!(h.len() <= data.len());
        let _ = h.key_id();
    }
    let _ = envelope::inspect(data);
    let _ = cipher.needs_rotation(data);
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = envelope::decode_text(text);
        let _ = Encrypted::<Vec<u8>>::from_stored(text.to_owned());
        let _ = cipher.decrypt(text, &ctx);
    }
    if let Ok(plain) = cipher.decrypt(data, &ctx) {
        let again = cipher.encrypt(&plain, &ctx).unwrap_or_default();
        assert_eq!(
            cipher.decrypt(&again, &ctx).ok().map(|p| p.to_vec()),
            Some(plain.to_vec())
        );
    }
    // Round trip of the text form for every input.
    let text = envelope::encode_text(data);
    assert_eq!(envelope::decode_text(&text).ok().as_deref(), Some(data));
});
