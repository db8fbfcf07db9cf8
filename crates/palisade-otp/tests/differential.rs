//! palisade-otp against totp-rs 5.7 on arbitrary secrets, times, digits, algorithms and periods.

use palisade_core::secret::SecretBytes;
use palisade_core::time::UnixTime;
use palisade_otp::{Algorithm, Digits, OtpSecret, Period, Totp, TotpParams};
use proptest::prelude::*;

fn algorithms() -> impl Strategy<Value = (Algorithm, totp_rs::Algorithm)> {
    prop_oneof![
        Just((Algorithm::Sha1, totp_rs::Algorithm::SHA1)),
        Just((Algorithm::Sha256, totp_rs::Algorithm::SHA256)),
        Just((Algorithm::Sha512, totp_rs::Algorithm::SHA512)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn generate_and_check_agree_with_totp_rs(
        (ours, theirs) in algorithms(),
        key in proptest::collection::vec(any::<u8>(), 16..=200),
        secs in 0u64..=18_000_000_000,
        digits in 6usize..=8,
        period in prop_oneof![Just(30u64), 1u64..=600, 1u64..=u64::from(u32::MAX)],
        offset in -3i64..=3,
    ) {
        let secret = OtpSecret::from_bytes(SecretBytes::from_slice(&key)).unwrap();

        let params = TotpParams::new()
            .algorithm(ours)
            .digits(Digits::new(u32::try_from(digits).unwrap()).unwrap())
            .period(Period::from_secs(period).unwrap());
        let totp = Totp::new(&secret, params);
        let peer = totp_rs::TOTP::new_unchecked(theirs, digits, 1, period, key);

        let code = totp.generate_at_secs(secs).unwrap();
        let expected = peer.generate(secs);
        prop_assert_eq!(code.expose_secret(), expected.as_str());

        // A code from `offset` steps away: both accept it exactly when it is within one step
        // (totp-rs underflows before step 1, so stay clear of it).
        let step = secs / period;
        prop_assume!(step >= 4);
        let other_step = step.checked_add_signed(offset).unwrap();
        let Some(other_time) = other_step.checked_mul(period) else { return Ok(()); };
        let candidate = peer.generate(other_time);
        let theirs_ok = peer.check(&candidate, secs);
        let now = UnixTime::from_secs(secs);
        prop_assume!(now.as_secs() == secs);
        let ours_ok = totp.verify(&candidate, now, None).is_ok();
        prop_assert_eq!(ours_ok, theirs_ok);
        if offset.abs() <= 1 {
            prop_assert!(ours_ok);
        }
    }
}
