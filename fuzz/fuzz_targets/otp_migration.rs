#![no_main]
//! Google Authenticator export import: never panics on any URI or payload; every account it
//! returns emits a URI that parses back to the same account.

use libfuzzer_sys::fuzz_target;
use palisade_otp::migration::MigrationBatch;
use palisade_otp::uri::{OtpauthUri, UriOptions};

fuzz_target!(|data: &[u8]| {
    let options = UriOptions::new().accept_weak_secret();
    let text = core::str::from_utf8(data).ok().map(str::to_owned);
    // Both the raw bytes as a payload (through base64) and the input as a URI.
    let encoded = format!(
        "otpauth-migration://offline?data={}",
        data_encoding::BASE64URL_NOPAD
            .encode(data)
            .replace('-', "%2B")
            .replace('_', "%2F")
    );
    for uri in text.iter().map(String::as_str).chain([encoded.as_str()]) {
        let Ok(batch) = MigrationBatch::parse_with(uri, &options) else {
            continue;
        };
        assert!(batch.index() < batch.size());
        for account in batch.accounts() {
            let emitted = account.expose_uri();
            let back = OtpauthUri::parse_with(&emitted, &options)
                .unwrap_or_else(|e| panic!("an imported account does not parse back: {e}"));
            assert_eq!(back.account(), account.account());
            assert_eq!(back.issuer(), account.issuer());
            assert_eq!(back.kind(), account.kind());
        }
    }
});
