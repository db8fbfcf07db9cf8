//! The cipher's behaviour, run against every backend and algorithm by one macro.

// Test helpers may unwrap and index: a panic there is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;

use palisade_core::audit::{Action, MemorySink};
use palisade_core::keyring::{Key, KeyId, KeyState, Keyring};
use palisade_core::random::SystemRandom;
use palisade_field::envelope::{self, Header};
use palisade_field::{Algorithm, Backend, Context, FieldCipher, FieldError};
use proptest::prelude::*;

const K1: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const K2: &str = "ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8=";

fn ring() -> Keyring {
    Keyring::parse(&format!("k2:active:{K2},k1:decrypt-only:{K1}")).unwrap()
}

/// Owned parts of a context, for proptest.
#[derive(Debug, Clone, PartialEq)]
struct Ctx {
    table: String,
    column: String,
    row: Result<i64, Vec<u8>>,
    tenant: Option<String>,
}

impl Ctx {
    fn get(&self) -> Context<'_> {
        let c = match &self.row {
            Ok(i) => Context::new(&self.table, &self.column, *i),
            Err(b) => Context::new(&self.table, &self.column, b.as_slice()),
        };
        match &self.tenant {
            Some(t) => c.tenant(t),
            None => c,
        }
    }
}

fn ctx_strategy() -> impl Strategy<Value = Ctx> {
    (
        "[a-z_]{0,12}",
        "[a-z_]{0,12}",
        prop_oneof![
            any::<i64>().prop_map(Ok),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Err)
        ],
        proptest::option::of("[a-z]{0,8}"),
    )
        .prop_map(|(table, column, row, tenant)| Ctx {
            table,
            column,
            row,
            tenant,
        })
}

#[derive(Debug, Clone)]
enum Op {
    Encrypt(Vec<u8>, Ctx),
    AddKey,
    ActivateNewest,
    RetireOldest,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (proptest::collection::vec(any::<u8>(), 0..64), ctx_strategy())
            .prop_map(|(p, c)| Op::Encrypt(p, c)),
        1 => Just(Op::AddKey),
        1 => Just(Op::ActivateNewest),
        1 => Just(Op::RetireOldest),
    ]
}

