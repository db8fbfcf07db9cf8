//! otpauth:// URI parsing: never panics, and whatever parses re-emits canonically and parses
//! back to the same values (a parse-then-serialize round trip).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_otp::uri::{IssuerMismatch, OtpauthUri, UriOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = UriOptions::new()
        .issuer_mismatch(IssuerMismatch::PreferParameter)
        .accept_weak_secret();
    let _ = OtpauthUri::parse(text);
    if let Ok(uri) = OtpauthUri::parse_with(text, &options) {
        let canonical = uri.expose_uri();
        let again = OtpauthUri::parse_with(&canonical, &options).expect("canonical form parses");
        assert_eq!(again.kind(), uri.kind());
        assert_eq!(again.issuer(), uri.issuer());
        assert_eq!(again.account(), uri.account());
        assert_eq!(again.algorithm(), uri.algorithm());
        assert_eq!(again.digits(), uri.digits());
        assert_eq!(again.secret(), uri.secret());
        assert_eq!(again.expose_uri().as_str(), canonical.as_str());
    }
});
