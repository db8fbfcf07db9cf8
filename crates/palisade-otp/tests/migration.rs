//! A Google Authenticator export (a batch of 3 accounts, made by the committed helper
//! `tests/data/make-migration.py`) imports to the same secrets and parameters.

// Test helpers may unwrap and index: a panic there is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use palisade_otp::migration::MigrationBatch;
use palisade_otp::uri::{OtpKind, OtpauthUri};

#[test]
fn a_google_authenticator_export_imports_to_the_same_secrets() {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("data/migration.json")).unwrap();
    let batch = MigrationBatch::parse(data["uri"].as_str().unwrap()).unwrap();
    assert_eq!(
        (batch.size(), batch.index(), batch.id()),
        (1, 0, data["batch"]["id"].as_u64().unwrap())
    );
    let expected = data["accounts"].as_array().unwrap();
    assert_eq!(batch.accounts().len(), 3);
    for (uri, want) in batch.accounts().iter().zip(expected) {
        // The secret, through the emitted URI read back.
        let text = uri.expose_uri();
        let back = OtpauthUri::parse(&text).unwrap();
        let secret = text
            .split("secret=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .unwrap();
        assert_eq!(secret, want["secret_base32"].as_str().unwrap());
        assert_eq!(
            back.algorithm().as_str(),
            want["algorithm"].as_str().unwrap()
        );
        assert_eq!(
            u64::from(back.digits().get()),
            want["digits"].as_u64().unwrap()
        );
        match (back.kind(), want["type"].as_str().unwrap()) {
            (OtpKind::Totp { .. }, "totp") => {}
            (OtpKind::Hotp { counter }, "hotp") => {
                assert_eq!(counter, want["counter"].as_u64().unwrap());
            }
            (kind, other) => panic!("{kind:?} is not {other}"),
        }
        let name = want["name"].as_str().unwrap();
        assert_eq!(uri.account(), name.rsplit(':').next().unwrap());
        let issuer = want["issuer"].as_str().unwrap();
        let expected_issuer = if issuer.is_empty() {
            None
        } else {
            Some(issuer)
        };
        assert_eq!(uri.issuer(), expected_issuer);
    }
}

/// A protobuf encoder as small as the format: varints and length-delimited fields.
fn field(out: &mut Vec<u8>, number: u64, value: &Value<'_>) {
    fn varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    match value {
        Value::Varint(n) => {
            varint(out, number << 3);
            varint(out, *n);
        }
        Value::Bytes(b) => {
            varint(out, number << 3 | 2);
            varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
    }
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

proptest::proptest! {
    #[test]
    fn encoded_batches_import_field_for_field(
        accounts in proptest::collection::vec(
            (
                proptest::collection::vec(proptest::prelude::any::<u8>(), 16..=64),
                "[a-zA-Z0-9 ._@+-]{1,20}",
                "[a-zA-Z0-9 ._@+-]{0,20}",
                1u64..=3,
                1u64..=2,
                1u64..=2,
                proptest::prelude::any::<u64>(),
            ),
            0..5,
        ),
        id in proptest::prelude::any::<u64>(),
    ) {
        proptest::prop_assume!(accounts.iter().all(|a| !a.1.trim().is_empty()));
        let mut payload = Vec::new();
        for (secret, name, issuer, alg, digits, kind, counter) in &accounts {
            let mut otp = Vec::new();
            field(&mut otp, 1, &Value::Bytes(secret));
            field(&mut otp, 2, &Value::Bytes(name.as_bytes()));
            field(&mut otp, 3, &Value::Bytes(issuer.as_bytes()));
            field(&mut otp, 4, &Value::Varint(*alg));
            field(&mut otp, 5, &Value::Varint(*digits));
            field(&mut otp, 6, &Value::Varint(*kind));
            field(&mut otp, 7, &Value::Varint(*counter));
            // An unknown field is skipped.
            field(&mut otp, 99, &Value::Varint(7));
            field(&mut payload, 1, &Value::Bytes(&otp));
        }
        field(&mut payload, 3, &Value::Varint(2));
        field(&mut payload, 4, &Value::Varint(1));
        field(&mut payload, 5, &Value::Varint(id));
        let b64 = data_encoding::BASE64.encode(&payload);
        let uri = format!(
            "otpauth-migration://offline?data={}",
            b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
        );
        let batch = MigrationBatch::parse(&uri).unwrap();
        proptest::prop_assert_eq!((batch.size(), batch.index(), batch.id()), (2, 1, id));
        proptest::prop_assert_eq!(batch.accounts().len(), accounts.len());
        for (uri, (_, name, issuer, _, digits, kind, counter)) in batch.accounts().iter().zip(&accounts) {
            proptest::prop_assert_eq!(uri.account(), name.trim());
            let issuer = Some(issuer.trim()).filter(|i| !i.is_empty());
            proptest::prop_assert_eq!(uri.issuer(), issuer);
            proptest::prop_assert_eq!(u64::from(uri.digits().get()), if *digits == 1 { 6 } else { 8 });
            match uri.kind() {
                OtpKind::Hotp { counter: c } => proptest::prop_assert!(*kind == 1 && c == *counter),
                OtpKind::Totp { .. } => proptest::prop_assert_eq!(*kind, 2),
            }
        }
    }
}
