//! JSON Web Tokens with rotating keys, on `jsonwebtoken`.
//!
//! [`JwtKeys`] is a set of signing keys, each with a `kid`, an algorithm ([`JwtAlgorithm`]:
//! HS256, EdDSA, ES256, RS256/RS384/RS512 or PS256) and a [`KeyState`] from the [`Keyring`]:
//!
//! | state | signs | verifies | in the JWKS |
//! |---|---|---|---|
//! | active | yes | yes | yes (public keys only) |
//! | decrypt-only (being rolled in or out) | no | yes | yes |
//! | retired | no | no | no |
//!
//! So a signing key rotates without logging anyone out: publish the new key as decrypt-only
//! (verifiers fetch it from the JWKS), make it active (the old one turns decrypt-only and its
//! tokens still verify), and retire the old one once its last token has expired.
//!
//! # Verification
//! [`JwtKeys::verify`] takes the key named by the header's `kid`, and that key's algorithm
//! decides: a header that names another algorithm (`none`, or HS256 on a public key, the
//! classic confusion attack) is refused before any cryptography. Then the signature, then the
//! claims at `now` with a leeway ([`JwtValidation`]): `exp` (required), `nbf`, `iat` (not in
//! the future), `iss` and `aud`.
//!
//! The verify path parses the header once, into a small borrowed struct, and hands the
//! signature check to `jsonwebtoken::crypto::verify` with a `DecodingKey` prepared when the key
//! was loaded. Claims are validated here, not by `jsonwebtoken::decode`, because that function
//! reads the system clock (tests could not move time, and `iat` is not checked) and would parse
//! the header a second time after the `kid` lookup.
//!
//! Key material in the keyring: HS256 takes at least 32 random bytes (RFC 7518, section 3.2);
//! EdDSA a 32-byte Ed25519 seed or a PKCS#8 DER key; ES256 a 32-byte P-256 scalar or a PKCS#8
//! DER key; RSA (RS* and PS256) a PKCS#1 DER private key (`RSAPrivateKey`) of at least 2048
//! bits. [`generate_key`] makes the 32-byte kinds (RSA keys come from `openssl genrsa`).
//!
//! # JWKS from an issuer
//! [`JwtKeys::from_jwks`] loads every signature key of a JWKS (Ed25519, P-256 and RSA) and
//! fails on one it cannot use rather than dropping it (an identity provider's RSA keys used to
//! be skipped, so its tokens got `UnknownKey`); encryption keys (`use: enc`) are not for
//! verification and are left out. [`JwtKeys::from_jwks_lenient`] keeps the usable ones and
//! reports the rest ([`SkippedJwk`]). An RSA key without `alg` is taken as RS256, the usual
//! choice of providers that omit it.
//!
//! # `typ`
//! [`JwtValidation::typ`] requires the header's `typ` (RFC 7515, section 4.1.9; compared
//! without case and without an `application/` prefix), so a token of one kind is not accepted
//! as another: access tokens are `at+jwt` (RFC 9068), ID tokens `JWT`.
//! [`JwtKeys::sign_typed`] sets it.
//!
//! # Errors and panics
//! Loading a key fails with [`TokenError::InvalidKey`] for unusable material (every key signs
//! and verifies a test message when loaded). A token that does not verify is a
//! [`JwtRejection`], not an error. Nothing panics.
//!
//! # Security
//! Keys embedded in a token's header (`jwk`, `jku`, `x5c`, `x5u`) are ignored: keys come from
//! the key set only. A header with `crit` is refused (no extension is understood). Tokens longer
//! than [`JwtValidation::max_len`] are refused before decoding. HMAC keys never appear in the
//! JWKS. Signing keys zeroize on drop (`jsonwebtoken`'s key types do).

use core::fmt;
use core::time::Duration;
use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use palisade_core::keyring::{Key, KeyId, KeyState, Keyring};
use palisade_core::random::SecureRandom;
use palisade_core::time::UnixTime;
use serde::de::{self, DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::TokenError;

/// The signature algorithms a key can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256: one shared secret signs and verifies.
    Hs256,
    /// Ed25519 signatures (RFC 8037): small, fast, deterministic.
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: what most identity providers sign with.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    Ps256,
}

/// Shortest RSA modulus accepted, in bits (NIST SP 800-131A: 2048).
pub const MIN_RSA_BITS: usize = 2048;

