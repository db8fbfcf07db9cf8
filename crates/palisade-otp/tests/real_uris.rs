//! otpauth URIs as real services write them, parsed with the defaults: Microsoft 365 (the
//! tenant in the label, `issuer=Microsoft`) and PHP-style `+` for spaces in the label.

// Test helpers may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use palisade_otp::uri::{IssuerMismatch, OtpauthUri, UriOptions};

const B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

#[test]
fn microsoft_365_and_plus_labels_parse_by_default() {
    let cases = [
        // Microsoft 365: the tenant's name in the label, the issuer parameter Microsoft.
        (
            format!("otpauth://totp/Contoso:alice@contoso.com?secret={B32}&issuer=Microsoft"),
            "Microsoft",
            "alice@contoso.com",
        ),
        (
            format!(
                "otpauth://totp/Contoso%20Ltd:alice%40contoso.onmicrosoft.com?secret={B32}&issuer=Microsoft"
            ),
            "Microsoft",
            "alice@contoso.onmicrosoft.com",
        ),
        // PHP's urlencode writes spaces as '+', in the label too (otphp).
        (
            format!("otpauth://totp/ACME+Co:alice?secret={B32}&issuer=ACME%20Co"),
            "ACME Co",
            "alice",
        ),
        (
            format!("otpauth://totp/ACME+Co:alice+smith?secret={B32}&issuer=ACME+Co"),
            "ACME Co",
            "alice+smith",
        ),
    ];
    let mut refused = Vec::new();
    for (uri, issuer, account) in &cases {
        match OtpauthUri::parse(uri) {
            Ok(parsed) => {
                assert_eq!(parsed.issuer(), Some(*issuer), "{uri}");
                assert_eq!(parsed.account(), *account, "{uri}");
            }
            Err(e) => refused.push(format!("{uri}: {e}")),
        }
    }
    assert!(
        refused.is_empty(),
        "{} of {} refused: {refused:?}",
        refused.len(),
        cases.len()
    );
    // A `+` label is the same issuer even under the strict policy; a real conflict is not.
    let strict = UriOptions::new().issuer_mismatch(IssuerMismatch::Reject);
    assert!(OtpauthUri::parse_with(&cases[2].0, &strict).is_ok());
    assert!(OtpauthUri::parse_with(&cases[0].0, &strict).is_err());
}