macro_rules! suite {
    ($name:ident, $backend:expr, $algorithm:expr, $subkeys:expr) => {
        mod $name {
            use super::*;

            fn cipher_for(ring: &Keyring) -> FieldCipher {
                FieldCipher::builder(ring)
                    .backend($backend)
                    .algorithm($algorithm)
                    .column_subkeys($subkeys)
                    .build()
                    .unwrap()
            }

            #[test]
            fn round_trip_both_forms() {
                let c = cipher_for(&ring());
                let ctx = Context::new("users", "phone", 42).tenant("acme");
                let raw = c.encrypt(b"+15551234567", &ctx).unwrap();
                assert_eq!(&*c.decrypt(&raw, &ctx).unwrap(), b"+15551234567");
                let text = c.encrypt_text(b"+15551234567", &ctx).unwrap();
                assert!(palisade_field::is_encrypted(&text));
                assert_eq!(&*c.decrypt_string(&text, &ctx).unwrap(), "+15551234567");
                let h = envelope::inspect(text.as_bytes()).unwrap();
                assert_eq!(h.key_id.as_str(), "k2");
                assert_eq!(h.algorithm, $algorithm);
                assert_eq!(h.column_subkey, $subkeys);
                assert_eq!(h.plaintext_len, 12);
                assert_eq!(&*c.decrypt(c.encrypt(b"", &ctx).unwrap(), &ctx).unwrap(), b"");
            }

            #[test]
            fn overhead_of_a_32_byte_value() {
                let c = cipher_for(&ring());
                let ctx = Context::new("t", "c", 1);
                let raw = c.encrypt(&[0u8; 32], &ctx).unwrap();
                let expected = 3 + 2 + $algorithm.nonce_len() + 16;
                assert_eq!(raw.len() - 32, expected);
                if $algorithm == Algorithm::Aes256Gcm {
                    // Longest id the cipher accepts: 16 bytes.
                    assert!(31 + 16 < 50);
                }
            }

            #[test]
            fn nonces_differ() {
                let c = cipher_for(&ring());
                let ctx = Context::new("t", "c", 1);
                let a = c.encrypt(b"same", &ctx).unwrap();
                let b = c.encrypt(b"same", &ctx).unwrap();
                assert_ne!(a, b);
                assert_ne!(Header::parse(&a).unwrap().nonce(), Header::parse(&b).unwrap().nonce());
            }

            #[test]
            fn other_backend_reads_it() {
                let c = cipher_for(&ring());
                let ctx = Context::new("t", "c", 9);
                let v = c.encrypt(b"interop", &ctx).unwrap();
                for backend in [Backend::Ring, Backend::RustCrypto] {
                    let other = FieldCipher::builder(&ring()).backend(backend).build().unwrap();
                    assert_eq!(&*other.decrypt(&v, &ctx).unwrap(), b"interop");
                }
            }

            #[test]
            fn counts_encryptions_and_enforces_limit() {
                let c = FieldCipher::builder(&ring())
                    .backend($backend)
                    .algorithm($algorithm)
                    .encryption_limit(Some(3))
                    .build()
                    .unwrap();
                let ctx = Context::new("t", "c", 1);
                for _ in 0..3 {
                    c.encrypt(b"x", &ctx).unwrap();
                }
                assert!(matches!(c.encrypt(b"x", &ctx), Err(FieldError::LimitReached { .. })));
                let usage = c.usage();
                let k2 = usage.iter().find(|u| u.id.as_str() == "k2").unwrap();
                assert_eq!(k2.encryptions, 3);
                assert_eq!(k2.state, KeyState::Active);
                assert_eq!(usage.iter().find(|u| u.id.as_str() == "k1").unwrap().encryptions, 0);
            }

            #[test]
            fn failures_are_typed_and_audited() {
                let sink = Arc::new(MemorySink::new());
                let c = FieldCipher::builder(&ring())
                    .backend($backend)
                    .algorithm($algorithm)
                    .column_subkeys($subkeys)
                    .audit(sink.clone())
                    .build()
                    .unwrap();
                let ctx = Context::new("users", "phone", 7);
                let v = c.encrypt(b"secret-plaintext", &ctx).unwrap();
                assert!(matches!(
                    c.decrypt(&v, &Context::new("users", "phone", 8)),
                    Err(FieldError::Authentication)
                ));
                // Unknown key: a keyring without k2.
                let old = Keyring::parse(&format!("k1:active:{K1}")).unwrap();
                assert!(matches!(
                    cipher_for(&old).decrypt(&v, &ctx),
                    Err(FieldError::UnknownKey { id }) if id.as_str() == "k2"
                ));
                // Retired key.
                let mut retired = ring();
                retired.set_state(&KeyId::new("k1").unwrap(), KeyState::Active).unwrap();
                retired.set_state(&KeyId::new("k2").unwrap(), KeyState::Retired).unwrap();
                assert!(matches!(
                    cipher_for(&retired).decrypt(&v, &ctx),
                    Err(FieldError::KeyRetired { .. })
                ));
                assert!(matches!(c.decrypt(b"garbage", &ctx), Err(FieldError::Malformed { .. })));
                let events = sink.events();
                assert_eq!(events.len(), 2);
                assert!(events.iter().all(|e| e.action == Action::DecryptionFailed));
                assert_eq!(events[0].resource.as_deref(), Some("users.phone"));
                assert_eq!(events[0].record_id.as_deref(), Some("8"));
                assert_eq!(events[0].metadata.get("reason").map(String::as_str), Some("authentication"));
                assert_eq!(events[0].metadata.get("key_id").map(String::as_str), Some("k2"));
                let dump = format!("{events:?}");
                assert!(!dump.contains("secret-plaintext"));
            }

            #[test]
            fn rotation_three_phases() {
                let mut keys = ring();
                let c = cipher_for(&keys);
                let ctx = Context::new("t", "c", 1);
                let v = c.encrypt_text(b"value", &ctx).unwrap();
                assert!(!c.needs_rotation(&v).unwrap());
                // Phase 1: k3 added decrypt-only everywhere; nothing changes for writers.
                let k3 = KeyId::new("k3").unwrap();
                keys.insert(Key::generate(k3.clone(), KeyState::DecryptOnly, 32, &SystemRandom).unwrap())
                    .unwrap();
                let c = cipher_for(&keys);
                assert!(!c.needs_rotation(&v).unwrap());
                // Phase 2: k3 active.
                keys.set_state(&k3, KeyState::Active).unwrap();
                let c = cipher_for(&keys);
                assert!(c.needs_rotation(&v).unwrap());
                let w = c.rewrap_text(&v, &ctx).unwrap();
                assert!(!c.needs_rotation(&w).unwrap());
                assert_eq!(envelope::inspect(w.as_bytes()).unwrap().key_id, k3);
                assert!(palisade_field::is_encrypted(&w));
                let raw = c.rewrap(envelope::decode_text(&v).unwrap(), &ctx).unwrap();
                assert_eq!(&*c.decrypt(&raw, &ctx).unwrap(), b"value");
                // Phase 3: k2 retired; rewrapped values still read, old ones are refused.
                keys.set_state(&KeyId::new("k2").unwrap(), KeyState::Retired).unwrap();
                let c = cipher_for(&keys);
                assert_eq!(&*c.decrypt(&w, &ctx).unwrap(), b"value");
                assert!(matches!(c.decrypt(&v, &ctx), Err(FieldError::KeyRetired { .. })));
                assert!(matches!(c.rewrap_text(&v, &ctx), Err(FieldError::KeyRetired { .. })));
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(64))]

                #[test]
                fn round_trips_and_binds_context(
                    plaintext in proptest::collection::vec(any::<u8>(), 0..300),
                    ctx in ctx_strategy(),
                    other in ctx_strategy(),
                ) {
                    let c = cipher_for(&ring());
                    let v = c.encrypt(&plaintext, &ctx.get()).unwrap();
                    prop_assert_eq!(&*c.decrypt(&v, &ctx.get()).unwrap(), plaintext.as_slice());
                    let t = c.encrypt_text(&plaintext, &ctx.get()).unwrap();
                    prop_assert_eq!(&*c.decrypt(&t, &ctx.get()).unwrap(), plaintext.as_slice());
                    if other != ctx {
                        let failed = matches!(c.decrypt(&v, &other.get()), Err(FieldError::Authentication));
                        prop_assert!(failed);
                    }
                }

                #[test]
                fn any_flipped_bit_or_truncation_is_an_error(
                    plaintext in proptest::collection::vec(any::<u8>(), 0..64),
                    ctx in ctx_strategy(),
                    pos in any::<prop::sample::Index>(),
                    bit in 0u8..8,
                    cut in any::<prop::sample::Index>(),
                ) {
                    let c = cipher_for(&ring());
                    let v = c.encrypt(&plaintext, &ctx.get()).unwrap();
                    let mut w = v.clone();
                    w[pos.index(v.len())] ^= 1 << bit;
                    prop_assert!(c.decrypt(&w, &ctx.get()).is_err());
                    let n = cut.index(v.len());
                    prop_assert!(c.decrypt(&v[..n], &ctx.get()).is_err());
                    let mut longer = v.clone();
                    longer.push(0);
                    prop_assert!(c.decrypt(&longer, &ctx.get()).is_err());
                    // The text form too.
                    let t = envelope::encode_text(&w);
                    prop_assert!(c.decrypt(&t, &ctx.get()).is_err());
                }

                #[test]
                fn rotation_sequences_keep_every_unretired_value_readable(
                    ops in proptest::collection::vec(op_strategy(), 1..24),
                ) {
                    let mut keys = Keyring::parse(&format!("k0:active:{K1}")).unwrap();
                    let mut next = 1;
                    let mut written: Vec<(Vec<u8>, Ctx, Vec<u8>, KeyId)> = Vec::new();
                    for op in ops {
                        let c = cipher_for(&keys);
                        match op {
                            Op::Encrypt(p, ctx) => {
                                let v = c.encrypt(&p, &ctx.get()).unwrap();
                                written.push((p, ctx, v, c.active_key_id().clone()));
                            }
                            Op::AddKey => {
                                let id = KeyId::new(&format!("k{next}")).unwrap();
                                next += 1;
                                keys.insert(Key::generate(id, KeyState::DecryptOnly, 32, &SystemRandom).unwrap()).unwrap();
                            }
                            Op::ActivateNewest => {
                                let newest = keys.keys().last().unwrap().id().clone();
                                if keys.get(&newest).unwrap().state() != KeyState::Retired {
                                    keys.set_state(&newest, KeyState::Active).unwrap();
                                }
                            }
                            Op::RetireOldest => {
                                let oldest = keys
                                    .keys()
                                    .find(|k| k.state() == KeyState::DecryptOnly)
                                    .map(|k| k.id().clone());
                                if let Some(id) = oldest {
                                    keys.set_state(&id, KeyState::Retired).unwrap();
                                }
                            }
                        }
                        let c = cipher_for(&keys);
                        for (p, ctx, v, id) in &written {
                            let state = keys.get(id).unwrap().state();
                            let got = c.decrypt(v, &ctx.get());
                            if state == KeyState::Retired {
                                let retired = matches!(got, Err(FieldError::KeyRetired { .. }));
                                prop_assert!(retired);
                            } else {
                                prop_assert_eq!(&*got.unwrap(), p.as_slice());
                                prop_assert_eq!(c.needs_rotation(v).unwrap(), id != c.active_key_id());
                            }
                        }
                    }
                }
            }
        }
    };
}