impl JwtAlgorithm {
    /// The JOSE name: `HS256`, `EdDSA`, `ES256`, `RS256`, `RS384`, `RS512` or `PS256`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
        }
    }

    /// Whether it is an RSA algorithm.
    pub const fn is_rsa(self) -> bool {
        matches!(self, Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256)
    }

    /// The `jsonwebtoken` algorithm.
    pub const fn to_jsonwebtoken(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
            Self::Rs384 => Algorithm::RS384,
            Self::Rs512 => Algorithm::RS512,
            Self::Ps256 => Algorithm::PS256,
        }
    }

    /// Whether the algorithm has a public key (and so a JWKS entry).
    pub const fn is_asymmetric(self) -> bool {
        !matches!(self, Self::Hs256)
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// PKCS#8 v1 (RFC 5208) prefix of an Ed25519 private key (RFC 8410, section 7), before the
/// 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// PKCS#8 v1 prefix of a P-256 private key: algorithm id-ecPublicKey with prime256v1, then an
/// RFC 5915 ECPrivateKey holding only the 32-byte scalar that follows.
const P256_PKCS8_PREFIX: [u8; 35] = [
    0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25, 0x02, 0x01,
    0x01, 0x04, 0x20,
];

/// Generates a key for `algorithm`, ready for a [`Keyring`] (its text form is
/// [`Key::expose_spec`]): 32 random bytes, which each algorithm reads as described in the
/// [module documentation](self).
///
/// # Errors
/// [`TokenError::Random`] when the random source fails; [`TokenError::Config`] for an RSA
/// algorithm (make RSA keys with `openssl genrsa -traditional 3072`, DER).
pub fn generate_key(
    id: &KeyId,
    algorithm: JwtAlgorithm,
    state: KeyState,
    rng: &(impl SecureRandom + ?Sized),
) -> Result<Key, TokenError> {
    if algorithm.is_rsa() {
        return Err(TokenError::Config(
            "rsa keys are not generated here: use openssl genrsa",
        ));
    }
    loop {
        let key = Key::generate(id.clone(), state, 32, rng)?;
        // A P-256 scalar must be below the group order; a random one fails with probability
        // about 2^-32, and then we draw again. The other algorithms take any 32 bytes.
        if prepare(algorithm, &key).is_ok() {
            return Ok(key);
        }
    }
}

/// One loaded key.
struct Entry {
    kid: Box<str>,
    algorithm: JwtAlgorithm,
    state: KeyState,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    jwk: Option<Jwk>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .field("signs", &self.encoding.is_some())
            .finish()
    }
}

fn invalid(kid: &str, algorithm: JwtAlgorithm, reason: &'static str) -> TokenError {
    TokenError::InvalidKey {
        kid: kid.to_owned(),
        algorithm: algorithm.as_str(),
        reason,
    }
}

/// Builds the encoding and decoding keys (and the public JWK) of `key`.
fn prepare(
    algorithm: JwtAlgorithm,
    key: &Key,
) -> Result<(EncodingKey, DecodingKey, Option<Jwk>), TokenError> {
    let kid = key.id().as_str();
    let material = key.material().expose_secret();
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.key_utils;
    let (encoding, decoding, public) = match algorithm {
        JwtAlgorithm::Hs256 => {
            if material.len() < 32 {
                return Err(invalid(kid, algorithm, "shorter than 32 bytes"));
            }
            (
                EncodingKey::from_secret(material),
                DecodingKey::from_secret(material),
                None,
            )
        }
        JwtAlgorithm::EdDsa => {
            let der = pkcs8(material, &ED25519_PKCS8_PREFIX);
            let public =
                (provider.ed_pub_components_from_private_key)(&der, &EllipticCurve::Ed25519)
                    .map_err(|_| invalid(kid, algorithm, "not an Ed25519 seed or PKCS#8 key"))?;
            let jwk = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(&public),
            });
            (
                EncodingKey::from_ed_der(&der),
                DecodingKey::from_ed_der(&public),
                Some(jwk),
            )
        }
        JwtAlgorithm::Es256 => {
            let der = pkcs8(material, &P256_PKCS8_PREFIX);
            let (curve, x, y) =
                (provider.ec_pub_components_from_private_key)(&der, Algorithm::ES256)
                    .map_err(|_| invalid(kid, algorithm, "not a P-256 scalar or PKCS#8 key"))?;
            if curve != EllipticCurve::P256 {
                return Err(invalid(kid, algorithm, "not a P-256 key"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let jwk = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: URL_SAFE_NO_PAD.encode(&x),
                y: URL_SAFE_NO_PAD.encode(&y),
            });
            (
                EncodingKey::from_ec_der(&der),
                DecodingKey::from_ec_der(&point),
                Some(jwk),
            )
        }
        JwtAlgorithm::Rs256 | JwtAlgorithm::Rs384 | JwtAlgorithm::Rs512 | JwtAlgorithm::Ps256 => {
            let (n, e) = (provider.rsa_pub_components_from_private_key)(material)
                .map_err(|_| invalid(kid, algorithm, "not a PKCS#1 DER RSA private key"))?;
            check_rsa_size(kid, algorithm, &n)?;
            let jwk = AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: URL_SAFE_NO_PAD.encode(&n),
                e: URL_SAFE_NO_PAD.encode(&e),
            });
            (
                EncodingKey::from_rsa_der(material),
                DecodingKey::from_rsa_raw_components(&n, &e),
                Some(jwk),
            )
        }
    };
    // Every key proves it works before it is used: sign and verify a test message.
    let alg = algorithm.to_jsonwebtoken();
    let message = b"palisade-token key check";
    let signature = jsonwebtoken::crypto::sign(message, &encoding, alg)
        .map_err(|_| invalid(kid, algorithm, "cannot sign"))?;
    if !jsonwebtoken::crypto::verify(&signature, message, &decoding, alg).unwrap_or(false) {
        return Err(invalid(kid, algorithm, "public key does not match"));
    }
    let jwk = public.map(|params| Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::from(alg)),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: params,
    });
    Ok((encoding, decoding, jwk))
}

