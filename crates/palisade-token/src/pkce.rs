//! PKCE, Proof Key for Code Exchange (RFC 7636): the code verifier, its challenge, and the
//! check an authorization server makes.
//!
//! A client makes a secret [`PkceVerifier`] per authorization request, sends its
//! [`PkceChallenge`] (`S256`: base64url of its SHA-256) with the request, and the verifier with
//! the token request; the server checks that they match, so an authorization code stolen on its
//! way back (a malicious app on the redirect URI, a leaked log) is useless without the verifier.
//!
//! - Client side with no server-side storage: [`OAuthStates::issue_pkce`] returns a `state` and
//!   the challenge to send; [`OAuthStates::check_pkce`] on the callback claims the state once and
//!   returns its verifier (derived from the state under the keyring, see there).
//! - A standalone verifier: [`PkceVerifier::generate`] (32 random bytes, 43 characters, the
//!   RFC's recommendation).
//! - Server side: [`PkceChallenge::verify`] in constant time; `plain` is refused unless the
//!   caller enables it ([`PkcePolicy::allow_plain`]; RFC 7636 section 7.2 allows it only for
//!   clients that cannot hash).
//!
//! # Errors and panics
//! [`PkceError`] for text that is not a verifier, a challenge or a method. A wrong verifier is
//! [`PkceCheck`] `Mismatch`, not an error. Nothing panics.
//!
//! # Security
//! [`PkceVerifier`] is a secret: zeroized on drop, `***` in `Debug`, no `Display` or
//! `Serialize`; its text leaves through [`PkceVerifier::expose_secret`]. The challenge is
//! public.
//!
//! [`OAuthStates::issue_pkce`]: crate::oauth::OAuthStates::issue_pkce
//! [`OAuthStates::check_pkce`]: crate::oauth::OAuthStates::check_pkce

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::random::SecureRandom;
use palisade_core::secret::ct_eq;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::TokenError;

/// Shortest code verifier (RFC 7636 section 4.1).
pub const MIN_VERIFIER_LEN: usize = 43;
/// Longest code verifier.
pub const MAX_VERIFIER_LEN: usize = 128;

/// Text that is not a PKCE value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PkceError {
    /// A verifier must be 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
    #[error("a code verifier is 43 to 128 unreserved characters")]
    MalformedVerifier,
    /// A challenge has the same alphabet and length as a verifier.
    #[error("a code challenge is 43 to 128 unreserved characters")]
    MalformedChallenge,
    /// The method is neither `S256` nor `plain`.
    #[error("unknown code challenge method")]
    UnknownMethod,
}

/// How the challenge is made from the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PkceMethod {
    /// `BASE64URL(SHA256(verifier))`: the one to use.
    S256,
    /// The verifier itself: only for clients that cannot hash, and refused by default.
    Plain,
}

impl PkceMethod {
    /// Reads `code_challenge_method`; absent means `plain` (RFC 7636 section 4.3).
    ///
    /// # Errors
    /// [`PkceError::UnknownMethod`] (the name is case-sensitive).
    pub fn parse(method: Option<&str>) -> Result<Self, PkceError> {
        match method {
            Some("S256") => Ok(Self::S256),
            None | Some("plain") => Ok(Self::Plain),
            Some(_) => Err(PkceError::UnknownMethod),
        }
    }

    /// `S256` or `plain`, as sent in `code_challenge_method`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
            Self::Plain => "plain",
        }
    }
}

