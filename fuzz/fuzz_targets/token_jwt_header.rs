#![no_main]
//! JWT header parsing through the verifier: the input is a token's header (raw JSON, encoded
//! here) in front of a genuine payload and signature, and also the whole token text. Nothing
//! panics, and only the genuine header verifies.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::secret::SecretBytes;
use palisade_core::time::UnixTime;
use palisade_token::jwt::{JwtAlgorithm, JwtKeys, JwtValidation};

const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

struct Fixture {
    keys: JwtKeys,
    header: Vec<u8>,
    rest: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ring = Keyring::single(KeyId::new("k1").unwrap(), SecretBytes::new(vec![7; 32]));
        let keys = JwtKeys::from_keyring(JwtAlgorithm::Hs256, &ring).unwrap();
        let token = keys.sign(&serde_like_claims()).unwrap();
        let (header_b64, rest) = token.split_once('.').unwrap();
        Fixture {
            header: decode_b64url(header_b64).unwrap(),
            rest: rest.to_owned(),
            keys,
        }
    })
}

/// `{"exp": NOW + 600}` without a serde dependency: a map of one entry.
fn serde_like_claims() -> std::collections::BTreeMap<&'static str, u64> {
    [("exp", NOW.as_secs() + 600)].into_iter().collect()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode_b64url(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 4 / 3 + 3);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let rules = JwtValidation::new();
    let token = format!("{}.{}", encode_b64url(data), f.rest);
    let result = f.keys.verify::<serde_like::Any>(&token, &rules, NOW);
    assert_eq!(result.is_ok(), data == f.header.as_slice(), "{result:?}");
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = f.keys.verify::<serde_like::Any>(text, &rules, NOW);
    }
});

mod serde_like {
    /// Accepts any claims: the target is the header, not the claims type.
    pub type Any = std::collections::BTreeMap<String, u64>;
}
