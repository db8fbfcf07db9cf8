//! Property tests of the formats: otpauth URIs, base32 secrets, recovery codes.

use palisade_core::secret::SecretBytes;
use palisade_otp::recovery::RecoveryCode;
use palisade_otp::uri::{OtpKind, OtpauthUri};
use palisade_otp::{Algorithm, Digits, OtpSecret, Period};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    // Printable names without ':' (the format's separator), spaces and non-ASCII included.
    "[a-zA-Z0-9 ._@+%&=?/#é漢-]{1,30}".prop_filter("not blank", |s| !s.trim().is_empty())
}

proptest! {
    #[test]
    fn uri_round_trips(
        key in proptest::collection::vec(any::<u8>(), 16..=64),
        issuer in proptest::option::of(name()),
        account in name(),
        algorithm in prop_oneof![Just(Algorithm::Sha1), Just(Algorithm::Sha256), Just(Algorithm::Sha512)],
        digits in 6u32..=8,
        kind in prop_oneof![
            (1u64..100_000).prop_map(|p| OtpKind::Totp { period: Period::from_secs(p).unwrap() }),
            any::<u64>().prop_map(|counter| OtpKind::Hotp { counter }),
        ],
    ) {
        let secret = OtpSecret::from_bytes(SecretBytes::from_slice(&key)).unwrap();
        let uri = OtpauthUri::new(kind, secret, algorithm, Digits::new(digits).unwrap(), issuer.as_deref(), &account).unwrap();
        let text = uri.expose_uri();
        let back = OtpauthUri::parse(&text).unwrap();
        prop_assert_eq!(back.kind(), kind);
        prop_assert_eq!(back.issuer(), issuer.as_deref().map(str::trim));
        prop_assert_eq!(back.account(), account.trim());
        prop_assert_eq!(back.algorithm(), algorithm);
        prop_assert_eq!(back.digits().get(), u8::try_from(digits).unwrap());
        prop_assert_eq!(back.secret().expose_secret(), key.as_slice());
        // Canonical: emitting again gives the same text.
        let again = back.expose_uri();
        prop_assert_eq!(again.as_str(), text.as_str());
    }

    #[test]
    fn uri_parser_never_panics(text in "otpauth://[a-zA-Z]{0,5}/[ -~]{0,80}") {
        let _ = OtpauthUri::parse(&text);
    }

    #[test]
    fn base32_survives_case_spaces_and_padding(key in proptest::collection::vec(any::<u8>(), 16..=64), lower in any::<bool>(), group in 1usize..9) {
        let secret = OtpSecret::from_bytes(SecretBytes::from_slice(&key)).unwrap();
        let canonical = secret.expose_base32();
        let mut messy: String = canonical
            .as_bytes()
            .chunks(group)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        if lower { messy = messy.to_lowercase(); }
        let pad = (8 - canonical.len() % 8) % 8;
        messy.push_str(&"=".repeat(pad));
        prop_assert_eq!(OtpSecret::from_base32(&messy).unwrap(), secret);
    }

    #[test]
    fn recovery_codes_round_trip_through_human_typing(seed in any::<[u8; 16]>(), lower in any::<bool>(), confuse in any::<bool>()) {
        struct Fixed([u8; 16]);
        impl core::fmt::Debug for Fixed {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str("Fixed") }
        }
        impl palisade_core::random::SecureRandom for Fixed {
            fn fill(&self, dest: &mut [u8]) -> Result<(), palisade_core::random::RandomError> {
                for (d, s) in dest.iter_mut().zip(self.0.iter().cycle()) { *d = *s; }
                Ok(())
            }
        }
        let code = RecoveryCode::generate(&Fixed(seed)).unwrap();
        let shown = code.expose_formatted();
        prop_assert_eq!(shown.len(), 19);
        prop_assert!(shown.chars().all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
        let mut typed = shown.replace('-', " ");
        if confuse { typed = typed.replace('0', "O").replace('1', "l"); }
        if lower { typed = typed.to_lowercase(); }
        prop_assert_eq!(RecoveryCode::parse(&typed).unwrap(), code);
    }

    #[test]
    fn recovery_parser_never_panics(text in "\\PC{0,80}") {
        let _ = RecoveryCode::parse(&text);
    }
}
