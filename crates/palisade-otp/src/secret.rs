//! OTP secrets: generation, import, base32.
//!
//! [`OtpSecret`] is the shared key between the server and the authenticator app. It is generated
//! from a [`SecureRandom`] source (20 bytes for SHA-1, the hash length otherwise, as RFC 4226
//! section 4 and RFC 6238 section 5.1 recommend) or imported. The ordinary import paths
//! ([`OtpSecret::from_bytes`], [`OtpSecret::from_base32`]) accept only secrets of at least
//! 128 bits; shorter legacy secrets come in only through [`OtpSecret::import_weak`] and
//! [`OtpSecret::import_weak_base32`], which report their [`SecretStrength`].
//!
//! # Errors
//! [`OtpError::WeakSecret`], [`OtpError::SecretLength`], [`OtpError::InvalidBase32`] and
//! [`OtpError::Random`].
//!
//! # Security
//! The secret zeroizes on drop, prints `***` in `Debug`, has no `Display`, `Serialize` or
//! `Clone`; its bytes leave only through [`OtpSecret::expose_secret`] and
//! [`OtpSecret::expose_base32`]. Base32 decoding works on a zeroizing copy of the input.

use core::fmt;
use std::sync::OnceLock;

use data_encoding::{Encoding, Specification};
use palisade_core::random::SecureRandom;
use palisade_core::secret::SecretBytes;
use zeroize::Zeroizing;

use crate::OtpError;

/// The smallest secret the ordinary import paths accept, in bits (RFC 4226 section 4, R6).
pub const MIN_SECRET_BITS: usize = 128;
/// The largest secret accepted, in bytes (far above any real authenticator's).
pub const MAX_SECRET_LEN: usize = 256;

/// The HMAC hash function of an OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1: the RFC 4226 default, and the only one every authenticator app supports.
    #[default]
    Sha1,
    /// HMAC-SHA-256 (RFC 6238).
    Sha256,
    /// HMAC-SHA-512 (RFC 6238).
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs: `SHA1`, `SHA256`, `SHA512`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// The recommended secret length: the hash output length, in bytes.
    pub const fn secret_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// Reads `SHA1`, `sha-256`, ... (case and one dash tolerated).
    pub fn from_name(name: &str) -> Option<Self> {
        let upper: String = name
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match upper.as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How strong an imported secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretStrength {
    bits: usize,
}

impl SecretStrength {
    /// The secret's length in bits (an upper bound on its entropy).
    pub const fn bits(self) -> usize {
        self.bits
    }

    /// Whether the secret meets the 128-bit minimum.
    pub const fn is_sufficient(self) -> bool {
        self.bits >= MIN_SECRET_BITS
    }
}

/// The secret key shared with an authenticator.
///
/// ```
/// use palisade_core::random::SystemRandom;
/// use palisade_otp::{Algorithm, OtpSecret};
///
/// let secret = OtpSecret::generate(Algorithm::Sha1, &SystemRandom)?;
/// assert_eq!(secret.len(), 20);
/// assert_eq!(format!("{secret:?}"), "OtpSecret(***)");
/// let again = OtpSecret::from_base32(&secret.expose_base32().to_lowercase())?;
/// assert_eq!(again, secret);
/// # Ok::<(), palisade_otp::OtpError>(())
/// ```
#[derive(PartialEq, Eq)]
pub struct OtpSecret(SecretBytes);

impl OtpSecret {
    /// A new random secret of the recommended length for `algorithm`.
    ///
    /// # Errors
    /// [`OtpError::Random`] when the source fails.
    pub fn generate(
        algorithm: Algorithm,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<Self, OtpError> {
        let mut bytes = SecretBytes::zeroed(algorithm.secret_len());
        rng.fill(bytes.expose_secret_mut())?;
        Ok(Self(bytes))
    }

    /// Takes `bytes` as a secret of at least 128 bits.
    ///
    /// # Errors
    /// [`OtpError::WeakSecret`] below 128 bits, [`OtpError::SecretLength`] above
    /// [`MAX_SECRET_LEN`] bytes.
    pub fn from_bytes(bytes: SecretBytes) -> Result<Self, OtpError> {
        let (secret, strength) = Self::import_weak(bytes)?;
        if strength.is_sufficient() {
            Ok(secret)
        } else {
            Err(OtpError::WeakSecret {
                bits: strength.bits(),
            })
        }
    }

    /// Imports a secret of any non-empty length, reporting its strength: the one path for legacy
    /// secrets shorter than 128 bits. Callers should plan to re-enroll such users.
    ///
    /// # Errors
    /// [`OtpError::SecretLength`] when empty or longer than [`MAX_SECRET_LEN`] bytes.
    pub fn import_weak(bytes: SecretBytes) -> Result<(Self, SecretStrength), OtpError> {
        if bytes.is_empty() || bytes.len() > MAX_SECRET_LEN {
            return Err(OtpError::SecretLength);
        }
        let strength = SecretStrength {
            bits: bytes.len().saturating_mul(8),
        };
        Ok((Self(bytes), strength))
    }

    /// Decodes base32 (RFC 4648) of at least 128 bits, tolerating lower case, spaces, dashes
    /// and `=` padding.
    ///
    /// # Errors
    /// [`OtpError::InvalidBase32`], then as [`OtpSecret::from_bytes`].
    pub fn from_base32(text: &str) -> Result<Self, OtpError> {
        Self::from_bytes(decode_base32(text)?)
    }

    /// Decodes base32 like [`OtpSecret::from_base32`] but accepts any non-empty length,
    /// reporting the strength.
    ///
    /// # Errors
    /// [`OtpError::InvalidBase32`], then as [`OtpSecret::import_weak`].
    pub fn import_weak_base32(text: &str) -> Result<(Self, SecretStrength), OtpError> {
        Self::import_weak(decode_base32(text)?)
    }

    /// The secret's strength.
    pub fn strength(&self) -> SecretStrength {
        SecretStrength {
            bits: self.0.len().saturating_mul(8),
        }
    }

    /// The length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a secret is never empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw secret bytes.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The secret in unpadded upper-case base32, as authenticator apps take it.
    pub fn expose_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(data_encoding::BASE32_NOPAD.encode(self.0.expose_secret()))
    }

    /// An explicit copy (named, not `Clone`, so every copy of a secret is visible).
    pub fn duplicate(&self) -> Self {
        Self(self.0.duplicate())
    }
}

impl fmt::Debug for OtpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpSecret(***)")
    }
}

