//! JWT through the public API: interop with `jsonwebtoken` used directly, key rotation, and the
//! attacks a verifier must refuse.

// Test helpers may unwrap and index like the tests themselves: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use core::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use palisade_core::keyring::{Key, KeyId, KeyState, Keyring};
use palisade_core::random::SystemRandom;
use palisade_core::secret::SecretBytes;
use palisade_core::time::{Clock, SystemClock, UnixTime};
use palisade_token::jwt::{
    JwtAlgorithm, JwtKeys, JwtRejection, JwtValidation, StandardClaims, generate_key,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Claims {
    #[serde(flatten)]
    std: StandardClaims,
    scope: String,
}

fn key(id: &str, alg: JwtAlgorithm, state: KeyState) -> Key {
    generate_key(&KeyId::new(id).unwrap(), alg, state, &SystemRandom).unwrap()
}

fn claims(now: UnixTime) -> Claims {
    Claims {
        std: StandardClaims::new("user-1", now, Duration::from_secs(600))
            .issuer("https://id.example")
            .audience("api"),
        scope: "read".into(),
    }
}

fn rules() -> JwtValidation {
    JwtValidation::new()
        .issuer("https://id.example")
        .audience("api")
}

fn b64(json: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

#[test]
fn tokens_verify_with_jsonwebtoken_from_the_jwks() {
    // The second implementation reads only the published JWKS document, as a resource server
    // in another language would.
    let now = SystemClock.now();
    for alg in [JwtAlgorithm::EdDsa, JwtAlgorithm::Es256] {
        let mut ring = Keyring::new();
        ring.insert(key("current", alg, KeyState::Active)).unwrap();
        let keys = JwtKeys::from_keyring(alg, &ring).unwrap();
        let token = keys.sign(&claims(now)).unwrap();

        let published = serde_json::to_string(&keys.jwks()).unwrap();
        let jwks: JwkSet = serde_json::from_str(&published).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, alg.to_jsonwebtoken());
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid in the JWKS");
        let mut validation = Validation::new(alg.to_jsonwebtoken());
        validation.set_issuer(&["https://id.example"]);
        validation.set_audience(&["api"]);
        let decoded = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims, claims(now), "{alg}");
    }
}

#[test]
fn tokens_from_jsonwebtoken_verify_here() {
    // The other direction, for HS256: a token made by jsonwebtoken alone.
    let now = SystemClock.now();
    let secret = [0x42u8; 32];
    let ring = Keyring::single(KeyId::new("hs").unwrap(), SecretBytes::from_slice(&secret));
    let keys = JwtKeys::from_keyring(JwtAlgorithm::Hs256, &ring).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    let token =
        jsonwebtoken::encode(&header, &claims(now), &EncodingKey::from_secret(&secret)).unwrap();
    let verified = keys.verify::<Claims>(&token, &rules(), now).unwrap();
    assert_eq!(verified.claims(), &claims(now));
}

#[test]
fn a_verify_only_set_from_the_jwks_accepts_the_issuer_tokens() {
    let now = SystemClock.now();
    let mut ring = Keyring::new();
    ring.insert(key("ed", JwtAlgorithm::EdDsa, KeyState::Active))
        .unwrap();
    let issuer = JwtKeys::from_keyring(JwtAlgorithm::EdDsa, &ring).unwrap();
    let verifier = JwtKeys::from_jwks(&issuer.jwks()).unwrap();
    let token = issuer.sign(&claims(now)).unwrap();
    assert_eq!(
        verifier
            .verify::<Claims>(&token, &rules(), now)
            .unwrap()
            .kid(),
        "ed"
    );
    assert!(verifier.active().is_none());
    assert!(
        verifier.sign(&claims(now)).is_err(),
        "public keys cannot sign"
    );
}

