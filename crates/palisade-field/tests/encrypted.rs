//! `Encrypted<T>` through serde, and the decoders on arbitrary input.

// Test helpers may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use palisade_core::keyring::Keyring;
use palisade_core::secret::SecretBytes;
use palisade_field::envelope::{self, Header};
use palisade_field::{Context, Encrypted, FieldCipher};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const K1: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

#[derive(Serialize, Deserialize)]
struct Account {
    id: i64,
    totp_secret: Encrypted<SecretBytes>,
    phone: Encrypted<String>,
}

fn cipher() -> FieldCipher {
    FieldCipher::new(&Keyring::parse(&format!("k1:active:{K1}")).unwrap()).unwrap()
}

#[test]
fn serde_round_trip_of_the_stored_form() {
    let c = cipher();
    let totp_ctx = Context::new("accounts", "totp_secret", 5);
    let phone_ctx = Context::new("accounts", "phone", 5);
    let account = Account {
        id: 5,
        totp_secret: Encrypted::seal(&c, &SecretBytes::new(vec![9u8; 20]), &totp_ctx).unwrap(),
        phone: Encrypted::seal(&c, &"+15551234567".to_string(), &phone_ctx).unwrap(),
    };
    let json = serde_json::to_string(&account).unwrap();
    assert!(json.contains("\"phone\":\"pal1:"));
    assert!(!json.contains("5551234567"));
    let back: Account = serde_json::from_str(&json).unwrap();
    assert_eq!(back.id, 5);
    assert_eq!(back.phone.open(&c, &phone_ctx).unwrap(), "+15551234567");
    assert_eq!(
        back.totp_secret
            .open(&c, &totp_ctx)
            .unwrap()
            .expose_secret(),
        &[9u8; 20]
    );
    assert!(!back.phone.needs_rotation(&c).unwrap());
    // The wrong column's context fails; plaintext in the column fails at load time.
    assert!(back.phone.open(&c, &totp_ctx).is_err());
    let plaintext = r#"{"id":1,"totp_secret":"JBSWY3DPEHPK3PXP","phone":"+1555"}"#;
    assert!(serde_json::from_str::<Account>(plaintext).is_err());
    let rewrapped = back.phone.rewrap(&c, &phone_ctx).unwrap();
    assert_ne!(rewrapped, back.phone);
    assert_eq!(rewrapped.open(&c, &phone_ctx).unwrap(), "+15551234567");
}

proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_input(
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        text in "pal1:[A-Za-z0-9_-]{0,120}",
    ) {
        let c = cipher();
        let ctx = Context::new("t", "c", 1);
        let _ = Header::parse(&bytes);
        let _ = envelope::inspect(&bytes);
        let _ = c.needs_rotation(&bytes);
        prop_assert!(c.decrypt(&bytes, &ctx).is_err());
        let _ = c.needs_rotation(&text);
        prop_assert!(c.decrypt(&text, &ctx).is_err());
        let _ = Encrypted::<String>::from_stored(text);
        prop_assert_eq!(envelope::decode_text(&envelope::encode_text(&bytes)).unwrap(), bytes);
    }
}
