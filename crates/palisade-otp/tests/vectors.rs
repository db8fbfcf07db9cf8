//! RFC 4226 Appendix D and RFC 6238 Appendix B, from `tests/data/` (sources in its README).
// Test helpers may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use palisade_core::secret::SecretBytes;
use palisade_core::time::UnixTime;
use palisade_otp::{Algorithm, Digits, Hotp, OtpSecret, Totp, TotpParams};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn secret(ascii: &str) -> OtpSecret {
    OtpSecret::from_bytes(SecretBytes::from_slice(ascii.as_bytes())).unwrap()
}

#[test]
fn rfc4226_appendix_d() {
    let v = load("rfc4226.json");
    let hotp = Hotp::new(
        &secret(v["secret"].as_str().unwrap()),
        Algorithm::Sha1,
        Digits::SIX,
    );
    let codes = v["codes_by_counter"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    for (counter, expected) in codes.iter().enumerate() {
        let code = hotp.generate(counter as u64);
        assert_eq!(
            code.expose_secret(),
            expected.as_str().unwrap(),
            "counter {counter}"
        );
        assert_eq!(
            hotp.verify(expected.as_str().unwrap(), 0, 9)
                .unwrap()
                .counter(),
            counter as u64
        );
    }
}

#[test]
fn rfc6238_appendix_b() {
    let v = load("rfc6238.json");
    assert_eq!(v["period"], 30);
    assert_eq!(v["digits"], 8);
    let mut checked = 0;
    for (name, algorithm) in [
        ("SHA1", Algorithm::Sha1),
        ("SHA256", Algorithm::Sha256),
        ("SHA512", Algorithm::Sha512),
    ] {
        let params = TotpParams::new().algorithm(algorithm).digits(Digits::EIGHT);
        let totp = Totp::new(&secret(v["seeds"][name].as_str().unwrap()), params);
        for row in v["vectors"].as_array().unwrap() {
            let time = row["time"].as_u64().unwrap();
            let expected = row[name].as_str().unwrap();
            assert_eq!(
                totp.generate_at_secs(time).unwrap().expose_secret(),
                expected,
                "{name} at {time}"
            );
            // UnixTime (nanoseconds in a u64) ends in 2554; the 20000000000 row is in 2603.
            if time <= UnixTime::from_nanos(u64::MAX).as_secs() {
                let now = UnixTime::from_secs(time);
                assert_eq!(totp.generate(now).unwrap().expose_secret(), expected);
                let matched = totp.verify(expected, now, None).unwrap();
                assert_eq!(matched.step(), time / 30);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 18);
}