/// Refuses an RSA modulus (big-endian bytes) shorter than [`MIN_RSA_BITS`].
fn check_rsa_size(kid: &str, algorithm: JwtAlgorithm, modulus: &[u8]) -> Result<(), TokenError> {
    let significant = modulus.iter().position(|&b| b != 0).map_or(0, |first| {
        let bytes = modulus.len() - first;
        let lead = modulus.get(first).map_or(0, |b| b.leading_zeros() as usize);
        bytes * 8 - lead
    });
    if significant < MIN_RSA_BITS {
        return Err(invalid(
            kid,
            algorithm,
            "RSA modulus shorter than 2048 bits",
        ));
    }
    Ok(())
}

/// `material` as PKCS#8 DER: raw 32 bytes get `prefix`, anything else is taken as DER already.
fn pkcs8(material: &[u8], prefix: &[u8]) -> Zeroizing<Vec<u8>> {
    if material.len() == 32 {
        let mut der = Zeroizing::new(Vec::with_capacity(prefix.len() + 32));
        der.extend_from_slice(prefix);
        der.extend_from_slice(material);
        der
    } else {
        Zeroizing::new(material.to_vec())
    }
}

/// Signing and verification keys, selected by `kid`. See the [module documentation](self).
///
/// ```
/// use palisade_core::keyring::{KeyId, KeyState, Keyring};
/// use palisade_core::random::SystemRandom;
/// use palisade_core::time::UnixTime;
/// use palisade_token::jwt::{generate_key, JwtAlgorithm, JwtKeys, JwtValidation};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Claims { sub: String, exp: u64, iss: String }
///
/// let mut ring = Keyring::new();
/// ring.insert(generate_key(&KeyId::new("2026-11")?, JwtAlgorithm::EdDsa, KeyState::Active, &SystemRandom)?)?;
/// let keys = JwtKeys::from_keyring(JwtAlgorithm::EdDsa, &ring)?;
///
/// let now = UnixTime::from_secs(1_700_000_000);
/// let token = keys.sign(&Claims { sub: "u-1".into(), exp: now.as_secs() + 600, iss: "https://id.example".into() })?;
/// let rules = JwtValidation::new().issuer("https://id.example");
/// let verified = keys.verify::<Claims>(&token, &rules, now).expect("valid token");
/// assert_eq!(verified.claims().sub, "u-1");
/// assert_eq!(verified.kid(), "2026-11");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct JwtKeys {
    entries: Vec<Entry>,
}

