//! Benches of palisade-token beside their peers.
//!
//! - `api_key_verify`: parse (format and CRC-32) plus hash and constant-time compare, with
//!   SHA-256 and with an HMAC pepper; the floor beside it is a bare SHA-256 of the key.
//! - `jwt_verify`: a token through `JwtKeys::verify` (kid lookup, algorithm check, signature,
//!   claims at `now`) beside `jsonwebtoken::decode` with a prepared `DecodingKey` and
//!   `Validation`, for HS256, EdDSA and ES256. Goal: within 1.1x of the raw decode.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, Validation};
use palisade_core::keyring::{KeyId, KeyState, Keyring};
use palisade_core::random::SystemRandom;
use palisade_core::secret::SecretBytes;
use palisade_core::time::{Clock, SystemClock};
use palisade_token::jwt::{JwtAlgorithm, JwtKeys, JwtValidation, StandardClaims, generate_key};
use palisade_token::{ApiKeyConfig, ApiKeyHasher, ApiKeys, ParsedApiKey};

fn api_key_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("token/api_key_verify");
    let now = SystemClock.now();
    let pepper = Keyring::single(KeyId::new("p1").unwrap(), SecretBytes::new(vec![9; 32]));
    for (name, hasher) in [
        ("sha256", ApiKeyHasher::Sha256),
        ("hmac", ApiKeyHasher::hmac(Arc::new(pepper)).unwrap()),
    ] {
        let keys = ApiKeys::new(ApiKeyConfig::default(), hasher).unwrap();
        let (key, record) = keys.issue("acct", now).unwrap();
        let text = key.expose_secret().to_owned();
        group.bench_function(BenchmarkId::new("palisade", name), |b| {
            b.iter(|| {
                let parsed = ParsedApiKey::parse(black_box(&text)).unwrap();
                keys.verify(&parsed, &record, now)
            })
        });
    }
    let (key, _) = ApiKeys::new(ApiKeyConfig::default(), ApiKeyHasher::Sha256)
        .unwrap()
        .issue("acct", now)
        .unwrap();
    let text = key.expose_secret().to_owned();
    group.bench_function("bare_sha256", |b| {
        use ring::digest;
        b.iter(|| digest::digest(&digest::SHA256, black_box(text.as_bytes())))
    });
    group.finish();
}

fn jwt_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("token/jwt_verify");
    let now = SystemClock.now();
    for alg in [
        JwtAlgorithm::Hs256,
        JwtAlgorithm::EdDsa,
        JwtAlgorithm::Es256,
    ] {
        let mut ring = Keyring::new();
        // Two keys, the signing one second, so the kid lookup is not a first-slot hit.
        ring.insert(
            generate_key(
                &KeyId::new("old").unwrap(),
                alg,
                KeyState::DecryptOnly,
                &SystemRandom,
            )
            .unwrap(),
        )
        .unwrap();
        ring.insert(
            generate_key(
                &KeyId::new("current").unwrap(),
                alg,
                KeyState::Active,
                &SystemRandom,
            )
            .unwrap(),
        )
        .unwrap();
        let keys = JwtKeys::from_keyring(alg, &ring).unwrap();
        let claims = StandardClaims::new("user-42", now, Duration::from_secs(900))
            .issuer("https://id.example")
            .jti("0f8c2b7e-5d5e-4d7a-9b8e-1c2d3e4f5a6b");
        let token = keys.sign(&claims).unwrap();
        let rules = JwtValidation::new().issuer("https://id.example");

        let decoding = match alg {
            JwtAlgorithm::Hs256 => DecodingKey::from_secret(
                ring.get(&KeyId::new("current").unwrap())
                    .unwrap()
                    .material()
                    .expose_secret(),
            ),
            _ => DecodingKey::from_jwk(
                keys.jwks()
                    .keys
                    .iter()
                    .find(|k| k.common.key_id.as_deref() == Some("current"))
                    .unwrap(),
            )
            .unwrap(),
        };
        let mut validation = Validation::new(alg.to_jsonwebtoken());
        validation.set_issuer(&["https://id.example"]);
        assert!(jsonwebtoken::decode::<StandardClaims>(&token, &decoding, &validation).is_ok());
        assert!(keys.verify::<StandardClaims>(&token, &rules, now).is_ok());

        group.bench_function(BenchmarkId::new("palisade", alg.as_str()), |b| {
            b.iter(|| {
                keys.verify::<StandardClaims>(black_box(&token), &rules, SystemClock.now())
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("jsonwebtoken", alg.as_str()), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<StandardClaims>(black_box(&token), &decoding, &validation)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, api_key_verify, jwt_verify);
criterion_main!(benches);