#[test]
fn rotation_keeps_old_tokens_valid_until_the_key_is_retired() {
    let now = SystemClock.now();
    let mut ring = Keyring::new();
    ring.insert(key("k1", JwtAlgorithm::EdDsa, KeyState::Active))
        .unwrap();
    // Phase 1: the next key is published (decrypt-only) before it signs.
    ring.insert(key("k2", JwtAlgorithm::EdDsa, KeyState::DecryptOnly))
        .unwrap();
    let phase1 = JwtKeys::from_keyring(JwtAlgorithm::EdDsa, &ring).unwrap();
    let old_token = phase1.sign(&claims(now)).unwrap();
    assert_eq!(phase1.active().unwrap().0, "k1");
    let kids: Vec<_> = phase1
        .jwks()
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, ["k1", "k2"]);

    // Phase 2: k2 signs; k1 is decrypt-only and its tokens still verify.
    ring.set_state(&KeyId::new("k2").unwrap(), KeyState::Active)
        .unwrap();
    let phase2 = JwtKeys::from_keyring(JwtAlgorithm::EdDsa, &ring).unwrap();
    let new_token = phase2.sign(&claims(now)).unwrap();
    assert_eq!(
        phase2
            .verify::<Claims>(&new_token, &rules(), now)
            .unwrap()
            .kid(),
        "k2"
    );
    assert_eq!(
        phase2
            .verify::<Claims>(&old_token, &rules(), now)
            .unwrap()
            .kid(),
        "k1"
    );

    // Phase 3: k1 retired: its tokens are refused and it leaves the JWKS.
    ring.set_state(&KeyId::new("k1").unwrap(), KeyState::Retired)
        .unwrap();
    let phase3 = JwtKeys::from_keyring(JwtAlgorithm::EdDsa, &ring).unwrap();
    assert_eq!(
        phase3.verify::<Claims>(&old_token, &rules(), now).err(),
        Some(JwtRejection::KeyRetired)
    );
    assert!(phase3.verify::<Claims>(&new_token, &rules(), now).is_ok());
    assert_eq!(phase3.jwks().keys.len(), 1);
}

#[test]
fn alg_none_is_refused() {
    let now = SystemClock.now();
    let mut ring = Keyring::new();
    ring.insert(key("k1", JwtAlgorithm::Hs256, KeyState::Active))
        .unwrap();
    let keys = JwtKeys::from_keyring(JwtAlgorithm::Hs256, &ring).unwrap();
    let payload = b64(&serde_json::to_value(claims(now)).unwrap());
    for alg in ["none", "None", "NONE"] {
        let header = b64(&serde_json::json!({"alg": alg, "kid": "k1", "typ": "JWT"}));
        for sig in ["", "AAAA"] {
            let token = format!("{header}.{payload}.{sig}");
            assert_eq!(
                keys.verify::<Claims>(&token, &rules(), now).err(),
                Some(JwtRejection::AlgorithmMismatch),
                "{alg} / {sig:?}"
            );
        }
    }
}

#[test]
fn wrong_or_missing_kid_is_refused() {
    let now = SystemClock.now();
    let mut ring = Keyring::new();
    ring.insert(key("k1", JwtAlgorithm::EdDsa, KeyState::Active))
        .unwrap();
    let keys = JwtKeys::from_keyring(JwtAlgorithm::EdDsa, &ring).unwrap();
    let token = keys.sign(&claims(now)).unwrap();
    let (_, rest) = token.split_once('.').unwrap();

    let unknown = format!(
        "{}.{rest}",
        b64(&serde_json::json!({"alg": "EdDSA", "kid": "k9"}))
    );
    assert_eq!(
        keys.verify::<Claims>(&unknown, &rules(), now).err(),
        Some(JwtRejection::UnknownKey)
    );
    let missing = format!("{}.{rest}", b64(&serde_json::json!({"alg": "EdDSA"})));
    assert_eq!(
        keys.verify::<Claims>(&missing, &rules(), now).err(),
        Some(JwtRejection::MissingKeyId)
    );

    // A token signed by another set's key of the same id fails the signature.
    let mut other_ring = Keyring::new();
    other_ring
        .insert(key("k1", JwtAlgorithm::EdDsa, KeyState::Active))
        .unwrap();
    let other = JwtKeys::from_keyring(JwtAlgorithm::EdDsa, &other_ring).unwrap();
    let foreign = other.sign(&claims(now)).unwrap();
    assert_eq!(
        keys.verify::<Claims>(&foreign, &rules(), now).err(),
        Some(JwtRejection::BadSignature)
    );
}