suite!(ring_aes_gcm, Backend::Ring, Algorithm::Aes256Gcm, false);
suite!(
    rustcrypto_aes_gcm,
    Backend::RustCrypto,
    Algorithm::Aes256Gcm,
    false
);
suite!(
    ring_xchacha,
    Backend::Ring,
    Algorithm::XChaCha20Poly1305,
    false
);
suite!(
    rustcrypto_xchacha,
    Backend::RustCrypto,
    Algorithm::XChaCha20Poly1305,
    false
);
suite!(
    ring_aes_gcm_subkeys,
    Backend::Ring,
    Algorithm::Aes256Gcm,
    true
);
suite!(
    rustcrypto_aes_gcm_subkeys,
    Backend::RustCrypto,
    Algorithm::Aes256Gcm,
    true
);

#[test]
fn subkeys_separate_columns_and_plain_keys() {
    let plain = FieldCipher::new(&ring()).unwrap();
    let sub = FieldCipher::builder(&ring())
        .column_subkeys(true)
        .build()
        .unwrap();
    let ctx = Context::new("t", "c", 1);
    let v = sub.encrypt(b"x", &ctx).unwrap();
    // Either cipher reads it (the header says how it was sealed) ...
    assert_eq!(&*plain.decrypt(&v, &ctx).unwrap(), b"x");
    // ... and clearing the subkey flag in the header breaks it.
    let mut w = v.clone();
    w[1] &= 0x7f;
    assert!(matches!(
        plain.decrypt(&w, &ctx),
        Err(FieldError::Authentication)
    ));
    assert!(plain.needs_rotation(&v).unwrap());
}