fn is_unreserved(text: &str) -> bool {
    (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A code verifier: secret, kept by the client until the token request.
pub struct PkceVerifier(Zeroizing<String>);

impl PkceVerifier {
    /// 32 bytes from `rng` as 43 base64url characters (RFC 7636 section 4.1).
    ///
    /// # Errors
    /// [`TokenError::Random`].
    pub fn generate(rng: &(impl SecureRandom + ?Sized)) -> Result<Self, TokenError> {
        let bytes = Zeroizing::new(palisade_core::random::array::<32>(rng)?);
        Ok(Self::from_bytes(&bytes))
    }

    /// The verifier of 32 secret bytes (base64url, 43 characters).
    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Self {
        let mut text = Zeroizing::new(String::with_capacity(MIN_VERIFIER_LEN));
        URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
        Self(text)
    }

    /// Reads a verifier received in a token request.
    ///
    /// # Errors
    /// [`PkceError::MalformedVerifier`] unless 43 to 128 unreserved characters.
    pub fn parse(text: &str) -> Result<Self, PkceError> {
        if !is_unreserved(text) {
            return Err(PkceError::MalformedVerifier);
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The verifier text, for the token request. Every call site is a place where it leaves.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Its `S256` challenge.
    pub fn challenge(&self) -> PkceChallenge {
        let digest = Sha256::digest(self.0.as_bytes());
        PkceChallenge {
            text: URL_SAFE_NO_PAD.encode(digest),
            method: PkceMethod::S256,
        }
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier(***)")
    }
}

/// A code challenge and its method, as sent with the authorization request (public).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PkceChallenge {
    text: String,
    method: PkceMethod,
}

/// What the authorization server accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PkcePolicy {
    allow_plain: bool,
}

impl PkcePolicy {
    /// `S256` only.
    pub const fn new() -> Self {
        Self { allow_plain: false }
    }

    /// Also accepts `plain` challenges (RFC 7636 section 7.2: only for clients that cannot
    /// compute SHA-256).
    #[must_use]
    pub const fn allow_plain(mut self) -> Self {
        self.allow_plain = true;
        self
    }
}

/// The answer to [`PkceChallenge::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum PkceCheck {
    /// The verifier matches the challenge: issue the tokens.
    Valid,
    /// It does not: refuse the token request (`invalid_grant`).
    Mismatch,
    /// The challenge uses `plain` and the policy refuses it.
    MethodRefused,
}

impl PkceChallenge {
    /// Reads `code_challenge` and `code_challenge_method` from an authorization request.
    ///
    /// # Errors
    /// [`PkceError::MalformedChallenge`], [`PkceError::UnknownMethod`].
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, PkceError> {
        let method = PkceMethod::parse(method)?;
        if !is_unreserved(challenge) {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(Self {
            text: challenge.to_owned(),
            method,
        })
    }

    /// The `code_challenge` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `code_challenge_method`.
    pub const fn method(&self) -> PkceMethod {
        self.method
    }

    /// Whether `verifier` (the token request's `code_verifier`) matches, compared in constant
    /// time, under `policy`.
    pub fn verify(&self, verifier: &PkceVerifier, policy: PkcePolicy) -> PkceCheck {
        let matches = match self.method {
            PkceMethod::S256 => ct_eq(verifier.challenge().text.as_bytes(), self.text.as_bytes()),
            PkceMethod::Plain if policy.allow_plain => {
                ct_eq(verifier.expose_secret().as_bytes(), self.text.as_bytes())
            }
            PkceMethod::Plain => return PkceCheck::MethodRefused,
        };
        if matches {
            PkceCheck::Valid
        } else {
            PkceCheck::Mismatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::random::SystemRandom;

    /// RFC 7636, Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        // The appendix's 32 octets give its verifier, and that verifier its challenge.
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        assert_eq!(
            PkceVerifier::from_bytes(&octets).expose_secret(),
            RFC_VERIFIER
        );
        let verifier = PkceVerifier::parse(RFC_VERIFIER).unwrap();
        assert_eq!(verifier.challenge().as_str(), RFC_CHALLENGE);
        let challenge = PkceChallenge::parse(RFC_CHALLENGE, Some("S256")).unwrap();
        assert_eq!(
            challenge.verify(&verifier, PkcePolicy::new()),
            PkceCheck::Valid
        );
    }

    #[test]
    fn wrong_verifiers_are_refused() {
        let challenge = PkceChallenge::parse(RFC_CHALLENGE, Some("S256")).unwrap();
        let mut accepted = 0;
        for _ in 0..50 {
            let guess = PkceVerifier::generate(&SystemRandom).unwrap();
            accepted +=
                usize::from(challenge.verify(&guess, PkcePolicy::new()) == PkceCheck::Valid);
        }
        assert_eq!(accepted, 0, "{accepted} of 50 random verifiers accepted");
        // The challenge itself presented as the verifier (a downgrade to plain) is refused.
        let as_verifier = PkceVerifier::parse(RFC_CHALLENGE).unwrap();
        assert_eq!(
            challenge.verify(&as_verifier, PkcePolicy::new().allow_plain()),
            PkceCheck::Mismatch
        );
    }

    #[test]
    fn plain_only_when_enabled() {
        let verifier = PkceVerifier::parse(RFC_VERIFIER).unwrap();
        for method in [None, Some("plain")] {
            let plain = PkceChallenge::parse(RFC_VERIFIER, method).unwrap();
            assert_eq!(plain.method(), PkceMethod::Plain);
            assert_eq!(
                plain.verify(&verifier, PkcePolicy::new()),
                PkceCheck::MethodRefused
            );
            assert_eq!(
                plain.verify(&verifier, PkcePolicy::new().allow_plain()),
                PkceCheck::Valid
            );
        }
        assert_eq!(
            PkceChallenge::parse(RFC_CHALLENGE, Some("s256")),
            Err(PkceError::UnknownMethod)
        );
    }

    #[test]
    fn verifier_alphabet_and_length() {
        for bad in [
            "",
            &"a".repeat(42),
            &"a".repeat(129),
            &format!("{}+", "a".repeat(42)),
            &format!("{}=", "a".repeat(42)),
            &format!("{} ", "a".repeat(42)),
            &format!("{}é", "a".repeat(41)),
        ] {
            assert!(PkceVerifier::parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            "a".repeat(43),
            "a".repeat(128),
            format!("{}-._~", "Z9".repeat(20)),
        ] {
            assert!(PkceVerifier::parse(&good).is_ok(), "{good:?}");
        }
        let generated = PkceVerifier::generate(&SystemRandom).unwrap();
        assert_eq!(generated.expose_secret().len(), 43);
        assert!(PkceVerifier::parse(generated.expose_secret()).is_ok());
        assert_eq!(format!("{generated:?}"), "PkceVerifier(***)");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_make_a_verifier_that_reads_back(bytes: [u8; 32]) {
            let made = PkceVerifier::from_bytes(&bytes);
            let read = PkceVerifier::parse(made.expose_secret()).unwrap();
            proptest::prop_assert_eq!(read.expose_secret(), made.expose_secret());
            proptest::prop_assert_eq!(
                made.challenge().verify(&read, PkcePolicy::new()),
                PkceCheck::Valid
            );
        }

        #[test]
        fn unreserved_text_of_legal_length_parses(text in "[A-Za-z0-9._~-]{43,128}") {
            let verifier = PkceVerifier::parse(&text).unwrap();
            proptest::prop_assert_eq!(verifier.expose_secret(), text.as_str());
            let challenge = verifier.challenge();
            proptest::prop_assert_eq!(challenge.as_str().len(), 43);
            proptest::prop_assert!(PkceChallenge::parse(challenge.as_str(), Some("S256")).is_ok());
        }

        #[test]
        fn other_lengths_or_characters_do_not(text in "\\PC{0,140}") {
            let legal = (43..=128).contains(&text.len())
                && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            proptest::prop_assert_eq!(PkceVerifier::parse(&text).is_ok(), legal);
        }
    }
}