/// RFC 4648 base32 that maps lower case to upper case, skips spaces, tabs, newlines and dashes,
/// and ignores non-zero trailing bits (some generators draw base32 characters directly).
fn tolerant_base32() -> Option<&'static Encoding> {
    static ENCODING: OnceLock<Option<Encoding>> = OnceLock::new();
    ENCODING
        .get_or_init(|| {
            let mut spec = Specification::new();
            spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
            spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
            spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
            spec.ignore.push_str(" \t\r\n-");
            spec.check_trailing_bits = false;
            spec.encoding().ok()
        })
        .as_ref()
}

fn decode_base32(text: &str) -> Result<SecretBytes, OtpError> {
    // Padding only at the end; the tolerant encoding is unpadded.
    let trimmed = text.trim().trim_end_matches(['=', ' ']);
    if trimmed.len() > MAX_SECRET_LEN.saturating_mul(2) {
        return Err(OtpError::SecretLength);
    }
    let encoding = tolerant_base32().ok_or(OtpError::InvalidBase32)?;
    let bytes = encoding
        .decode(trimmed.as_bytes())
        .map_err(|_| OtpError::InvalidBase32)?;
    Ok(SecretBytes::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::random::SystemRandom;

    #[test]
    fn generated_lengths_follow_the_hash() {
        for (alg, len) in [
            (Algorithm::Sha1, 20),
            (Algorithm::Sha256, 32),
            (Algorithm::Sha512, 64),
        ] {
            let a = OtpSecret::generate(alg, &SystemRandom).unwrap();
            let b = OtpSecret::generate(alg, &SystemRandom).unwrap();
            assert_eq!(a.len(), len);
            assert_ne!(a, b);
        }
    }

    #[test]
    fn base32_is_tolerant() {
        let canonical = OtpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(canonical.expose_secret(), b"12345678901234567890");
        for variant in [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "  gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq\n",
        ] {
            assert_eq!(OtpSecret::from_base32(variant).unwrap(), canonical);
        }
        // 16 bytes: 26 characters, padded to 32 with '='.
        let padded = OtpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY======").unwrap();
        assert_eq!(padded.len(), 16);
        // Non-zero trailing bits are accepted (random base32 characters).
        assert_eq!(
            OtpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVG7")
                .unwrap()
                .len(),
            16
        );
    }

    #[test]
    fn base32_rejects_garbage() {
        for bad in [
            "GEZD1NBV",
            "GE=ZD",
            "!!!!",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ\u{e9}",
        ] {
            assert!(
                matches!(OtpSecret::from_base32(bad), Err(OtpError::InvalidBase32)),
                "{bad}"
            );
        }
        assert!(matches!(
            OtpSecret::from_base32(""),
            Err(OtpError::SecretLength)
        ));
    }

    #[test]
    fn weak_secrets_need_the_named_path() {
        let ten = "JBSWY3DPEHPK3PXP"; // 10 bytes: the classic example secret
        assert!(matches!(
            OtpSecret::from_base32(ten),
            Err(OtpError::WeakSecret { bits: 80 })
        ));
        let (secret, strength) = OtpSecret::import_weak_base32(ten).unwrap();
        assert_eq!(strength.bits(), 80);
        assert!(!strength.is_sufficient());
        assert_eq!(secret.len(), 10);
        assert!(OtpSecret::from_bytes(SecretBytes::zeroed(16)).is_ok());
        assert!(matches!(
            OtpSecret::import_weak(SecretBytes::zeroed(MAX_SECRET_LEN + 1)),
            Err(OtpError::SecretLength)
        ));
    }

    #[test]
    fn errors_and_debug_hide_the_secret() {
        let secret = OtpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(format!("{secret:?}"), "OtpSecret(***)");
        let err = OtpSecret::from_base32("GEZDGNBVGY3TQOJ!")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("GEZD"));
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(Algorithm::from_name("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_name("SHA512"), Some(Algorithm::Sha512));
        assert_eq!(Algorithm::from_name("md5"), None);
        assert_eq!(Algorithm::default().to_string(), "SHA1");
    }
}