impl JwtKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every key of `keyring` as an `algorithm` key, in its state.
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`] for material that is no key of `algorithm`;
    /// [`TokenError::Keyring`] when two keys share an id.
    pub fn from_keyring(algorithm: JwtAlgorithm, keyring: &Keyring) -> Result<Self, TokenError> {
        let mut keys = Self::new();
        for key in keyring.keys() {
            keys.insert(algorithm, key)?;
        }
        Ok(keys)
    }

    /// Adds `key` as an `algorithm` key. Keys of several algorithms may live side by side (to
    /// move from HS256 to EdDSA, say). Adding an active key demotes the previous active one to
    /// decrypt-only, as [`Keyring::set_state`] does.
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`]; [`TokenError::Keyring`] for a duplicate id.
    pub fn insert(&mut self, algorithm: JwtAlgorithm, key: &Key) -> Result<(), TokenError> {
        if self.find(key.id().as_str()).is_some() {
            return Err(palisade_core::keyring::KeyringError::DuplicateKeyId {
                id: key.id().clone(),
            }
            .into());
        }
        let (encoding, decoding, jwk) = prepare(algorithm, key)?;
        if key.state() == KeyState::Active {
            for e in &mut self.entries {
                if e.state == KeyState::Active {
                    e.state = KeyState::DecryptOnly;
                }
            }
        }
        self.entries.push(Entry {
            kid: key.id().as_str().into(),
            algorithm,
            state: key.state(),
            encoding: Some(encoding),
            decoding,
            jwk,
        });
        Ok(())
    }

    /// A verify-only set from a JWKS document (a resource server's view of an issuer): every
    /// signature key (Ed25519, P-256, RSA), in decrypt-only state. Encryption keys (`use:
    /// enc`) are left out. See [JWKS from an issuer](self#jwks-from-an-issuer).
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`] for a signature key it cannot use: no `kid`, an unsupported
    /// type or curve or `alg`, a declared `alg` that contradicts the key, coordinates that do
    /// not decode, an RSA modulus under 2048 bits, a duplicate `kid`.
    pub fn from_jwks(jwks: &JwkSet) -> Result<Self, TokenError> {
        let mut keys = Self::new();
        for jwk in &jwks.keys {
            if let Some(entry) = keys.jwk_entry(jwk)? {
                keys.entries.push(entry);
            }
        }
        Ok(keys)
    }

    /// As [`JwtKeys::from_jwks`], but keys it cannot use are reported, not fatal: the usable
    /// keys, and why each other one was left out (log them).
    pub fn from_jwks_lenient(jwks: &JwkSet) -> (Self, Vec<SkippedJwk>) {
        let mut keys = Self::new();
        let mut skipped = Vec::new();
        for jwk in &jwks.keys {
            match keys.jwk_entry(jwk) {
                Ok(Some(entry)) => keys.entries.push(entry),
                Ok(None) => {}
                Err(error) => skipped.push(SkippedJwk {
                    kid: jwk.common.key_id.clone(),
                    error,
                }),
            }
        }
        (keys, skipped)
    }

    /// The entry of one JWK: `None` for an encryption key, an error for an unusable one.
    fn jwk_entry(&self, jwk: &Jwk) -> Result<Option<Entry>, TokenError> {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            return Ok(None);
        }
        let unusable = |kid: &str, reason| TokenError::InvalidKey {
            kid: kid.to_owned(),
            algorithm: "JWK",
            reason,
        };
        let Some(kid) = jwk.common.key_id.as_deref() else {
            return Err(unusable("", "no kid"));
        };
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                JwtAlgorithm::EdDsa
            }
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                JwtAlgorithm::Es256
            }
            AlgorithmParameters::RSA(_) => match jwk.common.key_algorithm {
                None | Some(KeyAlgorithm::RS256) => JwtAlgorithm::Rs256,
                Some(KeyAlgorithm::RS384) => JwtAlgorithm::Rs384,
                Some(KeyAlgorithm::RS512) => JwtAlgorithm::Rs512,
                Some(KeyAlgorithm::PS256) => JwtAlgorithm::Ps256,
                Some(_) => return Err(unusable(kid, "unsupported alg for an RSA key")),
            },
            _ => return Err(unusable(kid, "unsupported key type or curve")),
        };
        if jwk
            .common
            .key_algorithm
            .is_some_and(|a| a != KeyAlgorithm::from(algorithm.to_jsonwebtoken()))
        {
            return Err(invalid(
                kid,
                algorithm,
                "declared alg does not match the key",
            ));
        }
        if let AlgorithmParameters::RSA(p) = &jwk.algorithm {
            let n = URL_SAFE_NO_PAD
                .decode(p.n.trim_end_matches('='))
                .map_err(|_| invalid(kid, algorithm, "coordinates do not decode"))?;
            check_rsa_size(kid, algorithm, &n)?;
        }
        let decoding = DecodingKey::from_jwk(jwk)
            .map_err(|_| invalid(kid, algorithm, "coordinates do not decode"))?;
        if self.find(kid).is_some() {
            return Err(invalid(kid, algorithm, "duplicate kid"));
        }
        Ok(Some(Entry {
            kid: kid.into(),
            algorithm,
            state: KeyState::DecryptOnly,
            encoding: None,
            decoding,
            jwk: Some(jwk.clone()),
        }))
    }

    fn find(&self, kid: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| &*e.kid == kid)
    }

    /// The id and algorithm of the key that signs, if any.
    pub fn active(&self) -> Option<(&str, JwtAlgorithm)> {
        self.signer().map(|e| (&*e.kid, e.algorithm))
    }

    fn signer(&self) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.state == KeyState::Active && e.encoding.is_some())
    }

    /// The public keys that verify (active and decrypt-only asymmetric keys), as a JWKS
    /// document to publish at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .entries
                .iter()
                .filter(|e| e.state != KeyState::Retired)
                .filter_map(|e| e.jwk.clone())
                .collect(),
        }
    }

    /// Signs `claims` with the active key; the header carries its `alg` and `kid`.
    ///
    /// `claims` should hold `exp` (verification requires it), and usually `iat`, `iss`, `aud`
    /// and `sub`; [`StandardClaims`] has them.
    ///
    /// # Errors
    /// [`TokenError::Keyring`] when no key is active; [`TokenError::Encode`] when `claims` do
    /// not serialize to a JSON object.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, TokenError> {
        self.sign_typed(claims, "JWT")
    }

    /// As [`JwtKeys::sign`], with the header's `typ` set to `typ` (`at+jwt` for an RFC 9068
    /// access token).
    ///
    /// # Errors
    /// As [`JwtKeys::sign`].
    pub fn sign_typed<C: Serialize>(&self, claims: &C, typ: &str) -> Result<String, TokenError> {
        let entry = self
            .signer()
            .ok_or(palisade_core::keyring::KeyringError::NoActiveKey)?;
        let Some(encoding) = &entry.encoding else {
            return Err(palisade_core::keyring::KeyringError::NoActiveKey.into());
        };
        let mut header = Header::new(entry.algorithm.to_jsonwebtoken());
        header.kid = Some(entry.kid.to_string());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, encoding)
            .map_err(|e| TokenError::Encode(e.to_string()))
    }

    /// Verifies `token` at `now` under `rules` and returns its claims as `C`.
    ///
    /// # Errors
    /// A [`JwtRejection`] saying why the token is refused. Tell the client only that it is.
    pub fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        rules: &JwtValidation,
        now: UnixTime,
    ) -> Result<Verified<C>, JwtRejection> {
        if token.len() > rules.max_len {
            return Err(JwtRejection::TooLong);
        }
        let (message, signature) = token.rsplit_once('.').ok_or(JwtRejection::Malformed)?;
        let (header_b64, payload_b64) = message.split_once('.').ok_or(JwtRejection::Malformed)?;

        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| JwtRejection::Malformed)?;
        if header_json.trim_ascii_start().first() != Some(&b'{') {
            return Err(JwtRejection::Malformed);
        }
        let header: RawHeader<'_> =
            serde_json::from_slice(&header_json).map_err(|_| JwtRejection::Malformed)?;
        if header.crit.is_some() {
            return Err(JwtRejection::CriticalHeader);
        }
        if let Some(wanted) = &rules.typ
            && !header
                .typ
                .as_deref()
                .is_some_and(|typ| same_typ(typ, wanted))
        {
            return Err(JwtRejection::WrongType);
        }
        let kid = header.kid.ok_or(JwtRejection::MissingKeyId)?;
        let entry = self.find(&kid).ok_or(JwtRejection::UnknownKey)?;
        if entry.state == KeyState::Retired {
            return Err(JwtRejection::KeyRetired);
        }
        // The key's algorithm decides; the header must name the same one.
        if header.alg != entry.algorithm.as_str() {
            return Err(JwtRejection::AlgorithmMismatch);
        }
        let alg = entry.algorithm.to_jsonwebtoken();
        if !jsonwebtoken::crypto::verify(signature, message.as_bytes(), &entry.decoding, alg)
            .unwrap_or(false)
        {
            return Err(JwtRejection::BadSignature);
        }

        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| JwtRejection::Malformed)?;
        // A claims set is a JSON object (RFC 7519, section 7.2), not an array in field order.
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return Err(JwtRejection::InvalidClaims);
        }
        let registered: Registered<'_> =
            serde_json::from_slice(&payload).map_err(|_| JwtRejection::InvalidClaims)?;
        rules.check(&registered, now)?;
        let claims = serde_json::from_slice(&payload).map_err(|_| JwtRejection::InvalidClaims)?;
        Ok(Verified {
            claims,
            kid: entry.kid.clone(),
            algorithm: entry.algorithm,
        })
    }
}

/// The JOSE header fields the verifier reads. Others are ignored (keys never come from the
/// header); `crit` is refused.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// `typ` values compared as RFC 7515 section 4.1.9 says: case-insensitively, with an
/// `application/` prefix optional.
fn same_typ(presented: &str, wanted: &str) -> bool {
    fn bare(t: &str) -> &str {
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => {
                t.get(12..).unwrap_or("")
            }
            _ => t,
        }
    }
    bare(presented).eq_ignore_ascii_case(bare(wanted))
}

/// A JWK that [`JwtKeys::from_jwks_lenient`] left out, and why.
#[derive(Debug, Clone)]
pub struct SkippedJwk {
    /// Its `kid`, if it had one.
    pub kid: Option<String>,
    /// Why it cannot be used.
    pub error: TokenError,
}

/// The registered claims the verifier checks, borrowed from the payload.
#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<u64>,
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aud: Option<Audience<'a>>,
}

/// A NumericDate (RFC 7519, section 2): seconds since the epoch, an integer or a fraction
/// (truncated). Negative and non-finite values are refused.
fn numeric_date<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative number of seconds")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom("negative date"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && (0.0..1.8e19).contains(&v) {
                // In range and finite: the truncating cast is exact in its integer part.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(Some(v as u64))
            } else {
                Err(E::custom("date out of range"))
            }
        }
    }
    d.deserialize_any(Visitor)
}

/// `aud`: one string or an array of strings.
enum Audience<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(a) => a == wanted,
            Self::Many(list) => list.iter().any(|a| a == wanted),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Self::Many(list) if list.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Audience<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(core::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> de::Visitor<'de> for Visitor<'a> {
            type Value = Audience<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Audience::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Audience::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = seq.next_element::<Cow<'a, str>>()? {
                    if list.len() >= 64 {
                        return Err(de::Error::custom("too many audiences"));
                    }
                    list.push(item);
                }
                Ok(Audience::Many(list))
            }
        }
        d.deserialize_any(Visitor(core::marker::PhantomData))
    }
}

/// What [`JwtKeys::verify`] requires of a token's claims.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwtValidation {
    /// The required `iss`; `None` accepts any (or none).
    pub issuer: Option<String>,
    /// The audience this service is; a token must name it in `aud`. With `None`, a token that
    /// has an `aud` is refused (RFC 7519, section 4.1.3: it is meant for someone else).
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 60 seconds).
    pub leeway: Duration,
    /// Longest token accepted, in bytes (default 8 KiB).
    pub max_len: usize,
    /// The required header `typ` (`at+jwt`, say); `None` accepts any or none.
    pub typ: Option<String>,
}

impl Default for JwtValidation {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(60),
            max_len: 8 * 1024,
            typ: None,
        }
    }
}

impl JwtValidation {
    /// The defaults: any issuer, no audience, 60 s leeway, 8 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `iss` to be `issuer`.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `aud` to name `audience`.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Sets the leeway.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the header's `typ` to be `typ` (see [`typ`](self#typ)).
    #[must_use]
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Sets the longest token accepted.
    #[must_use]
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    fn check(&self, claims: &Registered<'_>, now: UnixTime) -> Result<(), JwtRejection> {
        let now = now.as_secs();
        let leeway = self.leeway.as_secs();
        let exp = claims.exp.ok_or(JwtRejection::MissingClaim("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(JwtRejection::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
        {
            return Err(JwtRejection::NotYetValid);
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(JwtRejection::IssuedInFuture);
        }
        if let Some(issuer) = &self.issuer {
            match &claims.iss {
                None => return Err(JwtRejection::MissingClaim("iss")),
                Some(iss) if iss != issuer => return Err(JwtRejection::WrongIssuer),
                Some(_) => {}
            }
        }
        match (&self.audience, &claims.aud) {
            (Some(_), None) => Err(JwtRejection::MissingClaim("aud")),
            (Some(wanted), Some(aud)) if !aud.contains(wanted) => Err(JwtRejection::WrongAudience),
            (None, Some(aud)) if !aud.is_empty() => Err(JwtRejection::WrongAudience),
            _ => Ok(()),
        }
    }
}

/// Why [`JwtKeys::verify`] refused a token. A value, not an error: every variant is an expected
/// answer to untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtRejection {
    /// Longer than [`JwtValidation::max_len`].
    TooLong,
    /// Not three base64url parts, or a header that is not the expected JSON.
    Malformed,
    /// The header has `crit`: it asks for an extension this verifier does not implement.
    CriticalHeader,
    /// The header's `typ` is not the required one (or is absent).
    WrongType,
    /// The header has no `kid`.
    MissingKeyId,
    /// No key has the header's `kid`.
    UnknownKey,
    /// The key named by `kid` is retired.
    KeyRetired,
    /// The header's `alg` is not the key's algorithm (`none`, or an algorithm swap).
    AlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The payload is not a JSON object of the expected claims.
    InvalidClaims,
    /// A required claim is absent.
    MissingClaim(&'static str),
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// `iss` is not the expected issuer.
    WrongIssuer,
    /// `aud` does not name this audience.
    WrongAudience,
}

impl fmt::Display for JwtRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::TooLong => "token too long",
            Self::Malformed => "malformed token",
            Self::CriticalHeader => "unsupported critical header",
            Self::WrongType => "wrong token type",
            Self::MissingKeyId => "no key id",
            Self::UnknownKey => "unknown key id",
            Self::KeyRetired => "key retired",
            Self::AlgorithmMismatch => "algorithm does not match the key",
            Self::BadSignature => "bad signature",
            Self::InvalidClaims => "invalid claims",
            Self::MissingClaim(c) => return write!(f, "missing claim {c}"),
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::IssuedInFuture => "token issued in the future",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
        };
        f.write_str(s)
    }
}

/// A verified token's claims; only [`JwtKeys::verify`] makes one.
#[derive(Debug, Clone)]
pub struct Verified<C> {
    claims: C,
    kid: Box<str>,
    algorithm: JwtAlgorithm,
}

impl<C> Verified<C> {
    /// The claims.
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// The claims, by value.
    pub fn into_claims(self) -> C {
        self.claims
    }

    /// The id of the key that signed the token.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm of that key.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }
}

/// The registered claims of RFC 7519, section 4.1, to embed in an application's claims with
/// `#[serde(flatten)]` or to use as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StandardClaims {
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iss: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aud: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iat: Option<u64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jti: Option<String>,
}

