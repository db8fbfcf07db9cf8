//! RS256 and PS256 against PyJWT both ways, through the JWKS, and the `typ` check. Skipped
//! (with a message) without python3 and PyJWT with its `crypto` extra (`.ci/python.sh`).

// Test helpers may unwrap and index like the tests themselves: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::print_stderr)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use jsonwebtoken::jwk::JwkSet;
use palisade_core::keyring::{Key, KeyId, KeyState};
use palisade_core::secret::SecretBytes;
use palisade_core::time::{Clock, SystemClock, UnixTime};
use palisade_token::TokenError;
use palisade_token::jwt::{JwtAlgorithm, JwtKeys, JwtRejection, JwtValidation, StandardClaims};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pyjwt_rsa.py");
const NOW: u64 = 1_800_000_000;

fn pyjwt_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: python3 with pyjwt[crypto] is not installed");
    }
    ok
}

fn issue() -> serde_json::Value {
    let out = Command::new("python3")
        .args([SCRIPT, "issue", &NOW.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rules() -> JwtValidation {
    JwtValidation::new().issuer("https://py.example")
}

#[test]
fn pyjwt_rs256_and_ps256_tokens_verify_through_its_jwks() {
    if !pyjwt_available() {
        return;
    }
    let made = issue();
    let jwks: JwkSet = serde_json::from_value(made["jwks"].clone()).unwrap();
    let keys = JwtKeys::from_jwks(&jwks).unwrap();
    let now = UnixTime::from_secs(NOW + 5);
    for (field, alg) in [
        ("rs256", JwtAlgorithm::Rs256),
        ("ps256", JwtAlgorithm::Ps256),
    ] {
        let token = made[field].as_str().unwrap();
        let verified = keys.verify::<StandardClaims>(token, &rules(), now).unwrap();
        assert_eq!(verified.claims().sub.as_deref(), Some("pyjwt-user"));
        assert_eq!(verified.algorithm(), alg);
        // One flipped signature byte: refused.
        let mut bad = token.to_owned().into_bytes();
        let last = bad.len() - 3;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            keys.verify::<StandardClaims>(core::str::from_utf8(&bad).unwrap(), &rules(), now)
                .err(),
            Some(JwtRejection::BadSignature)
        );
    }
    // typ: an RFC 9068 access-token check refuses a plain JWT, accepts at+jwt in any spelling.
    let at = rules().typ("at+jwt");
    assert_eq!(
        keys.verify::<StandardClaims>(made["rs256"].as_str().unwrap(), &at, now)
            .err(),
        Some(JwtRejection::WrongType),
        "a plain JWT is not an access token"
    );
    assert!(
        keys.verify::<StandardClaims>(made["at_jwt"].as_str().unwrap(), &at, now)
            .is_ok()
    );
    assert!(
        keys.verify::<StandardClaims>(
            made["at_jwt"].as_str().unwrap(),
            &rules().typ("application/AT+JWT"),
            now
        )
        .is_ok()
    );
}

#[test]
fn our_rs256_and_ps256_tokens_verify_in_pyjwt() {
    if !pyjwt_available() {
        return;
    }
    let made = issue();
    let der: Vec<u8> = (0..made["rs_der_hex"].as_str().unwrap().len() / 2)
        .map(|i| {
            u8::from_str_radix(&made["rs_der_hex"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap()
        })
        .collect();
    let mut tokens = Vec::new();
    let mut published = JwkSet { keys: Vec::new() };
    for (kid, alg) in [
        ("ours-rs", JwtAlgorithm::Rs256),
        ("ours-ps", JwtAlgorithm::Ps256),
    ] {
        let key = Key::new(
            KeyId::new(kid).unwrap(),
            KeyState::Active,
            SecretBytes::from_slice(&der),
        );
        let mut keys = JwtKeys::new();
        keys.insert(alg, &key).unwrap();
        let claims = StandardClaims::new(
            "ours",
            SystemClock.now(),
            core::time::Duration::from_secs(600),
        )
        .issuer("https://py.example");
        tokens.push(keys.sign(&claims).unwrap());
        published.keys.extend(keys.jwks().keys);
    }
    let mut child = Command::new("python3")
        .args([
            SCRIPT,
            "verify",
            &serde_json::to_string(&published).unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for t in &tokens {
        writeln!(child.stdin.as_mut().unwrap(), "{t}").unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| *l == "ours")
            .count(),
        2
    );
}

#[test]
fn a_jwks_key_that_cannot_be_used_is_reported_not_dropped() {
    let jwks: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
        // A 1024-bit RSA key: too short.
        {"kty": "RSA", "kid": "weak", "alg": "RS256", "use": "sig",
         "n": "v1spoMZb8ITGzbWqut4VNG5duRoHRTTMblvMdcJkQ30fmUiUtRNAvLbpZ7teNqXG2ImsdH9tqgiogvKI3Hsyd204D-FJnrax_KFt_Bg_TPO2d-gtop5_EFW8Urtsl4ZK699RfRD2EXZqe06r9n3lM0KB-ipAFXlY9LsJWOVdM2E",
         "e": "AQAB"},
        // A curve not supported.
        {"kty": "EC", "kid": "p521", "crv": "P-521", "use": "sig",
         "x": "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
         "y": "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"},
        // An encryption key: not for verification, left out silently.
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
    ]}))
    .unwrap();
    assert!(matches!(
        JwtKeys::from_jwks(&jwks),
        Err(TokenError::InvalidKey { .. })
    ));
    let (keys, skipped) = JwtKeys::from_jwks_lenient(&jwks);
    let mut kids: Vec<_> = skipped.iter().filter_map(|s| s.kid.as_deref()).collect();
    kids.sort_unstable();
    assert_eq!(kids, ["p521", "weak"]);
    assert!(keys.jwks().keys.is_empty());
}