#[test]
fn swapped_algorithm_is_refused() {
    // The confusion attack: take the public key from the JWKS and use it as an HMAC secret,
    // naming HS256 in the header and the asymmetric key's kid.
    let now = SystemClock.now();
    for alg in [JwtAlgorithm::EdDsa, JwtAlgorithm::Es256] {
        let mut ring = Keyring::new();
        ring.insert(key("pub", alg, KeyState::Active)).unwrap();
        let keys = JwtKeys::from_keyring(alg, &ring).unwrap();
        let jwk = keys.jwks().keys.into_iter().next().unwrap();
        let public = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) => URL_SAFE_NO_PAD.decode(&p.x).unwrap(),
            AlgorithmParameters::EllipticCurve(p) => URL_SAFE_NO_PAD.decode(&p.x).unwrap(),
            _ => unreachable!(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("pub".into());
        let forged =
            jsonwebtoken::encode(&header, &claims(now), &EncodingKey::from_secret(&public))
                .unwrap();
        assert_eq!(
            keys.verify::<Claims>(&forged, &rules(), now).err(),
            Some(JwtRejection::AlgorithmMismatch),
            "{alg}"
        );
    }
    // And between asymmetric algorithms: an EdDSA header on an ES256 key.
    let mut ring = Keyring::new();
    ring.insert(key("es", JwtAlgorithm::Es256, KeyState::Active))
        .unwrap();
    let keys = JwtKeys::from_keyring(JwtAlgorithm::Es256, &ring).unwrap();
    let token = keys.sign(&claims(now)).unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    let swapped = format!(
        "{}.{rest}",
        b64(&serde_json::json!({"alg": "EdDSA", "kid": "es"}))
    );
    assert_eq!(
        keys.verify::<Claims>(&swapped, &rules(), now).err(),
        Some(JwtRejection::AlgorithmMismatch)
    );
}

#[test]
fn altered_tokens_and_critical_headers_are_refused() {
    let now = SystemClock.now();
    let mut ring = Keyring::new();
    ring.insert(key("k1", JwtAlgorithm::Es256, KeyState::Active))
        .unwrap();
    let keys = JwtKeys::from_keyring(JwtAlgorithm::Es256, &ring).unwrap();
    let token = keys.sign(&claims(now)).unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();

    let mut elevated = claims(now);
    elevated.scope = "admin".into();
    let original_payload = std::mem::replace(
        &mut parts[1],
        b64(&serde_json::to_value(&elevated).unwrap()),
    );
    assert_eq!(
        keys.verify::<Claims>(&parts.join("."), &rules(), now).err(),
        Some(JwtRejection::BadSignature)
    );
    parts[1] = original_payload;

    parts[0] = b64(&serde_json::json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}));
    assert_eq!(
        keys.verify::<Claims>(&parts.join("."), &rules(), now).err(),
        Some(JwtRejection::CriticalHeader)
    );
    parts[0] = b64(&serde_json::json!({"alg": "ES256", "kid": "k1", "kid ": "x", "alg2": 1}));
    // Unknown header fields are fine, but the header is signed: changing it breaks the signature.
    assert_eq!(
        keys.verify::<Claims>(&parts.join("."), &rules(), now).err(),
        Some(JwtRejection::BadSignature)
    );
    parts[0] = "eyJhbGciOiJFUzI1NiIsImFsZyI6IkVTMjU2Iiwia2lkIjoiazEifQ".into(); // duplicate "alg"
    assert_eq!(
        keys.verify::<Claims>(&parts.join("."), &rules(), now).err(),
        Some(JwtRejection::Malformed)
    );
}

#[test]
fn expiry_with_leeway_under_a_moving_clock() {
    let start = UnixTime::from_secs(1_700_000_000);
    let mut ring = Keyring::new();
    ring.insert(key("k1", JwtAlgorithm::Hs256, KeyState::Active))
        .unwrap();
    let keys = JwtKeys::from_keyring(JwtAlgorithm::Hs256, &ring).unwrap();
    let token = keys.sign(&claims(start)).unwrap(); // exp = start + 600
    let at = |secs: u64| {
        keys.verify::<Claims>(&token, &rules(), UnixTime::from_secs(secs))
            .map(|_| ())
    };
    assert_eq!(at(1_700_000_599), Ok(()));
    assert_eq!(at(1_700_000_659), Ok(()), "60 s leeway");
    assert_eq!(at(1_700_000_660), Err(JwtRejection::Expired));
    assert_eq!(
        at(1_699_999_900),
        Err(JwtRejection::IssuedInFuture),
        "iat beyond the leeway"
    );
}
