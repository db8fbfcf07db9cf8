//! TOTP/HOTP verification with arbitrary secrets, parameters (period 0 included), times (up to
//! the largest instant), windows, last used steps and codes: never panics, a period of 0 is a
//! typed error, and an accepted step is in the window and newer than the last used one.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use palisade_core::secret::SecretBytes;
use palisade_core::time::UnixTime;
use palisade_otp::{
    Algorithm, Digits, Hotp, OtpError, OtpSecret, Period, Rejection, Totp, TotpParams, Window,
};

#[derive(Arbitrary, Debug)]
struct Input {
    secret: Vec<u8>,
    algorithm: u8,
    digits: u32,
    period: u64,
    t0: u64,
    now_nanos: u64,
    past: u8,
    future: u8,
    last_used: Option<u64>,
    code: String,
    use_generated: bool,
}

fuzz_target!(|input: Input| {
    let Ok((secret, _)) = OtpSecret::import_weak(SecretBytes::from_slice(&input.secret)) else {
        return;
    };
    let algorithm = match input.algorithm % 3 {
        0 => Algorithm::Sha1,
        1 => Algorithm::Sha256,
        _ => Algorithm::Sha512,
    };
    let digits = Digits::new(input.digits).unwrap_or(Digits::SIX);
    let period = match Period::from_secs(input.period) {
        Ok(p) => p,
        Err(e) => {
            assert!(input.period == 0 && matches!(e, OtpError::InvalidPeriod));
            return;
        }
    };
    let params = TotpParams::new()
        .algorithm(algorithm)
        .digits(digits)
        .period(period)
        .t0(UnixTime::from_secs(input.t0));
    // Keep the window small so one run stays fast.
    let window = Window {
        past: input.past % 8,
        future: input.future % 8,
    };
    let totp = Totp::new(&secret, params).window(window);
    let now = UnixTime::from_nanos(input.now_nanos);
    let generated = totp.generate(now);
    let code = match (&generated, input.use_generated) {
        (Ok(code), true) => code.expose_secret().to_owned(),
        _ => input.code.clone(),
    };
    match totp.verify(&code, now, input.last_used) {
        Ok(matched) => {
            let current = params
                .step_at(now)
                .expect("a step exists when a code matched");
            assert!(matched.step() >= current.saturating_sub(u64::from(window.past)));
            assert!(matched.step() <= current.saturating_add(u64::from(window.future)));
            assert!(input.last_used.is_none_or(|used| matched.step() > used));
            assert_eq!(totp.verify(&code, now, Some(matched.step())).ok(), None);
        }
        Err(Rejection::TimeOutOfRange) => assert!(generated.is_err()),
        Err(_) => {}
    }
    if let (Ok(_), true, None) = (&generated, input.use_generated, input.last_used) {
        assert!(
            totp.verify(&code, now, None).is_ok(),
            "a fresh code must verify"
        );
    }
    let hotp = Hotp::new(&secret, algorithm, digits);
    let _ = hotp.verify(&code, input.last_used.unwrap_or(0), input.past % 16);
});