#[test]
fn keyring_problems_fail_fast() {
    let short = Keyring::parse("k:active:AAAA").unwrap();
    let err = FieldCipher::new(&short).unwrap_err();
    assert!(err.to_string().contains("expected 32"), "{err}");
    let long_id = Keyring::parse(&format!("{}:active:{K1}", "a".repeat(17))).unwrap();
    assert!(matches!(
        FieldCipher::new(&long_id),
        Err(FieldError::Malformed { .. })
    ));
    assert!(matches!(
        FieldCipher::from_env("PALISADE_FIELD_TEST_SURELY_UNSET"),
        Err(FieldError::Keyring(_))
    ));
    let spec = palisade_field::generate_key("2027q1", KeyState::Active).unwrap();
    let generated = Keyring::parse(&spec).unwrap();
    assert!(FieldCipher::new(&generated).is_ok());
    assert!(palisade_field::generate_key(&"a".repeat(17), KeyState::Active).is_err());
}

#[test]
fn debug_shows_no_key_material() {
    let c = FieldCipher::new(&ring()).unwrap();
    let dbg = format!("{c:?}");
    assert!(dbg.contains("k2") && !dbg.contains(K1) && !dbg.contains(K2));
}

#[test]
fn big_contexts_take_the_heap_path() {
    let c = FieldCipher::new(&ring()).unwrap();
    let table = "t".repeat(300);
    let ctx = Context::new(&table, "c", 1);
    let v = c.encrypt(b"x", &ctx).unwrap();
    assert_eq!(&*c.decrypt(&v, &ctx).unwrap(), b"x");
    assert!(c.decrypt(&v, &Context::new(&table[1..], "c", 1)).is_err());
}