impl StandardClaims {
    /// Claims for `sub`, issued at `now`, expiring after `ttl`.
    pub fn new(sub: impl Into<String>, now: UnixTime, ttl: Duration) -> Self {
        Self {
            sub: Some(sub.into()),
            iat: Some(now.as_secs()),
            exp: now.saturating_add(ttl).as_secs(),
            ..Self::default()
        }
    }

    /// Sets the issuer.
    #[must_use]
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    /// Sets the audience.
    #[must_use]
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.aud = Some(aud.into());
        self
    }

    /// Sets the token id.
    #[must_use]
    pub fn jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::random::SystemRandom;
    use palisade_core::secret::SecretBytes;

    fn ring(alg: JwtAlgorithm) -> Keyring {
        let mut ring = Keyring::new();
        ring.insert(
            generate_key(
                &KeyId::new("k1").unwrap(),
                alg,
                KeyState::Active,
                &SystemRandom,
            )
            .unwrap(),
        )
        .unwrap();
        ring
    }

    const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

    #[test]
    fn every_algorithm_round_trips() {
        for alg in [
            JwtAlgorithm::Hs256,
            JwtAlgorithm::EdDsa,
            JwtAlgorithm::Es256,
        ] {
            let keys = JwtKeys::from_keyring(alg, &ring(alg)).unwrap();
            let claims = StandardClaims::new("u", NOW, Duration::from_secs(60));
            let token = keys.sign(&claims).unwrap();
            let v = keys
                .verify::<StandardClaims>(&token, &JwtValidation::new(), NOW)
                .unwrap();
            assert_eq!(v.claims(), &claims);
            assert_eq!(v.algorithm(), alg);
            assert_eq!(keys.jwks().keys.len(), usize::from(alg.is_asymmetric()));
        }
    }

    #[test]
    fn pkcs8_prefixes_match_der_keys() {
        // A seed and the same seed as DER load to the same public key.
        let seed = [7u8; 32];
        let der = pkcs8(&seed, &ED25519_PKCS8_PREFIX);
        let a = Key::new(
            KeyId::new("a").unwrap(),
            KeyState::Active,
            SecretBytes::from_slice(&seed),
        );
        let b = Key::new(
            KeyId::new("a").unwrap(),
            KeyState::Active,
            SecretBytes::from_slice(&der),
        );
        let (_, _, ja) = prepare(JwtAlgorithm::EdDsa, &a).unwrap();
        let (_, _, jb) = prepare(JwtAlgorithm::EdDsa, &b).unwrap();
        assert_eq!(ja, jb);
        // P-256: the scalar 1 has the generator as its public key (SEC 2, section 2.4.2).
        let mut one = [0u8; 32];
        one[31] = 1;
        let k = Key::new(
            KeyId::new("g").unwrap(),
            KeyState::Active,
            SecretBytes::from_slice(&one),
        );
        let (_, _, jwk) = prepare(JwtAlgorithm::Es256, &k).unwrap();
        let AlgorithmParameters::EllipticCurve(p) = jwk.unwrap().algorithm else {
            panic!("not an EC key")
        };
        let gx = URL_SAFE_NO_PAD.decode(&p.x).unwrap();
        assert_eq!(
            gx[..4],
            [0x6b, 0x17, 0xd1, 0xf2],
            "x of the P-256 generator starts 6B17D1F2"
        );
    }

    #[test]
    fn bad_material_is_refused() {
        let short = Key::new(
            KeyId::new("s").unwrap(),
            KeyState::Active,
            SecretBytes::from_slice(&[1; 16]),
        );
        assert!(matches!(
            prepare(JwtAlgorithm::Hs256, &short),
            Err(TokenError::InvalidKey { .. })
        ));
        let junk = Key::new(
            KeyId::new("j").unwrap(),
            KeyState::Active,
            SecretBytes::from_slice(&[1; 40]),
        );
        assert!(prepare(JwtAlgorithm::EdDsa, &junk).is_err());
        assert!(prepare(JwtAlgorithm::Es256, &junk).is_err());
        // The group order n itself is no valid scalar.
        let n = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x51,
        ];
        let order = Key::new(
            KeyId::new("n").unwrap(),
            KeyState::Active,
            SecretBytes::from_slice(&n),
        );
        assert!(prepare(JwtAlgorithm::Es256, &order).is_err());
    }

    #[test]
    fn claim_checks() {
        let keys = JwtKeys::from_keyring(JwtAlgorithm::Hs256, &ring(JwtAlgorithm::Hs256)).unwrap();
        let rules = JwtValidation::new().leeway(Duration::from_secs(5));
        let at = |json: serde_json::Value| {
            let token = keys.sign(&json).unwrap();
            keys.verify::<serde_json::Value>(&token, &rules, NOW)
                .map(|_| ())
        };
        let now = NOW.as_secs();
        assert_eq!(at(serde_json::json!({"exp": now + 1})), Ok(()));
        assert_eq!(
            at(serde_json::json!({"exp": now - 4})),
            Ok(()),
            "within leeway"
        );
        assert_eq!(
            at(serde_json::json!({"exp": now - 5})),
            Err(JwtRejection::Expired)
        );
        assert_eq!(
            at(serde_json::json!({"sub": "x"})),
            Err(JwtRejection::MissingClaim("exp"))
        );
        assert_eq!(
            at(serde_json::json!({"exp": -1})),
            Err(JwtRejection::InvalidClaims)
        );
        assert_eq!(
            at(serde_json::json!({"exp": "soon"})),
            Err(JwtRejection::InvalidClaims)
        );
        assert_eq!(
            at(serde_json::json!({"exp": (now + 10) as f64 + 0.5})),
            Ok(())
        );
        assert_eq!(
            at(serde_json::json!({"exp": now + 100, "nbf": now + 6})),
            Err(JwtRejection::NotYetValid)
        );
        assert_eq!(
            at(serde_json::json!({"exp": now + 100, "nbf": now + 5})),
            Ok(())
        );
        assert_eq!(
            at(serde_json::json!({"exp": now + 100, "iat": now + 6})),
            Err(JwtRejection::IssuedInFuture)
        );
        assert_eq!(
            at(serde_json::json!({"exp": now + 100, "aud": "someone"})),
            Err(JwtRejection::WrongAudience),
            "a token for an audience is not for a service that has none"
        );
        assert_eq!(at(serde_json::json!({"exp": now + 100, "aud": []})), Ok(()));
        assert_eq!(
            at(serde_json::json!([1, 2])),
            Err(JwtRejection::InvalidClaims)
        );
    }

    #[test]
    fn issuer_and_audience() {
        let keys = JwtKeys::from_keyring(JwtAlgorithm::Hs256, &ring(JwtAlgorithm::Hs256)).unwrap();
        let rules = JwtValidation::new().issuer("iss-a").audience("api");
        let check = |json: serde_json::Value| {
            keys.verify::<serde_json::Value>(&keys.sign(&json).unwrap(), &rules, NOW)
                .map(|_| ())
        };
        let exp = NOW.as_secs() + 60;
        assert_eq!(
            check(serde_json::json!({"exp": exp, "iss": "iss-a", "aud": "api"})),
            Ok(())
        );
        assert_eq!(
            check(serde_json::json!({"exp": exp, "iss": "iss-a", "aud": ["web", "api"]})),
            Ok(())
        );
        assert_eq!(
            check(serde_json::json!({"exp": exp, "iss": "iss-b", "aud": "api"})),
            Err(JwtRejection::WrongIssuer)
        );
        assert_eq!(
            check(serde_json::json!({"exp": exp, "aud": "api"})),
            Err(JwtRejection::MissingClaim("iss"))
        );
        assert_eq!(
            check(serde_json::json!({"exp": exp, "iss": "iss-a", "aud": ["web"]})),
            Err(JwtRejection::WrongAudience)
        );
        assert_eq!(
            check(serde_json::json!({"exp": exp, "iss": "iss-a"})),
            Err(JwtRejection::MissingClaim("aud"))
        );
    }

    #[test]
    fn oversized_and_malformed_tokens() {
        let keys = JwtKeys::from_keyring(JwtAlgorithm::Hs256, &ring(JwtAlgorithm::Hs256)).unwrap();
        let rules = JwtValidation::new().max_len(100);
        let long = "a".repeat(101);
        assert_eq!(
            keys.verify::<serde_json::Value>(&long, &rules, NOW).err(),
            Some(JwtRejection::TooLong)
        );
        for bad in ["", "a", "a.b", "!!.b.c", "e30.e30.", "e30..x"] {
            assert!(
                keys.verify::<serde_json::Value>(bad, &rules, NOW).is_err(),
                "{bad}"
            );
        }
    }
}