/// The associated data is the header up to the key id, then the context encoding: checked
/// from outside with ring itself, so the documented format and the code cannot drift apart.
#[test]
fn associated_data_is_the_bound_header_and_the_context() {
    use base64::Engine as _;
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

    let keyring = Keyring::parse(&format!("2026q4:active:{K1}")).unwrap();
    let cipher = FieldCipher::new(&keyring).unwrap();
    let ctx = Context::new("users", "phone", 42).tenant("acme");
    let value = cipher.encrypt(b"+44 20 7946 0958", &ctx).unwrap();
    let header = Header::parse(&value).unwrap();

    let mut aad = value[..3 + 6].to_vec();
    assert_eq!(aad, [1, 1, 6, b'2', b'0', b'2', b'6', b'q', b'4']);
    aad.extend_from_slice(&ctx.to_bytes().unwrap());
    assert_eq!(
        &aad[9..],
        b"\x05users\x05phone\x01\0\0\0\0\0\0\0\x2a\x01\x04acme"
    );
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(K1)
        .unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).unwrap());
    let nonce = Nonce::try_assume_unique_for_key(header.nonce()).unwrap();
    let mut body = value[header.len()..].to_vec();
    let plaintext = key
        .open_in_place(nonce, Aad::from(&aad), &mut body)
        .unwrap();
    assert_eq!(plaintext, b"+44 20 7946 0958");
}

/// Subkeys are expanded once per column and algorithm and then reused: a warm cipher must seal
/// exactly what a cold one derives, column by column and algorithm by algorithm.
#[test]
fn cached_subkeys_match_fresh_derivations() {
    let with = |algorithm| {
        FieldCipher::builder(&ring())
            .column_subkeys(true)
            .algorithm(algorithm)
            .build()
            .unwrap()
    };
    let warm = with(Algorithm::Aes256Gcm);
    let warm_x = with(Algorithm::XChaCha20Poly1305);
    let columns = ["phone", "email", "totp_secret"];
    let mut sealed = Vec::new();
    for round in 0..3 {
        for column in columns {
            let ctx = Context::new("users", column, round);
            let text = format!("{column}-{round}");
            sealed.push((
                column,
                round,
                text.clone(),
                warm.encrypt(text.as_bytes(), &ctx).unwrap(),
            ));
            sealed.push((
                column,
                round,
                text.clone(),
                warm_x.encrypt(text.as_bytes(), &ctx).unwrap(),
            ));
        }
    }
    // One cold reader meets both algorithms for the same column in turn.
    let cold = with(Algorithm::Aes256Gcm);
    for (column, round, text, value) in &sealed {
        let ctx = Context::new("users", column, *round);
        assert_eq!(&*cold.decrypt(value, &ctx).unwrap(), text.as_bytes());
        let other = Context::new("users", "other", *round);
        assert!(matches!(
            cold.decrypt(value, &other),
            Err(FieldError::Authentication)
        ));
    }
}
